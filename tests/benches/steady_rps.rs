//! "Nothing changed" syncs per second from an outside load process, against an axum hello-world
//! POST in the same run (issue 12 §7: at least a third of it). A release `loyalty server` process
//! on SQLite holds 1,000 members, each with a settled phone; each phone's no-op sync is captured
//! as it went over the wire (a `WireTap` in front of the server: request line, headers, body) and
//! `wrk` replays the 1,000 requests round-robin over keep-alive connections. The hello-world is an
//! axum server with one `POST /` route answering a short text, on a runtime in this process, loaded
//! by the same `wrk` with a body of the same size. The two are measured alternately, twice. As a
//! control, the hello-world is also loaded with the replay itself (it answers every path): the
//! same bytes through the same Lua, which costs `wrk` more a request than its static body.
//!
//! Needs `wrk` (Debian's `wrk`) and a release `loyalty` next to this bench:
//! `cargo build --release --bin loyalty && cargo bench -p loyalty-tests --bench steady_rps`.
//! The figures go to `docs/benchmarks.md`. With `STEADY_CALLGRIND=FILE` it then restarts the
//! server on the same database under `valgrind --tool=callgrind`, replays the no-op syncs for
//! 20 s, and leaves the instruction profile in FILE (`callgrind_annotate FILE`): where the time of
//! "nothing changed" goes, independent of the machine's noise.

use std::io::Write;
use std::process::Command;

use loyalty_core::Device;
use loyalty_tests::*;

const DEVICES: usize = 1_000;
const CONNECTIONS: &str = "64";
const SECONDS: &str = "10";

/// Replays the length-prefixed raw requests of the file named by its first argument, round-robin
/// from a random start per thread.
const REPLAY_LUA: &str = r#"
local requests = {}
local i = 0
init = function(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = string.find(data, "\n", pos, true)
    local len = tonumber(string.sub(data, pos, nl - 1))
    table.insert(requests, string.sub(data, nl + 1, nl + len))
    pos = nl + 1 + len
  end
  i = math.random(#requests)
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"#;

/// What wrk reported: requests per second and answers that were not 2xx/3xx.
struct Run {
    per_second: f64,
    not_ok: u64,
}

fn wrk(url: &str, script: &std::path::Path, args: &[&str]) -> Run {
    let out = Command::new("wrk")
        .args(["-t2", "-c", CONNECTIONS, "-d", &format!("{SECONDS}s"), "-s"])
        .arg(script)
        .arg(url)
        .arg("--")
        .args(args)
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    Run {
        per_second: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Requests/sec in wrk's output: {text}")),
        not_ok: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start_with_args(
        &dir.path().join("server.db"),
        "127.0.0.1:0",
        &["--enroll-per-minute", "0"],
    );
    let requests = rt.block_on(capture_no_ops(&server, dir.path()));
    let replay = dir.path().join("replay.lua");
    std::fs::write(&replay, REPLAY_LUA).expect("script");
    let requests_file = dir.path().join("requests.bin");
    let mut file = std::fs::File::create(&requests_file).expect("requests file");
    for r in &requests {
        writeln!(file, "{}", r.len()).expect("write");
        file.write_all(r).expect("write");
    }
    drop(file);
    let body_len = requests[0].len() - head_len(&requests[0]);

    let hello = rt.block_on(hello_world());
    let hello_lua = dir.path().join("hello.lua");
    std::fs::write(
        &hello_lua,
        format!("wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", {body_len})\n"),
    )
    .expect("script");

    println!(
        "| run | axum hello-world POST | no-op syncs ({DEVICES} settled phones) | ratio \
         | hello-world, the replay's requests | ratio to it |"
    );
    println!("|---|---|---|---|---|---|");
    let requests_arg = requests_file.to_string_lossy().to_string();
    for run in 1..=2 {
        let base = wrk(&hello, &hello_lua, &[]);
        let sync = wrk(&server.url, &replay, &[&requests_arg]);
        let replayed = wrk(&hello, &replay, &[&requests_arg]);
        assert_eq!(
            (base.not_ok, sync.not_ok, replayed.not_ok),
            (0, 0, 0),
            "refused requests"
        );
        println!(
            "| {run} | {:.0}/s | {:.0}/s | {:.3} | {:.0}/s | {:.3} |",
            base.per_second,
            sync.per_second,
            sync.per_second / base.per_second,
            replayed.per_second,
            sync.per_second / replayed.per_second
        );
    }
    if let Ok(out) = std::env::var("STEADY_CALLGRIND") {
        profile(
            server,
            &dir.path().join("server.db"),
            &out,
            &replay,
            &requests_arg,
        );
    }
}

/// Replays the no-op syncs against the server restarted under callgrind at the same address.
fn profile(
    server: ServerProcess,
    db: &std::path::Path,
    out: &str,
    replay: &std::path::Path,
    requests: &str,
) {
    let listen = server.url.trim_start_matches("http://").to_string();
    server.kill9();
    let out_arg = format!("--callgrind-out-file={out}");
    let wrapped = ServerProcess::start_wrapped(
        &[
            "valgrind",
            "--tool=callgrind",
            "--max-threads=2000",
            &out_arg,
        ],
        db,
        &listen,
        &["--enroll-per-minute", "0"],
    );
    let run = Command::new("wrk")
        .args(["-t1", "-c8", "-d20s", "-s"])
        .arg(replay)
        .arg(&wrapped.url)
        .arg("--")
        .arg(requests)
        .output()
        .expect("wrk");
    println!("{}", String::from_utf8_lossy(&run.stdout));
    // A graceful stop, so callgrind writes its profile.
    let _ = Command::new("kill").arg(wrapped.pid().to_string()).status();
    std::thread::sleep(std::time::Duration::from_secs(10));
}

/// Each phone's no-op sync, as it went over the wire.
async fn capture_no_ops(server: &ServerProcess, dir: &std::path::Path) -> Vec<Vec<u8>> {
    let addr = server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("the server's address");
    let tap = WireTap::start(addr).await;
    let op = server.operator();
    let mut requests = Vec::with_capacity(DEVICES);
    for i in 0..DEVICES {
        let member = op.create_member(None).await.expect("member");
        let phone = Device::open(dir.join(format!("phone-{i}.db"))).expect("phone");
        phone
            .enroll(&tap.url, &member.activation_code, "phone")
            .await
            .expect("enroll");
        // Settled: the second sync stores the summaries the first one did not find.
        phone.sync().await.expect("sync");
        phone.sync().await.expect("sync");
        tap.take();
        let report = phone.sync().await.expect("sync");
        assert!(report.changed.is_empty(), "{report:?}");
        requests.push(tap.take().0);
    }
    requests
}

/// The length of an HTTP request's head (through the blank line).
fn head_len(request: &[u8]) -> usize {
    request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(request.len(), |p| p + 4)
}

/// An axum server answering `POST /` with a short text, on this process's runtime; its URL. Every
/// other request gets the same answer, so the replay's requests can load it too.
async fn hello_world() -> String {
    let app = axum::Router::new()
        .route("/", axum::routing::post(|| async { "hello" }))
        .fallback(|| async { "hello" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
