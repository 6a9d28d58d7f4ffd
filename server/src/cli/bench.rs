//! `loyalty bench`: a load harness run as its own process against any running server or set of
//! servers. It enrolls real devices (the core's own `Device`, stores in a scratch folder), then for
//! a fixed time runs N devices syncing, M tills scanning shoppers' checkout codes and posting
//! purchases, and K phones on the long poll, spreading each kind over the servers in turn. It
//! prints a progress line each second and, at the end, throughput and latency percentiles per
//! operation (an HDR histogram, so p99.9 is exact to three significant figures).
//!
//! A shopper's code is single-use per 30-second step (a replay is refused), so each till keeps a
//! few shoppers and scans whichever has a fresh code; otherwise it posts the next purchase in the
//! session it already has, as a till does for a basket paid in two goes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use loyalty_core::Device;
use loyalty_core::api::PurchaseRequest;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use super::CliResult;
use loyalty_server::client::{OperatorClient, TillClient};

#[derive(Args)]
pub struct BenchArgs {
    /// The servers' base URLs, comma-separated; work is spread over them in turn.
    #[arg(
        long,
        env = "LOYALTY_SERVER",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    server: Vec<String>,
    /// The operator token (creates the bench's members).
    #[arg(long, env = "LOYALTY_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: String,
    /// The till token.
    #[arg(long, env = "LOYALTY_TILL_TOKEN", hide_env_values = true)]
    till_token: String,
    /// Devices syncing in a loop (one member each; every fifth sync carries a local edit).
    #[arg(long, default_value_t = 20)]
    devices: usize,
    /// Tills scanning and purchasing in a loop.
    #[arg(long, default_value_t = 4)]
    tills: usize,
    /// Shoppers (members with a phone) per till.
    #[arg(long, default_value_t = 4)]
    shoppers: usize,
    /// Phones holding a long poll open (one member each).
    #[arg(long, default_value_t = 0)]
    pollers: usize,
    /// Seconds of load after setup.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Where the devices' stores go (default: a new folder in the system's temporary folder,
    /// removed at the end).
    #[arg(long)]
    store_dir: Option<PathBuf>,
}

/// The operations measured, in the order they are printed.
/// A poll wake is timed from the previous wake (or the start): how long the phone waited, not a
/// response time; the report says so.
const KINDS: [&str; 4] = ["sync", "scan", "purchase", "poll wake"];

/// Latencies per operation (microseconds) and failures, shared by the workers.
struct Stats {
    histograms: Vec<Mutex<Histogram<u64>>>,
    counts: Vec<AtomicU64>,
    errors: AtomicU64,
}

impl Stats {
    fn new() -> Result<Self, String> {
        let mut histograms = Vec::new();
        for _ in KINDS {
            // 1 µs to 10 minutes, three significant figures.
            let h = Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| e.to_string())?;
            histograms.push(Mutex::new(h));
        }
        Ok(Self {
            histograms,
            counts: KINDS.iter().map(|_| AtomicU64::new(0)).collect(),
            errors: AtomicU64::new(0),
        })
    }

    async fn record(&self, kind: usize, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        self.histograms[kind].lock().await.saturating_record(micros);
        self.counts[kind].fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        // The first few say why; the rest are counted.
        if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("\n{what} failed: {error}");
        }
    }
}

pub async fn run(args: BenchArgs) -> CliResult {
    if args.server.is_empty() {
        return Err("--server needs at least one URL".into());
    }
    let scratch = match &args.store_dir {
        Some(dir) => Scratch::Kept(dir.clone()),
        None => Scratch::temporary()?,
    };
    std::fs::create_dir_all(scratch.path())
        .map_err(|e| format!("cannot create {}: {e}", scratch.path().display()))?;
    let op =
        OperatorClient::new(&args.server[0], &args.operator_token).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let devices = enroll_many(&args, &op, scratch.path(), "d", args.devices).await?;
    let shoppers = enroll_many(&args, &op, scratch.path(), "s", args.tills * args.shoppers).await?;
    let pollers = enroll_many(&args, &op, scratch.path(), "p", args.pollers).await?;
    eprintln!(
        "setup: {} devices, {} tills with {} shoppers each, {} pollers in {:.1} s",
        args.devices,
        args.tills,
        args.shoppers,
        args.pollers,
        started.elapsed().as_secs_f64()
    );
    let stats = Arc::new(Stats::new()?);
    let deadline = Instant::now() + Duration::from_secs(args.duration_s);
    let mut work = JoinSet::new();
    for device in devices {
        work.spawn(sync_loop(device, stats.clone(), deadline));
    }
    let run_id = format!("{:x}", rand_u64());
    let mut shoppers = shoppers.into_iter();
    for t in 0..args.tills {
        let url = &args.server[t % args.server.len()];
        let till = TillClient::new(url, &args.till_token, &format!("bench-{run_id}-{t}"))
            .map_err(|e| e.to_string())?;
        let mine: Vec<Device> = shoppers.by_ref().take(args.shoppers).collect();
        work.spawn(till_loop(
            till,
            mine,
            format!("{run_id}-{t}"),
            stats.clone(),
            deadline,
        ));
    }
    for (i, phone) in pollers.into_iter().enumerate() {
        let url = args.server[i % args.server.len()].clone();
        work.spawn(poll_loop(phone, url, stats.clone(), deadline));
    }
    let progress = tokio::spawn(progress(stats.clone(), deadline));
    while work.join_next().await.is_some() {}
    progress.abort();
    eprintln!();
    report(&stats, args.duration_s).await;
    Ok(())
}

/// `n` members with an enrolled device each, spread over the servers.
async fn enroll_many(
    args: &BenchArgs,
    op: &OperatorClient,
    dir: &std::path::Path,
    prefix: &str,
    n: usize,
) -> Result<Vec<Device>, String> {
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let member = op.create_member(None).await.map_err(|e| e.to_string())?;
        let device =
            Device::open(dir.join(format!("{prefix}{i}.db"))).map_err(|e| e.to_string())?;
        let url = &args.server[i % args.server.len()];
        device
            .enroll(url, &member.activation_code, "bench")
            .await
            .map_err(|e| {
                let hint = if e.to_string().contains("too_many_attempts") {
                    " (the server limits enrollments per address: run it with \
                     --enroll-per-minute 0 while benchmarking)"
                } else {
                    ""
                };
                format!("enrolling a bench device at {url}: {e}{hint}")
            })?;
        devices.push(device);
    }
    Ok(devices)
}

async fn sync_loop(device: Device, stats: Arc<Stats>, deadline: Instant) {
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        if i.is_multiple_of(5)
            && let Err(e) = device.set_preference("bench", &i.to_string())
        {
            stats.failed("a local edit", &e);
        }
        let start = Instant::now();
        match device.sync().await {
            Ok(_) => stats.record(0, start.elapsed()).await,
            Err(e) => stats.failed("a sync", &e),
        }
    }
}

async fn till_loop(
    till: TillClient,
    shoppers: Vec<Device>,
    name: String,
    stats: Arc<Stats>,
    deadline: Instant,
) {
    let mut used: Vec<Option<String>> = vec![None; shoppers.len()];
    let mut session: Option<String> = None;
    let mut j = 0u64;
    while Instant::now() < deadline {
        // A shopper whose current code has not been scanned yet, if any.
        let fresh = shoppers.iter().enumerate().find_map(|(k, phone)| {
            let code = phone.checkout_code().ok()?.text;
            (used[k].as_deref() != Some(code.as_str())).then_some((k, code))
        });
        if let Some((k, code)) = fresh {
            let start = Instant::now();
            match till.scan(&code).await {
                Ok(answer) => {
                    stats.record(1, start.elapsed()).await;
                    session = Some(answer.session_id);
                }
                Err(e) => stats.failed("a scan", &e),
            }
            used[k] = Some(code);
        }
        let Some(session_id) = session.clone() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        j += 1;
        let purchase = PurchaseRequest {
            session_id,
            idempotency_key: format!("bench-{name}-{j}"),
            receipt_id: format!("bench-{name}-{j}"),
            total_minor: 1_000,
            lines: Vec::new(),
            redeem_points: 0,
            redeem_minor: 0,
        };
        let start = Instant::now();
        match till.purchase(&purchase).await {
            Ok(_) => stats.record(2, start.elapsed()).await,
            Err(e) => stats.failed("a purchase", &e),
        }
    }
}

/// A phone watching for changes (the core's own long poll); each wake is timed from the poll's
/// start, so its latency is how long the phone waited, not a response time.
async fn poll_loop(phone: Device, url: String, stats: Arc<Stats>, deadline: Instant) {
    phone.use_server_url(&url);
    let mut changes = phone.subscribe();
    let watch = phone.watch();
    tokio::pin!(watch);
    let mut since = Instant::now();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            _ = tokio::time::sleep(left) => return,
            done = &mut watch => {
                if let Err(e) = done {
                    stats.failed("a long poll", &e);
                }
                return;
            }
            changed = changes.recv() => {
                if changed.is_ok() {
                    stats.record(3, since.elapsed()).await;
                    since = Instant::now();
                }
            }
        }
    }
}

async fn progress(stats: Arc<Stats>, deadline: Instant) {
    let start = Instant::now();
    let mut last: Vec<u64> = vec![0; KINDS.len()];
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now: Vec<u64> = stats
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let rates: Vec<String> = KINDS
            .iter()
            .zip(now.iter().zip(&last))
            .map(|(kind, (n, l))| format!("{kind} {}/s", n - l))
            .collect();
        eprint!(
            "\r{:>4.0} s of {:.0}: {}, {} errors   ",
            start.elapsed().as_secs_f64(),
            (deadline - start).as_secs_f64(),
            rates.join(", "),
            stats.errors.load(Ordering::Relaxed)
        );
        last = now;
    }
}

async fn report(stats: &Stats, duration_s: u64) {
    println!("| operation | count | per second | p50 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|---|---|");
    for (k, kind) in KINDS.iter().enumerate() {
        let h = stats.histograms[k].lock().await;
        if h.is_empty() {
            continue;
        }
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {kind} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            h.len(),
            h.len() as f64 / duration_s.max(1) as f64,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            h.max() as f64 / 1000.0
        );
    }
    if !stats.histograms[3].lock().await.is_empty() {
        println!(
            "(a poll wake's time is how long the phone waited for a change, not a response time)"
        );
    }
    println!("errors: {}", stats.errors.load(Ordering::Relaxed));
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // A failure leaves zeros: the run id only keeps two runs' till keys apart.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u64::from_le_bytes(bytes)
}

/// The folder holding the devices' stores: a temporary one is removed at the end.
enum Scratch {
    Kept(PathBuf),
    Temporary(PathBuf),
}

impl Scratch {
    fn temporary() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("loyalty-bench-{:x}", rand_u64()));
        Ok(Self::Temporary(dir))
    }

    fn path(&self) -> &std::path::Path {
        match self {
            Self::Kept(p) | Self::Temporary(p) => p,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Self::Temporary(p) = self {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}
