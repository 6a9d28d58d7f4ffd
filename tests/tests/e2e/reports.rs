//! The operators' reports (issue 14 §3) against a real server: the points liability from purchases
//! that matured, are pending and expire at different times, in points and at the programme's
//! redemption value, as JSON, as CSV and on the command line, readable by every role; bad queries
//! refused.

use loyalty_core::api::reports::LiabilityReport;
use loyalty_core::calendar::DAY_MS;
use loyalty_core::lots::Expiry;
use loyalty_core::programme::Programme;
use loyalty_tests::*;

use crate::cli::{loyalty, stdout};

async fn buy(s: &Shop, code: &str, key: &str, total_minor: i64) {
    let session = s.till.scan(code).await.unwrap().session_id;
    s.till
        .purchase(&purchase(&session, key, total_minor, 0))
        .await
        .unwrap();
}

#[test]
fn the_liability_counts_available_pending_and_expiring_points_and_values_them() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let mut p = Programme::default();
        p.points.pending_days = 7;
        p.points.expiry = Expiry::Rolling { days: 35 };
        p.redemption.value_points = 10;
        p.redemption.value_minor = 5;
        op.set_programme(&p).await.unwrap();

        // Anna's 100 points mature (and expire 27 days from the report); then Anna and Bob each
        // earn points still pending (expiring 35 days from the report).
        buy(&s, &s.next_code().text, "a", 10_000).await;
        s.clock.advance(8 * DAY_MS);
        buy(&s, &s.next_code().text, "b", 5_000).await;
        let (bob, bob_phone) = s.another_member("bob").await;
        buy(&s, &s.code_of(&bob_phone), "c", 3_000).await;
        // Bob's 30 points are pending, as his card says.
        let bobs = op.member(&bob).await.unwrap().card.unwrap();
        assert_eq!(
            (bobs.balance, bobs.standing.map(|s| s.pending)),
            (0, Some(30))
        );

        let report: LiabilityReport = op.liability().await.unwrap();
        let pv = |r: loyalty_core::api::reports::PointsValue| (r.points, r.value_minor);
        assert_eq!(pv(report.available), (100, 50));
        assert_eq!(pv(report.pending), (80, 40));
        assert_eq!(pv(report.total), (180, 90));
        let expiring: Vec<_> = report
            .expiring
            .iter()
            .map(|e| (e.days, e.amount.points, e.amount.value_minor))
            .collect();
        assert_eq!(expiring, [(30, 100, 50), (60, 180, 90), (90, 180, 90)]);
        assert_eq!(
            (
                report.members_with_points,
                report.value_points,
                report.value_minor
            ),
            (2, 10, 5)
        );

        // The same as CSV, for a spreadsheet.
        let http = reqwest::Client::new();
        let url = format!("{}/v1/admin/reports/liability", s.server.url);
        let auth = format!("Bearer {OPERATOR_TOKEN}");
        let csv = http
            .get(&url)
            .query(&[("format", "csv")])
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(csv.status(), 200);
        assert!(
            csv.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let text = csv.text().await.unwrap();
        assert_eq!(text, report.to_csv());
        assert!(
            text.contains("available,100,50\n") && text.contains("expiring_30d,100,50\n"),
            "{text}"
        );

        // Bad queries are refused.
        for query in [("format", "xml"), ("since", "1")] {
            let r = http
                .get(&url)
                .query(&[query])
                .header("authorization", &auth)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{query:?}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "malformed_query", "{body}");
        }

        // Every role may read reports.
        for role in ["support", "marketing"] {
            let token = op.create_operator(role, role).await.unwrap().token;
            let as_role =
                loyalty_server::client::OperatorClient::new(&s.server.url, &token).unwrap();
            assert_eq!(
                as_role.liability().await.unwrap().total.points,
                180,
                "{role}"
            );
        }

        // And the command line.
        let out = loyalty(&s.server.url, &["admin", "report", "liability", "--csv"]).await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(stdout(&out), text);
        let out = loyalty(&s.server.url, &["admin", "report", "liability"]).await;
        assert!(
            stdout(&out).contains("available") && stdout(&out).contains("0.50"),
            "{}",
            stdout(&out)
        );
    });
}

/// A report of deliveries once the outbound worker has finished the queued ones.
async fn settled_report(
    op: &loyalty_server::client::OperatorClient,
    query: &[(&str, String)],
) -> loyalty_core::api::reports::DeliveryReport {
    for _ in 0..3000 {
        let report = op.deliveries_report(query).await.unwrap();
        if report.counts.iter().all(|c| c.status != "queued") {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("deliveries still queued");
}

#[test]
fn the_delivery_report_counts_each_sends_fates_and_consent_refusals() {
    use loyalty_core::api::SendMessage;
    use loyalty_core::api::reports::DeliveryCount;
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        s.phone.set_consent("email", true).unwrap();
        s.phone.set_preference("email", "anna@example.com").unwrap();
        s.phone.sync().await.unwrap();
        let (bob, _) = s.another_member("bob").await;
        let send = |id: &str, channel: &str, kind: &str| SendMessage {
            id: Some(id.into()),
            channel: channel.into(),
            kind: kind.into(),
            subject: format!("About {id}"),
            body: String::new(),
            members: vec![s.member_id.clone(), bob.clone()],
            segment: None,
        };
        op.send_message(&send("spring", "email", "marketing"))
            .await
            .unwrap();
        op.send_message(&send("hours", "inapp", "service"))
            .await
            .unwrap();

        let count = |channel: &str, status: &str, reason: Option<&str>, count| DeliveryCount {
            channel: channel.into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            count,
        };
        let spring = [("message_id", "spring".to_string())];
        let report = settled_report(&op, &spring).await;
        assert_eq!(
            (
                report.messages,
                report.recipients,
                report.consent_refusals()
            ),
            (1, 2, 1)
        );
        assert_eq!(
            report.counts,
            [
                count("email", "logged", None, 1),
                count("email", "refused", Some("no_consent"), 1)
            ],
            "Anna's e-mail only reached the log (no provider); Bob never consented"
        );

        // The period's sends: both messages (the default is the last 30 days).
        let period = settled_report(&op, &[]).await;
        assert_eq!((period.messages, period.recipients), (2, 4));
        assert!(
            period.counts.contains(&count("inapp", "sent", None, 2)),
            "{period:?}"
        );
        let now = loyalty_core::Clock::now_ms(&*s.clock);
        assert_eq!(period.to_ms, Some(now + 1), "up to now, inclusive");
        let later = [
            ("from_ms", (now + 1).to_string()),
            ("to_ms", (now + 2).to_string()),
        ];
        let empty = op.deliveries_report(&later).await.unwrap();
        assert_eq!((empty.messages, empty.counts.len()), (0, 0));

        // CSV and the command line.
        let csv = op.deliveries_report_csv(&spring).await.unwrap();
        assert_eq!(csv, report.to_csv());
        assert!(csv.contains("email,refused,no_consent,1\n"), "{csv}");
        let out = loyalty(
            &s.server.url,
            &["admin", "report", "deliveries", "--message", "spring"],
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        assert!(
            stdout(&out).contains("2 recipients, 1 refused for want of consent"),
            "{}",
            stdout(&out)
        );

        // Bad queries.
        let refused = op
            .deliveries_report(&[("message_id", "nope".to_string())])
            .await
            .unwrap_err();
        assert_eq!(refusal(refused), "message_not_found");
        for query in [
            vec![
                ("message_id", "spring".to_string()),
                ("from_ms", "1".to_string()),
            ],
            vec![("from_ms", "5".to_string()), ("to_ms", "5".to_string())],
            vec![("format", "xml".to_string())],
            vec![("channel", "email".to_string())],
        ] {
            let refused = op.deliveries_report(&query).await.unwrap_err();
            assert_eq!(refusal(refused), "malformed_query", "{query:?}");
        }
        s.server.stop().await;
    });
}

#[test]
fn points_activity_counts_what_was_earned_redeemed_adjusted_and_expired_per_period() {
    use loyalty_core::api::{AdjustPoints, AdjustReason};
    use loyalty_core::calendar::{Period, format_date};
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let mut p = Programme::default();
        p.points.expiry = Expiry::Rolling { days: 35 };
        op.set_programme(&p).await.unwrap();

        // 2027-01-15: a purchase, then one paying 30 points; the next day an operator's credit.
        let start = loyalty_core::Clock::now_ms(&*s.clock);
        let first = {
            let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
            s.till
                .purchase(&purchase(&session, "a", 10_000, 0))
                .await
                .unwrap()
        };
        let second = {
            let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
            s.till
                .purchase(&purchase(&session, "b", 2_000, 30))
                .await
                .unwrap()
        };
        assert_eq!(second.redeemed, 30);
        s.clock.advance(DAY_MS);
        op.adjust(
            &s.member_id,
            &AdjustPoints {
                idempotency_key: "goodwill-1".into(),
                points: 15,
                reason: AdjustReason::Goodwill,
                note: "Sorry for the wait".into(),
                reference: None,
            },
        )
        .await
        .unwrap();
        // 40 days on, in February, what was left expires.
        s.clock.advance(39 * DAY_MS);
        let settled = op.settle().await.unwrap();
        assert!(settled.expired_points > 0, "{settled:?}");

        let earned = first.earned + second.earned;
        let report = op.points_report(&[]).await.unwrap();
        assert_eq!(report.period, Period::Month);
        let months: Vec<_> = report
            .rows
            .iter()
            .map(|r| (format_date(r.start_ms), r.points))
            .collect();
        assert_eq!(months.len(), 2, "{months:?}");
        assert_eq!(months[0].0, "2027-01-01");
        assert_eq!(months[1].0, "2027-02-01");
        let jan = months[0].1;
        assert_eq!(
            (jan.earned, jan.redeemed, jan.expired, jan.adjusted),
            (earned, 30, 0, 15)
        );
        let feb = months[1].1;
        assert_eq!((feb.earned, feb.expired), (0, settled.expired_points));
        assert_eq!(
            settled.expired_points,
            earned - 30 + 15,
            "everything left expired"
        );
        let rate = |part: i64| part as f64 / earned as f64;
        assert_eq!(report.redemption_rate, rate(30));
        assert_eq!(report.breakage_rate, rate(settled.expired_points));

        // By day, in a window: the first two days only.
        let window = [
            ("period", "day".to_string()),
            ("from_ms", start.to_string()),
            ("to_ms", (start + 2 * DAY_MS).to_string()),
        ];
        let days = op.points_report(&window).await.unwrap();
        let seen: Vec<_> = days
            .rows
            .iter()
            .map(|r| (format_date(r.start_ms), r.points.earned, r.points.adjusted))
            .collect();
        assert_eq!(
            seen,
            [
                ("2027-01-15".to_string(), earned, 0),
                ("2027-01-16".to_string(), 0, 15)
            ]
        );
        let csv = op.points_report_csv(&window).await.unwrap();
        assert_eq!(csv, days.to_csv());
        assert!(
            csv.starts_with("period_start,earned,redeemed,expired,refunded,adjusted\n2027-01-15,")
        );
        let out = loyalty(
            &s.server.url,
            &["admin", "report", "points", "--period", "week"],
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        assert!(stdout(&out).contains("redemption rate"), "{}", stdout(&out));

        for query in [
            vec![("period", "year".to_string())],
            vec![("from_ms", "5".to_string()), ("to_ms", "5".to_string())],
            vec![
                ("from_ms", "0".to_string()),
                ("to_ms", (3661 * DAY_MS).to_string()),
            ],
            vec![("member", "x".to_string())],
        ] {
            let refused = op.points_report(&query).await.unwrap_err();
            assert_eq!(refusal(refused), "malformed_query", "{query:?}");
        }
        s.server.stop().await;
    });
}

#[test]
fn the_members_report_counts_tiers_activity_and_repeat_buyers() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        buy(&s, &s.next_code().text, "a1", 1_000).await;
        buy(&s, &s.next_code().text, "a2", 1_000).await;
        let (bob, bob_phone) = s.another_member("bob").await;
        buy(&s, &s.code_of(&bob_phone), "b1", 1_000).await;
        let (cleo, _) = s.another_member("cleo").await;
        op.block(&cleo).await.unwrap();

        let r = op.members_report().await.unwrap();
        assert_eq!(
            (
                r.members,
                r.blocked,
                r.enrolled_30d,
                r.active_30d,
                r.active_90d
            ),
            (3, 1, 3, 2, 2)
        );
        assert_eq!(r.repeat_rate_90d, 0.5, "Anna bought twice, Bob once");
        assert_eq!(r.tiers.len(), 1);
        assert_eq!((r.tiers[0].tier.as_str(), r.tiers[0].members), ("base", 3));
        assert_eq!(
            (r.tiers[0].entered_30d, r.tiers[0].downgrading),
            (3, 0),
            "everyone joined on base this month"
        );

        // Two months on, nobody has bought for 30 days, nor moved tier.
        s.clock.advance(60 * DAY_MS);
        let later = op.members_report().await.unwrap();
        assert_eq!(
            (later.enrolled_30d, later.active_30d, later.active_90d),
            (0, 0, 2)
        );
        assert_eq!(later.tiers[0].entered_30d, 0);

        let http = reqwest::Client::new();
        let csv = http
            .get(format!(
                "{}/v1/admin/reports/members?format=csv",
                s.server.url
            ))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(csv, later.to_csv());
        assert!(
            csv.contains("tier:base,3\n")
                && csv.contains("tier_entered_30d:base,0\n")
                && csv.contains("repeat_rate_90d,0.5000\n"),
            "{csv}"
        );
        let out = loyalty(&s.server.url, &["admin", "report", "members"]).await;
        assert!(out.status.success(), "{out:?}");
        assert!(
            stdout(&out).contains("3 members, 1 blocked"),
            "{}",
            stdout(&out)
        );

        // Bob earns gold (a ladder with a second tier; the operator pins it, as any change of
        // tier counts): one move from base to gold in the last 30 days, in JSON, CSV and the CLI.
        let mut programme = Programme::default();
        programme.tiers.tiers.push(loyalty_core::tiers::TierDef {
            id: "gold".into(),
            name: "Gold".into(),
            threshold: 1_000_000,
            benefits: Vec::new(),
        });
        op.set_programme(&programme).await.unwrap();
        op.set_tier(&bob, Some("gold")).await.unwrap();
        let moved = op.members_report().await.unwrap();
        assert_eq!(
            moved.tier_moves_30d,
            [loyalty_core::api::reports::TierMove {
                from: "base".into(),
                to: "gold".into(),
                moves: 1
            }]
        );
        assert!(
            moved.to_csv().contains("tier_moves_30d:base>gold,1\n"),
            "{}",
            moved.to_csv()
        );
        let out = loyalty(&s.server.url, &["admin", "report", "members"]).await;
        assert!(
            stdout(&out).contains("moved base -> gold in 30 days: 1"),
            "{}",
            stdout(&out)
        );
        s.clock.advance(31 * DAY_MS);
        let settled = op.members_report().await.unwrap();
        assert!(settled.tier_moves_30d.is_empty(), "the move is 31 days old");
        s.server.stop().await;
    });
}

/// The batch job as `loyalty admin segments recompute` runs it, on the shop's clock.
async fn recompute(s: &Shop) {
    use loyalty_core::clock::Clock;
    loyalty_tests::backend::open_storage(&s.server.database)
        .await
        .recompute_segments(
            s.clock.now_ms(),
            loyalty_server::storage::DEFAULT_RFM_WINDOW_MS,
            Box::new(|_| {}),
        )
        .await
        .unwrap();
}

#[test]
fn the_segments_report_shows_sizes_migration_and_rfm_scores() {
    rt().block_on(async {
        use loyalty_core::api::PostSegment;
        use loyalty_core::segments::{ScoreRange, SegmentRules};
        let s = shop().await;
        let op = s.server.operator();
        let buyers = PostSegment {
            id: Some("buyers".into()),
            name: "Bought this year".into(),
            rules: SegmentRules {
                frequency: Some(ScoreRange { min: 1, max: 5 }),
                ..SegmentRules::default()
            },
        };
        op.create_segment(&buyers).await.unwrap();
        let (_bob, bob_phone) = s.another_member("bob").await;
        buy(&s, &s.next_code().text, "a1", 1_000).await;
        let now = || {
            use loyalty_core::clock::Clock;
            s.clock.now_ms()
        };
        let first = now();
        recompute(&s).await;
        // A day later Bob buys too: the next recompute counts him in.
        s.clock.advance(DAY_MS);
        buy(&s, &s.code_of(&bob_phone), "b1", 1_000).await;
        let second = now();
        recompute(&s).await;

        let r = op.segments_report(None).await.unwrap();
        assert_eq!(r.segments.len(), 1);
        let seg = &r.segments[0];
        assert_eq!((seg.segment_id.as_str(), seg.members), ("buyers", 2));
        let runs: Vec<_> = seg
            .runs
            .iter()
            .map(|r| (r.members, r.joined, r.departed))
            .collect();
        assert_eq!(runs, [(2, 1, 0), (1, 1, 0)], "newest first: Bob joined");
        assert_eq!(r.scored_members, 2);
        assert_eq!(
            r.frequency.members.iter().sum::<i64>(),
            2,
            "every member once"
        );
        assert_eq!(r.frequency.members[0], 0, "both bought");
        assert_eq!(
            op.segments_report(Some(1)).await.unwrap().segments[0]
                .runs
                .len(),
            1
        );

        // How the scores moved: Anna stays at 1 in every dimension; Bob comes from 0, to the
        // top recency (he bought last) and to 1 in frequency and spend (the same as Anna's).
        let moves = r.rfm_moves.as_ref().expect("two recomputes recorded");
        assert_eq!(
            (moves.computed_at_ms, moves.previous_at_ms),
            (second, Some(first))
        );
        assert_eq!(
            (moves.recency.members[1][1], moves.recency.members[0][5]),
            (1, 1)
        );
        for dimension in [&moves.frequency, &moves.monetary] {
            assert_eq!((dimension.members[1][1], dimension.members[0][1]), (1, 1));
        }
        for (dimension, sizes) in [
            (&moves.recency, &r.recency),
            (&moves.frequency, &r.frequency),
            (&moves.monetary, &r.monetary),
        ] {
            assert_eq!(dimension.members.iter().flatten().sum::<i64>(), 2);
            let to: Vec<i64> = (0..6)
                .map(|to| dimension.members.iter().map(|row| row[to]).sum())
                .collect();
            assert_eq!(to, sizes.members, "the new scores' distribution");
        }

        let http = reqwest::Client::new();
        let get = |query: &'static str| {
            http.get(format!("{}/v1/admin/reports/segments{query}", s.server.url))
                .bearer_auth(OPERATOR_TOKEN)
                .send()
        };
        let csv = get("?format=csv").await.unwrap().text().await.unwrap();
        assert_eq!(csv, r.to_csv());
        assert!(csv.contains("segment,buyers,"), "{csv}");
        assert!(
            csv.contains(&format!(
                "rfm_run,latest,{second},,,\nrfm_run,previous,{first},,,\n"
            )),
            "{csv}"
        );
        assert!(
            csv.contains(&format!("\nrecency_move,0>5,{second},1,,\n")),
            "{csv}"
        );
        for bad in ["?runs=0", "?runs=101", "?format=pdf", "?limit=3"] {
            let response = get(bad).await.unwrap();
            assert_eq!(response.status(), 400, "{bad}");
        }
        let out = loyalty(&s.server.url, &["admin", "report", "segments"]).await;
        assert!(out.status.success(), "{out:?}");
        assert!(
            stdout(&out).contains("segment buyers (Bought this year): 2 members"),
            "{}",
            stdout(&out)
        );
        // The recency table: a header of new scores, then the row of those who had none.
        let text = stdout(&out);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .skip_while(|l| !l.starts_with("RFM score moves at"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines.get(1).map(|l| l[0]), Some("recency"), "{text}");
        assert_eq!(
            lines.get(2).cloned().unwrap_or_default(),
            ["from", "0", "0", "0", "0", "0", "0", "1"],
            "{text}"
        );
        s.server.stop().await;
    });
}
