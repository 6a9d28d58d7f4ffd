//! Long-poll benchmark: what idle phones on the long poll cost a `loyalty server` process.
//!
//! For 0, 1,000, 10,000 and 50,000 phones each holding `GET /v1/members/{id}/changes?wait_s=60`
//! open (every phone its own member and device, none of them buying): durable purchases per second
//! from 100 concurrent tills, the server's CPU per purchase, the server's CPU while only the polls
//! are open, and the server's memory per waiting phone (RSS over the no-poll baseline). The server
//! is its own process; the tills and the phones are this one, so the server's figures are its own.
//!
//! ```sh
//! cargo build --release --bin loyalty
//! cargo bench -p loyalty-tests --bench longpoll            # LONGPOLL_LEVELS=0,1000 for fewer
//! ```
//!
//! With `LONGPOLL_CALLGRIND=1` the server runs under `valgrind --tool=callgrind` and the figure is
//! the server's instructions per purchase (counters zeroed and dumped around each level's
//! purchases with `callgrind_control`): a count the machine's other load cannot move. Use it with
//! fewer purchases (`LONGPOLL_PER_TILL=10`).
//!
//! 50,000 connections need 50,000 file descriptors on each side: the benchmark raises its open-file
//! limit (with `CAP_SYS_RESOURCE` beyond the hard limit; otherwise run it under `ulimit -n 120000`)
//! and the server, its child, inherits it; a level that does not fit is replaced by the largest
//! that does, and says so. One source address reaches one server port from about 28,000 ephemeral
//! ports, so the phones connect from 127.0.0.2 to 127.0.0.5 in turn.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loyalty_core::Device;
use loyalty_core::api::{ChangesResponse, EnrollResponse, PurchaseRequest, device_authorization};
use loyalty_server::client::{OperatorClient, TillClient};
use loyalty_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const TILLS: usize = 100;
/// Purchases each till posts, one after the other: few enough that the level is over before the
/// first polls run out their 60 s.
const PER_TILL: usize = 50;
/// Every level between two runs with no poll, so each is compared with its neighbours: the
/// machine's other load and the database's growth move the figures over a run.
const LEVELS: [usize; 7] = [0, 1_000, 0, 10_000, 0, 50_000, 0];
/// Setup requests in flight at once.
const SETUP_CONCURRENCY: usize = 32;
const FILE_LIMIT: u64 = 120_000;

fn main() {
    let file_limit = raise_file_limit();
    let wanted: Vec<usize> = std::env::var("LONGPOLL_LEVELS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| LEVELS.to_vec());
    // Each poll is a descriptor here and one in the server (which inherits this limit); keep
    // room for the tills, the database and the runtime.
    let fits = usize::try_from(file_limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(2_000)
        / 1_000
        * 1_000;
    let mut levels = Vec::new();
    for n in wanted {
        if n <= fits {
            levels.push(n);
        } else {
            eprintln!(
                "{n} polls do not fit the open-file limit ({file_limit}); running {fits} instead \
                 (raise it: ulimit -n 120000, as root or through limits.conf)"
            );
            levels.push(fits);
        }
    }
    let per_till = env_number("LONGPOLL_PER_TILL", PER_TILL);
    let callgrind = std::env::var_os("LONGPOLL_CALLGRIND").is_some();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(levels, per_till, callgrind));
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(levels: Vec<usize>, per_till: usize, callgrind: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let most = levels.iter().copied().max().unwrap_or(0);
    let max_connections = (most + TILLS + 1_000).to_string();
    let db = dir.path().join("s.db");
    let args = [
        "--max-connections",
        &max_connections,
        // Setup enrolls tens of thousands of phones from one address.
        "--enroll-per-minute",
        "0",
    ];
    let server = ServerProcess::start_with_args(&db, "127.0.0.1:0", &args);
    let op = server.operator();
    let start = Instant::now();
    let phones = waiting_phones(&server.url, &op, most).await;
    eprintln!(
        "setup: {most} members and phones in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    // Under callgrind the server runs fifty times slower: it is set up natively, then started
    // again on the same database under callgrind.
    let server = if callgrind {
        drop(server);
        let out_file = format!("--callgrind-out-file={}/cg.out", dir.path().display());
        ServerProcess::start_wrapped(
            // The server's blocking pool may run hundreds of threads; valgrind's default is 500.
            &[
                "valgrind",
                "--tool=callgrind",
                "--max-threads=2000",
                &out_file,
            ],
            &db,
            "127.0.0.1:0",
            &args,
        )
    } else {
        server
    };
    let pid = server.pid();
    let addr: SocketAddr = server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("server address");
    let op = server.operator();

    if callgrind {
        println!("| idle long polls | server instructions per purchase (callgrind) |");
        println!("|---|---|");
    } else {
        println!(
            "| idle long polls | purchases/s | server CPU per purchase | server CPU, polls only | server heap (RssAnon) | per waiting phone |"
        );
        println!("|---|---|---|---|---|---|");
    }
    let mut baseline_kb = None;
    for (round, &n) in levels.iter().enumerate() {
        let label = n.to_string();
        let tills = tills(&server.url, &op, dir.path(), round).await;
        let heard = Arc::new(Heard::default());
        let started = Instant::now();
        let polls = open_polls(addr, &phones[..n], heard.clone()).await;
        // Every poll taken in and waiting; then see what waiting alone costs.
        settle(pid).await;
        if callgrind {
            callgrind_control(&["-z", &pid.to_string()]);
            purchases(round, per_till, tills).await;
            let ir = callgrind_dump(pid, dir.path());
            println!("| {label} | {:.0} |", ir as f64 / (TILLS * per_till) as f64);
        } else {
            let idle_cpu = cpu_s(pid);
            tokio::time::sleep(Duration::from_secs(2)).await;
            let idle = cpu_s(pid) - idle_cpu;
            let heap = rss_anon_kb(pid);
            let cpu_before = cpu_s(pid);
            let rate = purchases(round, per_till, tills).await;
            let cpu_per = (cpu_s(pid) - cpu_before) * 1e6 / (TILLS * per_till) as f64;
            let base = *baseline_kb.get_or_insert(heap);
            let per_phone = if n > 0 {
                format!("{:.1} KiB", heap.saturating_sub(base) as f64 / n as f64)
            } else {
                "—".into()
            };
            println!(
                "| {label} | {rate:.0} | {cpu_per:.0} µs | {:.1}% of a core | {:.0} MiB | {per_phone} |",
                idle / 2.0 * 100.0,
                heap as f64 / 1024.0
            );
        }
        assert_eq!(
            heard.changed.load(Ordering::SeqCst),
            0,
            "a change woke polls of members who did not change"
        );
        let wal = std::fs::metadata(dir.path().join("s.db-wal")).map_or(0, |m| m.len());
        eprintln!("after {n} polls: write-ahead log {} KiB", wal / 1024);
        let timed_out = heard.timed_out.load(Ordering::SeqCst);
        if timed_out > 0 {
            eprintln!(
                "{n} polls: {timed_out} ran out their wait and polled again within the level ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
        drop(polls);
        // The server lets go of closed polls; then the next level starts from none.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    drop(server);
}

fn callgrind_control(args: &[&str]) {
    let status = std::process::Command::new("callgrind_control")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("callgrind_control (valgrind) is installed");
    assert!(status.success(), "callgrind_control {args:?} failed");
}

/// Dumps the server's counts since the last zeroing and returns its instructions.
fn callgrind_dump(pid: u32, dir: &std::path::Path) -> u64 {
    let before: Vec<_> = dumps(dir);
    callgrind_control(&["-d", &pid.to_string()]);
    let dump = dumps(dir)
        .into_iter()
        .find(|d| !before.contains(d))
        .expect("a new callgrind dump");
    let text = std::fs::read_to_string(&dump).expect("read dump");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("instruction total in the dump")
}

fn dumps(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().contains("cg.out"))
                .collect()
        })
        .unwrap_or_default()
}

/// A phone waiting on the long poll: its member and device credentials.
struct Phone {
    member_id: String,
    authorization: String,
}

/// `n` members, each with one enrolled device, made through the API.
async fn waiting_phones(url: &str, op: &OperatorClient, n: usize) -> Vec<Arc<Phone>> {
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let http = reqwest::Client::new();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await.expect("gate");
        let code = op
            .create_member(None)
            .await
            .expect("member")
            .activation_code;
        let http = http.clone();
        let url = format!("{url}/v1/enroll");
        tasks.spawn(async move {
            let enrolled: EnrollResponse = http
                .post(url)
                .json(&serde_json::json!({
                    "activation_code": code,
                    "device_name": format!("phone {i}"),
                    "public_key": public_key(),
                }))
                .send()
                .await
                .expect("enroll")
                .json()
                .await
                .expect("enrolled");
            drop(permit);
            Arc::new(Phone {
                member_id: enrolled.member_id,
                authorization: device_authorization(&enrolled.device_id, &enrolled.device_secret),
            })
        });
    }
    let mut phones = Vec::with_capacity(n);
    while let Some(phone) = tasks.join_next().await {
        phones.push(phone.expect("phone"));
    }
    phones
}

/// A fresh Ed25519 public key in hex.
fn public_key() -> String {
    use ring::signature::KeyPair;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    pair.public_key()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the waiting phones heard while a level ran.
#[derive(Default)]
struct Heard {
    /// Polls answered `changed: true`: none of the waiting members changes, so any is a defect.
    changed: AtomicUsize,
    /// Polls that ran out their 60 s and polled again: what idle phones cost besides waiting.
    timed_out: AtomicUsize,
}

/// Opens a long poll for each phone; they re-poll until the returned set is dropped. Every phone
/// first connects and learns its sequence number (a poll that waits not at all); then all start
/// waiting together, so none has waited long when the purchases start.
async fn open_polls(addr: SocketAddr, phones: &[Arc<Phone>], heard: Arc<Heard>) -> JoinSet<()> {
    let connected = Arc::new(AtomicUsize::new(0));
    let arm = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::new(Semaphore::new(256));
    let mut polls = JoinSet::new();
    for (i, phone) in phones.iter().enumerate() {
        let source = Ipv4Addr::new(127, 0, 0, 2 + (i % 4) as u8);
        let permit = gate.clone().acquire_owned().await.expect("gate");
        let (phone, connected, arm, heard) =
            (phone.clone(), connected.clone(), arm.clone(), heard.clone());
        polls.spawn(async move {
            let armed = arm.notified();
            if let Err(e) = hold_poll(addr, source, &phone, permit, &connected, armed, &heard).await
            {
                panic!("a waiting phone failed: {e}");
            }
        });
    }
    while connected.load(Ordering::SeqCst) < phones.len() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    arm.notify_waiters();
    polls
}

/// One phone's poll loop on a kept-alive connection: a first poll that waits not at all gives the
/// sequence number; after `armed`, polls wait 60 s each.
async fn hold_poll(
    addr: SocketAddr,
    source: Ipv4Addr,
    phone: &Phone,
    permit: tokio::sync::OwnedSemaphorePermit,
    connected: &AtomicUsize,
    armed: tokio::sync::futures::Notified<'_>,
    heard: &Heard,
) -> std::io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let mut stream = socket.connect(addr).await?;
    let mut buf = Vec::with_capacity(512);
    let mut poll = async |since: u64, wait_s: u64| -> std::io::Result<ChangesResponse> {
        let request = format!(
            "GET /v1/members/{}/changes?since={since}&wait_s={wait_s} HTTP/1.1\r\nHost: bench\r\nAuthorization: {}\r\n\r\n",
            phone.member_id, phone.authorization
        );
        stream.write_all(request.as_bytes()).await?;
        let body = read_answer(&mut stream, &mut buf).await?;
        serde_json::from_slice(&body).map_err(|e| {
            std::io::Error::other(format!("{e}: {:?}", String::from_utf8_lossy(&body)))
        })
    };
    let mut since = poll(0, 0).await?.seq;
    drop(permit);
    connected.fetch_add(1, Ordering::SeqCst);
    armed.await;
    loop {
        let answer = poll(since, 60).await?;
        let counter = if answer.changed {
            &heard.changed
        } else {
            &heard.timed_out
        };
        counter.fetch_add(1, Ordering::SeqCst);
        since = answer.seq;
    }
}

/// Waits until the server is idle (under 2% of a core over a second), up to a minute: the polls
/// just sent have all been taken in and are waiting.
async fn settle(pid: u32) {
    for _ in 0..60 {
        let before = cpu_s(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        if cpu_s(pid) - before < 0.02 {
            return;
        }
    }
    eprintln!("the server did not settle within a minute");
}

/// The body of one answer on a kept-alive connection.
async fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    buf.clear();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("the server closed a poll"));
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(std::io::Error::other(head));
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return Ok(buf[end + 4..end + 4 + length].to_vec());
        }
    }
}

/// 100 tills, each with a checkout session for its own new member.
async fn tills(
    url: &str,
    op: &OperatorClient,
    dir: &std::path::Path,
    round: usize,
) -> Vec<(TillClient, String)> {
    let mut tills = Vec::new();
    for i in 0..TILLS {
        let member = op.create_member(None).await.expect("member");
        let phone = Device::open(dir.join(format!("r{round}-p{i}.db"))).expect("phone");
        phone
            .enroll(url, &member.activation_code, "till bench")
            .await
            .expect("enroll");
        let till = TillClient::new(url, TILL_TOKEN, &format!("till-{i}")).expect("till");
        let code = phone.checkout_code().expect("code").text;
        let session = till.scan(&code).await.expect("scan").session_id;
        tills.push((till, session));
    }
    tills
}

/// Every till posts `per_till` purchases one after another, all tills at once: purchases per
/// second.
async fn purchases(round: usize, per_till: usize, tills: Vec<(TillClient, String)>) -> f64 {
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, (till, session)) in tills.into_iter().enumerate() {
        tasks.spawn(async move {
            for j in 0..per_till {
                let p = PurchaseRequest {
                    session_id: session.clone(),
                    idempotency_key: format!("r{round}-t{i}-p{j}"),
                    receipt_id: format!("r{round}-t{i}-r{j}"),
                    total_minor: 1_000,
                    lines: Vec::new(),
                    redeem_points: 0,
                    redeem_minor: 0,
                };
                till.purchase(&p).await.expect("purchase");
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.expect("till");
    }
    (TILLS * per_till) as f64 / start.elapsed().as_secs_f64()
}

/// Seconds of CPU the process has used (user and system), from `/proc/PID/stat`.
fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// The process's resident anonymous memory (its heap and stacks, not the database file it maps)
/// in KiB, from `/proc/PID/status`.
fn rss_anon_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Raises this process's open-file limit (and so the server's, a child) to [`FILE_LIMIT`]: as root
/// beyond the hard limit, otherwise up to it.
fn raise_file_limit() -> u64 {
    use rlimit::Resource;
    if rlimit::setrlimit(Resource::NOFILE, FILE_LIMIT, FILE_LIMIT).is_err() {
        let _ = rlimit::increase_nofile_limit(FILE_LIMIT);
    }
    let (soft, _) = rlimit::getrlimit(Resource::NOFILE).unwrap_or((0, 0));
    eprintln!("open-file limit: {soft}");
    soft
}
