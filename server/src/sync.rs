//! The sync endpoint: authenticates the device, answers each document entry with the shared
//! algorithm in `loyalty_core::sync`, and stores what changed — documents and per-(device, document)
//! sync states — in one transaction before it answers, so an acknowledged sync is durable.
//!
//! The Automerge work of an answer runs on the blocking pool under a place from
//! [`crate::jobs::SyncJobs`], so a burst of heavy requests queues instead of running at once; what
//! one request may ask for is bounded before Automerge sees it (`loyalty_core::budget`). A
//! document whose history is due starts a new epoch there too (`loyalty_core::epoch`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loyalty_core::DocKind;
use loyalty_core::epoch::EpochPolicy;
use loyalty_core::protocol::{self, Reply, ResponseEntry, SyncRequest, SyncResponse};
use loyalty_core::sync::{PeerState, Stored, server_answer};

use crate::app::{App, Wait};
use crate::documents::load;
use crate::error::ApiError;
use crate::extract::MemberDevice;
use crate::storage::{DocWrite, StorageError, StoredDoc};

/// Attempts at storing a sync before answering "busy" (another instance kept writing first).
const ATTEMPTS: usize = 5;

pub async fn sync(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    MemberDevice(device): MemberDevice,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let request = SyncRequest::decode(&body).map_err(|e| match e {
        protocol::ProtocolError::UnknownDocument(_) => {
            ApiError::bad_request("unknown_document", e.to_string())
        }
        _ => ApiError::bad_request("malformed_body", format!("sync body: {e}")),
    })?;
    let kinds: Vec<DocKind> = request.entries.iter().map(|e| e.doc).collect();
    // Postings since the card was last read go into it first, so this sync carries them. Before
    // the lock: the projection takes it itself.
    if kinds.contains(&DocKind::Card)
        && let Err(e) = crate::card_projection::catch_up(&app, &member_id).await
    {
        // The sync goes ahead with the card as it is; the next one tries again.
        tracing::warn!(member = %member_id, code = e.code, "card projection failed");
    }
    // Offers the member was targeted with since their last sync go into their offers document
    // first, so this sync carries them. Before the lock: the projection takes it itself.
    if kinds.contains(&DocKind::Offers)
        && let Err(e) = crate::targeting::project_pending(&app, &member_id).await
    {
        // Like the inbox below: the sync itself goes ahead; the next one tries again.
        tracing::warn!(member = %member_id, code = e.code, "offers projection failed");
    }
    // Messages and replies recorded relationally (a segment send, a reply) reach the inbox
    // document now, so this very sync carries them. Before the lock: the projection takes it.
    if kinds.contains(&DocKind::Inbox)
        && let Err(e) = crate::messaging::project_inbox(&app, &member_id).await
    {
        // The sync itself can still go ahead; the next one tries again.
        tracing::warn!(member = %member_id, code = e.code, "inbox projection failed");
    }
    let _guard = app.lock_member(&member_id).await;
    for _ in 0..ATTEMPTS {
        let docs = app.storage.load_documents(&member_id, &kinds).await?;
        let states = app
            .storage
            .load_peer_states(&device.device_id, &kinds)
            .await?;
        let request = request.clone();
        let (policy, now) = (app.config.epochs, app.now_ms());
        // A place among the sync jobs, taken under the member's lock (never the other way round,
        // so a job never waits for a lock while it holds a place).
        let job = app
            .sync_jobs
            .start()
            .await
            .map_err(|e| ApiError::internal("sync jobs", e))?;
        // Automerge work is CPU-bound; keep it off the async workers. A panic inside it becomes a
        // 500 for this request, not a dead server.
        let (response, writes, peer_writes, mirror) =
            tokio::task::spawn_blocking(move || answer(request, docs, states, policy, now))
                .await
                .map_err(|e| ApiError::internal("sync processing panicked", e))??;
        drop(job);
        let new_epochs: Vec<DocKind> = writes
            .iter()
            .filter(|w| w.new_epoch.is_some())
            .map(|w| w.kind)
            .collect();
        // Kept for the profile check after the commit, which stores the mirror.
        let preferences = mirror.as_ref().map(|m| m.preferences.clone());
        match app
            .storage
            .commit(
                &member_id,
                Some(&device.device_id),
                writes,
                peer_writes,
                mirror,
            )
            .await
        {
            Ok(()) => {
                if !new_epochs.is_empty() {
                    tracing::info!(member = %member_id, docs = ?new_epochs, "documents started a new epoch");
                    // The cached card (if any) is of the old epoch; the member's other devices
                    // learn of the epoch at their next sync, and watching ones sync now.
                    app.cards.forget(&member_id);
                    app.notify(&member_id);
                }
                let response = SyncResponse {
                    server_time_ms: app.now_ms(),
                    entries: response,
                };
                if let Some(preferences) = preferences {
                    // After the lock is released: the award takes the member's lock itself.
                    drop(_guard);
                    crate::programme::member_changed(&app, &member_id, &preferences).await;
                }
                return Ok(binary(response.encode()));
            }
            Err(StorageError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StorageError::Conflict.into())
}

type Answered = (
    Vec<ResponseEntry>,
    Vec<DocWrite>,
    Vec<(DocKind, Vec<u8>)>,
    Option<loyalty_core::member::MemberState>,
);

fn answer(
    request: SyncRequest,
    docs: Vec<StoredDoc>,
    states: Vec<(DocKind, Vec<u8>)>,
    policy: EpochPolicy,
    now_ms: i64,
) -> Result<Answered, ApiError> {
    let mut entries = Vec::new();
    let mut writes = Vec::new();
    let mut peer_writes = Vec::new();
    let mut mirror = None;
    for entry in &request.entries {
        let kind = entry.doc;
        let stored = docs
            .iter()
            .find(|d| d.kind == kind)
            .ok_or_else(|| ApiError::internal("sync", format!("member has no {kind} document")))?;
        let mut doc = load(kind, &stored.bytes)?;
        let mut peer = states
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, b)| PeerState::decode(b))
            .unwrap_or_default();
        let stored_digest = loyalty_core::document::heads_digest(&doc.get_heads());
        let context = Stored {
            epoch: stored.epoch,
            bytes: &stored.bytes,
            policy,
            now_ms,
        };
        match server_answer(kind, &mut doc, &mut peer, entry, &context) {
            Ok(a) => {
                if let Some(bytes) = a.saved {
                    writes.push(DocWrite {
                        kind,
                        expected_version: stored.version,
                        bytes,
                        append: false,
                        new_epoch: a.new_epoch.then_some(a.epoch),
                    });
                }
                if a.state_changed {
                    peer_writes.push((kind, peer.encode()));
                }
                if a.member.is_some() {
                    mirror = a.member;
                }
                entries.push(ResponseEntry {
                    doc: kind,
                    epoch: a.epoch,
                    digest: a.digest,
                    reply: a.reply,
                });
            }
            Err(rejection) => {
                tracing::warn!(doc = %kind, code = %rejection.code, "refused a device's document data");
                entries.push(ResponseEntry {
                    doc: kind,
                    epoch: stored.epoch,
                    digest: stored_digest,
                    reply: Reply::Rejected(rejection),
                });
            }
        }
    }
    Ok((entries, writes, peer_writes, mirror))
}

fn binary(bytes: Vec<u8>) -> Response {
    let mut response = bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(protocol::CONTENT_TYPE),
    );
    response
}

/// The header that carries a document's epoch with its bytes.
pub const EPOCH_HEADER: &str = "x-loyalty-epoch";

/// A document's full bytes, for a client that wants to load it directly (a web page, a debugger),
/// with its epoch in [`EPOCH_HEADER`].
pub async fn document(
    State(app): State<Arc<App>>,
    Path((member_id, doc)): Path<(String, String)>,
    _: MemberDevice,
) -> Result<Response, ApiError> {
    let kind = DocKind::from_name(&doc).ok_or_else(|| {
        ApiError::not_found(
            "unknown_document",
            format!("there is no `{doc}` document; documents are card, offers, inbox, member"),
        )
    })?;
    match kind {
        DocKind::Offers => {
            crate::targeting::project_pending(&app, &member_id).await?;
        }
        DocKind::Card => {
            crate::card_projection::catch_up(&app, &member_id).await?;
        }
        _ => {}
    }
    let stored = app
        .storage
        .load_documents(&member_id, &[kind])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::not_found("unknown_document", "the member has no such document")
        })?;
    let epoch = stored.epoch;
    let mut response = stored.bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
        .headers_mut()
        .insert(EPOCH_HEADER, HeaderValue::from(epoch));
    Ok(response)
}

#[derive(serde::Deserialize)]
pub struct ChangesQuery {
    #[serde(default)]
    since: u64,
    /// Seconds to hold the request open; at most 60.
    #[serde(default = "default_wait")]
    wait_s: u64,
}

fn default_wait() -> u64 {
    25
}

/// Long poll: answers as soon as the member's server documents change after `since` (a purchase,
/// an offer, a message), or after `wait_s` seconds with `changed: false`. The device syncs when
/// `changed` is true and polls again from the returned `seq`. Offers, inbox entries and postings
/// recorded relationally but not yet in the member's documents (a fan-out, a segment send, a
/// purchase made through another server instance) count as a change: the sync that follows
/// projects them. A device holds at most `long_polls_per_device` polls open: a newer one ends the
/// oldest with `409 poll_superseded`. At shutdown every poll is answered at once.
pub async fn changes(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    MemberDevice(device): MemberDevice,
    query: Result<axum::extract::Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<loyalty_core::api::ChangesResponse>, ApiError> {
    let axum::extract::Query(q) =
        query.map_err(|e| ApiError::bad_request("malformed_query", e.body_text()))?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(q.wait_s.min(60));
    // Open before the checks below, so a change between them and the wait is not missed.
    let poll = app.live.open(&member_id, &device.device_id);
    let (seq, changed) = loop {
        // Read before the checks: a fan-out or a send that lands after a check has woken after
        // this read, so the wait below still sees it.
        let wakes = app.wakes();
        // Offers, messages or postings recorded relationally and not yet in the member's
        // documents: the sync that answers this poll projects them.
        if crate::targeting::has_pending(&app, &member_id).await?
            || app.storage.has_pending_inbox(&member_id).await?
            || app.storage.card_behind(&member_id).await?
        {
            break (q.since, true);
        }
        match poll.wait(q.since, wakes, deadline).await {
            Wait::Changed(seq) => break (seq, true),
            Wait::TimedOut(seq) => break (seq, false),
            // A fan-out or a send somewhere: check this member again.
            Wait::Woken => continue,
            Wait::Superseded => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "poll_superseded",
                    "a newer long poll of this device took this one's place; do not poll again from here",
                ));
            }
        }
    };
    Ok(axum::Json(loyalty_core::api::ChangesResponse {
        seq,
        changed,
    }))
}
