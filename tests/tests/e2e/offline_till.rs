//! The till without its server (`docs/checkout-code.md` §9–10): the key feed tills cache, a till
//! that loses the server mid-shift and keeps selling, its queue flushed when the server returns
//! (as an online till would have posted it, flushed twice or racing, never doubled), one code at
//! two offline tills, a key revoked and a card blocked after the till's last refresh, and flushed
//! purchases with bad input. The tills are `loyalty_server::till::OfflineTill` over real store
//! files, on the shop's clock; the server is really stopped and started again on its database.

use std::collections::BTreeMap;

use loyalty_core::api::offline::{OfflinePurchaseRequest, TillExceptionKind};
use loyalty_core::api::{PurchaseRequest, RefundRequest, paths};
use loyalty_core::offline::{OfflinePolicy, OfflineTrust};
use loyalty_core::programme::Programme;
use loyalty_core::{Clock, Device};
use loyalty_server::till::{OfflineTill, Posted, Scan, TillError};
use loyalty_tests::race::{Request, simultaneously};
use loyalty_tests::*;

const ALLOWANCE: i64 = 500;

/// The shop, with a programme that lets offline tills redeem `ALLOWANCE` points a day.
async fn offline_shop() -> Shop {
    let s = shop().await;
    let programme = Programme {
        offline: OfflinePolicy {
            redeem_points_per_day: ALLOWANCE,
            ..OfflinePolicy::default()
        },
        ..Programme::default()
    };
    s.server.operator().set_programme(&programme).await.unwrap();
    s
}

/// Another phone of `member_id`, on the shop's clock.
async fn phone_of(s: &Shop, member_id: &str, name: &str) -> Device {
    let code = s
        .server
        .operator()
        .activation_code(member_id)
        .await
        .unwrap();
    let phone =
        Device::open_with_clock(s.dir.path().join(format!("{name}.db")), s.clock.clone()).unwrap();
    phone
        .enroll(&s.server.url, &code.activation_code, name)
        .await
        .unwrap();
    phone.sync().await.unwrap();
    phone
}

fn till_at(s: &Shop, till_id: &str) -> OfflineTill {
    OfflineTill::open_with_clock(
        &s.dir.path().join(format!("{till_id}.till")),
        s.server.till(till_id),
        s.clock.clone(),
    )
    .unwrap()
}

async fn card_number(s: &Shop, member_id: &str) -> String {
    let view = s.server.operator().member(member_id).await.unwrap();
    view.card.unwrap().card_number
}

async fn balance(s: &Shop, member_id: &str) -> i64 {
    let view = s.server.operator().member(member_id).await.unwrap();
    view.card.unwrap().balance
}

/// Stops the shop's server (its database stays); [`bring_back`] starts it again.
async fn take_down(s: &mut Shop) -> (String, std::path::PathBuf) {
    let listen = s.server.addr.to_string();
    let database = s.server.database.clone();
    let stopped = std::mem::replace(
        &mut s.server,
        TestServer::start_with(
            s.dir.path().join("spare.db"),
            "127.0.0.1:0",
            s.clock.clone(),
            |_| {},
        )
        .await,
    );
    stopped.stop().await;
    (listen, database)
}

async fn bring_back(s: &mut Shop, (listen, database): (String, std::path::PathBuf)) {
    let spare = std::mem::replace(
        &mut s.server,
        TestServer::start_with(database, &listen, s.clock.clone(), |_| {}).await,
    );
    spare.stop().await;
}

fn sale(session: &str, key: &str, total_minor: i64, redeem: i64) -> PurchaseRequest {
    purchase(session, key, total_minor, redeem)
}

fn offline_session(scan: Scan) -> (String, OfflineTrust, i64) {
    match scan {
        Scan::Offline {
            session_id,
            trust,
            may_redeem,
            ..
        } => (session_id, trust, may_redeem),
        Scan::Online(s) => panic!("scanned online: {s:?}"),
    }
}

fn queued(posted: Posted) {
    assert!(
        matches!(posted, Posted::Queued { .. }),
        "not queued: {posted:?}"
    );
}

fn refund(purchase: &str, key: &str, amount_minor: i64) -> RefundRequest {
    RefundRequest {
        purchase: purchase.into(),
        idempotency_key: key.into(),
        receipt_id: format!("R-{key}"),
        amount_minor,
    }
}

#[test]
fn the_key_feed_gives_keys_revocations_and_blocks_as_deltas_in_pages() {
    rt().block_on(async {
        let s = offline_shop().await;
        let op = s.server.operator();
        let card = card_number(&s, &s.member_id).await;
        let everything = s.till.keys(0, None).await.unwrap();
        assert!(!everything.more);
        assert_eq!(everything.offline.redeem_points_per_day, ALLOWANCE);
        let ours: Vec<_> = everything
            .keys
            .iter()
            .filter(|k| k.card_number == card)
            .collect();
        assert_eq!(ours.len(), 1);
        assert!(!ours[0].revoked);
        assert_eq!(ours[0].public_key.len(), 43, "base64url of 32 bytes");
        let cursor = everything.cursor;

        // Nothing changed: an empty page, the same cursor.
        let idle = s.till.keys(cursor, None).await.unwrap();
        assert!(idle.keys.is_empty() && idle.cards.is_empty());
        assert_eq!(idle.cursor, cursor);

        // A second phone, then its revocation, then a block and an unblock: each a change after
        // the cursor, the latest state of each.
        let second = second_device(
            &s.server.url,
            &op,
            &s.member_id,
            &s.dir.path().join("p2.db"),
        )
        .await;
        let added = s.till.keys(cursor, None).await.unwrap();
        assert_eq!(added.keys.len(), 1);
        assert!(added.keys[0].card_number == card && !added.keys[0].revoked);
        op.revoke_device(&second.credentials().unwrap().device_id)
            .await
            .unwrap();
        op.block(&s.member_id).await.unwrap();
        let changed = s.till.keys(added.cursor, None).await.unwrap();
        assert_eq!(changed.keys.len(), 1);
        assert!(changed.keys[0].revoked);
        assert_eq!(changed.keys[0].key_id, added.keys[0].key_id);
        assert_eq!(changed.cards.len(), 1);
        assert!(changed.cards[0].blocked && changed.cards[0].card_number == card);
        op.unblock(&s.member_id).await.unwrap();
        let unblocked = s.till.keys(changed.cursor, None).await.unwrap();
        assert_eq!(unblocked.cards.len(), 1);
        assert!(!unblocked.cards[0].blocked);

        // Pages of one: followed to the end they hold every key and card the whole feed holds.
        for i in 0..3 {
            s.another_member(&format!("extra{i}")).await;
        }
        let whole = s.till.keys(0, None).await.unwrap();
        let (mut cursor, mut pages, mut seen) = (0, 0, BTreeMap::new());
        loop {
            let page = s.till.keys(cursor, Some(1)).await.unwrap();
            assert_eq!(page.keys.len() + page.cards.len(), 1);
            for k in page.keys {
                seen.insert(format!("{}:{}", k.card_number, k.key_id), k.revoked);
            }
            for c in page.cards {
                seen.insert(c.card_number, c.blocked);
            }
            cursor = page.cursor;
            pages += 1;
            if !page.more {
                break;
            }
        }
        assert_eq!(pages, whole.keys.len() + whole.cards.len());
        let mut expected = BTreeMap::new();
        for k in whole.keys {
            expected.insert(format!("{}:{}", k.card_number, k.key_id), k.revoked);
        }
        for c in whole.cards {
            expected.insert(c.card_number, c.blocked);
        }
        assert_eq!(seen, expected);
        assert_eq!(cursor, whole.cursor);

        // Bad queries and a wrong token.
        for query in ["?limit=0", "?limit=10001", "?since=-1", "?since=abc"] {
            let answer = reqwest::Client::new()
                .get(format!("{}{}{query}", s.server.url, paths::TILL_KEYS))
                .bearer_auth(TILL_TOKEN)
                .header("x-till-id", "till-7")
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 400, "{query}");
        }
        let answer = reqwest::Client::new()
            .get(format!("{}{}", s.server.url, paths::TILL_KEYS))
            .bearer_auth("not-the-till-token-0123456789")
            .header("x-till-id", "till-7")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
    });
}

/// The same sales at an offline till (queued, flushed later) and at an online till: the same
/// balances and the same ledger amounts.
#[test]
fn a_till_that_loses_the_server_keeps_selling_and_its_flush_matches_an_online_till() {
    rt().block_on(async {
        let mut s = offline_shop().await;
        let (twin, twin_phone) = s.another_member("twin").await;
        s.earn(1_000).await;
        let online = s.server.till("till-online");
        let session = online
            .scan(&s.code_of(&twin_phone))
            .await
            .unwrap()
            .session_id;
        online
            .purchase(&sale(&session, "twin-earn", 100_000, 0))
            .await
            .unwrap();
        assert_eq!(balance(&s, &s.member_id).await, balance(&s, &twin).await);

        let mut till = till_at(&s, "till-9");
        assert!(till.refresh().await.unwrap() >= 2);
        let down = take_down(&mut s).await;

        // Offline: two sales, a refund of the first, all queued.
        let (first, trust, may) = offline_session(
            till.scan(&s.phone.checkout_code().unwrap().text)
                .await
                .unwrap(),
        );
        assert_eq!((trust, may), (OfflineTrust::Verified, ALLOWANCE));
        queued(
            till.purchase(sale(&first, "off-1", 4_250, 200))
                .await
                .unwrap(),
        );
        let again = till
            .scan(&s.phone.checkout_code().unwrap().text)
            .await
            .unwrap_err();
        assert_eq!(
            again.code(),
            Some("code_replayed"),
            "the same code twice at one till"
        );
        let (second, _, may) = offline_session(till.scan(&s.code_of(&s.phone)).await.unwrap());
        assert_eq!(
            may,
            ALLOWANCE - 200,
            "the day's allowance is shared by the card's sales"
        );
        let over = till
            .purchase(sale(&second, "off-over", 1_000, may + 1))
            .await
            .unwrap_err();
        assert_eq!(over.code(), Some("insufficient_points"));
        queued(
            till.purchase(sale(&second, "off-2", 1_000, 0))
                .await
                .unwrap(),
        );
        queued(till.refund(refund("off-1", "off-r1", 1_000)).await.unwrap());
        assert_eq!(till.store.queued().unwrap().len(), 3);

        // Flushing while the server is still down posts nothing and loses nothing.
        let report = till.flush().await.unwrap();
        assert_eq!((report.posted.len(), report.left), (0, 3));

        bring_back(&mut s, down).await;
        let report = till.flush().await.unwrap();
        assert_eq!(report.refused, vec![]);
        let keys: Vec<_> = report.posted.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["off-1", "off-2", "off-r1"],
            "in the order they were made"
        );
        let again = till.flush().await.unwrap();
        assert!(again.posted.is_empty() && again.refused.is_empty() && again.left == 0);

        // The online twin does the same.
        let t = &online;
        let session = t.scan(&s.code_of(&twin_phone)).await.unwrap().session_id;
        t.purchase(&sale(&session, "on-1", 4_250, 200))
            .await
            .unwrap();
        let session = t.scan(&s.code_of(&twin_phone)).await.unwrap().session_id;
        t.purchase(&sale(&session, "on-2", 1_000, 0)).await.unwrap();
        t.refund(&refund("on-1", "on-r1", 1_000)).await.unwrap();

        assert_eq!(balance(&s, &s.member_id).await, balance(&s, &twin).await);
        // The same movements; their order differs only where the flush posted them in one instant.
        let amounts = |card: loyalty_core::card::Card| {
            let mut points: Vec<_> = card.ledger.iter().map(|e| e.points).collect();
            points.sort();
            points
        };
        let ours = s
            .server
            .operator()
            .member(&s.member_id)
            .await
            .unwrap()
            .card
            .unwrap();
        let theirs = s
            .server
            .operator()
            .member(&twin)
            .await
            .unwrap()
            .card
            .unwrap();
        assert_eq!(amounts(ours), amounts(theirs));

        // A queued body posted again, by hand: the first answer; edited: refused, nothing stored.
        let (_, first_answer) = &report.posted[0];
        let replay: OfflinePurchaseRequest = serde_json::from_str(&till_body(&s, "off-1")).unwrap();
        let answer = s
            .server
            .till("till-9")
            .offline_purchase(&replay)
            .await
            .unwrap();
        assert_eq!(&answer.posting, &first_answer.posting);
        assert_eq!(
            (answer.earned, answer.redeemed),
            (first_answer.earned, first_answer.redeemed)
        );
        let edited = OfflinePurchaseRequest {
            total_minor: 99_999,
            ..replay.clone()
        };
        let other_code = OfflinePurchaseRequest {
            code: s.code_of(&s.phone),
            ..replay
        };
        let before = balance(&s, &s.member_id).await;
        let e = s
            .server
            .till("till-9")
            .offline_purchase(&edited)
            .await
            .unwrap_err();
        assert_eq!(refusal(e), "idempotency_key_reused");
        let e = s
            .server
            .till("till-9")
            .offline_purchase(&other_code)
            .await
            .unwrap_err();
        assert_eq!(refusal(e), "idempotency_key_reused");
        assert_eq!(balance(&s, &s.member_id).await, before);
        assert!(
            s.server
                .operator()
                .till_exceptions(100)
                .await
                .unwrap()
                .exceptions
                .is_empty()
        );
    });
}

/// The queued body of a posting, as the till stored it.
fn till_body(s: &Shop, key: &str) -> String {
    let conn = rusqlite::Connection::open(s.dir.path().join("till-9.till")).unwrap();
    conn.query_row(
        "SELECT body FROM queue WHERE idempotency_key = ?1",
        [key],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn one_code_at_two_offline_tills_is_posted_once_and_the_second_reported() {
    rt().block_on(async {
        let mut s = offline_shop().await;
        s.earn(1_000).await;
        let mut a = till_at(&s, "till-a");
        let mut b = till_at(&s, "till-b");
        a.refresh().await.unwrap();
        b.refresh().await.unwrap();
        let down = take_down(&mut s).await;
        let screenshot = s.code_of(&s.phone);
        let (at_a, ..) = offline_session(a.scan(&screenshot).await.unwrap());
        let (at_b, ..) = offline_session(b.scan(&screenshot).await.unwrap());
        queued(a.purchase(sale(&at_a, "a-1", 2_000, 100)).await.unwrap());
        queued(b.purchase(sale(&at_b, "b-1", 3_000, 100)).await.unwrap());
        bring_back(&mut s, down).await;

        let before = balance(&s, &s.member_id).await;
        let posted = a.flush().await.unwrap();
        assert_eq!(posted.posted.len(), 1);
        let refused = b.flush().await.unwrap();
        assert_eq!(refused.posted.len(), 0);
        assert_eq!(refused.refused.len(), 1);
        assert_eq!(refused.refused[0].1, "code_replayed");
        // 20.00 less the 1.00 the points paid earns 19.
        assert_eq!(balance(&s, &s.member_id).await, before - 100 + 19);

        let list = s
            .server
            .operator()
            .till_exceptions(100)
            .await
            .unwrap()
            .exceptions;
        assert_eq!(list.len(), 1);
        let e = &list[0];
        assert_eq!(e.kind, TillExceptionKind::CodeReuse);
        assert_eq!(
            (e.till_id.as_str(), e.posting.as_str()),
            ("till-b", "till:till-b:b-1")
        );
        assert_eq!(e.member_id.as_deref(), Some(s.member_id.as_str()));
        assert_eq!(e.points, 100);
        assert!(e.detail.contains("till-a"), "{}", e.detail);
        let listed = crate::cli::loyalty(&s.server.url, &["admin", "till-exceptions"]).await;
        let text = crate::cli::stdout(&listed);
        assert!(
            text.contains("code_reuse") && text.contains("till:till-b:b-1"),
            "{text}"
        );

        // The code is used now: online too.
        let e = s.till.scan(&screenshot).await.unwrap_err();
        assert_eq!(refusal(e), "code_replayed");
    });
}

/// Two tills flush purchases with one code at the same instant: one is posted, the other is
/// refused and reported, whichever wins.
#[test]
fn racing_flushes_of_one_code_post_it_once() {
    rt().block_on(async {
        let s = offline_shop().await;
        s.earn(1_000).await;
        let code = s.code_of(&s.phone);
        let scanned_at_ms = s.clock.now_ms();
        let body = |key: &str| OfflinePurchaseRequest {
            code: code.clone(),
            scanned_at_ms,
            idempotency_key: key.into(),
            receipt_id: format!("R-{key}"),
            total_minor: 1_000,
            lines: Vec::new(),
            redeem_points: 50,
        };
        let requests: Vec<_> = ["x", "y", "z"]
            .iter()
            .map(|till| {
                Request::till(
                    s.server.addr,
                    &format!("till-{till}"),
                    paths::TILL_OFFLINE_PURCHASES,
                    &body(till),
                )
            })
            .collect();
        let answers = simultaneously(&requests).await.unwrap();
        let ok = answers.iter().filter(|a| a.status == 200).count();
        assert_eq!(ok, 1, "{answers:?}");
        for a in answers.iter().filter(|a| a.status != 200) {
            assert_eq!(a.error_code().as_deref(), Some("code_replayed"));
        }
        assert_eq!(balance(&s, &s.member_id).await, 1_000 - 50 + 9);
        let list = s
            .server
            .operator()
            .till_exceptions(100)
            .await
            .unwrap()
            .exceptions;
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|e| e.kind == TillExceptionKind::CodeReuse));
    });
}

#[test]
fn a_key_revoked_and_a_card_blocked_after_the_last_refresh_are_settled_at_flush() {
    rt().block_on(async {
        let mut s = offline_shop().await;
        let op = s.server.operator();
        s.earn(1_000).await;
        let lost = phone_of(&s, &s.member_id, "lost").await;
        let (blocked, blocked_phone) = s.another_member("blocked").await;
        let (poor, poor_phone) = s.another_member("poor").await;
        let mut till = till_at(&s, "till-w");
        till.refresh().await.unwrap();

        // After the refresh: the lost phone is revoked, a card blocked.
        op.revoke_device(&lost.credentials().unwrap().device_id)
            .await
            .unwrap();
        op.block(&blocked).await.unwrap();
        let down = take_down(&mut s).await;

        // Within the window the till cannot know: it accepts both.
        let (by_lost, trust, _) = offline_session(till.scan(&s.code_of(&lost)).await.unwrap());
        assert_eq!(trust, OfflineTrust::Verified);
        queued(
            till.purchase(sale(&by_lost, "w-lost", 3_000, 300))
                .await
                .unwrap(),
        );
        let (by_blocked, ..) =
            offline_session(till.scan(&s.code_of(&blocked_phone)).await.unwrap());
        queued(
            till.purchase(sale(&by_blocked, "w-blocked", 3_000, 0))
                .await
                .unwrap(),
        );
        // A member with no points redeems offline within the allowance.
        let (by_poor, ..) = offline_session(till.scan(&s.code_of(&poor_phone)).await.unwrap());
        queued(
            till.purchase(sale(&by_poor, "w-poor", 2_000, 150))
                .await
                .unwrap(),
        );

        bring_back(&mut s, down).await;
        let before = balance(&s, &s.member_id).await;
        let report = till.flush().await.unwrap();
        let posted: BTreeMap<_, _> = report.posted.into_iter().collect();
        // The revoked phone's sale earns for its member; its redemption is not honoured.
        assert_eq!(
            (posted["w-lost"].earned, posted["w-lost"].redeemed),
            (30, 0)
        );
        assert_eq!(balance(&s, &s.member_id).await, before + 30);
        // The member with no points: nothing redeemed, the balance never below zero.
        assert_eq!(
            (posted["w-poor"].earned, posted["w-poor"].redeemed),
            (20, 0)
        );
        assert_eq!(balance(&s, &poor).await, 20);
        // The blocked card's sale is refused.
        assert_eq!(report.refused.len(), 1);
        assert_eq!(report.refused[0].0, "w-blocked");
        assert_eq!(report.refused[0].1, "card_blocked");
        assert_eq!(balance(&s, &blocked).await, 0);

        let list = s
            .server
            .operator()
            .till_exceptions(100)
            .await
            .unwrap()
            .exceptions;
        let by_posting: BTreeMap<_, _> = list
            .iter()
            .map(|e| (e.posting.as_str(), (e.kind, e.points, e.detail.as_str())))
            .collect();
        assert_eq!(
            by_posting,
            BTreeMap::from([
                (
                    "till:till-w:w-lost",
                    (TillExceptionKind::RedeemShortfall, 300, "key_revoked")
                ),
                (
                    "till:till-w:w-poor",
                    (TillExceptionKind::RedeemShortfall, 150, "balance")
                ),
                (
                    "till:till-w:w-blocked",
                    (TillExceptionKind::Refused, 0, "card_blocked")
                ),
            ])
        );

        // After the next refresh the till refuses both by itself.
        till.refresh().await.unwrap();
        let down = take_down(&mut s).await;
        let e = till.scan(&s.code_of(&lost)).await.unwrap_err();
        assert!(
            matches!(&e, TillError::Offline(r) if r.code == "key_revoked"),
            "{e}"
        );
        let e = till.scan(&s.code_of(&blocked_phone)).await.unwrap_err();
        assert!(
            matches!(&e, TillError::Offline(r) if r.code == "card_blocked"),
            "{e}"
        );
        bring_back(&mut s, down).await;
    });
}

#[test]
fn flushed_purchases_with_bad_input_are_refused_and_change_nothing() {
    rt().block_on(async {
        let s = offline_shop().await;
        s.earn(1_000).await;
        let till = s.server.till("till-bad");
        let good = OfflinePurchaseRequest {
            code: s.code_of(&s.phone),
            scanned_at_ms: s.clock.now_ms(),
            idempotency_key: "bad".into(),
            receipt_id: "R-bad".into(),
            total_minor: 1_000,
            lines: Vec::new(),
            redeem_points: 0,
        };
        let now = good.scanned_at_ms;
        let mut payload = base45::decode(&good.code).unwrap();
        payload[40] ^= 0x01;
        let forged = base45::encode(&payload);
        let cases: Vec<(OfflinePurchaseRequest, &str)> = vec![
            (
                OfflinePurchaseRequest {
                    code: "V50".into(),
                    ..good.clone()
                },
                "malformed_code",
            ),
            (
                OfflinePurchaseRequest {
                    code: "x".repeat(300),
                    ..good.clone()
                },
                "invalid_purchase",
            ),
            (
                OfflinePurchaseRequest {
                    code: forged,
                    ..good.clone()
                },
                "bad_signature",
            ),
            (
                OfflinePurchaseRequest {
                    scanned_at_ms: now + 3_600_000,
                    ..good.clone()
                },
                "code_not_yet_valid",
            ),
            // A code made ten minutes after its scan, and one four minutes old at its scan.
            (
                OfflinePurchaseRequest {
                    scanned_at_ms: now - 600_000,
                    ..good.clone()
                },
                "code_not_yet_valid",
            ),
            (
                OfflinePurchaseRequest {
                    scanned_at_ms: now + 240_000,
                    ..good.clone()
                },
                "code_expired",
            ),
            (
                OfflinePurchaseRequest {
                    scanned_at_ms: -1,
                    ..good.clone()
                },
                "invalid_purchase",
            ),
            (
                OfflinePurchaseRequest {
                    total_minor: -1,
                    ..good.clone()
                },
                "invalid_purchase",
            ),
            (
                OfflinePurchaseRequest {
                    idempotency_key: "till:x".into(),
                    ..good.clone()
                },
                "invalid_idempotency_key",
            ),
        ];
        for (i, (request, code)) in cases.into_iter().enumerate() {
            // Each its own key: a till's key has one answer, and one exception of a kind.
            let key = if request.idempotency_key == "bad" {
                format!("bad-{i}")
            } else {
                request.idempotency_key.clone()
            };
            let request = OfflinePurchaseRequest {
                idempotency_key: key,
                ..request
            };
            let e = till.offline_purchase(&request).await.unwrap_err();
            assert_eq!(refusal(e), code, "{request:?}");
        }
        // Too old to post: scanned more than the policy's days ago (its code made then).
        s.clock.advance(8 * 86_400_000);
        let e = till
            .offline_purchase(&OfflinePurchaseRequest {
                idempotency_key: "old".into(),
                ..good.clone()
            })
            .await
            .unwrap_err();
        assert_eq!(refusal(e), "offline_too_old");
        // An unknown field.
        let answer = reqwest::Client::new()
            .post(format!("{}{}", s.server.url, paths::TILL_OFFLINE_PURCHASES))
            .bearer_auth(TILL_TOKEN)
            .header("x-till-id", "till-bad")
            .json(
                &serde_json::json!({"code": good.code, "scanned_at_ms": 1, "idempotency_key": "k",
                "receipt_id": "r", "total_minor": 1, "extra": true}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400);
        assert_eq!(balance(&s, &s.member_id).await, 1_000);
        // The refusals that named a card or came from a till's queue are on the operators' list.
        let list = s
            .server
            .operator()
            .till_exceptions(100)
            .await
            .unwrap()
            .exceptions;
        assert!(list.iter().all(|e| e.kind == TillExceptionKind::Refused));
        assert!(list.iter().any(|e| e.detail == "bad_signature"));
        assert!(list.iter().any(|e| e.detail == "offline_too_old"));
    });
}

/// `loyalty till --store FILE` against a real server process that is killed mid-shift and started
/// again: the cashier's commands scan and sell offline, and `flush` posts the sale once.
#[test]
fn the_till_command_sells_offline_and_flushes_when_the_server_returns() {
    use crate::cli::{loyalty, stderr, stdout};
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("server.db");
        let server = ServerProcess::start(&db, "127.0.0.1:0");
        let url = server.url.clone();
        let listen = url.trim_start_matches("http://").to_string();
        let op = server.operator();
        let programme = Programme {
            offline: OfflinePolicy {
                redeem_points_per_day: 100,
                ..OfflinePolicy::default()
            },
            ..Programme::default()
        };
        op.set_programme(&programme).await.unwrap();
        let member = op.create_member(None).await.unwrap();
        let phone = dir.path().join("phone.db");
        let till_store = dir.path().join("till.db");
        let (phone, till_store) = (phone.to_str().unwrap(), till_store.to_str().unwrap());
        let run = |args: Vec<&str>| {
            let url = url.clone();
            let args: Vec<String> = args.into_iter().map(String::from).collect();
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                loyalty(&url, &args).await
            }
        };
        let ok = |o: std::process::Output| -> serde_json::Value {
            assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
            serde_json::from_str(&stdout(&o)).unwrap()
        };
        let code = || async {
            ok(run(vec!["device", "--store", phone, "--json", "code"]).await)["code"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let o = run(vec![
            "device",
            "--store",
            phone,
            "enroll",
            "--code",
            &member.activation_code,
        ])
        .await;
        assert!(o.status.success(), "{}", stderr(&o));
        let keys = ok(run(vec!["till", "--store", till_store, "--json", "keys"]).await);
        assert_eq!(keys["changes"], 1);

        // 20 points to spend, then the server dies.
        let gift = loyalty_core::api::AdjustPoints {
            idempotency_key: "gift".into(),
            points: 20,
            reason: loyalty_core::api::AdjustReason::Goodwill,
            note: "Welcome".into(),
            reference: None,
        };
        op.adjust(&member.member_id, &gift).await.unwrap();
        server.kill9();

        let scan = ok(run(vec![
            "till",
            "--store",
            till_store,
            "--json",
            "scan",
            &code().await,
        ])
        .await);
        assert_eq!(scan["offline"], true);
        assert_eq!(scan["trust"], "verified");
        assert_eq!(scan["may_redeem"], 100);
        let session = scan["session_id"].as_str().unwrap().to_string();
        let sold = ok(run(vec![
            "till",
            "--store",
            till_store,
            "--json",
            "purchase",
            "--session",
            &session,
            "--total",
            "12.00",
            "--receipt",
            "R1",
            "--redeem",
            "10",
            "--key",
            "k1",
        ])
        .await);
        assert_eq!(sold["queued"], "k1");
        let waiting = ok(run(vec!["till", "--store", till_store, "--json", "flush"]).await);
        assert_eq!(waiting["left"], 1);

        let server = ServerProcess::start(&db, &listen);
        let flushed = ok(run(vec!["till", "--store", till_store, "--json", "flush"]).await);
        assert_eq!(flushed["posted"][0]["key"], "k1");
        // 12.00 less the 0.10 the points paid earns 11.
        assert_eq!(flushed["posted"][0]["posting"]["earned"], 11);
        assert_eq!(flushed["posted"][0]["posting"]["redeemed"], 10);
        assert_eq!(flushed["posted"][0]["posting"]["balance"], 21);
        let again = ok(run(vec!["till", "--store", till_store, "--json", "flush"]).await);
        assert_eq!(again["posted"].as_array().unwrap().len(), 0);
        let view = server.operator().member(&member.member_id).await.unwrap();
        assert_eq!(view.card.unwrap().balance, 21);

        // Nothing went wrong: the operators' list is empty, and says so in JSON.
        let listed = ok(run(vec!["admin", "--json", "till-exceptions"]).await);
        assert_eq!(listed["exceptions"], serde_json::json!([]));

        let o = run(vec!["till", "flush"]).await;
        assert!(!o.status.success());
        assert!(stderr(&o).contains("--store"), "{}", stderr(&o));
    });
}
