//! `loyalty admin programme ...` and `loyalty admin tier ...`: read and replace the programme's
//! configuration from a JSON file, run the settle job now, pin or release a member's tier.

use std::path::PathBuf;

use clap::Subcommand;
use loyalty_core::programme::Programme;
use loyalty_server::client::OperatorClient;

use super::{CliResult, print_json};

#[derive(Debug, Subcommand)]
pub enum ProgrammeCommand {
    /// Print the programme's configuration (JSON; the format `set` reads).
    Show,
    /// Replace the programme's configuration with a JSON file (see docs/programme.md).
    Set { file: PathBuf },
    /// Mature and expire points, send expiry warnings, review tiers and pay birthdays now.
    Settle,
}

pub async fn run(client: &OperatorClient, command: ProgrammeCommand, json: bool) -> CliResult {
    match command {
        ProgrammeCommand::Show => {
            let p = client.programme().await.map_err(|e| e.to_string())?;
            print_json(&p)
        }
        ProgrammeCommand::Set { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let programme: Programme = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not a programme: {e}", file.display()))?;
            programme.validate()?;
            let p = client
                .set_programme(&programme)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&p);
            }
            println!(
                "programme set: {} tiers, {} multipliers",
                p.tiers.tiers.len(),
                p.earning.multipliers.len()
            );
            Ok(())
        }
        ProgrammeCommand::Settle => {
            let r = client.settle().await.map_err(|e| e.to_string())?;
            if json {
                return print_json(&r);
            }
            println!(
                "settled {} members: {} points expired, {} expiry warnings, {} birthdays",
                r.members, r.expired_points, r.warnings, r.birthdays
            );
            if r.failed > 0 {
                println!(
                    "{} members could not be settled (see the server's log)",
                    r.failed
                );
            }
            Ok(())
        }
    }
}

/// Pins `tier` for the member, or hands them back to the ladder when `tier` is `None`.
pub async fn set_tier(
    client: &OperatorClient,
    member_id: &str,
    tier: Option<&str>,
    json: bool,
) -> CliResult {
    let r = client
        .set_tier(member_id, tier)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&r);
    }
    match tier {
        Some(t) => println!("{member_id} is now {t}, set by hand"),
        None => println!("{member_id} is back on the ladder"),
    }
    Ok(())
}
