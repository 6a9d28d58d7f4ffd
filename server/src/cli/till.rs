//! `loyalty till`: a till in a terminal — scan a member's code (as text or from a PNG, decoded
//! in-process by [`super::qr_scan`]), post a purchase, refund. Amounts are read strictly by
//! [`super::money`], and refused with the flag's name.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use loyalty_core::api::{PurchaseLine, PurchaseRequest, RefundRequest};
use loyalty_server::client::TillClient;
use loyalty_server::service::checkout::MAX_POINTS;

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
}

pub async fn run(args: TillArgs) -> CliResult {
    super::init_logging("warn");
    let till =
        TillClient::new(&args.server, &args.token, &args.till_id).map_err(|e| e.to_string())?;
    match args.command {
        TillCommand::Scan { code, png } => {
            let text = match (code, png) {
                (Some(c), _) => c,
                (None, Some(p)) => super::qr_scan::decode_png_file(&p)?,
                (None, None) => return Err("give the code's text or --png FILE".into()),
            };
            let s = till.scan(&text).await.map_err(|e| e.to_string())?;
            if args.json {
                return print_json(&s);
            }
            println!(
                "member {} (card {}), tier {}, {} points",
                s.member_id, s.card_number, s.tier, s.balance
            );
            println!(
                "session {} (until {})",
                s.session_id,
                show_time(s.session_expires_at_ms)
            );
        }
        TillCommand::Purchase {
            session,
            total,
            receipt,
            redeem,
            key,
            lines,
        } => {
            check_lines_add_up(&lines, total)?;
            let request = PurchaseRequest {
                session_id: session,
                idempotency_key: key_or_new(key),
                receipt_id: receipt,
                total_minor: total,
                lines,
                redeem_points: redeem,
            };
            let p = till.purchase(&request).await.map_err(|e| e.to_string())?;
            if args.json {
                return print_json(&p);
            }
            for o in &p.offers_applied {
                let gave = if o.discount_minor > 0 {
                    format!("{} off", show_money(o.discount_minor))
                } else {
                    format!("{} points", o.points)
                };
                println!("offer applied: {} ({gave})", o.title);
            }
            if p.discount_minor > 0 {
                println!(
                    "charge {} after {} off",
                    show_money(request.total_minor - p.discount_minor),
                    show_money(p.discount_minor)
                );
            }
            for m in &p.movements {
                println!("  {:>+7}  {}", m.points, m.reason);
            }
            println!(
                "earned {}, redeemed {}, balance now {} ({} pending)",
                p.earned, p.redeemed, p.balance, p.pending
            );
            println!(
                "posting {} (a refund at any till names it by this)",
                p.posting
            );
        }
        TillCommand::Refund {
            purchase,
            amount,
            receipt,
            key,
        } => {
            let request = RefundRequest {
                purchase,
                idempotency_key: key_or_new(key),
                receipt_id: receipt,
                amount_minor: amount,
            };
            let r = till.refund(&request).await.map_err(|e| e.to_string())?;
            if args.json {
                return print_json(&r);
            }
            println!(
                "took back {} earned, returned {} redeemed, balance now {}",
                r.earned, r.redeemed, r.balance
            );
        }
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
