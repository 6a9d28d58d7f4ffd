//! Points worth money (`docs/programme.md`, "Points worth money"): a till redeems points or an
//! amount of money within the programme's share, step and minimum balance; the answer states the
//! discount in money, what to charge and what was earned on what base; offers come first; the part
//! paid with points earns only if the programme says so; refusals store nothing; and the cashier
//! gets prompts at the scan and after the purchase.

use loyalty_core::Clock;
use loyalty_core::api::{PostOffer, PostingResponse};
use loyalty_core::lots::{Expiry, PointsPolicy};
use loyalty_core::offers::Reward;
use loyalty_core::programme::Programme;
use loyalty_core::redemption::RedemptionPolicy;
use loyalty_core::tiers::{Metric, TierDef, TierLadder};
use loyalty_tests::*;

const DAY: i64 = 86_400_000;

/// 100 points are worth 0.50; points pay at most half a receipt, from 100 points, in tens.
fn policy() -> RedemptionPolicy {
    RedemptionPolicy {
        value_points: 100,
        value_minor: 50,
        max_share_percent: 50,
        min_balance: 100,
        step: 10,
        paid_with_points_earns: false,
    }
}

async fn set(s: &Shop, redemption: RedemptionPolicy) {
    let programme = Programme {
        redemption,
        ..Programme::default()
    };
    s.server.operator().set_programme(&programme).await.unwrap();
}

/// A purchase of `total_minor` redeeming `points` or `minor` in a fresh session.
async fn buy(
    s: &Shop,
    key: &str,
    total_minor: i64,
    points: i64,
    minor: i64,
) -> Result<PostingResponse, String> {
    let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
    let mut request = purchase(&session, key, total_minor, points);
    request.redeem_minor = minor;
    s.till.purchase(&request).await.map_err(refusal)
}

#[test]
fn points_pay_part_of_a_receipt_within_the_share_the_step_and_the_minimum() {
    rt().block_on(async {
        let s = shop().await;
        set(&s, policy()).await;
        s.earn(2_000).await;

        // 1,000 points are worth 5.00: exactly half of 10.00.
        let p = buy(&s, "half", 1_000, 1_000, 0).await.unwrap();
        assert_eq!(
            (
                p.redeemed,
                p.points_discount_minor,
                p.charge_minor,
                p.earn_base_minor,
                p.earned
            ),
            (1_000, 500, 500, 500, 5),
            "the part paid with points does not earn"
        );
        assert_eq!(p.balance, 2_000 - 1_000 + 5);
        assert!(
            p.prompts.contains(&"1000 points paid 5.00".to_string()),
            "{:?}",
            p.prompts
        );
        assert!(
            p.prompts.contains(&"5 points earned on 5.00".to_string()),
            "{:?}",
            p.prompts
        );
        assert!(
            p.prompts.contains(&"1005 points, worth 5.02".to_string()),
            "{:?}",
            p.prompts
        );

        // Money asked: 3.33 is 666 points, 660 in whole steps, worth 3.30 (never more than asked).
        let m = buy(&s, "money", 1_000, 0, 333).await.unwrap();
        assert_eq!(
            (m.redeemed, m.points_discount_minor, m.charge_minor),
            (660, 330, 670)
        );
        let balance = m.balance;

        // Refused, and nothing stored: beyond the share, not a step, both kinds, money buying
        // no step, more than the balance.
        for (key, total, points, minor, code) in [
            ("share", 1_000, 1_010, 0, "redemption_not_allowed"),
            ("step", 1_000, 15, 0, "redemption_not_allowed"),
            ("both", 1_000, 10, 5, "invalid_purchase"),
            ("crumb", 1_000, 0, 4, "redemption_not_allowed"),
            ("broke", 1_000_000, 10_000, 0, "insufficient_points"),
        ] {
            let e = buy(&s, key, total, points, minor).await.unwrap_err();
            assert_eq!(e, code, "{key}");
        }
        assert_eq!(s.balance().await, balance);

        // Below the minimum balance: a member with 50 points redeems nothing.
        let (_, poor) = s.another_member("poor").await;
        let session = s.till.scan(&s.code_of(&poor)).await.unwrap().session_id;
        s.till
            .purchase(&purchase(&session, "poor-earn", 5_000, 0))
            .await
            .unwrap();
        let session = s.till.scan(&s.code_of(&poor)).await.unwrap().session_id;
        let e = s
            .till
            .purchase(&purchase(&session, "poor-redeem", 5_000, 10))
            .await
            .unwrap_err();
        assert_eq!(refusal(e), "redemption_not_allowed");

        // The cashier's command: money to pay with points, the charge and the prompts printed.
        let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
        let args = [
            "till",
            "--till-id",
            "till-7",
            "purchase",
            "--session",
            &session,
            "--total",
            "10.00",
            "--receipt",
            "R-cli",
            "--redeem-money",
            "1.00",
            "--key",
            "cli",
        ];
        let text = crate::cli::stdout(&crate::cli::loyalty(&s.server.url, &args).await);
        assert!(
            text.contains("charge 9.00 of 10.00 (0.00 off by offers, 1.00 paid with 200 points)"),
            "{text}"
        );
        assert!(text.contains("> 200 points paid 1.00"), "{text}");
    });
}

#[test]
fn offers_come_first_and_the_programme_decides_whether_points_paid_earn() {
    rt().block_on(async {
        let s = shop().await;
        set(&s, RedemptionPolicy::default()).await;
        s.earn(1_000).await;
        let now = s.clock.now_ms();
        let tenth_off = PostOffer {
            id: Some("tenth".into()),
            title: "10% off".into(),
            description: String::new(),
            terms: String::new(),
            valid_from_ms: now - DAY,
            valid_until_ms: now + 30 * DAY,
            needs_activation: false,
            reward: Reward::PercentOff,
            value: 10,
            category: String::new(),
            min_spend_minor: 0,
            use_limit: 0,
        };
        let op = s.server.operator();
        op.post_offer(&s.member_id, &tenth_off).await.unwrap();

        // 20.00, 10% off leaves 18.00; 500 points pay 5.00 of it; 13.00 charged and earning.
        let p = buy(&s, "with-offer", 2_000, 500, 0).await.unwrap();
        assert_eq!(p.discount_minor, 200);
        assert_eq!(p.offers_applied.len(), 1);
        assert_eq!(
            (
                p.points_discount_minor,
                p.charge_minor,
                p.earn_base_minor,
                p.earned
            ),
            (500, 1_300, 1_300, 13)
        );

        // The share is of what the offers leave: all of 18.00 may be paid, not 18.01.
        let e = buy(&s, "all-and-a-cent", 2_000, 1_801, 0)
            .await
            .unwrap_err();
        assert_eq!(e, "redemption_not_allowed");

        // When the programme lets the part paid with points earn, it earns on 18.00.
        set(
            &s,
            RedemptionPolicy {
                paid_with_points_earns: true,
                ..RedemptionPolicy::default()
            },
        )
        .await;
        let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
        let request = purchase(&session, "earning", 2_000, 500);
        let p = s.till.purchase(&request).await.unwrap();
        assert_eq!(
            (
                p.points_discount_minor,
                p.charge_minor,
                p.earn_base_minor,
                p.earned
            ),
            (500, 1_300, 1_800, 18)
        );
        // A retry gets the same answer, money side and prompts included.
        assert_eq!(s.till.purchase(&request).await.unwrap(), p);
    });
}

#[test]
fn the_cashier_is_prompted_with_worth_tier_progress_clipped_offers_and_expiry() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let tier = |id: &str, name: &str, threshold| TierDef {
            id: id.into(),
            name: name.into(),
            threshold,
            benefits: Vec::new(),
        };
        let programme = Programme {
            points: PointsPolicy {
                pending_days: 0,
                expiry: Expiry::Rolling { days: 60 },
                warn_days: 30,
            },
            tiers: TierLadder {
                metric: Metric::Spend,
                window_days: 365,
                review_days: 365,
                grace_days: 30,
                tiers: vec![tier("base", "Member", 0), tier("silver", "Silver", 50_000)],
            },
            ..Programme::default()
        };
        op.set_programme(&programme).await.unwrap();
        s.earn(125).await;
        let now = s.clock.now_ms();
        for id in ["a", "b"] {
            let offer = PostOffer {
                id: Some(id.into()),
                title: format!("offer {id}"),
                description: String::new(),
                terms: String::new(),
                valid_from_ms: now - DAY,
                valid_until_ms: now + 90 * DAY,
                needs_activation: true,
                reward: Reward::FixedPoints,
                value: 5,
                category: String::new(),
                min_spend_minor: 0,
                use_limit: 1,
            };
            op.post_offer(&s.member_id, &offer).await.unwrap();
        }
        s.phone.sync().await.unwrap();
        s.phone.activate_offer("a").unwrap();
        s.phone.activate_offer("b").unwrap();
        s.phone.sync().await.unwrap();

        let scan = s.till.scan(&s.next_code().text).await.unwrap();
        assert_eq!(scan.balance_value_minor, 125);
        assert_eq!(
            scan.prompts,
            vec![
                "125 points, worth 1.25".to_string(),
                "375.00 more to Silver".to_string(),
                "2 offers clipped".to_string(),
            ]
        );

        // 40 days on, the points earned first expire within the warning window.
        s.clock.advance(40 * DAY);
        let scan = s.till.scan(&s.next_code().text).await.unwrap();
        let expiry = loyalty_core::calendar::format_date(now + 60 * DAY);
        assert!(
            scan.prompts
                .contains(&format!("125 points expire on {expiry}")),
            "{:?}",
            scan.prompts
        );
        let p = s
            .till
            .purchase(&purchase(&scan.session_id, "last", 10_000, 0))
            .await
            .unwrap();
        assert!(
            p.prompts
                .contains(&"110 points earned on 100.00".to_string()),
            "{:?}",
            p.prompts
        );
        assert!(
            p.prompts.contains(&"275.00 more to Silver".to_string()),
            "{:?}",
            p.prompts
        );
        assert!(
            p.prompts
                .contains(&format!("125 points expire on {expiry}")),
            "{:?}",
            p.prompts
        );
    });
}
