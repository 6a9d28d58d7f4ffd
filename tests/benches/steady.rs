//! The steady state's cost (issue 12 §7): server CPU for a sync when nothing changed, for members
//! with short and long histories (10, 200 and 2,000 inbox messages; 10, 100 and 1,000 purchases on
//! the card), and for a live update (a purchase, then the phone's sync that brings it) against the
//! purchase alone. Run with `cargo bench -p loyalty-tests --bench steady`; the figures go to
//! `docs/benchmarks.md`.
//!
//! The server runs in this process on a runtime of its own whose threads are named `server`; its
//! CPU is the sum of those threads' and the SQLite writer thread's time on a CPU, in nanoseconds
//! (`/proc/self/task/*/schedstat`), so the phone's and the till's own work is not counted and the
//! figure does not depend on what else the machine runs.

use std::sync::Arc;
use std::time::Duration;

use loyalty_core::Device;
use loyalty_core::clock::ManualClock;
use loyalty_tests::*;

/// The threads whose CPU is the server's, as `comm` names them: Linux keeps 15 bytes of a thread's
/// name, so the SQLite writer `loyalty-postings` is `loyalty-posting` there.
const SERVER_THREADS: [&str; 2] = ["server", "loyalty-posting"];

/// Nanoseconds the server's threads have spent on a CPU so far.
fn server_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            SERVER_THREADS.contains(&comm.trim())
        })
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// A member's history before the measurement.
struct History {
    label: &'static str,
    messages: usize,
    purchases: usize,
}

const HISTORIES: [History; 6] = [
    History {
        label: "10 inbox messages",
        messages: 10,
        purchases: 0,
    },
    History {
        label: "200 inbox messages",
        messages: 200,
        purchases: 0,
    },
    History {
        label: "2,000 inbox messages",
        messages: 2_000,
        purchases: 0,
    },
    History {
        label: "10 purchases",
        messages: 0,
        purchases: 10,
    },
    History {
        label: "100 purchases",
        messages: 0,
        purchases: 100,
    },
    History {
        label: "1,000 purchases",
        messages: 0,
        purchases: 1_000,
    },
];

/// No-op syncs per history, and purchases with and without their live update.
const IDLE_SYNCS: u32 = 1_000;
const LIVE_UPDATES: u32 = 100;

fn main() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("server")
        // Threads that exit take their CPU time out of the per-thread sums: keep them.
        .thread_keep_alive(Duration::from_secs(3_600))
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("client")
        .enable_all()
        .build()
        .expect("client runtime");
    println!(
        "| member's history | no-op sync | scan | purchase | live update (poll woken + sync) | ÷ purchase | ÷ scan + purchase |"
    );
    println!("|---|---|---|---|---|---|---|");
    // `STEADY_HISTORIES=0,3` measures those histories only (for a profiler's run).
    let chosen: Option<Vec<usize>> = std::env::var("STEADY_HISTORIES")
        .ok()
        .map(|v| v.split(',').filter_map(|i| i.trim().parse().ok()).collect());
    for (i, history) in HISTORIES.iter().enumerate() {
        if chosen.as_ref().is_some_and(|c| !c.contains(&i)) {
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let server = server_rt.block_on(TestServer::start_with(
            dir.path().join("s.db"),
            "127.0.0.1:0",
            clock.clone(),
            |_| {},
        ));
        client_rt.block_on(measure(history, &server, &clock, dir.path()));
        server_rt.block_on(server.stop());
    }
}

async fn measure(
    history: &History,
    server: &TestServer,
    clock: &Arc<ManualClock>,
    dir: &std::path::Path,
) {
    let op = server.operator();
    let member = op.create_member(None).await.expect("member");
    let phone = Device::open_with_clock(dir.join("phone.db"), clock.clone()).expect("phone");
    phone
        .enroll(&server.url, &member.activation_code, "phone")
        .await
        .expect("enroll");
    let till = server.till("till-1");
    for i in 0..history.messages {
        op.post_message(
            &member.member_id,
            &message(&format!("m{i}"), &format!("Message {i}")),
        )
        .await
        .expect("message");
    }
    for i in 0..history.purchases {
        buy(&phone, &till, clock, &format!("history-{i}")).await;
    }
    // Settled: the phone has everything, and the server knows every document's summary.
    phone.sync().await.expect("sync");
    phone.sync().await.expect("sync");

    // `STEADY_IDLE_SYNCS=N` runs N instead (fewer for a profiler's run).
    let idle_syncs = std::env::var("STEADY_IDLE_SYNCS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(IDLE_SYNCS)
        .max(1);
    let before = server_cpu_ns();
    for _ in 0..idle_syncs {
        let report = phone.sync().await.expect("sync");
        assert!(report.changed.is_empty(), "not a no-op: {report:?}");
    }
    let idle_ns = (server_cpu_ns() - before) / u64::from(idle_syncs);

    // Alternately: a purchase with no phone watching (the purchase alone: the till's scan, then
    // its purchase), and a live update — the phone's long poll held while the till scans and
    // buys, answered by the purchase, and the sync that brings the purchase. The live update's
    // cost is the second minus the first (the scan and the purchase are in both).
    let credentials = phone.credentials().expect("enrolled");
    let polls = reqwest::Client::new();
    let (mut scan_ns, mut purchase_ns, mut live_ns) = (0, 0, 0);
    for i in 0..LIVE_UPDATES {
        let (scanned, bought) = buy(&phone, &till, clock, &format!("alone-{i}")).await;
        scan_ns += scanned;
        purchase_ns += bought;
        // Settled again, and the feed's position now, outside the measurement.
        phone.sync().await.expect("sync");
        let since = long_poll_on(&polls, &server.url, &credentials, 0, 0)
            .await
            .seq;
        let before = server_cpu_ns();
        let poll = tokio::spawn({
            let (polls, url, credentials) =
                (polls.clone(), server.url.clone(), credentials.clone());
            async move { long_poll_on(&polls, &url, &credentials, since, 25).await }
        });
        // The poll is held before the till starts.
        let held = std::time::Instant::now();
        while server.app.live.open_polls() == 0 {
            assert!(
                held.elapsed() < Duration::from_secs(10),
                "the poll is never held"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        buy(&phone, &till, clock, &format!("live-{i}")).await;
        assert!(
            poll.await.expect("poll").changed,
            "the purchase wakes the poll"
        );
        let report = phone.sync().await.expect("sync");
        assert_eq!(report.changed, [loyalty_core::DocKind::Card], "{report:?}");
        live_ns += server_cpu_ns() - before;
    }
    let n = u64::from(LIVE_UPDATES);
    let (scan, purchase) = (scan_ns / n, purchase_ns / n);
    let update = (live_ns / n).saturating_sub(scan + purchase);
    println!(
        "| {} | {} µs | {} µs | {} µs | {} µs | {:.2} | {:.2} |",
        history.label,
        idle_ns / 1_000,
        scan / 1_000,
        purchase / 1_000,
        update / 1_000,
        update as f64 / purchase.max(1) as f64,
        update as f64 / (scan + purchase).max(1) as f64,
    );
}

/// One purchase of 1.00 at the till with a fresh code from the phone; the server's CPU for the
/// scan and for the purchase.
async fn buy(
    phone: &Device,
    till: &loyalty_server::client::TillClient,
    clock: &ManualClock,
    key: &str,
) -> (u64, u64) {
    clock.advance(loyalty_core::checkout_code::STEP_SECONDS * 1000);
    let code = phone.checkout_code().expect("code");
    let start = server_cpu_ns();
    let session = till.scan(&code.text).await.expect("scan").session_id;
    let scanned = server_cpu_ns();
    till.purchase(&purchase(&session, key, 100, 0))
        .await
        .expect("purchase");
    (scanned - start, server_cpu_ns() - scanned)
}
