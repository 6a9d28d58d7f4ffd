//! Offers as operators manage them (issue 14 §2) against a real server: the list with each
//! offer's reach, activations and uses as a real phone and till made them; an offer ended early
//! stops at the till at once and shows as ended on the phone after its next sync; a withdrawn one
//! leaves the phone; marketing may end and withdraw, support may not; the command line; bad
//! input refused.

use loyalty_core::Clock;
use loyalty_core::api::offer_admin::OfferStatus;
use loyalty_core::api::{PostOffer, PostSegment};
use loyalty_core::offers::{OfferState, Reward};
use loyalty_core::segments::{ScoreRange, SegmentRules};
use loyalty_server::client::OperatorClient;
use loyalty_server::storage::DEFAULT_RFM_WINDOW_MS;
use loyalty_tests::*;

use crate::cli::{loyalty, stdout};

const DAY: i64 = 86_400_000;

/// A bonus of `points` on any purchase, valid for two weeks from `now`.
fn bonus(id: &str, points: i64, needs_activation: bool, now: i64) -> PostOffer {
    PostOffer {
        id: Some(id.into()),
        title: format!("{points} bonus points"),
        description: String::new(),
        terms: String::new(),
        valid_from_ms: now - DAY,
        valid_until_ms: now + 14 * DAY,
        needs_activation,
        reward: Reward::FixedPoints,
        value: points,
        category: String::new(),
        min_spend_minor: 0,
        use_limit: 0,
    }
}

/// A purchase of 10.00; what it earned.
async fn buy(s: &Shop, key: &str) -> i64 {
    let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
    let posted = s
        .till
        .purchase(&purchase(&session, key, 1_000, 0))
        .await
        .unwrap();
    posted.earned
}

#[test]
fn offers_are_listed_with_their_figures_ended_early_and_withdrawn() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let now = s.clock.now_ms();
        let (bob, bob_phone) = s.another_member("bob").await;
        for member in [&s.member_id, &bob] {
            op.post_offer(member, &bonus("coffee", 50, true, now))
                .await
                .unwrap();
        }
        op.post_offer(&s.member_id, &bonus("mistake", 7, false, now))
            .await
            .unwrap();
        s.phone.sync().await.unwrap();
        bob_phone.sync().await.unwrap();
        s.phone.activate_offer("coffee").unwrap();
        s.phone.sync().await.unwrap();
        let plain = 10;
        assert_eq!(buy(&s, "p1").await, plain + 50 + 7, "both offers apply");
        assert_eq!(buy(&s, "p2").await, plain + 50 + 7);

        let list = op.offers(&[]).await.unwrap();
        let ids: Vec<_> = list.iter().map(|r| r.offer.id.as_str()).collect();
        assert_eq!(ids, ["coffee", "mistake"]);
        let coffee = &list[0];
        assert_eq!(coffee.status, OfferStatus::Active);
        let f = coffee.figures;
        assert_eq!(
            (f.reach, f.activated, f.used_by, f.uses),
            (2, 1, 1, 2),
            "two members reached, Anna activated and used it twice"
        );

        // Uptake by segment: the batch job puts both members in `everyone`, Anna alone in
        // `buyers`.
        for (id, frequency) in [
            ("everyone", None),
            ("buyers", Some(ScoreRange { min: 1, max: 5 })),
        ] {
            let rules = SegmentRules {
                frequency,
                ..SegmentRules::default()
            };
            let segment = PostSegment {
                id: Some(id.into()),
                name: id.into(),
                rules,
            };
            op.create_segment(&segment).await.unwrap();
        }
        backend::open_storage(&s.server.database)
            .await
            .recompute_segments(s.clock.now_ms(), DEFAULT_RFM_WINDOW_MS, Box::new(|_| {}))
            .await
            .unwrap();
        let uptake = op.offer_uptake("coffee").await.unwrap();
        let rows: Vec<_> = uptake
            .segments
            .iter()
            .map(|u| {
                (
                    u.segment_id.as_str(),
                    u.members,
                    u.reached,
                    u.activated,
                    u.used_by,
                    u.uses,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [("buyers", 1, 1, 1, 1, 2), ("everyone", 2, 2, 1, 1, 2)]
        );
        assert_eq!(uptake.figures, f);
        let http = reqwest::Client::new();
        let get = |query: &'static str| {
            http.get(format!(
                "{}/v1/admin/offers/coffee/uptake{query}",
                s.server.url
            ))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
        };
        let csv = get("?format=csv").await.unwrap().text().await.unwrap();
        assert_eq!(csv, uptake.to_csv());
        assert!(csv.contains("\neveryone,everyone,2,2,1,1,2\n"), "{csv}");
        for bad in ["?format=xml", "?limit=1"] {
            assert_eq!(get(bad).await.unwrap().status(), 400, "{bad}");
        }
        let unknown = op.offer_uptake("nope").await.unwrap_err();
        assert_eq!(refusal(unknown), "offer_not_found");
        let out = loyalty(&s.server.url, &["admin", "offers", "uptake", "coffee"]).await;
        assert!(out.status.success(), "{out:?}");
        assert!(stdout(&out).contains("everyone"), "{}", stdout(&out));

        // Marketing ends the coffee offer: the till stops at once, the phone shows it ended.
        let marketing = op.create_operator("mia", "marketing").await.unwrap().token;
        let marketing = OperatorClient::new(&s.server.url, &marketing).unwrap();
        let support = op.create_operator("sam", "support").await.unwrap().token;
        let support = OperatorClient::new(&s.server.url, &support).unwrap();
        let refused = support.end_offer("coffee", false).await.unwrap_err();
        assert_eq!(refusal(refused), "forbidden", "support may not end offers");
        let ended = marketing.end_offer("coffee", false).await.unwrap();
        let at = s.clock.now_ms();
        assert_eq!(
            (ended.status, ended.version, ended.offer.valid_until_ms),
            (OfferStatus::Ended, 2, at)
        );
        assert_eq!(buy(&s, "p3").await, plain + 7, "only the other offer");
        s.phone.sync().await.unwrap();
        let on_phone = s.phone.offers().unwrap();
        let coffee_view = on_phone.iter().find(|o| o.offer.id == "coffee").unwrap();
        assert_eq!(coffee_view.state, OfferState::Expired);
        let again = marketing.end_offer("coffee", false).await.unwrap();
        assert_eq!(again.version, 2, "ending again changes nothing");

        // Withdrawn from the command line: gone from the phone at its next sync, and the till.
        let out = loyalty(&s.server.url, &["admin", "offers", "withdraw", "mistake"]).await;
        assert!(out.status.success(), "{out:?}");
        assert!(stdout(&out).contains("withdrawn"), "{}", stdout(&out));
        assert_eq!(buy(&s, "p4").await, plain);
        s.phone.sync().await.unwrap();
        let ids: Vec<_> = s
            .phone
            .offers()
            .unwrap()
            .into_iter()
            .map(|o| o.offer.id)
            .collect();
        assert_eq!(ids, ["coffee"], "the withdrawn offer left the phone");

        // Listed by status, and shown one at a time, on the command line too.
        let by = |status: &str| vec![("status", status.to_string())];
        let ended = op.offers(&by("ended")).await.unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].offer.id, "coffee");
        let withdrawn = op.offer("mistake").await.unwrap();
        assert_eq!(
            (
                withdrawn.status,
                withdrawn.withdrawn_at_ms,
                withdrawn.figures.uses
            ),
            (OfferStatus::Withdrawn, Some(at + 30_000), 3)
        );
        assert!(op.offers(&by("active")).await.unwrap().is_empty());
        let out = loyalty(
            &s.server.url,
            &["admin", "offers", "list", "--status", "ended"],
        )
        .await;
        let text = stdout(&out);
        assert!(
            text.contains("coffee") && text.contains("used by 1 (2 uses)"),
            "{text}"
        );
        assert!(!text.contains("mistake"), "{text}");

        // Bad input.
        let refused = op.offer("nope").await.unwrap_err();
        assert!(refusal(refused).contains("offer_not_found"));
        let refused = marketing.end_offer("nope", true).await.unwrap_err();
        assert!(refusal(refused).contains("offer_not_found"));
        for query in [
            ("status", "paused"),
            ("limit", "0"),
            ("limit", "201"),
            ("sort", "x"),
        ] {
            let refused = op
                .offers(&[(query.0, query.1.to_string())])
                .await
                .unwrap_err();
            assert!(refusal(refused).contains("malformed_query"), "{query:?}");
        }
        s.server.stop().await;
    });
}

#[test]
fn segments_are_edited_and_deleted_once_no_running_offer_targets_them() {
    use loyalty_core::api::{OfferTarget, PostSegment, PostTargetedOffer, UpdateSegment};
    use loyalty_core::segments::SegmentRules;
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let now = s.clock.now_ms();
        let rules = |json: &str| -> SegmentRules { serde_json::from_str(json).unwrap() };
        op.create_segment(&PostSegment {
            id: Some("regulars".into()),
            name: "Regulars".into(),
            rules: rules(r#"{"frequency":{"min":3,"max":5}}"#),
        })
        .await
        .unwrap();
        op.publish_offer(&PostTargetedOffer {
            offer: bonus("for-regulars", 20, false, now),
            target: OfferTarget::Segment {
                segment_id: "regulars".into(),
            },
        })
        .await
        .unwrap();

        // Edited by marketing (support may not); the membership waits for the next recompute.
        let support = op.create_operator("sam", "support").await.unwrap().token;
        let support = OperatorClient::new(&s.server.url, &support).unwrap();
        let edit = UpdateSegment {
            name: "Gold regulars".into(),
            rules: rules(r#"{"tiers":["gold"]}"#),
        };
        let refused = support.update_segment("regulars", &edit).await.unwrap_err();
        assert_eq!(refusal(refused), "forbidden");
        let edited = op.update_segment("regulars", &edit).await.unwrap();
        assert_eq!(
            (
                edited.segment.name.as_str(),
                edited.computed_at_ms,
                edited.members
            ),
            ("Gold regulars", None, 0)
        );
        assert_eq!(edited.segment.rules, edit.rules);
        let unknown = op.update_segment("nope", &edit).await.unwrap_err();
        assert_eq!(refusal(unknown), "segment_not_found");
        let bad = op
            .update_segment(
                "regulars",
                &UpdateSegment {
                    name: " ".into(),
                    rules: SegmentRules::default(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(bad), "invalid_segment");

        // Not deleted while its offer runs; deleted once the offer ended, then gone.
        let refused = op.delete_segment("regulars").await.unwrap_err();
        assert_eq!(refusal(refused), "segment_in_use");
        assert_eq!(op.segments().await.unwrap().len(), 1);
        op.end_offer("for-regulars", false).await.unwrap();
        let out = loyalty(&s.server.url, &["admin", "segments", "delete", "regulars"]).await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(stdout(&out).trim(), "deleted regulars");
        assert!(op.segments().await.unwrap().is_empty());
        let gone = op.delete_segment("regulars").await.unwrap_err();
        assert_eq!(refusal(gone), "segment_not_found");

        // The command line edits too.
        op.create_segment(&PostSegment {
            id: Some("new".into()),
            name: "New".into(),
            rules: SegmentRules::default(),
        })
        .await
        .unwrap();
        let out = loyalty(
            &s.server.url,
            &[
                "admin",
                "segments",
                "edit",
                "new",
                "--name",
                "Newcomers",
                "--rules",
                r#"{"recency":{"min":4,"max":5}}"#,
            ],
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(op.segments().await.unwrap()[0].segment.name, "Newcomers");
        s.server.stop().await;
    });
}
