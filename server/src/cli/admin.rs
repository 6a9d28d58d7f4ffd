//! `loyalty admin`: the operator's console over the operator API.

use clap::{Args, Subcommand};
use loyalty_core::api::{PostMessage, PostOffer, PostReply, SendMessage};
use loyalty_server::operator::OperatorClient;

use super::{CliResult, print_json, show_time};

#[derive(Args)]
pub struct AdminArgs {
    /// The server's base URL.
    #[arg(long, env = "LOYALTY_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The operator token.
    #[arg(long, env = "LOYALTY_OPERATOR_TOKEN", hide_env_values = true)]
    token: String,
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
    /// Publish an offer to a member.
    Offer {
        member_id: String,
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
    },
    /// Send a message to a member.
    Message {
        member_id: String,
        #[arg(long)]
        subject: String,
        #[arg(long, default_value = "")]
        body: String,
        /// inapp, push, sms or email.
        #[arg(long, default_value = "inapp")]
        channel: String,
        #[arg(long)]
        id: Option<String>,
    },
    /// Send a message to members or to a segment (marketing honours consents and the daily limit).
    Send {
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
    },
    /// What became of each recipient of a message, or of each message to a member.
    Deliveries {
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        member: Option<String>,
    },
    /// Members' questions and complaints.
    Requests {
        #[command(subcommand)]
        command: RequestsCommand,
    },
    /// Show what the server holds for a member.
    Show { member_id: String },
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

fn now_ms() -> i64 {
    use loyalty_core::Clock;
    loyalty_core::SystemClock.now_ms()
}

pub async fn run(args: AdminArgs) -> CliResult {
    super::init_logging("warn");
    let client = OperatorClient::new(&args.server, &args.token).map_err(|e| e.to_string())?;
    let json = args.json;
    match args.command {
        AdminCommand::CreateMember { external_ref } => {
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
        }
        AdminCommand::ActivationCode { member_id } => {
            let c = client
                .activation_code(&member_id)
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
        }
        AdminCommand::Offer {
            member_id,
            title,
            description,
            terms,
            days,
            needs_activation,
            id,
            reward,
            value,
            category,
            min_spend_minor,
            use_limit,
        } => {
            let reward = loyalty_core::offers::Reward::parse(&reward).ok_or_else(|| {
                format!("unknown reward `{reward}`: percent_off, fixed_points or points_multiplier")
            })?;
            let now = now_ms();
            let offer = PostOffer {
                id,
                title,
                description,
                terms,
                valid_from_ms: now,
                valid_until_ms: now.saturating_add(days.saturating_mul(86_400_000)),
                needs_activation,
                reward,
                value,
                category,
                min_spend_minor,
                use_limit,
            };
            let o = client
                .post_offer(&member_id, &offer)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&o);
            }
            println!(
                "offer {} published, valid until {}",
                o.id,
                show_time(o.valid_until_ms)
            );
        }
        AdminCommand::Message {
            member_id,
            subject,
            body,
            channel,
            id,
        } => {
            let message = PostMessage {
                id,
                channel,
                subject,
                body,
                kind: None,
            };
            let m = client
                .post_message(&member_id, &message)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&m);
            }
            println!("message {} sent on {}", m.id, m.channel);
        }
        AdminCommand::Send {
            members,
            segment,
            subject,
            body,
            channel,
            kind,
            id,
        } => {
            let message = SendMessage {
                id,
                channel,
                kind,
                subject,
                body,
                members,
                segment,
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
        }
        AdminCommand::Deliveries { message, member } => {
            let list = client
                .deliveries(message.as_deref(), member.as_deref())
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
        }
        AdminCommand::Requests { command } => return requests(&client, command, json).await,
        AdminCommand::Show { member_id } => {
            let v = client.member(&member_id).await.map_err(|e| e.to_string())?;
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
        }
    }
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
            if list.is_empty() {
                println!("no requests");
            }
            for r in list {
                println!(
                    "{}  [{}] {}: {}  ({})",
                    r.id,
                    r.status,
                    r.kind,
                    r.subject,
                    show_time(r.opened_at_ms)
                );
                if !r.body.is_empty() {
                    println!("    {}", r.body);
                }
                for e in r.entries {
                    let who = if e.from == "member" {
                        "member"
                    } else {
                        &e.author
                    };
                    println!("    {who}: {}", e.body);
                }
            }
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
