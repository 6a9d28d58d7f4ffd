//! # loyalty-server
//!
//! The HTTP side of the loyalty system: devices enroll and sync here, operators create members and
//! publish offers and messages. Storage sits behind [`storage::Storage`]; the embedded SQLite
//! implementation is the default.
//!
//! Routes (all JSON errors are `{"error": {"code", "message"}}`; see `docs/protocol.md`). Their
//! paths are the route table `loyalty_core::api::paths`; each handler's `#[utoipa::path]` mounts it
//! and describes it in the OpenAPI document (`GET /openapi.json`, the full reference):
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
//! | `POST /v1/admin/members/{id}/block`, `/unblock` | operator | block or unblock a member's card |
//! | `GET /v1/admin/members/{id}/card-qr` | operator | the member's card number as a QR code (SVG, PNG) |
//! | `POST /v1/admin/devices/{id}/revoke` | operator | revoke a device and its checkout key |
//! | `POST /v1/till/scan`, `/purchases`, `/refunds` | till | checkout |
//! | `GET /v1/admin/members/{id}` | operator | what the server holds for a member |
//! | `POST /v1/admin/members/{id}/epochs` | operator | start a member's documents afresh |
//! | `GET /healthz` | anyone | liveness |
//! | `GET /readyz` | anyone | readiness: the database answers at this binary's schema ([`http::ops`]) |
//! | `GET /metrics` | the metrics token | Prometheus metrics ([`metrics`]) |
//! | `GET /openapi.json` | anyone | the OpenAPI 3.1 document of these routes ([`http::openapi`]) |
//!
//! The crate is in layers that import downward only (`docs/architecture.md`, *The server's
//! layers*): [`http`] (the router per area; handlers learn who is asking from the extractors in
//! [`http::extract`], which authenticate from the request head before any body is read;
//! [`http::edge`] holds the connection and request limits, [`http::guard`] the per-address rate
//! limits) → [`service`] (the domain, returning [`error::DomainError`]) → [`projection`] (the
//! server-written documents brought up to date) → [`storage`] (one trait per aggregate —
//! members, ledger, offers, messages, programme — summed as [`storage::Storage`], typed outcomes,
//! the conformance suite every backend runs, and the SQLite backend). Beside
//! them: [`app`] (wiring), [`jobs`] (settle, outbound worker), [`live`] (the change feed behind
//! the long poll), [`metrics`] (Prometheus metric names and recorder), [`locks`] (the per-member lock), [`sync_jobs`] (the bound on sync work at once), [`client`] (the operator and till clients), [`till`] (the offline till, client side: `loyalty till --store`).

pub mod app;
pub mod card_cache;
pub mod client;
pub mod config;
pub mod error;
pub mod http;
pub mod jobs;
pub mod live;
pub mod locks;
pub mod metrics;
pub mod outbound;
pub mod projection;
pub mod service;
pub mod storage;
pub mod sync_jobs;
pub mod till;

pub use app::{App, AppBuilder};
pub use config::Config;
pub use http::{router, serve};
