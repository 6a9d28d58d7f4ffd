//! The domain: enrollment, sync, checkout, the ledger, operators' adjustments, the programme,
//! offers, messaging, members and epochs. Called by the HTTP handlers and the jobs; knows nothing of HTTP.

pub mod adjustments;
pub mod cards;
pub mod changes;
pub mod checkout;
pub mod checkout_session;
pub mod console_sessions;
pub mod enrollment;
pub mod health;
pub mod history;
pub mod ledger;
pub mod member_view;
pub mod members;
pub mod messaging;
pub mod offer_admin;
pub mod offers;
pub mod offline;
pub mod operators;
pub mod programme;
pub mod prompts;
pub mod receipts;
pub mod reports;
pub mod sync;
pub mod watch;
