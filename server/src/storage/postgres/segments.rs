//! The batch job on PostgreSQL: RFM scores from the postings, every segment's membership, and the
//! standing offer targets (a tier or a segment) brought to members who newly qualify.
//!
//! Set-based, as the SQLite job: each step is one statement that keeps the work in the database
//! (no member crosses to Rust), so a million members cost a few hash joins and index scans, not a
//! million round trips. The RFM scores and a segment's membership are each replaced by one
//! statement whose data-modifying CTEs insert the new rows, update the changed ones and delete the
//! gone ones (writing nothing for what did not change); only the job writes `member_rfm` and
//! `segment_members`, and readers (the message fan-out) see the old rows until it commits (MVCC),
//! so nothing the server does waits on it. The offers' fan-out, which the server's postings do
//! touch, goes in short chunks (`fanout.rs`).

use std::time::Instant;

use loyalty_core::segments::SegmentRules;
use tokio_postgres::types::ToSql;

use super::Cached;
use super::backend;
use super::fanout::{fan_out, segments_in};
use super::rfm_moves;
use crate::storage::{RecomputeReport, StorageError};

type Param = Box<dyn ToSql + Sync + Send>;

/// The SQL condition a member must meet for `rules`, over `members m LEFT JOIN member_rfm r`, its
/// placeholders numbered from `$first`, with its parameters. Values are bound, never spliced.
pub(super) fn rules_sql(rules: &SegmentRules, first: usize) -> (String, Vec<Param>) {
    let mut conds = vec!["TRUE".to_string()];
    let mut values: Vec<Param> = Vec::new();
    let next = |values: &mut Vec<Param>, value: Param| {
        values.push(value);
        format!("${}", first + values.len() - 1)
    };
    for (column, range) in [
        ("recency", rules.recency),
        ("frequency", rules.frequency),
        ("monetary", rules.monetary),
    ] {
        if let Some(range) = range {
            // No row in member_rfm: no purchase in the window, score 0.
            let min = next(&mut values, Box::new(i64::from(range.min)));
            let max = next(&mut values, Box::new(i64::from(range.max)));
            conds.push(format!("coalesce(r.{column}, 0) BETWEEN {min} AND {max}"));
        }
    }
    if !rules.tiers.is_empty() {
        let tiers = next(&mut values, Box::new(rules.tiers.clone()));
        conds.push(format!("m.tier = ANY({tiers}::text[])"));
    }
    if let Some(from) = rules.enrolled_from_ms {
        let from = next(&mut values, Box::new(from));
        conds.push(format!("m.created_at >= {from}"));
    }
    if let Some(until) = rules.enrolled_until_ms {
        let until = next(&mut values, Box::new(until));
        conds.push(format!("m.created_at < {until}"));
    }
    for (key, value) in &rules.preferences {
        let key = next(&mut values, Box::new(key.clone()));
        let value = next(&mut values, Box::new(value.clone()));
        conds.push(format!(
            "EXISTS (SELECT 1 FROM member_preferences p
                     WHERE p.member_id = m.member_id AND p.key = {key} AND p.value = {value})"
        ));
    }
    (conds.join(" AND "), values)
}

/// How the job's transactions join a million members against a million rows: by hashing, in
/// memory enough for it (a few such joins at once stay well inside the job's 1 GiB), never by
/// sorting both sides — a merge join sorted a million ids on disk and then read the index in
/// random order (17 s for the `everyone` segment at a million members; 4 s hashed). A hash join
/// larger than its memory spills in batches rather than changing plan. `LOCAL`: the setting ends
/// with the transaction, before the pooled connection serves anything else.
const SET_FOR_JOINS: &str = "SET LOCAL work_mem = '64MB'; SET LOCAL enable_mergejoin = off";

/// Scores every member with a purchase in the window and drops the scores of the others, in one
/// statement. Refunds reduce the monetary value (net spend, never below 0) but not frequency or
/// recency; scores are by percent rank, truncated as SQLite's `CAST(… AS INTEGER)`, so equal
/// values share a score, the lowest scores 1 and the top fifth 5. Only scores that changed are
/// written (a nightly recompute mostly finds the same ones), so `computed_at` is when a member's
/// scores last changed. Plain updates, inserts and deletes over anti-joins rather than an upsert:
/// only this job writes the table, under the recompute lock, and `ON CONFLICT` probed the index
/// once per row (see [`segment`]). The same statement counts how the scores moved (`pairs`,
/// `moves`): every CTE reads `member_rfm` in the statement's snapshot, so the previous scores,
/// fully joined with the new — members scored at either run only; never scored is 0 → 0,
/// derived by the report, so no scan of all members (`rfm_moves.rs`). Returns the members scored
/// and the members whose scores were dropped.
const RFM_SQL: &str = "
WITH agg AS (
    SELECT member_id,
           max(CASE WHEN kind = 'purchase' THEN at END) AS last_at,
           count(*) FILTER (WHERE kind = 'purchase') AS purchases,
           greatest(0, sum(CASE WHEN kind = 'purchase' THEN total_minor
                                ELSE -total_minor END))::bigint AS spend
    FROM postings
    WHERE at > $1 AND at <= $2
    GROUP BY member_id
    HAVING count(*) FILTER (WHERE kind = 'purchase') > 0
), scored AS (
    SELECT member_id,
           least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY last_at)))::bigint AS recency,
           least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY purchases)))::bigint AS frequency,
           least(5, 1 + floor(5 * percent_rank() OVER (ORDER BY spend)))::bigint AS monetary,
           last_at, purchases, spend
    FROM agg
), changed AS (
    UPDATE member_rfm r SET
        recency = s.recency, frequency = s.frequency, monetary = s.monetary,
        last_purchase_at = s.last_at, purchases = s.purchases, spend_minor = s.spend,
        computed_at = $2
    FROM scored s
    WHERE r.member_id = s.member_id
      AND (r.recency, r.frequency, r.monetary, r.last_purchase_at, r.purchases, r.spend_minor)
          IS DISTINCT FROM (s.recency, s.frequency, s.monetary, s.last_at, s.purchases, s.spend)
), fresh AS (
    INSERT INTO member_rfm (member_id, recency, frequency, monetary, last_purchase_at, purchases,
                            spend_minor, computed_at)
    SELECT member_id, recency, frequency, monetary, last_at, purchases, spend, $2 FROM scored s
    WHERE NOT EXISTS (SELECT 1 FROM member_rfm r WHERE r.member_id = s.member_id)
    ORDER BY member_id
), gone AS (
    DELETE FROM member_rfm old
    WHERE NOT EXISTS (SELECT 1 FROM scored s WHERE s.member_id = old.member_id)
    RETURNING 1
), pairs AS (
    SELECT coalesce(o.recency, 0) AS r0, coalesce(s.recency, 0) AS r1,
           coalesce(o.frequency, 0) AS f0, coalesce(s.frequency, 0) AS f1,
           coalesce(o.monetary, 0) AS m0, coalesce(s.monetary, 0) AS m1, count(*) AS n
    FROM scored s FULL JOIN member_rfm o ON o.member_id = s.member_id
    GROUP BY 1, 2, 3, 4, 5, 6
), moves AS (
    INSERT INTO rfm_moves (computed_at, dimension, from_score, to_score, members)
    SELECT $2, 'recency', r0, r1, sum(n) FROM pairs GROUP BY r0, r1
    UNION ALL SELECT $2, 'frequency', f0, f1, sum(n) FROM pairs GROUP BY f0, f1
    UNION ALL SELECT $2, 'monetary', m0, m1, sum(n) FROM pairs GROUP BY m0, m1
)
SELECT (SELECT count(*) FROM scored), (SELECT count(*) FROM gone)";

/// Recomputes RFM scores, then every segment's membership, then fans every valid offer with a
/// tier or segment target out to members who newly qualify. `progress` gets a line per step.
pub(super) async fn recompute(
    client: &mut deadpool_postgres::Object,
    now: i64,
    window_ms: i64,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<RecomputeReport, StorageError> {
    let mut report = RecomputeReport::default();
    let started = Instant::now();
    let step = |t: Instant| format!("{:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    progress("rfm: scoring purchases in the window");
    let tx = client.transaction().await.map_err(backend)?;
    tx.batch_execute(SET_FOR_JOINS).await.map_err(backend)?;
    rfm_moves::begin_run(&tx, now).await?;
    let row = tx
        .fetch_one(RFM_SQL, &[&now.saturating_sub(window_ms), &now])
        .await
        .map_err(backend)?;
    rfm_moves::prune(&tx).await?;
    tx.commit().await.map_err(backend)?;
    let scored: i64 = row.try_get(0).map_err(backend)?;
    let dropped: i64 = row.try_get(1).map_err(backend)?;
    report.scored_members = scored;
    progress(&format!(
        "rfm: {scored} members with purchases scored, {dropped} dropped ({})",
        step(t)
    ));

    let segments = segments_in(&*client).await?;
    let total = segments.len();
    for (i, view) in segments.iter().enumerate() {
        let t = Instant::now();
        let id = &view.segment.id;
        let (members, joined, left) = segment(client, id, &view.segment.rules, now).await?;
        report.segments.push((id.clone(), members));
        progress(&format!(
            "segment {}/{total} `{id}`: {members} members ({joined} joined, {left} left) ({})",
            i + 1,
            step(t)
        ));
    }

    // The job rewrote these tables wholesale: fresh statistics now, so the fan-outs below and the
    // operators' next ones plan on what the tables hold (autovacuum would take its time).
    let t = Instant::now();
    client
        .batch_execute("ANALYZE member_rfm, segment_members")
        .await
        .map_err(backend)?;
    progress(&format!("statistics of the rewritten tables ({})", step(t)));

    let standing = client
        .fetch_all(
            "SELECT offer_id, target_kind, target_key FROM offers
             WHERE target_kind <> 'members' AND valid_until > $1 AND target_key IS NOT NULL
             ORDER BY offer_id COLLATE \"C\"",
            &[&now],
        )
        .await
        .map_err(backend)?;
    for row in standing {
        let t = Instant::now();
        let offer_id: String = row.try_get(0).map_err(backend)?;
        let kind: String = row.try_get(1).map_err(backend)?;
        let key: String = row.try_get(2).map_err(backend)?;
        let added = fan_out(client, &offer_id, &kind, &key, now).await?;
        progress(&format!(
            "offer `{offer_id}` ({kind} {key}): {added} members added ({})",
            step(t)
        ));
        report.offers.push((offer_id, added));
    }
    progress(&format!("done in {}", step(started)));
    Ok(report)
}

/// Replaces one segment's membership with who meets its rules now, in one transaction: a
/// statement that deletes the members who left and inserts the ones who joined, then the
/// segment's size. Returns (members, joined, left). The newcomers are found by an anti-join and
/// inserted in key order: `ON CONFLICT DO NOTHING` probed the index once per qualified member
/// (11 of the 17 s a million-member segment took when nobody had joined), and an insert in
/// key order fills the index's pages one after the other (4 s instead of 11 for a million).
/// Only this job writes the table, under the recompute lock, so no concurrent insert races it.
async fn segment(
    client: &mut deadpool_postgres::Object,
    id: &str,
    rules: &SegmentRules,
    now: i64,
) -> Result<(i64, i64, i64), StorageError> {
    let (cond, values) = rules_sql(rules, 2);
    let sql = format!(
        "WITH qualified AS (
             SELECT m.member_id FROM members m
             LEFT JOIN member_rfm r ON r.member_id = m.member_id
             WHERE {cond}
         ), gone AS (
             DELETE FROM segment_members s WHERE s.segment_id = $1
               AND NOT EXISTS (SELECT 1 FROM qualified q WHERE q.member_id = s.member_id)
             RETURNING 1
         ), joined AS (
             INSERT INTO segment_members (segment_id, member_id)
             SELECT $1, q.member_id FROM qualified q
             WHERE NOT EXISTS (SELECT 1 FROM segment_members s
                               WHERE s.segment_id = $1 AND s.member_id = q.member_id)
             ORDER BY q.member_id
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM qualified), (SELECT count(*) FROM joined),
                (SELECT count(*) FROM gone)"
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
    params.extend(values.iter().map(|v| &**v as &(dyn ToSql + Sync)));
    let tx = client.transaction().await.map_err(backend)?;
    tx.batch_execute(SET_FOR_JOINS).await.map_err(backend)?;
    let row = tx.fetch_one(&sql, &params).await.map_err(backend)?;
    let (members, joined, left): (i64, i64, i64) = (
        row.try_get(0).map_err(backend)?,
        row.try_get(1).map_err(backend)?,
        row.try_get(2).map_err(backend)?,
    );
    tx.exec(
        "UPDATE segments SET computed_at = $2, member_count = $3 WHERE segment_id = $1",
        &[&id, &now, &members],
    )
    .await
    .map_err(backend)?;
    tx.exec(
        "INSERT INTO segment_runs (segment_id, computed_at, members, joined, departed)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (segment_id, computed_at) DO UPDATE
         SET members = excluded.members, joined = excluded.joined, departed = excluded.departed",
        &[&id, &now, &members, &joined, &left],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok((members, joined, left))
}
