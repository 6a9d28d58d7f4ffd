//! Operators adjust points end to end (`POST /v1/admin/members/{id}/adjustments`, `loyalty admin
//! adjust`): credits and debits that the member's card and phone explain like any other entry, a
//! debit never below zero (also under truly simultaneous requests, across two instances sharing a
//! database), the operator's key posting once, every bad request refused with its code and
//! nothing changed, and who made it recorded on the posting.

use loyalty_core::api::{AdjustPoints, AdjustReason, PostingResponse, paths};
use loyalty_core::card::{Card, LedgerEntry};
use loyalty_tests::race::{Request, Response, one_answer, simultaneously};
use loyalty_tests::*;
use serde_json::json;

use crate::cli::{loyalty, stderr, stdout};

fn adjustment(key: &str, points: i64, reason: AdjustReason, note: &str) -> AdjustPoints {
    AdjustPoints {
        idempotency_key: key.into(),
        points,
        reason,
        note: note.into(),
        reference: None,
    }
}

/// An operator's `POST` of any JSON body to the member's adjustments, for [`simultaneously`].
fn post(addr: std::net::SocketAddr, member_id: &str, body: &impl serde::Serialize) -> Request {
    Request::post_json(addr, &paths::admin_member_adjustments(member_id), body)
        .header("authorization", &format!("Bearer {OPERATOR_TOKEN}"))
}

/// Sends one request and returns its answer.
async fn send(request: Request) -> Response {
    simultaneously(&[request]).await.unwrap().remove(0)
}

/// The card's entries made by adjustments, newest first.
fn adjustments(card: &Card) -> Vec<&LedgerEntry> {
    card.ledger
        .iter()
        .filter(|e| e.rule.starts_with("adjust:"))
        .collect()
}

/// Who made the posting `posting`, read through the storage traits.
async fn operator_of(s: &Shop, posting: &str) -> Option<String> {
    let storage = backend::open_storage(&s.server.database).await;
    storage
        .prior_posting(posting)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no posting {posting}"))
        .operator
}

#[test]
fn a_credit_and_a_debit_read_on_the_card_and_the_phone_with_their_reasons() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let mut credit = adjustment(
            "ticket-1",
            120,
            AdjustReason::MissingReceipt,
            "Purchase of 12 May not posted",
        );
        credit.reference = Some("R-5531".into());
        let c = op.adjust(&s.member_id, &credit).await.unwrap();
        assert_eq!(c.posting, "adjust:ticket-1");
        assert_eq!(
            (c.earned, c.redeemed, c.balance, c.pending),
            (120, 0, 120, 0)
        );
        assert_eq!(c.movements.len(), 1);
        assert_eq!(c.movements[0].rule, "adjust:missing_receipt");
        assert_eq!(
            c.movements[0].reason,
            "Missing receipt: Purchase of 12 May not posted (ref. R-5531)"
        );

        // A minute later, so the card's newest-first order is the order they were made in.
        s.clock.advance(60_000);
        let d = op
            .adjust(
                &s.member_id,
                &adjustment("ticket-2", -45, AdjustReason::Correction, "Double credit"),
            )
            .await
            .unwrap();
        assert_eq!((d.earned, d.redeemed, d.balance), (0, 45, 75));
        assert_eq!(d.movements[0].points, -45);
        assert_eq!(d.movements[0].rule, "adjust:correction");

        // The operator's view of the member: the card, caught up with the ledger.
        let card = s.card().await;
        assert_eq!(card.balance, 75);
        let entries: Vec<(i64, &str, &str)> = adjustments(&card)
            .iter()
            .map(|e| (e.points, e.rule.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(
            entries,
            vec![
                (-45, "adjust:correction", "Correction: Double credit"),
                (
                    120,
                    "adjust:missing_receipt",
                    "Missing receipt: Purchase of 12 May not posted (ref. R-5531)"
                ),
            ]
        );
        // The phone, synced, shows the same entries and balance.
        s.phone.sync().await.unwrap();
        let phone = s.phone.card().unwrap().unwrap();
        assert_eq!(phone.balance, 75);
        assert_eq!(adjustments(&phone), adjustments(&card));

        // The credit is spendable at the till at once, like any points.
        let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
        let spent = s
            .till
            .purchase(&purchase(&session, "spend", 10_000, 75))
            .await
            .unwrap();
        assert_eq!(spent.redeemed, 75);

        // Who made each adjustment is on its posting; a till's names nobody.
        assert_eq!(
            operator_of(&s, "adjust:ticket-1").await.as_deref(),
            Some("admin")
        );
        assert_eq!(
            operator_of(&s, "adjust:ticket-2").await.as_deref(),
            Some("admin")
        );
        assert_eq!(operator_of(&s, "till:till-7:spend").await, None);
    });
}

#[test]
fn a_debit_beyond_the_balance_is_refused_and_changes_nothing() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        op.adjust(
            &s.member_id,
            &adjustment("c", 30, AdjustReason::Goodwill, "Sorry"),
        )
        .await
        .unwrap();
        let before = s.card().await;
        let over = adjustment("d", -31, AdjustReason::Correction, "Too much");
        let refused = op.adjust(&s.member_id, &over).await.unwrap_err();
        assert_eq!(refusal(refused), "insufficient_points");
        let after = s.card().await;
        assert_eq!(after.balance, 30);
        assert_eq!(after.ledger, before.ledger, "no entry for a refused debit");

        // The refused request took nothing, not even its key: the same key with what the member
        // has goes through, and takes the balance to zero, not below.
        let all = op
            .adjust(
                &s.member_id,
                &adjustment("d", -30, AdjustReason::Correction, "All of it"),
            )
            .await
            .unwrap();
        assert_eq!(all.balance, 0);
        let nothing_left = op
            .adjust(
                &s.member_id,
                &adjustment("e", -1, AdjustReason::Correction, "One more"),
            )
            .await
            .unwrap_err();
        assert_eq!(refusal(nothing_left), "insufficient_points");
        assert_eq!(s.balance().await, 0);
    });
}

#[test]
fn the_operators_key_posts_once_and_answers_alike() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        let credit = adjustment(
            "ticket-9",
            40,
            AdjustReason::MemberRequest,
            "Asked by phone",
        );
        let first = op.adjust(&s.member_id, &credit).await.unwrap();
        let again = op.adjust(&s.member_id, &credit).await.unwrap();
        assert_eq!(again, first, "the stored answer, transaction ids and all");
        assert_eq!(s.balance().await, 40, "credited once");
        assert_eq!(adjustments(&s.card().await).len(), 1);

        // The same key with another body, or for another member, is refused and changes nothing.
        let mut other = credit.clone();
        other.points = 41;
        let reused = op.adjust(&s.member_id, &other).await.unwrap_err();
        assert_eq!(refusal(reused), "idempotency_key_reused");
        let someone = op.create_member(None).await.unwrap().member_id;
        let elsewhere = op.adjust(&someone, &credit).await.unwrap_err();
        assert_eq!(refusal(elsewhere), "idempotency_key_reused");
        assert_eq!(s.balance().await, 40);

        // A till's key and an operator's key never collide: the same key posts at both.
        op.adjust(
            &s.member_id,
            &adjustment("shared", 10, AdjustReason::Goodwill, "Shared key"),
        )
        .await
        .unwrap();
        let session = s.till.scan(&s.next_code().text).await.unwrap().session_id;
        let bought = s
            .till
            .purchase(&purchase(&session, "shared", 1_000, 0))
            .await
            .unwrap();
        assert_eq!(bought.posting, "till:till-7:shared");
        assert_eq!(bought.earned, 10);
    });
}

#[test]
fn a_blocked_member_can_be_adjusted() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        op.block(&s.member_id).await.unwrap();
        let r = op
            .adjust(
                &s.member_id,
                &adjustment("b1", 15, AdjustReason::Goodwill, "While blocked"),
            )
            .await
            .unwrap();
        assert_eq!(r.balance, 15);
        assert_eq!(s.balance().await, 15);
    });
}

#[test]
fn operator_credentials_are_required_and_the_member_must_exist() {
    rt().block_on(async {
        let s = shop().await;
        let body = adjustment("k", 10, AdjustReason::Goodwill, "n");
        let path = paths::admin_member_adjustments(&s.member_id);
        let no_token = Request::post_json(s.server.addr, &path, &body);
        let wrong = no_token
            .clone()
            .header("authorization", "Bearer not-the-operator-token-0123");
        let till = no_token
            .clone()
            .header("authorization", &format!("Bearer {TILL_TOKEN}"));
        for request in [no_token, wrong, till] {
            let answer = send(request).await;
            assert_eq!(answer.status, 401);
            assert_eq!(answer.error_code().as_deref(), Some("unauthorized"));
        }
        assert_eq!(s.balance().await, 0);

        let unknown = send(post(s.server.addr, "mbr_0123456789abcdef01234567", &body)).await;
        assert_eq!(unknown.status, 404);
        assert_eq!(unknown.error_code().as_deref(), Some("member_not_found"));
        // The refusals took nothing: the key still posts for the real member.
        let ok = send(post(s.server.addr, &s.member_id, &body)).await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.json::<PostingResponse>().balance, 10);
    });
}

#[test]
fn bad_adjustments_are_refused_with_their_codes_and_change_nothing() {
    rt().block_on(async {
        let s = shop().await;
        let good = json!({"idempotency_key": "k", "points": 5, "reason": "goodwill", "note": "n"});
        let with = |field: &str, value: serde_json::Value| {
            let mut body = good.clone();
            body[field] = value;
            body
        };
        let without = |field: &str| {
            let mut body = good.clone();
            body.as_object_mut().unwrap().remove(field);
            body
        };
        let cases = [
            (with("points", json!(0)), "invalid_adjustment"),
            (with("points", json!(1_000_001)), "invalid_adjustment"),
            (with("points", json!(-1_000_001)), "invalid_adjustment"),
            (with("points", json!(i64::MIN)), "invalid_adjustment"),
            (with("points", json!(1.5)), "invalid_adjustment"),
            (with("points", json!("5")), "invalid_adjustment"),
            (with("note", json!("x".repeat(201))), "invalid_adjustment"),
            (with("note", json!("")), "invalid_adjustment"),
            (with("note", json!("   ")), "invalid_adjustment"),
            (with("note", json!("two\nlines")), "invalid_adjustment"),
            (
                with("reference", json!("r".repeat(129))),
                "invalid_adjustment",
            ),
            (with("reference", json!("")), "invalid_adjustment"),
            (with("reason", json!("because")), "invalid_adjustment"),
            (with("reason", json!("GOODWILL")), "invalid_adjustment"),
            (with("operator", json!("someone")), "invalid_adjustment"),
            (without("reason"), "invalid_adjustment"),
            (without("note"), "invalid_adjustment"),
            (without("points"), "invalid_adjustment"),
            (
                with("idempotency_key", json!("")),
                "invalid_idempotency_key",
            ),
            (
                with("idempotency_key", json!("k".repeat(129))),
                "invalid_idempotency_key",
            ),
            (without("idempotency_key"), "invalid_idempotency_key"),
        ];
        for (body, code) in &cases {
            let answer = send(post(s.server.addr, &s.member_id, body)).await;
            assert_eq!(answer.status, 400, "{body}");
            assert_eq!(answer.error_code().as_deref(), Some(*code), "{body}");
        }
        let mut not_json = post(s.server.addr, &s.member_id, &good);
        not_json.body = b"{\"points\": 5".to_vec();
        assert_eq!(
            send(not_json).await.error_code().as_deref(),
            Some("malformed_body")
        );
        // Nothing of them was stored: no points, no entry, and the key is still free.
        let card = s.card().await;
        assert_eq!((card.balance, adjustments(&card).len()), (0, 0));
        let ok = send(post(s.server.addr, &s.member_id, &good)).await;
        assert_eq!(ok.status, 200);
        // The largest adjustments either way are accepted.
        let most = with("points", json!(1_000_000));
        let most = with_key(&most, "most");
        assert_eq!(
            send(post(s.server.addr, &s.member_id, &most)).await.status,
            200
        );
        let least = with_key(&with("points", json!(-1_000_000)), "least");
        assert_eq!(
            send(post(s.server.addr, &s.member_id, &least)).await.status,
            200
        );
        assert_eq!(s.balance().await, 5);
    });
}

fn with_key(body: &serde_json::Value, key: &str) -> serde_json::Value {
    let mut body = body.clone();
    body["idempotency_key"] = json!(key);
    body
}

/// Debits that together exceed the balance, sent at the same instant, half of them to a second
/// server instance sharing the database (so no in-process lock keeps those apart, only the
/// ledger's revision guard): exactly as many go through as the balance holds, the others are
/// refused, and the balance never goes below zero.
#[test]
fn simultaneous_debits_never_overdraw() {
    rt().block_on(async {
        let s = shop().await;
        let other = s.second_instance().await;
        s.server
            .operator()
            .adjust(
                &s.member_id,
                &adjustment("fill", 100, AdjustReason::Goodwill, "Start"),
            )
            .await
            .unwrap();
        let debits: Vec<Request> = (0..20)
            .map(|i| {
                let addr = if i % 2 == 0 {
                    s.server.addr
                } else {
                    other.addr
                };
                post(
                    addr,
                    &s.member_id,
                    &adjustment(&format!("d{i}"), -15, AdjustReason::Correction, "Race"),
                )
            })
            .collect();
        let answers = simultaneously(&debits).await.unwrap();
        let mut debited = 0;
        for a in &answers {
            match a.error_code() {
                None => {
                    let r = a.json::<PostingResponse>();
                    assert!(r.balance >= 0, "{r:?}");
                    debited += r.redeemed;
                }
                Some(code) => assert_eq!(code, "insufficient_points"),
            }
        }
        assert_eq!(debited, 90, "six debits of 15 fit in 100, no more");
        assert_eq!(s.balance().await, 10);
        assert_eq!(
            adjustments(&s.card().await).len(),
            7,
            "the credit and six debits"
        );
        other.stop().await;
    });
}

/// One key sent many times at the same instant, to two instances: it posts once, and every
/// answer is the one stored answer.
#[test]
fn one_key_sent_at_once_many_times_posts_once() {
    rt().block_on(async {
        let s = shop().await;
        let other = s.second_instance().await;
        let credit = adjustment("twice", 25, AdjustReason::Goodwill, "Once only");
        let copies: Vec<Request> = (0..10)
            .map(|i| {
                let addr = if i % 2 == 0 {
                    s.server.addr
                } else {
                    other.addr
                };
                post(addr, &s.member_id, &credit)
            })
            .collect();
        let first: PostingResponse = one_answer(&simultaneously(&copies).await.unwrap());
        assert_eq!(first.balance, 25);
        assert_eq!(s.balance().await, 25);
        assert_eq!(adjustments(&s.card().await).len(), 1);
        other.stop().await;
    });
}

/// `loyalty admin adjust` against a real server process: the key it generates is printed and
/// retries safely, a debit beyond the balance is refused, bad reasons never leave the console.
#[test]
fn loyalty_admin_adjust_credits_debits_and_retries_by_its_printed_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("s.db"), "127.0.0.1:0");
    rt().block_on(async {
        let op = server.operator();
        let member = op.create_member(None).await.unwrap().member_id;
        let adjust = async |extra: &[&str]| {
            let mut args = vec!["admin", "adjust", member.as_str()];
            args.extend_from_slice(extra);
            loyalty(&server.url, &args).await
        };
        let credit = [
            "--points",
            "25",
            "--reason",
            "goodwill",
            "--note",
            "Sorry for the queue",
            "--reference",
            "T-7",
        ];
        let first = adjust(&credit).await;
        assert!(first.status.success(), "{}", stderr(&first));
        let out = stdout(&first);
        assert!(out.starts_with("25 points credited to"), "{out}");
        assert!(out.contains("balance 25"), "{out}");
        // The generated key, printed so that a retry can give it back.
        let err = stderr(&first);
        let key = err
            .split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no key in {err:?}"))
            .to_string();
        assert!(out.contains(&format!("adjust:{key}")), "{out} / {err}");
        let mut retry = credit.to_vec();
        retry.extend_from_slice(&["--key", &key]);
        let again = adjust(&retry).await;
        assert!(again.status.success(), "{}", stderr(&again));
        assert!(stdout(&again).contains("balance 25"), "posted once");

        let over = adjust(&["--points", "-26", "--reason", "correction", "--note", "x"]).await;
        assert!(!over.status.success());
        assert!(
            stderr(&over).contains("insufficient_points"),
            "{}",
            stderr(&over)
        );
        let debit = adjust(&[
            "--points",
            "-10",
            "--reason",
            "correction",
            "--note",
            "Entered twice",
            "--key",
            "k-debit",
            "--json",
        ])
        .await;
        assert!(debit.status.success(), "{}", stderr(&debit));
        let answer: PostingResponse = serde_json::from_slice(&debit.stdout).unwrap();
        assert_eq!(
            (answer.balance, answer.posting.as_str()),
            (15, "adjust:k-debit")
        );

        let bad = adjust(&["--points", "5", "--reason", "because", "--note", "x"]).await;
        assert!(!bad.status.success());
        assert!(stderr(&bad).contains("goodwill"), "the reasons are listed");

        let card = op.member(&member).await.unwrap().card.unwrap();
        assert_eq!(card.balance, 15);
        let mut reasons: Vec<&str> = adjustments(&card)
            .iter()
            .map(|e| e.reason.as_str())
            .collect();
        reasons.sort_unstable();
        assert_eq!(
            reasons,
            vec![
                "Correction: Entered twice",
                "Goodwill: Sorry for the queue (ref. T-7)"
            ]
        );
    });
}
