//! Projections: the server-written documents (card, offers, inbox) brought up to date with what is
//! recorded relationally, under the member's lock, before anyone reads them.

pub mod card;
pub mod card_cache;
pub mod documents;
pub mod epochs;
pub mod inbox;
pub mod offers;
