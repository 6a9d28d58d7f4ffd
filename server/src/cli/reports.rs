//! `loyalty admin report …`: the operators' reports, as a table, JSON (`--json`) or CSV.

use clap::Subcommand;
use loyalty_core::redemption::money;
use loyalty_server::client::OperatorClient;

use super::{CliResult, print_json, show_time};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// The programme's outstanding points: available, pending, expiring in 30/60/90 days.
    Liability {
        /// The server's CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
}

pub async fn run(client: &OperatorClient, command: ReportCommand, json: bool) -> CliResult {
    match command {
        ReportCommand::Liability { csv: true } => {
            print!(
                "{}",
                client.liability_csv().await.map_err(|e| e.to_string())?
            );
            Ok(())
        }
        ReportCommand::Liability { csv: false } => {
            let r = client.liability().await.map_err(|e| e.to_string())?;
            if json {
                return print_json(&r);
            }
            println!(
                "points liability at {} ({} points = {})",
                show_time(r.as_of_ms),
                r.value_points,
                money(r.value_minor)
            );
            let row = |name: &str, v: loyalty_core::api::reports::PointsValue| {
                println!(
                    "  {name:<18} {:>12} points {:>14}",
                    v.points,
                    money(v.value_minor)
                );
            };
            row("available", r.available);
            row("pending", r.pending);
            row("total", r.total);
            for e in &r.expiring {
                row(&format!("expiring in {}d", e.days), e.amount);
            }
            println!("  members with points {}", r.members_with_points);
            Ok(())
        }
    }
}
