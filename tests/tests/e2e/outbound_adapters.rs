//! Messages actually go out (issue 14 §5): the shipped outbound adapters against real receivers on
//! loopback. E-mail goes to a real SMTP server (aiosmtpd, Debian's `python3-aiosmtpd`) that
//! requires STARTTLS and AUTH, with a certificate from a private CA made here by `openssl`; SMS
//! goes to a real HTTP receiver of the signed webhook, which checks the signature with its own key.
//! Delivery states say what is known: handed over with the provider's reply, failed with the
//! provider's words, logged when no provider is configured, and a provider that is down loses
//! nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use loyalty_core::Device;
use loyalty_core::api::{DeliveryRecord, SendMessage, paths};
use loyalty_core::clock::{Clock, ManualClock};
use loyalty_server::client::OperatorClient;
use loyalty_server::outbound::settings::{OutboundSettings, Via};
use loyalty_server::outbound::smtp::SmtpSettings;
use loyalty_server::outbound::webhook::WebhookSettings;
use loyalty_tests::race::{Request, simultaneously};
use loyalty_tests::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-webhook";
const SMTP_LOGIN: &str = "loyalty";
const SMTP_PASSWORD: &str = "p@ss word";

fn send(id: &str, channel: &str, members: &[&str]) -> SendMessage {
    SendMessage {
        id: Some(id.into()),
        channel: channel.into(),
        kind: "service".into(),
        subject: format!("Subject of {id}"),
        body: format!("Body of {id}: grüße"),
        members: members.iter().map(|m| m.to_string()).collect(),
        segment: None,
    }
}

/// The deliveries of a message once none is queued any more.
async fn settled(op: &OperatorClient, message_id: &str) -> Vec<DeliveryRecord> {
    for _ in 0..3000 {
        let list = op.deliveries(Some(message_id), None).await.unwrap();
        if !list.is_empty() && list.iter().all(|d| d.status != "queued") {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("deliveries of {message_id} stayed queued (hang guard)");
}

/// Waits until the member's delivery of the message was attempted at least `attempts` times.
async fn attempted(
    op: &OperatorClient,
    message_id: &str,
    member: &str,
    attempts: i64,
) -> DeliveryRecord {
    for _ in 0..3000 {
        let list = op.deliveries(Some(message_id), Some(member)).await.unwrap();
        if let Some(d) = list.into_iter().find(|d| d.attempts >= attempts) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{message_id} to {member} was never attempted {attempts} times (hang guard)");
}

fn of<'a>(list: &'a [DeliveryRecord], member: &str) -> &'a DeliveryRecord {
    list.iter()
        .find(|d| d.member_id == member)
        .expect("a delivery")
}

/// A member whose phone gives `address` for the channel (the preference the server reads) and
/// consents to it.
async fn member(
    server: &TestServer,
    dir: &Path,
    name: &str,
    channel: &str,
    address: &str,
) -> (String, Device) {
    let (id, phone) = member_with_device(&server.url, &server.operator(), &dir.join(name)).await;
    let preference = match channel {
        "email" => "email",
        "sms" => "phone",
        _ => "push_token",
    };
    phone.set_preference(preference, address).unwrap();
    phone.set_consent(channel, true).unwrap();
    phone.sync().await.unwrap();
    (id, phone)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `openssl ARGS` in `dir`; keys and certificates for the receivers are made fresh per test.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

// ---- the SMTP server -------------------------------------------------------------------------

/// A private CA and a certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| openssl(dir, args);
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Loyalty test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

/// Debian's Python, which `python3-aiosmtpd` installs into (a `python3` earlier on the PATH, as
/// pyenv's, would not see it); any `python3` where there is no `/usr/bin/python3`.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Whether the SMTP server can run here; in CI (`LOYALTY_REQUIRE_SMTP=1`) it must.
fn smtp_available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("LOYALTY_REQUIRE_SMTP").is_some() {
        panic!("python3-aiosmtpd is required (LOYALTY_REQUIRE_SMTP is set)");
    }
    if !ok {
        eprintln!("skipped: no python3-aiosmtpd (scripts/test.sh installs it)");
    }
    ok
}

/// `tests/smtp/receiver.py`: STARTTLS and AUTH required, `bounce…` recipients refused.
struct SmtpServer {
    child: Child,
    mail: PathBuf,
}

impl SmtpServer {
    fn start(port: u16, dir: &Path, cert: &Path, key: &Path) -> Self {
        use std::io::BufRead;
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(&mail)
            .args([cert, key])
            .args([SMTP_LOGIN, SMTP_PASSWORD])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        Self { child, mail }
    }

    /// The messages it accepted, in order, as text.
    fn messages(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(&self.mail)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_settings(port: u16, ca: &Path) -> OutboundSettings {
    OutboundSettings {
        smtp: Some(SmtpSettings {
            url: format!("smtp://{SMTP_LOGIN}:p%40ss%20word@127.0.0.1:{port}"),
            from: "Bonus Club <club@shop.example>".into(),
            ca_file: Some(ca.to_path_buf()),
        }),
        ..Default::default()
    }
}

async fn server_with(dir: &Path, clock: Arc<dyn Clock>, settings: &OutboundSettings) -> TestServer {
    let routes = settings.build().expect("the outbound settings");
    TestServer::start_with_outbound(
        dir.join("server.db"),
        "127.0.0.1:0",
        clock,
        Arc::new(routes),
        |_| {},
    )
    .await
}

#[test]
fn email_is_handed_to_a_real_smtp_server_over_starttls_with_auth() {
    if !smtp_available() {
        return;
    }
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certificates(dir.path());
        let port = free_port();
        let smtp = SmtpServer::start(port, dir.path(), &cert, &key);
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_800_000_000_000));
        let server = server_with(dir.path(), clock, &smtp_settings(port, &ca)).await;
        let op = server.operator();
        let (anna, anna_phone) =
            member(&server, dir.path(), "anna", "email", "anna@example.com").await;
        let (ben, _) = member(
            &server,
            dir.path(),
            "ben",
            "email",
            "bounce-ben@example.com",
        )
        .await;

        op.send_message(&send("receipt", "email", &[&anna, &ben]))
            .await
            .unwrap();
        let list = settled(&op, "receipt").await;

        let handed = of(&list, &anna);
        assert_eq!(handed.status, "handed_over", "{handed:?}");
        let reply = handed.detail.clone().unwrap_or_default();
        assert!(
            reply.starts_with("250 ") && reply.contains("queued as Q1"),
            "{reply}"
        );
        let failed = of(&list, &ben);
        assert_eq!(
            (failed.status.as_str(), failed.reason.as_deref()),
            ("failed", Some("bad_address")),
            "{failed:?}"
        );
        assert!(
            failed.detail.as_deref().unwrap_or_default().contains("550"),
            "{failed:?}"
        );

        let mail = smtp.messages();
        assert_eq!(mail.len(), 1, "only Anna's e-mail was accepted");
        let text = &mail[0];
        for expected in [
            "X-Was-Tls: yes",
            "X-Envelope-To: anna@example.com",
            "From: \"Bonus Club\" <club@shop.example>",
            "To: anna@example.com",
            "Subject: Subject of receipt",
            &format!("Message-ID: <receipt.{anna}@shop.example>"),
        ] {
            assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
        }
        assert!(
            text.contains("Body of receipt: gr=C3=BC=C3=9Fe")
                || text.contains("Body of receipt: grüße"),
            "{text}"
        );

        // The member's app learns the state at its next sync.
        anna_phone.sync().await.unwrap();
        let message = &anna_phone.messages().unwrap()[0].message;
        assert_eq!(message.delivery.as_ref().unwrap().status, "handed_over");
        server.stop().await;
    });
}

#[test]
fn a_mail_server_that_is_down_loses_nothing() {
    if !smtp_available() {
        return;
    }
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certificates(dir.path());
        let port = free_port();
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let server = server_with(dir.path(), clock.clone(), &smtp_settings(port, &ca)).await;
        let op = server.operator();
        let (anna, _) = member(&server, dir.path(), "anna", "email", "anna@example.com").await;

        // Nothing listens yet: the delivery waits with the reason, and the connection's words.
        op.send_message(&send("notice", "email", &[&anna]))
            .await
            .unwrap();
        let waiting = attempted(&op, "notice", &anna, 1).await;
        assert_eq!(
            (waiting.status.as_str(), waiting.reason.as_deref()),
            ("queued", Some("provider_unavailable")),
            "{waiting:?}"
        );
        assert!(waiting.detail.is_some(), "{waiting:?}");

        // The mail server comes up; once the pause before the retry has passed, it goes out.
        let smtp = SmtpServer::start(port, dir.path(), &cert, &key);
        clock.advance(31_000);
        let list = settled(&op, "notice").await;
        assert_eq!(of(&list, &anna).status, "handed_over", "{list:?}");
        assert_eq!(of(&list, &anna).attempts, 2);
        assert_eq!(smtp.messages().len(), 1);
        server.stop().await;
    });
}

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
struct Receiver {
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
async fn webhook_server(dir: &Path) -> (Receiver, TestServer, Arc<ManualClock>) {
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
        attempted(&op, "pickup", &anna, 1).await;
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
        // Not the gateway: another secret, a stale or future timestamp, no signature at all.
        let other = "another secret of enough length, 32+";
        for (secret, at) in [(other, now), (SECRET, now - 301), (SECRET, now + 301)] {
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

// ---- push: FCM HTTP v1 and APNs --------------------------------------------------------------

/// Splits a JWT and checks its signature with `verify(signed_part, signature)`; the claims, or
/// `None` when it does not verify.
fn jwt_claims(
    token: &str,
    verify: impl Fn(&[u8], &[u8]) -> bool,
) -> Option<(serde_json::Value, serde_json::Value)> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    let signature = b64.decode(s).ok()?;
    if !verify(format!("{h}.{c}").as_bytes(), &signature) {
        return None;
    }
    let json = |p: &str| serde_json::from_slice(&b64.decode(p).ok()?).ok();
    Some((json(h)?, json(c)?))
}

/// What the push receivers saw: (platform, device token, title) per accepted push, and every
/// credential that did not verify.
#[derive(Clone, Default)]
struct PushLog {
    accepted: Arc<Mutex<Vec<(String, String, String)>>>,
    token_grants: Arc<Mutex<usize>>,
    refused_credentials: Arc<Mutex<Vec<String>>>,
}

/// A loopback stand-in for Google's token endpoint and FCM's `messages:send`, checking the grant's
/// RS256 signature with the service account's public key (PKCS#1 DER).
async fn fcm_receiver(public_key: Vec<u8>, log: PushLog) -> String {
    use axum::extract::Path as UrlPath;
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let audience = format!("{base}/token");
    let (grant_log, send_log) = (log.clone(), log);
    let app = axum::Router::new()
        .route(
            "/token",
            post(move |body: String| {
                let (key, log, audience) = (public_key.clone(), grant_log.clone(), audience.clone());
                async move {
                    let assertion = body.split('&').find_map(|kv| kv.strip_prefix("assertion=")).unwrap_or("");
                    let verify = |m: &[u8], s: &[u8]| {
                        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &key)
                            .verify(m, s)
                            .is_ok()
                    };
                    let good = body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
                        && jwt_claims(assertion, verify).is_some_and(|(h, c)| {
                            h["alg"] == "RS256"
                                && c["iss"] == "push@proj-1.iam.gserviceaccount.com"
                                && c["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
                                && c["aud"] == audience.as_str()
                        });
                    if !good {
                        log.refused_credentials.lock().unwrap().push("token grant".into());
                        return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_grant"}"#.to_string());
                    }
                    *log.token_grants.lock().unwrap() += 1;
                    (StatusCode::OK, r#"{"access_token":"at-1","expires_in":3599,"token_type":"Bearer"}"#.into())
                }
            }),
        )
        .route(
            "/v1/projects/{project}/messages:send",
            post(move |UrlPath(project): UrlPath<String>, headers: HeaderMap, body: String| {
                let log = send_log.clone();
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer at-1")
                        || project != "proj-1"
                    {
                        log.refused_credentials.lock().unwrap().push("fcm send".into());
                        return (StatusCode::UNAUTHORIZED, r#"{"error":{"status":"UNAUTHENTICATED"}}"#.to_string());
                    }
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let token = v["message"]["token"].as_str().unwrap_or("").to_string();
                    if token == "fcm-gone" {
                        return (
                            StatusCode::NOT_FOUND,
                            r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",
                               "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#
                                .to_string(),
                        );
                    }
                    let title = v["message"]["notification"]["title"].as_str().unwrap_or("").to_string();
                    let mut accepted = log.accepted.lock().unwrap();
                    accepted.push(("fcm".into(), token, title));
                    (StatusCode::OK, format!(r#"{{"name":"projects/proj-1/messages/{}"}}"#, accepted.len()))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// A loopback HTTP/2 stand-in for APNs, checking the ES256 provider token with the key's public
/// point, the topic and the push type.
async fn apns_receiver(public_point: Vec<u8>, log: PushLog) -> String {
    use axum::extract::Path as UrlPath;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/3/device/{token}",
        axum::routing::post(
            move |UrlPath(token): UrlPath<String>,
                  version: axum::http::Version,
                  headers: HeaderMap,
                  body: String| {
                let (key, log) = (public_point.clone(), log.clone());
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let bearer = header("authorization");
                    let verify = |m: &[u8], s: &[u8]| {
                        ring::signature::UnparsedPublicKey::new(
                            &ring::signature::ECDSA_P256_SHA256_FIXED,
                            &key,
                        )
                        .verify(m, s)
                        .is_ok()
                    };
                    let good = version == axum::http::Version::HTTP_2
                        && header("apns-topic") == "com.shop.app"
                        && header("apns-push-type") == "alert"
                        && jwt_claims(
                            bearer
                                .strip_prefix("Bearer ")
                                .or(bearer.strip_prefix("bearer "))
                                .unwrap_or(""),
                            verify,
                        )
                        .is_some_and(|(h, c)| {
                            h["alg"] == "ES256"
                                && h["kid"] == "KEY1234567"
                                && c["iss"] == "TEAM123456"
                        });
                    let mut reply = axum::http::HeaderMap::new();
                    if !good {
                        log.refused_credentials
                            .lock()
                            .unwrap()
                            .push(format!("apns {version:?}"));
                        return (
                            StatusCode::FORBIDDEN,
                            reply,
                            r#"{"reason":"InvalidProviderToken"}"#.to_string(),
                        );
                    }
                    if token == "0bad" {
                        return (
                            StatusCode::BAD_REQUEST,
                            reply,
                            r#"{"reason":"BadDeviceToken"}"#.to_string(),
                        );
                    }
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let title = v["aps"]["alert"]["title"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let mut accepted = log.accepted.lock().unwrap();
                    accepted.push(("apns".into(), token, title));
                    reply.insert(
                        "apns-id",
                        format!("apns-{}", accepted.len()).parse().unwrap(),
                    );
                    (StatusCode::OK, reply, String::new())
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// An RSA service account key (PKCS#8 PEM, PKCS#1 public DER) and an APNs `.p8` key (PKCS#8 PEM,
/// uncompressed public point), made by `openssl`.
fn push_keys(dir: &Path) -> (String, Vec<u8>, PathBuf, Vec<u8>) {
    let run = |args: &[&str]| openssl(dir, args);
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "sa.pem",
    ]);
    run(&[
        "rsa",
        "-in",
        "sa.pem",
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        "sa.pub.der",
    ]);
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "apns.p8",
    ]);
    run(&[
        "pkey",
        "-in",
        "apns.p8",
        "-pubout",
        "-outform",
        "DER",
        "-out",
        "apns.pub.der",
    ]);
    let spki = std::fs::read(dir.join("apns.pub.der")).unwrap();
    (
        std::fs::read_to_string(dir.join("sa.pem")).unwrap(),
        std::fs::read(dir.join("sa.pub.der")).unwrap(),
        dir.join("apns.p8"),
        spki[spki.len() - 65..].to_vec(),
    )
}

#[test]
fn push_goes_to_fcm_and_to_apns_by_the_tokens_platform() {
    use loyalty_server::outbound::apns::ApnsSettings;
    use loyalty_server::outbound::fcm::FcmSettings;
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (sa_pem, sa_public, p8, apns_public) = push_keys(dir.path());
        let log = PushLog::default();
        let fcm_base = fcm_receiver(sa_public, log.clone()).await;
        let apns_base = apns_receiver(apns_public, log.clone()).await;
        let account = serde_json::json!({
            "type": "service_account", "project_id": "proj-1",
            "client_email": "push@proj-1.iam.gserviceaccount.com",
            "private_key": sa_pem, "token_uri": format!("{fcm_base}/token"),
        });
        let account_file = dir.path().join("service-account.json");
        std::fs::write(&account_file, account.to_string()).unwrap();
        let settings = OutboundSettings {
            fcm: Some(FcmSettings {
                service_account: account_file,
                endpoint: fcm_base,
            }),
            apns: Some(ApnsSettings {
                key_file: p8,
                key_id: "KEY1234567".into(),
                team_id: "TEAM123456".into(),
                topic: "com.shop.app".into(),
                endpoint: apns_base,
            }),
            ..Default::default()
        };
        assert_eq!(
            settings.via(loyalty_server::outbound::OutboundChannel::Push),
            Via::Platform
        );
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let server = server_with(dir.path(), clock, &settings).await;
        let op = server.operator();
        let (anna, _) = member(&server, dir.path(), "anna", "push", "fcm:tok-anna").await;
        let (ben, _) = member(&server, dir.path(), "ben", "push", "fcm-gone").await;
        let (cleo, _) = member(&server, dir.path(), "cleo", "push", "apns:00aa11ff").await;
        let (dan, _) = member(&server, dir.path(), "dan", "push", "apns:0bad").await;

        op.send_message(&send("ready", "push", &[&anna, &ben, &cleo, &dan]))
            .await
            .unwrap();
        let list = settled(&op, "ready").await;
        let state = |m: &str| {
            let d = of(&list, m);
            (
                d.status.clone(),
                d.reason.clone().unwrap_or_default(),
                d.detail.clone().unwrap_or_default(),
            )
        };
        assert_eq!(state(&anna).0, "handed_over", "{list:?}");
        assert!(
            state(&anna).2.starts_with("projects/proj-1/messages/"),
            "{list:?}"
        );
        assert_eq!(
            (state(&cleo).0, state(&cleo).2.starts_with("apns-")),
            ("handed_over".into(), true),
            "{:?}",
            state(&cleo)
        );
        for gone in [&ben, &dan] {
            assert_eq!(
                (state(gone).0, state(gone).1),
                ("failed".into(), "bad_address".into()),
                "{list:?}"
            );
        }
        assert!(state(&ben).2.contains("UNREGISTERED") && state(&dan).2.contains("BadDeviceToken"));

        let mut accepted = log.accepted.lock().unwrap().clone();
        accepted.sort();
        let title = "Subject of ready".to_string();
        assert_eq!(
            accepted,
            [
                ("apns".to_string(), "00aa11ff".to_string(), title.clone()),
                ("fcm".to_string(), "tok-anna".to_string(), title),
            ]
        );
        assert!(log.refused_credentials.lock().unwrap().is_empty());
        assert_eq!(
            *log.token_grants.lock().unwrap(),
            1,
            "the access token is kept, not fetched per push"
        );
        server.stop().await;
    });
}
