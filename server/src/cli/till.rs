//! `loyalty till`: a till in a terminal — scan a member's code (as text or from a PNG, decoded
//! in-process by [`super::qr_scan`]), post a purchase, refund. Amounts are read strictly by
//! [`super::money`], and refused with the flag's name. With `--store FILE` it is a till that keeps
//! working offline ([`loyalty_server::till`]): `keys` refreshes its cache of device keys, scans and
//! sales fall back to the cache and a queue when the server is out of reach, and `flush` posts the
//! queue.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use loyalty_core::api::{PostingResponse, PurchaseLine, PurchaseRequest, RefundRequest};
use loyalty_core::offline::OfflineTrust;
use loyalty_server::client::TillClient;
use loyalty_server::service::checkout::MAX_POINTS;
use loyalty_server::till::{FlushReport, OfflineTill, Posted, Scan};

use super::money::{self, show as show_money};
use super::{CliResult, print_json, show_time};

#[derive(Args)]
pub struct TillArgs {
    #[arg(long, env = "LOYALTY_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    #[arg(long, env = "LOYALTY_TILL_TOKEN", hide_env_values = true)]
    token: String,
    /// This till's id.
    #[arg(long, env = "LOYALTY_TILL_ID", default_value = "till-1")]
    till_id: String,
    #[arg(long, global = true)]
    json: bool,
    /// The till's own file (key cache, codes seen, offline queue): with it the till keeps
    /// working when the server is out of reach. Created when missing.
    #[arg(long, env = "LOYALTY_TILL_STORE", global = true)]
    store: Option<PathBuf>,
    #[command(subcommand)]
    command: TillCommand,
}

#[derive(Subcommand)]
enum TillCommand {
    /// Scan a checkout code: its text, or a PNG of its QR code.
    Scan {
        code: Option<String>,
        #[arg(long, conflicts_with = "code")]
        png: Option<PathBuf>,
    },
    /// Post a purchase in the checkout session a scan opened.
    Purchase {
        #[arg(long)]
        session: String,
        /// Receipt total, e.g. 12.34.
        #[arg(long, value_parser = money::amount)]
        total: i64,
        #[arg(long)]
        receipt: String,
        /// Points to redeem.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=MAX_POINTS))]
        redeem: i64,
        /// Or an amount to pay with points, e.g. 5.00 (the points worth at most that).
        #[arg(long, value_parser = money::amount, conflicts_with = "redeem")]
        redeem_money: Option<i64>,
        /// This till's retry token for the purchase. Default: a new random one, printed on
        /// stderr; to retry a purchase whose answer was lost, run it again with that `--key`.
        /// Not the receipt number: receipt numbers repeat across stores and days.
        #[arg(long)]
        key: Option<String>,
        /// A receipt line as SKU:CATEGORY:AMOUNT (e.g. 4006381:coffee:12.99); repeat for more.
        /// Categories drive multipliers and category offers; lines must add up to the total.
        #[arg(long = "line", value_parser = parse_line)]
        lines: Vec<PurchaseLine>,
    },
    /// Refund part or all of a purchase.
    Refund {
        /// The purchase's posting id (`posting` in its answer; any till may use it), or the
        /// idempotency key this till posted it with.
        #[arg(long)]
        purchase: String,
        /// Amount refunded, e.g. 5.00.
        #[arg(long, value_parser = money::positive_amount)]
        amount: i64,
        #[arg(long)]
        receipt: String,
        /// This till's retry token for the refund; default: a new random one, printed on stderr.
        #[arg(long)]
        key: Option<String>,
    },
    /// The member's PIN, for a session opened by card number: with it the session may redeem.
    Pin {
        #[arg(long)]
        session: String,
        #[arg(long)]
        pin: String,
    },
    /// Refresh the cache of device keys and card status from the server (needs --store).
    Keys,
    /// Post what was sold offline, in order (needs --store). Safe to run again.
    Flush,
}

pub async fn run(args: TillArgs) -> CliResult {
    super::init_logging("warn");
    let till =
        TillClient::new(&args.server, &args.token, &args.till_id).map_err(|e| e.to_string())?;
    let json = args.json;
    let mut offline = match &args.store {
        Some(path) => Some(OfflineTill::open(path, till.clone()).map_err(|e| e.to_string())?),
        None => None,
    };
    match (args.command, offline.as_mut()) {
        (TillCommand::Scan { code, png }, store) => {
            let text = match (code, png) {
                (Some(c), _) => c,
                (None, Some(p)) => super::qr_scan::decode_png_file(&p)?,
                (None, None) => return Err("give the code's text or --png FILE".into()),
            };
            let scan = match store {
                Some(t) => t.scan(&text).await.map_err(|e| e.to_string())?,
                None => Scan::Online(till.scan(&text).await.map_err(|e| e.to_string())?),
            };
            show_scan(&scan, json)
        }
        (
            TillCommand::Purchase {
                session,
                total,
                receipt,
                redeem,
                redeem_money,
                key,
                lines,
            },
            store,
        ) => {
            check_lines_add_up(&lines, total)?;
            let request = PurchaseRequest {
                session_id: session,
                idempotency_key: key_or_new(key),
                receipt_id: receipt,
                total_minor: total,
                lines,
                redeem_points: redeem,
                redeem_minor: redeem_money.unwrap_or(0),
            };
            let total = request.total_minor;
            let posted = match store {
                Some(t) => t.purchase(request).await.map_err(|e| e.to_string())?,
                None => Posted::Online(till.purchase(&request).await.map_err(|e| e.to_string())?),
            };
            show_posted(&posted, json, |p| show_purchase(p, total))
        }
        (
            TillCommand::Refund {
                purchase,
                amount,
                receipt,
                key,
            },
            store,
        ) => {
            let request = RefundRequest {
                purchase,
                idempotency_key: key_or_new(key),
                receipt_id: receipt,
                amount_minor: amount,
            };
            let posted = match store {
                Some(t) => t.refund(request).await.map_err(|e| e.to_string())?,
                None => Posted::Online(till.refund(&request).await.map_err(|e| e.to_string())?),
            };
            show_posted(&posted, json, |r| {
                println!(
                    "took back {} earned, returned {} redeemed, balance now {}",
                    r.earned, r.redeemed, r.balance
                )
            })
        }
        (TillCommand::Pin { session, pin }, _) => {
            let standing = till
                .enter_pin(&session, &pin)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&standing);
            }
            let may = if standing.may_redeem {
                "may"
            } else {
                "may not"
            };
            println!(
                "PIN accepted: session {} {may} redeem points",
                standing.session_id
            );
            Ok(())
        }
        (TillCommand::Keys, Some(t)) => {
            let changes = t.refresh().await.map_err(|e| e.to_string())?;
            let state = t.store.cache_state().map_err(|e| e.to_string())?;
            if json {
                return print_json(
                    &serde_json::json!({"changes": changes, "cursor": state.cursor}),
                );
            }
            println!("{changes} changes; cursor {}", state.cursor);
            Ok(())
        }
        (TillCommand::Flush, Some(t)) => {
            let report = t.flush().await.map_err(|e| e.to_string())?;
            show_flush(&report, json)
        }
        (TillCommand::Keys | TillCommand::Flush, None) => {
            Err("this command needs the till's store: give --store FILE".into())
        }
    }
}

fn show_scan(scan: &Scan, json: bool) -> CliResult {
    match scan {
        Scan::Online(s) if json => print_json(s),
        Scan::Online(s) => {
            println!(
                "member {} (card {}), tier {}, {} points",
                s.member_id, s.card_number, s.tier, s.balance
            );
            println!(
                "session {} (until {})",
                s.session_id,
                show_time(s.session_expires_at_ms)
            );
            for prompt in &s.prompts {
                println!("> {prompt}");
            }
            Ok(())
        }
        Scan::Offline {
            session_id,
            card_number,
            trust,
            may_redeem,
        } => {
            if json {
                return print_json(&serde_json::json!({
                    "offline": true,
                    "session_id": session_id,
                    "card_number": card_number,
                    "trust": trust,
                    "may_redeem": may_redeem,
                }));
            }
            println!("OFFLINE: card {card_number}; session {session_id}");
            match trust {
                OfflineTrust::Verified => {
                    println!("earns points; may redeem up to {may_redeem} points today")
                }
                OfflineTrust::EarnOnly => println!("earns points; no redemption offline"),
            }
            Ok(())
        }
    }
}

fn show_posted(posted: &Posted, json: bool, show: impl FnOnce(&PostingResponse)) -> CliResult {
    match posted {
        Posted::Online(p) if json => print_json(p),
        Posted::Online(p) => {
            show(p);
            Ok(())
        }
        Posted::Queued { idempotency_key } if json => {
            print_json(&serde_json::json!({"queued": idempotency_key}))
        }
        Posted::Queued { idempotency_key } => {
            println!("OFFLINE: queued as {idempotency_key}; `loyalty till flush` posts it");
            Ok(())
        }
    }
}

fn show_purchase(p: &PostingResponse, total_minor: i64) {
    for o in &p.offers_applied {
        let gave = if o.discount_minor > 0 {
            format!("{} off", show_money(o.discount_minor))
        } else {
            format!("{} points", o.points)
        };
        println!("offer applied: {} ({gave})", o.title);
    }
    if p.discount_minor > 0 || p.points_discount_minor > 0 {
        println!(
            "charge {} of {} ({} off by offers, {} paid with {} points)",
            show_money(p.charge_minor),
            show_money(total_minor),
            show_money(p.discount_minor),
            show_money(p.points_discount_minor),
            p.redeemed
        );
    }
    for m in &p.movements {
        println!("  {:>+7}  {}", m.points, m.reason);
    }
    println!(
        "earned {}, redeemed {}, balance now {} ({} pending)",
        p.earned, p.redeemed, p.balance, p.pending
    );
    for prompt in &p.prompts {
        println!("> {prompt}");
    }
    println!(
        "posting {} (a refund at any till names it by this)",
        p.posting
    );
}

fn show_flush(report: &FlushReport, json: bool) -> CliResult {
    if json {
        let refused: Vec<_> = report
            .refused
            .iter()
            .map(|(key, code, message)| serde_json::json!({"key": key, "code": code, "message": message}))
            .collect();
        let posted: Vec<_> = report
            .posted
            .iter()
            .map(|(key, p)| serde_json::json!({"key": key, "posting": p}))
            .collect();
        return print_json(&serde_json::json!({
            "posted": posted, "refused": refused, "left": report.left,
        }));
    }
    for (key, p) in &report.posted {
        println!("posted {key}: earned {}, redeemed {}", p.earned, p.redeemed);
    }
    for (key, code, message) in &report.refused {
        println!("refused {key} ({code}): {message}");
    }
    if report.left > 0 {
        println!("{} still queued: the server is out of reach", report.left);
    }
    Ok(())
}

/// The till's retry token: the one given, or a new random one, printed on stderr before the
/// request goes out, so that a request whose answer is lost can be sent again with `--key`.
fn key_or_new(key: Option<String>) -> String {
    key.unwrap_or_else(|| {
        let key = loyalty_core::ids::new_record_id("key");
        eprintln!("idempotency key: {key} (to retry, run the same command with --key {key})");
        key
    })
}

/// `SKU:CATEGORY:AMOUNT` as a receipt line (a clap value parser, so errors name `--line`).
fn parse_line(text: &str) -> Result<PurchaseLine, String> {
    let mut parts = text.splitn(3, ':');
    let (Some(sku), Some(category), Some(amount)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("`{text}`: expected SKU:CATEGORY:AMOUNT"));
    };
    Ok(PurchaseLine {
        sku: sku.into(),
        description: String::new(),
        category: category.into(),
        quantity: 1,
        amount_minor: money::amount(amount)?,
    })
}

/// The server refuses lines that do not add up to the total; say so here in the flags' terms.
fn check_lines_add_up(lines: &[PurchaseLine], total: i64) -> CliResult {
    if lines.is_empty() {
        return Ok(());
    }
    let sum = lines
        .iter()
        .try_fold(0i64, |acc, l| acc.checked_add(l.amount_minor));
    match sum {
        Some(sum) if sum == total => Ok(()),
        Some(sum) => Err(format!(
            "the --line amounts add up to {}, but --total is {}",
            show_money(sum),
            show_money(total)
        )),
        None => Err("the --line amounts add up to more than any receipt can hold".into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_parse_from_the_command_line() {
        let l = super::parse_line("4006381:coffee:12.99").unwrap();
        assert_eq!((l.category.as_str(), l.amount_minor), ("coffee", 1299));
        assert!(super::parse_line("just-a-sku").is_err());
        assert!(super::parse_line("s:c:lots").is_err());
        assert!(super::parse_line("s:c:1.-5").is_err());
        assert!(super::parse_line("s:c:-5.50").is_err());
    }

    #[test]
    fn lines_must_add_up_to_the_total() {
        let lines = [
            super::parse_line("a:coffee:10.00").unwrap(),
            super::parse_line("b:bread:2.50").unwrap(),
        ];
        assert_eq!(super::check_lines_add_up(&lines, 1250), Ok(()));
        assert_eq!(
            super::check_lines_add_up(&lines, 1300),
            Err("the --line amounts add up to 12.50, but --total is 13.00".into())
        );
        assert_eq!(super::check_lines_add_up(&[], 1300), Ok(()));
    }
}
