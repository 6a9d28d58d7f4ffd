//! The big writes that offers and segments share on PostgreSQL: fanning an offer out to everyone
//! a tier or segment names, in chunks of [`CHUNK`] members per transaction, and reading the
//! segments with their sizes. Both the offers' store (`offers.rs`) and the batch job
//! (`segments.rs`) use them, so they sit below both.
//!
//! A chunk is one statement: the next [`CHUNK`] member ids after the last chunk's (keyset, on the
//! index), inserted with `ON CONFLICT DO NOTHING` so members who have the offer keep their uses
//! and projection state, the offer's member count and `fanout_seq` moved in the same transaction,
//! as on SQLite, so the count never drifts from the rows and servers wake devices mid-fan-out.

use super::Cached;
use deadpool_postgres::GenericClient;
use loyalty_core::api::SegmentView;
use loyalty_core::segments::{Segment, SegmentRules};

use super::backend;
use crate::storage::StorageError;

/// Members per fan-out transaction: short transactions keep row locks briefly.
pub const CHUNK: i64 = 25_000;

pub(super) async fn bump_fanout_seq(conn: &impl GenericClient) -> Result<(), StorageError> {
    conn.exec(
        "UPDATE programme_state SET fanout_seq = fanout_seq + 1 WHERE id = 1",
        &[],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// The source of a tier's or segment's members for a fan-out chunk (`$2` the key, `$1` the last
/// chunk's member id); `None` for any other kind.
fn source(kind: &str) -> Option<&'static str> {
    match kind {
        "tier" => Some("SELECT member_id FROM members WHERE tier = $2 AND member_id > $1"),
        "segment" => {
            Some("SELECT member_id FROM segment_members WHERE segment_id = $2 AND member_id > $1")
        }
        _ => None,
    }
}

/// Adds the members of a tier or segment to an offer, a transaction per chunk; returns how many
/// were new.
pub(super) async fn fan_out(
    client: &mut deadpool_postgres::Object,
    offer_id: &str,
    kind: &str,
    key: &str,
    now_ms: i64,
) -> Result<i64, StorageError> {
    let Some(source) = source(kind) else {
        return Ok(0);
    };
    let sql = format!(
        "WITH chunk AS ({source} ORDER BY member_id LIMIT $3),
              added AS (INSERT INTO offer_members (offer_id, member_id, added_at)
                        SELECT $4, member_id, $5 FROM chunk
                        ON CONFLICT DO NOTHING RETURNING 1)
         SELECT (SELECT max(member_id) FROM chunk), (SELECT count(*) FROM added)"
    );
    let mut after = String::new();
    let mut total = 0i64;
    loop {
        let tx = client.transaction().await.map_err(backend)?;
        let row = tx
            .fetch_one(&sql, &[&after, &key, &CHUNK, &offer_id, &now_ms])
            .await
            .map_err(backend)?;
        let upto: Option<String> = row.try_get(0).map_err(backend)?;
        let added: i64 = row.try_get(1).map_err(backend)?;
        let Some(upto) = upto else {
            return Ok(total);
        };
        if added > 0 {
            tx.exec(
                "UPDATE offers SET member_count = member_count + $2 WHERE offer_id = $1",
                &[&offer_id, &added],
            )
            .await
            .map_err(backend)?;
            bump_fanout_seq(&tx).await?;
        }
        tx.commit().await.map_err(backend)?;
        total += added;
        after = upto;
    }
}

pub(super) async fn segments_in(
    conn: &impl GenericClient,
) -> Result<Vec<SegmentView>, StorageError> {
    let rows = conn
        .fetch_all(
            "SELECT segment_id, name, rules, created_at, computed_at, member_count
             FROM segments ORDER BY segment_id COLLATE \"C\"",
            &[],
        )
        .await
        .map_err(backend)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let rules: SegmentRules = serde_json::from_str(r.try_get(2).map_err(backend)?)
            .map_err(|e| backend(format!("stored segment rules unreadable: {e}")))?;
        out.push(SegmentView {
            segment: Segment {
                id: r.try_get(0).map_err(backend)?,
                name: r.try_get(1).map_err(backend)?,
                rules,
            },
            created_at_ms: r.try_get(3).map_err(backend)?,
            computed_at_ms: r.try_get(4).map_err(backend)?,
            members: r.try_get(5).map_err(backend)?,
        });
    }
    Ok(out)
}
