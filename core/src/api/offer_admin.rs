//! Offers as operators manage them (`GET /v1/admin/offers`, `…/{offer_id}`, `…/end`,
//! `…/withdraw`): each offer with its target, where it stands, and how it performed — how many
//! members it reached, how many activated (clipped) it, how many used it and how often. Computed
//! from the relational tables, never from members' documents.

use serde::{Deserialize, Serialize};

use crate::offers::Offer;

/// Where an offer stands for the programme (not for one member: that is
/// [`crate::offers::OfferState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    /// Not valid yet.
    Upcoming,
    /// Valid now: tills apply it.
    Active,
    /// Past its end, or ended early by an operator: members still see it, as ended.
    Ended,
    /// Withdrawn by an operator: gone from members' phones at their next sync, never applied.
    Withdrawn,
}

impl OfferStatus {
    pub const ALL: [OfferStatus; 4] = [
        OfferStatus::Upcoming,
        OfferStatus::Active,
        OfferStatus::Ended,
        OfferStatus::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OfferStatus::Upcoming => "upcoming",
            OfferStatus::Active => "active",
            OfferStatus::Ended => "ended",
            OfferStatus::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The status of an offer valid over `[valid_from, valid_until)` at `now_ms`.
    ///
    /// ```
    /// use loyalty_core::api::offer_admin::OfferStatus;
    /// assert_eq!(OfferStatus::at(10, 20, None, 15), OfferStatus::Active);
    /// assert_eq!(OfferStatus::at(10, 20, None, 20), OfferStatus::Ended);
    /// assert_eq!(OfferStatus::at(10, 20, Some(12), 5), OfferStatus::Withdrawn);
    /// ```
    pub fn at(
        valid_from_ms: i64,
        valid_until_ms: i64,
        withdrawn_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Self {
        // Ended before upcoming: an upcoming offer ended early has its end before its start.
        if withdrawn_at_ms.is_some() {
            OfferStatus::Withdrawn
        } else if now_ms >= valid_until_ms {
            OfferStatus::Ended
        } else if now_ms < valid_from_ms {
            OfferStatus::Upcoming
        } else {
            OfferStatus::Active
        }
    }
}

/// How an offer performed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferFigures {
    /// Members the offer was given to (its target's members, as fanned out so far).
    pub reach: i64,
    /// Members who activated (clipped) it in the app.
    pub activated: i64,
    /// Members who used it at a till at least once.
    pub used_by: i64,
    /// Uses at tills in all (a refund does not take a use back).
    pub uses: i64,
}

/// An offer with its target, status and figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferRecord {
    pub offer: Offer,
    /// Moves whenever the terms change (an end or a withdrawal too): members' phones follow it.
    pub version: i64,
    /// `members`, `tier` or `segment`.
    pub target_kind: String,
    /// The tier or segment id of a standing target.
    #[serde(default)]
    pub target_key: Option<String>,
    pub status: OfferStatus,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(default)]
    pub withdrawn_at_ms: Option<i64>,
    pub figures: OfferFigures,
}

/// How one segment's members took up an offer: how many it reached, clipped it and used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentUptake {
    pub segment_id: String,
    pub name: String,
    /// The segment's members now.
    pub members: i64,
    /// Of them, given the offer; activated (clipped) it; used it; and its uses.
    pub reached: i64,
    pub activated: i64,
    pub used_by: i64,
    pub uses: i64,
}

/// An offer's uptake by segment (`GET /v1/admin/offers/{offer_id}/uptake`), whatever segment it
/// was published to: which groups of members take it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferUptake {
    pub offer_id: String,
    /// The offer's own figures over all members.
    pub figures: OfferFigures,
    /// Every segment, by id; members in several segments count in each.
    pub segments: Vec<SegmentUptake>,
}

impl OfferUptake {
    /// The uptake as CSV (`segment_id,name,members,reached,activated,used_by,uses`), a row per
    /// segment; a name holding a comma, a quote or a line break is quoted, its quotes doubled.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("segment_id,name,members,reached,activated,used_by,uses\n");
        for s in &self.segments {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                csv_field(&s.segment_id),
                csv_field(&s.name),
                s.members,
                s.reached,
                s.activated,
                s.used_by,
                s.uses
            ));
        }
        out
    }
}

/// One CSV field: as it is, or quoted with its quotes doubled when it holds a separator.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// What an operator does to an offer before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferEnd {
    /// Ends now: members still see it, as ended.
    End,
    /// Ends now and leaves members' phones.
    Withdraw,
}

impl OfferEnd {
    /// The offer's definition and withdrawal time after this at `now_ms`: its end brought forward
    /// to now, and whether anything changed (an end never moves an end later, a withdrawal happens
    /// once).
    pub fn apply(
        self,
        mut offer: Offer,
        withdrawn_at_ms: Option<i64>,
        now_ms: i64,
    ) -> (Offer, Option<i64>, bool) {
        let until = offer.valid_until_ms.min(now_ms);
        let withdrawn = match self {
            OfferEnd::Withdraw => withdrawn_at_ms.or(Some(now_ms)),
            OfferEnd::End => withdrawn_at_ms,
        };
        let changed = until != offer.valid_until_ms || withdrawn != withdrawn_at_ms;
        offer.valid_until_ms = until;
        (offer, withdrawn, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_back_by_name() {
        for s in OfferStatus::ALL {
            assert_eq!(OfferStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OfferStatus::parse("paused"), None);
        assert_eq!(OfferStatus::at(10, 20, None, 9), OfferStatus::Upcoming);
        assert_eq!(
            OfferStatus::at(10, 5, None, 5),
            OfferStatus::Ended,
            "an upcoming offer ended early"
        );
    }

    fn offer(until: i64) -> Offer {
        Offer {
            id: "o".into(),
            title: "t".into(),
            description: String::new(),
            terms: String::new(),
            valid_from_ms: 0,
            valid_until_ms: until,
            needs_activation: false,
            reward: crate::offers::Reward::FixedPoints,
            value: 1,
            category: String::new(),
            min_spend_minor: 0,
            use_limit: 0,
            use_count: 0,
        }
    }

    #[test]
    fn an_end_comes_once_and_never_later() {
        let (o, w, changed) = OfferEnd::End.apply(offer(100), None, 40);
        assert_eq!((o.valid_until_ms, w, changed), (40, None, true));
        let (o, w, changed) = OfferEnd::End.apply(offer(40), None, 90);
        assert_eq!(
            (o.valid_until_ms, w, changed),
            (40, None, false),
            "already over"
        );
        let (o, w, changed) = OfferEnd::Withdraw.apply(offer(40), None, 90);
        assert_eq!((o.valid_until_ms, w, changed), (40, Some(90), true));
        let (_, w, changed) = OfferEnd::Withdraw.apply(offer(40), Some(90), 95);
        assert_eq!((w, changed), (Some(90), false), "withdrawn once");
    }

    #[test]
    fn uptake_csv_quotes_names_that_need_it() {
        let row = |id: &str, name: &str| SegmentUptake {
            segment_id: id.into(),
            name: name.into(),
            members: 4,
            reached: 3,
            activated: 2,
            used_by: 1,
            uses: 5,
        };
        let uptake = OfferUptake {
            offer_id: "o".into(),
            figures: OfferFigures {
                reach: 3,
                activated: 2,
                used_by: 1,
                uses: 5,
            },
            segments: vec![row("a", "Plain"), row("b", "Coffee, \"daily\"\nlovers")],
        };
        assert_eq!(
            uptake.to_csv(),
            "segment_id,name,members,reached,activated,used_by,uses\n\
             a,Plain,4,3,2,1,5\n\
             b,\"Coffee, \"\"daily\"\"\nlovers\",4,3,2,1,5\n"
        );
    }
}
