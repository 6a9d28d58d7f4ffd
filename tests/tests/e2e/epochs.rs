//! Document epochs end to end: a history over the server's policy starts afresh by itself (the
//! member's document, and the card whose history grows with every posting), an operator starts a
//! poisoned member afresh with `loyalty admin epoch`, and phones that acted offline meanwhile keep
//! every action and converge.

use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc};
use loyalty_core::{Device, DocKind};
use loyalty_tests::*;

async fn server_with(dir: &std::path::Path, after_changes: u64) -> TestServer {
    TestServer::start_with(
        dir.join("s.db"),
        "127.0.0.1:0",
        Arc::new(loyalty_core::SystemClock),
        |c| c.epochs.after_changes = after_changes,
    )
    .await
}

/// The phone and the server hold the same document, in the same epoch.
async fn same(url: &str, phone: &Device, kind: DocKind) -> u64 {
    let (mut doc, epoch) = raw::document(url, phone, kind).await;
    assert_eq!(doc.get_heads(), phone.heads(kind), "{kind} differs");
    epoch
}

#[test]
fn a_member_history_over_the_policy_starts_a_new_epoch_by_itself() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = server_with(dir.path(), 20).await;
        let op = server.operator();
        let (member_id, phone) =
            member_with_device(&server.url, &op, &dir.path().join("p.db")).await;
        for i in 0..25 {
            phone.set_preference(&format!("k{i}"), "v").unwrap();
        }
        let report = phone.sync().await.unwrap();
        assert!(report.new_epochs.is_empty());
        let (doc, epoch) = raw::document(&server.url, &phone, DocKind::Member).await;
        assert_eq!((epoch, raw::history(&doc).1), (0, 26));
        // The next sync finds the history past 20 changes and starts it afresh.
        let report = phone.sync().await.unwrap();
        assert_eq!(report.new_epochs, [DocKind::Member]);
        assert_eq!(same(&server.url, &phone, DocKind::Member).await, 1);
        let (doc, _) = raw::document(&server.url, &phone, DocKind::Member).await;
        assert!(raw::history(&doc).1 <= 2, "{:?}", raw::history(&doc));
        let view = op.member(&member_id).await.unwrap();
        assert_eq!(view.member, phone.member_state().unwrap());
        assert_eq!(view.member.preferences.len(), 25);
        // And the steady state is one small round trip again (an epoch flag and a byte each way).
        let report = phone.sync().await.unwrap();
        assert_eq!(report.round_trips, 1);
        assert_eq!(report.bytes_sent + report.bytes_received, 96 + 2);
        server.stop().await;
    });
}

#[test]
fn a_card_whose_history_grows_with_every_posting_starts_afresh() {
    rt().block_on(async {
        let shop = shop_with(|c| c.epochs.after_changes = 10).await;
        for i in 0..12 {
            let session = shop
                .till
                .scan(&shop.next_code().text)
                .await
                .unwrap()
                .session_id;
            shop.till
                .purchase(&purchase(&session, &format!("p{i}"), 1_000, 0))
                .await
                .unwrap();
            // Each sync catches the card up with the ledger: one more change in its history.
            shop.phone.sync().await.unwrap();
        }
        let epoch = same(&shop.server.url, &shop.phone, DocKind::Card).await;
        assert!(epoch >= 1, "the card never started afresh");
        let (doc, _) = raw::document(&shop.server.url, &shop.phone, DocKind::Card).await;
        assert!(raw::history(&doc).1 <= 10, "{:?}", raw::history(&doc));
        // Nothing of the card was lost: every posting is on it, as the operator sees it too.
        let card = shop.phone.card().unwrap().unwrap();
        assert_eq!(card.ledger.len(), 12);
        let view = shop
            .server
            .operator()
            .member(&shop.member_id)
            .await
            .unwrap();
        assert_eq!(Some(card), view.card);
    });
}

#[test]
fn loyalty_admin_epoch_recovers_a_member_whose_stored_history_is_poisoned() {
    rt().block_on(async {
        let Enrolled {
            dir: _dir,
            server,
            op,
            member_id,
            phone,
        } = enrolled().await;
        phone.set_preference("store", "Mitte").unwrap();
        phone.sync().await.unwrap();
        // A bomb stored before the server counted operations (150,000 overwrites of one consent,
        // in one change), written straight into the server's file.
        let (mut stored, _) = raw::document(&server.url, &phone, DocKind::Member).await;
        loyalty_core::member::set_consent(&mut stored, "email", true, 1).unwrap();
        let (_, consents) = stored.get(ROOT, "consents").unwrap().unwrap();
        let (_, email) = stored.get(&consents, "email").unwrap().unwrap();
        for i in 0..150_000 {
            stored.put(&email, "granted", i % 2 == 0).unwrap();
        }
        stored.commit();
        let poisoned = stored.save();
        overwrite_document(&server.database, &member_id, DocKind::Member, poisoned).await;
        // Meanwhile, offline, the member acts on.
        phone.set_preference("language", "de").unwrap();

        let output = std::process::Command::new(loyalty_bin())
            .args(["admin", "--server", &server.url, "epoch", &member_id])
            .args(["--doc", "member"])
            .env("LOYALTY_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(
            text.starts_with("member: epoch 1, history 150"),
            "unexpected output: {text}"
        );
        let (doc, epoch) = raw::document(&server.url, &phone, DocKind::Member).await;
        assert_eq!(epoch, 1);
        assert!(raw::history(&doc).0 < 100, "{:?}", raw::history(&doc));

        let report = phone.sync().await.unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        assert_eq!(report.new_epochs, [DocKind::Member]);
        assert_eq!(same(&server.url, &phone, DocKind::Member).await, 1);
        let view = op.member(&member_id).await.unwrap();
        assert_eq!(view.member.preferences["store"], "Mitte");
        assert_eq!(view.member.preferences["language"], "de");
        assert_eq!(view.member, phone.member_state().unwrap());
        let (doc, _) = raw::document(&server.url, &phone, DocKind::Member).await;
        assert!(
            raw::history(&doc).0 < 100,
            "the phone brought no old history back"
        );
        server.stop().await;
    });
}

#[test]
fn two_phones_that_acted_offline_keep_everything_across_a_new_epoch() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let op = server.operator();
        let (member_id, a) = member_with_device(&server.url, &op, &dir.path().join("a.db")).await;
        for (id, title) in [("o1", "Coffee"), ("o2", "Bread")] {
            op.post_offer(&member_id, &offer(id, title)).await.unwrap();
        }
        for (id, subject) in [("m1", "Welcome"), ("m2", "Your week")] {
            op.post_message(&member_id, &message(id, subject))
                .await
                .unwrap();
        }
        a.sync().await.unwrap();
        let b = second_device(&server.url, &op, &member_id, &dir.path().join("b.db")).await;
        a.activate_offer("o1").unwrap();
        a.sync().await.unwrap();
        b.sync().await.unwrap();

        // Offline, both act; meanwhile the operator starts every document afresh.
        a.activate_offer("o2").unwrap();
        a.mark_read("m1").unwrap();
        a.set_consent("email", true).unwrap();
        let request = a.open_request("question", "Parking?", "Where?").unwrap();
        a.add_followup(&request, "Behind the store?").unwrap();
        b.mark_read("m2").unwrap();
        b.archive("m1").unwrap();
        b.set_preference("language", "de").unwrap();
        b.set_consent("sms", false).unwrap();
        let started = op.start_epochs(&member_id, Vec::new()).await.unwrap();
        assert_eq!(started.documents.len(), 4);
        assert!(started.documents.iter().all(|d| d.epoch == 1));

        let ra = a.sync().await.unwrap();
        let rb = b.sync().await.unwrap();
        a.sync().await.unwrap();
        for r in [&ra, &rb] {
            assert!(r.rejected.is_empty(), "{:?}", r.rejected);
            assert_eq!(r.new_epochs.len(), 4, "{:?}", r.new_epochs);
        }
        for kind in DocKind::ALL {
            assert_eq!(a.heads(kind), b.heads(kind), "{kind} differs");
            assert_eq!(same(&server.url, &a, kind).await, 1);
        }
        let state = a.member_state().unwrap();
        assert_eq!(state, b.member_state().unwrap());
        assert_eq!(op.member(&member_id).await.unwrap().member, state);
        assert!(state.activations.contains_key("o1") && state.activations.contains_key("o2"));
        assert!(state.read.contains_key("m1") && state.read.contains_key("m2"));
        assert!(state.archived.contains_key("m1"));
        assert_eq!(state.preferences["language"], "de");
        assert!(state.consents["email"].granted && !state.consents["sms"].granted);
        assert_eq!(state.requests[&request].followups.len(), 1);
        // One of each map: no rival from an old history.
        let (doc, _) = raw::document(&server.url, &a, DocKind::Member).await;
        for map in ["activations", "read", "archived", "requests"] {
            assert_eq!(doc.get_all(ROOT, map).unwrap().len(), 1, "{map}");
        }
        // The offers and messages are all there too.
        assert_eq!(a.offers().unwrap().len(), 2);
        assert_eq!(b.messages().unwrap().len(), 2);
        server.stop().await;
    });
}

/// A device from before epochs sends epoch 0 with every entry; it must never be merged into a
/// newer epoch, whatever its message says.
#[test]
fn a_message_from_an_old_epoch_is_never_applied() {
    rt().block_on(async {
        let Enrolled {
            dir: _dir,
            server,
            op,
            member_id,
            phone,
        } = enrolled().await;
        let (mut old, _) = raw::document(&server.url, &phone, DocKind::Member).await;
        op.start_epochs(&member_id, vec![DocKind::Member])
            .await
            .unwrap();
        let (mut before, _) = raw::document(&server.url, &phone, DocKind::Member).await;
        // A change made on the old epoch's history.
        let mut edited = old.clone();
        let prefs = match edited.get(ROOT, "preferences").unwrap() {
            Some((_, id)) => id,
            None => panic!("no preferences map"),
        };
        edited.put(&prefs, "store", "Mitte").unwrap();
        edited.commit();
        let change = edited.get_last_local_change().unwrap().raw_bytes().to_vec();
        let answer = raw::post_sync(
            &server.url,
            &phone,
            raw::body_with(DocKind::Member, &mut old, change),
        )
        .await;
        assert!(matches!(
            answer.entries[0].reply,
            loyalty_core::protocol::Reply::NewEpoch(_)
        ));
        assert_eq!(answer.entries[0].epoch, 1);
        let (mut after, _) = raw::document(&server.url, &phone, DocKind::Member).await;
        assert_eq!(after.get_heads(), before.get_heads());
        server.stop().await;
    });
}
