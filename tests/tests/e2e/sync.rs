//! End to end: a real server on loopback, real SQLite files, devices syncing over HTTP.

use loyalty_core::{Device, DocKind};
use loyalty_tests::*;

/// Two devices of one member act offline on different things, then sync in `order`.
async fn two_devices_converge(first_syncs_a: bool) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let op = server.operator();
    let member = op.create_member(None).await.unwrap();
    for (id, title) in [("o1", "Coffee"), ("o2", "Bread"), ("o3", "Cheese")] {
        op.post_offer(&member.member_id, &offer(id, title))
            .await
            .unwrap();
    }
    for (id, subject) in [("m1", "Welcome"), ("m2", "Your week"), ("m3", "Survey")] {
        op.post_message(&member.member_id, &message(id, subject))
            .await
            .unwrap();
    }
    let a = Device::open(dir.path().join("a.db")).unwrap();
    a.enroll(&server.url, &member.activation_code, "a")
        .await
        .unwrap();
    a.sync().await.unwrap();
    let b = second_device(
        &server.url,
        &op,
        &member.member_id,
        &dir.path().join("b.db"),
    )
    .await;

    // Offline: no syncs while they act.
    a.activate_offer("o1").unwrap();
    a.mark_read("m1").unwrap();
    a.set_preference("store", "Mitte").unwrap();
    a.set_consent("email", true).unwrap();
    b.activate_offer("o2").unwrap();
    b.mark_read("m2").unwrap();
    b.archive("m3").unwrap();
    b.set_preference("language", "de").unwrap();
    b.set_consent("sms", false).unwrap();

    let (x, y) = if first_syncs_a { (&a, &b) } else { (&b, &a) };
    x.sync().await.unwrap();
    y.sync().await.unwrap();
    x.sync().await.unwrap();

    for kind in DocKind::ALL {
        assert_eq!(a.heads(kind), b.heads(kind), "{kind} differs");
    }
    let state = a.member_state().unwrap();
    assert_eq!(state, b.member_state().unwrap());
    assert!(state.activations.contains_key("o1") && state.activations.contains_key("o2"));
    assert_eq!(state.read.keys().collect::<Vec<_>>(), ["m1", "m2"]);
    assert!(state.archived.contains_key("m3"));
    assert_eq!(state.preferences["store"], "Mitte");
    assert_eq!(state.preferences["language"], "de");
    assert!(state.consents["email"].granted && !state.consents["sms"].granted);
    // And the server holds the same.
    let view = op.member(&member.member_id).await.unwrap();
    assert_eq!(view.member, state);
}

#[test]
fn two_devices_converge_when_a_syncs_first() {
    rt().block_on(two_devices_converge(true));
}

#[test]
fn two_devices_converge_when_b_syncs_first() {
    rt().block_on(two_devices_converge(false));
}

#[test]
fn a_restarted_server_and_a_reopened_store_lose_nothing() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let op = server.operator();
        let store = dir.path().join("phone.db");
        let (member_id, device) = member_with_device(&server.url, &op, &store).await;
        op.post_offer(&member_id, &offer("o1", "Coffee"))
            .await
            .unwrap();
        device.sync().await.unwrap();
        device.activate_offer("o1").unwrap();
        device.sync().await.unwrap();

        let server = server.restart().await;
        let op = server.operator();
        let view = op.member(&member_id).await.unwrap();
        assert!(view.member.activations.contains_key("o1"));
        assert_eq!(view.offers.len(), 1);

        // The app is closed and opened again; it carries on from its store.
        drop(device);
        let device = Device::open(&store).unwrap();
        assert_eq!(device.offers().unwrap().len(), 1);
        op.post_message(&member_id, &message("m1", "After the restart"))
            .await
            .unwrap();
        device.mark_read("m1").unwrap_err(); // not here yet: it arrives with the next sync
        let report = device.sync().await.unwrap();
        assert_eq!(report.changed, [DocKind::Inbox]);
        device.mark_read("m1").unwrap();
        device.sync().await.unwrap();
        let view = op.member(&member_id).await.unwrap();
        assert!(view.member.read.contains_key("m1"));
        server.stop().await;
    });
}

#[test]
fn a_sync_the_server_answered_survives_sigkill() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("server.db");
        let server = ServerProcess::start(&db, "127.0.0.1:0");
        let op = server.operator();
        let (member_id, device) =
            member_with_device(&server.url, &op, &dir.path().join("p.db")).await;
        op.post_offer(&member_id, &offer("o1", "Coffee"))
            .await
            .unwrap();
        device.sync().await.unwrap();
        device.activate_offer("o1").unwrap();
        device.set_preference("store", "Mitte").unwrap();
        let report = device.sync().await.unwrap();
        assert!(report.rejected.is_empty());
        // Killed the instant after it answered: no graceful shutdown, no chance to flush.
        server.kill9();

        let server = ServerProcess::start(&db, "127.0.0.1:0");
        let view = server.operator().member(&member_id).await.unwrap();
        assert!(view.member.activations.contains_key("o1"));
        assert_eq!(view.member.preferences["store"], "Mitte");
    });
}

#[test]
fn a_device_change_to_its_card_is_refused_and_the_member_document_still_syncs() {
    rt().block_on(async {
        let Enrolled {
            dir: _dir,
            server: _server,
            op,
            member_id,
            phone: device,
        } = enrolled().await;
        op.post_offer(&member_id, &offer("o1", "Coffee"))
            .await
            .unwrap();
        device.sync().await.unwrap();
        let card_before = op.member(&member_id).await.unwrap().card;

        // A tampered client writes itself a million points, and also clips an offer.
        device
            .tamper(DocKind::Card, |doc| {
                use automerge::transaction::Transactable;
                doc.put(automerge::ROOT, "balance", 1_000_000i64).unwrap();
            })
            .unwrap();
        device.activate_offer("o1").unwrap();
        let report = device.sync().await.unwrap();

        assert_eq!(report.rejected.len(), 1, "{report:?}");
        let (doc, rejection) = &report.rejected[0];
        assert_eq!(*doc, DocKind::Card);
        assert_eq!(rejection.code, "read_only_document");
        assert!(
            rejection.message.contains("written by the server"),
            "{}",
            rejection.message
        );
        // The server's card is untouched; the device took the server's copy back.
        let view = op.member(&member_id).await.unwrap();
        assert_eq!(view.card, card_before);
        assert_eq!(device.card().unwrap(), card_before);
        // The member document went through in the same sync, and later syncs are clean.
        assert!(view.member.activations.contains_key("o1"));
        device.set_preference("store", "Mitte").unwrap();
        let report = device.sync().await.unwrap();
        assert!(report.rejected.is_empty());
        assert_eq!(
            op.member(&member_id).await.unwrap().member.preferences["store"],
            "Mitte"
        );
    });
}

#[test]
fn nothing_changed_is_one_small_round_trip_and_one_new_message_is_one_more() {
    rt().block_on(async {
        let Enrolled {
            dir: _dir,
            server: _server,
            op,
            member_id,
            phone: device,
        } = enrolled().await;
        let idle = device.sync().await.unwrap();
        assert_eq!(idle.round_trips, 1);
        assert!(idle.bytes_sent + idle.bytes_received < 300, "{idle:?}");
        assert!(idle.changed.is_empty());

        op.post_message(&member_id, &message("m1", "Hello"))
            .await
            .unwrap();
        let one = device.sync().await.unwrap();
        assert_eq!(one.round_trips, 1, "{one:?}");
        assert!(one.bytes_sent + one.bytes_received < 1024, "{one:?}");
        assert_eq!(one.changed, [DocKind::Inbox]);
        assert_eq!(device.messages().unwrap()[0].message.subject, "Hello");
    });
}

/// "Nothing changed" is answered from the documents' stored summaries with no document loaded
/// (issue 12 §7): with every document's bytes garbled underneath, a settled phone's sync still
/// answers in sync; the first request that has to load one (a message waiting for the inbox) fails
/// with an error rather than a wrong answer.
#[test]
fn nothing_changed_is_answered_without_loading_a_document() {
    rt().block_on(async {
        let Enrolled {
            dir: _dir,
            server,
            op,
            member_id,
            phone,
        } = enrolled().await;
        // The first syncs load every document and store the summaries they did not have.
        phone.sync().await.unwrap();
        phone.sync().await.unwrap();
        assert_eq!(tamper::garble_documents(&server.database, &member_id), 4);

        for _ in 0..3 {
            let idle = phone.sync().await.unwrap();
            assert!(idle.changed.is_empty() && idle.rejected.is_empty(), "{idle:?}");
            assert_eq!(idle.round_trips, 1);
        }

        op.post_message(&member_id, &message("m1", "Hello"))
            .await
            .unwrap();
        let err = phone.sync().await.unwrap_err();
        assert!(
            matches!(&err, loyalty_core::Error::Server { status: 500, code, .. } if code == "internal"),
            "{err}"
        );
    });
}

/// "Nothing changed" is 96 body bytes (`docs/protocol.md` §2), and the HTTP around them carries
/// only what the protocol needs: the request Host, Authorization, Content-Type and Content-Length
/// (and reqwest's unavoidable `accept: */*`), the answer Content-Type and Content-Length (and
/// hyper's Date). No CORS, `vary` or other headers a layer might add.
#[test]
fn nothing_changed_is_96_body_bytes_with_only_the_headers_the_protocol_needs() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let tap = WireTap::start(server.addr).await;
        let member = server.operator().create_member(None).await.unwrap();
        let device = Device::open(dir.path().join("p.db")).unwrap();
        device
            .enroll(&tap.url, &member.activation_code, "phone")
            .await
            .unwrap();
        device.sync().await.unwrap();
        tap.take();

        let report = device.sync().await.unwrap();
        assert_eq!(report.round_trips, 1);
        assert_eq!(report.bytes_sent + report.bytes_received, 96);
        let (up, down) = tap.take();
        let (request, response) = (http_messages(&up), http_messages(&down));
        assert_eq!((request.len(), response.len()), (1, 1));
        let (names, head, body) = &request[0];
        assert_eq!((*body, head + body), (report.bytes_sent, up.len()));
        let mut names = names.clone();
        names.sort();
        assert_eq!(
            names,
            [
                "accept",
                "authorization",
                "content-length",
                "content-type",
                "host"
            ]
        );
        let (names, head, body) = &response[0];
        assert_eq!((*body, head + body), (report.bytes_received, down.len()));
        let mut names = names.clone();
        names.sort();
        names.retain(|n| n != "date");
        assert_eq!(names, ["content-length", "content-type"]);
        server.stop().await;
    });
}
