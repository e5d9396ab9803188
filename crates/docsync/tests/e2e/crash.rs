//! Crashes through the real binary: nothing lost, nothing twice.
//!
//! - [`sigkill_at_random_moments_loses_and_duplicates_nothing`]: `docsync run`
//!   over 540 files in 12 accounts, killed with SIGKILL at seeded random moments
//!   20 times (a random time after start, or after a random number of uploads)
//!   while the in-process sandbox keeps running, restarted each time with more
//!   files arriving, then finished by a `sync --once`. Every file must be on the
//!   server exactly once (the sandbox's own database, by content hash, account
//!   and name), every row pending or decided, and every row a kill left
//!   `uploading` must have its reconciliation in the events table.
//!   The seed is printed; `DOCSYNC_CRASH_SEED=<u64>` replays it.
//!   `DOCSYNC_SOAK=1` runs the long soak instead: 2000 files in 40 accounts and
//!   60 kills (several minutes in a debug build).
//! - [`sandbox_killed_mid_upload_and_restarted_on_the_same_port`]: the server
//!   goes away under the daemon (connections reset, then refused) three times
//!   and comes back on the same port with the same data.
//! - [`sigterm_during_a_burst_stops_within_the_grace_period`]: the graceful
//!   path: the daemon exits within its grace period, leaves no row `uploading`,
//!   and a restart uploads the rest exactly once without any reconciliation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use docsync::store::{Event, FileRow, ListFilter, State, Store};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use crate::harness::server_store::ServerFile;
use crate::harness::{account_id, wait_until, TestSandbox, Workspace};

/// The reasons crash reconciliation records (see `docsync::reconcile`).
const RECONCILED: &str = "reconciled after a restart";
const RECONCILED_FOUND: &str = "reconciled after a restart: the upload had reached the server";

/// A file the test put into the folder.
#[derive(Debug, Clone)]
pub(crate) struct LocalFile {
    pub(crate) account: String,
    pub(crate) name: String,
    /// Relative to the inbox: `<account>/business_verification/<name>`.
    pub(crate) rel: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) sha256: String,
}

/// `accounts × per_account` files with unique contents: PDFs of a few sizes and
/// CSVs; every ninth is named so that the sandbox rejects it.
pub(crate) fn local_files(prefix: &str, accounts: usize, per_account: usize) -> Vec<LocalFile> {
    let mut files = Vec::new();
    for a in 0..accounts {
        let account = account_id(prefix, a);
        for i in 0..per_account {
            let n = a * 1000 + i;
            let (bytes, ext) = if n % 3 == 0 {
                (format!("id,amount\n{n},{}\n", n * 7).into_bytes(), "csv")
            } else {
                let mut pdf = format!("%PDF-1.4\n% {prefix} file {n}\n").into_bytes();
                // some larger files, so that uploads take a while
                pdf.extend(std::iter::repeat_n(b'%', (n % 5) * 16 * 1024));
                pdf.extend_from_slice(b"\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n");
                (pdf, "pdf")
            };
            let stem = if i % 9 == 4 { "reject" } else { "doc" };
            let name = format!("{stem}-{n:05}.{ext}");
            let rel = format!("{account}/business_verification/{name}");
            let sha256 = hex::encode(Sha256::digest(&bytes));
            files.push(LocalFile {
                account: account.clone(),
                name,
                rel,
                bytes,
                sha256,
            });
        }
    }
    files
}

/// docsync.toml: the `<account>/<purpose>/<file>` layout, fast timings.
fn write_config(w: &Workspace) {
    w.write_file(
        "docsync.toml",
        r#"state_dir = "state"
quiet_window = "200ms"
poll_interval = "300ms"
retry_initial = "200ms"
concurrency = 4

[[folder]]
path = "inbox"
"#,
    );
}

fn now_ms() -> i64 {
    docsync::model::now_ms()
}

fn all_rows(store: &Store) -> Vec<FileRow> {
    store
        .list(&ListFilter {
            include_history: true,
            limit: 1_000_000,
            ..ListFilter::default()
        })
        .unwrap()
}

/// What the server holds compared with the folder: every local file exactly
/// once (same account, same name, the bytes it received hash to the marker the
/// daemon sent). Returns `sha256 -> server file`.
pub(crate) fn assert_exactly_once(
    local: &[LocalFile],
    server: &[ServerFile],
) -> HashMap<String, ServerFile> {
    let mut by_sha: BTreeMap<&str, Vec<&ServerFile>> = BTreeMap::new();
    for f in server {
        by_sha.entry(f.sha256.as_str()).or_default().push(f);
    }
    let duplicated: Vec<_> = by_sha
        .iter()
        .filter(|(_, copies)| copies.len() > 1)
        .map(|(sha, copies)| {
            let names: Vec<_> = copies.iter().map(|f| &f.file_name).collect();
            format!("{sha}: {names:?}")
        })
        .collect();
    let missing: Vec<_> = local
        .iter()
        .filter(|f| !by_sha.contains_key(f.sha256.as_str()))
        .map(|f| f.rel.as_str())
        .collect();
    let known: HashMap<&str, &LocalFile> = local.iter().map(|f| (f.sha256.as_str(), f)).collect();
    let strangers: Vec<_> = server
        .iter()
        .filter(|f| !known.contains_key(f.sha256.as_str()))
        .map(|f| format!("{} {} {}", f.account_id, f.file_name, f.sha256))
        .collect();
    assert!(
        duplicated.is_empty() && missing.is_empty() && strangers.is_empty(),
        "server vs folder: {} duplicated {duplicated:#?}\n{} missing {missing:#?}\n{} not from the folder {strangers:#?}",
        duplicated.len(),
        missing.len(),
        strangers.len()
    );
    assert_eq!(server.len(), local.len());
    let mut out = HashMap::new();
    for f in server {
        let want = known[f.sha256.as_str()];
        assert_eq!(f.account_id, want.account, "{f:?}");
        assert_eq!(f.file_name, want.name, "{f:?}");
        assert_eq!(
            f.marker().as_deref(),
            Some(f.sha256.as_str()),
            "the bytes the server got do not match the marker sent with them: {f:?}"
        );
        out.insert(f.sha256.clone(), f.clone());
    }
    out
}

/// Every row is live, pending or decided, and agrees with the server; returns
/// the rows by id.
fn assert_rows_settled(
    store: &Store,
    local: &[LocalFile],
    server: &HashMap<String, ServerFile>,
) -> HashMap<i64, FileRow> {
    let rows = all_rows(store);
    assert_eq!(rows.len(), local.len(), "one row per file: {rows:#?}");
    let by_rel: HashMap<&str, &LocalFile> = local.iter().map(|f| (f.rel.as_str(), f)).collect();
    for row in &rows {
        let file = by_rel
            .get(row.path_display().as_str())
            .unwrap_or_else(|| panic!("a row for no local file: {row:#?}"));
        assert!(
            matches!(
                row.state,
                State::Pending | State::Approved | State::Rejected
            ),
            "not pending or decided: {row:#?}\n{:#?}",
            store.events(row.id).unwrap()
        );
        assert_eq!(
            row.sha256.as_deref(),
            Some(file.sha256.as_str()),
            "{row:#?}"
        );
        assert_eq!(
            row.remote_id.as_deref(),
            Some(server[&file.sha256].file_id.as_str()),
            "{row:#?}"
        );
        let want = if file.name.starts_with("reject") {
            State::Rejected
        } else {
            State::Approved
        };
        if row.state != State::Pending {
            assert_eq!(row.state, want, "{row:#?}");
        }
        assert_event_chain(row, &store.events(row.id).unwrap());
    }
    rows.into_iter().map(|r| (r.id, r)).collect()
}

/// The events of a row are a legal walk of the state machine ending in its state.
fn assert_event_chain(row: &FileRow, events: &[Event]) {
    assert!(!events.is_empty(), "no events: {row:#?}");
    assert_eq!(events[0].from_state, None, "{events:#?}");
    for pair in events.windows(2) {
        assert_eq!(pair[1].from_state, Some(pair[0].to_state), "{events:#?}");
        assert!(
            pair[0].to_state.can_transition_to(pair[1].to_state),
            "{events:#?}"
        );
    }
    assert_eq!(
        events.last().map(|e| e.to_state),
        Some(row.state),
        "{events:#?}"
    );
}

fn soak() -> bool {
    std::env::var_os("DOCSYNC_SOAK").is_some_and(|v| !v.is_empty() && v != "0")
}

pub(crate) fn seed() -> u64 {
    match std::env::var("DOCSYNC_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("DOCSYNC_CRASH_SEED={s:?} is not a u64: {e}")),
        Err(_) => rand::random(),
    }
}

/// One SIGKILL: when, and which rows it left `uploading`.
struct Kill {
    at_ms: i64,
    trigger: String,
    uploading: Vec<i64>,
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let (accounts, per_account, kills) = if soak() { (40, 50, 60) } else { (12, 45, 20) };
    let seed = seed();
    eprintln!(
        "crash: seed {seed} (replay with DOCSYNC_CRASH_SEED={seed}); {} files, {kills} kills",
        accounts * per_account
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let sandbox = TestSandbox::with_decision_delay(Duration::from_millis(300));
    // answers take 20 ms, so that a kill finds uploads in flight more often
    sandbox.set_faults(docsync_sandbox::FaultConfig {
        latency_ms: 20,
        ..docsync_sandbox::FaultConfig::default()
    });
    let w = Workspace::with_sandbox(&sandbox);
    write_config(&w);
    let files = local_files("crash", accounts, per_account);
    // a first big wave, then more files arriving around every restart
    let first = files.len() / 3;
    let rest = files.len() - first;
    let mut waves: Vec<&[LocalFile]> = vec![&files[..first]];
    let per_wave = rest.div_ceil(kills);
    waves.extend(files[first..].chunks(per_wave));
    let mut dropped = 0;
    let drop_wave = |wave: &[LocalFile], dropped: &mut usize| {
        for f in wave {
            w.drop_file(&f.rel, &f.bytes);
        }
        *dropped += wave.len();
    };

    let mut done: Vec<Kill> = Vec::new();
    for cycle in 0..kills {
        let wave = waves.get(cycle).copied().unwrap_or(&[]);
        let (before_start, after_start) = wave.split_at(wave.len() / 2);
        drop_wave(before_start, &mut dropped);
        let uploads_before = sandbox.count("uploadFile");
        let daemon = w.spawn(["run"]);
        drop_wave(after_start, &mut dropped);

        let trigger = if rng.gen_bool(0.3) {
            // anywhere: start-up, reconciliation, the first scan, hashing, uploads
            let ms = rng.gen_range(0..1500);
            std::thread::sleep(Duration::from_millis(ms));
            format!("{ms} ms after start")
        } else {
            // in the middle of the uploads (of those still to be made)
            let left = dropped.saturating_sub(sandbox.server_files().len()).max(2);
            let k = rng.gen_range(1..=40.min(left - 1));
            let extra = rng.gen_range(0..25);
            wait_until(
                Duration::from_secs(60),
                "uploads to kill the daemon in the middle of",
                || {
                    let sent = sandbox.count("uploadFile") - uploads_before;
                    let all_there = sandbox.server_files().len() >= dropped;
                    if sent >= k || all_there {
                        Ok(())
                    } else {
                        Err(format!("{sent} of {k} uploads\n--- log\n{}", daemon.log()))
                    }
                },
            );
            std::thread::sleep(Duration::from_millis(extra));
            format!("{k} uploads + {extra} ms after start")
        };
        daemon.kill();
        let at_ms = now_ms();
        // killed before the database was created: no database; otherwise a
        // complete one, whatever the moment of the kill
        let uploading = match w.db_path().exists() {
            false => Vec::new(),
            true => match Store::open_read_only(&w.db_path()) {
                Ok(store) => store.uploading().unwrap().iter().map(|r| r.id).collect(),
                Err(e) => panic!("the state database after a SIGKILL ({trigger}): {e}"),
            },
        };
        done.push(Kill {
            at_ms,
            trigger,
            uploading,
        });
    }
    for wave in waves.iter().skip(kills) {
        drop_wave(wave, &mut dropped);
    }
    assert_eq!(dropped, files.len());

    // the last start: everything settles
    let out = w.run(["sync", "--once", "--timeout", "120s"]);
    let rejected = files
        .iter()
        .filter(|f| f.name.starts_with("reject"))
        .count();
    let summary = format!(
        "sync: {} files: {} approved, {rejected} rejected",
        files.len(),
        files.len() - rejected
    );
    assert!(out.stdout.contains(&summary), "wanted {summary:?}\n{out}");
    assert_eq!(
        out.code(),
        Some(1),
        "rejected files make exit code 1\n{out}"
    );

    // nothing lost, nothing twice
    let server = assert_exactly_once(&files, &sandbox.server_files());
    let store = w.store();
    let rows = assert_rows_settled(&store, &files, &server);

    // Every row a kill left `uploading` was reconciled: the next thing recorded
    // for it after that kill is its reconciliation (a kill before the next
    // daemon got that far leaves it for the one after). No row was reconciled
    // that no kill had left `uploading`.
    let (mut found, mut resent) = (0, 0);
    for (id, row) in &rows {
        let events = store.events(*id).unwrap();
        let mut matched = std::collections::HashSet::new();
        for kill in done.iter().filter(|k| k.uploading.contains(id)) {
            let next = events
                .iter()
                .find(|e| e.at >= kill.at_ms)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: nothing after the kill: {events:#?}",
                        row.path_display()
                    )
                });
            assert!(
                next.from_state == Some(State::Uploading) && next.reason.starts_with(RECONCILED),
                "{}: left uploading by the kill at {}, then {next:#?}\nall: {events:#?}",
                row.path_display(),
                kill.at_ms
            );
            matched.insert(next.id);
        }
        for event in events.iter().filter(|e| e.reason.starts_with(RECONCILED)) {
            assert!(
                matched.contains(&event.id),
                "{}: reconciled with no kill before: {event:#?}",
                row.path_display()
            );
            if event.reason.starts_with(RECONCILED_FOUND) {
                assert_eq!(event.to_state, State::Pending, "{event:#?}");
                found += 1;
            } else {
                assert_eq!(event.to_state, State::Stable, "{event:#?}");
                resent += 1;
            }
        }
    }
    let left_uploading: usize = done.iter().map(|k| k.uploading.len()).sum();
    assert!(
        left_uploading > 0,
        "no kill caught an upload in flight (seed {seed}): the test proved nothing"
    );
    let ok_uploads = sandbox
        .request_log()
        .iter()
        .filter(|e| {
            e.operation_id.as_deref() == Some("uploadFile")
                && e.status.is_some_and(|s| (200..300).contains(&s))
        })
        .count();
    for (n, kill) in done.iter().enumerate() {
        eprintln!(
            "crash: kill {:>2} {:<28} left {} uploading",
            n + 1,
            kill.trigger,
            kill.uploading.len()
        );
    }
    eprintln!(
        "crash: seed {seed}: {} kill cycles survived; {} files, {} on the server, 0 missing, \
         0 duplicated; {left_uploading} rows left uploading by a kill, reconciled \
         {} times ({found} had reached the server, {resent} sent again); {ok_uploads} successful \
         uploadFile answers logged; {:.1}s",
        done.len(),
        files.len(),
        server.len(),
        found + resent,
        started.elapsed().as_secs_f64()
    );
}

/// The daemon's rows once all of `files` are decided (approved or rejected).
fn wait_all_decided(w: &Workspace, files: &[LocalFile], log: impl Fn() -> String) {
    wait_until(Duration::from_secs(90), "every file to be decided", || {
        let Ok(store) = Store::open_read_only(&w.db_path()) else {
            return Err("no database yet".to_owned());
        };
        let rows = all_rows(&store);
        let decided = rows
            .iter()
            .filter(|r| matches!(r.state, State::Approved | State::Rejected))
            .count();
        if decided == files.len() {
            Ok(())
        } else {
            let mut by_state: BTreeMap<State, usize> = BTreeMap::new();
            for r in &rows {
                *by_state.entry(r.state).or_default() += 1;
            }
            Err(format!(
                "{decided} of {} decided: {by_state:?}\n--- log\n{}",
                files.len(),
                log()
            ))
        }
    });
}

#[test]
fn sandbox_killed_mid_upload_and_restarted_on_the_same_port() {
    // answers take 40 ms, so that uploads are still in flight at every outage
    let mut sandbox = crate::harness::RestartableSandbox::start(docsync_sandbox::SandboxConfig {
        decision: docsync_sandbox::DecisionRule {
            delay: Duration::from_millis(200),
            ..docsync_sandbox::DecisionRule::default()
        },
        faults: docsync_sandbox::FaultConfig {
            latency_ms: 40,
            ..docsync_sandbox::FaultConfig::default()
        },
        ..docsync_sandbox::SandboxConfig::default()
    });
    let w = Workspace::with_api(&sandbox.url(), sandbox.credentials());
    write_config(&w);
    let files = local_files("outage", 3, 40);
    for f in &files {
        w.drop_file(&f.rel, &f.bytes);
    }
    let daemon = w.spawn(["run"]);

    let outages = 3;
    let mut resets_seen = 0;
    for n in 1..=outages {
        // kill it while uploads are in flight: after a share of the files arrived
        let arrived = n * files.len() / (outages + 1);
        wait_until(Duration::from_secs(60), "uploads before the outage", || {
            let on_server = sandbox.server_files().len();
            assert!(
                on_server < files.len(),
                "outage {n}: every file arrived before it; nothing was in flight"
            );
            if on_server >= arrived {
                Ok(())
            } else {
                Err(format!(
                    "{on_server} of {arrived}\n--- log\n{}",
                    daemon.log()
                ))
            }
        });
        sandbox.kill();
        // down until the daemon has met the outage (an upload or a poll failed), or
        // for 30 s: rows backing off from the last outage and a poller backing off
        // while nothing changes may send nothing for that long on a loaded machine
        // (the outage then passes unseen; the check after the loop still requires
        // that uploads failed and were retried)
        let failures = || {
            daemon
                .log()
                .lines()
                .filter(|l| l.contains("will retry") || l.contains("will poll again"))
                .count()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while failures() <= resets_seen && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if failures() <= resets_seen {
            eprintln!("outage {n}: the daemon sent nothing while the sandbox was down");
        }
        resets_seen = failures();
        sandbox.restart();
    }
    assert!(sandbox.is_running());
    wait_all_decided(&w, &files, || daemon.log());
    let status = daemon.stop(docsync::engine::GRACE + Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "run did not stop cleanly");

    let server = assert_exactly_once(&files, &sandbox.server_files());
    let store = w.store();
    let rows = assert_rows_settled(&store, &files, &server);
    let mut retried = 0;
    let mut asked_first = 0;
    for row in rows.values() {
        let events = store.events(row.id).unwrap();
        retried += events
            .iter()
            .filter(|e| e.to_state == State::Retrying)
            .count();
        asked_first += events
            .iter()
            .filter(|e| e.reason == "an earlier attempt reached the server")
            .count();
    }
    assert!(
        retried > 0,
        "no upload failed during the outages: the test proved nothing"
    );
    eprintln!(
        "outage: {outages} sandbox kills and restarts on {}; {} files, {} on the server, 0 missing, \
         0 duplicated; {resets_seen} failed requests logged by the daemon, {retried} uploads \
         retried, {asked_first} found on the server by their marker instead of being sent again",
        sandbox.url(),
        files.len(),
        server.len()
    );
}

#[test]
fn sigterm_during_a_burst_stops_within_the_grace_period() {
    let sandbox = TestSandbox::with_decision_delay(Duration::from_millis(200));
    // slow answers, so that many uploads are in flight when the signal comes
    sandbox.set_faults(docsync_sandbox::FaultConfig {
        latency_ms: 150,
        ..docsync_sandbox::FaultConfig::default()
    });
    let w = Workspace::with_sandbox(&sandbox);
    write_config(&w);
    let files = local_files("term", 3, 40);
    let daemon = w.spawn(["run"]);
    for f in &files {
        w.drop_file(&f.rel, &f.bytes);
    }
    wait_until(Duration::from_secs(60), "the burst to be under way", || {
        let sent = sandbox.count("uploadFile");
        let in_flight = Store::open_read_only(&w.db_path())
            .map(|s| s.uploading().unwrap().len())
            .unwrap_or(0);
        if sent >= 10 && in_flight > 0 {
            Ok(())
        } else {
            Err(format!(
                "{sent} sent, {in_flight} in flight\n--- log\n{}",
                daemon.log()
            ))
        }
    });
    let log = daemon.log_path().to_owned();
    // the harness fails the test unless it exits within the grace period (+ the
    // time to exit the process)
    let status = daemon.stop(docsync::engine::GRACE + Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean stop");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("stopping: in-flight uploads get"), "{log}");
    assert!(!log.contains("did not finish within"), "{log}");

    // no row left inconsistent: nothing `uploading` (in-flight uploads were
    // finished and recorded), and every row's events walk the state machine
    let store = w.store();
    let rows = all_rows(&store);
    let mut by_state: BTreeMap<State, usize> = BTreeMap::new();
    for row in &rows {
        *by_state.entry(row.state).or_default() += 1;
        assert_ne!(row.state, State::Uploading, "{row:#?}");
        assert_event_chain(row, &store.events(row.id).unwrap());
    }
    let uploaded_at_stop = sandbox.server_files().len();
    assert!(
        uploaded_at_stop < files.len(),
        "the burst was over before the signal"
    );
    drop(store);

    // a restart uploads the rest, exactly once, and has nothing to reconcile
    let out = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(
        out.code(),
        Some(1),
        "rejected files make exit code 1\n{out}"
    );
    let server = assert_exactly_once(&files, &sandbox.server_files());
    let store = w.store();
    let rows = assert_rows_settled(&store, &files, &server);
    for row in rows.values() {
        let events = store.events(row.id).unwrap();
        assert!(
            !events.iter().any(|e| e.reason.starts_with(RECONCILED)),
            "a graceful stop left something to reconcile: {events:#?}"
        );
    }
    eprintln!(
        "sigterm: stopped cleanly with {uploaded_at_stop} of {} files on the server, rows at \
         the stop {by_state:?}; after the restart {} on the server, 0 missing, 0 duplicated, \
         nothing to reconcile",
        files.len(),
        server.len()
    );
}
