//! Secrets and paths through the real binary.
//!
//! - [`canary_secrets_never_leak`]: canary values configured as the secret key
//!   (HTTP Basic password), the OAuth tokens the sandbox issues for it, and the
//!   attachments api-key, from environment variables and from a credentials
//!   file, never appear in the logs (`-vv`: every level, text and JSON), in any
//!   file of the state directory (database, `-wal`, `-shm`, lock), in
//!   `status`/`history`/`config check` output (text and JSON), in `Debug`
//!   output (what a panic message would show), nor with wrong credentials that
//!   the sandbox refuses. The state directory is 0700 and its files 0600.
//! - [`names_from_the_server_never_become_local_paths`]: the server renames
//!   the uploaded files to `../../…`, absolute paths and the like; with
//!   `after_decision = "move"` every file still lands in `approved/` or
//!   `rejected/` beside its own local path, and nothing appears anywhere else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docsync_sandbox::{Credentials, DecisionRule, SandboxConfig};

use crate::harness::{pdf, run_command, wait_until, TestSandbox, Workspace, COMMAND_TIMEOUT};

const PUBLIC_KEY: &str = "pk_canary_public";
const SECRET_KEY: &str = "sk_CANARY_5e3c1a9f7d2b4e6a8c0f1d3b5a7e9c2d";
const API_KEY: &str = "ak_CANARY_0b2d4f6a8c1e3a5c7e9b0d2f4a6c8e1b";
const WRONG_SECRET_KEY: &str = "sk_CANARY_WRONG_93b1f5d7a2c4e6b8d0f2a4";
const WRONG_API_KEY: &str = "ak_CANARY_WRONG_8d6b4f2a0c9e7a5c3e1b";

fn sandbox() -> TestSandbox {
    TestSandbox::with_config(SandboxConfig {
        credentials: Some(Credentials {
            public_key: PUBLIC_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned(),
            attachments_api_key: API_KEY.to_owned(),
        }),
        decision: DecisionRule {
            delay: Duration::from_millis(200),
            ..DecisionRule::default()
        },
        attachment_processing_delay: Duration::from_millis(200),
        ..SandboxConfig::default()
    })
}

/// `user:password` as an HTTP Basic header carries it.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Texts and bytes to search, with where they came from.
#[derive(Default)]
struct Haystack {
    items: Vec<(String, Vec<u8>)>,
}

impl Haystack {
    fn add(&mut self, what: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.items.push((what.into(), bytes.into()));
    }

    /// Every file of the state directory, as it is now.
    fn add_state_dir(&mut self, w: &Workspace, when: &str) {
        for path in files_under(&w.state) {
            let bytes = std::fs::read(&path).unwrap();
            self.add(format!("{} ({when})", path.display()), bytes);
        }
    }

    /// Panics naming every place where a needle was found.
    fn assert_free_of(&self, needles: &[(&str, String)]) {
        let mut found = Vec::new();
        for (what, bytes) in &self.items {
            for (name, needle) in needles {
                if bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
                {
                    found.push(format!("{name} in {what}"));
                }
            }
        }
        if !found.is_empty() {
            for (what, bytes) in &self.items {
                let text = String::from_utf8_lossy(bytes);
                for line in text.lines() {
                    if needles.iter().any(|(_, n)| line.contains(n.as_str())) {
                        eprintln!("LEAK {what}: {line}");
                    }
                }
            }
        }
        assert!(found.is_empty(), "secrets leaked: {found:#?}");
        for (what, bytes) in &self.items {
            let text = String::from_utf8_lossy(bytes);
            assert!(!text.contains("panicked"), "a panic in {what}:\n{text}");
        }
    }
}

/// The modes of the state directory and of every file in it.
fn assert_private(w: &Workspace, when: &str) -> Vec<String> {
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&w.state), 0o700, "{} ({when})", w.state.display());
    let mut seen = Vec::new();
    for path in files_under(&w.state) {
        assert_eq!(
            mode(&path),
            0o600,
            "{} is {:04o} ({when})",
            path.display(),
            mode(&path)
        );
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    seen
}

fn write_config(w: &Workspace) {
    w.write_file(
        "docsync.toml",
        r#"state_dir = "state"
quiet_window = "200ms"
poll_interval = "200ms"
retry_initial = "200ms"

[api]
auth = "oauth"

[credentials]
file = "creds.toml"

[[folder]]
path = "files"
target = { kind = "moov-files", account_id = "00000000-0000-4000-8000-000000000006", file_purpose = "business_verification" }

[[folder]]
path = "attach"
target = { kind = "attachments", user_id = "user-sec" }
"#,
    );
    let creds = w.write_file(
        "creds.toml",
        &format!(
            "public_key = \"{PUBLIC_KEY}\"\nsecret_key = \"{SECRET_KEY}\"\nattachments_api_key = \"{API_KEY}\"\n"
        ),
    );
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Drop `name` into the workspace folder `folder` (written elsewhere, renamed in).
fn drop_into(w: &Workspace, folder: &str, name: &str, bytes: &[u8]) {
    let staging = w.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(w.path().join(folder)).unwrap();
    std::fs::write(staging.join(name), bytes).unwrap();
    std::fs::rename(staging.join(name), w.path().join(folder).join(name)).unwrap();
}

fn states(w: &Workspace) -> Vec<(String, String)> {
    w.status_json()
        .into_iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap_or_default().to_owned(),
                r["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn canary_secrets_never_leak() {
    let sandbox = sandbox();
    let w = Workspace::with_sandbox(&sandbox);
    write_config(&w);
    let mut hay = Haystack::default();

    // 1. keys from the environment; text logs at trace level, while files flow
    // through a sandbox that fails a third of the requests (the error paths),
    // the OAuth token requests included.
    sandbox.set_faults(docsync_sandbox::FaultConfig {
        seed: 0x5ec,
        error_rate: 0.15,
        rate_limit_rate: 0.05,
        retry_after_secs: Some(1),
        reset_rate: 0.15,
        ..docsync_sandbox::FaultConfig::default()
    });
    drop_into(&w, "files", "passport.pdf", &pdf("passport"));
    let daemon = w.spawn(["-vv", "--log-format", "text", "run"]);
    wait_until(Duration::from_secs(60), "the first upload", || {
        match w.status_of("passport.pdf") {
            Some(row) if row["remote_id"].is_string() => Ok(()),
            row => Err(format!("{row:?}\n--- log\n{}", daemon.log())),
        }
    });
    drop_into(&w, "files", "reject-me.pdf", &pdf("rejected"));
    for n in 0..4 {
        drop_into(
            &w,
            "attach",
            &format!("ledger-{n}.csv"),
            format!("id,amount\n{n},10\n").as_bytes(),
        );
    }
    wait_until(Duration::from_secs(60), "the first files decided", || {
        let s = states(&w);
        let decided = s
            .iter()
            .filter(|(_, st)| st == "approved" || st == "rejected")
            .count();
        if decided == 6 {
            Ok(())
        } else {
            Err(format!("{s:?}\n--- log\n{}", daemon.log()))
        }
    });
    // while it runs: the WAL and its index exist, and are private too
    let files = assert_private(&w, "while running");
    for name in ["docsync.db", "docsync.db-wal", "docsync.db-shm", "lock"] {
        assert!(files.iter().any(|f| f == name), "no {name}: {files:?}");
    }
    hay.add_state_dir(&w, "while running");
    let faulted = sandbox
        .request_log()
        .iter()
        .filter(|e| e.fault.is_some())
        .count();
    assert!(faulted > 0, "no fault was injected");
    sandbox.set_faults(docsync_sandbox::FaultConfig::default());
    let status = daemon.stop(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    let trace = std::fs::read_to_string(w.path().join("daemon-0.log")).unwrap();
    assert!(trace.contains("TRACE"), "-vv logs at trace level:\n{trace}");
    hay.add("run -vv --log-format text", trace);

    // 2. keys from the credentials file only; JSON logs at trace level
    drop_into(&w, "files", "statement.pdf", &pdf("statement"));
    drop_into(&w, "attach", "notes.txt", b"plain notes\n");
    let mut cmd = w.cmd(["-vv", "--log-format", "json", "sync", "--once"]);
    for var in [
        "DOCSYNC_PUBLIC_KEY",
        "DOCSYNC_SECRET_KEY",
        "DOCSYNC_ATTACHMENTS_API_KEY",
    ] {
        cmd.env_remove(var);
    }
    let out = run_command(cmd, COMMAND_TIMEOUT);
    assert_eq!(out.code(), Some(1), "one file is rejected\n{out}");
    assert!(
        out.stdout.contains("sync: 8 files: 7 approved, 1 rejected"),
        "{out}"
    );
    let json_lines = out.stderr.lines().filter(|l| l.starts_with('{')).count();
    assert!(json_lines > 10, "{out}");
    assert!(out.stderr.contains("\"level\":\"TRACE\""), "{out}");
    hay.add(
        "sync -vv --log-format json (credentials file)",
        format!("{out}"),
    );

    // 3. wrong keys: refused by the sandbox, recorded, and not printed either
    drop_into(&w, "files", "refused.pdf", &pdf("refused"));
    drop_into(&w, "attach", "refused.csv", b"id\n2\n");
    for format in ["text", "json"] {
        let mut cmd = w.cmd([
            "-vv",
            "--log-format",
            format,
            "sync",
            "--once",
            "--timeout",
            "3s",
        ]);
        cmd.env("DOCSYNC_SECRET_KEY", WRONG_SECRET_KEY)
            .env("DOCSYNC_ATTACHMENTS_API_KEY", WRONG_API_KEY);
        let out = run_command(cmd, COMMAND_TIMEOUT);
        assert_ne!(out.code(), Some(0), "{out}");
        hay.add(format!("sync with wrong keys ({format})"), format!("{out}"));
    }
    let refused = w.status_of("refused.pdf").unwrap();
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("401") || reason.to_lowercase().contains("unauthori"),
        "{refused}"
    );
    let refused = w.status_of("refused.csv").unwrap();
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("401") || reason.to_lowercase().contains("unauthori"),
        "{refused}"
    );

    // 4. what people read
    for args in [
        &["status"][..],
        &["status", "--json", "--all"],
        &["-vv", "status"],
        &["history", "files/passport.pdf"],
        &["history", "files/reject-me.pdf", "--json"],
        &["history", "attach/ledger-0.csv", "--json"],
        &["history", "files/refused.pdf"],
        &["config", "check"],
        &["-vv", "--log-format", "json", "config", "check"],
    ] {
        let out = w.run(args);
        assert_eq!(out.code(), Some(0), "{args:?}\n{out}");
        hay.add(format!("docsync {}", args.join(" ")), format!("{out}"));
    }
    assert_private(&w, "after the runs");
    hay.add_state_dir(&w, "after the runs");

    // 5. what a panic message would show: the Debug of the configuration and
    // of the clients built from it
    let env = docsync::config::Env::from_pairs([
        ("DOCSYNC_API_URL", sandbox.url()),
        ("DOCSYNC_PUBLIC_KEY", PUBLIC_KEY),
        ("DOCSYNC_SECRET_KEY", SECRET_KEY),
        ("DOCSYNC_ATTACHMENTS_API_KEY", API_KEY),
    ]);
    let config = docsync::config::load(&w.path().join("docsync.toml"), &env).unwrap();
    hay.add("Debug of the configuration", format!("{config:?}"));
    let apis = docsync::remote::connect::apis(&config).unwrap();
    hay.add("Debug of the API clients", format!("{apis:?}"));

    // the OAuth tokens the sandbox issued, and the signed upload URLs' tokens
    let issued = sandbox_secrets(
        &sandbox,
        "SELECT access_token || ' ' || refresh_token FROM tokens",
    );
    assert!(!issued.is_empty(), "auth = \"oauth\" issued no token");
    let signed = sandbox_secrets(&sandbox, "SELECT token FROM attachments");
    assert!(!signed.is_empty(), "no attachment was uploaded");
    let mut needles: Vec<(&str, String)> = vec![
        ("the secret key", SECRET_KEY.to_owned()),
        ("the api key", API_KEY.to_owned()),
        ("the Basic header", basic(PUBLIC_KEY, SECRET_KEY)),
        ("the wrong secret key", WRONG_SECRET_KEY.to_owned()),
        ("the wrong api key", WRONG_API_KEY.to_owned()),
        (
            "the wrong Basic header",
            basic(PUBLIC_KEY, WRONG_SECRET_KEY),
        ),
    ];
    for pair in &issued {
        for token in pair.split(' ') {
            needles.push(("an OAuth token", token.to_owned()));
        }
    }
    for token in &signed {
        needles.push(("a signed upload URL's token", token.clone()));
    }
    hay.assert_free_of(&needles);
    eprintln!(
        "security: {faulted} faults injected in the first run; {} needles ({} OAuth tokens, {} signed-URL tokens) searched in {} outputs, \
         logs and state files: none found",
        needles.len(),
        issued.len() * 2,
        signed.len(),
        hay.items.len()
    );
}

/// One column of the sandbox's database (its own record of what it issued).
fn sandbox_secrets(sandbox: &TestSandbox, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        sandbox.data_dir().join("sandbox.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// With no API configured, the embedded sandbox keeps its database (OAuth and
/// signed-URL tokens) and the uploaded documents in `<state_dir>/sandbox`:
/// that directory is private (0700) and its database files are 0600, like
/// docsync's own.
#[test]
fn the_embedded_sandbox_keeps_its_data_private() {
    let w = Workspace::new();
    let daemon = w.spawn(["run", "inbox"]);
    w.drop_file(
        "00000000-0000-4000-8000-000000000007/business_verification/id.pdf",
        &pdf("embedded"),
    );
    let path = "00000000-0000-4000-8000-000000000007/business_verification/id.pdf";
    wait_until(Duration::from_secs(60), "the PDF uploaded", || {
        match w.status_of(path) {
            Some(row) if row["remote_id"].is_string() => Ok(()),
            row => Err(format!("{row:?}\n--- log\n{}", daemon.log())),
        }
    });
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let data = w.state.join("sandbox");
    assert_eq!(mode(&w.state), 0o700);
    assert_eq!(mode(&data), 0o700, "{}", data.display());
    for name in [
        "sandbox.sqlite3",
        "sandbox.sqlite3-wal",
        "sandbox.sqlite3-shm",
    ] {
        let file = data.join(name);
        assert!(file.exists(), "{}", file.display());
        assert_eq!(
            mode(&file),
            0o600,
            "{} is {:04o}",
            file.display(),
            mode(&file)
        );
    }
    let status = daemon.stop(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
}

/// The server's names for the uploaded files are rewritten (in the sandbox's
/// own database, before the decisions) to `../` climbs, absolute paths and
/// backslash paths. With `after_decision = "move"` each file still ends in
/// `approved/` or `rejected/` beside its own local path, and no other file
/// appears anywhere: the server's names never become local paths.
#[test]
fn names_from_the_server_never_become_local_paths() {
    let sandbox = TestSandbox::with_decision_delay(Duration::from_secs(3));
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("after_decision = \"move\"\n");
    let absolute = w.path().join("outside").join("absolute-evil.pdf");
    // local name -> the name the server will report
    let renames = [
        ("a.pdf", "../../../../evil-climb.pdf".to_owned()),
        (
            "reject-b.pdf",
            "../rejected/../../reject-evil.pdf".to_owned(),
        ),
        ("c.csv", absolute.display().to_string()),
        ("sub/d.pdf", "..\\..\\evil-backslash.pdf".to_owned()),
        ("sub/e.pdf", "approved/../../../evil-nested.pdf".to_owned()),
    ];
    for (name, _) in &renames {
        // the bytes must match the name (a PDF named .csv is refused)
        let bytes = match name.ends_with(".csv") {
            true => format!("id,name\n1,{name}\n").into_bytes(),
            false => pdf(name),
        };
        w.drop_file(name, &bytes);
    }
    let daemon = w.spawn(["run"]);
    wait_until(Duration::from_secs(60), "every file uploaded", || {
        let rows = w.status_json();
        if rows.len() == renames.len() && rows.iter().all(|r| r["remote_id"].is_string()) {
            Ok(())
        } else {
            Err(format!("{rows:#?}\n--- log\n{}", daemon.log()))
        }
    });
    let server = sandbox.server_files();
    assert_eq!(server.len(), renames.len());
    {
        let conn = rusqlite::Connection::open(sandbox.data_dir().join("sandbox.sqlite3")).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        for (local, remote) in &renames {
            let base = Path::new(local).file_name().unwrap().to_str().unwrap();
            let changed = conn
                .execute(
                    "UPDATE files SET file_name = ?1 WHERE file_name = ?2 AND file_status = 'pending'",
                    [remote.as_str(), base],
                )
                .unwrap();
            assert_eq!(changed, 1, "{local} was decided before it could be renamed");
        }
    }
    let want = [
        "inbox/approved/a.pdf",
        "inbox/rejected/reject-b.pdf",
        "inbox/approved/c.csv",
        "inbox/sub/approved/d.pdf",
        "inbox/sub/approved/e.pdf",
    ];
    wait_until(
        Duration::from_secs(60),
        "every file decided and moved",
        || {
            let missing: Vec<_> = want
                .iter()
                .filter(|p| !w.path().join(p).is_file())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{missing:?}\n{:#?}\n--- log\n{}",
                    w.status_json(),
                    daemon.log()
                ))
            }
        },
    );
    let status = daemon.stop(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));

    // the server did report the hostile names
    let names: Vec<String> = sandbox
        .server_files()
        .into_iter()
        .map(|f| f.file_name)
        .collect();
    for (_, remote) in &renames {
        assert!(names.contains(remote), "{names:?}");
    }
    // and nothing but the moved files appeared: in the workspace, above it,
    // or at the absolute path
    let mut found: Vec<String> = files_under(w.path())
        .into_iter()
        .map(|p| p.strip_prefix(w.path()).unwrap().display().to_string())
        .filter(|p| !p.starts_with("state/") && !p.starts_with("daemon-") && p != "docsync.toml")
        .collect();
    found.sort();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(found, want);
    assert!(!absolute.exists());
    let above = w.path().parent().unwrap();
    for name in [
        "evil-climb.pdf",
        "reject-evil.pdf",
        "evil-backslash.pdf",
        "evil-nested.pdf",
    ] {
        assert!(!above.join(name).exists(), "{name}");
        assert!(!Path::new("/").join(name).exists(), "{name}");
    }
    let out = w.run(["history", "a.pdf"]);
    assert!(out.stdout.contains("moved to approved/a.pdf"), "{out}");
}
