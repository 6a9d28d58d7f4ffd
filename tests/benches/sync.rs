//! Sync benchmark: a member with 20 offers and 200 messages. Reports bytes and round trips for the
//! first sync, for "nothing changed", for one new message and for one local edit (body bytes, and the
//! HTTP bytes on the wire through a counting relay, headers included), and the time to
//! open a device store and read the card. Run with `cargo bench -p loyalty-tests --bench sync`;
//! the figures go to `docs/benchmarks.md`.

use std::time::{Duration, Instant};

use loyalty_core::{Device, SyncReport};
use loyalty_tests::*;

/// One table row: body bytes as the device counts them, and the HTTP bytes the tap saw (headers
/// included) for the same sync.
fn row(what: &str, r: &SyncReport, tap: &WireTap) {
    let (up, down) = tap.take();
    println!(
        "| {what} | {} | {} | {} | {} | {} ({} + {}) |",
        r.round_trips,
        r.bytes_sent,
        r.bytes_received,
        r.bytes_sent + r.bytes_received,
        up.len() + down.len(),
        up.len(),
        down.len()
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = TestServer::start(dir.path()).await;
        let op = server.operator();
        let member = op.create_member(None).await.expect("member");
        for i in 0..20 {
            op.post_offer(
                &member.member_id,
                &offer(&format!("o{i}"), &format!("Offer number {i}")),
            )
            .await
            .expect("offer");
        }
        for i in 0..200 {
            op.post_message(
                &member.member_id,
                &message(&format!("m{i}"), &format!("Message number {i}")),
            )
            .await
            .expect("message");
        }
        let store = dir.path().join("phone.db");
        let device = Device::open(&store).expect("open");
        let tap = WireTap::start(server.addr).await;
        device
            .enroll(&tap.url, &member.activation_code, "bench")
            .await
            .expect("enroll");
        tap.take();

        println!(
            "| sync | round trips | body bytes sent | body bytes received | body bytes | HTTP bytes on the wire (sent + received) |"
        );
        println!("|---|---|---|---|---|---|");
        row(
            "first sync (20 offers, 200 messages)",
            &device.sync().await.expect("sync"),
            &tap,
        );
        row("nothing changed", &device.sync().await.expect("sync"), &tap);
        op.post_message(&member.member_id, &message("new", "One more message"))
            .await
            .expect("message");
        row("one new message", &device.sync().await.expect("sync"), &tap);
        device.activate_offer("o3").expect("activate");
        row(
            "one local edit (activate an offer)",
            &device.sync().await.expect("sync"),
            &tap,
        );
        row(
            "nothing changed, again",
            &device.sync().await.expect("sync"),
            &tap,
        );
        drop(device);

        let mut times = Vec::new();
        for _ in 0..50 {
            let start = Instant::now();
            let device = Device::open(&store).expect("open");
            let card = device.card().expect("card").expect("issued");
            std::hint::black_box(card);
            times.push(start.elapsed());
        }
        let mut read_only = Vec::new();
        let device = Device::open(&store).expect("open");
        for _ in 0..200 {
            let start = Instant::now();
            std::hint::black_box(device.card().expect("card"));
            std::hint::black_box(device.offers().expect("offers"));
            read_only.push(start.elapsed());
        }
        println!();
        println!("| local operation | median |");
        println!("|---|---|");
        println!(
            "| open the store and read the card (50 runs) | {:.2} ms |",
            median(times).as_secs_f64() * 1e3
        );
        println!(
            "| read the card and the 20 offers from an open store (200 runs) | {:.1} µs |",
            median(read_only).as_secs_f64() * 1e6
        );
        server.stop().await;
    });
}
