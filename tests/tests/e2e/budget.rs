//! Bounded work per sync, end to end: run-length bombs are refused by their count before the
//! server applies them and change nothing; a device refuses locally what the server would refuse;
//! a burst of syncs queues behind the bound on sync jobs.

use loyalty_core::budget::limits;
use loyalty_core::protocol::{Reply, codes};
use loyalty_core::{Device, DocKind, Error, forge};
use loyalty_tests::*;

fn refusal(reply: &Reply) -> &str {
    match reply {
        Reply::Rejected(r) => &r.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn run_length_bombs_are_refused_nothing_is_stored_and_the_honest_phone_syncs_on() {
    rt().block_on(async {
        let Enrolled {
            dir: _dir,
            server,
            op,
            member_id,
            phone,
        } = enrolled().await;
        let (mut stored, _) = raw::document(&server.url, &phone, DocKind::Member).await;
        let before = raw::history(&stored);
        let view = op.member(&member_id).await.unwrap();
        for ops in [1_000_000, 10_000_000] {
            // Valid by the schema: a million times `consents.email.granted = true`.
            let bomb = forge::overwrites(&mut stored.clone(), "email", ops);
            let body = raw::body_with(DocKind::Member, &mut stored, bomb);
            assert!(body.len() < 500, "a {}-byte request", body.len());
            let answer = raw::post_sync(&server.url, &phone, body).await;
            assert_eq!(
                refusal(&answer.entries[0].reply),
                codes::TOO_MANY_OPERATIONS
            );
            let (now, _) = raw::document(&server.url, &phone, DocKind::Member).await;
            assert_eq!(raw::history(&now), before, "nothing of it was stored");
        }
        assert_eq!(op.member(&member_id).await.unwrap(), view);
        // The member's own phone syncs as before.
        phone.set_preference("store", "Mitte").unwrap();
        let report = phone.sync().await.unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        assert_eq!(report.round_trips, 1);
        let view = op.member(&member_id).await.unwrap();
        assert_eq!(view.member.preferences["store"], "Mitte");
        assert!(!view.member.consents.contains_key("email"));
        server.stop().await;
    });
}

#[test]
fn a_bomb_the_schema_would_refuse_is_refused_before_it_is_applied() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let op = server.operator();
        let (_, phone) = member_with_device(&server.url, &op, &dir.path().join("p.db")).await;
        let (mut stored, _) = raw::document(&server.url, &phone, DocKind::Member).await;
        let before = raw::history(&stored);
        // A million-element list of nulls under an unknown root key: applied, the schema would
        // refuse it (`invalid_document`); counted first, it is refused without being applied.
        let bomb = forge::list_of_nulls(&mut stored.clone(), "junk", 1_000_000);
        let body = raw::body_with(DocKind::Member, &mut stored, bomb);
        let answer = raw::post_sync(&server.url, &phone, body).await;
        assert_eq!(
            refusal(&answer.entries[0].reply),
            codes::TOO_MANY_OPERATIONS
        );
        // The same shape, small, is applied and then refused by the schema: the codes differ by
        // where the refusal happens.
        let small = forge::list_of_nulls(&mut stored.clone(), "junk", 10);
        let body = raw::body_with(DocKind::Member, &mut stored, small);
        let answer = raw::post_sync(&server.url, &phone, body).await;
        assert_eq!(refusal(&answer.entries[0].reply), codes::INVALID_DOCUMENT);
        let (now, _) = raw::document(&server.url, &phone, DocKind::Member).await;
        assert_eq!(raw::history(&now), before);
        server.stop().await;
    });
}

#[test]
fn a_change_that_would_leave_the_document_unreadable_is_refused() {
    rt().block_on(async {
        let Enrolled {
            dir: _dir,
            server,
            op,
            member_id,
            phone,
        } = enrolled().await;
        let (mut stored, _) = raw::document(&server.url, &phone, DocKind::Member).await;
        // Ten operations the schema allows, written with columns Automerge would not write:
        // applied and saved, they would leave a document that no longer loads.
        let odd = forge::overwrites(&mut stored.clone(), "email", 10);
        let body = raw::body_with(DocKind::Member, &mut stored, odd);
        let answer = raw::post_sync(&server.url, &phone, body).await;
        assert_eq!(refusal(&answer.entries[0].reply), codes::MALFORMED_MESSAGE);
        phone.set_preference("store", "Mitte").unwrap();
        assert!(phone.sync().await.unwrap().rejected.is_empty());
        let view = op.member(&member_id).await.unwrap();
        assert_eq!(view.member.preferences["store"], "Mitte");
        server.stop().await;
    });
}

#[test]
fn a_device_refuses_to_commit_past_the_history_limit_and_a_sync_makes_room() {
    rt().block_on(async {
        let Enrolled {
            dir: _dir,
            server,
            op,
            member_id,
            phone,
        } = enrolled().await;
        // The member document's history at its limit, written straight into the document (as
        // if by years of taps offline): genesis and MAX - 1 changes.
        phone
            .tamper(DocKind::Member, |doc| {
                for i in 0..limits::MAX_HISTORY_CHANGES - 2 {
                    let v = if i % 2 == 0 { "a" } else { "b" };
                    loyalty_core::member::set_preference(doc, "n", v).unwrap();
                    doc.commit();
                }
                loyalty_core::member::set_preference(doc, "n", "last").unwrap();
            })
            .unwrap();
        let state = phone.member_state().unwrap();
        match phone.set_preference("store", "Mitte") {
            Err(Error::HistoryTooLong(e)) => {
                assert_eq!(e.what, "changes");
                assert_eq!(e.limit, limits::MAX_HISTORY_CHANGES);
            }
            other => panic!("expected HistoryTooLong, got {other:?}"),
        }
        assert_eq!(
            phone.member_state().unwrap(),
            state,
            "nothing was committed"
        );
        // What the device did commit, the server takes...
        let report = phone.sync().await.unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        // ...and at the next sync starts the document afresh, which makes room again.
        let report = phone.sync().await.unwrap();
        assert_eq!(report.new_epochs, [DocKind::Member]);
        phone.set_preference("store", "Mitte").unwrap();
        phone.sync().await.unwrap();
        let view = op.member(&member_id).await.unwrap();
        assert_eq!(view.member.preferences["store"], "Mitte");
        assert_eq!(view.member.preferences["n"], "last");
        server.stop().await;
    });
}

#[test]
fn a_burst_of_syncs_queues_behind_the_bound_on_sync_jobs() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start_with(
            dir.path().join("s.db"),
            "127.0.0.1:0",
            std::sync::Arc::new(loyalty_core::SystemClock),
            |c| c.sync_jobs = 2,
        )
        .await;
        let op = server.operator();
        let mut phones = Vec::new();
        for i in 0..5 {
            let (_, phone) =
                member_with_device(&server.url, &op, &dir.path().join(format!("p{i}.db"))).await;
            phone.set_preference("store", &format!("shop {i}")).unwrap();
            phones.push(std::sync::Arc::new(phone));
        }
        let jobs = &server.app.sync_jobs;
        let waited_before = jobs.waited();
        // Every place taken: the burst can only queue.
        let held = jobs.hold_all().await.unwrap();
        let syncs: Vec<_> = phones
            .iter()
            .map(|p| {
                let p: std::sync::Arc<Device> = p.clone();
                tokio::spawn(async move { p.sync().await })
            })
            .collect();
        while jobs.waiting() < phones.len() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(jobs.running(), 0, "no job ran while every place was taken");
        drop(held);
        for s in syncs {
            let report = s.await.unwrap().unwrap();
            assert!(report.rejected.is_empty());
        }
        assert!(jobs.waited() - waited_before >= phones.len());
        assert!(jobs.peak() <= 2, "{} jobs ran at once", jobs.peak());
        assert_eq!(jobs.running(), 0);
        server.stop().await;
    });
}
