//! `loyalty till`: a till in a terminal — scan a member's code (as text or from a PNG, decoded by
//! a real QR decoder), post a purchase, refund.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use loyalty_core::api::{PurchaseRequest, RefundRequest};
use loyalty_server::operator::TillClient;

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
        #[arg(long)]
        total: String,
        #[arg(long)]
        receipt: String,
        /// Points to redeem.
        #[arg(long, default_value_t = 0)]
        redeem: i64,
        /// This till's retry token for the purchase. Default: a new random one, printed on
        /// stderr; to retry a purchase whose answer was lost, run it again with that `--key`.
        /// Not the receipt number: receipt numbers repeat across stores and days.
        #[arg(long)]
        key: Option<String>,
        /// A receipt line as SKU:CATEGORY:AMOUNT (e.g. 4006381:coffee:12.99); repeat for more.
        /// Categories drive multipliers and category offers; lines must add up to the total.
        #[arg(long = "line")]
        lines: Vec<String>,
    },
    /// Refund part or all of a purchase.
    Refund {
        /// The purchase's posting id (`posting` in its answer; any till may use it), or the
        /// idempotency key this till posted it with.
        #[arg(long)]
        purchase: String,
        /// Amount refunded, e.g. 5.00.
        #[arg(long)]
        amount: String,
        #[arg(long)]
        receipt: String,
        /// This till's retry token for the refund; default: a new random one, printed on stderr.
        #[arg(long)]
        key: Option<String>,
    },
}

/// "12.34" as 1234 minor units.
fn minor_units(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not an amount like 12.34");
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    if frac.len() > 2 || whole.is_empty() {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)
}

/// Decodes a QR code in a PNG with zbarimg, the decoder a till's scanner stands in for.
fn decode_png(path: &PathBuf) -> Result<String, String> {
    let out = std::process::Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(path)
        .output()
        .map_err(|e| format!("zbarimg (apt-get install zbar-tools) could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!("no QR code found in {}", path.display()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim_end_matches('\n')
        .to_string())
}

pub async fn run(args: TillArgs) -> CliResult {
    super::init_logging("warn");
    let till =
        TillClient::new(&args.server, &args.token, &args.till_id).map_err(|e| e.to_string())?;
    match args.command {
        TillCommand::Scan { code, png } => {
            let text = match (code, png) {
                (Some(c), _) => c,
                (None, Some(p)) => decode_png(&p)?,
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
            let request = PurchaseRequest {
                session_id: session,
                idempotency_key: key_or_new(key),
                receipt_id: receipt,
                total_minor: minor_units(&total)?,
                lines: lines
                    .iter()
                    .map(|l| parse_line(l))
                    .collect::<Result<_, _>>()?,
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
                amount_minor: minor_units(&amount)?,
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

fn show_money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// `SKU:CATEGORY:AMOUNT` as a receipt line.
fn parse_line(text: &str) -> Result<loyalty_core::api::PurchaseLine, String> {
    let mut parts = text.splitn(3, ':');
    let (Some(sku), Some(category), Some(amount)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("--line `{text}`: expected SKU:CATEGORY:AMOUNT"));
    };
    Ok(loyalty_core::api::PurchaseLine {
        sku: sku.into(),
        description: String::new(),
        category: category.into(),
        quantity: 1,
        amount_minor: minor_units(amount)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_parse_from_the_command_line() {
        let l = super::parse_line("4006381:coffee:12.99").unwrap();
        assert_eq!((l.category.as_str(), l.amount_minor), ("coffee", 1299));
        assert!(super::parse_line("just-a-sku").is_err());
        assert!(super::parse_line("s:c:lots").is_err());
    }

    #[test]
    fn amounts_parse_to_minor_units() {
        assert_eq!(super::minor_units("12.34"), Ok(1234));
        assert_eq!(super::minor_units("12.3"), Ok(1230));
        assert_eq!(super::minor_units("7"), Ok(700));
        assert!(super::minor_units("1.234").is_err());
        assert!(super::minor_units("abc").is_err());
        assert!(super::minor_units(".5").is_err());
    }
}
