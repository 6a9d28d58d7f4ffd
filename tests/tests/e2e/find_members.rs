//! Operators find any member the way they know them (issue 14 §2): by card number (their own,
//! printed with spaces, or a linked plastic card), e-mail, phone or the retailer's reference —
//! `loyalty admin show 6276…` included, which used to be a 404 for wanting the internal id.

use loyalty_core::Device;
use loyalty_tests::*;

#[test]
fn members_are_found_by_card_email_phone_and_reference() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let created = op.create_member(Some("CRM-4711".into())).await.unwrap();
        let phone = Device::open_with_clock(s.dir.path().join("ann.db"), s.clock.clone()).unwrap();
        phone
            .enroll(&s.server.url, &created.activation_code, "ann")
            .await
            .unwrap();
        phone.set_preference("email", "ann@example.com").unwrap();
        phone.set_preference("phone", "+4915112345678").unwrap();
        phone.sync().await.unwrap();
        let ann = created.member_id;
        let card = created.card_number;
        let plastic = loyalty_core::checkout_code::format_card_number(
            loyalty_core::checkout_code::with_luhn_check_digit(400_000_000_000_077),
        );
        op.link_card(&ann, &plastic).await.unwrap();

        let spaced: String = card
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        for (field, value) in [
            ("card_number", card.as_str()),
            ("card_number", spaced.as_str()),
            ("card_number", plastic.as_str()),
            ("email", "ann@example.com"),
            ("email", "Ann@Example.com"),
            ("phone", "+4915112345678"),
            ("external_ref", "CRM-4711"),
        ] {
            let found = op.find_members(field, value).await.unwrap();
            assert_eq!(found.len(), 1, "{field}={value}");
            assert_eq!(found[0].member_id, ann, "{field}={value}");
            assert_eq!(found[0].card_number, card);
            assert_eq!(found[0].external_ref.as_deref(), Some("CRM-4711"));
        }
        for (field, value) in [
            ("email", "bob@example.com"),
            ("card_number", "6270000000000000"),
            ("card_number", "not a number"),
            ("external_ref", "CRM-0"),
        ] {
            assert!(
                op.find_members(field, value).await.unwrap().is_empty(),
                "{field}"
            );
        }
        // One criterion at most, and no list filters with it; filters and pages within bounds.
        let url = format!("{}/v1/admin/members", s.server.url);
        for query in [
            "?email=a&phone=b",
            "?nickname=ann",
            "?email=a&tier=gold",
            "?status=frozen",
            "?limit=0",
            "?limit=501",
            "?enrolled_from_ms=yesterday",
        ] {
            let answer = reqwest::Client::new()
                .get(format!("{url}{query}"))
                .bearer_auth(OPERATOR_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 400, "{query}");
        }

        // The command line: `show` by card number, `find` by e-mail.
        let shown = crate::cli::loyalty(&s.server.url, &["admin", "--json", "show", &spaced]).await;
        let view: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
        assert_eq!(view["member_id"], ann.as_str());
        let found = crate::cli::loyalty(
            &s.server.url,
            &["admin", "find", "--email", "ann@example.com"],
        )
        .await;
        assert!(
            crate::cli::stdout(&found).contains(&ann),
            "{}",
            crate::cli::stdout(&found)
        );
        let nobody =
            crate::cli::loyalty(&s.server.url, &["admin", "show", "6270000000000000"]).await;
        assert!(!nobody.status.success());
        assert!(crate::cli::stderr(&nobody).contains("no member has the card"));
    });
}

#[test]
fn members_are_listed_a_page_at_a_time_by_tier_status_segment_and_enrollment() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let first = loyalty_core::Clock::now_ms(&*s.clock);
        s.clock.advance(60_000);
        let (ben, _) = s.another_member("ben").await;
        let (cleo, _) = s.another_member("cleo").await;
        op.block(&cleo).await.unwrap();
        let mut everyone = vec![s.member_id.clone(), ben.clone(), cleo.clone()];
        everyone.sort();

        let list = |query: Vec<(&'static str, String)>| {
            let url = format!("{}/v1/admin/members", s.server.url);
            async move {
                let answer = reqwest::Client::new()
                    .get(url)
                    .query(&query)
                    .bearer_auth(OPERATOR_TOKEN)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 200, "{query:?}");
                let page: Vec<loyalty_core::api::MemberMatch> = answer.json().await.unwrap();
                page.into_iter().map(|m| m.member_id).collect::<Vec<_>>()
            }
        };
        assert_eq!(list(vec![]).await, everyone);

        // Paged: one at a time, each page after the last id of the one before.
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = vec![("limit", "1".to_string())];
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let page = list(q).await;
            let Some(last) = page.last().cloned() else {
                break;
            };
            paged.extend(page);
            after = Some(last);
        }
        assert_eq!(paged, everyone);

        assert_eq!(
            list(vec![("status", "blocked".into())]).await,
            std::slice::from_ref(&cleo)
        );
        assert_eq!(list(vec![("status", "active".into())]).await.len(), 2);
        assert_eq!(
            list(vec![("tier", "gold".into())]).await,
            Vec::<String>::new()
        );
        assert_eq!(list(vec![("tier", "base".into())]).await, everyone);
        assert_eq!(
            list(vec![("enrolled_to_ms", (first + 1).to_string())]).await,
            std::slice::from_ref(&s.member_id)
        );
        let later = list(vec![("enrolled_from_ms", (first + 1).to_string())]).await;
        assert!(
            later.contains(&ben) && later.contains(&cleo) && later.len() == 2,
            "{later:?}"
        );
        assert_eq!(
            list(vec![("segment", "nobody-computed".into())]).await,
            Vec::<String>::new()
        );

        // The command line lists too, with the same filters.
        let out = crate::cli::loyalty(
            &s.server.url,
            &["admin", "--json", "find", "--status", "blocked"],
        )
        .await;
        let found: Vec<loyalty_core::api::MemberMatch> =
            serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|m| m.member_id.clone())
                .collect::<Vec<_>>(),
            [cleo]
        );
    });
}
