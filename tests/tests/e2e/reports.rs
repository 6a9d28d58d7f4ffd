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
