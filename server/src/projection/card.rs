//! The card document as the projection of the ledger. A posting (a purchase, a refund, the
//! programme's own work) writes only the relational ledger, so the till never waits on Automerge
//! and a card document that cannot be loaded never stops a purchase. The card catches up when it
//! is about to be read — a device's sync, the document endpoint, an operator's view of the member —
//! under the member's lock, with everything that happened since in one change: the recent
//! movements with their reasons, the balance and the standing. `prepare` makes the change;
//! [`catch_up_behind`] stores it by itself, a sync (`crate::service::sync`) in its own commit.
//!
//! `members.card_revision` records which revision of the member's points the card shows; the card
//! is behind while it is lower than `members.revision`, which every posting raises. Checking that is
//! one indexed read, so a sync when nothing happened costs nothing more. Each ledger movement
//! carries the revision it was posted at, so a catch-up reads only the movements above the card's
//! revision — one or two for a live update, whatever the member's history — not the newest fifty.
//!
//! Every catch-up adds a change to the card's history; once the history is past the server's
//! epoch policy, the card starts afresh from its current state (`crate::projection::epochs`).

use crate::locks::Retry;
use automerge::AutoCommit;
use automerge::transaction::CommitOptions;
use loyalty_core::DocKind;
use loyalty_core::calendar::DAY_MS;
use loyalty_core::card::{self, PointsExpiry, RECENT_ENTRIES, Standing};
use loyalty_core::epoch;
use loyalty_core::lots::{self, LotBalance};
use loyalty_core::programme::Programme;
use loyalty_core::tiers::{self, Metric, TierState};

use crate::app::App;
use crate::card_cache::{CachedCard, CardPlace, CardSave};
use crate::error::DomainError;
use crate::projection::documents::load;
use crate::storage::{CardSource, Commit, DocWrite};

/// Expiry dates the card shows.
pub(crate) const EXPIRIES_SHOWN: usize = 3;

/// Brings the member's card document up to their ledger, if it is behind. Returns whether it
/// wrote the card.
pub async fn catch_up(app: &App, member_id: &str) -> Result<bool, DomainError> {
    if !app.storage.card_behind(member_id).await? {
        return Ok(false);
    }
    catch_up_behind(app, member_id).await
}

/// As [`catch_up`], for a caller that has just read that the card is behind (the sync check):
/// the check is not read again before the lock; under it, the member's book says whether another
/// request caught the card up meanwhile.
pub async fn catch_up_behind(app: &App, member_id: &str) -> Result<bool, DomainError> {
    let programme = app.programme().await?;
    let _guard = app.lock_member(member_id).await;
    let mut retry = Retry::default();
    loop {
        retry.another()?;
        match prepare(app, &programme, member_id).await? {
            Prepared::UpToDate => return Ok(false),
            Prepared::Unchanged(card) => {
                card.store(app, member_id).await?;
                return Ok(false);
            }
            Prepared::Changed(doc, catch_up, write) => {
                match catch_up.store(*doc, write, app, member_id).await? {
                    Commit::Committed => return Ok(true),
                    Commit::Conflict => continue,
                }
            }
        }
    }
}

/// A catch-up of the card made under the member's lock and not stored yet (see [`prepare`]).
pub(crate) enum Prepared {
    /// The card already shows the member's revision: another request caught it up.
    UpToDate,
    /// Nothing to show (a revision that changed no points, such as a block): only the revision
    /// the card shows moves on.
    Unchanged(Box<UnchangedCard>),
    /// The card's document with the catch-up's change, the rest of the card, and the write that
    /// stores the change.
    Changed(Box<AutoCommit>, CardCatchUp, DocWrite),
}

/// A card the catch-up found nothing to show on, and the revision it shows even so.
pub(crate) struct UnchangedCard {
    card: CachedCard,
    revision: i64,
}

impl UnchangedCard {
    /// Records the revision and puts the card back into the cache. No document is written, so
    /// there is no version to lose: it always commits.
    pub(crate) async fn store(self, app: &App, member_id: &str) -> Result<(), DomainError> {
        let _always_committed = app
            .storage
            .store_card(member_id, None, self.revision)
            .await?;
        app.cards.put(member_id, self.card);
        Ok(())
    }
}

/// A catch-up's change made on the card's document (given beside it, so a sync can lend the
/// document to its answer): its write stores the change appended (or a whole save) at the
/// version the card was read at, and moves the member's card revision with it.
pub(crate) struct CardCatchUp {
    place: CardPlace,
    /// The member's points revision the card shows with the change.
    pub revision: i64,
    /// The card's history is past the epoch policy with the change: once stored, it starts afresh.
    pub due: bool,
    save: CardSave,
    saved_len: usize,
}

impl CardCatchUp {
    /// Stores the change by itself (not with a sync's commit), then as [`Self::stored`]. On a
    /// conflict or an error the card is dropped with the change the database did not take.
    pub(crate) async fn store(
        self,
        doc: AutoCommit,
        write: DocWrite,
        app: &App,
        member_id: &str,
    ) -> Result<Commit, DomainError> {
        let committed = app
            .storage
            .store_card(member_id, Some(write), self.revision)
            .await?;
        if committed == Commit::Committed {
            self.stored(doc, app, member_id).await;
        }
        Ok(committed)
    }

    /// After the catch-up's write committed: the card (`doc` and the rest), now the stored
    /// version, goes back into the card cache — or, once its history is past the policy, starts
    /// afresh (the cached copy, of the old epoch, is dropped with it). The catch-up itself is
    /// stored either way.
    pub(crate) async fn stored(self, doc: AutoCommit, app: &App, member_id: &str) {
        let mut card = self.place.with(doc);
        card.stored(self.save, self.saved_len);
        if self.due {
            if let Err(e) = crate::projection::epochs::renew(app, member_id, &[DocKind::Card]).await
            {
                tracing::warn!(member = %member_id, code = e.code, "the card could not start afresh");
            }
            return;
        }
        app.cards.put(member_id, card);
    }
}

/// Under the member's lock: reads what the card has not shown yet and shows it on the card (the
/// cached copy, or the stored one), as one change that is not stored yet.
pub(crate) async fn prepare(
    app: &App,
    programme: &Programme,
    member_id: &str,
) -> Result<Prepared, DomainError> {
    let now = app.now_ms();
    let window_start = now.saturating_sub(programme.tiers.window_days * DAY_MS);
    let source = app
        .storage
        .card_source(
            member_id,
            programme.tiers.metric,
            window_start,
            RECENT_ENTRIES,
        )
        .await?
        .ok_or_else(|| DomainError::not_found("member_not_found", "no such member"))?;
    let revision = source.book.revision;
    if source.book.card_revision >= revision {
        return Ok(Prepared::UpToDate);
    }
    let mut card = card_document(app, member_id, source.book.card_version).await?;
    if !show(programme, &mut card, &source, now)? {
        return Ok(Prepared::Unchanged(Box::new(UnchangedCard {
            card,
            revision,
        })));
    }
    let due = history_due(app, &mut card);
    let save = card.next_save();
    let bytes = card.bytes(save);
    let saved_len = bytes.len();
    let write = DocWrite {
        kind: DocKind::Card,
        expected_version: card.version,
        bytes,
        append: save == CardSave::Append,
        new_epoch: None,
        summary: Some(crate::projection::documents::summary(&mut card.doc)),
        shows_revision: Some(revision),
    };
    let (doc, place) = card.lend();
    Ok(Prepared::Changed(
        Box::new(doc),
        CardCatchUp {
            place,
            revision,
            due,
            save,
            saved_len,
        },
        write,
    ))
}

/// Whether the card's history is due for a new epoch by the server's policy.
pub(crate) fn history_due(app: &App, card: &mut CachedCard) -> bool {
    let stats = automerge::ReadDoc::stats(&card.doc);
    let doc = &mut card.doc;
    epoch::due(&app.config.epochs, stats.num_ops, stats.num_changes, || {
        epoch::live_ops(&doc.save())
    })
}

/// Writes what the ledger says now into the card, as one change; whether there was anything to
/// change.
pub(crate) fn show(
    programme: &Programme,
    card: &mut CachedCard,
    source: &CardSource,
    now: i64,
) -> Result<bool, DomainError> {
    let mut tier = source.book.state.tier.clone();
    with_review_date(programme, &mut tier);
    let standing = standing(
        programme,
        &tier,
        source.book.qualifying,
        &source.balances,
        now,
    );
    card::show(
        &mut card.doc,
        &source.unseen,
        lots::available(source.balances.iter().copied(), now),
        &tier.tier,
        &standing,
    )
    .map_err(|e| DomainError::internal("projecting the ledger", e))?;
    Ok(card
        .doc
        .commit_with(CommitOptions::default().with_time(now / 1000))
        .is_some())
}

/// What the card shows about the member's standing, from what their open lots hold.
pub fn standing(
    programme: &Programme,
    tier: &TierState,
    qualifying: i64,
    balances: &[LotBalance],
    now: i64,
) -> Standing {
    let def = programme.tiers.get(&tier.tier);
    let progress = tiers::progress(&programme.tiers, tier, qualifying);
    Standing {
        tier_name: def.map_or_else(|| tier.tier.clone(), |t| t.name.clone()),
        tier_manual: tier.manual,
        tier_benefits: def.map(|t| t.benefits.clone()).unwrap_or_default(),
        metric: match progress.metric {
            Metric::Spend => "spend".into(),
            Metric::Points => "points".into(),
        },
        qualifying,
        next_tier_name: progress.next_tier_name,
        needed: progress.needed,
        review_at_ms: tier.review_at_ms,
        downgrade_at_ms: tier.downgrade_at_ms,
        pending: lots::pending(balances.iter().copied(), now),
        expiries: lots::next_expiries(balances.iter().copied(), now, EXPIRIES_SHOWN)
            .into_iter()
            .map(|(at_ms, points)| PointsExpiry { at_ms, points })
            .collect(),
    }
}

/// The member's card document as stored: the cached copy when it is at the version read with the
/// member's book, else loaded from the database.
pub(crate) async fn card_document(
    app: &App,
    member_id: &str,
    version: Option<i64>,
) -> Result<CachedCard, DomainError> {
    if let Some(card) = version.and_then(|v| app.cards.take(member_id, v)) {
        return Ok(card);
    }
    let stored = app
        .storage
        .load_documents(member_id, &[DocKind::Card])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| DomainError::internal("card", "member has no card document"))?;
    let mut doc = load(DocKind::Card, &stored.bytes)?;
    doc.set_actor(app.actor.clone());
    Ok(CachedCard::loaded(stored.version, doc, stored.bytes.len()))
}

/// A member who never had a review date (new, or from before the programme) gets one from the day
/// they reached their tier.
pub fn with_review_date(programme: &Programme, tier: &mut TierState) {
    if tier.review_at_ms == 0 {
        tier.review_at_ms = tier
            .since_ms
            .saturating_add(programme.tiers.review_days * DAY_MS);
    }
}
