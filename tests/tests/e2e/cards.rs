//! A shopper without the app (`docs/programme.md`, "Cards without the app"): the card number,
//! scanned from a printed card or typed, opens a session that earns but redeems only with the
//! member's PIN (or never, or always, as the programme says); a mistyped number, an unknown or
//! blocked card, a weak PIN and guessed PINs are refused — guesses sent all at once included.

use loyalty_core::api::{PinEntry, device_authorization, paths};
use loyalty_core::card_trust::{CardRedeem, SessionTrust};
use loyalty_core::programme::Programme;
use loyalty_tests::race::{Request, simultaneously};
use loyalty_tests::*;

/// The card number as a printed card shows it: four groups of four.
fn printed(card_number: &str) -> String {
    card_number
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn set_cards(s: &Shop, f: impl FnOnce(&mut Programme)) {
    let mut programme = Programme::default();
    f(&mut programme);
    s.server.operator().set_programme(&programme).await.unwrap();
}

#[test]
fn a_card_number_earns_and_redeems_only_with_the_members_pin() {
    rt().block_on(async {
        let s = shop().await;
        s.earn(500).await;
        let card = s.card().await.card_number;

        let scan = s.till.scan(&printed(&card)).await.unwrap();
        assert_eq!((scan.trust, scan.may_redeem), (SessionTrust::Card, false));
        assert_eq!(
            (scan.member_id.as_str(), scan.balance),
            (s.member_id.as_str(), 500)
        );
        let session = scan.session_id;
        let e = s
            .till
            .purchase(&purchase(&session, "k-redeem", 1_000, 10))
            .await
            .unwrap_err();
        assert_eq!(refusal(e), "second_factor_required");
        let earned = s
            .till
            .purchase(&purchase(&session, "k-earn", 1_000, 0))
            .await
            .unwrap();
        assert_eq!((earned.earned, earned.balance), (10, 510));

        // The PIN: none set yet; weak ones refused (by the app, and by the server); then set.
        let session = s.till.scan(&card).await.unwrap().session_id;
        assert_eq!(
            refusal(s.till.enter_pin(&session, "4071").await.unwrap_err()),
            "no_pin"
        );
        assert!(s.phone.set_pin("1234").await.is_err());
        let c = s.phone.credentials().unwrap();
        let weak = reqwest::Client::new()
            .put(format!(
                "{}{}",
                s.server.url,
                paths::member_pin(&s.member_id)
            ))
            .header(
                "authorization",
                device_authorization(&c.device_id, &c.device_secret),
            )
            .json(&PinEntry { pin: "0000".into() })
            .send()
            .await
            .unwrap();
        assert_eq!(weak.status(), 400);
        s.phone.set_pin("4071").await.unwrap();

        assert_eq!(
            refusal(s.till.enter_pin(&session, "4072").await.unwrap_err()),
            "wrong_pin"
        );
        assert_eq!(
            refusal(s.till.enter_pin(&session, "12").await.unwrap_err()),
            "invalid_pin"
        );
        let standing = s.till.enter_pin(&session, "4071").await.unwrap();
        assert_eq!(
            (standing.trust, standing.may_redeem),
            (SessionTrust::CardAndPin, true)
        );
        let paid = s
            .till
            .purchase(&purchase(&session, "k-pin", 1_000, 100))
            .await
            .unwrap();
        assert_eq!((paid.redeemed, paid.points_discount_minor), (100, 100));
        // Another till cannot use the session, nor enter its PIN.
        let other = s.server.till("till-8");
        assert_eq!(
            refusal(other.enter_pin(&session, "4071").await.unwrap_err()),
            "forbidden"
        );

        // Mistyped, unknown and blocked cards.
        let mut digits: Vec<u8> = card.bytes().collect();
        digits[15] = if digits[15] == b'9' {
            b'0'
        } else {
            digits[15] + 1
        };
        let mistyped = String::from_utf8(digits).unwrap();
        assert_eq!(
            refusal(s.till.scan(&mistyped).await.unwrap_err()),
            "bad_check_digit"
        );
        assert_eq!(
            refusal(s.till.scan("6000 0000").await.unwrap_err()),
            "invalid_card_number"
        );
        let stranger = loyalty_core::checkout_code::format_card_number(
            loyalty_core::checkout_code::with_luhn_check_digit(999_999_999_999_999),
        );
        assert_eq!(
            refusal(s.till.scan(&stranger).await.unwrap_err()),
            "unknown_card"
        );
        s.server.operator().block(&s.member_id).await.unwrap();
        assert_eq!(
            refusal(s.till.scan(&card).await.unwrap_err()),
            "card_blocked"
        );
        s.server.operator().unblock(&s.member_id).await.unwrap();

        // The programme decides: never with a card number, or no card scans at all.
        set_cards(&s, |p| p.cards.redeem = CardRedeem::Never).await;
        let session = s.till.scan(&card).await.unwrap().session_id;
        let standing = s.till.enter_pin(&session, "4071").await.unwrap();
        assert!(!standing.may_redeem);
        let e = s
            .till
            .purchase(&purchase(&session, "k-never", 1_000, 10))
            .await
            .unwrap_err();
        assert_eq!(refusal(e), "second_factor_required");
        set_cards(&s, |p| p.cards.scans = false).await;
        assert_eq!(
            refusal(s.till.scan(&card).await.unwrap_err()),
            "card_scans_off"
        );
        // The app's code is unaffected by any of it.
        let code = s.till.scan(&s.next_code().text).await.unwrap();
        assert_eq!((code.trust, code.may_redeem), (SessionTrust::Code, true));
    });
}

#[test]
fn guessed_pins_lock_even_when_the_guesses_arrive_together() {
    rt().block_on(async {
        let s = shop().await;
        s.phone.set_pin("4071").await.unwrap();
        let card = s.card().await.card_number;
        let session = s.till.scan(&card).await.unwrap().session_id;
        let path = paths::till_session_pin(&session);
        let guesses: Vec<Request> = (0..20)
            .map(|i| {
                let pin = format!("{:04}", 5000 + i);
                Request::till(s.server.addr, "till-7", &path, &PinEntry { pin })
            })
            .collect();
        let answers = simultaneously(&guesses).await.unwrap();
        let codes: Vec<String> = answers.iter().map(|a| a.error_code().unwrap()).collect();
        let wrong = codes.iter().filter(|c| *c == "wrong_pin").count();
        assert_eq!(
            wrong, 5,
            "the policy's five tries, however many arrive at once: {codes:?}"
        );
        assert!(
            codes.iter().all(|c| c == "wrong_pin" || c == "pin_locked"),
            "{codes:?}"
        );

        // Locked: even the right PIN, until the lock ends.
        let e = s.till.enter_pin(&session, "4071").await.unwrap_err();
        assert_eq!(refusal(e), "pin_locked");
        s.clock.advance(31 * 60_000);
        let session = s.till.scan(&card).await.unwrap().session_id;
        let standing = s.till.enter_pin(&session, "4071").await.unwrap();
        assert!(standing.may_redeem);
        // A right PIN clears the count: five more tries before the next lock.
        for _ in 0..4 {
            let e = s.till.enter_pin(&session, "1111").await.unwrap_err();
            assert_eq!(refusal(e), "wrong_pin");
        }
        s.till.enter_pin(&session, "4071").await.unwrap();
    });
}

/// A plastic card from the retailer's stock, Luhn-valid, outside the programme's own range.
fn plastic(n: u64) -> String {
    loyalty_core::checkout_code::format_card_number(
        loyalty_core::checkout_code::with_luhn_check_digit(400_000_000_000_000 + n),
    )
}

#[test]
fn a_plastic_card_is_linked_replaced_when_lost_and_the_points_stay() {
    rt().block_on(async {
        let s = shop().await;
        let op = s.server.operator();
        s.earn(300).await;
        let first = plastic(1);

        // Linked by the member in the app; again changes nothing.
        let cards = s.phone.link_card(&first).await.unwrap();
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].status, loyalty_core::api::LinkedCardStatus::Linked);
        assert_eq!(s.phone.link_card(&printed(&first)).await.unwrap(), cards);
        let scan = s.till.scan(&printed(&first)).await.unwrap();
        assert_eq!(
            (scan.member_id.as_str(), scan.balance),
            (s.member_id.as_str(), 300)
        );
        assert_eq!(scan.trust, SessionTrust::Card);
        s.till
            .purchase(&purchase(&scan.session_id, "plastic-1", 2_000, 0))
            .await
            .unwrap();

        // Another member cannot take it; nor anyone a number from the programme's own range.
        let (other, _) = s.another_member("other").await;
        let e = op.link_card(&other, &first).await.unwrap_err();
        assert_eq!(refusal(e), "card_taken");
        let own = s.card().await.card_number;
        assert_eq!(
            refusal(op.link_card(&other, &own).await.unwrap_err()),
            "invalid_card_number"
        );
        let mut mistyped: Vec<u8> = plastic(2).into_bytes();
        mistyped[15] = if mistyped[15] == b'9' {
            b'0'
        } else {
            mistyped[15] + 1
        };
        let mistyped = String::from_utf8(mistyped).unwrap();
        assert_eq!(
            refusal(op.link_card(&other, &mistyped).await.unwrap_err()),
            "bad_check_digit"
        );
        let nobody = "mbr_000000000000000000000000";
        assert_eq!(
            refusal(op.link_card(nobody, &plastic(3)).await.unwrap_err()),
            "member_not_found"
        );

        // Lost: it opens nothing, and its number is never linked again; a new card, same points.
        let cards = op.report_card_lost(&s.member_id, &first).await.unwrap();
        assert_eq!(cards[0].status, loyalty_core::api::LinkedCardStatus::Lost);
        assert_eq!(refusal(s.till.scan(&first).await.unwrap_err()), "card_lost");
        assert_eq!(
            refusal(op.link_card(&s.member_id, &first).await.unwrap_err()),
            "card_taken"
        );
        let e = op.report_card_lost(&other, &first).await.unwrap_err();
        assert_eq!(refusal(e), "card_not_found");
        let second = plastic(4);
        let cards = op.link_card(&s.member_id, &second).await.unwrap();
        assert_eq!(cards.len(), 2);
        let scan = s.till.scan(&second).await.unwrap();
        assert_eq!(scan.balance, 320, "the points stayed with the member");
        let view = op.member(&s.member_id).await.unwrap();
        let listed: Vec<_> = view
            .cards
            .iter()
            .map(|c| (c.card_number.clone(), c.status))
            .collect();
        assert_eq!(
            listed,
            vec![
                (first, loyalty_core::api::LinkedCardStatus::Lost),
                (second, loyalty_core::api::LinkedCardStatus::Linked)
            ]
        );
    });
}
