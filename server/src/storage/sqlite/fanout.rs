//! The big writes that offers and segments share: fanning an offer out to everyone a target
//! names, in chunks of [`CHUNK`] members per transaction, and reading the segments with their
//! sizes. Both the offers' store (`offers.rs`) and the segment batch job (`segments.rs`) use them,
//! so they sit below both.

use loyalty_core::api::SegmentView;
use loyalty_core::segments::{Segment, SegmentRules};
use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};

use super::backend;
use crate::storage::StorageError;

pub(super) fn bump_fanout_seq(conn: &Connection) -> Result<(), StorageError> {
    conn.execute(
        "UPDATE programme_state SET fanout_seq = fanout_seq + 1 WHERE id = 1",
        [],
    )
    .map_err(backend)?;
    Ok(())
}

/// Rows written per transaction by the big writes (fan-outs, segment and RFM updates). Short
/// transactions keep the write lock for tens of milliseconds at a time, so till postings in the
/// server — or the server beside the batch job, whose busy timeout is 5 s — never wait long.
pub const CHUNK: i64 = 25_000;

/// One chunk of a large write, keyed by member id: `bound_sql` finds the chunk's last member id
/// (`?1` the previous chunk's last id, `?2` the chunk size), `apply_sql` writes the chunk (`?1`
/// exclusive lower, `?2` inclusive upper bound); both take `extra` as `?3`, `?4`, ... Returns the
/// chunk's last member id and the rows written, or `None` when nothing is left. With
/// `count_for`, the rows written are added to that offer's member count in the chunk's own
/// transaction, so the count never drifts from the rows.
pub(super) fn one_chunk(
    conn: &mut Connection,
    bound_sql: &str,
    apply_sql: &str,
    extra: &[Value],
    after: &str,
    count_for: Option<&str>,
) -> Result<Option<(String, usize)>, StorageError> {
    let bound_params = [Value::Text(after.into()), Value::Integer(CHUNK)]
        .into_iter()
        .chain(extra.iter().cloned());
    // Each statement takes the leading parameters it numbers; rusqlite refuses extra ones.
    let upto: Option<String> = {
        let mut stmt = conn.prepare_cached(bound_sql).map_err(backend)?;
        let n = stmt.parameter_count();
        stmt.query_row(params_from_iter(bound_params.take(n)), |r| r.get(0))
            .map_err(backend)?
    };
    let Some(upto) = upto else {
        return Ok(None);
    };
    let tx = conn.transaction().map_err(backend)?;
    let apply_params = [Value::Text(after.into()), Value::Text(upto.clone())]
        .into_iter()
        .chain(extra.iter().cloned());
    let written = {
        let mut stmt = tx.prepare_cached(apply_sql).map_err(backend)?;
        let n = stmt.parameter_count();
        stmt.execute(params_from_iter(apply_params.take(n)))
            .map_err(backend)?
    };
    if let Some(offer_id) = count_for {
        count_added(&tx, offer_id, written)?;
    }
    tx.commit().map_err(backend)?;
    Ok(Some((upto, written)))
}

/// Runs [`one_chunk`] until the source is exhausted; returns the rows written.
pub(super) fn in_chunks(
    conn: &mut Connection,
    bound_sql: &str,
    apply_sql: &str,
    extra: &[Value],
    count_for: Option<&str>,
) -> Result<usize, StorageError> {
    // Member ids are never empty, so every id sorts after "".
    let mut after = String::new();
    let mut total = 0;
    while let Some((upto, written)) =
        one_chunk(conn, bound_sql, apply_sql, extra, &after, count_for)?
    {
        total += written;
        after = upto;
    }
    Ok(total)
}

/// The SQL of a fan-out chunk to a tier or segment: (bound, apply), with `?3` the offer id, `?4`
/// the tier or segment id and `?5` the time. `None` for an explicit target.
pub(super) fn fan_out_sql(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "tier" => Some((
            "SELECT max(member_id) FROM (SELECT member_id FROM members
             WHERE tier = ?4 AND member_id > ?1 ORDER BY member_id LIMIT ?2)",
            // OR IGNORE: members who have the offer keep their row, uses and projection state.
            "INSERT OR IGNORE INTO offer_members (offer_id, member_id, added_at)
             SELECT ?3, member_id, ?5 FROM members
             WHERE tier = ?4 AND member_id > ?1 AND member_id <= ?2 ORDER BY member_id",
        )),
        "segment" => Some((
            "SELECT max(member_id) FROM (SELECT member_id FROM segment_members
             WHERE segment_id = ?4 AND member_id > ?1 ORDER BY member_id LIMIT ?2)",
            "INSERT OR IGNORE INTO offer_members (offer_id, member_id, added_at)
             SELECT ?3, member_id, ?5 FROM segment_members
             WHERE segment_id = ?4 AND member_id > ?1 AND member_id <= ?2",
        )),
        _ => None,
    }
}

pub(super) fn fan_out_params(offer_id: &str, key: &str, now_ms: i64) -> Vec<Value> {
    vec![
        Value::Text(offer_id.into()),
        Value::Text(key.into()),
        Value::Integer(now_ms),
    ]
}

/// Adds what one fan-out chunk added to the offer's member count and moves `fanout_seq`, so
/// servers wake their waiting devices while a long fan-out is still going.
fn count_added(conn: &Connection, offer_id: &str, added: usize) -> Result<(), StorageError> {
    if added == 0 {
        return Ok(());
    }
    conn.execute(
        "UPDATE offers SET member_count = member_count + ?2 WHERE offer_id = ?1",
        params![offer_id, added as i64],
    )
    .map_err(backend)?;
    bump_fanout_seq(conn)
}

/// Adds the members of a tier or segment to an offer, chunk by chunk; returns how many were new.
pub(super) fn fan_out(
    conn: &mut Connection,
    offer_id: &str,
    kind: &str,
    key: &str,
    now_ms: i64,
) -> Result<i64, StorageError> {
    let Some((bound, apply)) = fan_out_sql(kind) else {
        return Ok(0);
    };
    let extra = fan_out_params(offer_id, key, now_ms);
    let total = in_chunks(conn, bound, apply, &extra, Some(offer_id))?;
    Ok(i64::try_from(total).unwrap_or(i64::MAX))
}

fn segment_view(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(Segment, i64, Option<i64>, i64, String)> {
    let rules: String = r.get(2)?;
    Ok((
        Segment {
            id: r.get(0)?,
            name: r.get(1)?,
            rules: SegmentRules::default(),
        },
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        rules,
    ))
}

pub(super) fn segments_in(conn: &Connection) -> Result<Vec<SegmentView>, StorageError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT segment_id, name, rules, created_at, computed_at, member_count
             FROM segments ORDER BY segment_id",
        )
        .map_err(backend)?;
    let rows = stmt.query_map([], segment_view).map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (mut segment, created_at_ms, computed_at_ms, members, rules) = row.map_err(backend)?;
        segment.rules = serde_json::from_str(&rules)
            .map_err(|e| backend(format!("stored segment rules unreadable: {e}")))?;
        out.push(SegmentView {
            segment,
            created_at_ms,
            computed_at_ms,
            members,
        });
    }
    Ok(out)
}
