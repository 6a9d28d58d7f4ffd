//! `loyalty admin report …`: the operators' reports (points liability, points activity, members,
//! message deliveries, the fraud watch list in `super::watch`), as a table, JSON (`--json`) or
//! CSV.

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
    /// The members: by tier, blocked, enrolled in 30 days, active in 30 and 90 days, repeat
    /// purchase rate.
    Members,
    /// Points earned, redeemed, expired, refunded and adjusted per day, week or month (default:
    /// months of the last 365 days), with the redemption and breakage rates.
    Points {
        /// day, week or month.
        #[arg(long)]
        period: Option<String>,
        #[arg(long)]
        from_ms: Option<i64>,
        #[arg(long)]
        to_ms: Option<i64>,
        /// The server's CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// What became of one send (--message) or of the sends of a period (default: the last 30
    /// days): deliveries by channel, status and reason, consent refusals among them.
    Deliveries {
        #[arg(long, conflicts_with_all = ["from_ms", "to_ms"])]
        message: Option<String>,
        /// The period's start, ms since the epoch.
        #[arg(long)]
        from_ms: Option<i64>,
        /// The period's end (exclusive), ms since the epoch.
        #[arg(long)]
        to_ms: Option<i64>,
        /// The server's CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// The fraud watch list: members and tills ranked by purchases, points redeemed, refunds or
    /// refused codes over a window (default: the last 7 days); members with many devices;
    /// refused codes and offline exceptions by reason.
    Watch(super::watch::WatchArgs),
    /// Segment sizes at their latest recomputes with who joined and departed, and the members per
    /// RFM score.
    Segments {
        /// Recomputes shown per segment (default 10).
        #[arg(long)]
        runs: Option<u32>,
        /// The server's CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
}

pub async fn run(client: &OperatorClient, command: ReportCommand, json: bool) -> CliResult {
    match command {
        ReportCommand::Members => {
            let r = client.members_report().await.map_err(|e| e.to_string())?;
            if json {
                return print_json(&r);
            }
            println!("members at {}", show_time(r.as_of_ms));
            println!(
                "  {} members, {} blocked, {} enrolled in the last 30 days",
                r.members, r.blocked, r.enrolled_30d
            );
            println!(
                "  active: {} in 30 days, {} in 90 days; {:.1}% of the latter bought twice or more",
                r.active_30d,
                r.active_90d,
                r.repeat_rate_90d * 100.0
            );
            for t in &r.tiers {
                println!(
                    "  tier {:<12} {:>10}  ({} entered in 30 days, {} moving down)",
                    t.tier, t.members, t.entered_30d, t.downgrading
                );
            }
            for m in &r.tier_moves_30d {
                println!("  moved {} -> {} in 30 days: {}", m.from, m.to, m.moves);
            }
            Ok(())
        }
        ReportCommand::Points {
            period,
            from_ms,
            to_ms,
            csv,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            query.extend(period.map(|p| ("period", p)));
            let window = [("from_ms", from_ms), ("to_ms", to_ms)];
            query.extend(
                window
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v.to_string()))),
            );
            points(client, &query, csv, json).await
        }
        ReportCommand::Deliveries {
            message,
            from_ms,
            to_ms,
            csv,
        } => {
            let mut query = Vec::new();
            if let Some(id) = message {
                query.push(("message_id", id));
            }
            let period = [("from_ms", from_ms), ("to_ms", to_ms)];
            query.extend(
                period
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v.to_string()))),
            );
            deliveries(client, &query, csv, json).await
        }
        ReportCommand::Watch(args) => super::watch::run(client, args, json).await,
        ReportCommand::Segments { runs, csv } => segments(client, runs, csv, json).await,
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

async fn deliveries(
    client: &OperatorClient,
    query: &[(&str, String)],
    csv: bool,
    json: bool,
) -> CliResult {
    let fail = |e: loyalty_server::client::OperatorError| e.to_string();
    if csv {
        print!(
            "{}",
            client.deliveries_report_csv(query).await.map_err(fail)?
        );
        return Ok(());
    }
    let r = client.deliveries_report(query).await.map_err(fail)?;
    if json {
        return print_json(&r);
    }
    match (&r.message_id, r.from_ms, r.to_ms) {
        (Some(id), ..) => println!("deliveries of {id}"),
        (None, Some(from), Some(to)) => println!(
            "deliveries of {} sends from {} to {}",
            r.messages,
            show_time(from),
            show_time(to)
        ),
        _ => println!("deliveries"),
    }
    for c in &r.counts {
        let reason = c.reason.as_deref().unwrap_or("");
        println!(
            "  {:<8} {:<12} {reason:<20} {:>10}",
            c.channel, c.status, c.count
        );
    }
    println!(
        "  {} recipients, {} refused for want of consent",
        r.recipients,
        r.consent_refusals()
    );
    Ok(())
}

async fn points(
    client: &OperatorClient,
    query: &[(&str, String)],
    csv: bool,
    json: bool,
) -> CliResult {
    let fail = |e: loyalty_server::client::OperatorError| e.to_string();
    if csv {
        print!("{}", client.points_report_csv(query).await.map_err(fail)?);
        return Ok(());
    }
    let r = client.points_report(query).await.map_err(fail)?;
    if json {
        return print_json(&r);
    }
    println!(
        "points by {} from {} to {}",
        r.period.as_str(),
        show_time(r.from_ms),
        show_time(r.to_ms)
    );
    println!(
        "  {:<10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "from", "earned", "redeemed", "expired", "refunded", "adjusted"
    );
    let row = |label: &str, p: &loyalty_core::api::reports::PointsMoved| {
        println!(
            "  {label:<10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            p.earned, p.redeemed, p.expired, p.refunded, p.adjusted
        );
    };
    for r in &r.rows {
        row(&loyalty_core::calendar::format_date(r.start_ms), &r.points);
    }
    row("total", &r.totals);
    println!(
        "  redemption rate {:.1}%, breakage rate {:.1}%",
        r.redemption_rate * 100.0,
        r.breakage_rate * 100.0
    );
    Ok(())
}

async fn segments(client: &OperatorClient, runs: Option<u32>, csv: bool, json: bool) -> CliResult {
    let fail = |e: loyalty_server::client::OperatorError| e.to_string();
    if csv {
        print!("{}", client.segments_report_csv(runs).await.map_err(fail)?);
        return Ok(());
    }
    let r = client.segments_report(runs).await.map_err(fail)?;
    if json {
        return print_json(&r);
    }
    for s in &r.segments {
        println!(
            "segment {} ({}): {} members",
            s.segment_id, s.name, s.members
        );
        for run in &s.runs {
            println!(
                "  {}  {:>10} members  +{} joined  -{} departed",
                show_time(run.computed_at_ms),
                run.members,
                run.joined,
                run.departed
            );
        }
    }
    println!(
        "RFM scores ({} members with a purchase in the window)",
        r.scored_members
    );
    println!(
        "  {:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "score", 0, 1, 2, 3, 4, 5
    );
    for (name, sizes) in [
        ("recency", &r.recency),
        ("frequency", &r.frequency),
        ("monetary", &r.monetary),
    ] {
        let m = sizes.members;
        println!(
            "  {name:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
    }
    match &r.rfm_moves {
        Some(moves) => print_moves(moves),
        None => println!("RFM score moves: no recompute recorded yet"),
    }
    Ok(())
}

/// A from → to table per dimension: a row per previous score, a column per new score.
fn print_moves(moves: &loyalty_core::api::reports::RfmMoves) {
    let since = moves
        .previous_at_ms
        .map(|at| format!("since {}", show_time(at)))
        .unwrap_or_else(|| "since the scores held before".into());
    println!(
        "RFM score moves at {} ({since}): rows the previous score, columns the new",
        show_time(moves.computed_at_ms)
    );
    for (name, dimension) in [
        ("recency", &moves.recency),
        ("frequency", &moves.frequency),
        ("monetary", &moves.monetary),
    ] {
        println!(
            "  {:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            name, "to 0", "to 1", "to 2", "to 3", "to 4", "to 5"
        );
        for (from, m) in dimension.members.iter().enumerate() {
            println!(
                "  {:<10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                format!("from {from}"),
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5]
            );
        }
    }
}
