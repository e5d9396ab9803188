//! Several daemons (separate `docsync run` processes) on one folder with one
//! state in PostgreSQL (issue 16): every file uploaded exactly once, the
//! accounts' 50-file quota counted over every daemon's uploads, and SIGKILLs
//! of either daemon losing and duplicating nothing.
//!
//! Each test gets a fresh database in this binary's throwaway cluster
//! (`docsync-pgtest`: Unix socket only). Without PostgreSQL the tests say so
//! loudly and pass, unless `DOCSYNC_REQUIRE_POSTGRES=1` (CI), where they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use docsync_pgtest::{database_or_skip, own_cluster_or_skip, Database};
use rand::{Rng, SeedableRng};

use crate::crash::{assert_exactly_once, local_files, seed, LocalFile};
use crate::harness::{wait_until, Daemon, TestSandbox, Workspace};

/// The quota the daemons must respect across hosts (Moov's, per account).
const QUOTA: usize = 50;
/// The quota reason's words (`store::upload::quota_reason`).
const QUOTA_REASON: &str = "the most it may hold is 50";

/// One workspace (the shared folder), one sandbox, one database, and a
/// connection of the test's own to read the shared state.
struct Shared {
    sandbox: TestSandbox,
    w: Workspace,
    db: Database,
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Shared {
    fn new(db: Database) -> Shared {
        let sandbox = TestSandbox::start();
        let w = Workspace::with_sandbox(&sandbox);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = connect(&runtime, &db);
        Shared {
            sandbox,
            w,
            db,
            runtime,
            client,
        }
    }

    /// `name.toml`: the shared folder, the shared state, this daemon's own
    /// state directory and instance name.
    fn write_config(&self, name: &str) -> PathBuf {
        self.write_config_with(name, "")
    }

    /// [`Shared::write_config`] with `state_extra` in `[state]`.
    fn write_config_with(&self, name: &str, state_extra: &str) -> PathBuf {
        self.w.write_file(
            &format!("{name}.toml"),
            &format!(
                r#"state_dir = "state-{name}"
quiet_window = "200ms"
poll_interval = "300ms"
retry_initial = "200ms"
concurrency = 4

[state]
url = "{}"
instance = "{name}"
{state_extra}

[[folder]]
path = "inbox"
"#,
                self.db.url
            ),
        )
    }

    /// `docsync run` as daemon `name` (its own state directory).
    fn spawn(&self, name: &str) -> Daemon {
        self.spawn_with(name, &[])
    }

    /// [`Shared::spawn`] with `args` after `run`'s own.
    fn spawn_with(&self, name: &str, args: &[&str]) -> Daemon {
        let mut cmd = self.cmd(name, &["run"]);
        cmd.args(args);
        self.w.spawn_command(cmd)
    }

    /// `docsync COMMAND…` as daemon `name` would run it: its configuration
    /// and its own state directory.
    fn cmd(&self, name: &str, command: &[&str]) -> std::process::Command {
        let mut cmd = self.w.cmd(command);
        cmd.args(["--config", &format!("{name}.toml")]).env(
            "DOCSYNC_STATE_DIR",
            self.w.path().join(format!("state-{name}")),
        );
        cmd
    }

    /// A shared folder holding `files`, and the configuration of daemon `name`.
    fn with_files(db: Database, files: &[LocalFile], name: &str) -> Shared {
        let shared = Shared::new(db);
        for f in files {
            shared.w.drop_file(&f.rel, &f.bytes);
        }
        shared.write_config(name);
        shared
    }

    /// A daemon per name, each with its configuration written.
    fn spawn_all(&self, names: &[impl AsRef<str>]) -> Vec<Daemon> {
        names
            .iter()
            .map(|name| {
                self.write_config(name.as_ref());
                self.spawn(name.as_ref())
            })
            .collect()
    }

    /// `docsync status --json ARGS` on the shared state, parsed.
    fn status(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut cmd = self.w.cmd(["status", "--json"]);
        cmd.args(args).env("DOCSYNC_STATE_URL", &self.db.url);
        let out = crate::harness::run_command(cmd, Duration::from_secs(60));
        assert_eq!(out.code(), Some(0), "{out}");
        match serde_json::from_str(&out.stdout) {
            Ok(serde_json::Value::Array(rows)) => rows,
            other => panic!("status --json did not print an array: {other:?}\n{out}"),
        }
    }

    /// The same, with a new connection of the test's own (after the server
    /// restarted).
    fn reconnected(mut self) -> Shared {
        self.client = connect(&self.runtime, &self.db);
        self
    }

    fn try_query(&self, sql: &str) -> Result<Vec<tokio_postgres::Row>, String> {
        self.runtime
            .block_on(self.client.query(sql, &[]))
            .map_err(|e| format!("{sql}: {e:?}"))
    }

    fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.try_query(sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Live rows per state (an error before the daemons created the schema).
    fn try_states(&self) -> Result<BTreeMap<String, i64>, String> {
        let rows = self.try_query(
            "SELECT state, COUNT(*) FROM files \
             WHERE state NOT IN ('superseded', 'deleted') GROUP BY state",
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn states(&self) -> BTreeMap<String, i64> {
        self.try_states().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Wait until `files` live rows are all decided (approved, rejected or
    /// invalid).
    fn wait_all_decided(&self, files: usize, daemons: &[&Daemon]) {
        wait_until(
            Duration::from_secs(240),
            "every file decided in the shared state",
            || {
                let states = self.try_states()?;
                let total: i64 = states.values().sum();
                let decided: i64 = ["approved", "rejected", "invalid"]
                    .iter()
                    .map(|s| states.get(*s).copied().unwrap_or(0))
                    .sum();
                if total == files as i64 && decided == total {
                    return Ok(());
                }
                let logs: String = daemons
                    .iter()
                    .map(|d| tail(&d.log(), 15))
                    .collect::<Vec<_>>()
                    .join("\n---\n");
                let failed: Vec<String> = self
                    .try_query(
                        "SELECT id, state, last_error FROM files WHERE state = 'failed' LIMIT 5",
                    )?
                    .iter()
                    .map(|r| {
                        let (id, state, err): (i64, String, Option<String>) =
                            (r.get(0), r.get(1), r.get(2));
                        let events = self.events_where(&format!("f.id = {id}"));
                        format!("row {id} {state}: {err:?}\n{events}")
                    })
                    .collect();
                let twice = if failed.is_empty() {
                    String::new()
                } else {
                    self.held_twice()
                };
                Err(format!(
                    "{states:?} of {files} files\nfailed: {failed:#?}\n{twice}--- logs\n{logs}"
                ))
            },
        );
    }

    /// The contents the sandbox holds more than once, each with its rows'
    /// events: what to read when an upload met a full account.
    fn held_twice(&self) -> String {
        let mut by_sha: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in self.sandbox.server_files() {
            by_sha
                .entry(f.sha256.clone())
                .or_default()
                .push(format!("{} {}", f.account_id, f.file_name));
        }
        let mut out = String::new();
        for (sha, copies) in by_sha.iter().filter(|(_, c)| c.len() > 1) {
            out.push_str(&format!("held twice: {copies:?}\n"));
            out.push_str(&self.events_where(&format!("f.sha256 = '{sha}'")));
        }
        out
    }

    /// The events of the rows `filter` picks (SQL over `files f`), a line
    /// each: who moved which row from what to what, and why.
    fn events_where(&self, filter: &str) -> String {
        let sql = format!(
            "SELECT e.file_id, e.from_state, e.to_state, e.reason, e.instance \
             FROM events e JOIN files f ON f.id = e.file_id WHERE {filter} ORDER BY e.id"
        );
        let mut out = String::new();
        for r in self.try_query(&sql).unwrap_or_default() {
            let (id, from, to, why, who): (i64, Option<String>, String, String, Option<String>) =
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            out.push_str(&format!("  row {id}: {from:?} -> {to} by {who:?}: {why}\n"));
        }
        out
    }

    /// Intents committed per instance (first attempts and retries).
    fn intents_by_instance(&self) -> BTreeMap<String, i64> {
        self.try_intents_by_instance()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Shared::intents_by_instance`], an error before the schema exists.
    fn try_intents_by_instance(&self) -> Result<BTreeMap<String, i64>, String> {
        Ok(self
            .try_query(
                "SELECT instance, COUNT(*) FROM events WHERE to_state = 'uploading' \
             AND from_state IN ('stable', 'retrying') GROUP BY instance",
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// Every normal file exactly once on the server; of the quota account's
    /// files exactly [`QUOTA`] (none twice), the rest `invalid` with the
    /// quota's reason.
    fn assert_exactly_once_within_quota(&self, normal: &[LocalFile], over: &[LocalFile]) {
        let server = self.sandbox.server_files();
        let over_account = &over[0].account;
        let (on_over, on_normal): (Vec<_>, Vec<_>) = server
            .into_iter()
            .partition(|f| &f.account_id == over_account);
        assert_exactly_once(normal, &on_normal);
        let mut copies: HashMap<&str, usize> = HashMap::new();
        for f in &on_over {
            *copies.entry(f.sha256.as_str()).or_default() += 1;
        }
        let known: Vec<&str> = over.iter().map(|f| f.sha256.as_str()).collect();
        assert!(
            copies.iter().all(|(sha, n)| *n == 1 && known.contains(sha)),
            "the quota account's files on the server: {copies:?}"
        );
        assert_eq!(on_over.len(), QUOTA, "the quota account holds {QUOTA}");
        let refused = self.query(&format!(
            "SELECT decision_reason, last_error, \
             (SELECT reason FROM events e WHERE e.file_id = f.id ORDER BY e.id DESC LIMIT 1) \
             FROM files f WHERE account = '{over_account}' AND state = 'invalid'"
        ));
        assert_eq!(
            refused.len(),
            over.len() - QUOTA,
            "rows refused by the quota"
        );
        for r in &refused {
            let reason: Option<String> = r.get(2);
            assert!(
                reason.as_deref().is_some_and(|t| t.contains(QUOTA_REASON)),
                "{reason:?}"
            );
        }
    }
}

/// A connection of the test's own to `db`.
fn connect(runtime: &tokio::runtime::Runtime, db: &Database) -> tokio_postgres::Client {
    runtime.block_on(async {
        let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .expect("the test's own connection");
        tokio::spawn(conn);
        client
    })
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// 40 accounts of 50 files, and one account with 3 files more than its quota.
fn files(prefix: &str) -> (Vec<LocalFile>, Vec<LocalFile>) {
    let normal = local_files(prefix, 40, QUOTA);
    let over = local_files(&format!("{prefix}-over"), 1, QUOTA + 3);
    (normal, over)
}

/// `n` daemons on one folder of 2,053 files (dropped before they start, so
/// every daemon's first scan finds them all and they compete for each one).
fn daemons_share_one_folder(test: &str, n: usize) {
    let Some(db) = database_or_skip(test) else {
        return;
    };
    let shared = Shared::new(db);
    let (normal, over) = files(test);
    for f in normal.iter().chain(&over) {
        shared.w.drop_file(&f.rel, &f.bytes);
    }
    let names: Vec<String> = (0..n).map(|i| format!("host-{i}")).collect();
    let daemons = shared.spawn_all(&names);
    let refs: Vec<&Daemon> = daemons.iter().collect();
    shared.wait_all_decided(normal.len() + over.len(), &refs);

    shared.assert_exactly_once_within_quota(&normal, &over);
    // the work was shared: every daemon committed intents
    let intents = shared.intents_by_instance();
    for name in &names {
        assert!(
            intents.get(name).copied().unwrap_or(0) > 0,
            "{name} sent nothing: {intents:?}"
        );
    }
    let total: i64 = intents.values().sum();
    assert_eq!(
        total as usize,
        normal.len() + QUOTA,
        "one intent per file sent (no fault, no retry): {intents:?}"
    );
    for d in daemons {
        let status = d.stop(Duration::from_secs(20));
        assert!(status.success(), "{status}");
    }
}

#[test]
fn two_daemons_share_one_folder_and_upload_each_file_once() {
    daemons_share_one_folder("two_daemons", 2);
}

#[test]
fn three_daemons_share_one_folder_and_upload_each_file_once() {
    daemons_share_one_folder("three_daemons", 3);
}

/// Two daemons on one folder, files arriving in waves; one of them (chosen
/// at random) SIGKILLed at a random moment 12 times and started again. The
/// seed is printed; `DOCSYNC_CRASH_SEED=<u64>` replays it.
#[test]
fn sigkill_either_of_two_daemons_loses_and_duplicates_nothing() {
    let Some(db) = database_or_skip("two_daemons_killed") else {
        return;
    };
    let seed = seed();
    let kills = 12;
    eprintln!("shared crash: seed {seed} (replay with DOCSYNC_CRASH_SEED={seed}); {kills} kills");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let shared = Shared::new(db);
    shared.sandbox.set_faults(docsync_sandbox::FaultConfig {
        latency_ms: 20,
        ..docsync_sandbox::FaultConfig::default()
    });
    let files = local_files("two_daemons_killed", 12, 40);
    let names = ["host-a", "host-b"];
    for name in names {
        shared.write_config(name);
    }
    let waves: Vec<&[LocalFile]> = files.chunks(files.len().div_ceil(kills)).collect();
    let mut daemons: Vec<Option<Daemon>> = names.iter().map(|n| Some(shared.spawn(n))).collect();
    for cycle in 0..kills {
        let before = shared.sandbox.count("uploadFile");
        if let Some(wave) = waves.get(cycle) {
            for f in *wave {
                shared.w.drop_file(&f.rel, &f.bytes);
            }
        }
        let victim = rng.gen_range(0..names.len());
        let wait_for = rng.gen_range(1..=20);
        let extra = rng.gen_range(0..200);
        // some uploads of this wave first (or all of them), then the kill
        wait_until(
            Duration::from_secs(60),
            "uploads to kill in the middle of",
            || {
                let sent = shared.sandbox.count("uploadFile") - before;
                let dropped = waves.iter().take(cycle + 1).map(|w| w.len()).sum::<usize>();
                if sent >= wait_for || shared.sandbox.server_files().len() >= dropped {
                    Ok(())
                } else {
                    Err(format!("{sent} of {wait_for} uploads"))
                }
            },
        );
        std::thread::sleep(Duration::from_millis(extra));
        if let Some(d) = daemons[victim].take() {
            d.kill();
        }
        eprintln!(
            "kill {}: {} after {wait_for} uploads + {extra} ms",
            cycle + 1,
            names[victim]
        );
        daemons[victim] = Some(shared.spawn(names[victim]));
    }
    let refs: Vec<&Daemon> = daemons.iter().flatten().collect();
    shared.wait_all_decided(files.len(), &refs);
    assert_exactly_once(&files, &shared.sandbox.server_files());
    // nothing left leased to a dead process, nothing uploading
    let states = shared.states();
    assert_eq!(states.get("uploading"), None, "{states:?}");
}

/// Every file the server holds is recorded on a row (its remote ID), and
/// that row went through a committed intent: nothing was sent without one.
fn assert_every_upload_had_an_intent(shared: &Shared) {
    let recorded: HashMap<String, i64> = shared
        .query(
            "SELECT f.remote_id, (SELECT COUNT(*) FROM events e WHERE e.file_id = f.id \
             AND e.to_state = 'uploading' AND e.from_state IN ('stable', 'retrying')) \
             FROM files f WHERE f.remote_id IS NOT NULL",
        )
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for f in shared.sandbox.server_files() {
        let intents = recorded.get(&f.file_id).copied().unwrap_or(0);
        assert!(
            intents >= 1,
            "{} on the server without an intent",
            f.file_id
        );
    }
}

/// Two daemons syncing when PostgreSQL stops (connections cut) for a few
/// seconds, twice: they wait, go on when it is back, and nothing is lost,
/// duplicated or sent without a committed intent.
#[test]
fn postgres_stopped_mid_sync_daemons_wait_and_go_on() {
    let test = "postgres_stopped";
    let Some(cluster) = own_cluster_or_skip(test) else {
        return;
    };
    let db = cluster.fresh_database(test).expect("a database");
    let shared = Shared::new(db);
    shared.sandbox.set_faults(docsync_sandbox::FaultConfig {
        latency_ms: 20,
        ..docsync_sandbox::FaultConfig::default()
    });
    let files = local_files(test, 12, 50);
    for f in &files {
        shared.w.drop_file(&f.rel, &f.bytes);
    }
    let daemons = shared.spawn_all(&["host-a", "host-b"]);
    for (uploads, outage) in [(60, Duration::from_secs(3)), (250, Duration::from_secs(2))] {
        wait_until(
            Duration::from_secs(120),
            "uploads before the outage",
            || {
                let sent = shared.sandbox.count("uploadFile");
                if sent >= uploads {
                    Ok(())
                } else {
                    Err(format!("{sent} of {uploads} uploads"))
                }
            },
        );
        cluster.stop_server().expect("stopping PostgreSQL");
        let during = shared.sandbox.count("uploadFile");
        // the outage itself: its length is what is tested, not a wait for a condition
        std::thread::sleep(outage);
        cluster.start_server().expect("starting PostgreSQL again");
        eprintln!(
            "outage of {outage:?} after {uploads} uploads: {} requests sent while it lasted",
            shared.sandbox.count("uploadFile") - during
        );
    }
    // the test's own connection died with the server: a new one
    let shared = shared.reconnected();
    let refs: Vec<&Daemon> = daemons.iter().collect();
    shared.wait_all_decided(files.len(), &refs);
    assert_exactly_once(&files, &shared.sandbox.server_files());
    assert_every_upload_had_an_intent(&shared);
    for d in daemons {
        let status = d.stop(Duration::from_secs(20));
        assert!(status.success(), "a daemon did not go on: {status}");
    }
}

/// A daemon killed for good with uploads in flight: once its lease (2 s
/// here) has expired, the other daemon takes its `uploading` rows over, asks
/// the server about each, and finishes everything: nothing lost, nothing
/// sent twice.
#[test]
fn a_dead_daemons_uploads_are_taken_over_after_its_lease() {
    let Some(db) = database_or_skip("taken_over") else {
        return;
    };
    let shared = Shared::new(db);
    // slow answers: the kill finds requests in flight
    shared.sandbox.set_faults(docsync_sandbox::FaultConfig {
        latency_ms: 300,
        ..docsync_sandbox::FaultConfig::default()
    });
    let files = local_files("taken_over", 4, 30);
    for f in &files {
        shared.w.drop_file(&f.rel, &f.bytes);
    }
    shared.write_config_with("host-a", "lease = \"2s\"");
    shared.write_config_with("host-b", "lease = \"2s\"");
    let a = shared.spawn("host-a");
    wait_until(Duration::from_secs(60), "host-a's first uploads", || {
        let mine = shared
            .try_intents_by_instance()?
            .get("host-a")
            .copied()
            .unwrap_or(0);
        if mine >= 6 {
            Ok(())
        } else {
            Err(format!("{mine} intents by host-a"))
        }
    });
    let a_pid = a.id();
    a.kill();
    let orphans: Vec<i64> = shared
        .query("SELECT id FROM files WHERE state = 'uploading' AND lease_owner = 'host-a'")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !orphans.is_empty(),
        "the kill found no upload of host-a in flight"
    );
    // `docsync status` names the dead daemon as the holder of its uploads
    let held = shared.status(&["--state", "uploading"]);
    assert_eq!(held.len(), orphans.len(), "{held:#?}");
    for row in &held {
        assert_eq!(row["held_by"]["instance"], "host-a", "{row:#}");
        assert_eq!(row["held_by"]["pid"], a_pid, "{row:#}");
    }
    let b = shared.spawn("host-b");
    shared.wait_all_decided(files.len(), &[&b]);
    assert_exactly_once(&files, &shared.sandbox.server_files());
    // once each: host-b took host-a's lease over (on a loaded machine host-b
    // may also outlive its own lease on a row and take it over from itself,
    // asking the server again: that is its own event, not counted here)
    for id in &orphans {
        let taken = shared.query(&format!(
            "SELECT COUNT(*) FROM events WHERE file_id = {id} AND instance = 'host-b' \
             AND reason LIKE 'the lease of host-a expired%host-b took it over%'"
        ));
        let n: i64 = taken[0].get(0);
        assert_eq!(
            n, 1,
            "row {id}: host-b's takeover from host-a is recorded once"
        );
    }
    // `docsync history` says which daemon made each change: host-a sent it,
    // host-b took it over
    let path = held[0]["path"].as_str().unwrap_or_default().to_owned();
    let out = shared.w.run([
        "history",
        "--json",
        "--config",
        "host-b.toml",
        &format!("inbox/{path}"),
    ]);
    assert_eq!(out.code(), Some(0), "{out}");
    let history: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let events = history[0]["events"].as_array().cloned().unwrap_or_default();
    let first_intent = events.iter().find(|e| e["to"] == "uploading");
    assert_eq!(
        first_intent.map(|e| &e["by"]),
        Some(&serde_json::json!("host-a")),
        "{history:#}"
    );
    let takeover = events.iter().find(|e| {
        e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("took it over"))
    });
    assert_eq!(
        takeover.map(|e| &e["by"]),
        Some(&serde_json::json!("host-b")),
        "{history:#}"
    );
    // nothing is held once every file is decided; and retry works here too
    assert!(shared
        .status(&[])
        .iter()
        .all(|row| row["held_by"].is_null()));
    let out = shared
        .w
        .run(["retry", "--all-failed", "--config", "host-b.toml"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("retry: 0 files moved"), "{out}");
}

/// The status page (`--admin`) on the shared state: the counts and the
/// problems of every daemon's rows, and a file's page naming the daemon that
/// made each change.
#[test]
fn the_status_page_reads_the_shared_state() {
    let Some(db) = database_or_skip("status_page") else {
        return;
    };
    let files = local_files("status_page", 1, 2);
    let shared = Shared::with_files(db, &files, "host-a");
    let account = &files[0].account;
    shared
        .w
        .drop_file(&format!("{account}/business_verification/empty.pdf"), b"");
    let daemon = shared.spawn_with("host-a", &["--admin", "127.0.0.1:0"]);
    let url = crate::admin::admin_url(&daemon);
    shared.wait_all_decided(files.len() + 1, &[&daemon]);

    let (status, _, body) = crate::admin::get(&format!("{url}/readyz"));
    assert_eq!(status, 200, "{body}");
    // the overview lists the invalid file among the problems
    let (status, _, page) = crate::admin::get(&format!("{url}/"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("empty.pdf"), "{page}");
    let found =
        shared.query("SELECT id FROM files WHERE convert_from(path, 'UTF8') LIKE '%/empty.pdf'");
    let id: i64 = found[0].get(0);
    let (status, _, page) = crate::admin::get(&format!("{url}/files/{id}"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"<td class="by">host-a</td>"#), "{page}");
    assert!(page.contains("Retry this file"), "{page}");
    // a list says who holds each file (nobody, once decided)
    let (status, _, page) = crate::admin::get(&format!("{url}/files?states=invalid"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<th>held by</th>"), "{page}");
    assert!(page.contains(r#"<td class="held"></td>"#), "{page}");
}

/// Every daemon sharing a state must use the API its rows were synced
/// against: the first records it (`status` shows it), a daemon configured
/// with another server is refused before it sends anything.
#[test]
fn a_daemon_with_another_api_is_refused_by_the_shared_state() {
    let Some(db) = database_or_skip("other_api") else {
        return;
    };
    let files = local_files("other_api", 1, 3);
    let shared = Shared::with_files(db, &files, "host-a");
    let a = shared.spawn("host-a");
    shared.wait_all_decided(files.len(), &[&a]);
    drop(a);
    let cmd = shared.cmd("host-a", &["status"]);
    let out = crate::harness::run_command(cmd, Duration::from_secs(60));
    assert_eq!(out.code(), Some(0), "{out}");
    let api_line = out.stdout.lines().next().unwrap_or_default().to_owned();
    assert!(
        api_line.starts_with("API: ") && api_line.contains("127.0.0.1"),
        "{out}"
    );

    // host-b points at another server
    let other = TestSandbox::start();
    shared.write_config("host-b");
    let mut cmd = shared.cmd("host-b", &["sync", "--once", "--timeout", "30s"]);
    cmd.env("DOCSYNC_API_URL", other.url());
    let out = crate::harness::run_command(cmd, Duration::from_secs(60));
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("synced against another API"), "{out}");
    assert_eq!(
        other.count("uploadFile"),
        0,
        "nothing sent to the other API"
    );
}

/// Two daemons sharing a state, each with the same decision hook: every
/// decision (whichever daemon made it) runs the hook exactly once, on one of
/// them, with the state the shared rows hold.
#[test]
fn two_daemons_run_each_decisions_hook_once() {
    let Some(db) = database_or_skip("shared_hooks") else {
        return;
    };
    let files = local_files("shared_hooks", 4, 30);
    let shared = Shared::with_files(db, &files, "host-a");
    let account = &files[0].account;
    shared
        .w
        .drop_file(&format!("{account}/business_verification/empty.pdf"), b"");
    let script = shared.w.write_file(
        "hooks/heard.sh",
        "#!/bin/sh\nprintf '%s %s %s\\n' \"$DOCSYNC_EVENT_ID\" \"$DOCSYNC_STATE\" \"$DOCSYNC_PATH\" >> \"$1\"\n",
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let names = ["host-a", "host-b"];
    let logs: Vec<PathBuf> = names
        .iter()
        .map(|name| shared.w.path().join(format!("heard-{name}.log")))
        .collect();
    let daemons: Vec<Daemon> = names
        .iter()
        .zip(&logs)
        .map(|(name, log)| {
            let config = shared.write_config(name);
            let mut text = std::fs::read_to_string(&config).unwrap();
            text.push_str(&format!(
                "\n[hooks]\non_decision = [{:?}, {:?}]\n",
                script.display().to_string(),
                log.display().to_string()
            ));
            std::fs::write(&config, text).unwrap();
            shared.spawn(name)
        })
        .collect();
    let refs: Vec<&Daemon> = daemons.iter().collect();
    let total = files.len() + 1;
    shared.wait_all_decided(total, &refs);
    let heard = || -> Vec<String> {
        logs.iter()
            .flat_map(|log| {
                std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    wait_until(Duration::from_secs(60), "every decision heard", || {
        let lines = heard();
        if lines.len() >= total {
            Ok(())
        } else {
            Err(format!("{} of {total} heard", lines.len()))
        }
    });
    for d in daemons {
        let status = d.stop(Duration::from_secs(20));
        assert!(status.success(), "{status}");
    }

    let lines = heard();
    let mut by_path: BTreeMap<String, (String, String)> = BTreeMap::new();
    for line in &lines {
        let mut parts = line.splitn(3, ' ');
        let (uid, state, path) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        assert_eq!(uid.len(), 32, "{line}");
        let before = by_path.insert(path.to_owned(), (uid.to_owned(), state.to_owned()));
        assert!(before.is_none(), "{path} heard twice: {lines:#?}");
    }
    assert_eq!(by_path.len(), total, "{lines:#?}");
    let rows = shared.query(
        "SELECT convert_from(path, 'UTF8'), state FROM files \
         WHERE state NOT IN ('superseded', 'deleted')",
    );
    for r in rows {
        let (path, state): (String, String) = (r.get(0), r.get(1));
        let heard_state = by_path.get(&path).map(|(_, s)| s.as_str());
        assert_eq!(heard_state, Some(state.as_str()), "{path}");
    }
    let undelivered: i64 =
        shared.query("SELECT COUNT(*) FROM hook_outbox WHERE delivered_at IS NULL")[0].get(0);
    assert_eq!(undelivered, 0);
}

/// `docsync baseline` on the shared state: the files present are recorded
/// `skipped` (the API not contacted; `history` says the baseline did it), a
/// second baseline adds nothing, and a daemon then uploads only the files
/// added afterwards.
#[test]
fn a_baseline_in_the_shared_state_leaves_only_new_files_to_upload() {
    let Some(db) = database_or_skip("shared_baseline") else {
        return;
    };
    let present = local_files("shared_baseline", 1, 4);
    let shared = Shared::with_files(db, &present, "host-a");
    let out =
        crate::harness::run_command(shared.cmd("host-a", &["baseline"]), Duration::from_secs(60));
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout
            .contains("4 files, 4 recorded skipped, 0 already known"),
        "{out}"
    );
    assert!(
        shared.sandbox.request_log().is_empty(),
        "the API is not contacted"
    );
    let again =
        crate::harness::run_command(shared.cmd("host-a", &["baseline"]), Duration::from_secs(60));
    assert_eq!(again.code(), Some(0), "{again}");
    assert!(
        again
            .stdout
            .contains("4 files, 0 recorded skipped, 4 already known"),
        "{again}"
    );
    let by: Vec<String> = shared
        .query("SELECT DISTINCT instance FROM events WHERE to_state = 'skipped'")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(by.len(), 1, "{by:?}");
    assert!(by[0].ends_with(": docsync baseline"), "{by:?}");

    let added = local_files("shared_baseline_added", 1, 2);
    for f in &added {
        shared.w.drop_file(&f.rel, &f.bytes);
    }
    let daemon = shared.spawn("host-a");
    wait_until(
        Duration::from_secs(120),
        "the added files pending or decided",
        || {
            let states = shared.try_states()?;
            let sent: i64 = ["pending", "approved", "rejected"]
                .iter()
                .map(|s| states.get(*s).copied().unwrap_or(0))
                .sum();
            if sent == added.len() as i64 {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    );
    let status = daemon.stop(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert_exactly_once(&added, &shared.sandbox.server_files());
    assert_eq!(
        shared.states().get("skipped"),
        Some(&4),
        "the baseline's files stay skipped"
    );
}

/// `--dry-run` on the shared state: its verdicts read every daemon's rows
/// (a file already sent is skipped, one more file for a full account is
/// refused by the quota, a new file for another account would upload), and
/// nothing is written to the database, not even the command as an instance.
#[test]
fn a_dry_run_on_the_shared_state_decides_from_it_and_writes_nothing() {
    let Some(db) = database_or_skip("shared_dry_run") else {
        return;
    };
    let full = local_files("shared_dry_run", 1, QUOTA);
    let shared = Shared::with_files(db, &full, "host-a");
    let a = shared.spawn("host-a");
    shared.wait_all_decided(full.len(), &[&a]);
    let status = a.stop(Duration::from_secs(20));
    assert!(status.success(), "{status}");

    let one_more = local_files("shared_dry_run", 1, QUOTA + 1).pop().unwrap();
    shared.w.drop_file(&one_more.rel, &one_more.bytes);
    let elsewhere = local_files("shared_dry_run_other", 1, 1).pop().unwrap();
    shared.w.drop_file(&elsewhere.rel, &elsewhere.bytes);
    let snapshot = |s: &Shared| -> Vec<i64> {
        [
            "SELECT COUNT(*) FROM files",
            "SELECT COUNT(*) FROM events",
            "SELECT COUNT(*) FROM instances",
            "SELECT COALESCE(MAX(updated_at), 0) FROM files",
        ]
        .iter()
        .map(|sql| s.query(sql)[0].get(0))
        .collect()
    };
    shared.write_config("host-b");
    let before = snapshot(&shared);
    let requests = shared.sandbox.request_log().len();

    let rows = wait_until(
        Duration::from_secs(30),
        "no file still being written",
        || {
            let out = crate::harness::run_command(
                shared.cmd("host-b", &["sync", "--once", "--dry-run", "--json"]),
                Duration::from_secs(60),
            );
            let rows: Vec<serde_json::Value> = match serde_json::from_str(&out.stdout) {
                Ok(serde_json::Value::Array(rows)) => rows,
                other => panic!("--json did not print an array: {other:?}\n{out}"),
            };
            if rows.iter().any(|r| r["verdict"] == "wait") {
                Err(format!("{out}"))
            } else {
                Ok(rows)
            }
        },
    );
    let verdict = |rel: &str| -> (String, String) {
        let row = rows
            .iter()
            .find(|r| r["path"] == rel)
            .unwrap_or_else(|| panic!("{rel} not planned: {rows:#?}"));
        (
            row["verdict"].as_str().unwrap_or_default().to_owned(),
            row["reason"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(rows.len(), full.len() + 2, "{rows:#?}");
    assert_eq!(verdict(&full[0].rel).0, "skip", "already sent by host-a");
    let (refused, why) = verdict(&one_more.rel);
    assert_eq!(refused, "refuse", "{why}");
    assert!(why.contains(QUOTA_REASON), "{why}");
    assert_eq!(verdict(&elsewhere.rel).0, "upload");
    assert_eq!(
        snapshot(&shared),
        before,
        "the shared state was not written"
    );
    assert_eq!(shared.sandbox.request_log().len(), requests, "nothing sent");
}
