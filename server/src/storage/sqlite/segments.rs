//! The batch job on SQLite: RFM scores from the postings, every segment's membership, and the
//! standing offer targets (a tier or a segment) brought to members who newly qualify.
//!
//! It works on a connection of its own, opened on the database file with a long busy timeout:
//! computing goes into temporary tables first (reads only, beside a running server thanks to
//! WAL), and the write lock is held only for the short copies, in chunks of
//! [`super::fanout::CHUNK`] members, so the server's own writes wait milliseconds, not the whole
//! job.

use std::path::Path;
use std::time::Instant;

use loyalty_core::segments::SegmentRules;
use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};

use super::backend;
use super::fanout::{fan_out, in_chunks, segments_in};
use super::rfm_moves;
use crate::storage::{RecomputeReport, StorageError};

/// The SQL condition a member must meet for `rules`, over `members m LEFT JOIN member_rfm r`, with
/// its parameters. Values are always bound, never spliced into the text.
pub(crate) fn rules_sql(rules: &SegmentRules) -> (String, Vec<Value>) {
    let mut conds = vec!["1".to_string()];
    let mut values = Vec::new();
    for (column, range) in [
        ("recency", rules.recency),
        ("frequency", rules.frequency),
        ("monetary", rules.monetary),
    ] {
        if let Some(range) = range {
            // No row in member_rfm: no purchase in the window, score 0.
            conds.push(format!("coalesce(r.{column}, 0) BETWEEN ? AND ?"));
            values.push(Value::Integer(range.min.into()));
            values.push(Value::Integer(range.max.into()));
        }
    }
    if !rules.tiers.is_empty() {
        let marks = vec!["?"; rules.tiers.len()].join(", ");
        conds.push(format!("m.tier IN ({marks})"));
        values.extend(rules.tiers.iter().map(|t| Value::Text(t.clone())));
    }
    if let Some(from) = rules.enrolled_from_ms {
        conds.push("m.created_at >= ?".into());
        values.push(Value::Integer(from));
    }
    if let Some(until) = rules.enrolled_until_ms {
        conds.push("m.created_at < ?".into());
        values.push(Value::Integer(until));
    }
    for (key, value) in &rules.preferences {
        conds.push(
            "EXISTS (SELECT 1 FROM member_preferences p
                     WHERE p.member_id = m.member_id AND p.key = ? AND p.value = ?)"
                .into(),
        );
        values.push(Value::Text(key.clone()));
        values.push(Value::Text(value.clone()));
    }
    (conds.join(" AND "), values)
}

/// Opens the server's database for the batch job: the same checks and migrations as the server,
/// and a long busy timeout, because the server may be holding the write lock for a moment.
pub(super) fn open_for_batch(path: &Path) -> Result<Connection, StorageError> {
    let conn = loyalty_core::store::open_sqlite(
        path,
        crate::storage::sqlite::APPLICATION_ID,
        &crate::storage::sqlite::migrations(),
    )
    .map_err(backend)?;
    // Its commits, when it runs in the server's process, are ones the readers must see at once.
    super::readers::count_commits(&conn);
    conn.busy_timeout(std::time::Duration::from_secs(120))
        .map_err(backend)?;
    Ok(conn)
}

/// Recomputes RFM scores from the postings, then every segment's membership, then fans every
/// valid offer with a tier or segment target out to members who newly qualify. `progress` gets a
/// line per step. Runs beside a live server on the same file (`OfferStore::recompute_segments`).
pub(super) fn recompute(
    conn: &mut Connection,
    now: i64,
    window_ms: i64,
    progress: &mut dyn FnMut(&str),
) -> Result<RecomputeReport, StorageError> {
    let mut report = RecomputeReport::default();
    let started = Instant::now();
    let step = |t: Instant| format!("{:.1} s", t.elapsed().as_secs_f64());

    // 1. RFM into a temporary table: a read of the ledger, no lock on the server's tables.
    let t = Instant::now();
    progress("rfm: scoring purchases in the window");
    conn.execute_batch(
        "DROP TABLE IF EXISTS temp.rfm_new;
         CREATE TEMP TABLE rfm_new (
             member_id TEXT PRIMARY KEY, recency INTEGER, frequency INTEGER, monetary INTEGER,
             last_purchase_at INTEGER, purchases INTEGER, spend_minor INTEGER
         ) WITHOUT ROWID;",
    )
    .map_err(backend)?;
    // Refunds in the window reduce the monetary value (net spend, never below 0) but not the
    // frequency or recency: the member did come in. Scores are by percent rank, so members with
    // equal values always share a score; the lowest value scores 1, the top fifth 5.
    let scored = conn
        .execute(
            "INSERT INTO temp.rfm_new
             WITH agg AS (
                 SELECT member_id,
                        max(CASE WHEN kind = 'purchase' THEN at END) AS last_at,
                        sum(kind = 'purchase') AS purchases,
                        max(0, sum(CASE WHEN kind = 'purchase' THEN total_minor
                                        ELSE -total_minor END)) AS spend
                 FROM postings
                 WHERE at > ?1 AND at <= ?2
                 GROUP BY member_id
                 HAVING purchases > 0
             )
             SELECT member_id,
                    min(5, 1 + CAST(5 * percent_rank() OVER (ORDER BY last_at) AS INTEGER)),
                    min(5, 1 + CAST(5 * percent_rank() OVER (ORDER BY purchases) AS INTEGER)),
                    min(5, 1 + CAST(5 * percent_rank() OVER (ORDER BY spend) AS INTEGER)),
                    last_at, purchases, spend
             FROM agg",
            params![now.saturating_sub(window_ms), now],
        )
        .map_err(backend)?;
    report.scored_members = i64::try_from(scored).unwrap_or(i64::MAX);
    progress(&format!(
        "rfm: {scored} members with purchases scored ({})",
        step(t)
    ));
    let t = Instant::now();
    // Who no longer bought in the window; with the new scores, all the moves are known before
    // anything is replaced (`rfm_moves.rs`).
    conn.execute_batch(
        "DROP TABLE IF EXISTS temp.rfm_gone;
         CREATE TEMP TABLE rfm_gone (member_id TEXT PRIMARY KEY) WITHOUT ROWID;
         INSERT INTO temp.rfm_gone SELECT member_id FROM member_rfm
         WHERE member_id NOT IN (SELECT member_id FROM temp.rfm_new);",
    )
    .map_err(backend)?;
    let moves = rfm_moves::count(conn)?;
    // Replace in chunks: new scores first, then drop members who no longer bought in the window.
    in_chunks(
        conn,
        "SELECT max(member_id) FROM (SELECT member_id FROM temp.rfm_new
         WHERE member_id > ?1 ORDER BY member_id LIMIT ?2)",
        "INSERT OR REPLACE INTO member_rfm (member_id, recency, frequency, monetary,
                                            last_purchase_at, purchases, spend_minor, computed_at)
         SELECT member_id, recency, frequency, monetary, last_purchase_at, purchases,
                spend_minor, ?3
         FROM temp.rfm_new WHERE member_id > ?1 AND member_id <= ?2",
        &[Value::Integer(now)],
        None,
    )?;
    in_chunks(
        conn,
        "SELECT max(member_id) FROM (SELECT member_id FROM temp.rfm_gone
         WHERE member_id > ?1 ORDER BY member_id LIMIT ?2)",
        "DELETE FROM member_rfm WHERE member_id IN
         (SELECT member_id FROM temp.rfm_gone WHERE member_id > ?1 AND member_id <= ?2)",
        &[],
        None,
    )?;
    conn.execute_batch("DROP TABLE temp.rfm_new; DROP TABLE temp.rfm_gone;")
        .map_err(backend)?;
    // Recorded once the new scores are all in place, so a run that failed half way is not one.
    rfm_moves::record(conn, now, &moves)?;
    progress(&format!("rfm: scores stored ({})", step(t)));

    // 2. Segments: evaluate into a temporary table, then apply only the difference.
    let segments = segments_in(conn)?;
    let total = segments.len();
    for (i, view) in segments.iter().enumerate() {
        let t = Instant::now();
        let id = &view.segment.id;
        let (cond, values) = rules_sql(&view.segment.rules);
        conn.execute_batch(
            "DROP TABLE IF EXISTS temp.segment_new;
             DROP TABLE IF EXISTS temp.segment_gone;
             CREATE TEMP TABLE segment_new (member_id TEXT PRIMARY KEY) WITHOUT ROWID;
             CREATE TEMP TABLE segment_gone (member_id TEXT PRIMARY KEY) WITHOUT ROWID;",
        )
        .map_err(backend)?;
        let members = conn
            .execute(
                &format!(
                    "INSERT INTO temp.segment_new
                     SELECT m.member_id FROM members m
                     LEFT JOIN member_rfm r ON r.member_id = m.member_id
                     WHERE {cond} ORDER BY m.member_id"
                ),
                params_from_iter(values),
            )
            .map_err(backend)?;
        conn.execute(
            "INSERT INTO temp.segment_gone SELECT member_id FROM segment_members
             WHERE segment_id = ?1 AND member_id NOT IN (SELECT member_id FROM temp.segment_new)",
            [id],
        )
        .map_err(backend)?;
        let key = [Value::Text(id.clone())];
        let left = in_chunks(
            conn,
            "SELECT max(member_id) FROM (SELECT member_id FROM temp.segment_gone
             WHERE member_id > ?1 ORDER BY member_id LIMIT ?2)",
            "DELETE FROM segment_members WHERE segment_id = ?3 AND member_id IN
             (SELECT member_id FROM temp.segment_gone WHERE member_id > ?1 AND member_id <= ?2)",
            &key,
            None,
        )?;
        let joined = in_chunks(
            conn,
            "SELECT max(member_id) FROM (SELECT member_id FROM temp.segment_new
             WHERE member_id > ?1 ORDER BY member_id LIMIT ?2)",
            "INSERT OR IGNORE INTO segment_members (segment_id, member_id)
             SELECT ?3, member_id FROM temp.segment_new WHERE member_id > ?1 AND member_id <= ?2",
            &key,
            None,
        )?;
        conn.execute(
            "UPDATE segments SET computed_at = ?2, member_count = ?3 WHERE segment_id = ?1",
            params![id, now, members as i64],
        )
        .map_err(backend)?;
        conn.execute(
            "INSERT OR REPLACE INTO segment_runs (segment_id, computed_at, members, joined, departed)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, now, members as i64, joined as i64, left as i64],
        )
        .map_err(backend)?;
        report.segments.push((id.clone(), members as i64));
        progress(&format!(
            "segment {}/{total} `{id}`: {members} members ({joined} joined, {left} left) ({})",
            i + 1,
            step(t)
        ));
    }
    conn.execute_batch(
        "DROP TABLE IF EXISTS temp.segment_new; DROP TABLE IF EXISTS temp.segment_gone;",
    )
    .map_err(backend)?;

    // 3. Standing targets reach the members who newly qualify.
    let standing: Vec<(String, String, String)> = {
        let mut stmt = conn
            .prepare(
                "SELECT offer_id, target_kind, target_key FROM offers
                 WHERE target_kind <> 'members' AND valid_until > ?1 AND target_key IS NOT NULL
                 ORDER BY offer_id",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)?
    };
    for (offer_id, kind, key) in standing {
        let t = Instant::now();
        let added = fan_out(conn, &offer_id, &kind, &key, now)?;
        progress(&format!(
            "offer `{offer_id}` ({kind} {key}): {added} members added ({})",
            step(t)
        ));
        report.offers.push((offer_id, added));
    }
    progress(&format!("done in {}", step(started)));
    Ok(report)
}
