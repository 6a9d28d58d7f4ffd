//! Device enrollment: an activation code from the operator buys one device its credentials. Only a
//! hash of the device secret is stored; the secret itself is in this one answer and nowhere else.

use std::sync::Arc;

use axum::extract::State;
use loyalty_core::api::{EnrollRequest, EnrollResponse};
use loyalty_core::ids::{self, activation_code};

use crate::app::App;
use crate::error::ApiError;
use crate::json::Json;
use crate::storage::NewDevice;

const MAX_DEVICE_NAME: usize = 128;

pub async fn enroll(
    State(app): State<Arc<App>>,
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

/// A 32-byte Ed25519 public key from 64 hex characters.
pub fn parse_public_key(hex: &str) -> Result<[u8; 32], ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_public_key",
            "public_key must be the 32-byte Ed25519 key as 64 hex characters",
        )
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}
