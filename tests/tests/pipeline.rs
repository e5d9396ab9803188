//! The whole pipeline through the real binary: files dropped into a watched inbox
//! end up decided by the sandbox in `status --json`; invalid files are recorded
//! with a reason and never sent; a restart uploads nothing again; `sync --once`
//! exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use docsync_e2e::{elf, pdf, wait_until, TestSandbox, Workspace};
use serde_json::Value;

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
    w.drop_file("acct-z/business_verification/id.pdf", &pdf("zero-config"));
    let path = "acct-z/business_verification/id.pdf";
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
