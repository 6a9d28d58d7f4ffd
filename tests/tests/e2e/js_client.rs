//! The protocol document is the contract: a client written in JavaScript from `docs/protocol.md`
//! alone (`scripts/js-client/client.mjs`, with the npm package `@automerge/automerge`) syncs with a
//! real server, and what the document promises holds for it: "nothing changed" is one round trip of
//! 96 body bytes, a local edit one round trip when the state is primed as §2 says (and two when any
//! required field is left out), the `requests` map made from the documented bytes is accepted and a
//! rival map refused with `rival_map`.
//!
//! Needs `node` and the package installed from `scripts/js-client/package-lock.json` into
//! `LOYALTY_JS_MODULES` (default `/opt/loyalty-toolchains/js/node_modules`); the test command
//! installs both and sets `LOYALTY_REQUIRE_JS=1`, which makes their absence a failure.

use std::path::PathBuf;
use std::process::Command;

use loyalty_tests::*;
use serde_json::Value;

/// Where @automerge/automerge is installed, with node present; `None` (the test skips) when one
/// is missing, unless `LOYALTY_REQUIRE_JS` is set.
fn modules() -> Option<PathBuf> {
    loyalty_tests::node::NodeToolchain {
        dir_var: "LOYALTY_JS_MODULES",
        default_dir: "/opt/loyalty-toolchains/js/node_modules",
        package_file: "@automerge/automerge/package.json",
        programs: &[],
        require_var: "LOYALTY_REQUIRE_JS",
    }
    .modules()
}

fn rounds(v: &Value) -> u64 {
    v["roundTrips"].as_u64().expect("roundTrips")
}

fn body_bytes(v: &Value) -> u64 {
    v["sent"].as_u64().expect("sent") + v["received"].as_u64().expect("received")
}

#[test]
fn a_client_written_from_the_protocol_document_gets_what_it_promises() {
    let Some(modules) = modules() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let op = server.operator();
        let member = op.create_member(None).await.unwrap();
        op.post_offer(&member.member_id, &offer("coffee", "Coffee"))
            .await
            .unwrap();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/js-client/client.mjs");
        let mut node = Command::new("node");
        node.arg(&script)
            .env("LOYALTY_SERVER", &server.url)
            .env("LOYALTY_ACTIVATION_CODE", &member.activation_code)
            .env("LOYALTY_OFFER_ID", "coffee")
            .env("LOYALTY_JS_MODULES", &modules);
        // Off the async workers: the server answers the client on them meanwhile.
        let out = tokio::task::spawn_blocking(move || node.output())
            .await
            .unwrap()
            .expect("run node");
        assert!(
            out.status.success(),
            "the JavaScript client failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");

        assert!(
            r["firstSync"]["rejected"].as_array().unwrap().is_empty(),
            "{r}"
        );
        assert_eq!(r["offerSeen"], true, "{r}");
        for key in ["nothingChanged", "nothingChangedAfterEdit"] {
            assert_eq!(
                (rounds(&r[key]), body_bytes(&r[key])),
                (1, 96),
                "{key}: {r}"
            );
        }
        assert_eq!(rounds(&r["localEdit"]), 1, "{r}");
        assert!(r["localEdit"]["rejected"].as_array().unwrap().is_empty());

        // Priming needs exactly `theirNeed` and `theirHave`; anything less is two round trips.
        let priming = &r["priming"];
        for (choice, expected) in [
            ("none", 2),
            ("theirHeads", 2),
            ("theirHave", 2),
            ("theirNeed", 2),
            ("theirHeadsAndHave", 2),
            ("theirHeadsAndNeed", 2),
            ("theirHaveAndNeed", 1),
            ("all", 1),
        ] {
            assert_eq!(priming[choice].as_u64(), Some(expected), "{choice}: {r}");
        }

        let rival = r["rival"]["rejected"].as_array().unwrap();
        assert_eq!(rival.len(), 1, "{r}");
        assert_eq!(
            (rival[0]["doc"].as_u64(), rival[0]["code"].as_str()),
            (Some(3), Some("rival_map"))
        );
        assert_eq!(r["sharedChangeMadeMatches"], true, "{r}");
        assert_eq!(r["sharedChangeHash"], r["expectedSharedHash"]);
        assert!(
            r["sharedRequest"]["rejected"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{r}"
        );

        // The server holds what the client did, and nothing of the refused map.
        let state = op.member(&member.member_id).await.unwrap().member;
        assert_eq!(state.activations["coffee"].device, "js-client");
        assert_eq!(state.requests["req_js"].subject, "Opening hours?");
        assert_eq!(state.preferences.len(), 8);
        server.stop().await;
    });
}
