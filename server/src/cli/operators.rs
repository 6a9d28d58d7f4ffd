//! `loyalty admin operators …` and `loyalty admin audit`: named operator accounts with roles, and
//! the audit log of their writes (both for the admin role).

use clap::Subcommand;
use loyalty_server::client::OperatorClient;

use super::{CliResult, print_json, show_time};

#[derive(Subcommand)]
pub enum OperatorsCommand {
    /// Every operator account.
    List,
    /// Create an account; its token is printed this once.
    Add {
        /// The person or system, as the audit log shows it.
        name: String,
        #[arg(long, value_parser = ["support", "marketing", "admin"])]
        role: String,
    },
    /// Disable an account: its token is refused from now on.
    Disable { operator_id: String },
}

pub async fn run(client: &OperatorClient, command: OperatorsCommand, json: bool) -> CliResult {
    match command {
        OperatorsCommand::List => {
            let list = client.operators().await.map_err(|e| e.to_string())?;
            if json {
                return print_json(&list);
            }
            for a in list {
                let state = a.disabled_at_ms.map_or_else(
                    || "active".to_string(),
                    |at| format!("disabled {}", show_time(at)),
                );
                println!("{}  {:<9} {}  ({state})", a.operator_id, a.role, a.name);
            }
            Ok(())
        }
        OperatorsCommand::Add { name, role } => {
            let created = client
                .create_operator(&name, &role)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&created);
            }
            println!(
                "operator {} ({}, {})",
                created.operator.operator_id, created.operator.name, created.operator.role
            );
            println!("token {}", created.token);
            println!("(shown this once: the server keeps only its hash)");
            Ok(())
        }
        OperatorsCommand::Disable { operator_id } => {
            client
                .disable_operator(&operator_id)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&serde_json::json!({"disabled": operator_id}));
            }
            println!("disabled {operator_id}");
            Ok(())
        }
    }
}

/// Prints the audit log, newest first.
pub async fn audit(
    client: &OperatorClient,
    operator_id: Option<&str>,
    before: Option<i64>,
    limit: u32,
    json: bool,
) -> CliResult {
    let entries = client
        .audit(operator_id, before, limit)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&entries);
    }
    for e in entries {
        println!(
            "{:>6}  {}  {} ({}, {})  {}  {}  -> {}  from {}",
            e.id,
            show_time(e.at_ms),
            e.operator_id,
            e.operator_name,
            e.role,
            e.action,
            e.target,
            e.status,
            e.client
        );
    }
    Ok(())
}
