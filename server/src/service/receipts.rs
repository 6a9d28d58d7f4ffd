//! Delivery receipts: whether a message a provider accepted (`handed_over`) then reached the
//! member is the provider's to tell, and a gateway behind the signed webhook tells it by posting a
//! receipt back, signed with the webhook's own secret. The receipt is checked by the configured
//! adapter ([`crate::outbound::Outbound::check_receipt`]) before its body is even parsed, and
//! moves the delivery to `delivered` or to `failed` with the provider's reason; the member's inbox
//! entry follows at the next sync. Only a handed-over delivery takes a receipt; the same receipt
//! again (a provider's retry) is answered as recorded and changes nothing.

use loyalty_core::api::{DeliveryReceipt, MAX_RECEIPT_REASON, ReceiptRecorded, ReceiptState};
use loyalty_core::ids;

use crate::app::App;
use crate::error::{DomainError, ErrorKind};
use crate::outbound::webhook::RECEIPT_MAX_AGE_S;
use crate::storage::{Receipt, ReceiptOutcome, ReceiptStatus};

/// The signed request as it arrived: its two headers and its body's bytes.
pub struct SignedReceipt<'a> {
    pub timestamp: &'a str,
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// Checks the signature, then records what the receipt says.
pub async fn record(app: &App, signed: SignedReceipt<'_>) -> Result<ReceiptRecorded, DomainError> {
    match app
        .outbound
        .check_receipt(signed.timestamp, signed.body, signed.signature)
    {
        None => {
            return Err(DomainError::not_found(
                "receipts_not_configured",
                "this server takes delivery receipts only from a configured webhook",
            ));
        }
        Some(false) => {
            return Err(DomainError::unauthorized(format!(
                "the receipt's Loyalty-Signature does not match its body and Loyalty-Timestamp \
                 under the webhook's secret, or the timestamp is more than {RECEIPT_MAX_AGE_S} s \
                 from the server's clock"
            )));
        }
        Some(true) => {}
    }
    let receipt = parse(signed.body)?;
    let status = match receipt.status {
        ReceiptState::Delivered => ReceiptStatus::Delivered,
        ReceiptState::Failed => ReceiptStatus::Failed,
    };
    let outcome = app
        .storage
        .record_receipt(
            &receipt.message_id,
            &receipt.member_id,
            Receipt {
                status,
                reason: receipt.reason,
                detail: receipt.detail,
            },
            app.now_ms(),
        )
        .await?;
    match outcome {
        ReceiptOutcome::Recorded | ReceiptOutcome::Unchanged => Ok(ReceiptRecorded {
            status: receipt.status,
            changed: outcome == ReceiptOutcome::Recorded,
        }),
        ReceiptOutcome::NotFound => Err(DomainError::not_found(
            "delivery_not_found",
            "no delivery of that message to that member",
        )),
        ReceiptOutcome::NotHandedOver(now) => Err(DomainError::new(
            ErrorKind::Conflict,
            "delivery_not_handed_over",
            format!(
                "the delivery is {}: only a delivery a provider accepted (handed_over) takes a receipt",
                now.as_str()
            ),
        )),
    }
}

/// The receipt's body, held to its rules (`400 invalid_receipt` otherwise).
pub fn parse(body: &[u8]) -> Result<DeliveryReceipt, DomainError> {
    let invalid = |why: String| DomainError::bad_request("invalid_receipt", why);
    let receipt: DeliveryReceipt =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the receipt: {e}")))?;
    if !ids::valid_record_id(&receipt.message_id) || !ids::valid_record_id(&receipt.member_id) {
        return Err(invalid(
            "message_id and member_id are ids of 1-64 of A-Z a-z 0-9 _ - .".into(),
        ));
    }
    let reason_ok = |r: &String| {
        (1..=MAX_RECEIPT_REASON).contains(&r.len())
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if receipt.reason.as_ref().is_some_and(|r| !reason_ok(r)) {
        return Err(invalid(format!(
            "a reason is 1-{MAX_RECEIPT_REASON} of a-z 0-9 _"
        )));
    }
    if receipt.status == ReceiptState::Delivered && receipt.reason.is_some() {
        return Err(invalid("a delivered receipt gives no reason".into()));
    }
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(e) => format!("{}: {}", e.code, e.message),
            Ok(r) => panic!("accepted {r:?}"),
        }
    }

    #[test]
    fn a_receipt_body_is_held_to_its_rules() {
        let ok = parse(br#"{"message_id":"m.1","member_id":"mbr_1","status":"failed","reason":"bounced","detail":"550 no such user"}"#)
            .unwrap();
        assert_eq!(
            (ok.status, ok.reason.as_deref()),
            (ReceiptState::Failed, Some("bounced"))
        );
        for bad in [
            "",
            "{}",
            r#"{"message_id":"m","member_id":"x","status":"lost"}"#,
            r#"{"message_id":"m","member_id":"x","status":"delivered","extra":1}"#,
            r#"{"message_id":"m/1","member_id":"x","status":"delivered"}"#,
            r#"{"message_id":"m","member_id":"","status":"delivered"}"#,
            r#"{"message_id":"m","member_id":"x","status":"failed","reason":"Bounced!"}"#,
            r#"{"message_id":"m","member_id":"x","status":"failed","reason":""}"#,
            r#"{"message_id":"m","member_id":"x","status":"delivered","reason":"bounced"}"#,
        ] {
            assert!(refusal(bad).starts_with("invalid_receipt: "), "{bad}");
        }
        let long = format!(
            r#"{{"message_id":"m","member_id":"x","status":"failed","reason":"{}"}}"#,
            "a".repeat(MAX_RECEIPT_REASON + 1)
        );
        assert!(refusal(&long).starts_with("invalid_receipt: "));
    }
}
