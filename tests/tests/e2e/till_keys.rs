//! Whose posting an idempotency key names: till keys live in their till's own namespace, apart
//! from each other and from the programme's own postings; a refund names its purchase by the key at
//! the same till or by the purchase's posting id anywhere; a receipt number is not a key; and a
//! refund's answer says what it actually took back.

use loyalty_core::api::{PostingResponse, RefundRequest};
use loyalty_core::earning::EventPoints;
use loyalty_core::programme::Programme;
use loyalty_core::{Clock, Device};
use loyalty_tests::*;

fn refund(purchase: &str, key: &str, amount_minor: i64) -> RefundRequest {
    RefundRequest {
        purchase: purchase.into(),
        idempotency_key: key.into(),
        receipt_id: format!("R-{key}"),
        amount_minor,
    }
}

/// A purchase of `total_minor` at `till` in a fresh checkout session.
async fn buy(s: &Shop, till: &str, key: &str, total_minor: i64, redeem: i64) -> PostingResponse {
    let till = s.server.till(till);
    let session = till.scan(&s.next_code().text).await.unwrap().session_id;
    till.purchase(&purchase(&session, key, total_minor, redeem))
        .await
        .unwrap()
}

#[test]
fn a_till_cannot_take_over_the_programmes_event_bonuses() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let mut p = Programme::default();
        p.earning.events = EventPoints {
            enrollment: 50,
            birthday: 10,
            profile_complete: 20,
            profile_fields: vec!["name".into()],
        };
        op.set_programme(&p).await.unwrap();
        // Another member, not enrolled yet, whose event postings' keys a till uses first.
        let m = op.create_member(None).await.unwrap();
        let year = loyalty_core::calendar::date_of(s.clock.now_ms()).year();
        for event in [
            "enrollment".to_string(),
            "profile".into(),
            format!("birthday:{year}"),
        ] {
            buy(
                &s,
                "till-7",
                &format!("event:{}:{event}", m.member_id),
                100,
                0,
            )
            .await;
        }

        let phone = Device::open_with_clock(s.dir.path().join("m.db"), s.clock.clone()).unwrap();
        phone
            .enroll(&s.server.url, &m.activation_code, "phone")
            .await
            .unwrap();
        let balance = || async { op.member(&m.member_id).await.unwrap().card.unwrap().balance };
        assert_eq!(balance().await, 50, "the welcome bonus");
        let d = loyalty_core::calendar::date_of(s.clock.now_ms());
        phone.set_preference("name", "Ada").unwrap();
        phone
            .set_preference(
                "birthday",
                &format!("{:02}-{:02}", u8::from(d.month()), d.day()),
            )
            .unwrap();
        phone.sync().await.unwrap();
        assert_eq!(balance().await, 70, "the profile bonus");
        assert_eq!(op.settle().await.unwrap().birthdays, 1);
        assert_eq!(balance().await, 80, "the birthday points");
        // And the till's purchases stand, each on the member who made them.
        assert_eq!(s.balance().await, 3);
    });
}

#[test]
fn two_tills_using_the_same_key_both_post() {
    rt().block_on(async {
        let s = shop().await;
        let a = buy(&s, "store-1-till-1", "1001", 1_000, 0).await;
        let b = buy(&s, "store-2-till-1", "1001", 2_000, 0).await;
        assert_eq!((a.earned, b.earned), (10, 20));
        assert_ne!(a.posting, b.posting, "posting ids are unique across tills");
        assert_eq!(s.balance().await, 30);
        // Each till's retry is still a retry, answered as the first time.
        let till = s.server.till("store-2-till-1");
        let session = till.scan(&s.next_code().text).await.unwrap().session_id;
        let other = till
            .purchase(&purchase(&session, "1001", 2_000, 0))
            .await
            .unwrap_err();
        assert_eq!(refusal(other), "idempotency_key_reused", "another session");
        assert_eq!(s.balance().await, 30);
    });
}

#[test]
fn a_refund_names_its_purchase_by_key_at_its_till_or_by_posting_id_at_any() {
    rt().block_on(async {
        let s = shop().await;
        let p = buy(&s, "till-7", "sale-1", 10_000, 0).await;
        let elsewhere = s.server.till("till-8");
        // Another till's key means nothing at this till.
        assert_eq!(
            refusal(
                elsewhere
                    .refund(&refund("sale-1", "back-1", 2_500))
                    .await
                    .unwrap_err()
            ),
            "purchase_not_found"
        );
        // The posting id from the purchase's answer names it anywhere.
        let r = elsewhere
            .refund(&refund(&p.posting, "back-1", 2_500))
            .await
            .unwrap();
        assert_eq!(r.earned, 25);
        // Its own till names it by its key; the refunds add up across tills.
        let r = s
            .till
            .refund(&refund("sale-1", "back-1", 7_500))
            .await
            .unwrap();
        assert_eq!(r.earned, 75);
        assert_eq!(
            refusal(
                elsewhere
                    .refund(&refund(&p.posting, "back-2", 1))
                    .await
                    .unwrap_err()
            ),
            "refund_exceeds_purchase"
        );
        assert_eq!(s.balance().await, 0);
    });
}

#[test]
fn a_key_is_a_retry_only_of_the_same_kind_at_the_same_till() {
    rt().block_on(async {
        let s = shop().await;
        buy(&s, "till-7", "k-1", 10_000, 0).await;
        // The purchase's key used for a refund is not a retry of anything.
        assert_eq!(
            refusal(s.till.refund(&refund("k-1", "k-1", 100)).await.unwrap_err()),
            "idempotency_key_reused"
        );
        // Keys shaped like posting ids are reserved: a refund could not tell which was meant.
        let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
        assert_eq!(
            refusal(
                s.till
                    .purchase(&purchase(&session, "till:till-8:k-1", 100, 0))
                    .await
                    .unwrap_err()
            ),
            "invalid_idempotency_key"
        );
        assert_eq!(s.balance().await, 100);
    });
}

#[test]
fn a_refunds_answer_says_what_was_actually_taken_back() {
    rt().block_on(async {
        let s = shop().await;
        buy(&s, "till-7", "earn", 10_000, 0).await;
        // 90 of the purchase's 100 points are spent before it is refunded.
        buy(&s, "till-7", "spend", 90, 90).await;
        let r = s
            .till
            .refund(&refund("earn", "back", 10_000))
            .await
            .unwrap();
        assert_eq!(r.earned, 10, "only 10 were left to take back");
        assert_eq!(r.movements.iter().map(|m| m.points).sum::<i64>(), -10);
        assert!(
            r.movements[0]
                .reason
                .contains("90 already spent could not be taken back"),
            "{}",
            r.movements[0].reason
        );
        assert_eq!((r.balance, r.pending), (0, 0));
    });
}

/// Runs `loyalty till` against the test server: (stdout, stderr), or the failure's stderr.
fn loyalty_till(s: &Shop, till: &str, args: &[&str]) -> Result<(String, String), String> {
    let out = std::process::Command::new(loyalty_bin())
        .args([
            "till",
            "--json",
            "--server",
            &s.server.url,
            "--till-id",
            till,
        ])
        .args(args)
        .env("LOYALTY_TILL_TOKEN", TILL_TOKEN)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    if out.status.success() {
        Ok((text(out.stdout), text(out.stderr)))
    } else {
        Err(text(out.stderr))
    }
}

#[test]
fn a_receipt_number_is_not_the_key_and_the_cli_prints_the_key_it_made() {
    rt().block_on(async {
        let s = shop().await;
        // Receipt 1001 at two stores, and again at the first store's till the next day.
        let mut keys = Vec::new();
        for till in ["store-1", "store-2", "store-1"] {
            let session = s
                .server
                .till(till)
                .scan(&s.next_code().text)
                .await
                .unwrap()
                .session_id;
            let (out, err) = loyalty_till(
                &s,
                till,
                &[
                    "purchase",
                    "--session",
                    &session,
                    "--total",
                    "10.00",
                    "--receipt",
                    "1001",
                ],
            )
            .expect("receipt 1001 posts");
            let posting: PostingResponse = serde_json::from_str(&out).unwrap();
            assert_eq!(posting.earned, 10);
            let key = err
                .lines()
                .find_map(|l| l.strip_prefix("idempotency key: "))
                .unwrap_or_else(|| panic!("the key is printed: {err}"))
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            keys.push((till, session, key, out));
        }
        assert_eq!(s.balance().await, 30);
        // The printed key retries: the same answer, nothing posted twice.
        let (till, session, key, first) = &keys[2];
        let (again, _) = loyalty_till(
            &s,
            till,
            &[
                "purchase",
                "--session",
                session,
                "--total",
                "10.00",
                "--receipt",
                "1001",
                "--key",
                key,
            ],
        )
        .unwrap();
        assert_eq!(&again, first);
        assert_eq!(s.balance().await, 30);
    });
}
