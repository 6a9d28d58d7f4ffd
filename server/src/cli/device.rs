//! `loyalty device`: a member's phone in a terminal. Its documents live in a local store file, just
//! as on a phone, and every command but `enroll` and `sync` works offline. Only `enroll` creates
//! the store: any other command on a path with no store is refused, so a mistyped `--store` is
//! not mistaken for a new, empty phone.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use loyalty_core::{Device, Error};
use serde_json::json;

use super::{CliResult, print_json, show_time};

#[derive(Args)]
pub struct DeviceArgs {
    /// The device's local store file.
    #[arg(
        long,
        env = "LOYALTY_DEVICE_STORE",
        default_value = "loyalty-device.db"
    )]
    store: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Enroll with an activation code, then sync.
    Enroll {
        #[arg(long, env = "LOYALTY_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long)]
        code: String,
        /// A name for this device.
        #[arg(long, default_value = "terminal")]
        name: String,
    },
    /// Sync with the server.
    Sync,
    /// Sign this device out: forget the member's data, credentials and checkout key, so it can
    /// enroll again (after the operator revoked it, or to hand the phone on). Changes not synced
    /// yet are lost.
    Reset,
    /// Show the card and its balance.
    Card,
    /// List offers.
    Offers,
    /// List messages.
    Inbox,
    /// Activate (clip) an offer.
    Activate { offer_id: String },
    /// Set the till PIN (4 to 8 digits), with which a till that has only the card number may let
    /// the member redeem points. Needs the server.
    SetPin { pin: String },
    /// Link a plastic card (its 16 digits) to the member. Needs the server.
    LinkCard { card_number: String },
    /// Mark a message read.
    Read { message_id: String },
    /// Archive a message.
    Archive { message_id: String },
    /// Set a preference.
    SetPreference { key: String, value: String },
    /// Grant or withdraw consent for a channel (push, sms, email).
    Consent {
        channel: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Preferences and consents.
    Preferences,
    /// Show the checkout code (made offline, rotating every 30 s).
    Code {
        /// Also write the QR code as an SVG file.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Also write the QR code as a PNG file.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Draw the QR code in the terminal.
        #[arg(long)]
        terminal: bool,
    },
    /// Stay connected and sync whenever the server has news (Ctrl-C stops).
    Watch,
    /// Questions and complaints to the retailer (work offline; sent at the next sync).
    Request {
        #[command(subcommand)]
        command: RequestCommand,
    },
}

#[derive(Subcommand)]
enum RequestCommand {
    /// Open a question or a complaint.
    Open {
        /// question or complaint.
        #[arg(long, default_value = "question")]
        kind: String,
        #[arg(long)]
        subject: String,
        #[arg(long, default_value = "")]
        body: String,
    },
    /// Add to one of your requests.
    FollowUp {
        request_id: String,
        #[arg(long)]
        body: String,
    },
    /// Your requests with their answers.
    List,
}

/// A core error as advice for the person at the terminal: which server could not be reached,
/// and what to do when the server no longer accepts the device or the store is enrolled already.
fn explain(e: Error, store: &Path, server: &str) -> String {
    let store = store.display();
    match e {
        Error::Offline(reason) => format!(
            "the server at {server} is not reachable ({reason}); is `loyalty server` running there?"
        ),
        Error::Server {
            status: 401 | 403,
            message,
            ..
        } => format!(
            "the server no longer accepts this device ({message}). To enroll it again: \
             `loyalty device --store {store} reset`, then `loyalty device --store {store} enroll \
             --code CODE` with a new activation code from the operator"
        ),
        Error::AlreadyEnrolled { member_id } => format!(
            "the store {store} is already enrolled as member {member_id}; \
             `loyalty device --store {store} reset` signs it out first"
        ),
        other => other.to_string(),
    }
}

pub async fn run(args: DeviceArgs) -> CliResult {
    super::init_logging("warn");
    let store = args.store.as_path();
    let creating = matches!(args.command, DeviceCommand::Enroll { .. });
    if !creating && !store.exists() {
        return Err(format!(
            "there is no device store at {}: check --store (or LOYALTY_DEVICE_STORE), or enroll \
             one first with `loyalty device --store {} enroll --code CODE`",
            store.display(),
            store.display()
        ));
    }
    let device = Device::open(store).map_err(|e| e.to_string())?;
    let server = match &args.command {
        DeviceCommand::Enroll { server, .. } => server.clone(),
        _ => device
            .credentials()
            .map(|c| c.server_url)
            .unwrap_or_default(),
    };
    let err = |e: Error| explain(e, store, &server);
    let json = args.json;
    match args.command {
        DeviceCommand::Enroll { server, code, name } => {
            enroll(&device, &err, json, &server, &code, &name).await
        }
        DeviceCommand::Reset => reset(&device, &err, json, store).await,
        DeviceCommand::Sync => {
            let report = device.sync().await.map_err(err)?;
            if json {
                return print_json(&report);
            }
            print_sync(&report);
            Ok(())
        }
        DeviceCommand::Card => show_card(&device, &err, json),
        DeviceCommand::Offers => show_offers(&device, &err, json),
        DeviceCommand::Inbox => show_inbox(&device, &err, json),
        DeviceCommand::LinkCard { card_number } => {
            let cards = device.link_card(&card_number).await.map_err(err)?;
            if json {
                return super::print_json(&cards);
            }
            for c in cards {
                println!("{}  {}", c.card_number, c.status.as_str());
            }
            Ok(())
        }
        DeviceCommand::SetPin { pin } => {
            device.set_pin(&pin).await.map_err(err)?;
            done(json, "PIN set")
        }
        DeviceCommand::Activate { offer_id } => {
            device.activate_offer(&offer_id).map_err(err)?;
            done(
                json,
                &format!("offer {offer_id} activated (reaches the server at the next sync)"),
            )
        }
        DeviceCommand::Read { message_id } => {
            device.mark_read(&message_id).map_err(err)?;
            done(json, &format!("message {message_id} marked read"))
        }
        DeviceCommand::Archive { message_id } => {
            device.archive(&message_id).map_err(err)?;
            done(json, &format!("message {message_id} archived"))
        }
        DeviceCommand::SetPreference { key, value } => {
            device.set_preference(&key, &value).map_err(err)?;
            done(json, &format!("preference {key} set"))
        }
        DeviceCommand::Consent { channel, state } => {
            device.set_consent(&channel, state == "on").map_err(err)?;
            done(json, &format!("consent for {channel}: {state}"))
        }
        DeviceCommand::Code { svg, png, terminal } => {
            show_code(&device, &err, json, svg, png, terminal)
        }
        DeviceCommand::Watch => watch(&device, &err).await,
        DeviceCommand::Request { command } => request(&device, &err, json, command),
        DeviceCommand::Preferences => preferences(&device, &err, json),
    }
}

async fn enroll(
    device: &Device,
    err: &dyn Fn(Error) -> String,
    json: bool,
    server: &str,
    code: &str,
    name: &str,
) -> CliResult {
    device.enroll(server, code, name).await.map_err(err)?;
    let report = device.sync().await.map_err(err)?;
    let creds = device
        .credentials()
        .ok_or("enrollment left no credentials")?;
    if json {
        return print_json(
            &json!({"member_id": creds.member_id, "card_number": creds.card_number, "sync": report}),
        );
    }
    println!(
        "enrolled as member {} (card {})",
        creds.member_id, creds.card_number
    );
    print_sync(&report);
    Ok(())
}

async fn reset(
    device: &Device,
    err: &dyn Fn(Error) -> String,
    json: bool,
    store: &Path,
) -> CliResult {
    let was = device.credentials();
    device.reset().await.map_err(err)?;
    if json {
        return print_json(&json!({"reset": true, "was_member": was.map(|c| c.member_id)}));
    }
    match was {
        Some(c) => println!(
            "signed out: member {} (card {}) and its data are gone from {}; enroll again with a new activation code",
            c.member_id,
            c.card_number,
            store.display()
        ),
        None => println!("{} was not enrolled; it is empty now", store.display()),
    }
    Ok(())
}

fn show_card(device: &Device, err: &dyn Fn(Error) -> String, json: bool) -> CliResult {
    let card = device.card().map_err(err)?;
    if json {
        return print_json(&card);
    }
    let Some(card) = card else {
        println!("no card yet: enroll and sync first");
        return Ok(());
    };
    println!(
        "card {}  status {}  tier {}",
        card.card_number,
        card.status.as_str(),
        card.tier
    );
    println!("balance: {} points", card.balance);
    if let Some(s) = &card.standing {
        print_standing(s);
    }
    for e in card.ledger.iter().take(10) {
        println!("  {:>+7}  {}  {}", e.points, show_time(e.at_ms), e.reason);
    }
    Ok(())
}

fn show_offers(device: &Device, err: &dyn Fn(Error) -> String, json: bool) -> CliResult {
    let offers = device.offers().map_err(err)?;
    if json {
        return print_json(&offers);
    }
    if offers.is_empty() {
        println!("no offers");
    }
    for o in offers {
        println!("{}  [{:?}]  {}", o.offer.id, o.state, o.offer.title);
        if !o.offer.description.is_empty() {
            println!("    {}", o.offer.description);
        }
        println!("    valid until {}", show_time(o.offer.valid_until_ms));
    }
    Ok(())
}

fn show_inbox(device: &Device, err: &dyn Fn(Error) -> String, json: bool) -> CliResult {
    let messages = device.messages().map_err(err)?;
    if json {
        return print_json(&messages);
    }
    if messages.is_empty() {
        println!("no messages");
    }
    for m in messages {
        let mark = if m.archived_at_ms.is_some() {
            "archived"
        } else if m.read_at_ms.is_some() {
            "read"
        } else {
            "NEW"
        };
        println!(
            "{}  [{mark}]  {}  ({}, {})",
            m.message.id,
            m.message.subject,
            m.message.channel,
            show_time(m.message.sent_at_ms)
        );
        if !m.message.body.is_empty() {
            println!("    {}", m.message.body);
        }
        if let Some(d) = m.message.delivery.as_ref().filter(|d| d.status != "sent") {
            println!(
                "    {} by {}{}",
                d.status,
                m.message.channel,
                d.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn show_code(
    device: &Device,
    err: &dyn Fn(Error) -> String,
    json: bool,
    svg: Option<PathBuf>,
    png: Option<PathBuf>,
    terminal: bool,
) -> CliResult {
    let code = device.checkout_code().map_err(err)?;
    let matrix =
        loyalty_core::qr::QrMatrix::encode_checkout_code(&code).map_err(|e| e.to_string())?;
    if let Some(path) = &svg {
        std::fs::write(path, matrix.to_svg(8)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &png {
        let bytes = matrix.to_png(8).map_err(|e| e.to_string())?;
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if json {
        return print_json(
            &json!({"code": code.text, "expires_at_ms": code.expires_at_ms, "qr_version": matrix.version}),
        );
    }
    if terminal {
        print!("{}", matrix.to_terminal());
    }
    println!("{}", code.text);
    println!(
        "valid until {} (QR version {})",
        show_time(code.expires_at_ms),
        matrix.version
    );
    Ok(())
}

async fn watch(device: &Device, err: &dyn Fn(Error) -> String) -> CliResult {
    let mut changes = device.subscribe();
    let printer = tokio::spawn(async move {
        while let Ok(docs) = changes.recv().await {
            let names: Vec<&str> = docs.iter().map(|d| d.name()).collect();
            println!("synced: {} changed", names.join(", "));
        }
    });
    println!("watching for changes (Ctrl-C stops)");
    let result = device.watch().await.map_err(err);
    printer.abort();
    result?;
    Ok(())
}

fn request(
    device: &Device,
    err: &dyn Fn(Error) -> String,
    json: bool,
    command: RequestCommand,
) -> CliResult {
    match command {
        RequestCommand::Open {
            kind,
            subject,
            body,
        } => {
            let id = device.open_request(&kind, &subject, &body).map_err(err)?;
            if json {
                return print_json(&json!({"request_id": id}));
            }
            println!("request {id} opened (reaches the retailer at the next sync)");
        }
        RequestCommand::FollowUp { request_id, body } => {
            device.add_followup(&request_id, &body).map_err(err)?;
            done(json, &format!("added to request {request_id}"))?;
        }
        RequestCommand::List => {
            let list = device.requests().map_err(err)?;
            if json {
                return print_json(&list);
            }
            super::print_requests(&list, "you", "you: ");
        }
    }
    Ok(())
}

fn preferences(device: &Device, err: &dyn Fn(Error) -> String, json: bool) -> CliResult {
    let m = device.member_state().map_err(err)?;
    if json {
        return print_json(&json!({"preferences": m.preferences, "consents": m.consents}));
    }
    for (k, v) in &m.preferences {
        println!("{k} = {v}");
    }
    for (c, consent) in &m.consents {
        println!(
            "consent {c}: {}",
            if consent.granted { "on" } else { "off" }
        );
    }
    Ok(())
}

fn done(json: bool, text: &str) -> CliResult {
    if json {
        return print_json(&json!({"ok": true}));
    }
    println!("{text}");
    Ok(())
}

fn print_sync(report: &loyalty_core::SyncReport) {
    let changed: Vec<&str> = report.changed.iter().map(|k| k.name()).collect();
    println!(
        "synced in {} round trip(s), {} B sent, {} B received; changed: {}",
        report.round_trips,
        report.bytes_sent,
        report.bytes_received,
        if changed.is_empty() {
            "nothing".into()
        } else {
            changed.join(", ")
        }
    );
    for (doc, r) in &report.rejected {
        println!(
            "  the server refused the {doc} document: {} ({})",
            r.message, r.code
        );
    }
}

/// The tier, its benefits, the way to the next one, pending points and the next expiries.
fn print_standing(s: &loyalty_core::card::Standing) {
    let how = if s.tier_manual {
        " (set by the programme)"
    } else {
        ""
    };
    println!("tier: {}{how}", s.tier_name);
    for b in &s.tier_benefits {
        println!("  - {b}");
    }
    let amount = |v: i64| match s.metric.as_str() {
        "spend" => format!("{}.{:02}", v / 100, v % 100),
        _ => format!("{v} points"),
    };
    if let Some(next) = &s.next_tier_name {
        println!("{} more to reach {next}", amount(s.needed));
    }
    if let Some(at) = s.downgrade_at_ms {
        println!("tier drops on {} unless you requalify", show_time(at));
    }
    if s.pending > 0 {
        println!("pending: {} points", s.pending);
    }
    for e in &s.expiries {
        // Points expire at midnight: the last day they can be spent is the day before.
        println!(
            "{} points expire after {}",
            e.points,
            loyalty_core::calendar::format_date(e.at_ms - 1)
        );
    }
}
