//! The offers document: the member's personal offers, written by the server. Whether the member has
//! activated ("clipped") an offer lives in the member document, so a device never writes here; the
//! [`OfferView`] joins the two for display.

use automerge::{AutoCommit, ScalarValue};
use serde::{Deserialize, Serialize};

use crate::document::{DocKind, DocumentError, Fields, check_root, ensure_map, put_if_changed};
use crate::member::MemberState;

/// Longest title, description or terms text accepted, in bytes.
pub const MAX_TEXT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Offer {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub terms: String,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    #[serde(default)]
    pub needs_activation: bool,
    /// What the offer gives at the till.
    pub reward: Reward,
    /// Percent off (1-100), fixed points (> 0), or a points multiplier in percent (150 = 1.5x).
    pub value: i64,
    /// The product category the offer applies to; empty for the whole basket.
    #[serde(default)]
    pub category: String,
    /// The least the basket (or the category's lines) must come to, in minor units.
    #[serde(default)]
    pub min_spend_minor: i64,
    /// How often one member may use the offer; 0 for no limit.
    #[serde(default)]
    pub use_limit: i64,
    #[serde(default)]
    pub use_count: i64,
}

/// What an offer gives when the till applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Reward {
    /// A discount of `value` percent on the basket or the category's lines.
    PercentOff,
    /// `value` bonus points.
    FixedPoints,
    /// The points the basket or category earns, times `value` / 100.
    PointsMultiplier,
}

impl Reward {
    pub fn as_str(self) -> &'static str {
        match self {
            Reward::PercentOff => "percent_off",
            Reward::FixedPoints => "fixed_points",
            Reward::PointsMultiplier => "points_multiplier",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "percent_off" => Some(Reward::PercentOff),
            "fixed_points" => Some(Reward::FixedPoints),
            "points_multiplier" => Some(Reward::PointsMultiplier),
            _ => None,
        }
    }
}

impl Offer {
    /// Checks an offer before the server publishes it.
    pub fn validate(&self) -> Result<(), String> {
        if !crate::ids::valid_record_id(&self.id) {
            return Err(
                "offer id must be 1-64 characters of letters, digits, `_`, `-`, `.`".into(),
            );
        }
        if self.title.trim().is_empty() {
            return Err("offer title must not be empty".into());
        }
        for (name, text) in [
            ("title", &self.title),
            ("description", &self.description),
            ("terms", &self.terms),
            ("category", &self.category),
        ] {
            if text.len() > MAX_TEXT {
                return Err(format!("offer {name} is longer than {MAX_TEXT} bytes"));
            }
        }
        if self.valid_until_ms <= self.valid_from_ms {
            return Err("offer must end after it starts".into());
        }
        if self.use_count < 0 || self.use_limit < 0 || self.min_spend_minor < 0 {
            return Err("use count, use limit and minimum spend cannot be negative".into());
        }
        let value_ok = match self.reward {
            Reward::PercentOff => (1..=100).contains(&self.value),
            Reward::FixedPoints => (1..=1_000_000_000).contains(&self.value),
            Reward::PointsMultiplier => (101..=10_000).contains(&self.value),
        };
        if !value_ok {
            return Err(format!(
                "offer value {} is out of range for {} (percent 1-100, points 1-10^9, multiplier 101-10000 percent)",
                self.value,
                self.reward.as_str()
            ));
        }
        Ok(())
    }
}

/// Where an offer stands for the member at a given moment. The till applies exactly the offers
/// that are `Active` (and whose basket conditions hold): the same rules as
/// [`crate::earning::offer_blocker`], so the phone never shows as usable what the till refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OfferState {
    /// Not yet valid.
    Upcoming,
    /// Valid, and either activated or usable without activation.
    Active,
    /// Valid but waiting for the member to activate it.
    Available,
    /// Valid, but used as often as its `use_limit` allows.
    UsedUp,
    Expired,
}

/// An offer as the app shows it: the server's offer plus the member's activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferView {
    #[serde(flatten)]
    pub offer: Offer,
    pub activated_at_ms: Option<i64>,
    pub state: OfferState,
}

impl OfferView {
    pub fn new(offer: Offer, member: &MemberState, now_ms: i64) -> Self {
        let activated_at_ms = member.activations.get(&offer.id).map(|a| a.at_ms);
        // Expired before upcoming: an upcoming offer an operator ended has its end before its
        // start, and must not read as coming.
        let state = if now_ms >= offer.valid_until_ms {
            OfferState::Expired
        } else if now_ms < offer.valid_from_ms {
            OfferState::Upcoming
        } else if offer.use_limit > 0 && offer.use_count >= offer.use_limit {
            OfferState::UsedUp
        } else if offer.needs_activation && activated_at_ms.is_none() {
            OfferState::Available
        } else {
            OfferState::Active
        };
        Self {
            offer,
            activated_at_ms,
            state,
        }
    }
}

pub fn read_all(doc: &AutoCommit) -> Result<Vec<Offer>, DocumentError> {
    check_root(doc, DocKind::Offers)?;
    let f = Fields::new(doc, DocKind::Offers);
    let list = f.map(&automerge::ROOT, "offers")?;
    let mut offers = f
        .keys(&list)
        .into_iter()
        .map(|id| read_one(&f, &list, id))
        .collect::<Result<Vec<_>, _>>()?;
    offers.sort_by(|a, b| {
        a.valid_until_ms
            .cmp(&b.valid_until_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(offers)
}

/// One offer by id, without reading the others.
pub fn get(doc: &AutoCommit, id: &str) -> Result<Option<Offer>, DocumentError> {
    check_root(doc, DocKind::Offers)?;
    let f = Fields::new(doc, DocKind::Offers);
    let list = f.map(&automerge::ROOT, "offers")?;
    if !f.keys(&list).iter().any(|k| k == id) {
        return Ok(None);
    }
    read_one(&f, &list, id.to_string()).map(Some)
}

fn read_one(f: &Fields<'_>, list: &automerge::ObjId, id: String) -> Result<Offer, DocumentError> {
    let o = f.map(list, &id)?;
    Ok(Offer {
        title: f.str(&o, "title")?,
        description: f.str(&o, "description")?,
        terms: f.str(&o, "terms")?,
        valid_from_ms: f.timestamp(&o, "valid_from")?,
        valid_until_ms: f.timestamp(&o, "valid_until")?,
        needs_activation: f.bool(&o, "needs_activation")?,
        reward: {
            let text = f.str(&o, "reward")?;
            Reward::parse(&text).ok_or_else(|| DocumentError::Invalid {
                doc: DocKind::Offers,
                message: format!("unknown offer reward `{text}`"),
            })?
        },
        value: f.int(&o, "value")?,
        category: f.str(&o, "category")?,
        min_spend_minor: f.int(&o, "min_spend")?,
        use_limit: f.int(&o, "use_limit")?,
        use_count: f.int(&o, "use_count")?,
        id,
    })
}

/// Takes a withdrawn offer out of the document (server side); false when it was not there.
pub fn remove(doc: &mut AutoCommit, id: &str) -> Result<bool, automerge::AutomergeError> {
    use automerge::ReadDoc;
    use automerge::transaction::Transactable;
    let Some((automerge::Value::Object(automerge::ObjType::Map), list)) =
        doc.get(&automerge::ROOT, "offers")?
    else {
        return Ok(false);
    };
    if doc.get(&list, id)?.is_none() {
        return Ok(false);
    }
    doc.delete(&list, id)?;
    Ok(true)
}

/// Publishes or updates an offer (server side).
pub fn put(doc: &mut AutoCommit, offer: &Offer) -> Result<(), automerge::AutomergeError> {
    let list = ensure_map(doc, &automerge::ROOT, "offers")?;
    let o = ensure_map(doc, &list, &offer.id)?;
    let s = |v: &str| ScalarValue::Str(v.into());
    put_if_changed(doc, &o, "title", s(&offer.title))?;
    put_if_changed(doc, &o, "description", s(&offer.description))?;
    put_if_changed(doc, &o, "terms", s(&offer.terms))?;
    put_if_changed(
        doc,
        &o,
        "valid_from",
        ScalarValue::Timestamp(offer.valid_from_ms),
    )?;
    put_if_changed(
        doc,
        &o,
        "valid_until",
        ScalarValue::Timestamp(offer.valid_until_ms),
    )?;
    put_if_changed(
        doc,
        &o,
        "needs_activation",
        ScalarValue::Boolean(offer.needs_activation),
    )?;
    put_if_changed(doc, &o, "reward", s(offer.reward.as_str()))?;
    put_if_changed(doc, &o, "value", ScalarValue::Int(offer.value))?;
    put_if_changed(doc, &o, "category", s(&offer.category))?;
    put_if_changed(
        doc,
        &o,
        "min_spend",
        ScalarValue::Int(offer.min_spend_minor),
    )?;
    put_if_changed(doc, &o, "use_limit", ScalarValue::Int(offer.use_limit))?;
    put_if_changed(doc, &o, "use_count", ScalarValue::Int(offer.use_count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::genesis;

    pub(crate) fn sample(id: &str) -> Offer {
        Offer {
            id: id.into(),
            title: "10% off coffee".into(),
            description: "Any coffee beans".into(),
            terms: "One per receipt".into(),
            valid_from_ms: 1_000,
            valid_until_ms: 10_000,
            needs_activation: true,
            reward: Reward::PercentOff,
            value: 10,
            category: "coffee".into(),
            min_spend_minor: 0,
            use_limit: 1,
            use_count: 0,
        }
    }

    #[test]
    fn offers_round_trip_sorted_by_end() {
        let mut doc = genesis(DocKind::Offers);
        let mut late = sample("b");
        late.valid_until_ms = 20_000;
        put(&mut doc, &late).unwrap();
        put(&mut doc, &sample("a")).unwrap();
        let offers = read_all(&doc).unwrap();
        assert_eq!(offers, vec![sample("a"), late]);
    }

    #[test]
    fn one_offer_is_found_by_id() {
        let mut doc = genesis(DocKind::Offers);
        put(&mut doc, &sample("a")).unwrap();
        assert_eq!(get(&doc, "a").unwrap(), Some(sample("a")));
        assert_eq!(get(&doc, "b").unwrap(), None);
    }

    #[test]
    fn a_withdrawn_offer_is_removed_and_the_others_stay() {
        let mut doc = genesis(DocKind::Offers);
        assert!(!remove(&mut doc, "a").unwrap(), "no offers at all yet");
        put(&mut doc, &sample("a")).unwrap();
        put(&mut doc, &sample("b")).unwrap();
        // A phone's copy from before the withdrawal, which meanwhile got another offer.
        let mut copy = doc.fork();
        put(&mut copy, &sample("c")).unwrap();
        assert!(remove(&mut doc, "a").unwrap());
        assert!(!remove(&mut doc, "a").unwrap(), "already gone");
        assert_eq!(read_all(&doc).unwrap(), vec![sample("b")]);
        // Merged, the removal holds and the other offer arrives.
        doc.merge(&mut copy).unwrap();
        let ids: Vec<_> = read_all(&doc).unwrap().into_iter().map(|o| o.id).collect();
        assert_eq!(ids, ["b", "c"]);
    }

    #[test]
    fn an_upcoming_offer_ended_early_reads_as_expired() {
        // Valid from 1000; an operator ended it at 500; the phone looks at 600.
        let mut o = sample("a");
        o.valid_until_ms = 500;
        let view = OfferView::new(o, &MemberState::default(), 600);
        assert_eq!(view.state, OfferState::Expired);
    }

    #[test]
    fn view_states_follow_time_and_activation() {
        let mut member = MemberState::default();
        let o = sample("a");
        assert_eq!(
            OfferView::new(o.clone(), &member, 0).state,
            OfferState::Upcoming
        );
        assert_eq!(
            OfferView::new(o.clone(), &member, 5_000).state,
            OfferState::Available
        );
        member.activations.insert(
            "a".into(),
            crate::member::Activation {
                at_ms: 4_000,
                device: "d".into(),
            },
        );
        let v = OfferView::new(o.clone(), &member, 5_000);
        assert_eq!(
            (v.state, v.activated_at_ms),
            (OfferState::Active, Some(4_000))
        );
        assert_eq!(
            OfferView::new(o, &member, 10_000).state,
            OfferState::Expired
        );
    }

    #[test]
    fn an_offer_used_up_to_its_limit_is_no_longer_active() {
        let mut member = MemberState::default();
        member.activations.insert(
            "a".into(),
            crate::member::Activation {
                at_ms: 2_000,
                device: "d".into(),
            },
        );
        let mut o = sample("a");
        o.use_limit = 2;
        o.use_count = 1;
        assert_eq!(
            OfferView::new(o.clone(), &member, 5_000).state,
            OfferState::Active
        );
        o.use_count = 2;
        let v = OfferView::new(o.clone(), &member, 5_000);
        assert_eq!(v.state, OfferState::UsedUp);
        assert_eq!(
            serde_json::to_value(v.state).unwrap(),
            serde_json::json!("used_up")
        );
        // The till agrees: a used-up offer is blocked for that reason.
        let candidate = crate::earning::OfferCandidate {
            offer: o.clone(),
            activated_at_ms: Some(2_000),
        };
        let basket = crate::earning::Basket {
            total_minor: 1_000,
            lines: Vec::new(),
        };
        assert_eq!(
            crate::earning::offer_blocker(&candidate, &basket, 5_000),
            Some("use limit reached")
        );
        // Expiry still wins, and no limit (0) is never used up.
        assert_eq!(
            OfferView::new(o.clone(), &member, 10_000).state,
            OfferState::Expired
        );
        o.use_limit = 0;
        assert_eq!(OfferView::new(o, &member, 5_000).state, OfferState::Active);
    }

    #[test]
    fn validation_refuses_bad_offers() {
        assert!(sample("a").validate().is_ok());
        let mut bad = sample("a/b");
        assert!(bad.validate().is_err());
        bad = sample("a");
        bad.valid_until_ms = bad.valid_from_ms;
        assert!(bad.validate().is_err());
        bad = sample("a");
        bad.title = " ".into();
        assert!(bad.validate().is_err());
        bad = sample("a");
        bad.terms = "x".repeat(MAX_TEXT + 1);
        assert!(bad.validate().is_err());
        bad = sample("a");
        bad.value = 101;
        assert!(bad.validate().is_err(), "more than 100 percent off");
        bad.reward = Reward::PointsMultiplier;
        assert!(bad.validate().is_ok());
        bad.value = 100;
        assert!(bad.validate().is_err(), "a 1x multiplier is no offer");
    }
}
