//! The fraud watch list (issue 14 §3) against a real server: real phones' codes scanned at two
//! tills — purchases, a redemption, a refund, a screenshot shown twice, a barcode that is no
//! code — and a member with three phones; ranked by each measure, as JSON, CSV and on the command
//! line; bad queries refused.

use loyalty_core::api::RefundRequest;
use loyalty_core::api::watch_list::WatchList;
use loyalty_core::device::Device;
use loyalty_tests::*;

use crate::cli::{loyalty, stdout};

async fn get(s: &Shop, query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/v1/admin/reports/watch{query}", s.server.url))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap()
}

async fn list(s: &Shop, query: &str) -> WatchList {
    let response = get(s, query).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn ids(rows: &[loyalty_core::api::watch_list::WatchedActivity]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

/// Anna buys three times at till-7 (once paying with 50 points) and her code is shown again
/// (a screenshot); Bob buys once at till-9 and returns it; till-7 scans a gift voucher (no code).
async fn activity(s: &Shop) -> String {
    for (key, redeem) in [("a1", 0), ("a2", 0), ("a3", 50)] {
        let code = s.next_code().text;
        let session = s.till.scan(&code).await.unwrap().session_id;
        s.till
            .purchase(&purchase(&session, key, 10_000, redeem))
            .await
            .unwrap();
        if key == "a3" {
            let replay = s.till.scan(&code).await.unwrap_err();
            assert_eq!(refusal(replay), "code_replayed");
        }
    }
    assert_eq!(
        refusal(s.till.scan("LOYALTY-GIFT-VOUCHER-77").await.unwrap_err()),
        "malformed_code"
    );
    let (bob, bob_phone) = s.another_member("bob").await;
    let till9 = s.server.till("till-9");
    let session = till9.scan(&s.code_of(&bob_phone)).await.unwrap();
    till9
        .purchase(&purchase(&session.session_id, "b1", 2_000, 0))
        .await
        .unwrap();
    let refund = RefundRequest {
        purchase: "b1".into(),
        idempotency_key: "rb1".into(),
        receipt_id: "R-rb1".into(),
        amount_minor: 2_000,
    };
    till9.refund(&refund).await.unwrap();
    bob
}

/// Cleo enrolls three phones.
async fn cleo_with_three_phones(s: &Shop) -> (String, Vec<Device>) {
    let (cleo, first) = s.another_member("cleo").await;
    let mut phones = vec![first];
    for n in 2..=3 {
        let code = s.server.operator().activation_code(&cleo).await.unwrap();
        let phone =
            Device::open_with_clock(s.dir.path().join(format!("cleo{n}.db")), s.clock.clone())
                .unwrap();
        phone
            .enroll(&s.server.url, &code.activation_code, &format!("cleo {n}"))
            .await
            .unwrap();
        phones.push(phone);
    }
    (cleo, phones)
}

#[test]
fn the_watch_list_ranks_members_and_tills_and_counts_refused_codes() {
    rt().block_on(async {
        let s = shop().await;
        let bob = activity(&s).await;
        let (cleo, _phones) = cleo_with_three_phones(&s).await;

        let by_purchases = list(&s, "").await;
        assert_eq!(ids(&by_purchases.members), [s.member_id.as_str(), &bob]);
        let anna = &by_purchases.members[0];
        assert_eq!(
            (anna.purchases, anna.redemptions, anna.points_redeemed),
            (3, 1, 50)
        );
        assert_eq!((anna.refunds, anna.refused_codes), (0, 1), "the screenshot");
        let bobs = &by_purchases.members[1];
        assert_eq!((bobs.refunds, bobs.refund_rate), (1, 1.0));
        assert_eq!(ids(&by_purchases.tills), ["till-7", "till-9"]);
        assert_eq!(
            by_purchases.tills[0].refused_codes, 2,
            "the screenshot and the voucher"
        );
        let devices: Vec<_> = by_purchases
            .many_devices
            .iter()
            .map(|d| (d.member_id.as_str(), d.devices))
            .collect();
        assert_eq!(devices, [(cleo.as_str(), 3)]);
        let refusals: Vec<_> = by_purchases
            .refusals
            .iter()
            .map(|r| (r.source.as_str(), r.reason.as_str(), r.count))
            .collect();
        assert_eq!(
            refusals,
            [("scan", "code_replayed", 1), ("scan", "malformed_code", 1)]
        );

        let refused = list(&s, "?by=refused_codes").await;
        assert_eq!(ids(&refused.members), [s.member_id.as_str()]);
        assert_eq!(ids(&refused.tills), ["till-7"]);
        let refunds = list(&s, "?by=refunds").await;
        assert_eq!(ids(&refunds.members), [bob.as_str()]);
        assert_eq!(ids(&refunds.tills), ["till-9"]);
        let top = list(&s, "?limit=1&min_devices=4").await;
        assert_eq!(ids(&top.members), [s.member_id.as_str()]);
        assert!(top.many_devices.is_empty());

        // A revoked phone is not a live device: Cleo drops off the list.
        let op = s.server.operator();
        let first = op.member_devices(&cleo).await.unwrap()[0].device_id.clone();
        op.revoke_device(&first).await.unwrap();
        assert!(list(&s, "").await.many_devices.is_empty());

        // A window that ended before any of it lists nothing.
        let earlier = list(&s, "?from_ms=1000&to_ms=2000").await;
        assert!(earlier.members.is_empty() && earlier.tills.is_empty());
        assert!(earlier.refusals.is_empty());

        let csv = get(&s, "?format=csv").await.text().await.unwrap();
        assert_eq!(csv, list(&s, "").await.to_csv());
        assert!(csv.contains("scan:code_replayed,"), "{csv}");
        let out = loyalty(
            &s.server.url,
            &["admin", "report", "watch", "--by", "refunds"],
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        assert!(stdout(&out).contains(&bob), "{}", stdout(&out));
        s.server.stop().await;
    });
}

#[test]
fn bad_watch_queries_are_refused() {
    rt().block_on(async {
        let s = shop().await;
        for query in [
            "?by=everything",
            "?limit=0",
            "?limit=201",
            "?min_devices=1",
            "?from_ms=5&to_ms=5",
            "?from_ms=0&to_ms=40000000000",
            "?format=xml",
            "?since=1",
        ] {
            let response = get(&s, query).await;
            assert_eq!(response.status(), 400, "{query}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "malformed_query", "{query}");
        }
        s.server.stop().await;
    });
}
