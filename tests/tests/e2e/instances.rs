//! Several `loyalty server` processes on one PostgreSQL database, no sticky sessions (issue 12
//! §3): a purchase through one instance wakes a phone long-polling another (LISTEN/NOTIFY); a
//! member's phones syncing through alternating instances converge; tills racing through different
//! instances never overdraw and post one idempotency key once. Every server here is a real
//! process on the test command's PostgreSQL, whichever backend the rest of the run uses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use loyalty_core::api::PostingResponse;
use loyalty_server::client::TillClient;
use loyalty_tests::race::{Request, simultaneously};
use loyalty_tests::*;

/// `n` server processes on one fresh PostgreSQL database.
fn instances(n: usize) -> (postgres::Postgres, Vec<ServerProcess>) {
    let pg = postgres::Postgres::get();
    let database = pg.database();
    let servers = (0..n)
        .map(|_| ServerProcess::start_on(&database, &["--db-pool", "4"]))
        .collect();
    (pg, servers)
}

fn addr(server: &ServerProcess) -> SocketAddr {
    server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address")
}

#[test]
fn a_purchase_through_one_instance_wakes_a_phone_polling_another() {
    rt().block_on(async {
        let (_pg, servers) = instances(2);
        let (a, b) = (&servers[0], &servers[1]);
        let dir = tempfile::tempdir().unwrap();
        let (_, phone) = member_with_device(&a.url, &a.operator(), &dir.path().join("p.db")).await;
        let credentials = phone.credentials().unwrap();
        let since = long_poll(&b.url, &credentials, 0, 0).await.seq;
        // The poll waits 20 s on B: only a change B hears of from A ends it early.
        let waiting = {
            let (url, credentials) = (b.url.clone(), credentials.clone());
            tokio::spawn(async move { long_poll(&url, &credentials, since, 20).await })
        };
        // Let the poll reach B and start waiting before the purchase.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let till = TillClient::new(&a.url, TILL_TOKEN, "till-1").unwrap();
        let session = till
            .scan(&phone.checkout_code().unwrap().text)
            .await
            .unwrap()
            .session_id;
        till.purchase(&purchase(&session, "p-1", 1_000, 0))
            .await
            .unwrap();
        let posted = Instant::now();
        let answer = waiting.await.unwrap();
        println!(
            "purchase on A answered, poll on B woke {} ms later",
            posted.elapsed().as_millis()
        );
        assert!(
            answer.changed,
            "woken by the purchase, not by its wait: {answer:?}"
        );
        assert!(answer.seq > since, "{answer:?}");
        // And the phone finds the purchase when it syncs, through B.
        phone.use_server_url(&b.url);
        phone.sync().await.unwrap();
        assert_eq!(phone.card().unwrap().unwrap().balance, 10);
    });
}

#[test]
fn a_members_phones_syncing_through_alternating_instances_converge() {
    rt().block_on(async {
        let (_pg, servers) = instances(3);
        let dir = tempfile::tempdir().unwrap();
        let op = servers[0].operator();
        let (member_id, first) =
            member_with_device(&servers[0].url, &op, &dir.path().join("p1.db")).await;
        let second =
            second_device(&servers[1].url, &op, &member_id, &dir.path().join("p2.db")).await;
        // Each phone moves to the next instance at every round; no instance sees two rounds of
        // one phone in a row.
        for round in 0..6 {
            for (i, phone) in [&first, &second].into_iter().enumerate() {
                phone.use_server_url(&servers[(round + i) % servers.len()].url);
                phone
                    .set_preference(&format!("p{i}-{round}"), &round.to_string())
                    .unwrap();
                phone.sync().await.unwrap();
            }
        }
        for phone in [&first, &second] {
            phone.use_server_url(&servers[2].url);
            phone.sync().await.unwrap();
        }
        let (a, b) = (
            first.member_state().unwrap(),
            second.member_state().unwrap(),
        );
        assert_eq!(a, b, "the phones converged");
        for round in 0..6 {
            for i in 0..2 {
                assert_eq!(a.preferences[&format!("p{i}-{round}")], round.to_string());
            }
        }
        // The server's relational mirror has them too, whichever instance is asked.
        let view = servers[1].operator().member(&member_id).await.unwrap();
        assert_eq!(view.member.preferences, a.preferences);
    });
}

#[test]
fn tills_racing_through_different_instances_never_overdraw_and_post_a_key_once() {
    rt().block_on(async {
        let (_pg, servers) = instances(3);
        let dir = tempfile::tempdir().unwrap();
        let op = servers[0].operator();
        let (member_id, phone) =
            member_with_device(&servers[0].url, &op, &dir.path().join("p.db")).await;
        let till = TillClient::new(&servers[0].url, TILL_TOKEN, "till-7").unwrap();
        let session = till
            .scan(&phone.checkout_code().unwrap().text)
            .await
            .unwrap()
            .session_id;
        till.purchase(&purchase(&session, "earn", 10_000, 0))
            .await
            .unwrap();
        let addrs: Vec<SocketAddr> = servers.iter().map(addr).collect();

        // Twenty redemptions of 15 points out of 100, spread over the instances, all at once.
        let redemptions: Vec<Request> = (0..20)
            .map(|i| {
                Request::till(
                    addrs[i % addrs.len()],
                    "till-7",
                    "/v1/till/purchases",
                    // 0.15 paid with 15 points: nothing earned meanwhile.
                    &purchase(&session, &format!("redeem-{i}"), 15, 15),
                )
            })
            .collect();
        let mut redeemed = 0;
        for answer in simultaneously(&redemptions).await.unwrap() {
            match answer.error_code() {
                None => redeemed += answer.json::<PostingResponse>().redeemed,
                // An instance that lost every optimistic retry to the others answers `busy` and
                // posts nothing; the till retries with its key.
                Some(code) => assert!(
                    ["insufficient_points", "busy"].contains(&code.as_str()),
                    "{code}"
                ),
            }
        }
        assert!(redeemed >= 15, "some redemptions went through");
        assert!(redeemed <= 90, "six redemptions of 15 fit in 100, no more");
        let balance = |server: &ServerProcess| {
            let op = server.operator();
            let member_id = member_id.clone();
            async move { op.member(&member_id).await.unwrap().card.unwrap().balance }
        };
        assert_eq!(balance(&servers[2]).await, 100 - redeemed);

        // One key sent through every instance at once: posted once, the same answer everywhere.
        let once: Vec<Request> = (0..12)
            .map(|i| {
                Request::till(
                    addrs[i % addrs.len()],
                    "till-7",
                    "/v1/till/purchases",
                    &purchase(&session, "once", 4_250, 0),
                )
            })
            .collect();
        let answers = simultaneously(&once).await.unwrap();
        let first: PostingResponse = answers[0].json();
        for answer in &answers {
            assert_eq!(answer.status, 200, "{:?}", answer.error_code());
            assert_eq!(answer.json::<PostingResponse>(), first);
        }
        // Earned once: 42.50 earns 42 points, not 84.
        assert_eq!(balance(&servers[1]).await, 100 - redeemed + 42);
    });
}
