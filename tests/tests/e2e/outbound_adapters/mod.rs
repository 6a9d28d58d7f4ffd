//! Messages actually go out (issue 14 §5): the shipped outbound adapters against real receivers on
//! loopback. E-mail goes to a real SMTP server (aiosmtpd, Debian's `python3-aiosmtpd`) that
//! requires STARTTLS and AUTH, with a certificate from a private CA made here by `openssl`; SMS
//! goes to a real HTTP receiver of the signed webhook, which checks the signature with its own key.
//! Delivery states say what is known: handed over with the provider's reply, failed with the
//! provider's words, logged when no provider is configured, confirmed or failed by the provider's
//! signed receipt, and a provider that is down loses nothing. One file per provider: `smtp`,
//! `webhook`, `receipts`, `push`; this one holds what they share.

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

mod push;
mod receipts;
mod smtp;
mod webhook;

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
