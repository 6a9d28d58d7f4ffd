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
//! | `POST /v1/members/{member_id}/sync` | the member's device | sync all documents |
//! | `GET /v1/members/{member_id}/documents/{doc}` | the member's device | a document's full bytes |
//! | `GET /v1/members/{member_id}/changes` | the member's device | long poll for live updates |
//! | `POST /v1/members/{member_id}/cards` | the member's device | link a plastic card |
//! | `PUT /v1/members/{member_id}/pin` | the member's device | set the PIN a card-number scan asks for |
//! | `POST /v1/till/scan` | till | check a code or card number, open a checkout session |
//! | `POST /v1/till/sessions/{session_id}/pin` | till | the member's PIN for a card-number session |
//! | `POST /v1/till/purchases` | till | post a purchase (earn, redeem, offers) |
//! | `POST /v1/till/refunds` | till | refund a purchase, wholly or in part |
//! | `GET /v1/till/keys` | till | the device keys an offline till checks codes with |
//! | `POST /v1/till/offline-purchases` | till | purchases a till took while offline |
//! | `POST /v1/outbound/receipts` | the gateway behind the webhook (signed) | a delivery receipt: delivered or failed |
//! | `GET POST /v1/admin/members` | operator | find or list members; create a member |
//! | `GET /v1/admin/members/{member_id}` | operator | the member's one window |
//! | `GET /v1/admin/members/{member_id}/ledger` | operator | the whole ledger, paged |
//! | `GET /v1/admin/members/{member_id}/devices` | operator | devices, enrolled and last seen |
//! | `POST /v1/admin/members/{member_id}/activation-codes` | operator | a new code for another device |
//! | `POST /v1/admin/members/{member_id}/adjustments` | operator | credit or debit points |
//! | `POST /v1/admin/members/{member_id}/block` | operator | block a member's card |
//! | `POST /v1/admin/members/{member_id}/unblock` | operator | unblock it |
//! | `GET /v1/admin/members/{member_id}/card-qr` | operator | the card number as a QR code (SVG, PNG) |
//! | `POST /v1/admin/members/{member_id}/cards` | operator | link a plastic card |
//! | `POST /v1/admin/members/{member_id}/cards/{card_number}/lost` | operator | report a card lost |
//! | `POST /v1/admin/members/{member_id}/tier` | operator | pin or release a member's tier |
//! | `POST /v1/admin/members/{member_id}/epochs` | operator | start a member's documents afresh |
//! | `POST /v1/admin/members/{member_id}/offers` | operator | publish an offer to one member |
//! | `POST /v1/admin/members/{member_id}/messages` | operator | send a message to one member |
//! | `POST /v1/admin/devices/{device_id}/revoke` | operator | revoke a device and its checkout key |
//! | `GET POST /v1/admin/offers` | operator | list offers; publish to members, a tier or a segment |
//! | `GET /v1/admin/offers/{offer_id}` | operator | an offer with its reach and redemptions |
//! | `POST /v1/admin/offers/{offer_id}/end` | operator | end an offer early |
//! | `POST /v1/admin/offers/{offer_id}/withdraw` | operator | withdraw an offer |
//! | `GET /v1/admin/offers/{offer_id}/uptake` | operator | an offer's uptake by segment |
//! | `GET POST /v1/admin/segments` | operator | list segments with sizes; define one |
//! | `PUT DELETE /v1/admin/segments/{segment_id}` | operator | edit, delete a segment |
//! | `POST /v1/admin/messages` | operator | send a message to members or a segment |
//! | `GET /v1/admin/deliveries` | operator | what became of each recipient of a message |
//! | `GET /v1/admin/requests` | operator | members' questions and complaints |
//! | `POST /v1/admin/requests/{id}/replies` | operator | answer a request |
//! | `POST /v1/admin/requests/{id}/close` | operator | close a request |
//! | `GET PUT /v1/admin/programme` | operator | the earning rules, points policy and tiers |
//! | `POST /v1/admin/programme/settle` | operator | mature and expire points, review tiers now |
//! | `GET /v1/admin/reports/liability` | operator | outstanding points, in points and money |
//! | `GET /v1/admin/reports/points` | operator | points issued, redeemed, expired per period |
//! | `GET /v1/admin/reports/members` | operator | active members, repeat rate, tiers and movement |
//! | `GET /v1/admin/reports/deliveries` | operator | message delivery and consent refusals |
//! | `GET /v1/admin/reports/segments` | operator | segment and RFM sizes over recomputes |
//! | `GET /v1/admin/reports/watch` | operator | the fraud watch list |
//! | `GET /v1/admin/till-exceptions` | operator | what offline tills could not post as taken |
//! | `GET POST /v1/admin/operators` | admin | operator accounts |
//! | `POST /v1/admin/operators/{operator_id}/disable` | admin | disable an account |
//! | `GET /v1/admin/audit` | admin | the audit log of operators' writes |
//! | `GET POST DELETE /console/session` | operator | the console's session: who, log in, log out |
//! | `GET /healthz` | anyone | liveness |
//! | `GET /readyz` | anyone | readiness: the database answers at this binary's schema ([`http::ops`]) |
//! | `GET /metrics` | the metrics token | Prometheus metrics ([`metrics`]) |
//! | `GET /openapi.json` | anyone | the OpenAPI 3.1 document of these routes ([`http::openapi`]) |
//!
//! The console's pages and scripts are served under `/console` ([`http::console`]); they are
//! files, not part of the API, so the OpenAPI document leaves them out. A unit test holds this
//! table to the OpenAPI document: a route added without a row here fails it.
//!
//! The crate is in layers that import downward only (`docs/architecture.md`, *The server's
//! layers*): [`http`] (the router per area; handlers learn who is asking from the extractors in
//! [`http::extract`], which authenticate from the request head before any body is read;
//! [`http::edge`] holds the connection and request limits, [`http::guard`] the per-address rate
//! limits) → [`service`] (the domain, returning [`error::DomainError`]) → [`projection`] (the
//! server-written documents brought up to date) → [`storage`] (one trait per aggregate —
//! members, cards, the member directory, history, ledger, offers and their administration,
//! offline tills, messages, programme, operators, reports, the watch list, the change feed,
//! health — summed as [`storage::Storage`], typed outcomes, the conformance suite every backend
//! runs, and the SQLite and PostgreSQL backends). Beside them: [`app`] (wiring), [`config`] (the
//! server's settings), [`error`] (the domain's error), [`jobs`] (settle, outbound worker, other
//! processes' fan-outs and changes), [`live`] (the change feed behind the long poll), [`outbound`] (e-mail,
//! webhook and push adapters), [`metrics`] (Prometheus metric names and recorder), [`locks`] (the
//! per-member lock), [`sync_jobs`] (the bound on sync work at once), [`card_cache`] (card
//! documents kept in memory between catch-ups), [`client`] (the operator and till clients), [`till`] (the offline
//! till, client side: `loyalty till --store`).

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// (method, path) for every row of the route table in this file's guide.
    fn guide_routes() -> BTreeSet<(String, String)> {
        include_str!("lib.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//! | `"))
            .filter_map(|row| row.split('`').next())
            .flat_map(|cell| {
                let mut words: Vec<&str> = cell.split(' ').collect();
                let path = words.pop().unwrap_or_default().to_string();
                words
                    .into_iter()
                    .map(move |method| (method.to_string(), path.clone()))
            })
            .collect()
    }

    #[test]
    fn the_guide_lists_every_route_of_the_openapi_document() {
        let document = crate::http::openapi();
        let mut routes = BTreeSet::new();
        for (path, item) in &document.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
            ];
            for (method, present) in methods {
                if present {
                    routes.insert((method.to_string(), path.clone()));
                }
            }
        }
        assert!(routes.len() > 50, "the document has the routes: {routes:?}");
        assert_eq!(
            guide_routes(),
            routes,
            "lib.rs's route table and the router differ"
        );
    }
}
