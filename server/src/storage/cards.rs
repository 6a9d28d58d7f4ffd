//! What serving a shopper by card number needs stored: plastic cards linked to members (and lost),
//! checkout sessions opened without a code, the member's till PIN with its wrong tries and lock,
//! and which sessions had their PIN entered.
//! A PIN try is reserved before it is checked ([`CardStore::take_pin_try`]), so simultaneous
//! guesses never get more tries than the policy allows.

use async_trait::async_trait;

use loyalty_core::api::{LinkedCard, LinkedCardStatus};

use crate::storage::{CheckoutSession, StorageError, TillMember};

/// What [`CardStore::link_card`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CardLink {
    Linked,
    /// Linked to this member already: nothing changed.
    Already,
    /// Another member's card, or a number reported lost: nothing changed.
    Taken,
}

/// What [`CardStore::take_pin_try`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum PinTry {
    /// The member set no PIN.
    NoPin,
    /// Too many wrong tries: locked until then (`None`: the last tries are still being checked).
    Locked { until_ms: Option<i64> },
    /// A try is reserved: check the PIN against this stored hash, then report the result.
    Check { hash: String },
}

#[async_trait]
pub trait CardStore: Send + Sync + 'static {
    /// Links a plastic card number to the member, atomically against another link of it.
    async fn link_card(
        &self,
        member_id: &str,
        card_number: &str,
        now_ms: i64,
    ) -> Result<CardLink, StorageError>;

    /// Marks a card linked to the member lost; false if it is not one of theirs.
    async fn report_card_lost(
        &self,
        member_id: &str,
        card_number: &str,
    ) -> Result<bool, StorageError>;

    /// The member's linked cards, in the order they were linked.
    async fn linked_cards(&self, member_id: &str) -> Result<Vec<LinkedCard>, StorageError>;

    /// The member a card number names: their own number (`Primary`) or a linked card.
    async fn card_holder(
        &self,
        card_number: &str,
    ) -> Result<Option<(TillMember, LinkedCardStatus)>, StorageError>;

    /// Opens a checkout session without a code (a card number identified the member).
    async fn open_card_session(
        &self,
        session: &CheckoutSession,
        now_ms: i64,
    ) -> Result<(), StorageError>;

    /// Sets (or replaces) the member's PIN hash; its wrong tries and lock start over.
    async fn set_pin(&self, member_id: &str, hash: &str) -> Result<(), StorageError>;

    /// Reserves one PIN try, atomically: counted as wrong until [`CardStore::pin_checked`] says
    /// otherwise; none when `max_tries` are used up or the lock has not ended (a lock that ended
    /// starts the count over).
    async fn take_pin_try(
        &self,
        member_id: &str,
        now_ms: i64,
        max_tries: i64,
    ) -> Result<PinTry, StorageError>;

    /// Reports a reserved try: right clears the count; wrong locks the PIN until `locked_until_ms`
    /// once `max_tries` are used up.
    async fn pin_checked(
        &self,
        member_id: &str,
        right: bool,
        max_tries: i64,
        locked_until_ms: i64,
    ) -> Result<(), StorageError>;

    /// Records that a session's PIN was entered.
    async fn verify_session(&self, session_id: &str, now_ms: i64) -> Result<(), StorageError>;

    async fn session_verified(&self, session_id: &str) -> Result<bool, StorageError>;
}
