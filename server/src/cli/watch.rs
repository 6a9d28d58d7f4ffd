//! `loyalty admin report watch`: the fraud watch list as tables, JSON (`--json`) or CSV.

use clap::Args;
use loyalty_core::api::watch_list::{WatchList, WatchedActivity};
use loyalty_server::client::OperatorClient;

use super::{CliResult, print_json, show_time};

#[derive(Args)]
pub struct WatchArgs {
    /// purchases (the default), redeemed, refunds or refused_codes.
    #[arg(long)]
    by: Option<String>,
    /// The window's start, ms since the epoch.
    #[arg(long)]
    from_ms: Option<i64>,
    /// The window's end (exclusive), ms since the epoch.
    #[arg(long)]
    to_ms: Option<i64>,
    /// Members and tills listed (default 20).
    #[arg(long)]
    limit: Option<u32>,
    /// List members with at least this many live devices (default 3).
    #[arg(long)]
    min_devices: Option<i64>,
    /// The server's CSV instead of tables.
    #[arg(long)]
    csv: bool,
}

pub async fn run(client: &OperatorClient, args: WatchArgs, json: bool) -> CliResult {
    let mut query: Vec<(&str, String)> = Vec::new();
    query.extend(args.by.map(|b| ("by", b)));
    let numbers = [
        ("from_ms", args.from_ms),
        ("to_ms", args.to_ms),
        ("limit", args.limit.map(i64::from)),
        ("min_devices", args.min_devices),
    ];
    query.extend(
        numbers
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v.to_string()))),
    );
    let fail = |e: loyalty_server::client::OperatorError| e.to_string();
    if args.csv {
        print!("{}", client.watch_list_csv(&query).await.map_err(fail)?);
        return Ok(());
    }
    let list = client.watch_list(&query).await.map_err(fail)?;
    if json {
        return print_json(&list);
    }
    print_list(&list);
    Ok(())
}

fn print_list(list: &WatchList) {
    println!(
        "watch list from {} to {}, by {}",
        show_time(list.from_ms),
        show_time(list.to_ms),
        list.by.as_str()
    );
    activity("members", &list.members);
    activity("tills", &list.tills);
    println!("members with {} or more live devices", list.min_devices);
    for d in &list.many_devices {
        println!(
            "  {:<24} {:<20} {:>6}",
            d.member_id, d.card_number, d.devices
        );
    }
    println!("refused codes and offline exceptions");
    for r in &list.refusals {
        println!("  {:<8} {:<24} {:>8}", r.source, r.reason, r.count);
    }
}

fn activity(title: &str, rows: &[WatchedActivity]) {
    println!("{title}");
    println!(
        "  {:<24} {:<18} {:>9} {:>9} {:>9} {:>8} {:>7} {:>8} {:>8}",
        "id", "card", "purchases", "redeemed", "points", "refunds", "rate", "refused", "offline"
    );
    for a in rows {
        println!(
            "  {:<24} {:<18} {:>9} {:>9} {:>9} {:>8} {:>6.1}% {:>8} {:>8}",
            a.id,
            a.card_number.as_deref().unwrap_or(""),
            a.purchases,
            a.redemptions,
            a.points_redeemed,
            a.refunds,
            a.refund_rate * 100.0,
            a.refused_codes,
            a.offline_exceptions
        );
    }
}
