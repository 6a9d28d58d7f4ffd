//! Card documents kept in memory between catch-ups of a member's card with their ledger
//! (`crate::projection::card`), so a catch-up does not load the card from its stored bytes
//! (Automerge's `load` rebuilds the whole history, and costs more than the catch-up's own edit) and
//! can store only the changes it made instead of the whole document. A phone that stays open syncs
//! after each of its member's purchases, and each of those syncs catches the card up.
//!
//! The stored row stays the truth. An entry is only used by a catch-up that holds the member's
//! lock, and only if the card's stored version (read with the member's book) is the one the entry
//! was made from: any other write — an operator's block, another server instance sharing the
//! database — bumps the version, and the stale entry is dropped. A catch-up takes the entry out of
//! the cache, and puts it back only after its write committed; on any error it is simply dropped,
//! so the cache never holds a change the database does not.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use automerge::{AutoCommit, ChangeHash};

/// The changes a card may append after its whole save however small that save is: about sixty
/// catch-ups' worth.
pub const APPEND_FLOOR: usize = 16 * 1024;

/// A member's card document as stored at `version`.
pub struct CachedCard {
    /// The stored version the document (without changes made since) corresponds to.
    pub version: i64,
    pub doc: AutoCommit,
    /// Heads of what is stored: the next write appends the changes after them.
    pub stored_heads: Vec<ChangeHash>,
    /// Bytes of the whole save at the start of the stored row (0 when unknown, as after a load
    /// from bytes that may already end in appended changes).
    pub base_len: usize,
    /// Bytes of change chunks appended after that save.
    pub tail_len: usize,
}

/// A [`CachedCard`] without its document, while the document is lent out (to a sync's answer):
/// where the document stands in its stored row. [`CardPlace::with`] joins them again.
pub struct CardPlace {
    version: i64,
    stored_heads: Vec<ChangeHash>,
    base_len: usize,
    tail_len: usize,
}

impl CardPlace {
    /// The cached card again, with the document lent out and handed back.
    pub fn with(self, doc: AutoCommit) -> CachedCard {
        CachedCard {
            version: self.version,
            doc,
            stored_heads: self.stored_heads,
            base_len: self.base_len,
            tail_len: self.tail_len,
        }
    }
}

/// How a card's new state is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardSave {
    /// A whole save replaces the stored bytes.
    Whole,
    /// Only the changes since the stored heads are appended to the stored bytes.
    Append,
}

impl CachedCard {
    /// The document, lent out, and the rest of the card to join it with again.
    pub fn lend(self) -> (AutoCommit, CardPlace) {
        let place = CardPlace {
            version: self.version,
            stored_heads: self.stored_heads,
            base_len: self.base_len,
            tail_len: self.tail_len,
        };
        (self.doc, place)
    }

    /// A card just loaded from stored bytes. What they hold is unknown (a save, maybe followed by
    /// appended changes), so the next write is a whole save.
    pub fn loaded(version: i64, mut doc: AutoCommit, stored_len: usize) -> Self {
        let stored_heads = doc.get_heads();
        Self {
            version,
            doc,
            stored_heads,
            base_len: 0,
            tail_len: stored_len,
        }
    }

    /// How the next write stores the card: appended changes while they add up to less than the
    /// whole save they follow or [`APPEND_FLOOR`], whichever is larger, then a whole save again.
    /// That keeps the stored bytes (and what a load reads) under a fresh save plus the larger of
    /// it and the floor, while the cost of whole saves, which grows with the history, is spread
    /// over as many postings as the history is long — and over at least the floor's worth of
    /// them for a small card, whose compressed save is a few kilobytes but costs most of a
    /// millisecond (DEFLATE sets up a compressor per column).
    pub fn next_save(&self) -> CardSave {
        if self.base_len > 0 && self.tail_len < self.base_len.max(APPEND_FLOOR) {
            CardSave::Append
        } else {
            CardSave::Whole
        }
    }

    /// The bytes to store for the changes made since the card was stored, in the given way.
    pub fn bytes(&mut self, how: CardSave) -> Vec<u8> {
        match how {
            CardSave::Whole => self.doc.save(),
            CardSave::Append => self.doc.save_after(&self.stored_heads),
        }
    }

    /// Records that `len` bytes written `how` were stored as the next version.
    pub fn stored(&mut self, how: CardSave, len: usize) {
        self.version += 1;
        self.stored_heads = self.doc.get_heads();
        match how {
            CardSave::Whole => {
                self.base_len = len;
                self.tail_len = 0;
            }
            CardSave::Append => self.tail_len += len,
        }
    }
}

/// A bounded map of member id to [`CachedCard`], least recently used out first. Capacity 0
/// disables it.
pub struct CardCache {
    capacity: usize,
    inner: Mutex<Lru>,
}

#[derive(Default)]
pub(crate) struct Lru {
    /// Member id to (last use, card).
    entries: HashMap<String, (u64, CachedCard)>,
    /// Last use to member id, oldest first.
    order: BTreeMap<u64, String>,
    tick: u64,
}

impl CardCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// Takes the member's card out of the cache if it is cached at `version`. An entry at another
    /// version is stale (someone else wrote the card) and is dropped.
    pub fn take(&self, member_id: &str, version: i64) -> Option<CachedCard> {
        let mut lru = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (used, card) = lru.entries.remove(member_id)?;
        lru.order.remove(&used);
        (card.version == version).then_some(card)
    }

    /// A copy of the member's card if it is cached at `version`, leaving the entry in place: what a
    /// sync of the card answers from instead of loading the stored bytes when another request's
    /// catch-up left the card here (a second device of the member, a sync after the document
    /// endpoint's catch-up; a sync that catches the card up itself answers from its own).
    /// Copying the document costs a fraction of loading it, which rebuilds the whole history.
    pub fn copy(&self, member_id: &str, version: i64) -> Option<AutoCommit> {
        let lru = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (_, card) = lru.entries.get(member_id)?;
        (card.version == version).then(|| card.doc.clone())
    }

    /// Puts back a card after its state was stored; beyond capacity the least recently used entry
    /// goes.
    pub fn put(&self, member_id: &str, card: CachedCard) {
        if self.capacity == 0 {
            return;
        }
        let mut lru = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((old, _)) = lru.entries.insert(member_id.to_string(), (tick, card)) {
            lru.order.remove(&old);
        }
        lru.order.insert(tick, member_id.to_string());
        while lru.entries.len() > self.capacity {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            lru.entries.remove(&oldest);
        }
    }

    /// Forgets the member's card (it was written outside a posting).
    pub fn forget(&self, member_id: &str) {
        let mut lru = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((used, _)) = lru.entries.remove(member_id) {
            lru.order.remove(&used);
        }
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use loyalty_core::DocKind;
    use loyalty_core::document::genesis;

    fn card(version: i64) -> CachedCard {
        let mut doc = genesis(DocKind::Card);
        let len = doc.save().len();
        CachedCard::loaded(version, doc, len)
    }

    #[test]
    fn a_card_is_used_once_and_only_at_its_version() {
        let cache = CardCache::new(4);
        cache.put("m1", card(3));
        // Taken out: a second posting (which could only come after the first put it back)
        // finds nothing.
        assert!(cache.take("m1", 3).is_some());
        assert!(cache.take("m1", 3).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_version_mismatch_drops_the_entry() {
        let cache = CardCache::new(4);
        cache.put("m1", card(3));
        // Someone else stored version 4: the cached copy is stale.
        assert!(cache.take("m1", 4).is_none());
        assert!(cache.is_empty());
        // And it is gone, not kept for a later look at version 3.
        assert!(cache.take("m1", 3).is_none());
    }

    #[test]
    fn forgetting_drops_the_entry() {
        let cache = CardCache::new(4);
        cache.put("m1", card(1));
        cache.forget("m1");
        assert!(cache.take("m1", 1).is_none());
    }

    #[test]
    fn the_least_recently_used_card_goes_first() {
        let cache = CardCache::new(2);
        cache.put("m1", card(1));
        cache.put("m2", card(1));
        // m1 used again: m2 is now the oldest.
        let m1 = cache.take("m1", 1).unwrap();
        cache.put("m1", m1);
        cache.put("m3", card(1));
        assert_eq!(cache.len(), 2);
        assert!(cache.take("m2", 1).is_none());
        assert!(cache.take("m1", 1).is_some());
        assert!(cache.take("m3", 1).is_some());
    }

    #[test]
    fn putting_a_member_twice_keeps_one_entry() {
        let cache = CardCache::new(2);
        cache.put("m1", card(1));
        cache.put("m1", card(2));
        cache.put("m2", card(1));
        assert_eq!(cache.len(), 2);
        assert!(cache.take("m1", 2).is_some());
        assert!(cache.take("m2", 1).is_some());
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = CardCache::new(0);
        cache.put("m1", card(1));
        assert!(cache.take("m1", 1).is_none());
    }

    fn edit(card: &mut CachedCard, i: i64) {
        card.doc.put(automerge::ROOT, "balance", i).unwrap();
        card.doc.commit();
    }

    #[test]
    fn appended_changes_load_as_the_same_document_and_whole_saves_come_back() {
        let mut stored = genesis(DocKind::Card).save();
        let mut c = CachedCard::loaded(1, AutoCommit::load(&stored).unwrap(), stored.len());
        // After a load the next write is whole: the stored bytes may already carry a tail.
        assert_eq!(c.next_save(), CardSave::Whole);
        let mut saw_append = false;
        let mut saw_second_whole = false;
        for i in 0..200 {
            edit(&mut c, i);
            let how = c.next_save();
            let bytes = c.bytes(how);
            match how {
                CardSave::Whole => {
                    saw_second_whole |= saw_append;
                    stored = bytes.clone();
                }
                CardSave::Append => {
                    saw_append = true;
                    stored.extend_from_slice(&bytes);
                }
            }
            c.stored(how, bytes.len());
            assert_eq!(c.version, 2 + i);
            // What is stored loads as exactly the cached document.
            let mut reloaded = AutoCommit::load(&stored).unwrap();
            assert_eq!(reloaded.get_heads(), c.doc.get_heads());
            // Appends stop once the tail reaches the size of the save it follows or the floor:
            // what is stored stays within a fresh save plus the larger of the two (plus the last
            // change).
            let fresh = c.doc.clone().save();
            assert!(stored.len() <= fresh.len() + fresh.len().max(APPEND_FLOOR) + bytes.len());
            assert_eq!(stored.len(), c.base_len + c.tail_len);
        }
        assert!(saw_append && saw_second_whole);
    }

    #[test]
    fn a_small_card_appends_up_to_the_floor_before_saving_whole_again() {
        let stored = genesis(DocKind::Card).save();
        let mut c = CachedCard::loaded(1, AutoCommit::load(&stored).unwrap(), stored.len());
        let mut wholes = 0;
        let mut appended_past_the_save = false;
        for i in 0..400 {
            edit(&mut c, i);
            let how = c.next_save();
            if how == CardSave::Whole {
                wholes += 1;
                assert!(
                    wholes == 1 || c.tail_len >= APPEND_FLOOR,
                    "a second whole save at {} bytes of tail",
                    c.tail_len
                );
            }
            appended_past_the_save |= how == CardSave::Append && c.tail_len > c.base_len;
            let bytes = c.bytes(how);
            c.stored(how, bytes.len());
        }
        assert!(
            c.base_len < APPEND_FLOOR / 4,
            "a small card: {}",
            c.base_len
        );
        assert!(appended_past_the_save && wholes >= 2, "{wholes}");
    }
}
