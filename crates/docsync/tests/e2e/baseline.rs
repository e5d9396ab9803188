//! A first run over a folder that already holds files, through the real
//! binary: `docsync baseline` records them `skipped` (nothing sent, the API
//! not contacted), `run` then uploads only what is added; `max_age` and
//! `--only-newer-than` skip files older than a cutoff when first seen;
//! `retry PATH` sends a skipped file; a running daemon refuses a baseline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::harness::{pdf, wait_until, Output, TestSandbox, Workspace};

/// Set `path`'s modification time `days` days back.
pub fn age(path: &Path, days: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
}

fn state_of(w: &Workspace, path: &str) -> String {
    let row = w
        .status_of(path)
        .unwrap_or_else(|| panic!("no row for {path}"));
    row["state"].as_str().unwrap_or_default().to_owned()
}

fn uploads(sandbox: &TestSandbox) -> usize {
    sandbox.count("uploadFile")
}

fn sync_once(w: &Workspace) -> Output {
    let out = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(0), "skipped files are fine: exit 0\n{out}");
    out
}

#[test]
fn baseline_then_run_uploads_only_files_added_after_it() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    w.drop_file("a.pdf", &pdf("a"));
    w.drop_file("sub/b.pdf", &pdf("b"));

    let out = w.run(["baseline"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout
            .contains("2 files, 2 recorded skipped, 0 already known"),
        "{out}"
    );
    assert!(
        out.stdout.contains("baseline: 2 files recorded skipped"),
        "{out}"
    );
    assert!(sandbox.request_log().is_empty(), "the API is not contacted");
    assert_eq!(state_of(&w, "a.pdf"), "skipped");
    assert_eq!(state_of(&w, "sub/b.pdf"), "skipped");
    let reason = w.status_of("a.pdf").unwrap()["reason"].clone();
    assert_eq!(
        reason,
        Value::String("baseline: present when `docsync baseline` ran".into())
    );

    // idempotent
    let again = w.run(["baseline"]);
    assert_eq!(again.code(), Some(0), "{again}");
    assert!(
        again
            .stdout
            .contains("2 files, 0 recorded skipped, 2 already known"),
        "{again}"
    );

    // `status` shows them as skipped, filters them, and counts them per folder
    let status = w.run(["status", "--state", "skipped"]);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        status.stdout.contains("a.pdf") && status.stdout.contains("sub/b.pdf"),
        "{status}"
    );
    assert!(status.stderr.contains(": 2 skipped"), "{status}");

    w.drop_file("c.pdf", &pdf("c"));
    let out = sync_once(&w);
    assert!(out.stdout.contains("1 approved, 2 skipped"), "{out}");
    assert_eq!(uploads(&sandbox), 1, "only the new file is sent");
    let names: Vec<_> = sandbox
        .server_files()
        .into_iter()
        .map(|f| f.file_name)
        .collect();
    assert_eq!(names, vec!["c.pdf".to_owned()]);
    assert_eq!(state_of(&w, "a.pdf"), "skipped");
    assert_eq!(state_of(&w, "c.pdf"), "approved");

    // retry PATH sends a skipped file; --all-failed does not
    let all = w.run(["retry", "--all-failed"]);
    assert!(all.stdout.contains("retry: 0 files"), "{all}");
    let one = w.run(["retry", "inbox/a.pdf"]);
    assert_eq!(one.code(), Some(0), "{one}");
    assert!(one.stdout.contains("retry: 1 file moved"), "{one}");
    sync_once(&w);
    assert_eq!(uploads(&sandbox), 2);
    assert_eq!(state_of(&w, "a.pdf"), "approved");
    assert_eq!(state_of(&w, "sub/b.pdf"), "skipped");
}

#[test]
fn baseline_of_one_folder_and_a_folder_not_configured() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config(
        r#"
[[folder]]
path = "second"
target = { kind = "moov-files", account_id = "00000000-0000-4000-8000-000000000e2f", file_purpose = "business_verification" }
"#,
    );
    w.drop_file("a.pdf", &pdf("a"));
    w.write_file("second/b.pdf", "%PDF-1.4 b");
    let out = w.run(["baseline", "second"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout.contains("baseline: 1 file recorded skipped"),
        "{out}"
    );
    assert!(
        w.status_of("a.pdf").is_none(),
        "the other folder is left alone"
    );
    assert_eq!(state_of(&w, "b.pdf"), "skipped");
    let wrong = w.run(["baseline", "elsewhere"]);
    assert_eq!(wrong.code(), Some(2), "{wrong}");
    assert!(
        wrong
            .stderr
            .contains("is not a folder of the configuration"),
        "{wrong}"
    );
}

#[test]
fn baseline_is_refused_while_a_daemon_runs() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    w.drop_file("a.pdf", &pdf("a"));
    let daemon = w.spawn(["run"]);
    wait_until(
        Duration::from_secs(60),
        "the daemon's first upload",
        || match w.status_of("a.pdf") {
            Some(row) if row["state"] == "approved" => Ok(()),
            other => Err(format!("{other:?}\n{}", daemon.log())),
        },
    );
    w.drop_file("b.pdf", &pdf("b"));
    let out = w.run(["baseline"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains("stop the running docsync first"),
        "{out}"
    );
    assert!(
        out.stderr.contains("already uses the state directory"),
        "{out}"
    );
    let stopped = daemon.stop(Duration::from_secs(60));
    assert!(stopped.success(), "{stopped}");
}

#[test]
fn max_age_skips_old_files_without_reading_them() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    // the folder's own max_age (the harness's folder table is the last one)
    w.write_config("max_age = \"30d\"\n");
    let old = w.drop_file("old.pdf", &pdf("old"));
    age(&old, 40);
    let new = w.drop_file("new.pdf", &pdf("new"));
    age(&new, 2);
    // unreadable: it would be `invalid` if docsync tried to read it
    let unreadable = w.drop_file("locked.pdf", &pdf("locked"));
    age(&unreadable, 400);
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();

    let out = sync_once(&w);
    assert!(out.stdout.contains("1 approved, 2 skipped"), "{out}");
    assert_eq!(uploads(&sandbox), 1);
    assert_eq!(state_of(&w, "new.pdf"), "approved");
    let row = w.status_of("old.pdf").unwrap();
    assert_eq!(row["state"], "skipped");
    let reason = row["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("older than max_age 30d (modified ")
            && reason.ends_with("): not sent; `docsync retry PATH` sends it"),
        "{reason}"
    );
    assert_eq!(state_of(&w, "locked.pdf"), "skipped");

    // seen again by the next run: still skipped, nothing sent
    sync_once(&w);
    assert_eq!(uploads(&sandbox), 1);
    assert_eq!(state_of(&w, "old.pdf"), "skipped");

    // --only-newer-than wins over the configuration for files first seen now
    let older = w.drop_file("older.pdf", &pdf("older"));
    age(&older, 40);
    let out = w.run([
        "sync",
        "--once",
        "--timeout",
        "60s",
        "--only-newer-than",
        "60d",
    ]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(state_of(&w, "older.pdf"), "approved");
    assert_eq!(uploads(&sandbox), 2);
    // and DOCSYNC_MAX_AGE is the top-level key's override (the folder's own wins)
    let dated = w.drop_file("dated.pdf", &pdf("dated"));
    age(&dated, 3);
    let mut cmd = w.cmd([
        "sync",
        "--once",
        "--timeout",
        "60s",
        "--only-newer-than",
        "2000-01-01",
    ]);
    cmd.env("DOCSYNC_MAX_AGE", "1d");
    let out = crate::harness::run_command(cmd, crate::harness::COMMAND_TIMEOUT);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(state_of(&w, "dated.pdf"), "approved", "the flag wins");
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
}

#[test]
fn the_environment_sets_max_age_and_bad_values_are_located() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    let old = w.drop_file("old.pdf", &pdf("old"));
    age(&old, 3);
    let mut cmd = w.cmd(["sync", "--once", "--timeout", "60s"]);
    cmd.env("DOCSYNC_MAX_AGE", "2024-01-01T00:00:00Z");
    let out = crate::harness::run_command(cmd, crate::harness::COMMAND_TIMEOUT);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(
        state_of(&w, "old.pdf"),
        "approved",
        "modified after the date"
    );
    let older = w.drop_file("older.pdf", &pdf("older"));
    age(&older, 3);
    let mut cmd = w.cmd(["sync", "--once", "--timeout", "60s"]);
    cmd.env("DOCSYNC_MAX_AGE", "2d");
    let out = crate::harness::run_command(cmd, crate::harness::COMMAND_TIMEOUT);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(state_of(&w, "older.pdf"), "skipped");

    w.write_config("max_age = \"soon\"\n");
    let check = w.run(["config", "check"]);
    assert_eq!(check.code(), Some(1), "{check}");
    assert!(check.stdout.contains("folder[0].max_age"), "{check}");
    assert!(
        check
            .stdout
            .contains("`soon` is neither a duration nor a date"),
        "{check}"
    );
    assert!(check.stdout.contains("\"30d\""), "the fix: {check}");
    let flag = w.run(["sync", "--once", "--only-newer-than", "30y"]);
    assert_eq!(flag.code(), Some(2), "{flag}");
    assert!(flag.stderr.contains("not a unit of max_age"), "{flag}");
}
