//! The conformance suite: what every storage backend must do, as generic async test functions
//! that take a fresh, empty [`Storage`] and use nothing but its traits. A backend runs them all,
//! unchanged, with [`storage_conformance!`](crate::storage_conformance):
//!
//! ```ignore
//! loyalty_server::storage_conformance!({
//!     let dir = tempfile::tempdir().unwrap();
//!     let storage = SqliteStorage::open(&dir.path().join("c.db")).unwrap();
//!     (dir, std::sync::Arc::new(storage) as std::sync::Arc<dyn Storage>)
//! });
//! ```
//!
//! The expression is evaluated once per test and yields a guard (kept alive for the test: a
//! temporary directory, a scratch schema) and the storage. The macro expands to one
//! `#[tokio::test]` per function (multi-threaded, so calls spawned together really overlap); the
//! crate that uses it needs `tokio` with its `macros` and `rt-multi-thread` features. Outside this
//! crate's own tests the suite is compiled with the `conformance` feature.
//!
//! Every trait method is called at least once. The concurrency guarantees — the document revision
//! guard, posting idempotency, single-use activation and checkout codes, a group commit failing
//! one posting alone, refunds never exceeding their purchase — are exercised with the calls
//! spawned together on the runtime, not one after the other.

use std::collections::BTreeMap;
use std::sync::Arc;

use loyalty_core::DocKind;
use loyalty_core::api::OfferTarget;
use loyalty_core::inbox::Reply;
use loyalty_core::lots::Lot;
use loyalty_core::member::{Consent, MemberState, Request};
use loyalty_core::offers::{Offer, Reward};
use loyalty_core::programme::Programme;
use loyalty_core::segments::{Segment, SegmentRules};
use loyalty_core::tiers::{Metric, TierState};

use crate::storage::*;

/// A time in the suite's world (ms); everything happens around it.
const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

/// A member with all four documents, each one byte naming its kind, and an activation code.
fn new_member(id: &str, card: &str) -> NewMember {
    NewMember {
        member_id: id.into(),
        card_number: card.into(),
        external_ref: None,
        created_at_ms: NOW - DAY,
        documents: DocKind::ALL.iter().map(|k| (*k, vec![k.code()])).collect(),
        code_hash: code(id, 0),
        code_expires_at_ms: NOW + DAY,
    }
}

/// An activation code's hash, distinct per member and number.
fn code(member: &str, n: u8) -> [u8; 32] {
    loyalty_core::ids::sha256(format!("{member}/{n}").as_bytes())
}

fn new_device(id: &str, key: u8) -> NewDevice {
    NewDevice {
        device_id: id.into(),
        secret_hash: [key; 32],
        public_key: [key; 32],
        name: format!("phone {id}"),
        created_at_ms: NOW,
    }
}

async fn member(s: &Arc<dyn Storage>, id: &str, card: &str) {
    assert_eq!(
        s.create_member(new_member(id, card)).await.unwrap(),
        MemberCreation::Created
    );
}

/// Redeems the member's first code for a device.
async fn enrolled(s: &Arc<dyn Storage>, member: &str, device: &str, key: u8) {
    let redeemed = s
        .redeem_activation_code(code(member, 0), NOW, new_device(device, key))
        .await
        .unwrap();
    assert!(matches!(redeemed, Redemption::Redeemed(m) if m.member_id == member));
}

fn tier() -> TierState {
    TierState {
        tier: "base".into(),
        manual: false,
        since_ms: NOW - DAY,
        review_at_ms: NOW + 365 * DAY,
        downgrade_at_ms: None,
    }
}

/// A purchase of `total` earning `points` into one lot, computed from `revision`.
fn purchase(key: &str, member: &str, revision: i64, balance: i64, points: i64) -> Posting {
    Posting {
        idempotency_key: key.into(),
        request_hash: loyalty_core::ids::sha256(key.as_bytes()),
        member_id: member.into(),
        till_id: "t1".into(),
        receipt_id: format!("r-{key}"),
        kind: PostingKind::Purchase,
        refers_to: None,
        refunded_before: None,
        total_minor: 100,
        earned: points,
        redeemed: 0,
        movements: vec![LedgerMovement {
            tx_id: format!("tx-{key}"),
            points,
            reason: "purchase".into(),
            rule: "base".into(),
            ..Default::default()
        }],
        expected_revision: revision,
        state: MemberProgramme {
            balance: balance + points,
            pending: 0,
            tier: tier(),
            next_event_at_ms: Some(NOW + 30 * DAY),
        },
        lots: vec![Lot {
            lot_id: format!("lot-{key}"),
            rule: "base".into(),
            points,
            remaining: points,
            expired: 0,
            earned_at_ms: NOW,
            available_at_ms: NOW,
            expires_at_ms: None,
            warned: false,
        }],
        offer_uses: Vec::new(),
        at_ms: NOW,
        response: format!("{{\"key\":\"{key}\"}}").into_bytes(),
        operator: None,
    }
}

/// A refund of `amount` of a purchase, computed from its refunded total `before` and `revision`.
fn refund(key: &str, member: &str, of: &str, amount: i64, before: i64, revision: i64) -> Posting {
    let mut p = purchase(key, member, revision, 0, 0);
    p.kind = PostingKind::Refund;
    p.refers_to = Some(of.into());
    p.refunded_before = Some(before);
    p.total_minor = amount;
    p.movements.clear();
    p.lots.clear();
    p.state.balance = 0;
    p
}

async fn book(s: &Arc<dyn Storage>, member: &str) -> MemberBook {
    s.member_book(member, Metric::Spend, 0, None)
        .await
        .unwrap()
        .expect("the member's book")
}

fn doc(kind: DocKind, expected_version: i64, bytes: &[u8], append: bool) -> DocWrite {
    DocWrite {
        kind,
        expected_version,
        bytes: bytes.to_vec(),
        append,
        new_epoch: None,
        summary: None,
        shows_revision: None,
    }
}

/// The member's own document as the mirror reads it: a birthday, consents and one request.
fn member_state() -> MemberState {
    let mut state = MemberState::default();
    state
        .preferences
        .insert("birthday".into(), "1990-05-17".into());
    state.consents.insert(
        "email".into(),
        Consent {
            granted: true,
            at_ms: NOW - DAY,
        },
    );
    state.requests.insert(
        "q1".into(),
        Request {
            kind: "question".into(),
            subject: "Points".into(),
            body: "Where are my points?".into(),
            at_ms: NOW - DAY,
            followups: BTreeMap::new(),
        },
    );
    state
}

fn offer(id: &str, use_limit: i64) -> Offer {
    Offer {
        id: id.into(),
        title: "Double points".into(),
        description: String::new(),
        terms: String::new(),
        valid_from_ms: NOW - DAY,
        valid_until_ms: NOW + DAY,
        needs_activation: false,
        reward: Reward::PointsMultiplier,
        value: 200,
        category: String::new(),
        min_spend_minor: 0,
        use_limit,
        use_count: 0,
    }
}

fn send(id: &str, kind: &str, channel: &str, target: SendTarget) -> NewSend {
    NewSend {
        message_id: id.into(),
        kind: MessageKind::from_name(kind).expect("a message kind"),
        channel: channel.into(),
        subject: format!("subject {id}"),
        body: format!("body {id}"),
        request_hash: loyalty_core::ids::sha256(id.as_bytes()),
        target,
        now_ms: NOW,
        day: NOW.div_euclid(DAY),
        marketing_per_day: 1,
    }
}

// ---------------------------------------------------------------------------------------------
// Members, codes, devices, documents.

/// `create_member`, `member`, `member_by_card`: a member exists once, by id and by card.
pub async fn members_are_created_once_and_found(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let again = s
        .create_member(new_member("m1", "6270000000000002"))
        .await
        .unwrap();
    assert_eq!(again, MemberCreation::Taken, "the same member id");
    let clash = s
        .create_member(new_member("m2", "6270000000000001"))
        .await
        .unwrap();
    assert_eq!(clash, MemberCreation::Taken, "the same card number");
    assert!(s.member("m2").await.unwrap().is_none(), "nothing stored");

    let found = s.member("m1").await.unwrap().expect("m1");
    assert_eq!(
        found,
        MemberRecord {
            member_id: "m1".into(),
            card_number: "6270000000000001".into()
        }
    );
    let till = s
        .member_by_card("6270000000000001")
        .await
        .unwrap()
        .expect("by card");
    assert_eq!((till.member_id.as_str(), till.blocked), ("m1", false));
    assert_eq!((till.balance, till.tier.as_str()), (0, "base"));
    assert!(s.member_by_card("0000").await.unwrap().is_none());
}

/// `add_activation_code`, `redeem_activation_code`, `device`, `device_key`: a code enrolls one
/// device, once, before it expires; unknown, used and expired codes store nothing.
pub async fn activation_codes_are_single_use(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    enrolled(&s, "m1", "d1", 1).await;
    let again = s
        .redeem_activation_code(code("m1", 0), NOW, new_device("d2", 2))
        .await
        .unwrap();
    assert_eq!(again, Redemption::Used);
    let unknown = s
        .redeem_activation_code(code("nobody", 0), NOW, new_device("d3", 3))
        .await
        .unwrap();
    assert_eq!(unknown, Redemption::Unknown);
    s.add_activation_code("m1", code("m1", 1), NOW - 1)
        .await
        .unwrap();
    let expired = s
        .redeem_activation_code(code("m1", 1), NOW, new_device("d4", 4))
        .await
        .unwrap();
    assert_eq!(expired, Redemption::Expired);
    for refused in ["d2", "d3", "d4"] {
        assert!(s.device(refused).await.unwrap().is_none(), "{refused}");
    }

    let device = s.device("d1").await.unwrap().expect("d1");
    assert_eq!(
        (
            device.member_id.as_str(),
            device.secret_hash,
            device.revoked
        ),
        ("m1", [1; 32], false)
    );
    let key_id = loyalty_core::checkout_code::key_id(&[1; 32]);
    let key = s.device_key("m1", key_id).await.unwrap().expect("key");
    assert_eq!(
        (key.device_id.as_str(), key.public_key, key.revoked),
        ("d1", vec![1; 32], false)
    );
    assert!(s.device_key("m1", key_id ^ 1).await.unwrap().is_none());
}

/// Two devices redeeming one code at the same time: exactly one is enrolled.
pub async fn a_code_redeemed_twice_at_once_enrolls_one_device(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let (a, b) = (s.clone(), s.clone());
    let (a, b) = tokio::join!(
        tokio::spawn(async move {
            a.redeem_activation_code(code("m1", 0), NOW, new_device("d1", 1))
                .await
        }),
        tokio::spawn(async move {
            b.redeem_activation_code(code("m1", 0), NOW, new_device("d2", 2))
                .await
        }),
    );
    let outcomes = [a.unwrap().unwrap(), b.unwrap().unwrap()];
    let redeemed = outcomes
        .iter()
        .filter(|o| matches!(o, Redemption::Redeemed(_)))
        .count();
    assert_eq!(redeemed, 1, "{outcomes:?}");
    assert!(outcomes.contains(&Redemption::Used), "{outcomes:?}");
    let devices = [s.device("d1").await.unwrap(), s.device("d2").await.unwrap()];
    assert_eq!(devices.iter().flatten().count(), 1, "one device registered");
}

/// `load_documents`, `commit`, `load_peer_states`: documents are written whole or appended under
/// their version, with the sync states and the mirror in the same commit; a new epoch forgets the
/// document's sync states.
pub async fn documents_commit_under_their_version(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    enrolled(&s, "m1", "d1", 1).await;
    let docs = s.load_documents("m1", &DocKind::ALL).await.unwrap();
    assert_eq!(docs.len(), 4);
    for d in &docs {
        assert_eq!(
            (d.version, d.epoch, d.bytes.clone()),
            (1, 0, vec![d.kind.code()])
        );
    }
    let committed = s
        .commit(
            "m1",
            Some("d1"),
            vec![
                doc(DocKind::Member, 1, &[7, 0, 7], false),
                // Bytes no text encoding would keep, appended as they are.
                doc(DocKind::Card, 1, &[0x00, 0xff, 0xc3, 0x28], true),
            ],
            vec![(DocKind::Member, vec![5]), (DocKind::Card, vec![6])],
            Some(member_state()),
        )
        .await
        .unwrap();
    assert_eq!(committed, Commit::Committed);
    let docs = s
        .load_documents("m1", &[DocKind::Member, DocKind::Card])
        .await
        .unwrap();
    let by_kind = |k: DocKind| docs.iter().find(|d| d.kind == k).expect("document");
    assert_eq!(
        (
            by_kind(DocKind::Member).version,
            &by_kind(DocKind::Member).bytes
        ),
        (2, &vec![7, 0, 7])
    );
    assert_eq!(
        by_kind(DocKind::Card).bytes,
        vec![DocKind::Card.code(), 0x00, 0xff, 0xc3, 0x28]
    );
    let mut states = s
        .load_peer_states("d1", &[DocKind::Member, DocKind::Card, DocKind::Inbox])
        .await
        .unwrap();
    states.sort_by_key(|(k, _)| k.code());
    assert_eq!(
        states,
        vec![(DocKind::Card, vec![6]), (DocKind::Member, vec![5])]
    );

    // A stale write stores nothing, not even the documents written before it in the commit.
    let stale = s
        .commit(
            "m1",
            Some("d1"),
            vec![
                doc(DocKind::Inbox, 1, &[9], false),
                doc(DocKind::Member, 1, &[8], false),
            ],
            vec![(DocKind::Inbox, vec![1])],
            None,
        )
        .await
        .unwrap();
    assert_eq!(stale, Commit::Conflict);
    let inbox = s.load_documents("m1", &[DocKind::Inbox]).await.unwrap();
    assert_eq!(
        (inbox[0].version, &inbox[0].bytes),
        (1, &vec![DocKind::Inbox.code()])
    );
    assert!(
        s.load_peer_states("d1", &[DocKind::Inbox])
            .await
            .unwrap()
            .is_empty()
    );

    // A new epoch: the bytes start it, and every device's sync state for it is forgotten.
    let renewed = s
        .commit(
            "m1",
            None,
            vec![DocWrite {
                new_epoch: Some(3),
                ..doc(DocKind::Card, 2, &[3, 3], false)
            }],
            Vec::new(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(renewed, Commit::Committed);
    let card = s.load_documents("m1", &[DocKind::Card]).await.unwrap();
    assert_eq!((card[0].version, card[0].epoch), (3, 3));
    let header = header(&s, "m1", DocKind::Card).await;
    assert_eq!((header.version, header.epoch), (3, 3));
    assert_eq!(
        s.load_peer_states("d1", &[DocKind::Card, DocKind::Member])
            .await
            .unwrap(),
        vec![(DocKind::Member, vec![5])]
    );

    // Sync states alone (a commit that need not wait for the disk) are stored like any other.
    let states = s
        .commit(
            "m1",
            Some("d1"),
            Vec::new(),
            vec![(DocKind::Card, vec![7]), (DocKind::Member, vec![6])],
            None,
        )
        .await
        .unwrap();
    assert_eq!(states, Commit::Committed);
    let mut stored = s
        .load_peer_states("d1", &[DocKind::Card, DocKind::Member])
        .await
        .unwrap();
    stored.sort_by_key(|(k, _)| k.code());
    assert_eq!(
        stored,
        vec![(DocKind::Card, vec![7]), (DocKind::Member, vec![6])]
    );
}

/// Appends, one after another, follow the document in order, each under its version; a stale
/// append stores nothing; a whole save replaces the document and every change appended to it, and
/// appends after it follow the new bytes.
pub async fn appends_follow_the_document_until_a_whole_save(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let card = |s: Arc<dyn Storage>| async move {
        let docs = s.load_documents("m1", &[DocKind::Card]).await.unwrap();
        (docs[0].version, docs[0].bytes.clone())
    };
    let commit = |s: Arc<dyn Storage>, w: DocWrite| async move {
        s.commit("m1", None, vec![w], Vec::new(), None)
            .await
            .unwrap()
    };
    let code = DocKind::Card.code();
    for (version, tail) in [(1, [0x00, 0x01]), (2, [0xff, 0x02]), (3, [0x28, 0x03])] {
        let append = doc(DocKind::Card, version, &tail, true);
        assert_eq!(commit(s.clone(), append).await, Commit::Committed);
    }
    assert_eq!(
        card(s.clone()).await,
        (4, vec![code, 0x00, 0x01, 0xff, 0x02, 0x28, 0x03])
    );
    let stale = doc(DocKind::Card, 3, &[0x99], true);
    assert_eq!(commit(s.clone(), stale).await, Commit::Conflict);
    assert_eq!(card(s.clone()).await.1.len(), 7);

    let whole = doc(DocKind::Card, 4, &[0x50, 0x51], false);
    assert_eq!(commit(s.clone(), whole).await, Commit::Committed);
    assert_eq!(card(s.clone()).await, (5, vec![0x50, 0x51]));
    let append = doc(DocKind::Card, 5, &[0x52], true);
    assert_eq!(commit(s.clone(), append).await, Commit::Committed);
    assert_eq!(card(s.clone()).await, (6, vec![0x50, 0x51, 0x52]));
    // Another document of the member is its own: none of the card's tails.
    let member_doc = s.load_documents("m1", &[DocKind::Member]).await.unwrap();
    assert_eq!(member_doc[0].bytes, vec![DocKind::Member.code()]);
}

/// The revision guard: two commits at the same expected version at the same time — one is
/// committed, the other is a conflict, and the stored document is the winner's.
pub async fn two_commits_at_one_version_one_conflicts(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let write = |s: Arc<dyn Storage>, byte: u8| {
        tokio::spawn(async move {
            let out = s
                .commit(
                    "m1",
                    None,
                    vec![doc(DocKind::Member, 1, &[byte], false)],
                    Vec::new(),
                    None,
                )
                .await;
            (byte, out)
        })
    };
    let (a, b) = tokio::join!(write(s.clone(), 10), write(s.clone(), 20));
    let (a, b) = (a.unwrap(), b.unwrap());
    let outcomes = [a.1.unwrap(), b.1.unwrap()];
    assert!(
        outcomes.contains(&Commit::Committed) && outcomes.contains(&Commit::Conflict),
        "{outcomes:?}"
    );
    let winner = if outcomes[0] == Commit::Committed {
        a.0
    } else {
        b.0
    };
    let stored = s.load_documents("m1", &[DocKind::Member]).await.unwrap();
    assert_eq!((stored[0].version, &stored[0].bytes), (2, &vec![winner]));
}

/// A commit of two documents racing a commit of one of them, again and again: each ends committed
/// or in conflict, never in an error. Every write of a document also writes the member's row (the
/// copies of the headers the sync reads), so the member's row must be taken before a document's
/// in every transaction, or the two would wait for each other.
pub async fn commits_of_several_documents_and_of_one_never_deadlock(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let write = |s: Arc<dyn Storage>, docs: Vec<DocWrite>| {
        tokio::spawn(async move { s.commit("m1", None, docs, Vec::new(), None).await })
    };
    for round in 0..40u8 {
        let stored = s
            .load_documents("m1", &[DocKind::Card, DocKind::Inbox])
            .await
            .unwrap();
        let version = |k: DocKind| stored.iter().find(|d| d.kind == k).unwrap().version;
        let (card, inbox) = (version(DocKind::Card), version(DocKind::Inbox));
        let both = vec![
            doc(DocKind::Card, card, &[round], false),
            doc(DocKind::Inbox, inbox, &[round], false),
        ];
        let one = vec![doc(DocKind::Inbox, inbox, &[round, 1], false)];
        let (a, b) = tokio::join!(write(s.clone(), both), write(s.clone(), one));
        let outcomes = [a.unwrap(), b.unwrap()];
        assert!(
            outcomes.iter().all(Result::is_ok),
            "round {round}: {outcomes:?}"
        );
        assert!(
            outcomes.iter().any(|o| matches!(o, Ok(Commit::Committed))),
            "round {round}: {outcomes:?}"
        );
    }
}

/// `revoke_device`, `set_blocked`: both report whether they found what they name.
pub async fn devices_are_revoked_and_members_blocked(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    enrolled(&s, "m1", "d1", 1).await;
    assert!(s.revoke_device("d1", NOW).await.unwrap());
    assert!(s.revoke_device("d1", NOW + 1).await.unwrap(), "again");
    assert!(!s.revoke_device("nope", NOW).await.unwrap());
    assert!(s.device("d1").await.unwrap().expect("d1").revoked);
    let key_id = loyalty_core::checkout_code::key_id(&[1; 32]);
    assert!(
        s.device_key("m1", key_id)
            .await
            .unwrap()
            .expect("key")
            .revoked
    );

    let before = book(&s, "m1").await.revision;
    assert!(s.set_blocked("m1", true).await.unwrap());
    assert!(!s.set_blocked("nope", true).await.unwrap());
    let till = s
        .member_by_card("6270000000000001")
        .await
        .unwrap()
        .expect("m1");
    assert!(till.blocked);
    let blocked = book(&s, "m1").await;
    assert!(blocked.blocked);
    assert!(
        blocked.revision > before,
        "a block raises the revision, so a posting read before it is refused"
    );
    assert!(s.set_blocked("m1", false).await.unwrap());
    assert!(!book(&s, "m1").await.blocked);
}

// ---------------------------------------------------------------------------------------------
// Cards without the app.

/// `set_pin`, `take_pin_try`, `pin_checked`: tries are reserved one at a time, even when taken
/// together; a lock holds until its time and then the count starts over; a right PIN or a new PIN
/// clears the count.
pub async fn pin_tries_are_counted_and_lock(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    assert_eq!(s.take_pin_try("m1", NOW, 3).await.unwrap(), PinTry::NoPin);
    s.set_pin("m1", "hash-1").await.unwrap();
    let takers = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.take_pin_try("m1", NOW, 3).await.unwrap() })
    });
    let mut reserved = 0;
    for t in takers.collect::<Vec<_>>() {
        match t.await.unwrap() {
            PinTry::Check { hash } => {
                assert_eq!(hash, "hash-1");
                reserved += 1;
            }
            PinTry::Locked { until_ms: None } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(reserved, 3, "three tries, however many ask at once");
    s.pin_checked("m1", false, 3, NOW + 60_000).await.unwrap();
    assert_eq!(
        s.take_pin_try("m1", NOW + 1, 3).await.unwrap(),
        PinTry::Locked {
            until_ms: Some(NOW + 60_000)
        }
    );
    // The lock ends: the count starts over.
    assert!(matches!(
        s.take_pin_try("m1", NOW + 60_000, 3).await.unwrap(),
        PinTry::Check { .. }
    ));
    s.pin_checked("m1", true, 3, NOW + 120_000).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(
            s.take_pin_try("m1", NOW + 60_001, 3).await.unwrap(),
            PinTry::Check { .. }
        ));
    }
    assert!(matches!(
        s.take_pin_try("m1", NOW + 60_001, 3).await.unwrap(),
        PinTry::Locked { .. }
    ));
    s.set_pin("m1", "hash-2").await.unwrap();
    assert_eq!(
        s.take_pin_try("m1", NOW + 60_002, 3).await.unwrap(),
        PinTry::Check {
            hash: "hash-2".into()
        }
    );
}

/// `link_card`, `report_card_lost`, `linked_cards`, `card_holder`: a plastic card links to one
/// member (racing links included), a lost one names its member as lost and is never linked again,
/// and a member's own number is theirs.
pub async fn plastic_cards_link_once_and_lost_ones_stay_lost(s: Arc<dyn Storage>) {
    use loyalty_core::api::LinkedCardStatus;
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    let link = |s: Arc<dyn Storage>, m: &'static str| {
        tokio::spawn(async move { s.link_card(m, "4000000000000002", NOW).await.unwrap() })
    };
    let (a, b) = tokio::join!(link(s.clone(), "m1"), link(s.clone(), "m2"));
    let outcomes = [a.unwrap(), b.unwrap()];
    assert!(
        outcomes.contains(&CardLink::Linked) && outcomes.contains(&CardLink::Taken),
        "{outcomes:?}"
    );
    let holder = if outcomes[0] == CardLink::Linked {
        "m1"
    } else {
        "m2"
    };
    assert_eq!(
        s.link_card(holder, "4000000000000002", NOW).await.unwrap(),
        CardLink::Already
    );
    assert_eq!(
        s.link_card("m1", "6270000000000002", NOW).await.unwrap(),
        CardLink::Taken
    );
    let (found, status) = s
        .card_holder("4000000000000002")
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(
        (found.member_id.as_str(), status),
        (holder, LinkedCardStatus::Linked)
    );
    let (own, status) = s
        .card_holder("6270000000000001")
        .await
        .unwrap()
        .expect("own");
    assert_eq!(
        (own.member_id.as_str(), status),
        ("m1", LinkedCardStatus::Primary)
    );
    assert!(s.card_holder("4000000000000010").await.unwrap().is_none());

    assert!(!s.report_card_lost("m1", "4000000000000010").await.unwrap());
    assert!(
        s.report_card_lost(holder, "4000000000000002")
            .await
            .unwrap()
    );
    let (_, status) = s
        .card_holder("4000000000000002")
        .await
        .unwrap()
        .expect("lost");
    assert_eq!(status, LinkedCardStatus::Lost);
    assert_eq!(
        s.link_card(holder, "4000000000000002", NOW).await.unwrap(),
        CardLink::Taken
    );
    let cards = s.linked_cards(holder).await.unwrap();
    assert_eq!(cards.len(), 1);
    assert_eq!(
        (cards[0].status, cards[0].linked_at_ms),
        (LinkedCardStatus::Lost, NOW)
    );
}

/// `OperatorStore`: accounts are found by their token hash (disabled ones too: the service
/// refuses them), listed oldest first, disabled once; audit entries come back newest first, by
/// operator, in pages.
pub async fn operator_accounts_and_the_audit_log(s: Arc<dyn Storage>) {
    use loyalty_core::api::{AuditEntry, OperatorAccount};
    let account = |id: &str, at: i64| OperatorAccount {
        operator_id: id.into(),
        name: format!("Name of {id}"),
        role: "support".into(),
        created_at_ms: at,
        created_by: "admin".into(),
        disabled_at_ms: None,
    };
    for (id, at, hash) in [("op_a", NOW, [1u8; 32]), ("op_b", NOW + 1, [2u8; 32])] {
        s.create_operator(NewOperatorAccount {
            account: account(id, at),
            token_hash: hash,
        })
        .await
        .unwrap();
    }
    assert_eq!(
        s.operator_by_token([2u8; 32]).await.unwrap(),
        Some(account("op_b", NOW + 1))
    );
    assert_eq!(s.operator_by_token([3u8; 32]).await.unwrap(), None);
    assert!(s.disable_operator("op_a", NOW + 5).await.unwrap());
    assert!(s.disable_operator("op_a", NOW + 9).await.unwrap());
    assert!(!s.disable_operator("op_nobody", NOW).await.unwrap());
    let listed = s.operators().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|a| (a.operator_id.as_str(), a.disabled_at_ms))
            .collect::<Vec<_>>(),
        [("op_a", Some(NOW + 5)), ("op_b", None)],
        "the first disabling date stays"
    );

    for (i, who) in ["op_a", "op_b", "op_a"].into_iter().enumerate() {
        s.record_audit(AuditEntry {
            id: 0,
            at_ms: NOW + i as i64,
            operator_id: who.into(),
            operator_name: format!("Name of {who}"),
            role: "support".into(),
            action: "POST /v1/admin/members".into(),
            target: format!("/v1/admin/members?{i}"),
            status: 200 + i as u16,
            client: "127.0.0.1".into(),
        })
        .await
        .unwrap();
    }
    let all = s
        .audit(AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.status).collect::<Vec<_>>(),
        [202, 201, 200]
    );
    assert!(all[0].id > all[1].id && all[1].id > all[2].id, "{all:?}");
    let a_only = s
        .audit(AuditFilter {
            operator_id: Some("op_a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a_only.len(), 2);
    let page = s
        .audit(AuditFilter {
            before_id: Some(all[0].id),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page, [all[1].clone()]);
}

/// `find_members`: by the retailer's reference and by id, in member id order; nobody is empty.
pub async fn members_are_found_by_reference(s: Arc<dyn Storage>) {
    for (id, card) in [("m2", "6270000000000002"), ("m1", "6270000000000001")] {
        let mut m = new_member(id, card);
        m.external_ref = Some("CRM-1".into());
        assert_eq!(s.create_member(m).await.unwrap(), MemberCreation::Created);
    }
    let found = s
        .find_members(&MemberLookup::ExternalRef("CRM-1".into()))
        .await
        .unwrap();
    let ids: Vec<_> = found.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2"]);
    assert_eq!(found[0].card_number, "6270000000000001");
    let one = s
        .find_members(&MemberLookup::MemberId("m2".into()))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].external_ref.as_deref(), Some("CRM-1"));
    let lookup = MemberLookup::Preference {
        key: "email",
        value: "nobody@example.com".into(),
    };
    assert!(s.find_members(&lookup).await.unwrap().is_empty());
}

/// `ledger_page`: the whole ledger newest first by (time, transaction id), each movement with its
/// posting, paged by cursor without gaps or repeats across equal times, and nobody else's;
/// `member_devices` with revocation, and `device_seen`, which never moves the time back.
pub async fn a_members_history_pages_the_ledger_and_lists_devices(s: Arc<dyn Storage>) {
    use loyalty_core::api::history::LedgerCursor;
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    let times = [NOW, NOW, NOW + 5, NOW + 5, NOW + 5, NOW + 9];
    for (i, at) in times.into_iter().enumerate() {
        let revision = book(&s, "m1").await.revision;
        let mut p = purchase(&format!("k{i}"), "m1", revision, 10 * i as i64, 10);
        p.at_ms = at;
        assert_eq!(s.post(p).await.unwrap(), PostOutcome::Posted);
    }
    let revision = book(&s, "m2").await.revision;
    let theirs = purchase("other", "m2", revision, 0, 10);
    assert_eq!(s.post(theirs).await.unwrap(), PostOutcome::Posted);

    let all = s.ledger_page("m1", None, 100).await.unwrap();
    let order: Vec<_> = all.iter().map(|e| e.entry.tx_id.as_str()).collect();
    assert_eq!(
        order,
        ["tx-k5", "tx-k4", "tx-k3", "tx-k2", "tx-k1", "tx-k0"]
    );
    assert_eq!(
        (
            all[0].posting.as_str(),
            all[0].till_id.as_str(),
            all[0].receipt_id.as_str(),
            all[0].entry.points,
            all[0].entry.at_ms
        ),
        ("k5", "t1", "r-k5", 10, NOW + 9)
    );
    let mut paged = Vec::new();
    let mut before: Option<LedgerCursor> = None;
    loop {
        let page = s.ledger_page("m1", before.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        before = Some(LedgerCursor::after(&last.entry));
        paged.extend(page);
    }
    assert_eq!(paged, all, "pages of two add up to the whole, in order");
    assert!(s.ledger_page("nobody", None, 10).await.unwrap().is_empty());

    enrolled(&s, "m1", "d1", 1).await;
    s.add_activation_code("m1", code("m1", 1), NOW + DAY)
        .await
        .unwrap();
    let mut second = new_device("d2", 2);
    second.created_at_ms = NOW + 1;
    let redeemed = s
        .redeem_activation_code(code("m1", 1), NOW + 1, second)
        .await
        .unwrap();
    assert!(matches!(redeemed, Redemption::Redeemed(_)));
    s.device_seen("d1", NOW + 50).await.unwrap();
    s.device_seen("d1", NOW + 20).await.unwrap();
    s.device_seen("nope", NOW).await.unwrap();
    assert!(s.revoke_device("d2", NOW + 60).await.unwrap());
    assert_eq!(
        s.device("d1").await.unwrap().expect("d1").last_seen_ms,
        Some(NOW + 50)
    );
    let devices = s.member_devices("m1").await.unwrap();
    let seen: Vec<_> = devices
        .iter()
        .map(|d| {
            (
                d.device_id.as_str(),
                d.name.as_str(),
                d.enrolled_at_ms,
                d.revoked_at_ms,
                d.last_seen_ms,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("d1", "phone d1", NOW, None, Some(NOW + 50)),
            ("d2", "phone d2", NOW + 1, Some(NOW + 60), None)
        ]
    );
    assert!(s.member_devices("m2").await.unwrap().is_empty());
}

/// `open_card_session`, `verify_session`, `session_verified`.
pub async fn card_sessions_open_without_a_code_and_remember_their_pin(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    s.open_card_session(&session("crd_1", "m1"), NOW)
        .await
        .unwrap();
    let found = s.checkout_session("crd_1").await.unwrap().expect("crd_1");
    assert_eq!(found.member_id, "m1");
    assert!(!s.session_verified("crd_1").await.unwrap());
    s.verify_session("crd_1", NOW).await.unwrap();
    s.verify_session("crd_1", NOW + 1).await.unwrap();
    assert!(s.session_verified("crd_1").await.unwrap());
    assert!(!s.session_verified("crd_2").await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// The offline till.

/// The whole feed after `since`, as (seq, entry) in order.
async fn feed(s: &Arc<dyn Storage>, since: u64) -> Vec<FeedChange> {
    s.key_feed(since, 1_000).await.unwrap()
}

/// `key_feed`, and `revoked_at_ms` of `device_key`: every registration, revocation and change of
/// a card's status is a change numbered after the last, the latest state of each key and card
/// replaces its earlier number, and a page stops at its limit.
pub async fn the_key_feed_numbers_every_change(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    assert!(
        feed(&s, 0).await.is_empty(),
        "a member without devices is not in the feed"
    );
    enrolled(&s, "m1", "d1", 1).await;
    enrolled(&s, "m2", "d2", 2).await;
    let first = feed(&s, 0).await;
    let cards: Vec<_> = first
        .iter()
        .map(|c| match &c.entry {
            FeedEntry::Key {
                card_number,
                public_key,
                revoked,
                ..
            } => {
                assert!(!revoked);
                assert_eq!(public_key.len(), 32);
                card_number.as_str()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(cards, ["6270000000000001", "6270000000000002"]);
    assert!(first[0].seq < first[1].seq);
    let cursor = first[1].seq;
    assert!(feed(&s, cursor).await.is_empty());

    assert!(s.revoke_device("d1", NOW + 5).await.unwrap());
    assert!(s.set_blocked("m2", true).await.unwrap());
    assert!(
        s.set_blocked("m2", true).await.unwrap(),
        "blocked again: no new change"
    );
    let changed = feed(&s, cursor).await;
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(
        matches!(&changed[0].entry, FeedEntry::Key { revoked: true, card_number, .. } if card_number == "6270000000000001")
    );
    assert!(
        matches!(&changed[1].entry, FeedEntry::Card { blocked: true, card_number } if card_number == "6270000000000002")
    );
    assert!(changed[0].seq > cursor && changed[1].seq > changed[0].seq);
    let key_id = loyalty_core::checkout_code::key_id(&[1; 32]);
    let key = s.device_key("m1", key_id).await.unwrap().expect("key");
    assert_eq!(key.revoked_at_ms, Some(NOW + 5));

    // The whole feed now: each key and card once, at its latest number.
    assert_eq!(feed(&s, 0).await.len(), 3);
    let page = s.key_feed(0, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(feed(&s, page[1].seq).await.len(), 1);
}

/// `claim_offline_code`: the first posting claims a code (and marks it used for online scans),
/// the same posting again finds it its own, another posting finds it taken, claims racing each
/// other get one winner, and a code used online is taken for offline postings too.
pub async fn offline_codes_are_claimed_once(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let claim = |s: Arc<dyn Storage>, code: u8, posting: &'static str, till: &'static str| async move {
        s.claim_offline_code([code; 16], posting, till, NOW - 60_000, NOW, NOW - 7 * DAY)
            .await
            .unwrap()
    };
    assert_eq!(
        claim(s.clone(), 1, "till:a:1", "a").await,
        CodeClaim::Claimed
    );
    assert_eq!(claim(s.clone(), 1, "till:a:1", "a").await, CodeClaim::Mine);
    assert_eq!(
        claim(s.clone(), 1, "till:b:1", "b").await,
        CodeClaim::Taken {
            by_till: Some("a".into())
        }
    );
    let online = s
        .open_checkout([1; 16], &session("chk1", "m1"), NOW)
        .await
        .unwrap();
    assert_eq!(
        online,
        CheckoutOpening::Replayed,
        "claimed offline: used for online scans"
    );
    assert_eq!(
        s.open_checkout([2; 16], &session("chk2", "m1"), NOW)
            .await
            .unwrap(),
        CheckoutOpening::Opened
    );
    assert_eq!(
        claim(s.clone(), 2, "till:a:2", "a").await,
        CodeClaim::Taken { by_till: None }
    );

    let racing = [("till:a:3", "a"), ("till:b:3", "b"), ("till:c:3", "c")]
        .map(|(p, t)| tokio::spawn(claim(s.clone(), 3, p, t)));
    let mut claimed = 0;
    for r in racing {
        match r.await.unwrap() {
            CodeClaim::Claimed => claimed += 1,
            CodeClaim::Taken { by_till: Some(_) } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(claimed, 1);
}

/// `record_till_exception`, `till_exceptions`: each (posting, kind) once, newest first.
pub async fn till_exceptions_are_kept_once_newest_first(s: Arc<dyn Storage>) {
    use loyalty_core::api::offline::{TillException, TillExceptionKind};
    let e = |posting: &str, kind, at_ms| TillException {
        posting: posting.into(),
        kind,
        member_id: Some("m1".into()),
        till_id: "a".into(),
        points: 5,
        detail: "balance".into(),
        at_ms,
    };
    s.record_till_exception(&e("till:a:1", TillExceptionKind::RedeemShortfall, NOW))
        .await
        .unwrap();
    s.record_till_exception(&e("till:a:1", TillExceptionKind::RedeemShortfall, NOW + 9))
        .await
        .unwrap();
    s.record_till_exception(&e("till:a:2", TillExceptionKind::CodeReuse, NOW + 1))
        .await
        .unwrap();
    let mut refused = e("till:a:3", TillExceptionKind::Refused, NOW + 2);
    refused.member_id = None;
    s.record_till_exception(&refused).await.unwrap();
    let list = s.till_exceptions(10).await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0], refused);
    assert_eq!(
        list[2],
        e("till:a:1", TillExceptionKind::RedeemShortfall, NOW)
    );
    assert_eq!(s.till_exceptions(1).await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The till's ledger.

fn session(id: &str, member: &str) -> CheckoutSession {
    CheckoutSession {
        session_id: id.into(),
        member_id: member.into(),
        till_id: "t1".into(),
        expires_at_ms: NOW + 60_000,
    }
}

/// `open_checkout`, `checkout_session`: a code opens one session; used again — sequentially or
/// twice at the same time — it is a replay and opens nothing.
pub async fn a_checkout_code_opens_one_session(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let opened = s
        .open_checkout([1; 16], &session("chk1", "m1"), NOW)
        .await
        .unwrap();
    assert_eq!(opened, CheckoutOpening::Opened);
    let found = s.checkout_session("chk1").await.unwrap().expect("chk1");
    assert_eq!(
        (
            found.member_id.as_str(),
            found.till_id.as_str(),
            found.expires_at_ms
        ),
        ("m1", "t1", NOW + 60_000)
    );
    let replay = s
        .open_checkout([1; 16], &session("chk2", "m1"), NOW + 1)
        .await
        .unwrap();
    assert_eq!(replay, CheckoutOpening::Replayed);
    assert!(s.checkout_session("chk2").await.unwrap().is_none());

    let scan = |s: Arc<dyn Storage>, id: &'static str| {
        tokio::spawn(async move { s.open_checkout([2; 16], &session(id, "m1"), NOW).await })
    };
    let (a, b) = tokio::join!(scan(s.clone(), "chk3"), scan(s.clone(), "chk4"));
    let outcomes = [a.unwrap().unwrap(), b.unwrap().unwrap()];
    assert!(
        outcomes.contains(&CheckoutOpening::Opened)
            && outcomes.contains(&CheckoutOpening::Replayed),
        "{outcomes:?}"
    );
}

/// `post`, `prior_posting`, `purchase`, `purchase_context`, `member_book`, `card_behind`,
/// `card_source`, `store_card`, `members_due`: a posting moves the member's points and state once,
/// and everything the till and the card read afterwards shows it.
pub async fn a_posting_moves_points_and_the_card_catches_up(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    s.open_checkout([1; 16], &session("chk1", "m1"), NOW)
        .await
        .map(|o| assert_eq!(o, CheckoutOpening::Opened))
        .unwrap();
    let context = s
        .purchase_context("till:t1:k1", "chk1", Metric::Spend, 0, NOW)
        .await
        .unwrap();
    assert!(context.prior.is_none());
    assert_eq!(context.session.expect("session").member_id, "m1");
    let first = context.book.expect("the session's member's book");
    assert_eq!((first.member_id.as_str(), first.state.balance), ("m1", 0));
    assert!(!s.card_behind("m1").await.unwrap());

    let posted = s
        .post(purchase("till:t1:k1", "m1", first.revision, 0, 10))
        .await
        .unwrap();
    assert_eq!(posted, PostOutcome::Posted);

    let after = book(&s, "m1").await;
    assert_eq!(after.state.balance, 10);
    assert_eq!(after.revision, first.revision + 1);
    assert_eq!(after.qualifying, 100, "the purchase's spend");
    assert_eq!(after.lots.len(), 1);
    assert_eq!(after.lots[0].remaining, 10);
    assert_eq!(after.state.next_event_at_ms, Some(NOW + 30 * DAY));

    let prior = s.prior_posting("till:t1:k1").await.unwrap().expect("prior");
    assert_eq!(
        (prior.member_id.as_str(), prior.till_id.as_str(), prior.kind),
        ("m1", "t1", PostingKind::Purchase)
    );
    assert_eq!(prior.request_hash, loyalty_core::ids::sha256(b"till:t1:k1"));
    assert_eq!(prior.response, b"{\"key\":\"till:t1:k1\"}");
    let retried = s
        .purchase_context("till:t1:k1", "chk1", Metric::Spend, 0, NOW)
        .await
        .unwrap();
    assert!(
        retried.prior.is_some() && retried.book.is_none(),
        "a retry reads no book"
    );

    let record = s.purchase("till:t1:k1").await.unwrap().expect("purchase");
    assert_eq!(
        (
            record.member_id.as_str(),
            record.total_minor,
            record.earned,
            record.refunded_minor
        ),
        ("m1", 100, 10, 0)
    );
    assert_eq!(record.lots.len(), 1);
    assert!(s.purchase("till:t1:nope").await.unwrap().is_none());

    // The settle job finds the member when their next event is due, and not before.
    let due = s.members_due(NOW + 30 * DAY, None, 10).await.unwrap();
    assert_eq!(due, vec![("m1".to_string(), NOW + 30 * DAY)]);
    let after_m1 = Some((NOW + 30 * DAY, "m1".to_string()));
    assert!(
        s.members_due(NOW + 30 * DAY, after_m1, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.members_due(NOW, None, 10).await.unwrap().is_empty());

    // The card is behind the ledger until it is stored at the member's revision.
    assert!(s.card_behind("m1").await.unwrap());
    let source = s
        .card_source("m1", Metric::Spend, 0, 50)
        .await
        .unwrap()
        .expect("source");
    assert_eq!(source.book.revision, after.revision);
    assert_eq!(source.book.card_version, Some(1));
    // The card is handed what the open lots hold, not the lots.
    assert!(source.book.lots.is_empty());
    let balances: Vec<_> = after.lots.iter().map(Lot::balance).collect();
    assert_eq!(source.balances, balances);
    assert_eq!(source.unseen.len(), 1);
    assert_eq!(
        (source.unseen[0].points, source.unseen[0].rule.as_str()),
        (10, "base")
    );
    let stored = s
        .store_card(
            "m1",
            Some(doc(DocKind::Card, 1, &[4, 2], true)),
            source.book.revision,
        )
        .await
        .unwrap();
    assert_eq!(stored, Commit::Committed);
    assert!(!s.card_behind("m1").await.unwrap());
    let stale = s
        .store_card(
            "m1",
            Some(doc(DocKind::Card, 1, &[6], true)),
            after.revision,
        )
        .await
        .unwrap();
    assert_eq!(stale, Commit::Conflict, "the card moved on since version 1");
    let card = s.load_documents("m1", &[DocKind::Card]).await.unwrap();
    assert_eq!(card[0].bytes, vec![DocKind::Card.code(), 4, 2]);
    assert_eq!(book(&s, "m1").await.card_revision, after.revision);
    let shown = s.card_source("m1", Metric::Spend, 0, 50).await.unwrap();
    assert!(
        shown.expect("source").unseen.is_empty(),
        "the card shows the purchase already"
    );

    // A purchase made offline a day earlier and posted now is new to the card all the same: the
    // card reads what was posted since its revision, not what happened since its newest entry.
    let mut late = purchase("till:t1:k2", "m1", after.revision, 10, 3);
    late.at_ms = NOW - DAY;
    late.movements[0].tx_id = "tx-late".into();
    assert_eq!(s.post(late).await.unwrap(), PostOutcome::Posted);
    let source = s
        .card_source("m1", Metric::Spend, 0, 50)
        .await
        .unwrap()
        .expect("source");
    let unseen: Vec<_> = source.unseen.iter().map(|e| e.tx_id.as_str()).collect();
    assert_eq!(unseen, ["tx-late"]);
    assert!(
        s.card_source("nope", Metric::Spend, 0, 50)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!s.card_behind("nope").await.unwrap());
}

/// `points_by_day`: the ledger summed by UTC day and reason in a window, the same day's movements
/// of one reason merged, movements outside the window left out.
pub async fn the_ledger_is_summed_by_day_and_reason(s: Arc<dyn Storage>) {
    use loyalty_core::reasons::ReasonCode;
    member(&s, "m1", "6270000000000001").await;
    let day0 = NOW - NOW.rem_euclid(DAY);
    let moves = [
        ("k1", day0 + 5, 10, ReasonCode::Purchase),
        ("k2", day0 + 6, 7, ReasonCode::Purchase),
        ("k3", day0 + 7, 3, ReasonCode::PurchaseOffer),
        ("k4", day0 + DAY, 4, ReasonCode::Adjust),
        ("k5", day0 + 3 * DAY, 1, ReasonCode::Event),
    ];
    let mut balance = 0;
    for (key, at, points, code) in moves {
        let revision = book(&s, "m1").await.revision;
        let mut p = purchase(key, "m1", revision, balance, points);
        p.at_ms = at;
        p.movements[0].reason_code = code;
        assert_eq!(s.post(p).await.unwrap(), PostOutcome::Posted);
        balance += points;
    }
    let days = s.points_by_day(day0, day0 + 2 * DAY).await.unwrap();
    let seen: Vec<_> = days.iter().map(|d| (d.day_ms, d.code, d.points)).collect();
    assert_eq!(
        seen,
        [
            (day0, ReasonCode::Purchase, 17),
            (day0, ReasonCode::PurchaseOffer, 3),
            (day0 + DAY, ReasonCode::Adjust, 4)
        ]
    );
    assert!(
        s.points_by_day(day0 + 4 * DAY, day0 + 5 * DAY)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `member_totals`: members by tier with the blocked and the newly enrolled, buyers in two
/// windows and the repeat buyers of the longer, and the moves between tiers in the window (a
/// change of `members.tier` by any posting is one; keeping the tier is none).
pub async fn members_are_counted_by_tier_and_activity(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    let mut old = new_member("m3", "6270000000000003");
    old.created_at_ms = NOW - 100 * DAY;
    assert_eq!(s.create_member(old).await.unwrap(), MemberCreation::Created);
    assert!(s.set_blocked("m2", true).await.unwrap());
    for (key, member, at) in [
        ("k1", "m1", NOW - DAY),
        ("k2", "m1", NOW - 2 * DAY),
        ("k3", "m3", NOW - 60 * DAY),
        ("k4", "m2", NOW - 200 * DAY),
    ] {
        let revision = book(&s, member).await.revision;
        let balance = book(&s, member).await.state.balance;
        let mut p = purchase(key, member, revision, balance, 1);
        p.at_ms = at;
        if member == "m3" {
            // On base since they joined, and found below it by a review: moving down.
            p.state.tier.since_ms = NOW - 100 * DAY;
            p.state.tier.downgrade_at_ms = Some(NOW + 10 * DAY);
        }
        assert_eq!(s.post(p).await.unwrap(), PostOutcome::Posted);
    }
    let totals = s
        .member_totals(NOW - 30 * DAY, [NOW - 30 * DAY, NOW - 90 * DAY])
        .await
        .unwrap();
    let base = TierTotals {
        tier: "base".into(),
        members: 3,
        blocked: 1,
        enrolled: 2,
        entered: 2,
        downgrading: 1,
    };
    assert_eq!(totals.tiers, [base]);
    assert_eq!((totals.active, totals.repeat), ([1, 2], 1));
    assert!(
        totals.moves.is_empty(),
        "postings that keep the tier move nobody"
    );

    // m1 reaches gold a day ago; m3 went to silver 40 days ago, before the window.
    for (key, member, tier, since) in [
        ("k5", "m1", "gold", NOW - DAY),
        ("k6", "m3", "silver", NOW - 40 * DAY),
    ] {
        let b = book(&s, member).await;
        let mut p = purchase(key, member, b.revision, b.state.balance, 1);
        p.state.tier.tier = tier.into();
        p.state.tier.since_ms = since;
        assert_eq!(s.post(p).await.unwrap(), PostOutcome::Posted);
    }
    let totals = s
        .member_totals(NOW - 30 * DAY, [NOW - 30 * DAY, NOW - 90 * DAY])
        .await
        .unwrap();
    assert_eq!(totals.moves, [("base".into(), "gold".into(), 1)]);
    let all = s.member_totals(NOW - 50 * DAY, [NOW, NOW]).await.unwrap();
    assert_eq!(
        all.moves,
        [
            ("base".into(), "gold".into(), 1),
            ("base".into(), "silver".into(), 1)
        ]
    );
}

/// `record_refusal`, `watch_list`: members and tills ranked by one measure over the window's
/// postings, refused codes and offline exceptions (nothing before the window, no one with none of
/// the measure); members with many live devices; refusals by source and reason.
pub async fn the_watch_list_ranks_members_and_tills(s: Arc<dyn Storage>) {
    use loyalty_core::api::offline::{TillException, TillExceptionKind};
    use loyalty_core::api::watch_list::WatchOrder;
    for (id, card) in [
        ("m1", "6270000000000001"),
        ("m2", "6270000000000002"),
        ("m3", "6270000000000003"),
    ] {
        member(&s, id, card).await;
    }
    let post = async |key: &str, member: &str, till: &str, redeemed: i64, at: i64| {
        let b = book(&s, member).await;
        let mut p = purchase(key, member, b.revision, b.state.balance, 1);
        (p.till_id, p.redeemed, p.at_ms) = (till.into(), redeemed, at);
        assert_eq!(s.post(p).await.unwrap(), PostOutcome::Posted);
    };
    post("k1", "m1", "t1", 0, NOW).await;
    post("k2", "m1", "t1", 5, NOW).await;
    post("k3", "m1", "t2", 0, NOW).await;
    post("k4", "m2", "t2", 0, NOW).await;
    post("k5", "m3", "t1", 0, NOW - 30 * DAY).await;
    let b = book(&s, "m2").await;
    let mut r = refund("r1", "m2", "k4", 50, 0, b.revision);
    r.till_id = "t2".into();
    assert_eq!(s.post(r).await.unwrap(), PostOutcome::Posted);
    for (member, reason, at) in [
        (Some("m2"), "code_replayed", NOW),
        (Some("m2"), "code_replayed", NOW),
        (None, "bad_signature", NOW),
        (Some("m2"), "code_expired", NOW - 3 * DAY),
    ] {
        s.record_refusal("t1", member, reason, at).await.unwrap();
    }
    let exception = TillException {
        posting: "till:t3:x".into(),
        kind: TillExceptionKind::CodeReuse,
        member_id: Some("m3".into()),
        till_id: "t3".into(),
        points: 0,
        detail: "code_replayed".into(),
        at_ms: NOW,
    };
    s.record_till_exception(&exception).await.unwrap();
    enrolled(&s, "m3", "d1", 1).await;
    for n in 1..=2u8 {
        s.add_activation_code("m3", code("m3", n), NOW + DAY)
            .await
            .unwrap();
        let device = new_device(&format!("d{}", n + 1), n + 1);
        let redeemed = s.redeem_activation_code(code("m3", n), NOW, device).await;
        assert!(matches!(redeemed.unwrap(), Redemption::Redeemed(_)));
    }
    enrolled(&s, "m1", "d9", 9).await;
    let query = |by, limit| WatchQuery {
        from_ms: NOW - DAY,
        to_ms: NOW + 1,
        by,
        limit,
        min_devices: 3,
    };
    let list = s
        .watch_list(&query(WatchOrder::Purchases, 10))
        .await
        .unwrap();
    let figures = |a: &WatchActivity| {
        let f = (a.purchases, a.redemptions, a.points_redeemed, a.refunds);
        (a.id.clone(), f, a.refused_codes, a.offline_exceptions)
    };
    let members: Vec<_> = list.members.iter().map(figures).collect();
    assert_eq!(
        members,
        [
            ("m1".to_string(), (3, 1, 5, 0), 0, 0),
            ("m2".to_string(), (1, 0, 0, 1), 2, 0),
        ]
    );
    assert_eq!(
        list.members[0].card_number.as_deref(),
        Some("6270000000000001")
    );
    let tills: Vec<_> = list.tills.iter().map(figures).collect();
    assert_eq!(
        tills,
        [
            ("t1".to_string(), (2, 1, 5, 0), 3, 0),
            ("t2".to_string(), (2, 0, 0, 1), 0, 0),
        ]
    );
    assert_eq!(list.tills[0].card_number, None);
    assert_eq!(
        list.many_devices,
        [("m3".to_string(), "6270000000000003".to_string(), 3)]
    );
    let mut refusals = list.refusals.clone();
    refusals.sort();
    let r = |source: &str, reason: &str, n| (source.to_string(), reason.to_string(), n);
    assert_eq!(
        refusals,
        [
            r("offline", "code_reuse", 1),
            r("scan", "bad_signature", 1),
            r("scan", "code_replayed", 2),
        ]
    );
    let refused = s
        .watch_list(&query(WatchOrder::RefusedCodes, 10))
        .await
        .unwrap();
    let ids = |a: &[WatchActivity]| a.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&refused.members), ["m2"]);
    assert_eq!(ids(&refused.tills), ["t1"]);
    let redeemed = s
        .watch_list(&query(WatchOrder::Redeemed, 10))
        .await
        .unwrap();
    assert_eq!(ids(&redeemed.members), ["m1"]);
    let refunds = s.watch_list(&query(WatchOrder::Refunds, 10)).await.unwrap();
    assert_eq!(ids(&refunds.tills), ["t2"]);
    let top = s
        .watch_list(&query(WatchOrder::Purchases, 1))
        .await
        .unwrap();
    assert_eq!(
        (ids(&top.members), ids(&top.tills)),
        (vec!["m1".to_string()], vec!["t1".to_string()])
    );
}

/// `post`, `card_source`: a movement's structured reason — code, parameters (amounts with their
/// currency, the receipt, an offer) and when its points mature — reads back exactly as posted,
/// beside a movement with no parameters.
pub async fn a_structured_reason_round_trips(s: Arc<dyn Storage>) {
    use loyalty_core::reasons::{Money, ReasonCode, ReasonParams};
    member(&s, "m1", "6270000000000001").await;
    let revision = book(&s, "m1").await.revision;
    let mut p = purchase("till:t1:k1", "m1", revision, 0, 10);
    let offer = LedgerMovement {
        tx_id: "tx-offer".into(),
        points: 7,
        reason: "Purchase of 12.50 CHF with offer \u{201c}Caf\u{e9}\u{201d} (receipt r-1)".into(),
        rule: "offer:off_1".into(),
        reason_code: ReasonCode::PurchaseOffer,
        reason_params: ReasonParams {
            rule_id: Some("offer:off_1".into()),
            offer_id: Some("off_1".into()),
            title: Some("Caf\u{e9} \"double\"".into()),
            receipt: Some("r-1".into()),
            amount: Some(Money::new(1250, "CHF")),
            ..ReasonParams::default()
        },
        available_at_ms: Some(NOW + 14 * DAY),
    };
    let expired = LedgerMovement {
        tx_id: "tx-expiry".into(),
        points: 3,
        reason: "Points expired".into(),
        rule: "expiry".into(),
        reason_code: ReasonCode::Expiry,
        reason_params: ReasonParams::default(),
        available_at_ms: None,
    };
    p.movements = vec![offer.clone(), expired.clone()];
    assert_eq!(s.post(p).await.unwrap(), PostOutcome::Posted);
    let source = s
        .card_source("m1", Metric::Spend, 0, 10)
        .await
        .unwrap()
        .expect("source");
    let mut read: Vec<_> = source.unseen.clone();
    read.sort_by(|a, b| a.tx_id.cmp(&b.tx_id));
    let back = |m: &LedgerMovement| {
        read.iter()
            .find(|e| e.tx_id == m.tx_id)
            .map(|e| {
                (
                    e.points,
                    e.reason.clone(),
                    e.rule.clone(),
                    e.reason_code,
                    e.reason_params.clone(),
                    e.available_at_ms,
                )
            })
            .expect("the movement")
    };
    for m in [&offer, &expired] {
        assert_eq!(
            back(m),
            (
                m.points,
                m.reason.clone(),
                m.rule.clone(),
                m.reason_code,
                m.reason_params.clone(),
                m.available_at_ms
            )
        );
    }
}

/// Idempotency: the same posting key twice is one posting, whether the second is the same request
/// or another one; two postings under one key at the same time — one is posted.
pub async fn a_posting_key_posts_once(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let revision = book(&s, "m1").await.revision;
    let p = purchase("till:t1:k1", "m1", revision, 0, 10);
    assert_eq!(s.post(p).await.unwrap(), PostOutcome::Posted);
    let same = purchase("till:t1:k1", "m1", revision + 1, 10, 10);
    assert_eq!(s.post(same).await.unwrap(), PostOutcome::KeyTaken);
    let mut other = purchase("till:t1:k1", "m1", revision + 1, 10, 99);
    other.request_hash = [9; 32];
    assert_eq!(s.post(other).await.unwrap(), PostOutcome::KeyTaken);
    assert_eq!(
        book(&s, "m1").await.state.balance,
        10,
        "one posting's points"
    );
    let prior = s.prior_posting("till:t1:k1").await.unwrap().expect("prior");
    assert_eq!(
        prior.request_hash,
        loyalty_core::ids::sha256(b"till:t1:k1"),
        "the first request's, to tell a retry from a clash"
    );

    member(&s, "m2", "6270000000000002").await;
    let revision = book(&s, "m2").await.revision;
    let post = |s: Arc<dyn Storage>, points: i64| {
        tokio::spawn(async move {
            s.post(purchase("till:t1:k2", "m2", revision, 0, points))
                .await
        })
    };
    let (a, b) = tokio::join!(post(s.clone(), 5), post(s.clone(), 7));
    let outcomes = [a.unwrap().unwrap(), b.unwrap().unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == PostOutcome::Posted)
            .count(),
        1,
        "{outcomes:?}"
    );
    let balance = book(&s, "m2").await.state.balance;
    assert!(balance == 5 || balance == 7, "one of the two: {balance}");
}

/// An operator's posting keeps who made it; a till's names nobody. A debit that would take a
/// lot below zero is refused by the store itself and writes nothing of the posting.
pub async fn an_operators_posting_records_the_operator(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let revision = book(&s, "m1").await.revision;
    assert_eq!(
        s.post(purchase("till:t1:k1", "m1", revision, 0, 10))
            .await
            .unwrap(),
        PostOutcome::Posted
    );
    let mut credit = purchase("adjust:a1", "m1", revision + 1, 10, 5);
    credit.kind = PostingKind::Adjust;
    credit.till_id = "programme".into();
    credit.operator = Some("admin".into());
    credit.movements[0].rule = "adjust:goodwill".into();
    assert_eq!(s.post(credit).await.unwrap(), PostOutcome::Posted);
    let adjust = s.prior_posting("adjust:a1").await.unwrap().expect("posted");
    assert_eq!(adjust.kind, PostingKind::Adjust);
    assert_eq!(adjust.operator.as_deref(), Some("admin"));
    let till = s
        .prior_posting("till:t1:k1")
        .await
        .unwrap()
        .expect("posted");
    assert_eq!(till.operator, None);
    let source = s
        .card_source("m1", Metric::Spend, 0, 10)
        .await
        .unwrap()
        .expect("the member");
    assert_eq!(source.book.state.balance, 15);
    assert!(
        source
            .unseen
            .iter()
            .any(|e| e.rule == "adjust:goodwill" && e.points == 5),
        "{:?}",
        source.unseen
    );

    // A debit computed as if the lot held more than it does: the lot's CHECK refuses it.
    let mut debit = purchase("adjust:a2", "m1", revision + 2, 15, 0);
    debit.kind = PostingKind::Adjust;
    debit.operator = Some("admin".into());
    debit.movements[0].points = -20;
    debit.state.balance = 0;
    debit.lots = vec![Lot {
        remaining: -5,
        ..book(&s, "m1").await.lots[0].clone()
    }];
    assert!(s.post(debit).await.is_err(), "a lot below zero is refused");
    assert!(s.prior_posting("adjust:a2").await.unwrap().is_none());
    assert_eq!(book(&s, "m1").await.state.balance, 15);
}

/// The revision guard on points: a posting computed from a revision no longer stored is a
/// conflict and writes nothing.
pub async fn a_posting_from_a_stale_revision_is_a_conflict(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let revision = book(&s, "m1").await.revision;
    assert!(s.set_blocked("m1", true).await.unwrap());
    let stale = s
        .post(purchase("till:t1:k1", "m1", revision, 0, 10))
        .await
        .unwrap();
    assert_eq!(stale, PostOutcome::Conflict);
    assert!(
        s.prior_posting("till:t1:k1").await.unwrap().is_none(),
        "no key kept"
    );
    assert_eq!(book(&s, "m1").await.state.balance, 0);
}

/// Group commit: postings sent together may be written together, but one that fails (a stale
/// revision, a key taken) fails alone and the others are posted.
pub async fn a_bad_posting_among_many_fails_alone(s: Arc<dyn Storage>) {
    const MEMBERS: usize = 12;
    for i in 0..MEMBERS {
        member(&s, &format!("m{i}"), &format!("62700000000001{i:02}")).await;
    }
    assert_eq!(
        s.post(purchase("till:t1:taken", "m0", 0, 0, 1))
            .await
            .unwrap(),
        PostOutcome::Posted
    );
    let mut postings = Vec::new();
    for i in 0..MEMBERS {
        let member = format!("m{i}");
        let book = book(&s, &member).await;
        let (revision, balance) = (book.revision, book.state.balance);
        postings.push(match i {
            // The key a posting already has.
            3 => purchase("till:t1:taken", &member, revision, balance, 5),
            // Computed from a revision that is not the member's.
            7 => purchase(&format!("till:t1:k{i}"), &member, revision + 5, balance, 5),
            _ => purchase(&format!("till:t1:k{i}"), &member, revision, balance, 5),
        });
    }
    // All at once, so the writer takes several in one group.
    let mut jobs = tokio::task::JoinSet::new();
    for (i, posting) in postings.into_iter().enumerate() {
        let s = s.clone();
        jobs.spawn(async move { (i, s.post(posting).await.unwrap()) });
    }
    let mut outcomes = jobs.join_all().await;
    outcomes.sort_by_key(|(i, _)| *i);
    for (i, outcome) in outcomes {
        let expected = match i {
            3 => PostOutcome::KeyTaken,
            7 => PostOutcome::Conflict,
            _ => PostOutcome::Posted,
        };
        assert_eq!(outcome, expected, "posting {i}");
        let balance = book(&s, &format!("m{i}")).await.state.balance;
        let expected = match i {
            0 => 6,
            3 | 7 => 0,
            _ => 5,
        };
        assert_eq!(balance, expected, "member m{i}");
    }
}

/// `refund_book`: refunds of one purchase sent at the same time, each retrying on a conflict from
/// a fresh read, never refund more than the purchase; the refund that would is refused as such.
pub async fn concurrent_refunds_never_exceed_the_purchase(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let revision = book(&s, "m1").await.revision;
    let bought = s
        .post(purchase("till:t1:p", "m1", revision, 0, 10))
        .await
        .unwrap();
    assert_eq!(bought, PostOutcome::Posted);

    // A refund computed from a refunded total no longer stored is a conflict.
    let (book_now, record) = s
        .refund_book("m1", "till:t1:p", Metric::Spend, 0)
        .await
        .unwrap()
        .expect("book");
    let record = record.expect("the purchase");
    assert_eq!((record.total_minor, record.refunded_minor), (100, 0));
    let wrong = refund("till:t1:r0", "m1", "till:t1:p", 40, 30, book_now.revision);
    assert_eq!(s.post(wrong).await.unwrap(), PostOutcome::Conflict);
    assert!(
        s.refund_book("nope", "till:t1:p", Metric::Spend, 0)
            .await
            .unwrap()
            .is_none()
    );

    let mut jobs = tokio::task::JoinSet::new();
    for r in 0..3 {
        let s = s.clone();
        jobs.spawn(async move {
            let key = format!("till:t1:r{}", r + 1);
            for _ in 0..50 {
                let (book, record) = s
                    .refund_book("m1", "till:t1:p", Metric::Spend, 0)
                    .await
                    .unwrap()
                    .expect("book");
                let before = record.expect("purchase").refunded_minor;
                let posting = refund(&key, "m1", "till:t1:p", 40, before, book.revision);
                match s.post(posting).await.unwrap() {
                    PostOutcome::Conflict => continue,
                    done => return done,
                }
            }
            panic!("refund {key} kept conflicting");
        });
    }
    let outcomes = jobs.join_all().await;
    let refunded = outcomes
        .iter()
        .filter(|o| **o == PostOutcome::Posted)
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| **o == PostOutcome::RefundExceedsPurchase)
        .count();
    assert_eq!((refunded, refused), (2, 1), "{outcomes:?}");
    let record = s.purchase("till:t1:p").await.unwrap().expect("purchase");
    assert_eq!(
        record.refunded_minor, 80,
        "never more than the purchase's 100"
    );
}

/// `birthdays`: members whose `birthday` preference (from the member document's mirror) falls on
/// a day.
pub async fn birthdays_come_from_the_member_document(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    let committed = s
        .commit("m1", None, Vec::new(), Vec::new(), Some(member_state()))
        .await
        .unwrap();
    assert_eq!(committed, Commit::Committed);
    assert_eq!(s.birthdays(5, 17).await.unwrap(), vec!["m1".to_string()]);
    assert!(s.birthdays(5, 18).await.unwrap().is_empty());
}

/// `programme`, `set_programme`: none until an operator sets one; then what they set.
pub async fn the_programme_configuration_is_kept(s: Arc<dyn Storage>) {
    assert!(s.programme().await.unwrap().is_none());
    let mut programme = Programme::default();
    programme.earning.default_rate = 7;
    s.set_programme(&programme, NOW).await.unwrap();
    assert_eq!(s.programme().await.unwrap(), Some(programme.clone()));
    programme.earning.default_rate = 3;
    s.set_programme(&programme, NOW + 1).await.unwrap();
    assert_eq!(s.programme().await.unwrap(), Some(programme));
}

// ---------------------------------------------------------------------------------------------
// Offers and segments.

/// `list_offers`, `offer_record`, `end_offer`: offers paged by id and filtered by status, each
/// with its reach, activations and uses; an end or a withdrawal is a new version that members'
/// rows owe their documents (a withdrawn one to be taken out), happens once, and the till stops
/// applying the offer at once.
pub async fn offers_are_listed_with_figures_and_ended_or_withdrawn(s: Arc<dyn Storage>) {
    use loyalty_core::api::offer_admin::{OfferEnd, OfferStatus};
    use loyalty_core::member::Activation;
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    let to = |ids: &[&str]| OfferTarget::Members {
        member_ids: ids.iter().map(|m| m.to_string()).collect(),
    };
    let mut upcoming = offer("o3", 0);
    upcoming.valid_from_ms = NOW + DAY;
    upcoming.valid_until_ms = NOW + 2 * DAY;
    for (o, target) in [
        (offer("o1", 0), to(&["m1", "m2"])),
        (offer("o2", 0), to(&["m1"])),
        (upcoming, to(&["m2"])),
    ] {
        let published = s.publish_offer(&o, &target, NOW - DAY).await.unwrap();
        assert!(
            matches!(published, Publication::Published(_)),
            "{published:?}"
        );
    }
    let mut state = MemberState::default();
    state.activations.insert(
        "o1".into(),
        Activation {
            at_ms: NOW,
            device: "phone".into(),
        },
    );
    let committed = s
        .commit("m1", None, Vec::new(), Vec::new(), Some(state))
        .await
        .unwrap();
    assert_eq!(committed, Commit::Committed);
    for key in ["k1", "k2"] {
        let revision = book(&s, "m1").await.revision;
        let balance = book(&s, "m1").await.state.balance;
        let mut used = purchase(key, "m1", revision, balance, 5);
        used.offer_uses = vec!["o1".into()];
        assert_eq!(s.post(used).await.unwrap(), PostOutcome::Posted);
    }
    for m in ["m1", "m2"] {
        let pending = s.pending_offers(m, NOW).await.unwrap();
        s.mark_offers_projected(m, &pending).await.unwrap();
    }

    let filter = |status: Option<OfferStatus>, after: Option<&str>, limit: u32| OfferFilter {
        status,
        now_ms: NOW,
        after: after.map(str::to_string),
        limit,
    };
    let ids = |list: &[loyalty_core::api::offer_admin::OfferRecord]| {
        list.iter().map(|r| r.offer.id.clone()).collect::<Vec<_>>()
    };
    let all = s.list_offers(&filter(None, None, 10)).await.unwrap();
    assert_eq!(ids(&all), ["o1", "o2", "o3"]);
    let f = all[0].figures;
    assert_eq!((f.reach, f.activated, f.used_by, f.uses), (2, 1, 1, 2));
    let f = all[1].figures;
    assert_eq!((f.reach, f.activated, f.used_by, f.uses), (1, 0, 0, 0));
    assert_eq!(
        (all[0].target_kind.as_str(), all[0].version, all[0].status),
        ("members", 1, OfferStatus::Active)
    );
    assert_eq!(all[2].status, OfferStatus::Upcoming);
    let active = s
        .list_offers(&filter(Some(OfferStatus::Active), None, 10))
        .await
        .unwrap();
    assert_eq!(ids(&active), ["o1", "o2"]);
    let upcoming = s
        .list_offers(&filter(Some(OfferStatus::Upcoming), None, 10))
        .await
        .unwrap();
    assert_eq!(ids(&upcoming), ["o3"]);
    let page = s.list_offers(&filter(None, Some("o1"), 1)).await.unwrap();
    assert_eq!(ids(&page), ["o2"]);
    assert_eq!(
        s.offer_record("o1", NOW).await.unwrap().as_ref(),
        Some(&all[0])
    );
    assert_eq!(s.offer_record("nope", NOW).await.unwrap(), None);

    // Uptake by segment: m1 clipped and used o1 twice, m2 was only given it; o2 went to m1 alone.
    let buyers = by_frequency("buyers", "Buyers", 1, 5);
    let everyone = Segment {
        id: "all".into(),
        name: "All".into(),
        rules: SegmentRules::default(),
    };
    for segment in [&buyers, &everyone] {
        let created = s.create_segment(segment, NOW).await.unwrap();
        assert_eq!(created, SegmentCreation::Created);
    }
    s.recompute_segments(NOW, DEFAULT_RFM_WINDOW_MS, Box::new(|_| {}))
        .await
        .unwrap();
    let figures = |u: &[loyalty_core::api::offer_admin::SegmentUptake]| {
        u.iter()
            .map(|u| {
                (
                    u.segment_id.clone(),
                    u.members,
                    u.reached,
                    u.activated,
                    u.used_by,
                    u.uses,
                )
            })
            .collect::<Vec<_>>()
    };
    let row = |id: &str, members, reached, activated, used_by, uses| {
        (id.to_string(), members, reached, activated, used_by, uses)
    };
    let o1 = s.offer_uptake("o1").await.unwrap().expect("o1");
    assert_eq!(
        figures(&o1),
        [row("all", 2, 2, 1, 1, 2), row("buyers", 1, 1, 1, 1, 2)],
        "m1 bought, clipped and used it"
    );
    let o2 = s.offer_uptake("o2").await.unwrap().expect("o2");
    assert_eq!(
        figures(&o2),
        [row("all", 2, 1, 0, 0, 0), row("buyers", 1, 1, 0, 0, 0)]
    );
    assert_eq!(s.offer_uptake("nope").await.unwrap(), None);

    // Ended: a new version the members' rows owe, no longer at the till; once.
    let ended = s
        .end_offer("o2", OfferEnd::End, NOW)
        .await
        .unwrap()
        .expect("o2");
    assert_eq!(
        (
            ended.status,
            ended.version,
            ended.offer.valid_until_ms,
            ended.withdrawn_at_ms
        ),
        (OfferStatus::Ended, 2, NOW, None)
    );
    let pending = s.pending_offers("m1", NOW).await.unwrap();
    let owed: Vec<_> = pending
        .iter()
        .map(|p| (p.offer.id.as_str(), p.version, p.withdrawn))
        .collect();
    assert_eq!(owed, [("o2", 2, false)]);
    s.mark_offers_projected("m1", &pending).await.unwrap();
    let till: Vec<_> = s.till_offers("m1", NOW).await.unwrap();
    assert_eq!(
        till.iter().map(|t| t.offer.id.as_str()).collect::<Vec<_>>(),
        ["o1"]
    );
    let again = s.end_offer("o2", OfferEnd::End, NOW + 5).await.unwrap();
    assert_eq!(again.map(|r| r.version), Some(2), "already ended");

    // Withdrawn: owed to every member as a removal, even long after its end; once.
    let withdrawn = s
        .end_offer("o1", OfferEnd::Withdraw, NOW)
        .await
        .unwrap()
        .expect("o1");
    assert_eq!(
        (
            withdrawn.status,
            withdrawn.version,
            withdrawn.withdrawn_at_ms
        ),
        (OfferStatus::Withdrawn, 2, Some(NOW))
    );
    let later = NOW + 60 * DAY;
    for m in ["m1", "m2"] {
        let pending = s.pending_offers(m, later).await.unwrap();
        let owed: Vec<_> = pending
            .iter()
            .map(|p| (p.offer.id.as_str(), p.withdrawn))
            .collect();
        assert_eq!(owed, [("o1", true)], "{m}");
    }
    assert!(s.till_offers("m1", NOW).await.unwrap().is_empty());
    let again = s
        .end_offer("o1", OfferEnd::Withdraw, NOW + 9)
        .await
        .unwrap();
    assert_eq!(
        again.and_then(|r| r.withdrawn_at_ms),
        Some(NOW),
        "withdrawn once"
    );
    for (status, expected) in [(OfferStatus::Withdrawn, "o1"), (OfferStatus::Ended, "o2")] {
        let listed = s
            .list_offers(&filter(Some(status), None, 10))
            .await
            .unwrap();
        assert_eq!(ids(&listed), [expected], "{status:?}");
    }
    assert_eq!(s.end_offer("nope", OfferEnd::End, NOW).await.unwrap(), None);

    // An upcoming offer ended early is ended, not upcoming.
    let early = s
        .end_offer("o3", OfferEnd::End, NOW)
        .await
        .unwrap()
        .expect("o3");
    assert_eq!(early.status, OfferStatus::Ended);
    let upcoming = s
        .list_offers(&filter(Some(OfferStatus::Upcoming), None, 10))
        .await
        .unwrap();
    assert!(upcoming.is_empty(), "{upcoming:?}");
}

/// `publish_offer`, `pending_offers`, `has_pending_offers`, `mark_offers_projected`,
/// `till_offers`, `fanout_seq`: an offer reaches its members' pending projections and the till;
/// refused targets store nothing; a use at the till counts up to the limit.
pub async fn offers_are_published_projected_and_used(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    let seq = s.fanout_seq().await.unwrap();
    let target = OfferTarget::Members {
        member_ids: vec!["m1".into()],
    };
    let published = s
        .publish_offer(&offer("o1", 1), &target, NOW)
        .await
        .unwrap();
    let Publication::Published(published) = published else {
        panic!("refused: {published:?}");
    };
    assert_eq!(
        (
            published.version,
            published.added_members,
            published.members
        ),
        (1, 1, 1)
    );
    assert_ne!(s.fanout_seq().await.unwrap(), seq, "the fan-out moved it");

    let unknown = s
        .publish_offer(
            &offer("o2", 0),
            &OfferTarget::Segment {
                segment_id: "nope".into(),
            },
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(unknown, Publication::UnknownSegment("nope".into()));
    let ghosts = s
        .publish_offer(
            &offer("o3", 0),
            &OfferTarget::Members {
                member_ids: vec!["m2".into(), "ghost".into()],
            },
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        ghosts,
        Publication::UnknownMembers {
            count: 1,
            first: "ghost".into()
        }
    );
    assert!(
        !s.has_pending_offers("m2", NOW).await.unwrap(),
        "nothing stored"
    );

    assert!(s.has_pending_offers("m1", NOW).await.unwrap());
    let pending = s.pending_offers("m1", NOW).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].offer.id.as_str(), pending[0].version),
        ("o1", 1)
    );
    s.mark_offers_projected("m1", &pending).await.unwrap();
    assert!(!s.has_pending_offers("m1", NOW).await.unwrap());
    assert!(s.pending_offers("m1", NOW).await.unwrap().is_empty());

    let till = s.till_offers("m1", NOW).await.unwrap();
    assert_eq!(till.len(), 1);
    assert_eq!(
        (till[0].offer.id.as_str(), till[0].offer.use_count),
        ("o1", 0)
    );
    assert!(
        s.till_offers("m1", NOW + 2 * DAY).await.unwrap().is_empty(),
        "expired"
    );
    let book = s
        .member_book("m1", Metric::Spend, 0, Some(NOW))
        .await
        .unwrap()
        .expect("book");
    assert_eq!(book.offers.len(), 1, "the book carries the till's offers");

    // A posting uses the offer: its count goes up and the projection is owed again; the limit
    // refuses a second use as a conflict.
    let mut used = purchase("till:t1:k1", "m1", book.revision, 0, 20);
    used.offer_uses = vec!["o1".into()];
    assert_eq!(s.post(used).await.unwrap(), PostOutcome::Posted);
    assert_eq!(
        s.till_offers("m1", NOW).await.unwrap()[0].offer.use_count,
        1
    );
    assert!(s.has_pending_offers("m1", NOW).await.unwrap());
    let revision = self::book(&s, "m1").await.revision;
    let mut again = purchase("till:t1:k2", "m1", revision, 20, 20);
    again.offer_uses = vec!["o1".into()];
    assert_eq!(s.post(again).await.unwrap(), PostOutcome::Conflict);
    assert_eq!(self::book(&s, "m1").await.state.balance, 20);
}

/// A segment of the members whose frequency score is within `min..=max`.
fn by_frequency(id: &str, name: &str, min: u8, max: u8) -> Segment {
    Segment {
        id: id.into(),
        name: name.into(),
        rules: SegmentRules {
            frequency: Some(loyalty_core::segments::ScoreRange { min, max }),
            ..SegmentRules::default()
        },
    }
}

/// `recompute_segments`, `segment_totals`: each recompute records every segment's size and who
/// joined and departed since the one before, newest first and as many as asked; the RFM scores
/// are counted per combination; a deleted segment's history goes with it.
pub async fn segment_runs_record_sizes_and_migration(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    let buy = async |member: &str, key: &str, at: i64| {
        let b = book(&s, member).await;
        let mut posting = purchase(key, member, b.revision, b.state.balance, 1);
        posting.at_ms = at;
        assert_eq!(s.post(posting).await.unwrap(), PostOutcome::Posted);
    };
    let buyers = by_frequency("buyers", "Buyers", 1, 5);
    assert_eq!(
        s.create_segment(&buyers, NOW).await.unwrap(),
        SegmentCreation::Created
    );
    buy("m1", "till:t1:a1", NOW).await;
    s.recompute_segments(NOW + 1, DAY, Box::new(|_| {}))
        .await
        .unwrap();
    buy("m2", "till:t1:b1", NOW + 5 * DAY).await;
    let later = NOW + 5 * DAY + 1;
    s.recompute_segments(later, DAY, Box::new(|_| {}))
        .await
        .unwrap();
    let totals = s.segment_totals(10).await.unwrap();
    assert_eq!(
        totals.segments,
        [("buyers".to_string(), "Buyers".to_string(), 1, Some(later))]
    );
    let b =
        |at: i64, members, joined, departed| ("buyers".to_string(), at, members, joined, departed);
    assert_eq!(
        totals.runs,
        [b(later, 1, 1, 1), b(NOW + 1, 1, 1, 0)],
        "m1 left, m2 joined"
    );
    assert_eq!(
        totals.scores,
        [(1, 1, 1, 1)],
        "only m2 bought in the window"
    );
    assert_eq!(totals.members, 2);
    assert_eq!(s.segment_totals(1).await.unwrap().runs, [b(later, 1, 1, 1)]);
    assert_eq!(
        s.delete_segment("buyers", later).await.unwrap(),
        SegmentDeletion::Deleted
    );
    let gone = s.segment_totals(10).await.unwrap();
    assert!(gone.segments.is_empty() && gone.runs.is_empty());
}

/// `recompute_segments`, `segment_totals`: each recompute records how the RFM scores moved per
/// dimension, counting exactly the members scored at either run — a member who bought nothing
/// the second time goes to 0, a new buyer comes from 0, an unchanged score stays on the
/// diagonal — never the members unscored both times (0 → 0, for the report to derive), with the
/// recompute before it.
pub async fn rfm_moves_count_each_member_between_two_recomputes(s: Arc<dyn Storage>) {
    for (id, card) in [
        ("m1", "6270000000000001"),
        ("m2", "6270000000000002"),
        ("m3", "6270000000000003"),
        ("m4", "6270000000000004"),
    ] {
        member(&s, id, card).await;
    }
    let buy = async |member: &str, key: &str, at: i64| {
        let b = book(&s, member).await;
        let mut posting = purchase(key, member, b.revision, b.state.balance, 1);
        posting.at_ms = at;
        assert_eq!(s.post(posting).await.unwrap(), PostOutcome::Posted);
    };
    let recompute = async |now: i64| {
        s.recompute_segments(now, DAY, Box::new(|_| {}))
            .await
            .unwrap();
        s.segment_totals(1).await.unwrap().rfm_moves.unwrap()
    };
    // The same cells in every dimension: whoever buys later, more often, spends more here.
    let cells = |moves: &[(usize, usize, i64)]| {
        let mut m = [[0; 6]; 6];
        for &(from, to, n) in moves {
            m[from][to] = n;
        }
        [m; 3]
    };
    assert_eq!(s.segment_totals(1).await.unwrap().rfm_moves, None);

    // First run: m1 bought once, m2 twice and later: both come from 0.
    buy("m1", "till:t1:a1", NOW).await;
    buy("m2", "till:t1:b1", NOW + 10).await;
    buy("m2", "till:t1:b2", NOW + 20).await;
    let first = NOW + 30;
    let moves = recompute(first).await;
    assert_eq!(
        moves,
        RfmMoveTotals {
            computed_at: first,
            previous_at: None,
            moves: cells(&[(0, 1, 1), (0, 5, 1)]),
        }
    );

    // Five days on, one-day window: m1 bought nothing (1 → 0), m2 once (5 → 1), m3 twice and
    // later (0 → 5); m4 never bought, counted nowhere.
    let day5 = NOW + 5 * DAY;
    buy("m2", "till:t1:b3", day5).await;
    buy("m3", "till:t1:c1", day5 + 10).await;
    buy("m3", "till:t1:c2", day5 + 20).await;
    let second = day5 + 30;
    let moves = recompute(second).await;
    assert_eq!(
        moves,
        RfmMoveTotals {
            computed_at: second,
            previous_at: Some(first),
            moves: cells(&[(1, 0, 1), (5, 1, 1), (0, 5, 1)]),
        }
    );

    // Nothing bought since: every score stays where it was; a rerun at the same time replaces
    // its run rather than adding one.
    let third = second + 1;
    let same = cells(&[(1, 1, 1), (5, 5, 1)]);
    assert_eq!(recompute(third).await.moves, same);
    let again = recompute(third).await;
    assert_eq!((again.previous_at, again.moves), (Some(second), same));
}

/// A recompute follows the purchases since the last one: scores that changed are rewritten (the
/// most frequent buyer changes places), and members with no purchase left in the window lose
/// their scores — a segment built on the scores shows both.
pub async fn scores_follow_purchases_from_one_recompute_to_the_next(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    let buy = async |member: &str, key: &str| {
        let b = book(&s, member).await;
        let posting = purchase(key, member, b.revision, b.state.balance, 1);
        assert_eq!(s.post(posting).await.unwrap(), PostOutcome::Posted);
    };
    buy("m1", "till:t1:a1").await;
    buy("m2", "till:t1:b1").await;
    buy("m2", "till:t1:b2").await;
    let frequent = by_frequency("frequent", "Most frequent", 5, 5);
    assert_eq!(
        s.create_segment(&frequent, NOW).await.unwrap(),
        SegmentCreation::Created
    );
    let recompute = async |now: i64, window: i64| {
        s.recompute_segments(now, window, Box::new(|_| {}))
            .await
            .unwrap()
    };
    let in_frequent = async |offer_id: &str, at: i64| {
        let target = OfferTarget::Segment {
            segment_id: "frequent".into(),
        };
        let published = s.publish_offer(&offer(offer_id, 0), &target, at).await;
        assert!(matches!(published, Ok(Publication::Published(_))));
        let mut reached = Vec::new();
        for m in ["m1", "m2"] {
            if s.pending_offers(m, at)
                .await
                .unwrap()
                .iter()
                .any(|p| p.offer.id == offer_id)
            {
                reached.push(m);
            }
        }
        reached
    };

    let report = recompute(NOW + 1, DEFAULT_RFM_WINDOW_MS).await;
    assert_eq!(report.scored_members, 2);
    assert_eq!(in_frequent("o1", NOW + 1).await, vec!["m2"]);

    buy("m1", "till:t1:a2").await;
    buy("m1", "till:t1:a3").await;
    let report = recompute(NOW + 2, DEFAULT_RFM_WINDOW_MS).await;
    assert_eq!(report.scored_members, 2);
    assert_eq!(report.segments, vec![("frequent".to_string(), 1)]);
    assert_eq!(
        in_frequent("o2", NOW + 2).await,
        vec!["m1"],
        "m1's score rose and m2's fell"
    );

    // Ten days on, with a one-day window: nobody bought in it.
    let report = recompute(NOW + 10 * DAY, DAY).await;
    assert_eq!(report.scored_members, 0);
    assert_eq!(
        report.segments,
        vec![("frequent".to_string(), 0)],
        "the scores of members with nothing in the window are gone"
    );
}

/// `update_segment` and `delete_segment`: an edit replaces the rules and empties the membership
/// until the next recompute; a segment a running offer targets is not deleted, one whose offers
/// ended is, with its membership.
pub async fn segments_are_edited_and_deleted_unless_in_use(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let revision = book(&s, "m1").await.revision;
    let bought = s.post(purchase("till:t1:k1", "m1", revision, 0, 10));
    assert_eq!(bought.await.unwrap(), PostOutcome::Posted);
    let buyers = by_frequency("buyers", "Bought this year", 1, 5);
    assert_eq!(
        s.create_segment(&buyers, NOW).await.unwrap(),
        SegmentCreation::Created
    );
    let recompute = |at: i64| s.recompute_segments(at, DEFAULT_RFM_WINDOW_MS, Box::new(|_| {}));
    recompute(NOW + 1).await.unwrap();
    assert_eq!(s.segments().await.unwrap()[0].members, 1);

    let edited = by_frequency("buyers", "Bought twice", 2, 5);
    assert!(s.update_segment(&edited).await.unwrap());
    let view = &s.segments().await.unwrap()[0];
    assert_eq!(
        (&view.segment, view.computed_at_ms, view.members),
        (&edited, None, 0)
    );
    let ghost = by_frequency("ghost", "Nobody", 1, 5);
    assert!(!s.update_segment(&ghost).await.unwrap());
    recompute(NOW + 2).await.unwrap();
    assert_eq!(
        s.segments().await.unwrap()[0].members,
        0,
        "one purchase is not two"
    );

    let target = OfferTarget::Segment {
        segment_id: "buyers".into(),
    };
    let published = s
        .publish_offer(&offer("o1", 0), &target, NOW)
        .await
        .unwrap();
    assert!(
        matches!(published, Publication::Published(_)),
        "{published:?}"
    );
    assert_eq!(
        s.delete_segment("buyers", NOW).await.unwrap(),
        SegmentDeletion::InUse {
            offer_id: "o1".into()
        }
    );
    assert_eq!(s.segments().await.unwrap().len(), 1, "nothing deleted");
    let after_its_end = NOW + 2 * DAY;
    assert_eq!(
        s.delete_segment("buyers", after_its_end).await.unwrap(),
        SegmentDeletion::Deleted
    );
    assert!(s.segments().await.unwrap().is_empty());
    assert_eq!(
        s.delete_segment("buyers", after_its_end).await.unwrap(),
        SegmentDeletion::NotFound
    );
    // The id is free again, and the new segment starts empty.
    assert_eq!(
        s.create_segment(&buyers, after_its_end).await.unwrap(),
        SegmentCreation::Created
    );
    assert_eq!(s.segments().await.unwrap()[0].members, 0);
}

/// `create_segment`, `segments`, `recompute_segments`: a segment is empty until the batch job
/// computes it; then an offer published to it reaches its members.
pub async fn segments_are_recomputed_and_reach_offers(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    let revision = book(&s, "m1").await.revision;
    assert_eq!(
        s.post(purchase("till:t1:k1", "m1", revision, 0, 10))
            .await
            .unwrap(),
        PostOutcome::Posted
    );
    let buyers = by_frequency("buyers", "Bought this year", 1, 5);
    assert_eq!(
        s.create_segment(&buyers, NOW).await.unwrap(),
        SegmentCreation::Created
    );
    let renamed = Segment {
        name: "Another".into(),
        ..buyers.clone()
    };
    assert_eq!(
        s.create_segment(&renamed, NOW).await.unwrap(),
        SegmentCreation::Exists
    );
    let views = s.segments().await.unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(
        (&views[0].segment, views[0].computed_at_ms, views[0].members),
        (&buyers, None, 0)
    );

    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let report = s
        .recompute_segments(
            NOW + 1,
            DEFAULT_RFM_WINDOW_MS,
            Box::new(move |line| {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line.to_string())
            }),
        )
        .await
        .unwrap();
    assert_eq!(report.scored_members, 1);
    assert_eq!(report.segments, vec![("buyers".to_string(), 1)]);
    assert!(
        !lines.lock().unwrap_or_else(|p| p.into_inner()).is_empty(),
        "progress"
    );
    let views = s.segments().await.unwrap();
    assert_eq!(
        (views[0].computed_at_ms, views[0].members),
        (Some(NOW + 1), 1)
    );

    let published = s
        .publish_offer(
            &offer("o1", 0),
            &OfferTarget::Segment {
                segment_id: "buyers".into(),
            },
            NOW + 2,
        )
        .await
        .unwrap();
    let Publication::Published(published) = published else {
        panic!("refused: {published:?}");
    };
    assert_eq!((published.added_members, published.members), (1, 1));
    assert!(s.has_pending_offers("m1", NOW + 2).await.unwrap());
    assert!(!s.has_pending_offers("m2", NOW + 2).await.unwrap());

    // The message fan-out reads the same membership.
    let sent = s
        .send_message(send(
            "seg1",
            "service",
            "inapp",
            SendTarget::Segment("buyers".into()),
        ))
        .await
        .unwrap();
    assert!(
        matches!(sent, SendOutcome::Sent(ref sum) if sum.recipients == 1),
        "{sent:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Messages and requests.

/// `send_message`, `pending_inbox`, `has_pending_inbox`, `mark_inbox_projected`, `deliveries`: a
/// message is recorded once per id, reaches the inbox projection, and refused sends store nothing.
pub async fn messages_reach_the_inbox_once(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let to_m1 = || SendTarget::Members(vec!["m1".into()]);
    let sent = s
        .send_message(send("msg1", "service", "inapp", to_m1()))
        .await
        .unwrap();
    let SendOutcome::Sent(summary) = sent else {
        panic!("refused: {sent:?}");
    };
    assert_eq!((summary.recipients, summary.in_inbox), (1, 1));
    let retry = s
        .send_message(send("msg1", "service", "inapp", to_m1()))
        .await
        .unwrap();
    assert_eq!(
        retry,
        SendOutcome::Sent(summary),
        "a retry answers as before"
    );
    let mut clash = send("msg1", "service", "inapp", to_m1());
    clash.request_hash = [1; 32];
    assert_eq!(s.send_message(clash).await.unwrap(), SendOutcome::IdReused);
    let ghost = send(
        "msg2",
        "service",
        "inapp",
        SendTarget::Members(vec!["ghost".into()]),
    );
    assert_eq!(
        s.send_message(ghost).await.unwrap(),
        SendOutcome::UnknownMembers
    );
    let empty = send(
        "msg3",
        "service",
        "inapp",
        SendTarget::Segment("none".into()),
    );
    assert_eq!(
        s.send_message(empty).await.unwrap(),
        SendOutcome::EmptySegment
    );
    let all = DeliveryFilter {
        limit: 100,
        ..DeliveryFilter::default()
    };
    let deliveries = s.deliveries(all.clone()).await.unwrap();
    assert_eq!(deliveries.len(), 1, "the refused sends stored nothing");
    assert_eq!(
        (
            deliveries[0].message_id.as_str(),
            deliveries[0].member_id.as_str()
        ),
        ("msg1", "m1")
    );

    assert!(s.has_pending_inbox("m1").await.unwrap());
    let pending = s.pending_inbox("m1").await.unwrap();
    assert_eq!(pending.messages.len(), 1);
    let (message, version) = &pending.messages[0];
    assert_eq!(message.id, "msg1");
    s.mark_inbox_projected("m1", vec![(message.id.clone(), *version)], Vec::new())
        .await
        .unwrap();
    assert!(!s.has_pending_inbox("m1").await.unwrap());
    assert!(s.pending_inbox("m1").await.unwrap().is_empty());
}

/// `record_receipt`: a provider's receipt settles a handed-over delivery once (delivered, or
/// failed with its reason, the provider's reference kept unless it brings words of its own); a
/// repeat changes nothing; any other delivery is refused with its status; two different receipts
/// at once: one wins, the other learns the winner's status.
pub async fn a_providers_receipt_settles_a_handed_over_delivery(s: Arc<dyn Storage>) {
    let members = ["m1", "m2", "m3", "m4"];
    for (i, m) in members.iter().enumerate() {
        member(&s, m, &format!("627000000000000{}", i + 1)).await;
        let state = Some(member_state());
        let committed = s.commit(m, None, Vec::new(), Vec::new(), state).await;
        assert_eq!(committed.unwrap(), Commit::Committed);
    }
    let to = SendTarget::Members(members.iter().map(|m| m.to_string()).collect());
    let sent = s.send_message(send("sms1", "service", "sms", to)).await;
    assert!(matches!(sent.unwrap(), SendOutcome::Sent(ref sum) if sum.queued == 4));
    assert_eq!(s.claim_outbound(NOW, 60_000, 10).await.unwrap().len(), 4);
    for m in members {
        let (status, reason) = match m {
            "m2" => (FinalStatus::Failed, Some("bad_address".to_string())),
            _ => (FinalStatus::HandedOver, None),
        };
        let detail = Some(format!("gw-{m}"));
        let end = OutboundOutcome::Final {
            status,
            reason,
            detail,
        };
        s.finish_outbound("sms1", m, end, NOW + 1).await.unwrap();
    }
    let receipt = |status, reason: Option<&str>, detail: Option<&str>| Receipt {
        status,
        reason: reason.map(str::to_string),
        detail: detail.map(str::to_string),
    };
    let delivered = || receipt(ReceiptStatus::Delivered, None, None);
    let record = |m: &'static str, r: Receipt| {
        let s = s.clone();
        async move { s.record_receipt("sms1", m, r, NOW + 2).await.unwrap() }
    };
    let row = |m: &'static str| {
        let s = s.clone();
        async move {
            let filter = DeliveryFilter {
                message_id: Some("sms1".into()),
                member_id: Some(m.into()),
                limit: 1,
                ..Default::default()
            };
            let d = s.deliveries(filter).await.unwrap().remove(0);
            (d.status, d.reason, d.detail)
        }
    };

    assert_eq!(record("m1", delivered()).await, ReceiptOutcome::Recorded);
    let kept = ("delivered".to_string(), None, Some("gw-m1".to_string()));
    assert_eq!(row("m1").await, kept, "the gateway's reference is kept");
    assert_eq!(record("m1", delivered()).await, ReceiptOutcome::Unchanged);
    let late = receipt(ReceiptStatus::Failed, Some("bounced"), None);
    assert_eq!(
        record("m1", late).await,
        ReceiptOutcome::NotHandedOver(DeliveryStatus::Delivered)
    );
    assert_eq!(
        record("m2", delivered()).await,
        ReceiptOutcome::NotHandedOver(DeliveryStatus::Failed)
    );
    let bounce = receipt(
        ReceiptStatus::Failed,
        Some("bounced"),
        Some("550 5.1.1 no such user"),
    );
    assert_eq!(record("m3", bounce).await, ReceiptOutcome::Recorded);
    let failed = (
        "failed".to_string(),
        Some("bounced".to_string()),
        Some("550 5.1.1 no such user".to_string()),
    );
    assert_eq!(row("m3").await, failed);
    let unknown = s
        .record_receipt("nope", "m1", delivered(), NOW)
        .await
        .unwrap();
    assert_eq!(unknown, ReceiptOutcome::NotFound);

    let (a, b) = tokio::join!(
        tokio::spawn(record("m4", delivered())),
        tokio::spawn(record(
            "m4",
            receipt(ReceiptStatus::Failed, Some("expired"), None)
        )),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let winner = row("m4").await.0;
    let outcomes = [a, b];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == ReceiptOutcome::Recorded)
            .count(),
        1,
        "{outcomes:?}"
    );
    let lost = outcomes.iter().find(|o| **o != ReceiptOutcome::Recorded);
    assert_eq!(
        lost.copied(),
        DeliveryStatus::from_name(&winner).map(ReceiptOutcome::NotHandedOver),
        "the other receipt learns the winner's status"
    );
}

/// `claim_outbound`, `finish_outbound`, `deliveries`: an external delivery is claimed by one
/// worker for its lease, and its end is recorded.
pub async fn outbound_deliveries_are_claimed_and_finished(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let committed = s
        .commit("m1", None, Vec::new(), Vec::new(), Some(member_state()))
        .await
        .unwrap();
    assert_eq!(committed, Commit::Committed);
    let sent = s
        .send_message(send(
            "mail1",
            "marketing",
            "email",
            SendTarget::Members(vec!["m1".into()]),
        ))
        .await
        .unwrap();
    assert!(
        matches!(sent, SendOutcome::Sent(ref sum) if sum.queued == 1),
        "{sent:?}"
    );

    let (a, b) = (s.clone(), s.clone());
    let (a, b) = tokio::join!(
        tokio::spawn(async move { a.claim_outbound(NOW, 60_000, 10).await }),
        tokio::spawn(async move { b.claim_outbound(NOW, 60_000, 10).await }),
    );
    let mut jobs = a.unwrap().unwrap();
    jobs.extend(b.unwrap().unwrap());
    assert_eq!(jobs.len(), 1, "one worker has it");
    let job = &jobs[0];
    assert_eq!(
        (job.message_id.as_str(), job.member_id.as_str(), job.consent),
        ("mail1", "m1", true)
    );
    assert!(
        s.claim_outbound(NOW + 1, 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );

    s.finish_outbound(
        "mail1",
        "m1",
        OutboundOutcome::Retry {
            reason: "provider_down".into(),
            detail: Some("421 4.3.2 try again later".into()),
            at_ms: NOW + 10,
        },
        NOW + 1,
    )
    .await
    .unwrap();
    let waiting = s
        .deliveries(DeliveryFilter {
            message_id: Some("mail1".into()),
            status: Some(DeliveryStatus::Queued),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        waiting[0].detail.as_deref(),
        Some("421 4.3.2 try again later"),
        "the provider's words are kept while the delivery waits"
    );
    let again = s.claim_outbound(NOW + 10, 60_000, 10).await.unwrap();
    assert_eq!(again.len(), 1, "due again after the retry time");
    let long_reply = format!("250 2.0.0 Ok: queued as {}", "Q".repeat(1000));
    s.finish_outbound(
        "mail1",
        "m1",
        OutboundOutcome::Final {
            status: FinalStatus::HandedOver,
            reason: None,
            detail: Some(long_reply.clone()),
        },
        NOW + 11,
    )
    .await
    .unwrap();
    let delivered = s
        .deliveries(DeliveryFilter {
            message_id: Some("mail1".into()),
            member_id: Some("m1".into()),
            status: Some(DeliveryStatus::HandedOver),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].status, "handed_over");
    let kept = delivered[0].detail.clone().unwrap_or_default();
    assert_eq!(kept.chars().count(), crate::storage::MAX_DETAIL_CHARS);
    assert!(long_reply.starts_with(&kept), "{kept}");
    assert!(
        s.claim_outbound(NOW + DAY, 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `send_message`: each recipient's fate follows the policy (consent off the app, the daily
/// marketing limit; service messages pass both), and two marketing sends racing to one member
/// with one message left today put exactly one in the inbox. `delivery_counts` counts those fates
/// for one send and for a period's sends.
pub async fn each_recipient_gets_the_fate_the_policy_gives_it(s: Arc<dyn Storage>) {
    for (i, m) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        member(&s, m, &format!("627000000000001{i}")).await;
    }
    let mut refused = member_state();
    refused.consents.insert(
        "email".into(),
        Consent {
            granted: false,
            at_ms: NOW,
        },
    );
    for (m, state) in [("a", member_state()), ("c", refused), ("d", member_state())] {
        let committed = s.commit(m, None, Vec::new(), Vec::new(), Some(state));
        assert_eq!(committed.await.unwrap(), Commit::Committed);
    }
    let to = |ids: &[&str]| SendTarget::Members(ids.iter().map(|m| m.to_string()).collect());
    // d has had today's one marketing message already.
    let first = s.send_message(send("m0", "marketing", "inapp", to(&["d"])));
    assert!(matches!(first.await.unwrap(), SendOutcome::Sent(_)));
    let sent = s
        .send_message(send("m1", "marketing", "email", to(&["a", "b", "c", "d"])))
        .await
        .unwrap();
    let SendOutcome::Sent(sum) = sent else {
        panic!("not sent: {sent:?}")
    };
    assert_eq!(
        (sum.recipients, sum.in_inbox, sum.queued),
        (4, 3, 1),
        "{sum:?}"
    );
    assert_eq!(
        (sum.refused_no_consent, sum.refused_rate_limited),
        (2, 1),
        "{sum:?}"
    );
    let fate = |m: &'static str| {
        let s = s.clone();
        async move {
            let found = s
                .deliveries(DeliveryFilter {
                    message_id: Some("m1".into()),
                    member_id: Some(m.into()),
                    status: None,
                    limit: 1,
                })
                .await
                .unwrap();
            (found[0].status.clone(), found[0].reason.clone())
        }
    };
    assert_eq!(fate("a").await, ("queued".into(), None));
    for m in ["b", "c"] {
        assert_eq!(fate(m).await, ("refused".into(), Some("no_consent".into())));
    }
    assert_eq!(
        fate("d").await,
        ("refused".into(), Some("rate_limited".into()))
    );
    let service = s.send_message(send("s1", "service", "email", to(&["b", "d"])));
    assert!(matches!(service.await.unwrap(), SendOutcome::Sent(sum) if sum.queued == 2));

    let (x, y) = (s.clone(), s.clone());
    let (x, y) = tokio::join!(
        tokio::spawn(async move {
            x.send_message(send("r1", "marketing", "inapp", to(&["e"])))
                .await
        }),
        tokio::spawn(async move {
            y.send_message(send("r2", "marketing", "inapp", to(&["e"])))
                .await
        }),
    );
    let in_inbox: i64 = [x, y]
        .into_iter()
        .map(|r| match r.unwrap().unwrap() {
            SendOutcome::Sent(sum) => sum.in_inbox,
            other => panic!("not sent: {other:?}"),
        })
        .sum();
    assert_eq!(
        in_inbox, 1,
        "one marketing message a day, however the sends race"
    );

    // `delivery_counts`: one send's fates by channel, status and reason; a period's sends.
    let totals = s
        .delivery_counts(&DeliveryScope::Message("m1".into()))
        .await
        .unwrap();
    let mut counts = totals.counts.clone();
    counts.sort();
    let row = |status: &str, reason: Option<&str>, n: i64| {
        (
            "email".to_string(),
            status.to_string(),
            reason.map(str::to_string),
            n,
        )
    };
    assert_eq!(
        (totals.messages, counts),
        (
            1,
            vec![
                row("queued", None, 1),
                row("refused", Some("no_consent"), 2),
                row("refused", Some("rate_limited"), 1)
            ]
        )
    );
    let unknown = s
        .delivery_counts(&DeliveryScope::Message("nope".into()))
        .await
        .unwrap();
    assert_eq!(unknown, DeliveryTotals::default());
    let period = |from_ms, to_ms| DeliveryScope::Period { from_ms, to_ms };
    let all = s.delivery_counts(&period(NOW, NOW + 1)).await.unwrap();
    let recipients: i64 = all.counts.iter().map(|c| c.3).sum();
    assert_eq!(
        (all.messages, recipients),
        (5, 9),
        "m0 1, m1 4, s1 2, r1 1, r2 1"
    );
    let later = s
        .delivery_counts(&period(NOW + 1, NOW + DAY))
        .await
        .unwrap();
    assert_eq!(later, DeliveryTotals::default());
}

/// `mark_inbox_projected`: a projection that read a delivery before the outbound worker finished
/// it marks only what it read; the finished state stays pending for the inbox.
pub async fn a_projection_of_an_older_version_leaves_the_newer_one_pending(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let committed = s.commit("m1", None, Vec::new(), Vec::new(), Some(member_state()));
    assert_eq!(committed.await.unwrap(), Commit::Committed);
    let to_m1 = SendTarget::Members(vec!["m1".into()]);
    let sent = s.send_message(send("mail1", "marketing", "email", to_m1));
    assert!(matches!(sent.await.unwrap(), SendOutcome::Sent(_)));
    let (message, version) = s.pending_inbox("m1").await.unwrap().messages[0].clone();
    assert_eq!(message.delivery.unwrap().status, "queued");
    // The worker finishes between the projection's read and its mark.
    assert_eq!(s.claim_outbound(NOW, 1000, 10).await.unwrap().len(), 1);
    let outcome = OutboundOutcome::Final {
        status: FinalStatus::Logged,
        reason: None,
        detail: None,
    };
    s.finish_outbound("mail1", "m1", outcome, NOW + 1)
        .await
        .unwrap();
    let stale = vec![("mail1".to_string(), version)];
    s.mark_inbox_projected("m1", stale, Vec::new())
        .await
        .unwrap();
    assert!(s.has_pending_inbox("m1").await.unwrap());
    let (message, version) = s.pending_inbox("m1").await.unwrap().messages[0].clone();
    assert_eq!(message.delivery.unwrap().status, "logged");
    let current = vec![("mail1".to_string(), version)];
    s.mark_inbox_projected("m1", current, Vec::new())
        .await
        .unwrap();
    assert!(!s.has_pending_inbox("m1").await.unwrap());
}

/// `requests`, `answer_request`: a member's request is answered and closed; a closed request, an
/// unknown one or a reply id reused for another text change nothing.
pub async fn requests_are_answered_and_closed(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    let committed = s
        .commit("m1", None, Vec::new(), Vec::new(), Some(member_state()))
        .await
        .unwrap();
    assert_eq!(committed, Commit::Committed);
    let open = s.requests(None, None, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].request_id.as_str(), open[0].status.as_str()),
        ("q1", "open")
    );

    let reply = |id: &str, body: &str| Reply {
        id: id.into(),
        author: "Customer care".into(),
        body: body.into(),
        at_ms: NOW,
    };
    let answer = |reply: Option<Reply>, status| {
        let s = s.clone();
        async move {
            s.answer_request("m1", "q1", reply, status, NOW)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        answer(Some(reply("rep1", "Here.")), RequestStatus::Answered).await,
        Answer::Answered
    );
    assert_eq!(
        answer(Some(reply("rep1", "Here.")), RequestStatus::Answered).await,
        Answer::Answered,
        "a retry"
    );
    assert_eq!(
        answer(Some(reply("rep1", "Elsewhere.")), RequestStatus::Answered).await,
        Answer::ReplyIdReused
    );
    let unknown = s
        .answer_request("m1", "nope", None, RequestStatus::Closed, NOW)
        .await
        .unwrap();
    assert_eq!(unknown, Answer::UnknownRequest);
    let answered = s
        .requests(Some(RequestStatus::Answered), Some("m1".into()), 10)
        .await
        .unwrap();
    assert_eq!(answered.len(), 1);
    assert_eq!(
        answered[0].entries.len(),
        1,
        "one reply, the reused id's text not stored"
    );
    assert!(
        s.has_pending_inbox("m1").await.unwrap(),
        "the thread is owed to the inbox"
    );

    assert_eq!(answer(None, RequestStatus::Closed).await, Answer::Answered);
    assert_eq!(
        answer(Some(reply("rep2", "More.")), RequestStatus::Answered).await,
        Answer::Closed
    );
    assert_eq!(
        answer(None, RequestStatus::Closed).await,
        Answer::Answered,
        "again"
    );
    let closed = s
        .requests(Some(RequestStatus::Closed), None, 10)
        .await
        .unwrap();
    assert_eq!((closed.len(), closed[0].entries.len()), (1, 1));
}

/// A summary made up for the suite.
fn summary(n: u8) -> DocSummary {
    DocSummary {
        digest: [n; 8],
        ops: u64::from(n) * 10,
        changes: u64::from(n),
    }
}

/// The stored summary of one of a member's documents, as the sync check reads it (with the
/// member's device "d1", which must agree).
async fn header(s: &Arc<dyn Storage>, member: &str, kind: DocKind) -> DocHeader {
    let check = checked(s, member).await;
    check
        .documents
        .into_iter()
        .find(|d| d.kind == kind)
        .expect("the member's document")
}

/// A summary is written with the bytes it describes, a write without one clears it, and
/// `remember_summaries` fills in only unknown summaries of documents still at that version.
pub async fn document_summaries_follow_their_bytes(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    enrolled(&s, "m1", "d1", 1).await;
    let check = checked(&s, "m1").await;
    assert_eq!(check.documents.len(), 4, "{check:?}");
    assert!(
        check
            .documents
            .iter()
            .all(|d| d.summary.is_none() && d.version == 1)
    );
    assert!(!check.card_behind && !check.offers_pending && !check.inbox_pending);
    assert_eq!(
        s.sync_check("ghost", NOW).await.unwrap(),
        SyncCheck::default()
    );

    // Remembered at the stored version; a stale version or a known summary is left alone.
    s.remember_summaries("m1", vec![(DocKind::Inbox, 7, summary(9))])
        .await
        .unwrap();
    assert_eq!(header(&s, "m1", DocKind::Inbox).await.summary, None);
    s.remember_summaries("m1", vec![(DocKind::Inbox, 1, summary(1))])
        .await
        .unwrap();
    s.remember_summaries("m1", vec![(DocKind::Inbox, 1, summary(2))])
        .await
        .unwrap();
    let inbox = header(&s, "m1", DocKind::Inbox).await;
    assert_eq!((inbox.version, inbox.summary), (1, Some(summary(1))));

    // Written with the bytes, replaced or appended; cleared by a write that gives none.
    let with = |version, n, append| DocWrite {
        summary: Some(summary(n)),
        ..doc(DocKind::Inbox, version, &[n], append)
    };
    let commit = |w: DocWrite| s.commit("m1", None, vec![w], Vec::new(), None);
    assert_eq!(commit(with(1, 3, false)).await.unwrap(), Commit::Committed);
    assert_eq!(
        header(&s, "m1", DocKind::Inbox).await.summary,
        Some(summary(3))
    );
    assert_eq!(commit(with(2, 4, true)).await.unwrap(), Commit::Committed);
    assert_eq!(
        header(&s, "m1", DocKind::Inbox).await.summary,
        Some(summary(4))
    );
    assert_eq!(commit(with(2, 5, false)).await.unwrap(), Commit::Conflict);
    assert_eq!(
        header(&s, "m1", DocKind::Inbox).await.summary,
        Some(summary(4))
    );
    assert_eq!(
        commit(doc(DocKind::Inbox, 3, &[6], false)).await.unwrap(),
        Commit::Committed
    );
    let inbox = header(&s, "m1", DocKind::Inbox).await;
    assert_eq!((inbox.version, inbox.summary), (4, None));
    // The card's own write path keeps summaries the same way.
    let card = DocWrite {
        summary: Some(summary(7)),
        ..doc(DocKind::Card, 1, &[7], true)
    };
    assert_eq!(
        s.store_card("m1", Some(card), 0).await.unwrap(),
        Commit::Committed
    );
    assert_eq!(
        header(&s, "m1", DocKind::Card).await.summary,
        Some(summary(7))
    );
    let stored = s.load_documents("m1", &[DocKind::Card]).await.unwrap();
    assert_eq!(stored[0].summary, Some(summary(7)));
}

/// A sync stores the card's catch-up with the device's sync state in one commit: the card's write
/// carries the revision it shows, and the member's card revision moves with the document, never
/// back; a write at a stale version stores none of it.
pub async fn a_sync_commits_the_cards_catch_up_with_its_revision(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    enrolled(&s, "m1", "d1", 1).await;
    for key in ["till:t1:k1", "till:t1:k2"] {
        let revision = book(&s, "m1").await.revision;
        let posted = s.post(purchase(key, "m1", revision, 0, 10)).await.unwrap();
        assert_eq!(posted, PostOutcome::Posted);
    }
    let newest = book(&s, "m1").await.revision;
    assert!(checked(&s, "m1").await.card_behind);
    let catch_up = |version, bytes: &[u8], revision| DocWrite {
        shows_revision: Some(revision),
        ..doc(DocKind::Card, version, bytes, true)
    };
    let state = vec![(DocKind::Card, vec![9, 9])];

    let stale = s
        .commit(
            "m1",
            Some("d1"),
            vec![catch_up(0, &[5], newest)],
            state.clone(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(stale, Commit::Conflict);
    assert!(checked(&s, "m1").await.card_behind, "nothing of it stored");
    assert!(
        s.load_peer_states("d1", &[DocKind::Card])
            .await
            .unwrap()
            .is_empty()
    );

    let committed = s
        .commit(
            "m1",
            Some("d1"),
            vec![catch_up(1, &[4, 2], newest)],
            state,
            None,
        )
        .await
        .unwrap();
    assert_eq!(committed, Commit::Committed);
    assert!(!checked(&s, "m1").await.card_behind);
    assert_eq!(book(&s, "m1").await.card_revision, newest);
    let card = s.load_documents("m1", &[DocKind::Card]).await.unwrap();
    assert_eq!(card[0].bytes, vec![DocKind::Card.code(), 4, 2]);
    assert_eq!(
        s.load_peer_states("d1", &[DocKind::Card]).await.unwrap(),
        [(DocKind::Card, vec![9, 9])]
    );

    // A slower catch-up of an older revision stores its document but leaves the revision.
    let older = s
        .commit(
            "m1",
            None,
            vec![catch_up(2, &[1], newest - 1)],
            Vec::new(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(older, Commit::Committed);
    assert_eq!(book(&s, "m1").await.card_revision, newest);
}

/// The sync check says which projections have work: postings the card does not show, offers
/// and messages not yet in their documents.
pub async fn the_sync_check_sees_pending_work(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    enrolled(&s, "m1", "d1", 1).await;
    let pending = |c: SyncCheck| (c.card_behind, c.offers_pending, c.inbox_pending);
    assert_eq!(pending(checked(&s, "m1").await), (false, false, false));

    let revision = book(&s, "m1").await.revision;
    let posted = s
        .post(purchase("till:t1:k1", "m1", revision, 0, 10))
        .await
        .unwrap();
    assert_eq!(posted, PostOutcome::Posted);
    assert_eq!(pending(checked(&s, "m1").await), (true, false, false));
    let revision = book(&s, "m1").await.revision;
    assert_eq!(
        s.store_card("m1", None, revision).await.unwrap(),
        Commit::Committed
    );
    assert_eq!(pending(checked(&s, "m1").await), (false, false, false));

    let target = OfferTarget::Members {
        member_ids: vec!["m1".into()],
    };
    let published = s
        .publish_offer(&offer("o1", 1), &target, NOW)
        .await
        .unwrap();
    assert!(
        matches!(published, Publication::Published(_)),
        "{published:?}"
    );
    assert_eq!(pending(checked(&s, "m1").await), (false, true, false));
    let offers = s.pending_offers("m1", NOW).await.unwrap();
    s.mark_offers_projected("m1", &offers).await.unwrap();
    assert_eq!(pending(checked(&s, "m1").await), (false, false, false));

    let to_m1 = SendTarget::Members(vec!["m1".into()]);
    let sent = s
        .send_message(send("msg1", "service", "inapp", to_m1))
        .await
        .unwrap();
    assert!(matches!(sent, SendOutcome::Sent(_)), "{sent:?}");
    assert_eq!(pending(checked(&s, "m1").await), (false, false, true));
}

/// The member's sync check, read alone and with the member's device "d1", which must agree.
async fn checked(s: &Arc<dyn Storage>, member: &str) -> SyncCheck {
    let alone = s.sync_check(member, NOW).await.unwrap();
    let (device, with_device) = s.device_and_sync_check("d1", member, NOW).await.unwrap();
    assert_eq!(device.map(|d| d.member_id).as_deref(), Some(member));
    assert_eq!(with_device, alone, "read with the device");
    alone
}

/// A device is read with its own member's sync check, in one statement: another member's path
/// gets the device and no check, an unknown device nothing, a revoked one its flag.
pub async fn a_device_is_read_with_its_members_sync_check(s: Arc<dyn Storage>) {
    member(&s, "m1", "6270000000000001").await;
    member(&s, "m2", "6270000000000002").await;
    enrolled(&s, "m1", "d1", 1).await;
    s.remember_summaries("m1", vec![(DocKind::Card, 1, summary(3))])
        .await
        .unwrap();
    let own = s.device_and_sync_check("d1", "m1", NOW).await.unwrap();
    let device = s.device("d1").await.unwrap();
    assert!(device.as_ref().is_some_and(|d| !d.revoked));
    assert_eq!(
        own,
        (device.clone(), s.sync_check("m1", NOW).await.unwrap())
    );
    assert_eq!(own.1.documents.len(), 4, "{own:?}");
    assert!(
        own.1
            .documents
            .iter()
            .any(|d| d.summary == Some(summary(3)))
    );

    assert_eq!(
        s.device_and_sync_check("d1", "m2", NOW).await.unwrap(),
        (device, SyncCheck::default()),
        "another member's documents are not read"
    );
    assert_eq!(
        s.device_and_sync_check("ghost", "m1", NOW).await.unwrap(),
        (None, SyncCheck::default())
    );

    assert!(s.revoke_device("d1", NOW).await.unwrap());
    let (revoked, _) = s.device_and_sync_check("d1", "m1", NOW).await.unwrap();
    assert!(revoked.is_some_and(|d| d.revoked));
}

/// A migrated database is ready: it answers, at exactly this binary's schema version.
pub async fn a_migrated_database_is_ready(s: Arc<dyn Storage>) {
    let check = s.schema_check().await.expect("the database answers");
    assert!(check.expected > 0, "{check:?}");
    assert!(
        check.current(),
        "a fresh database is at this binary's version: {check:?}"
    );
    if let Some(pool) = s.pool_status() {
        assert!(pool.available <= pool.size, "{pool:?}");
    }
}

/// `OperatorStore`'s console sessions: found by their id hash until they expire or are ended,
/// joined with their account (disabled too: the service refuses it; none for the bootstrap
/// admin); a new session sweeps the expired ones.
pub async fn console_sessions_live_until_they_expire_or_end(s: Arc<dyn Storage>) {
    use loyalty_core::api::OperatorAccount;
    let account = OperatorAccount {
        operator_id: "op_c".into(),
        name: "Console user".into(),
        role: "support".into(),
        created_at_ms: NOW,
        created_by: "admin".into(),
        disabled_at_ms: None,
    };
    s.create_operator(NewOperatorAccount {
        account: account.clone(),
        token_hash: [7u8; 32],
    })
    .await
    .unwrap();
    let session = |hash: u8, operator: &str, expires: i64| ConsoleSession {
        id_hash: [hash; 32],
        operator_id: operator.into(),
        csrf_token: format!("csrf-{hash}"),
        created_at_ms: NOW,
        expires_at_ms: expires,
    };
    s.create_console_session(session(1, "op_c", NOW + 100), NOW)
        .await
        .unwrap();
    s.create_console_session(session(2, "admin", NOW + 10), NOW)
        .await
        .unwrap();
    let found = s.console_session([1; 32], NOW + 50).await.unwrap();
    assert_eq!(
        found,
        Some(ResumedSession {
            session: session(1, "op_c", NOW + 100),
            account: Some(account.clone()),
        })
    );
    let bootstrap = s.console_session([2; 32], NOW + 9).await.unwrap().unwrap();
    assert_eq!(
        bootstrap.account, None,
        "the bootstrap admin has no account row"
    );
    assert_eq!(s.console_session([2; 32], NOW + 10).await.unwrap(), None);
    assert_eq!(s.console_session([3; 32], NOW).await.unwrap(), None);

    // A new session sweeps the expired one: it is gone even for a reader whose clock is behind.
    s.create_console_session(session(3, "op_c", NOW + 200), NOW + 20)
        .await
        .unwrap();
    assert_eq!(s.console_session([2; 32], NOW).await.unwrap(), None);

    assert!(s.disable_operator("op_c", NOW + 30).await.unwrap());
    let disabled = s.console_session([1; 32], NOW + 40).await.unwrap().unwrap();
    assert_eq!(
        disabled.account.and_then(|a| a.disabled_at_ms),
        Some(NOW + 30)
    );

    assert!(s.end_console_session([1; 32]).await.unwrap());
    assert!(!s.end_console_session([1; 32]).await.unwrap());
    assert_eq!(s.console_session([1; 32], NOW + 40).await.unwrap(), None);
    assert!(
        s.console_session([3; 32], NOW + 40)
            .await
            .unwrap()
            .is_some()
    );
}

/// Expands to one `#[tokio::test]` per function of [`crate::storage::conformance`], each run on
/// the storage `$make` yields as `(guard, Arc<dyn Storage>)` (see the module's guide).
#[macro_export]
macro_rules! storage_conformance {
    ($make:expr) => {
        $crate::storage_conformance!(@each $make;
            members_are_created_once_and_found,
            activation_codes_are_single_use,
            a_code_redeemed_twice_at_once_enrolls_one_device,
            a_structured_reason_round_trips,
            the_ledger_is_summed_by_day_and_reason,
            members_are_counted_by_tier_and_activity,
            the_watch_list_ranks_members_and_tills,
            documents_commit_under_their_version,
            appends_follow_the_document_until_a_whole_save,
            two_commits_at_one_version_one_conflicts,
            commits_of_several_documents_and_of_one_never_deadlock,
            devices_are_revoked_and_members_blocked,
            pin_tries_are_counted_and_lock,
            members_are_found_by_reference,
            a_members_history_pages_the_ledger_and_lists_devices,
            operator_accounts_and_the_audit_log,
            console_sessions_live_until_they_expire_or_end,
            plastic_cards_link_once_and_lost_ones_stay_lost,
            card_sessions_open_without_a_code_and_remember_their_pin,
            the_key_feed_numbers_every_change,
            offline_codes_are_claimed_once,
            till_exceptions_are_kept_once_newest_first,
            a_checkout_code_opens_one_session,
            a_posting_moves_points_and_the_card_catches_up,
            a_posting_key_posts_once,
            an_operators_posting_records_the_operator,
            a_posting_from_a_stale_revision_is_a_conflict,
            a_bad_posting_among_many_fails_alone,
            concurrent_refunds_never_exceed_the_purchase,
            birthdays_come_from_the_member_document,
            the_programme_configuration_is_kept,
            offers_are_published_projected_and_used,
            offers_are_listed_with_figures_and_ended_or_withdrawn,
            segments_are_recomputed_and_reach_offers,
            segments_are_edited_and_deleted_unless_in_use,
            scores_follow_purchases_from_one_recompute_to_the_next,
            segment_runs_record_sizes_and_migration,
            rfm_moves_count_each_member_between_two_recomputes,
            messages_reach_the_inbox_once,
            outbound_deliveries_are_claimed_and_finished,
            a_providers_receipt_settles_a_handed_over_delivery,
            each_recipient_gets_the_fate_the_policy_gives_it,
            a_projection_of_an_older_version_leaves_the_newer_one_pending,
            requests_are_answered_and_closed,
            document_summaries_follow_their_bytes,
            the_sync_check_sees_pending_work,
            a_sync_commits_the_cards_catch_up_with_its_revision,
            a_device_is_read_with_its_members_sync_check,
            a_migrated_database_is_ready,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (_guard, storage) = $make;
                $crate::storage::conformance::$name(storage).await;
            }
        )*
    };
}
