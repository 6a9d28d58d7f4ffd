//! Money under truly simultaneous requests (`loyalty_tests::race`: every request written but its
//! last byte, then all last bytes together): partial refunds of one purchase reverse exactly their
//! share, on one server and on two sharing a database; redemptions never overdraw; one idempotency
//! key sent many times at once posts once and answers alike.

use loyalty_core::api::{PostingResponse, RefundRequest};
use loyalty_tests::race::{Request, Response, one_answer, simultaneously};
use loyalty_tests::*;

/// What the ledger holds after refunds of the purchase posted under `key` at till-7: the amount
/// refunded (the purchase's record, read through the storage traits) and the member's points
/// (balance and pending, as the operator sees them).
async fn ledger(s: &Shop, key: &str) -> (i64, i64) {
    let storage = backend::open_storage(&s.server.database).await;
    let purchase = storage
        .purchase(&format!("till:till-7:{key}"))
        .await
        .unwrap()
        .expect("the purchase");
    let card = s.card().await;
    let pending = card.standing.map_or(0, |st| st.pending);
    (purchase.refunded_minor, card.balance + pending)
}

fn refund(purchase: &str, key: &str, amount_minor: i64) -> RefundRequest {
    RefundRequest {
        purchase: purchase.into(),
        idempotency_key: key.into(),
        receipt_id: format!("R-{key}"),
        amount_minor,
    }
}

/// `n` refunds of `amount_minor` each of `purchase` at till-7, spread over `servers` in turn.
fn refunds(
    servers: &[std::net::SocketAddr],
    purchase: &str,
    n: usize,
    amount_minor: i64,
) -> Vec<Request> {
    (0..n)
        .map(|i| {
            Request::till(
                servers[i % servers.len()],
                "till-7",
                "/v1/till/refunds",
                &refund(purchase, &format!("r-{i}"), amount_minor),
            )
        })
        .collect()
}

/// The answers' (earned, redeemed, amount) over the refunds that went through; every other answer
/// must be one of `allowed` refusals.
fn accepted(answers: &[Response], amount_minor: i64, allowed: &[&str]) -> (i64, i64, i64) {
    let mut total = (0, 0, 0);
    for a in answers {
        match a.error_code() {
            None => {
                let p: PostingResponse = a.json();
                total = (
                    total.0 + p.earned,
                    total.1 + p.redeemed,
                    total.2 + amount_minor,
                );
            }
            Some(code) => assert!(allowed.contains(&code.as_str()), "refused: {code}"),
        }
    }
    total
}

/// A purchase of 100.00 (earning 100 points, redeeming `redeem`) at till-7.
async fn purchase_of_100(s: &Shop, key: &str, redeem: i64) -> PostingResponse {
    let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
    s.till
        .purchase(&purchase(&session, key, 10_000, redeem))
        .await
        .unwrap()
}

#[test]
fn fifty_simultaneous_partial_refunds_take_back_exactly_their_share() {
    rt().block_on(async {
        let s = shop().await;
        let p = purchase_of_100(&s, "big", 0).await;
        assert_eq!(p.earned, 100);

        let answers = simultaneously(&refunds(&[s.server.addr], "big", 50, 99))
            .await
            .unwrap();
        // One server: its member lock serializes them, so every one goes through.
        let (earned, redeemed, amount) = accepted(&answers, 99, &[]);
        assert_eq!(amount, 4_950);
        assert_eq!(
            earned, 49,
            "49.50 of 100.00 refunded takes back 49 of 100 points"
        );
        assert_eq!(redeemed, 0);
        assert_eq!(
            ledger(&s, "big").await,
            (4_950, 100 - 49),
            "the ledger agrees with the answers"
        );

        // The rest: everything the purchase earned is gone, not a point more or less.
        let rest = s.till.refund(&refund("big", "rest", 5_050)).await.unwrap();
        assert_eq!(rest.earned, 51);
        assert_eq!(ledger(&s, "big").await, (10_000, 0));
        assert_eq!(rest.balance + rest.pending, 0);
        assert_eq!(
            refusal(s.till.refund(&refund("big", "more", 1)).await.unwrap_err()),
            "refund_exceeds_purchase"
        );
    });
}

#[test]
fn simultaneous_partial_refunds_give_back_exactly_the_redeemed_share() {
    rt().block_on(async {
        let s = shop().await;
        // About refund shares: the part paid with points earns too, so the purchase earns 100.
        let mut programme = loyalty_core::programme::Programme::default();
        programme.redemption.paid_with_points_earns = true;
        s.server.operator().set_programme(&programme).await.unwrap();
        s.earn(100).await;
        let p = purchase_of_100(&s, "spend", 100).await;
        assert_eq!(
            (p.earned, p.redeemed, p.balance + p.pending),
            (100, 100, 100)
        );

        let answers = simultaneously(&refunds(&[s.server.addr], "spend", 50, 99))
            .await
            .unwrap();
        let (earned, redeemed, amount) = accepted(&answers, 99, &[]);
        assert_eq!((earned, redeemed, amount), (49, 49, 4_950));
        // 49 points taken back and 49 of the redeemed given back: 100 as before.
        assert_eq!(ledger(&s, "spend").await, (4_950, 100 - 49 + 49));

        let rest = s
            .till
            .refund(&refund("spend", "rest", 5_050))
            .await
            .unwrap();
        assert_eq!((rest.earned, rest.redeemed), (51, 51));
        assert_eq!(ledger(&s, "spend").await, (10_000, 100));
        // As before the purchase.
        assert_eq!(rest.balance + rest.pending, 100);
    });
}

#[test]
fn refunds_raced_through_two_servers_on_one_database_agree_with_the_ledger() {
    rt().block_on(async {
        let s = shop().await;
        // A second instance on the same database: its own member locks and posting writer, so
        // only the database's guards keep the two apart.
        let other = s.second_instance().await;
        purchase_of_100(&s, "big", 0).await;

        let answers = simultaneously(&refunds(&[s.server.addr, other.addr], "big", 50, 99))
            .await
            .unwrap();
        // The instances race on the member's revision; one that loses every attempt answers
        // `busy` and changes nothing.
        let (earned, _, amount) = accepted(&answers, 99, &["busy"]);
        assert!(amount > 0, "some refunds went through");
        assert_eq!(earned, 100 * amount / 10_000, "the share of {amount}");
        assert_eq!(ledger(&s, "big").await, (amount, 100 - earned));

        let rest = s
            .till
            .refund(&refund("big", "rest", 10_000 - amount))
            .await
            .unwrap();
        assert_eq!(rest.earned, 100 - earned);
        assert_eq!(ledger(&s, "big").await, (10_000, 0));
        other.stop().await;
    });
}

#[test]
fn simultaneous_redemptions_of_the_same_points_never_overdraw() {
    rt().block_on(async {
        let s = shop().await;
        let session = s.earn(100).await;
        let requests: Vec<Request> = (0..20)
            .map(|i| {
                Request::till(
                    s.server.addr,
                    "till-7",
                    "/v1/till/purchases",
                    // 0.15 paid with 15 points: nothing earned meanwhile.
                    &purchase(&session, &format!("redeem-{i}"), 15, 15),
                )
            })
            .collect();
        let answers = simultaneously(&requests).await.unwrap();
        let mut redeemed = 0;
        for a in &answers {
            match a.error_code() {
                None => redeemed += a.json::<PostingResponse>().redeemed,
                Some(code) => assert_eq!(code, "insufficient_points"),
            }
        }
        assert_eq!(redeemed, 90, "six redemptions of 15 fit in 100, no more");
        assert_eq!(s.balance().await, 10);
    });
}

#[test]
fn one_key_sent_twenty_times_at_once_posts_once_and_answers_alike() {
    rt().block_on(async {
        let s = shop().await;
        let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
        let request = Request::till(
            s.server.addr,
            "till-7",
            "/v1/till/purchases",
            &purchase(&session, "once", 4_250, 0),
        );
        let first: PostingResponse = one_answer(&simultaneously(&vec![request; 20]).await.unwrap());
        assert_eq!(first.earned, 42);
        // One posting: the member's card shows one movement, of 42 points.
        let card = s.card().await;
        let movements: Vec<i64> = card.ledger.iter().map(|e| e.points).collect();
        assert_eq!(movements, [42]);
        assert_eq!(card.balance, 42);
    });
}
