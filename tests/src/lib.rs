//! Test harness shared by the end-to-end tests and benchmarks: a real server on a free loopback
//! port (in this process, or as a separate `loyalty` process that can be killed), its database (a
//! SQLite file, or a PostgreSQL database when the run says so: [`backend`]), operators and
//! enrolled devices with their own store files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use loyalty_core::DocKind;
use loyalty_core::clock::Clock;
use loyalty_core::{Device, SystemClock};
use loyalty_server::client::OperatorClient;
use loyalty_server::{App, Config};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub mod backend;
pub mod memory;
pub mod node;
pub mod pg_cluster;
pub mod postgres;
pub mod race;

pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789";
pub const TILL_TOKEN: &str = "test-till-token-0123456789";

/// A server running inside the test process.
pub struct TestServer {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub database: PathBuf,
    /// The server's state, for tests that call the server's functions directly.
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(dir: &Path) -> Self {
        Self::start_with(
            dir.join("server.db"),
            "127.0.0.1:0",
            Arc::new(SystemClock),
            |_| {},
        )
        .await
    }

    /// Starts on `database` at `listen`, with `clock`, after `configure` adjusted the config.
    pub async fn start_with(
        database: PathBuf,
        listen: &str,
        clock: Arc<dyn Clock>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        Self::start_with_outbound(
            database,
            listen,
            clock,
            Arc::new(loyalty_server::outbound::LogOutbound),
            configure,
        )
        .await
    }

    /// As [`TestServer::start_with`], with the push/SMS/e-mail adapter the server sends through.
    pub async fn start_with_outbound(
        database: PathBuf,
        listen: &str,
        clock: Arc<dyn Clock>,
        outbound: Arc<dyn loyalty_server::outbound::Outbound>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let storage = backend::open_storage(&database).await;
        Self::start_on_storage(storage, database, listen, clock, outbound, configure).await
    }

    /// As [`TestServer::start_with_outbound`], on a storage already open (`database` only names
    /// it for a restart): for benchmarks that pick their database themselves.
    pub async fn start_on_storage(
        storage: Arc<dyn loyalty_server::storage::Storage>,
        database: PathBuf,
        listen: &str,
        clock: Arc<dyn Clock>,
        outbound: Arc<dyn loyalty_server::outbound::Outbound>,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::new(OPERATOR_TOKEN.into());
        config.till_token = TILL_TOKEN.into();
        // Tests enroll many phones and try wrong credentials from one address: the per-address
        // limits are off unless a test turns them on (tests/tests/e2e/edge.rs does).
        config.edge.enroll_per_minute = 0;
        config.edge.auth_failures_per_minute = 0;
        configure(&mut config);
        let listener = TcpListener::bind(listen).await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let app = App::builder(config, storage)
            .clock(clock)
            .outbound(outbound)
            .build();
        let served = app.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = loyalty_server::serve(listener, served, async {
                let _ = stopped.await;
            })
            .await;
        });
        Self {
            url: format!("http://{addr}"),
            addr,
            database,
            app,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server and waits until it has let go of its port and database.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            // A connection stuck mid-request could hold a graceful shutdown open; do not wait forever.
            if tokio::time::timeout(std::time::Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Starts again on the same port and database, as after a restart.
    pub async fn restart(mut self) -> Self {
        self.shutdown().await;
        let listen = self.addr.to_string();
        Self::start_with(
            self.database.clone(),
            &listen,
            Arc::new(SystemClock),
            |_| {},
        )
        .await
    }

    pub fn operator(&self) -> OperatorClient {
        OperatorClient::new(&self.url, OPERATOR_TOKEN).expect("operator client")
    }

    pub fn till(&self, till_id: &str) -> loyalty_server::client::TillClient {
        loyalty_server::client::TillClient::new(&self.url, TILL_TOKEN, till_id)
            .expect("till client")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Replaces a member's stored document with `bytes` through the storage traits, as a writer beside
/// the server would (the version moves on, so caches notice): how tests put a damaged or
/// overgrown document in place without writing SQL.
pub async fn overwrite_document(database: &Path, member_id: &str, kind: DocKind, bytes: Vec<u8>) {
    use loyalty_server::storage::{Commit, DocWrite};
    let storage = backend::open_storage(database).await;
    let stored = storage.load_documents(member_id, &[kind]).await.unwrap();
    let write = DocWrite {
        kind,
        expected_version: stored[0].version,
        bytes,
        append: false,
        new_epoch: None,
        summary: None,
        shows_revision: None,
    };
    let done = storage
        .commit(member_id, None, vec![write], Vec::new(), None)
        .await
        .unwrap();
    assert!(
        matches!(done, Commit::Committed),
        "the document moved meanwhile"
    );
}

/// The stored version of a member's document, read through the storage traits.
pub async fn document_version(database: &Path, member_id: &str, kind: DocKind) -> i64 {
    let storage = backend::open_storage(database).await;
    storage.load_documents(member_id, &[kind]).await.unwrap()[0].version
}

/// Damage below the storage traits, for the tests of what the server does with a database that
/// someone broke. The traits cannot write an unreadable row (that is their point), so this is the
/// one place tests write SQL, in each backend's dialect.
pub mod tamper {
    use std::path::Path;

    use crate::backend::{Backend, backend, database_for};

    /// Makes a member's points lots unreadable (SQLite: a number column holding text; PostgreSQL,
    /// which keeps its types: the column's NOT NULL dropped and the points nulled); how many.
    pub fn damage_lots(database: &Path, member_id: &str) -> usize {
        match backend() {
            Backend::Sqlite => sqlite(database)
                .execute(
                    "UPDATE lots SET points = 'garbage' WHERE member_id = ?1",
                    [member_id],
                )
                .unwrap(),
            Backend::Postgres => postgres_count(
                database,
                &format!(
                    "ALTER TABLE lots ALTER COLUMN points DROP NOT NULL;
                     WITH d AS (UPDATE lots SET points = NULL WHERE member_id = '{member_id}'
                                RETURNING 1)
                     SELECT count(*) FROM d"
                ),
            ),
        }
    }

    /// Replaces the bytes of all of a member's documents with garbage, leaving their versions
    /// and stored summaries as they were: any request that loads one of them fails. How many.
    pub fn garble_documents(database: &Path, member_id: &str) -> usize {
        match backend() {
            Backend::Sqlite => sqlite(database)
                .execute(
                    "UPDATE documents SET data = X'00FF00FF' WHERE member_id = ?1",
                    [member_id],
                )
                .unwrap(),
            Backend::Postgres => postgres_count(
                database,
                &format!(
                    "WITH d AS (UPDATE documents SET data = '\\x00ff00ff'::bytea
                                WHERE member_id = '{member_id}' RETURNING 1)
                     SELECT count(*) FROM d"
                ),
            ),
        }
    }

    fn sqlite(database: &Path) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(database).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn
    }

    /// Runs `sql` (ending in a count) on the PostgreSQL database `database` stands for.
    fn postgres_count(database: &Path, sql: &str) -> usize {
        let out = crate::postgres::psql(&database_for(database), sql);
        out.lines().last().unwrap_or_default().parse().unwrap()
    }
}

/// A multi-threaded runtime for a test to `block_on`: tests drive servers, tills and phones at once.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

/// A server with one member and their enrolled phone: the start of most device-side tests.
pub struct Enrolled {
    pub dir: tempfile::TempDir,
    pub server: TestServer,
    pub op: OperatorClient,
    pub member_id: String,
    pub phone: Device,
}

/// [`Enrolled`] on a fresh server (real clock) in a fresh folder.
pub async fn enrolled() -> Enrolled {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let op = server.operator();
    let (member_id, phone) = member_with_device(&server.url, &op, &dir.path().join("p.db")).await;
    Enrolled {
        dir,
        server,
        op,
        member_id,
        phone,
    }
}

/// The `loyalty` binary built next to the test executable (the test command builds it first).
pub fn loyalty_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/loyalty
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("loyalty");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bin loyalty` before the tests",
        bin.display()
    );
    bin
}

/// A `loyalty server` child process, for tests that kill it.
pub struct ServerProcess {
    pub url: String,
    child: Child,
}

impl ServerProcess {
    pub fn start(database: &Path, listen: &str) -> Self {
        Self::start_with_args(database, listen, &[])
    }

    /// As [`ServerProcess::start`], with more `loyalty server` flags.
    pub fn start_with_args(database: &Path, listen: &str, args: &[&str]) -> Self {
        Self::start_wrapped(&[], database, listen, args)
    }

    /// As [`ServerProcess::start_with_args`], run under `wrapper` (for example `valgrind
    /// --tool=callgrind`): the wrapper's command line comes first, then the server's.
    pub fn start_wrapped(wrapper: &[&str], database: &Path, listen: &str, args: &[&str]) -> Self {
        Self::spawn(wrapper, &backend::database_for(database), listen, args)
    }

    /// A server on `database` as given (a PostgreSQL URL, whatever this run's backend): for the
    /// tests of several instances sharing one database.
    pub fn start_on(database: &str, args: &[&str]) -> Self {
        Self::spawn(&[], database, "127.0.0.1:0", args)
    }

    fn spawn(wrapper: &[&str], database: &str, listen: &str, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(loyalty_bin());
                c
            }
            None => Command::new(loyalty_bin()),
        };
        let mut child = command
            .args(["server", "--listen", listen, "--database", database])
            .args(args)
            .env("LOYALTY_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("LOYALTY_TILL_TOKEN", TILL_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn loyalty server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
            .to_string();
        Self { url, child }
    }

    /// The server's process id, to read what it costs (`/proc/<pid>/...`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs (it has neither exited nor been killed).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no shutdown, no flush, no chance to finish anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn operator(&self) -> OperatorClient {
        OperatorClient::new(&self.url, OPERATOR_TOKEN).expect("operator client")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A long poll of the phone's changes on the server at `url` from `since`, waiting up to
/// `wait_s`; the answer of a poll the server accepted (anything else fails the test).
pub async fn long_poll(
    url: &str,
    phone: &loyalty_core::store::Credentials,
    since: u64,
    wait_s: u64,
) -> loyalty_core::api::ChangesResponse {
    long_poll_on(&reqwest::Client::new(), url, phone, since, wait_s).await
}

/// [`long_poll`] through `client`, so polls after the first reuse its connection (for a bench
/// that counts the server's work per poll, not a new connection's).
pub async fn long_poll_on(
    client: &reqwest::Client,
    url: &str,
    phone: &loyalty_core::store::Credentials,
    since: u64,
    wait_s: u64,
) -> loyalty_core::api::ChangesResponse {
    client
        .get(format!(
            "{url}/v1/members/{}/changes?since={since}&wait_s={wait_s}",
            phone.member_id
        ))
        .header(
            "authorization",
            loyalty_core::api::device_authorization(&phone.device_id, &phone.device_secret),
        )
        .send()
        .await
        .expect("the poll is answered")
        .error_for_status()
        .expect("a poll of the phone's own member")
        .json()
        .await
        .expect("a changes answer")
}

/// A new member and a device enrolled with its activation code and synced.
pub async fn member_with_device(
    url: &str,
    operator: &OperatorClient,
    store: &Path,
) -> (String, Device) {
    let member = operator.create_member(None).await.expect("create member");
    let device = Device::open(store).expect("open device store");
    device
        .enroll(url, &member.activation_code, "first phone")
        .await
        .expect("enroll");
    device.sync().await.expect("first sync");
    (member.member_id, device)
}

/// Another device of an existing member, enrolled with a fresh code and synced.
pub async fn second_device(
    url: &str,
    operator: &OperatorClient,
    member_id: &str,
    store: &Path,
) -> Device {
    let code = operator
        .activation_code(member_id)
        .await
        .expect("activation code");
    let device = Device::open(store).expect("open device store");
    device
        .enroll(url, &code.activation_code, "second phone")
        .await
        .expect("enroll");
    device.sync().await.expect("first sync");
    device
}

/// Sync requests written by hand, as a hostile or foreign client would send them.
pub mod raw {
    use automerge::sync::{BloomFilter, Have, Message, MessageVersion};
    use automerge::{AutoCommit, ReadDoc};
    use loyalty_core::protocol::{RequestEntry, SyncRequest, SyncResponse, sync_path};
    use loyalty_core::{Device, DocKind};

    /// A device's authorization header.
    pub fn auth(device: &Device) -> String {
        let c = device.credentials().expect("enrolled");
        loyalty_core::api::device_authorization(&c.device_id, &c.device_secret)
    }

    /// The server's copy of one of the device's member's documents, and its epoch.
    pub async fn document(url: &str, device: &Device, kind: DocKind) -> (AutoCommit, u64) {
        let member = device.credentials().expect("enrolled").member_id;
        let response = reqwest::Client::new()
            .get(format!("{url}/v1/members/{member}/documents/{kind}"))
            .header("authorization", auth(device))
            .send()
            .await
            .expect("document");
        assert_eq!(response.status(), 200);
        let epoch = response
            .headers()
            .get("x-loyalty-epoch")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("an epoch header");
        let bytes = response.bytes().await.expect("document bytes");
        (AutoCommit::load(&bytes).expect("loads"), epoch)
    }

    /// A one-entry sync body that offers `chunk` as a change of `kind` on top of `base` (the
    /// server's copy), the way Automerge's sync would.
    pub fn body_with(kind: DocKind, base: &mut AutoCommit, chunk: Vec<u8>) -> Vec<u8> {
        let heads = automerge::Change::try_from(&chunk[..])
            .map(|c| vec![c.hash()])
            .unwrap_or_default();
        let message = Message {
            heads,
            need: Vec::new(),
            have: vec![Have {
                last_sync: base.get_heads(),
                bloom: BloomFilter::default(),
            }],
            changes: vec![chunk].into(),
            flags: None,
            version: MessageVersion::V1,
        };
        SyncRequest {
            entries: vec![RequestEntry {
                doc: kind,
                epoch: 0,
                digest: loyalty_core::document::heads_digest(&base.get_heads()),
                message: Some(message.encode()),
            }],
        }
        .encode()
    }

    /// Posts a sync body as `device` and decodes the answer.
    pub async fn post_sync(url: &str, device: &Device, body: Vec<u8>) -> SyncResponse {
        let member = device.credentials().expect("enrolled").member_id;
        post_sync_as(url.to_string(), member, auth(device), body).await
    }

    /// [`post_sync`] with owned arguments, for requests sent from spawned tasks.
    pub async fn post_sync_as(
        url: String,
        member: String,
        auth: String,
        body: Vec<u8>,
    ) -> SyncResponse {
        let response = reqwest::Client::new()
            .post(format!("{url}{}", sync_path(&member)))
            .header("authorization", auth)
            .body(body)
            .send()
            .await
            .expect("sync");
        assert_eq!(response.status(), 200);
        SyncResponse::decode(&response.bytes().await.expect("body")).expect("a sync response")
    }

    /// The operations and changes in a document's history.
    pub fn history(doc: &AutoCommit) -> (u64, u64) {
        let stats = doc.stats();
        (stats.num_ops, stats.num_changes)
    }
}

pub fn offer(id: &str, title: &str) -> loyalty_core::api::PostOffer {
    let now = SystemClock.now_ms();
    loyalty_core::api::PostOffer {
        id: Some(id.into()),
        title: title.into(),
        description: format!("{title}, for members only"),
        terms: "One per receipt. Not combinable.".into(),
        valid_from_ms: now - 60_000,
        valid_until_ms: now + 14 * 86_400_000,
        needs_activation: true,
        reward: loyalty_core::offers::Reward::FixedPoints,
        value: 100,
        category: String::new(),
        min_spend_minor: 0,
        use_limit: 1,
    }
}

pub fn message(id: &str, subject: &str) -> loyalty_core::api::PostMessage {
    loyalty_core::api::PostMessage {
        id: Some(id.into()),
        channel: "inapp".into(),
        subject: subject.into(),
        body: format!("{subject}: the full text of the message, a few sentences long."),
        kind: Some("service".into()),
    }
}

// A shop: a server on a hand-moved clock with one member, their phone and a till.

use loyalty_core::api::PurchaseRequest;
use loyalty_core::checkout_code::{self, CheckoutCode};
use loyalty_core::clock::ManualClock;
use loyalty_server::client::{OperatorError, TillClient};

pub fn refusal(e: OperatorError) -> String {
    match e {
        OperatorError::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other}"),
    }
}

pub fn purchase(session: &str, key: &str, total_minor: i64, redeem: i64) -> PurchaseRequest {
    PurchaseRequest {
        session_id: session.into(),
        idempotency_key: key.into(),
        receipt_id: format!("R-{key}"),
        total_minor,
        lines: Vec::new(),
        redeem_points: redeem,
        redeem_minor: 0,
    }
}

pub struct Shop {
    pub dir: tempfile::TempDir,
    pub server: TestServer,
    pub clock: Arc<ManualClock>,
    pub member_id: String,
    pub phone: Device,
    pub till: TillClient,
}

/// A server on a hand-moved clock, one member with an enrolled, synced phone on the same clock.
pub async fn shop() -> Shop {
    shop_with(|_| {}).await
}

/// [`shop`] with the server's configuration adjusted by `configure`.
pub async fn shop_with(configure: impl FnOnce(&mut loyalty_server::Config)) -> Shop {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let server = TestServer::start_with(
        dir.path().join("s.db"),
        "127.0.0.1:0",
        clock.clone(),
        configure,
    )
    .await;
    let op = server.operator();
    let member = op.create_member(None).await.unwrap();
    let phone = Device::open_with_clock(dir.path().join("phone.db"), clock.clone()).unwrap();
    phone
        .enroll(&server.url, &member.activation_code, "phone")
        .await
        .unwrap();
    phone.sync().await.unwrap();
    let till = server.till("till-7");
    Shop {
        dir,
        server,
        clock,
        member_id: member.member_id,
        phone,
        till,
    }
}

impl Shop {
    /// A fresh code: the next time step, so it has never been scanned.
    pub fn next_code(&self) -> CheckoutCode {
        self.clock.advance(checkout_code::STEP_SECONDS * 1000);
        self.phone.checkout_code().unwrap()
    }

    /// The member's card as the operator sees it (caught up with the ledger).
    pub async fn card(&self) -> loyalty_core::card::Card {
        let view = self
            .server
            .operator()
            .member(&self.member_id)
            .await
            .unwrap();
        view.card.expect("the member has a card")
    }

    pub async fn balance(&self) -> i64 {
        self.card().await.balance
    }

    /// A second server instance on the shop's database and clock: its own member locks and
    /// writer, so only the database's guards keep the two apart.
    pub async fn second_instance(&self) -> TestServer {
        TestServer::start_with(
            self.server.database.clone(),
            "127.0.0.1:0",
            self.clock.clone(),
            |_| {},
        )
        .await
    }

    /// Another member with a phone enrolled and synced on the shop's clock.
    pub async fn another_member(&self, name: &str) -> (String, Device) {
        let member = self.server.operator().create_member(None).await.unwrap();
        let phone = Device::open_with_clock(
            self.dir.path().join(format!("{name}.db")),
            self.clock.clone(),
        )
        .unwrap();
        phone
            .enroll(&self.server.url, &member.activation_code, name)
            .await
            .unwrap();
        phone.sync().await.unwrap();
        (member.member_id, phone)
    }

    /// A fresh code of `phone` (on the shop's clock): the next time step.
    pub fn code_of(&self, phone: &Device) -> String {
        self.clock.advance(checkout_code::STEP_SECONDS * 1000);
        phone.checkout_code().unwrap().text
    }

    /// Gives the member `points` through a purchase.
    pub async fn earn(&self, points: i64) -> String {
        let session = self
            .till
            .scan(&self.next_code().text)
            .await
            .unwrap()
            .session_id;
        self.till
            .purchase(&purchase(
                &session,
                &format!("earn-{points}"),
                points * 100,
                0,
            ))
            .await
            .unwrap();
        session
    }
}

// What a request costs on the wire: a relay in front of the server.

/// A loopback TCP relay in front of a server that counts the bytes each way, headers included, and
/// keeps them until they are taken: what the HTTP exchange of a sync really costs (TCP/IP framing
/// excluded). Connections are relayed as they come; keep-alive works as without it.
pub struct WireTap {
    /// Point clients here instead of at the server.
    pub url: String,
    seen: Arc<std::sync::Mutex<(Vec<u8>, Vec<u8>)>>,
}

impl WireTap {
    pub async fn start(server: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let url = format!("http://{}", listener.local_addr().expect("tap addr"));
        let seen = Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new())));
        let relay = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = tokio::net::TcpStream::connect(server).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = upstream.into_split();
                tokio::spawn(pump(client_read, server_write, relay.clone(), true));
                tokio::spawn(pump(server_read, client_write, relay.clone(), false));
            }
        });
        Self { url, seen }
    }

    /// The bytes sent to the server and received from it since the last call.
    pub fn take(&self) -> (Vec<u8>, Vec<u8>) {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<std::sync::Mutex<(Vec<u8>, Vec<u8>)>>,
    upstream: bool,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        {
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            let side = if upstream { &mut seen.0 } else { &mut seen.1 };
            side.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// The HTTP/1.1 messages in `raw`, each as (lower-case header names, header bytes, body bytes):
/// the head up to and including the blank line, and a body of its `content-length`.
pub fn http_messages(raw: &[u8]) -> Vec<(Vec<String>, usize, usize)> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        let names: Vec<String> = head
            .lines()
            .skip(1)
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(n, _)| n.trim().to_ascii_lowercase())
            })
            .collect();
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let head_len = end + 4;
        out.push((names, head_len, length));
        rest = &rest[(head_len + length).min(rest.len())..];
    }
    out
}
