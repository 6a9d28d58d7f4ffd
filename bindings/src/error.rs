//! The one public error type, mapped from the core's internal errors.

use loyalty_core::Error as CoreError;

/// Everything that can go wrong, in the few cases an app acts on differently.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum LoyaltyError {
    /// The server could not be reached. Everything local still works; sync again later.
    #[error("offline: {detail}")]
    Offline { detail: String },
    /// The server no longer accepts this device (revoked, or its credentials are wrong).
    #[error("unauthorized: {detail}")]
    Unauthorized { detail: String },
    /// The call needs an enrolled device: enroll first.
    #[error("this device is not enrolled yet")]
    NotEnrolled,
    /// The app passed something the core refuses (an unknown offer, an expired offer, a bad
    /// preference name, a malformed activation code, enrolling twice). `detail` says what.
    #[error("invalid input: {detail}")]
    InvalidInput { detail: String },
    /// The server answered with a refusal: `code` is its stable reason (for example
    /// `activation_code_not_found`, `activation_code_used`, `activation_code_expired`, `busy`);
    /// `status` the HTTP status, or 0 when the server's answer itself was unusable.
    #[error("the server refused ({status} {code}): {detail}")]
    ServerRejected {
        status: i32,
        code: String,
        detail: String,
    },
    /// The local store or the host's secret store failed (disk full, corrupt file, Keychain
    /// locked, missing signing key).
    #[error("storage: {detail}")]
    Storage { detail: String },
}

/// Server error codes that mean the app sent something malformed.
const INPUT_CODES: [&str; 2] = ["malformed_activation_code", "invalid_device_name"];

impl From<CoreError> for LoyaltyError {
    fn from(e: CoreError) -> Self {
        let detail = e.to_string();
        match e {
            CoreError::NotEnrolled => LoyaltyError::NotEnrolled,
            CoreError::AlreadyEnrolled { .. }
            | CoreError::InvalidInput(_)
            | CoreError::HistoryTooLong(_) => LoyaltyError::InvalidInput { detail },
            CoreError::Offline(_) => LoyaltyError::Offline { detail },
            CoreError::Server {
                status: 401 | 403,
                message,
                ..
            } => LoyaltyError::Unauthorized { detail: message },
            CoreError::Server { code, message, .. } if INPUT_CODES.contains(&code.as_str()) => {
                LoyaltyError::InvalidInput { detail: message }
            }
            CoreError::Server {
                status,
                code,
                message,
            } => LoyaltyError::ServerRejected {
                status: i32::from(status),
                code,
                detail: message,
            },
            CoreError::SyncDidNotSettle(_) => LoyaltyError::ServerRejected {
                status: 0,
                code: "sync_did_not_settle".into(),
                detail,
            },
            CoreError::Protocol(_) => LoyaltyError::ServerRejected {
                status: 0,
                code: "malformed_answer".into(),
                detail,
            },
            CoreError::Store(_)
            | CoreError::Document(_)
            | CoreError::Secrets(_)
            | CoreError::CheckoutKey(_) => LoyaltyError::Storage { detail },
        }
    }
}

/// What a host's [`crate::SecretStore`] throws when the platform store fails.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum SecretStoreError {
    #[error("{detail}")]
    Failed { detail: String },
}

/// Any other exception thrown by the host's implementation arrives here.
impl From<uniffi::UnexpectedUniFFICallbackError> for SecretStoreError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        SecretStoreError::Failed { detail: e.reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: u16, code: &str) -> CoreError {
        CoreError::Server {
            status,
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn maps_core_errors_to_the_public_cases() {
        assert!(matches!(
            LoyaltyError::from(CoreError::NotEnrolled),
            LoyaltyError::NotEnrolled
        ));
        assert!(matches!(
            LoyaltyError::from(CoreError::Offline("x".into())),
            LoyaltyError::Offline { .. }
        ));
        assert!(matches!(
            LoyaltyError::from(server(401, "unauthorized")),
            LoyaltyError::Unauthorized { .. }
        ));
        assert!(matches!(
            LoyaltyError::from(server(403, "forbidden")),
            LoyaltyError::Unauthorized { .. }
        ));
        assert!(matches!(
            LoyaltyError::from(server(400, "malformed_activation_code")),
            LoyaltyError::InvalidInput { .. }
        ));
        assert!(matches!(
            LoyaltyError::from(server(404, "activation_code_not_found")),
            LoyaltyError::ServerRejected { status: 404, ref code, .. } if code == "activation_code_not_found"
        ));
        assert!(matches!(
            LoyaltyError::from(CoreError::InvalidInput("x".into())),
            LoyaltyError::InvalidInput { .. }
        ));
        assert!(matches!(
            LoyaltyError::from(CoreError::CheckoutKey("x".into())),
            LoyaltyError::Storage { .. }
        ));
    }
}
