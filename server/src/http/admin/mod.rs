//! The operator's routes, by area: members and their history, offers and segments, messages, the programme, points
//! adjustments, plastic cards, offline tills' exceptions, operator accounts and the audit log.
//! Which role may use which is `crate::http::access`.

pub mod adjustments;
pub mod cards;
pub mod exceptions;
pub mod history;
pub mod members;
pub mod messages;
pub mod offer_admin;
pub mod offers;
pub mod operators;
pub mod programme;
pub mod reports;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;

/// Every operator route, each mounted at the path and methods of its `#[utoipa::path]`. One
/// `routes!` per path: utoipa-axum mounts the handlers of one call on every path among them.
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(members::create_member, members::find_members))
        .routes(routes!(members::show_member))
        .routes(routes!(members::block))
        .routes(routes!(members::unblock))
        .routes(routes!(members::card_qr))
        .routes(routes!(history::member_ledger))
        .routes(routes!(history::member_devices))
        .routes(routes!(members::revoke_device))
        .routes(routes!(members::start_epochs))
        .routes(routes!(members::new_activation_code))
        .routes(routes!(offers::post_member_offer))
        .routes(routes!(offers::post_offer, offer_admin::list_offers))
        .routes(routes!(offer_admin::show_offer))
        .routes(routes!(offer_admin::offer_uptake))
        .routes(routes!(offer_admin::end_offer))
        .routes(routes!(offer_admin::withdraw_offer))
        .routes(routes!(offers::create_segment, offers::segments))
        .routes(routes!(offers::update_segment, offers::delete_segment))
        .routes(routes!(messages::post_member_message))
        .routes(routes!(messages::send))
        .routes(routes!(messages::deliveries))
        .routes(routes!(messages::list_requests))
        .routes(routes!(messages::reply))
        .routes(routes!(messages::close))
        .routes(routes!(programme::get_programme, programme::put_programme))
        .routes(routes!(programme::settle_now))
        .routes(routes!(programme::set_tier))
        .routes(routes!(adjustments::adjust))
        .routes(routes!(exceptions::till_exceptions))
        .routes(routes!(cards::link))
        .routes(routes!(cards::lost))
        .routes(routes!(
            operators::list_operators,
            operators::create_operator
        ))
        .routes(routes!(operators::disable_operator))
        .routes(routes!(operators::audit))
        .routes(routes!(reports::liability))
        .routes(routes!(reports::deliveries))
        .routes(routes!(reports::points))
        .routes(routes!(reports::members))
        .routes(routes!(reports::segments))
        .routes(routes!(reports::watch))
}
