//! `loyalty admin offers …`: offers with their figures (reach, activations, uses), one offer, its
//! uptake by segment, and ending one early or withdrawing it. Publishing is `loyalty admin offer`.

use clap::Subcommand;
use loyalty_core::api::offer_admin::OfferRecord;
use loyalty_server::client::OperatorClient;

use super::{CliResult, print_json, show_time};

#[derive(Subcommand)]
pub enum OffersCommand {
    /// Offers in id order with their figures, a page at a time.
    List {
        /// upcoming, active, ended or withdrawn.
        #[arg(long)]
        status: Option<String>,
        /// The page after this offer id.
        #[arg(long)]
        after: Option<String>,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: Option<u32>,
    },
    /// One offer with its terms and figures.
    Show { offer_id: String },
    /// How each segment's members took the offer up: reached, activated, used.
    Uptake { offer_id: String },
    /// End the offer now: tills stop applying it, phones show it ended at their next sync.
    End { offer_id: String },
    /// Withdraw the offer: as `end`, and it leaves members' phones at their next sync.
    Withdraw { offer_id: String },
}

pub async fn run(client: &OperatorClient, command: OffersCommand, json: bool) -> CliResult {
    let fail = |e: loyalty_server::client::OperatorError| e.to_string();
    match command {
        OffersCommand::List {
            status,
            after,
            limit,
        } => {
            let mut query = Vec::new();
            let pairs = [("status", status), ("after", after)];
            query.extend(pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            let list = client.offers(&query).await.map_err(fail)?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no offers");
            }
            list.iter().for_each(|r| println!("{}", line(r)));
            Ok(())
        }
        OffersCommand::Show { offer_id } => {
            print(client.offer(&offer_id).await.map_err(fail)?, json)
        }
        OffersCommand::Uptake { offer_id } => {
            let u = client.offer_uptake(&offer_id).await.map_err(fail)?;
            if json {
                return print_json(&u);
            }
            println!(
                "{}: reached {}, activated {}, used by {} ({} uses)",
                u.offer_id, u.figures.reach, u.figures.activated, u.figures.used_by, u.figures.uses
            );
            for s in &u.segments {
                println!(
                    "  {:<20} {:>10} members {:>10} reached {:>10} activated {:>10} used by {:>8} uses",
                    s.segment_id, s.members, s.reached, s.activated, s.used_by, s.uses
                );
            }
            Ok(())
        }
        OffersCommand::End { offer_id } => print(
            client.end_offer(&offer_id, false).await.map_err(fail)?,
            json,
        ),
        OffersCommand::Withdraw { offer_id } => {
            print(client.end_offer(&offer_id, true).await.map_err(fail)?, json)
        }
    }
}

fn print(record: OfferRecord, json: bool) -> CliResult {
    if json {
        return print_json(&record);
    }
    println!("{}", line(&record));
    let o = &record.offer;
    println!(
        "  valid {} to {}, version {}",
        show_time(o.valid_from_ms),
        show_time(o.valid_until_ms),
        record.version
    );
    Ok(())
}

fn line(r: &OfferRecord) -> String {
    let target = match &r.target_key {
        Some(key) => format!("{} {key}", r.target_kind),
        None => r.target_kind.clone(),
    };
    let f = r.figures;
    format!(
        "{}  {:?}  {}  [{target}]  reach {}, activated {}, used by {} ({} uses)",
        r.offer.id,
        r.offer.title,
        r.status.as_str(),
        f.reach,
        f.activated,
        f.used_by,
        f.uses
    )
}
