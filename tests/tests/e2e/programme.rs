//! The loyalty programme end to end: earning rules at the till, points lots that mature and expire,
//! tiers that move up at once and down after review and grace, event points, and what the phone
//! shows about all of it. Time is a hand-moved clock, so a year passes in a line.

use loyalty_core::api::{PostingResponse, PurchaseLine};
use loyalty_core::calendar::DAY_MS;
use loyalty_core::earning::{EventPoints, Multiplier};
use loyalty_core::lots::{Expiry, PointsPolicy};
use loyalty_core::programme::Programme;
use loyalty_core::reasons::{Money, ReasonCode, is_pending};
use loyalty_core::tiers::{Metric, TierDef, TierLadder};
use loyalty_core::{Clock, Device};
use loyalty_server::client::OperatorError;
use loyalty_tests::*;

fn line(category: &str, amount_minor: i64) -> PurchaseLine {
    PurchaseLine {
        sku: format!("sku-{category}"),
        description: String::new(),
        category: category.into(),
        quantity: 1,
        amount_minor,
    }
}

async fn buy(
    s: &Shop,
    key: &str,
    total_minor: i64,
    lines: Vec<PurchaseLine>,
    redeem: i64,
) -> Result<PostingResponse, OperatorError> {
    let session = s.till.scan(&s.next_code().text).await?.session_id;
    let mut p = purchase(&session, key, total_minor, redeem);
    p.lines = lines;
    s.till.purchase(&p).await
}

fn rule_points(r: &PostingResponse, rule: &str) -> i64 {
    r.movements
        .iter()
        .filter(|m| m.rule == rule)
        .map(|m| m.points)
        .sum()
}

fn ladder() -> TierLadder {
    let tier = |id: &str, name: &str, threshold| TierDef {
        id: id.into(),
        name: name.into(),
        threshold,
        benefits: vec![format!("{name} benefit")],
    };
    TierLadder {
        metric: Metric::Spend,
        window_days: 365,
        review_days: 365,
        grace_days: 30,
        tiers: vec![
            tier("base", "Member", 0),
            tier("silver", "Silver", 10_000),
            tier("gold", "Gold", 50_000),
        ],
    }
}

async fn set(s: &Shop, programme: &Programme) {
    s.server.operator().set_programme(programme).await.unwrap();
}

async fn card(s: &Shop) -> loyalty_core::card::Card {
    s.server
        .operator()
        .member(&s.member_id)
        .await
        .unwrap()
        .card
        .unwrap()
}

#[test]
fn earning_rules_combine_at_the_till_and_name_themselves() {
    rt().block_on(async {
        let s = shop().await;
        let now = s.clock.now_ms();
        let mut p = Programme::default();
        p.earning.min_purchase_minor = 500;
        p.earning.cap_per_receipt = 100;
        p.earning.multipliers = vec![Multiplier {
            id: "coffee2x".into(),
            category: "coffee".into(),
            percent: 200,
            from_ms: Some(now),
            until_ms: Some(now + DAY_MS),
        }];
        set(&s, &p).await;

        let r = buy(
            &s,
            "a",
            1_500,
            vec![line("coffee", 1_000), line("bread", 500)],
            0,
        )
        .await
        .unwrap();
        assert_eq!(rule_points(&r, "base:base"), 15);
        assert_eq!(rule_points(&r, "multiplier:coffee2x"), 10);
        assert_eq!((r.earned, r.balance), (25, 25));

        // Below the minimum purchase: nothing, and the till is told so by a zero.
        let r = buy(&s, "b", 499, vec![], 0).await.unwrap();
        assert_eq!((r.earned, r.movements.len()), (0, 0));
        // Exactly the minimum earns.
        assert_eq!(buy(&s, "c", 500, vec![], 0).await.unwrap().earned, 5);
        // The cap per receipt trims the multiplier first.
        let r = buy(&s, "d", 10_000, vec![line("coffee", 10_000)], 0)
            .await
            .unwrap();
        assert_eq!((rule_points(&r, "base:base"), r.earned), (100, 100));
        // A multiplier cut short by the cap says so in its reason's parameters.
        let r = buy(&s, "d2", 6_000, vec![line("coffee", 6_000)], 0)
            .await
            .unwrap();
        let cut: Vec<(&str, i64, i64)> = r
            .movements
            .iter()
            .map(|m| (m.rule.as_str(), m.points, m.reason_params.capped_at))
            .collect();
        assert_eq!(
            cut,
            [("base:base", 60, 0), ("multiplier:coffee2x", 40, 100)]
        );
        assert!(r.movements[1].reason.contains("capped at 100 points"));
        // After the promotion's end only the base rate applies.
        s.clock.advance(DAY_MS);
        let r = buy(&s, "e", 1_000, vec![line("coffee", 1_000)], 0)
            .await
            .unwrap();
        assert_eq!((r.earned, rule_points(&r, "multiplier:coffee2x")), (10, 0));

        // The phone reads the rule behind each entry.
        s.phone.sync().await.unwrap();
        let phone_card = s.phone.card().unwrap().unwrap();
        assert!(
            phone_card
                .ledger
                .iter()
                .any(|e| e.rule == "multiplier:coffee2x" && e.points == 10)
        );
    });
}

#[test]
fn points_mature_warn_and_expire_in_order_and_the_phone_explains_it() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let p = Programme {
            points: PointsPolicy {
                pending_days: 14,
                expiry: Expiry::Rolling { days: 60 },
                warn_days: 30,
            },
            ..Programme::default()
        };
        set(&s, &p).await;

        let first = buy(&s, "first", 10_000, vec![], 0).await.unwrap();
        // Times count from the purchase (making the code moved the clock on).
        let start = s.clock.now_ms();
        assert_eq!((first.balance, first.pending), (0, 100));
        // Pending is a state the entry carries, not words in its text.
        let earned = &first.movements[0];
        assert_eq!(earned.reason_code, ReasonCode::Purchase);
        assert_eq!(earned.available_at_ms, Some(start + 14 * DAY_MS));
        assert!(earned.pending);
        assert!(!earned.reason.contains("pending"), "{}", earned.reason);
        // Pending points cannot be spent.
        let refused = buy(&s, "too-soon", 100, vec![], 1).await.unwrap_err();
        assert_eq!(refusal(refused), "insufficient_points");

        s.clock.set(start + 14 * DAY_MS);
        op.settle().await.unwrap();
        assert_eq!(card(&s).await.balance, 100, "available on day 14");
        s.clock.set(start + 20 * DAY_MS);
        buy(&s, "second", 5_000, vec![], 0).await.unwrap();
        let second_at = s.clock.now_ms();

        // Day 30: 100 points expire within the 30-day window: the member is told, once.
        s.clock.set(start + 30 * DAY_MS);
        let report = op.settle().await.unwrap();
        assert_eq!(report.warnings, 1);
        assert_eq!(op.settle().await.unwrap().warnings, 0);

        // A redemption takes the points that expire first.
        s.clock.set(start + 35 * DAY_MS);
        // 0.30 paid with 30 points.
        let r = buy(&s, "spend", 30, vec![], 30).await.unwrap();
        assert_eq!((r.balance, r.pending), (120, 0));

        // Day 60: what is left of the first lot expires, with a ledger entry saying so.
        s.clock.set(start + 60 * DAY_MS);
        let report = op.settle().await.unwrap();
        assert_eq!(report.expired_points, 70);
        let c = card(&s).await;
        assert_eq!(c.balance, 50);
        assert_eq!(c.ledger[0].rule, "expiry");
        assert_eq!(c.ledger[0].points, -70);
        assert_eq!(c.ledger[0].reason_code, ReasonCode::Expiry);
        assert_eq!(c.ledger[0].reason_params.earned_at_ms, Some(start));
        assert!(c.ledger[0].reason.starts_with("Points earned on"));

        s.phone.sync().await.unwrap();
        let phone = s.phone.card().unwrap().unwrap();
        assert_eq!(phone.balance, 50);
        let standing = phone.standing.unwrap();
        assert_eq!(standing.pending, 0);
        assert_eq!(standing.expiries.len(), 1);
        assert_eq!(standing.expiries[0].points, 50);
        assert_eq!(standing.expiries[0].at_ms, second_at + 60 * DAY_MS);
        assert!(
            s.phone
                .messages()
                .unwrap()
                .iter()
                .any(|m| m.message.subject.starts_with("100 points expire after"))
        );
        // Nothing left to do: a settle run changes nothing.
        assert_eq!(op.settle().await.unwrap().members, 0);
    });
}

#[test]
fn a_refund_takes_back_pending_points_and_never_takes_expired_points_twice() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let mut p = Programme::default();
        p.points.pending_days = 7;
        p.points.expiry = Expiry::Rolling { days: 30 };
        set(&s, &p).await;

        // Refunded while pending: the points go, the balance never had them.
        buy(&s, "pending", 5_000, vec![], 0).await.unwrap();
        let refund = |key: &str, purchase: &str, amount| loyalty_core::api::RefundRequest {
            purchase: purchase.into(),
            idempotency_key: key.into(),
            receipt_id: format!("RF-{key}"),
            amount_minor: amount,
        };
        let r = s
            .till
            .refund(&refund("rf1", "pending", 5_000))
            .await
            .unwrap();
        assert_eq!((r.balance, r.pending), (0, 0));

        // A purchase whose points are partly spent, partly expired, then refunded.
        buy(&s, "a", 10_000, vec![], 0).await.unwrap();
        let start = s.clock.now_ms();
        s.clock.set(start + 10 * DAY_MS);
        buy(&s, "b", 10_000, vec![], 0).await.unwrap();
        s.clock.set(start + 17 * DAY_MS);
        buy(&s, "spend", 60, vec![], 60).await.unwrap();
        s.clock.set(start + 30 * DAY_MS);
        let report = op.settle().await.unwrap();
        assert_eq!(
            report.expired_points, 40,
            "what was left of a's points expired"
        );
        let r = s.till.refund(&refund("rf2", "a", 10_000)).await.unwrap();
        // 40 had expired: not taken again. 60 were spent: taken from b's points.
        assert_eq!(r.movements[0].points, -60);
        assert!(r.movements[0].reason.contains("40 had already expired"));
        assert_eq!(r.movements[0].reason_code, ReasonCode::Refund);
        assert_eq!(r.movements[0].reason_params.already_expired, 40);
        assert_eq!(r.balance, 40);
        assert_eq!(card(&s).await.balance, 40);
    });
}

/// Every entry carries a structured reason to the phone: an offer purchase names the offer, the
/// receipt and its amount in the programme's currency; a refund of points that had expired says
/// how many; an operator's adjustment carries its reason, note and reference. A pending entry
/// turns available on the phone at its date with the same words.
#[test]
fn structured_reasons_reach_the_phone_and_pending_points_mature_without_new_text() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let mut p = Programme {
            currency: "CHF".into(),
            ..Programme::default()
        };
        p.points.pending_days = 7;
        p.points.expiry = Expiry::Rolling { days: 30 };
        set(&s, &p).await;
        let mut latte = offer("latte", "Latte week");
        latte.needs_activation = false;
        latte.valid_from_ms = s.clock.now_ms() - DAY_MS;
        latte.valid_until_ms = s.clock.now_ms() + DAY_MS;
        op.post_offer(&s.member_id, &latte).await.unwrap();

        let bought = buy(&s, "a", 10_000, vec![], 0).await.unwrap();
        let start = s.clock.now_ms();
        let chf = |minor| Some(Money::new(minor, "CHF"));
        let offered = bought
            .movements
            .iter()
            .find(|m| m.rule == "offer:latte")
            .expect("the offer's points");
        assert_eq!(offered.reason_code, ReasonCode::PurchaseOffer);
        let params = &offered.reason_params;
        assert_eq!(params.offer_id.as_deref(), Some("latte"));
        assert_eq!(params.title.as_deref(), Some("Latte week"));
        assert_eq!(params.receipt.as_deref(), Some("R-a"));
        assert_eq!(params.amount, chf(10_000));
        assert_eq!(offered.available_at_ms, Some(start + 7 * DAY_MS));
        assert_eq!(
            offered.reason,
            "Purchase of 100.00 CHF with offer \u{201c}Latte week\u{201d} (receipt R-a)"
        );

        // On the phone: the same code and parameters, pending by the phone's clock.
        s.phone.sync().await.unwrap();
        let on_phone = |card: &loyalty_core::card::Card, tx: &str| {
            card.ledger
                .iter()
                .find(|e| e.tx_id == tx)
                .cloned()
                .expect("the entry on the phone")
        };
        let card = s.phone.card().unwrap().unwrap();
        let pending = on_phone(&card, &offered.tx_id);
        assert_eq!(
            (pending.reason_code, &pending.reason_params, &pending.reason),
            (offered.reason_code, &offered.reason_params, &offered.reason)
        );
        assert!(is_pending(pending.available_at_ms, s.clock.now_ms()));

        // A month on the points matured and then expired; the refund finds them expired.
        s.clock.set(start + 31 * DAY_MS);
        assert_eq!(op.settle().await.unwrap().expired_points, 200);
        let refunded = s
            .till
            .refund(&loyalty_core::api::RefundRequest {
                purchase: bought.posting.clone(),
                idempotency_key: "rf".into(),
                receipt_id: "RF-1".into(),
                amount_minor: 10_000,
            })
            .await
            .unwrap();
        assert_eq!(refunded.earned, 0, "nothing left to take back");
        assert!(!refunded.movements.is_empty());
        for m in &refunded.movements {
            assert_eq!(m.reason_code, ReasonCode::Refund);
            assert_eq!(m.reason_params.amount, chf(10_000));
            assert_eq!(m.reason_params.receipt.as_deref(), Some("RF-1"));
        }
        let expired: i64 = refunded
            .movements
            .iter()
            .map(|m| m.reason_params.already_expired)
            .sum();
        assert_eq!(expired, 200);

        let adjusted = op
            .adjust(
                &s.member_id,
                &loyalty_core::api::AdjustPoints {
                    idempotency_key: "ticket-9".into(),
                    points: 25,
                    reason: loyalty_core::api::AdjustReason::Goodwill,
                    note: "Sorry for the wait".into(),
                    reference: Some("T-42".into()),
                },
            )
            .await
            .unwrap();
        let credit = &adjusted.movements[0];
        assert_eq!(credit.reason_code, ReasonCode::Adjust);
        assert_eq!(
            credit.reason_params.adjust_reason.as_deref(),
            Some("goodwill")
        );
        assert_eq!(
            credit.reason_params.note.as_deref(),
            Some("Sorry for the wait")
        );
        assert_eq!(credit.reason_params.receipt.as_deref(), Some("T-42"));
        assert_eq!((credit.available_at_ms, credit.pending), (None, false));

        // Everything reaches the phone as posted; the matured entry kept its words.
        s.phone.sync().await.unwrap();
        let card = s.phone.card().unwrap().unwrap();
        for m in refunded.movements.iter().chain([credit]) {
            let e = on_phone(&card, &m.tx_id);
            assert_eq!(
                (e.points, e.reason_code, &e.reason_params, &e.reason),
                (m.points, m.reason_code, &m.reason_params, &m.reason)
            );
        }
        let matured = on_phone(&card, &offered.tx_id);
        assert_eq!(matured.reason, pending.reason);
        assert_eq!(matured.available_at_ms, pending.available_at_ms);
        assert!(!is_pending(matured.available_at_ms, s.clock.now_ms()));
        let expiry = card
            .ledger
            .iter()
            .find(|e| e.reason_code == ReasonCode::Expiry)
            .expect("the expiry entry");
        assert_eq!(expiry.reason_params.earned_at_ms, Some(start));
    });
}

#[test]
fn tiers_go_up_at_once_down_after_review_and_grace_and_stay_when_set_by_hand() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        set(
            &s,
            &Programme {
                tiers: ladder(),
                ..Programme::default()
            },
        )
        .await;
        let start = s.clock.now_ms();

        buy(&s, "big", 12_000, vec![], 0).await.unwrap();
        let c = card(&s).await;
        assert_eq!(c.tier, "silver");
        let st = c.standing.unwrap();
        assert_eq!(st.tier_name, "Silver");
        assert_eq!(st.tier_benefits, ["Silver benefit"]);
        assert_eq!(
            (st.next_tier_name.as_deref(), st.needed),
            (Some("Gold"), 38_000)
        );

        // A year on the purchase has left the window: at the review the member keeps silver for
        // the grace period, and the card says until when.
        let review = st.review_at_ms;
        s.clock.set(review + 1_000);
        op.settle().await.unwrap();
        let st = card(&s).await.standing.unwrap();
        assert_eq!(st.downgrade_at_ms, Some(review + 30 * DAY_MS));
        assert_eq!(card(&s).await.tier, "silver");
        s.clock.set(review + 30 * DAY_MS);
        op.settle().await.unwrap();
        assert_eq!(card(&s).await.tier, "base");

        // An operator's tier stays through reviews, and the card says it was set by hand.
        op.set_tier(&s.member_id, Some("gold")).await.unwrap();
        s.clock.set(start + 3 * 365 * DAY_MS);
        op.settle().await.unwrap();
        let c = card(&s).await;
        assert_eq!(c.tier, "gold");
        assert!(c.standing.unwrap().tier_manual);
        // Released, the ladder decides again.
        op.set_tier(&s.member_id, None).await.unwrap();
        s.clock.advance(31 * DAY_MS);
        op.settle().await.unwrap();
        assert_eq!(card(&s).await.tier, "base");
    });
}

#[test]
fn event_points_come_once_each() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let mut p = Programme::default();
        p.earning.events = EventPoints {
            enrollment: 50,
            birthday: 10,
            profile_complete: 20,
            profile_fields: vec!["name".into(), "email".into()],
        };
        // Purchases' points wait 14 days; event points, which nothing refunds, do not.
        p.points.pending_days = 14;
        set(&s, &p).await;

        // A new member with two devices gets the enrollment bonus once.
        let m = op.create_member(None).await.unwrap();
        let phone = Device::open_with_clock(s.dir.path().join("p2.db"), s.clock.clone()).unwrap();
        phone
            .enroll(&s.server.url, &m.activation_code, "phone")
            .await
            .unwrap();
        let code = op.activation_code(&m.member_id).await.unwrap();
        let tablet = Device::open_with_clock(s.dir.path().join("t2.db"), s.clock.clone()).unwrap();
        tablet
            .enroll(&s.server.url, &code.activation_code, "tablet")
            .await
            .unwrap();
        let balance = |id: String| {
            let op = &op;
            async move { op.member(&id).await.unwrap().card.unwrap().balance }
        };
        assert_eq!(balance(m.member_id.clone()).await, 50);

        // Completing the profile: once, even when it changes again.
        phone.set_preference("name", "Ada").unwrap();
        phone.sync().await.unwrap();
        assert_eq!(balance(m.member_id.clone()).await, 50, "not complete yet");
        phone.set_preference("email", "ada@example.org").unwrap();
        phone.set_preference("birthday", &today_md(&s)).unwrap();
        phone.sync().await.unwrap();
        assert_eq!(balance(m.member_id.clone()).await, 70);
        phone.set_preference("email", "ada@example.com").unwrap();
        phone.sync().await.unwrap();
        assert_eq!(balance(m.member_id.clone()).await, 70);

        // The birthday: once this year, however often the job runs.
        assert_eq!(op.settle().await.unwrap().birthdays, 1);
        assert_eq!(op.settle().await.unwrap().birthdays, 0);
        assert_eq!(balance(m.member_id.clone()).await, 80);
        let c = op.member(&m.member_id).await.unwrap().card.unwrap();
        assert!(c.ledger.iter().any(|e| e.rule == "event:birthday"));
        assert!(c.ledger.iter().any(|e| e.rule == "event:enrollment"));
    });
}

fn today_md(s: &Shop) -> String {
    let d = loyalty_core::calendar::date_of(s.clock.now_ms());
    format!("{:02}-{:02}", u8::from(d.month()), d.day())
}

#[test]
fn bad_programme_input_is_refused_and_changes_nothing() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let before = op.programme().await.unwrap();
        let mut bad = Programme {
            tiers: ladder(),
            ..Programme::default()
        };
        bad.tiers.tiers[2].threshold = 1;
        let mut unknown_rate = Programme::default();
        unknown_rate.earning.tier_rates.insert("platinum".into(), 3);
        let mut negative = Programme::default();
        negative.earning.default_rate = -1;
        for p in [bad, unknown_rate, negative] {
            assert_eq!(
                refusal(op.set_programme(&p).await.unwrap_err()),
                "invalid_programme"
            );
        }
        assert_eq!(op.programme().await.unwrap(), before);

        let http = reqwest::Client::new();
        let url = format!("{}/v1/admin/programme", s.server.url);
        let r = http
            .put(&url)
            .bearer_auth(OPERATOR_TOKEN)
            .header("content-type", "application/json")
            .body("{\"earning\": {\"default_rate\": \"lots\"}}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = http
            .put(&url)
            .bearer_auth("wrong")
            .json(&before)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = http.get(&url).bearer_auth(TILL_TOKEN).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = http
            .post(format!("{}/v1/admin/programme/settle", s.server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(op.programme().await.unwrap(), before);

        assert_eq!(
            refusal(
                op.set_tier(&s.member_id, Some("diamond"))
                    .await
                    .unwrap_err()
            ),
            "unknown_tier"
        );
        assert_eq!(
            refusal(op.set_tier("mbr_nobody", None).await.unwrap_err()),
            "member_not_found"
        );
        assert_eq!(card(&s).await.tier, "base");
    });
}

#[test]
fn an_activated_offer_is_applied_at_the_till_once_and_not_after_its_limit_or_validity() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let now = s.clock.now_ms();
        let mut bonus = offer("bonus", "50 bonus points");
        bonus.reward = loyalty_core::offers::Reward::FixedPoints;
        bonus.value = 50;
        bonus.use_limit = 1;
        bonus.valid_from_ms = now - 1_000;
        bonus.valid_until_ms = now + 7 * DAY_MS;
        op.post_offer(&s.member_id, &bonus).await.unwrap();
        let mut coffee = offer("coffee10", "10% off coffee");
        coffee.reward = loyalty_core::offers::Reward::PercentOff;
        coffee.value = 10;
        coffee.category = "coffee".into();
        coffee.needs_activation = false;
        coffee.use_limit = 0;
        coffee.valid_from_ms = now - 1_000;
        coffee.valid_until_ms = now + DAY_MS;
        op.post_offer(&s.member_id, &coffee).await.unwrap();

        // Not activated yet: the bonus does not apply; the coffee discount needs no activation.
        let r = buy(
            &s,
            "before",
            2_000,
            vec![line("coffee", 1_000), line("bread", 1_000)],
            0,
        )
        .await
        .unwrap();
        assert_eq!(r.discount_minor, 100);
        let applied: Vec<_> = r
            .offers_applied
            .iter()
            .map(|a| a.offer_id.as_str())
            .collect();
        assert_eq!(applied, ["coffee10"]);
        assert_eq!(r.earned, 19, "points on what was paid: 19.00");

        // Activated on the phone (offline), honoured at the till once the phone has synced.
        s.phone.sync().await.unwrap();
        s.phone.activate_offer("bonus").unwrap();
        s.phone.sync().await.unwrap();
        let r = buy(&s, "with-bonus", 1_000, vec![], 0).await.unwrap();
        assert_eq!(rule_points(&r, "offer:bonus"), 50);
        assert!(
            r.offers_applied
                .iter()
                .any(|a| a.offer_id == "bonus" && a.points == 50)
        );
        // Its limit is reached: the next purchase gets no bonus.
        let r = buy(&s, "after-limit", 1_000, vec![], 0).await.unwrap();
        assert_eq!(rule_points(&r, "offer:bonus"), 0);
        // The use count reaches the phone.
        s.phone.sync().await.unwrap();
        let views = s.phone.offers().unwrap();
        let b = views.iter().find(|v| v.offer.id == "bonus").unwrap();
        assert_eq!(b.offer.use_count, 1);

        // After its validity the discount no longer applies.
        s.clock.advance(DAY_MS);
        let r = buy(&s, "late", 1_000, vec![line("coffee", 1_000)], 0)
            .await
            .unwrap();
        assert_eq!((r.discount_minor, r.offers_applied.len()), (0, 0));
    });
}

#[test]
fn a_damaged_member_fails_alone_and_everyone_else_is_settled() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let mut p = Programme::default();
        p.earning.events.enrollment = 50;
        p.points.expiry = Expiry::Rolling { days: 10 };
        set(&s, &p).await;
        let mut members = Vec::new();
        for name in ["ada", "bob"] {
            let m = op.create_member(None).await.unwrap();
            let phone =
                Device::open_with_clock(s.dir.path().join(format!("{name}.db")), s.clock.clone())
                    .unwrap();
            phone
                .enroll(&s.server.url, &m.activation_code, name)
                .await
                .unwrap();
            members.push(m.member_id);
        }
        // Someone with access to the database file damages ada's points: her book cannot be read.
        assert_eq!(tamper::damage_lots(&s.server.database, &members[0]), 1);

        s.clock.advance(10 * DAY_MS);
        let report = op.settle().await.unwrap();
        assert_eq!((report.failed, report.members), (1, 1));
        assert_eq!(
            report.expired_points, 50,
            "bob's points expired all the same"
        );
        let bob = op.member(&members[1]).await.unwrap().card.unwrap();
        assert_eq!(bob.balance, 0);
        assert_eq!(bob.ledger[0].rule, "expiry");
        // Ada stays due; nothing about her was written.
        assert_eq!(op.settle().await.unwrap().failed, 1);
    });
}

/// The settle job runs on every instance: two instances on one database settling the same due
/// member at the same moment warn them once and expire each point once (the member's revision
/// guards every write; the loser finds nothing left to do).
#[test]
fn two_instances_settling_at_once_warn_once_and_expire_each_point_once() {
    use loyalty_server::jobs::settle::SettleReport;
    use loyalty_tests::race::{Request, simultaneously};
    rt().block_on(async {
        let s = shop().await;
        let other = s.second_instance().await;
        let p = Programme {
            points: PointsPolicy {
                pending_days: 0,
                expiry: Expiry::Rolling { days: 60 },
                warn_days: 30,
            },
            ..Programme::default()
        };
        set(&s, &p).await;
        buy(&s, "earn", 10_000, vec![], 0).await.unwrap();
        let start = s.clock.now_ms();
        let settle_everywhere = || async {
            let requests: Vec<Request> = [s.server.addr, other.addr, s.server.addr, other.addr]
                .into_iter()
                .map(|addr| {
                    Request::post_json(addr, "/v1/admin/programme/settle", &serde_json::json!({}))
                        .header("authorization", &format!("Bearer {OPERATOR_TOKEN}"))
                })
                .collect();
            let mut total = SettleReport::default();
            for answer in simultaneously(&requests).await.unwrap() {
                assert_eq!(answer.status, 200, "{:?}", answer.error_code());
                let r: SettleReport = answer.json();
                total.warnings += r.warnings;
                total.expired_points += r.expired_points;
                total.failed += r.failed;
            }
            total
        };

        s.clock.set(start + 30 * DAY_MS);
        let warned = settle_everywhere().await;
        assert_eq!((warned.warnings, warned.failed), (1, 0), "{warned:?}");
        s.clock.set(start + 60 * DAY_MS);
        let expired = settle_everywhere().await;
        assert_eq!(
            (expired.expired_points, expired.failed),
            (100, 0),
            "{expired:?}"
        );
        let c = card(&s).await;
        assert_eq!(c.balance, 0);
        assert_eq!(c.ledger.iter().filter(|e| e.rule == "expiry").count(), 1);
        s.phone.sync().await.unwrap();
        let warnings = s.phone.messages().unwrap();
        let warnings = warnings
            .iter()
            .filter(|m| m.message.subject.starts_with("100 points expire after"));
        assert_eq!(warnings.count(), 1);
        other.stop().await;
    });
}
