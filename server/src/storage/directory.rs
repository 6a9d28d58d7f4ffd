//! Finding members the way an operator knows them: by e-mail or phone (as the member's
//! preferences hold them, mirrored from the member document) or by the retailer's own reference.
//! Card numbers are found through `CardStore::card_holder`. Nothing here loads a document.

use async_trait::async_trait;
use loyalty_core::api::MemberMatch;

use crate::storage::StorageError;

/// What an operator searches by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberLookup {
    /// A preference's value, as given or in lower case (`email`, `phone`).
    Preference {
        key: &'static str,
        value: String,
    },
    ExternalRef(String),
    /// One member, found by other means (a card number).
    MemberId(String),
}

/// The most members one search answers.
pub const MAX_MATCHES: u32 = 50;

/// Which members to list, one page at a time in member id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFilter {
    pub tier: Option<String>,
    pub blocked: Option<bool>,
    /// Members of this segment at its last computation.
    pub segment: Option<String>,
    /// Created at or after.
    pub enrolled_from_ms: Option<i64>,
    /// Created before.
    pub enrolled_to_ms: Option<i64>,
    /// The page after this member id.
    pub after: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// Members matching, in member id order, at most [`MAX_MATCHES`].
    async fn find_members(&self, lookup: &MemberLookup) -> Result<Vec<MemberMatch>, StorageError>;

    /// One page of the members the filter admits, in member id order (at most `limit`).
    async fn list_members(&self, filter: &MemberFilter) -> Result<Vec<MemberMatch>, StorageError>;
}
