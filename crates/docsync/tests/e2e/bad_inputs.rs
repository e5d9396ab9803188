//! Bad inputs, table-driven: every case ends in a clear, recorded state with a
//! reason a person can act on, the daemon keeps running, nothing panics.
//!
//! Groups (one daemon per group):
//! - files on disk ([`files_on_disk`], one `Mode::Once` run over three folders);
//! - files changing under the daemon ([`files_changing_under_the_daemon`], watch mode);
//! - files changing while their bytes are on the wire ([`files_changing_during_upload`]);
//! - account folders that name no Moov account ([`folders_that_cannot_be_accounts`]);
//! - configuration errors ([`config_errors`], `config::parse` / `config::check`);
//! - the state directory ([`state_dir_problems`]: locked, newer schema, full disk);
//! - a misbehaving server ([`server_misbehaviour`], a fake on 127.0.0.1:0).
//!
//! Each group prints its cases; the total is over 25.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use docsync::config::{parse, Env, Severity};
use docsync::engine::{Engine, Mode, Snapshot};
use docsync::store::{FileRow, ListFilter, State, Store};
use docsync_sandbox::{DecisionRule, Sandbox, SandboxConfig, SandboxHandle};
use futures::FutureExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------
// helpers

// The accounts. Moov's account IDs are UUIDs, and docsync syncs no other account
// (see [`folders_that_cannot_be_accounts`]).
const CONFIG_ACCOUNT: &str = "00000000-0000-4000-8000-000000000001";
const IMAGES_ACCOUNT: &str = "00000000-0000-4000-8000-000000000002";
const FILES_ACCOUNT: &str = "00000000-0000-4000-8000-000000000008";
const QUOTA_ACCOUNT: &str = "00000000-0000-4000-8000-000000000009";
const CHANGE_ACCOUNT: &str = "00000000-0000-4000-8000-000000000010";
const MIDWAY_ACCOUNT: &str = "00000000-0000-4000-8000-000000000011";
const FULL_ACCOUNT: &str = "00000000-0000-4000-8000-000000000012";
/// The account folder beside `acme` in [`folders_that_cannot_be_accounts`].
const CONVENTION_ACCOUNT: &str = "00000000-0000-4000-8000-000000000020";
// the fake server's: each answers an upload in its own wrong way
const MALFORMED: &str = "00000000-0000-4000-8000-000000000013";
const MISSING: &str = "00000000-0000-4000-8000-000000000014";
const WRONG_SIZE: &str = "00000000-0000-4000-8000-000000000031";
const WRONG_NAME: &str = "00000000-0000-4000-8000-000000000032";
const SAME_ID: &str = "00000000-0000-4000-8000-000000000033";
const PROXY: &str = "00000000-0000-4000-8000-000000000015";
const ARCHIVED: &str = "00000000-0000-4000-8000-000000000016";
/// The account the fake server names in its answers.
const ANSWERED_ACCOUNT: &str = "00000000-0000-4000-8000-000000000019";

/// A small PDF whose content is unique to `n`.
fn pdf(n: u32) -> Vec<u8> {
    format!("%PDF-1.4\n% case {n}\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n").into_bytes()
}

fn png(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([seed, 0, 255 - seed]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn sandbox() -> SandboxHandle {
    Sandbox::start(SandboxConfig {
        decision: DecisionRule {
            delay: Duration::from_millis(100),
            ..DecisionRule::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

fn creds_env(public_key: &str, secret_key: &str) -> Env {
    Env::from_pairs([
        ("DOCSYNC_PUBLIC_KEY", public_key),
        ("DOCSYNC_SECRET_KEY", secret_key),
    ])
}

/// Every row (history included) of the store at `db`.
fn all_rows(db: &Path) -> Vec<FileRow> {
    match Store::open_read_only(db) {
        Ok(store) => store
            .list(&ListFilter {
                include_history: true,
                ..Default::default()
            })
            .unwrap(),
        Err(_) => Vec::new(),
    }
}

fn live<'a>(rows: &'a [FileRow], folder: &Path, path: &[u8]) -> Option<&'a FileRow> {
    let key = folder.to_string_lossy();
    rows.iter()
        .find(|r| r.folder == key && r.path == path && r.state.is_live())
}

/// Everything recorded about a row: its events' reasons, last error, decision
/// reason and remote name and status, one per line.
fn recorded(db: &Path, row: &FileRow) -> String {
    let store = Store::open_read_only(db).unwrap();
    let mut text: Vec<String> = store
        .events(row.id)
        .unwrap()
        .into_iter()
        .map(|e| e.reason)
        .collect();
    text.extend(row.last_error.clone());
    text.extend(row.decision_reason.clone());
    text.extend(row.remote_name.clone());
    text.extend(row.remote_status.clone());
    text.join("\n")
}

thread_local! {
    /// Whether this thread's warnings go to [`logs`]: set on the threads of a
    /// [`block_on`] runtime and on the test thread that drives it.
    static CAPTURED: Cell<bool> = const { Cell::new(false) };
}

/// Warnings and errors the daemons of this module's tests logged (from the
/// threads [`block_on`] marks), captured for all of them. The other modules of
/// the test binary run in the same process: what their threads log is dropped.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    let buffer = LOGS.get_or_init(|| Mutex::new(Vec::new()));
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        #[derive(Clone)]
        struct Sink;
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if CAPTURED.with(Cell::get) {
                    if let Ok(mut l) = logs().lock() {
                        l.extend_from_slice(buf);
                    }
                }
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Sink)
            .try_init();
    });
    buffer
}

/// Run `test` to the end on a runtime like the one of
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`, with its threads
/// and this one marked so that what they log reaches [`logs`].
fn block_on<F: std::future::Future>(test: F) -> F::Output {
    logs();
    CAPTURED.with(|c| c.set(true));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| CAPTURED.with(|c| c.set(true)))
        .build()
        .expect("a runtime for the test")
        .block_on(test)
}

fn logged() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

/// A daemon in watch mode, stopped when dropped.
struct Running {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<docsync::Result<docsync::engine::Report>>>,
    db: PathBuf,
}

impl Running {
    fn start(config: docsync::config::Config) -> Running {
        let db = config.state_dir.join("docsync.db");
        let apis = docsync::remote::connect::apis(&config).unwrap();
        let (tx, _rx) = watch::channel(Snapshot::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            Engine::new(config, apis)
                .mode(Mode::Watch)
                .progress(tx)
                .run(stop.clone()),
        );
        Running {
            stop,
            task: Some(task),
            db,
        }
    }

    /// Wait (at most `secs`) until `check` holds for the store's rows.
    async fn wait_for(
        &mut self,
        what: &str,
        secs: u64,
        check: impl Fn(&[FileRow]) -> bool,
    ) -> Vec<FileRow> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let rows = all_rows(&self.db);
            if check(&rows) {
                return rows;
            }
            self.assert_running();
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; rows: {rows:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`Running::wait_for`], printing `context()` on a timeout.
    async fn wait_for_or(
        &mut self,
        what: &str,
        secs: u64,
        context: impl Fn() -> String,
        check: impl Fn(&[FileRow]) -> bool,
    ) -> Vec<FileRow> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let rows = all_rows(&self.db);
            if check(&rows) {
                return rows;
            }
            self.assert_running();
            if tokio::time::Instant::now() > deadline {
                let states: Vec<_> = rows.iter().map(|r| (r.path_display(), r.state)).collect();
                panic!(
                    "timed out waiting for {what}; rows: {states:?}\n{}",
                    context()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The daemon has not stopped (nor panicked) on its own.
    fn assert_running(&mut self) {
        if let Some(task) = &self.task {
            if task.is_finished() {
                let result = self.task.take().unwrap().now_or_never().unwrap();
                panic!("the daemon stopped by itself: {result:?}");
            }
        }
    }

    async fn stop(mut self) -> docsync::engine::Report {
        self.assert_running();
        self.stop.cancel();
        self.task.take().unwrap().await.unwrap().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// ---------------------------------------------------------------------------------
// files on disk

/// What a case puts on disk.
enum Put {
    Bytes(Vec<u8>),
    /// A PDF header, then a hole up to this size (sparse: no disk used).
    Sparse(u64),
    /// A symlink to this target.
    Symlink(PathBuf),
    /// Bytes, then `chmod 000`.
    Unreadable(Vec<u8>),
}

/// How a case must end.
enum Expect {
    /// A live row in this state whose record mentions this.
    Row(State, &'static str),
    /// No row at all; the scan reports it skipped with this reason.
    Skipped(&'static str),
}

struct FileCase {
    what: &'static str,
    /// Relative to the moov-files folder.
    path: Vec<u8>,
    put: Put,
    expect: Expect,
}

/// A name that would forge a log line if printed raw.
const FORGED: &[u8] = b"a.pdf\n2026-01-01T00:00:00Z  INFO forged line.pdf";

fn file_cases(outside: &Path, root_as_root: bool) -> Vec<FileCase> {
    use Expect::*;
    use Put::*;
    let long =
        "Quarterly financial statement for the period ending 2026-09-30, final and signed.pdf";
    vec![
        FileCase {
            what: "oversize (21 MiB, sparse)",
            path: b"oversize.pdf".to_vec(),
            put: Sparse(21 * 1024 * 1024),
            expect: Row(State::Invalid, "more than the 20 MiB moov-files accepts"),
        },
        FileCase {
            what: "empty",
            path: b"empty.pdf".to_vec(),
            put: Bytes(Vec::new()),
            expect: Row(State::Invalid, "the file is empty"),
        },
        FileCase {
            what: "wrong type disguised by its extension (ELF named .pdf)",
            path: b"program.pdf".to_vec(),
            put: Bytes([&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0][..], &[0; 64]].concat()),
            expect: Row(State::Invalid, "not its extension"),
        },
        FileCase {
            // The type is decided by the bytes, and a name that promises
            // another type is refused with the fix (it would mislead whoever
            // opens the upload).
            what: "valid type, wrong extension (PDF named .png): invalid, rename it",
            path: b"scan.png".to_vec(),
            put: Bytes(pdf(1)),
            expect: Row(
                State::Invalid,
                "content is PDF, name says .png: rename it to .pdf",
            ),
        },
        FileCase {
            what: "name over 64 characters: shortened, extension kept, recorded",
            path: long.as_bytes().to_vec(),
            put: Bytes(pdf(2)),
            expect: Row(State::Approved, "the name is longer than 64 characters"),
        },
        FileCase {
            what: "non-UTF-8 name: sent percent-encoded, recorded",
            path: b"caf\xe9-invoice.pdf".to_vec(),
            put: Bytes(pdf(3)),
            expect: Row(
                State::Approved,
                "sent as \"caf%E9-invoice.pdf\" because the name is not valid UTF-8: \
                 its byte 0xE9 was sent percent-encoded, as %E9",
            ),
        },
        FileCase {
            what: "name with a newline",
            path: b"line\nbreak.pdf".to_vec(),
            put: Bytes(pdf(4)),
            expect: Row(
                State::Approved,
                "sent as \"line_break.pdf\" because the name contains control characters",
            ),
        },
        FileCase {
            what: "name with quotes",
            path: br#"say "hi" it's.pdf"#.to_vec(),
            put: Bytes(pdf(5)),
            expect: Row(State::Approved, "uploaded"),
        },
        FileCase {
            what: "name with spaces",
            path: b"  lots   of spaces .pdf".to_vec(),
            put: Bytes(pdf(6)),
            expect: Row(State::Approved, "uploaded"),
        },
        FileCase {
            what: "unicode name",
            path: "résumé 日本語 🦀.pdf".as_bytes().to_vec(),
            put: Bytes(pdf(7)),
            expect: Row(State::Approved, "uploaded"),
        },
        FileCase {
            what: "symlink to outside the root: not followed",
            path: b"outside.pdf".to_vec(),
            put: Symlink(outside.to_owned()),
            expect: Skipped("symlink points outside the folder"),
        },
        FileCase {
            what: "symlink loop (a link to itself)",
            path: b"loop.pdf".to_vec(),
            put: Symlink(PathBuf::from("loop.pdf")),
            expect: Skipped("symlink loop"),
        },
        FileCase {
            what: "directory symlink back to the root (a walk loop)",
            path: b"nested/back".to_vec(),
            put: Symlink(PathBuf::from("..")),
            expect: Skipped("already walked"),
        },
        FileCase {
            // Tests run as root, and root reads a mode-000 file anyway: the
            // permission failure cannot be reproduced then. As another user the
            // row ends `invalid` saying the file cannot be read.
            what: "unreadable file (chmod 000)",
            path: b"locked.pdf".to_vec(),
            put: Unreadable(pdf(8)),
            expect: if root_as_root {
                Row(State::Approved, "uploaded")
            } else {
                Row(State::Invalid, "cannot be read")
            },
        },
        FileCase {
            what: "a directory named like a file (x.pdf/): walked, its file synced",
            path: b"x.pdf/inside.csv".to_vec(),
            put: Bytes(b"id,amount\n1,2\n".to_vec()),
            expect: Row(State::Approved, "uploaded"),
        },
        FileCase {
            // decided from its metadata when first seen: never read (reading
            // 1 TiB of zeros took an upload slot for an hour)
            what: "sparse 1 TiB .pdf: invalid from its size, never read",
            path: b"huge.pdf".to_vec(),
            put: Sparse(1 << 40),
            expect: Row(State::Invalid, "more than the 20 MiB moov-files accepts"),
        },
        FileCase {
            what: "CSV saved by Excel in Windows-1252 (\u{e9} = 0xE9, \u{20ac} = 0x80)",
            path: b"excel-1252.csv".to_vec(),
            put: Bytes(b"name;amount\r\ncaf\xe9;3 \x80\r\n".to_vec()),
            expect: Row(State::Approved, "uploaded"),
        },
        FileCase {
            what: "CSV in Latin-1",
            path: b"latin-1.csv".to_vec(),
            put: Bytes(b"name;city\nJos\xe9;K\xf6ln\n".to_vec()),
            expect: Row(State::Approved, "uploaded"),
        },
        FileCase {
            what: "CSV in UTF-8 with a BOM",
            path: b"utf8-bom.csv".to_vec(),
            put: Bytes(b"\xef\xbb\xbfname;amount\ncaf\xc3\xa9;3\n".to_vec()),
            expect: Row(State::Approved, "uploaded"),
        },
        FileCase {
            what: "CSV in UTF-16 with a BOM (NUL bytes in every character)",
            path: b"utf16.csv".to_vec(),
            put: Bytes(utf16le_with_bom("name;amount\r\ncaf\u{e9};3\r\n")),
            expect: Row(State::Approved, "uploaded"),
        },
        FileCase {
            what: "CSV with NUL bytes: binary, not text",
            path: b"nul.csv".to_vec(),
            put: Bytes(b"id,amount\n1,\0\0\0\n".to_vec()),
            expect: Row(State::Invalid, "the content is unknown binary data"),
        },
        FileCase {
            what: "PNG bytes named .pdf: invalid, both named, rename it",
            path: b"photo-scan.pdf".to_vec(),
            put: Bytes(png(9)),
            expect: Row(
                State::Invalid,
                "content is PNG, name says .pdf: rename it to .png",
            ),
        },
        FileCase {
            what: "name with a newline and a forged log line",
            path: FORGED.to_vec(),
            put: Bytes(pdf(9)),
            expect: Row(
                State::Approved,
                "sent as \"a.pdf_2026-01-01T00:00:00Z  INFO forged line.pdf\" because the \
                 name contains control characters",
            ),
        },
        FileCase {
            what: "name of 200 characters: shortened to 64, extension kept",
            path: format!("{}-end.pdf", "y".repeat(192)).into_bytes(),
            put: Bytes(pdf(10)),
            expect: Row(State::Approved, "the name is longer than 64 characters"),
        },
        FileCase {
            what: "name with an ANSI colour escape and a right-to-left override",
            path: "\u{1b}[31mred\u{202e}fdp.pdf".as_bytes().to_vec(),
            put: Bytes(pdf(11)),
            expect: Row(
                State::Approved,
                "sent as \"_[31mred\u{202e}fdp.pdf\" because the name contains control characters",
            ),
        },
        FileCase {
            what: "name with a backslash: arrives as it is",
            path: br"back\slash.pdf".to_vec(),
            put: Bytes(pdf(13)),
            expect: Row(State::Approved, "uploaded"),
        },
        FileCase {
            what: "non-UTF-8 name with a %: the % sent as %25 (lossless)",
            path: b"50% caf\xe9.pdf".to_vec(),
            put: Bytes(pdf(12)),
            expect: Row(State::Approved, "sent as \"50%25 caf%E9.pdf\""),
        },
    ]
}

/// `text` as UTF-16LE with its byte-order mark.
fn utf16le_with_bom(text: &str) -> Vec<u8> {
    let mut out = vec![0xff, 0xfe];
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

fn put(root: &Path, case: &FileCase) {
    let path = root.join(OsStr::from_bytes(&case.path));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    match &case.put {
        Put::Bytes(b) => std::fs::write(&path, b).unwrap(),
        Put::Sparse(len) => {
            let f = std::fs::File::create(&path).unwrap();
            use std::io::Write;
            (&f).write_all(b"%PDF-1.4\n").unwrap();
            f.set_len(*len).unwrap();
        }
        Put::Symlink(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
        Put::Unreadable(b) => {
            std::fs::write(&path, b).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        }
    }
}

#[test]
fn files_on_disk() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = sandbox().await;
        let files = dir.path().join("files");
        let quota = dir.path().join("quota");
        let images = dir.path().join("images");
        let outside = dir.path().join("outside/secret.pdf");
        std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
        std::fs::write(&outside, pdf(99)).unwrap();
        let as_root = unsafe_free_geteuid() == 0;

        let cases = file_cases(&outside, as_root);
        for case in &cases {
            put(&files, case);
        }
        // duplicate content in one account
        std::fs::write(files.join("dup-1.pdf"), pdf(50)).unwrap();
        std::fs::write(files.join("dup-2.pdf"), pdf(50)).unwrap();
        // 51 files for an account that holds at most 50
        std::fs::create_dir_all(&quota).unwrap();
        for n in 0..51 {
            std::fs::write(quota.join(format!("q-{n:02}.pdf")), pdf(1000 + n)).unwrap();
        }
        // duplicate image content
        std::fs::create_dir_all(&images).unwrap();
        std::fs::write(images.join("logo-a.png"), png(7)).unwrap();
        std::fs::write(images.join("logo-b.png"), png(7)).unwrap();

        let text = format!(
            r#"
state_dir = "{state}"
quiet_window = "100ms"
poll_interval = "100ms"
retry_initial = "50ms"
[api]
url = "{url}"
[[folder]]
path = "{files}"
target = {{ kind = "moov-files", account_id = "{FILES_ACCOUNT}", file_purpose = "business_verification" }}
[[folder]]
path = "{quota}"
target = {{ kind = "moov-files", account_id = "{QUOTA_ACCOUNT}", file_purpose = "business_verification" }}
[[folder]]
path = "{images}"
target = {{ kind = "moov-images", account_id = "{IMAGES_ACCOUNT}" }}
"#,
            state = dir.path().join("state").display(),
            url = sandbox.url(),
            files = files.display(),
            quota = quota.display(),
            images = images.display(),
        );
        let c = sandbox.credentials();
        let config = parse(&text, None, &creds_env(&c.public_key, &c.secret_key)).unwrap();
        let apis = docsync::remote::connect::apis(&config).unwrap();
        let (tx, _rx) = watch::channel(Snapshot::default());
        let report = Engine::new(config, apis)
            .mode(Mode::Once {
                timeout: Duration::from_secs(40),
            })
            .progress(tx)
            .run(CancellationToken::new())
            .await
            .unwrap();
        assert!(!report.timed_out, "{report:?}");

        let db = dir.path().join("state/docsync.db");
        let rows = all_rows(&db);
        let skipped = docsync::local::scanner::scan_folder(
            &files,
            &docsync::local::ignore::IgnoreSet::new::<String>(&[], false).unwrap(),
        )
        .unwrap()
        .skipped;
        let mut tried = 0;
        for case in &cases {
            tried += 1;
            let shown = String::from_utf8_lossy(&case.path).into_owned();
            match &case.expect {
                Expect::Row(state, needle) => {
                    let row = live(&rows, &files, &case.path).unwrap_or_else(|| {
                        panic!("{}: no row for {shown:?}: {rows:#?}", case.what)
                    });
                    let text = recorded(&db, row);
                    assert_eq!(row.state, *state, "{}: {row:#?}\n{text}", case.what);
                    assert!(
                        text.contains(needle),
                        "{}: the record does not mention {needle:?}:\n{text}",
                        case.what
                    );
                    eprintln!(
                        "ok  {:<70} {} ({})",
                        case.what,
                        state.as_str(),
                        first_line(&text, needle)
                    );
                }
                Expect::Skipped(needle) => {
                    let prefix = files.join(OsStr::from_bytes(&case.path));
                    assert!(
                        !rows.iter().any(|r| r.path.starts_with(&case.path)),
                        "{}: a row exists: {rows:#?}",
                        case.what
                    );
                    let skip = skipped
                        .iter()
                        .find(|s| s.path == prefix)
                        .unwrap_or_else(|| {
                            panic!("{}: not reported skipped: {skipped:#?}", case.what)
                        });
                    assert!(skip.reason.contains(needle), "{}: {skip:?}", case.what);
                    eprintln!("ok  {:<70} skipped ({})", case.what, skip.reason);
                }
            }
        }

        // the long name: shortened to 64, extension kept, recorded, and what the server has
        let long = live(&rows, &files, cases[4].path.as_slice()).unwrap();
        let remote = long.remote_name.as_deref().unwrap();
        assert!(
            remote.chars().count() <= 64 && remote.ends_with(".pdf"),
            "{remote}"
        );
        let non_utf8 = live(&rows, &files, &cases[5].path).unwrap();
        assert_eq!(non_utf8.remote_name.as_deref(), Some("caf%E9-invoice.pdf"));
        let server = server_files(&sandbox, FILES_ACCOUNT).await;
        let names: Vec<String> = server.iter().map(|f| f.file_name.to_string()).collect();
        assert!(names.iter().any(|n| n == remote), "{names:?}");
        // the 200-character one too
        let longest = cases.iter().find(|c| c.path.len() == 200).unwrap();
        let longest = live(&rows, &files, &longest.path).unwrap();
        let sent = longest.remote_name.as_deref().unwrap();
        assert!(
            sent.chars().count() <= 64 && sent.starts_with("yyyy") && sent.ends_with(".pdf"),
            "{sent}"
        );
        assert!(names.iter().any(|n| n == sent), "{names:?}");
        // a PDF named .png is refused before anything is sent
        assert!(!names.iter().any(|n| n == "scan.png"), "{names:?}");
        // names with quotes, spaces and unicode arrive exactly as they are on disk;
        // the others as recorded
        for name in [
            r#"say "hi" it's.pdf"#,
            "  lots   of spaces .pdf",
            "résumé 日本語 🦀.pdf",
            "line_break.pdf",
            "caf%E9-invoice.pdf",
            "50%25 caf%E9.pdf",
            "a.pdf_2026-01-01T00:00:00Z  INFO forged line.pdf",
            "_[31mred\u{202e}fdp.pdf",
            r"back\slash.pdf",
        ] {
            assert!(names.iter().any(|n| n == name), "{name:?} not in {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("secret") || n.contains("outside")),
            "a symlink out of the folder was followed: {names:?}"
        );

        // duplicate content in one account: sent once, the other recorded `duplicate`
        tried += 1;
        let dups: Vec<_> = [&b"dup-1.pdf"[..], b"dup-2.pdf"]
            .iter()
            .map(|p| live(&rows, &files, p).unwrap())
            .collect();
        let mut states: Vec<_> = dups.iter().map(|r| r.state).collect();
        states.sort();
        assert_eq!(states, [State::Approved, State::Duplicate], "{dups:#?}");
        let dup = dups.iter().find(|r| r.state == State::Duplicate).unwrap();
        let text = recorded(&db, dup);
        assert!(text.contains("same content"), "{text}");
        eprintln!(
            "ok  {:<70} duplicate ({})",
            "duplicate content in one account",
            first_line(&text, "same content")
        );
        assert_eq!(
            server
                .iter()
                .filter(|f| f.metadata.contains(dup.sha256.as_deref().unwrap()))
                .count(),
            1
        );

        // the 51st file of an account
        tried += 1;
        let in_quota: Vec<_> = rows
            .iter()
            .filter(|r| r.folder == quota.to_string_lossy())
            .collect();
        assert_eq!(in_quota.len(), 51);
        assert_eq!(
            in_quota
                .iter()
                .filter(|r| r.state == State::Approved)
                .count(),
            50
        );
        let over: Vec<_> = in_quota
            .iter()
            .filter(|r| r.state == State::Invalid)
            .collect();
        assert_eq!(over.len(), 1, "{in_quota:#?}");
        let text = recorded(&db, over[0]);
        // found either when validated or when the intent is committed (concurrent
        // uploads): both messages name the limit
        assert!(
            text.contains("already holds 50 files") && text.contains("is 50"),
            "{text}"
        );
        eprintln!(
            "ok  {:<70} invalid ({})",
            "the 51st file of an account",
            first_line(&text, "50")
        );

        // duplicate image content
        tried += 1;
        let imgs: Vec<_> = rows
            .iter()
            .filter(|r| r.folder == images.to_string_lossy())
            .collect();
        let mut states: Vec<_> = imgs.iter().map(|r| r.state).collect();
        states.sort();
        assert_eq!(states, [State::Approved, State::Duplicate], "{imgs:#?}");
        let text = recorded(
            &db,
            imgs.iter().find(|r| r.state == State::Duplicate).unwrap(),
        );
        eprintln!(
            "ok  {:<70} duplicate ({})",
            "duplicate image content",
            first_line(&text, "same content")
        );
        assert!(text.contains("same content"), "{text}");

        eprintln!("files on disk: {tried} cases");
        assert!(!logged().contains("panicked"), "{}", logged());
    })
}

fn first_line<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines().find(|l| l.contains(needle)).unwrap_or("")
}

fn unsafe_free_geteuid() -> u32 {
    // libc::geteuid is safe to call; the crate forbids `unsafe`, so ask the
    // filesystem instead: a file we create is owned by our effective uid.
    use std::os::unix::fs::MetadataExt;
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().metadata().unwrap().uid()
}

// ---------------------------------------------------------------------------------
// files changing under the daemon

/// What the sandbox lists for `account`, read through the generated client.
async fn server_files(
    sandbox: &SandboxHandle,
    account: &str,
) -> Vec<docsync_client::moov::types::FileDetails> {
    let c = sandbox.credentials();
    let client = docsync_client::moov::Client::builder(
        sandbox.url(),
        docsync_client::MoovCredentials::basic(c.public_key.clone(), c.secret_key.clone()),
    )
    .build()
    .unwrap();
    client.list_files(account, None).await.unwrap().into_inner()
}

/// A daemon configuration with one moov-files folder `inbox` (created) in `dir` for
/// `account`, talking to `sandbox`; fast polls and retries.
fn one_folder_config(
    dir: &Path,
    sandbox: &SandboxHandle,
    account: &str,
    quiet_window: &str,
) -> (PathBuf, docsync::config::Config) {
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let text = format!(
        r#"
state_dir = "{state}"
quiet_window = "{quiet_window}"
poll_interval = "100ms"
retry_initial = "50ms"
[api]
url = "{url}"
[[folder]]
path = "{inbox}"
target = {{ kind = "moov-files", account_id = "{account}", file_purpose = "business_verification" }}
"#,
        state = dir.join("state").display(),
        url = sandbox.url(),
        inbox = inbox.display(),
    );
    let c = sandbox.credentials();
    let config = parse(&text, None, &creds_env(&c.public_key, &c.secret_key)).unwrap();
    (inbox, config)
}

#[test]
fn files_changing_under_the_daemon() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = sandbox().await;
        let (inbox, config) = one_folder_config(dir.path(), &sandbox, CHANGE_ACCOUNT, "800ms");
        let mut daemon = Running::start(config);
        let db = daemon.db.clone();

        // 1. deleted between scan and upload: seen, then gone before it is stable
        std::fs::write(inbox.join("gone.pdf"), pdf(1)).unwrap();
        daemon
            .wait_for("gone.pdf discovered", 10, |rows| {
                live(rows, &inbox, b"gone.pdf").is_some()
            })
            .await;
        std::fs::remove_file(inbox.join("gone.pdf")).unwrap();

        // 2. and 3. uploaded, then appended to / truncated
        std::fs::write(inbox.join("grows.csv"), b"id,amount\n1,10\n").unwrap();
        std::fs::write(inbox.join("shrinks.pdf"), pdf(2)).unwrap();
        daemon
            .wait_for("the first versions approved", 20, |rows| {
                [&b"grows.csv"[..], b"shrinks.pdf"]
                    .iter()
                    .all(|p| live(rows, &inbox, p).is_some_and(|r| r.state == State::Approved))
            })
            .await;
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(inbox.join("grows.csv"))
                .unwrap();
            f.write_all(b"2,20\n").unwrap();
        }
        std::fs::File::create(inbox.join("shrinks.pdf")).unwrap(); // truncated to 0

        let rows = daemon
            .wait_for("the changes handled", 20, |rows| {
                let gone = rows
                    .iter()
                    .any(|r| r.path == b"gone.pdf" && r.state == State::Deleted);
                let grows = live(rows, &inbox, b"grows.csv")
                    .is_some_and(|r| r.state == State::Approved && r.supersedes.is_some());
                let shrinks =
                    live(rows, &inbox, b"shrinks.pdf").is_some_and(|r| r.state == State::Invalid);
                gone && grows && shrinks
            })
            .await;

        let gone = rows.iter().find(|r| r.path == b"gone.pdf").unwrap();
        let text = recorded(&db, gone);
        assert!(
            text.contains("removed from disk") || text.contains("vanished"),
            "{text}"
        );
        assert!(gone.remote_id.is_none(), "never sent: {gone:#?}");
        eprintln!(
            "ok  {:<70} deleted ({})",
            "deleted between scan and upload",
            text.lines().last().unwrap_or("")
        );

        for (path, what, new_state, needle) in [
            (
                &b"grows.csv"[..],
                "appended after upload: superseded, the new content uploaded",
                State::Approved,
                "uploaded",
            ),
            (
                b"shrinks.pdf",
                "truncated to 0 after upload: superseded, the new row invalid",
                State::Invalid,
                "empty",
            ),
        ] {
            let new = live(&rows, &inbox, path).unwrap();
            assert_eq!(new.state, new_state);
            let old = rows.iter().find(|r| Some(r.id) == new.supersedes).unwrap();
            assert_eq!(old.state, State::Superseded, "{old:#?}");
            let old_text = recorded(&db, old);
            let new_text = recorded(&db, new);
            assert!(new_text.contains(needle), "{new_text}");
            assert!(old_text.contains("content changed on disk"), "{old_text}");
            eprintln!(
                "ok  {:<70} superseded -> {} ({})",
                what,
                new_state.as_str(),
                first_line(&old_text, "content changed")
            );
        }
        let uploads = sandbox
            .request_log()
            .iter()
            .filter(|e| e.operation_id.as_deref() == Some("uploadFile"))
            .count();
        assert_eq!(uploads, 3, "gone.pdf never sent, the empty file never sent");
        daemon.stop().await;
        eprintln!("files changing under the daemon: 3 cases");
    })
}

/// A 12 MiB PDF whose content is unique to `n`.
fn big_pdf(n: u32) -> Vec<u8> {
    let mut bytes = format!("%PDF-1.4\n% big {n}\n").into_bytes();
    bytes.extend(std::iter::repeat_n(b'%', 12 * 1024 * 1024));
    bytes.extend_from_slice(b"\n%%EOF\n");
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Files appended to or truncated while their bytes are on the wire: the
/// sandbox answers slowly (it reads a request after 2 s), so a 12 MiB upload is
/// still being streamed when the file changes. The interrupted upload is not
/// counted as the server's refusal; the file is read again once it holds still,
/// and its final content is uploaded, once.
#[test]
fn files_changing_during_upload() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = sandbox().await;
        let (inbox, config) = one_folder_config(dir.path(), &sandbox, MIDWAY_ACCOUNT, "300ms");
        sandbox
            .set_faults(docsync_sandbox::FaultConfig {
                latency_ms: 2000,
                ..docsync_sandbox::FaultConfig::default()
            })
            .unwrap();
        let mut daemon = Running::start(config);
        std::fs::write(inbox.join("grows.pdf"), big_pdf(1)).unwrap();
        std::fs::write(inbox.join("shrinks.pdf"), big_pdf(2)).unwrap();
        daemon
            .wait_for("both uploads started", 30, |rows| {
                [&b"grows.pdf"[..], b"shrinks.pdf"]
                    .iter()
                    .all(|p| live(rows, &inbox, p).is_some_and(|r| r.state == State::Uploading))
            })
            .await;
        // the intent is committed just before the file is opened and streamed;
        // nothing on this side shows how far the stream got, so give it a moment
        // (the server reads nothing for 2 s: the bytes wait in the socket buffers)
        tokio::time::sleep(Duration::from_millis(500)).await;
        sandbox
            .set_faults(docsync_sandbox::FaultConfig::default())
            .unwrap();
        let mut grown = big_pdf(1);
        {
            use std::io::Write;
            let more = vec![b'%'; 3 * 1024 * 1024];
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(inbox.join("grows.pdf"))
                .unwrap();
            f.write_all(&more).unwrap();
            grown.extend_from_slice(&more);
        }
        let shrunk = big_pdf(2)[..1000].to_vec();
        std::fs::OpenOptions::new()
            .write(true)
            .open(inbox.join("shrinks.pdf"))
            .unwrap()
            .set_len(1000)
            .unwrap();

        let db = daemon.db.clone();
        let rows = daemon
            .wait_for_or("the final contents approved", 30, logged, |rows| {
                [(&b"grows.pdf"[..], &grown), (b"shrinks.pdf", &shrunk)]
                    .iter()
                    .all(|(p, bytes)| {
                        live(rows, &inbox, p).is_some_and(|r| {
                            r.state == State::Approved
                                && r.sha256.as_deref() == Some(sha256(bytes).as_str())
                        })
                    })
            })
            .await;
        let server = server_files(&sandbox, MIDWAY_ACCOUNT).await;
        for (path, bytes, what) in [
            (&b"grows.pdf"[..], &grown, "appended during upload"),
            (b"shrinks.pdf", &shrunk, "truncated during upload"),
        ] {
            let row = live(&rows, &inbox, path).unwrap();
            let text = recorded(&db, row);
            assert!(
                text.contains("changed while it was being sent"),
                "{what}: {text}"
            );
            let sha = sha256(bytes);
            assert_eq!(
                server.iter().filter(|f| f.metadata.contains(&sha)).count(),
                1,
                "{what}: the final content is on the server once: {server:#?}"
            );
            eprintln!(
                "ok  {what:<70} approved ({})",
                first_line(&text, "changed while it was being sent")
            );
        }
        assert_eq!(server.len(), 2, "only the final contents: {server:#?}");
        daemon.stop().await;
        eprintln!("files changing during upload: 2 cases");
    })
}

// ---------------------------------------------------------------------------------
// folders that cannot be accounts

/// Moov's account IDs are UUIDs. A folder of the `<accountID>/<filePurpose>/`
/// layout named otherwise (`acme`) is no account: each of its files ends
/// `invalid` with the fix, the folder is reported once (not once per file and
/// scan), and nothing in it reaches the server. A UUID folder beside it syncs.
///
/// Only scans see the folder here (a polling watcher that never polls, a scan
/// every second), so the files written after the start are seen by scans that
/// also walk the first ones.
#[test]
fn folders_that_cannot_be_accounts() {
    block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = sandbox().await;
        let root = dir.path().join("inbox");
        let acme = root.join("acme/business_verification");
        let good = root.join(CONVENTION_ACCOUNT).join("business_verification");
        std::fs::create_dir_all(&acme).unwrap();
        std::fs::create_dir_all(&good).unwrap();
        std::fs::write(acme.join("x.pdf"), pdf(1)).unwrap();
        std::fs::write(acme.join("y.pdf"), pdf(2)).unwrap();
        std::fs::write(good.join("ok.pdf"), pdf(3)).unwrap();
        let text = format!(
            "state_dir = \"{}\"\nquiet_window = \"100ms\"\nscan_interval = \"1s\"\npoll_interval = \"100ms\"\nretry_initial = \"50ms\"\n[api]\nurl = \"{}\"\n[[folder]]\npath = \"{}\"\nwatcher = \"poll\"\nwatcher_interval = \"1h\"\n",
            dir.path().join("state").display(),
            sandbox.url(),
            root.display()
        );
        let c = sandbox.credentials();
        let config = parse(&text, None, &creds_env(&c.public_key, &c.secret_key)).unwrap();
        let mut daemon = Running::start(config);
        let acme_rel = |name: &str| format!("acme/business_verification/{name}").into_bytes();
        let invalid = |rows: &[FileRow], name: &str| {
            live(rows, &root, &acme_rel(name)).is_some_and(|r| r.state == State::Invalid)
        };
        let ok_rel = format!("{CONVENTION_ACCOUNT}/business_verification/ok.pdf").into_bytes();
        daemon
            .wait_for_or(
                "ok.pdf approved, x.pdf and y.pdf invalid",
                20,
                logged,
                |rows| {
                    invalid(rows, "x.pdf")
                        && invalid(rows, "y.pdf")
                        && live(rows, &root, &ok_rel).is_some_and(|r| r.state == State::Approved)
                },
            )
            .await;
        // written after the start: seen by later scans, each walking x and y too
        for name in ["z.pdf", "w.pdf"] {
            std::fs::write(acme.join(name), pdf(4)).unwrap();
            daemon
                .wait_for_or(&format!("{name} invalid"), 20, logged, |rows| {
                    invalid(rows, name)
                })
                .await;
        }
        let db = daemon.db.clone();
        let rows = all_rows(&db);
        let mut tried = 0;
        for name in ["x.pdf", "y.pdf", "z.pdf", "w.pdf"] {
            tried += 1;
            let row = live(&rows, &root, &acme_rel(name)).unwrap();
            let text = recorded(&db, row);
            let reason = "`acme` is not a Moov account ID (a UUID such as 7f888113-d35a-4536-b9bc-c55076736ab6); rename the folder to the account's ID";
            assert!(text.contains(reason), "{name}: {text}");
            assert!(row.remote_id.is_none(), "{name}: {row:#?}");
            eprintln!(
                "ok  {:<70} invalid ({})",
                format!("acme/business_verification/{name}"),
                first_line(&text, "acme")
            );
        }
        let log = logged();
        assert_eq!(
            log.matches("`acme` is not a Moov account ID").count(),
            1,
            "the folder is reported once:\n{log}"
        );
        // nothing in it reached the server; the account beside it did
        let requests = sandbox.request_log();
        assert!(
            !requests.iter().any(|e| e.path.contains("acme")),
            "{requests:#?}"
        );
        assert!(
            requests
                .iter()
                .any(|e| e.operation_id.as_deref() == Some("uploadFile")
                    && e.path.contains(CONVENTION_ACCOUNT)),
            "{requests:#?}"
        );
        daemon.stop().await;
        assert!(!logged().contains("panicked"), "{}", logged());
        eprintln!("folders that cannot be accounts: {tried} cases");
    })
}

// ---------------------------------------------------------------------------------
// configuration errors

#[test]
fn config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let loose = dir.path().join("loose.toml");
    std::fs::write(&loose, "public_key = \"pk\"\nsecret_key = \"sk\"\n").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let folder = format!(
        "[[folder]]\npath = \"{}\"\ntarget = {{ kind = \"moov-files\", account_id = \"{CONFIG_ACCOUNT}\", file_purpose = \"business_verification\" }}\n",
        inbox.display()
    );
    let keys = creds_env("pk", "sk");
    // (case, config text, env, severity, key, what the message or fix must say)
    let cases: Vec<(&str, String, Env, Severity, &str, &str)> = vec![
        (
            "unknown key",
            format!("concurrence = 4\n{folder}"),
            keys.clone(),
            Severity::Error,
            "",
            "unknown field `concurrence`",
        ),
        (
            "bad account id (a slash)",
            format!("[[folder]]\npath = \"{}\"\ntarget = {{ kind = \"moov-files\", account_id = \"acct/1\", file_purpose = \"business_verification\" }}\n", inbox.display()),
            keys.clone(),
            Severity::Error,
            "folder[0].target.account_id",
            "account_id `acct/1` is not valid",
        ),
        (
            "an account_id that is not a Moov account ID (not a UUID)",
            acme_config(&inbox),
            keys.clone(),
            Severity::Error,
            "folder[0].target.account_id",
            "account_id `acme` is not valid: it is not a Moov account ID (a UUID such as",
        ),
        (
            "bad file purpose",
            format!("[[folder]]\npath = \"{}\"\ntarget = {{ kind = \"moov-files\", account_id = \"{CONFIG_ACCOUNT}\", file_purpose = \"selfie\" }}\n", inbox.display()),
            keys.clone(),
            Severity::Error,
            "",
            "selfie",
        ),
        (
            "missing credentials for a real API",
            format!("[api]\nurl = \"https://api.moov.io\"\n{folder}"),
            Env::default(),
            Severity::Error,
            "credentials",
            "DOCSYNC_PUBLIC_KEY",
        ),
        (
            "no folder configured",
            "concurrency = 2\n".to_owned(),
            keys.clone(),
            Severity::Error,
            "folder",
            "no folder is configured",
        ),
        (
            "folder that does not exist (a warning: the daemon creates it)",
            "[[folder]]\npath = \"/nonexistent/docsync/inbox\"\n[api]\nsandbox = true\n".to_owned(),
            keys.clone(),
            Severity::Warning,
            "folder[0].path",
            "mkdir -p /nonexistent/docsync/inbox",
        ),
        (
            "credentials file readable by others (0644)",
            format!("[credentials]\nfile = \"{}\"\n[api]\nurl = \"https://api.moov.io\"\n{folder}", loose.display()),
            Env::default(),
            Severity::Error,
            "credentials.file",
            "chmod 600",
        ),
        (
            "a duration without a unit",
            format!("quiet_window = \"5\"\n{folder}"),
            keys.clone(),
            Severity::Error,
            "quiet_window",
            "has no unit",
        ),
        (
            "a request rate of zero",
            format!("max_requests_per_second = 0\n{folder}"),
            keys.clone(),
            Severity::Error,
            "max_requests_per_second",
            "out of range",
        ),
        (
            "no API: neither api.url nor api.sandbox = true (no silent sandbox)",
            folder.clone(),
            keys.clone(),
            Severity::Error,
            "api.url",
            "set api.sandbox = true",
        ),
        (
            "api.sandbox = true and api.url together",
            format!("[api]\nurl = \"https://api.moov.io\"\nsandbox = true\n{folder}"),
            keys.clone(),
            Severity::Error,
            "api.sandbox",
            "names the API https://api.moov.io",
        ),
        (
            "--sandbox (DOCSYNC_SANDBOX) beside api.url",
            format!("[api]\nurl = \"https://api.moov.io\"\n{folder}"),
            Env::from_pairs([
                ("DOCSYNC_SANDBOX", "true"),
                ("DOCSYNC_PUBLIC_KEY", "pk"),
                ("DOCSYNC_SECRET_KEY", "sk"),
            ]),
            Severity::Error,
            "env DOCSYNC_SANDBOX",
            "keep one",
        ),
        (
            "api.sandbox that is not a boolean",
            format!("[api]\nsandbox = \"yes\"\n{folder}"),
            keys.clone(),
            Severity::Error,
            "",
            "invalid type",
        ),
    ];
    let n = cases.len();
    for (what, text, env, severity, key, needle) in cases {
        // through a file too, as `docsync config check` reads it
        let path = dir.path().join("docsync.toml");
        std::fs::write(&path, &text).unwrap();
        for problems in [
            docsync::config::parse_all(&text, None, &env).1,
            docsync::config::check(&path, &env),
        ] {
            let found = problems.iter().find(|p| {
                p.severity == severity
                    && (key.is_empty() || p.location.key.as_deref() == Some(key))
                    && (p.message.contains(needle) || p.fix.contains(needle))
            });
            let found = found
                .unwrap_or_else(|| panic!("{what}: no problem mentions {needle:?}: {problems:#?}"));
            assert!(!found.fix.is_empty(), "{what}: no fix given");
            if severity == Severity::Warning {
                assert!(
                    parse(&text, None, &env).is_ok(),
                    "{what}: a warning must not stop the daemon"
                );
            } else {
                assert!(parse(&text, None, &env).is_err(), "{what}");
            }
        }
        eprintln!("ok  {what:<70} {severity:?}");
    }
    // `config check` names the file, the line and column of the target, the key,
    // and the fix
    let path = dir.path().join("acme.toml");
    std::fs::write(&path, acme_config(&inbox)).unwrap();
    let problems = docsync::config::check(&path, &keys);
    let acme = problems
        .iter()
        .find(|p| p.message.contains("`acme`"))
        .unwrap_or_else(|| panic!("{problems:#?}"));
    assert_eq!(acme.location.file.as_deref(), Some(path.as_path()));
    assert_eq!(acme.location.line_col, Some((3, 10)), "{acme}");
    assert!(
        acme.fix
            .contains("set account_id to the account's ID, the UUID the Moov dashboard shows"),
        "{acme}"
    );
    assert!(
        acme.to_string().starts_with(&format!(
            "{}:3:10: folder[0].target.account_id: error: ",
            path.display()
        )),
        "{acme}"
    );
    eprintln!("config errors: {n} cases");
}

/// A configuration whose moov-files folder names the account `acme`.
fn acme_config(inbox: &Path) -> String {
    format!(
        "[[folder]]\npath = \"{}\"\ntarget = {{ kind = \"moov-files\", account_id = \"acme\", file_purpose = \"business_verification\" }}\n",
        inbox.display()
    )
}

// ---------------------------------------------------------------------------------
// the state directory

fn offline_config(dir: &Path) -> docsync::config::Config {
    let text = format!(
        "state_dir = \"{}\"\nquiet_window = \"100ms\"\nscan_interval = \"1s\"\npoll_interval = \"100ms\"\n[api]\nurl = \"http://127.0.0.1:9\"\n[[folder]]\npath = \"{}\"\ntarget = {{ kind = \"moov-files\", account_id = \"{CONFIG_ACCOUNT}\", file_purpose = \"business_verification\" }}\n",
        dir.join("state").display(),
        dir.join("inbox").display()
    );
    parse(&text, None, &creds_env("pk", "sk")).unwrap()
}

async fn run_once(config: docsync::config::Config) -> docsync::Result<docsync::engine::Report> {
    let apis = docsync::remote::connect::apis(&config).unwrap();
    let (tx, _rx) = watch::channel(Snapshot::default());
    Engine::new(config, apis)
        .mode(Mode::Once {
            timeout: Duration::from_secs(5),
        })
        .progress(tx)
        .run(CancellationToken::new())
        .await
}

#[test]
fn state_dir_problems() {
    block_on(async {
        // 1. locked by another instance
        let dir = tempfile::tempdir().unwrap();
        let config = offline_config(dir.path());
        let held = docsync::store::InstanceLock::acquire(&config.state_dir).unwrap();
        let err = run_once(config.clone()).await.unwrap_err();
        assert!(
            matches!(err, docsync::Error::AlreadyRunning { ref dir, .. } if *dir == config.state_dir),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&config.state_dir.display().to_string())
                && message.contains("already uses"),
            "{message}"
        );
        eprintln!(
            "ok  {:<70} {message}",
            "state DB locked by another instance"
        );
        drop(held);

        // 2. a database from a newer docsync
        let dir = tempfile::tempdir().unwrap();
        let config = offline_config(dir.path());
        drop(docsync::store::Store::open_in_state_dir(&config.state_dir).unwrap());
        {
            let conn = rusqlite::Connection::open(config.state_dir.join("docsync.db")).unwrap();
            conn.pragma_update(None, "user_version", 999).unwrap();
        }
        let err = run_once(config.clone()).await.unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, docsync::Error::SchemaTooNew { found: 999, .. }),
            "{err:?}"
        );
        assert!(
            message.contains("upgrade docsync or use another state_dir"),
            "{message}"
        );
        eprintln!("ok  {:<70} {message}", "state DB from a newer schema");

        full_disk().await;
        eprintln!("state dir: 3 cases");
    })
}

/// A small tmpfs as the state directory, filled up while the daemon runs.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A full disk on the state directory. Simulated with a real full filesystem:
/// an 8 MiB tmpfs mounted as the state dir (needs root / CAP_SYS_ADMIN; without
/// it the case is reported as not run), filled with a ballast file once the
/// daemon runs. Files dropped meanwhile cannot be recorded ("database or disk
/// is full"); the daemon logs it and keeps going; once space is freed the
/// next scan records them and they are uploaded.
async fn full_disk() {
    let what = "full disk on the state dir (8 MiB tmpfs, filled)";
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Tmpfs::mount(&dir.path().join("state"), "8m") else {
        eprintln!("--  {what:<70} NOT RUN: mounting a tmpfs needs root or CAP_SYS_ADMIN");
        return;
    };
    let sandbox = sandbox().await;
    let text = format!(
        "state_dir = \"{}\"\nquiet_window = \"100ms\"\nscan_interval = \"1s\"\npoll_interval = \"100ms\"\nretry_initial = \"50ms\"\n[api]\nurl = \"{}\"\n[[folder]]\npath = \"{}\"\ntarget = {{ kind = \"moov-files\", account_id = \"{FULL_ACCOUNT}\", file_purpose = \"business_verification\" }}\n",
        dir.path().join("state").display(),
        sandbox.url(),
        dir.path().join("inbox").display()
    );
    let c = sandbox.credentials();
    let config = parse(&text, None, &creds_env(&c.public_key, &c.secret_key)).unwrap();
    let inbox = config.folders[0].path.clone();
    std::fs::create_dir_all(&inbox).unwrap();
    let mut daemon = Running::start(config);
    std::fs::write(inbox.join("before.pdf"), pdf(1)).unwrap();
    daemon
        .wait_for("before.pdf approved", 20, |rows| {
            live(rows, &inbox, b"before.pdf").is_some_and(|r| r.state == State::Approved)
        })
        .await;

    // fill the filesystem
    let ballast = dir.path().join("state/ballast");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).and_then(|_| f.sync_all()).is_ok() {}
    }
    for n in 0..30 {
        std::fs::write(inbox.join(format!("during-{n:02}.pdf")), pdf(100 + n)).unwrap();
    }
    // the daemon meets the full disk and keeps running
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !logged().contains("disk is full") {
        daemon.assert_running();
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon never met the full disk: {}",
            logged()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemon.assert_running();

    // space again: everything recorded and uploaded, nothing twice
    std::fs::remove_file(&ballast).unwrap();
    daemon
        .wait_for_or(
            "the files dropped during the full disk approved",
            30,
            logged,
            |rows| {
                (0..30).all(|n| {
                    live(rows, &inbox, format!("during-{n:02}.pdf").as_bytes())
                        .is_some_and(|r| r.state == State::Approved)
                })
            },
        )
        .await;
    let uploads = sandbox
        .request_log()
        .iter()
        .filter(|e| {
            e.operation_id.as_deref() == Some("uploadFile") && e.status.is_some_and(|s| s < 300)
        })
        .count();
    let report = daemon.stop().await;
    assert_eq!(uploads, 31, "{report:?}");
    let line = logged()
        .lines()
        .find(|l| l.contains("disk is full"))
        .unwrap_or_default()
        .to_owned();
    eprintln!("ok  {what:<70} recovered; logged: {}", line.trim());
}

// ---------------------------------------------------------------------------------
// a misbehaving server

#[derive(Clone, Default)]
struct Fake {
    uploads: Arc<Mutex<Vec<String>>>,
}

fn details(id: &str, name: &str, status: &str) -> serde_json::Value {
    serde_json::json!({
        "fileID": id,
        "fileName": name,
        "fileStatus": status,
        "filePurpose": "business_verification",
        "fileSizeBytes": 10,
        "accountID": ANSWERED_ACCOUNT,
        "createdOn": "2026-11-23T01:52:28Z",
        "updatedOn": "2026-11-23T01:52:28Z",
        "metadata": "{}",
    })
}

async fn fake_upload(
    axum::extract::State(fake): axum::extract::State<Fake>,
    axum::extract::Path(account): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    fake.uploads.lock().unwrap().push(account.clone());
    let json = |body: String| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    };
    match account.as_str() {
        MALFORMED => json(r#"{"fileID": "f-1", "fileName": "#.to_owned()),
        MISSING => {
            let mut d = details("x", "doc.pdf", "pending");
            d.as_object_mut().unwrap().remove("fileID");
            json(d.to_string())
        }
        ARCHIVED => {
            // a faithful answer (the name and size sent) but for its status
            let mut d = details("f-archived", "doc.pdf", "pending");
            d["fileSizeBytes"] = pdf(3).len().into();
            json(d.to_string())
        }
        // answers that do not match what was sent (issue: check what comes back)
        WRONG_SIZE => json(details("f-size", "doc.pdf", "pending").to_string()),
        WRONG_NAME => {
            let mut d = details("f-name", "other.pdf", "pending");
            d["fileSizeBytes"] = pdf(5).len().into();
            json(d.to_string())
        }
        SAME_ID => {
            // every upload answered with one file ID (the name and size echoed)
            let text = String::from_utf8_lossy(&body);
            let name = text
                .split("filename=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_owned();
            let mut d = details("f-same", &name, "pending");
            d["fileSizeBytes"] = pdf(10).len().into();
            json(d.to_string())
        }
        _ => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
        )
            .into_response(),
    }
}

async fn fake_list(
    axum::extract::Path(account): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let body = match account.as_str() {
        MALFORMED => r#"[{"fileID": "#.to_owned(),
        ARCHIVED => serde_json::json!([details("f-archived", "doc.pdf", "archived")]).to_string(),
        _ => "[]".to_owned(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

#[test]
fn server_misbehaviour() {
    block_on(async {
        let fake = Fake::default();
        let app = axum::Router::new()
            .route(
                "/accounts/{account}/files",
                axum::routing::post(fake_upload).get(fake_list),
            )
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let server = {
            let stop = stop.clone();
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            })
        };

        // (case, account, the state it stays in, what its record must say)
        let cases: &[(&str, &str, State, &str)] = &[
            (
                "malformed JSON in a 200",
                MALFORMED,
                State::Retrying,
                "could not be read",
            ),
            (
                "a 200 with a required field missing",
                MISSING,
                State::Retrying,
                "missing field `fileID`",
            ),
            (
                "an HTML 502 page from a proxy",
                PROXY,
                State::Retrying,
                "server error 502",
            ),
            (
                "an unknown status (fileStatus \"archived\")",
                ARCHIVED,
                State::Pending,
                "`archived`",
            ),
            (
                "an answer with another size than was sent",
                WRONG_SIZE,
                State::Failed,
                "it says 10 bytes arrived",
            ),
            (
                "an answer naming another file than was sent",
                WRONG_NAME,
                State::Failed,
                "it names the file \"other.pdf\"",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("inbox");
        for (n, (_, account, _, _)) in cases.iter().enumerate() {
            let d = root.join(account).join("business_verification");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("doc.pdf"), pdf(n as u32)).unwrap();
        }
        let same_id = root.join(SAME_ID).join("business_verification");
        std::fs::create_dir_all(&same_id).unwrap();
        std::fs::write(same_id.join("a.pdf"), pdf(10)).unwrap();
        std::fs::write(same_id.join("b.pdf"), pdf(11)).unwrap();
        let text = format!(
            "state_dir = \"{}\"\nquiet_window = \"100ms\"\npoll_interval = \"100ms\"\nretry_initial = \"50ms\"\n[api]\nurl = \"{url}\"\n[[folder]]\npath = \"{}\"\n",
            dir.path().join("state").display(),
            root.display()
        );
        let config = parse(&text, None, &creds_env("pk", "sk")).unwrap();
        let apis = docsync::remote::connect::apis(&config).unwrap();
        let (tx, _rx) = watch::channel(Snapshot::default());
        let report = Engine::new(config, apis)
            .mode(Mode::Once {
                timeout: Duration::from_secs(4),
            })
            .progress(tx)
            .run(CancellationToken::new())
            .await
            .unwrap();
        assert!(report.timed_out, "nothing can be decided here: {report:?}");

        let db = dir.path().join("state/docsync.db");
        let rows = all_rows(&db);
        for (what, account, state, needle) in cases {
            let path = format!("{account}/business_verification/doc.pdf");
            let row = live(&rows, &root, path.as_bytes())
                .unwrap_or_else(|| panic!("{what}: no row: {rows:#?}"));
            let text = recorded(&db, row);
            assert_eq!(row.state, *state, "{what}: {row:#?}\n{text}");
            assert!(
                row.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains(needle)),
                "{what}: {row:#?}\n{text}"
            );
            eprintln!(
                "ok  {what:<70} {} ({})",
                state.as_str(),
                row.last_error.as_deref().unwrap_or("")
            );
        }
        let archived = live(
            &rows,
            &root,
            format!("{ARCHIVED}/business_verification/doc.pdf").as_bytes(),
        )
        .unwrap();
        assert_eq!(archived.remote_status.as_deref(), Some("archived"));
        assert_eq!(archived.remote_id.as_deref(), Some("f-archived"));
        let uploads = fake.uploads.lock().unwrap().clone();
        assert_eq!(
            uploads.iter().filter(|a| *a == ARCHIVED).count(),
            1,
            "a file the server took is never sent again: {uploads:?}"
        );
        stop.cancel();
        let _ = server.await;
        assert!(!logged().contains("panicked"), "{}", logged());
        // every upload answered with the same file ID: the first is recorded,
        // the second is refused with the request's answer, never pending
        let mut same: Vec<&FileRow> = ["a.pdf", "b.pdf"]
            .iter()
            .map(|name| {
                let path = format!("{SAME_ID}/business_verification/{name}");
                live(&rows, &root, path.as_bytes()).unwrap()
            })
            .collect();
        same.sort_by_key(|r| r.state != State::Pending);
        assert_eq!(same[0].state, State::Pending, "{same:#?}");
        assert_eq!(same[0].remote_id.as_deref(), Some("f-same"));
        assert_eq!(same[1].state, State::Failed, "{same:#?}");
        assert_eq!(same[1].remote_id, None);
        let reason = same[1].last_error.as_deref().unwrap_or("");
        assert!(
            reason.contains("file ID f-same") && reason.contains("already recorded"),
            "{reason}"
        );
        eprintln!(
            "ok  {:<70} {} ({reason})",
            "every upload answered with the same file ID",
            same[1].state.as_str()
        );
        eprintln!("server misbehaviour: {} cases", cases.len() + 1);
    })
}
