//! Device keys end to end: enrollment refuses every key anyone could sign for, and the till refuses
//! codes made for such a key even when one is already in the database (enrolled before the check).

use loyalty_core::checkout_code::{self, SIGNATURE_LEN, key_id};
use loyalty_core::clock::Clock;
use loyalty_core::ids::{self, activation_code, hex};
use loyalty_server::storage::NewDevice;
use loyalty_tests::*;

fn unhex(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// The eight points of small order (identity, order 2, two of order 4, four of order 8).
const SMALL_ORDER: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

/// Every key whose y is p = 2^255 - 19 or more (not reduced), with either sign bit; among them
/// are second spellings of the identity and of large-order points.
fn unreduced() -> Vec<String> {
    let mut all = Vec::new();
    for excess in 0u8..19 {
        for sign in [0u8, 0x80] {
            let mut bytes = [0xffu8; 32];
            bytes[0] = 0xed + excess;
            bytes[31] = 0x7f | sign;
            all.push(hex(&bytes));
        }
    }
    all
}

/// `POST /v1/enroll` with a hand-made public key; the status and error code.
async fn enroll_raw(url: &str, code: &str, public_key: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/enroll"))
        .json(&serde_json::json!({
            "activation_code": code, "device_name": "attacker", "public_key": public_key
        }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

/// A checkout code for `card` "signed" for the identity key: R = the identity, s = 0, which
/// verifies for every message under that key.
fn trivially_signed_code(card: u64, now_ms: i64) -> String {
    let identity = unhex(SMALL_ORDER[0]);
    let mut payload = vec![checkout_code::VERSION];
    payload.extend_from_slice(&card.to_be_bytes());
    payload.extend_from_slice(&key_id(&identity).to_be_bytes());
    payload.extend_from_slice(&checkout_code::time_step_at(now_ms).to_be_bytes());
    let mut signature = [0u8; SIGNATURE_LEN];
    signature[..32].copy_from_slice(&identity);
    payload.extend_from_slice(&signature);
    base45::encode(&payload)
}

#[test]
fn enrollment_refuses_every_small_order_and_unreduced_key_and_keeps_the_code() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let member = server.operator().create_member(None).await.unwrap();
        let unsafe_keys: Vec<String> = SMALL_ORDER
            .iter()
            .map(|k| k.to_string())
            .chain(unreduced())
            .collect();
        assert_eq!(unsafe_keys.len(), 8 + 38);
        for key in &unsafe_keys {
            assert_eq!(
                enroll_raw(&server.url, &member.activation_code, key).await,
                (400, "invalid_public_key".to_string()),
                "{key}"
            );
        }
        // Each refusal changed nothing: the activation code still enrolls an honest phone.
        let phone = loyalty_core::Device::open(dir.path().join("phone.db")).unwrap();
        phone
            .enroll(&server.url, &member.activation_code, "phone")
            .await
            .unwrap();
        phone.sync().await.unwrap();
        assert_eq!(phone.credentials().unwrap().member_id, member.member_id);
    });
}

#[test]
fn the_identity_key_attack_is_refused_at_enrollment_and_at_the_till() {
    rt().block_on(async {
        let s = shop().await;
        s.earn(500).await;
        let before = s.balance().await;
        let card =
            checkout_code::card_number_to_u64(&s.phone.credentials().unwrap().card_number).unwrap();
        let op = s.server.operator();

        // The attack as it was: enroll the identity key with a code for the card...
        let code = op.activation_code(&s.member_id).await.unwrap();
        assert_eq!(
            enroll_raw(&s.server.url, &code.activation_code, SMALL_ORDER[0]).await,
            (400, "invalid_public_key".to_string())
        );
        // ...then scan a forged code: no such key is registered.
        let forged = trivially_signed_code(card, s.clock.now_ms());
        assert_eq!(
            refusal(s.till.scan(&forged).await.unwrap_err()),
            "unknown_key"
        );

        // A database from before the check may hold such a key: the till refuses it too.
        let normalized = activation_code::normalize(&code.activation_code).unwrap();
        let redemption = s
            .server
            .app
            .storage
            .redeem_activation_code(
                activation_code::hash(&normalized),
                s.clock.now_ms(),
                NewDevice {
                    device_id: ids::new_device_id(),
                    secret_hash: [7; 32],
                    public_key: unhex(SMALL_ORDER[0]),
                    name: "enrolled before the fix".into(),
                    created_at_ms: s.clock.now_ms(),
                },
            )
            .await
            .unwrap();
        assert!(matches!(
            redemption,
            loyalty_server::storage::Redemption::Redeemed(_)
        ));
        assert_eq!(
            refusal(s.till.scan(&forged).await.unwrap_err()),
            "unsafe_key"
        );
        assert_eq!(s.balance().await, before, "no points moved");
        // The member's own phone still checks out.
        s.till.scan(&s.next_code().text).await.unwrap();
    });
}
