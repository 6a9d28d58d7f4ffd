//! A process that does nothing but record member actions in a device store as fast as it can, and
//! prints the counter of each one the store has acknowledged. The crash test kills it with SIGKILL
//! at arbitrary moments — often in the middle of a compaction — and checks nothing acknowledged was
//! lost and the store still opens.

use std::io::Write;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: hammer STORE");
        std::process::exit(2);
    };
    let device = match loyalty_core::Device::open(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("open: {e}");
            std::process::exit(1);
        }
    };
    let start: u64 = device
        .member_state()
        .ok()
        .and_then(|m| m.preferences.get("n").and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for n in start + 1.. {
        // Two writes per step, so documents grow and compactions come round often.
        let ok = device
            .set_preference(&format!("k{}", n % 50), &"x".repeat(64))
            .is_ok()
            && device.set_preference("n", &n.to_string()).is_ok();
        if !ok {
            eprintln!("write failed at {n}");
            std::process::exit(1);
        }
        let _ = writeln!(out, "{n}");
        let _ = out.flush();
    }
}
