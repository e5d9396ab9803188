//! `sync --once --dry-run` and `run --dry-run` through the real binary: every
//! file's verdict and why, in text and JSON; no request reaches the API (the
//! sandbox's request log stays empty: not even a token), no state database is
//! created, and an existing one stays byte for byte as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::baseline::age;
use crate::harness::{elf, pdf, wait_until, Output, TestSandbox, Workspace};

/// `sync --once --dry-run --json ARGS` once no file waits for its quiet
/// window any more; the output and its rows.
fn dry_json(w: &Workspace, extra: &[&str]) -> (Output, Vec<Value>) {
    let mut args = vec!["sync", "--once", "--dry-run", "--json"];
    args.extend_from_slice(extra);
    wait_until(
        Duration::from_secs(30),
        "no file still being written",
        || {
            let out = w.run(&args);
            let rows = match serde_json::from_str::<Value>(&out.stdout) {
                Ok(Value::Array(rows)) => rows,
                other => panic!("--json did not print an array: {other:?}\n{out}"),
            };
            if rows.iter().any(|r| r["verdict"] == "wait") {
                Err(format!("{out}"))
            } else {
                Ok((out, rows))
            }
        },
    )
}

/// Verdict and reason by path.
fn verdicts(rows: &[Value]) -> BTreeMap<String, (String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_owned(),
                (
                    r["verdict"].as_str().unwrap().to_owned(),
                    r["reason"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// Every file under `dir` with its bytes (`None`: there is no `dir`).
fn tree(dir: &Path) -> Option<BTreeMap<String, Vec<u8>>> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .map(|e| {
                let e = e.unwrap();
                let bytes = if e.path().is_file() {
                    std::fs::read(e.path()).unwrap()
                } else {
                    Vec::new()
                };
                (e.file_name().to_string_lossy().into_owned(), bytes)
            })
            .collect(),
    )
}

#[test]
fn a_dry_run_sends_nothing_creates_nothing_and_says_why_per_file() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    w.drop_file("a.pdf", &pdf("a"));
    w.drop_file("copy.pdf", &pdf("a"));
    w.drop_file("program.pdf", &elf());
    w.drop_file("evil\nname.pdf", &pdf("evil"));

    let (out, rows) = dry_json(&w, &[]);
    assert_eq!(out.code(), Some(1), "an invalid file: exit 1\n{out}");
    assert!(
        out.stderr.contains(
            "dry run: 4 files: 2 would upload, 1 would skip, 1 would refuse, 0 would wait; \
             nothing was sent and no state database was created"
        ),
        "{out}"
    );
    let got = verdicts(&rows);
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(got["program.pdf"].0, "refuse");
    assert!(got["program.pdf"].1.starts_with("invalid: "), "{got:#?}");
    assert_eq!(got["evil\nname.pdf"].0, "upload", "exact in JSON");
    // one of the two copies is sent, the other is its duplicate
    let mut pair = [&got["a.pdf"], &got["copy.pdf"]];
    pair.sort();
    assert_eq!(pair[0].0, "skip", "{pair:?}");
    assert!(
        pair[0]
            .1
            .starts_with("duplicate: same content already uploaded as "),
        "{pair:?}"
    );
    assert_eq!(pair[1].0, "upload", "{pair:?}");
    for row in &rows {
        let obj = row.as_object().unwrap();
        for key in [
            "folder", "path", "verdict", "reason", "target", "account", "size",
        ] {
            assert!(obj.contains_key(key), "{key} missing in {row}");
        }
        assert_eq!(row["target"], "moov-files");
        assert_eq!(row["account"], "00000000-0000-4000-8000-000000000e2e");
        assert!(row["folder"].as_str().unwrap().ends_with("/inbox"), "{row}");
        let sha = row["sha256"].as_str().unwrap();
        assert_eq!(sha.len(), 64, "hashed: {row}");
    }
    assert!(sandbox.request_log().is_empty(), "no request at all");
    assert!(!w.state.exists(), "no state directory created");

    // text: one escaped line per file, then the summary
    let text = w.run(["sync", "--once", "--dry-run"]);
    assert_eq!(text.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("would refuse") && l.contains("program.pdf")));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("would upload") && l.contains("evil\\nname.pdf")),
        "the newline escaped\n{text}"
    );
    assert!(
        !text.stdout.lines().any(|l| l.starts_with("name.pdf")),
        "{text}"
    );
    assert!(
        lines[4].starts_with("dry run: 4 files: 2 would upload"),
        "{text}"
    );

    // `run --dry-run`: one pass, then it exits
    let run = w.run(["run", "--dry-run"]);
    assert_eq!(run.code(), Some(1), "{run}");
    assert_eq!(run.stdout, text.stdout);
    assert!(sandbox.request_log().is_empty(), "no request at all");
    assert!(!w.state.exists(), "no state directory created");
}

#[test]
fn a_dry_run_leaves_an_existing_database_byte_identical() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    w.drop_file("a.pdf", &pdf("a"));
    let out = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(0), "{out}");
    w.drop_file("b.pdf", &pdf("b"));
    let old = w.drop_file("old.pdf", &pdf("old"));
    age(&old, 40);
    w.drop_file("same-as-a.pdf", &pdf("a"));
    sandbox.clear_request_log();
    let before = tree(&w.state).unwrap();

    let (out, rows) = dry_json(&w, &["--only-newer-than", "30d"]);
    assert_eq!(out.code(), Some(0), "nothing refused: exit 0\n{out}");
    let got = verdicts(&rows);
    assert_eq!(got["a.pdf"].0, "skip");
    assert!(
        got["a.pdf"]
            .1
            .starts_with("already uploaded (approved, remote id "),
        "{got:#?}"
    );
    assert_eq!(got["b.pdf"].0, "upload");
    assert_eq!(got["old.pdf"].0, "skip");
    assert!(
        got["old.pdf"]
            .1
            .starts_with("skipped: older than max_age 30d (modified "),
        "{got:#?}"
    );
    assert!(rows
        .iter()
        .any(|r| r["path"] == "old.pdf" && r.get("sha256").is_none()));
    assert_eq!(got["same-as-a.pdf"].0, "skip");
    assert!(got["same-as-a.pdf"]
        .1
        .contains("duplicate: same content already uploaded as a.pdf"));
    assert!(
        out.stderr.contains("the state database was not changed"),
        "{out}"
    );

    assert_eq!(
        tree(&w.state).unwrap(),
        before,
        "the state directory is byte-identical"
    );
    assert!(sandbox.request_log().is_empty(), "no request at all");

    // the real pass does what the dry run said
    let out = w.run([
        "sync",
        "--once",
        "--timeout",
        "60s",
        "--only-newer-than",
        "30d",
    ]);
    assert_eq!(out.code(), Some(0), "{out}");
    let states: BTreeMap<String, String> = w
        .status_json()
        .into_iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states["b.pdf"], "approved");
    assert_eq!(states["old.pdf"], "skipped");
    assert_eq!(states["same-as-a.pdf"], "duplicate");
    assert_eq!(sandbox.count("uploadFile"), 1);
}
