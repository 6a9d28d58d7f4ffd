//! The HTTP edge under hostile and unlucky clients, over real sockets on loopback: credentials are
//! checked before a body is read, slow clients are closed, the connection and request limits hold,
//! guessing is rate-limited per address, long polls are limited per device and answered at once
//! at shutdown. No assertion is on how fast: each waits for an outcome under a generous timeout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use loyalty_core::SystemClock;
use loyalty_core::api::{ChangesResponse, device_authorization};
use loyalty_core::store::Credentials;
use loyalty_tests::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Far longer than any outcome here should take, so a slow shared machine does not fail a test;
/// far shorter than the 60 s a long poll or an unguarded slow client would hold.
const PATIENCE: Duration = Duration::from_secs(30);

fn local(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

async fn start(
    configure: impl FnOnce(&mut loyalty_server::Config),
) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(
        dir.path().join("server.db"),
        "127.0.0.1:0",
        Arc::new(SystemClock),
        configure,
    )
    .await;
    (dir, server)
}

/// A connection to the server from `source` (any 127.0.0.x is this machine).
async fn connect(addr: SocketAddr, source: Ipv4Addr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Everything the server sends until it closes the connection (end of stream or reset).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the server must close the connection");
    String::from_utf8_lossy(&got).into_owned()
}

/// One whole answer on a kept-alive connection (headers, and a body of `Content-Length`).
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before a whole answer: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("an answer");
    String::from_utf8_lossy(&got).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// Status, error code and `Retry-After` of a reqwest answer whose body is our JSON error.
async fn refusal(response: reqwest::Response) -> (u16, String, Option<u64>) {
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: Value = response.json().await.expect("a JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_string();
    (status, code, retry)
}

fn client_from(source: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source))
        .build()
        .unwrap()
}

async fn phone(server: &TestServer, dir: &tempfile::TempDir, name: &str) -> Credentials {
    let (_, device) =
        member_with_device(&server.url, &server.operator(), &dir.path().join(name)).await;
    device.credentials().expect("enrolled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_refused_before_a_large_body_is_sent() {
    let (dir, server) = start(|_| {}).await;
    let phone = phone(&server, &dir, "p.db").await;
    // 1 MiB - 1 byte: under the body limit, so only the credentials can stop it early.
    let length = 1024 * 1024 - 1;
    let heads = [
        format!(
            "POST /v1/members/{}/sync HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n",
            phone.member_id,
            device_authorization(&phone.device_id, "0".repeat(64).as_str())
        ),
        "POST /v1/till/purchases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-the-till-token\r\nX-Till-Id: t1\r\nContent-Type: application/json\r\n".to_string(),
        "POST /v1/admin/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-the-operator-token\r\nContent-Type: application/json\r\n".to_string(),
        // No credentials at all.
        "POST /v1/admin/members HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".to_string(),
    ];
    // Many at once, as the attack did: each is answered though none sends its body.
    let mut streams = Vec::new();
    for head in heads.iter().cycle().take(40) {
        let mut s = connect(server.addr, local(1)).await;
        let request = format!("{head}Content-Length: {length}\r\n\r\n{{\"a\":");
        s.write_all(request.as_bytes()).await.unwrap();
        streams.push(s);
    }
    for mut s in streams {
        let answer = read_until_closed(&mut s).await;
        assert_eq!(status_of(&answer), 401, "{answer}");
        assert!(answer.contains("\"unauthorized\""), "{answer}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_slow_bodies_are_closed() {
    let (_dir, server) = start(|c| {
        c.edge.header_read_timeout = Duration::from_secs(1);
        c.edge.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut slow_heads = Vec::new();
    for _ in 0..40 {
        let mut s = connect(server.addr, local(1)).await;
        s.write_all(b"POST /v1/admin/mem").await.unwrap();
        slow_heads.push(s);
    }
    let mut slow_bodies = Vec::new();
    for _ in 0..20 {
        let mut s = connect(server.addr, local(1)).await;
        let head = format!(
            "POST /v1/admin/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"ext"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        slow_bodies.push(s);
    }
    for mut s in slow_heads {
        // Closed without an answer: no request ever reached a handler.
        let answer = read_until_closed(&mut s).await;
        assert!(answer.is_empty(), "{answer}");
    }
    for mut s in slow_bodies {
        let answer = read_until_closed(&mut s).await;
        assert_eq!(status_of(&answer), 408, "{answer}");
        assert!(answer.contains("\"request_timeout\""), "{answer}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_under_the_pause_limit_still_meets_the_request_timeout() {
    let (_dir, server) = start(|c| {
        c.edge.body_read_timeout = Duration::from_secs(2);
        c.edge.request_timeout = Duration::from_secs(3);
    })
    .await;
    let mut s = connect(server.addr, local(1)).await;
    let head = format!(
        "POST /v1/admin/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = s.into_split();
    // One byte every 200 ms: never a pause the body timeout would catch.
    let trickle = tokio::spawn(async move {
        while writer.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, reader.read_to_end(&mut got)).await;
    trickle.abort();
    assert!(read.is_ok(), "the server must end a trickled request");
    let answer = String::from_utf8_lossy(&got);
    assert_eq!(status_of(&answer), 408, "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_limit_a_connection_waits_until_one_closes() {
    let (_dir, server) = start(|c| {
        c.edge.max_connections = 2;
        c.edge.header_read_timeout = Duration::from_secs(120);
    })
    .await;
    let health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect(server.addr, local(1)).await;
        s.write_all(health).await.unwrap();
        assert_eq!(status_of(&read_answer(&mut s).await), 200);
        held.push(s);
    }
    // The kernel completes the handshake; the server does not take the connection yet.
    let mut third = connect(server.addr, local(1)).await;
    third.write_all(health).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut buf = [0u8; 64];
    assert!(
        matches!(third.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a third connection must not be served while two are open"
    );
    drop(held.pop());
    assert_eq!(status_of(&read_answer(&mut third).await), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_limit_are_shed_with_retry_after() {
    let (_dir, server) = start(|c| {
        c.edge.max_in_flight = 1;
        c.edge.body_read_timeout = Duration::from_secs(120);
        c.edge.request_timeout = Duration::from_secs(120);
    })
    .await;
    // Holds the one slot: its body is not finished.
    let mut holder = connect(server.addr, local(1)).await;
    let head = format!(
        "POST /v1/admin/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{"
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    let op = server.operator();
    // Until the holder has its slot, a request may still get through; then every one is shed.
    // On a loaded machine the holder may itself arrive while one of these holds the slot and be
    // shed (an answer on its socket): then it holds on again with a new connection.
    let mut shed = None;
    for _ in 0..200 {
        match op.create_member(None).await {
            Err(loyalty_server::client::OperatorError::Refused { status, code, .. }) => {
                shed = Some((status, code));
                break;
            }
            Ok(_) => {
                let mut buf = [0u8; 256];
                if !matches!(holder.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                {
                    holder = connect(server.addr, local(1)).await;
                    holder.write_all(head.as_bytes()).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(shed, Some((503, "overloaded".to_string())));
    let response = reqwest::Client::new()
        .post(format!("{}/v1/admin/members", server.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, code, retry) = refusal(response).await;
    assert_eq!((status, code.as_str()), (503, "overloaded"));
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After is required");
    // The holder finishes; its request was served, and the slot is free again.
    holder.write_all(b"}").await.unwrap();
    assert_eq!(status_of(&read_answer(&mut holder).await), 201);
    op.create_member(None).await.expect("served again");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_code_guesses_beyond_the_limit_get_429_and_another_address_still_enrolls() {
    let (_dir, server) = start(|c| c.edge.enroll_per_minute = 5).await;
    let member = server.operator().create_member(None).await.unwrap();
    let enroll = |client: reqwest::Client, code: String| {
        let url = format!("{}/v1/enroll", server.url);
        async move {
            client
                .post(url)
                .json(&serde_json::json!({
                    "activation_code": code,
                    "device_name": "guesser",
                    "public_key": public_key(),
                }))
                .send()
                .await
                .unwrap()
        }
    };
    let guesser = client_from(local(1));
    for i in 0..5 {
        let (status, code, _) =
            refusal(enroll(guesser.clone(), format!("AAAA-BBBB-CC{i:02}")).await).await;
        assert_eq!((status, code.as_str()), (404, "activation_code_not_found"));
    }
    let (status, code, retry) =
        refusal(enroll(guesser.clone(), "AAAA-BBBB-CC99".into()).await).await;
    assert_eq!((status, code.as_str()), (429, "too_many_attempts"));
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After is required");
    // Every attempt counts, so even the right code waits from this address...
    let (status, _, _) = refusal(enroll(guesser, member.activation_code.clone()).await).await;
    assert_eq!(status, 429);
    // ...and the member enrolls from their own.
    let answer = enroll(client_from(local(2)), member.activation_code).await;
    assert_eq!(answer.status().as_u16(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_failing_authentication_is_blocked_before_its_credentials_are_read() {
    let (dir, server) = start(|c| c.edge.auth_failures_per_minute = 5).await;
    let phone = phone(&server, &dir, "p.db").await;
    let url = format!(
        "{}/v1/members/{}/documents/card",
        server.url, phone.member_id
    );
    let get = |client: &reqwest::Client, secret: &str| {
        client
            .get(&url)
            .header(
                "authorization",
                device_authorization(&phone.device_id, secret),
            )
            .send()
    };
    let attacker = client_from(local(1));
    for _ in 0..5 {
        let (status, code, _) = refusal(get(&attacker, "wrong").await.unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "unauthorized"));
    }
    let (status, code, retry) = refusal(get(&attacker, "wrong").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (429, "too_many_attempts"));
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After is required");
    // Blocked: right credentials from this address are not even looked at.
    let (status, _, _) = refusal(get(&attacker, &phone.device_secret).await.unwrap()).await;
    assert_eq!(status, 429);
    // The phone on its own address is untouched.
    let ok = get(&client_from(local(2)), &phone.device_secret)
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    server.stop().await;
}

/// Starts a long poll for the phone; its answer (status and body) when it ends.
fn long_poll(
    server: &TestServer,
    phone: &Credentials,
    since: u64,
) -> tokio::task::JoinHandle<(u16, String)> {
    let request = reqwest::Client::new()
        .get(format!(
            "{}/v1/members/{}/changes?since={since}&wait_s=60",
            server.url, phone.member_id
        ))
        .header(
            "authorization",
            device_authorization(&phone.device_id, &phone.device_secret),
        );
    tokio::spawn(async move {
        let response = request.send().await.expect("poll sent");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
}

/// The sequence number to poll from: what a poll that waits not at all answers.
async fn current_seq(server: &TestServer, phone: &Credentials) -> u64 {
    let answer: ChangesResponse = reqwest::Client::new()
        .get(format!(
            "{}/v1/members/{}/changes?since=0&wait_s=0",
            server.url, phone.member_id
        ))
        .header(
            "authorization",
            device_authorization(&phone.device_id, &phone.device_secret),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer.seq
}

/// Waits until the server holds `n` polls open.
async fn polls_open(server: &TestServer, n: usize) {
    tokio::time::timeout(PATIENCE, async {
        while server.app.live.open_polls() != n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "expected {n} open polls, found {}",
            server.app.live.open_polls()
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devices_third_long_poll_ends_its_oldest_and_the_others_still_hear_changes() {
    let (dir, server) = start(|c| c.edge.long_polls_per_device = 2).await;
    let phone = phone(&server, &dir, "p.db").await;
    let since = current_seq(&server, &phone).await;
    let first = long_poll(&server, &phone, since);
    polls_open(&server, 1).await;
    let second = long_poll(&server, &phone, since);
    polls_open(&server, 2).await;
    let third = long_poll(&server, &phone, since);
    let (status, body) = tokio::time::timeout(PATIENCE, first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("\"poll_superseded\""), "{body}");
    polls_open(&server, 2).await;
    server
        .operator()
        .post_message(&phone.member_id, &message("m1", "Hello"))
        .await
        .unwrap();
    for poll in [second, third] {
        let (status, body) = tokio::time::timeout(PATIENCE, poll).await.unwrap().unwrap();
        assert_eq!(status, 200, "{body}");
        let answer: ChangesResponse = serde_json::from_str(&body).unwrap();
        assert!(answer.changed && answer.seq > since, "{body}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_whose_phone_went_away_is_forgotten_before_its_wait_is_over() {
    let (dir, server) = start(|_| {}).await;
    let phone = phone(&server, &dir, "p.db").await;
    let since = current_seq(&server, &phone).await;
    let mut stream = connect(server.addr, local(1)).await;
    let request = format!(
        "GET /v1/members/{}/changes?since={since}&wait_s=60 HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        phone.member_id,
        device_authorization(&phone.device_id, &phone.device_secret)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    polls_open(&server, 1).await;
    drop(stream);
    // Well before the poll's 60 s: the server saw the connection close and dropped the poll.
    polls_open(&server, 0).await;
    assert_eq!(server.app.live.sizes().1, 0, "no member is left waiting");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_open_long_polls_at_once() {
    let (dir, server) = start(|_| {}).await;
    let phone = phone(&server, &dir, "p.db").await;
    let since = current_seq(&server, &phone).await;
    let poll = long_poll(&server, &phone, since);
    polls_open(&server, 1).await;
    let stopped = tokio::spawn(server.stop());
    // The poll asked for 60 s; it is answered well before, and the server is gone.
    let (status, body) = tokio::time::timeout(PATIENCE, poll).await.unwrap().unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: ChangesResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (answer.changed, answer.seq >= since),
        (false, true),
        "{body}"
    );
    tokio::time::timeout(PATIENCE, stopped)
        .await
        .unwrap()
        .unwrap();
}

/// A fresh Ed25519 public key in hex, as a device registers it.
fn public_key() -> String {
    use ring::signature::KeyPair;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    pair.public_key()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
