//! The sync algorithm on both ends of the wire: what a device puts in each round's entry for a
//! document, how it takes the server's reply, and how the server answers an entry. Storage and HTTP
//! stay outside: the device loop lives in [`crate::device`], the server's in the server crate.
//!
//! Two shortcuts sit on top of Automerge's own sync protocol, both safe because Automerge sync
//! tolerates a peer that guessed wrong:
//!
//! * **Digest first.** Each entry carries [`heads_digest`] of the sender's heads. Equal digests and no
//!   message mean "settled" with no Automerge message at all.
//! * **Priming.** A persisted sync state remembers only the heads both sides last shared. When one side
//!   knows the other is exactly there (the device, because its digest equals the digest of those
//!   heads; the device itself, because it is about to send local changes it made since), it primes the
//!   state as if the peer had just said so, and the first message already carries the changes. One new
//!   message or one local edit is then one round trip instead of two.
//!
//! Server-written documents are synced with a read-only state, and an entry whose heads name changes
//! the server never made is refused as [`codes::READ_ONLY_DOCUMENT`]: a device cannot write them.
//!
//! Work is bounded before Automerge sees a message: [`crate::budget::check_message`] counts what
//! it carries (refused as [`codes::TOO_MANY_OPERATIONS`]), and a member document whose history
//! would outgrow its limit is refused as [`codes::HISTORY_TOO_LONG`]. A document whose history is
//! due for a new epoch ([`crate::epoch`]) starts afresh before the entry is answered, and an entry
//! from another epoch is answered with the current one ([`Reply::NewEpoch`]), never merged.

use automerge::sync::{BloomFilter, Capability, Have, Message, State, SyncDoc};
use automerge::{AutoCommit, ChangeHash, ReadDoc};

use std::sync::OnceLock;

use crate::budget::{self, BudgetError};
use crate::document::{DocKind, Writer, genesis, heads_digest};
use crate::epoch::{self, EpochPolicy};
use crate::member;
use crate::protocol::{ProtocolError, Rejection, Reply, RequestEntry, codes};

/// Rounds after which a device gives up on one sync call rather than loop.
pub const MAX_ROUNDS: usize = 12;

/// Local changes beyond which a device lets Automerge send its whole document rather than the
/// changes one by one. A few edits are smaller one by one; thousands (a device offline for a
/// long time) would be over a megabyte.
pub const WHOLE_DOCUMENT_AFTER: usize = 1_000;

/// Tells `state` that the peer is at `state.shared_heads`, needs nothing, and has nothing newer, so
/// the next generated message carries every change made since.
pub fn prime(state: &mut State) {
    let shared = state.shared_heads.clone();
    state.their_heads = Some(shared.clone());
    state.their_need = Some(Vec::new());
    state.their_have = Some(vec![Have {
        last_sync: shared,
        bloom: BloomFilter::default(),
    }]);
}

/// The heads of a document of this kind at genesis.
fn genesis_heads(kind: DocKind) -> Vec<ChangeHash> {
    static HEADS: OnceLock<Vec<Vec<ChangeHash>>> = OnceLock::new();
    HEADS.get_or_init(|| {
        DocKind::ALL
            .iter()
            .map(|&k| genesis(k).get_heads())
            .collect()
    })[kind.index()]
    .clone()
}

/// Every replica of ours starts from the same genesis change, so a device may take its heads as
/// shared before the first sync; that keeps a first sync from shipping genesis to the server. (The
/// server does not assume it: a client in another language may start from an empty document.)
pub fn floor_at_genesis(kind: DocKind, state: &mut State) {
    if state.shared_heads.is_empty() {
        state.shared_heads = genesis_heads(kind);
    }
}

/// The device's entry for one document in one round; `epoch` is the epoch of its copy.
pub fn device_entry(
    kind: DocKind,
    epoch: u64,
    doc: &mut AutoCommit,
    state: &mut State,
    first_round: bool,
) -> RequestEntry {
    floor_at_genesis(kind, state);
    let heads = doc.get_heads();
    let message = if first_round {
        // Without local changes the digest alone tells the server everything it needs.
        (heads != state.shared_heads)
            .then(|| {
                prime(state);
                if doc.get_changes(&state.shared_heads).len() > WHOLE_DOCUMENT_AFTER {
                    // Many changes one by one could outgrow the server's body limit; the whole
                    // document, compressed, is smaller (Automerge sends it once they are more
                    // than a third of the history). The server speaks version-2 messages.
                    state.their_capabilities =
                        Some(vec![Capability::MessageV2, Capability::SyncReset]);
                }
                doc.sync().generate_sync_message(state)
            })
            .flatten()
    } else {
        doc.sync().generate_sync_message(state)
    };
    RequestEntry {
        doc: kind,
        epoch,
        digest: heads_digest(&heads),
        message: message.map(Message::encode),
    }
}

/// What taking the server's reply for one document left to do.
#[derive(Debug, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// Both sides have the same heads.
    Settled,
    /// Another round is needed.
    Continue,
    /// The server refused the device's data for this document.
    Rejected(Rejection),
}

/// Applies the server's reply for one document to the device's copy.
pub fn device_take_reply(
    kind: DocKind,
    doc: &mut AutoCommit,
    state: &mut State,
    reply: Reply,
    server_digest: [u8; 8],
) -> Result<DeviceOutcome, crate::Error> {
    match reply {
        Reply::Rejected(r) => return Ok(DeviceOutcome::Rejected(r)),
        // The caller replaces the document first (`device_take_epoch`).
        Reply::NewEpoch(_) => {}
        Reply::InSync => {}
        Reply::Continue(Some(bytes)) => {
            let message = Message::decode(&bytes)
                .map_err(|e| ProtocolError::BadSyncMessage(e.to_string()))?;
            doc.sync()
                .receive_sync_message(state, message)
                .map_err(|e| crate::Error::automerge(kind, e))?;
        }
        Reply::Continue(None) => {}
    }
    let heads = doc.get_heads();
    if heads_digest(&heads) == server_digest {
        // Equal heads are exactly what a sync state's shared heads mean.
        state.shared_heads = heads;
        Ok(DeviceOutcome::Settled)
    } else {
        Ok(DeviceOutcome::Continue)
    }
}

/// Takes a new epoch of a document from the server (`save`, its whole new history): returns the
/// copy that replaces the device's and the sync state to go on with. For the member document the
/// member's actions the server had not acknowledged (those after `state.shared_heads`) are
/// carried over onto it first, and the state is primed so the next round sends them at once.
/// The old copy is never merged into the new one.
pub fn device_take_epoch(
    kind: DocKind,
    old: &mut AutoCommit,
    state: &State,
    save: &[u8],
    now_ms: i64,
) -> Result<(AutoCommit, State), crate::Error> {
    let mut new = AutoCommit::load(save).map_err(|e| {
        ProtocolError::BadSyncMessage(format!("a new epoch that does not load: {e}"))
    })?;
    crate::document::check_root(&new, kind)?;
    // A fresh actor: the old one's sequence numbers belong to the old epoch.
    new.set_actor(automerge::ActorId::random());
    let mut fresh = State::new();
    fresh.shared_heads = new.get_heads();
    if kind == DocKind::Member {
        epoch::carry_over(old, &state.shared_heads, &mut new, now_ms).map_err(|e| match e {
            epoch::EpochError::Document(d) => crate::Error::Document(d),
            other => crate::Error::InvalidInput(other.to_string()),
        })?;
        prime(&mut fresh);
    }
    Ok((new, fresh))
}

/// What the server remembers about one device's copy of one document between requests: Automerge's
/// persisted sync state, plus the heads the server had when it last answered. The device settles on
/// those heads when it takes the answer, and its next digest proves it, which lets the server prime
/// without another round trip.
#[derive(Debug, Clone, Default)]
pub struct PeerState {
    pub state: State,
    pub answered_heads: Vec<ChangeHash>,
}

impl PeerState {
    /// `version 1 | uLEB len | automerge state | count u8 | 32-byte hashes`
    pub fn encode(&self) -> Vec<u8> {
        let state = self.state.encode();
        let mut out = vec![1u8];
        out.extend_from_slice(&(state.len() as u32).to_be_bytes());
        out.extend_from_slice(&state);
        let heads: Vec<&ChangeHash> = self.answered_heads.iter().take(255).collect();
        out.push(heads.len() as u8);
        for h in heads {
            out.extend_from_slice(&h.0);
        }
        out
    }

    /// Decodes a stored peer state; anything unreadable yields a fresh one, which costs one extra
    /// round trip and never data.
    pub fn decode(bytes: &[u8]) -> Self {
        Self::try_decode(bytes).unwrap_or_default()
    }

    fn try_decode(bytes: &[u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        if version != 1 || rest.len() < 4 {
            return None;
        }
        let (len, rest) = rest.split_at(4);
        let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (state, rest) = rest.split_at(len);
        let state = State::decode(state).ok()?;
        let (&count, rest) = rest.split_first()?;
        if rest.len() != usize::from(count) * 32 {
            return None;
        }
        let answered_heads = rest
            .chunks_exact(32)
            .filter_map(|c| ChangeHash::try_from(c).ok())
            .collect();
        Some(Self {
            state,
            answered_heads,
        })
    }
}

/// The server's answer to one entry.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    /// Digest of the server's heads after processing.
    pub digest: [u8; 8],
    /// The epoch of the server's copy after processing.
    pub epoch: u64,
    /// Whether `saved` starts a new epoch: the caller stores it under `epoch` and forgets every
    /// device's sync state for the document.
    pub new_epoch: bool,
    /// The document as it must now be stored, when the entry changed it (already validated).
    pub saved: Option<Vec<u8>>,
    /// Whether the sync state must be stored.
    pub state_changed: bool,
    /// The member document's validated state, when the entry changed it: the server mirrors it
    /// into its relational store (consents, preferences, activations) for targeting and the till.
    pub member: Option<member::MemberState>,
}

fn rejection(code: &str, message: impl Into<String>) -> Rejection {
    Rejection {
        code: code.into(),
        message: message.into(),
    }
}

/// The rejection of a member-document change that validation refused.
fn document_rejection(e: crate::document::DocumentError) -> Rejection {
    let code = match e {
        crate::document::DocumentError::RivalMap { .. } => codes::RIVAL_MAP,
        _ => codes::INVALID_DOCUMENT,
    };
    rejection(code, e.to_string())
}

fn knows(doc: &mut AutoCommit, hash: &ChangeHash) -> bool {
    doc.get_change_by_hash(hash).is_some()
}

/// What the server knows about its stored copy of the document besides the document itself.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub epoch: u64,
    /// The stored bytes `doc` was loaded from, or `None` when the caller holds the document
    /// without them (a cached copy): the epoch policy then counts the live operations from a save
    /// of `doc` itself, made only when its operations are over the threshold.
    pub bytes: Option<&'a [u8]>,
    pub policy: EpochPolicy,
    /// The server's clock, for a new epoch's change.
    pub now_ms: i64,
}

fn budget_rejection(e: BudgetError) -> Rejection {
    match e {
        BudgetError::TooMuch(_) => rejection(codes::TOO_MANY_OPERATIONS, e.to_string()),
        BudgetError::Malformed(_) => rejection(codes::MALFORMED_MESSAGE, e.to_string()),
    }
}

/// Answers one entry of a device's request. On `Err` nothing of the entry may be stored: the caller
/// drops `doc` and `state` and reports the rejection.
pub fn server_answer(
    kind: DocKind,
    doc: &mut AutoCommit,
    peer: &mut PeerState,
    entry: &RequestEntry,
    stored: &Stored<'_>,
) -> Result<Answer, Rejection> {
    let stats = doc.stats();
    if epoch::due(
        &stored.policy,
        stats.num_ops,
        stats.num_changes,
        || match stored.bytes {
            Some(bytes) => epoch::live_ops(bytes),
            None => epoch::live_ops(&doc.save()),
        },
    ) {
        match start_epoch(kind, doc, stored) {
            Ok(answer) => return Ok(answer),
            // A stored document the typed state cannot read is left in its epoch rather than
            // made unsyncable: the entry is answered as usual.
            Err(r) => tracing::warn!(doc = %kind, code = %r.code, "could not start a new epoch"),
        }
    }
    if entry.epoch != stored.epoch {
        // A copy from another epoch: it gets the current one whole, and nothing of it is applied.
        let save = doc.save();
        return Ok(Answer {
            reply: Reply::NewEpoch(save),
            digest: heads_digest(&doc.get_heads()),
            epoch: stored.epoch,
            new_epoch: false,
            saved: None,
            state_changed: false,
            member: None,
        });
    }
    let server_written = kind.writer() == Writer::Server;
    let PeerState {
        state,
        answered_heads,
    } = peer;
    state.read_only = server_written;
    let before = doc.get_heads();
    let digest = heads_digest(&before);
    match &entry.message {
        None if entry.digest == digest => {
            return Ok(Answer {
                reply: Reply::InSync,
                digest,
                epoch: stored.epoch,
                new_epoch: false,
                saved: None,
                state_changed: false,
                member: None,
            });
        }
        None => {
            // The digest proves where the device is when it matches heads the server knows: the
            // heads it last answered with, the last shared ones, or genesis.
            let candidates = [
                answered_heads.clone(),
                state.shared_heads.clone(),
                genesis_heads(kind),
            ];
            if let Some(heads) = candidates
                .into_iter()
                .find(|h| heads_digest(h) == entry.digest)
            {
                state.shared_heads = heads;
                prime(state);
                // Protocol version 1 requires Automerge's version-2 sync messages, so a large
                // catch-up can travel as one compressed document instead of change by change.
                // Only in this direction: a member's few small edits are smaller change by change.
                if state.their_capabilities.is_none() {
                    state.their_capabilities =
                        Some(vec![Capability::MessageV2, Capability::SyncReset]);
                }
            }
        }
        Some(bytes) => {
            // Counted before Automerge reads it: the work it asks for is bounded by its bytes.
            budget::check_message(bytes, !server_written).map_err(budget_rejection)?;
            let message = Message::decode(bytes).map_err(|e| {
                rejection(
                    codes::MALFORMED_MESSAGE,
                    format!("not an Automerge sync message: {e}"),
                )
            })?;
            if server_written && message.heads.iter().any(|h| !knows(doc, h)) {
                return Err(rejection(
                    codes::READ_ONLY_DOCUMENT,
                    format!(
                        "the {kind} document is written by the server only; the device's changes to it were not stored"
                    ),
                ));
            }
            doc.sync()
                .receive_sync_message(state, message)
                .map_err(|e| {
                    rejection(
                        codes::MALFORMED_MESSAGE,
                        format!("the sync message could not be applied: {e}"),
                    )
                })?;
        }
    }
    let after = doc.get_heads();
    let (saved, member_state) = if after != before {
        let stats = doc.stats();
        budget::check_history(stats.num_ops, stats.num_changes)
            .map_err(|e| rejection(codes::HISTORY_TOO_LONG, e.to_string()))?;
        let bytes = doc.save();
        let state = member::validate(doc, bytes.len()).map_err(document_rejection)?;
        // Automerge applies a change that is not encoded the way it encodes changes, but a save
        // holding it does not load back (its rebuilt change hashes differ): stored, it would make
        // the member's document unreadable. Loading the save is the check.
        AutoCommit::load(&bytes).map_err(|e| {
            rejection(
                codes::MALFORMED_MESSAGE,
                format!("a change is not encoded as Automerge encodes changes: {e}"),
            )
        })?;
        (Some(bytes), (kind == DocKind::Member).then_some(state))
    } else {
        (None, None)
    };
    let reply = doc.sync().generate_sync_message(state).map(Message::encode);
    *answered_heads = after.clone();
    Ok(Answer {
        reply: Reply::Continue(reply),
        digest: heads_digest(&after),
        epoch: stored.epoch,
        new_epoch: false,
        saved,
        state_changed: true,
        member: member_state,
    })
}

/// Starts the document afresh from its current state and answers the entry with the new epoch,
/// whatever epoch or message it carried: nothing of it is applied (a device carries its own
/// actions over and sends them again).
fn start_epoch(
    kind: DocKind,
    doc: &mut AutoCommit,
    stored: &Stored<'_>,
) -> Result<Answer, Rejection> {
    let mut fresh = epoch::fresh(kind, doc, stored.now_ms)
        .map_err(|e| rejection(codes::INVALID_DOCUMENT, e.to_string()))?;
    let save = fresh.save();
    let member = (kind == DocKind::Member)
        .then(|| member::read(&fresh))
        .transpose()
        .map_err(|e| rejection(codes::INVALID_DOCUMENT, e.to_string()))?;
    let digest = heads_digest(&fresh.get_heads());
    *doc = fresh;
    Ok(Answer {
        reply: Reply::NewEpoch(save.clone()),
        digest,
        epoch: stored.epoch + 1,
        new_epoch: true,
        saved: Some(save),
        state_changed: false,
        member,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox;
    use automerge::transaction::Transactable;

    /// A device's copy of one document.
    struct Side {
        doc: AutoCommit,
        state: State,
        epoch: u64,
    }

    /// The server's copy of one document and its sync state for the device.
    struct Host {
        doc: AutoCommit,
        epoch: u64,
        peer: Vec<u8>,
        policy: EpochPolicy,
    }

    fn side(kind: DocKind) -> Side {
        Side {
            doc: genesis(kind),
            state: State::new(),
            epoch: 0,
        }
    }

    fn host(kind: DocKind, policy: EpochPolicy) -> Host {
        Host {
            doc: genesis(kind),
            epoch: 0,
            peer: Vec::new(),
            policy,
        }
    }

    /// Runs the protocol between one device copy and one server copy without HTTP, epochs
    /// included, returning the number of rounds and the rejections seen.
    fn run_with(kind: DocKind, device: &mut Side, server: &mut Host) -> (usize, Vec<Rejection>) {
        let mut rejections = Vec::new();
        for round in 0..MAX_ROUNDS {
            let entry = device_entry(
                kind,
                device.epoch,
                &mut device.doc,
                &mut device.state,
                round == 0,
            );
            let mut sstate = PeerState::decode(&server.peer);
            let mut scopy = server.doc.clone();
            let bytes = server.doc.save();
            let stored = Stored {
                epoch: server.epoch,
                bytes: Some(&bytes),
                policy: server.policy,
                now_ms: 1_000_000,
            };
            let (reply, digest, epoch) =
                match server_answer(kind, &mut scopy, &mut sstate, &entry, &stored) {
                    Ok(a) => {
                        server.doc = scopy;
                        if a.new_epoch {
                            server.epoch = a.epoch;
                            server.peer.clear();
                        } else if a.state_changed {
                            server.peer = sstate.encode();
                        }
                        (a.reply, a.digest, a.epoch)
                    }
                    Err(r) => (
                        Reply::Rejected(r),
                        heads_digest(&server.doc.get_heads()),
                        server.epoch,
                    ),
                };
            if let Reply::NewEpoch(save) = &reply {
                let (doc, state) =
                    device_take_epoch(kind, &mut device.doc, &device.state, save, 2_000_000)
                        .unwrap();
                device.doc = doc;
                device.state = state;
                device.epoch = epoch;
            }
            match device_take_reply(kind, &mut device.doc, &mut device.state, reply, digest)
                .unwrap()
            {
                DeviceOutcome::Settled => return (round + 1, rejections),
                DeviceOutcome::Continue => {}
                DeviceOutcome::Rejected(r) => {
                    rejections.push(r);
                    return (round + 1, rejections);
                }
            }
        }
        panic!("did not settle");
    }

    /// [`run_with`] for tests that never see an epoch.
    fn run(
        kind: DocKind,
        device: &mut AutoCommit,
        dstate: &mut State,
        server: &mut AutoCommit,
        sstate_bytes: &mut Vec<u8>,
    ) -> (usize, Vec<Rejection>) {
        let mut d = Side {
            doc: std::mem::take(device),
            state: std::mem::take(dstate),
            epoch: 0,
        };
        let mut h = Host {
            doc: std::mem::take(server),
            epoch: 0,
            peer: std::mem::take(sstate_bytes),
            policy: EpochPolicy::default(),
        };
        let out = run_with(kind, &mut d, &mut h);
        assert_eq!(h.epoch, 0);
        (*device, *dstate, *server, *sstate_bytes) = (d.doc, d.state, h.doc, h.peer);
        out
    }

    fn message(id: &str) -> inbox::Message {
        inbox::Message {
            id: id.into(),
            channel: "inapp".into(),
            subject: "s".into(),
            body: "b".into(),
            sent_at_ms: 1,
            ..inbox::Message::default()
        }
    }

    #[test]
    fn server_changes_reach_the_device_in_one_round_once_states_are_shared() {
        let mut server = genesis(DocKind::Inbox);
        let mut device = genesis(DocKind::Inbox);
        let (mut dstate, mut sstate) = (State::new(), Vec::new());
        inbox::put(&mut server, &message("m1")).unwrap();
        server.commit();
        let (rounds, rej) = run(
            DocKind::Inbox,
            &mut device,
            &mut dstate,
            &mut server,
            &mut sstate,
        );
        assert!(rej.is_empty());
        assert!(rounds <= 3, "{rounds}");
        assert_eq!(device.get_heads(), server.get_heads());

        inbox::put(&mut server, &message("m2")).unwrap();
        server.commit();
        let (rounds, _) = run(
            DocKind::Inbox,
            &mut device,
            &mut dstate,
            &mut server,
            &mut sstate,
        );
        assert_eq!(rounds, 1);
        assert_eq!(inbox::read_all(&device).unwrap().len(), 2);

        let (rounds, _) = run(
            DocKind::Inbox,
            &mut device,
            &mut dstate,
            &mut server,
            &mut sstate,
        );
        assert_eq!(rounds, 1);
    }

    #[test]
    fn device_edits_reach_the_server_in_one_round() {
        let mut server = genesis(DocKind::Member);
        let mut device = genesis(DocKind::Member);
        let (mut dstate, mut sstate) = (State::new(), Vec::new());
        member::activate(&mut device, "o1", "phone", 5).unwrap();
        device.commit();
        let (rounds, rej) = run(
            DocKind::Member,
            &mut device,
            &mut dstate,
            &mut server,
            &mut sstate,
        );
        assert!(rej.is_empty());
        assert_eq!(rounds, 1);
        assert_eq!(member::read(&server).unwrap().activations.len(), 1);
        member::mark(&mut device, "read", "m1", 6).unwrap();
        device.commit();
        let (rounds, _) = run(
            DocKind::Member,
            &mut device,
            &mut dstate,
            &mut server,
            &mut sstate,
        );
        assert_eq!(rounds, 1);
        assert_eq!(server.get_heads(), device.get_heads());
    }

    #[test]
    fn a_device_change_to_a_server_document_is_refused() {
        let mut server = genesis(DocKind::Card);
        let mut device = genesis(DocKind::Card);
        let (mut dstate, mut sstate) = (State::new(), Vec::new());
        device.put(automerge::ROOT, "balance", 1_000_000).unwrap();
        device.commit();
        let before = server.get_heads();
        let (_, rej) = run(
            DocKind::Card,
            &mut device,
            &mut dstate,
            &mut server,
            &mut sstate,
        );
        assert_eq!(rej.len(), 1);
        assert_eq!(rej[0].code, codes::READ_ONLY_DOCUMENT);
        assert_eq!(server.get_heads(), before);
    }

    #[test]
    fn a_member_change_that_breaks_the_schema_is_refused() {
        let mut server = genesis(DocKind::Member);
        let mut device = genesis(DocKind::Member);
        let (mut dstate, mut sstate) = (State::new(), Vec::new());
        device.put(automerge::ROOT, "balance", 1_000_000).unwrap();
        device.commit();
        let before = server.get_heads();
        let (_, rej) = run(
            DocKind::Member,
            &mut device,
            &mut dstate,
            &mut server,
            &mut sstate,
        );
        assert_eq!(rej[0].code, codes::INVALID_DOCUMENT);
        assert_eq!(server.get_heads(), before);
    }

    #[test]
    fn a_rival_requests_map_is_refused_and_the_shared_one_accepted() {
        let mut server = genesis(DocKind::Member);
        let mut device = genesis(DocKind::Member);
        let (mut dstate, mut sstate) = (State::new(), Vec::new());
        device
            .put_object(automerge::ROOT, "requests", automerge::ObjType::Map)
            .unwrap();
        device.commit();
        let before = server.get_heads();
        let (_, rej) = run(
            DocKind::Member,
            &mut device,
            &mut dstate,
            &mut server,
            &mut sstate,
        );
        assert_eq!(rej.len(), 1);
        assert_eq!(rej[0].code, codes::RIVAL_MAP);
        assert_eq!(server.get_heads(), before);

        let mut device = genesis(DocKind::Member);
        let mut dstate = State::new();
        member::open_request(&mut device, "req_1", "question", "Hours?", "", 5).unwrap();
        device.commit();
        let (_, rej) = run(
            DocKind::Member,
            &mut device,
            &mut dstate,
            &mut server,
            &mut sstate,
        );
        assert!(rej.is_empty(), "{rej:?}");
        assert_eq!(member::read(&server).unwrap().requests.len(), 1);
    }

    #[test]
    fn peer_state_round_trips_and_tolerates_garbage() {
        let mut doc = genesis(DocKind::Card);
        let mut peer = PeerState::default();
        peer.state.shared_heads = doc.get_heads();
        peer.answered_heads = doc.get_heads();
        let back = PeerState::decode(&peer.encode());
        assert_eq!(back.state.shared_heads, peer.state.shared_heads);
        assert_eq!(back.answered_heads, peer.answered_heads);
        assert!(PeerState::decode(b"junk").answered_heads.is_empty());
        assert!(PeerState::decode(&[]).state.shared_heads.is_empty());
    }

    fn answer_alone(
        kind: DocKind,
        server: &mut AutoCommit,
        entry: &RequestEntry,
    ) -> Result<Answer, Rejection> {
        let bytes = server.save();
        let stored = Stored {
            epoch: 0,
            bytes: Some(&bytes),
            policy: EpochPolicy::default(),
            now_ms: 0,
        };
        server_answer(kind, server, &mut PeerState::default(), entry, &stored)
    }

    #[test]
    fn garbage_messages_are_refused_not_applied() {
        let mut server = genesis(DocKind::Member);
        let entry = RequestEntry {
            doc: DocKind::Member,
            epoch: 0,
            digest: [0; 8],
            message: Some(vec![0x42, 1, 2, 3]),
        };
        let err = answer_alone(DocKind::Member, &mut server, &entry).unwrap_err();
        assert_eq!(err.code, codes::MALFORMED_MESSAGE);
    }

    /// An entry carrying `chunk` as a device would send it: heads naming it, a summary of what
    /// it shares with the server.
    fn entry_with(kind: DocKind, server: &mut AutoCommit, chunk: Vec<u8>) -> RequestEntry {
        let hash = automerge::Change::try_from(&chunk[..]).map(|c| c.hash());
        let message = Message {
            heads: hash.into_iter().collect(),
            need: Vec::new(),
            have: vec![Have {
                last_sync: server.get_heads(),
                bloom: BloomFilter::default(),
            }],
            changes: vec![chunk].into(),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        };
        RequestEntry {
            doc: kind,
            epoch: 0,
            digest: [0; 8],
            message: Some(message.encode()),
        }
    }

    #[test]
    fn a_run_length_bomb_is_refused_before_it_is_applied() {
        let mut server = genesis(DocKind::Member);
        let before = (server.get_heads(), server.stats().num_ops);
        // Valid by the schema once applied: only the count can refuse it.
        let bomb = crate::forge::overwrites(&mut server.clone(), "email", 1_000_000);
        assert!(bomb.len() < 400);
        let entry = entry_with(DocKind::Member, &mut server, bomb);
        let err = answer_alone(DocKind::Member, &mut server, &entry).unwrap_err();
        assert_eq!(err.code, codes::TOO_MANY_OPERATIONS, "{}", err.message);
        assert_eq!((server.get_heads(), server.stats().num_ops), before);
        // Refused by the schema once applied; refused by its count first, so never applied.
        let bomb = crate::forge::list_of_nulls(&mut server.clone(), "junk", 1_000_000);
        let entry = entry_with(DocKind::Member, &mut server, bomb);
        let err = answer_alone(DocKind::Member, &mut server, &entry).unwrap_err();
        assert_eq!(err.code, codes::TOO_MANY_OPERATIONS, "{}", err.message);
        assert_eq!((server.get_heads(), server.stats().num_ops), before);
        // The same change below the limit is applied, and then the schema refuses it.
        let small = crate::forge::list_of_nulls(&mut server.clone(), "junk", 100);
        let entry = entry_with(DocKind::Member, &mut server, small);
        let err = answer_alone(DocKind::Member, &mut server.clone(), &entry).unwrap_err();
        assert_eq!(err.code, codes::INVALID_DOCUMENT);
    }

    #[test]
    fn a_change_that_would_not_load_back_is_refused() {
        let mut server = genesis(DocKind::Member);
        // Hand-written columns (runs of one value written as runs): Automerge applies the
        // change, but a save holding it does not load.
        let odd = crate::forge::overwrites(&mut server.clone(), "email", 10);
        let mut applied = server.clone();
        applied
            .apply_changes([automerge::Change::try_from(&odd[..]).unwrap()])
            .unwrap();
        assert!(AutoCommit::load(&applied.save()).is_err());
        let entry = entry_with(DocKind::Member, &mut server, odd);
        let err = answer_alone(DocKind::Member, &mut server, &entry).unwrap_err();
        assert_eq!(err.code, codes::MALFORMED_MESSAGE, "{}", err.message);
    }

    #[test]
    fn a_bomb_for_a_server_document_is_refused_as_read_only() {
        let mut server = genesis(DocKind::Card);
        let bomb = crate::forge::list_of_nulls(&mut server.clone(), "junk", 10_000_000);
        let entry = entry_with(DocKind::Card, &mut server, bomb);
        let err = answer_alone(DocKind::Card, &mut server, &entry).unwrap_err();
        assert_eq!(err.code, codes::READ_ONLY_DOCUMENT);
    }

    #[test]
    fn a_history_over_its_limit_is_refused() {
        let policy = EpochPolicy {
            after_ops: u64::MAX,
            after_changes: u64::MAX,
        };
        let mut server = host(DocKind::Member, policy);
        let mut device = side(DocKind::Member);
        let edit = |device: &mut Side, n: u64| {
            for i in 0..n {
                member::set_preference(&mut device.doc, "n", if i % 2 == 0 { "a" } else { "b" })
                    .unwrap();
                device.doc.commit();
            }
        };
        let limit = budget::limits::MAX_HISTORY_CHANGES;
        edit(&mut device, limit * 7 / 10);
        let (_, rej) = run_with(DocKind::Member, &mut device, &mut server);
        assert!(rej.is_empty());
        // Past the device's own check, as a client in another language might: few enough for
        // one request, too many for the history.
        edit(&mut device, limit * 3 / 10 + 1);
        let before = server.doc.get_heads();
        let (_, rej) = run_with(DocKind::Member, &mut device, &mut server);
        assert_eq!(rej[0].code, codes::HISTORY_TOO_LONG, "{}", rej[0].message);
        assert_eq!(server.doc.get_heads(), before);
    }

    #[test]
    fn a_history_due_starts_a_new_epoch_and_the_device_follows() {
        let policy = EpochPolicy {
            after_ops: 1_000,
            after_changes: 5,
        };
        let mut server = host(DocKind::Member, policy);
        let mut device = side(DocKind::Member);
        for i in 0..8 {
            member::mark(&mut device.doc, "read", &format!("m{i}"), i).unwrap();
            device.doc.commit();
        }
        let (_, rej) = run_with(DocKind::Member, &mut device, &mut server);
        assert!(rej.is_empty());
        assert_eq!(server.epoch, 0);
        // The next sync finds the stored history due, and the device takes the new epoch.
        let (_, rej) = run_with(DocKind::Member, &mut device, &mut server);
        assert!(rej.is_empty());
        assert_eq!((server.epoch, device.epoch), (1, 1));
        assert_eq!(device.doc.get_heads(), server.doc.get_heads());
        assert!(server.doc.stats().num_changes <= 2);
        assert_eq!(member::read(&server.doc).unwrap().read.len(), 8);
        // And settles with nothing more to do.
        let (rounds, _) = run_with(DocKind::Member, &mut device, &mut server);
        assert_eq!(rounds, 1);
    }

    #[test]
    fn offline_actions_survive_an_epoch_and_old_history_is_never_merged() {
        let mut server = host(DocKind::Member, EpochPolicy::default());
        let mut device = side(DocKind::Member);
        member::activate(&mut device.doc, "o1", "phone", 1).unwrap();
        device.doc.commit();
        run_with(DocKind::Member, &mut device, &mut server);
        // The server starts afresh (an operator asked) while the device acts offline.
        server.doc = epoch::fresh(DocKind::Member, &server.doc, 5_000).unwrap();
        server.epoch = 1;
        server.peer.clear();
        member::activate(&mut device.doc, "o2", "phone", 2).unwrap();
        member::set_consent(&mut device.doc, "sms", true, 3).unwrap();
        device.doc.commit();
        // An entry from the old epoch gets the new one and changes nothing.
        let entry = device_entry(
            DocKind::Member,
            0,
            &mut device.doc.clone(),
            &mut device.state.clone(),
            true,
        );
        let bytes = server.doc.save();
        let stored = Stored {
            epoch: 1,
            bytes: Some(&bytes),
            policy: server.policy,
            now_ms: 0,
        };
        let before = server.doc.get_heads();
        let a = server_answer(
            DocKind::Member,
            &mut server.doc.clone(),
            &mut PeerState::default(),
            &entry,
            &stored,
        )
        .unwrap();
        assert!(matches!(a.reply, Reply::NewEpoch(_)));
        assert!(a.saved.is_none() && !a.new_epoch && a.epoch == 1);
        assert_eq!(server.doc.get_heads(), before);
        // The device takes the new epoch, carries its actions over and sends them.
        let (_, rej) = run_with(DocKind::Member, &mut device, &mut server);
        assert!(rej.is_empty());
        assert_eq!(device.epoch, 1);
        let state = member::read(&server.doc).unwrap();
        assert_eq!(state, member::read(&device.doc).unwrap());
        assert!(state.activations.contains_key("o1") && state.activations.contains_key("o2"));
        assert!(state.consents["sms"].granted);
        // One activations map: the old history never came in.
        assert_eq!(
            server
                .doc
                .get_all(automerge::ROOT, "activations")
                .unwrap()
                .len(),
            1
        );
    }
}
