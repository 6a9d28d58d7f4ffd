//! Operators and roles (issue 14 §1) against a real server: the bootstrap token creates named
//! accounts; support, marketing and admin each get what their role allows and `403` for the rest
//! (support's adjustments within their limit); a disabled account's token stops at once; tokens are
//! kept as hashes only; every write, refused ones too, is in the audit log with who, what, which,
//! when and from where, and reads are not.

use std::process::Command;

use loyalty_core::api::{AdjustPoints, AdjustReason, AuditEntry};
use loyalty_server::client::{OperatorClient, OperatorError};
use loyalty_tests::*;

use crate::cli::{loyalty, stdout};

fn adjustment(key: &str, points: i64) -> AdjustPoints {
    AdjustPoints {
        idempotency_key: key.into(),
        points,
        reason: AdjustReason::Goodwill,
        note: "Sorry for the wait".into(),
        reference: None,
    }
}

fn status(e: OperatorError) -> (u16, String) {
    match e {
        OperatorError::Refused { status, code, .. } => (status, code),
        other => panic!("expected a refusal, got {other}"),
    }
}

#[test]
fn each_role_gets_what_it_may_and_every_write_is_audited() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let boot = server.operator();
        let member = boot.create_member(None).await.unwrap().member_id;

        let mut tokens = Vec::new();
        for (name, role) in [
            ("Sam Support", "support"),
            ("Mia Marketing", "marketing"),
            ("Ada Admin", "admin"),
        ] {
            let created = boot.create_operator(name, role).await.unwrap();
            assert!(created.token.starts_with("lop_") && created.token.len() > 60);
            assert_eq!(
                (
                    created.operator.role.as_str(),
                    created.operator.created_by.as_str()
                ),
                (role, "admin")
            );
            tokens.push((created.operator.operator_id, created.token));
        }
        let as_op = |token: &str| OperatorClient::new(&server.url, token).unwrap();
        let (sam, mia, ada) = (
            as_op(&tokens[0].1),
            as_op(&tokens[1].1),
            as_op(&tokens[2].1),
        );

        // Support: members and adjustments within the limit; not marketing, blocking or operators.
        assert!(sam.member(&member).await.is_ok());
        assert!(sam.activation_code(&member).await.is_ok());
        sam.adjust(&member, &adjustment("t-1", 500)).await.unwrap();
        let over = status(
            sam.adjust(&member, &adjustment("t-2", 5000))
                .await
                .unwrap_err(),
        );
        assert_eq!(over, (403, "forbidden".into()));
        assert_eq!(status(sam.block(&member).await.unwrap_err()).0, 403);
        assert_eq!(
            status(
                sam.publish_offer(&targeted_offer(&member))
                    .await
                    .unwrap_err()
            )
            .0,
            403
        );
        assert_eq!(status(sam.operators().await.unwrap_err()).0, 403);
        assert_eq!(status(sam.audit(None, None, 10).await.unwrap_err()).0, 403);

        // Marketing: offers, not points or blocking.
        mia.publish_offer(&targeted_offer(&member)).await.unwrap();
        assert_eq!(
            status(
                mia.adjust(&member, &adjustment("t-3", 1))
                    .await
                    .unwrap_err()
            )
            .0,
            403
        );
        assert_eq!(status(mia.block(&member).await.unwrap_err()).0, 403);

        // Admin: anything, adjustments without the support limit, operators.
        ada.adjust(&member, &adjustment("t-4", 5000)).await.unwrap();
        ada.block(&member).await.unwrap();
        ada.unblock(&member).await.unwrap();
        assert_eq!(ada.operators().await.unwrap().len(), 3);
        assert_eq!(
            status(ada.disable_operator(&tokens[2].0).await.unwrap_err()),
            (400, "invalid_operator".into()),
            "nobody disables themselves"
        );
        assert_eq!(
            status(ada.disable_operator("op_nobody").await.unwrap_err()),
            (404, "operator_not_found".into())
        );
        ada.disable_operator(&tokens[0].0).await.unwrap();
        assert_eq!(
            status(sam.member(&member).await.unwrap_err()),
            (401, "unauthorized".into())
        );
        let sam_row = ada
            .operators()
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.operator_id == tokens[0].0)
            .unwrap();
        assert!(sam_row.disabled_at_ms.is_some());

        // Bad accounts are refused with nothing stored.
        for (name, role) in [("", "support"), ("Rex", "root"), ("Tab\tName", "admin")] {
            assert_eq!(
                status(ada.create_operator(name, role).await.unwrap_err()),
                (400, "invalid_operator".into())
            );
        }
        assert_eq!(ada.operators().await.unwrap().len(), 3);

        // The audit log: writes only, newest first, refusals included, with who and from where.
        let log: Vec<AuditEntry> = ada.audit(None, None, 500).await.unwrap();
        assert!(log.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert!(
            log.iter().all(|e| !e.action.starts_with("GET ")),
            "reads are not audited: {log:?}"
        );
        let sams: Vec<_> = log
            .iter()
            .filter(|e| e.operator_id == tokens[0].0)
            .collect();
        let adjust_route = "POST /v1/admin/members/{member_id}/adjustments";
        let target = format!("/v1/admin/members/{member}/adjustments");
        let seen: Vec<(&str, &str, u16)> = sams
            .iter()
            .map(|e| (e.action.as_str(), e.target.as_str(), e.status))
            .collect();
        assert!(
            seen.contains(&(adjust_route, target.as_str(), 200)),
            "{seen:?}"
        );
        assert!(
            seen.contains(&(adjust_route, target.as_str(), 403)),
            "{seen:?}"
        );
        assert!(sams.iter().all(|e| e.operator_name == "Sam Support"
            && e.role == "support"
            && e.client == "127.0.0.1"));
        let created: Vec<_> = log
            .iter()
            .filter(|e| e.action == "POST /v1/admin/operators")
            .collect();
        let by = |who: &str, status: u16| {
            created
                .iter()
                .filter(|e| e.operator_id == who && e.status == status)
                .count()
        };
        assert_eq!(
            (by("admin", 200), by(&tokens[2].0, 400), created.len()),
            (3, 3, 6),
            "three made by the bootstrap admin, three refused to Ada"
        );
        let page = ada.audit(None, Some(log[0].id), 1).await.unwrap();
        assert_eq!(page[0].id, log[1].id);
        let only_mia = ada.audit(Some(&tokens[1].0), None, 100).await.unwrap();
        assert!(!only_mia.is_empty() && only_mia.iter().all(|e| e.operator_id == tokens[1].0));

        // Only hashes are stored: no token appears in the database's files.
        for file in ["server.db", "server.db-wal"] {
            let Ok(bytes) = std::fs::read(dir.path().join(file)) else {
                continue;
            };
            for (_, token) in &tokens {
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "{file} holds a token"
                );
            }
        }
        server.stop().await;
    });
}

#[test]
fn the_command_line_manages_operators_and_reads_the_audit_log() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let out = loyalty(
            &server.url,
            &[
                "admin",
                "--json",
                "operators",
                "add",
                "Cleo",
                "--role",
                "support",
            ],
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        let created: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let token = created["token"].as_str().unwrap().to_string();
        let id = created["operator"]["operator_id"]
            .as_str()
            .unwrap()
            .to_string();

        // Cleo's own token works for her role and is refused the operators' list.
        let as_cleo = Command::new(loyalty_bin())
            .args(["admin", "operators", "list"])
            .env("LOYALTY_SERVER", &server.url)
            .env("LOYALTY_OPERATOR_TOKEN", &token)
            .output()
            .unwrap();
        assert!(!as_cleo.status.success());
        assert!(
            String::from_utf8_lossy(&as_cleo.stderr).contains("403"),
            "{as_cleo:?}"
        );

        let listed = loyalty(&server.url, &["admin", "operators", "list"]).await;
        assert!(
            stdout(&listed).contains("Cleo") && stdout(&listed).contains("support"),
            "{listed:?}"
        );
        let disabled = loyalty(&server.url, &["admin", "operators", "disable", &id]).await;
        assert!(disabled.status.success(), "{disabled:?}");
        let audit = loyalty(&server.url, &["admin", "--json", "audit", "--limit", "10"]).await;
        let entries: Vec<AuditEntry> = serde_json::from_str(&stdout(&audit)).unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "POST /v1/admin/operators/{operator_id}/disable",
                "POST /v1/admin/operators"
            ],
            "{entries:?}"
        );
        server.stop().await;
    });
}

fn targeted_offer(member: &str) -> loyalty_core::api::PostTargetedOffer {
    loyalty_core::api::PostTargetedOffer {
        offer: offer("o-1", "Coffee"),
        target: loyalty_core::api::OfferTarget::Members {
            member_ids: vec![member.to_string()],
        },
    }
}
