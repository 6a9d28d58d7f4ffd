//! `loyalty`: the one command-line program of the loyalty system. `loyalty server` runs the server;
//! `loyalty admin ...` is the operator's console; `loyalty device ...` plays a member's phone from a
//! terminal, with its own local store file. Every command takes `--json` for scripts.

mod cli;

use clap::{Parser, Subcommand};

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
    Server(cli::server::ServerArgs),
    /// Operator console: members, offers, messages.
    Admin(cli::admin::AdminArgs),
    /// Play a member's device from the terminal.
    Device(cli::device::DeviceArgs),
    /// Play a till: scan a code, post a purchase, refund.
    Till(cli::till::TillArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
            Command::Server(args) => cli::server::run(args).await,
            Command::Admin(args) => cli::admin::run(args).await,
            Command::Device(args) => cli::device::run(args).await,
            Command::Till(args) => cli::till::run(args).await,
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
