//! # loyalty-server
//!
//! The HTTP side of the loyalty system: devices enroll and sync here, operators create members and
//! publish offers and messages. Storage sits behind [`storage::Storage`]; the embedded SQLite
//! implementation is the default.
//!
//! Routes (all JSON errors are `{"error": {"code", "message"}}`; see `docs/protocol.md`):
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `POST /v1/enroll` | anyone with an activation code | register a device |
//! | `POST /v1/members/{id}/sync` | the member's device | sync all documents |
//! | `GET /v1/members/{id}/documents/{doc}` | the member's device | a document's full bytes |
//! | `GET /v1/members/{id}/changes` | the member's device | long poll for live updates |
//! | `POST /v1/admin/members` | operator | create a member |
//! | `POST /v1/admin/members/{id}/activation-codes` | operator | a new code for another device |
//! | `POST /v1/admin/members/{id}/offers` | operator | publish an offer to one member |
//! | `POST /v1/admin/offers` | operator | publish an offer to members, a tier or a segment |
//! | `POST`, `GET /v1/admin/segments` | operator | define and list segments |
//! | `POST /v1/admin/members/{id}/messages` | operator | send a message to one member |
//! | `POST /v1/admin/messages` | operator | send a message to members or a segment |
//! | `GET /v1/admin/deliveries` | operator | what became of each recipient of a message |
//! | `GET /v1/admin/requests` | operator | members' questions and complaints |
//! | `POST /v1/admin/requests/{id}/replies`, `/close` | operator | answer, close a request |
//! | `GET`/`PUT /v1/admin/programme` | operator | the earning rules, points policy and tiers |
//! | `POST /v1/admin/programme/settle` | operator | mature and expire points, review tiers now |
//! | `POST /v1/admin/members/{id}/tier` | operator | pin or release a member's tier |
//! | `POST /v1/till/scan`, `/purchases`, `/refunds` | till | checkout |
//! | `GET /v1/admin/members/{id}` | operator | what the server holds for a member |
//! | `POST /v1/admin/members/{id}/epochs` | operator | start a member's documents afresh |
//! | `GET /healthz` | anyone | liveness |
//!
//! Handlers learn who is asking from the extractors in [`extract`], which authenticate from the
//! request head before any body is read; [`edge`] holds the connection and request limits,
//! [`guard`] the per-address rate limits, [`live`] the change feed behind the long poll.

pub mod admin;
pub mod app;
pub mod card_cache;
pub mod card_projection;
pub mod config;
pub mod documents;
pub mod edge;
pub mod enroll;
pub mod epochs;
pub mod error;
pub mod extract;
pub mod guard;
pub mod jobs;
pub mod json;
pub mod ledger;
pub mod live;
pub mod messaging;
pub mod operator;
pub mod outbound;
pub mod programme;
pub mod programme_admin;
pub mod sqlite;
pub mod sqlite_offers;
pub mod storage;
pub mod sync;
pub mod targeting;
pub mod till;

pub use app::{App, AppBuilder, router, serve};
pub use config::Config;
