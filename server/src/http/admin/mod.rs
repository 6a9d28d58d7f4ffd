//! The operator's routes, by area: members, offers and segments, messages, the programme.

pub mod members;
pub mod messages;
pub mod offers;
pub mod programme;

use loyalty_core::api::paths;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::app::App;

/// Every operator route.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route(paths::ADMIN_MEMBERS, post(members::create_member))
        .route(paths::ADMIN_MEMBER, get(members::show_member))
        .route(paths::ADMIN_MEMBER_BLOCK, post(members::block))
        .route(paths::ADMIN_MEMBER_UNBLOCK, post(members::unblock))
        .route(paths::ADMIN_MEMBER_CARD_QR, get(members::card_qr))
        .route(paths::ADMIN_DEVICE_REVOKE, post(members::revoke_device))
        .route(paths::ADMIN_MEMBER_EPOCHS, post(members::start_epochs))
        .route(
            paths::ADMIN_MEMBER_ACTIVATION_CODES,
            post(members::new_activation_code),
        )
        .route(paths::ADMIN_MEMBER_OFFERS, post(offers::post_member_offer))
        .route(paths::ADMIN_OFFERS, post(offers::post_offer))
        .route(
            paths::ADMIN_SEGMENTS,
            post(offers::create_segment).get(offers::segments),
        )
        .route(
            paths::ADMIN_MEMBER_MESSAGES,
            post(messages::post_member_message),
        )
        .route(paths::ADMIN_MESSAGES, post(messages::send))
        .route(paths::ADMIN_DELIVERIES, get(messages::deliveries))
        .route(paths::ADMIN_REQUESTS, get(messages::list_requests))
        .route(paths::ADMIN_REQUEST_REPLIES, post(messages::reply))
        .route(paths::ADMIN_REQUEST_CLOSE, post(messages::close))
        .route(
            paths::ADMIN_PROGRAMME,
            get(programme::get_programme).put(programme::put_programme),
        )
        .route(paths::ADMIN_PROGRAMME_SETTLE, post(programme::settle_now))
        .route(paths::ADMIN_MEMBER_TIER, post(programme::set_tier))
}
