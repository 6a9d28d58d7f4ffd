//! The errors a [`crate::Device`] reports. Internal errors (SQLite, Automerge, HTTP) are mapped here
//! into cases an app can act on; the FFI layer maps these again into its small public enum.

use crate::document::DocumentError;
use crate::protocol::ProtocolError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this device is not enrolled yet")]
    NotEnrolled,
    #[error("this device is already enrolled as {member_id}")]
    AlreadyEnrolled { member_id: String },
    #[error("the server could not be reached: {0}")]
    Offline(String),
    #[error("the server refused the request ({status} {code}): {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the sync did not settle after {0} rounds")]
    SyncDidNotSettle(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretStoreError),
    #[error("this device has no usable checkout key: {0}")]
    CheckoutKey(String),
    #[error("the server sent a malformed answer: {0}")]
    Protocol(#[from] ProtocolError),
    /// The action would make the member document's history longer than the server accepts. A
    /// sync lets the server start the document afresh (a new epoch), after which there is room.
    #[error("{0}: sync with the server so it can start the member's document afresh")]
    HistoryTooLong(#[from] crate::budget::HistoryTooLong),
}

impl Error {
    pub(crate) fn automerge(doc: crate::DocKind, e: automerge::AutomergeError) -> Self {
        Error::Document(DocumentError::Corrupt {
            doc,
            message: e.to_string(),
        })
    }
}

/// What went wrong under a failed HTTP request, for people: the innermost cause ("Connection
/// refused (os error 111)", "operation timed out") rather than reqwest's "error sending request
/// for url (...)", which says only that something did.
pub fn transport_reason(e: &reqwest::Error) -> String {
    let mut innermost: &dyn std::error::Error = e;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    innermost.to_string()
}
