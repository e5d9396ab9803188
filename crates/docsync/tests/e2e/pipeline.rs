//! The whole pipeline through the real binary: files dropped into a watched inbox
//! end up decided by the sandbox in `status --json`; invalid files are recorded
//! with a reason and never sent; a restart uploads nothing again; `sync --once`
//! exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{elf, pdf, wait_until, TestSandbox, Workspace};

const DECIDED: Duration = Duration::from_secs(60);

/// `path -> row` of `status --json`.
fn rows(w: &Workspace) -> BTreeMap<String, Value> {
    w.status_json()
        .into_iter()
        .map(|r| (r["path"].as_str().unwrap_or_default().to_owned(), r))
        .collect()
}

fn show(rows: &BTreeMap<String, Value>) -> String {
    serde_json::to_string_pretty(&rows.values().collect::<Vec<_>>()).unwrap_or_default()
}

#[test]
fn dropped_files_are_decided_invalid_ones_never_sent_and_a_restart_sends_nothing() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    let daemon = w.spawn(["run"]);

    // (name, bytes, expected state)
    let files: [(&str, Vec<u8>, &str); 4] = [
        ("passport.pdf", pdf("passport"), "approved"),
        (
            "ledger.csv",
            b"date,amount\n2024-01-01,10\n".to_vec(),
            "approved",
        ),
        ("reject-this.pdf", pdf("to be rejected"), "rejected"),
        ("program.pdf", elf(), "invalid"),
    ];
    for (name, bytes, _) in &files {
        w.drop_file(name, bytes);
    }

    let got = wait_until(DECIDED, "every file to be decided", || {
        let rows = rows(&w);
        let done = files
            .iter()
            .all(|(name, _, want)| rows.get(*name).is_some_and(|r| r["state"] == *want));
        if done {
            Ok(rows)
        } else {
            Err(format!("{}\n--- daemon log\n{}", show(&rows), daemon.log()))
        }
    });

    // exactly these keys, and the sandbox's answers in them
    for row in got.values() {
        let mut keys: Vec<_> = row.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "path",
                "reason",
                "remote_id",
                "remote_status",
                "state",
                "updated"
            ],
            "{row}"
        );
        assert!(
            row["updated"].as_str().is_some_and(|t| t.contains('T')),
            "{row}"
        );
    }
    for name in ["passport.pdf", "ledger.csv"] {
        assert!(got[name]["remote_id"].is_string(), "{}", show(&got));
        assert_eq!(got[name]["remote_status"], "approved", "{}", show(&got));
    }
    let rejected = &got["reject-this.pdf"];
    assert_eq!(rejected["remote_status"], "rejected", "{rejected}");
    assert_eq!(
        rejected["reason"], "file name matches the sandbox rejection rule",
        "{rejected}"
    );
    let invalid = &got["program.pdf"];
    assert!(invalid["remote_id"].is_null(), "{invalid}");
    assert!(
        invalid["reason"]
            .as_str()
            .is_some_and(|r| r.contains("moov-files accepts only")),
        "{invalid}"
    );
    // three uploads: the invalid file was never sent
    assert_eq!(
        sandbox.count("uploadFile"),
        3,
        "{:#?}",
        sandbox.request_log()
    );

    // history explains the rejection, with the server's request id
    let out = w.run(["history", "reject-this.pdf", "--json"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let history: Value = serde_json::from_str(&out.stdout).unwrap();
    let events = history[0]["events"].as_array().unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["to"], "rejected", "{history}");
    assert!(last["request_id"].is_string(), "{history}");

    // a graceful stop
    let status = daemon.stop(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "run did not stop cleanly");

    // `retry PATH` queues the invalid file again (it is checked again on the next run)
    let out = w.run(["retry", "program.pdf"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("retry: 1 file moved"), "{out}");
    assert_eq!(w.status_of("program.pdf").unwrap()["state"], "stable");
    let out = w.run(["retry", "passport.pdf"]);
    assert!(out.stdout.contains("retry: 0 files moved"), "{out}");
    assert!(out.stderr.contains("passport.pdf is approved"), "{out}");

    // a restart (a one-shot sync): the invalid file is invalid again, nothing is sent again
    sandbox.clear_request_log();
    let out = w.run(["sync", "--once", "--timeout", "30s"]);
    // a rejected and an invalid file: exit code 1
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stdout
            .contains("sync: 4 files: 2 approved, 1 rejected, 1 invalid"),
        "{out}"
    );
    assert_eq!(
        sandbox.count("uploadFile"),
        0,
        "a restart uploaded again: {:#?}",
        sandbox.request_log()
    );
    let decided = |rows: &BTreeMap<String, Value>| -> Vec<(String, Value, Value)> {
        rows.iter()
            .map(|(p, r)| (p.clone(), r["state"].clone(), r["remote_id"].clone()))
            .collect()
    };
    assert_eq!(
        decided(&rows(&w)),
        decided(&got),
        "the restart changed the recorded rows"
    );
}

struct SyncCase {
    name: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    /// How long the sandbox keeps files pending.
    decision_delay: Duration,
    timeout: &'static str,
    code: i32,
    /// Part of the summary line.
    summary: &'static str,
}

/// `sync --once` exit codes: 0 all accepted, 1 something rejected, 3 timed out.
#[test]
fn sync_once_exit_codes() {
    let cases = [
        SyncCase {
            name: "all accepted",
            files: vec![("a.pdf", pdf("a")), ("b.csv", b"x,y\n1,2\n".to_vec())],
            decision_delay: Duration::from_millis(200),
            timeout: "30s",
            code: 0,
            summary: "sync: 2 files: 2 approved",
        },
        SyncCase {
            name: "one rejected",
            files: vec![("ok.pdf", pdf("ok")), ("reject-me.pdf", pdf("no"))],
            decision_delay: Duration::from_millis(200),
            timeout: "30s",
            code: 1,
            summary: "sync: 2 files: 1 approved, 1 rejected",
        },
        SyncCase {
            name: "decisions slower than the timeout",
            files: vec![("slow.pdf", pdf("slow"))],
            decision_delay: Duration::from_secs(60),
            timeout: "2s",
            code: 3,
            summary: "sync: 1 files: 1 pending; timed out after 2s with work left",
        },
    ];
    for case in cases {
        let sandbox = TestSandbox::with_decision_delay(case.decision_delay);
        let w = Workspace::with_sandbox(&sandbox);
        w.write_config("");
        for (file, bytes) in &case.files {
            w.drop_file(file, bytes);
        }
        let out = w.run(["sync", "--once", "--timeout", case.timeout]);
        let name = case.name;
        assert_eq!(out.code(), Some(case.code), "{name}\n{out}");
        assert!(
            out.stdout.contains(case.summary),
            "{name}: lacks {:?}\n{out}",
            case.summary
        );
        assert_eq!(
            sandbox.count("uploadFile"),
            case.files.len(),
            "{name}: {:#?}",
            sandbox.request_log()
        );
    }
}

/// With no API configured, `run FOLDER` starts the embedded sandbox (one line on
/// stderr, no secrets) and a PDF dropped into `<account>/<purpose>/` is approved.
#[test]
fn run_folder_uses_the_embedded_sandbox_and_the_zero_config_layout() {
    let w = Workspace::new();
    let daemon = w.spawn(["--log-format", "json", "run", "inbox"]);
    w.drop_file(
        "00000000-0000-4000-8000-000000000003/business_verification/id.pdf",
        &pdf("zero-config"),
    );
    let path = "00000000-0000-4000-8000-000000000003/business_verification/id.pdf";
    wait_until(
        // the embedded sandbox decides after its default delay (2 s)
        DECIDED,
        "the PDF to be approved by the embedded sandbox",
        || match w.status_of(path) {
            Some(row) if row["state"] == "approved" => Ok(()),
            row => Err(format!("{row:?}\n--- daemon log\n{}", daemon.log())),
        },
    );
    let log = daemon.log();
    let notes: Vec<_> = log
        .lines()
        .filter(|l| l.contains("using the embedded sandbox at http://127.0.0.1:"))
        .collect();
    assert_eq!(notes.len(), 1, "{log}");
    assert!(
        notes[0].contains(&format!("{}", w.state.join("sandbox").display())),
        "{log}"
    );
    assert!(
        !log.contains("sk_sandbox_") && !log.contains("ak_sandbox_"),
        "a secret was logged:\n{log}"
    );
    // --log-format json: every other line is a JSON object with a level
    let json_lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.starts_with("docsync: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!json_lines.is_empty(), "{log}");
    assert!(json_lines.iter().all(|l| l["level"].is_string()), "{log}");
    let status = daemon.stop(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "run did not stop cleanly");
}

/// `status --folder` and `--state` filter the rows; a name that is not UTF-8 is
/// uploaded, shown with its exact bytes in `status --json`, and found by
/// `history` when given as the same bytes on the command line.
#[test]
fn status_filters_by_folder_and_state_and_keeps_non_utf8_names() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    std::fs::create_dir_all(w.path().join("second")).unwrap();
    w.write_config(
        r#"
[[folder]]
path = "second"
target = { kind = "moov-files", account_id = "00000000-0000-4000-8000-000000000004", file_purpose = "business_verification" }
"#,
    );
    w.drop_file("first.pdf", &pdf("first"));
    w.drop_file("reject-first.pdf", &pdf("first, rejected"));
    // "café.pdf" in Latin-1: not valid UTF-8
    let latin1 = b"caf\xe9.pdf";
    std::fs::write(w.inbox.join(OsStr::from_bytes(latin1)), pdf("latin-1")).unwrap();
    let second = w.path().join("second").join("second.pdf");
    std::fs::write(&second, pdf("second")).unwrap();

    let out = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(1), "one file is rejected\n{out}");
    assert_eq!(sandbox.count("uploadFile"), 4, "{out}");

    let json = |args: &[&str]| -> Vec<Value> {
        let out = w.run([&["status", "--json"], args].concat());
        assert_eq!(out.code(), Some(0), "{out}");
        serde_json::from_str(&out.stdout).unwrap()
    };
    let paths = |rows: &[Value]| -> Vec<String> {
        let mut p: Vec<_> = rows
            .iter()
            .map(|r| r["path"].as_str().unwrap_or_default().to_owned())
            .collect();
        p.sort();
        p
    };

    let only_second = json(&["--folder", "second"]);
    assert_eq!(paths(&only_second), ["second.pdf"], "{only_second:#?}");
    let rejected = json(&["--state", "rejected"]);
    assert_eq!(paths(&rejected), ["reject-first.pdf"], "{rejected:#?}");
    let first_approved = json(&["--folder", "inbox", "--state", "approved"]);
    assert_eq!(
        paths(&first_approved),
        ["caf\u{fffd}.pdf", "first.pdf"],
        "{first_approved:#?}"
    );

    let odd = first_approved
        .iter()
        .find(|r| r.get("path_bytes_hex").is_some())
        .expect("the Latin-1 name has its bytes in path_bytes_hex");
    assert_eq!(odd["path_bytes_hex"], "636166e92e706466", "{odd}");
    assert!(odd["remote_id"].is_string(), "{odd}");

    let out = w.run([OsStr::new("history"), OsStr::from_bytes(latin1)]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("approved"), "{out}");

    // an unknown state is refused with the list of states
    let out = w.run(["status", "--state", "lost"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("pending"), "{out}");
}

/// The progress bar is drawn on a terminal and never into a pipe or a log file.
/// It shows files decided of all, bytes uploaded of all, a rate and an ETA.
#[test]
fn the_progress_bar_shows_on_a_terminal_only() {
    // decided 2 s after the upload: the bar is drawn with every byte sent
    let sandbox = TestSandbox::with_decision_delay(Duration::from_secs(2));
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    // 3 files of 40 KiB: 120 KiB in all
    for i in 0..3 {
        let mut bytes = pdf(&format!("progress {i}"));
        bytes.resize(40 * 1024, b' ');
        w.drop_file(&format!("p{i}.pdf"), &bytes);
    }
    // `script` runs the command on a pseudo-terminal (wide enough for the whole
    // bar) and copies what it drew
    let bin = crate::harness::docsync_bin().display().to_string();
    let mut on_tty = w.program("script");
    on_tty.env("PATH", "/usr/bin:/bin").args([
        "-qefc",
        &format!("stty cols 200 rows 40; exec {bin} sync --once --timeout 60s"),
        "/dev/null",
    ]);
    let out = crate::harness::run_command(on_tty, crate::harness::COMMAND_TIMEOUT);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(draws_a_bar(&out.stdout), "no bar on a terminal\n{out}");
    assert!(out.stdout.contains("3 approved"), "{out}");
    // the frames while the decisions are awaited: nothing decided, every byte sent
    let frames: Vec<&str> = out
        .stdout
        .split(['\r', '\n'])
        .filter(|f| f.contains(" files ["))
        .collect();
    let waiting = frames
        .iter()
        .find(|f| {
            f.contains("0/3 files")
                && f.contains("120.00 KiB/120.00 KiB")
                && f.contains("3 pending")
        })
        .unwrap_or_else(|| {
            panic!("no frame with 0/3 files, 120 KiB of 120 KiB sent, 3 pending\n{out}")
        });
    assert!(waiting.contains("/s ETA "), "no rate and ETA: {waiting:?}");
    // and, while uploading, the files and bytes of the whole run
    assert!(
        frames
            .iter()
            .any(|f| f.contains("/3 files") && f.contains("/120.00 KiB")),
        "{out}"
    );

    w.drop_file("p3.pdf", &pdf("progress 3"));
    let out = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        !draws_a_bar(&out.stderr) && !draws_a_bar(&out.stdout),
        "a bar was drawn into a pipe\n{out}"
    );
    assert!(
        !out.stderr.contains('\u{1b}') && !out.stderr.contains("ETA"),
        "terminal control sequences in a pipe\n{out}"
    );
}

/// Whether `text` holds the bar's `N/M files` counter.
fn draws_a_bar(text: &str) -> bool {
    text.match_indices(" files [").any(|(at, _)| {
        let counter = text[..at].rsplit(' ').next().unwrap_or_default();
        counter.split_once('/').is_some_and(|(n, m)| {
            !n.is_empty() && !m.is_empty() && (n.to_owned() + m).bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// A symlink out of the folder is never followed, and the log says why it was not
/// synced (once), so a user is not left guessing.
#[test]
fn a_symlink_out_of_the_folder_is_not_synced_and_the_log_says_why() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    let outside = w.write_file("outside/secret.pdf", "%PDF-1.4\n% outside\n%%EOF\n");
    std::os::unix::fs::symlink(&outside, w.inbox.join("link.pdf")).unwrap();
    w.drop_file("inside.pdf", &pdf("inside"));

    let out = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(sandbox.count("uploadFile"), 1, "{out}");
    let notes: Vec<_> = out
        .stderr
        .lines()
        .filter(|l| l.contains("not synced"))
        .collect();
    assert_eq!(notes.len(), 1, "{out}");
    assert!(
        notes[0].contains("link.pdf") && notes[0].contains("symlink points outside the folder"),
        "{out}"
    );
    let rows = rows(&w);
    assert!(!rows.contains_key("link.pdf"), "{}", show(&rows));
}

/// With `auth = "oauth"`, the daemon trades its key pair for a token with the
/// least scopes its folders need (fixed targets and accounts of the
/// `<accountID>/<filePurpose>/` layout alike) and uploads with it.
#[test]
fn oauth_uses_tokens_scoped_to_the_folders_accounts() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    std::fs::create_dir_all(w.path().join("by-account")).unwrap();
    w.write_config(
        r#"
[[folder]]
path = "by-account"

[api]
auth = "oauth"
"#,
    );
    w.drop_file("fixed.pdf", &pdf("fixed target"));
    let conv = w
        .path()
        .join("by-account/00000000-0000-4000-8000-000000000005/business_verification");
    std::fs::create_dir_all(&conv).unwrap();
    std::fs::write(conv.join("conv.pdf"), pdf("convention target")).unwrap();

    let out = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("2 approved"), "{out}");
    let log = sandbox.request_log();
    assert!(sandbox.count("createAccessToken") >= 1, "{log:#?}");
    assert_eq!(sandbox.count("uploadFile"), 2, "{log:#?}");
}

/// Files written into directories the moment they are created (a burst) all get
/// their row at once, not at the next full scan: notify watches a new directory
/// only after reporting it, and a full hint channel drops hints.
#[test]
fn a_burst_into_new_directories_is_seen_without_waiting_for_a_scan() {
    let sandbox = TestSandbox::with_decision_delay(Duration::from_secs(3600));
    let w = Workspace::with_sandbox(&sandbox);
    // no full scan during the test: only hints and what they book can find files
    w.write_file(
        "docsync.toml",
        r#"state_dir = "state"
scan_interval = "1h"
quiet_window = "200ms"
poll_interval = "1s"

[[folder]]
path = "inbox"
target = { kind = "moov-files", account_id = "00000000-0000-4000-8000-000000000e2e", file_purpose = "business_verification" }
"#,
    );
    let daemon = w.spawn(["run"]);
    wait_until(DECIDED, "the daemon to start", || {
        if daemon.log().contains("started") {
            Ok(())
        } else {
            Err(daemon.log())
        }
    });
    let (dirs, per_dir) = (40, 20);
    for d in 0..dirs {
        let dir = w.inbox.join(format!("batch-{d}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..per_dir {
            std::fs::write(dir.join(format!("f{f}.csv")), format!("d,f\n{d},{f}\n")).unwrap();
        }
    }
    let want = dirs * per_dir;
    wait_until(DECIDED, "a row for every file", || {
        let rows = w.status_json();
        if rows.len() == want {
            Ok(())
        } else {
            Err(format!(
                "{} of {want} rows\n--- daemon log\n{}",
                rows.len(),
                daemon.log()
            ))
        }
    });
}

/// A start over a large backlog of files that held still before the daemon
/// looked sends its first upload while the walk is still being recorded: the
/// walk is recorded in parts (small first), each part's files promoted at
/// once, and the upload stage runs during the initial scan, not after it.
#[test]
fn a_large_backlog_starts_uploading_before_its_walk_is_recorded() {
    const DIRS: usize = 40;
    const PER_DIR: usize = 100;
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    let mut newest = std::path::PathBuf::new();
    for d in 0..DIRS {
        let dir = w.inbox.join(format!("batch-{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..PER_DIR {
            newest = dir.join(format!("doc-{f:03}.pdf"));
            std::fs::write(&newest, pdf(&format!("{d}-{f}"))).unwrap();
        }
    }
    // every file older than the quiet window (200 ms) before the start
    wait_until(Duration::from_secs(10), "the files to be quiet", || {
        let age = std::fs::metadata(&newest)
            .unwrap()
            .modified()
            .unwrap()
            .elapsed()
            .unwrap_or_default();
        if age > Duration::from_millis(300) {
            Ok(())
        } else {
            Err(format!("{age:?}"))
        }
    });
    // the account takes 50 files: the others are refused by its quota
    // (decided at once, never sent)
    let out = w.run(["sync", "--once", "--timeout", "50s"]);
    let log = &out.stderr;

    let uploaded = sandbox
        .request_log()
        .iter()
        .filter(|e| e.operation_id.as_deref() == Some("uploadFile"))
        .count();
    assert!(uploaded > 0, "nothing was uploaded: {log}");
    let store = w.store();
    let rows = store
        .list(&docsync::store::ListFilter {
            limit: u32::MAX,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), DIRS * PER_DIR);
    // in the order the daemon committed them (event ids; one writer): the
    // first upload intent (its request is sent right after that commit)
    // against the last file's first event (the walk's last part recorded)
    let events: Vec<_> = rows.iter().map(|r| store.events(r.id).unwrap()).collect();
    let last_recorded = events.iter().map(|e| e[0].id).max().unwrap();
    let first_intent = events
        .iter()
        .flatten()
        .filter(|e| e.to_state == docsync::model::State::Uploading)
        .map(|e| e.id)
        .min()
        .unwrap_or_else(|| panic!("no upload intent: {log}"));
    let before = events.iter().filter(|e| e[0].id > first_intent).count();
    eprintln!("the first upload intent was committed before {before} files were recorded");
    assert!(
        first_intent < last_recorded,
        "the first upload intent (event {first_intent}) came after the last file was \
         recorded (event {last_recorded}): the walk was recorded whole before anything \
         was sent"
    );
}

/// The first scan of a daemon may fail on the store (uploads run during it,
/// and a store outage can come at any moment): the daemon goes on and walks
/// the folder again a few seconds later, instead of exiting. Here the store
/// refuses new rows while the daemon starts, then takes them again.
#[test]
fn a_daemon_whose_first_scan_fails_goes_on_and_scans_again() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    // a first run creates the state
    w.drop_file("before.pdf", &pdf("before"));
    let first = w.spawn(["run"]);
    wait_until(DECIDED, "before.pdf decided", || {
        let rows = rows(&w);
        match rows.get("before.pdf") {
            Some(r) if r["state"] == "approved" => Ok(()),
            _ => Err(show(&rows)),
        }
    });
    assert!(first.stop(Duration::from_secs(20)).success());

    // the store refuses new rows: the next start's first scan fails
    let db = rusqlite::Connection::open(w.db_path()).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON files \
         BEGIN SELECT RAISE(ABORT, 'database or disk is full (simulated)'); END;",
    )
    .unwrap();
    w.drop_file("after.pdf", &pdf("after"));
    let daemon = w.spawn(["run"]);
    wait_until(
        Duration::from_secs(30),
        "the failed first scan to be logged",
        || {
            let log = daemon.log();
            if log.contains("first scan of the folder failed") {
                Ok(())
            } else {
                Err(log)
            }
        },
    );
    db.execute_batch("DROP TRIGGER refuse").unwrap();
    wait_until(DECIDED, "after.pdf decided", || {
        let rows = rows(&w);
        match rows.get("after.pdf") {
            Some(r) if r["state"] == "approved" => Ok(()),
            _ => Err(format!("{}\n--- log\n{}", show(&rows), daemon.log())),
        }
    });
    assert!(daemon.stop(Duration::from_secs(20)).success());
    assert_eq!(sandbox.count("uploadFile"), 2);
}
