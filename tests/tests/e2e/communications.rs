//! Communications end to end: a real server on loopback with a recording outbound adapter, real
//! devices with their own stores. Consent per channel, the daily marketing limit, segment sends
//! projected at sync and on the long poll, members' requests answered on both of their devices,
//! and every bad input refused with nothing changed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use loyalty_core::api::{DeliveryRecord, PostReply, SendMessage, device_authorization};
use loyalty_core::clock::{Clock, ManualClock};
use loyalty_core::{Device, DocKind, Error};
use loyalty_server::client::OperatorClient;
use loyalty_server::outbound::{Handover, Outbound, OutboundError, OutboundMessage};
use loyalty_tests::*;
use serde_json::{Value, json};
use tokio::sync::Notify;

const DAY_MS: i64 = 86_400_000;

/// An outbound adapter that records what it is handed.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<OutboundMessage>>,
    changed: Notify,
    /// How long each hand-over takes, as a provider's round trip would.
    pause: Duration,
}

impl Recorder {
    fn sent(&self) -> Vec<OutboundMessage> {
        self.sent.lock().unwrap().clone()
    }

    /// Waits until at least `n` deliveries were handed over. The timeout only keeps a broken
    /// worker from hanging the test run; nothing here depends on how fast it is.
    async fn wait_for(&self, n: usize) -> Vec<OutboundMessage> {
        loop {
            let woken = self.changed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.sent.lock().unwrap().len() >= n {
                return self.sent();
            }
            tokio::time::timeout(Duration::from_secs(120), woken)
                .await
                .expect("the outbound worker never delivered (hang guard)");
        }
    }
}

#[async_trait::async_trait]
impl Outbound for Recorder {
    async fn send(&self, message: &OutboundMessage) -> Result<Handover, OutboundError> {
        tokio::time::sleep(self.pause).await;
        self.sent.lock().unwrap().push(message.clone());
        self.changed.notify_waiters();
        Ok(Handover::Provider {
            reference: Some(format!("rec-{}", message.delivery_id())),
        })
    }
}

struct World {
    dir: tempfile::TempDir,
    server: TestServer,
    outbound: Arc<Recorder>,
    op: OperatorClient,
}

async fn world(
    clock: Arc<dyn Clock>,
    configure: impl FnOnce(&mut loyalty_server::Config),
) -> World {
    let dir = tempfile::tempdir().unwrap();
    let outbound = Arc::new(Recorder::default());
    let server = TestServer::start_with_outbound(
        dir.path().join("server.db"),
        "127.0.0.1:0",
        clock,
        outbound.clone(),
        configure,
    )
    .await;
    let op = server.operator();
    World {
        dir,
        server,
        outbound,
        op,
    }
}

impl World {
    async fn member(&self, name: &str) -> (String, Device) {
        member_with_device(&self.server.url, &self.op, &self.dir.path().join(name)).await
    }

    /// Makes `segment` hold exactly `members`, as an operator would: each member's phone says a
    /// preference that only they share, the segment is defined by it, and the batch job
    /// (`loyalty admin segments recompute`) finds them.
    async fn segment_of(&self, segment: &str, members: &[&Device]) {
        let key = format!("in-{segment}");
        for phone in members {
            phone.set_preference(&key, "yes").unwrap();
            phone.sync().await.unwrap();
        }
        let rules = loyalty_core::segments::SegmentRules {
            preferences: [(key, "yes".to_string())].into(),
            ..Default::default()
        };
        self.op
            .create_segment(&loyalty_core::api::PostSegment {
                id: Some(segment.into()),
                name: segment.into(),
                rules,
            })
            .await
            .unwrap();
        let database = self.server.database.clone();
        let recompute = tokio::task::spawn_blocking(move || {
            std::process::Command::new(loyalty_bin())
                .args(["admin", "segments", "recompute", "--database"])
                .arg(backend::database_for(&database))
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(recompute.status.success(), "{recompute:?}");
    }

    /// The deliveries of a message once the worker has finished with every one of them.
    async fn settled(&self, message_id: &str) -> Vec<DeliveryRecord> {
        for _ in 0..6000 {
            let list = self.op.deliveries(Some(message_id), None).await.unwrap();
            if list.iter().all(|d| d.status != "queued") {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("deliveries of {message_id} stayed queued (hang guard)");
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let http = reqwest::Client::new();
        let url = format!("{}{path}", self.server.url);
        let mut req = match method {
            "GET" => http.get(url),
            _ => http.post(url),
        };
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let response = req.send().await.unwrap();
        let status = response.status().as_u16();
        let value = response.json().await.unwrap_or(Value::Null);
        (status, value)
    }
}

impl World {
    async fn post_send(&self, body: &Value) -> (u16, Value) {
        let bytes = body.to_string().into_bytes();
        self.raw("POST", "/v1/admin/messages", Some(&operator()), Some(bytes))
            .await
    }

    async fn post_reply(&self, handle: &str, body: &Value) -> (u16, Value) {
        let path = format!("/v1/admin/requests/{handle}/replies");
        let bytes = body.to_string().into_bytes();
        self.raw("POST", &path, Some(&operator()), Some(bytes))
            .await
    }
}

fn operator() -> String {
    format!("Bearer {OPERATOR_TOKEN}")
}

fn send(id: &str, kind: &str, channel: &str, members: &[&str]) -> SendMessage {
    SendMessage {
        id: Some(id.into()),
        channel: channel.into(),
        kind: kind.into(),
        subject: format!("Subject of {id}"),
        body: format!("Body of {id}"),
        members: members.iter().map(|m| m.to_string()).collect(),
        segment: None,
    }
}

fn delivery<'a>(list: &'a [DeliveryRecord], member: &str) -> &'a DeliveryRecord {
    list.iter()
        .find(|d| d.member_id == member)
        .unwrap_or_else(|| panic!("no delivery for {member}: {list:?}"))
}

fn inbox_ids(device: &Device) -> Vec<String> {
    let mut ids: Vec<String> = device
        .messages()
        .unwrap()
        .into_iter()
        .map(|m| m.message.id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn marketing_goes_out_only_on_channels_the_member_consented_to() {
    rt().block_on(async {
        let w = world(Arc::new(loyalty_core::SystemClock), |_| {}).await;
        let (anna, anna_phone) = w.member("anna.db").await;
        let (ben, ben_phone) = w.member("ben.db").await;
        // Both gave an address; only Anna allows marketing by e-mail.
        anna_phone
            .set_preference("email", "anna@example.com")
            .unwrap();
        anna_phone.set_consent("email", true).unwrap();
        ben_phone
            .set_preference("email", "ben@example.com")
            .unwrap();
        ben_phone.set_consent("email", false).unwrap();
        anna_phone.sync().await.unwrap();
        ben_phone.sync().await.unwrap();

        let summary =
            w.op.send_message(&send("spring", "marketing", "email", &[&anna, &ben]))
                .await
                .unwrap();
        assert_eq!(
            (
                summary.recipients,
                summary.in_inbox,
                summary.queued,
                summary.refused_no_consent
            ),
            (2, 2, 1, 1),
            "{summary:?}"
        );

        let sent = w.outbound.wait_for(1).await;
        let list = w.settled("spring").await;
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(
            (
                sent[0].member_id.as_str(),
                sent[0].address.as_str(),
                sent[0].subject.as_str()
            ),
            (anna.as_str(), "anna@example.com", "Subject of spring")
        );
        let handed = delivery(&list, &anna);
        assert_eq!(
            (handed.status.as_str(), handed.detail.clone()),
            ("handed_over", Some(format!("rec-spring.{anna}")))
        );
        let refused = delivery(&list, &ben);
        assert_eq!(
            (
                refused.status.as_str(),
                refused.reason.as_deref(),
                refused.in_inbox
            ),
            ("refused", Some("no_consent"), true)
        );

        // The in-app inbox shows the message to both, with what happened on the e-mail channel.
        anna_phone.sync().await.unwrap();
        ben_phone.sync().await.unwrap();
        let ben_msg = &ben_phone.messages().unwrap()[0].message;
        assert_eq!(
            (ben_msg.id.as_str(), ben_msg.kind.as_str()),
            ("spring", "marketing")
        );
        let d = ben_msg.delivery.as_ref().unwrap();
        assert_eq!(
            (d.status.as_str(), d.reason.as_deref()),
            ("refused", Some("no_consent"))
        );
        let anna_msg = &anna_phone.messages().unwrap()[0].message;
        assert_eq!(anna_msg.delivery.as_ref().unwrap().status, "handed_over");

        // A service message needs no marketing consent: it goes out to Ben too.
        w.op.send_message(&send("receipt", "service", "email", &[&ben]))
            .await
            .unwrap();
        let sent = w.outbound.wait_for(2).await;
        assert_eq!(
            (sent[1].member_id.as_str(), sent[1].address.as_str()),
            (ben.as_str(), "ben@example.com")
        );
        assert!(
            sent.iter()
                .all(|m| m.message_id != "spring" || m.member_id != ben)
        );

        // No address for the channel: recorded as failed, never handed to the adapter.
        let summary =
            w.op.send_message(&send("ping", "service", "sms", &[&anna]))
                .await
                .unwrap();
        assert_eq!(summary.queued, 1);
        let list = w.settled("ping").await;
        assert_eq!(
            (list[0].status.as_str(), list[0].reason.as_deref()),
            ("failed", Some("no_address"))
        );
        assert_eq!(w.outbound.sent().len(), 2);
    });
}

#[test]
fn marketing_is_limited_per_day_and_service_messages_pass() {
    rt().block_on(async {
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let w = world(clock.clone(), |c| c.marketing_per_day = 2).await;
        let (anna, phone) = w.member("anna.db").await;

        for id in ["m1", "m2"] {
            let s =
                w.op.send_message(&send(id, "marketing", "inapp", &[&anna]))
                    .await
                    .unwrap();
            assert_eq!((s.in_inbox, s.refused_rate_limited), (1, 0), "{id}");
        }
        let s =
            w.op.send_message(&send("m3", "marketing", "inapp", &[&anna]))
                .await
                .unwrap();
        assert_eq!((s.in_inbox, s.refused_rate_limited), (0, 1));
        let refused = w.op.deliveries(Some("m3"), None).await.unwrap();
        assert_eq!(
            (
                refused[0].status.as_str(),
                refused[0].reason.as_deref(),
                refused[0].in_inbox
            ),
            ("refused", Some("rate_limited"), false)
        );
        // The one-member endpoint goes the same way.
        let mut direct = message("m4", "Flash sale");
        direct.kind = Some("marketing".into());
        let m = w.op.post_message(&anna, &direct).await.unwrap();
        assert_eq!(m.delivery.unwrap().reason.as_deref(), Some("rate_limited"));

        // Service messages are not counted nor limited: over HTTP and from the programme itself.
        let s =
            w.op.send_message(&send("s1", "service", "inapp", &[&anna]))
                .await
                .unwrap();
        assert_eq!(s.in_inbox, 1);
        loyalty_server::service::messaging::send_service(
            &w.server.app,
            &anna,
            "Points expire",
            "100 points expire on 1 June",
            "exp-1",
        )
        .await
        .unwrap();
        // Idempotent by id: the same call again changes nothing; another text under it is refused.
        loyalty_server::service::messaging::send_service(
            &w.server.app,
            &anna,
            "Points expire",
            "100 points expire on 1 June",
            "exp-1",
        )
        .await
        .unwrap();
        let clash = loyalty_server::service::messaging::send_service(
            &w.server.app,
            &anna,
            "Points expire",
            "200 points",
            "exp-1",
        )
        .await
        .unwrap_err();
        assert_eq!(clash.code, "id_reused");

        phone.sync().await.unwrap();
        assert_eq!(inbox_ids(&phone), ["exp-1", "m1", "m2", "s1"]);

        // A new day, a new allowance.
        clock.advance(DAY_MS);
        let s =
            w.op.send_message(&send("m5", "marketing", "inapp", &[&anna]))
                .await
                .unwrap();
        assert_eq!((s.in_inbox, s.refused_rate_limited), (1, 0));
        phone.sync().await.unwrap();
        assert_eq!(inbox_ids(&phone), ["exp-1", "m1", "m2", "m5", "s1"]);
    });
}

#[test]
fn a_segment_message_reaches_exactly_its_members_after_they_sync() {
    rt().block_on(async {
        let w = world(Arc::new(loyalty_core::SystemClock), |_| {}).await;
        let (a, phone_a) = w.member("a.db").await;
        let (b, phone_b) = w.member("b.db").await;
        let (_, phone_c) = w.member("c.db").await;
        w.segment_of("coffee-lovers", &[&phone_a, &phone_b]).await;
        w.segment_of("tea-lovers", &[&phone_c]).await;

        let mut m = send("beans", "marketing", "inapp", &[]);
        m.segment = Some("coffee-lovers".into());
        let s = w.op.send_message(&m).await.unwrap();
        assert_eq!((s.recipients, s.in_inbox), (2, 2));
        // Recorded, not written into anyone's document in the request.
        assert!(w.op.member(&a).await.unwrap().messages.is_empty());

        for phone in [&phone_a, &phone_b, &phone_c] {
            phone.sync().await.unwrap();
        }
        assert_eq!(inbox_ids(&phone_a), ["beans"]);
        assert_eq!(inbox_ids(&phone_b), ["beans"]);
        assert!(inbox_ids(&phone_c).is_empty());
        let list = w.op.deliveries(Some("beans"), None).await.unwrap();
        let mut who: Vec<&str> = list.iter().map(|d| d.member_id.as_str()).collect();
        who.sort();
        let mut expected = [a.as_str(), b.as_str()];
        expected.sort();
        assert_eq!(who, expected);

        // The same text under the same id reaches whoever it has not reached yet, and no one twice.
        let again = w.op.send_message(&m).await.unwrap();
        assert_eq!(again.recipients, 2);
        let mut to_c = m.clone();
        to_c.segment = Some("tea-lovers".into());
        assert_eq!(w.op.send_message(&to_c).await.unwrap().recipients, 3);
        phone_c.sync().await.unwrap();
        assert_eq!(inbox_ids(&phone_c), ["beans"]);
        to_c.subject = "Another text".into();
        let clash = w.op.send_message(&to_c).await.unwrap_err();
        assert_eq!(clash.code(), Some("id_reused"));
    });
}

#[test]
fn a_device_waiting_on_the_long_poll_wakes_for_a_segment_message() {
    rt().block_on(async {
        let w = world(Arc::new(loyalty_core::SystemClock), |_| {}).await;
        let (a, phone) = w.member("a.db").await;
        w.segment_of("all", &[&phone]).await;
        let creds = phone.credentials().unwrap();
        let auth = device_authorization(&creds.device_id, &creds.device_secret);
        let poll = |since: u64, wait: u64| {
            let url = format!(
                "{}/v1/members/{a}/changes?since={since}&wait_s={wait}",
                w.server.url
            );
            let auth = auth.clone();
            async move {
                let r = reqwest::Client::new()
                    .get(url)
                    .header("authorization", auth)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                r.json::<loyalty_core::api::ChangesResponse>()
                    .await
                    .unwrap()
            }
        };
        let start = poll(0, 0).await;
        assert!(!start.changed);
        let waiting = tokio::spawn(poll(start.seq, 60));
        let mut m = send("hello-all", "service", "inapp", &[]);
        m.segment = Some("all".into());
        w.op.send_message(&m).await.unwrap();
        let answer = waiting.await.unwrap();
        assert!(answer.changed, "{answer:?}");
        let report = phone.sync().await.unwrap();
        assert!(report.changed.contains(&DocKind::Inbox));
        assert_eq!(inbox_ids(&phone), ["hello-all"]);
    });
}

#[test]
fn a_request_opened_offline_reaches_the_operator_and_the_answer_reaches_both_devices() {
    rt().block_on(async {
        let w = world(Arc::new(loyalty_core::SystemClock), |_| {}).await;
        let (member, phone) = w.member("phone.db").await;
        let tablet = second_device(
            &w.server.url,
            &w.op,
            &member,
            &w.dir.path().join("tablet.db"),
        )
        .await;

        // Offline: recorded on the phone only.
        let id = phone
            .open_request("complaint", "Points missing", "Receipt 1001 earned nothing")
            .unwrap();
        assert_eq!(phone.requests().unwrap()[0].status, "open");
        assert!(w.op.requests(Some("open")).await.unwrap().is_empty());

        phone.sync().await.unwrap();
        let open = w.op.requests(Some("open")).await.unwrap();
        assert_eq!(open.len(), 1);
        let handle = open[0].id.clone();
        assert_eq!(handle, format!("{member}.{id}"));
        assert_eq!(
            (
                open[0].kind.as_str(),
                open[0].subject.as_str(),
                open[0].body.as_str()
            ),
            ("complaint", "Points missing", "Receipt 1001 earned nothing")
        );

        let reply = PostReply {
            id: Some("r1".into()),
            body: "We added the points.".into(),
            author: Some("Care team".into()),
            close: false,
        };
        let answered = w.op.reply_request(&handle, &reply).await.unwrap();
        assert_eq!(answered.status, "answered");
        // A retried reply changes nothing.
        assert_eq!(
            w.op.reply_request(&handle, &reply)
                .await
                .unwrap()
                .entries
                .len(),
            1
        );
        assert!(w.op.requests(Some("open")).await.unwrap().is_empty());

        for device in [&phone, &tablet] {
            device.sync().await.unwrap();
            let r = &device.requests().unwrap()[0];
            assert_eq!(
                (r.id.as_str(), r.status.as_str()),
                (id.as_str(), "answered")
            );
            assert_eq!(r.entries.len(), 1);
            assert_eq!(
                (
                    r.entries[0].from.as_str(),
                    r.entries[0].author.as_str(),
                    r.entries[0].body.as_str()
                ),
                ("operator", "Care team", "We added the points.")
            );
        }

        // The member follows up from the tablet: the request needs an operator again.
        tablet
            .add_followup(&id, "Only half of them arrived")
            .unwrap();
        tablet.sync().await.unwrap();
        let open = w.op.requests(Some("open")).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(
            open[0].entries.last().unwrap().body,
            "Only half of them arrived"
        );

        let closed = w.op.close_request(&handle).await.unwrap();
        assert_eq!(closed.status, "closed");
        for device in [&phone, &tablet] {
            device.sync().await.unwrap();
            let r = &device.requests().unwrap()[0];
            assert_eq!((r.status.as_str(), r.entries.len()), ("closed", 2));
        }
        assert!(matches!(
            phone.add_followup(&id, "Hello?"),
            Err(Error::InvalidInput(_))
        ));
        // Closed is final on the server too: a late reply is refused, closing again is a no-op.
        let late = PostReply {
            id: Some("r2".into()),
            body: "One more thing".into(),
            author: None,
            close: false,
        };
        match w.op.reply_request(&handle, &late).await {
            Err(loyalty_server::client::OperatorError::Refused { code, .. }) => {
                assert_eq!(code, "request_closed")
            }
            other => panic!("a reply to a closed request: {other:?}"),
        }
        assert_eq!(w.op.close_request(&handle).await.unwrap().status, "closed");
    });
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    rt().block_on(async {
        let w = world(Arc::new(loyalty_core::SystemClock), |c| c.max_body_bytes = 64 * 1024).await;
        let (anna, phone) = w.member("anna.db").await;
        w.segment_of("vip", &[&phone]).await;
        let ok = json!({"id": "x1", "channel": "inapp", "kind": "service", "subject": "Hi", "members": [anna]});

        let cases: Vec<(Value, u16, &str)> = vec![
            (json!({"id": "x1", "channel": "inapp", "kind": "service", "subject": "Hi", "members": [anna, "mbr_nobody"]}), 404, "member_not_found"),
            (json!({"id": "x1", "channel": "inapp", "kind": "service", "subject": "Hi", "segment": "nobody-here"}), 404, "segment_not_found"),
            (json!({"id": "x1", "channel": "fax", "kind": "service", "subject": "Hi", "members": [anna]}), 400, "invalid_message"),
            (json!({"id": "x1", "channel": "inapp", "kind": "spam", "subject": "Hi", "members": [anna]}), 400, "invalid_message"),
            (json!({"id": "x1", "channel": "inapp", "subject": "Hi", "members": [anna]}), 400, "invalid_message"),
            (json!({"id": "x1", "channel": "inapp", "kind": "service", "subject": "Hi", "members": [anna], "segment": "vip"}), 400, "invalid_message"),
            (json!({"id": "x1", "channel": "inapp", "kind": "service", "subject": "Hi"}), 400, "invalid_message"),
            (json!({"id": "x1", "channel": "inapp", "kind": "service", "subject": "", "members": [anna]}), 400, "invalid_message"),
            (json!({"id": "x 1", "channel": "inapp", "kind": "service", "subject": "Hi", "members": [anna]}), 400, "invalid_message"),
            (json!({"id": "x1", "channel": "inapp", "kind": "service", "subject": "Hi", "body": "b".repeat(17 * 1024), "members": [anna]}), 400, "invalid_message"),
            (json!({"id": "x1", "channel": "inapp", "kind": "service", "subject": "Hi", "body": "b".repeat(70 * 1024), "members": [anna]}), 413, "payload_too_large"),
        ];
        for (body, status, code) in cases {
            let (s, v) = w.post_send(&body).await;
            assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "{body}");
            assert!(!v["error"]["message"].as_str().unwrap_or("").is_empty());
        }
        let (s, v) = w.raw("POST", "/v1/admin/messages", Some(&operator()), Some(b"{not json".to_vec())).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("malformed_body")));

        // Wrong or missing credentials, a device's among them, before anything is read.
        let creds = phone.credentials().unwrap();
        let device_token = device_authorization(&creds.device_id, &creds.device_secret);
        for token in [None, Some("Bearer wrong-token-0123456789"), Some(device_token.as_str())] {
            let (s, _) = w.raw("POST", "/v1/admin/messages", token, Some(ok.to_string().into_bytes())).await;
            assert_eq!(s, 401);
            let (s, _) = w.raw("GET", "/v1/admin/requests", token, None).await;
            assert_eq!(s, 401);
            let (s, _) = w.raw("POST", &format!("/v1/admin/requests/{anna}.req_1/close"), token, None).await;
            assert_eq!(s, 401);
        }

        // The one-member endpoint has no default kind either: a "BIG SALE" e-mail once went out
        // as a service message, past the member's consent.
        let path = format!("/v1/admin/members/{anna}/messages");
        let no_kind = json!({"id": "sale", "channel": "email", "subject": "BIG SALE"});
        let (s, v) = w.raw("POST", &path, Some(&operator()), Some(no_kind.to_string().into_bytes())).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("missing_message_kind")), "{v}");
        let mut direct = message("sale", "BIG SALE");
        direct.kind = None;
        assert_eq!(
            w.op.post_message(&anna, &direct).await.unwrap_err().code(),
            Some("missing_message_kind")
        );

        // Nothing of the above was recorded.
        assert!(w.op.deliveries(None, Some(&anna)).await.unwrap().is_empty());
        phone.sync().await.unwrap();
        assert!(inbox_ids(&phone).is_empty());

        // The same id for another message is a clash, and the first one stands.
        assert_eq!(w.post_send(&ok).await.0, 201);
        assert_eq!(w.post_send(&ok).await.0, 201, "a retry is fine");
        let mut other = ok.clone();
        other["subject"] = json!("Something else");
        let (s, v) = w.post_send(&other).await;
        assert_eq!((s, v["error"]["code"].as_str()), (409, Some("id_reused")));
        assert_eq!(w.op.deliveries(None, Some(&anna)).await.unwrap().len(), 1);
        // A delivery status the server does not know is refused, not an empty list that reads as
        // "nothing failed".
        let url = format!("/v1/admin/deliveries?member_id={anna}&status=lost");
        let (s, v) = w.raw("GET", &url, Some(&operator()), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("malformed_query")));
        let status = w.op.deliveries(None, Some(&anna)).await.unwrap()[0].status.clone();
        let other = if status == "refused" { "failed" } else { "refused" };
        for (filter, expected) in [(status.as_str(), 1), (other, 0)] {
            let url = format!("/v1/admin/deliveries?member_id={anna}&status={filter}");
            let (s, v) = w.raw("GET", &url, Some(&operator()), None).await;
            assert_eq!((s, v.as_array().map(Vec::len)), (200, Some(expected)), "{filter}: {v}");
        }

        // Requests: unknown, malformed handles, empty and oversized replies, bad statuses.
        let (s, v) = w.post_reply(&format!("{anna}.req_nope"), &json!({"body": "Hi"})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (404, Some("request_not_found")));
        let (s, v) = w.post_reply("no-dot", &json!({"body": "Hi"})).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_request_id")));
        let id = phone.open_request("question", "Parking?", "").unwrap();
        phone.sync().await.unwrap();
        for body in [json!({"body": " "}), json!({"body": "x".repeat(17 * 1024)}), json!({"body": "Hi", "author": ""})] {
            let (s, v) = w.post_reply(&format!("{anna}.{id}"), &body).await;
            assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_reply")));
        }
        let (s, _) = w.raw("GET", "/v1/admin/requests?status=lost", Some(&operator()), None).await;
        assert_eq!(s, 400);
        let open = w.op.requests(Some("open")).await.unwrap();
        assert_eq!((open.len(), open[0].entries.len()), (1, 0), "{open:?}");

        // A member-document request that breaks the schema is refused by the server, stored nowhere.
        phone
            .tamper(DocKind::Member, |doc| {
                loyalty_core::member::open_request(doc, "req_bad", "praise", "Great shop", "", 1).unwrap();
            })
            .unwrap();
        let report = phone.sync().await.unwrap();
        assert_eq!(report.rejected.len(), 1, "{report:?}");
        assert_eq!(report.rejected[0].0, DocKind::Member);
        assert_eq!(report.rejected[0].1.code, "invalid_document");
        let all = w.op.requests(None).await.unwrap();
        assert_eq!(all.len(), 1);
        assert!(!w.op.member(&anna).await.unwrap().member.requests.contains_key("req_bad"));
    });
}

/// The device checks a request before it records it, with no server at all.
#[test]
fn device_refuses_bad_requests_offline() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::open(dir.path().join("d.db")).unwrap();
    assert!(matches!(
        device.open_request("praise", "Hi", ""),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        device.open_request("question", "", ""),
        Err(Error::InvalidInput(_))
    ));
    let long = "x".repeat(loyalty_core::member::limits::MAX_REQUEST_BODY + 1);
    assert!(matches!(
        device.open_request("question", "Hi", &long),
        Err(Error::InvalidInput(_))
    ));
    assert!(device.requests().unwrap().is_empty());
    let id = device.open_request("question", "Hi", "").unwrap();
    assert!(matches!(
        device.add_followup("req_other", "more"),
        Err(Error::InvalidInput(_))
    ));
    device.add_followup(&id, "more").unwrap();
    assert_eq!(device.requests().unwrap()[0].entries.len(), 1);
}

/// Two instances on one database, each with its own outbound worker and adapter, share the
/// queue: both workers claim while the other is sending (leases, and on PostgreSQL `FOR UPDATE
/// SKIP LOCKED`), and every delivery is handed over exactly once between them.
#[test]
fn two_instances_share_the_outbound_queue_and_hand_each_delivery_over_once() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_800_000_000_000));
        let recorder = || {
            Arc::new(Recorder {
                pause: Duration::from_millis(20),
                ..Recorder::default()
            })
        };
        let (a_out, b_out) = (recorder(), recorder());
        let database = dir.path().join("server.db");
        let start = |outbound: Arc<Recorder>| {
            TestServer::start_with_outbound(
                database.clone(),
                "127.0.0.1:0",
                clock.clone(),
                outbound,
                |_| {},
            )
        };
        let a = start(a_out.clone()).await;
        let b = start(b_out.clone()).await;
        let op = a.operator();
        let mut members = Vec::new();
        for i in 0..16 {
            let store = dir.path().join(format!("p{i}.db"));
            let (member, phone) = member_with_device(&a.url, &op, &store).await;
            phone
                .set_preference("email", &format!("m{i}@example.com"))
                .unwrap();
            phone.sync().await.unwrap();
            members.push(member);
        }
        let to: Vec<&str> = members.iter().map(String::as_str).collect();
        // One campaign through each instance: each wakes its own worker, and both then work the
        // whole queue.
        a.operator()
            .send_message(&send("through-a", "service", "email", &to))
            .await
            .unwrap();
        b.operator()
            .send_message(&send("through-b", "service", "email", &to))
            .await
            .unwrap();
        let all = 2 * members.len();
        for _ in 0..6000 {
            let mut sent = 0;
            for message in ["through-a", "through-b"] {
                let list = op.deliveries(Some(message), None).await.unwrap();
                sent += list.iter().filter(|d| d.status == "handed_over").count();
            }
            if sent == all {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (from_a, from_b) = (a_out.sent(), b_out.sent());
        println!(
            "instance A handed over {}, B {}",
            from_a.len(),
            from_b.len()
        );
        let mut handed: Vec<(String, String)> = from_a
            .iter()
            .chain(&from_b)
            .map(|m| (m.message_id.clone(), m.member_id.clone()))
            .collect();
        assert_eq!(handed.len(), all, "every delivery once, none twice");
        handed.sort();
        handed.dedup();
        assert_eq!(handed.len(), all, "no delivery handed over twice");
        a.stop().await;
        b.stop().await;
    });
}
