//! The subcommands of `loyalty`, one module each, and what they share.

pub mod admin;
pub mod bench;
pub mod config_file;
pub mod device;
pub mod history;
pub mod money;
pub mod offers;
pub mod operators;
pub mod outbound_flags;
pub mod programme;
pub mod qr_scan;
pub mod reports;
pub mod server;
pub mod till;
pub mod watch;

/// What a command failed with, already phrased for the person at the terminal.
pub type CliResult = Result<(), String>;

/// How log lines look: `text` for people, `json` (one object a line) for a log collector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logs to stderr at `default` level unless `RUST_LOG` says otherwise; colours only on a terminal,
/// so a file or a collector gets no escape codes.
pub fn init_logging(default: &str) {
    init_logging_as(default, LogFormat::Text);
}

pub fn init_logging_as(default: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Prints `value` as pretty JSON.
pub fn print_json<T: serde::Serialize>(value: &T) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// A time in milliseconds as an ISO-8601 UTC string, for people.
pub fn show_time(ms: i64) -> String {
    loyalty_core::calendar::format_datetime(ms)
}

/// Prints request threads for people: `member` names the member's entries (`you` on their own
/// device), and `opening` goes before the request's own text.
pub fn print_requests(list: &[loyalty_core::requests::RequestView], member: &str, opening: &str) {
    if list.is_empty() {
        println!("no requests");
    }
    for r in list {
        println!(
            "{}  [{}] {}: {}  ({})",
            r.id,
            r.status,
            r.kind,
            r.subject,
            show_time(r.opened_at_ms)
        );
        if !r.body.is_empty() {
            println!("    {opening}{}", r.body);
        }
        for e in &r.entries {
            let who = if e.from == "member" {
                member
            } else {
                &e.author
            };
            println!("    {who}: {}", e.body);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(super::show_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            super::show_time(1_700_000_000_000),
            "2023-11-14 22:13:20 UTC"
        );
        assert_eq!(super::show_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
