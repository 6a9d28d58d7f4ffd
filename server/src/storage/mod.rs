//! What the server needs from a database, as one trait per aggregate, so nothing above this
//! module sees SQL and another backend (PostgreSQL) plugs in beside the embedded SQLite one.
//!
//! | module | trait | what it owns |
//! |---|---|---|
//! | [`members`] | [`MemberStore`] | members, activation codes, devices, blocking, revocation, documents, peer states, the atomic `commit` |
//! | [`cards`] | [`CardStore`] | cards without the app: sessions opened by card number, the member's till PIN and its lock |
//! | [`directory`] | [`DirectoryStore`] | finding members by e-mail, phone or the retailer's reference |
//! | [`history`] | [`HistoryStore`] | a member's whole ledger, paged, and their devices, for the operator's one window |
//! | [`ledger`] | [`LedgerStore`] | the till: card lookup, device keys, checkout sessions, postings, the refund book, the card's source and store, the member's book, due members, birthdays |
//! | [`offers`] | [`OfferStore`] | offers, segments, fan-outs, the RFM and segment recompute |
//! | [`offer_admin`] | [`OfferAdminStore`] | offers as operators manage them: lists with figures, ending early, withdrawing |
//! | [`messages`] | [`MessageStore`] | messages and deliveries, the outbound queue, members' requests |
//! | [`offline`] | [`OfflineStore`] | the offline till: the key feed, codes used by offline purchases, exceptions |
//! | [`programme`] | [`ProgrammeStore`] | the earning and tier configuration |
//! | [`operators`] | [`OperatorStore`] | operator accounts (roles, token hashes) and the audit log |
//! | [`reports`] | [`ReportStore`] | the operators' reports, each one aggregate statement |
//! | [`watch`] | [`WatchStore`] | the fraud watch list: activity per member and till, refused codes, many devices |
//! | [`changes`] | [`ChangeStore`] | telling the other server instances on the database of changes |
//! | [`health`] | [`HealthStore`] | readiness (the database answers, its schema is this binary's) and the pool's size |
//!
//! [`Storage`] is all fifteen: what the server is built on (`Arc<dyn Storage>`). Every backend runs
//! the same conformance suite (`conformance`). The embedded backend is [`sqlite::SqliteStorage`].

pub mod cards;
pub mod changes;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub(crate) mod dialect;
pub mod directory;
pub mod health;
pub mod history;
pub mod ledger;
pub mod members;
pub mod messages;
pub mod offer_admin;
pub mod offers;
pub mod offline;
pub mod operators;
pub mod postgres;
pub mod programme;
pub mod reports;
pub mod sqlite;
pub mod watch;

pub use cards::*;
pub use changes::*;
pub use directory::*;
pub use health::*;
pub use history::*;
pub use ledger::*;
pub use members::*;
pub use messages::*;
pub use offer_admin::*;
pub use offers::*;
pub use offline::*;
pub use operators::*;
pub use programme::*;
pub use reports::*;
pub use watch::*;

/// A storage failure: the backend could not do what it was asked. What a caller's input or a
/// concurrent writer can make happen — a code used before, a revision conflict, an idempotency
/// key taken, an unknown segment or request — is not an error but a typed outcome of the method
/// concerned (`Redemption`, `Commit`, `CheckoutOpening`, `PostOutcome`, `Publication`,
/// `SegmentCreation`, `SendOutcome`, `Answer`, `MemberCreation`), which the services map to their
/// own errors. So this has one variant: whatever reaches it is the server's fault, answered
/// `500 internal` and logged with its source — unless its cause is the database being out of reach
/// ([`StorageError::is_unavailable`]), which is answered `503 database_unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend failed (I/O, a constraint it did not expect, a stored value it cannot read, its
    /// writer gone). The cause is kept as the error's source, for the log; the client is told only
    /// that the server failed.
    #[error("the database failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Everything the server needs from a backend. Implemented for every type that implements the
/// aggregate traits, the change feed and the health check.
pub trait Storage:
    MemberStore
    + CardStore
    + DirectoryStore
    + HistoryStore
    + LedgerStore
    + OfferStore
    + OfferAdminStore
    + OfflineStore
    + MessageStore
    + ProgrammeStore
    + OperatorStore
    + ReportStore
    + WatchStore
    + ChangeStore
    + HealthStore
{
}

impl<T> Storage for T where
    T: MemberStore
        + CardStore
        + DirectoryStore
        + HistoryStore
        + LedgerStore
        + OfferStore
        + OfferAdminStore
        + OfflineStore
        + MessageStore
        + ProgrammeStore
        + OperatorStore
        + ReportStore
        + WatchStore
        + ChangeStore
        + HealthStore
{
}
