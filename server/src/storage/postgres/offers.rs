//! Targeted offers on PostgreSQL: what the till reads and writes inside a posting's own
//! transaction ([`till_offers_in`], [`record_offer_uses`]). `OfferStore` (publication, fan-outs,
//! projection, segments) is implemented here next, with the recompute in `segments.rs`.

use loyalty_core::offers::Offer;
use tokio_postgres::GenericClient;

use super::backend;
use crate::storage::StorageError;
use crate::storage::offers::TillOffer;

fn parse_offer(definition: &str) -> Result<Offer, StorageError> {
    serde_json::from_str(definition).map_err(|e| backend(format!("stored offer unreadable: {e}")))
}

/// The offers `member_id` is targeted with and that are valid at `now_ms`, each with its uses
/// (`offer.use_count`) and the member's activation time, read on the caller's connection or
/// transaction.
pub(super) async fn till_offers_in(
    conn: &impl GenericClient,
    member_id: &str,
    now_ms: i64,
) -> Result<Vec<TillOffer>, StorageError> {
    let rows = conn
        .query(
            "SELECT o.definition, om.uses, a.at
             FROM offer_members om
             JOIN offers o ON o.offer_id = om.offer_id
             LEFT JOIN member_activations a
                 ON a.member_id = om.member_id AND a.offer_id = om.offer_id
             WHERE om.member_id = $1 AND o.valid_from <= $2 AND o.valid_until > $2
             ORDER BY o.valid_until, o.offer_id COLLATE \"C\"",
            &[&member_id, &now_ms],
        )
        .await
        .map_err(backend)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut offer = parse_offer(r.try_get(0).map_err(backend)?)?;
        offer.use_count = r.try_get(1).map_err(backend)?;
        out.push(TillOffer {
            offer,
            activated_at_ms: r.try_get(2).map_err(backend)?,
        });
    }
    Ok(out)
}

/// Counts one use of each offer in `offer_ids` (an id listed twice counts twice) for the member,
/// inside the caller's transaction. Guarded by the offer's use limit: a concurrent use blocked on
/// the same row re-checks the limit once the first commits; when it is reached this is false
/// (roll back, read again, post without that offer). An offer the member is not targeted with is
/// a caller bug: [`StorageError::Backend`].
pub(super) async fn record_offer_uses(
    tx: &impl GenericClient,
    member_id: &str,
    offer_ids: &[String],
) -> Result<bool, StorageError> {
    // Rows are locked in one order, so two postings using the same offers wait rather than
    // deadlock; the uses are counted in one transaction, so the order changes nothing else.
    let mut offer_ids = offer_ids.to_vec();
    offer_ids.sort();
    let use_one = tx
        .prepare(
            "UPDATE offer_members SET uses = uses + 1
             WHERE member_id = $1 AND offer_id = $2
               AND (SELECT use_limit = 0 OR offer_members.uses < use_limit
                    FROM offers WHERE offers.offer_id = $2)",
        )
        .await
        .map_err(backend)?;
    for offer_id in &offer_ids {
        if tx
            .execute(&use_one, &[&member_id, offer_id])
            .await
            .map_err(backend)?
            == 1
        {
            continue;
        }
        let targeted: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM offer_members WHERE member_id = $1 AND offer_id = $2)",
                &[&member_id, offer_id],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(backend)?;
        return if targeted {
            Ok(false)
        } else {
            Err(backend(format!(
                "offer {offer_id} is not targeted at the member"
            )))
        };
    }
    Ok(true)
}
