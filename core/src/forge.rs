//! Forged Automerge changes, for tests and benchmarks only (cargo feature `forge`): changes whose
//! columns are run-length encoded so that a few hundred bytes hold millions of operations, the
//! way a hostile client would write them. Automerge's own API would take seconds to make such a
//! change (it applies every operation as it goes); writing the columns by hand takes nothing.
//!
//! The encodings follow automerge 0.12's change chunk (`storage/change.rs`,
//! `storage/change/change_op_columns.rs`); `chunks` reads them back, and the tests check that
//! Automerge parses and applies what is forged here.

use automerge::{ActorId, AutoCommit, ChangeHash, ReadDoc};

use crate::chunks::MAGIC;

fn uleb(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn sleb(out: &mut Vec<u8>, mut n: i64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        let done = (n == 0 && b & 0x40 == 0) || (n == -1 && b & 0x40 != 0);
        if done {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// One run of a run-length encoded column.
enum Run<'a> {
    /// `count` copies of a number.
    Num(u64, i64),
    /// `count` copies of a string.
    Str(u64, &'a str),
    Nulls(u64),
}

fn rle(runs: &[Run<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for run in runs {
        match *run {
            Run::Num(0, _) | Run::Str(0, _) | Run::Nulls(0) => {}
            Run::Num(n, v) => {
                sleb(&mut out, n as i64);
                sleb(&mut out, v);
            }
            Run::Str(n, v) => {
                sleb(&mut out, n as i64);
                uleb(&mut out, v.len() as u64);
                out.extend_from_slice(v.as_bytes());
            }
            Run::Nulls(n) => {
                out.push(0);
                uleb(&mut out, n);
            }
        }
    }
    out
}

/// Alternating run lengths, falses first.
fn booleans(runs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for &n in runs {
        uleb(&mut out, n);
    }
    out
}

/// What a forged change is built on: the document's heads, its next operation counter, and a
/// fresh actor.
struct Base {
    deps: Vec<ChangeHash>,
    start_op: u64,
    actor: ActorId,
}

impl Base {
    fn of(doc: &mut AutoCommit) -> Self {
        let mut deps = doc.get_heads();
        deps.sort();
        let start_op = doc
            .get_changes(&[])
            .iter()
            .map(|c| c.max_op())
            .max()
            .unwrap_or(0)
            + 1;
        Self {
            deps,
            start_op,
            actor: ActorId::random(),
        }
    }
}

/// A change chunk with these columns (spec, data), in spec order.
fn change_chunk(base: &Base, other_actors: &[ActorId], columns: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut data = Vec::new();
    uleb(&mut data, base.deps.len() as u64);
    for d in &base.deps {
        data.extend_from_slice(&d.0);
    }
    uleb(&mut data, base.actor.to_bytes().len() as u64);
    data.extend_from_slice(base.actor.to_bytes());
    uleb(&mut data, 1); // seq
    uleb(&mut data, base.start_op);
    sleb(&mut data, 0); // time
    uleb(&mut data, 0); // message
    uleb(&mut data, other_actors.len() as u64);
    for a in other_actors {
        uleb(&mut data, a.to_bytes().len() as u64);
        data.extend_from_slice(a.to_bytes());
    }
    let columns: Vec<&(u32, Vec<u8>)> = columns.iter().filter(|(_, d)| !d.is_empty()).collect();
    uleb(&mut data, columns.len() as u64);
    for (spec, col) in &columns {
        uleb(&mut data, u64::from(*spec));
        uleb(&mut data, col.len() as u64);
    }
    for (_, col) in &columns {
        data.extend_from_slice(col);
    }
    let mut hashed = vec![1u8];
    uleb(&mut hashed, data.len() as u64);
    hashed.extend_from_slice(&data);
    let hash = ring::digest::digest(&ring::digest::SHA256, &hashed);
    let mut chunk = MAGIC.to_vec();
    chunk.extend_from_slice(&hash.as_ref()[..4]);
    chunk.extend_from_slice(&hashed);
    chunk
}

/// A change on top of the member document `doc` that creates `consents.<channel>` and then sets
/// its `granted` to true `n - 2` times, each time overwriting the last: every operation is one the
/// member's schema allows, so validation passes it and only its size is wrong. `n` is the number
/// of operations, at least 4.
pub fn overwrites(doc: &mut AutoCommit, channel: &str, n: u64) -> Vec<u8> {
    let n = n.max(4);
    let base = Base::of(doc);
    let Ok(Some((_, automerge::ObjId::Id(consents_ctr, genesis_actor, _)))) =
        doc.get(automerge::ROOT, "consents")
    else {
        panic!("forge::overwrites needs a member document");
    };
    let s = base.start_op as i64;
    let at = 1_800_000_000_000i64;
    let mut at_bytes = Vec::new();
    sleb(&mut at_bytes, at);
    let columns = [
        (0x01, rle(&[Run::Num(1, 1), Run::Num(n - 1, 0)])),
        (
            0x02,
            rle(&[Run::Num(1, consents_ctr as i64), Run::Num(n - 1, s)]),
        ),
        (0x11, rle(&[Run::Nulls(n)])),
        (0x13, rle(&[Run::Nulls(n)])),
        (
            0x15,
            rle(&[
                Run::Str(1, channel),
                Run::Str(1, "at"),
                Run::Str(n - 2, "granted"),
            ]),
        ),
        (0x34, booleans(&[n])),
        (0x42, rle(&[Run::Num(1, 0), Run::Num(n - 1, 1)])),
        (
            0x56,
            rle(&[
                Run::Num(1, 0),
                Run::Num(1, ((at_bytes.len() as i64) << 4) | 9),
                Run::Num(n - 2, 2),
            ]),
        ),
        (0x57, at_bytes),
        (0x70, rle(&[Run::Num(3, 0), Run::Num(n - 3, 1)])),
        (0x71, rle(&[Run::Num(n - 3, 0)])),
        (0x73, rle(&[Run::Num(1, s + 2), Run::Num(n - 4, 1)])),
    ];
    change_chunk(&base, &[genesis_actor], &columns)
}

/// A change that makes a list under the root key `key` and inserts `n` nulls into it: `n + 1`
/// operations. The member schema refuses the root key, but only once the change is applied.
pub fn list_of_nulls(doc: &mut AutoCommit, key: &str, n: u64) -> Vec<u8> {
    let n = n.max(2);
    let base = Base::of(doc);
    let s = base.start_op as i64;
    let columns = [
        (0x01, rle(&[Run::Nulls(1), Run::Num(n, 0)])),
        (0x02, rle(&[Run::Nulls(1), Run::Num(n, s)])),
        (0x11, rle(&[Run::Nulls(2), Run::Num(n - 1, 0)])),
        (
            0x13,
            rle(&[
                Run::Nulls(1),
                Run::Num(1, 0),
                Run::Num(1, s + 1),
                Run::Num(n - 2, 1),
            ]),
        ),
        (0x15, rle(&[Run::Str(1, key), Run::Nulls(n)])),
        (0x34, booleans(&[1, n])),
        (0x42, rle(&[Run::Num(1, 2), Run::Num(n, 1)])),
        (0x56, rle(&[Run::Num(n + 1, 0)])),
        (0x70, rle(&[Run::Num(n + 1, 0)])),
    ];
    change_chunk(&base, &[], &columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::{Budget, Tally, scan};
    use crate::document::{DocKind, genesis};
    use crate::member;

    fn count(bytes: &[u8]) -> Tally {
        let budget = Budget {
            max_changes: u64::MAX,
            max_ops: u64::MAX,
            max_refs: u64::MAX,
            max_inflated: 0,
        };
        let mut t = Tally::default();
        scan(bytes, &budget, &mut t).unwrap();
        t
    }

    #[test]
    fn automerge_reads_and_applies_the_forged_overwrites() {
        let mut doc = genesis(DocKind::Member);
        let bytes = overwrites(&mut doc, "email", 1000);
        let change = automerge::Change::try_from(&bytes[..]).unwrap();
        assert_eq!(change.len(), 1000);
        assert_eq!(count(&bytes).ops, 1000);
        assert_eq!(count(&bytes).refs, 997);
        doc.apply_changes([change]).unwrap();
        let state = member::read(&doc).unwrap();
        assert!(state.consents["email"].granted);
        assert_eq!(doc.stats().num_ops, 7 + 1000);
        // A million operations in a few hundred bytes.
        let mut doc = genesis(DocKind::Member);
        assert!(overwrites(&mut doc, "email", 1_000_000).len() < 400);
    }

    #[test]
    fn automerge_reads_and_applies_the_forged_list() {
        let mut doc = genesis(DocKind::Member);
        let bytes = list_of_nulls(&mut doc, "junk", 500);
        let change = automerge::Change::try_from(&bytes[..]).unwrap();
        assert_eq!(change.len(), 501);
        assert_eq!(count(&bytes).ops, 501);
        doc.apply_changes([change]).unwrap();
        let (_, list) = doc.get(automerge::ROOT, "junk").unwrap().unwrap();
        assert_eq!(doc.length(&list), 500);
        assert!(member::read(&doc).is_err());
    }
}
