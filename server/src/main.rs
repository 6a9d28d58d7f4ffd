//! `loyalty`: the one command-line program of the loyalty system. `loyalty server` runs the server;
//! `loyalty admin ...` is the operator's console; `loyalty device ...` plays a member's phone from a
//! terminal, with its own local store file. Every command takes `--json` for scripts.

mod cli;

/// mimalloc rather than glibc's allocator: 8–10% more no-op syncs a second (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loyalty",
    version,
    about = "Offline-first loyalty: server, operator console and a terminal device"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SQLite).
    #[command(args_override_self = true)]
    Server(Box<cli::server::ServerArgs>),
    /// Operator console: members, offers, messages.
    Admin(cli::admin::AdminArgs),
    /// Play a member's device from the terminal.
    Device(cli::device::DeviceArgs),
    /// Play a till: scan a code, post a purchase, refund.
    Till(cli::till::TillArgs),
    /// Load a running server (or several): devices syncing, tills purchasing, phones long-polling;
    /// prints throughput and latency percentiles.
    Bench(cli::bench::BenchArgs),
    /// Print the server's OpenAPI 3.1 document (what `GET /openapi.json` serves), to generate
    /// clients from without running a server.
    Openapi,
}

fn main() -> std::process::ExitCode {
    // A configuration file's settings go in front of the command line (see cli::config_file).
    let args = match cli::config_file::expand(&Cli::command(), std::env::args_os().collect()) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    if !matches!(cli.command, Command::Server(_)) {
        die_quietly_on_broken_pipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => cli::server::run(*args).await,
            Command::Admin(args) => cli::admin::run(args).await,
            Command::Device(args) => cli::device::run(args).await,
            Command::Till(args) => cli::till::run(args).await,
            Command::Bench(args) => cli::bench::run(args).await,
            Command::Openapi => cli::print_json(&loyalty_server::http::openapi()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `loyalty device offers | head -1`: when the reader goes away, end at once and quietly, as `cat`
/// and `git` do, instead of panicking on the next `println!` with "Broken pipe". Rust ignores
/// SIGPIPE for every program; this puts back the default action (the process ends, silently) for
/// the terminal commands. Sockets are unaffected: the standard library sends with MSG_NOSIGNAL.
/// The server keeps SIGPIPE ignored, so nothing it writes can end it.
fn die_quietly_on_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: signal(2) with SIG_DFL installs no handler of ours; it runs before any other thread
    // exists (the async runtime is built after this), so nothing races with the change.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// docs/configuration.md promises that every server setting has a variable and a row there.
    #[test]
    fn every_server_setting_has_a_variable_and_a_documented_row() {
        let doc = include_str!("../../docs/configuration.md");
        let cli = super::Cli::command();
        let server = cli.find_subcommand("server").unwrap();
        let mut settings = 0;
        for arg in server.get_arguments().filter(|a| a.get_id() != "help") {
            let long = arg.get_long().unwrap();
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("--{long} has no variable"));
            let row = format!("| `--{long}` | `{}` |", env.to_string_lossy());
            assert!(doc.contains(&row), "docs/configuration.md lacks {row}");
            settings += 1;
        }
        assert!(settings >= 25, "only {settings} settings found");
    }
}
