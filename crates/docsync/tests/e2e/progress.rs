//! What people read about progress through the real binary: `status`'s summary
//! per folder (files by state, the oldest pending file's age), on stderr below
//! the table and next to `--json`. (The progress bar of `sync --once` on a terminal is in
//! `pipeline`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;

use crate::harness::{elf, pdf, wait_until, TestSandbox, Workspace};

const SECOND: &str = r#"
[[folder]]
path = "second"
target = { kind = "moov-files", account_id = "00000000-0000-4000-8000-000000000e2f", file_purpose = "business_verification" }
"#;

/// The `folder ...` lines of `text`, with the workspace's path cut off.
fn folder_lines(text: &str, w: &Workspace) -> Vec<String> {
    let root = format!("{}/", w.path().display());
    text.lines()
        .filter_map(|l| l.strip_prefix("docsync: ").or(Some(l)))
        .filter(|l| l.starts_with("folder "))
        .map(|l| l.replace(&root, ""))
        .collect()
}

#[test]
fn status_sums_up_each_folder_with_its_oldest_pending_file() {
    // decisions take an hour: uploaded files stay pending
    let sandbox = TestSandbox::with_decision_delay(Duration::from_secs(3600));
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config(SECOND);
    w.drop_file("a.pdf", &pdf("a"));
    w.drop_file("b.pdf", &pdf("b"));
    w.drop_file("program.pdf", &elf());
    std::fs::create_dir_all(w.path().join("second")).unwrap();
    std::fs::write(w.path().join("second/c.pdf"), pdf("c")).unwrap();

    let daemon = w.spawn(["run"]);
    wait_until(Duration::from_secs(60), "3 pending and 1 invalid", || {
        let rows = w.status_json();
        let n = |state: &str| rows.iter().filter(|r| r["state"] == state).count();
        if n("pending") == 3 && n("invalid") == 1 {
            Ok(())
        } else {
            Err(format!("{rows:#?}\n--- daemon log\n{}", daemon.log()))
        }
    });
    let stopped = daemon.stop(Duration::from_secs(60));
    assert!(stopped.success(), "{stopped}");

    // a.pdf was uploaded 4½ minutes ago: the oldest of its folder
    let db = rusqlite::Connection::open(w.db_path()).unwrap();
    let changed = db
        .execute(
            "UPDATE files SET updated_at = ?1 WHERE path = CAST('a.pdf' AS BLOB) AND state = 'pending'",
            [docsync::model::now_ms() - 270_000],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let out = w.run(["status"]);
    assert_eq!(out.code(), Some(0), "{out}");
    // below the table, on stderr: stdout is the API line and the table, as before
    assert!(folder_lines(&out.stdout, &w).is_empty(), "{out}");
    assert_eq!(out.stdout.lines().count(), 2 + 4, "{out}");
    let lines = folder_lines(&out.stderr, &w);
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0], "folder inbox: 2 pending (oldest 4m), 1 invalid",
        "{out}"
    );
    assert!(
        lines[1].starts_with("folder second: 1 pending (oldest ") && lines[1].ends_with("s)"),
        "{out}"
    );

    // --json: stdout stays the array of rows; the summary is on stderr
    let out = w.run(["status", "--json"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let rows: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(4), "{out}");
    assert_eq!(folder_lines(&out.stderr, &w)[0], lines[0], "{out}");

    // --folder: that folder's line only
    let out = w.run(["status", "--folder", "second"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let only = folder_lines(&out.stderr, &w);
    assert_eq!(only.len(), 1, "{out}");
    assert!(only[0].starts_with("folder second: "), "{out}");
}
