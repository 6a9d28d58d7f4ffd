//! Projections: the server-written documents (card, offers, inbox) brought up to date with what is
//! recorded relationally, under the member's lock, before anyone reads them.

/// A publication or a send to at most this many explicit members writes their documents in the
/// operator's request, so a member who is online sees it at once; larger ones (and every tier or
/// segment) are projected lazily, at each member's next sync or long poll. One bound for offers and
/// messages (they were 100 and 16): each eager projection is a document write inside the
/// operator's request, and 16 keeps that request's time bounded the same way for both.
pub const EAGER_PROJECTION_MAX: usize = 16;

pub mod card;
pub mod documents;
pub mod epochs;
pub mod inbox;
pub mod offers;
