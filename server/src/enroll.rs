//! Device enrollment: an activation code from the operator buys one device its credentials. Only a
//! hash of the device secret is stored; the secret itself is in this one answer and nowhere else.
//! Attempts are rate-limited per client address before the body is read ([`EnrollAttempt`]).

use std::sync::Arc;

use axum::extract::State;
use loyalty_core::api::{EnrollRequest, EnrollResponse};
use loyalty_core::ids::{self, activation_code};
use loyalty_core::keys;

use crate::app::App;
use crate::error::ApiError;
use crate::extract::EnrollAttempt;
use crate::json::Json;
use crate::storage::NewDevice;

const MAX_DEVICE_NAME: usize = 128;

pub async fn enroll(
    State(app): State<Arc<App>>,
    _: EnrollAttempt,
    body: Result<Json<EnrollRequest>, ApiError>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let Json(request) = body?;
    let code = activation_code::normalize(&request.activation_code).ok_or_else(|| {
        ApiError::bad_request(
            "malformed_activation_code",
            "an activation code is 12 letters and digits, like ABCD-EFGH-JKMN",
        )
    })?;
    if request.device_name.len() > MAX_DEVICE_NAME {
        return Err(ApiError::bad_request(
            "invalid_device_name",
            format!("device name is longer than {MAX_DEVICE_NAME} bytes"),
        ));
    }
    let public_key = parse_public_key(&request.public_key)?;
    let device_id = ids::new_device_id();
    let secret = ids::new_device_secret();
    let now = app.now_ms();
    let member = app
        .storage
        .redeem_activation_code(
            activation_code::hash(&code),
            now,
            NewDevice {
                device_id: device_id.clone(),
                secret_hash: ids::sha256(secret.as_bytes()),
                public_key,
                name: request.device_name,
                created_at_ms: now,
            },
        )
        .await?;
    tracing::info!(member = %member.member_id, device = %device_id, "device enrolled");
    crate::programme::enrolled(&app, &member.member_id).await;
    Ok(Json(EnrollResponse {
        member_id: member.member_id,
        card_number: member.card_number,
        device_id,
        device_secret: secret,
        server_time_ms: app.now_ms(),
    }))
}

/// The device's Ed25519 key from its 64 hex characters, refused unless it is a key a device could
/// honestly have made (`loyalty_core::keys`: canonical, not of small order, in the prime-order
/// subgroup): for a small-order key anyone could sign checkout codes for the card.
pub fn parse_public_key(hex: &str) -> Result<[u8; 32], ApiError> {
    keys::parse_public_key_hex(hex).map_err(|e| {
        ApiError::bad_request(
            "invalid_public_key",
            format!(
                "public_key must be the device's 32-byte Ed25519 key as 64 hex characters: {e}"
            ),
        )
    })
}
