//! Targeted offers end to end: a real server on loopback with its SQLite file, real enrolled phones
//! with their own stores, real till purchases feeding the RFM scores, and the segment batch job run
//! on the server's database file while the server runs. Each offer must reach exactly the phones
//! it targets, updates and use counts must follow, and bad input must change nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loyalty_core::api::{
    ChangesResponse, OfferTarget, PostOffer, PostSegment, PostTargetedOffer, PurchaseRequest,
    device_authorization,
};
use loyalty_core::checkout_code::STEP_SECONDS;
use loyalty_core::clock::ManualClock;
use loyalty_core::earning::offer_blocker;
use loyalty_core::offers::Reward;
use loyalty_core::programme::Programme;
use loyalty_core::segments::{ScoreRange, SegmentRules};
use loyalty_core::tiers::TierDef;
use loyalty_core::{Clock, Device};
use loyalty_server::client::{OperatorClient, OperatorError, TillClient};
use loyalty_server::storage::{DEFAULT_RFM_WINDOW_MS, RecomputeReport};
use loyalty_tests::*;
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;

struct Shop {
    dir: tempfile::TempDir,
    server: TestServer,
    clock: Arc<ManualClock>,
    op: OperatorClient,
    till: TillClient,
    receipts: AtomicUsize,
}

struct Phone {
    member_id: String,
    device: Device,
}

impl Shop {
    async fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let server = TestServer::start_with(
            dir.path().join("s.db"),
            "127.0.0.1:0",
            clock.clone(),
            |_| {},
        )
        .await;
        let mut programme = Programme::default();
        programme.tiers.tiers.push(TierDef {
            id: "gold".into(),
            name: "Gold".into(),
            threshold: 1_000_000,
            benefits: Vec::new(),
        });
        server.operator().set_programme(&programme).await.unwrap();
        Self {
            op: server.operator(),
            till: server.till("till-1"),
            dir,
            server,
            clock,
            receipts: AtomicUsize::new(0),
        }
    }

    async fn phone(&self, name: &str) -> Phone {
        let member = self.op.create_member(None).await.unwrap();
        let device = Device::open_with_clock(
            self.dir.path().join(format!("{name}.db")),
            self.clock.clone(),
        )
        .unwrap();
        device
            .enroll(&self.server.url, &member.activation_code, name)
            .await
            .unwrap();
        device.sync().await.unwrap();
        Phone {
            member_id: member.member_id,
            device,
        }
    }

    /// A real purchase at the till: the phone's code, a scan, a posting on the ledger.
    async fn buy(&self, phone: &Phone, total_minor: i64) {
        self.clock.advance(STEP_SECONDS * 1000);
        let code = phone.device.checkout_code().unwrap();
        let session = self.till.scan(&code.text).await.unwrap().session_id;
        let n = self.receipts.fetch_add(1, Ordering::SeqCst);
        self.till
            .purchase(&PurchaseRequest {
                session_id: session,
                idempotency_key: format!("p-{n}"),
                receipt_id: format!("R-{n}"),
                total_minor,
                lines: Vec::new(),
                redeem_points: 0,
                redeem_minor: 0,
            })
            .await
            .unwrap();
    }

    /// Pins the member's tier the way an operator does (the ladder has `base` and `gold`).
    async fn set_tier(&self, phone: &Phone, tier: &str) {
        self.op
            .set_tier(&phone.member_id, Some(tier))
            .await
            .unwrap();
    }

    /// The batch job, as `loyalty admin segments recompute` runs it: on the database, beside the
    /// server.
    async fn recompute(&self) -> RecomputeReport {
        let storage = backend::open_storage(&self.server.database).await;
        storage
            .recompute_segments(self.clock.now_ms(), DEFAULT_RFM_WINDOW_MS, Box::new(|_| {}))
            .await
            .unwrap()
    }

    fn offer(&self, id: &str, title: &str) -> PostOffer {
        let now = self.clock.now_ms();
        PostOffer {
            id: Some(id.into()),
            title: title.into(),
            description: String::new(),
            terms: String::new(),
            valid_from_ms: now - DAY,
            valid_until_ms: now + 30 * DAY,
            needs_activation: true,
            reward: Reward::PercentOff,
            value: 10,
            category: "coffee".into(),
            min_spend_minor: 0,
            use_limit: 2,
        }
    }

    async fn publish(&self, offer: PostOffer, target: OfferTarget) -> i64 {
        self.op
            .publish_offer(&PostTargetedOffer { offer, target })
            .await
            .unwrap()
            .version
    }
}

impl Phone {
    /// Syncs, then the ids of the offers on the phone.
    async fn offer_ids(&self) -> Vec<String> {
        self.device.sync().await.unwrap();
        self.device
            .offers()
            .unwrap()
            .into_iter()
            .map(|o| o.offer.id)
            .collect()
    }

    fn auth(&self) -> String {
        let c = self.device.credentials().unwrap();
        device_authorization(&c.device_id, &c.device_secret)
    }
}

/// One long poll on the member's change feed.
async fn poll(shop: &Shop, phone: &Phone, since: u64, wait_s: u64) -> ChangesResponse {
    reqwest::Client::new()
        .get(format!(
            "{}/v1/members/{}/changes?since={since}&wait_s={wait_s}",
            shop.server.url, phone.member_id
        ))
        .header("authorization", phone.auth())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn refusal(e: OperatorError) -> (u16, String) {
    match e {
        OperatorError::Refused { status, code, .. } => (status, code),
        other => panic!("expected a refusal, got {other}"),
    }
}

#[test]
fn a_segment_offer_reaches_exactly_its_members_phones() {
    rt().block_on(async {
        let shop = Shop::open().await;
        // In: gold coffee lovers who buy. Out: one for each condition that fails.
        let anna = shop.phone("anna").await; // gold, coffee, buys big
        let emil = shop.phone("emil").await; // gold, coffee, buys small
        let bert = shop.phone("bert").await; // base tier
        let cleo = shop.phone("cleo").await; // never buys
        let dana = shop.phone("dana").await; // prefers tea
        for p in [&anna, &emil, &bert, &cleo] {
            p.device.set_preference("coffee", "yes").unwrap();
        }
        dana.device.set_preference("coffee", "no").unwrap();
        for p in [&anna, &emil, &bert, &cleo, &dana] {
            p.device.sync().await.unwrap();
        }
        for p in [&anna, &emil, &cleo, &dana] {
            shop.set_tier(p, "gold").await;
        }
        for _ in 0..3 {
            shop.buy(&anna, 9_000).await;
        }
        shop.buy(&emil, 500).await;
        shop.buy(&bert, 9_000).await;
        shop.buy(&dana, 9_000).await;

        let view = shop
            .op
            .create_segment(&PostSegment {
                id: Some("gold-coffee".into()),
                name: "Gold coffee buyers".into(),
                rules: SegmentRules {
                    monetary: Some(ScoreRange { min: 1, max: 5 }),
                    tiers: vec!["gold".into()],
                    preferences: [("coffee".into(), "yes".into())].into(),
                    ..Default::default()
                },
            })
            .await
            .unwrap();
        assert_eq!(
            view.computed_at_ms, None,
            "computed by the batch job, not the request"
        );
        let report = shop.recompute().await;
        assert_eq!(report.scored_members, 4);
        assert_eq!(report.segments, [("gold-coffee".to_string(), 2)]);
        let listed = shop.op.segments().await.unwrap();
        assert_eq!(listed[0].members, 2);

        let published = shop
            .op
            .publish_offer(&PostTargetedOffer {
                offer: shop.offer("beans", "10% off beans"),
                target: OfferTarget::Segment {
                    segment_id: "gold-coffee".into(),
                },
            })
            .await
            .unwrap();
        assert_eq!((published.added_members, published.members), (2, 2));
        assert_eq!(anna.offer_ids().await, ["beans"]);
        assert_eq!(emil.offer_ids().await, ["beans"]);
        for p in [&bert, &cleo, &dana] {
            assert!(p.offer_ids().await.is_empty());
        }

        // Dana comes round to coffee while the offer is valid: the next recompute brings it to
        // her phone, and her waiting long poll is woken by the server noticing the batch job.
        dana.device.set_preference("coffee", "yes").unwrap();
        dana.device.sync().await.unwrap();
        let settled = poll(&shop, &dana, 0, 0).await.seq;
        let waiting = tokio::spawn({
            let url = shop.server.url.clone();
            let (member, auth) = (dana.member_id.clone(), dana.auth());
            async move {
                reqwest::Client::new()
                    .get(format!(
                        "{url}/v1/members/{member}/changes?since={settled}&wait_s=60"
                    ))
                    .header("authorization", auth)
                    .send()
                    .await
                    .unwrap()
                    .json::<ChangesResponse>()
                    .await
                    .unwrap()
            }
        });
        let report = shop.recompute().await;
        assert_eq!(report.offers, [("beans".to_string(), 1)]);
        assert!(waiting.await.unwrap().changed);
        assert_eq!(dana.offer_ids().await, ["beans"]);
        for p in [&bert, &cleo] {
            assert!(p.offer_ids().await.is_empty());
        }
    });
}

#[test]
fn tier_and_explicit_targets_and_updates_reach_phones() {
    rt().block_on(async {
        let shop = Shop::open().await;
        let gold = shop.phone("gold").await;
        let base = shop.phone("base").await;
        let third = shop.phone("third").await;
        shop.set_tier(&gold, "gold").await;

        let v = shop
            .publish(
                shop.offer("gold-x2", "Double points for gold"),
                OfferTarget::Tier {
                    tier: "gold".into(),
                },
            )
            .await;
        assert_eq!(v, 1);
        let v = shop
            .publish(
                shop.offer("pair", "For the two of you"),
                OfferTarget::Members {
                    member_ids: vec![base.member_id.clone(), third.member_id.clone()],
                },
            )
            .await;
        assert_eq!(v, 1);
        assert_eq!(gold.offer_ids().await, ["gold-x2"]);
        assert_eq!(base.offer_ids().await, ["pair"]);
        assert_eq!(third.offer_ids().await, ["pair"]);

        // The per-member endpoint still works and is one more explicit target.
        shop.op
            .post_offer(&base.member_id, &shop.offer("solo", "Just for you"))
            .await
            .unwrap();
        let mut ids = base.offer_ids().await;
        ids.sort();
        assert_eq!(ids, ["pair", "solo"]);
        assert_eq!(third.offer_ids().await, ["pair"]);

        // A new version reaches the phones that have the offer, and only those.
        let mut better = shop.offer("gold-x2", "Triple points for gold");
        better.reward = Reward::PointsMultiplier;
        better.value = 300;
        let v = shop
            .publish(
                better,
                OfferTarget::Tier {
                    tier: "gold".into(),
                },
            )
            .await;
        assert_eq!(v, 2);
        gold.device.sync().await.unwrap();
        let offers = gold.device.offers().unwrap();
        assert_eq!(offers.len(), 1);
        assert_eq!(offers[0].offer.title, "Triple points for gold");
        assert_eq!(offers[0].offer.value, 300);
        assert!(!base.offer_ids().await.contains(&"gold-x2".to_string()));
    });
}

#[test]
fn use_counts_recorded_for_the_till_reach_the_phone() {
    rt().block_on(async {
        let shop = Shop::open().await;
        let phone = shop.phone("phone").await;
        shop.publish(
            shop.offer("twice", "Twice 10% off"),
            OfferTarget::Members {
                member_ids: vec![phone.member_id.clone()],
            },
        )
        .await;
        phone.device.sync().await.unwrap();
        phone.device.activate_offer("twice").unwrap();
        phone.device.sync().await.unwrap();

        // A second storage on the same database plays the till's posting transaction.
        let programme = backend::open_storage(&shop.server.database).await;
        let twice = ["twice".to_string()];
        let now = shop.clock.now_ms();
        let offers = programme.till_offers(&phone.member_id, now).await.unwrap();
        assert_eq!(offers.len(), 1);
        assert!(
            offers[0].activated_at_ms.is_some(),
            "the phone's activation"
        );
        let basket = loyalty_core::earning::Basket {
            total_minor: 1_000,
            lines: vec![loyalty_core::api::PurchaseLine {
                sku: "beans".into(),
                description: String::new(),
                category: "coffee".into(),
                quantity: 1,
                amount_minor: 1_000,
            }],
        };
        assert_eq!(offer_blocker(&offers[0], &basket, now), None);

        assert!(
            backend::record_offer_uses_alone(&shop.server.database, &phone.member_id, &twice).await
        );
        phone.device.sync().await.unwrap();
        let on_phone = &phone.device.offers().unwrap()[0];
        assert_eq!(on_phone.offer.use_count, 1);
        assert_eq!(on_phone.state, loyalty_core::offers::OfferState::Active);

        assert!(
            backend::record_offer_uses_alone(&shop.server.database, &phone.member_id, &twice).await
        );
        let offers = programme.till_offers(&phone.member_id, now).await.unwrap();
        assert_eq!(offers[0].offer.use_count, 2);
        assert_eq!(
            offer_blocker(&offers[0], &basket, now),
            Some("use limit reached")
        );
        assert!(
            !backend::record_offer_uses_alone(&shop.server.database, &phone.member_id, &twice)
                .await,
            "never past the limit"
        );
        phone.device.sync().await.unwrap();
        let on_phone = &phone.device.offers().unwrap()[0];
        assert_eq!(on_phone.offer.use_count, 2);
        assert_eq!(
            on_phone.state,
            loyalty_core::offers::OfferState::UsedUp,
            "the phone no longer shows as usable what the till refuses"
        );
        // Out of its validity the till does not see it.
        assert!(
            programme
                .till_offers(&phone.member_id, now + 31 * DAY)
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn the_long_poll_says_changed_after_a_fan_out() {
    rt().block_on(async {
        let shop = Shop::open().await;
        let gold = shop.phone("gold").await;
        let other = shop.phone("other").await;
        shop.set_tier(&gold, "gold").await;
        // The tier change is news for the phone until it syncs.
        assert!(poll(&shop, &gold, 0, 0).await.changed);
        gold.device.sync().await.unwrap();
        let since = poll(&shop, &gold, 0, 0).await.seq;
        let other_since = poll(&shop, &other, 0, 0).await.seq;
        assert!(!poll(&shop, &gold, since, 0).await.changed);

        let waiting = tokio::spawn({
            let url = shop.server.url.clone();
            let (member, auth) = (gold.member_id.clone(), gold.auth());
            async move {
                reqwest::Client::new()
                    .get(format!(
                        "{url}/v1/members/{member}/changes?since={since}&wait_s=60"
                    ))
                    .header("authorization", auth)
                    .send()
                    .await
                    .unwrap()
                    .json::<ChangesResponse>()
                    .await
                    .unwrap()
            }
        });
        shop.publish(
            shop.offer("gold-only", "Gold only"),
            OfferTarget::Tier {
                tier: "gold".into(),
            },
        )
        .await;
        assert!(waiting.await.unwrap().changed);
        // Until the phone syncs, every poll says so at once; the member outside the tier hears nothing.
        assert!(poll(&shop, &gold, since, 30).await.changed);
        assert!(!poll(&shop, &other, other_since, 0).await.changed);
        assert_eq!(gold.offer_ids().await, ["gold-only"]);
        let after = poll(&shop, &gold, since, 0).await;
        assert!(after.changed, "the projection itself is a change");
        assert!(!poll(&shop, &gold, after.seq, 0).await.changed);
    });
}

#[test]
fn bad_programme_input_is_refused_and_changes_nothing() {
    rt().block_on(async {
        let shop = Shop::open().await;
        let phone = shop.phone("phone").await;
        let http = reqwest::Client::new();
        let url = |path: &str| format!("{}{path}", shop.server.url);
        let post = |path: &str, token: &str, body: Vec<u8>| {
            http.post(url(path))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let error = |r: reqwest::Response| async move {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert!(
                body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{status}: {text}"
            );
            (status, body["error"]["code"].as_str().unwrap().to_string())
        };
        let offer = serde_json::to_value(shop.offer("o", "Offer")).unwrap();
        let members = json!({"kind": "members", "member_ids": [phone.member_id]});
        let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
            // Who may.
            ("/v1/admin/offers", "wrong-token-0123456789", json!({"offer": offer, "target": members}), 401, "unauthorized"),
            ("/v1/admin/offers", TILL_TOKEN, json!({"offer": offer, "target": members}), 401, "unauthorized"),
            ("/v1/admin/segments", "wrong-token-0123456789", json!({"name": "s"}), 401, "unauthorized"),
            // Targets.
            ("/v1/admin/offers", OPERATOR_TOKEN, json!({"offer": offer, "target": {"kind": "segment", "segment_id": "nope"}}), 404, "segment_not_found"),
            ("/v1/admin/offers", OPERATOR_TOKEN, json!({"offer": offer, "target": {"kind": "members", "member_ids": [phone.member_id, "mbr_ghost"]}}), 404, "member_not_found"),
            ("/v1/admin/offers", OPERATOR_TOKEN, json!({"offer": offer, "target": {"kind": "members", "member_ids": []}}), 400, "invalid_target"),
            ("/v1/admin/offers", OPERATOR_TOKEN, json!({"offer": offer, "target": {"kind": "tier", "tier": "gold; DROP TABLE members"}}), 400, "invalid_target"),
            ("/v1/admin/offers", OPERATOR_TOKEN, json!({"offer": offer, "target": {"kind": "everyone"}}), 400, "invalid_target"),
            ("/v1/admin/offers", OPERATOR_TOKEN, json!({"offer": offer}), 400, "invalid_target"),
            ("/v1/admin/offers", OPERATOR_TOKEN, json!({"offer": {"title": "t"}, "target": members}), 400, "invalid_offer"),
            ("/v1/admin/offers", OPERATOR_TOKEN, json!({"offer": {"title": "t", "valid_from_ms": 5, "valid_until_ms": 1, "reward": "fixed_points", "value": 5}, "target": members}), 400, "invalid_offer"),
            // Segment rules.
            ("/v1/admin/segments", OPERATOR_TOKEN, json!({"name": "s", "rules": {"recncy": {"min": 1, "max": 2}}}), 400, "invalid_segment"),
            ("/v1/admin/segments", OPERATOR_TOKEN, json!({"name": "s", "rules": {"recency": {"min": 4, "max": 2}}}), 400, "invalid_segment"),
            ("/v1/admin/segments", OPERATOR_TOKEN, json!({"name": "s", "rules": {"monetary": {"min": 1, "max": 9}}}), 400, "invalid_segment"),
            ("/v1/admin/segments", OPERATOR_TOKEN, json!({"name": "s", "rules": {"tiers": ["a b"]}}), 400, "invalid_segment"),
            ("/v1/admin/segments", OPERATOR_TOKEN, json!({"id": "a/b", "name": "s"}), 400, "invalid_segment"),
            ("/v1/admin/segments", OPERATOR_TOKEN, json!({"name": ""}), 400, "invalid_segment"),
            ("/v1/admin/segments", OPERATOR_TOKEN, json!({"name": "s", "rules": []}), 400, "invalid_segment"),
        ];
        for (path, token, body, status, code) in cases {
            let r = post(path, token, serde_json::to_vec(&body).unwrap()).await.unwrap();
            assert_eq!(error(r).await, (status, code.to_string()), "{path} {body}");
        }
        for (path, body) in [
            ("/v1/admin/offers", b"{not json".to_vec()),
            ("/v1/admin/segments", b"\xff\xfe".to_vec()),
        ] {
            let r = post(path, OPERATOR_TOKEN, body).await.unwrap();
            assert_eq!(error(r).await, (400, "malformed_body".to_string()));
        }
        // Over the 1 MiB limit: refused before it is read.
        let ids: Vec<String> = (0..40_000).map(|i| format!("mbr_{i:030}")).collect();
        let huge = json!({"offer": offer, "target": {"kind": "members", "member_ids": ids}});
        let r = post("/v1/admin/offers", OPERATOR_TOKEN, serde_json::to_vec(&huge).unwrap())
            .await
            .unwrap();
        assert_eq!(error(r).await, (413, "payload_too_large".to_string()));
        // The server closes a connection whose body it refused unread; a client that reuses it
        // races the close (a broken pipe), so the next request gets a connection of its own.
        let http = reqwest::Client::new();
        let r = http
            .get(url("/v1/admin/segments"))
            .bearer_auth("wrong-token-0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(error(r).await, (401, "unauthorized".to_string()));

        // Nothing stored: no segment, and no offer for the member, as the operator sees them and
        // as the phone does after a sync.
        assert!(shop.op.segments().await.unwrap().is_empty());
        let view = shop.op.member(&phone.member_id).await.unwrap();
        assert!(view.offers.is_empty(), "{:?}", view.offers);
        assert!(phone.offer_ids().await.is_empty());

        // A duplicate segment id is a conflict and keeps the first definition.
        let segment = PostSegment {
            id: Some("s1".into()),
            name: "First".into(),
            rules: SegmentRules::default(),
        };
        shop.op.create_segment(&segment).await.unwrap();
        let again = PostSegment {
            name: "Second".into(),
            ..segment
        };
        assert_eq!(
            refusal(shop.op.create_segment(&again).await.unwrap_err()),
            (409, "duplicate".to_string())
        );
        assert_eq!(shop.op.segments().await.unwrap()[0].segment.name, "First");
    });
}
