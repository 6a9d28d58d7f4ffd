//! `loyalty admin ledger|devices`: a member's whole ledger, a page at a time (or `--all` pages),
//! and their devices with when each was last seen.

use loyalty_core::api::history::{DeviceView, MemberLedgerEntry};
use loyalty_server::client::OperatorClient;

use super::{CliResult, print_json, show_time};

/// The ledger's pages: one from `before` (or the newest), or with `all` every page to the first
/// movement. With `json`, the page (or, for `all`, the list of every movement).
pub async fn ledger(
    client: &OperatorClient,
    member_id: &str,
    before: Option<String>,
    limit: Option<u32>,
    all: bool,
    json: bool,
) -> CliResult {
    let mut before = before;
    let mut entries = Vec::new();
    loop {
        let page = client
            .member_ledger(member_id, before.as_deref(), limit)
            .await
            .map_err(|e| e.to_string())?;
        if !all {
            if json {
                return print_json(&page);
            }
            print_entries(&page.entries);
            if let Some(next) = &page.next {
                println!("more: --before {next}");
            }
            return Ok(());
        }
        entries.extend(page.entries);
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    if json {
        return print_json(&entries);
    }
    print_entries(&entries);
    Ok(())
}

fn print_entries(entries: &[MemberLedgerEntry]) {
    if entries.is_empty() {
        println!("no movements");
    }
    for e in entries {
        let pending = match e.entry.available_at_ms {
            Some(at) => format!(" (pending until {})", show_time(at)),
            None => String::new(),
        };
        println!(
            "{}  {:>+7}  {}{pending}  [{}; till {} receipt {}; {}]",
            show_time(e.entry.at_ms),
            e.entry.points,
            e.entry.reason,
            e.entry.rule,
            e.till_id,
            e.receipt_id,
            e.entry.tx_id
        );
    }
}

pub async fn devices(client: &OperatorClient, member_id: &str, json: bool) -> CliResult {
    let list = client
        .member_devices(member_id)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("no devices");
    }
    for d in &list {
        println!("{}", device_line(d));
    }
    Ok(())
}

fn device_line(d: &DeviceView) -> String {
    let seen = d.last_seen_ms.map_or("never seen".to_string(), |at| {
        format!("last seen {}", show_time(at))
    });
    let revoked = d
        .revoked_at_ms
        .map_or(String::new(), |at| format!(", REVOKED {}", show_time(at)));
    format!(
        "{}  {:?}  enrolled {}, {seen}{revoked}",
        d.device_id,
        d.name,
        show_time(d.enrolled_at_ms)
    )
}
