//! `loyalty admin`: the operator's console over the operator API.

use clap::{Args, Subcommand};
use loyalty_core::api::{
    AdjustPoints, AdjustReason, OfferTarget, PostMessage, PostOffer, PostReply, PostSegment,
    PostTargetedOffer, SendMessage, UpdateSegment,
};
use loyalty_core::requests::RequestView;
use loyalty_server::client::OperatorClient;

use super::{CliResult, print_json, show_time};

#[derive(Args)]
pub struct AdminArgs {
    /// The server's base URL.
    #[arg(long, env = "LOYALTY_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The operator token (every command but `segments recompute`, which works on the file).
    #[arg(long, env = "LOYALTY_OPERATOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a member; prints the card number and the activation code for their first device.
    CreateMember {
        /// The retailer's own reference for the member.
        #[arg(long)]
        external_ref: Option<String>,
    },
    /// A new activation code for another device of a member.
    ActivationCode { member_id: String },
    /// Publish an offer to members (`MEMBER_ID` or `--member`, repeatable), a tier or a segment.
    /// Publishing an existing id again updates the offer for everyone who has it.
    Offer(OfferArgs),
    /// Offers with their figures (reach, activations, uses); end one early or withdraw it.
    Offers {
        #[command(subcommand)]
        command: super::offers::OffersCommand,
    },
    /// Send a message to a member.
    Message(MessageArgs),
    /// Send a message to members or to a segment (marketing honours consents and the daily limit).
    Send(SendArgs),
    /// What became of each recipient of a message, or of each message to a member.
    Deliveries {
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        member: Option<String>,
    },
    /// Link a plastic card to a member, or report one lost.
    Card {
        #[command(subcommand)]
        command: CardCommand,
    },
    /// What offline tills' flushes could not do as the till did it: reused codes, redemption
    /// shortfalls, refused purchases (newest first).
    TillExceptions {
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// The operators' reports (points liability), as a table, JSON or CSV.
    Report {
        #[command(subcommand)]
        command: super::reports::ReportCommand,
    },
    /// Named operator accounts with roles (admin only).
    Operators {
        #[command(subcommand)]
        command: super::operators::OperatorsCommand,
    },
    /// Every operator write, newest first: who, what, when, from where (admin only).
    Audit {
        /// Only this operator's writes.
        #[arg(long)]
        operator: Option<String>,
        /// Only entries older than this id (the next page).
        #[arg(long)]
        before: Option<i64>,
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
    /// Members' questions and complaints.
    Requests {
        #[command(subcommand)]
        command: RequestsCommand,
    },
    /// Show what the server holds for a member: by member id, or by a card number (theirs or a
    /// linked plastic card's).
    Show { member: String },
    /// A member's whole ledger, newest first, a page at a time: reasons, rules, pending points,
    /// and the till and receipt behind each movement (by member id or card number).
    Ledger {
        member: String,
        /// The previous page's `next` cursor.
        #[arg(long)]
        before: Option<String>,
        /// Movements per page (1 to 500; the server's 50 by default).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: Option<u32>,
        /// Every page, to the member's first movement.
        #[arg(long, conflicts_with = "before")]
        all: bool,
    },
    /// A member's devices, revoked ones too: name, enrolled, last seen.
    Devices { member: String },
    /// Block a member's card: tills refuse its codes from now on (admin).
    Block { member: String },
    /// Unblock a member's card (admin).
    Unblock { member: String },
    /// Revoke a device: its credentials and its checkout key stop working at once.
    Revoke { device_id: String },
    /// Find members by card number, e-mail, phone or the retailer's own reference; without one,
    /// list them a page at a time, filtered.
    Find {
        #[arg(long, group = "by")]
        card: Option<String>,
        #[arg(long, group = "by")]
        email: Option<String>,
        #[arg(long, group = "by")]
        phone: Option<String>,
        #[arg(long = "ref", group = "by")]
        external_ref: Option<String>,
        #[command(flatten)]
        list: ListFilters,
    },
    /// Start a member's documents afresh from their current state (a new epoch): their history
    /// is dropped, the member's phones take the new epoch at their next sync and keep what they
    /// did offline. For a history that grew too long or holds what must go.
    Epoch {
        member_id: String,
        /// Only this document (card, offers, inbox or member); repeat for several. Default: all.
        #[arg(long = "doc", value_parser = parse_doc)]
        docs: Vec<loyalty_core::DocKind>,
    },
    /// The programme's configuration and its settle job.
    Programme {
        #[command(subcommand)]
        command: super::programme::ProgrammeCommand,
    },
    /// Pin a member's tier, or with --release hand them back to the ladder.
    Tier {
        member_id: String,
        /// The tier to pin.
        tier: Option<String>,
        #[arg(long, conflicts_with = "tier")]
        release: bool,
    },
    /// Credit (--points 50) or debit (--points -50) a member's points, with a reason the member's
    /// card shows. Prints the idempotency key it generates: give it back with --key to retry
    /// safely.
    Adjust(AdjustArgs),
    /// Segments: define, list, and recompute them with the RFM scores.
    #[command(subcommand)]
    Segments(SegmentsCommand),
    /// Copy the server's SQLite database into a new file while the server runs (SQLite's online
    /// backup), then check the copy. Restore by copying it back with the server stopped.
    Backup {
        /// The server's SQLite database file.
        #[arg(long, env = "LOYALTY_DATABASE")]
        database: std::path::PathBuf,
        /// The new file to write (never overwritten).
        #[arg(long)]
        to: std::path::PathBuf,
    },
}

#[derive(Args)]
struct OfferArgs {
    /// One member (the same as `--member`).
    member_id: Option<String>,
    /// A member to target; repeat for several.
    #[arg(long = "member")]
    members: Vec<String>,
    /// Every member of this tier, including those who reach it while the offer is valid.
    #[arg(long, conflicts_with_all = ["member_id", "members", "segment"])]
    tier: Option<String>,
    /// Every member of this segment, including those who join it while the offer is valid.
    #[arg(long, conflicts_with_all = ["member_id", "members", "tier"])]
    segment: Option<String>,
    #[arg(long)]
    title: String,
    #[arg(long, default_value = "")]
    description: String,
    #[arg(long, default_value = "")]
    terms: String,
    /// Days from now the offer stays valid.
    #[arg(long, default_value_t = 14)]
    days: i64,
    /// The member must activate the offer before it applies.
    #[arg(long)]
    needs_activation: bool,
    /// Offer id (default: generated).
    #[arg(long)]
    id: Option<String>,
    /// percent_off, fixed_points or points_multiplier.
    #[arg(long, default_value = "fixed_points")]
    reward: String,
    /// Percent off, bonus points, or the multiplier in percent (200 = double points).
    #[arg(long, default_value_t = 100)]
    value: i64,
    /// The product category it applies to (default: the whole basket).
    #[arg(long, default_value = "")]
    category: String,
    /// The least the basket must come to, in minor units.
    #[arg(long, default_value_t = 0)]
    min_spend_minor: i64,
    /// Uses per member; 0 for no limit.
    #[arg(long, default_value_t = 1)]
    use_limit: i64,
}

#[derive(Args)]
struct AdjustArgs {
    member_id: String,
    /// Points to credit (positive) or debit (negative).
    #[arg(long, allow_negative_numbers = true)]
    points: i64,
    /// member_request, missing_receipt, goodwill, correction or other.
    #[arg(long, value_parser = parse_reason)]
    reason: AdjustReason,
    /// What happened, in a sentence the member reads on their card.
    #[arg(long)]
    note: String,
    /// A receipt, ticket or case number.
    #[arg(long)]
    reference: Option<String>,
    /// The idempotency key (default: generated and printed): the same key retries safely.
    #[arg(long)]
    key: Option<String>,
}

#[derive(Args)]
struct MessageArgs {
    member_id: String,
    #[arg(long)]
    subject: String,
    #[arg(long, default_value = "")]
    body: String,
    /// inapp, push, sms or email.
    #[arg(long, default_value = "inapp")]
    channel: String,
    /// marketing (offers, campaigns: only to members who consented on push, SMS, e-mail) or
    /// service (their account, points, receipts, answers). No default: say which.
    #[arg(long, value_parser = ["marketing", "service"])]
    kind: String,
    #[arg(long)]
    id: Option<String>,
}

#[derive(Args)]
struct SendArgs {
    /// A recipient (repeat for several); or give --segment.
    #[arg(long = "member")]
    members: Vec<String>,
    #[arg(long, conflicts_with = "members")]
    segment: Option<String>,
    #[arg(long)]
    subject: String,
    #[arg(long, default_value = "")]
    body: String,
    /// inapp, push, sms or email.
    #[arg(long, default_value = "inapp")]
    channel: String,
    /// marketing or service.
    #[arg(long)]
    kind: String,
    /// Message id, to make a retry safe (default: generated).
    #[arg(long)]
    id: Option<String>,
}

#[derive(Subcommand)]
enum SegmentsCommand {
    /// Define a segment. Its members are known after the next `recompute`.
    Create {
        /// Segment id (default: generated).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        name: String,
        /// The rules as JSON, e.g. '{"recency":{"min":4,"max":5},"tiers":["gold"],
        /// "preferences":{"coffee":"yes"}}' (see docs/offers-and-segments.md).
        #[arg(long, default_value = "{}")]
        rules: String,
    },
    /// Replace a segment's name and rules; its members are known again after the next
    /// `recompute` (offers already given stay).
    Edit {
        id: String,
        #[arg(long)]
        name: String,
        /// The new rules as JSON (as for `create`).
        #[arg(long, default_value = "{}")]
        rules: String,
    },
    /// Delete a segment (refused while an offer that is still running targets it).
    Delete { id: String },
    /// List the segments with their member counts.
    List,
    /// Recompute RFM scores and every segment, and extend tier and segment offers to members who
    /// newly qualify: a batch job on the database file, beside a running server. Prints progress.
    Recompute {
        /// The server's database: its SQLite file, or a PostgreSQL URL (`postgres://…`,
        /// `postgresql://…` or `host=…`).
        #[arg(long, env = "LOYALTY_DATABASE")]
        database: std::path::PathBuf,
        /// The RFM window in days: purchases older than this do not count.
        #[arg(long, default_value_t = 365)]
        window_days: i64,
    },
}

#[derive(Subcommand)]
enum RequestsCommand {
    /// List requests (open ones by default).
    List {
        /// open, answered or closed; `all` for every one.
        #[arg(long, default_value = "open")]
        status: String,
    },
    /// Answer a request (its id as `requests list` prints it).
    Reply {
        id: String,
        #[arg(long)]
        body: String,
        /// The name the member sees.
        #[arg(long)]
        author: Option<String>,
        /// Close the request with this answer.
        #[arg(long)]
        close: bool,
    },
    /// Close a request without an answer.
    Close { id: String },
}

fn parse_doc(name: &str) -> Result<loyalty_core::DocKind, String> {
    loyalty_core::DocKind::from_name(name)
        .ok_or_else(|| format!("`{name}` is not a document: card, offers, inbox or member"))
}

fn parse_reason(name: &str) -> Result<AdjustReason, String> {
    AdjustReason::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = AdjustReason::ALL.iter().map(|r| r.as_str()).collect();
        format!("`{name}` is not a reason: {}", names.join(", "))
    })
}

fn now_ms() -> i64 {
    use loyalty_core::Clock;
    loyalty_core::SystemClock.now_ms()
}

pub async fn run(args: AdminArgs) -> CliResult {
    super::init_logging("warn");
    let json = args.json;
    if let AdminCommand::Segments(SegmentsCommand::Recompute {
        database,
        window_days,
    }) = &args.command
    {
        return recompute(database, *window_days, json).await;
    }
    if let AdminCommand::Backup { database, to } = &args.command {
        return backup(database, to, json).await;
    }
    let token = args
        .token
        .as_deref()
        .ok_or("the operator token is missing: pass --token or set LOYALTY_OPERATOR_TOKEN")?;
    let client = OperatorClient::new(&args.server, token).map_err(|e| e.to_string())?;
    match args.command {
        AdminCommand::CreateMember { external_ref } => {
            create_member(&client, external_ref, json).await
        }
        AdminCommand::ActivationCode { member_id } => {
            activation_code(&client, &member_id, json).await
        }
        AdminCommand::Offer(offer) => publish_offer(&client, offer, json).await,
        AdminCommand::Offers { command } => super::offers::run(&client, command, json).await,
        AdminCommand::Message(message) => post_message(&client, message, json).await,
        AdminCommand::Programme { command } => super::programme::run(&client, command, json).await,
        AdminCommand::Tier {
            member_id,
            tier,
            release,
        } => {
            if tier.is_none() && !release {
                return Err("name a tier to pin, or --release".into());
            }
            super::programme::set_tier(&client, &member_id, tier.as_deref(), json).await
        }
        AdminCommand::Adjust(adjust) => adjust_points(&client, adjust, json).await,
        AdminCommand::Segments(command) => segments(&client, command, json).await,
        AdminCommand::Send(send) => send_message(&client, send, json).await,
        AdminCommand::Deliveries { message, member } => {
            deliveries(&client, message.as_deref(), member.as_deref(), json).await
        }
        AdminCommand::Card { command } => card(&client, command, json).await,
        AdminCommand::TillExceptions { limit } => till_exceptions(&client, limit, json).await,
        AdminCommand::Requests { command } => requests(&client, command, json).await,
        AdminCommand::Report { command } => super::reports::run(&client, command, json).await,
        AdminCommand::Operators { command } => super::operators::run(&client, command, json).await,
        AdminCommand::Audit {
            operator,
            before,
            limit,
        } => super::operators::audit(&client, operator.as_deref(), before, limit, json).await,
        AdminCommand::Epoch { member_id, docs } => epoch(&client, &member_id, docs, json).await,
        AdminCommand::Ledger {
            member,
            before,
            limit,
            all,
        } => {
            let member_id = resolve_member(&client, &member).await?;
            super::history::ledger(&client, &member_id, before, limit, all, json).await
        }
        AdminCommand::Devices { member } => {
            let member_id = resolve_member(&client, &member).await?;
            super::history::devices(&client, &member_id, json).await
        }
        AdminCommand::Block { member } => {
            let member_id = resolve_member(&client, &member).await?;
            client.block(&member_id).await.map_err(|e| e.to_string())?;
            done(json, "blocked", &member_id)
        }
        AdminCommand::Unblock { member } => {
            let member_id = resolve_member(&client, &member).await?;
            client
                .unblock(&member_id)
                .await
                .map_err(|e| e.to_string())?;
            done(json, "unblocked", &member_id)
        }
        AdminCommand::Revoke { device_id } => {
            client
                .revoke_device(&device_id)
                .await
                .map_err(|e| e.to_string())?;
            done(json, "revoked", &device_id)
        }
        AdminCommand::Show { member } => {
            let member_id = resolve_member(&client, &member).await?;
            show(&client, &member_id, json).await
        }
        AdminCommand::Find {
            card,
            email,
            phone,
            external_ref,
            list,
        } => {
            let (field, value) = match (card, email, phone, external_ref) {
                (Some(v), ..) => ("card_number", v),
                (_, Some(v), ..) => ("email", v),
                (_, _, Some(v), _) => ("phone", v),
                (.., Some(v)) => ("external_ref", v),
                _ => {
                    let found = client.list_members(&list.query()).await;
                    return print_members(found.map_err(|e| e.to_string())?, json);
                }
            };
            find(&client, field, &value, json).await
        }
        AdminCommand::Backup { database, to } => backup(&database, &to, json).await,
    }
}

/// Says what an action did to whom: a line, or with `--json` `{"done": …, "id": …}`.
fn done(json: bool, what: &str, id: &str) -> CliResult {
    if json {
        return print_json(&serde_json::json!({ "done": what, "id": id }));
    }
    println!("{what} {id}");
    Ok(())
}

async fn adjust_points(client: &OperatorClient, args: AdjustArgs, json: bool) -> CliResult {
    let key = match args.key {
        Some(key) => key,
        None => {
            let key = loyalty_core::ids::new_record_id("adj");
            // Before the request goes out: if its answer is lost, the retry needs this key.
            eprintln!("idempotency key: {key} (to retry, repeat the command with --key {key})");
            key
        }
    };
    let adjustment = AdjustPoints {
        idempotency_key: key,
        points: args.points,
        reason: args.reason,
        note: args.note,
        reference: args.reference,
    };
    let r = client
        .adjust(&args.member_id, &adjustment)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&r);
    }
    let done = if args.points > 0 {
        "credited to"
    } else {
        "debited from"
    };
    println!(
        "{} points {done} {}: balance {} (posting {})",
        args.points.unsigned_abs(),
        r.member_id,
        r.balance,
        r.posting
    );
    Ok(())
}

async fn create_member(
    client: &OperatorClient,
    external_ref: Option<String>,
    json: bool,
) -> CliResult {
    let m = client
        .create_member(external_ref)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&m);
    }
    println!("member:          {}", m.member_id);
    println!("card number:     {}", m.card_number);
    println!(
        "activation code: {} (valid until {})",
        m.activation_code,
        show_time(m.activation_expires_at_ms)
    );
    Ok(())
}

async fn activation_code(client: &OperatorClient, member_id: &str, json: bool) -> CliResult {
    let c = client
        .activation_code(member_id)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&c);
    }
    println!(
        "activation code: {} (valid until {})",
        c.activation_code,
        show_time(c.activation_expires_at_ms)
    );
    Ok(())
}

async fn publish_offer(client: &OperatorClient, args: OfferArgs, json: bool) -> CliResult {
    let reward = loyalty_core::offers::Reward::parse(&args.reward).ok_or_else(|| {
        format!(
            "unknown reward `{}`: percent_off, fixed_points or points_multiplier",
            args.reward
        )
    })?;
    let now = now_ms();
    let offer = PostOffer {
        id: args.id,
        title: args.title,
        description: args.description,
        terms: args.terms,
        valid_from_ms: now,
        valid_until_ms: now.saturating_add(args.days.saturating_mul(86_400_000)),
        needs_activation: args.needs_activation,
        reward,
        value: args.value,
        category: args.category,
        min_spend_minor: args.min_spend_minor,
        use_limit: args.use_limit,
    };
    let target = match (args.tier, args.segment) {
        (Some(tier), _) => OfferTarget::Tier { tier },
        (_, Some(segment_id)) => OfferTarget::Segment { segment_id },
        _ => OfferTarget::Members {
            member_ids: args.member_id.into_iter().chain(args.members).collect(),
        },
    };
    if matches!(&target, OfferTarget::Members { member_ids } if member_ids.is_empty()) {
        return Err("say who the offer is for: MEMBER_ID, --member, --tier or --segment".into());
    }
    let p = client
        .publish_offer(&PostTargetedOffer { offer, target })
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&p);
    }
    println!(
        "offer {} version {} published to {} new members ({} in all), valid until {}",
        p.offer.id,
        p.version,
        p.added_members,
        p.members,
        show_time(p.offer.valid_until_ms)
    );
    Ok(())
}

async fn post_message(client: &OperatorClient, args: MessageArgs, json: bool) -> CliResult {
    let message = PostMessage {
        id: args.id,
        channel: args.channel,
        subject: args.subject,
        body: args.body,
        kind: Some(args.kind),
    };
    let m = client
        .post_message(&args.member_id, &message)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&m);
    }
    println!("message {} sent on {}", m.id, m.channel);
    Ok(())
}

/// `segments create` and `segments list` (`recompute` works on the file: see [`recompute`]).
fn parse_rules(rules: &str) -> Result<loyalty_core::segments::SegmentRules, String> {
    loyalty_core::segments::rules_object(&mut serde_json::Deserializer::from_str(rules))
        .map_err(|e| format!("--rules: {e}"))
}

async fn segments(client: &OperatorClient, command: SegmentsCommand, json: bool) -> CliResult {
    match command {
        SegmentsCommand::Edit { id, name, rules } => {
            let rules = parse_rules(&rules)?;
            let v = client
                .update_segment(&id, &UpdateSegment { name, rules })
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&v);
            }
            println!(
                "segment {} edited; its members are known after `loyalty admin segments recompute`",
                v.segment.id
            );
        }
        SegmentsCommand::Delete { id } => {
            client
                .delete_segment(&id)
                .await
                .map_err(|e| e.to_string())?;
            return done(json, "deleted", &id);
        }
        SegmentsCommand::Create { id, name, rules } => {
            let rules = parse_rules(&rules)?;
            let v = client
                .create_segment(&PostSegment { id, name, rules })
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&v);
            }
            println!(
                "segment {} created; its members are known after `loyalty admin segments recompute`",
                v.segment.id
            );
        }
        SegmentsCommand::List => {
            let all = client.segments().await.map_err(|e| e.to_string())?;
            if json {
                return print_json(&all);
            }
            for v in all {
                let when = v
                    .computed_at_ms
                    .map_or_else(|| "never computed".to_string(), show_time);
                println!(
                    "{}: {} — {} members ({when})",
                    v.segment.id, v.segment.name, v.members
                );
            }
        }
        SegmentsCommand::Recompute {
            database,
            window_days,
        } => return recompute(&database, window_days, json).await,
    }
    Ok(())
}

async fn send_message(client: &OperatorClient, args: SendArgs, json: bool) -> CliResult {
    let message = SendMessage {
        id: args.id,
        channel: args.channel,
        kind: args.kind,
        subject: args.subject,
        body: args.body,
        members: args.members,
        segment: args.segment,
    };
    let s = client
        .send_message(&message)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&s);
    }
    println!(
        "message {} ({}, {}): {} recipients, {} in the inbox, {} queued",
        s.message_id, s.kind, s.channel, s.recipients, s.in_inbox, s.queued
    );
    println!(
        "  not sent: {} without consent, {} over the daily limit",
        s.refused_no_consent, s.refused_rate_limited
    );
    Ok(())
}

async fn deliveries(
    client: &OperatorClient,
    message: Option<&str>,
    member: Option<&str>,
    json: bool,
) -> CliResult {
    let list = client
        .deliveries(message, member)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&list);
    }
    for d in list {
        println!(
            "{}  {}  {:<6} {:<8} {}{}",
            d.message_id,
            d.member_id,
            d.channel,
            d.status,
            d.reason.unwrap_or_default(),
            if d.in_inbox { "  [inbox]" } else { "" }
        );
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum CardCommand {
    /// Link a plastic card (16 digits, as printed) to the member.
    Link {
        member_id: String,
        card_number: String,
    },
    /// Report one of the member's linked cards lost: it opens nothing; their points stay.
    Lost {
        member_id: String,
        card_number: String,
    },
}

async fn card(client: &OperatorClient, command: CardCommand, json: bool) -> CliResult {
    let cards = match command {
        CardCommand::Link {
            member_id,
            card_number,
        } => client.link_card(&member_id, &card_number).await,
        CardCommand::Lost {
            member_id,
            card_number,
        } => client.report_card_lost(&member_id, &card_number).await,
    }
    .map_err(|e| e.to_string())?;
    if json {
        return print_json(&cards);
    }
    for c in cards {
        println!("{}  {}", c.card_number, c.status.as_str());
    }
    Ok(())
}

async fn till_exceptions(client: &OperatorClient, limit: u32, json: bool) -> CliResult {
    let list = client
        .till_exceptions(limit)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&list);
    }
    for e in list.exceptions {
        println!(
            "{}  {:<16} {}  {}  {} points  {}",
            super::show_time(e.at_ms),
            e.kind.as_str(),
            e.posting,
            e.member_id.as_deref().unwrap_or("-"),
            e.points,
            e.detail
        );
    }
    Ok(())
}

async fn epoch(
    client: &OperatorClient,
    member_id: &str,
    docs: Vec<loyalty_core::DocKind>,
    json: bool,
) -> CliResult {
    let started = client
        .start_epochs(member_id, docs)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&started);
    }
    for d in &started.documents {
        println!(
            "{}: epoch {}, history {} operations in {} changes -> {} in {}",
            d.doc, d.epoch, d.ops_before, d.changes_before, d.ops_after, d.changes_after
        );
    }
    Ok(())
}

/// A member id as given, or the member a card number names.
async fn resolve_member(client: &OperatorClient, member: &str) -> Result<String, String> {
    if !loyalty_core::card_trust::looks_like_card_number(member) {
        return Ok(member.to_string());
    }
    let found = client
        .find_members("card_number", member)
        .await
        .map_err(|e| e.to_string())?;
    found
        .into_iter()
        .next()
        .map(|m| m.member_id)
        .ok_or_else(|| format!("no member has the card {member}"))
}

/// `find`'s list filters (used when no search value is given).
#[derive(clap::Args)]
struct ListFilters {
    #[arg(long)]
    tier: Option<String>,
    /// active or blocked.
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    segment: Option<String>,
    /// The page after this member id.
    #[arg(long)]
    after: Option<String>,
    #[arg(long)]
    limit: Option<u32>,
}

impl ListFilters {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        for (name, value) in [
            ("tier", &self.tier),
            ("status", &self.status),
            ("segment", &self.segment),
            ("after", &self.after),
        ] {
            if let Some(v) = value {
                q.push((name, v.clone()));
            }
        }
        if let Some(limit) = self.limit {
            q.push(("limit", limit.to_string()));
        }
        q
    }
}

async fn find(client: &OperatorClient, field: &str, value: &str, json: bool) -> CliResult {
    let found = client
        .find_members(field, value)
        .await
        .map_err(|e| e.to_string())?;
    print_members(found, json)
}

fn print_members(found: Vec<loyalty_core::api::MemberMatch>, json: bool) -> CliResult {
    if json {
        return print_json(&found);
    }
    if found.is_empty() {
        println!("no member found");
    }
    for m in found {
        println!(
            "{}  card {}  tier {}  {} points{}{}",
            m.member_id,
            m.card_number,
            m.tier,
            m.balance,
            m.external_ref
                .map(|r| format!("  ref {r}"))
                .unwrap_or_default(),
            if m.blocked { "  BLOCKED" } else { "" }
        );
    }
    Ok(())
}

async fn show(client: &OperatorClient, member_id: &str, json: bool) -> CliResult {
    let v = client.member(member_id).await.map_err(|e| e.to_string())?;
    if json {
        return print_json(&v);
    }
    if let Some(card) = &v.card {
        println!(
            "card {} ({}), tier {}, balance {}",
            card.card_number,
            card.status.as_str(),
            card.tier,
            card.balance
        );
    }
    println!("{} offers, {} messages", v.offers.len(), v.messages.len());
    for o in &v.offers {
        let on = if v.member.activations.contains_key(&o.id) {
            " [activated]"
        } else {
            ""
        };
        println!("  offer {}: {}{on}", o.id, o.title);
    }
    for m in &v.messages {
        let read = if v.member.read.contains_key(&m.id) {
            " [read]"
        } else {
            ""
        };
        println!("  message {}: {}{read}", m.id, m.subject);
    }
    Ok(())
}

/// The database the batch job works on, beside a running server: PostgreSQL for a URL (two
/// connections: the job's own and the fan-out's), else the SQLite file, which must exist.
async fn batch_storage(
    database: &std::path::Path,
) -> Result<Box<dyn loyalty_server::storage::OfferStore>, String> {
    use loyalty_server::storage::postgres::{PgStorage, is_postgres_url};
    let name = database.to_string_lossy();
    if is_postgres_url(&name) {
        let storage = PgStorage::connect(&name, 2)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(Box::new(storage));
    }
    if !database.exists() {
        return Err(format!("no database at {}", database.display()));
    }
    let storage = loyalty_server::storage::sqlite::SqliteStorage::open(database)
        .map_err(|e| e.to_string())?;
    Ok(Box::new(storage))
}

/// `loyalty admin segments recompute`: the batch job on the server's database (SQLite file or
/// PostgreSQL), beside a running server, through the storage's `OfferStore`, printing each step
/// as it ends.
async fn recompute(database: &std::path::Path, window_days: i64, json: bool) -> CliResult {
    use loyalty_core::Clock;
    if !(1..=3650).contains(&window_days) {
        return Err("--window-days must be 1 to 3650".into());
    }
    let storage = batch_storage(database).await?;
    let report = storage
        .recompute_segments(
            loyalty_core::SystemClock.now_ms(),
            window_days.saturating_mul(86_400_000),
            Box::new(move |line| {
                if !json {
                    println!("{line}");
                }
            }),
        )
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&serde_json::json!({
            "scored_members": report.scored_members,
            "segments": report.segments,
            "offers": report.offers,
            "already_running": report.already_running,
        }));
    }
    Ok(())
}

/// `loyalty admin backup`: on the blocking pool, printing how far it is in tenths.
async fn backup(database: &std::path::Path, to: &std::path::Path, json: bool) -> CliResult {
    use loyalty_server::storage::sqlite::backup;
    let (database, to) = (database.to_path_buf(), to.to_path_buf());
    let target = to.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mut shown = -1;
        backup::backup(&database, &to, &mut |left, all| {
            let tenth = if all > 0 { 10 - left * 10 / all } else { 10 };
            if !json && tenth != shown {
                shown = tenth;
                eprintln!("backup: {}%", tenth * 10);
            }
        })
        .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    if json {
        return print_json(&report);
    }
    println!(
        "backup written to {}: {} pages, {} bytes, schema version {}, integrity ok",
        target.display(),
        report.pages,
        report.bytes,
        report.schema_version
    );
    Ok(())
}

async fn requests(client: &OperatorClient, command: RequestsCommand, json: bool) -> CliResult {
    let record = match command {
        RequestsCommand::List { status } => {
            let status = (status != "all").then_some(status);
            let list = client
                .requests(status.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&list);
            }
            // The operators' handle stands in for the id: it names the member too.
            let threads: Vec<RequestView> = list
                .into_iter()
                .map(|r| RequestView {
                    id: r.id,
                    kind: r.kind,
                    subject: r.subject,
                    body: r.body,
                    opened_at_ms: r.opened_at_ms,
                    status: r.status,
                    last_activity_ms: r.last_activity_ms,
                    entries: r.entries,
                })
                .collect();
            super::print_requests(&threads, "member", "");
            return Ok(());
        }
        RequestsCommand::Reply {
            id,
            body,
            author,
            close,
        } => {
            let reply = PostReply {
                id: None,
                body,
                author,
                close,
            };
            client
                .reply_request(&id, &reply)
                .await
                .map_err(|e| e.to_string())?
        }
        RequestsCommand::Close { id } => {
            client.close_request(&id).await.map_err(|e| e.to_string())?
        }
    };
    if json {
        return print_json(&record);
    }
    println!("request {} is now {}", record.id, record.status);
    Ok(())
}
