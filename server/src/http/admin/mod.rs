//! The operator's routes, by area: members, offers and segments, messages, the programme.

pub mod members;
pub mod messages;
pub mod offers;
pub mod programme;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::app::App;

/// Every operator route.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/admin/members", post(members::create_member))
        .route("/v1/admin/members/{member_id}", get(members::show_member))
        .route("/v1/admin/members/{member_id}/block", post(members::block))
        .route(
            "/v1/admin/members/{member_id}/unblock",
            post(members::unblock),
        )
        .route(
            "/v1/admin/members/{member_id}/card-qr",
            get(members::card_qr),
        )
        .route(
            "/v1/admin/devices/{device_id}/revoke",
            post(members::revoke_device),
        )
        .route(
            "/v1/admin/members/{member_id}/epochs",
            post(members::start_epochs),
        )
        .route(
            "/v1/admin/members/{member_id}/activation-codes",
            post(members::new_activation_code),
        )
        .route(
            "/v1/admin/members/{member_id}/offers",
            post(offers::post_member_offer),
        )
        .route("/v1/admin/offers", post(offers::post_offer))
        .route(
            "/v1/admin/segments",
            post(offers::create_segment).get(offers::segments),
        )
        .route(
            "/v1/admin/members/{member_id}/messages",
            post(messages::post_member_message),
        )
        .route("/v1/admin/messages", post(messages::send))
        .route("/v1/admin/deliveries", get(messages::deliveries))
        .route("/v1/admin/requests", get(messages::list_requests))
        .route("/v1/admin/requests/{id}/replies", post(messages::reply))
        .route("/v1/admin/requests/{id}/close", post(messages::close))
        .route(
            "/v1/admin/programme",
            get(programme::get_programme).put(programme::put_programme),
        )
        .route("/v1/admin/programme/settle", post(programme::settle_now))
        .route(
            "/v1/admin/members/{member_id}/tier",
            post(programme::set_tier),
        )
}
