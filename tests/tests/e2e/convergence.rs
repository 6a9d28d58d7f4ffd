//! Property: any interleaving of offline edits and syncs on up to three devices of one member ends,
//! once everyone has synced, with every device and the server holding the same documents, and with
//! nothing any device did lost.

use std::collections::{BTreeMap, BTreeSet};

use loyalty_core::{Device, DocKind};
use loyalty_tests::*;
use proptest::prelude::*;

const OFFERS: [&str; 3] = ["o0", "o1", "o2"];
const MESSAGES: [&str; 3] = ["m0", "m1", "m2"];
const PREFS: [&str; 2] = ["store", "language"];

#[derive(Debug, Clone)]
enum Op {
    Activate(usize, usize),
    Read(usize, usize),
    Archive(usize, usize),
    Prefer(usize, usize, u8),
    Sync(usize),
    /// The server sends a new message while the devices are offline.
    ServerMessage(u8),
}

fn op(devices: usize) -> impl Strategy<Value = Op> {
    let d = 0..devices;
    prop_oneof![
        (d.clone(), 0..OFFERS.len()).prop_map(|(d, o)| Op::Activate(d, o)),
        (d.clone(), 0..MESSAGES.len()).prop_map(|(d, m)| Op::Read(d, m)),
        (d.clone(), 0..MESSAGES.len()).prop_map(|(d, m)| Op::Archive(d, m)),
        (d.clone(), 0..PREFS.len(), any::<u8>()).prop_map(|(d, k, v)| Op::Prefer(d, k, v)),
        d.prop_map(Op::Sync),
        any::<u8>().prop_map(Op::ServerMessage),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (1usize..=3).prop_flat_map(|n| (Just(n), proptest::collection::vec(op(n), 1..30)))
}

#[derive(Default)]
struct Expected {
    activations: BTreeSet<String>,
    read: BTreeSet<String>,
    archived: BTreeSet<String>,
    prefs: BTreeMap<String, BTreeSet<String>>,
}

async fn run(devices: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let op = server.operator();
    let member = op.create_member(None).await.unwrap();
    for id in OFFERS {
        op.post_offer(&member.member_id, &offer(id, id))
            .await
            .unwrap();
    }
    for id in MESSAGES {
        op.post_message(&member.member_id, &message(id, id))
            .await
            .unwrap();
    }
    let first = Device::open(dir.path().join("d0.db")).unwrap();
    first
        .enroll(&server.url, &member.activation_code, "d0")
        .await
        .unwrap();
    first.sync().await.unwrap();
    let mut phones = vec![first];
    for i in 1..devices {
        let path = dir.path().join(format!("d{i}.db"));
        phones.push(second_device(&server.url, &op, &member.member_id, &path).await);
    }

    let mut expected = Expected::default();
    for step in ops {
        match step {
            Op::Activate(d, o) => {
                phones[d].activate_offer(OFFERS[o]).unwrap();
                expected.activations.insert(OFFERS[o].into());
            }
            Op::Read(d, m) => {
                phones[d].mark_read(MESSAGES[m]).unwrap();
                expected.read.insert(MESSAGES[m].into());
            }
            Op::Archive(d, m) => {
                phones[d].archive(MESSAGES[m]).unwrap();
                expected.archived.insert(MESSAGES[m].into());
            }
            Op::Prefer(d, k, v) => {
                phones[d].set_preference(PREFS[k], &v.to_string()).unwrap();
                expected
                    .prefs
                    .entry(PREFS[k].into())
                    .or_default()
                    .insert(v.to_string());
            }
            Op::Sync(d) => {
                let report = phones[d].sync().await.unwrap();
                prop_assert!(report.rejected.is_empty(), "{:?}", report.rejected);
            }
            Op::ServerMessage(n) => {
                op.post_message(&member.member_id, &message(&format!("s{n}"), "news"))
                    .await
                    .unwrap();
            }
        }
    }
    // Everyone syncs, twice round, so each has seen what the others sent.
    for _ in 0..2 {
        for phone in &phones {
            phone.sync().await.unwrap();
        }
    }
    let view = op.member(&member.member_id).await.unwrap();
    for phone in &phones[1..] {
        for kind in DocKind::ALL {
            prop_assert_eq!(phone.heads(kind), phones[0].heads(kind), "{} differs", kind);
        }
    }
    let state = phones[0].member_state().unwrap();
    prop_assert_eq!(&state, &view.member);
    prop_assert_eq!(
        state.activations.keys().cloned().collect::<BTreeSet<_>>(),
        expected.activations
    );
    prop_assert_eq!(
        state.read.keys().cloned().collect::<BTreeSet<_>>(),
        expected.read
    );
    prop_assert_eq!(
        state.archived.keys().cloned().collect::<BTreeSet<_>>(),
        expected.archived
    );
    for (key, values) in &expected.prefs {
        // Concurrent writes to one preference settle on one of the written values.
        prop_assert!(values.contains(&state.preferences[key]));
    }
    prop_assert_eq!(phones[0].messages().unwrap().len(), view.messages.len());
    server.stop().await;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn devices_converge_whatever_the_interleaving((devices, ops) in scenario()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(devices, ops))?;
    }
}
