//! A PostgreSQL primary with a synchronous standby on loopback, for the failover tests: plain
//! streaming replication between two Debian PostgreSQL 15 servers in one temporary folder, each
//! on its own free port, run as `nobody` as in [`crate::postgres`].
//!
//! The primary runs with `synchronous_commit=on` and `synchronous_standby_names=standby`: a
//! commit returns only once the standby has written it to its WAL, so a commit a client was told
//! about survives the primary's loss. The standby is a `pg_basebackup -R` of the primary, with a
//! replication slot and `application_name=standby` in its `primary_conninfo`; [`Cluster::start`]
//! waits until the primary reports it `sync`. The standby itself names no synchronous standby:
//! once promoted it runs alone, and a commit on it must not wait for a node that is gone.
//!
//! Both run with `fsync=off`, for speed. That does not weaken what the tests show: they kill
//! processes (SIGKILL of a whole server, as when its machine vanishes), and what a killed process
//! wrote is in the operating system's page cache, which survives it; fsync only matters when the
//! machine itself loses power, which no test here simulates.
//!
//! Clients reach whichever node is the primary through [`Cluster::url`], a multi-host libpq URL
//! with `target_session_attrs=read-write`: the client tries each host in turn and keeps the one
//! that accepts writes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::postgres::{bin, free_port, must_run, psql};

/// The standby's name: its `application_name`, its slot, and the primary's
/// `synchronous_standby_names`.
const STANDBY: &str = "standby";
/// The role the standby replicates as.
const REPLICATOR: &str = "replicator";
/// How long the harness waits for a server to reach a state before it gives up (hang guard).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// One PostgreSQL server of the cluster.
struct Node {
    data: PathBuf,
    port: u16,
    /// `postgres` options it starts with (`pg_ctl -o`), so a restart keeps them.
    options: String,
    log: PathBuf,
    up: bool,
}

impl Node {
    fn new(dir: &Path, name: &str, port: u16, settings: &[&str]) -> Self {
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            dir.display()
        );
        for setting in settings {
            options += &format!(" -c {setting}");
        }
        Self {
            data: dir.join(name),
            port,
            options,
            log: dir.join(format!("{name}.log")),
            up: false,
        }
    }

    fn start(&mut self) {
        must_run(
            nobody("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-o", &self.options, "-l"])
                .arg(&self.log)
                .args(["-w", "start"]),
        );
        self.up = true;
    }

    fn stop(&mut self, mode: &str) {
        must_run(
            nobody("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", mode, "-w", "stop"]),
        );
        self.up = false;
    }

    /// The URL of `database` on this node alone.
    fn url(&self, database: &str) -> String {
        format!("postgres://loyalty@127.0.0.1:{}/{database}", self.port)
    }
}

/// A primary and its synchronous standby, stopped when dropped.
pub struct Cluster {
    nodes: [Node; 2],
    /// Which node takes writes.
    primary: usize,
    /// The node replicating from the primary, while there is one.
    standby: Option<usize>,
    // Last: the folder goes once the servers in it are stopped.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Initialises and starts the primary, makes the standby from a base backup of it, starts
    /// that, and returns once the primary reports the standby synchronous.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        must_run(Command::new("chown").arg("nobody").arg(dir.path()));
        let synchronous = format!("synchronous_standby_names={STANDBY}");
        let mut primary = Node::new(
            dir.path(),
            "primary",
            free_port(),
            &[
                "wal_level=replica",
                "max_wal_senders=4",
                "max_replication_slots=4",
                "synchronous_commit=on",
                &synchronous,
            ],
        );
        must_run(
            nobody("initdb")
                .args(["-A", "trust", "-U", "loyalty", "--no-sync", "-D"])
                .arg(&primary.data),
        );
        // initdb's own pg_hba.conf already admits replication from loopback; say it for the role
        // the standby uses, so the rule does not depend on that default.
        let hba = primary.data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        rules += &format!("host replication {REPLICATOR} 127.0.0.1/32 trust\n");
        std::fs::write(&hba, rules).expect("write pg_hba.conf");
        primary.start();
        // Committed locally: there is no standby yet for the commit to wait for.
        psql(
            &primary.url("postgres"),
            &format!(
                "SET synchronous_commit = local; CREATE ROLE {REPLICATOR} WITH REPLICATION LOGIN"
            ),
        );

        // A quicker reconnection than the default 5 s after the primary restarts: until the
        // standby is back, every commit on the primary waits for it.
        let mut standby = Node::new(
            dir.path(),
            STANDBY,
            free_port(),
            &["wal_retrieve_retry_interval=200ms"],
        );
        let source = format!(
            "host=127.0.0.1 port={} user={REPLICATOR} application_name={STANDBY}",
            primary.port
        );
        // -R writes standby.signal and primary_conninfo (with the application name the primary
        // knows it by); -C -S a slot, so the primary keeps the WAL the standby has not received.
        must_run(
            nobody("pg_basebackup")
                .args(["-d", &source, "-D"])
                .arg(&standby.data)
                .args(["-R", "-X", "stream", "-C", "-S", STANDBY])
                .args(["--checkpoint=fast", "--no-sync"]),
        );
        standby.start();
        let cluster = Self {
            nodes: [primary, standby],
            primary: 0,
            standby: Some(1),
            _dir: dir,
        };
        cluster.wait_until_synchronous();
        cluster
    }

    /// `database` on whichever node accepts writes: both hosts, `target_session_attrs=read-write`.
    pub fn url(&self, database: &str) -> String {
        let [a, b] = &self.nodes;
        format!(
            "postgres://loyalty@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
            a.port, b.port
        )
    }

    /// A new database made on the primary (the standby gets it by replication); its
    /// [`Cluster::url`].
    pub fn database(&self, name: &str) -> String {
        psql(
            &self.primary_url("postgres"),
            &format!("CREATE DATABASE {name}"),
        );
        self.url(name)
    }

    /// `database` on the primary alone.
    pub fn primary_url(&self, database: &str) -> String {
        self.nodes[self.primary].url(database)
    }

    /// `database` on the standby alone.
    pub fn standby_url(&self, database: &str) -> String {
        self.nodes[self.standby.expect("a standby")].url(database)
    }

    /// The primary's port, and the standby's while there is one.
    pub fn ports(&self) -> (u16, Option<u16>) {
        (
            self.nodes[self.primary].port,
            self.standby.map(|s| self.nodes[s].port),
        )
    }

    /// SIGKILL of the primary's postmaster and of every process it started, at once: its machine
    /// is gone. Nothing is shut down or flushed, and no client gets another answer from it.
    pub fn kill_primary(&mut self) {
        let node = &mut self.nodes[self.primary];
        let pid = postmaster_pid(&node.data).expect("the primary is running");
        // The postmaster first, so it cannot restart the others; a child may end before its own
        // signal (a backend notices the postmaster gone), so `kill`'s "no such process" is fine:
        // the wait below is what checks that all have ended.
        let mut pids = vec![pid];
        pids.extend(children(pid));
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .output();
        wait_until("the primary's processes to end", || {
            pids.iter().all(|p| !alive(*p))
        });
        node.up = false;
    }

    /// Promotes the standby (`pg_ctl promote`) and returns once it takes writes. It has no
    /// standby of its own afterwards.
    pub fn promote_standby(&mut self) {
        let standby = self.standby.take().expect("a standby to promote");
        must_run(
            nobody("pg_ctl")
                .arg("-D")
                .arg(&self.nodes[standby].data)
                .args(["-w", "promote"]),
        );
        let url = self.nodes[standby].url("postgres");
        wait_until("the promoted standby to leave recovery", || {
            psql(&url, "SELECT pg_is_in_recovery()") == "f"
        });
        self.primary = standby;
    }

    /// Stops the primary as an operator would (`pg_ctl stop -m fast`: clients are disconnected,
    /// everything committed is kept).
    pub fn stop_primary(&mut self) {
        self.nodes[self.primary].stop("fast");
    }

    /// Starts the primary again with its settings, and waits until its standby (if any) is
    /// synchronous again, so commits do not wait on it.
    pub fn start_primary(&mut self) {
        self.nodes[self.primary].start();
        self.wait_until_synchronous();
    }

    /// [`Cluster::stop_primary`] then [`Cluster::start_primary`]: PostgreSQL restarted, as for
    /// an upgrade of its configuration.
    pub fn restart_primary(&mut self) {
        self.stop_primary();
        self.start_primary();
    }

    /// Stops the standby (`-m fast`): the primary's commits wait until it is back.
    pub fn stop_standby(&mut self) {
        self.nodes[self.standby.expect("a standby")].stop("fast");
    }

    /// Starts the standby again; it catches up from its slot and is synchronous again.
    pub fn start_standby(&mut self) {
        self.nodes[self.standby.expect("a standby")].start();
        self.wait_until_synchronous();
    }

    /// Waits until the primary reports its standby (if any) as a synchronous one.
    fn wait_until_synchronous(&self) {
        if self.standby.is_none() {
            return;
        }
        let url = self.primary_url("postgres");
        let query = format!(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY}'"
        );
        wait_until("the standby to be synchronous", || {
            psql(&url, &query) == "sync"
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.iter().filter(|n| n.up) {
            let _ = nobody("pg_ctl")
                .arg("-D")
                .arg(&node.data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// A PostgreSQL program run as `nobody` (PostgreSQL refuses root).
fn nobody(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "nobody", "--"]).arg(bin(program));
    command
}

/// Polls `done` every 50 ms; panics after [`HANG_GUARD`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < HANG_GUARD, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The postmaster's pid, from the first line of `postmaster.pid`.
fn postmaster_pid(data: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// The processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// Whether `pid` is a live process (not gone, not a zombie waiting to be reaped).
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// A process's state letter and parent, from `/proc/<pid>/stat` (after the command name, which
/// may itself hold spaces and parentheses).
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = text.get(text.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}
