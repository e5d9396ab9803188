//! The `docsync` binary's commands that need no running daemon: `config check`,
//! `status`, `history`, `retry`, `sandbox`, and the setup errors of `run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{wait_until, Workspace};

const VALID: &str = r#"[[folder]]
path = "inbox"
target = { kind = "moov-files", account_id = "00000000-0000-4000-8000-000000000001", file_purpose = "business_verification" }
[api]
sandbox = true
"#;

/// Every case: the file, what must be printed, and the exit code.
#[test]
fn config_check_reports_each_problem_with_location_and_fix() {
    struct Case {
        name: &'static str,
        toml: &'static str,
        /// A credentials file written next to the config, with this mode.
        credentials_mode: Option<u32>,
        code: i32,
        /// Substrings of stdout (`{dir}` is the workspace).
        expect: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "valid",
            toml: VALID,
            credentials_mode: None,
            code: 0,
            expect: &["ok: 1 folder"],
        },
        Case {
            name: "unknown key, with line and column",
            toml: "[[folder]]\npath = \"inbox\"\ncolour = \"red\"\n",
            credentials_mode: None,
            code: 1,
            expect: &[
                "{dir}/docsync.toml:3:1",
                "unknown field `colour`",
                "fix: remove the key or correct its spelling",
            ],
        },
        Case {
            name: "bad account id",
            toml: "[[folder]]\npath = \"inbox\"\ntarget = { kind = \"moov-files\", account_id = \"a/b\", file_purpose = \"business_verification\" }\n",
            credentials_mode: None,
            code: 1,
            expect: &[
                "folder[0].target.account_id",
                "account_id `a/b` is not valid",
                "fix: set account_id",
            ],
        },
        Case {
            name: "an account_id that is not a Moov account ID (a UUID)",
            toml: "[[folder]]\npath = \"inbox\"\ntarget = { kind = \"moov-files\", account_id = \"acme\", file_purpose = \"business_verification\" }\n",
            credentials_mode: None,
            code: 1,
            expect: &[
                "{dir}/docsync.toml:3:10: folder[0].target.account_id: error",
                "account_id `acme` is not valid: it is not a Moov account ID (a UUID such as",
                "fix: set account_id to the account's ID, the UUID the Moov dashboard shows",
            ],
        },
        Case {
            name: "no folder configured",
            toml: "state_dir = \"state\"\n",
            credentials_mode: None,
            code: 1,
            expect: &["no folder is configured", "fix: add a [[folder]] table"],
        },
        Case {
            name: "a folder that does not exist is a warning",
            toml: "[[folder]]\npath = \"nope\"\n[api]\nsandbox = true\n",
            credentials_mode: None,
            code: 0,
            expect: &[
                "{dir}/docsync.toml:2:8: folder[0].path: warning",
                "does not exist",
                "mkdir -p {dir}/nope",
                "ok: 1 folder",
            ],
        },
        Case {
            name: "credentials file readable by others",
            toml: "[credentials]\nfile = \"creds.toml\"\n[[folder]]\npath = \"inbox\"\n",
            credentials_mode: Some(0o644),
            code: 1,
            expect: &["has mode 0644", "chmod 600 {dir}/creds.toml"],
        },
        Case {
            name: "credentials file with mode 0600 is fine",
            toml: "[credentials]\nfile = \"creds.toml\"\n[api]\nurl = \"https://api.example.com\"\n[[folder]]\npath = \"inbox\"\n",
            credentials_mode: Some(0o600),
            code: 0,
            expect: &["ok: 1 folder"],
        },
        Case {
            name: "a real API URL without credentials",
            toml: "[api]\nurl = \"https://api.example.com\"\n[[folder]]\npath = \"inbox\"\n",
            credentials_mode: None,
            code: 1,
            expect: &[
                "the Moov public key is missing",
                "set DOCSYNC_PUBLIC_KEY",
                "the Moov secret key is missing",
                "2 errors",
            ],
        },
    ];
    for case in cases {
        let w = Workspace::new();
        w.write_file("docsync.toml", case.toml);
        if let Some(mode) = case.credentials_mode {
            let path = w.write_file(
                "creds.toml",
                "public_key = \"pk_test\"\nsecret_key = \"sk_very_secret\"\n",
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let out = w.run(["config", "check"]);
        assert_eq!(out.code(), Some(case.code), "{}\n{out}", case.name);
        let dir = w.path().display().to_string();
        for needle in case.expect {
            let needle = needle.replace("{dir}", &dir);
            assert!(
                out.stdout.contains(&needle),
                "{}: stdout lacks {needle:?}\n{out}",
                case.name
            );
        }
        assert!(
            !out.stdout.contains("sk_very_secret") && !out.stderr.contains("sk_very_secret"),
            "{}: a secret was printed\n{out}",
            case.name
        );
    }
}

#[test]
fn config_check_takes_an_explicit_path() {
    let w = Workspace::new();
    w.write_file(
        "elsewhere/my.toml",
        "[[folder]]\npath = \"../inbox\"\n[api]\nsandbox = true\n",
    );
    let out = w.run(["config", "check", "--config", "elsewhere/my.toml"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("ok: 1 folder"), "{out}");

    let out = w.run(["config", "check", "--config", "missing.toml"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stdout.contains("cannot read the configuration"),
        "{out}"
    );
}

/// Before the first run there is no state: `status` says so, says where it
/// looked, and exits 4 (not 0: a script must not take "nothing yet" for "all
/// fine"); `--json` stays a valid (empty) array; `history` the same.
#[test]
fn status_before_the_first_run_says_no_state_yet_and_exits_non_zero() {
    let w = Workspace::new();
    let db = w.state.join("docsync.db");
    for args in [
        &["status", "--json"][..],
        &["status"][..],
        &["history", "--json", "a.pdf"][..],
    ] {
        let out = w.run(args.iter().copied());
        assert_eq!(out.code(), Some(4), "{args:?}: {out}");
        assert!(out.stderr.contains("no state yet"), "{args:?}: {out}");
        assert!(
            out.stderr.contains(&db.display().to_string()),
            "{args:?}: where it looked: {out}"
        );
        if args.contains(&"--json") {
            let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            assert_eq!(json, serde_json::json!([]), "{args:?}: {out}");
        }
    }
    assert!(!db.exists(), "looking created nothing");

    // with a database (empty): an empty array, exit 0
    docsync::store::Store::open_in_state_dir(&w.state).unwrap();
    let out = w.run(["status", "--json"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([]),
        "{out}"
    );
    let out = w.run(["status"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("no files recorded"), "{out}");
}

#[test]
fn history_of_an_unknown_path_says_so() {
    let w = Workspace::new();
    docsync::store::Store::open_in_state_dir(&w.state).unwrap();
    let out = w.run([
        "history",
        "00000000-0000-4000-8000-000000000001/business_verification/nothing.pdf",
    ]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(
        out.stderr.contains(
            "no history for 00000000-0000-4000-8000-000000000001/business_verification/nothing.pdf"
        ),
        "{out}"
    );
}

#[test]
fn retry_all_failed_on_an_empty_database_moves_nothing() {
    let w = Workspace::new();
    // no database yet
    let out = w.run(["retry", "--all-failed"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("0 files moved"), "{out}");
    assert!(
        !w.state.join("docsync.db").exists(),
        "retry created a database"
    );

    docsync::store::Store::open_in_state_dir(&w.state).unwrap();
    let out = w.run(["retry", "--all-failed"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("retry: 0 files moved"), "{out}");

    // PATH or --all-failed is required
    let out = w.run(["retry"]);
    assert_eq!(out.code(), Some(2), "{out}");
}

/// Reads the `sandbox listening on URL` line, then asks an unknown route.
#[test]
fn sandbox_prints_a_url_that_answers() {
    let w = Workspace::new();
    let mut child = ChildGuard(
        w.cmd(["sandbox"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let read = |lines: &mut Vec<String>| {
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
    };
    let url = wait_until(Duration::from_secs(30), "the sandbox's URL line", || {
        read(&mut lines);
        lines
            .iter()
            .find_map(|l| l.strip_prefix("sandbox listening on "))
            .map(str::to_owned)
            .ok_or_else(|| lines.join("\n"))
    });
    let addr = url.strip_prefix("http://").expect("an http URL");
    let (status, body) = http_get(addr, "/no/such/route");
    assert_eq!(status, 404, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert!(json.is_object(), "{json}");
    // the credentials are printed too: this command exists for that
    wait_until(Duration::from_secs(10), "the credentials lines", || {
        read(&mut lines);
        let all = lines.join("\n");
        if all.contains("DOCSYNC_PUBLIC_KEY=pk_") && all.contains("DOCSYNC_SECRET_KEY=sk_") {
            Ok(())
        } else {
            Err(all)
        }
    });
    drop(child);
}

/// Kills the child on drop (also when an assertion fails).
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bare HTTP/1.1 GET: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn a_second_daemon_on_a_locked_state_dir_fails_fast() {
    let w = Workspace::new();
    w.write_config("[api]\nsandbox = true\n");
    let config_state = w.path().join("state");
    let _lock = docsync::store::InstanceLock::acquire(&config_state).unwrap();
    // No timed assertion: `run` returning at all (the harness kills commands
    // that outlive its deadline) shows it did not start a daemon.
    let out = w.run(["run"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains(&format!(
            "already uses the state directory {}",
            config_state.display()
        )),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("(pid {})", std::process::id())),
        "{out}"
    );
    // it stopped before starting the embedded sandbox
    assert!(!out.stderr.contains("embedded sandbox"), "{out}");
}

/// A clean stop is remembered as clean: the next run does not warn about an
/// unclean one (nor pay for it by asking the server before every upload). The
/// check `run`/`sync` make of the lock before they start must not leave a pid
/// in the lock file for the run itself to find.
#[test]
fn a_run_after_a_clean_stop_does_not_think_the_last_one_crashed() {
    let w = Workspace::new();
    w.write_config("[api]\nsandbox = true\n");
    let first = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(first.code(), Some(0), "{first}");
    assert!(!first.stderr.contains("did not stop cleanly"), "{first}");
    let second = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(second.code(), Some(0), "{second}");
    assert!(!second.stderr.contains("did not stop cleanly"), "{second}");
}

/// A state database written by a newer docsync: every command that reads it
/// refuses it, says which file, which versions and what to do, and leaves it
/// untouched (no downgrade, no migration).
#[test]
fn a_state_db_from_a_newer_schema_is_refused_untouched() {
    let w = Workspace::new();
    w.write_config("[api]\nsandbox = true\n");
    drop(docsync::store::Store::open_in_state_dir(&w.state).unwrap());
    let db = w.db_path();
    let newer = docsync::store::SCHEMA_VERSION as i64 + 1;
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    let want = format!(
        "database {} has schema version {newer}, newer than the {} this docsync knows; \
         upgrade docsync or use another state_dir",
        db.display(),
        docsync::store::SCHEMA_VERSION
    );
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["history", "a.pdf"],
        &["retry", "--all-failed"],
        &["run"],
        &["sync", "--once", "--timeout", "5s"],
    ] {
        let out = w.run(args);
        assert_eq!(out.code(), Some(2), "{args:?}\n{out}");
        assert!(out.stderr.contains(&want), "{args:?}\n{out}");
        assert!(!out.stderr.contains("panicked"), "{args:?}\n{out}");
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the database was changed"
    );
}

/// Setup errors: `error: ...` on stderr and exit code 2.
#[test]
fn setup_errors_exit_2_with_a_clear_message() {
    let cases: [(&str, &[&str], &str, &str); 4] = [
        (
            "no configuration and no folder",
            &["run"],
            "",
            "error: no configuration: pass the folder to sync",
        ),
        (
            "an invalid configuration",
            &["sync", "--once"],
            "[[folder]]\npath = \"inbox\"\ncolour = 1\n",
            "unknown field `colour`",
        ),
        (
            "FOLDER and --config together",
            &["run", "inbox", "--config", "docsync.toml"],
            VALID,
            "cannot be used with",
        ),
        (
            "an unknown state",
            &["status", "--state", "nearly"],
            "",
            "use one of discovered",
        ),
    ];
    for (name, args, toml, needle) in cases {
        let w = Workspace::new();
        if !toml.is_empty() {
            w.write_file("docsync.toml", toml);
        }
        let out = w.run(args);
        assert_eq!(out.code(), Some(2), "{name}\n{out}");
        assert!(
            out.stderr.contains(needle),
            "{name}: lacks {needle:?}\n{out}"
        );
    }
}

/// Without `--config`, the configuration is found where people put it:
/// `./docsync.toml`, then `$XDG_CONFIG_HOME/docsync/config.toml` (`~/.config/…`
/// without the variable), then `/etc/docsync/config.toml`; `config check` and
/// `status` say which file they used.
#[test]
fn the_configuration_is_found_where_people_look_and_named() {
    let w = Workspace::new();
    let user = w.path().join(".config/docsync/config.toml");
    let xdg_dir = w.path().join("xdg");
    let xdg = xdg_dir.join("docsync/config.toml");
    let local = w.path().join("docsync.toml");
    let inbox_for = |name: &str| VALID.replace("path = \"inbox\"", &format!("path = \"{name}\""));
    for (path, inbox) in [(&user, "user-inbox"), (&xdg, "xdg-inbox")] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, inbox_for(inbox)).unwrap();
    }
    let check = |xdg_home: Option<&std::path::Path>| {
        let mut cmd = w.cmd(["config", "check"]);
        if let Some(dir) = xdg_home {
            cmd.env("XDG_CONFIG_HOME", dir);
        }
        crate::harness::run_command(cmd, Duration::from_secs(60))
    };
    // ~/.config when XDG_CONFIG_HOME is not set
    let out = check(None);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("configuration: {}", user.display())),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("docsync: configuration {}", user.display())),
        "{out}"
    );
    // $XDG_CONFIG_HOME wins over ~/.config
    let out = check(Some(&xdg_dir));
    assert!(
        out.stdout
            .contains(&format!("configuration: {}", xdg.display())),
        "{out}"
    );
    // ./docsync.toml wins over both
    std::fs::write(&local, inbox_for("local-inbox")).unwrap();
    let out = check(Some(&xdg_dir));
    assert!(
        out.stdout
            .contains(&format!("configuration: {}", local.display())),
        "{out}"
    );
    // status names it too (on stderr: stdout stays what scripts parse)
    let out = w.run(["status", "--json"]);
    assert!(
        out.stderr
            .contains(&format!("docsync: configuration {}", local.display())),
        "{out}"
    );
    // none anywhere: the places looked at are named
    std::fs::remove_file(&local).unwrap();
    std::fs::remove_file(&user).unwrap();
    let out = w.run(["status", "--json"]);
    assert!(
        out.stderr
            .contains("no configuration file (looked for docsync.toml"),
        "{out}"
    );
    assert!(out.stderr.contains("/etc/docsync/config.toml"), "{out}");
}
