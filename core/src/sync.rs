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

use automerge::sync::{BloomFilter, Capability, Have, Message, State, SyncDoc};
use automerge::{AutoCommit, ChangeHash};

use std::sync::OnceLock;

use crate::document::{DocKind, Writer, genesis, heads_digest};
use crate::member;
use crate::protocol::{ProtocolError, Rejection, Reply, RequestEntry, codes};

/// Rounds after which a device gives up on one sync call rather than loop.
pub const MAX_ROUNDS: usize = 12;

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

/// The device's entry for one document in one round.
pub fn device_entry(
    kind: DocKind,
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
                doc.sync().generate_sync_message(state)
            })
            .flatten()
    } else {
        doc.sync().generate_sync_message(state)
    };
    RequestEntry {
        doc: kind,
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

/// Answers one entry of a device's request. On `Err` nothing of the entry may be stored: the caller
/// drops `doc` and `state` and reports the rejection.
pub fn server_answer(
    kind: DocKind,
    doc: &mut AutoCommit,
    peer: &mut PeerState,
    entry: &RequestEntry,
) -> Result<Answer, Rejection> {
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
        let bytes = doc.save();
        let state = member::validate(doc, bytes.len()).map_err(document_rejection)?;
        (Some(bytes), (kind == DocKind::Member).then_some(state))
    } else {
        (None, None)
    };
    let reply = doc.sync().generate_sync_message(state).map(Message::encode);
    *answered_heads = after.clone();
    Ok(Answer {
        reply: Reply::Continue(reply),
        digest: heads_digest(&after),
        saved,
        state_changed: true,
        member: member_state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox;
    use automerge::transaction::Transactable;

    /// Runs the protocol between one device copy and one server copy without HTTP, returning the
    /// number of rounds and the rejections seen.
    fn run(
        kind: DocKind,
        device: &mut AutoCommit,
        dstate: &mut State,
        server: &mut AutoCommit,
        sstate_bytes: &mut Vec<u8>,
    ) -> (usize, Vec<Rejection>) {
        let mut rejections = Vec::new();
        for round in 0..MAX_ROUNDS {
            let entry = device_entry(kind, device, dstate, round == 0);
            let mut sstate = PeerState::decode(sstate_bytes);
            let mut scopy = server.clone();
            let (reply, digest) = match server_answer(kind, &mut scopy, &mut sstate, &entry) {
                Ok(a) => {
                    *server = scopy;
                    if a.state_changed {
                        *sstate_bytes = sstate.encode();
                    }
                    (a.reply, a.digest)
                }
                Err(r) => (Reply::Rejected(r), heads_digest(&server.get_heads())),
            };
            match device_take_reply(kind, device, dstate, reply, digest).unwrap() {
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

    #[test]
    fn garbage_messages_are_refused_not_applied() {
        let mut server = genesis(DocKind::Member);
        let mut state = PeerState::default();
        let entry = RequestEntry {
            doc: DocKind::Member,
            digest: [0; 8],
            message: Some(vec![0x42, 1, 2, 3]),
        };
        let err = server_answer(DocKind::Member, &mut server, &mut state, &entry).unwrap_err();
        assert_eq!(err.code, codes::MALFORMED_MESSAGE);
    }
}
