//! The route table: every path the server mounts, written once. The server's router, its OpenAPI
//! document, the operator and till clients and the device's sync client all take their paths from
//! here, so a path cannot drift between the side that serves it and the sides that call it.
//!
//! A template names its parameters in braces (`/v1/members/{member_id}/sync`), the syntax both axum
//! and OpenAPI use, so one constant serves the router and the document. Clients fill a template with
//! the functions below, which percent-encode each value: an id with a `/` or a `?` in it stays one
//! path segment instead of naming another route.

/// Liveness: `200 ok`, no credentials.
pub const HEALTHZ: &str = "/healthz";
/// Readiness: the database answers at this binary's schema version, and the server is not stopping.
pub const READYZ: &str = "/readyz";
/// Prometheus metrics, behind the metrics token.
pub const METRICS: &str = "/metrics";
/// The OpenAPI 3.1 document of this API, generated from the handlers; no credentials.
pub const OPENAPI: &str = "/openapi.json";

/// A device enrolls with an activation code.
pub const ENROLL: &str = "/v1/enroll";
/// A device syncs all of its member's documents (binary, `docs/protocol.md` §2).
pub const MEMBER_SYNC: &str = "/v1/members/{member_id}/sync";
/// A document's full Automerge bytes.
pub const MEMBER_DOCUMENT: &str = "/v1/members/{member_id}/documents/{doc}";
/// The long poll for live updates.
pub const MEMBER_CHANGES: &str = "/v1/members/{member_id}/changes";
/// The member sets their till PIN (for paying with points by card number).
pub const MEMBER_PIN: &str = "/v1/members/{member_id}/pin";
/// The member links a plastic card from the app.
pub const MEMBER_CARDS: &str = "/v1/members/{member_id}/cards";

/// The till reads a checkout code.
pub const TILL_SCAN: &str = "/v1/till/scan";
/// The till posts a purchase.
pub const TILL_PURCHASES: &str = "/v1/till/purchases";
/// The till posts a refund.
pub const TILL_REFUNDS: &str = "/v1/till/refunds";
/// The till's cache of device keys and card status, as a delta since a cursor.
pub const TILL_KEYS: &str = "/v1/till/keys";
/// The till flushes a purchase it made offline.
pub const TILL_OFFLINE_PURCHASES: &str = "/v1/till/offline-purchases";
/// The member's PIN entered at the till for a session opened by card number.
pub const TILL_SESSION_PIN: &str = "/v1/till/sessions/{session_id}/pin";

/// Operators create members (POST) and find them (GET).
pub const ADMIN_MEMBERS: &str = "/v1/admin/members";
/// What the server holds for a member.
pub const ADMIN_MEMBER: &str = "/v1/admin/members/{member_id}";
/// A new activation code for another device of the member.
pub const ADMIN_MEMBER_ACTIVATION_CODES: &str = "/v1/admin/members/{member_id}/activation-codes";
/// An offer published to one member.
pub const ADMIN_MEMBER_OFFERS: &str = "/v1/admin/members/{member_id}/offers";
/// A message sent to one member.
pub const ADMIN_MEMBER_MESSAGES: &str = "/v1/admin/members/{member_id}/messages";
/// Pins or releases the member's tier.
pub const ADMIN_MEMBER_TIER: &str = "/v1/admin/members/{member_id}/tier";
/// Credits or debits the member's points by hand.
pub const ADMIN_MEMBER_ADJUSTMENTS: &str = "/v1/admin/members/{member_id}/adjustments";
/// Blocks the member's card.
pub const ADMIN_MEMBER_BLOCK: &str = "/v1/admin/members/{member_id}/block";
/// Unblocks the member's card.
pub const ADMIN_MEMBER_UNBLOCK: &str = "/v1/admin/members/{member_id}/unblock";
/// The member's card number as a QR code.
pub const ADMIN_MEMBER_CARD_QR: &str = "/v1/admin/members/{member_id}/card-qr";
/// Starts the member's documents afresh (new epochs).
pub const ADMIN_MEMBER_EPOCHS: &str = "/v1/admin/members/{member_id}/epochs";
/// Links a plastic card to the member.
pub const ADMIN_MEMBER_CARDS: &str = "/v1/admin/members/{member_id}/cards";
/// Reports one of the member's linked cards lost.
pub const ADMIN_MEMBER_CARD_LOST: &str = "/v1/admin/members/{member_id}/cards/{card_number}/lost";
/// The member's whole ledger, a page at a time.
pub const ADMIN_MEMBER_LEDGER: &str = "/v1/admin/members/{member_id}/ledger";
/// The member's devices, with when each was last seen.
pub const ADMIN_MEMBER_DEVICES: &str = "/v1/admin/members/{member_id}/devices";
/// Revokes a device and its checkout key.
pub const ADMIN_DEVICE_REVOKE: &str = "/v1/admin/devices/{device_id}/revoke";
/// Publishes an offer to members, a tier or a segment (POST); lists offers with their figures (GET).
pub const ADMIN_OFFERS: &str = "/v1/admin/offers";
/// One offer with its figures.
pub const ADMIN_OFFER: &str = "/v1/admin/offers/{offer_id}";
/// Ends an offer now: members see it ended at their next sync.
pub const ADMIN_OFFER_END: &str = "/v1/admin/offers/{offer_id}/end";
/// Withdraws an offer: gone from members' phones at their next sync.
pub const ADMIN_OFFER_WITHDRAW: &str = "/v1/admin/offers/{offer_id}/withdraw";
/// An offer's uptake by segment.
pub const ADMIN_OFFER_UPTAKE: &str = "/v1/admin/offers/{offer_id}/uptake";
/// Defines (POST) and lists (GET) segments.
pub const ADMIN_SEGMENTS: &str = "/v1/admin/segments";
/// Edits (PUT) or deletes (DELETE) a segment.
pub const ADMIN_SEGMENT: &str = "/v1/admin/segments/{segment_id}";
/// Sends a message to members or a segment.
pub const ADMIN_MESSAGES: &str = "/v1/admin/messages";
/// What became of each recipient of a message.
pub const ADMIN_DELIVERIES: &str = "/v1/admin/deliveries";
/// Members' requests (questions, complaints).
pub const ADMIN_REQUESTS: &str = "/v1/admin/requests";
/// Answers a request, named `<member_id>.<request_id>`.
pub const ADMIN_REQUEST_REPLIES: &str = "/v1/admin/requests/{id}/replies";
/// Closes a request without a reply.
pub const ADMIN_REQUEST_CLOSE: &str = "/v1/admin/requests/{id}/close";
/// The programme's configuration: read (GET), replace (PUT).
pub const ADMIN_PROGRAMME: &str = "/v1/admin/programme";
/// Runs the settle job now.
pub const ADMIN_PROGRAMME_SETTLE: &str = "/v1/admin/programme/settle";
/// What offline tills' flushes could not do as the till did it: reused codes, redemption
/// shortfalls, refused postings.
pub const ADMIN_TILL_EXCEPTIONS: &str = "/v1/admin/till-exceptions";
/// Named operator accounts: list (GET), create (POST; the answer holds the token, once).
pub const ADMIN_OPERATORS: &str = "/v1/admin/operators";
/// Disables an operator account: its token stops working at once.
pub const ADMIN_OPERATOR_DISABLE: &str = "/v1/admin/operators/{operator_id}/disable";
/// Every operator write: who, what, when, from where, and how it ended.
pub const ADMIN_AUDIT: &str = "/v1/admin/audit";
/// The programme's outstanding points, in points and money (JSON, or CSV with `format=csv`).
pub const ADMIN_REPORT_LIABILITY: &str = "/v1/admin/reports/liability";
/// What became of one send or of a period's sends: deliveries by channel, status and reason.
pub const ADMIN_REPORT_DELIVERIES: &str = "/v1/admin/reports/deliveries";
/// Points earned, redeemed and expired per day, week or month.
pub const ADMIN_REPORT_POINTS: &str = "/v1/admin/reports/points";
/// Members by tier, enrollments, activity and the repeat purchase rate.
pub const ADMIN_REPORT_MEMBERS: &str = "/v1/admin/reports/members";
/// Segment sizes over recomputes (joined, departed) and the RFM score distribution.
pub const ADMIN_REPORT_SEGMENTS: &str = "/v1/admin/reports/segments";
/// The fraud watch list: members and tills by velocity, redemptions, refunds and refused codes.
pub const ADMIN_REPORT_WATCH: &str = "/v1/admin/reports/watch";

/// A provider's delivery receipt for a delivery it accepted (signed as the webhook is).
pub const OUTBOUND_RECEIPTS: &str = "/v1/outbound/receipts";

/// The operators' console session: log in (`POST`), who is logged in (`GET`), log out (`DELETE`).
pub const CONSOLE_SESSION: &str = "/console/session";

/// Every path above, for the tests and tools that check the router and the OpenAPI document
/// against the table.
pub const ALL: &[&str] = &[
    HEALTHZ,
    READYZ,
    METRICS,
    OPENAPI,
    ENROLL,
    MEMBER_SYNC,
    MEMBER_DOCUMENT,
    MEMBER_CHANGES,
    MEMBER_PIN,
    MEMBER_CARDS,
    TILL_SCAN,
    TILL_PURCHASES,
    TILL_REFUNDS,
    TILL_KEYS,
    TILL_OFFLINE_PURCHASES,
    TILL_SESSION_PIN,
    ADMIN_MEMBERS,
    ADMIN_MEMBER,
    ADMIN_MEMBER_ACTIVATION_CODES,
    ADMIN_MEMBER_OFFERS,
    ADMIN_MEMBER_MESSAGES,
    ADMIN_MEMBER_TIER,
    ADMIN_MEMBER_ADJUSTMENTS,
    ADMIN_MEMBER_BLOCK,
    ADMIN_MEMBER_UNBLOCK,
    ADMIN_MEMBER_CARD_QR,
    ADMIN_MEMBER_EPOCHS,
    ADMIN_MEMBER_CARDS,
    ADMIN_MEMBER_CARD_LOST,
    ADMIN_MEMBER_LEDGER,
    ADMIN_MEMBER_DEVICES,
    ADMIN_DEVICE_REVOKE,
    ADMIN_OFFERS,
    ADMIN_OFFER,
    ADMIN_OFFER_END,
    ADMIN_OFFER_UPTAKE,
    ADMIN_OFFER_WITHDRAW,
    ADMIN_SEGMENTS,
    ADMIN_SEGMENT,
    ADMIN_MESSAGES,
    ADMIN_DELIVERIES,
    ADMIN_REQUESTS,
    ADMIN_REQUEST_REPLIES,
    ADMIN_REQUEST_CLOSE,
    ADMIN_PROGRAMME,
    ADMIN_PROGRAMME_SETTLE,
    ADMIN_TILL_EXCEPTIONS,
    ADMIN_OPERATORS,
    ADMIN_OPERATOR_DISABLE,
    ADMIN_AUDIT,
    ADMIN_REPORT_LIABILITY,
    ADMIN_REPORT_DELIVERIES,
    ADMIN_REPORT_POINTS,
    ADMIN_REPORT_MEMBERS,
    ADMIN_REPORT_SEGMENTS,
    ADMIN_REPORT_WATCH,
    OUTBOUND_RECEIPTS,
    CONSOLE_SESSION,
];

pub fn admin_operator_disable(operator_id: &str) -> String {
    fill(ADMIN_OPERATOR_DISABLE, &[operator_id])
}

pub fn member_sync(member_id: &str) -> String {
    fill(MEMBER_SYNC, &[member_id])
}

pub fn member_document(member_id: &str, doc: &str) -> String {
    fill(MEMBER_DOCUMENT, &[member_id, doc])
}

pub fn member_changes(member_id: &str) -> String {
    fill(MEMBER_CHANGES, &[member_id])
}

pub fn member_pin(member_id: &str) -> String {
    fill(MEMBER_PIN, &[member_id])
}

pub fn member_cards(member_id: &str) -> String {
    fill(MEMBER_CARDS, &[member_id])
}

pub fn admin_member_cards(member_id: &str) -> String {
    fill(ADMIN_MEMBER_CARDS, &[member_id])
}

pub fn admin_member_card_lost(member_id: &str, card_number: &str) -> String {
    fill(ADMIN_MEMBER_CARD_LOST, &[member_id, card_number])
}

pub fn till_session_pin(session_id: &str) -> String {
    fill(TILL_SESSION_PIN, &[session_id])
}

pub fn admin_member(member_id: &str) -> String {
    fill(ADMIN_MEMBER, &[member_id])
}

pub fn admin_member_activation_codes(member_id: &str) -> String {
    fill(ADMIN_MEMBER_ACTIVATION_CODES, &[member_id])
}

pub fn admin_member_offers(member_id: &str) -> String {
    fill(ADMIN_MEMBER_OFFERS, &[member_id])
}

pub fn admin_member_messages(member_id: &str) -> String {
    fill(ADMIN_MEMBER_MESSAGES, &[member_id])
}

pub fn admin_member_tier(member_id: &str) -> String {
    fill(ADMIN_MEMBER_TIER, &[member_id])
}

pub fn admin_member_adjustments(member_id: &str) -> String {
    fill(ADMIN_MEMBER_ADJUSTMENTS, &[member_id])
}

pub fn admin_member_block(member_id: &str) -> String {
    fill(ADMIN_MEMBER_BLOCK, &[member_id])
}

pub fn admin_member_unblock(member_id: &str) -> String {
    fill(ADMIN_MEMBER_UNBLOCK, &[member_id])
}

pub fn admin_member_card_qr(member_id: &str) -> String {
    fill(ADMIN_MEMBER_CARD_QR, &[member_id])
}

pub fn admin_member_epochs(member_id: &str) -> String {
    fill(ADMIN_MEMBER_EPOCHS, &[member_id])
}

pub fn admin_member_ledger(member_id: &str) -> String {
    fill(ADMIN_MEMBER_LEDGER, &[member_id])
}

pub fn admin_member_devices(member_id: &str) -> String {
    fill(ADMIN_MEMBER_DEVICES, &[member_id])
}

pub fn admin_offer(offer_id: &str) -> String {
    fill(ADMIN_OFFER, &[offer_id])
}

pub fn admin_offer_end(offer_id: &str) -> String {
    fill(ADMIN_OFFER_END, &[offer_id])
}

pub fn admin_offer_uptake(offer_id: &str) -> String {
    fill(ADMIN_OFFER_UPTAKE, &[offer_id])
}

pub fn admin_offer_withdraw(offer_id: &str) -> String {
    fill(ADMIN_OFFER_WITHDRAW, &[offer_id])
}

pub fn admin_segment(segment_id: &str) -> String {
    fill(ADMIN_SEGMENT, &[segment_id])
}

pub fn admin_device_revoke(device_id: &str) -> String {
    fill(ADMIN_DEVICE_REVOKE, &[device_id])
}

pub fn admin_request_replies(id: &str) -> String {
    fill(ADMIN_REQUEST_REPLIES, &[id])
}

pub fn admin_request_close(id: &str) -> String {
    fill(ADMIN_REQUEST_CLOSE, &[id])
}

/// `template` with its `{…}` parameters replaced, in order, by `values`, each percent-encoded as
/// one path segment. A parameter without a value is left as it is (the functions above always
/// pass one per parameter; the tests check it).
pub fn fill(template: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut values = values.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        match values.next() {
            Some(value) => encode_segment(value, &mut out),
            None => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Appends `value` with everything but RFC 3986's unreserved characters percent-encoded.
fn encode_segment(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_filled_in_order() {
        assert_eq!(member_sync("mbr_1"), "/v1/members/mbr_1/sync");
        assert_eq!(
            member_document("mbr_1", "card"),
            "/v1/members/mbr_1/documents/card"
        );
        assert_eq!(
            admin_request_close("mbr_1.req-2"),
            "/v1/admin/requests/mbr_1.req-2/close"
        );
    }

    #[test]
    fn a_value_stays_one_segment() {
        assert_eq!(
            admin_member("a/b?c d%"),
            "/v1/admin/members/a%2Fb%3Fc%20d%25"
        );
        assert_eq!(admin_member("é"), "/v1/admin/members/%C3%A9");
    }

    #[test]
    fn every_path_is_listed_once_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for path in ALL {
            assert!(seen.insert(*path), "{path} is listed twice");
            assert!(path.starts_with('/') && !path.ends_with('/'), "{path}");
            // Balanced braces, each around a name: what axum and OpenAPI both read.
            let opens = path.matches('{').count();
            assert_eq!(opens, path.matches('}').count(), "{path}");
            assert_eq!(
                fill(path, &vec!["x"; opens]).matches('{').count(),
                0,
                "{path}"
            );
        }
    }
}
