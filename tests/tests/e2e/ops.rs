//! Operations: readiness (`/readyz`), Prometheus metrics (`/metrics`) and the Grafana dashboard
//! that queries them, the access log, and `503 database_unavailable` when the database cannot
//! be reached — each on a real server process and its real SQLite file.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use loyalty_core::api::paths;
use loyalty_server::client::TillClient;
use loyalty_tests::*;
use serde_json::Value;

const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

async fn get(url: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn scrape(url: &str) -> String {
    let response = get(&format!("{url}{}", paths::METRICS), Some(METRICS_TOKEN)).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as exported), 0 when absent.
fn sample(scraped: &str, series: &str) -> f64 {
    scraped
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn checks(body: &Value) -> Vec<(String, bool)> {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Marks the database `db` stands for as migrated by a newer program (one version further, in
/// each backend's own bookkeeping); this program's version.
fn migrate_one_further(db: &std::path::Path) -> i64 {
    if backend::on_postgres() {
        let url = backend::database_for(db);
        let ours: i64 = postgres::psql(&url, "SELECT max(version) FROM schema_migrations")
            .parse()
            .unwrap();
        postgres::psql(
            &url,
            &format!(
                "INSERT INTO schema_migrations (version, name) VALUES ({}, 'newer')",
                ours + 1
            ),
        );
        return ours;
    }
    let other = rusqlite::Connection::open(db).unwrap();
    let ours: i64 = other
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    other.pragma_update(None, "user_version", ours + 1).unwrap();
    ours
}

#[tokio::test]
async fn readyz_is_ready_and_then_not_when_another_version_migrated_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let server = ServerProcess::start(&db, "127.0.0.1:0");
    let ready = get(&format!("{}{}", server.url, paths::READYZ), None).await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(
        checks(&body),
        [
            ("database".into(), true),
            ("schema".into(), true),
            ("serving".into(), true)
        ]
    );

    // A newer instance migrated the shared database: this one must stop taking traffic.
    let ours = migrate_one_further(&db);
    let not_ready = get(&format!("{}{}", server.url, paths::READYZ), None).await;
    assert_eq!(not_ready.status(), 503);
    assert_eq!(not_ready.headers()["retry-after"], "5");
    let body: Value = not_ready.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(
        checks(&body),
        [
            ("database".into(), true),
            ("schema".into(), false),
            ("serving".into(), true)
        ]
    );
    let detail = body["checks"][1]["detail"].as_str().unwrap();
    assert!(detail.contains(&(ours + 1).to_string()), "{detail}");
    // Liveness asks nothing of the database: the process is alive.
    let alive = get(&format!("{}{}", server.url, paths::HEALTHZ), None).await;
    assert_eq!(alive.status(), 200);
}

#[tokio::test]
async fn metrics_need_their_token_and_count_purchases_and_syncs_by_route_template() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_args(
        &dir.path().join("s.db"),
        "127.0.0.1:0",
        &["--metrics-token", METRICS_TOKEN],
    );
    let url = format!("{}{}", server.url, paths::METRICS);
    assert_eq!(get(&url, None).await.status(), 401);
    assert_eq!(get(&url, Some(OPERATOR_TOKEN)).await.status(), 401);

    let operator = server.operator();
    let (member_id, phone) =
        member_with_device(&server.url, &operator, &dir.path().join("phone.db")).await;
    let before = scrape(&server.url).await;
    let till = TillClient::new(&server.url, TILL_TOKEN, "till-1").unwrap();
    let code = phone.checkout_code().unwrap();
    let session = till.scan(&code.text).await.unwrap().session_id;
    till.purchase(&purchase(&session, "p-1", 1250, 0))
        .await
        .unwrap();
    phone.sync().await.unwrap();
    phone.sync().await.unwrap();
    let after = scrape(&server.url).await;

    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(moved(r#"loyalty_postings_total{kind="purchase"}"#), 1.0);
    assert_eq!(moved(r#"loyalty_postings_total{kind="refund"}"#), 0.0);
    assert!(
        moved(r#"loyalty_syncs_total{kind="changed"}"#) >= 1.0,
        "{after}"
    );
    assert!(
        moved(r#"loyalty_syncs_total{kind="noop"}"#) >= 1.0,
        "{after}"
    );
    if !backend::on_postgres() {
        // SQLite's single writer commits postings in groups; PostgreSQL commits each on its own.
        assert_eq!(moved("loyalty_group_commit_postings_count"), 1.0);
    }
    let sync_route = r#"route="/v1/members/{member_id}/sync",method="POST",status="2xx""#;
    assert!(
        moved(&format!("loyalty_http_requests_total{{{sync_route}}}")) >= 2.0,
        "{after}"
    );
    let purchases = r#"route="/v1/till/purchases",method="POST",status="2xx""#;
    assert_eq!(
        moved(&format!("loyalty_http_requests_total{{{purchases}}}")),
        1.0
    );

    // Every route label is a template of the route table: no id ever becomes a series.
    let table: BTreeSet<&str> = paths::ALL.iter().copied().collect();
    for route in after.split("route=\"").skip(1) {
        let route = route.split('"').next().unwrap();
        assert!(table.contains(route) || route == "unmatched", "{route}");
    }
    assert!(!after.contains(&member_id));
    assert!(!after.contains(&session));
}

/// The dashboard in `docs/` queries only metrics a running server exports.
#[tokio::test]
async fn the_grafana_dashboard_queries_only_exported_metrics() {
    let dashboard: Value =
        serde_json::from_str(include_str!("../../../docs/grafana-dashboard.json")).unwrap();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("loyalty_") {
                    queried.insert(word.to_string());
                }
            }
        }
    }
    assert!(queried.len() >= 8, "{queried:?}");

    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_args(
        &dir.path().join("s.db"),
        "127.0.0.1:0",
        &["--metrics-token", METRICS_TOKEN],
    );
    // A purchase, so the request and group-commit histograms have their first samples.
    let operator = server.operator();
    let (_, phone) = member_with_device(&server.url, &operator, &dir.path().join("p.db")).await;
    let till = TillClient::new(&server.url, TILL_TOKEN, "till-1").unwrap();
    let session = till
        .scan(&phone.checkout_code().unwrap().text)
        .await
        .unwrap()
        .session_id;
    till.purchase(&purchase(&session, "p-1", 500, 0))
        .await
        .unwrap();
    let scraped = scrape(&server.url).await;
    let exported: BTreeSet<&str> = scraped
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in &queried {
        if backend::on_postgres() && name.starts_with("loyalty_group_commit_") {
            // The panel of SQLite's group commit stays empty on PostgreSQL (docs/operations.md).
            continue;
        }
        assert!(
            exported.contains(name.as_str()),
            "{name} is not exported:\n{scraped}"
        );
    }
}

/// A server process whose log (stderr) goes to a file, as a collector would read it.
struct Logged {
    child: std::process::Child,
    url: String,
    log: std::path::PathBuf,
}

impl Logged {
    fn start(dir: &std::path::Path, args: &[&str]) -> Self {
        use std::io::BufRead;
        // Each server its own database and log, though they share the directory.
        let name = format!("server-{}", args.len());
        let log = dir.join(format!("{name}.log"));
        let mut child = Command::new(loyalty_bin())
            .args([
                "server",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--database",
            ])
            .arg(backend::database_for(&dir.join(format!("{name}.db"))))
            .args(args)
            .env("LOYALTY_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("LOYALTY_TILL_TOKEN", TILL_TOKEN)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_string();
        Self { child, url, log }
    }

    /// The access lines logged so far, as JSON objects.
    fn access_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("every log line is JSON"))
            .filter(|l| l["target"] == "loyalty::access")
            .collect()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_access_log_has_one_json_line_per_request_without_ids_queries_or_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Logged::start(dir.path(), &[]);
    let member = server.url.clone();
    let operator = loyalty_server::client::OperatorClient::new(&member, OPERATOR_TOKEN).unwrap();
    let created = operator.create_member(None).await.unwrap();
    let secret_query = "email=someone%40example.com";
    let asked = reqwest::Client::new()
        .get(format!(
            "{}{}?{secret_query}",
            server.url,
            paths::admin_member(&created.member_id)
        ))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 200);
    let length = asked.bytes().await.unwrap().len() as u64;

    let lines = server.access_lines();
    let routes: Vec<(&str, &str, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["method"].as_str().unwrap(),
                l["route"].as_str().unwrap(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("POST", paths::ADMIN_MEMBERS, 201),
            ("GET", paths::ADMIN_MEMBER, 200)
        ]
    );
    assert_eq!(lines[1]["bytes"].as_u64(), Some(length));
    assert!(lines[1]["duration_ms"].as_f64().unwrap() >= 0.0);
    for line in &lines {
        let text = line.to_string();
        for private in [
            created.member_id.as_str(),
            created.activation_code.as_str(),
            "someone",
            OPERATOR_TOKEN,
        ] {
            assert!(!text.contains(private), "{private} logged: {text}");
        }
    }

    let quiet = Logged::start(dir.path(), &["--access-log", "false"]);
    let alive = get(&format!("{}{}", quiet.url, paths::HEALTHZ), None).await;
    assert_eq!(alive.status(), 200);
    assert!(quiet.access_lines().is_empty());
}

#[tokio::test]
async fn a_database_locked_by_another_process_is_503_with_retry_after_and_changes_nothing() {
    if backend::on_postgres() {
        // SQLite's file lock; PostgreSQL's outage is the failover tests' (tests/tests/e2e/failover.rs).
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let server = ServerProcess::start(&db, "127.0.0.1:0");
    let operator = server.operator();
    let (member_id, phone) =
        member_with_device(&server.url, &operator, &dir.path().join("phone.db")).await;
    let till = TillClient::new(&server.url, TILL_TOKEN, "till-1").unwrap();
    let session = till
        .scan(&phone.checkout_code().unwrap().text)
        .await
        .unwrap()
        .session_id;
    let balance = || async {
        operator
            .member(&member_id)
            .await
            .unwrap()
            .card
            .map_or(0, |c| c.balance)
    };
    let before = balance().await;

    // Another process takes the write lock and keeps it past the server's busy timeout.
    let mut other = rusqlite::Connection::open(&db).unwrap();
    let lock = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .unwrap();
    let http = reqwest::Client::new();
    let purchase_request = purchase(&session, "p-locked", 1000, 0);
    let (created, bought) = tokio::join!(
        http.post(format!("{}{}", server.url, paths::ADMIN_MEMBERS))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&serde_json::json!({}))
            .send(),
        http.post(format!("{}{}", server.url, paths::TILL_PURCHASES))
            .bearer_auth(TILL_TOKEN)
            .header("x-till-id", "till-1")
            .json(&purchase_request)
            .send(),
    );
    for answer in [created.unwrap(), bought.unwrap()] {
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()["retry-after"], "5");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    }
    lock.rollback().unwrap();

    // Nothing was applied; the till's retry with the same key posts the purchase once.
    assert_eq!(balance().await, before);
    till.purchase(&purchase_request).await.unwrap();
    assert_eq!(balance().await, before + 10);
}
