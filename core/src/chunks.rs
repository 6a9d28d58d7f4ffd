//! Reading Automerge's binary chunks just far enough to know how much work they hold — how many
//! changes, operations and references between operations — **without expanding them**, so a
//! request can be refused before Automerge applies it.
//!
//! Why this exists: Automerge stores operations in columns, each run-length or delta encoded. A
//! run of one million identical operations takes a few bytes, and Automerge's own count of a
//! change's operations (`Change::len`) is computed by decoding every one of them while it verifies
//! the change. A 150-byte change can hold a million operations; ten million cost the same bytes.
//! Here the rows of a column are counted by adding up run lengths, so the cost is bounded by the
//! bytes received, never by what they expand to. No crate does this (automerge keeps its storage
//! layer private), so it is done here, against the format as automerge 0.12 writes and reads it
//! (`storage/change.rs`, `storage/document.rs`, `columnar/encoding/*.rs`): see
//! <https://alexjg.github.io/automerge-storage-docs/>.
//!
//! What is counted, per chunk type:
//!
//! * **change** (type 1): one change; its operations are the rows of the action column (Automerge
//!   iterates exactly those); its references are the sum of the predecessor group column.
//! * **compressed change** (type 2): inflated with a cap (Automerge inflates without one), then
//!   counted as a change.
//! * **document** (type 0, a whole save; a version-2 sync message may carry one): changes are the
//!   rows of the change columns, operations the rows of the operation columns, references the sum
//!   of the successor group column; compressed columns are inflated with the same cap. The
//!   changes' operation ranges (what Automerge allocates room for when it rebuilds the changes)
//!   are checked against the operations actually present.
//! * **bundle** (type 3): refused; no client of ours makes one and Automerge's sync never sends one.
//!
//! Every count is checked against a [`Budget`] as soon as it is known, so a scan stops early.

use std::borrow::Cow;
use std::io::Read;

/// The first four bytes of every Automerge chunk.
pub const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// The most a scan may count before it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_changes: u64,
    pub max_ops: u64,
    /// Predecessor, successor and dependency references.
    pub max_refs: u64,
    /// Bytes that compressed chunks and columns may inflate to, in all.
    pub max_inflated: u64,
}

/// What the chunks scanned so far hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub chunks: u64,
    /// Whole-document chunks among them.
    pub documents: u64,
    pub changes: u64,
    pub ops: u64,
    pub refs: u64,
    /// Operations nothing has overwritten or deleted (document chunks; a change's operations all
    /// count): about what a fresh document of the same state would hold.
    pub live: u64,
    pub inflated: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("not an Automerge chunk: {0}")]
    Malformed(&'static str),
    #[error("bundle chunks are not accepted")]
    Bundle,
    #[error("{what} exceed the limit of {limit}")]
    OverBudget { what: &'static str, limit: u64 },
}

fn malformed(what: &'static str) -> ChunkError {
    ChunkError::Malformed(what)
}

/// Column specifications: `id << 4 | type`, bit 3 set when the column is deflated.
mod spec {
    pub const DEFLATE: u32 = 0b1000;
    // Change chunks.
    pub const CHANGE_ACTION: u32 = 4 << 4 | 2;
    pub const CHANGE_PRED_GROUP: u32 = 7 << 4;
    // Document chunks: operations.
    pub const DOC_ID_ACTOR: u32 = 2 << 4 | 1;
    pub const DOC_ID_COUNTER: u32 = 2 << 4 | 3;
    pub const DOC_ACTION: u32 = 4 << 4 | 2;
    pub const DOC_SUCC_GROUP: u32 = 8 << 4;
    // Document chunks: changes.
    pub const DOC_CHANGE_ACTOR: u32 = 1;
    pub const DOC_CHANGE_SEQ: u32 = 3;
    pub const DOC_CHANGE_MAX_OP: u32 = 1 << 4 | 3;
    pub const DOC_CHANGE_DEPS_GROUP: u32 = 4 << 4;
    pub const DOC_CHANGE_DEPS_INDEX: u32 = 4 << 4 | 3;
    /// The column's type, the low three bits.
    pub fn kind(spec: u32) -> u32 {
        spec & 0b111
    }
}

/// A cursor over bytes being scanned; every read checks what is left.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn take(&mut self, n: u64) -> Result<&'a [u8], ChunkError> {
        let n = usize::try_from(n).map_err(|_| malformed("a length runs past the end"))?;
        if n > self.buf.len() {
            return Err(malformed("a length runs past the end"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn byte(&mut self) -> Result<u8, ChunkError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn uleb(&mut self) -> Result<u64, ChunkError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(malformed("a number is too large"));
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("a number is too large"))
    }

    pub(crate) fn sleb(&mut self) -> Result<i64, ChunkError> {
        let mut value: i64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            value |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
            if shift >= 70 {
                return Err(malformed("a number is too large"));
            }
        }
    }

    /// A uLEB length followed by that many bytes.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], ChunkError> {
        let n = self.uleb()?;
        self.take(n)
    }

    /// A uLEB count followed by that many 32-byte hashes.
    pub(crate) fn hashes(&mut self) -> Result<u64, ChunkError> {
        let n = self.uleb()?;
        let len = n
            .checked_mul(32)
            .ok_or_else(|| malformed("a length runs past the end"))?;
        self.take(len)?;
        Ok(n)
    }

    /// A uLEB count of actor ids, each a uLEB length and its bytes.
    pub(crate) fn actors(&mut self) -> Result<u64, ChunkError> {
        let n = self.uleb()?;
        for _ in 0..n {
            self.bytes()?;
        }
        Ok(n)
    }

    /// Column metadata: a uLEB count of (uLEB spec, uLEB length) pairs.
    pub(crate) fn columns(&mut self) -> Result<Vec<(u32, u64)>, ChunkError> {
        let n = self.uleb()?;
        let mut out = Vec::new();
        for _ in 0..n {
            let spec = u32::try_from(self.uleb()?).map_err(|_| malformed("a column spec"))?;
            out.push((spec, self.uleb()?));
        }
        Ok(out)
    }
}

/// Scans `bytes`, which hold zero or more whole chunks, adding what they hold to `tally` and
/// refusing as soon as it goes over `budget`.
pub fn scan(bytes: &[u8], budget: &Budget, tally: &mut Tally) -> Result<(), ChunkError> {
    let mut c = Cursor::new(bytes);
    while !c.is_empty() {
        if c.take(4)? != MAGIC {
            return Err(malformed("bad magic bytes"));
        }
        c.take(4)?; // checksum: Automerge checks it
        let chunk_type = c.byte()?;
        let data = c.bytes()?;
        tally.chunks += 1;
        match chunk_type {
            0 => document(data, budget, tally)?,
            1 => change(data, budget, tally)?,
            2 => {
                let inflated = inflate(data, budget, tally)?;
                change(&inflated, budget, tally)?;
            }
            3 => return Err(ChunkError::Bundle),
            _ => return Err(malformed("unknown chunk type")),
        }
    }
    Ok(())
}

/// Inflates a deflated chunk or column, counting its bytes against the budget: Automerge itself
/// inflates without any limit.
fn inflate(data: &[u8], budget: &Budget, tally: &mut Tally) -> Result<Vec<u8>, ChunkError> {
    let left = budget.max_inflated.saturating_sub(tally.inflated);
    let mut out = Vec::new();
    flate2::bufread::DeflateDecoder::new(data)
        .take(left.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|_| malformed("a compressed chunk or column does not inflate"))?;
    tally.inflated = tally.inflated.saturating_add(out.len() as u64);
    check(tally.inflated, budget.max_inflated, "inflated bytes")?;
    Ok(out)
}

fn check(value: u64, limit: u64, what: &'static str) -> Result<(), ChunkError> {
    if value > limit {
        return Err(ChunkError::OverBudget { what, limit });
    }
    Ok(())
}

fn add_checked(total: &mut u64, n: u64, limit: u64, what: &'static str) -> Result<(), ChunkError> {
    *total = total.saturating_add(n);
    check(*total, limit, what)
}

/// Slices the data of each column described by `meta` out of `c`, in order.
fn column_data<'a>(
    c: &mut Cursor<'a>,
    meta: &[(u32, u64)],
) -> Result<Vec<(u32, &'a [u8])>, ChunkError> {
    meta.iter()
        .map(|&(spec, len)| Ok((spec, c.take(len)?)))
        .collect()
}

/// A change chunk's data (everything after the header).
fn change(data: &[u8], budget: &Budget, tally: &mut Tally) -> Result<(), ChunkError> {
    let mut c = Cursor::new(data);
    c.hashes()?; // dependencies
    c.bytes()?; // actor
    c.uleb()?; // seq
    c.uleb()?; // start op
    c.sleb()?; // time
    c.bytes()?; // message
    c.actors()?; // other actors
    let meta = c.columns()?;
    let columns = column_data(&mut c, &meta)?;
    // Automerge refuses compressed columns inside a change chunk.
    if columns.iter().any(|(s, _)| s & spec::DEFLATE != 0) {
        return Err(malformed("compressed columns in a change"));
    }
    let find = |wanted: u32| columns.iter().find(|(s, _)| *s == wanted).map(|(_, d)| *d);
    add_checked(&mut tally.changes, 1, budget.max_changes, "changes")?;
    let ops = find(spec::CHANGE_ACTION).map_or(Ok(0), rows_rle)?;
    add_checked(&mut tally.ops, ops, budget.max_ops, "operations")?;
    tally.live = tally.live.saturating_add(ops);
    let preds = find(spec::CHANGE_PRED_GROUP).map_or(Ok(0), sum_rle)?;
    add_checked(&mut tally.refs, preds, budget.max_refs, "references")
}

/// A document chunk's data (everything after the header).
fn document(data: &[u8], budget: &Budget, tally: &mut Tally) -> Result<(), ChunkError> {
    let mut c = Cursor::new(data);
    c.actors()?;
    c.hashes()?; // heads
    let change_meta = c.columns()?;
    let op_meta = c.columns()?;
    let change_cols = column_data(&mut c, &change_meta)?;
    let op_cols = column_data(&mut c, &op_meta)?;
    // What follows (the heads' indexes) holds no work.
    let change_cols = inflate_columns(change_cols, budget, tally)?;
    let op_cols = inflate_columns(op_cols, budget, tally)?;
    tally.documents += 1;

    let mut changes = 0;
    for s in [
        spec::DOC_CHANGE_ACTOR,
        spec::DOC_CHANGE_SEQ,
        spec::DOC_CHANGE_MAX_OP,
    ] {
        changes = changes.max(rows(find(&change_cols, s), spec::kind(s))?);
    }
    add_checked(&mut tally.changes, changes, budget.max_changes, "changes")?;

    let mut ops = 0;
    for s in [spec::DOC_ID_ACTOR, spec::DOC_ID_COUNTER, spec::DOC_ACTION] {
        ops = ops.max(rows(find(&op_cols, s), spec::kind(s))?);
    }
    add_checked(&mut tally.ops, ops, budget.max_ops, "operations")?;

    let succ = find(&op_cols, spec::DOC_SUCC_GROUP);
    let succs = sum_rle(succ)?;
    let deps_group = find(&change_cols, spec::DOC_CHANGE_DEPS_GROUP);
    let deps = sum_rle(deps_group)?;
    add_checked(
        &mut tally.refs,
        succs.saturating_add(deps),
        budget.max_refs,
        "references",
    )?;
    // Rows without a successor; a succ column shorter than the operations reads as zeros.
    let succ_rows = rows_rle(succ)?;
    let live = zeros_rle(succ)?.saturating_add(ops.saturating_sub(succ_rows));
    tally.live = tally.live.saturating_add(live.min(ops));

    // When Automerge rebuilds the changes of a document it reserves, for each change, room for
    // `max_op - max(max_op of its dependencies)` operations. An honest document's changes hold
    // exactly the operations it stores plus its deletions (each one a successor reference), so
    // the total can be checked without trusting the claim.
    let max_ops = expand_delta(find(&change_cols, spec::DOC_CHANGE_MAX_OP), changes)?;
    let dep_counts = expand_uleb(deps_group, changes)?;
    let dep_index = expand_delta(find(&change_cols, spec::DOC_CHANGE_DEPS_INDEX), deps)?;
    let claimed = claimed_ops(&max_ops, &dep_counts, &dep_index)?;
    if claimed > ops.saturating_add(succs) {
        return Err(malformed("its changes claim more operations than it holds"));
    }
    Ok(())
}

/// The data of the column `wanted` among `cols`; an absent column is empty.
fn find<'c>(cols: &'c [(u32, Cow<'_, [u8]>)], wanted: u32) -> &'c [u8] {
    cols.iter()
        .find(|(s, _)| *s == wanted)
        .map_or(&[][..], |(_, d)| d.as_ref())
}

/// Σ over changes of `max_op - max(max_op of its dependencies)`, as Automerge computes each
/// change's length when it loads a document.
fn claimed_ops(max_ops: &[i64], dep_counts: &[u64], dep_index: &[i64]) -> Result<u64, ChunkError> {
    let mut deps = dep_index.iter();
    let mut total: u64 = 0;
    for (i, &max_op) in max_ops.iter().enumerate() {
        let mut floor: i64 = 0;
        for _ in 0..dep_counts.get(i).copied().unwrap_or(0) {
            let dep = deps
                .next()
                .and_then(|&d| usize::try_from(d).ok())
                .and_then(|d| max_ops.get(d))
                .ok_or_else(|| malformed("a change depends on a change it does not hold"))?;
            floor = floor.max(*dep);
        }
        let own = max_op
            .checked_sub(floor)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| malformed("a change's operations go backwards"))?;
        total = total.saturating_add(own);
    }
    Ok(total)
}

/// Columns by spec, their data inflated when it was compressed.
type Columns<'a> = Vec<(u32, Cow<'a, [u8]>)>;

/// Inflates the deflated columns among `cols`.
fn inflate_columns<'a>(
    cols: Vec<(u32, &'a [u8])>,
    budget: &Budget,
    tally: &mut Tally,
) -> Result<Columns<'a>, ChunkError> {
    cols.into_iter()
        .map(|(s, d)| {
            if s & spec::DEFLATE != 0 {
                Ok((s & !spec::DEFLATE, Cow::Owned(inflate(d, budget, tally)?)))
            } else {
                Ok((s, Cow::Borrowed(d)))
            }
        })
        .collect()
}

/// Column encodings by the type bits of a column spec.
const BOOLEAN: u32 = 4;
const STRING: u32 = 5;
const VALUE: u32 = 7;

/// The rows a column holds, whatever its encoding.
fn rows(data: &[u8], kind: u32) -> Result<u64, ChunkError> {
    match kind {
        BOOLEAN => rows_boolean(data),
        STRING => count_runs(data, Value::String, |_| Ok(())),
        VALUE => Ok(0),
        _ => rows_rle(data),
    }
}

/// How the values of a run-length encoded column are written.
#[derive(Clone, Copy)]
enum Value {
    /// LEB128 numbers (signed or unsigned take the same bytes).
    Number,
    /// A uLEB length and that many bytes.
    String,
}

/// One run of a run-length encoded column.
enum Run<'a> {
    /// `count` copies of the value in these bytes.
    Repeat(u64, &'a [u8]),
    /// `count` values, one after the other, in these bytes.
    Literal(u64, &'a [u8]),
    Nulls(u64),
}

/// Walks the runs of a run-length encoded column, calling `f` on each, and returns its rows. A
/// run is a signed count: positive, that many copies of one value; negative, that many values
/// written out; zero, then an unsigned count of nulls.
fn count_runs(
    data: &[u8],
    value: Value,
    mut f: impl FnMut(Run<'_>) -> Result<(), ChunkError>,
) -> Result<u64, ChunkError> {
    let mut c = Cursor::new(data);
    let mut rows: u64 = 0;
    while !c.is_empty() {
        let count = c.sleb()?;
        let n = count.unsigned_abs();
        let run = if count > 0 {
            let start = c.buf;
            skip_value(&mut c, value)?;
            Run::Repeat(n, &start[..start.len() - c.buf.len()])
        } else if count < 0 {
            let start = c.buf;
            for _ in 0..n {
                skip_value(&mut c, value)?;
            }
            Run::Literal(n, &start[..start.len() - c.buf.len()])
        } else {
            Run::Nulls(c.uleb()?)
        };
        rows = rows.saturating_add(match run {
            Run::Repeat(n, _) | Run::Literal(n, _) | Run::Nulls(n) => n,
        });
        f(run)?;
    }
    Ok(rows)
}

fn skip_value(c: &mut Cursor<'_>, value: Value) -> Result<(), ChunkError> {
    match value {
        Value::Number => c.sleb().map(|_| ()),
        Value::String => c.bytes().map(|_| ()),
    }
}

fn rows_rle(data: &[u8]) -> Result<u64, ChunkError> {
    count_runs(data, Value::Number, |_| Ok(()))
}

/// Boolean columns are alternating uLEB run lengths, falses first.
fn rows_boolean(data: &[u8]) -> Result<u64, ChunkError> {
    let mut c = Cursor::new(data);
    let mut rows: u64 = 0;
    while !c.is_empty() {
        rows = rows.saturating_add(c.uleb()?);
    }
    Ok(rows)
}

/// The sum of an unsigned run-length encoded column (a group column: how many entries each row
/// has in the columns grouped under it).
fn sum_rle(data: &[u8]) -> Result<u64, ChunkError> {
    let mut sum: u64 = 0;
    count_runs(data, Value::Number, |run| {
        match run {
            Run::Repeat(n, v) => sum = sum.saturating_add(n.saturating_mul(Cursor::new(v).uleb()?)),
            Run::Literal(n, v) => {
                let mut c = Cursor::new(v);
                for _ in 0..n {
                    sum = sum.saturating_add(c.uleb()?);
                }
            }
            Run::Nulls(_) => {}
        }
        Ok(())
    })?;
    Ok(sum)
}

/// Rows of an unsigned run-length encoded column that are zero or null.
fn zeros_rle(data: &[u8]) -> Result<u64, ChunkError> {
    let mut zeros: u64 = 0;
    count_runs(data, Value::Number, |run| {
        match run {
            Run::Repeat(n, v) => {
                if Cursor::new(v).uleb()? == 0 {
                    zeros = zeros.saturating_add(n);
                }
            }
            Run::Literal(n, v) => {
                let mut c = Cursor::new(v);
                for _ in 0..n {
                    if c.uleb()? == 0 {
                        zeros += 1;
                    }
                }
            }
            Run::Nulls(n) => zeros = zeros.saturating_add(n),
        }
        Ok(())
    })?;
    Ok(zeros)
}

/// The values of a run-length encoded column of unsigned numbers, which must hold `rows` rows
/// (already checked against the budget, so expanding them is bounded). Nulls read as 0.
fn expand_uleb(data: &[u8], rows: u64) -> Result<Vec<u64>, ChunkError> {
    let mut out = Vec::new();
    count_runs(data, Value::Number, |run| {
        let room = rows.saturating_sub(out.len() as u64);
        match run {
            Run::Repeat(n, v) => {
                let v = Cursor::new(v).uleb()?;
                out.extend(std::iter::repeat_n(v, n.min(room) as usize));
            }
            Run::Literal(n, v) => {
                let mut c = Cursor::new(v);
                for _ in 0..n.min(room) {
                    out.push(c.uleb()?);
                }
            }
            Run::Nulls(n) => out.extend(std::iter::repeat_n(0, n.min(room) as usize)),
        }
        Ok(())
    })?;
    Ok(out)
}

/// The values of a delta encoded column (run-length encoded signed differences, each added to
/// the previous value), at most `rows` of them. Nulls read as the running value.
fn expand_delta(data: &[u8], rows: u64) -> Result<Vec<i64>, ChunkError> {
    let mut out = Vec::new();
    let mut current: i64 = 0;
    count_runs(data, Value::Number, |run| {
        let room = rows.saturating_sub(out.len() as u64);
        match run {
            Run::Repeat(n, v) => {
                let d = Cursor::new(v).sleb()?;
                for _ in 0..n.min(room) {
                    current = current.saturating_add(d);
                    out.push(current);
                }
            }
            Run::Literal(n, v) => {
                let mut c = Cursor::new(v);
                for _ in 0..n.min(room) {
                    current = current.saturating_add(c.sleb()?);
                    out.push(current);
                }
            }
            Run::Nulls(n) => out.extend(std::iter::repeat_n(current, n.min(room) as usize)),
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ObjType, ReadDoc};
    use proptest::prelude::*;

    const ROOMY: Budget = Budget {
        max_changes: u64::MAX,
        max_ops: u64::MAX,
        max_refs: u64::MAX,
        max_inflated: 64 << 20,
    };

    fn tally(bytes: &[u8]) -> Tally {
        let mut t = Tally::default();
        scan(bytes, &ROOMY, &mut t).unwrap();
        t
    }

    #[test]
    fn run_length_columns_are_counted_without_expanding() {
        // 1,000,000 copies of 1, three literals, five nulls.
        let mut col = Vec::new();
        col.extend([0xc0, 0x84, 0x3d, 0x01]); // sLEB 1_000_000, value 1
        col.extend([0x7d, 0x02, 0x03, 0x04]); // -3, then 2, 3, 4
        col.extend([0x00, 0x05]); // 5 nulls
        assert_eq!(rows_rle(&col).unwrap(), 1_000_008);
        assert_eq!(sum_rle(&col).unwrap(), 1_000_009);
        assert_eq!(zeros_rle(&col).unwrap(), 5);
        assert_eq!(rows_boolean(&[0x02, 0x03, 0x00, 0x04]).unwrap(), 9);
    }

    #[test]
    fn broken_columns_are_refused_not_guessed() {
        // A literal run of three with two values.
        assert!(rows_rle(&[0x7d, 0x01, 0x02]).is_err());
        // A repeat run without its value.
        assert!(rows_rle(&[0x05]).is_err());
        // A number that never ends.
        assert!(rows_rle(&[0xff; 12]).is_err());
    }

    #[test]
    fn a_change_made_by_automerge_counts_as_automerge_counts_it() {
        let mut doc = AutoCommit::new();
        for i in 0..50 {
            doc.put(automerge::ROOT, "k", i).unwrap();
        }
        let list = doc.put_object(automerge::ROOT, "l", ObjType::List).unwrap();
        for i in 0..30 {
            doc.insert(&list, i, "x").unwrap();
        }
        doc.commit();
        let change = doc.get_last_local_change().unwrap();
        let t = tally(change.raw_bytes());
        assert_eq!((t.changes, t.ops), (1, change.len() as u64));
        assert_eq!(t.refs, 49);
    }

    #[test]
    fn a_saved_document_counts_its_changes_operations_and_live_ones() {
        let mut doc = AutoCommit::new();
        for i in 0..10 {
            doc.put(automerge::ROOT, "k", i).unwrap();
            doc.commit();
        }
        let t = tally(&doc.save());
        assert_eq!((t.documents, t.changes, t.ops), (1, 10, 10));
        assert_eq!(t.live, 1);
        assert_eq!(t.refs, 9 + 9);
    }

    #[test]
    fn bundles_and_strangers_are_refused() {
        let mut chunk = MAGIC.to_vec();
        chunk.extend([0, 0, 0, 0, 3, 0]);
        assert_eq!(
            scan(&chunk, &ROOMY, &mut Tally::default()),
            Err(ChunkError::Bundle)
        );
        chunk[8] = 9;
        assert!(matches!(
            scan(&chunk, &ROOMY, &mut Tally::default()),
            Err(ChunkError::Malformed(_))
        ));
        assert!(scan(b"hello", &ROOMY, &mut Tally::default()).is_err());
    }

    #[test]
    fn a_compressed_chunk_may_not_inflate_past_the_budget() {
        let mut doc = AutoCommit::new();
        let text = "a fairly repetitive string ".repeat(200);
        doc.put(automerge::ROOT, "k", text.as_str()).unwrap();
        doc.commit();
        let mut change = doc.get_last_local_change().unwrap();
        let compressed = change.bytes().into_owned();
        assert_ne!(compressed, change.raw_bytes(), "automerge compressed it");
        assert_eq!(tally(&compressed).ops, 1);
        let small = Budget {
            max_inflated: 100,
            ..ROOMY
        };
        assert!(matches!(
            scan(&compressed, &small, &mut Tally::default()),
            Err(ChunkError::OverBudget { .. })
        ));
    }

    /// An edit of a random kind on a small document: maps, lists, text, deletes and counters.
    fn edit(doc: &mut AutoCommit, step: (u8, u8, u8)) {
        let (what, key, val) = step;
        let key = format!("k{}", key % 5);
        let list = match doc.get(automerge::ROOT, "list").unwrap() {
            Some((_, id)) => id,
            None => doc
                .put_object(automerge::ROOT, "list", ObjType::List)
                .unwrap(),
        };
        let len = doc.length(&list);
        match what % 6 {
            0 => doc.put(automerge::ROOT, key, i64::from(val)).unwrap(),
            1 => doc.put(automerge::ROOT, key, "a string").unwrap(),
            2 => doc
                .insert(&list, usize::from(val) % (len + 1), i64::from(val))
                .unwrap(),
            3 if len > 0 => doc.delete(&list, usize::from(val) % len).unwrap(),
            4 => {
                doc.put_object(automerge::ROOT, key, ObjType::Map).unwrap();
            }
            _ => doc.delete(automerge::ROOT, key).unwrap(),
        }
        if val % 3 == 0 {
            doc.commit();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The counter agrees with Automerge's own count on every change Automerge makes, and a
        /// saved document's changes and operations agree with the document's statistics.
        #[test]
        fn counts_agree_with_automerge(steps in proptest::collection::vec(any::<(u8, u8, u8)>(), 1..120)) {
            let mut doc = AutoCommit::new();
            let mut other = AutoCommit::new();
            for (i, step) in steps.iter().enumerate() {
                // Two writers now and then, so histories branch and merge.
                if i % 7 == 3 {
                    edit(&mut other, *step);
                    other.commit();
                    doc.merge(&mut other).unwrap();
                } else {
                    edit(&mut doc, *step);
                }
            }
            doc.commit();
            for change in doc.get_changes(&[]) {
                let t = tally(change.raw_bytes());
                prop_assert_eq!(t.ops, change.len() as u64);
                let preds: usize = change.decode().operations.iter().map(|o| o.pred.len()).sum();
                prop_assert_eq!(t.refs, preds as u64);
            }
            let stats = doc.stats();
            let t = tally(&doc.save());
            prop_assert_eq!(t.changes, stats.num_changes);
            prop_assert_eq!(t.ops, stats.num_ops);
            let reloaded = AutoCommit::load(&doc.save()).unwrap();
            prop_assert_eq!(reloaded.stats().num_ops, t.ops);
        }

        #[test]
        fn scanning_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let budget = Budget { max_changes: 10_000, max_ops: 1_000_000, max_refs: 1_000_000, max_inflated: 1 << 20 };
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend(&bytes);
            let _ = scan(&bytes, &budget, &mut Tally::default());
            let _ = scan(&with_magic, &budget, &mut Tally::default());
        }
    }
}
