//! A device's sync (its route is `crate::http::device::sync`): answers each document entry with the
//! shared algorithm in `loyalty_core::sync`, and stores what changed — documents, per-(device,
//! document) sync states and the card's catch-up with the ledger — in one transaction before it
//! answers, so an acknowledged sync is durable.
//!
//! "Nothing changed" — every entry's digest and epoch equal the stored ones, no projection has work
//! waiting — is the request a chain's phones make most. It is answered from the documents' stored
//! summaries ([`crate::storage::DocSummary`]) and one read, the same that authenticates the
//! device ([`crate::storage::MemberStore::device_and_sync_check`]), with no document loaded, so
//! its cost does not grow with a member's history. Otherwise only the documents whose entries
//! the summaries do not settle are loaded (a purchase's live update loads the card alone), and
//! the full path fills in summaries that are not known yet.
//!
//! The Automerge work of an answer runs on the blocking pool under a place from
//! [`crate::sync_jobs::SyncJobs`], so a burst of heavy requests queues instead of running at once; what
//! one request may ask for is bounded before Automerge sees it (`loyalty_core::budget`). A
//! document whose history is due starts a new epoch there too (`loyalty_core::epoch`). The one
//! exception is a live update's light answer — the card as this sync caught it up (or from the
//! card cache), no message from the device, only a sync message to compute — which costs less
//! than the hops to the pool and back and runs in place.

use automerge::AutoCommit;
use loyalty_core::DocKind;
use loyalty_core::epoch::EpochPolicy;
use loyalty_core::protocol::{Reply, RequestEntry, ResponseEntry, SyncRequest, SyncResponse};
use loyalty_core::sync::{PeerState, Stored, server_answer};

use crate::app::App;
use crate::error::DomainError;
use crate::locks::Retry;
use crate::projection::card::{CardCatchUp, Prepared};
use crate::projection::documents::{load, summary};
use crate::storage::{Commit, DocSummary, DocWrite, StoredDoc, SyncCheck};

/// Answers a device's sync of its member's documents: brings the server's documents up to date
/// first (card, offers, inbox, when the sync check says they have work waiting: each projection
/// takes the member's lock itself), then, under the member's lock, answers every entry and stores
/// documents and sync states in one transaction, retrying as a merge when another instance wrote
/// first ([`crate::locks::Retry`]). Entries whose stored summary proves them in sync are answered
/// without loading their document. A member document that changed the member's profile may earn
/// event points, after the lock is released. `check` is the member's sync check as read with the
/// device's credentials (`MemberStore::device_and_sync_check`).
pub async fn sync(
    app: &App,
    member_id: &str,
    device_id: &str,
    check: SyncCheck,
    request: SyncRequest,
) -> Result<SyncResponse, DomainError> {
    if let Some(entries) = all_settled(&check, &request, &app.config.epochs) {
        metrics::counter!(crate::metrics::SYNCS, "kind" => "noop").increment(1);
        return Ok(SyncResponse {
            server_time_ms: app.now_ms(),
            entries,
        });
    }
    // Boxed: the full path's future is kilobytes, and axum moves a handler's whole future into
    // a box of its own per request, so a "nothing changed" that carried it would copy it all.
    Box::pin(sync_loaded(app, member_id, device_id, check, request)).await
}

/// [`sync`] past "nothing changed": projects, loads and answers under the member's lock.
async fn sync_loaded(
    app: &App,
    member_id: &str,
    device_id: &str,
    check: SyncCheck,
    request: SyncRequest,
) -> Result<SyncResponse, DomainError> {
    let kinds: Vec<DocKind> = request.entries.iter().map(|e| e.doc).collect();
    project(app, member_id, &check, &kinds).await;
    let guard = app.lock_member(member_id).await;
    let mut retry = Retry::default();
    loop {
        retry.another()?;
        // Read again under the lock: the projections above (or another request) moved on.
        let check = app.storage.sync_check(member_id, app.now_ms()).await?;
        let (settled, open) = split(&check, &request, &app.config.epochs);
        if open.entries.is_empty() {
            metrics::counter!(crate::metrics::SYNCS, "kind" => "noop").increment(1);
            return Ok(SyncResponse {
                server_time_ms: app.now_ms(),
                entries: in_request_order(&request, settled, Vec::new()),
            });
        }
        let kinds: Vec<DocKind> = open.entries.iter().map(|e| e.doc).collect();
        let (mut catch_up, mut caught_up_card) = (None, None);
        if check.card_behind && kinds.contains(&DocKind::Card) {
            match card_catch_up(app, member_id).await {
                // The document is lent to the answer, which hands it back.
                CardCatchUpFor::Answer(doc, card, write) => {
                    caught_up_card = Some(*doc);
                    catch_up = Some((card, write));
                }
                CardCatchUpFor::ReadAgain => continue,
                CardCatchUpFor::Failed => {}
            }
        }
        let (docs, cached_card) = documents(app, member_id, &check, &kinds, caught_up_card).await?;
        let states = app.storage.load_peer_states(device_id, &kinds).await?;
        let (response, mut writes, peer_writes, mirror, summaries, card_back) =
            answer_off_the_workers(app, open, docs, cached_card, states).await?;
        let catch_up = with_catch_up(catch_up, card_back, &mut writes);
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
                if let Some((catch_up, doc)) = catch_up {
                    catch_up.stored(doc, app, member_id).await;
                }
                if !new_epochs.is_empty() {
                    tracing::info!(member = %member_id, docs = ?new_epochs, "documents started a new epoch");
                    // The cached card (if any) is of the old epoch; the member's other devices
                    // learn of the epoch at their next sync, and watching ones sync now.
                    app.cards.forget(member_id);
                    app.notify(member_id);
                }
                if !summaries.is_empty()
                    && let Err(e) = app.storage.remember_summaries(member_id, summaries).await
                {
                    // Only the next no-op sync's speed depends on it: it will load and try again.
                    tracing::warn!(member = %member_id, error = %e, "could not store document summaries");
                }
                let response = SyncResponse {
                    server_time_ms: app.now_ms(),
                    entries: in_request_order(&request, settled, response),
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

/// The documents of `kinds` as stored, and the card as `caught_up` (this sync's catch-up, not
/// stored yet) or from the card cache when it holds the version the check read (another
/// request's catch-up left it there): that card's bytes are not loaded at all, and its record
/// carries the check's header with no bytes (see [`answer`]).
async fn documents(
    app: &App,
    member_id: &str,
    check: &SyncCheck,
    kinds: &[DocKind],
    caught_up: Option<AutoCommit>,
) -> Result<(Vec<StoredDoc>, Option<AutoCommit>), DomainError> {
    let card_header = check
        .documents
        .iter()
        .find(|d| d.kind == DocKind::Card && kinds.contains(&d.kind));
    let cached = match caught_up {
        Some(card) => card_header.map(|h| (h, card)),
        None => card_header.and_then(|h| Some((h, app.cards.copy(member_id, h.version)?))),
    };
    let to_load: Vec<DocKind> = kinds
        .iter()
        .copied()
        .filter(|k| !(*k == DocKind::Card && cached.is_some()))
        .collect();
    let mut docs = if to_load.is_empty() {
        Vec::new()
    } else {
        app.storage.load_documents(member_id, &to_load).await?
    };
    let Some((header, card)) = cached else {
        return Ok((docs, None));
    };
    docs.push(StoredDoc {
        kind: DocKind::Card,
        version: header.version,
        epoch: header.epoch,
        // Never loaded: `answer` takes the card from the cached copy.
        bytes: Vec::new(),
        summary: header.summary,
    });
    Ok((docs, Some(card)))
}

/// The answers when nothing changed for any entry (see [`settled`]), with no document loaded.
fn all_settled(
    check: &SyncCheck,
    request: &SyncRequest,
    policy: &EpochPolicy,
) -> Option<Vec<ResponseEntry>> {
    if request.entries.is_empty() {
        return None;
    }
    request
        .entries
        .iter()
        .map(|entry| settled(check, entry, policy))
        .collect()
}

/// The request's entries the stored headers prove in sync, answered, and the rest, to load.
fn split(
    check: &SyncCheck,
    request: &SyncRequest,
    policy: &EpochPolicy,
) -> (Vec<ResponseEntry>, SyncRequest) {
    let mut settled_entries = Vec::new();
    let mut open = Vec::new();
    for entry in &request.entries {
        match settled(check, entry, policy) {
            Some(answer) => settled_entries.push(answer),
            None => open.push(entry.clone()),
        }
    }
    (settled_entries, SyncRequest { entries: open })
}

/// The answers in the order the request asked (each kind appears once in a request).
fn in_request_order(
    request: &SyncRequest,
    mut settled: Vec<ResponseEntry>,
    mut answered: Vec<ResponseEntry>,
) -> Vec<ResponseEntry> {
    settled.append(&mut answered);
    request
        .entries
        .iter()
        .filter_map(|e| {
            let i = settled.iter().position(|a| a.doc == e.doc)?;
            Some(settled.swap_remove(i))
        })
        .collect()
}

/// Brings the requested documents that have work waiting up to date: targeted offers into the
/// offers document, messages and replies into the inbox. (Postings reach the card under the
/// sync's own lock: [`card_catch_up`].) A projection that fails is logged and the sync goes ahead
/// with the document as it is; the next one tries again.
async fn project(app: &App, member_id: &str, check: &SyncCheck, kinds: &[DocKind]) {
    let wants = |kind| kinds.contains(&kind);
    if check.offers_pending
        && wants(DocKind::Offers)
        && let Err(e) = crate::projection::offers::project_pending(app, member_id).await
    {
        tracing::warn!(member = %member_id, code = e.code, "offers projection failed");
    }
    if check.inbox_pending
        && wants(DocKind::Inbox)
        && let Err(e) = crate::projection::inbox::project_inbox(app, member_id).await
    {
        tracing::warn!(member = %member_id, code = e.code, "inbox projection failed");
    }
}

/// What the card's catch-up leaves a sync to do (see [`card_catch_up`]).
enum CardCatchUpFor {
    /// Answer from the card's document with the change, and store its write in one commit with
    /// what the sync tells the device.
    Answer(Box<AutoCommit>, CardCatchUp, DocWrite),
    /// Nothing to store with the answer — the card was already up to date, had nothing to show
    /// (the revision is stored by itself), or its history was due for a new epoch (the change is
    /// stored and the card started afresh, as [`crate::projection::card::catch_up_behind`]
    /// does): read the check again.
    ReadAgain,
    /// The projection failed (logged): the sync goes on with the card as stored, and the next
    /// one tries again.
    Failed,
}

/// The card's catch-up with the ledger for a sync, under the sync's lock: one transaction for
/// the catch-up and the sync, where a catch-up of its own and the sync's commit were two.
async fn card_catch_up(app: &App, member_id: &str) -> CardCatchUpFor {
    match try_card_catch_up(app, member_id).await {
        Ok(next) => next,
        Err(e) => {
            tracing::warn!(member = %member_id, code = e.code, "card projection failed");
            CardCatchUpFor::Failed
        }
    }
}

/// [`card_catch_up`], with its failures.
async fn try_card_catch_up(app: &App, member_id: &str) -> Result<CardCatchUpFor, DomainError> {
    let programme = app.programme().await?;
    match crate::projection::card::prepare(app, &programme, member_id).await? {
        Prepared::UpToDate => Ok(CardCatchUpFor::ReadAgain),
        Prepared::Unchanged(card) => {
            card.store(app, member_id).await?;
            Ok(CardCatchUpFor::ReadAgain)
        }
        Prepared::Changed(doc, catch_up, write) if catch_up.due => {
            // Committed or not, the check read again says what is left.
            let _either = catch_up.store(*doc, write, app, member_id).await?;
            Ok(CardCatchUpFor::ReadAgain)
        }
        Prepared::Changed(doc, catch_up, write) => Ok(CardCatchUpFor::Answer(doc, catch_up, write)),
    }
}

/// Joins the card's catch-up to the answer's writes, and gives back what to put in the card cache
/// once they are committed: the catch-up with `card`, the document the answer was given and
/// handed back (without it the catch-up is stored all the same, and not cached). When the answer
/// rewrites the card itself (a new epoch, from the card with the change), that write carries the
/// revision instead and the card is not cached (the commit of a new epoch forgets it).
fn with_catch_up(
    catch_up: Option<(CardCatchUp, DocWrite)>,
    card: Option<AutoCommit>,
    writes: &mut Vec<DocWrite>,
) -> Option<(CardCatchUp, AutoCommit)> {
    let (catch_up, write) = catch_up?;
    if let Some(rewritten) = writes.iter_mut().find(|w| w.kind == DocKind::Card) {
        rewritten.shows_revision = Some(catch_up.revision);
        return None;
    }
    writes.push(write);
    Some((catch_up, card?))
}

/// The in-sync answer for one entry, if the stored header proves it: the entry carries no
/// message, its epoch and digest equal the stored ones, the document is not due for a new epoch,
/// and no projection has work for it.
fn settled(check: &SyncCheck, entry: &RequestEntry, policy: &EpochPolicy) -> Option<ResponseEntry> {
    if entry.message.is_some() {
        return None;
    }
    let pending = match entry.doc {
        DocKind::Card => check.card_behind,
        DocKind::Offers => check.offers_pending,
        DocKind::Inbox => check.inbox_pending,
        DocKind::Member => false,
    };
    let header = check.documents.iter().find(|d| d.kind == entry.doc)?;
    let summary = header.summary?;
    // Below both thresholds the epoch policy cannot be due whatever the live operations are;
    // above one, the full path decides (it reads the live operations from the bytes).
    let young = summary.changes <= policy.after_changes && summary.ops <= policy.after_ops;
    let in_sync = entry.epoch == header.epoch && entry.digest == summary.digest;
    (!pending && young && in_sync).then_some(ResponseEntry {
        doc: entry.doc,
        epoch: header.epoch,
        digest: summary.digest,
        reply: Reply::InSync,
    })
}

/// Runs [`answer`] where its work belongs. Automerge work is CPU-bound: it runs on the blocking
/// pool under a place among the sync jobs, taken under the member's lock (never the other way
/// round, so a job never waits for a lock while it holds a place). A live update — the card alone,
/// caught up by this sync or from the card cache, with no message from the device: only a sync
/// message to compute, less work than the hop to the pool and back — runs here. Either way a
/// panic inside becomes a 500 for this request, not a dead server.
async fn answer_off_the_workers(
    app: &App,
    open: SyncRequest,
    docs: Vec<StoredDoc>,
    cached_card: Option<AutoCommit>,
    states: Vec<(DocKind, Vec<u8>)>,
) -> Result<Answered, DomainError> {
    let (policy, now) = (app.config.epochs, app.now_ms());
    let light = cached_card.is_some()
        && open
            .entries
            .iter()
            .all(|e| e.doc == DocKind::Card && e.message.is_none());
    if light {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            answer(open, docs, cached_card, states, policy, now)
        }))
        .map_err(|_| DomainError::internal("sync processing panicked", "a panic"))?;
    }
    let _job = app
        .sync_jobs
        .start()
        .await
        .map_err(|e| DomainError::internal("sync jobs", e))?;
    tokio::task::spawn_blocking(move || answer(open, docs, cached_card, states, policy, now))
        .await
        .map_err(|e| DomainError::internal("sync processing panicked", e))?
}

pub(crate) type Answered = (
    Vec<ResponseEntry>,
    Vec<DocWrite>,
    Vec<(DocKind, Vec<u8>)>,
    Option<loyalty_core::member::MemberState>,
    // Summaries of loaded documents that had none and were not rewritten.
    Vec<(DocKind, i64, DocSummary)>,
    // The card document given as `cached_card`, handed back.
    Option<AutoCommit>,
);

/// Answers each entry of `request` from the stored documents; the card from `cached_card` when
/// the sync caught it up or the card cache held it at the stored version (nothing here touches
/// the cache), handed back with the answer.
fn answer(
    request: SyncRequest,
    docs: Vec<StoredDoc>,
    mut cached_card: Option<AutoCommit>,
    states: Vec<(DocKind, Vec<u8>)>,
    policy: EpochPolicy,
    now_ms: i64,
) -> Result<Answered, DomainError> {
    let mut entries = Vec::new();
    let mut writes = Vec::new();
    let mut peer_writes = Vec::new();
    let mut mirror = None;
    let mut summaries = Vec::new();
    let mut card_back = None;
    for entry in &request.entries {
        let kind = entry.doc;
        let stored = docs.iter().find(|d| d.kind == kind).ok_or_else(|| {
            DomainError::internal("sync", format!("member has no {kind} document"))
        })?;
        let cached = if kind == DocKind::Card {
            cached_card.take()
        } else {
            None
        };
        let from_cache = cached.is_some();
        let mut doc = match cached {
            Some(doc) => doc,
            None => load(kind, &stored.bytes)?,
        };
        let mut peer = states
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, b)| PeerState::decode(b))
            .unwrap_or_default();
        let before = summary(&mut doc);
        let stored_digest = before.digest;
        let context = Stored {
            epoch: stored.epoch,
            // A card answered from the cache came without its stored bytes.
            bytes: (!from_cache).then_some(stored.bytes.as_slice()),
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
                        summary: Some(summary(&mut doc)),
                        shows_revision: None,
                    });
                } else if stored.summary.is_none() {
                    summaries.push((kind, stored.version, before));
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
                if stored.summary.is_none() {
                    summaries.push((kind, stored.version, before));
                }
                tracing::warn!(doc = %kind, code = %rejection.code, "refused a device's document data");
                entries.push(ResponseEntry {
                    doc: kind,
                    epoch: stored.epoch,
                    digest: stored_digest,
                    reply: Reply::Rejected(rejection),
                });
            }
        }
        if from_cache {
            card_back = Some(doc);
        }
    }
    Ok((entries, writes, peer_writes, mirror, summaries, card_back))
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use loyalty_core::document::{genesis, heads_digest};

    /// A card whose history is past `after_ops` operations with most of them still live (one key
    /// per change), or mostly overwritten (the same key every change).
    fn card(changes: usize, same_key: bool) -> AutoCommit {
        let mut doc = genesis(DocKind::Card);
        for i in 0..changes {
            let key = if same_key {
                "balance".to_string()
            } else {
                format!("k{i}")
            };
            doc.put(automerge::ROOT, key, i as i64).unwrap();
            doc.commit();
        }
        doc
    }

    fn answered(doc: &mut AutoCommit, from_cache: bool) -> Answered {
        let bytes = doc.save();
        let stored = StoredDoc {
            kind: DocKind::Card,
            version: 7,
            epoch: 0,
            bytes: if from_cache { Vec::new() } else { bytes },
            summary: None,
        };
        let request = SyncRequest {
            entries: vec![RequestEntry {
                doc: DocKind::Card,
                epoch: 0,
                digest: heads_digest(&genesis(DocKind::Card).get_heads()),
                message: None,
            }],
        };
        let policy = EpochPolicy {
            after_ops: 20,
            after_changes: 1_000,
        };
        let cached = from_cache.then(|| doc.clone());
        answer(request, vec![stored], cached, Vec::new(), policy, 1_000).unwrap()
    }

    /// A card answered from the cache comes without its stored bytes; past the operations
    /// threshold the epoch policy reads the live operations from the cached copy's own save, and
    /// decides as it does from the stored bytes: not due while most operations are live, due once
    /// most are overwritten.
    #[test]
    fn a_cached_card_meets_the_epoch_policy_as_a_loaded_one() {
        for (same_key, due) in [(false, false), (true, true)] {
            let mut doc = card(40, same_key);
            let new_epoch = |a: &Answered| a.1.iter().any(|w| w.new_epoch.is_some());
            let loaded = answered(&mut doc, false);
            let cached = answered(&mut doc, true);
            assert_eq!(new_epoch(&loaded), due, "same key: {same_key}");
            assert_eq!(new_epoch(&cached), due, "same key: {same_key}");
            assert_eq!(
                std::mem::discriminant(&loaded.0[0].reply),
                std::mem::discriminant(&cached.0[0].reply)
            );
        }
    }
}
