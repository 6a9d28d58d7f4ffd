//! The operators' console (issue 14 §4, `docs/console.md`) against a real server: logging in with
//! a named account's token and the bootstrap token, a wrong token refused (and rate-limited as any
//! operator authentication), the cookie's flags, logout and a disabled account ending the session,
//! the CSRF checks on cookie writes (no token, a foreign Origin: `403 csrf_failed`; both right: the
//! write is done and the audit log names the operator), the files' security headers — and then a
//! real Chromium, driven by `tests/console/run.mjs` with playwright-core, working the console as an
//! operator would: members, requests, offers and segments, a message sent to a segment (and found
//! on the member's phone after), the reports and operator accounts.
//!
//! The browser part needs `node`, Debian's `chromium` and `playwright-core` installed from
//! `tests/console/package-lock.json` into `LOYALTY_CONSOLE_MODULES` (default
//! `/opt/loyalty-toolchains/console/node_modules`); the test command installs them and sets
//! `LOYALTY_REQUIRE_BROWSER=1`, which makes their absence a failure.

use std::path::PathBuf;
use std::process::Command;

use loyalty_core::Clock;
use loyalty_core::api::{OfferTarget, PostSegment, PostTargetedOffer, SendMessage, paths};
use loyalty_core::segments::SegmentRules;
use loyalty_server::client::OperatorClient;
use loyalty_server::storage::DEFAULT_RFM_WINDOW_MS;
use loyalty_tests::*;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Logs in with `token`: the answer's status, body and `Set-Cookie`.
async fn login(url: &str, token: &str, https: bool) -> (u16, Value, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(format!("{url}{}", paths::CONSOLE_SESSION))
        .json(&json!({ "token": token }));
    if https {
        request = request.header("x-forwarded-proto", "https");
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_string());
    (status, response.json().await.unwrap_or(Value::Null), cookie)
}

/// The `name=value` part of a `Set-Cookie`, as the browser sends it back.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

/// A request with the session cookie and, when given, the CSRF token and Origin.
async fn with_cookie(
    method: reqwest::Method,
    url: &str,
    cookie: &str,
    csrf: Option<&str>,
    origin: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .header(COOKIE, cookie);
    if let Some(token) = csrf {
        request = request.header("x-csrf-token", token);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn adjustment(key: &str, points: i64) -> Value {
    json!({"idempotency_key": key, "points": points, "reason": "goodwill", "note": "Sorry"})
}

#[test]
fn a_console_session_logs_in_guards_its_writes_and_ends() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let url = &server.url;
        let boot = server.operator();
        let member = boot.create_member(None).await.unwrap().member_id;
        let sam = boot
            .create_operator("Sam Support", "support")
            .await
            .unwrap();
        let sam_id = sam.operator.operator_id.clone();

        let (status, body, cookie) = login(url, "not-a-token", false).await;
        assert_eq!((status, code(&body), cookie), (401, "unauthorized", None));
        let (status, body, _) = login(url, "", false).await;
        assert_eq!((status, code(&body)), (401, "unauthorized"));

        // The bootstrap token logs in as the bootstrap admin.
        let (status, body, cookie) = login(url, OPERATOR_TOKEN, false).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["operator_id"].as_str(), body["role"].as_str()),
            (Some("admin"), Some("admin"))
        );
        let cookie = cookie.expect("a session cookie");
        assert!(cookie.starts_with("loyalty_console="), "{cookie}");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(cookie.contains(flag), "{flag} missing: {cookie}");
        }
        assert!(
            !cookie.contains("Secure"),
            "plain HTTP on loopback: {cookie}"
        );
        let (_, _, behind_tls) = login(url, OPERATOR_TOKEN, true).await;
        assert!(behind_tls.unwrap().contains("; Secure"));

        // A named account's token logs in as that operator.
        let (status, body, cookie) = login(url, &sam.token, false).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["operator_id"].as_str(), Some(sam_id.as_str()));
        assert_eq!(
            (body["name"].as_str(), body["role"].as_str()),
            (Some("Sam Support"), Some("support"))
        );
        let csrf = body["csrf_token"].as_str().unwrap().to_string();
        assert_eq!(csrf.len(), 64);
        let cookie = cookie_pair(&cookie.unwrap());
        let session = format!("{url}{}", paths::CONSOLE_SESSION);
        let (status, who) =
            with_cookie(reqwest::Method::GET, &session, &cookie, None, None, None).await;
        assert_eq!(
            (status, who["csrf_token"].as_str()),
            (200, Some(csrf.as_str()))
        );

        // Reads need only the cookie; writes need the CSRF token and, if sent, our own Origin.
        let member_url = format!("{url}{}", paths::admin_member(&member));
        let (status, _) =
            with_cookie(reqwest::Method::GET, &member_url, &cookie, None, None, None).await;
        assert_eq!(status, 200);
        let adjust = format!("{url}{}", paths::admin_member_adjustments(&member));
        let post = reqwest::Method::POST;
        let (status, body) = with_cookie(
            post.clone(),
            &adjust,
            &cookie,
            None,
            None,
            Some(adjustment("c1", 10)),
        )
        .await;
        assert_eq!((status, code(&body)), (403, "csrf_failed"), "{body}");
        let (status, body) = with_cookie(
            post.clone(),
            &adjust,
            &cookie,
            Some("0".repeat(64).as_str()),
            None,
            Some(adjustment("c1", 10)),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (403, "csrf_failed"),
            "a wrong token: {body}"
        );
        let (status, body) = with_cookie(
            post.clone(),
            &adjust,
            &cookie,
            Some(&csrf),
            Some("http://evil.example"),
            Some(adjustment("c1", 10)),
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (403, "csrf_failed"),
            "a foreign origin: {body}"
        );
        let (status, body) = with_cookie(
            post.clone(),
            &adjust,
            &cookie,
            Some(&csrf),
            Some(url),
            Some(adjustment("c1", 10)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["balance"], 10);
        // The role still decides: support may not go over its limit, through the console too.
        let (status, body) = with_cookie(
            post.clone(),
            &adjust,
            &cookie,
            Some(&csrf),
            Some(url),
            Some(adjustment("c2", 5000)),
        )
        .await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
        let audit = boot.audit(Some(&sam_id), None, 10).await.unwrap();
        assert_eq!(
            audit.len(),
            2,
            "refusals by CSRF never reached an operator: {audit:?}"
        );
        assert_eq!(
            (
                audit[1].operator_name.as_str(),
                audit[1].action.as_str(),
                audit[1].status
            ),
            (
                "Sam Support",
                "POST /v1/admin/members/{member_id}/adjustments",
                200
            )
        );
        assert_eq!(audit[0].status, 403);

        // Logout is a write too, then the cookie opens nothing.
        let delete = reqwest::Method::DELETE;
        let (status, body) = with_cookie(delete.clone(), &session, &cookie, None, None, None).await;
        assert_eq!((status, code(&body)), (403, "csrf_failed"));
        let response = reqwest::Client::new()
            .delete(&session)
            .header(COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 204);
        let cleared = response.headers()[SET_COOKIE].to_str().unwrap();
        assert!(
            cleared.starts_with("loyalty_console=;") && cleared.contains("Max-Age=0"),
            "{cleared}"
        );
        let (status, body) =
            with_cookie(reqwest::Method::GET, &session, &cookie, None, None, None).await;
        assert_eq!((status, code(&body)), (401, "unauthorized"));
        let (status, _) =
            with_cookie(reqwest::Method::GET, &member_url, &cookie, None, None, None).await;
        assert_eq!(status, 401);

        // Disabling the account ends its live sessions at once.
        let (_, _, cookie) = login(url, &sam.token, false).await;
        let cookie = cookie_pair(&cookie.unwrap());
        let (status, _) =
            with_cookie(reqwest::Method::GET, &member_url, &cookie, None, None, None).await;
        assert_eq!(status, 200);
        boot.disable_operator(&sam_id).await.unwrap();
        let (status, _) =
            with_cookie(reqwest::Method::GET, &member_url, &cookie, None, None, None).await;
        assert_eq!(status, 401);
        let (status, _) =
            with_cookie(reqwest::Method::GET, &session, &cookie, None, None, None).await;
        assert_eq!(status, 401);
        let (status, body, _) = login(url, &sam.token, false).await;
        assert_eq!((status, code(&body)), (401, "unauthorized"));
    });
}

#[test]
fn wrong_console_logins_are_rate_limited_like_any_operator_token() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_with(
            dir.path().join("s.db"),
            "127.0.0.1:0",
            std::sync::Arc::new(loyalty_core::SystemClock),
            |c| c.edge.auth_failures_per_minute = 3,
        )
        .await;
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(login(&server.url, "guess", false).await.0);
        }
        assert_eq!(statuses, [401, 401, 401, 429]);
        let (status, body, cookie) = login(&server.url, OPERATOR_TOKEN, false).await;
        assert_eq!(
            (status, code(&body), cookie),
            (429, "too_many_attempts", None)
        );
    });
}

#[test]
fn a_malformed_login_is_a_clear_400() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let url = format!("{}{}", server.url, paths::CONSOLE_SESSION);
        let http = reqwest::Client::new();
        for (body, content_type, names) in [
            (r#"{"token": 1}"#, "application/json", "token"),
            (
                r#"{"token": "x", "role": "admin"}"#,
                "application/json",
                "role",
            ),
            (r#"{}"#, "application/json", "token"),
            ("token=x", "application/x-www-form-urlencoded", "JSON"),
        ] {
            let response = http
                .post(&url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 400, "{body}");
            assert!(response.headers().get(SET_COOKIE).is_none(), "{body}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(code(&answer), "malformed_body", "{body}: {answer}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(names), "{body}: {message}");
        }
    });
}

#[test]
fn the_secure_cookie_setting_marks_the_cookie_secure() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_with(
            dir.path().join("s.db"),
            "127.0.0.1:0",
            std::sync::Arc::new(loyalty_core::SystemClock),
            |c| c.console_secure_cookie = true,
        )
        .await;
        let (status, _, cookie) = login(&server.url, OPERATOR_TOKEN, false).await;
        assert_eq!(status, 200);
        assert!(cookie.unwrap().ends_with("; Secure"));
    });
}

#[test]
fn the_console_files_carry_their_types_and_a_strict_policy() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let http = reqwest::Client::new();
        for (path, content_type) in [
            ("/console", "text/html"),
            ("/console/", "text/html"),
            ("/console/members/mbr_1", "text/html"),
            ("/console/assets/app.js", "text/javascript"),
            ("/console/assets/member.js", "text/javascript"),
            ("/console/assets/console.css", "text/css"),
            ("/console/assets/chart.umd.min.js", "text/javascript"),
        ] {
            let response = http
                .get(format!("{}{path}", server.url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200, "{path}");
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            };
            assert!(
                header("content-type").starts_with(content_type),
                "{path}: {}",
                header("content-type")
            );
            assert_eq!(header("content-security-policy"), CSP, "{path}");
            assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
            assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
            let body = response.text().await.unwrap();
            if content_type == "text/html" {
                assert!(
                    body.contains("/console/assets/app.js") && !body.contains("<script>"),
                    "{path}"
                );
            }
        }
        let missing = http
            .get(format!("{}/console/assets/nope.js", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status().as_u16(), 404);
        let body: Value = missing.json().await.unwrap();
        assert_eq!(code(&body), "not_found");
    });
}

/// Where playwright-core is installed, with node and Chromium present; `None` (the test skips)
/// when one is missing, unless `LOYALTY_REQUIRE_BROWSER` is set.
fn browser_modules() -> Option<PathBuf> {
    loyalty_tests::node::NodeToolchain {
        dir_var: "LOYALTY_CONSOLE_MODULES",
        default_dir: "/opt/loyalty-toolchains/console/node_modules",
        package_file: "playwright-core/package.json",
        programs: &["/usr/bin/chromium"],
        require_var: "LOYALTY_REQUIRE_BROWSER",
    }
    .modules()
}

const HOSTILE_SUBJECT: &str = "<img src=x onerror=alert(1)>";

#[test]
fn an_operator_works_the_console_in_a_real_browser() {
    let Some(modules) = browser_modules() else {
        return;
    };
    rt().block_on(async {
        let s = shop().await;
        let boot = s.server.operator();
        let admin = boot.create_operator("Ada Admin", "admin").await.unwrap();
        let support = boot
            .create_operator("Sam Support", "support")
            .await
            .unwrap();
        let code = s.next_code().text;
        let session = s.till.scan(&code).await.unwrap().session_id;
        let earned = s
            .till
            .purchase(&purchase(&session, "console-1", 12_00, 0))
            .await
            .unwrap()
            .earned;
        // The same code shown again (a screenshot): refused, and counted on the watch list.
        let replay = s.till.scan(&code).await.unwrap_err();
        assert_eq!(refusal(replay), "code_replayed");
        s.phone
            .open_request("complaint", HOSTILE_SUBJECT, "Receipt 1001")
            .unwrap();
        s.phone.sync().await.unwrap();
        let card = s.card().await;
        everyone_segment(&s, &boot).await;
        two_sends(&s, &boot).await;
        later_offers(&s, &boot).await;

        let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("console/run.mjs");
        let mut node = Command::new("node");
        node.arg(&script)
            .env("LOYALTY_SERVER", &s.server.url)
            .env("LOYALTY_ADMIN_TOKEN", &admin.token)
            .env("LOYALTY_SUPPORT_TOKEN", &support.token)
            .env("LOYALTY_CARD_NUMBER", &card.card_number)
            .env("LOYALTY_MEMBER_ID", &s.member_id)
            .env("LOYALTY_BALANCE", card.balance.to_string())
            .env("LOYALTY_REQUEST_SUBJECT", HOSTILE_SUBJECT)
            .env("LOYALTY_NOW_MS", s.clock.now_ms().to_string())
            .env("LOYALTY_EARNED", earned.to_string())
            .env("LOYALTY_SEGMENT", SEGMENT)
            .env("LOYALTY_CONSOLE_MODULES", &modules)
            .env("LOYALTY_SCREENSHOTS", &screenshots);
        // Off the async workers: the server answers the browser on them meanwhile.
        let out = tokio::task::spawn_blocking(move || node.output())
            .await
            .unwrap()
            .expect("run node");
        assert!(
            out.status.success(),
            "the browser test failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(report["ok"], true);
        // What the browser did is what the server holds.
        assert_eq!(s.balance().await, card.balance + 25);
        let audit = boot
            .audit(Some(&admin.operator.operator_id), None, 100)
            .await
            .unwrap();
        assert!(
            audit
                .iter()
                .any(|e| e.action.ends_with("/adjustments") && e.status == 200),
            "{audit:?}"
        );
        let refused = boot
            .audit(Some(&support.operator.operator_id), None, 10)
            .await
            .unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].status, 403);
        let answered = boot.requests(Some("answered")).await.unwrap();
        assert_eq!(
            answered.len(),
            1,
            "the reply from the browser reached the member's request"
        );
        assert_eq!(answered[0].subject, HOSTILE_SUBJECT);
        assert!(screenshots.join("member.png").exists());
        browser_work_is_held(&s, &boot, &report).await;
        the_message_reached_the_phone(&s, &report).await;
        for page in [
            "offers",
            "segments",
            "messages",
            "message-deliveries",
            "points",
            "memberstats",
            "deliveries",
            "watch",
            "rfm",
            "uptake",
            "operators",
        ] {
            assert!(screenshots.join(format!("{page}.png")).exists(), "{page}");
        }
    });
}

/// The segment the browser publishes an offer to: every member (no rules), computed by the batch
/// job so that its size is the shop's one member.
const SEGMENT: &str = "everyone";

async fn everyone_segment(s: &Shop, boot: &OperatorClient) {
    boot.create_segment(&PostSegment {
        id: Some(SEGMENT.into()),
        name: "Every member".into(),
        rules: SegmentRules::default(),
    })
    .await
    .unwrap();
    backend::open_storage(&s.server.database)
        .await
        .recompute_segments(s.clock.now_ms(), DEFAULT_RFM_WINDOW_MS, Box::new(|_| {}))
        .await
        .unwrap();
}

/// Offers that fill the offers page past its first 25: `z-later-00` to `z-later-24`, upcoming
/// (so no other status filter lists them), and after `console-coffee` in id order, so the
/// browser's offer is on the first page and `z-later-24` alone on the second.
async fn later_offers(s: &Shop, boot: &OperatorClient) {
    let start = s.clock.now_ms() + 10 * 86_400_000;
    for i in 0..25 {
        let mut offer = offer(&format!("z-later-{i:02}"), "Later");
        offer.valid_from_ms = start;
        offer.valid_until_ms = start + 30 * 86_400_000;
        boot.publish_offer(&PostTargetedOffer {
            offer,
            target: OfferTarget::Members {
                member_ids: vec![s.member_id.clone()],
            },
        })
        .await
        .unwrap();
    }
}

/// Two sends for the deliveries report, both settled in the request: a service message in the
/// app (sent) and a marketing SMS the member never consented to (refused, `no_consent`).
async fn two_sends(s: &Shop, boot: &OperatorClient) {
    for (id, channel, kind) in [
        ("console-inapp", "inapp", "service"),
        ("console-sms", "sms", "marketing"),
    ] {
        boot.send_message(&SendMessage {
            id: Some(id.into()),
            channel: channel.into(),
            kind: kind.into(),
            subject: "Console report".into(),
            body: String::new(),
            members: vec![s.member_id.clone()],
            segment: None,
        })
        .await
        .unwrap();
    }
}

/// The message the browser sent to the segment (twice: the first answer was lost) is in the
/// member's inbox once after the phone syncs.
async fn the_message_reached_the_phone(s: &Shop, report: &Value) {
    let id = report["messageId"].as_str().expect("the message's id");
    s.phone.sync().await.unwrap();
    let inbox = s.phone.messages().unwrap();
    let message = inbox
        .iter()
        .map(|m| &m.message)
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("{id} is not in the inbox: {inbox:?}"));
    assert_eq!(message.subject, report["messageSubject"].as_str().unwrap());
    assert_eq!(
        (message.kind.as_str(), message.channel.as_str()),
        ("service", "inapp")
    );
    let copies = inbox
        .iter()
        .filter(|m| m.message.subject == message.subject)
        .count();
    assert_eq!(copies, 1, "sent again after a lost answer, received once");
    let listed = report["listedSubject"].as_str().expect("the listed send");
    assert!(
        inbox.iter().any(|m| m.message.subject == listed),
        "the send to the member's id: {inbox:?}"
    );
}

/// What the browser published, ended and created is what the server holds: the offer ended with
/// the segment's member reached, and the operator account whose token the page showed once.
async fn browser_work_is_held(s: &Shop, boot: &OperatorClient, report: &Value) {
    let offers = boot.offers(&[]).await.unwrap();
    let offer = offers
        .iter()
        .find(|o| o.offer.id == report["offer"])
        .expect("the browser's offer");
    assert_eq!(offer.target_key.as_deref(), Some(SEGMENT));
    assert_eq!(offer.figures.reach, 1);
    assert_eq!(offer.status.as_str(), "ended");
    let tier = offers
        .iter()
        .find(|o| o.offer.id == "console-tier")
        .expect("the browser's tier offer");
    assert_eq!(
        (tier.target_kind.as_str(), tier.target_key.as_deref()),
        ("tier", Some("base"))
    );
    assert_eq!(tier.figures.reach, 1);
    let token = report["operatorToken"].as_str().expect("the token shown");
    let created = OperatorClient::new(&s.server.url, token).unwrap();
    assert!(created.programme().await.is_ok(), "the token shown works");
    let accounts = boot.operators().await.unwrap();
    let account = accounts
        .iter()
        .find(|a| a.name == report["operatorName"])
        .expect("the browser's operator");
    assert_eq!(account.role, "marketing");
}
