//! A real PostgreSQL server for the tests. The test command starts one for the whole run and names
//! it in `LOYALTY_TEST_PG` (a URL whose user may create databases); without it, each [`Postgres`]
//! starts a server of its own in a temporary folder and stops it when dropped. Every test takes a
//! fresh database of its own ([`Postgres::database`]), so tests never see each other's rows.
//!
//! PostgreSQL refuses to run as root: the folder belongs to `nobody` and the server runs as that
//! user (`runuser`), on a free loopback port with its socket in the folder.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where Debian puts PostgreSQL 15's server programs; `LOYALTY_PG_BIN` overrides it.
pub(crate) fn bin(program: &str) -> PathBuf {
    let dir =
        std::env::var("LOYALTY_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    PathBuf::from(dir).join(program)
}

pub enum Postgres {
    /// The test command's server.
    Shared { url: String },
    /// A server of this test's own.
    Owned {
        url: String,
        data: PathBuf,
        _dir: tempfile::TempDir,
    },
}

impl Postgres {
    /// The test command's server, or a new one.
    pub fn get() -> Self {
        match std::env::var("LOYALTY_TEST_PG") {
            Ok(url) if !url.is_empty() => Self::Shared { url },
            _ => Self::start(),
        }
    }

    /// Starts a server of its own (initdb, then pg_ctl on a free port).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let data = dir.path().join("data");
        must_run(Command::new("chown").args(["nobody", dir.path().to_str().unwrap()]));
        let initdb = bin("initdb");
        must_run(
            Command::new("runuser")
                .args(["-u", "nobody", "--"])
                .arg(&initdb)
                .args(["-A", "trust", "-U", "loyalty", "--no-sync", "-D"])
                .arg(&data),
        );
        let port = free_port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        must_run(
            Command::new("runuser")
                .args(["-u", "nobody", "--"])
                .arg(bin("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(dir.path().join("log"))
                .args(["-w", "start"]),
        );
        Self::Owned {
            url: format!("postgres://loyalty@127.0.0.1:{port}/postgres"),
            data,
            _dir: dir,
        }
    }

    /// The server's URL (its `postgres` database).
    pub fn url(&self) -> &str {
        match self {
            Self::Shared { url } | Self::Owned { url, .. } => url,
        }
    }

    /// A new, empty database on the server; its URL.
    pub fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql(&format!("CREATE DATABASE {name}"));
        let base = self.url();
        let at = base.rfind('/').expect("a database in the URL");
        format!("{}/{name}", &base[..at])
    }

    /// Runs `sql` with psql on the server's `postgres` database; its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        psql(self.url(), sql)
    }
}

/// Runs `sql` with psql against `url`; its unaligned, tuples-only output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-X", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .expect("psql (postgresql-client) is installed");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Self::Owned { data, .. } = self {
            let _ = Command::new("runuser")
                .args(["-u", "nobody", "--"])
                .arg(bin("pg_ctl"))
                .arg("-D")
                .arg(&*data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

pub(crate) fn must_run(command: &mut Command) {
    let out = command.output().expect("run a PostgreSQL program");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
