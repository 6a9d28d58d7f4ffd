//! The `loyalty` program as a person uses it: the real binary (built before the tests) against a
//! real server on loopback. Each test is a defect a new user met: amounts read loosely, a scan
//! that needed zbarimg, a mistyped store taken for a new phone, a panic on a closed pipe, a raw
//! transport error, a revoked phone that could not enroll again, a message with a default kind.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use loyalty_core::qr::QrMatrix;
use loyalty_tests::*;
use serde_json::Value;

/// Runs `loyalty ARGS` against `server` with the test tokens, off the async runtime's threads.
pub(crate) async fn loyalty(server: &str, args: &[&str]) -> Output {
    let server = server.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(loyalty_bin())
            .args(&args)
            .env("LOYALTY_SERVER", &server)
            .env("LOYALTY_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("LOYALTY_TILL_TOKEN", TILL_TOKEN)
            .env_remove("LOYALTY_DEVICE_STORE")
            .env("RUST_LOG", "off")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command succeeded; its standard output.
fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// The command failed; its standard error.
fn refused(o: Output) -> String {
    assert!(!o.status.success(), "succeeded: {}", stdout(&o));
    stderr(&o)
}

fn json(o: Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap()
}

/// A member enrolled through `loyalty device enroll` into the store at `store`.
async fn enrolled(server: &TestServer, store: &Path) -> String {
    let member = server.operator().create_member(None).await.unwrap();
    let s = store.to_str().unwrap();
    ok(loyalty(
        &server.url,
        &[
            "device",
            "--store",
            s,
            "enroll",
            "--code",
            &member.activation_code,
        ],
    )
    .await);
    member.member_id
}

/// A checkout session opened by `loyalty till scan` on the store's current code.
async fn session(server: &TestServer, store: &Path) -> String {
    let s = store.to_str().unwrap();
    let code = json(loyalty(&server.url, &["device", "--store", s, "--json", "code"]).await);
    let scan = json(
        loyalty(
            &server.url,
            &["till", "--json", "scan", code["code"].as_str().unwrap()],
        )
        .await,
    );
    scan["session_id"].as_str().unwrap().to_string()
}

#[test]
fn till_amounts_are_read_strictly_and_refusals_name_the_flag() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let store = dir.path().join("phone.db");
        let member = enrolled(&server, &store).await;
        let session = session(&server, &store).await;
        let entries_before = server
            .operator()
            .member(&member)
            .await
            .unwrap()
            .card
            .map_or(0, |c| c.ledger.len());
        let purchase = |extra: &[&str]| {
            let mut args = vec![
                "till",
                "purchase",
                "--session",
                &session,
                "--receipt",
                "R-1",
            ];
            args.extend_from_slice(extra);
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
        };
        let cases: [(&[&str], &str); 10] = [
            (&["--total", "1.-5"], "--total"),
            (&["--total=-5.50"], "--total"),
            (&["--total", "12.345"], "--total"),
            (&["--total", "1e3"], "--total"),
            (&["--total", "1,50"], "--total"),
            (&["--total", "20000000"], "--total"),
            (&["--total", "10", "--line", "a:coffee:1.-5"], "--line"),
            (&["--total", "10", "--line", "a:coffee:-10"], "--line"),
            (&["--total", "10", "--line", "a:coffee:4.00"], "--total"),
            (&["--total", "10", "--redeem=-5"], "--redeem"),
        ];
        for (extra, flag) in cases {
            let args = purchase(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let why = refused(loyalty(&server.url, &args).await);
            assert!(why.contains(flag), "{extra:?}: {why}");
            assert!(
                !why.contains("_minor"),
                "{extra:?} names an API field: {why}"
            );
        }
        let refund = refused(
            loyalty(
                &server.url,
                &[
                    "till",
                    "refund",
                    "--purchase",
                    "R-1",
                    "--amount=-1",
                    "--receipt",
                    "B-1",
                ],
            )
            .await,
        );
        assert!(refund.contains("--amount"), "{refund}");
        let ledger = |v: loyalty_core::api::MemberView| v.card.map_or(0, |c| c.ledger.len());
        assert_eq!(
            ledger(server.operator().member(&member).await.unwrap()),
            entries_before,
            "nothing was booked"
        );

        // A well-formed amount goes through.
        let args = purchase(&["--total", "12.3"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(loyalty(&server.url, &args).await);
        assert!(ledger(server.operator().member(&member).await.unwrap()) > entries_before);
    });
}

#[test]
fn till_scan_reads_a_png_without_zbarimg() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let store = dir.path().join("phone.db");
        let member = enrolled(&server, &store).await;
        let png = dir.path().join("code.png");
        let s = store.to_str().unwrap();
        let shown = json(
            loyalty(
                &server.url,
                &[
                    "device",
                    "--store",
                    s,
                    "--json",
                    "code",
                    "--png",
                    png.to_str().unwrap(),
                ],
            )
            .await,
        );
        // zbarimg, the independent decoder, agrees on what the PNG holds (when installed; the
        // test command installs it and sets LOYALTY_REQUIRE_ZBAR).
        if let Some(read) = zbar(&png) {
            assert_eq!(read, shown["code"].as_str().unwrap());
        }
        // The till program, with no zbarimg anywhere on its PATH.
        let empty = tempfile::tempdir().unwrap();
        let out = tokio::task::spawn_blocking({
            let png = png.clone();
            let url = server.url.clone();
            move || {
                Command::new(loyalty_bin())
                    .args(["till", "--json", "scan", "--png"])
                    .arg(&png)
                    .env("PATH", empty.path())
                    .env("LOYALTY_SERVER", url)
                    .env("LOYALTY_TILL_TOKEN", TILL_TOKEN)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let scan = json(out);
        assert_eq!(scan["member_id"].as_str(), Some(member.as_str()));

        // A file that is not a whole picture is refused clearly.
        let cut = dir.path().join("cut.png");
        let whole = QrMatrix::encode("X").unwrap().to_png(1).unwrap();
        std::fs::write(&cut, &whole[..40]).unwrap();
        let why = refused(
            loyalty(
                &server.url,
                &["till", "scan", "--png", cut.to_str().unwrap()],
            )
            .await,
        );
        assert!(
            why.contains("cut.png") && why.contains("not a PNG"),
            "{why}"
        );
    });
}

/// What zbarimg reads in the PNG; `None` when it is not installed and not required.
fn zbar(png: &Path) -> Option<String> {
    let out = match Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(png)
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            assert!(
                std::env::var_os("LOYALTY_REQUIRE_ZBAR").is_none(),
                "zbarimg is required (LOYALTY_REQUIRE_ZBAR) but not installed"
            );
            return None;
        }
    };
    assert!(out.status.success(), "zbarimg found no code");
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end_matches('\n')
            .to_string(),
    )
}

#[test]
fn device_commands_refuse_a_store_that_does_not_exist() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("phnoe.db");
        for command in [
            &["offers"][..],
            &["card"],
            &["sync"],
            &["reset"],
            &["activate", "x"],
        ] {
            let mut args = vec!["device", "--store", typo.to_str().unwrap()];
            args.extend_from_slice(command);
            let why = refused(loyalty("http://127.0.0.1:9", &args).await);
            assert!(
                why.contains(typo.to_str().unwrap()) && why.contains("enroll"),
                "{command:?}: {why}"
            );
            assert!(!typo.exists(), "{command:?} created a store");
        }
    });
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("phone.db");
    drop(loyalty_core::Device::open(&store).unwrap());
    // A pipe whose reader is already gone, as after `| head -1` has read its line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(loyalty_bin())
        .args(["device", "--store", store.to_str().unwrap(), "offers"])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.is_empty(), "{err}");
    assert!(
        out.status.success() || out.status.signal() == Some(SIGPIPE),
        "{:?}",
        out.status
    );
}

/// SIGPIPE's number on Linux.
const SIGPIPE: i32 = 13;

#[test]
fn an_unreachable_server_is_named_not_dumped() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        // A port nothing listens on: bound, then let go.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let store = dir.path().join("phone.db");
        let why = refused(
            loyalty(
                &closed,
                &[
                    "device",
                    "--store",
                    store.to_str().unwrap(),
                    "enroll",
                    "--code",
                    "ABCD-EFGH-JKMN",
                ],
            )
            .await,
        );
        assert!(
            why.contains(&format!("the server at {closed} is not reachable")),
            "{why}"
        );
        assert!(!why.contains("error sending request"), "{why}");
        let why = refused(loyalty(&closed, &["admin", "create-member"]).await);
        assert!(
            why.contains(&format!("the server at {closed} is not reachable")),
            "{why}"
        );
        assert!(!why.contains("error sending request"), "{why}");
    });
}

#[test]
fn a_revoked_phone_resets_and_enrolls_again_with_its_points() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let store = dir.path().join("phone.db");
        let s = store.to_str().unwrap();
        let member = enrolled(&server, &store).await;
        let session = session(&server, &store).await;
        ok(loyalty(
            &server.url,
            &[
                "till",
                "purchase",
                "--session",
                &session,
                "--total",
                "42.50",
                "--receipt",
                "R-1",
            ],
        )
        .await);
        ok(loyalty(&server.url, &["device", "--store", s, "sync"]).await);
        let balance = json(loyalty(&server.url, &["device", "--store", s, "--json", "card"]).await)
            ["balance"]
            .as_i64()
            .unwrap();
        assert!(balance > 0);

        let op = server.operator();
        let device_id = loyalty_core::store::Store::open(&store)
            .unwrap()
            .credentials()
            .unwrap()
            .unwrap()
            .device_id;
        op.revoke_device(&device_id).await.unwrap();
        let why = refused(loyalty(&server.url, &["device", "--store", s, "sync"]).await);
        assert!(why.contains("reset"), "the refusal says what to do: {why}");
        let code = op.activation_code(&member).await.unwrap().activation_code;
        let why = refused(
            loyalty(
                &server.url,
                &["device", "--store", s, "enroll", "--code", &code],
            )
            .await,
        );
        assert!(
            why.contains("already enrolled") && why.contains("reset"),
            "{why}"
        );

        ok(loyalty(&server.url, &["device", "--store", s, "reset"]).await);
        ok(loyalty(
            &server.url,
            &["device", "--store", s, "enroll", "--code", &code],
        )
        .await);
        let card = json(loyalty(&server.url, &["device", "--store", s, "--json", "card"]).await);
        assert_eq!(card["balance"].as_i64(), Some(balance));
    });
}

#[test]
fn a_message_must_say_its_kind() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let member = server
            .operator()
            .create_member(None)
            .await
            .unwrap()
            .member_id;
        let why = refused(
            loyalty(
                &server.url,
                &[
                    "admin",
                    "message",
                    &member,
                    "--channel",
                    "email",
                    "--subject",
                    "BIG SALE",
                ],
            )
            .await,
        );
        assert!(why.contains("--kind"), "{why}");
        assert!(
            server
                .operator()
                .deliveries(None, Some(&member))
                .await
                .unwrap()
                .is_empty(),
            "nothing was sent"
        );
        ok(loyalty(
            &server.url,
            &[
                "admin",
                "message",
                &member,
                "--kind",
                "service",
                "--subject",
                "Welcome",
            ],
        )
        .await);
        assert_eq!(
            server
                .operator()
                .deliveries(None, Some(&member))
                .await
                .unwrap()
                .len(),
            1
        );
    });
}

/// `loyalty bench` drives real devices, tills and long polls against a running server, from its
/// own process, and reports every kind of operation it ran with its percentiles.
#[test]
fn bench_loads_a_running_server_and_reports_each_operation() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_args(
        &dir.path().join("s.db"),
        "127.0.0.1:0",
        &["--enroll-per-minute", "0"],
    );
    rt().block_on(async {
        let out = ok(loyalty(
            &server.url,
            &[
                "bench",
                "--devices",
                "3",
                "--tills",
                "2",
                "--shoppers",
                "2",
                "--pollers",
                "2",
                "--duration-s",
                "2",
            ],
        )
        .await);
        for op in ["sync", "scan", "purchase"] {
            let row = out
                .lines()
                .find(|l| l.starts_with(&format!("| {op} |")))
                .unwrap_or_else(|| panic!("no {op} row in {out}"));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let count: u64 = cells[2].parse().unwrap();
            assert!(count > 0, "{row}");
            assert!(
                cells[4].ends_with(" ms") && cells[6].ends_with(" ms"),
                "{row}"
            );
        }
        // Two tills with two shoppers each scan at least once each.
        let scans = out.lines().find(|l| l.starts_with("| scan |")).unwrap();
        assert!(
            scans
                .split('|')
                .nth(2)
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
                >= 2
        );
        assert!(out.contains("errors: 0"), "{out}");
    });
}

/// A bench against a server that limits enrollments per address says how to lift the limit, and
/// one against no server names the address.
#[test]
fn bench_setup_failures_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("s.db"), "127.0.0.1:0");
    rt().block_on(async {
        let err = refused(
            loyalty(
                &server.url,
                &["bench", "--devices", "40", "--duration-s", "1"],
            )
            .await,
        );
        assert!(err.contains("--enroll-per-minute 0"), "{err}");
        let gone = "http://127.0.0.1:9";
        let err = refused(loyalty(gone, &["bench", "--duration-s", "1"]).await);
        assert!(err.contains("127.0.0.1:9"), "{err}");
    });
}

/// `loyalty server --config FILE`: the file's settings apply (its database, JSON log lines), a
/// variable beats the file, and a bad value in the file is refused with the flag's own message.
#[test]
fn the_server_reads_a_configuration_file_under_flags_and_variables() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("from-file.db");
    let config = dir.path().join("server.toml");
    let settings = format!(
        "listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\nlog_format = \"json\"\nmax-in-flight = 64\n",
        database.display()
    );
    std::fs::write(&config, &settings).unwrap();
    let server = |config: &Path, env: &[(&str, &str)]| {
        let mut command = Command::new(loyalty_bin());
        command
            .args(["server", "--config"])
            .arg(config)
            .env("LOYALTY_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("LOYALTY_TILL_TOKEN", TILL_TOKEN)
            .env_remove("LOYALTY_LOG_FORMAT")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        command.spawn().unwrap()
    };
    // Started, then stopped: what it logged until the first line after "listening".
    let first_log_lines = |mut child: std::process::Child| -> Vec<String> {
        let out = BufReader::new(child.stdout.take().unwrap());
        let listening = out.lines().next().unwrap().unwrap();
        assert!(
            listening.starts_with("listening on http://127.0.0.1:"),
            "{listening}"
        );
        let stopped = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        assert!(stopped.unwrap().success());
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(child.wait().unwrap().success());
        err.lines().map(str::to_string).collect()
    };

    let lines = first_log_lines(server(&config, &[]));
    assert!(database.exists(), "the file's database was used");
    assert!(!lines.is_empty());
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
        assert!(
            !line.contains('\u{1b}'),
            "no colour codes off a terminal: {line}"
        );
    }

    let lines = first_log_lines(server(&config, &[("LOYALTY_LOG_FORMAT", "text")]));
    assert!(lines.iter().any(|l| l.contains("loyalty server listening")));
    assert!(lines.iter().all(|l| !l.starts_with('{')), "{lines:?}");

    std::fs::write(&config, format!("{settings}max-connections = 0\n")).unwrap();
    let refused = server(&config, &[]).wait_with_output().unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--max-connections"), "{message}");

    std::fs::write(&config, "max-conections = 5\n").unwrap();
    let refused = server(&config, &[]).wait_with_output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("`max-conections` is not a setting"),
        "{message}"
    );
}

/// `loyalty admin backup` copies the database of a running server that keeps taking purchases:
/// every purchase answered before the backup began is in the copy, a server started on the copy
/// shows that balance, and a second backup onto the same file is refused.
#[test]
fn a_backup_taken_under_purchases_restores_every_answered_purchase() {
    if backend::on_postgres() {
        // SQLite's online backup; PostgreSQL is backed up with its own tools (docs/deployment.md).
        return;
    }
    rt().block_on(async {
        let s = shop().await;
        for points in 10..15 {
            s.earn(points).await;
        }
        let copy = s.dir.path().join("backup.db");
        let database = s.server.database.display().to_string();
        let target = copy.display().to_string();
        // Purchases go on while the copy is made.
        let busy = async {
            for points in 1..6 {
                s.earn(points).await;
            }
        };
        let args = [
            "admin",
            "--json",
            "backup",
            "--database",
            &database,
            "--to",
            &target,
        ];
        let (out, ()) = tokio::join!(loyalty(&s.server.url, &args), busy);
        let report = json(out);
        assert!(report["pages"].as_i64().unwrap() > 0, "{report}");
        let again = loyalty(
            &s.server.url,
            &["admin", "backup", "--database", &database, "--to", &target],
        )
        .await;
        assert!(refused(again).contains("never overwrites"));

        // On the shop's clock, so the postings are no older or newer than on the first server.
        let restored = TestServer::start_with(copy, "127.0.0.1:0", s.clock.clone(), |_| {}).await;
        let view = restored.operator().member(&s.member_id).await.unwrap();
        let balance = view.card.unwrap().balance;
        assert!(
            (60..=75).contains(&balance),
            "the five purchases before the backup, and some of those during it: {balance}"
        );
    });
}
