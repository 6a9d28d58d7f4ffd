//! Device enrollment: an activation code from the operator buys one device its credentials. Only a
//! hash of the device secret is stored; the secret itself is in this one answer and nowhere else.
//! Attempts are rate-limited per client address before the body is read (`crate::http::extract::EnrollAttempt`).

use loyalty_core::api::{EnrollRequest, EnrollResponse};
use loyalty_core::ids::{self, activation_code};
use loyalty_core::keys;

use crate::app::App;
use crate::error::{DomainError, ErrorKind};
use crate::storage::{MemberRecord, NewDevice, Redemption};

pub(crate) const MAX_DEVICE_NAME: usize = 128;

/// The device's Ed25519 key from its 64 hex characters, refused unless it is a key a device could
/// honestly have made (`loyalty_core::keys`: canonical, not of small order, in the prime-order
/// subgroup): for a small-order key anyone could sign checkout codes for the card.
pub fn parse_public_key(hex: &str) -> Result<[u8; 32], DomainError> {
    keys::parse_public_key_hex(hex).map_err(|e| {
        DomainError::bad_request(
            "invalid_public_key",
            format!(
                "public_key must be the device's 32-byte Ed25519 key as 64 hex characters: {e}"
            ),
        )
    })
}

/// Enrolls a device with an activation code: checks the request, redeems the code (single use)
/// registering the device and its checkout key, and pays the enrollment's event points.
pub async fn enroll(app: &App, request: EnrollRequest) -> Result<EnrollResponse, DomainError> {
    let code = activation_code::normalize(&request.activation_code).ok_or_else(|| {
        DomainError::bad_request(
            "malformed_activation_code",
            "an activation code is 12 letters and digits, like ABCD-EFGH-JKMN",
        )
    })?;
    if request.device_name.len() > MAX_DEVICE_NAME {
        return Err(DomainError::bad_request(
            "invalid_device_name",
            format!("device name is longer than {MAX_DEVICE_NAME} bytes"),
        ));
    }
    let public_key = parse_public_key(&request.public_key)?;
    let device_id = ids::new_device_id();
    let secret = ids::new_device_secret();
    let now = app.now_ms();
    let redemption = app
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
    let member = redeemed(redemption)?;
    tracing::info!(member = %member.member_id, device = %device_id, "device enrolled");
    crate::service::programme::enrolled(app, &member.member_id).await;
    Ok(EnrollResponse {
        member_id: member.member_id,
        card_number: member.card_number,
        device_id,
        device_secret: secret,
        server_time_ms: app.now_ms(),
    })
}

/// The member a redeemed code enrolled the device for, or why it did not (nothing was stored).
fn redeemed(redemption: Redemption) -> Result<MemberRecord, DomainError> {
    match redemption {
        Redemption::Redeemed(member) => Ok(member),
        Redemption::Unknown => Err(DomainError::not_found(
            "activation_code_not_found",
            "activation code is not known",
        )),
        Redemption::Used => Err(DomainError::new(
            ErrorKind::Conflict,
            "activation_code_used",
            "activation code was already used",
        )),
        Redemption::Expired => Err(DomainError::new(
            ErrorKind::Gone,
            "activation_code_expired",
            "activation code has expired",
        )),
        Redemption::KeyIdTaken => Err(DomainError::duplicate("a key with this key id")),
    }
}
