//! # loyalty-core
//!
//! The shared heart of the loyalty app: a member's documents (card, offers, inbox and the member's own
//! document) as Automerge CRDTs, the on-device store that keeps them in SQLite, the sync protocol both
//! the device and the server speak, and the [`Device`] object an app drives.
//!
//! The server and the devices use this one crate for the definition of the documents ([`document`],
//! [`card`], [`offers`], [`inbox`], [`member`], [`requests`]), the wire format ([`protocol`], [`api`]) and the
//! checkout code, so the two sides cannot drift apart.
//!
//! ```no_run
//! # async fn demo() -> Result<(), loyalty_core::Error> {
//! let device = loyalty_core::Device::open("member.db")?;
//! device.enroll("http://127.0.0.1:8080", "ABCD-EFGH-JKMN", "Pixel 9").await?;
//! device.sync().await?;
//! for offer in device.offers()? {
//!     println!("{}: {}", offer.offer.id, offer.offer.title);
//! }
//! # Ok(()) }
//! ```

pub mod api;
pub mod budget;
pub mod calendar;
pub mod card;
pub mod card_trust;
pub mod checkout_code;
pub mod chunks;
pub mod clock;
pub mod device;
pub mod document;
pub mod earning;
pub mod epoch;
pub mod error;
#[cfg(any(test, feature = "forge"))]
pub mod forge;
pub mod ids;
pub mod inbox;
pub mod keys;
pub mod lots;
pub mod member;
pub mod offers;
pub mod offline;
pub mod programme;
pub mod protocol;
pub mod qr;
pub mod reasons;
pub mod redemption;
pub mod requests;
pub mod secrets;
pub mod segments;
pub mod store;
pub mod sync;
pub mod tiers;

pub use clock::{Clock, SystemClock};
pub use device::{Device, SyncReport};
pub use document::DocKind;
pub use error::Error;
