//! SMS through the signed webhook to a real HTTP receiver that checks every signature: retried
//! until it accepts, a bad address final; and the server process configured by flags.

use super::*;

// ---- the webhook receiver --------------------------------------------------------------------

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    idempotency_key: String,
    payload: serde_json::Value,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// A real HTTP receiver of the webhook: it checks every signature with its own key (and the
/// timestamp's age), answers 503 to a delivery's first attempt and 202 after, and 422
/// `bad_address` to the number `+490000`.
#[derive(Clone, Default)]
pub(super) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    bad_signatures: Arc<Mutex<usize>>,
}

impl Receiver {
    async fn start(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let me = self.clone();
                async move { me.answer(&headers, &body) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn answer(&self, headers: &HeaderMap, body: &[u8]) -> (StatusCode, String) {
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let timestamp = header("loyalty-timestamp");
        let age = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .abs_diff(timestamp.parse().unwrap_or(0));
        if !signed_with(SECRET, &timestamp, body, &header("loyalty-signature")) || age > 300 {
            *self.bad_signatures.lock().unwrap() += 1;
            return (StatusCode::UNAUTHORIZED, "bad signature".into());
        }
        let payload: serde_json::Value = serde_json::from_slice(body).unwrap();
        let key = header("idempotency-key");
        let mut got = self.got.lock().unwrap();
        let first = !got.iter().any(|r| r.idempotency_key == key);
        got.push(Received {
            idempotency_key: key,
            payload: payload.clone(),
            timestamp: timestamp.clone(),
            signature: header("loyalty-signature"),
            body: body.to_vec(),
        });
        if payload["address"] == "+490000" {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                r#"{"reason":"bad_address"}"#.into(),
            )
        } else if first {
            (StatusCode::SERVICE_UNAVAILABLE, "gateway warming up".into())
        } else {
            (
                StatusCode::ACCEPTED,
                format!(r#"{{"reference":"gw-{}"}}"#, got.len()),
            )
        }
    }
}

/// The receiver's own check of `Loyalty-Signature`: HMAC-SHA256 of `timestamp.body`.
fn signed_with(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = timestamp.as_bytes().to_vec();
    message.push(b'.');
    message.extend_from_slice(body);
    let Some(hex) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    ring::hmac::verify(&key, &message, &tag).is_ok()
}

/// A server whose SMS goes to a real receiver of the signed webhook (push only logged), on a
/// manual clock.
pub(super) async fn webhook_server(dir: &Path) -> (Receiver, TestServer, Arc<ManualClock>) {
    let receiver = Receiver::default();
    let url = receiver.clone().start().await;
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let settings = OutboundSettings {
        push: Some(Via::Log),
        webhook: Some(WebhookSettings {
            url,
            secret: SECRET.into(),
        }),
        ..Default::default()
    };
    let server = server_with(dir, clock.clone(), &settings).await;
    (receiver, server, clock)
}

#[test]
fn sms_goes_to_the_signed_webhook_which_is_retried_until_it_accepts() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (receiver, server, clock) = webhook_server(dir.path()).await;
        let op = server.operator();
        let (anna, _) = member(&server, dir.path(), "anna", "sms", "+4915112345").await;
        let (ben, _) = member(&server, dir.path(), "ben", "sms", "+490000").await;

        op.send_message(&send("pickup", "sms", &[&anna, &ben]))
            .await
            .unwrap();
        let waiting = attempted(&op, "pickup", &anna, 1).await;
        assert_eq!(
            (
                waiting.status.as_str(),
                waiting.reason.as_deref(),
                waiting.detail.as_deref()
            ),
            (
                "queued",
                Some("provider_unavailable"),
                Some("HTTP 503: gateway warming up")
            )
        );
        clock.advance(31_000);
        let list = settled(&op, "pickup").await;
        let handed = of(&list, &anna);
        assert_eq!(
            (handed.status.as_str(), handed.attempts),
            ("handed_over", 2),
            "{handed:?}"
        );
        assert!(
            handed
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with("gw-")),
            "{handed:?}"
        );
        let refused = of(&list, &ben);
        assert_eq!(
            (refused.status.as_str(), refused.reason.as_deref()),
            ("failed", Some("bad_address"))
        );

        // Both attempts at Anna's delivery carried the same key, valid signatures and the payload.
        let got = receiver.got.lock().unwrap().clone();
        assert_eq!(*receiver.bad_signatures.lock().unwrap(), 0);
        let annas: Vec<_> = got
            .iter()
            .filter(|r| r.payload["member_id"] == anna.as_str())
            .collect();
        assert_eq!(annas.len(), 2, "{got:?}");
        assert_eq!(annas[0].idempotency_key, format!("pickup.{anna}"));
        assert_eq!(annas[0].idempotency_key, annas[1].idempotency_key);
        assert_eq!(
            (
                annas[0].payload["attempt"].as_i64(),
                annas[1].payload["attempt"].as_i64()
            ),
            (Some(0), Some(1))
        );
        let p = &annas[1].payload;
        assert_eq!(
            (
                p["channel"].as_str(),
                p["address"].as_str(),
                p["subject"].as_str(),
                p["kind"].as_str()
            ),
            (
                Some("sms"),
                Some("+4915112345"),
                Some("Subject of pickup"),
                Some("service")
            )
        );
        // The signature binds the secret, the timestamp and the body: the request the receiver
        // accepted fails the check under another secret, another timestamp or one changed byte.
        let sent = annas[1];
        assert!(signed_with(
            SECRET,
            &sent.timestamp,
            &sent.body,
            &sent.signature
        ));
        let other_secret = "another secret of enough length, 32+";
        assert!(!signed_with(
            other_secret,
            &sent.timestamp,
            &sent.body,
            &sent.signature
        ));
        let later = (sent.timestamp.parse::<u64>().unwrap() + 1).to_string();
        assert!(!signed_with(SECRET, &later, &sent.body, &sent.signature));
        let mut tampered = sent.body.clone();
        tampered[0] ^= 1;
        assert!(!signed_with(
            SECRET,
            &sent.timestamp,
            &tampered,
            &sent.signature
        ));

        // Push is left on the log: its deliveries say so and never claim to be sent.
        let (cleo, _) = member(&server, dir.path(), "cleo", "push", "token-cleo").await;
        op.send_message(&send("push-1", "push", &[&cleo]))
            .await
            .unwrap();
        let list = settled(&op, "push-1").await;
        assert_eq!(of(&list, &cleo).status, "logged", "{list:?}");
        server.stop().await;
    });
}

#[test]
fn the_server_process_sends_through_the_configured_webhook_and_refuses_bad_settings() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::default();
        let url = receiver.clone().start().await;
        let database = dir.path().join("server.db");
        let server = ServerProcess::start_with_args(
            &database,
            "127.0.0.1:0",
            &[
                "--sms-via",
                "webhook",
                "--webhook-url",
                &url,
                "--webhook-secret",
                SECRET,
            ],
        );
        let op = server.operator();
        let (anna, phone) = member_with_device(&server.url, &op, &dir.path().join("anna")).await;
        phone.set_preference("phone", "+4915112345").unwrap();
        phone.sync().await.unwrap();
        op.send_message(&send("hello", "sms", &[&anna]))
            .await
            .unwrap();
        // The receiver answers 503 first; the real clock's first retry is 30 s away, so one
        // attempt is what this test waits for: it reached the receiver, signed.
        let waiting = attempted(&op, "hello", &anna, 1).await;
        assert_eq!(
            waiting.detail.as_deref(),
            Some("HTTP 503: gateway warming up")
        );
        assert_eq!(receiver.got.lock().unwrap().len(), 1);
        assert_eq!(*receiver.bad_signatures.lock().unwrap(), 0);
        drop(server);

        for (args, expected) in [
            (
                vec!["--email-via", "smtp"],
                "email via smtp needs --smtp-url",
            ),
            (
                vec!["--smtp-url", "smtp://mail.example"],
                "--smtp-url and --smtp-from go together",
            ),
            (
                vec![
                    "--webhook-url",
                    "http://gw.example/hook",
                    "--webhook-secret",
                    SECRET,
                ],
                "loopback address only",
            ),
            (
                vec!["--webhook-url", &url, "--webhook-secret", "short"],
                "at least 32 bytes",
            ),
            (
                vec![
                    "--sms-via",
                    "smtp",
                    "--smtp-url",
                    "smtp://m.example",
                    "--smtp-from",
                    "a@b.example",
                ],
                "SMTP carries e-mail only",
            ),
        ] {
            // `timeout`: a server that wrongly starts fails the test instead of hanging it.
            let out = Command::new("timeout")
                .arg("60")
                .arg(loyalty_bin())
                .args(["server", "--listen", "127.0.0.1:0", "--database"])
                .arg(&database)
                .args(&args)
                .env("LOYALTY_OPERATOR_TOKEN", OPERATOR_TOKEN)
                .env("LOYALTY_TILL_TOKEN", TILL_TOKEN)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} started");
            assert!(stderr.contains(expected), "{args:?}: {stderr}");
            assert!(
                !stderr.contains(SECRET),
                "the secret is never echoed: {stderr}"
            );
        }
    });
}
