//! [`MessageStore`] on the embedded SQLite database: messages, deliveries, the outbound queue
//! and the programme's side of members' requests (tables of
//! `server/migrations/sqlite/008_communications.sql`).
//!
//! A send decides every recipient's fate in one `INSERT … SELECT`: the daily marketing count and
//! the consent are correlated subqueries on indexed tables, so a segment of a million members is
//! one statement in one transaction, not a million round trips or documents.

use async_trait::async_trait;
use loyalty_core::api::{DeliveryRecord, RequestRecord, SendSummary};
use loyalty_core::inbox::{Delivery, Message, Reply, Thread};
use loyalty_core::requests::ThreadEntry;
use rusqlite::{Connection, OptionalExtension, ToSql, params};

use super::{SqliteStorage, backend, cached_execute, cached_row};
use crate::storage::MessageKind;
use crate::storage::dialect::SQLITE;
use crate::storage::{
    Answer, DeliveryFilter, DeliveryStatus, MessageStore, NewSend, OutboundJob, OutboundOutcome,
    PendingInbox, RECEIPT_STATUS, RECEIPT_UPDATE, Receipt, ReceiptOutcome, RequestStatus,
    SendOutcome, SendTarget, StorageError, clip_detail, receipt_outcome,
};

impl rusqlite::ToSql for MessageKind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for MessageKind {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let name = value.as_str()?;
        MessageKind::from_name(name).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(format!("unknown message kind `{name}`").into())
        })
    }
}

/// Whether the member (`?1`) has inbox entries not yet projected: the sync check's condition too.
pub(super) const INBOX_PENDING: &str =
    "EXISTS (SELECT 1 FROM deliveries WHERE member_id = ?1 AND projected = 0)
     OR EXISTS (SELECT 1 FROM request_threads WHERE member_id = ?1 AND projected = 0)";

/// Entries projected into one member's inbox per call; the rest follow at the next one.
const PROJECTION_BATCH: i64 = 200;

/// Each recipient's delivery row, decided in SQL. `source` yields `member_id`s as `s`, `filter`
/// narrows it; the members join drops segment rows of members that no longer exist.
fn fan_out_sql(source: &str, filter: &str) -> String {
    format!(
        "INSERT INTO deliveries (message_id, member_id, kind, channel, day, status, reason,
                                 in_inbox, projected, created_at, updated_at)
         SELECT :msg, t.member_id, :kind, :channel, :day,
                CASE WHEN t.limited OR t.no_consent THEN 'refused'
                     WHEN :channel = 'inapp' THEN 'sent'
                     ELSE 'queued' END,
                CASE WHEN t.limited THEN 'rate_limited'
                     WHEN t.no_consent THEN 'no_consent' END,
                NOT t.limited, t.limited, :now, :now
         FROM (SELECT s.member_id,
                      (:kind = 'marketing' AND
                       (SELECT count(*) FROM deliveries d
                        WHERE d.member_id = s.member_id AND d.day = :day
                          AND d.kind = 'marketing' AND d.in_inbox = 1) >= :limit) AS limited,
                      (:kind = 'marketing' AND :channel <> 'inapp' AND
                       coalesce((SELECT c.granted FROM member_consents c
                                 WHERE c.member_id = s.member_id AND c.channel = :channel), 0) = 0)
                          AS no_consent
               FROM {source} JOIN members m ON m.member_id = s.member_id
               WHERE {filter}) t
         -- SQLite needs a WHERE here to tell the upsert clause from a join constraint.
         WHERE true
         ON CONFLICT DO NOTHING"
    )
}

fn summary(conn: &Connection, message_id: &str) -> Result<SendSummary, StorageError> {
    conn.query_row(
        "SELECT m.kind, m.channel, count(d.member_id),
                coalesce(sum(d.in_inbox), 0),
                coalesce(sum(d.status = 'queued'), 0),
                coalesce(sum(d.status = 'sent'), 0),
                coalesce(sum(d.status = 'failed'), 0),
                coalesce(sum(d.reason = 'no_consent'), 0),
                coalesce(sum(d.reason = 'rate_limited'), 0),
                coalesce(sum(d.status = 'handed_over'), 0),
                coalesce(sum(d.status = 'logged'), 0),
                coalesce(sum(d.status = 'delivered'), 0)
         FROM messages m LEFT JOIN deliveries d USING (message_id)
         WHERE m.message_id = ?1 GROUP BY m.message_id",
        [message_id],
        |r| {
            Ok(SendSummary {
                message_id: message_id.to_string(),
                kind: r.get(0)?,
                channel: r.get(1)?,
                recipients: r.get(2)?,
                in_inbox: r.get(3)?,
                queued: r.get(4)?,
                sent: r.get(5)?,
                failed: r.get(6)?,
                refused_no_consent: r.get(7)?,
                refused_rate_limited: r.get(8)?,
                handed_over: r.get(9)?,
                logged: r.get(10)?,
                delivered: r.get(11)?,
            })
        },
    )
    .map_err(backend)
}

/// Records a send in one transaction; a refused one stores nothing (the transaction is dropped).
fn record_send(conn: &mut Connection, s: &NewSend) -> Result<SendOutcome, StorageError> {
    let tx = conn.transaction().map_err(backend)?;
    let prior: Option<Vec<u8>> = tx
        .query_row(
            "SELECT request_hash FROM messages WHERE message_id = ?1",
            [&s.message_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    // A message id names one text. The same text again only reaches recipients it has not
    // reached yet (a retry reaches none); another text under the id is refused.
    if prior.is_some_and(|hash| hash != s.request_hash) {
        return Ok(SendOutcome::IdReused);
    }
    let target = match &s.target {
        SendTarget::Members(ids) => {
            tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS send_targets (member_id TEXT PRIMARY KEY);
                 DELETE FROM temp.send_targets;",
            )
            .map_err(backend)?;
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO temp.send_targets (member_id) VALUES (?1) ON CONFLICT DO NOTHING",
                )
                .map_err(backend)?;
            for id in ids {
                put.execute([id]).map_err(backend)?;
            }
            let unknown: i64 = tx
                .query_row(
                    "SELECT count(*) FROM temp.send_targets t
                     WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.member_id = t.member_id)",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if unknown > 0 {
                return Ok(SendOutcome::UnknownMembers);
            }
            format!("members:{}", ids.len())
        }
        SendTarget::Segment(segment) => {
            let any: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM segment_members WHERE segment_id = ?1)",
                    [segment],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if !any {
                return Ok(SendOutcome::EmptySegment);
            }
            format!("segment:{segment}")
        }
    };
    tx.execute(
        "INSERT INTO messages (message_id, kind, channel, subject, body, target, request_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        params![
            s.message_id,
            s.kind,
            s.channel,
            s.subject,
            s.body,
            target,
            s.request_hash.as_slice(),
            s.now_ms
        ],
    )
    .map_err(backend)?;
    let mut named: Vec<(&str, &dyn ToSql)> = vec![
        (":msg", &s.message_id),
        (":kind", &s.kind),
        (":channel", &s.channel),
        (":day", &s.day),
        (":now", &s.now_ms),
        (":limit", &s.marketing_per_day),
    ];
    let sql = match &s.target {
        SendTarget::Members(_) => fan_out_sql("temp.send_targets s", "true"),
        SendTarget::Segment(segment) => {
            named.push((":segment", segment));
            fan_out_sql("segment_members s", "s.segment_id = :segment")
        }
    };
    tx.execute(&sql, named.as_slice()).map_err(backend)?;
    let out = summary(&tx, &s.message_id)?;
    tx.commit().map_err(backend)?;
    Ok(SendOutcome::Sent(out))
}

fn pending(conn: &Connection, member_id: &str) -> Result<PendingInbox, StorageError> {
    let mut out = PendingInbox::default();
    let mut stmt = conn
        .prepare_cached(
            "SELECT d.message_id, m.channel, m.kind, m.subject, m.body, d.created_at,
                    d.status, d.reason, d.updated_at, d.version
             FROM deliveries d JOIN messages m USING (message_id)
             WHERE d.member_id = ?1 AND d.projected = 0
             LIMIT ?2",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![member_id, PROJECTION_BATCH], |r| {
            let channel: String = r.get(1)?;
            let delivery = (channel != "inapp").then(|| -> rusqlite::Result<Delivery> {
                Ok(Delivery {
                    status: r.get(6)?,
                    reason: r.get(7)?,
                    at_ms: r.get(8)?,
                })
            });
            Ok((
                Message {
                    id: r.get(0)?,
                    channel,
                    kind: r.get(2)?,
                    subject: r.get(3)?,
                    body: r.get(4)?,
                    sent_at_ms: r.get(5)?,
                    delivery: delivery.transpose()?,
                },
                r.get::<_, i64>(9)?,
            ))
        })
        .map_err(backend)?;
    for row in rows {
        out.messages.push(row.map_err(backend)?);
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT request_id, status, updated_at, version FROM request_threads
             WHERE member_id = ?1 AND projected = 0 LIMIT ?2",
        )
        .map_err(backend)?;
    let threads = stmt
        .query_map(params![member_id, PROJECTION_BATCH], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    for (request_id, status, updated_at_ms, version) in threads {
        let replies = replies(conn, member_id, &request_id)?;
        out.threads.push((
            Thread {
                request_id,
                status,
                updated_at_ms,
                replies,
            },
            version,
        ));
    }
    Ok(out)
}

fn replies(
    conn: &Connection,
    member_id: &str,
    request_id: &str,
) -> Result<Vec<Reply>, StorageError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT reply_id, author, body, at FROM request_replies
             WHERE member_id = ?1 AND request_id = ?2 ORDER BY at, reply_id",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![member_id, request_id], |r| {
            Ok(Reply {
                id: r.get(0)?,
                author: r.get(1)?,
                body: r.get(2)?,
                at_ms: r.get(3)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

/// A request's conversation after its opening text, oldest first.
fn entries(
    conn: &Connection,
    member_id: &str,
    request_id: &str,
) -> Result<Vec<ThreadEntry>, StorageError> {
    let mut out: Vec<ThreadEntry> = replies(conn, member_id, request_id)?
        .into_iter()
        .map(|r| ThreadEntry {
            id: r.id,
            from: "operator".into(),
            author: r.author,
            body: r.body,
            at_ms: r.at_ms,
        })
        .collect();
    let mut stmt = conn
        .prepare_cached(
            "SELECT followup_id, body, at FROM member_request_followups
             WHERE member_id = ?1 AND request_id = ?2",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![member_id, request_id], |r| {
            Ok(ThreadEntry {
                id: r.get(0)?,
                from: "member".into(),
                author: String::new(),
                body: r.get(1)?,
                at_ms: r.get(2)?,
            })
        })
        .map_err(backend)?;
    for row in rows {
        out.push(row.map_err(backend)?);
    }
    out.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// The operators' view of requests. The status rule is `loyalty_core::requests::effective_status`
/// in SQL: no thread is `open`; `answered` with a later follow-up is `open` again.
const REQUESTS_SQL: &str = "
    SELECT * FROM (
        SELECT r.member_id, r.request_id, r.kind, r.subject, r.body, r.at,
               CASE WHEN t.status IS NULL THEN 'open'
                    WHEN t.status = 'answered' AND EXISTS (
                        SELECT 1 FROM member_request_followups f
                        WHERE f.member_id = r.member_id AND f.request_id = r.request_id
                          AND f.at > t.updated_at) THEN 'open'
                    ELSE t.status END AS status,
               max(r.at, coalesce(t.updated_at, 0),
                   coalesce((SELECT max(f.at) FROM member_request_followups f
                             WHERE f.member_id = r.member_id AND f.request_id = r.request_id), 0))
                   AS last_activity
        FROM member_requests r
        LEFT JOIN request_threads t USING (member_id, request_id)
        WHERE (?2 IS NULL OR r.member_id = ?2)
    )
    WHERE (?1 IS NULL OR status = ?1)
    ORDER BY last_activity DESC, member_id, request_id
    LIMIT ?3";

fn list_requests(
    conn: &Connection,
    status: Option<RequestStatus>,
    member_id: Option<String>,
    limit: i64,
) -> Result<Vec<RequestRecord>, StorageError> {
    let status = status.map(RequestStatus::as_str);
    let mut stmt = conn.prepare_cached(REQUESTS_SQL).map_err(backend)?;
    let rows = stmt
        .query_map(params![status, member_id, limit], |r| {
            Ok(RequestRecord {
                id: format!("{}.{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                member_id: r.get(0)?,
                request_id: r.get(1)?,
                kind: r.get(2)?,
                subject: r.get(3)?,
                body: r.get(4)?,
                opened_at_ms: r.get(5)?,
                status: r.get(6)?,
                last_activity_ms: r.get(7)?,
                entries: Vec::new(),
            })
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let mut out = rows;
    for r in &mut out {
        r.entries = entries(conn, &r.member_id, &r.request_id)?;
    }
    Ok(out)
}

fn answer(
    conn: &mut Connection,
    member_id: &str,
    request_id: &str,
    reply: Option<&Reply>,
    status: RequestStatus,
    now_ms: i64,
) -> Result<Answer, StorageError> {
    let tx = conn.transaction().map_err(backend)?;
    let known: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM member_requests WHERE member_id = ?1 AND request_id = ?2)",
            params![member_id, request_id],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if !known {
        return Ok(Answer::UnknownRequest);
    }
    let closed: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM request_threads
                            WHERE member_id = ?1 AND request_id = ?2 AND status = 'closed')",
            params![member_id, request_id],
            |r| r.get(0),
        )
        .map_err(backend)?;
    // Closed is final: a reply would reopen what the member was told is finished. Closing again
    // (a retry) changes nothing.
    if closed {
        return match reply {
            Some(_) => Ok(Answer::Closed),
            None => Ok(Answer::Answered),
        };
    }
    if let Some(reply) = reply {
        let prior: Option<(String, String)> = tx
            .query_row(
                "SELECT author, body FROM request_replies
                 WHERE member_id = ?1 AND request_id = ?2 AND reply_id = ?3",
                params![member_id, request_id, reply.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend)?;
        match prior {
            // A retry of the same reply: nothing more to record.
            Some((author, body)) if author == reply.author && body == reply.body => {
                return Ok(Answer::Answered);
            }
            Some(_) => return Ok(Answer::ReplyIdReused),
            None => {
                tx.execute(
                    "INSERT INTO request_replies (member_id, request_id, reply_id, author, body, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![member_id, request_id, reply.id, reply.author, reply.body, reply.at_ms],
                )
                .map_err(backend)?;
            }
        }
    }
    tx.execute(
        "INSERT INTO request_threads (member_id, request_id, status, updated_at, projected)
         VALUES (?1, ?2, ?3, ?4, 0)
         ON CONFLICT (member_id, request_id) DO UPDATE
         SET status = excluded.status, updated_at = excluded.updated_at, projected = 0,
             version = version + 1",
        params![member_id, request_id, status.as_str(), now_ms],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(Answer::Answered)
}

fn claim(
    conn: &mut Connection,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<OutboundJob>, StorageError> {
    let tx = conn.transaction().map_err(backend)?;
    let claimed: Vec<(String, String)> = {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE deliveries SET not_before = ?1 + ?2
                 WHERE (message_id, member_id) IN (
                     SELECT message_id, member_id FROM deliveries
                     WHERE status = 'queued' AND not_before <= ?1
                     ORDER BY not_before LIMIT ?3)
                 RETURNING message_id, member_id",
            )
            .map_err(backend)?;
        stmt.query_map(params![now_ms, lease_ms, limit], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?
    };
    let mut jobs = Vec::with_capacity(claimed.len());
    {
        use crate::outbound::OutboundChannel::{Email, Push, Sms};
        let mut stmt = tx
            .prepare_cached(
                "SELECT d.channel, d.kind, m.subject, m.body, d.attempts,
                        coalesce((SELECT c.granted FROM member_consents c
                                  WHERE c.member_id = d.member_id AND c.channel = d.channel), 0),
                        (SELECT p.value FROM member_preferences p
                         WHERE p.member_id = d.member_id
                           AND p.key = CASE d.channel WHEN 'push' THEN ?3
                                                      WHEN 'sms' THEN ?4
                                                      WHEN 'email' THEN ?5 END)
                 FROM deliveries d JOIN messages m USING (message_id)
                 WHERE d.message_id = ?1 AND d.member_id = ?2",
            )
            .map_err(backend)?;
        for (message_id, member_id) in claimed {
            let job = stmt
                .query_row(
                    params![
                        message_id,
                        member_id,
                        Push.address_preference(),
                        Sms.address_preference(),
                        Email.address_preference()
                    ],
                    |r| {
                        Ok(OutboundJob {
                            channel: r.get(0)?,
                            kind: r.get(1)?,
                            subject: r.get(2)?,
                            body: r.get(3)?,
                            attempts: r.get(4)?,
                            consent: r.get(5)?,
                            address: r
                                .get::<_, Option<String>>(6)?
                                .filter(|a| !a.trim().is_empty()),
                            message_id: message_id.clone(),
                            member_id: member_id.clone(),
                        })
                    },
                )
                .map_err(backend)?;
            jobs.push(job);
        }
    }
    tx.commit().map_err(backend)?;
    Ok(jobs)
}

#[async_trait]
impl MessageStore for SqliteStorage {
    async fn send_message(&self, send: NewSend) -> Result<SendOutcome, StorageError> {
        self.run(move |conn| record_send(conn, &send)).await
    }

    async fn pending_inbox(&self, member_id: &str) -> Result<PendingInbox, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| pending(conn, &member_id)).await
    }

    async fn has_pending_inbox(&self, member_id: &str) -> Result<bool, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| {
            cached_row(conn, &format!("SELECT {INBOX_PENDING}"), [member_id], |r| {
                r.get(0)
            })
            .map_err(backend)
        })
        .await
    }

    async fn mark_inbox_projected(
        &self,
        member_id: &str,
        messages: Vec<(String, i64)>,
        threads: Vec<(String, i64)>,
    ) -> Result<(), StorageError> {
        let member_id = member_id.to_string();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            for (message_id, version) in &messages {
                tx.execute(
                    "UPDATE deliveries SET projected = 1
                     WHERE message_id = ?1 AND member_id = ?2 AND version = ?3",
                    params![message_id, member_id, version],
                )
                .map_err(backend)?;
            }
            for (request_id, version) in &threads {
                tx.execute(
                    "UPDATE request_threads SET projected = 1
                     WHERE member_id = ?1 AND request_id = ?2 AND version = ?3",
                    params![member_id, request_id, version],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn claim_outbound(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboundJob>, StorageError> {
        self.run(move |conn| claim(conn, now_ms, lease_ms, limit))
            .await
    }

    async fn finish_outbound(
        &self,
        message_id: &str,
        member_id: &str,
        outcome: OutboundOutcome,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let (message_id, member_id) = (message_id.to_string(), member_id.to_string());
        self.run(move |conn| {
            match outcome {
                // The inbox shows the final state, so the row becomes pending for it again.
                OutboundOutcome::Final {
                    status,
                    reason,
                    detail,
                } => conn.execute(
                    "UPDATE deliveries
                     SET status = ?1, reason = ?2, detail = ?6, attempts = attempts + 1,
                         updated_at = ?3, projected = NOT in_inbox, version = version + 1
                     WHERE message_id = ?4 AND member_id = ?5 AND status = 'queued'",
                    params![
                        status.as_str(),
                        reason,
                        now_ms,
                        message_id,
                        member_id,
                        clip_detail(detail.as_deref())
                    ],
                ),
                OutboundOutcome::Retry {
                    reason,
                    detail,
                    at_ms,
                } => conn.execute(
                    "UPDATE deliveries
                     SET reason = ?1, detail = ?6, attempts = attempts + 1, updated_at = ?2,
                         not_before = ?3
                     WHERE message_id = ?4 AND member_id = ?5 AND status = 'queued'",
                    params![
                        reason,
                        now_ms,
                        at_ms,
                        message_id,
                        member_id,
                        clip_detail(detail.as_deref())
                    ],
                ),
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn record_receipt(
        &self,
        message_id: &str,
        member_id: &str,
        receipt: Receipt,
        now_ms: i64,
    ) -> Result<ReceiptOutcome, StorageError> {
        let (message_id, member_id) = (message_id.to_string(), member_id.to_string());
        self.run(move |conn| {
            let status = DeliveryStatus::from(receipt.status).as_str();
            let detail = clip_detail(receipt.detail.as_deref());
            let args = params![
                status,
                receipt.reason,
                detail,
                now_ms,
                message_id,
                member_id
            ];
            let changed =
                cached_execute(conn, &SQLITE.params(RECEIPT_UPDATE), args).map_err(backend)?;
            if changed == 1 {
                return Ok(ReceiptOutcome::Recorded);
            }
            let current: Option<String> = conn
                .query_row(
                    &SQLITE.params(RECEIPT_STATUS),
                    [&message_id, &member_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(receipt_outcome(current.as_deref(), receipt.status))
        })
        .await
    }

    async fn deliveries(&self, f: DeliveryFilter) -> Result<Vec<DeliveryRecord>, StorageError> {
        let status = f.status.map(DeliveryStatus::as_str);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT message_id, member_id, channel, kind, status, reason, in_inbox,
                            attempts, created_at, updated_at, detail
                     FROM deliveries
                     WHERE (?1 IS NULL OR message_id = ?1) AND (?2 IS NULL OR member_id = ?2)
                       AND (?3 IS NULL OR status = ?3)
                     ORDER BY created_at DESC, message_id, member_id
                     LIMIT ?4",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![f.message_id, f.member_id, status, f.limit], |r| {
                    Ok(DeliveryRecord {
                        message_id: r.get(0)?,
                        member_id: r.get(1)?,
                        channel: r.get(2)?,
                        kind: r.get(3)?,
                        status: r.get(4)?,
                        reason: r.get(5)?,
                        in_inbox: r.get(6)?,
                        attempts: r.get(7)?,
                        created_at_ms: r.get(8)?,
                        updated_at_ms: r.get(9)?,
                        detail: r.get(10)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn requests(
        &self,
        status: Option<RequestStatus>,
        member_id: Option<String>,
        limit: i64,
    ) -> Result<Vec<RequestRecord>, StorageError> {
        self.read(move |conn| list_requests(conn, status, member_id, limit))
            .await
    }

    async fn answer_request(
        &self,
        member_id: &str,
        request_id: &str,
        reply: Option<Reply>,
        status: RequestStatus,
        now_ms: i64,
    ) -> Result<Answer, StorageError> {
        let (member_id, request_id) = (member_id.to_string(), request_id.to_string());
        self.run(move |conn| {
            answer(
                conn,
                &member_id,
                &request_id,
                reply.as_ref(),
                status,
                now_ms,
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemberCreation, MemberStore, NewMember};

    async fn storage_with(members: &[&str]) -> (tempfile::TempDir, SqliteStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("s.db")).unwrap();
        for (i, m) in members.iter().enumerate() {
            assert!(matches!(
                storage
                    .create_member(NewMember {
                        member_id: m.to_string(),
                        card_number: format!("{i:016}"),
                        external_ref: None,
                        created_at_ms: 0,
                        documents: Vec::new(),
                        code_hash: [i as u8; 32],
                        code_expires_at_ms: 1,
                    })
                    .await
                    .unwrap(),
                MemberCreation::Created
            ));
        }
        (dir, storage)
    }

    fn new_send(id: &str, kind: &str, channel: &str, members: &[&str]) -> NewSend {
        NewSend {
            message_id: id.into(),
            kind: MessageKind::from_name(kind).expect("a message kind"),
            channel: channel.into(),
            subject: "s".into(),
            body: "b".into(),
            request_hash: loyalty_core::ids::sha256(id.as_bytes()),
            target: SendTarget::Members(members.iter().map(|m| m.to_string()).collect()),
            now_ms: 10,
            day: 0,
            marketing_per_day: 1,
        }
    }

    #[tokio::test]
    async fn a_claimed_delivery_is_not_claimed_again_until_its_lease_runs_out() {
        let (_dir, s) = storage_with(&["a"]).await;
        assert!(matches!(
            s.send_message(new_send("m1", "service", "sms", &["a"]))
                .await
                .unwrap(),
            SendOutcome::Sent(_)
        ));
        assert_eq!(s.claim_outbound(100, 50, 10).await.unwrap().len(), 1);
        assert!(s.claim_outbound(120, 50, 10).await.unwrap().is_empty());
        let again = s.claim_outbound(150, 50, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].consent, again[0].address.clone()), (false, None));
    }
}
