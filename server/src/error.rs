//! The domain's error: what a service, a projection or a job refuses or fails with, as a kind of
//! outcome, a stable error code (`docs/protocol.md`'s table) and a message for people. It names no
//! HTTP type; `crate::http::error` maps each [`ErrorKind`] onto a status and the JSON error body.

use crate::storage::StorageError;

/// What kind of outcome an error is, which the HTTP layer answers with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule of its shape.
    Invalid,
    /// Who is asking is unknown or their credentials are wrong.
    Unauthenticated,
    /// Who is asking may not do this.
    Forbidden,
    /// What the request names does not exist.
    NotFound,
    /// The request clashes with the state (used already, closed, another request's key).
    Conflict,
    /// What the request names existed but is no longer usable (an expired code).
    Gone,
    /// Well formed, but refused by a business rule (a replayed code, a blocked card).
    Refused,
    /// Too many attempts: retry later.
    TooMany,
    /// Busy: retry (a lost race that kept losing, overload).
    Busy,
    /// The body is larger than allowed.
    TooLarge,
    /// The request did not arrive or finish in time.
    TimedOut,
    /// The server failed; nothing was applied.
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DomainError {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which a retry may succeed.
    pub retry_after: Option<u64>,
}

impl DomainError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the client to retry after `secs` seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, "forbidden", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        // The detail goes to the log, not to the client.
        tracing::error!(error = %e, "{context}");
        Self::new(
            ErrorKind::Internal,
            "internal",
            "the server failed; the request was not applied",
        )
    }
}

impl DomainError {
    /// A write that kept losing its optimistic race to other writers ([`crate::locks::Retry`]).
    pub fn busy() -> Self {
        Self::new(
            ErrorKind::Busy,
            "busy",
            "the member's documents are changing too fast; retry",
        )
    }

    /// Something the client named twice for different things (`what`: "message id `m1`").
    pub fn id_reused(what: &str) -> Self {
        Self::new(
            ErrorKind::Conflict,
            "id_reused",
            format!("{what} was used before for something else; choose another id"),
        )
    }

    /// Something that exists already and the client may retry differently (`what`: "segment `s`").
    pub fn duplicate(what: &str) -> Self {
        Self::new(
            ErrorKind::Conflict,
            "duplicate",
            format!("{what} exists already; retry"),
        )
    }
}

/// A storage failure is the server's: what a client can cause comes back from storage as a typed
/// outcome, which the service concerned maps to its own error.
/// A database out of reach is not a bug: `503 database_unavailable` with `Retry-After`, so
/// clients and load balancers back off and retry (a till's retried purchase keeps its idempotency
/// key and is posted once).
impl From<StorageError> for DomainError {
    fn from(e: StorageError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "the database is unavailable");
            return Self::database_unavailable();
        }
        Self::internal("storage failed", e)
    }
}

/// `Retry-After` when the database is out of reach: a PostgreSQL failover or a restart takes
/// seconds, and a lock held by another SQLite process was already waited on for the busy timeout.
pub const DATABASE_RETRY_S: u64 = 5;

impl DomainError {
    /// The database refused, dropped or could not take the request in time; nothing was applied.
    pub fn database_unavailable() -> Self {
        let mut e = Self::new(
            ErrorKind::Busy,
            "database_unavailable",
            "the database is unavailable; the request was not applied; retry",
        );
        e.retry_after = Some(DATABASE_RETRY_S);
        e
    }
}
