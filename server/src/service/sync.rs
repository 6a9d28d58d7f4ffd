//! The sync endpoint: authenticates the device, answers each document entry with the shared
//! algorithm in `loyalty_core::sync`, and stores what changed — documents and per-(device, document)
//! sync states — in one transaction before it answers, so an acknowledged sync is durable.
//!
//! The Automerge work of an answer runs on the blocking pool under a place from
//! [`crate::jobs::sync::SyncJobs`], so a burst of heavy requests queues instead of running at once; what
//! one request may ask for is bounded before Automerge sees it (`loyalty_core::budget`). A
//! document whose history is due starts a new epoch there too (`loyalty_core::epoch`).

use loyalty_core::DocKind;
use loyalty_core::epoch::EpochPolicy;
use loyalty_core::protocol::{Reply, ResponseEntry, SyncRequest};
use loyalty_core::sync::{PeerState, Stored, server_answer};

use crate::error::DomainError;
use crate::projection::documents::load;
use crate::storage::{DocWrite, StoredDoc};

/// Attempts at storing a sync before answering "busy" (another instance kept writing first).
pub(crate) const ATTEMPTS: usize = 5;

pub(crate) type Answered = (
    Vec<ResponseEntry>,
    Vec<DocWrite>,
    Vec<(DocKind, Vec<u8>)>,
    Option<loyalty_core::member::MemberState>,
);

pub(crate) fn answer(
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
