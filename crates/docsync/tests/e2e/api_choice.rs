//! Never a silent fake server, through the binary: a configuration file names
//! its API or asks for the embedded sandbox; the sandbox, when used, says so
//! (at start, in `status`, on the status page); and a state database synced
//! against one API refuses another until told `--start-over` or
//! `--keep-history`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::admin::{admin_url, get};
use crate::harness::{pdf, run_command, Output, TestSandbox, Workspace, COMMAND_TIMEOUT};

const SANDBOX_LINE: &str = "API: embedded sandbox (not the real Moov API)";

/// `docsync ARGS` with `sandbox`'s keys in the environment (its URL is in the
/// configuration file).
fn run_with_keys(w: &Workspace, sandbox: &TestSandbox, args: &[&str]) -> Output {
    let keys = sandbox.credentials();
    let mut cmd = w.cmd(args);
    cmd.env("DOCSYNC_PUBLIC_KEY", &keys.public_key)
        .env("DOCSYNC_SECRET_KEY", &keys.secret_key);
    run_command(cmd, COMMAND_TIMEOUT)
}

/// The configuration names `sandbox` as its API.
fn configure_api(w: &Workspace, sandbox: &TestSandbox) {
    w.write_config(&format!("[api]\nurl = \"{}\"\n", sandbox.url()));
}

/// The `.before-start-over-` backups in the state directory.
fn backups(w: &Workspace) -> Vec<std::path::PathBuf> {
    let Ok(dir) = std::fs::read_dir(&w.state) else {
        return Vec::new();
    };
    dir.map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".before-start-over-"))
        .collect()
}

/// A configuration file with folders but no `api.url` (and no
/// `api.sandbox = true`) is a setup error: exit 2, the message says what is
/// missing and both ways to fix it, and nothing is started (no sandbox, no
/// database). `config check` reports it at its location.
#[test]
fn a_config_without_an_api_is_a_setup_error_and_starts_nothing() {
    let w = Workspace::new();
    w.write_config("");
    w.drop_file("a.pdf", &pdf("never sent anywhere"));
    for args in [&["run"][..], &["sync", "--once", "--timeout", "10s"]] {
        let out = w.run(args);
        assert_eq!(out.code(), Some(2), "{args:?}\n{out}");
        for needle in [
            "error: ",
            "no API is configured",
            "set api.url",
            "api.sandbox = true",
        ] {
            assert!(
                out.stderr.contains(needle),
                "{args:?}: lacks {needle:?}\n{out}"
            );
        }
        assert!(
            !out.stderr.contains("using the embedded sandbox"),
            "{args:?}\n{out}"
        );
    }
    assert!(!w.state.join("sandbox").exists(), "the sandbox was started");
    assert!(!w.db_path().exists(), "a state database was created");

    let out = w.run(["config", "check"]);
    assert_eq!(out.code(), Some(1), "{out}");
    let at = format!(
        "{}: api.url: error: no API is configured",
        w.path().join("docsync.toml").display()
    );
    assert!(out.stdout.contains(&at), "lacks {at:?}\n{out}");
    assert!(out.stdout.contains("fix: set api.url"), "{out}");

    // asking for the sandbox and naming an API is an error too
    let sandbox = TestSandbox::start();
    let with_api = Workspace::with_sandbox(&sandbox);
    with_api.write_config("[api]\nsandbox = true\n");
    let out = with_api.run(["sync", "--once", "--timeout", "10s"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains(
            "asks for the embedded sandbox, but --api-url (DOCSYNC_API_URL) names the API"
        ),
        "{out}"
    );
    let out = w.run([
        "sync",
        "--once",
        "--sandbox",
        "--api-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("cannot be used with"), "{out}");
    assert_eq!(sandbox.count("uploadFile"), 0);
}

/// `--sandbox` (or `api.sandbox = true`) runs on the embedded sandbox and says
/// so: one line on stderr at start, a log line, the first line of `status`
/// (stderr beside `status --json`, whose stdout stays the array of rows), the
/// status page, and `config check`.
#[test]
fn the_sandbox_when_asked_says_so_everywhere() {
    let w = Workspace::new();
    w.write_config("");
    w.drop_file("a.pdf", &pdf("tried on the sandbox"));
    let out = w.run(["sync", "--once", "--sandbox", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let notes = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("docsync: using the embedded sandbox at http://127.0.0.1:"))
        .count();
    assert_eq!(notes, 1, "{out}");
    assert!(out.stderr.contains("not the real Moov API"), "{out}");
    assert!(
        out.stderr.contains("started on the embedded sandbox"),
        "the log line\n{out}"
    );

    let out = w.run(["status"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(out.stdout.lines().next(), Some(SANDBOX_LINE), "{out}");
    assert!(out.stdout.contains("approved"), "{out}");
    let out = w.run(["status", "--json"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{out}");
    assert!(out.stderr.contains(SANDBOX_LINE), "{out}");

    // the same from the configuration, with the status page
    w.write_config("[api]\nsandbox = true\n");
    let out = w.run(["config", "check"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("ok: 1 folder; {SANDBOX_LINE}")),
        "{out}"
    );
    let daemon = w.spawn(["run", "--admin", "127.0.0.1:0"]);
    let url = admin_url(&daemon);
    let (status, _, page) = get(&format!("{url}/"));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("id=\"api\" class=\"sandbox\">{SANDBOX_LINE}")),
        "{page}"
    );
    let status = daemon.stop(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "run did not stop cleanly");
}

/// Synced on the embedded sandbox, then configured for a real API: refused
/// (exit 2, both APIs and both flags named) and nothing sent; `--keep-history`
/// records the new API and sends nothing again; on a third API,
/// `--start-over` keeps a backup and uploads every file again.
#[test]
fn another_api_is_refused_until_start_over_or_keep_history() {
    let w = Workspace::new();
    w.write_config("");
    w.drop_file("a.pdf", &pdf("first"));
    w.drop_file("b.pdf", &pdf("second"));
    let out = w.run(["sync", "--once", "--sandbox", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let approved = |w: &Workspace| {
        w.status_json()
            .iter()
            .filter(|r| r["state"] == "approved")
            .count()
    };
    assert_eq!(approved(&w), 2);

    // a real API now: refused
    let second = TestSandbox::start();
    configure_api(&w, &second);
    for args in [&["sync", "--once", "--timeout", "30s"][..], &["run"]] {
        let out = run_with_keys(&w, &second, args);
        assert_eq!(out.code(), Some(2), "{args:?}\n{out}");
        for needle in [
            "error: ",
            "was synced against another API",
            "then: embedded sandbox (not the real Moov API)",
            &format!("now: {}", second.url()),
            "--start-over",
            "--keep-history",
        ] {
            assert!(
                out.stderr.contains(needle),
                "{args:?}: lacks {needle:?}\n{out}"
            );
        }
    }
    assert_eq!(second.count("uploadFile"), 0);
    assert_eq!(approved(&w), 2, "the refusal changed the rows");

    // --keep-history: the new API is recorded, nothing is sent again
    let out = run_with_keys(
        &w,
        &second,
        &["sync", "--once", "--keep-history", "--timeout", "30s"],
    );
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(second.count("uploadFile"), 0, "{out}");
    assert_eq!(approved(&w), 2);
    let out = w.run(["status"]);
    assert_eq!(
        out.stdout.lines().next(),
        Some(format!("API: {}", second.url()).as_str()),
        "{out}"
    );
    // and from then on it runs without the flag
    let out = run_with_keys(&w, &second, &["sync", "--once", "--timeout", "30s"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(second.count("uploadFile"), 0, "{out}");

    // a third API: refused, then --start-over uploads every file to it
    let third = TestSandbox::start();
    configure_api(&w, &third);
    let out = run_with_keys(&w, &third, &["sync", "--once", "--timeout", "30s"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains(&format!("then: {}", second.url())),
        "{out}"
    );
    assert!(backups(&w).is_empty());
    let out = run_with_keys(
        &w,
        &third,
        &["sync", "--once", "--start-over", "--timeout", "60s"],
    );
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(third.count("uploadFile"), 2, "{out}");
    assert_eq!(second.count("uploadFile"), 0);
    assert_eq!(approved(&w), 2, "both files approved by the third API");
    let kept = backups(&w);
    assert_eq!(kept.len(), 1, "{kept:?}\n{out}");
    assert!(
        out.stderr.contains(&kept[0].display().to_string()),
        "the backup is named\n{out}"
    );
    let old: i64 = rusqlite::Connection::open(&kept[0])
        .unwrap()
        .query_row("SELECT COUNT(*) FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(old, 2, "the backup keeps the old rows");
}
