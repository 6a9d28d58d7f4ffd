//! A device process killed with SIGKILL at arbitrary moments, compactions included, loses nothing it
//! acknowledged and leaves a store that opens.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use loyalty_core::DocKind;
use loyalty_core::store::{COMPACT_AFTER, Store};

fn hammer() -> std::path::PathBuf {
    let bin = loyalty_tests::loyalty_bin().with_file_name("hammer");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace's binaries first",
        bin.display()
    );
    bin
}

#[test]
fn a_device_killed_mid_write_or_mid_compaction_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("phone.db");
    let mut acknowledged = 0u64;
    // Kill at varied moments, and keep going until the writes span more than a compaction: on a
    // loaded machine the writer gets fewer writes done per round, so the count of rounds adapts
    // instead of the test depending on speed.
    let delays = [40u64, 75, 110, 150, 190, 230];
    for round in 0..200 {
        if round >= delays.len() && acknowledged > 2 * COMPACT_AFTER as u64 {
            break;
        }
        let delay_ms = delays[round % delays.len()];
        let mut child = Command::new(hammer())
            .arg(&store)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (started, running) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for n in BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.parse::<u64>().ok())
            {
                if last.is_none() {
                    let _ = started.send(());
                }
                last = Some(n);
            }
            last
        });
        // The delay counts from the writer's first acknowledged write, not from the spawn: on a
        // loaded machine starting the process alone can take longer than the longest delay, and
        // the kill would then land before anything was written.
        let _ = running.recv_timeout(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let last = reader.join().unwrap().unwrap_or(acknowledged);
        assert!(
            last >= acknowledged,
            "round {round}: counter went backwards"
        );
        acknowledged = last;

        let device = loyalty_core::Device::open(&store).expect("the store opens after a kill");
        let n: u64 = device
            .member_state()
            .unwrap()
            .preferences
            .get("n")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        assert!(
            n >= acknowledged,
            "round {round}: acknowledged {acknowledged}, found {n}"
        );
        acknowledged = n;
    }
    // The kills spanned many compactions, so at least one was likely interrupted; either way the
    // chunk count stays bounded.
    assert!(
        acknowledged > COMPACT_AFTER as u64,
        "only {acknowledged} writes: too few to compact"
    );
    let chunks = Store::open(&store)
        .unwrap()
        .chunk_count(DocKind::Member)
        .unwrap();
    assert!(chunks <= COMPACT_AFTER + 1, "{chunks} chunks");
}
