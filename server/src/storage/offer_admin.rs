//! Offers as operators manage them: listed with their figures (reach, activations, uses), one at
//! a time, and ended early or withdrawn. An end or a withdrawal is a new version of the offer, so
//! members' offers documents follow at their next sync through the offers projection; tills stop
//! applying it at once. Nothing here loads a document, and the figures count only what happened
//! (indexes by offer over uses and activations), never every member reached.

use async_trait::async_trait;
use loyalty_core::api::offer_admin::{OfferRecord, OfferStatus};

use crate::storage::StorageError;

/// Which offers to list, a page at a time in offer id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferFilter {
    pub status: Option<OfferStatus>,
    /// The time the status is judged at.
    pub now_ms: i64,
    /// The page after this offer id.
    pub after: Option<String>,
    pub limit: u32,
}

/// What an operator does to an offer before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferEnd {
    /// Ends now: members still see it, as ended.
    End,
    /// Ends now and leaves members' phones.
    Withdraw,
}

#[async_trait]
pub trait OfferAdminStore: Send + Sync + 'static {
    /// One page of the offers the filter admits, with their figures.
    async fn list_offers(&self, filter: &OfferFilter) -> Result<Vec<OfferRecord>, StorageError>;

    /// One offer with its figures, its status judged at `now_ms`; `None` for an unknown id.
    async fn offer_record(
        &self,
        offer_id: &str,
        now_ms: i64,
    ) -> Result<Option<OfferRecord>, StorageError>;

    /// Ends the offer at `now_ms` (its end moves no later than that) or withdraws it, as a new
    /// version; an offer already ended (or withdrawn) is left as it is. `None` for an unknown id.
    async fn end_offer(
        &self,
        offer_id: &str,
        how: OfferEnd,
        now_ms: i64,
    ) -> Result<Option<OfferRecord>, StorageError>;
}

/// An offer's stored definition after `how` at `now_ms`: its end brought forward to now, and
/// whether anything changed (an end never moves an end later, a withdrawal happens once).
pub fn ended(
    mut offer: loyalty_core::offers::Offer,
    withdrawn_at_ms: Option<i64>,
    how: OfferEnd,
    now_ms: i64,
) -> (loyalty_core::offers::Offer, Option<i64>, bool) {
    let until = offer.valid_until_ms.min(now_ms);
    let withdrawn = match how {
        OfferEnd::Withdraw => withdrawn_at_ms.or(Some(now_ms)),
        OfferEnd::End => withdrawn_at_ms,
    };
    let changed = until != offer.valid_until_ms || withdrawn != withdrawn_at_ms;
    offer.valid_until_ms = until;
    (offer, withdrawn, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(until: i64) -> loyalty_core::offers::Offer {
        loyalty_core::offers::Offer {
            id: "o".into(),
            title: "t".into(),
            description: String::new(),
            terms: String::new(),
            valid_from_ms: 0,
            valid_until_ms: until,
            needs_activation: false,
            reward: loyalty_core::offers::Reward::FixedPoints,
            value: 1,
            category: String::new(),
            min_spend_minor: 0,
            use_limit: 0,
            use_count: 0,
        }
    }

    #[test]
    fn an_end_comes_once_and_never_later() {
        let (o, w, changed) = ended(offer(100), None, OfferEnd::End, 40);
        assert_eq!((o.valid_until_ms, w, changed), (40, None, true));
        let (o, w, changed) = ended(offer(40), None, OfferEnd::End, 90);
        assert_eq!(
            (o.valid_until_ms, w, changed),
            (40, None, false),
            "already over"
        );
        let (o, w, changed) = ended(offer(40), None, OfferEnd::Withdraw, 90);
        assert_eq!((o.valid_until_ms, w, changed), (40, Some(90), true));
        let (_, w, changed) = ended(offer(40), Some(90), OfferEnd::Withdraw, 95);
        assert_eq!((w, changed), (Some(90), false), "withdrawn once");
    }
}
