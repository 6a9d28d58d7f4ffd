//! Checkout benchmark. Run with `cargo bench -p loyalty-tests --bench checkout`.
//!
//! 1. Code generation on the device (sign + Base45 + QR matrix) against the raw cost of one ring
//!    Ed25519 signature plus one qrcodegen encode of the same text, as a ratio in one run.
//! 2. Scans and durable purchases per second on the embedded server with 100 concurrent tills.
//!
//! `CHECKOUT_BENCH=codes` runs part 1 only, e.g. under `valgrind --tool=callgrind` for instruction
//! counts (see `docs/benchmarks.md`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use loyalty_core::Device;
use loyalty_core::api::PurchaseRequest;
use loyalty_core::checkout_code::STEP_SECONDS;
use loyalty_core::clock::ManualClock;
use loyalty_core::qr::{CHECKOUT_MASK, QrMatrix};
use loyalty_tests::*;
use qrcodegen::{Mask, QrCode, QrCodeEcc, QrSegment, Version};

const TILLS: usize = 100;
/// Purchases each till posts, one after the other.
const PER_TILL: usize = 100;
/// Codes per timed block of the code-generation comparison (eleven blocks of each kind run, the first as a warm-up).
const BLOCK: u32 = 200;

fn per_op(total: Duration, n: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let server = TestServer::start_with(
            dir.path().join("s.db"),
            "127.0.0.1:0",
            clock.clone(),
            |_| {},
        )
        .await;
        let op = server.operator();
        let member = op.create_member(None).await.expect("member");
        let phone =
            Device::open_with_clock(dir.path().join("phone.db"), clock.clone()).expect("open");
        phone
            .enroll(&server.url, &member.activation_code, "bench")
            .await
            .expect("enroll");

        // 1. Code generation against its raw parts.
        let n = 2_000u32;
        let code = phone.checkout_code().expect("code");
        // Warm up, then alternate blocks of the three so a change in the machine's load or clock
        // speed during the run falls on all of them alike.
        device_codes(&phone, &clock, BLOCK);
        raw_codes_searched(&code.text, BLOCK);
        raw_codes_fixed(&code.text, BLOCK);
        let (mut device, mut raw, mut floor) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for _ in 0..n / BLOCK {
            device += device_codes(&phone, &clock, BLOCK);
            raw += raw_codes_searched(&code.text, BLOCK);
            floor += raw_codes_fixed(&code.text, BLOCK);
        }
        let version = QrMatrix::encode_checkout_code(&code).expect("qr").version;
        println!("| code generation | per code |");
        println!("|---|---|");
        println!(
            "| device: checkout_code() + QR matrix | {:.0} µs |",
            per_op(device, n)
        );
        println!(
            "| raw: one ring Ed25519 signature + one qrcodegen encode | {:.0} µs |",
            per_op(raw, n)
        );
        println!(
            "| ratio | {:.2}x |",
            device.as_secs_f64() / raw.as_secs_f64()
        );
        println!(
            "| raw with the core's fixed mask (the device's floor) | {:.0} µs |",
            per_op(floor, n)
        );
        println!(
            "| device over its floor | {:.2}x |",
            device.as_secs_f64() / floor.as_secs_f64()
        );
        println!("| QR version at ECC M | {version} |");

        server.stop().await;
        if std::env::var("CHECKOUT_BENCH").as_deref() == Ok("codes") {
            return;
        }

        // 2. Scans and purchases with 100 concurrent tills, each serving its own member (a chain's
        // stores at a busy hour), every member with an enrolled phone: first with the phones in
        // pockets (the card catches up at their next sync, which is timed after), then with every
        // phone open and watching, so each purchase also reaches a phone live.
        println!();
        println!("| till load ({TILLS} concurrent tills, one member each) | figure |");
        println!("|---|---|");
        till_load(dir.path(), &clock, false).await;
        till_load(dir.path(), &clock, true).await;
    });
}

/// What the app does for each code it shows (the bindings' `checkout_code()`): the device's
/// `checkout_code()` and its QR matrix with the fixed mask,
/// alternating between two time steps so no step is ever served twice in a row. Kept out of line
/// so `callgrind_annotate --inclusive=yes` shows its instruction count on its own line.
#[inline(never)]
fn device_codes(phone: &Device, clock: &ManualClock, n: u32) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        clock.advance(i64::from(i % 2) * STEP_SECONDS * 1000);
        let code = phone.checkout_code().expect("code");
        std::hint::black_box(QrMatrix::encode_checkout_code(&code).expect("qr"));
    }
    start.elapsed()
}

/// One raw ring Ed25519 signature and one qrcodegen encode (smallest version, ECC M, qrcodegen's
/// mask search) of a code's text, per code: the reference the target is set against.
#[inline(never)]
fn raw_codes_searched(text: &str, n: u32) -> Duration {
    raw_codes(text, n, None)
}

/// The same with the core's fixed mask: the least the device can do.
#[inline(never)]
fn raw_codes_fixed(text: &str, n: u32) -> Duration {
    raw_codes(text, n, Some(Mask::new(CHECKOUT_MASK)))
}

#[inline(always)]
fn raw_codes(text: &str, n: u32, mask: Option<Mask>) -> Duration {
    let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("key");
    let start = Instant::now();
    for i in 0..n {
        std::hint::black_box(key.sign(&i.to_be_bytes()));
        let segs = QrSegment::make_segments(text);
        std::hint::black_box(
            QrCode::encode_segments_advanced(
                &segs,
                QrCodeEcc::Medium,
                Version::MIN,
                Version::MAX,
                mask,
                false,
            )
            .expect("qr"),
        );
    }
    start.elapsed()
}

/// Seconds of CPU this process (server and tills together) has used so far, from
/// `/proc/self/stat` (in clock ticks of 1/100 s); `None` where there is no such file.
fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

async fn till_load(dir: &std::path::Path, clock: &Arc<ManualClock>, live: bool) {
    let label = if live { ", every phone watching" } else { "" };
    let run = tempfile::tempdir_in(dir).expect("dir");
    let run = run.path();
    let server =
        TestServer::start_with(run.join("s.db"), "127.0.0.1:0", clock.clone(), |_| {}).await;
    let op = server.operator();
    let mut phones = Vec::new();
    for i in 0..TILLS {
        let m = op.create_member(None).await.expect("member");
        let p = Device::open_with_clock(run.join(format!("p{i}.db")), clock.clone()).expect("open");
        p.enroll(&server.url, &m.activation_code, "bench")
            .await
            .expect("enroll");
        phones.push(Arc::new(p));
    }
    clock.advance(STEP_SECONDS * 1000);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, p) in phones.iter().enumerate() {
        let till = server.till(&format!("till-{i}"));
        let code = p.checkout_code().expect("code").text;
        tasks.push(tokio::spawn(async move {
            till.scan(&code).await.map(|s| (till, s.session_id))
        }));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.push(t.await.expect("task").expect("scan"));
    }
    let scans = start.elapsed();
    if !live {
        println!(
            "| scans (signature, key, replay record, session) | {TILLS} in {:.1} ms = {:.0}/s |",
            scans.as_secs_f64() * 1e3,
            TILLS as f64 / scans.as_secs_f64()
        );
    }
    let watchers: Vec<_> = phones
        .iter()
        .filter(|_| live)
        .map(|p| {
            let p = p.clone();
            tokio::spawn(async move { p.watch().await })
        })
        .collect();
    let cpu_before = process_cpu_s();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, (till, session)) in sessions.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for j in 0..PER_TILL {
                let p = PurchaseRequest {
                    session_id: session.clone(),
                    idempotency_key: format!("t{i}-p{j}"),
                    receipt_id: format!("t{i}-r{j}"),
                    total_minor: 1_000,
                    lines: Vec::new(),
                    redeem_points: 0,
                    redeem_minor: 0,
                };
                till.purchase(&p).await.expect("purchase");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = start.elapsed();
    let cpu_after = process_cpu_s();
    let total = TILLS * PER_TILL;
    println!(
        "| durable purchases{label} | {total} in {:.2} s = {:.0}/s |",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    // CPU per purchase says what the machine's other load does not: the figure above is what
    // the 2 shared cores gave this run; this one is what a purchase costs (with the phones'
    // syncs, when they watch: they run in this process too).
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu = after - before;
        println!(
            "| CPU per purchase{label} (server and tills, process time) | {:.0} µs ({:.2} cores busy) |",
            cpu * 1e6 / total as f64,
            cpu / elapsed.as_secs_f64()
        );
    }
    for w in watchers {
        w.abort();
    }
    // What was deferred: each card catches up at its phone's next sync (for watching phones,
    // whatever the last live sync left).
    let start = Instant::now();
    for p in &phones {
        p.sync().await.expect("sync");
    }
    let syncs = start.elapsed();
    for p in &phones {
        let card = p.card().expect("card").expect("issued");
        assert_eq!(
            card.balance,
            PER_TILL as i64 * 10,
            "every purchase on the card"
        );
    }
    println!(
        "| next sync of each phone{label} (catching its card up) | {:.2} ms each |",
        syncs.as_secs_f64() * 1e3 / TILLS as f64
    );
    server.stop().await;
}
