//! What the server needs from a database, as one trait per aggregate, so nothing above this
//! module sees SQL and another backend (PostgreSQL) plugs in beside the embedded SQLite one.
//!
//! | module | trait | what it owns |
//! |---|---|---|
//! | [`members`] | [`MemberStore`] | members, activation codes, devices, blocking, revocation, documents, peer states, the atomic `commit` |
//! | [`ledger`] | [`LedgerStore`] | the till: card lookup, device keys, checkout sessions, postings, the refund book, the card's source and store, the member's book, due members, birthdays |
//! | [`offers`] | [`OfferStore`] | offers, segments, fan-outs, the RFM and segment recompute |
//! | [`messages`] | [`MessageStore`] | messages and deliveries, the outbound queue, members' requests |
//! | [`programme`] | [`ProgrammeStore`] | the earning and tier configuration |
//!
//! [`Storage`] is all five: what the server is built on (`Arc<dyn Storage>`). Every backend runs
//! the same conformance suite (`conformance`). The embedded backend is [`sqlite::SqliteStorage`].

pub mod ledger;
pub mod members;
pub mod messages;
pub mod offers;
pub mod programme;
pub mod sqlite;

pub use ledger::*;
pub use members::*;
pub use messages::*;
pub use offers::*;
pub use programme::*;

/// A storage failure: the backend could not do what it was asked. What a caller's input can make
/// happen (a code used before, a revision conflict, an unknown segment...) is not an error but a
/// typed outcome of the method concerned.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("another writer changed the document first")]
    Conflict,
    #[error("already exists: {0}")]
    Duplicate(String),
    #[error("activation code is not known")]
    CodeUnknown,
    #[error("activation code was already used")]
    CodeUsed,
    #[error("activation code has expired")]
    CodeExpired,
    #[error("this checkout code was used before")]
    CodeReplayed,
    #[error("the refunds would exceed the purchase")]
    RefundExceedsPurchase,
    #[error("the request is closed")]
    RequestClosed,
    /// A named record does not exist: `member`, `segment`, `request`.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// An id the caller chose names something else already.
    #[error("{0} was used before for something else")]
    IdReused(String),
    /// The backend failed (I/O, a constraint it did not expect, a stored value it cannot read, its
    /// writer gone). The cause is kept as the error's source, for the log; the client is told only
    /// that the server failed.
    #[error("the database failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Everything the server needs from a backend. Implemented for every type that implements the
/// five aggregate traits.
pub trait Storage: MemberStore + LedgerStore + OfferStore + MessageStore + ProgrammeStore {}

impl<T> Storage for T where T: MemberStore + LedgerStore + OfferStore + MessageStore + ProgrammeStore
{}
