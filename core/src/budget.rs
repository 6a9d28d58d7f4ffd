//! The work limits of a sync, shared by the server (which refuses what is over them) and the
//! device (which refuses to commit what would be over them, so a device built from this core
//! never has a change refused): how many operations and changes one request may carry, how long a
//! member document's history may grow, how many bytes compressed data may inflate to, and what a
//! sync message's own fields may ask of the server.
//!
//! [`check_message`] reads a whole Automerge sync message before Automerge does — its hash lists,
//! its Bloom filters and, through [`crate::chunks`], every change and document chunk it carries —
//! at a cost bounded by the message's bytes, and refuses it when it is over a limit. Nothing of a
//! refused message is ever applied.

use crate::chunks::{self, Budget, ChunkError, Cursor, Tally};

/// The limits, in one place. `docs/protocol.md` §2 lists them for clients in other languages.
pub mod limits {
    /// Operations a member document's history may hold (Automerge's `stats().num_ops`).
    pub const MAX_HISTORY_OPS: u64 = 100_000;
    /// Changes a member document's history may hold.
    pub const MAX_HISTORY_CHANGES: u64 = 10_000;
    /// Operations one request may carry for a document. A whole-document chunk (which
    /// Automerge's version-2 sync messages send when a peer is far behind) carries the sender's
    /// whole history, so this is the history limit.
    pub const MAX_REQUEST_OPS: u64 = MAX_HISTORY_OPS;
    pub const MAX_REQUEST_CHANGES: u64 = MAX_HISTORY_CHANGES;
    /// References between operations (an operation's predecessors, a stored operation's
    /// successors, a change's dependencies) one request may carry. An honest history has about
    /// one per operation.
    pub const MAX_REQUEST_REFS: u64 = 2 * MAX_REQUEST_OPS;
    /// Bytes the compressed chunks and columns of one request may inflate to.
    pub const MAX_INFLATED_BYTES: u64 = 4 << 20;
    /// Hashes in any one list of a sync message (heads, needs, a summary's last-sync heads).
    pub const MAX_HASHES: u64 = 1_000;
    /// Summaries ("haves") in one sync message; Automerge sends one.
    pub const MAX_HAVES: u64 = 8;
    /// A summary's Bloom filter: probes per hash (Automerge uses 7) and bits per entry (10).
    pub const MAX_BLOOM_PROBES: u64 = 32;
    pub const MAX_BLOOM_BITS_PER_ENTRY: u64 = 64;
}

/// The chunk budget of one request.
pub const REQUEST: Budget = Budget {
    max_changes: limits::MAX_REQUEST_CHANGES,
    max_ops: limits::MAX_REQUEST_OPS,
    max_refs: limits::MAX_REQUEST_REFS,
    max_inflated: limits::MAX_INFLATED_BYTES,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The message asks for more work than a request may (`too_many_operations`).
    #[error("the sync message carries more than a request may: {0}")]
    TooMuch(String),
    /// The message cannot be read (`malformed_message`).
    #[error("not an Automerge sync message: {0}")]
    Malformed(String),
}

impl From<ChunkError> for BudgetError {
    fn from(e: ChunkError) -> Self {
        match e {
            ChunkError::OverBudget { .. } => BudgetError::TooMuch(e.to_string()),
            ChunkError::Malformed(_) | ChunkError::Bundle => BudgetError::Malformed(e.to_string()),
        }
    }
}

/// The history limit a document would break with `ops` operations and `changes` changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the document's history would hold {found} {what}, over the limit of {limit}")]
pub struct HistoryTooLong {
    pub what: &'static str,
    pub found: u64,
    pub limit: u64,
}

/// Checks a member document's history (Automerge's `stats()`) against the limits.
pub fn check_history(ops: u64, changes: u64) -> Result<(), HistoryTooLong> {
    if ops > limits::MAX_HISTORY_OPS {
        return Err(HistoryTooLong {
            what: "operations",
            found: ops,
            limit: limits::MAX_HISTORY_OPS,
        });
    }
    if changes > limits::MAX_HISTORY_CHANGES {
        return Err(HistoryTooLong {
            what: "changes",
            found: changes,
            limit: limits::MAX_HISTORY_CHANGES,
        });
    }
    Ok(())
}

fn too_much(what: &str, found: u64, limit: u64) -> Result<(), BudgetError> {
    if found > limit {
        return Err(BudgetError::TooMuch(format!(
            "{found} {what}, over the limit of {limit}"
        )));
    }
    Ok(())
}

/// Reads an Automerge sync message (either version) the way Automerge will, checking every part
/// of it against the limits, and returns what its chunks hold. `count_changes: false` skips the
/// chunks, for a document whose changes are never applied (a server-written one).
pub fn check_message(bytes: &[u8], count_changes: bool) -> Result<Tally, BudgetError> {
    let mut c = Cursor::new(bytes);
    match c.byte()? {
        0x42 | 0x43 => {}
        t => {
            return Err(BudgetError::Malformed(format!(
                "unknown message type {t:#x}"
            )));
        }
    }
    hash_list(&mut c, "heads")?;
    hash_list(&mut c, "needed hashes")?;
    let haves = c.uleb()?;
    too_much("summaries", haves, limits::MAX_HAVES)?;
    for _ in 0..haves {
        hash_list(&mut c, "last-sync hashes")?;
        bloom(c.bytes()?)?;
    }
    let mut tally = Tally::default();
    let chunks = c.uleb()?;
    for _ in 0..chunks {
        let chunk = c.bytes()?;
        if count_changes {
            chunks::scan(chunk, &REQUEST, &mut tally)?;
        }
    }
    // What follows is the optional flags field, which costs nothing to read.
    Ok(tally)
}

fn hash_list(c: &mut Cursor<'_>, what: &str) -> Result<(), BudgetError> {
    let n = c.hashes()?;
    too_much(what, n, limits::MAX_HASHES)
}

/// A summary's Bloom filter: `uLEB entries, uLEB bits per entry, uLEB probes, bits`, or empty.
/// Automerge runs `probes` steps for every hash it tests against the filter, and divides by the
/// filter's size in bits, so both must be sane.
fn bloom(bytes: &[u8]) -> Result<(), BudgetError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut c = Cursor::new(bytes);
    let entries = c.uleb()?;
    let bits_per_entry = c.uleb()?;
    let probes = c.uleb()?;
    too_much("Bloom filter probes", probes, limits::MAX_BLOOM_PROBES)?;
    too_much(
        "Bloom filter bits per entry",
        bits_per_entry,
        limits::MAX_BLOOM_BITS_PER_ENTRY,
    )?;
    if entries > 0 && bits_per_entry == 0 {
        return Err(BudgetError::Malformed(
            "a Bloom filter with entries but no bits".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{DocKind, genesis};
    use automerge::sync::{BloomFilter, Have, Message, SyncDoc};

    fn message_with(chunks: Vec<Vec<u8>>, have: Vec<Have>) -> Vec<u8> {
        Message {
            heads: Vec::new(),
            need: Vec::new(),
            have,
            changes: chunks.into(),
            flags: None,
            version: automerge::sync::MessageVersion::V1,
        }
        .encode()
    }

    #[test]
    fn an_honest_message_passes_and_is_counted() {
        let mut doc = genesis(DocKind::Member);
        crate::member::set_preference(&mut doc, "store", "Mitte").unwrap();
        doc.commit();
        let mut state = automerge::sync::State::new();
        let msg = doc
            .sync()
            .generate_sync_message(&mut state)
            .unwrap()
            .encode();
        check_message(&msg, true).unwrap();
        let change = doc.get_last_local_change().unwrap();
        let t = check_message(
            &message_with(vec![change.raw_bytes().to_vec()], vec![]),
            true,
        )
        .unwrap();
        assert_eq!((t.changes, t.ops), (1, 1));
    }

    #[test]
    fn a_run_length_bomb_is_refused_by_its_count() {
        let mut doc = genesis(DocKind::Member);
        for n in [1_000_000, 10_000_000] {
            let bomb = crate::forge::overwrites(&mut doc, "email", n);
            let err = check_message(&message_with(vec![bomb], vec![]), true).unwrap_err();
            assert!(matches!(err, BudgetError::TooMuch(_)), "{err}");
        }
        // At the limit it passes; one more is refused.
        let at = crate::forge::overwrites(&mut doc, "email", limits::MAX_REQUEST_OPS);
        check_message(&message_with(vec![at], vec![]), true).unwrap();
        let over = crate::forge::overwrites(&mut doc, "email", limits::MAX_REQUEST_OPS + 1);
        assert!(check_message(&message_with(vec![over], vec![]), true).is_err());
        // Unless the changes are never applied.
        let bomb = crate::forge::overwrites(&mut doc, "email", 1_000_000);
        check_message(&message_with(vec![bomb], vec![]), false).unwrap();
    }

    #[test]
    fn many_small_chunks_add_up() {
        let mut doc = genesis(DocKind::Member);
        let half = crate::forge::list_of_nulls(&mut doc, "junk", limits::MAX_REQUEST_OPS / 2);
        let err = check_message(
            &message_with(vec![half.clone(), half.clone(), half], vec![]),
            true,
        )
        .unwrap_err();
        assert!(matches!(err, BudgetError::TooMuch(_)));
    }

    #[test]
    fn a_deflate_bomb_is_refused_after_the_cap_not_after_inflating_it_all() {
        use std::io::Write;
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 8 << 20]).unwrap();
        let deflated = enc.finish().unwrap();
        let mut chunk = crate::chunks::MAGIC.to_vec();
        chunk.extend([0, 0, 0, 0, 2]);
        let mut len = Vec::new();
        let mut n = deflated.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            len.push(if n == 0 { b } else { b | 0x80 });
            if n == 0 {
                break;
            }
        }
        chunk.extend(len);
        chunk.extend(deflated);
        let err = check_message(&message_with(vec![chunk], vec![]), true).unwrap_err();
        assert!(err.to_string().contains("inflated bytes"), "{err}");
    }

    #[test]
    fn bloom_filters_that_would_make_the_server_spin_or_divide_by_zero_are_refused() {
        let bloom = |entries: u8, bits: u8, probes: u8| Have {
            last_sync: Vec::new(),
            bloom: BloomFilter::try_from(&[entries, bits, probes, 0xff][..]).unwrap_or_default(),
        };
        let ok = message_with(vec![], vec![bloom(1, 8, 7)]);
        check_message(&ok, true).unwrap();
        // Built by hand: BloomFilter refuses to build these, Automerge's decoder does not.
        let raw = |filter: &[u8]| {
            let mut m = vec![0x42, 0, 0, 1, 0];
            m.push(filter.len() as u8);
            m.extend_from_slice(filter);
            m.push(0);
            m
        };
        assert!(Message::decode(&raw(&[1, 0, 7])).is_ok());
        assert!(check_message(&raw(&[1, 0, 7]), true).is_err());
        assert!(Message::decode(&raw(&[1, 8, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff])).is_ok());
        assert!(matches!(
            check_message(&raw(&[1, 8, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff]), true),
            Err(BudgetError::TooMuch(_))
        ));
        let many = message_with(vec![], (0..9).map(|_| bloom(1, 8, 7)).collect());
        assert!(check_message(&many, true).is_err());
    }

    #[test]
    fn history_limits_have_a_clear_error() {
        check_history(limits::MAX_HISTORY_OPS, limits::MAX_HISTORY_CHANGES).unwrap();
        let e = check_history(limits::MAX_HISTORY_OPS + 1, 1).unwrap_err();
        assert_eq!(e.what, "operations");
        let e = check_history(1, limits::MAX_HISTORY_CHANGES + 1).unwrap_err();
        assert_eq!(e.what, "changes");
    }
}
