//! Every bad input gets a clear status and error body, and nothing is stored.

use std::sync::Arc;

use loyalty_core::api::device_authorization;
use loyalty_core::clock::ManualClock;
use loyalty_core::protocol::{RequestEntry, SyncRequest, sync_path};
use loyalty_core::{Device, DocKind, Error};
use loyalty_tests::*;
use serde_json::Value;

/// Status and error code of an answer, checking the body is our JSON error with a message.
async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string();
    let message = body["error"]["message"].as_str().expect("error.message");
    assert!(!message.is_empty(), "empty message for {code}");
    (status, code)
}

struct World {
    _dir: tempfile::TempDir,
    server: TestServer,
    member_id: String,
    device: Device,
    http: reqwest::Client,
}

async fn world(configure: impl FnOnce(&mut loyalty_server::Config)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(
        dir.path().join("server.db"),
        "127.0.0.1:0",
        Arc::new(loyalty_core::SystemClock),
        configure,
    )
    .await;
    let op = server.operator();
    let (member_id, device) = member_with_device(&server.url, &op, &dir.path().join("p.db")).await;
    op.post_offer(&member_id, &offer("o1", "Coffee"))
        .await
        .unwrap();
    device.sync().await.unwrap();
    World {
        _dir: dir,
        server,
        member_id,
        device,
        http: reqwest::Client::new(),
    }
}

impl World {
    fn auth(&self) -> String {
        let c = self.device.credentials().unwrap();
        device_authorization(&c.device_id, &c.device_secret)
    }

    async fn post_sync(
        &self,
        member_id: &str,
        auth: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}{}", self.server.url, sync_path(member_id)))
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send().await.unwrap()
    }

    async fn get_document(&self, member_id: &str, doc: &str, auth: &str) -> reqwest::Response {
        let url = format!("{}/v1/members/{member_id}/documents/{doc}", self.server.url);
        self.http
            .get(url)
            .header("authorization", auth)
            .send()
            .await
            .unwrap()
    }

    async fn snapshot(&self) -> loyalty_core::api::MemberView {
        self.server
            .operator()
            .member(&self.member_id)
            .await
            .unwrap()
    }
}

fn empty_request() -> Vec<u8> {
    SyncRequest {
        entries: vec![RequestEntry {
            doc: DocKind::Member,
            epoch: 0,
            digest: [0; 8],
            message: None,
        }],
    }
    .encode()
}

#[test]
fn malformed_sync_bodies_are_400_and_change_nothing() {
    rt().block_on(async {
        let w = world(|_| {}).await;
        let before = w.snapshot().await;
        let auth = w.auth();
        for body in [
            b"hello world".to_vec(),
            vec![],
            vec![1, 1, 3, 0, 0],
            vec![2, 0],
        ] {
            let (status, code) = error_of(w.post_sync(&w.member_id, Some(&auth), body).await).await;
            assert_eq!((status, code.as_str()), (400, "malformed_body"));
        }
        // A well-framed body whose "sync message" is garbage is refused per document.
        let garbage = SyncRequest {
            entries: vec![RequestEntry {
                doc: DocKind::Member,
                epoch: 0,
                digest: [0; 8],
                message: Some(vec![0x42, 0xff, 0xff]),
            }],
        }
        .encode();
        let response = w.post_sync(&w.member_id, Some(&auth), garbage).await;
        assert_eq!(response.status(), 200);
        let decoded =
            loyalty_core::protocol::SyncResponse::decode(&response.bytes().await.unwrap()).unwrap();
        match &decoded.entries[0].reply {
            loyalty_core::protocol::Reply::Rejected(r) => assert_eq!(r.code, "malformed_message"),
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert_eq!(w.snapshot().await, before);
    });
}

#[test]
fn unknown_documents_are_named_as_such() {
    rt().block_on(async {
        let w = world(|_| {}).await;
        let auth = w.auth();
        let body = vec![1, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let (status, code) = error_of(w.post_sync(&w.member_id, Some(&auth), body).await).await;
        assert_eq!((status, code.as_str()), (400, "unknown_document"));
        let r = w.get_document(&w.member_id, "wallet", &auth).await;
        assert_eq!(error_of(r).await, (404, "unknown_document".into()));
        // The real documents are there for their owner.
        let r = w.get_document(&w.member_id, "offers", &auth).await;
        assert_eq!(r.status(), 200);
        let doc = automerge::AutoCommit::load(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(loyalty_core::offers::read_all(&doc).unwrap().len(), 1);
    });
}

#[test]
fn wrong_or_missing_credentials_are_401() {
    rt().block_on(async {
        let w = world(|_| {}).await;
        let before = w.snapshot().await;
        let c = w.device.credentials().unwrap();
        let wrong_secret = device_authorization(&c.device_id, &"0".repeat(64));
        let unknown_device = device_authorization("dev_nobody", &c.device_secret);
        for auth in [
            None,
            Some("Bearer"),
            Some("Basic abc"),
            Some(wrong_secret.as_str()),
            Some(unknown_device.as_str()),
        ] {
            let (status, code) =
                error_of(w.post_sync(&w.member_id, auth, empty_request()).await).await;
            assert_eq!((status, code.as_str()), (401, "unauthorized"), "{auth:?}");
        }
        // Operators: a wrong or missing token.
        let url = format!("{}/v1/admin/members", w.server.url);
        let r = w.http.post(&url).send().await.unwrap();
        assert_eq!(error_of(r).await, (401, "unauthorized".into()));
        let r = w
            .http
            .post(&url)
            .bearer_auth("not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await, (401, "unauthorized".into()));
        // Credentials are checked before the body is even read.
        let r = w.http.post(&url).body("{not json").send().await.unwrap();
        assert_eq!(error_of(r).await, (401, "unauthorized".into()));
        let wrong = loyalty_server::client::OperatorClient::new(&w.server.url, "nope").unwrap();
        assert!(wrong.member(&w.member_id).await.is_err());
        // A device secret is no operator token.
        let r = w
            .http
            .post(&url)
            .header("authorization", w.auth())
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await.0, 401);
        assert_eq!(w.snapshot().await, before);
    });
}

#[test]
fn another_members_documents_are_403() {
    rt().block_on(async {
        let w = world(|_| {}).await;
        let op = w.server.operator();
        let other = op.create_member(None).await.unwrap();
        op.post_message(&other.member_id, &message("secret", "Private"))
            .await
            .unwrap();
        let before = op.member(&other.member_id).await.unwrap();
        let auth = w.auth();
        let (status, code) = error_of(
            w.post_sync(&other.member_id, Some(&auth), empty_request())
                .await,
        )
        .await;
        assert_eq!((status, code.as_str()), (403, "forbidden"));
        let r = w.get_document(&other.member_id, "inbox", &auth).await;
        assert_eq!(error_of(r).await, (403, "forbidden".into()));
        assert_eq!(op.member(&other.member_id).await.unwrap(), before);
    });
}

#[test]
fn oversized_bodies_are_413() {
    rt().block_on(async {
        let w = world(|c| c.max_body_bytes = 64 * 1024).await;
        let before = w.snapshot().await;
        let big = SyncRequest {
            entries: vec![RequestEntry {
                doc: DocKind::Member,
                epoch: 0,
                digest: [0; 8],
                message: Some(vec![0x42; 100 * 1024]),
            }],
        }
        .encode();
        let (status, code) = error_of(w.post_sync(&w.member_id, Some(&w.auth()), big).await).await;
        assert_eq!((status, code.as_str()), (413, "payload_too_large"));
        let huge_offer = serde_json::json!({"title": "x".repeat(100 * 1024), "valid_from_ms": 0, "valid_until_ms": 1});
        let r = w
            .http
            .post(format!("{}/v1/admin/members/{}/offers", w.server.url, w.member_id))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&huge_offer)
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await, (413, "payload_too_large".into()));
        assert_eq!(w.snapshot().await, before);
    });
}

#[test]
fn malformed_operator_input_is_400() {
    rt().block_on(async {
        let w = world(|_| {}).await;
        let before = w.snapshot().await;
        let url = format!("{}/v1/admin/members/{}/offers", w.server.url, w.member_id);
        let cases = [
            (serde_json::json!({"title": "no dates"}), "invalid_offer"),
            (serde_json::json!({"title": "no reward", "valid_from_ms": 0, "valid_until_ms": 1}), "invalid_offer"),
            (serde_json::json!({"title": "", "valid_from_ms": 0, "valid_until_ms": 1, "reward": "fixed_points", "value": 5}), "invalid_offer"),
            (serde_json::json!({"title": "t", "valid_from_ms": 5, "valid_until_ms": 1, "reward": "fixed_points", "value": 5}), "invalid_offer"),
            (serde_json::json!({"id": "a/b", "title": "t", "valid_from_ms": 0, "valid_until_ms": 1, "reward": "fixed_points", "value": 5}), "invalid_offer"),
            (serde_json::json!({"title": "t", "valid_from_ms": 0, "valid_until_ms": 1, "reward": "percent_off", "value": 150}), "invalid_offer"),
            (serde_json::json!({"title": "t", "valid_from_ms": 0, "valid_until_ms": 1, "reward": "free_lunch", "value": 1}), "invalid_offer"),
        ];
        for (body, expected) in cases {
            let r = w.http.post(&url).bearer_auth(OPERATOR_TOKEN).json(&body).send().await.unwrap();
            assert_eq!(error_of(r).await, (400, expected.to_string()), "{body}");
        }
        let r = w
            .http
            .post(&url)
            .bearer_auth(OPERATOR_TOKEN)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await, (400, "malformed_body".into()));
        let r = w
            .http
            .post(format!("{}/v1/admin/members/{}/messages", w.server.url, w.member_id))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&serde_json::json!({"subject": "hi", "kind": "service", "channel": "pigeon"}))
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await, (400, "invalid_message".into()));
        let r = w
            .http
            .post(format!("{}/v1/admin/members/mbr_nobody/messages", w.server.url))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&serde_json::json!({"subject": "hi", "kind": "service"}))
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await, (404, "member_not_found".into()));
        let r = w
            .http
            .post(format!("{}/v1/admin/members", w.server.url))
            .bearer_auth(OPERATOR_TOKEN)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await, (400, "malformed_body".into()));
        assert_eq!(w.snapshot().await, before);
    });
}

#[test]
fn activation_codes_work_once_and_not_after_they_expire() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let server =
            TestServer::start_with(dir.path().join("s.db"), "127.0.0.1:0", clock.clone(), |c| {
                c.activation_ttl_ms = 3_600_000;
            })
            .await;
        let op = server.operator();
        let member = op.create_member(None).await.unwrap();

        let server_error = |e: Error| match e {
            Error::Server { status, code, .. } => (status, code),
            other => panic!("expected a server error, got {other}"),
        };
        let d1 = Device::open(dir.path().join("d1.db")).unwrap();
        d1.enroll(&server.url, &member.activation_code, "one")
            .await
            .unwrap();
        let d2 = Device::open(dir.path().join("d2.db")).unwrap();
        let used = d2
            .enroll(&server.url, &member.activation_code, "two")
            .await
            .unwrap_err();
        assert_eq!(server_error(used), (409, "activation_code_used".into()));
        assert!(
            !d2.is_enrolled(),
            "a refused enrollment stores no credentials"
        );

        let fresh = op.activation_code(&member.member_id).await.unwrap();
        clock.advance(3_600_000);
        let expired = d2
            .enroll(&server.url, &fresh.activation_code, "two")
            .await
            .unwrap_err();
        assert_eq!(
            server_error(expired),
            (410, "activation_code_expired".into())
        );

        let unknown = d2
            .enroll(&server.url, "AAAA-BBBB-CCCC", "two")
            .await
            .unwrap_err();
        assert_eq!(
            server_error(unknown),
            (404, "activation_code_not_found".into())
        );
        let malformed = d2.enroll(&server.url, "hello", "two").await.unwrap_err();
        assert_eq!(
            server_error(malformed),
            (400, "malformed_activation_code".into())
        );
        assert!(matches!(d2.sync().await, Err(Error::NotEnrolled)));
    });
}

#[test]
fn a_member_document_change_that_breaks_the_schema_is_refused_and_kept_locally() {
    rt().block_on(async {
        let w = world(|_| {}).await;
        let before = w.snapshot().await;
        w.device
            .tamper(DocKind::Member, |doc| {
                use automerge::transaction::Transactable;
                doc.put(automerge::ROOT, "balance", 1_000_000i64).unwrap();
            })
            .unwrap();
        let report = w.device.sync().await.unwrap();
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].0, DocKind::Member);
        assert_eq!(report.rejected[0].1.code, "invalid_document");
        assert_eq!(w.snapshot().await, before);
    });
}

#[test]
fn a_server_that_is_down_is_reported_as_offline_and_local_work_goes_on() {
    rt().block_on(async {
        let w = world(|_| {}).await;
        let World {
            server,
            device,
            member_id,
            _dir,
            ..
        } = w;
        server.stop().await;
        assert!(matches!(device.sync().await, Err(Error::Offline(_))));
        device.activate_offer("o1").unwrap();
        assert!(device.offers().unwrap()[0].activated_at_ms.is_some());
        assert!(matches!(
            device.activate_offer("nope"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            device.set_consent("pigeon", true),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            device.set_preference(&"k".repeat(100), "v"),
            Err(Error::InvalidInput(_))
        ));
        drop(member_id);
    });
}

/// Every JSON endpoint refuses a body with a field it does not know (here: a valid body plus one
/// more field) or without one it needs, under the endpoint's own code and with the field named,
/// and stores nothing. (An offer posted with `min_spend` for `min_spend_minor` was once stored
/// with no minimum.)
#[test]
fn every_json_body_refuses_unknown_and_missing_fields_with_its_own_code() {
    rt().block_on(async {
        let w = world(|_| {}).await;
        let before = w.snapshot().await;
        let m = w.member_id.clone();
        let offer = serde_json::to_value(offer("o2", "Tea")).unwrap();
        let with = |mut v: Value, key: &str, value: Value| {
            v[key] = value;
            v
        };
        let members = serde_json::json!({"kind": "members", "member_ids": [m]});
        let purchase = serde_json::json!({"session_id": "chk_none", "idempotency_key": "k1",
            "receipt_id": "r1", "total_minor": 500,
            "lines": [{"sku": "1", "amount_minor": 500}]});
        let (op, till, none) = ("operator", "till", "none");
        let cases: Vec<(&str, &str, String, Value, &str, &str)> = vec![
            (
                none,
                "POST",
                "/v1/enroll".into(),
                serde_json::json!({"activation_code": "ABCD-EFGH-JKMN",
                "device_name": "x", "public_key": "00".repeat(32), "pin": 1234}),
                "invalid_enrollment",
                "pin",
            ),
            (
                none,
                "POST",
                "/v1/enroll".into(),
                serde_json::json!({"activation_code": "ABCD-EFGH-JKMN"}),
                "invalid_public_key",
                "public_key",
            ),
            (
                op,
                "POST",
                "/v1/admin/members".into(),
                serde_json::json!({"external_ref": "crm-1", "email": "a@b.c"}),
                "invalid_member",
                "email",
            ),
            (
                op,
                "POST",
                format!("/v1/admin/members/{m}/offers"),
                with(offer.clone(), "min_spend", 300.into()),
                "invalid_offer",
                "min_spend",
            ),
            (
                op,
                "POST",
                "/v1/admin/offers".into(),
                serde_json::json!({"offer": with(offer.clone(), "min_spend", 300.into()),
                "target": members}),
                "invalid_offer",
                "min_spend",
            ),
            (
                op,
                "POST",
                "/v1/admin/offers".into(),
                serde_json::json!({"offer": offer,
                "target": {"kind": "members", "member_ids": [m], "tier": "gold"}}),
                "invalid_target",
                "tier",
            ),
            (
                op,
                "POST",
                "/v1/admin/segments".into(),
                serde_json::json!({"name": "s", "colour": "red"}),
                "invalid_segment",
                "colour",
            ),
            (
                op,
                "POST",
                format!("/v1/admin/members/{m}/messages"),
                serde_json::json!({"subject": "Hi", "urgent": true}),
                "invalid_message",
                "urgent",
            ),
            (
                op,
                "POST",
                "/v1/admin/messages".into(),
                serde_json::json!({"channel": "inapp", "kind": "service",
                "subject": "Hi", "members": [m], "priority": 1}),
                "invalid_message",
                "priority",
            ),
            (
                op,
                "POST",
                format!("/v1/admin/requests/{m}.req_1/replies"),
                serde_json::json!({"body": "Hello",
                "signature": "Anna"}),
                "invalid_reply",
                "signature",
            ),
            (
                op,
                "PUT",
                "/v1/admin/programme".into(),
                serde_json::json!({"earning": {"default_rate": 1,
                "defualt_rate": 2}}),
                "invalid_programme",
                "defualt_rate",
            ),
            (
                op,
                "POST",
                format!("/v1/admin/members/{m}/tier"),
                serde_json::json!({"tier": "base", "until": 1}),
                "invalid_tier",
                "until",
            ),
            (
                till,
                "POST",
                "/v1/till/scan".into(),
                serde_json::json!({"code": "V50", "lane": 3}),
                "invalid_scan",
                "lane",
            ),
            (
                till,
                "POST",
                "/v1/till/purchases".into(),
                with(purchase.clone(), "discount", 5.into()),
                "invalid_purchase",
                "discount",
            ),
            (
                till,
                "POST",
                "/v1/till/purchases".into(),
                with(
                    purchase.clone(),
                    "lines",
                    serde_json::json!([{"sku": "1", "amount_minor": 500, "vat": 19}]),
                ),
                "invalid_purchase",
                "vat",
            ),
            (
                till,
                "POST",
                "/v1/till/purchases".into(),
                serde_json::json!({"session_id": "chk_none",
                "idempotency_key": "k1", "receipt_id": "r1"}),
                "invalid_purchase",
                "total_minor",
            ),
            (
                till,
                "POST",
                "/v1/till/refunds".into(),
                serde_json::json!({"purchase": "k1", "idempotency_key": "k2",
                "receipt_id": "r2", "amount_minor": 5, "reason": "broken"}),
                "invalid_refund",
                "reason",
            ),
        ];
        for (auth, method, path, body, code, field) in cases {
            let url = format!("{}{path}", w.server.url);
            let mut request = match method {
                "PUT" => w.http.put(url),
                _ => w.http.post(url),
            }
            .json(&body);
            request = match auth {
                "operator" => request.bearer_auth(OPERATOR_TOKEN),
                "till" => request
                    .bearer_auth(TILL_TOKEN)
                    .header("x-till-id", "till-1"),
                _ => request,
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let error: Value = response.json().await.unwrap();
            assert_eq!(
                (status, error["error"]["code"].as_str()),
                (400, Some(code)),
                "{path} {body}"
            );
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.contains(&format!("`{field}`")), "{path}: {message}");
        }
        assert_eq!(w.snapshot().await, before);
        assert!(
            w.server
                .operator()
                .programme()
                .await
                .unwrap()
                .earning
                .default_rate
                == 1
        );
    });
}
