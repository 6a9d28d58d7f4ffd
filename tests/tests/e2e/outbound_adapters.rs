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
use loyalty_core::api::{DeliveryRecord, SendMessage};
use loyalty_core::clock::{Clock, ManualClock};
use loyalty_server::client::OperatorClient;
use loyalty_server::outbound::settings::{OutboundSettings, Via};
use loyalty_server::outbound::smtp::SmtpSettings;
use loyalty_server::outbound::webhook::WebhookSettings;
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

// ---- the SMTP server -------------------------------------------------------------------------

/// A private CA and a certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
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

/// Whether the SMTP server can run here; in CI (`LOYALTY_REQUIRE_SMTP=1`) it must.
fn smtp_available() -> bool {
    let ok = Command::new("python3")
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
        let mut child = Command::new("python3")
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

#[test]
fn sms_goes_to_the_signed_webhook_which_is_retried_until_it_accepts() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
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
        let server = server_with(dir.path(), clock.clone(), &settings).await;
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
        assert!(!signed_with(
            "another secret of enough length, 32+",
            "1",
            b"{}",
            "v1=00"
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
                "e-mail via SMTP needs --smtp-url",
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
