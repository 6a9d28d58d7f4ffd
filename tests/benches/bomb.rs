//! Bomb benchmark: what a refused run-length bomb costs the server, in CPU and peak memory, with
//! 1 M and 10 M operations (target: under 50 ms and under 10 MB each), beside what honest syncs
//! cost and what applying the same change would have cost. The server runs as its own process
//! (`loyalty server`, release build) and is measured from outside: CPU from the schedstat of all
//! its threads (nanoseconds), peak memory from its VmHWM, which is reset before each measurement
//! (`/proc/<pid>/clear_refs`), so each figure is how far that request took the peak above what
//! the process held before it.
//!
//! Run: `cargo build --release --bin loyalty && cargo bench -p loyalty-tests --bench bomb`.
//! The figures go to `docs/benchmarks.md`.

use std::time::Instant;

use automerge::AutoCommit;
use automerge::sync::SyncDoc;
use loyalty_core::protocol::Reply;
use loyalty_core::{DocKind, forge};
use loyalty_tests::memory::{reset_peak, status_kib};
use loyalty_tests::*;

/// Requests of each kind measured; the figure is their mean.
const ROUNDS: u32 = 20;

/// CPU time of all of a process's threads so far, in nanoseconds.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn refusal(reply: &Reply) -> String {
    match reply {
        Reply::Rejected(r) => r.code.clone(),
        other => format!("not refused: {other:?}"),
    }
}

struct Cost {
    cpu_ms: f64,
    hwm_mb: f64,
}

/// Runs `request` ROUNDS times against the server process and returns the mean CPU per request
/// and how far the server's peak memory rose above what it held before.
async fn measure<F, Fut>(pid: u32, mut request: F) -> Cost
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let pid_s = pid.to_string();
    let (cpu0, hwm0) = (cpu_ns(pid), reset_peak(&pid_s));
    for _ in 0..ROUNDS {
        request().await;
    }
    let (cpu1, hwm1) = (cpu_ns(pid), status_kib(&pid_s, "VmHWM:"));
    Cost {
        cpu_ms: (cpu1 - cpu0) as f64 / f64::from(ROUNDS) / 1e6,
        hwm_mb: (hwm1.saturating_sub(hwm0)) as f64 / 1024.0,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = ServerProcess::start(&dir.path().join("server.db"), "127.0.0.1:0");
        let pid = server.pid();
        let op = server.operator();
        let (_, phone) = member_with_device(&server.url, &op, &dir.path().join("p.db")).await;
        for i in 0..20 {
            phone.set_preference("warm", &i.to_string()).expect("edit");
            phone.sync().await.expect("sync");
        }
        let (stored, _) = raw::document(&server.url, &phone, DocKind::Member).await;

        println!("| request | request bytes | answer | server CPU per request | server peak memory growth |");
        println!("|---|---|---|---|---|");
        let row = |what: &str, bytes: usize, answer: &str, c: &Cost| {
            println!(
                "| {what} | {bytes} | {answer} | {:.2} ms | {:.1} MB |",
                c.cpu_ms, c.hwm_mb
            );
        };
        let honest = measure(pid, || async { phone.sync().await.map(|_| ()).expect("sync") }).await;
        row("honest: nothing changed (a whole sync)", 42, "in sync", &honest);
        let mut n = 0;
        let honest = measure(pid, || {
            n += 1;
            phone.set_preference("store", &n.to_string()).expect("edit");
            async { phone.sync().await.map(|_| ()).expect("sync") }
        })
        .await;
        row("honest: one local edit (a whole sync)", 270, "stored", &honest);
        for (shape, ops) in [
            ("overwrites", 1_000_000u64),
            ("overwrites", 10_000_000),
            ("list of nulls", 1_000_000),
            ("list of nulls", 10_000_000),
        ] {
            let mut base = stored.clone();
            let bomb = match shape {
                "overwrites" => forge::overwrites(&mut base.clone(), "email", ops),
                _ => forge::list_of_nulls(&mut base.clone(), "junk", ops),
            };
            let body = raw::body_with(DocKind::Member, &mut base, bomb);
            let len = body.len();
            let answers = std::sync::Mutex::new(Vec::new());
            let cost = measure(pid, || {
                let body = body.clone();
                let (url, phone, answers) = (&server.url, &phone, &answers);
                async move {
                    let a = raw::post_sync(url, phone, body).await;
                    if let Ok(mut v) = answers.lock() {
                        v.push(refusal(&a.entries[0].reply));
                    }
                }
            })
            .await;
            let mut answers = answers.into_inner().unwrap_or_default();
            answers.dedup();
            let answer = answers.join(", ");
            row(
                &format!("bomb: {} M operations ({shape})", ops / 1_000_000),
                len,
                &answer,
                &cost,
            );
        }
        // A burst: sixteen 10 M bombs at once.
        let mut base = stored.clone();
        let bomb = forge::overwrites(&mut base.clone(), "email", 10_000_000);
        let body = raw::body_with(DocKind::Member, &mut base, bomb);
        let pid_s = pid.to_string();
        let (cpu0, hwm0) = (cpu_ns(pid), reset_peak(&pid_s));
        let member = phone.credentials().expect("enrolled").member_id;
        let auth = raw::auth(&phone);
        let burst: Vec<_> = (0..16)
            .map(|_| {
                raw::post_sync_as(server.url.clone(), member.clone(), auth.clone(), body.clone())
            })
            .collect();
        for a in futures_join(burst).await {
            assert_eq!(refusal(&a.entries[0].reply), "too_many_operations");
        }
        let (cpu1, hwm1) = (cpu_ns(pid), status_kib(&pid_s, "VmHWM:"));
        println!(
            "| burst: 16 × 10 M bombs at once | {} each | too_many_operations | {:.2} ms each | {:.1} MB |",
            body.len(),
            (cpu1 - cpu0) as f64 / 16.0 / 1e6,
            hwm1.saturating_sub(hwm0) as f64 / 1024.0
        );
        println!();
        println!(
            "server process: peak memory {} MB, memory now {} MB",
            status_kib(&pid_s, "VmHWM:") / 1024,
            status_kib(&pid_s, "VmRSS:") / 1024
        );
        drop(phone);
        server.kill9();

        // What the server did before it counted: apply the change, then validate. Measured in
        // this process on the same document.
        println!();
        println!(
            "| applying the bomb instead (what the server did before; 10 M takes minutes) | CPU | peak memory growth |"
        );
        println!("|---|---|---|");
        for (shape, ops) in [("overwrites", 1_000_000u64), ("list of nulls", 1_000_000)] {
            let mut doc: AutoCommit = stored.clone();
            let bomb = match shape {
                "overwrites" => forge::overwrites(&mut doc.clone(), "email", ops),
                _ => forge::list_of_nulls(&mut doc.clone(), "junk", ops),
            };
            let hwm0 = reset_peak("self");
            let cpu0 = cpu_ns(std::process::id());
            let start = Instant::now();
            let message = automerge::sync::Message {
                heads: Vec::new(),
                need: Vec::new(),
                have: Vec::new(),
                changes: vec![bomb].into(),
                flags: None,
                version: automerge::sync::MessageVersion::V1,
            };
            let mut state = automerge::sync::State::new();
            doc.sync()
                .receive_sync_message(&mut state, message)
                .expect("applies");
            let _ = loyalty_core::member::validate(&doc, doc.clone().save().len());
            let cpu = cpu_ns(std::process::id()) - cpu0;
            println!(
                "| {} M operations ({shape}) | {:.1} s ({:.1} s wall) | {} MB |",
                ops / 1_000_000,
                cpu as f64 / 1e9,
                start.elapsed().as_secs_f64(),
                status_kib("self", "VmHWM:").saturating_sub(hwm0) / 1024
            );
        }
    });
}

/// Awaits all futures at once (each on its own task, so they are in flight together).
async fn futures_join<T: Send + 'static>(
    futures: Vec<impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
