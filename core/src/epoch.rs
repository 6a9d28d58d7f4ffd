//! Document epochs: starting a document afresh from its current state, when its history has
//! grown too long (or holds what must go, such as a run-length bomb stored before the server
//! counted operations), without losing anything the member did.
//!
//! A new epoch is the document's genesis followed by one change that writes its current state:
//! the history is gone, the state is the same. Automerge cannot tell the new history from a rival
//! one — merging a copy from the old epoch into it would create a second `activations` map and
//! hide one of them — so the epoch number travels with every sync entry (`crate::protocol`), the
//! server never applies a message from another epoch, and a device replaces its copy instead of
//! merging. For the member document, which devices write, the device first carries over its own
//! actions the server had not acknowledged: the typed state at the heads both sides last shared
//! is compared with the state now, and the difference is written onto the new epoch with the
//! same writers the member's actions use ([`crate::member::replay`]).

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, ChangeHash, ObjId, ObjType, ReadDoc, Value};

use crate::budget::limits;
use crate::chunks::{self, Budget, Tally};
use crate::document::{DocKind, DocumentError, genesis};
use crate::member::{self, MemberState};

/// When the server starts a document afresh by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochPolicy {
    /// A history longer than this many operations starts afresh, if that at least halves it.
    pub after_ops: u64,
    /// A history longer than this many changes starts afresh.
    pub after_changes: u64,
}

impl EpochPolicy {
    pub const DEFAULT_AFTER_OPS: u64 = 25_000;
    pub const DEFAULT_AFTER_CHANGES: u64 = 1_000;
}

impl Default for EpochPolicy {
    fn default() -> Self {
        Self {
            after_ops: Self::DEFAULT_AFTER_OPS,
            after_changes: Self::DEFAULT_AFTER_CHANGES,
        }
    }
}

/// Whether a document whose history holds `ops` operations and `changes` changes, of which
/// `live()` operations are still in effect, is due for a new epoch. A new epoch holds about the
/// live operations in two changes, so the operation rule waits until that halves the history:
/// a document whose state alone is large never starts afresh again and again. `live` is only
/// asked for when the operations are over the threshold.
pub fn due(policy: &EpochPolicy, ops: u64, changes: u64, live: impl FnOnce() -> u64) -> bool {
    changes > policy.after_changes || (ops > policy.after_ops && live().saturating_mul(2) <= ops)
}

/// The operations in effect in a stored document (`saved`: a save, possibly followed by
/// appended change chunks, whose operations all count as live). Bounded by the bytes.
pub fn live_ops(saved: &[u8]) -> u64 {
    let unbounded = Budget {
        max_changes: u64::MAX,
        max_ops: u64::MAX,
        max_refs: u64::MAX,
        max_inflated: 64 * limits::MAX_INFLATED_BYTES,
    };
    let mut tally = Tally::default();
    match chunks::scan(saved, &unbounded, &mut tally) {
        Ok(()) => tally.live,
        // Unreadable here means unknown: count everything as live, so no epoch is forced.
        Err(_) => u64::MAX,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("{doc} document: {source}")]
    Automerge {
        doc: DocKind,
        source: automerge::AutomergeError,
    },
}

fn am(doc: DocKind) -> impl Fn(automerge::AutomergeError) -> EpochError {
    move |source| EpochError::Automerge { doc, source }
}

/// A fresh document of this kind with `doc`'s current state: genesis, then one change made at
/// `now_ms`. The member document is rewritten through its typed state (so the new epoch is
/// exactly what the member's actions would have made); the server's documents are copied field
/// by field, keeping whatever they hold.
pub fn fresh(kind: DocKind, doc: &AutoCommit, now_ms: i64) -> Result<AutoCommit, EpochError> {
    let mut new = genesis(kind);
    if kind == DocKind::Member {
        let state = member::read(doc)?;
        member::replay(&mut new, &MemberState::default(), &state).map_err(am(kind))?;
    } else {
        copy_map(doc, &automerge::ROOT, &mut new, &automerge::ROOT).map_err(am(kind))?;
    }
    new.commit_with(CommitOptions::default().with_time(now_ms / 1000));
    Ok(new)
}

/// Copies the entries of the map `from` in `src` into the map `to` in `dst`; maps that `dst`
/// already holds under the same key (genesis's containers) are filled rather than replaced.
fn copy_map(
    src: &AutoCommit,
    from: &ObjId,
    dst: &mut AutoCommit,
    to: &ObjId,
) -> Result<(), automerge::AutomergeError> {
    for key in src.keys(from) {
        match src.get(from, &key)? {
            Some((Value::Scalar(v), _)) => dst.put(to, &key, v.into_owned())?,
            Some((Value::Object(t), child)) => {
                let existing = match dst.get(to, &key)? {
                    Some((Value::Object(e), id)) if e == t => Some(id),
                    _ => None,
                };
                let target = match existing {
                    Some(id) => id,
                    None => dst.put_object(to, &key, t)?,
                };
                copy_object(src, &child, t, dst, &target)?;
            }
            None => {}
        }
    }
    Ok(())
}

fn copy_object(
    src: &AutoCommit,
    from: &ObjId,
    kind: ObjType,
    dst: &mut AutoCommit,
    to: &ObjId,
) -> Result<(), automerge::AutomergeError> {
    match kind {
        ObjType::Map | ObjType::Table => copy_map(src, from, dst, to),
        ObjType::Text => dst.splice_text(to, 0, 0, &src.text(from)?),
        ObjType::List => {
            for i in 0..src.length(from) {
                match src.get(from, i)? {
                    Some((Value::Scalar(v), _)) => dst.insert(to, i, v.into_owned())?,
                    Some((Value::Object(t), child)) => {
                        let target = dst.insert_object(to, i, t)?;
                        copy_object(src, &child, t, dst, &target)?;
                    }
                    None => {}
                }
            }
            Ok(())
        }
    }
}

/// Device side: carries onto `new` (a new epoch of the member document) what the member did in
/// `old` since the heads both sides last shared, and commits it at `now_ms`. Returns whether
/// there was anything to carry. When the shared heads are unknown the whole state is carried;
/// the writers skip what is already there.
pub fn carry_over(
    old: &mut AutoCommit,
    shared: &[ChangeHash],
    new: &mut AutoCommit,
    now_ms: i64,
) -> Result<bool, EpochError> {
    let kind = DocKind::Member;
    let mine = member::read(old)?;
    let base = old
        .fork_at(shared)
        .ok()
        .and_then(|at| member::read(&at).ok())
        .unwrap_or_default();
    member::replay(new, &base, &mine).map_err(am(kind))?;
    member::read(new)?;
    Ok(new
        .commit_with(CommitOptions::default().with_time(now_ms / 1000))
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{card, inbox};

    fn member_doc() -> AutoCommit {
        let mut doc = genesis(DocKind::Member);
        member::activate(&mut doc, "o1", "phone", 10).unwrap();
        member::mark(&mut doc, "read", "m1", 11).unwrap();
        member::set_preference(&mut doc, "store", "Mitte").unwrap();
        member::set_consent(&mut doc, "email", true, 12).unwrap();
        doc.commit();
        member::open_request(&mut doc, "req_1", "question", "Parking?", "Where?", 13).unwrap();
        member::add_followup(&mut doc, "req_1", "fu_1", "Still?", 14).unwrap();
        doc.commit();
        for i in 0..50 {
            member::set_preference(&mut doc, "store", &format!("store {i}")).unwrap();
            doc.commit();
        }
        doc
    }

    #[test]
    fn a_fresh_member_document_has_the_same_state_and_a_short_history() {
        let doc = member_doc();
        let new = fresh(DocKind::Member, &doc, 1_000).unwrap();
        assert_eq!(member::read(&new).unwrap(), member::read(&doc).unwrap());
        assert!(new.stats().num_changes <= 3, "{:?}", new.stats());
        assert!(new.stats().num_ops < doc.stats().num_ops);
    }

    #[test]
    fn a_fresh_server_document_keeps_every_field() {
        let mut doc = genesis(DocKind::Inbox);
        for i in 0..5 {
            let m = inbox::Message {
                id: format!("m{i}"),
                channel: "inapp".into(),
                subject: "s".into(),
                body: "b".into(),
                sent_at_ms: i,
                ..inbox::Message::default()
            };
            inbox::put(&mut doc, &m).unwrap();
            doc.commit();
        }
        let new = fresh(DocKind::Inbox, &doc, 1_000).unwrap();
        assert_eq!(
            inbox::read_all(&new).unwrap(),
            inbox::read_all(&doc).unwrap()
        );
        let mut card = genesis(DocKind::Card);
        card::issue(&mut card, "6271234567890123", "mbr_1").unwrap();
        card.commit();
        let new = fresh(DocKind::Card, &card, 1_000).unwrap();
        assert_eq!(card::read(&new).unwrap(), card::read(&card).unwrap());
    }

    #[test]
    fn a_device_carries_its_unacknowledged_actions_into_the_new_epoch() {
        let mut old = member_doc();
        let shared = old.get_heads();
        // The server starts a new epoch from what it had...
        let mut new = fresh(DocKind::Member, &old, 1_000).unwrap();
        // ...while the device, offline, acted on.
        member::activate(&mut old, "o2", "phone", 20).unwrap();
        member::set_consent(&mut old, "email", false, 21).unwrap();
        member::add_followup(&mut old, "req_1", "fu_2", "Hello?", 22).unwrap();
        old.commit();
        member::open_request(&mut old, "req_2", "complaint", "Points", "", 23).unwrap();
        old.commit();
        assert!(carry_over(&mut old, &shared, &mut new, 2_000).unwrap());
        assert_eq!(member::read(&new).unwrap(), member::read(&old).unwrap());
        // Nothing new since: nothing to carry.
        let mut again = fresh(DocKind::Member, &old, 3_000).unwrap();
        let heads = old.get_heads();
        assert!(!carry_over(&mut old, &heads, &mut again, 3_000).unwrap());
    }

    #[test]
    fn the_rule_waits_until_a_new_epoch_would_help() {
        let p = EpochPolicy {
            after_ops: 100,
            after_changes: 10,
        };
        assert!(!due(&p, 100, 10, || unreachable!()));
        assert!(due(&p, 50, 11, || 50));
        assert!(due(&p, 101, 2, || 50));
        // Mostly live: a new epoch would not halve it.
        assert!(!due(&p, 101, 2, || 60));
    }

    #[test]
    fn live_operations_are_read_from_a_save() {
        let doc = member_doc();
        let mut doc2 = doc.clone();
        let live = live_ops(&doc2.save());
        let fresh_ops = fresh(DocKind::Member, &doc, 0).unwrap().stats().num_ops;
        assert!(live <= fresh_ops + 10, "{live} vs {fresh_ops}");
        assert!(live < doc2.stats().num_ops);
        assert_eq!(live_ops(b"junk"), u64::MAX);
    }
}
