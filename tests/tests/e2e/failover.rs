//! Failover (issue 12 §4) on a real PostgreSQL primary with a synchronous standby
//! (`loyalty_tests::pg_cluster`). First the cluster itself, with the driver the server uses: a
//! commit returns only once the standby has it, so every acknowledged commit survives the
//! primary's death; a client on the multi-host URL (`target_session_attrs=read-write`) finds the
//! promoted standby; a restarted primary keeps its data. Then real `loyalty server` processes
//! under till load: the primary killed and the standby promoted, one server instance killed,
//! PostgreSQL restarted — no purchase a till got an answer for is lost, a retry with its key gets
//! the one answer, and the time without service is printed (not asserted: the machine is shared).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loyalty_core::api::{PurchaseRequest, paths};
use loyalty_server::client::{OperatorClient, TillClient};
use loyalty_tests::pg_cluster::Cluster;
use loyalty_tests::*;
use serde_json::Value;

/// How long a test waits for something that must happen before it calls it a hang.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The port of the server `client` is connected to.
async fn port_of(client: &tokio_postgres::Client) -> u16 {
    let row = client
        .query_one("SELECT inet_server_port()", &[])
        .await
        .unwrap();
    u16::try_from(row.get::<_, i32>(0)).unwrap()
}

/// Polls `check` every 20 ms until it is true; panics after [`HANG_GUARD`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < HANG_GUARD, "waited too long for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// The cluster itself.

/// With the standby stopped, a commit on the primary waits in `SyncRep` (and is visible to
/// nobody); once the standby is back the commit returns and the standby has the row. The
/// multi-host URL lands on the primary whichever order it lists the hosts in.
#[test]
fn a_commit_returns_only_once_the_synchronous_standby_has_it() {
    rt().block_on(async {
        let mut cluster = Cluster::start();
        let url = cluster.database("sync");
        let (primary_port, standby_port) = cluster.ports();
        let standby_port = standby_port.unwrap();
        let watcher = connect(&cluster.primary_url("sync")).await.unwrap();
        watcher
            .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
            .await
            .unwrap();
        for hosts in [
            format!("{primary_port},127.0.0.1:{standby_port}"),
            format!("{standby_port},127.0.0.1:{primary_port}"),
        ] {
            let either = format!(
                "postgres://loyalty@127.0.0.1:{hosts}/sync?target_session_attrs=read-write"
            );
            let client = connect(&either).await.unwrap();
            assert_eq!(port_of(&client).await, primary_port, "{either}");
        }
        assert_eq!(port_of(&connect(&url).await.unwrap()).await, primary_port);

        cluster.stop_standby();
        let writer = connect(&url).await.unwrap();
        let pid: i32 = writer
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let insert =
            tokio::spawn(async move { writer.execute("INSERT INTO t VALUES (1)", &[]).await });
        eventually("the commit to wait for the standby", || async {
            let row = watcher
                .query_one(
                    "SELECT coalesce(wait_event, '') FROM pg_stat_activity WHERE pid = $1",
                    &[&pid],
                )
                .await
                .unwrap();
            row.get::<_, String>(0) == "SyncRep"
        })
        .await;
        assert!(
            !insert.is_finished(),
            "the commit returned without a standby"
        );
        let seen: i64 = watcher
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            seen, 0,
            "a commit waiting for its standby is visible to nobody"
        );

        cluster.start_standby();
        assert_eq!(insert.await.unwrap().unwrap(), 1);
        // `synchronous_commit=on`: the standby wrote the commit to its WAL before it returned,
        // and applies it an instant later (`remote_apply` would wait for that too).
        let standby = connect(&cluster.standby_url("sync")).await.unwrap();
        eventually("the standby to apply the row", || async {
            let row = standby
                .query_one("SELECT count(*) FROM t WHERE id = 1", &[])
                .await
                .unwrap();
            row.get::<_, i64>(0) == 1
        })
        .await;
    });
}

/// Four writers commit as fast as they can; the primary dies under them (SIGKILL of all its
/// processes). Until the standby is promoted the multi-host URL finds no server taking writes;
/// then it finds the promoted standby, which has every row whose commit returned, and takes
/// writes.
#[test]
fn every_commit_acknowledged_before_the_primary_dies_is_on_the_promoted_standby() {
    rt().block_on(async {
        let mut cluster = Cluster::start();
        let url = cluster.database("acks");
        let standby_port = cluster.ports().1.unwrap();
        connect(&url)
            .await
            .unwrap()
            .batch_execute("CREATE TABLE t (id bigint PRIMARY KEY)")
            .await
            .unwrap();
        let committed = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..4i64)
            .map(|w| {
                let (url, committed) = (url.clone(), committed.clone());
                tokio::spawn(async move {
                    let client = connect(&url).await.unwrap();
                    let mut acked = Vec::new();
                    for n in 0.. {
                        let id = w * 1_000_000 + n;
                        match client.execute("INSERT INTO t VALUES ($1)", &[&id]).await {
                            Ok(_) => {
                                acked.push(id);
                                committed.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => break,
                        }
                    }
                    acked
                })
            })
            .collect();
        eventually("200 commits", || async {
            committed.load(Ordering::Relaxed) >= 200
        })
        .await;
        cluster.kill_primary();
        let mut acked = Vec::new();
        for writer in writers {
            let ended = tokio::time::timeout(HANG_GUARD, writer).await;
            acked.extend(ended.expect("the writer saw the primary die").unwrap());
        }

        // (On the `postgres` database: the standby may still be replaying this test's.)
        let Err(refused) = connect(&cluster.url("postgres")).await else {
            panic!("a server took writes before the promotion");
        };
        let cause = std::error::Error::source(&refused).map(|c| c.to_string());
        assert_eq!(
            cause.as_deref(),
            Some("database does not allow writes"),
            "the standby answered, read-only: {refused:?}"
        );
        cluster.promote_standby();
        let client = connect(&url).await.unwrap();
        assert_eq!(port_of(&client).await, standby_port);
        let found: i64 = client
            .query_one("SELECT count(*) FROM t WHERE id = ANY($1)", &[&acked])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            found,
            acked.len() as i64,
            "every acknowledged commit is there"
        );
        let after = client
            .execute("INSERT INTO t VALUES (-1)", &[])
            .await
            .unwrap();
        assert_eq!(after, 1, "the promoted standby takes writes");
        println!(
            "{} commits acknowledged before the kill, all kept",
            acked.len()
        );
    });
}

/// A primary restarted (`pg_ctl stop -m fast`, start) keeps what was committed; the clients it
/// had lose their connections and a new one on the same URL writes again.
#[test]
fn a_restarted_primary_keeps_its_data_and_takes_writes_again() {
    rt().block_on(async {
        let mut cluster = Cluster::start();
        let url = cluster.database("restart");
        let before = connect(&url).await.unwrap();
        before
            .batch_execute(
                "CREATE TABLE t (id int PRIMARY KEY);
                 INSERT INTO t SELECT generate_series(1, 100)",
            )
            .await
            .unwrap();
        cluster.restart_primary();
        assert!(
            before.query_one("SELECT 1", &[]).await.is_err(),
            "the restart ended the old connection"
        );
        let after = connect(&url).await.unwrap();
        assert_eq!(port_of(&after).await, cluster.ports().0);
        let kept: i64 = after
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(kept, 100);
        assert_eq!(
            after
                .execute("INSERT INTO t VALUES (101)", &[])
                .await
                .unwrap(),
            1
        );
    });
}

// Real servers under till load.

/// A till with its member's open checkout session (sessions take many purchases).
#[derive(Clone)]
struct Till {
    id: String,
    member_id: String,
    session: String,
}

/// `n` members, each with an enrolled phone whose code a till of their own scanned.
async fn tills(url: &str, n: usize) -> Vec<Till> {
    let dir = tempfile::tempdir().unwrap();
    let op = OperatorClient::new(url, OPERATOR_TOKEN).unwrap();
    let mut tills = Vec::new();
    for i in 0..n {
        let (member_id, phone) =
            member_with_device(url, &op, &dir.path().join(format!("p{i}.db"))).await;
        let id = format!("till-{i}");
        let scanned = TillClient::new(url, TILL_TOKEN, &id)
            .unwrap()
            .scan(&phone.checkout_code().unwrap().text)
            .await
            .unwrap();
        tills.push(Till {
            id,
            member_id,
            session: scanned.session_id,
        });
    }
    tills
}

/// A purchase a till was answered `2xx` for.
struct Answered {
    request: PurchaseRequest,
    answer: Value,
    at: Instant,
    /// Attempts with this key that failed before this answer (a request in flight when the
    /// database or the instance went away, retried with its key).
    failed_before: usize,
}

/// An attempt that got no `2xx`.
#[derive(Debug)]
enum Failure {
    /// An answer: its status, error code and `Retry-After`.
    Refused {
        status: u16,
        code: String,
        retry_after: Option<String>,
    },
    /// No answer: the connection failed or dropped.
    Connection,
}

#[derive(Default)]
struct TillRun {
    answered: Vec<Answered>,
    failures: Vec<Failure>,
}

/// Posts `request` as `till` to the server at `url`: the status, `Retry-After` and JSON body.
async fn post(
    http: &reqwest::Client,
    url: &str,
    till: &str,
    request: &PurchaseRequest,
) -> Result<(u16, Option<String>, Value), reqwest::Error> {
    let response = http
        .post(format!("{url}{}", paths::TILL_PURCHASES))
        .bearer_auth(TILL_TOKEN)
        .header("x-till-id", till)
        .json(request)
        .send()
        .await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((status, retry_after, response.json().await?))
}

/// Tills posting purchases one after another, each with its own idempotency key, spread over
/// the instances as a balancer without sticky sessions would. A failed attempt is retried with
/// the same key until it is answered; an instance that does not answer at all is left for the
/// others (a balancer's health check).
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<TillRun>>,
    /// Answers and when each came, per till, as they come.
    progress: Vec<Arc<std::sync::Mutex<Vec<Instant>>>>,
}

impl Load {
    fn start(tills: &[Till], urls: &[String]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        let mut progress = Vec::new();
        for (i, till) in tills.iter().enumerate() {
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            progress.push(seen.clone());
            let (till, urls, stop) = (till.clone(), urls.to_vec(), stop.clone());
            tasks.push(tokio::spawn(run_till(till, urls, i, stop, seen)));
        }
        Self {
            stop,
            tasks,
            progress,
        }
    }

    /// Waits until every till has had `n` purchases answered after `since`.
    async fn answered_after(&self, since: Instant, n: usize) {
        eventually("the tills to be answered", || async {
            self.progress.iter().all(|seen| {
                let seen = seen.lock().unwrap();
                seen.iter().filter(|at| **at > since).count() >= n
            })
        })
        .await;
    }

    /// Stops the tills after their current purchase (each is answered before its till stops).
    async fn finish(self) -> Vec<TillRun> {
        self.stop.store(true, Ordering::Relaxed);
        let mut runs = Vec::new();
        for task in self.tasks {
            let ended = tokio::time::timeout(HANG_GUARD, task).await;
            runs.push(ended.expect("the till stopped").unwrap());
        }
        runs
    }
}

async fn run_till(
    till: Till,
    urls: Vec<String>,
    first: usize,
    stop: Arc<AtomicBool>,
    seen: Arc<std::sync::Mutex<Vec<Instant>>>,
) -> TillRun {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut run = TillRun::default();
    let mut down = vec![false; urls.len()];
    let mut turn = first;
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let request = purchase(&till.session, &format!("{}-{n}", till.id), 1_000, 0);
        let started = Instant::now();
        let mut failed_before = 0;
        loop {
            turn = (turn + 1..).find(|t| !down[t % urls.len()]).unwrap();
            let at = turn % urls.len();
            match post(&http, &urls[at], &till.id, &request).await {
                Ok((status, _, answer)) if (200..300).contains(&status) => {
                    let now = Instant::now();
                    seen.lock().unwrap().push(now);
                    run.answered.push(Answered {
                        request,
                        answer,
                        at: now,
                        failed_before,
                    });
                    break;
                }
                Ok((status, retry_after, body)) => run.failures.push(Failure::Refused {
                    status,
                    code: body["error"]["code"].as_str().unwrap_or("").to_string(),
                    retry_after,
                }),
                Err(_) => {
                    run.failures.push(Failure::Connection);
                    down[at] = true;
                    assert!(down.iter().any(|d| !d), "every instance is gone");
                }
            }
            failed_before += 1;
            assert!(
                started.elapsed() < HANG_GUARD,
                "{}: purchase {n} never answered: {:?}",
                till.id,
                run.failures.last()
            );
            // Tills retry sooner than the `Retry-After: 5` they are told, to measure the outage.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    run
}

/// Every purchase a till was answered for is in the ledger once: the member's balance is what
/// the answers earned, before anything is retried. Then each is sent again with its key, through
/// `url`: the same answer, and nothing more is posted.
async fn check_ledger(url: &str, tills: &[Till], runs: &[TillRun]) {
    let op = OperatorClient::new(url, OPERATOR_TOKEN).unwrap();
    let http = reqwest::Client::new();
    for (till, run) in tills.iter().zip(runs) {
        let balance = || async {
            let view = op.member(&till.member_id).await.unwrap();
            view.card.map_or(0, |c| c.balance)
        };
        let earned: i64 = run
            .answered
            .iter()
            .map(|a| a.answer["earned"].as_i64().unwrap())
            .sum();
        assert!(run.answered.iter().all(|a| a.answer["earned"] == 10));
        let before = balance().await;
        assert_eq!(before, earned, "{}: every answered purchase, once", till.id);
        for answered in &run.answered {
            let (status, _, again) = post(&http, url, &till.id, &answered.request).await.unwrap();
            assert_eq!(status, 200, "{again}");
            assert_eq!(again, answered.answer, "{}: one answer per key", till.id);
        }
        assert_eq!(
            balance().await,
            before,
            "{}: the retries posted nothing",
            till.id
        );
    }
}

/// Every failed attempt of the runs was answered `503 database_unavailable` with `Retry-After`:
/// never another error, never a wrong answer. How many there were.
fn all_database_unavailable(runs: &[TillRun]) -> usize {
    let failures: Vec<&Failure> = runs.iter().flat_map(|r| &r.failures).collect();
    for failure in &failures {
        assert!(
            matches!(failure, Failure::Refused { status: 503, code, retry_after: Some(_) }
                if code == "database_unavailable"),
            "{failure:?}"
        );
    }
    failures.len()
}

/// The time without service: the longest time no till got an answer (every answer of the run,
/// merged), and the longest any one till waited between two answers.
fn outage(runs: &[TillRun]) -> (Duration, Duration) {
    let longest_gap = |mut times: Vec<Instant>| {
        times.sort();
        times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    };
    let all = runs.iter().flat_map(|r| r.answered.iter().map(|a| a.at));
    let nobody = longest_gap(all.collect());
    let one = runs
        .iter()
        .map(|r| longest_gap(r.answered.iter().map(|a| a.at).collect()))
        .max()
        .unwrap_or_default();
    (nobody, one)
}

/// Attempts retried with their key after a failure (a request in flight when the fault came
/// among them), and the answers they got.
fn retried(runs: &[TillRun]) -> usize {
    runs.iter()
        .flat_map(|r| &r.answered)
        .filter(|a| a.failed_before > 0)
        .count()
}

fn servers(database: &str, n: usize) -> Vec<ServerProcess> {
    (0..n)
        .map(|_| ServerProcess::start_on(database, &["--db-pool", "4", "--enroll-per-minute", "0"]))
        .collect()
}

const TILLS: usize = 6;

/// Two instances on the cluster's multi-host URL, six tills posting through both; the primary
/// is killed mid-load and the standby promoted at once. Meanwhile tills get `503
/// database_unavailable` with `Retry-After` and nothing else; then the instances find the new
/// primary by themselves and every purchase a till was answered for is in the ledger once.
#[test]
fn no_purchase_a_till_was_answered_for_is_lost_when_the_primary_dies() {
    rt().block_on(async {
        let mut cluster = Cluster::start();
        let database = cluster.database("loyalty");
        let mut instances = servers(&database, 2);
        let urls: Vec<String> = instances.iter().map(|s| s.url.clone()).collect();
        let tills = tills(&urls[0], TILLS).await;
        let load = Load::start(&tills, &urls);
        load.answered_after(Instant::now(), 10).await;

        let killed = Instant::now();
        cluster.kill_primary();
        cluster.promote_standby();
        let promoted = killed.elapsed();
        load.answered_after(killed, 10).await;
        let runs = load.finish().await;

        let refused = all_database_unavailable(&runs);
        check_ledger(&urls[1], &tills, &runs).await;
        assert!(
            instances.iter_mut().all(|s| s.running()),
            "no instance restarted"
        );
        let (nobody, one) = outage(&runs);
        let answered: usize = runs.iter().map(|r| r.answered.len()).sum();
        println!(
            "primary killed, standby promoted {} ms after the kill: no till answered for {} ms, \
             the longest a till waited {} ms; {answered} purchases answered, {} retried with \
             their key after a failure, {refused} answers 503",
            promoted.as_millis(),
            nobody.as_millis(),
            one.as_millis(),
            retried(&runs),
        );
    });
}

/// One of two instances is killed (SIGKILL) under load: its tills' requests in flight get no
/// answer, are retried with their key through the other instance, and every purchase answered
/// anywhere is in the ledger once.
#[test]
fn a_server_killed_under_load_leaves_its_tills_to_the_other_instance() {
    rt().block_on(async {
        let pg = postgres::Postgres::get();
        let database = pg.database();
        let mut instances = servers(&database, 2);
        let urls: Vec<String> = instances.iter().map(|s| s.url.clone()).collect();
        let tills = tills(&urls[1], TILLS).await;
        let load = Load::start(&tills, &urls);
        load.answered_after(Instant::now(), 10).await;

        let killed = Instant::now();
        instances.remove(0).kill9();
        load.answered_after(killed, 10).await;
        let runs = load.finish().await;

        let failures: Vec<&Failure> = runs.iter().flat_map(|r| &r.failures).collect();
        assert!(
            failures.iter().all(|f| matches!(f, Failure::Connection)),
            "only the killed instance failed: {failures:?}"
        );
        check_ledger(&urls[1], &tills, &runs).await;
        let (nobody, one) = outage(&runs);
        println!(
            "instance killed: no till answered for {} ms, the longest a till waited {} ms; {} \
             connections failed, {} purchases retried through the other instance",
            nobody.as_millis(),
            one.as_millis(),
            failures.len(),
            retried(&runs),
        );
    });
}

async fn readyz(url: &str) -> (u16, Option<String>, Value) {
    let response = reqwest::get(format!("{url}{}", paths::READYZ))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, retry_after, response.json().await.unwrap())
}

/// A purchase through `a` ends a phone's long poll on `b` (LISTEN/NOTIFY between instances, or
/// the wake-up of every poll when the listener has just reconnected), well before its 20 s wait.
async fn a_purchase_wakes_a_poll_on_the_other_instance(a: &str, b: &str) {
    let dir = tempfile::tempdir().unwrap();
    let op = OperatorClient::new(a, OPERATOR_TOKEN).unwrap();
    let (_, phone) = member_with_device(a, &op, &dir.path().join("p.db")).await;
    let credentials = phone.credentials().unwrap();
    let since = long_poll(b, &credentials, 0, 0).await.seq;
    let waiting = {
        let (b, credentials) = (b.to_string(), credentials.clone());
        tokio::spawn(async move { long_poll(&b, &credentials, since, 20).await })
    };
    // Let the poll reach B and start waiting before the purchase.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let till = TillClient::new(a, TILL_TOKEN, "till-feed").unwrap();
    let code = phone.checkout_code().unwrap();
    let session = till.scan(&code.text).await.unwrap().session_id;
    till.purchase(&purchase(&session, "feed-1", 1_000, 0))
        .await
        .unwrap();
    let answer = waiting.await.unwrap();
    assert!(answer.changed, "woken by the purchase: {answer:?}");
}

/// PostgreSQL is stopped and started again under load: meanwhile both instances say they are not
/// ready (`/readyz` 503, the database check failed) and tills get `503 database_unavailable`;
/// afterwards they are ready and serve again without being restarted, nothing answered is
/// lost, and the change feed between them works again.
#[test]
fn postgres_restarted_under_load_instances_recover_without_a_restart() {
    rt().block_on(async {
        let mut cluster = Cluster::start();
        let database = cluster.database("loyalty");
        let mut instances = servers(&database, 2);
        let urls: Vec<String> = instances.iter().map(|s| s.url.clone()).collect();
        for url in &urls {
            assert_eq!(readyz(url).await.0, 200);
        }
        let tills = tills(&urls[0], TILLS).await;
        let load = Load::start(&tills, &urls);
        load.answered_after(Instant::now(), 10).await;

        let stopped = Instant::now();
        cluster.stop_primary();
        for url in &urls {
            let (status, retry_after, body) = readyz(url).await;
            assert_eq!(status, 503, "{body}");
            assert!(retry_after.is_some());
            assert_eq!(body["checks"][0]["name"], "database", "{body}");
            assert_eq!(body["checks"][0]["ok"], false, "{body}");
        }
        cluster.start_primary();
        for url in &urls {
            eventually("the instance to be ready again", || async {
                readyz(url).await.0 == 200
            })
            .await;
        }
        let back = stopped.elapsed();
        load.answered_after(stopped, 10).await;
        let runs = load.finish().await;

        let refused = all_database_unavailable(&runs);
        check_ledger(&urls[0], &tills, &runs).await;
        a_purchase_wakes_a_poll_on_the_other_instance(&urls[0], &urls[1]).await;
        assert!(
            instances.iter_mut().all(|s| s.running()),
            "no instance restarted"
        );
        let (nobody, one) = outage(&runs);
        println!(
            "PostgreSQL restarted ({} ms from the stop to ready again): no till answered for {} \
             ms, the longest a till waited {} ms; {} retried with their key, {refused} answers 503",
            back.as_millis(),
            nobody.as_millis(),
            one.as_millis(),
            retried(&runs),
        );
    });
}
