//! The gateway's signed delivery receipts (`POST /v1/outbound/receipts`): a handed-over delivery
//! becomes delivered or failed once; forged, stale and malformed receipts are refused.

use super::webhook::webhook_server;
use super::*;
use loyalty_server::outbound::webhook::RECEIPT_MAX_AGE_S;

/// A receipt as the gateway posts it: signed at `at` (Unix seconds) with `secret`, HMAC-SHA256 of
/// `at.body`, as the receiver above checks the server's own requests.
async fn post_receipt(
    server: &TestServer,
    secret: &str,
    at: u64,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let answer = reqwest::Client::new()
        .post(format!("{}{}", server.url, paths::OUTBOUND_RECEIPTS))
        .header("Loyalty-Timestamp", at.to_string())
        .header("Loyalty-Signature", sign(secret, at, body))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    (status, answer.json().await.unwrap_or_default())
}

/// `Loyalty-Signature` for `body` at `at`, as the gateway computes it.
fn sign(secret: &str, at: u64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{at}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn receipt_body(message: &str, member: &str, status: &str, reason: Option<&str>) -> String {
    let mut body =
        serde_json::json!({"message_id": message, "member_id": member, "status": status});
    if let Some(reason) = reason {
        body["reason"] = reason.into();
        body["detail"] = "550 5.1.1 the number is not in service".into();
    }
    body.to_string()
}

#[test]
fn the_gateways_signed_receipts_settle_what_it_accepted() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (_receiver, server, clock) = webhook_server(dir.path()).await;
        let op = server.operator();
        let (anna, anna_phone) = member(&server, dir.path(), "anna", "sms", "+4915112345").await;
        let (ben, _) = member(&server, dir.path(), "ben", "sms", "+4915100000").await;
        let (cleo, _) = member(&server, dir.path(), "cleo", "sms", "+490000").await;
        op.send_message(&send("pickup", "sms", &[&anna, &ben, &cleo]))
            .await
            .unwrap();
        // Every first attempt before the clock moves: one made after it would be retried 30 s
        // past the moved clock, which never comes.
        for who in [&anna, &ben, &cleo] {
            attempted(&op, "pickup", who, 1).await;
        }
        clock.advance(31_000);
        let list = settled(&op, "pickup").await;
        assert_eq!(of(&list, &anna).status, "handed_over", "{list:?}");
        assert_eq!(of(&list, &cleo).status, "failed", "{list:?}");
        let now = unix_now();

        // Anna's arrived: delivered, once; a retry of the receipt changes nothing.
        let delivered = receipt_body("pickup", &anna, "delivered", None);
        let (status, answer) = post_receipt(&server, SECRET, now, &delivered).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            answer,
            serde_json::json!({"status": "delivered", "changed": true})
        );
        let (status, answer) = post_receipt(&server, SECRET, now, &delivered).await;
        assert_eq!(
            (status, answer["changed"].as_bool()),
            (StatusCode::OK, Some(false))
        );
        // Ben's bounced: failed with the gateway's reason and words.
        let bounced = receipt_body("pickup", &ben, "failed", Some("unreachable"));
        let (status, _) = post_receipt(&server, SECRET, now, &bounced).await;
        assert_eq!(status, StatusCode::OK);
        let list = op.deliveries(Some("pickup"), None).await.unwrap();
        let (a, b) = (of(&list, &anna), of(&list, &ben));
        assert_eq!(
            (
                a.status.as_str(),
                a.detail.as_deref().is_some_and(|d| d.starts_with("gw-"))
            ),
            ("delivered", true),
            "the gateway's reference is kept: {a:?}"
        );
        assert_eq!(
            (b.status.as_str(), b.reason.as_deref(), b.detail.as_deref()),
            (
                "failed",
                Some("unreachable"),
                Some("550 5.1.1 the number is not in service")
            )
        );
        let report = op
            .deliveries_report(&[("message_id", "pickup".to_string())])
            .await
            .unwrap();
        let count = |status: &str| {
            report
                .counts
                .iter()
                .filter(|c| c.status == status)
                .map(|c| c.count)
                .sum::<i64>()
        };
        assert_eq!((count("delivered"), count("failed")), (1, 2), "{report:?}");
        // The member's app learns it at its next sync.
        anna_phone.sync().await.unwrap();
        let message = &anna_phone.messages().unwrap()[0].message;
        assert_eq!(message.delivery.as_ref().unwrap().status, "delivered");

        // Refused: what the gateway never accepted, what does not exist, a body out of shape.
        let refusal =
            |answer: &serde_json::Value| answer["error"]["code"].as_str().unwrap_or("").to_string();
        let cases = [
            (
                receipt_body("pickup", &cleo, "delivered", None),
                StatusCode::CONFLICT,
                "delivery_not_handed_over",
            ),
            (
                receipt_body("nope", &anna, "delivered", None),
                StatusCode::NOT_FOUND,
                "delivery_not_found",
            ),
            (
                receipt_body("pickup", &anna, "lost", None),
                StatusCode::BAD_REQUEST,
                "invalid_receipt",
            ),
            ("{".to_string(), StatusCode::BAD_REQUEST, "invalid_receipt"),
        ];
        for (body, status, code) in cases {
            let (got, answer) = post_receipt(&server, SECRET, now, &body).await;
            assert_eq!((got, refusal(&answer).as_str()), (status, code), "{body}");
        }
        // Not the gateway: another secret, a stale or future timestamp, no signature at all. The
        // clock is read again, and the timestamps are a minute past the tolerance either way, so
        // the seconds this test has taken so far cannot bring the future one back inside it.
        let other = "another secret of enough length, 32+";
        let now = unix_now();
        let off = RECEIPT_MAX_AGE_S + 60;
        for (secret, at) in [(other, now), (SECRET, now - off), (SECRET, now + off)] {
            let (got, answer) = post_receipt(&server, secret, at, &delivered).await;
            assert_eq!(
                (got, refusal(&answer).as_str()),
                (StatusCode::UNAUTHORIZED, "unauthorized")
            );
        }
        let unsigned = reqwest::Client::new()
            .post(format!("{}{}", server.url, paths::OUTBOUND_RECEIPTS))
            .body(delivered.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status().as_u16(), 401);
        let list = op.deliveries(Some("pickup"), Some(&anna)).await.unwrap();
        assert_eq!(list[0].status, "delivered", "nothing unsigned changed it");

        // Two different receipts for one delivery at the same moment: one decides, the other is
        // told what it decided.
        op.send_message(&send("second", "sms", &[&anna]))
            .await
            .unwrap();
        attempted(&op, "second", &anna, 1).await;
        clock.advance(31_000);
        settled(&op, "second").await;
        let now = unix_now();
        let raced: Vec<Request> = [
            receipt_body("second", &anna, "delivered", None),
            receipt_body("second", &anna, "failed", Some("unreachable")),
        ]
        .iter()
        .map(|body| Request {
            addr: server.addr,
            method: "POST",
            path: paths::OUTBOUND_RECEIPTS.into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("loyalty-timestamp".into(), now.to_string()),
                ("loyalty-signature".into(), sign(SECRET, now, body)),
            ],
            body: body.clone().into_bytes(),
        })
        .collect();
        let answers = simultaneously(&raced).await.unwrap();
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert!(
            statuses.contains(&200) && statuses.contains(&409),
            "{answers:?}"
        );
        let winner = if answers[0].status == 200 {
            "delivered"
        } else {
            "failed"
        };
        let list = op.deliveries(Some("second"), Some(&anna)).await.unwrap();
        assert_eq!(list[0].status, winner, "{answers:?}");
        let loser = answers.iter().find(|a| a.status == 409).unwrap();
        assert_eq!(
            loser.error_code().as_deref(),
            Some("delivery_not_handed_over")
        );
        server.stop().await;

        // A server with no webhook takes no receipts.
        let plain_dir = tempfile::tempdir().unwrap();
        let plain = TestServer::start(plain_dir.path()).await;
        let (got, answer) = post_receipt(&plain, SECRET, now, &delivered).await;
        assert_eq!(
            (got, refusal(&answer).as_str()),
            (StatusCode::NOT_FOUND, "receipts_not_configured")
        );
        plain.stop().await;
    });
}
