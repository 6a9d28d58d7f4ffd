//! The checkout journey end to end: a code made offline on the phone, rendered as a QR code, read
//! by a real decoder, scanned at the till; purchases and refunds on the ledger; the phone catching up.

use std::sync::Arc;
use std::time::Duration;

use loyalty_core::api::RefundRequest;
use loyalty_core::checkout_code::{self, CheckoutCode, ParsedCode};
use loyalty_core::qr::QrMatrix;
use loyalty_core::{Clock, DocKind};
use loyalty_server::client::TillClient;
use loyalty_tests::*;

fn zbar(png: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("code.png");
    std::fs::write(&path, png).unwrap();
    let out = std::process::Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&path)
        .output()
        .expect("zbarimg (apt-get install zbar-tools) must be installed for this test");
    assert!(out.status.success(), "zbarimg found no code");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_string()
}

#[test]
fn a_code_rendered_as_png_is_read_by_a_real_decoder_and_accepted_once() {
    rt().block_on(async {
        let s = shop().await;
        let code = s.phone.checkout_code().unwrap();
        // Drawn as the app draws it (the fixed mask of docs/checkout-code.md §5).
        let matrix = QrMatrix::encode_checkout_code(&code).unwrap();
        assert_eq!(
            matrix.version, 5,
            "a 122-character code fits QR version 5 at ECC M"
        );
        let decoded = zbar(&matrix.to_png(4).unwrap());
        assert_eq!(decoded, code.text);
        let scan = s.till.scan(&decoded).await.unwrap();
        assert_eq!(scan.member_id, s.member_id);
        assert_eq!(scan.card_number, s.phone.credentials().unwrap().card_number);
        assert_eq!(
            refusal(s.till.scan(&decoded).await.unwrap_err()),
            "code_replayed"
        );
    });
}

#[test]
fn bad_codes_are_refused_with_a_reason_and_change_nothing() {
    rt().block_on(async {
        let s = shop().await;
        s.earn(50).await;
        let before = s.server.operator().member(&s.member_id).await.unwrap();

        // Garbage.
        assert_eq!(
            refusal(s.till.scan("hello till").await.unwrap_err()),
            "malformed_code"
        );
        // Expired: made two steps ago.
        let old = s.next_code();
        s.clock.advance(2 * checkout_code::STEP_SECONDS * 1000);
        assert_eq!(
            refusal(s.till.scan(&old.text).await.unwrap_err()),
            "code_expired"
        );
        // From the future: made two steps ahead of the server's clock (a phone far off).
        let ahead = s.next_code();
        s.clock.advance(-2 * checkout_code::STEP_SECONDS * 1000);
        assert_eq!(
            refusal(s.till.scan(&ahead.text).await.unwrap_err()),
            "code_not_yet_valid"
        );
        s.clock.advance(2 * checkout_code::STEP_SECONDS * 1000);
        // Forged: the signature of a real code altered.
        let real = s.next_code();
        let mut payload = base45::decode(&real.text).unwrap();
        payload[40] ^= 0x01;
        assert_eq!(
            refusal(s.till.scan(&base45::encode(&payload)).await.unwrap_err()),
            "bad_signature"
        );
        // Forged: the card number changed, the signature kept.
        let mut payload = base45::decode(&real.text).unwrap();
        payload[8] ^= 0x01;
        let forged = base45::encode(&payload);
        let code = refusal(s.till.scan(&forged).await.unwrap_err());
        assert!(code == "unknown_card" || code == "bad_signature", "{code}");
        // Signed by a key this server never registered (another server's device, say).
        let stranger = checkout_code::generate_key_pair().unwrap();
        let card = ParsedCode::parse(&real.text).unwrap().card_number;
        let foreign = CheckoutCode::make(&stranger, card, s.clock.now_ms());
        assert_eq!(
            refusal(s.till.scan(&foreign.text).await.unwrap_err()),
            "unknown_key"
        );
        // The real code was not used up by any of that.
        s.till.scan(&real.text).await.unwrap();

        // A blocked card.
        let op = s.server.operator();
        op.block(&s.member_id).await.unwrap();
        assert_eq!(
            refusal(s.till.scan(&s.next_code().text).await.unwrap_err()),
            "card_blocked"
        );
        op.unblock(&s.member_id).await.unwrap();
        s.till.scan(&s.next_code().text).await.unwrap();

        // A revoked device's key.
        let device_id = s.phone.credentials().unwrap().device_id;
        op.revoke_device(&device_id).await.unwrap();
        assert_eq!(
            refusal(s.till.scan(&s.next_code().text).await.unwrap_err()),
            "key_revoked"
        );

        let after = s.server.operator().member(&s.member_id).await.unwrap();
        assert_eq!(after.card.unwrap().balance, before.card.unwrap().balance);
        // A wrong till token is no till.
        let intruder = TillClient::new(&s.server.url, "not-the-till-token", "t").unwrap();
        assert_eq!(
            refusal(intruder.scan(&real.text).await.unwrap_err()),
            "unauthorized"
        );
    });
}

#[test]
fn twenty_concurrent_redemptions_never_overdraw() {
    rt().block_on(async {
        let s = shop().await;
        let session = s.earn(100).await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let till = s.server.till("till-7");
            let session = session.clone();
            tasks.push(tokio::spawn(async move {
                // 0.15 paid with 15 points: the whole receipt, so nothing earned meanwhile.
                till.purchase(&purchase(&session, &format!("redeem-{i}"), 15, 15))
                    .await
            }));
        }
        let mut redeemed = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(p) => redeemed += p.redeemed,
                Err(e) => assert_eq!(refusal(e), "insufficient_points"),
            }
        }
        assert!(redeemed <= 100, "redeemed {redeemed} of 100");
        assert_eq!(redeemed, 90, "six redemptions of 15 fit in 100");
        assert_eq!(s.balance().await, 100 - redeemed);
    });
}

#[test]
fn retries_and_refunds_count_once() {
    rt().block_on(async {
        let s = shop().await;
        let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
        // 200.00 earns 200; then redeem 50 and earn 100 in one purchase.
        let first = s
            .till
            .purchase(&purchase(&session, "p1", 20_000, 0))
            .await
            .unwrap();
        let retry = s
            .till
            .purchase(&purchase(&session, "p1", 20_000, 0))
            .await
            .unwrap();
        assert_eq!(first, retry);
        assert_eq!(s.balance().await, 200);
        let mixed = s
            .till
            .purchase(&purchase(&session, "p2", 10_000, 50))
            .await
            .unwrap();
        // 50 points pay 0.50: the 99.50 left earns 99 (points paid do not earn by default).
        assert_eq!((mixed.earned, mixed.redeemed, mixed.balance), (99, 50, 249));
        // The same key for another purchase is an error, not a silent replay.
        let other = s
            .till
            .purchase(&purchase(&session, "p2", 999, 0))
            .await
            .unwrap_err();
        assert_eq!(refusal(other), "idempotency_key_reused");

        // Refund half of p2: half of what it earned goes, half of what it redeemed comes back.
        let half = RefundRequest {
            purchase: "p2".into(),
            idempotency_key: "r1".into(),
            receipt_id: "R-r1".into(),
            amount_minor: 5_000,
        };
        let r1 = s.till.refund(&half).await.unwrap();
        // Half of its 99 points is 49 (shares round down), and 25 of the 50 redeemed come back.
        assert_eq!((r1.earned, r1.redeemed, r1.balance), (49, 25, 225));
        assert_eq!(
            s.till.refund(&half).await.unwrap(),
            r1,
            "a retried refund refunds once"
        );
        assert_eq!(s.balance().await, 225);
        // The rest, then nothing more.
        let rest = RefundRequest {
            idempotency_key: "r2".into(),
            ..half.clone()
        };
        let r2 = s.till.refund(&rest).await.unwrap();
        assert_eq!((r2.earned, r2.redeemed, r2.balance), (50, 25, 200));
        let again = RefundRequest {
            idempotency_key: "r3".into(),
            ..half
        };
        assert_eq!(
            refusal(s.till.refund(&again).await.unwrap_err()),
            "refund_exceeds_purchase"
        );
        let nothing = RefundRequest {
            idempotency_key: "r4".into(),
            amount_minor: 0,
            ..again
        };
        assert_eq!(
            refusal(s.till.refund(&nothing).await.unwrap_err()),
            "invalid_refund"
        );
        assert_eq!(s.balance().await, 200);
    });
}

#[test]
fn the_phone_shows_the_new_balance_and_why_after_its_next_sync_or_live() {
    rt().block_on(async {
        let s = shop().await;
        // Offline during the purchase: nothing until it syncs.
        s.earn(30).await;
        assert_eq!(s.phone.card().unwrap().unwrap().balance, 0);
        let report = s.phone.sync().await.unwrap();
        assert_eq!(report.changed, [DocKind::Card]);
        let card = s.phone.card().unwrap().unwrap();
        assert_eq!(card.balance, 30);
        assert!(
            card.ledger[0].reason.starts_with("Purchase of 30.00 EUR"),
            "{}",
            card.ledger[0].reason
        );
        assert_eq!(
            card.ledger[0].reason_code,
            loyalty_core::reasons::ReasonCode::Purchase
        );

        // Online: the phone watches, and the purchase reaches it without the app asking.
        let phone = Arc::new(s.phone);
        let mut changes = phone.subscribe();
        let watcher = {
            let phone = phone.clone();
            tokio::spawn(async move { phone.watch().await })
        };
        let session = s
            .till
            .scan(&{
                s.clock.advance(checkout_code::STEP_SECONDS * 1000);
                phone.checkout_code().unwrap().text
            })
            .await
            .unwrap()
            .session_id;
        s.till
            .purchase(&purchase(&session, "live", 1_200, 0))
            .await
            .unwrap();
        let changed = tokio::time::timeout(Duration::from_secs(20), changes.recv())
            .await
            .expect("a live update")
            .unwrap();
        assert!(changed.contains(&DocKind::Card));
        assert_eq!(phone.card().unwrap().unwrap().balance, 42);
        watcher.abort();
    });
}

/// The stored version of the member's card document.
async fn card_version(s: &Shop) -> i64 {
    document_version(&s.server.database, &s.member_id, DocKind::Card).await
}

#[test]
fn purchases_write_the_ledger_and_the_card_catches_up_in_one_change_when_read() {
    rt().block_on(async {
        let s = shop().await;
        let before = card_version(&s).await;
        for points in [10, 11, 12] {
            s.earn(points).await;
        }
        assert_eq!(card_version(&s).await, before, "no purchase wrote the card");
        let report = s.phone.sync().await.unwrap();
        assert_eq!(report.changed, [DocKind::Card]);
        let card = s.phone.card().unwrap().unwrap();
        assert_eq!(card.balance, 33);
        let points: Vec<i64> = card.ledger.iter().map(|e| e.points).collect();
        assert_eq!(points, [12, 11, 10], "every purchase, newest first");
        assert!(
            card.ledger
                .iter()
                .all(|e| e.reason_code == loyalty_core::reasons::ReasonCode::Purchase)
        );
        assert_eq!(
            card_version(&s).await,
            before + 1,
            "three purchases, one write"
        );
        // Nothing new: the next sync and the operator's view write nothing.
        assert!(s.phone.sync().await.unwrap().changed.is_empty());
        assert_eq!(s.balance().await, 33);
        assert_eq!(card_version(&s).await, before + 1);
    });
}

#[test]
fn a_damaged_card_document_never_stops_the_till() {
    rt().block_on(async {
        let s = shop().await;
        s.earn(10).await;
        // Someone with access to the database file overwrites the card with garbage.
        let garbage = vec![0x00, 0xff, 0x00, 0xff];
        overwrite_document(&s.server.database, &s.member_id, DocKind::Card, garbage).await;
        // The till goes on: the ledger is the system of record, not the document.
        let session = s.till.scan(&s.next_code().text).await.unwrap();
        assert_eq!(session.balance, 10);
        let r = s
            .till
            .purchase(&purchase(&session.session_id, "after-damage", 2_000, 5))
            .await
            .unwrap();
        // 5 points pay 0.05: 19.95 earns 19.
        assert_eq!((r.earned, r.redeemed, r.balance), (19, 5, 24));
        // Whoever reads the card is told it is broken, and nothing is lost from the ledger.
        assert!(s.phone.sync().await.is_err());
        assert_eq!(
            s.server
                .operator()
                .member(&s.member_id)
                .await
                .unwrap_err()
                .code(),
            Some("internal")
        );
        let session = s.till.scan(&s.next_code().text).await.unwrap();
        assert_eq!(session.balance, 24);
    });
}

#[test]
fn the_server_renders_a_members_card_as_svg_and_png() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let png = op.card_qr(&s.member_id, "png").await.unwrap();
        assert_eq!(zbar(&png), s.phone.credentials().unwrap().card_number);
        let svg = String::from_utf8(op.card_qr(&s.member_id, "svg").await.unwrap()).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert_eq!(
            op.card_qr(&s.member_id, "gif").await.unwrap_err().code(),
            Some("invalid_format")
        );
        // A query the decoder refuses (the format twice) is a JSON error like every other.
        let url = format!(
            "{}/v1/admin/members/{}/card-qr?format=svg&format=png",
            s.server.url, s.member_id
        );
        let answer = reqwest::Client::new()
            .get(url)
            .bearer_auth(loyalty_tests::OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "malformed_query", "{body}");
    });
}
