//! Memory figures the benchmarks report, read from `/proc/<pid>/status` (0 where it cannot be
//! read): a process's peak resident memory (VmHWM, which `/proc/self/clear_refs` resets) and its
//! resident anonymous memory now (RssAnon: heap and stacks, not mapped files).

/// A field of `/proc/<pid>/status` in KiB, 0 when missing.
fn status_kib(pid: &str, field: &str) -> u64 {
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
