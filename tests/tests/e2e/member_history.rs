//! The member's history in the operator's one window (issue 14 §2) against a real server: the
//! whole ledger — past the 50 newest movements the card document keeps — paged newest first with
//! each movement's reason, rule, posting, till and receipt; the devices with when each was last
//! seen and revoked; the command line's `ledger`, `devices`, `block`, `unblock` and `revoke`; bad
//! cursors and limits refused, unknown members a 404, every role may read.

use std::collections::HashSet;

use loyalty_core::Clock;
use loyalty_core::api::history::LedgerPage;
use loyalty_core::card::RECENT_ENTRIES;
use loyalty_tests::*;

use crate::cli::{loyalty, stdout};

#[test]
fn the_whole_ledger_pages_newest_first_with_each_movements_till_and_receipt() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let purchases = RECENT_ENTRIES + 5;
        for i in 0..purchases {
            let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
            s.till
                .purchase(&purchase(&session, &format!("p{i}"), 1_000 + i as i64, 0))
                .await
                .unwrap();
        }
        // The card keeps the newest; the ledger has every movement.
        assert_eq!(s.card().await.ledger.len(), RECENT_ENTRIES);

        let mut all = Vec::new();
        let mut before: Option<String> = None;
        let mut pages = 0;
        loop {
            let page: LedgerPage = op
                .member_ledger(&s.member_id, before.as_deref(), Some(20))
                .await
                .unwrap();
            assert_eq!(page.member_id, s.member_id);
            assert!(page.entries.len() <= 20);
            pages += 1;
            all.extend(page.entries);
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 3, "20 + 20 + 15");
        assert_eq!(all.len(), purchases);
        let ids: HashSet<_> = all.iter().map(|e| e.entry.tx_id.clone()).collect();
        assert_eq!(ids.len(), purchases, "no movement twice");
        assert!(
            all.windows(2).all(|w| w[0].entry.at_ms >= w[1].entry.at_ms),
            "newest first"
        );
        let newest = &all[0];
        let last = purchases - 1;
        assert_eq!(
            (
                newest.posting.as_str(),
                newest.till_id.as_str(),
                newest.receipt_id.as_str(),
                newest.entry.points
            ),
            (
                format!("till:till-7:p{last}").as_str(),
                "till-7",
                format!("R-p{last}").as_str(),
                10
            )
        );
        assert!(newest.entry.rule.starts_with("base"), "{newest:?}");
        assert!(!newest.entry.reason.is_empty());
        let oldest = all.last().unwrap();
        assert_eq!(oldest.posting, "till:till-7:p0");

        // The default page is 50; a page of the whole at once is one page.
        let first = op.member_ledger(&s.member_id, None, None).await.unwrap();
        assert_eq!(first.entries.len(), 50);
        assert_eq!(first.entries[..], all[..50]);
        let whole = op
            .member_ledger(&s.member_id, None, Some(500))
            .await
            .unwrap();
        assert_eq!((whole.entries, whole.next), (all.clone(), None));

        // Bad cursors and limits are refused; an unknown member is a 404.
        let http = reqwest::Client::new();
        let url = format!("{}/v1/admin/members/{}/ledger", s.server.url, s.member_id);
        for query in [
            ("before", "garbage"),
            ("before", "12:"),
            ("limit", "0"),
            ("limit", "501"),
            ("limit", "x"),
            ("page", "2"),
        ] {
            let r = http
                .get(&url)
                .query(&[query])
                .bearer_auth(OPERATOR_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{query:?}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(
                body["error"]["code"], "malformed_query",
                "{query:?}: {body}"
            );
        }
        let nobody = "mbr_000000000000000000000000";
        let refused = op.member_ledger(nobody, None, None).await.unwrap_err();
        assert!(refusal(refused).contains("member_not_found"));

        // The command line: one page with the next cursor, or every page; by card number too.
        let card = s.card().await.card_number;
        let out = loyalty(&s.server.url, &["admin", "ledger", &card, "--limit", "2"]).await;
        assert!(out.status.success(), "{out:?}");
        let text = stdout(&out);
        assert_eq!(
            text.lines().filter(|l| l.contains("till-7")).count(),
            2,
            "{text}"
        );
        assert!(text.contains(&format!("receipt R-p{last}")), "{text}");
        assert!(text.contains("more: --before "), "{text}");
        let out = loyalty(
            &s.server.url,
            &[
                "admin",
                "--json",
                "ledger",
                &s.member_id,
                "--all",
                "--limit",
                "7",
            ],
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed.len(), purchases);
        assert_eq!(listed[0]["tx_id"], all[0].entry.tx_id.as_str());
        s.server.stop().await;
    });
}

#[test]
fn devices_show_when_each_was_last_seen_and_revoked() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let enrolled_at = s.clock.now_ms();
        s.clock.advance(1_000);
        let tablet = second_device(
            &s.server.url,
            &op,
            &s.member_id,
            &s.dir.path().join("tablet.db"),
        )
        .await;
        let devices = op.member_devices(&s.member_id).await.unwrap();
        assert_eq!(devices.len(), 2);
        let (phone, second) = (&devices[0], &devices[1]);
        assert_eq!(
            (phone.name.as_str(), second.name.as_str()),
            ("phone", "second phone")
        );
        assert_eq!(phone.enrolled_at_ms, enrolled_at);
        assert_eq!(phone.last_seen_ms, Some(enrolled_at), "its first sync");
        assert_eq!(
            (second.enrolled_at_ms, second.revoked_at_ms),
            (enrolled_at + 1_000, None)
        );

        // Seen again only once the record is five minutes old: a sync within them writes nothing.
        s.clock.advance(60_000);
        s.phone.sync().await.unwrap();
        let seen = |list: &[loyalty_core::api::history::DeviceView], id: &str| {
            list.iter()
                .find(|d| d.device_id == id)
                .unwrap()
                .last_seen_ms
        };
        let list = op.member_devices(&s.member_id).await.unwrap();
        assert_eq!(seen(&list, &phone.device_id), Some(enrolled_at));
        s.clock.advance(5 * 60_000);
        s.phone.sync().await.unwrap();
        let now = enrolled_at + 1_000 + 6 * 60_000;
        let list = op.member_devices(&s.member_id).await.unwrap();
        assert_eq!(seen(&list, &phone.device_id), Some(now));

        // Revoked from the command line: the list says when, and the tablet is refused.
        let out = loyalty(&s.server.url, &["admin", "revoke", &second.device_id]).await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(stdout(&out).trim(), format!("revoked {}", second.device_id));
        assert!(tablet.sync().await.is_err());
        let list = op.member_devices(&s.member_id).await.unwrap();
        let revoked = list
            .iter()
            .find(|d| d.device_id == second.device_id)
            .unwrap();
        assert_eq!(revoked.revoked_at_ms, Some(now));
        let out = loyalty(&s.server.url, &["admin", "devices", &s.member_id]).await;
        let text = stdout(&out);
        assert!(
            text.contains("\"second phone\"") && text.contains("REVOKED"),
            "{text}"
        );
        assert!(text.contains("last seen"), "{text}");

        // Every role may read; an unknown member is a 404.
        let support = op.create_operator("sam", "support").await.unwrap().token;
        let as_support =
            loyalty_server::client::OperatorClient::new(&s.server.url, &support).unwrap();
        assert_eq!(as_support.member_devices(&s.member_id).await.unwrap(), list);
        let nobody = "mbr_000000000000000000000000";
        let refused = op.member_devices(nobody).await.unwrap_err();
        assert!(refusal(refused).contains("member_not_found"));
        s.server.stop().await;
    });
}

#[test]
fn the_command_line_blocks_and_unblocks_by_card_number() {
    rt().block_on(async {
        let s = shop().await;
        let card = s.card().await.card_number;
        let out = loyalty(&s.server.url, &["admin", "--json", "block", &card]).await;
        assert!(out.status.success(), "{out:?}");
        let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            said,
            serde_json::json!({"done": "blocked", "id": s.member_id})
        );
        let refused = s.till.scan(&s.next_code().text).await.unwrap_err();
        assert!(refusal(refused).contains("blocked"));
        let out = loyalty(&s.server.url, &["admin", "unblock", &s.member_id]).await;
        assert!(out.status.success(), "{out:?}");
        assert!(s.till.scan(&s.next_code().text).await.is_ok());
        s.server.stop().await;
    });
}
