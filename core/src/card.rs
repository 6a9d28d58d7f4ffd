//! The card document: the member's card number, its status, tier, points balance and the ledger
//! entries that explain the balance. The server writes it; devices only read it. The balance here is a
//! projection of the server's relational ledger, never a CRDT counter.

use automerge::{AutoCommit, ScalarValue};
use serde::{Deserialize, Serialize};

use std::collections::HashSet;

use crate::document::{
    DocKind, DocumentError, Fields, MapSnapshot, check_root, ensure_map, put_if_changed,
};
use crate::reasons::{ReasonCode, ReasonParams};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CardStatus {
    Active,
    Blocked,
}

impl CardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CardStatus::Active => "active",
            CardStatus::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(CardStatus::Active),
            "blocked" => Some(CardStatus::Blocked),
            _ => None,
        }
    }
}

/// One movement of points, keyed by the server's transaction id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEntry {
    pub tx_id: String,
    pub points: i64,
    pub reason: String,
    pub at_ms: i64,
    /// The programme rule behind the movement (`base:gold`, `offer:off_1`, `expiry`, `redeem`...).
    #[serde(default)]
    pub rule: String,
    /// Why, for an app to word in the member's language (`crate::reasons`); `reason` is the
    /// default English. Entries written before codes existed read with the code their rule implies.
    #[serde(default)]
    pub reason_code: ReasonCode,
    #[serde(default)]
    pub reason_params: ReasonParams,
    /// When earned points become spendable, if that was later than the entry; the entry is
    /// pending until then ([`crate::reasons::is_pending`]).
    #[serde(default)]
    pub available_at_ms: Option<i64>,
}

/// What the programme says about the member beyond the balance: the tier with its benefits and
/// the progress to the next one, pending points, and the next expiries. Written by the server;
/// `None` on a card the programme has not projected yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Standing {
    pub tier_name: String,
    /// Set by an operator rather than earned.
    pub tier_manual: bool,
    pub tier_benefits: Vec<String>,
    /// `spend` (minor units) or `points`.
    pub metric: String,
    /// What the member qualifies with over the ladder's window.
    pub qualifying: i64,
    /// The next tier's name and what is missing to reach it; `None` at the top.
    pub next_tier_name: Option<String>,
    pub needed: i64,
    pub review_at_ms: i64,
    /// When the tier drops unless the member requalifies first.
    pub downgrade_at_ms: Option<i64>,
    /// Earned points not yet spendable.
    pub pending: i64,
    /// The next expiries as (when, points), soonest first.
    pub expiries: Vec<PointsExpiry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointsExpiry {
    pub at_ms: i64,
    pub points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Card {
    pub card_number: String,
    pub member_id: String,
    pub status: CardStatus,
    pub tier: String,
    pub balance: i64,
    /// Newest first.
    pub ledger: Vec<LedgerEntry>,
    #[serde(default)]
    pub standing: Option<Standing>,
}

/// Reads the card, or `None` when the document is still at genesis (the device has not synced yet).
pub fn read(doc: &AutoCommit) -> Result<Option<Card>, DocumentError> {
    check_root(doc, DocKind::Card)?;
    let f = Fields::new(doc, DocKind::Card);
    let root = automerge::ROOT;
    let Some(card_number) = f.opt_str(&root, "card_number")? else {
        return Ok(None);
    };
    let status_text = f.str(&root, "status")?;
    let status = CardStatus::parse(&status_text).ok_or_else(|| DocumentError::Invalid {
        doc: DocKind::Card,
        message: format!("unknown card status `{status_text}`"),
    })?;
    let ledger_obj = f.map(&root, "ledger")?;
    let mut ledger = Vec::new();
    for tx_id in f.keys(&ledger_obj) {
        let entry = f.map(&ledger_obj, &tx_id)?;
        let rule = f.opt_str(&entry, "rule")?.unwrap_or_default();
        let params = f.opt_str(&entry, "params")?.unwrap_or_default();
        ledger.push(LedgerEntry {
            points: f.int(&entry, "points")?,
            reason: f.str(&entry, "reason")?,
            at_ms: f.timestamp(&entry, "at")?,
            reason_code: ReasonCode::stored(f.opt_str(&entry, "code")?.as_deref(), &rule),
            reason_params: ReasonParams::from_stored(&params).map_err(|e| {
                DocumentError::Invalid {
                    doc: DocKind::Card,
                    message: format!("ledger entry {tx_id}: reason parameters: {e}"),
                }
            })?,
            available_at_ms: f.opt_timestamp(&entry, "available_at")?,
            rule,
            tx_id,
        });
    }
    ledger.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| b.tx_id.cmp(&a.tx_id)));
    Ok(Some(Card {
        card_number,
        member_id: f.str(&root, "member_id")?,
        status,
        tier: f.str(&root, "tier")?,
        balance: f.int(&root, "balance")?,
        ledger,
        standing: read_standing(&f)?,
    }))
}

fn read_standing(f: &Fields<'_>) -> Result<Option<Standing>, DocumentError> {
    let root = automerge::ROOT;
    let Some(tier_name) = f.opt_str(&root, "tier_name")? else {
        return Ok(None);
    };
    let benefits = f.map(&root, "tier_benefits")?;
    let mut tier_benefits = Vec::new();
    for key in f.keys(&benefits) {
        tier_benefits.push(f.str(&benefits, &key)?);
    }
    let p = f.map(&root, "progress")?;
    let next = f.str(&p, "next_tier_name")?;
    let exp = f.map(&root, "expiries")?;
    let mut expiries = Vec::new();
    for key in f.keys(&exp) {
        let at_ms = key.parse().map_err(|_| DocumentError::Invalid {
            doc: DocKind::Card,
            message: format!("expiry key `{key}` is not a time"),
        })?;
        expiries.push(PointsExpiry {
            at_ms,
            points: f.int(&exp, &key)?,
        });
    }
    expiries.sort_by_key(|e| e.at_ms);
    Ok(Some(Standing {
        tier_name,
        tier_manual: f.bool(&root, "tier_manual")?,
        tier_benefits,
        metric: f.str(&p, "metric")?,
        qualifying: f.int(&p, "qualifying")?,
        next_tier_name: (!next.is_empty()).then_some(next),
        needed: f.int(&p, "needed")?,
        review_at_ms: f.timestamp(&p, "review_at")?,
        downgrade_at_ms: f.opt_timestamp(&p, "downgrade_at")?,
        pending: f.int(&root, "pending")?,
        expiries,
    }))
}

/// Writes the member's tier and standing (server side); unchanged values add no operations.
pub fn set_standing(
    doc: &mut AutoCommit,
    tier: &str,
    s: &Standing,
) -> Result<(), automerge::AutomergeError> {
    let root = MapSnapshot::read(doc, &automerge::ROOT);
    write_standing(doc, &root, tier, s)
}

/// [`set_standing`] against the root as `root` read it.
fn write_standing(
    doc: &mut AutoCommit,
    root: &MapSnapshot,
    tier: &str,
    s: &Standing,
) -> Result<(), automerge::AutomergeError> {
    let top = automerge::ROOT;
    let text = |v: &str| ScalarValue::Str(v.into());
    root.put_if_changed(doc, &top, "tier", text(tier))?;
    root.put_if_changed(doc, &top, "tier_name", text(&s.tier_name))?;
    root.put_if_changed(
        doc,
        &top,
        "tier_manual",
        ScalarValue::Boolean(s.tier_manual),
    )?;
    root.put_if_changed(doc, &top, "pending", ScalarValue::Int(s.pending))?;
    // Zero-padded keys keep the benefits in their order when read back as map keys.
    let benefits: Vec<(String, ScalarValue)> = s
        .tier_benefits
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("{i:03}"), text(b)))
        .collect();
    replace_map(doc, root, "tier_benefits", &benefits)?;
    let expiries: Vec<(String, ScalarValue)> = s
        .expiries
        .iter()
        .map(|e| (e.at_ms.to_string(), ScalarValue::Int(e.points)))
        .collect();
    replace_map(doc, root, "expiries", &expiries)?;
    let mut progress = vec![
        ("metric".to_string(), text(&s.metric)),
        ("qualifying".into(), ScalarValue::Int(s.qualifying)),
        (
            "next_tier_name".into(),
            text(s.next_tier_name.as_deref().unwrap_or("")),
        ),
        ("needed".into(), ScalarValue::Int(s.needed)),
        ("review_at".into(), ScalarValue::Timestamp(s.review_at_ms)),
    ];
    if let Some(at) = s.downgrade_at_ms {
        progress.push(("downgrade_at".into(), ScalarValue::Timestamp(at)));
    }
    replace_map(doc, root, "progress", &progress)
}

/// Makes the map at `root[key]` hold exactly `entries`, touching only what differs.
fn replace_map(
    doc: &mut AutoCommit,
    root: &MapSnapshot,
    key: &str,
    entries: &[(String, ScalarValue)],
) -> Result<(), automerge::AutomergeError> {
    use automerge::transaction::Transactable;
    let map = root.ensure_map(doc, &automerge::ROOT, key)?;
    let current = MapSnapshot::read(doc, &map);
    let stale: Vec<String> = current
        .keys()
        .filter(|k| !entries.iter().any(|(e, _)| e == k))
        .map(str::to_string)
        .collect();
    for k in stale {
        doc.delete(&map, k.as_str())?;
    }
    for (k, v) in entries {
        current.put_if_changed(doc, &map, k, v.clone())?;
    }
    Ok(())
}

/// Issues a new card into a genesis card document (server side, at enrollment of the member).
pub fn issue(
    doc: &mut AutoCommit,
    card_number: &str,
    member_id: &str,
) -> Result<(), automerge::AutomergeError> {
    let root = automerge::ROOT;
    put_if_changed(
        doc,
        &root,
        "card_number",
        ScalarValue::Str(card_number.into()),
    )?;
    put_if_changed(doc, &root, "member_id", ScalarValue::Str(member_id.into()))?;
    put_if_changed(doc, &root, "status", ScalarValue::Str("active".into()))?;
    put_if_changed(doc, &root, "tier", ScalarValue::Str("base".into()))?;
    put_if_changed(doc, &root, "balance", ScalarValue::Int(0))?;
    Ok(())
}

pub fn set_status(
    doc: &mut AutoCommit,
    status: CardStatus,
) -> Result<(), automerge::AutomergeError> {
    put_if_changed(
        doc,
        &automerge::ROOT,
        "status",
        ScalarValue::Str(status.as_str().into()),
    )
}

/// Records one ledger entry and the balance after it (the tests' way to fill a card).
#[cfg(test)]
fn record(
    doc: &mut AutoCommit,
    entry: &LedgerEntry,
    balance: i64,
) -> Result<(), automerge::AutomergeError> {
    let ledger = ensure_map(doc, &automerge::ROOT, "ledger")?;
    put_entry(doc, &ledger, entry)?;
    set_balance(doc, balance)
}

/// Writes an entry the card's ledger does not show yet: a new map, so there is nothing to compare
/// its fields with, created with its fields in one batch (Automerge splices its operations in
/// twice, not once per field).
fn put_entry(
    doc: &mut AutoCommit,
    ledger: &automerge::ObjId,
    entry: &LedgerEntry,
) -> Result<(), automerge::AutomergeError> {
    use automerge::hydrate::Value;
    use automerge::transaction::Transactable;
    let text = |v: &str| Value::Scalar(ScalarValue::Str(v.into()));
    let mut fields: std::collections::HashMap<&str, Value> = [
        ("points", Value::Scalar(ScalarValue::Int(entry.points))),
        ("reason", text(&entry.reason)),
        ("at", Value::Scalar(ScalarValue::Timestamp(entry.at_ms))),
        ("code", text(entry.reason_code.as_str())),
    ]
    .into();
    if !entry.rule.is_empty() {
        fields.insert("rule", text(&entry.rule));
    }
    // The parameters are one JSON string rather than a nested map: the server is the document's
    // only writer and writes an entry once, so there is nothing to merge field by field, and a
    // newer server's extra parameters pass through an older reader untouched.
    if entry.reason_params != ReasonParams::default() {
        fields.insert("params", text(&entry.reason_params.to_stored()));
    }
    if let Some(at) = entry.available_at_ms {
        fields.insert("available_at", Value::Scalar(ScalarValue::Timestamp(at)));
    }
    let value = Value::Map(fields.into());
    doc.batch_create_object(ledger, entry.tx_id.as_str(), &value, false)?;
    Ok(())
}

/// Entries to show up to which [`show`] looks each one up on the card rather than listing the
/// card's ledger: one look-up costs about as much as listing ten keys (callgrind, a card a few
/// hundred changes long).
const LOOKED_UP: usize = 4;

/// Makes the card show the server's ledger as it is now: the `recent` entries (newest first, at
/// most [`RECENT_ENTRIES`]) it does not have yet, the balance, the tier and the standing, then a
/// trim. Entries already on the card are left as they are, so showing the same ledger twice adds
/// no operations, and a card many postings behind catches up in one go.
pub fn show(
    doc: &mut AutoCommit,
    recent: &[LedgerEntry],
    balance: i64,
    tier: &str,
    standing: &Standing,
) -> Result<(), automerge::AutomergeError> {
    use automerge::ReadDoc;
    // Each map is read once and the writes checked against what was read (see `MapSnapshot`).
    let root = MapSnapshot::read(doc, &automerge::ROOT);
    let ledger = root.ensure_map(doc, &automerge::ROOT, "ledger")?;
    let recent = &recent[..recent.len().min(RECENT_ENTRIES)];
    // A live update brings one or two entries: looking each up costs less than listing the
    // ledger's fifty-odd keys; a card far behind lists them once.
    let shown: Option<HashSet<String>> =
        (recent.len() > LOOKED_UP).then(|| doc.keys(&ledger).collect());
    for entry in recent.iter().rev() {
        let on_card = match &shown {
            Some(keys) => keys.contains(entry.tx_id.as_str()),
            None => doc.get(&ledger, entry.tx_id.as_str())?.is_some(),
        };
        if !on_card {
            put_entry(doc, &ledger, entry)?;
        }
    }
    root.put_if_changed(doc, &automerge::ROOT, "balance", ScalarValue::Int(balance))?;
    write_standing(doc, &root, tier, standing)?;
    trim(doc, &ledger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::genesis;

    #[test]
    fn genesis_card_reads_as_not_issued() {
        assert_eq!(read(&genesis(DocKind::Card)).unwrap(), None);
    }

    #[test]
    fn issued_card_reads_back_with_ledger_newest_first() {
        let mut doc = genesis(DocKind::Card);
        issue(&mut doc, "6270000000000001", "mbr_1").unwrap();
        for (i, pts) in [(1, 100), (2, -40)] {
            let entry = LedgerEntry {
                tx_id: format!("tx{i}"),
                points: pts,
                reason: format!("reason {i}"),
                at_ms: i * 1000,
                rule: "base:base".into(),
                ..Default::default()
            };
            record(&mut doc, &entry, 60).unwrap();
        }
        set_status(&mut doc, CardStatus::Blocked).unwrap();
        let card = read(&doc).unwrap().unwrap();
        assert_eq!(card.status, CardStatus::Blocked);
        assert_eq!(card.balance, 60);
        assert_eq!(card.ledger[0].tx_id, "tx2");
        assert_eq!(card.ledger[1].points, 100);
        assert_eq!(card.ledger[1].rule, "base:base");
        assert_eq!(card.standing, None);
    }

    #[test]
    fn a_structured_reason_round_trips_and_an_entry_without_one_reads_from_its_rule() {
        use crate::reasons::Money;
        use automerge::transaction::Transactable;
        let mut doc = genesis(DocKind::Card);
        issue(&mut doc, "6270000000000001", "mbr_1").unwrap();
        let structured = LedgerEntry {
            tx_id: "tx1".into(),
            points: 12,
            reason: "Purchase of 12.50 EUR with offer \u{201c}Coffee\u{201d}".into(),
            at_ms: 1_000,
            rule: "offer:off_1".into(),
            reason_code: ReasonCode::PurchaseOffer,
            reason_params: ReasonParams {
                offer_id: Some("off_1".into()),
                title: Some("Coffee".into()),
                amount: Some(Money {
                    minor: 1250,
                    currency: "EUR".into(),
                }),
                ..Default::default()
            },
            available_at_ms: Some(5_000),
        };
        record(&mut doc, &structured, 12).unwrap();
        // An entry as a server before structured reasons wrote it: no code, params or available_at.
        let ledger = ensure_map(&mut doc, &automerge::ROOT, "ledger").unwrap();
        let old = ensure_map(&mut doc, &ledger, "tx0").unwrap();
        doc.put(&old, "points", ScalarValue::Int(-3)).unwrap();
        doc.put(&old, "reason", "3 points earned on 2026-01-01 expired")
            .unwrap();
        doc.put(&old, "at", ScalarValue::Timestamp(500)).unwrap();
        doc.put(&old, "rule", "expiry").unwrap();
        let card = read(&doc).unwrap().unwrap();
        assert_eq!(card.ledger[0], structured);
        assert_eq!(card.ledger[1].reason_code, ReasonCode::Expiry);
        assert_eq!(card.ledger[1].reason_params, ReasonParams::default());
        assert_eq!(card.ledger[1].available_at_ms, None);
        assert_eq!(
            card.ledger[1].reason,
            "3 points earned on 2026-01-01 expired"
        );
        // A newer server's code this build does not know reads as `other`, text kept.
        doc.put(&old, "code", "cashback").unwrap();
        let card = read(&doc).unwrap().unwrap();
        assert_eq!(card.ledger[1].reason_code, ReasonCode::Other);
        // Broken parameters are a clear error, not a silent default.
        doc.put(&old, "params", "{oops").unwrap();
        assert!(matches!(read(&doc), Err(DocumentError::Invalid { .. })));
    }

    #[test]
    fn standing_round_trips_and_rewrites_only_changes() {
        let mut doc = genesis(DocKind::Card);
        issue(&mut doc, "6270000000000001", "mbr_1").unwrap();
        let mut s = Standing {
            tier_name: "Gold".into(),
            tier_manual: false,
            tier_benefits: vec!["Free coffee".into(), "Priority line".into()],
            metric: "spend".into(),
            qualifying: 120_000,
            next_tier_name: None,
            needed: 0,
            review_at_ms: 9_000,
            downgrade_at_ms: Some(10_000),
            pending: 40,
            expiries: vec![
                PointsExpiry {
                    at_ms: 5_000,
                    points: 10,
                },
                PointsExpiry {
                    at_ms: 50_000,
                    points: 20,
                },
            ],
        };
        set_standing(&mut doc, "gold", &s).unwrap();
        let card = read(&doc).unwrap().unwrap();
        assert_eq!(
            (card.tier.as_str(), card.standing.as_ref()),
            ("gold", Some(&s))
        );
        doc.commit();
        let heads = doc.get_heads();
        set_standing(&mut doc, "gold", &s).unwrap();
        assert_eq!(doc.commit(), None);
        assert_eq!(doc.get_heads(), heads);
        s.expiries.remove(0);
        s.downgrade_at_ms = None;
        s.tier_benefits.pop();
        set_standing(&mut doc, "gold", &s).unwrap();
        assert_eq!(read(&doc).unwrap().unwrap().standing, Some(s));
    }

    fn entries(range: std::ops::Range<i64>) -> Vec<LedgerEntry> {
        // Newest first, as the server's ledger reads them.
        range
            .rev()
            .map(|i| LedgerEntry {
                tx_id: format!("tx{i:04}"),
                points: 10,
                reason: format!("purchase {i}"),
                at_ms: i * 1000,
                rule: "base:base".into(),
                ..Default::default()
            })
            .collect()
    }

    fn standing(pending: i64) -> Standing {
        Standing {
            tier_name: "Base".into(),
            metric: "spend".into(),
            pending,
            ..Standing::default()
        }
    }

    #[test]
    fn showing_the_ledger_catches_up_in_one_change_and_twice_adds_nothing() {
        let mut doc = genesis(DocKind::Card);
        issue(&mut doc, "6270000000000001", "mbr_1").unwrap();
        doc.commit();
        show(&mut doc, &entries(0..3), 30, "base", &standing(5)).unwrap();
        assert!(doc.commit().is_some());
        // Three postings later, the card shows them all, newest first.
        show(&mut doc, &entries(0..6), 60, "base", &standing(0)).unwrap();
        assert!(doc.commit().is_some());
        let card = read(&doc).unwrap().unwrap();
        let ids: Vec<&str> = card.ledger.iter().map(|e| e.tx_id.as_str()).collect();
        assert_eq!(
            ids,
            ["tx0005", "tx0004", "tx0003", "tx0002", "tx0001", "tx0000"]
        );
        assert_eq!((card.balance, card.standing.unwrap().pending), (60, 0));
        let heads = doc.get_heads();
        show(&mut doc, &entries(0..6), 60, "base", &standing(0)).unwrap();
        assert_eq!(doc.commit(), None);
        assert_eq!(doc.get_heads(), heads);
        // A live update's few entries are looked up one by one: shown already, they add nothing.
        show(&mut doc, &entries(4..6), 60, "base", &standing(0)).unwrap();
        assert_eq!(doc.commit(), None);
        // One more posting: looked up, missing, shown.
        show(&mut doc, &entries(5..7), 70, "base", &standing(0)).unwrap();
        assert!(doc.commit().is_some());
        let card = read(&doc).unwrap().unwrap();
        assert_eq!(
            (card.ledger.len(), card.ledger[0].tx_id.as_str()),
            (7, "tx0006")
        );
    }

    #[test]
    fn a_card_far_behind_keeps_only_the_most_recent_entries() {
        let mut doc = genesis(DocKind::Card);
        issue(&mut doc, "6270000000000001", "mbr_1").unwrap();
        show(&mut doc, &entries(0..40), 400, "base", &standing(0)).unwrap();
        // 200 postings later the server sends its most recent entries; more than it keeps are
        // ignored.
        show(&mut doc, &entries(0..240), 2400, "base", &standing(0)).unwrap();
        let card = read(&doc).unwrap().unwrap();
        assert_eq!(card.ledger.len(), RECENT_ENTRIES);
        assert_eq!(card.ledger[0].tx_id, "tx0239");
        assert_eq!(card.ledger[RECENT_ENTRIES - 1].tx_id, "tx0190");
    }

    #[test]
    fn unchanged_reissue_adds_no_operations() {
        let mut doc = genesis(DocKind::Card);
        issue(&mut doc, "6270000000000001", "mbr_1").unwrap();
        doc.commit();
        let heads = doc.get_heads();
        issue(&mut doc, "6270000000000001", "mbr_1").unwrap();
        assert_eq!(doc.commit(), None);
        assert_eq!(doc.get_heads(), heads);
    }
}

/// How many ledger entries the card document keeps: enough for the app to explain every recent
/// change of the balance; the full history stays in the server's ledger.
pub const RECENT_ENTRIES: usize = 50;

/// Entries allowed beyond [`RECENT_ENTRIES`] before a trim: scanning the ledger costs far more
/// than counting it, so the scan runs once every this many postings instead of every time.
pub const TRIM_SLACK: usize = 25;

/// Drops the oldest ledger entries down to [`RECENT_ENTRIES`] once there are more than
/// [`RECENT_ENTRIES`] + [`TRIM_SLACK`], so the document's live state stays small.
pub fn trim_ledger(doc: &mut AutoCommit) -> Result<(), automerge::AutomergeError> {
    let ledger = ensure_map(doc, &automerge::ROOT, "ledger")?;
    trim(doc, &ledger)
}

/// [`trim_ledger`] of the ledger map `ledger`.
fn trim(doc: &mut AutoCommit, ledger: &automerge::ObjId) -> Result<(), automerge::AutomergeError> {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;
    if doc.length(ledger) <= RECENT_ENTRIES + TRIM_SLACK {
        return Ok(());
    }
    let objects: Vec<(String, Option<automerge::ObjId>)> = doc
        .map_range(ledger, ..)
        .map(|item| {
            let id = matches!(item.value, automerge::ValueRef::Object(_)).then(|| item.id());
            (item.key.to_string(), id)
        })
        .collect();
    let mut entries: Vec<(i64, String)> = Vec::new();
    for (key, obj) in objects {
        let at = match obj {
            Some(obj) => match doc.get(&obj, "at")? {
                Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Timestamp(t) => *t,
                    _ => 0,
                },
                _ => 0,
            },
            None => 0,
        };
        entries.push((at, key));
    }
    if entries.len() <= RECENT_ENTRIES {
        return Ok(());
    }
    entries.sort();
    let excess = entries.len() - RECENT_ENTRIES;
    for (_, key) in entries.into_iter().take(excess) {
        doc.delete(ledger, key.as_str())?;
    }
    Ok(())
}

#[cfg(test)]
mod trim_tests {
    use super::*;
    use crate::document::genesis;

    #[test]
    fn only_the_most_recent_entries_stay() {
        let mut doc = genesis(DocKind::Card);
        issue(&mut doc, "6270000000000001", "mbr_1").unwrap();
        let n = (RECENT_ENTRIES + TRIM_SLACK) as i64 + 1;
        for i in 0..n {
            let e = LedgerEntry {
                tx_id: format!("tx{i:03}"),
                points: 1,
                reason: "r".into(),
                at_ms: i,
                rule: String::new(),
                ..Default::default()
            };
            record(&mut doc, &e, i + 1).unwrap();
            trim_ledger(&mut doc).unwrap();
            let kept = read(&doc).unwrap().unwrap().ledger.len() as i64;
            if i + 1 < n {
                assert_eq!(kept, i + 1, "no trim within the slack");
            }
        }
        let card = read(&doc).unwrap().unwrap();
        assert_eq!(card.ledger.len(), RECENT_ENTRIES);
        assert_eq!(card.ledger[0].tx_id, format!("tx{:03}", n - 1));
        assert_eq!(card.balance, n);
    }
}

/// Sets the balance alone (a posting with no movement still projects the ledger's balance).
pub fn set_balance(doc: &mut AutoCommit, balance: i64) -> Result<(), automerge::AutomergeError> {
    put_if_changed(doc, &automerge::ROOT, "balance", ScalarValue::Int(balance))
}
