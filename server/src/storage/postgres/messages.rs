//! [`MessageStore`] on PostgreSQL: messages, deliveries, the outbound queue and the programme's
//! side of members' requests (tables of `server/migrations/postgres/008_communications.sql`), with
//! the same outcomes as SQLite's `messages.rs`.
//!
//! A send decides every recipient's fate in one `INSERT … SELECT` (daily marketing count and
//! consent as correlated subqueries on indexed tables), as on SQLite. What SQLite's single writer
//! gives for free is explicit here: sends take one transaction-scoped advisory lock, so two sends
//! at once cannot both count a member under the daily limit, nor record two texts under one id;
//! answers lock their request's row. The outbound queue is claimed with `FOR UPDATE SKIP LOCKED`
//! and a lease, so workers on every instance share it and never take a delivery twice.

use super::Cached;
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use loyalty_core::api::{DeliveryRecord, RequestRecord, SendSummary};
use loyalty_core::inbox::{Delivery, Message, Reply, Thread};
use loyalty_core::requests::ThreadEntry;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgStorage, backend};
use crate::storage::dialect::POSTGRES;
use crate::storage::{
    Answer, DeliveryFilter, DeliveryStatus, MessageKind, MessageStore, NewSend, OutboundJob,
    OutboundOutcome, PendingInbox, RECEIPT_STATUS, RECEIPT_UPDATE, Receipt, ReceiptOutcome,
    RequestStatus, SendOutcome, SendTarget, StorageError, clip_detail, receipt_outcome,
};

/// Entries projected into one member's inbox per call; the rest follow at the next one.
const PROJECTION_BATCH: i64 = 200;

/// The advisory lock every send holds until it commits (an arbitrary constant, "LOYALTYS").
const SEND_LOCK: i64 = 0x4c4f_5941_4c54_5953;

/// Whether the member (`$1`) has inbox entries not yet projected: the sync check's condition too.
pub(super) const INBOX_PENDING: &str =
    "EXISTS (SELECT 1 FROM deliveries WHERE member_id = $1 AND projected = 0)
     OR EXISTS (SELECT 1 FROM request_threads WHERE member_id = $1 AND projected = 0)";

/// Each recipient's delivery row, decided in SQL. `source` yields `member_id`s as `s`, `filter`
/// narrows it; the members join drops segment rows of members that no longer exist. Parameters:
/// $1 message, $2 kind, $3 channel, $4 day, $5 now, $6 daily marketing limit, $7 the target
/// (which `source` or `filter` reads).
fn fan_out_sql(source: &str, filter: &str) -> String {
    format!(
        "INSERT INTO deliveries (message_id, member_id, kind, channel, day, status, reason,
                                 in_inbox, projected, created_at, updated_at)
         SELECT $1, t.member_id, $2, $3, $4,
                CASE WHEN t.limited OR t.no_consent THEN 'refused'
                     WHEN $3 = 'inapp' THEN 'sent'
                     ELSE 'queued' END,
                CASE WHEN t.limited THEN 'rate_limited'
                     WHEN t.no_consent THEN 'no_consent' END,
                CASE WHEN t.limited THEN 0 ELSE 1 END,
                CASE WHEN t.limited THEN 1 ELSE 0 END, $5, $5
         FROM (SELECT s.member_id,
                      ($2 = 'marketing' AND
                       (SELECT count(*) FROM deliveries d
                        WHERE d.member_id = s.member_id AND d.day = $4
                          AND d.kind = 'marketing' AND d.in_inbox = 1) >= $6) AS limited,
                      ($2 = 'marketing' AND $3 <> 'inapp' AND
                       coalesce((SELECT c.granted FROM member_consents c
                                 WHERE c.member_id = s.member_id AND c.channel = $3), 0) = 0)
                          AS no_consent
               FROM {source} JOIN members m ON m.member_id = s.member_id
               WHERE {filter}) t
         ON CONFLICT DO NOTHING"
    )
}

async fn summary(conn: &impl GenericClient, message_id: &str) -> Result<SendSummary, StorageError> {
    let r = conn
        .fetch_one(
            "SELECT m.kind, m.channel, count(d.member_id),
                    count(*) FILTER (WHERE d.in_inbox = 1),
                    count(*) FILTER (WHERE d.status = 'queued'),
                    count(*) FILTER (WHERE d.status = 'sent'),
                    count(*) FILTER (WHERE d.status = 'failed'),
                    count(*) FILTER (WHERE d.reason = 'no_consent'),
                    count(*) FILTER (WHERE d.reason = 'rate_limited'),
                    count(*) FILTER (WHERE d.status = 'handed_over'),
                    count(*) FILTER (WHERE d.status = 'logged'),
                    count(*) FILTER (WHERE d.status = 'delivered')
             FROM messages m LEFT JOIN deliveries d USING (message_id)
             WHERE m.message_id = $1 GROUP BY m.message_id",
            &[&message_id],
        )
        .await
        .map_err(backend)?;
    let get = |i: usize| r.try_get::<_, i64>(i).map_err(backend);
    Ok(SendSummary {
        message_id: message_id.to_string(),
        kind: r.try_get(0).map_err(backend)?,
        channel: r.try_get(1).map_err(backend)?,
        recipients: get(2)?,
        in_inbox: get(3)?,
        queued: get(4)?,
        sent: get(5)?,
        failed: get(6)?,
        refused_no_consent: get(7)?,
        refused_rate_limited: get(8)?,
        handed_over: get(9)?,
        logged: get(10)?,
        delivered: get(11)?,
    })
}

/// Whether the send's target can be sent to: `None` when it can, else the refusal.
async fn refusal(
    tx: &impl GenericClient,
    target: &SendTarget,
) -> Result<Option<SendOutcome>, StorageError> {
    match target {
        SendTarget::Members(ids) => {
            let unknown: bool = tx
                .fetch_one(
                    "SELECT EXISTS (SELECT 1 FROM unnest($1::text[]) AS t(id)
                     WHERE NOT EXISTS (SELECT 1 FROM members WHERE member_id = t.id))",
                    &[ids],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(backend)?;
            Ok(unknown.then_some(SendOutcome::UnknownMembers))
        }
        SendTarget::Segment(segment) => {
            let any: bool = tx
                .fetch_one(
                    "SELECT EXISTS (SELECT 1 FROM segment_members WHERE segment_id = $1)",
                    &[segment],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(backend)?;
            Ok((!any).then_some(SendOutcome::EmptySegment))
        }
    }
}

/// Records a send in one transaction; a refused one stores nothing (the transaction is dropped,
/// which rolls it back).
async fn record_send(
    client: &mut deadpool_postgres::Object,
    s: &NewSend,
) -> Result<SendOutcome, StorageError> {
    let tx = client.transaction().await.map_err(backend)?;
    tx.exec("SELECT pg_advisory_xact_lock($1)", &[&SEND_LOCK])
        .await
        .map_err(backend)?;
    let prior = tx
        .fetch_opt(
            "SELECT request_hash FROM messages WHERE message_id = $1",
            &[&s.message_id],
        )
        .await
        .map_err(backend)?;
    // A message id names one text. The same text again only reaches recipients it has not
    // reached yet (a retry reaches none); another text under the id is refused.
    if let Some(row) = prior {
        let hash: &[u8] = row.try_get(0).map_err(backend)?;
        if hash != s.request_hash.as_slice() {
            return Ok(SendOutcome::IdReused);
        }
    }
    if let Some(refused) = refusal(&tx, &s.target).await? {
        return Ok(refused);
    }
    let target = match &s.target {
        SendTarget::Members(ids) => format!("members:{}", ids.len()),
        SendTarget::Segment(segment) => format!("segment:{segment}"),
    };
    tx.exec(
        "INSERT INTO messages (message_id, kind, channel, subject, body, target, request_hash,
                               created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        &[
            &s.message_id,
            &s.kind.as_str(),
            &s.channel,
            &s.subject,
            &s.body,
            &target,
            &s.request_hash.as_slice(),
            &s.now_ms,
        ],
    )
    .await
    .map_err(backend)?;
    let kind = s.kind.as_str();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &s.message_id,
        &kind,
        &s.channel,
        &s.day,
        &s.now_ms,
        &s.marketing_per_day,
    ];
    let sql = match &s.target {
        SendTarget::Members(ids) => {
            params.push(ids);
            fan_out_sql(
                "(SELECT DISTINCT id AS member_id FROM unnest($7::text[]) AS u(id)) s",
                "true",
            )
        }
        SendTarget::Segment(segment) => {
            params.push(segment);
            fan_out_sql("segment_members s", "s.segment_id = $7")
        }
    };
    tx.exec(&sql, &params).await.map_err(backend)?;
    let out = summary(&tx, &s.message_id).await?;
    tx.commit().await.map_err(backend)?;
    Ok(SendOutcome::Sent(out))
}

fn message_from(r: &Row) -> Result<(Message, i64), StorageError> {
    let get_s = |i: usize| r.try_get::<_, String>(i).map_err(backend);
    let channel = get_s(1)?;
    let delivery = if channel == "inapp" {
        None
    } else {
        Some(Delivery {
            status: get_s(6)?,
            reason: r.try_get(7).map_err(backend)?,
            at_ms: r.try_get(8).map_err(backend)?,
        })
    };
    let message = Message {
        id: get_s(0)?,
        channel,
        kind: get_s(2)?,
        subject: get_s(3)?,
        body: get_s(4)?,
        sent_at_ms: r.try_get(5).map_err(backend)?,
        delivery,
    };
    Ok((message, r.try_get(9).map_err(backend)?))
}

async fn pending(conn: &impl GenericClient, member_id: &str) -> Result<PendingInbox, StorageError> {
    let rows = conn
        .fetch_all(
            "SELECT d.message_id, m.channel, m.kind, m.subject, m.body, d.created_at,
                    d.status, d.reason, d.updated_at, d.version
             FROM deliveries d JOIN messages m USING (message_id)
             WHERE d.member_id = $1 AND d.projected = 0
             LIMIT $2",
            &[&member_id, &PROJECTION_BATCH],
        )
        .await
        .map_err(backend)?;
    let messages = rows.iter().map(message_from).collect::<Result<_, _>>()?;
    let rows = conn
        .fetch_all(
            "SELECT request_id, status, updated_at, version FROM request_threads
             WHERE member_id = $1 AND projected = 0 LIMIT $2",
            &[&member_id, &PROJECTION_BATCH],
        )
        .await
        .map_err(backend)?;
    let mut threads = Vec::with_capacity(rows.len());
    for r in rows {
        let request_id: String = r.try_get(0).map_err(backend)?;
        let replies = replies(conn, member_id, &request_id).await?;
        let thread = Thread {
            status: r.try_get(1).map_err(backend)?,
            updated_at_ms: r.try_get(2).map_err(backend)?,
            request_id,
            replies,
        };
        threads.push((thread, r.try_get(3).map_err(backend)?));
    }
    Ok(PendingInbox { messages, threads })
}

async fn replies(
    conn: &impl GenericClient,
    member_id: &str,
    request_id: &str,
) -> Result<Vec<Reply>, StorageError> {
    let rows = conn
        .fetch_all(
            "SELECT reply_id, author, body, at FROM request_replies
             WHERE member_id = $1 AND request_id = $2 ORDER BY at, reply_id COLLATE \"C\"",
            &[&member_id, &request_id],
        )
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|r| {
            Ok(Reply {
                id: r.try_get(0).map_err(backend)?,
                author: r.try_get(1).map_err(backend)?,
                body: r.try_get(2).map_err(backend)?,
                at_ms: r.try_get(3).map_err(backend)?,
            })
        })
        .collect()
}

/// A request's conversation after its opening text, oldest first.
async fn entries(
    conn: &impl GenericClient,
    member_id: &str,
    request_id: &str,
) -> Result<Vec<ThreadEntry>, StorageError> {
    let mut out: Vec<ThreadEntry> = replies(conn, member_id, request_id)
        .await?
        .into_iter()
        .map(|r| ThreadEntry {
            id: r.id,
            from: "operator".into(),
            author: r.author,
            body: r.body,
            at_ms: r.at_ms,
        })
        .collect();
    let rows = conn
        .fetch_all(
            "SELECT followup_id, body, at FROM member_request_followups
             WHERE member_id = $1 AND request_id = $2",
            &[&member_id, &request_id],
        )
        .await
        .map_err(backend)?;
    for r in rows {
        out.push(ThreadEntry {
            id: r.try_get(0).map_err(backend)?,
            from: "member".into(),
            author: String::new(),
            body: r.try_get(1).map_err(backend)?,
            at_ms: r.try_get(2).map_err(backend)?,
        });
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
               greatest(r.at, coalesce(t.updated_at, 0),
                        coalesce((SELECT max(f.at) FROM member_request_followups f
                                  WHERE f.member_id = r.member_id
                                    AND f.request_id = r.request_id), 0))
                   AS last_activity
        FROM member_requests r
        LEFT JOIN request_threads t USING (member_id, request_id)
        WHERE ($2::text IS NULL OR r.member_id = $2)
    ) q
    WHERE ($1::text IS NULL OR status = $1)
    ORDER BY last_activity DESC, member_id COLLATE \"C\", request_id COLLATE \"C\"
    LIMIT $3";

async fn list_requests(
    conn: &impl GenericClient,
    status: Option<RequestStatus>,
    member_id: Option<String>,
    limit: i64,
) -> Result<Vec<RequestRecord>, StorageError> {
    let status = status.map(RequestStatus::as_str);
    let rows = conn
        .fetch_all(REQUESTS_SQL, &[&status, &member_id, &limit])
        .await
        .map_err(backend)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let member_id: String = r.try_get(0).map_err(backend)?;
        let request_id: String = r.try_get(1).map_err(backend)?;
        let entries = entries(conn, &member_id, &request_id).await?;
        out.push(RequestRecord {
            id: format!("{member_id}.{request_id}"),
            kind: r.try_get(2).map_err(backend)?,
            subject: r.try_get(3).map_err(backend)?,
            body: r.try_get(4).map_err(backend)?,
            opened_at_ms: r.try_get(5).map_err(backend)?,
            status: r.try_get(6).map_err(backend)?,
            last_activity_ms: r.try_get(7).map_err(backend)?,
            member_id,
            request_id,
            entries,
        });
    }
    Ok(out)
}

/// Records a reply, unless this exact reply is recorded already; `Some` is the answer to give
/// without going further.
async fn record_reply(
    tx: &impl GenericClient,
    member_id: &str,
    request_id: &str,
    reply: &Reply,
) -> Result<Option<Answer>, StorageError> {
    let prior = tx
        .fetch_opt(
            "SELECT author, body FROM request_replies
             WHERE member_id = $1 AND request_id = $2 AND reply_id = $3",
            &[&member_id, &request_id, &reply.id],
        )
        .await
        .map_err(backend)?;
    if let Some(row) = prior {
        let (author, body): (&str, &str) = (
            row.try_get(0).map_err(backend)?,
            row.try_get(1).map_err(backend)?,
        );
        // A retry of the same reply has nothing more to record.
        return Ok(Some(if author == reply.author && body == reply.body {
            Answer::Answered
        } else {
            Answer::ReplyIdReused
        }));
    }
    tx.exec(
        "INSERT INTO request_replies (member_id, request_id, reply_id, author, body, at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &member_id,
            &request_id,
            &reply.id,
            &reply.author,
            &reply.body,
            &reply.at_ms,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(None)
}

async fn answer(
    client: &mut deadpool_postgres::Object,
    member_id: &str,
    request_id: &str,
    reply: Option<&Reply>,
    status: RequestStatus,
    now_ms: i64,
) -> Result<Answer, StorageError> {
    let tx = client.transaction().await.map_err(backend)?;
    // The request's row is locked until the commit: two answers to it at once go one by one,
    // the second seeing the first's reply and status.
    let known = tx
        .fetch_opt(
            "SELECT 1 FROM member_requests WHERE member_id = $1 AND request_id = $2 FOR UPDATE",
            &[&member_id, &request_id],
        )
        .await
        .map_err(backend)?;
    if known.is_none() {
        return Ok(Answer::UnknownRequest);
    }
    let closed: bool = tx
        .fetch_one(
            "SELECT EXISTS (SELECT 1 FROM request_threads
                            WHERE member_id = $1 AND request_id = $2 AND status = 'closed')",
            &[&member_id, &request_id],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(backend)?;
    // Closed is final: a reply would reopen what the member was told is finished. Closing again
    // (a retry) changes nothing.
    if closed {
        return Ok(match reply {
            Some(_) => Answer::Closed,
            None => Answer::Answered,
        });
    }
    if let Some(reply) = reply
        && let Some(answer) = record_reply(&tx, member_id, request_id, reply).await?
    {
        return Ok(answer);
    }
    tx.exec(
        "INSERT INTO request_threads (member_id, request_id, status, updated_at, projected)
         VALUES ($1, $2, $3, $4, 0)
         ON CONFLICT (member_id, request_id) DO UPDATE
         SET status = excluded.status, updated_at = excluded.updated_at, projected = 0,
             version = request_threads.version + 1",
        &[&member_id, &request_id, &status.as_str(), &now_ms],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok(Answer::Answered)
}

/// Leases up to $3 due deliveries for $2 ms and reads what sending each needs, in one statement:
/// rows another worker holds are skipped, not waited for.
const CLAIM_SQL: &str = "
    WITH due AS (
        SELECT message_id, member_id FROM deliveries
        WHERE status = 'queued' AND not_before <= $1
        ORDER BY not_before LIMIT $3
        FOR UPDATE SKIP LOCKED
    ), leased AS (
        UPDATE deliveries d SET not_before = $1 + $2
        FROM due WHERE d.message_id = due.message_id AND d.member_id = due.member_id
        RETURNING d.message_id, d.member_id, d.channel, d.kind, d.attempts
    )
    SELECT l.message_id, l.member_id, l.channel, l.kind, m.subject, m.body, l.attempts,
           coalesce((SELECT c.granted FROM member_consents c
                     WHERE c.member_id = l.member_id AND c.channel = l.channel), 0) <> 0,
           (SELECT p.value FROM member_preferences p
            WHERE p.member_id = l.member_id
              AND p.key = CASE l.channel WHEN 'push' THEN $4
                                         WHEN 'sms' THEN $5
                                         WHEN 'email' THEN $6 END)
    FROM leased l JOIN messages m USING (message_id)";

fn job_from(r: &Row) -> Result<OutboundJob, StorageError> {
    let kind: &str = r.try_get(3).map_err(backend)?;
    let kind = MessageKind::from_name(kind)
        .ok_or_else(|| backend(format!("unknown message kind `{kind}`")))?;
    let address: Option<String> = r.try_get(8).map_err(backend)?;
    Ok(OutboundJob {
        message_id: r.try_get(0).map_err(backend)?,
        member_id: r.try_get(1).map_err(backend)?,
        channel: r.try_get(2).map_err(backend)?,
        kind,
        subject: r.try_get(4).map_err(backend)?,
        body: r.try_get(5).map_err(backend)?,
        attempts: r.try_get(6).map_err(backend)?,
        consent: r.try_get(7).map_err(backend)?,
        address: address.filter(|a| !a.trim().is_empty()),
    })
}

fn delivery_from(r: &Row) -> Result<DeliveryRecord, StorageError> {
    Ok(DeliveryRecord {
        message_id: r.try_get(0).map_err(backend)?,
        member_id: r.try_get(1).map_err(backend)?,
        channel: r.try_get(2).map_err(backend)?,
        kind: r.try_get(3).map_err(backend)?,
        status: r.try_get(4).map_err(backend)?,
        reason: r.try_get(5).map_err(backend)?,
        in_inbox: r.try_get(6).map_err(backend)?,
        attempts: r.try_get(7).map_err(backend)?,
        created_at_ms: r.try_get(8).map_err(backend)?,
        updated_at_ms: r.try_get(9).map_err(backend)?,
        detail: r.try_get(10).map_err(backend)?,
    })
}

#[async_trait]
impl MessageStore for PgStorage {
    async fn send_message(&self, send: NewSend) -> Result<SendOutcome, StorageError> {
        record_send(&mut self.client().await?, &send).await
    }

    async fn pending_inbox(&self, member_id: &str) -> Result<PendingInbox, StorageError> {
        pending(&self.client().await?, member_id).await
    }

    async fn has_pending_inbox(&self, member_id: &str) -> Result<bool, StorageError> {
        self.client()
            .await?
            .fetch_one(&format!("SELECT {INBOX_PENDING}"), &[&member_id])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(backend)
    }

    async fn mark_inbox_projected(
        &self,
        member_id: &str,
        messages: Vec<(String, i64)>,
        threads: Vec<(String, i64)>,
    ) -> Result<(), StorageError> {
        let (message_ids, message_versions): (Vec<String>, Vec<i64>) = messages.into_iter().unzip();
        let (request_ids, thread_versions): (Vec<String>, Vec<i64>) = threads.into_iter().unzip();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.exec(
            "UPDATE deliveries d SET projected = 1
             FROM unnest($2::text[], $3::int8[]) AS t(id, version)
             WHERE d.message_id = t.id AND d.member_id = $1 AND d.version = t.version",
            &[&member_id, &message_ids, &message_versions],
        )
        .await
        .map_err(backend)?;
        tx.exec(
            "UPDATE request_threads r SET projected = 1
             FROM unnest($2::text[], $3::int8[]) AS t(id, version)
             WHERE r.member_id = $1 AND r.request_id = t.id AND r.version = t.version",
            &[&member_id, &request_ids, &thread_versions],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn claim_outbound(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboundJob>, StorageError> {
        use crate::outbound::OutboundChannel::{Email, Push, Sms};
        let rows = self
            .client()
            .await?
            .fetch_all(
                CLAIM_SQL,
                &[
                    &now_ms,
                    &lease_ms,
                    &limit,
                    &Push.address_preference(),
                    &Sms.address_preference(),
                    &Email.address_preference(),
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(job_from).collect()
    }

    async fn finish_outbound(
        &self,
        message_id: &str,
        member_id: &str,
        outcome: OutboundOutcome,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        match outcome {
            // The inbox shows the final state, so the row becomes pending for it again.
            OutboundOutcome::Final {
                status,
                reason,
                detail,
            } => {
                let detail = clip_detail(detail.as_deref());
                client
                    .exec(
                        "UPDATE deliveries
                         SET status = $1, reason = $2, detail = $6, attempts = attempts + 1,
                             updated_at = $3,
                             projected = CASE WHEN in_inbox = 1 THEN 0 ELSE 1 END,
                             version = version + 1
                         WHERE message_id = $4 AND member_id = $5 AND status = 'queued'",
                        &[
                            &status.as_str(),
                            &reason,
                            &now_ms,
                            &message_id,
                            &member_id,
                            &detail,
                        ],
                    )
                    .await
            }
            OutboundOutcome::Retry {
                reason,
                detail,
                at_ms,
            } => {
                let detail = clip_detail(detail.as_deref());
                client
                    .exec(
                        "UPDATE deliveries
                         SET reason = $1, detail = $6, attempts = attempts + 1, updated_at = $2,
                             not_before = $3
                         WHERE message_id = $4 AND member_id = $5 AND status = 'queued'",
                        &[&reason, &now_ms, &at_ms, &message_id, &member_id, &detail],
                    )
                    .await
            }
        }
        .map_err(backend)?;
        Ok(())
    }

    async fn record_receipt(
        &self,
        message_id: &str,
        member_id: &str,
        receipt: Receipt,
        now_ms: i64,
    ) -> Result<ReceiptOutcome, StorageError> {
        let client = self.client().await?;
        let status = DeliveryStatus::from(receipt.status).as_str();
        let detail = clip_detail(receipt.detail.as_deref());
        let changed = client
            .exec(
                &POSTGRES.params(RECEIPT_UPDATE),
                &[
                    &status,
                    &receipt.reason,
                    &detail,
                    &now_ms,
                    &message_id,
                    &member_id,
                ],
            )
            .await
            .map_err(backend)?;
        if changed == 1 {
            return Ok(ReceiptOutcome::Recorded);
        }
        let current = client
            .fetch_opt(&POSTGRES.params(RECEIPT_STATUS), &[&message_id, &member_id])
            .await
            .map_err(backend)?;
        let current: Option<String> = match current {
            Some(row) => Some(row.try_get(0).map_err(backend)?),
            None => None,
        };
        Ok(receipt_outcome(current.as_deref(), receipt.status))
    }

    async fn deliveries(&self, f: DeliveryFilter) -> Result<Vec<DeliveryRecord>, StorageError> {
        let status = f.status.map(DeliveryStatus::as_str);
        let rows = self
            .client()
            .await?
            .fetch_all(
                "SELECT message_id, member_id, channel, kind, status, reason, in_inbox = 1,
                        attempts, created_at, updated_at, detail
                 FROM deliveries
                 WHERE ($1::text IS NULL OR message_id = $1)
                   AND ($2::text IS NULL OR member_id = $2)
                   AND ($3::text IS NULL OR status = $3)
                 ORDER BY created_at DESC, message_id COLLATE \"C\", member_id COLLATE \"C\"
                 LIMIT $4",
                &[&f.message_id, &f.member_id, &status, &f.limit],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(delivery_from).collect()
    }

    async fn requests(
        &self,
        status: Option<RequestStatus>,
        member_id: Option<String>,
        limit: i64,
    ) -> Result<Vec<RequestRecord>, StorageError> {
        list_requests(&self.client().await?, status, member_id, limit).await
    }

    async fn answer_request(
        &self,
        member_id: &str,
        request_id: &str,
        reply: Option<Reply>,
        status: RequestStatus,
        now_ms: i64,
    ) -> Result<Answer, StorageError> {
        let mut client = self.client().await?;
        answer(
            &mut client,
            member_id,
            request_id,
            reply.as_ref(),
            status,
            now_ms,
        )
        .await
    }
}
