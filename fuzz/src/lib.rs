//! What each fuzz target does with its input, in one file shared by the cargo-fuzz targets
//! (`fuzz_targets/*.rs`) and by the main workspace's replay test (`tests/tests/e2e/fuzz_regressions.rs`
//! includes this file), so a crashing input kept under `fuzz/regressions/<target>/` is replayed
//! through exactly the code that crashed. Each function takes any bytes; a panic is a finding.
//! Beyond "does not panic", each checks a property the rest of the system relies on.

use automerge::AutoCommit;
use loyalty_core::api::EnrollRequest;
use loyalty_core::checkout_code::ParsedCode;
use loyalty_core::document::{DocKind, genesis};
use loyalty_core::ids::activation_code;
use loyalty_core::member;
use loyalty_core::protocol::{SyncRequest, SyncResponse};

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// Every target by the name of its cargo-fuzz binary and regression folder.
pub const TARGETS: [(&str, Target); 5] = [
    ("sync_request", sync_request),
    ("member_document", member_document),
    ("checkout_code", checkout_code),
    ("enroll_body", enroll_body),
    ("delivery_receipt", delivery_receipt),
];

/// The sync body decoders (the server's for requests, the device's for responses): a body that
/// decodes re-encodes to something that decodes to the same value.
pub fn sync_request(data: &[u8]) {
    if let Ok(request) = SyncRequest::decode(data) {
        let again = SyncRequest::decode(&request.encode());
        assert_eq!(
            again.as_ref(),
            Ok(&request),
            "a decoded request must round-trip"
        );
    }
    if let Ok(response) = SyncResponse::decode(data) {
        let again = SyncResponse::decode(&response.encode());
        assert_eq!(
            again.as_ref(),
            Ok(&response),
            "a decoded response must round-trip"
        );
    }
}

/// Member-document validation on arbitrary Automerge bytes, the two ways they reach it: loaded as
/// a document, and applied on top of the member genesis as a device's changes would be.
pub fn member_document(data: &[u8]) {
    // The server hands a device's bytes to Automerge only after counting them against the request
    // budget (`budget::check_message` scans each chunk so): bytes it would refuse never reach
    // Automerge there, so they do not here either.
    let mut tally = loyalty_core::chunks::Tally::default();
    if loyalty_core::chunks::scan(data, &loyalty_core::budget::REQUEST, &mut tally).is_err() {
        return;
    }
    if let Some(Ok(doc)) = automerge_decoding(|| AutoCommit::load(data)) {
        validate(&doc, data.len());
    }
    thread_local! {
        static GENESIS: AutoCommit = genesis(DocKind::Member);
    }
    let mut doc = GENESIS.with(AutoCommit::clone);
    let before = doc.get_heads();
    // Only what changed the document is worth validating (and saving, for its size); a document
    // Automerge panicked in the middle of is dropped, as the server drops it.
    let applied = automerge_decoding(|| doc.load_incremental(data));
    if matches!(applied, Some(Ok(_))) && doc.get_heads() != before {
        let saved = doc.save().len();
        validate(&doc, saved);
    }
}

/// Runs Automerge's own decoding of hostile bytes, containing a panic inside it: `None` when it
/// panicked. Automerge 0.12 still panics on some malformed input (an `unwrap` in its column
/// decoder, `hexane`; automerge/automerge#476 is the class upstream), which this project cannot
/// fix; the server meets such bytes only on the blocking pool (`service::sync`), where a panic is
/// answered `500` and stores nothing, so here it is not a finding. A panic in this project's own
/// code after the decoding (validation, reading) still is. The panic hook is silenced meanwhile,
/// so libFuzzer's (which aborts) does not turn the contained panic into a crash.
fn automerge_decoding<T>(decode: impl FnOnce() -> T) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode));
    std::panic::set_hook(hook);
    result.ok()
}

fn validate(doc: &AutoCommit, saved_len: usize) {
    let read = member::read(doc);
    let validated = member::validate(doc, saved_len);
    if saved_len <= member::limits::MAX_DOC_BYTES {
        // Below the byte limit, validation is reading.
        assert_eq!(read, validated, "validate and read disagree");
    }
}

/// The checkout-code parser on any text: what parses has one spelling, and the checks that follow
/// a parse take any clock and key without failing other than by refusing.
pub fn checkout_code(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(code) = ParsedCode::parse(text) else {
        return;
    };
    let _ = code.code_id();
    for now in [i64::MIN, -1, 0, 1_767_225_600_000, i64::MAX] {
        for skew in [0, 1, u32::MAX] {
            let _ = code.check_time(now, skew);
        }
    }
    for key in [
        &[0u8; 32][..],
        &[0xff; 32],
        &[],
        &data[..data.len().min(33)],
    ] {
        let verified = code.verify_signature(key);
        assert!(
            key.len() == 32 || verified.is_err(),
            "a key of the wrong size verifies nothing"
        );
    }
    // One code, one id, however it was spelt around (scanner line endings).
    let again = ParsedCode::parse(&format!("{text}\r\n")).map(|c| c.code_id());
    assert_eq!(again.ok(), Some(code.code_id()));
    offline_check(text, &code);
}

/// The offline till's check (`loyalty_core::offline::check_code`) on a code that parsed: with no
/// cached key it may only earn, with keys that do not sign it it refuses, at any clock.
fn offline_check(text: &str, code: &ParsedCode) {
    use loyalty_core::offline::{CachedKey, OfflinePolicy, OfflineTrust, check_code};
    let policy = OfflinePolicy::default();
    let wrong = [CachedKey {
        public_key: vec![0xff; 32],
        revoked: false,
    }];
    for now in [i64::MIN, 0, 1_767_225_600_000, i64::MAX] {
        if let Ok(check) = check_code(text, now, &[], false, now, &policy) {
            assert_eq!(check.trust, OfflineTrust::EarnOnly, "no key, no redemption");
            assert_eq!(check.code_id, code.code_id());
        }
        assert!(check_code(text, now, &wrong, false, now, &policy).is_err());
        assert!(
            check_code(text, now, &[], true, now, &policy).is_err(),
            "a blocked card"
        );
    }
}

/// The enrollment body as the server reads it: the JSON (with our refusals), then the activation
/// code's normalisation and the public key's parsing, also on the raw text.
pub fn enroll_body(data: &[u8]) {
    match loyalty_server::http::json::parse::<EnrollRequest>(data) {
        Ok(request) => {
            activation(&request.activation_code);
            public_key(&request.public_key);
        }
        Err(e) => {
            assert_eq!(e.status.as_u16(), 400);
            assert!(!e.message.is_empty(), "a refusal says why");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        activation(text);
        public_key(text);
    }
}

fn activation(typed: &str) {
    if let Some(code) = activation_code::normalize(typed) {
        assert_eq!(code.len(), 12);
        assert_eq!(
            activation_code::normalize(&code).as_deref(),
            Some(code.as_str())
        );
        let _ = activation_code::hash(&code);
    }
}

fn public_key(hex: &str) {
    if let Ok(key) = loyalty_server::service::enrollment::parse_public_key(hex) {
        assert_eq!(hex.len(), 64);
        let back: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(back, hex.to_ascii_lowercase());
    }
}

/// A provider's delivery receipt as the server reads it: the signature check
/// (`outbound::webhook::verify`) on the input's first line as the signature and the rest as the
/// body, then the body's rules (`service::receipts::parse`). Only the signature the key makes
/// verifies; a body that passes re-serializes to one that parses to the same receipt, its ids are
/// record ids and its reason is lower-case, and a refusal is `invalid_receipt` with a message.
pub fn delivery_receipt(data: &[u8]) {
    use loyalty_server::outbound::webhook::{key, signature, verify};
    let key = key("a fuzzing secret of 32 bytes or more");
    let at = 1_700_000_000;
    let (line, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let real = signature(&key, at, body);
    let given = String::from_utf8_lossy(line);
    let verified = verify(&key, at, &at.to_string(), body, &given);
    assert_eq!(
        verified,
        given == real,
        "only the key's own signature verifies"
    );
    assert!(verify(&key, at, &at.to_string(), body, &real));
    match loyalty_server::service::receipts::parse(body) {
        Ok(receipt) => {
            assert!(loyalty_core::ids::valid_record_id(&receipt.message_id));
            assert!(loyalty_core::ids::valid_record_id(&receipt.member_id));
            assert!(receipt.reason.as_ref().is_none_or(|r| {
                r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            }));
            let again = serde_json::to_vec(&receipt).expect("a receipt serializes");
            let reparsed = loyalty_server::service::receipts::parse(&again);
            assert_eq!(
                reparsed.ok(),
                Some(receipt),
                "a parsed receipt must round-trip"
            );
        }
        Err(e) => {
            assert_eq!(e.code, "invalid_receipt");
            assert!(!e.message.is_empty(), "a refusal says why");
        }
    }
}
