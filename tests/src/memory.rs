//! Memory figures the benchmarks report, read from `/proc/<pid>/status` (0 where it cannot be
//! read): a process's peak resident memory (VmHWM, which [`reset_peak`] resets) and its resident
//! anonymous memory now (RssAnon: heap and stacks, not mapped files), and the peak of a bench's
//! PostgreSQL processes.

/// A field of `/proc/<pid>/status` (`"VmRSS:"`…) in KiB, 0 when missing.
pub fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// VmHWM (peak resident memory) of process `pid` (`"self"` for this one), in KiB.
pub fn peak_kib(pid: &str) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// RssAnon (resident anonymous memory) of process `pid`, in KiB.
pub fn anon_kib(pid: &str) -> u64 {
    status_kib(pid, "RssAnon:")
}

/// Resets process `pid`'s peak memory to what it holds now (Linux: `5` to `clear_refs`), and
/// returns that, in KiB.
pub fn reset_peak(pid: &str) -> u64 {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    peak_kib(pid)
}

/// The largest VmHWM among the processes whose command is `postgres`, in KiB (a bench's own
/// PostgreSQL server; the shared test server, if any, is idle meanwhile).
pub fn postgres_peak_kib() -> u64 {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .flatten()
        .filter(|p| {
            std::fs::read_to_string(p.path().join("comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|p| peak_kib(&p.file_name().to_string_lossy()))
        .max()
        .unwrap_or(0)
}
