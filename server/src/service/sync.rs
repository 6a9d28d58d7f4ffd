//! A device's sync (its route is `crate::http::device::sync`): answers each document entry with the
//! shared algorithm in `loyalty_core::sync`, and stores what changed — documents and per-(device, document)
//! sync states — in one transaction before it answers, so an acknowledged sync is durable.
//!
//! The Automerge work of an answer runs on the blocking pool under a place from
//! [`crate::sync_jobs::SyncJobs`], so a burst of heavy requests queues instead of running at once; what
//! one request may ask for is bounded before Automerge sees it (`loyalty_core::budget`). A
//! document whose history is due starts a new epoch there too (`loyalty_core::epoch`).

use loyalty_core::DocKind;
use loyalty_core::epoch::EpochPolicy;
use loyalty_core::protocol::{Reply, ResponseEntry, SyncRequest, SyncResponse};
use loyalty_core::sync::{PeerState, Stored, server_answer};

use crate::app::App;
use crate::error::DomainError;
use crate::locks::Retry;
use crate::projection::documents::load;
use crate::storage::{Commit, DocWrite, StoredDoc};

/// Answers a device's sync of its member's documents: brings the server's documents up to date
/// first (card, offers, inbox: each projection takes the member's lock itself), then, under the
/// member's lock, answers every entry and stores documents and sync states in one transaction,
/// retrying as a merge when another instance wrote first ([`crate::locks::Retry`]). A member
/// document that changed the member's profile may earn event points, after the lock is released.
pub async fn sync(
    app: &App,
    member_id: &str,
    device_id: &str,
    request: SyncRequest,
) -> Result<SyncResponse, DomainError> {
    let kinds: Vec<DocKind> = request.entries.iter().map(|e| e.doc).collect();
    // Postings since the card was last read go into it first, so this sync carries them. Before
    // the lock: the projection takes it itself.
    if kinds.contains(&DocKind::Card)
        && let Err(e) = crate::projection::card::catch_up(app, member_id).await
    {
        // The sync goes ahead with the card as it is; the next one tries again.
        tracing::warn!(member = %member_id, code = e.code, "card projection failed");
    }
    // Offers the member was targeted with since their last sync go into their offers document
    // first, so this sync carries them. Before the lock: the projection takes it itself.
    if kinds.contains(&DocKind::Offers)
        && let Err(e) = crate::projection::offers::project_pending(app, member_id).await
    {
        // Like the inbox below: the sync itself goes ahead; the next one tries again.
        tracing::warn!(member = %member_id, code = e.code, "offers projection failed");
    }
    // Messages and replies recorded relationally (a segment send, a reply) reach the inbox
    // document now, so this very sync carries them. Before the lock: the projection takes it.
    if kinds.contains(&DocKind::Inbox)
        && let Err(e) = crate::projection::inbox::project_inbox(app, member_id).await
    {
        // The sync itself can still go ahead; the next one tries again.
        tracing::warn!(member = %member_id, code = e.code, "inbox projection failed");
    }
    let guard = app.lock_member(member_id).await;
    let mut retry = Retry::default();
    loop {
        retry.another()?;
        let docs = app.storage.load_documents(member_id, &kinds).await?;
        let states = app.storage.load_peer_states(device_id, &kinds).await?;
        let request = request.clone();
        let (policy, now) = (app.config.epochs, app.now_ms());
        // A place among the sync jobs, taken under the member's lock (never the other way round,
        // so a job never waits for a lock while it holds a place).
        let job = app
            .sync_jobs
            .start()
            .await
            .map_err(|e| DomainError::internal("sync jobs", e))?;
        // Automerge work is CPU-bound; keep it off the async workers. A panic inside it becomes a
        // 500 for this request, not a dead server.
        let (response, writes, peer_writes, mirror) =
            tokio::task::spawn_blocking(move || answer(request, docs, states, policy, now))
                .await
                .map_err(|e| DomainError::internal("sync processing panicked", e))??;
        drop(job);
        let new_epochs: Vec<DocKind> = writes
            .iter()
            .filter(|w| w.new_epoch.is_some())
            .map(|w| w.kind)
            .collect();
        // Kept for the profile check after the commit, which stores the mirror.
        let preferences = mirror.as_ref().map(|m| m.preferences.clone());
        let kind = if writes.is_empty() && response.iter().all(|e| e.reply == Reply::InSync) {
            "noop"
        } else {
            "changed"
        };
        match app
            .storage
            .commit(member_id, Some(device_id), writes, peer_writes, mirror)
            .await
        {
            Ok(Commit::Committed) => {
                metrics::counter!(crate::metrics::SYNCS, "kind" => kind).increment(1);
                if !new_epochs.is_empty() {
                    tracing::info!(member = %member_id, docs = ?new_epochs, "documents started a new epoch");
                    // The cached card (if any) is of the old epoch; the member's other devices
                    // learn of the epoch at their next sync, and watching ones sync now.
                    app.cards.forget(member_id);
                    app.notify(member_id);
                }
                let response = SyncResponse {
                    server_time_ms: app.now_ms(),
                    entries: response,
                };
                if let Some(preferences) = preferences {
                    // After the lock is released: the award takes the member's lock itself.
                    drop(guard);
                    crate::service::programme::member_changed(app, member_id, &preferences).await;
                }
                return Ok(response);
            }
            Ok(Commit::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) type Answered = (
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
) -> Result<Answered, DomainError> {
    let mut entries = Vec::new();
    let mut writes = Vec::new();
    let mut peer_writes = Vec::new();
    let mut mirror = None;
    for entry in &request.entries {
        let kind = entry.doc;
        let stored = docs.iter().find(|d| d.kind == kind).ok_or_else(|| {
            DomainError::internal("sync", format!("member has no {kind} document"))
        })?;
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
