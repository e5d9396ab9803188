//! The daemon library against a real sandbox, in process: files dropped into a
//! folder end up decided in the store, exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use docsync::config::{parse, Env};
use docsync::engine::{Engine, Mode, Snapshot};
use docsync::store::{State, Store};
use docsync_sandbox::{DecisionRule, Sandbox, SandboxConfig};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";

async fn sandbox() -> docsync_sandbox::SandboxHandle {
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

fn config(
    dir: &Path,
    url: &str,
    sandbox: &docsync_sandbox::SandboxHandle,
) -> docsync::config::Config {
    let text = format!(
        r#"
state_dir = "{state}"
quiet_window = "100ms"
poll_interval = "100ms"
[api]
url = "{url}"
[[folder]]
path = "{inbox}"
target = {{ kind = "moov-files", account_id = "00000000-0000-4000-8000-000000000001", file_purpose = "business_verification" }}
"#,
        state = dir.join("state").display(),
        inbox = dir.join("inbox").display(),
    );
    let creds = sandbox.credentials();
    let env = Env::from_pairs([
        ("DOCSYNC_PUBLIC_KEY", creds.public_key.as_str()),
        ("DOCSYNC_SECRET_KEY", creds.secret_key.as_str()),
    ]);
    parse(&text, None, &env).unwrap()
}

async fn sync_once(config: docsync::config::Config) -> docsync::engine::Report {
    let apis = docsync::remote::connect::apis(&config).unwrap();
    let (tx, _rx) = watch::channel(Snapshot::default());
    Engine::new(config, apis)
        .mode(Mode::Once {
            timeout: Duration::from_secs(60),
        })
        .progress(tx)
        .run(CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_files_are_uploaded_once_and_decided() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox().await;
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("passport.pdf"), PDF).unwrap();
    std::fs::write(inbox.join("ledger.csv"), b"id,amount\n1,10\n").unwrap();
    std::fs::write(inbox.join("please-reject-me.pdf"), [PDF, b"%2"].concat()).unwrap();
    std::fs::write(
        inbox.join("program.pdf"),
        [0x7f, b'E', b'L', b'F', 2, 1, 1, 0],
    )
    .unwrap();

    let report = sync_once(config(dir.path(), sandbox.url(), &sandbox)).await;
    assert!(!report.timed_out, "{report:?}");
    assert_eq!(report.counts.get(&State::Approved), Some(&2), "{report:?}");
    assert_eq!(report.counts.get(&State::Rejected), Some(&1), "{report:?}");
    assert_eq!(report.counts.get(&State::Invalid), Some(&1), "{report:?}");
    assert_eq!(report.exit_code(), 1);

    let store = Store::open_read_only(&dir.path().join("state/docsync.db")).unwrap();
    let rejected = store.in_state(State::Rejected, 10).unwrap();
    assert_eq!(rejected[0].path, b"please-reject-me.pdf");
    assert!(rejected[0]
        .decision_reason
        .as_deref()
        .is_some_and(|r| !r.is_empty()));
    let uploads = |log: &[docsync_sandbox::RequestLogEntry]| {
        log.iter()
            .filter(|e| e.operation_id.as_deref() == Some("uploadFile"))
            .count()
    };
    assert_eq!(
        uploads(&sandbox.request_log()),
        3,
        "the invalid file is never sent"
    );

    // A restart uploads nothing again.
    let report = sync_once(config(dir.path(), sandbox.url(), &sandbox)).await;
    assert_eq!(report.counts.get(&State::Approved), Some(&2), "{report:?}");
    assert_eq!(
        uploads(&sandbox.request_log()),
        3,
        "nothing is uploaded twice"
    );
}

/// A daemon in watch mode over one folder, stopped when dropped.
struct Running {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<docsync::engine::Report>>,
    db: std::path::PathBuf,
}

impl Running {
    async fn start(config: docsync::config::Config) -> Running {
        let db = config.state_dir.join("docsync.db");
        let apis = docsync::remote::connect::apis(&config).unwrap();
        let (tx, _rx) = watch::channel(Snapshot::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            Engine::new(config, apis)
                .mode(Mode::Watch)
                .progress(tx)
                .run(stop.clone())
                .map(Result::unwrap),
        );
        Running {
            stop,
            task: Some(task),
            db,
        }
    }

    /// Wait (at most 30 s) until `check` holds for the rows of the store.
    async fn wait_for(
        &self,
        what: &str,
        check: impl Fn(&[docsync::store::FileRow]) -> bool,
    ) -> Vec<docsync::store::FileRow> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let rows = match Store::open_read_only(&self.db) {
                Ok(store) => store
                    .list(&docsync::store::ListFilter {
                        include_history: true,
                        ..Default::default()
                    })
                    .unwrap(),
                Err(_) => Vec::new(),
            };
            if check(&rows) {
                return rows;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; rows: {rows:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) -> docsync::engine::Report {
        self.stop.cancel();
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

use futures::FutureExt as _;

fn state_of<'a>(
    rows: &'a [docsync::store::FileRow],
    path: &str,
) -> Option<&'a docsync::store::FileRow> {
    rows.iter()
        .find(|r| r.path == path.as_bytes() && r.state.is_live())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_writes_nested_folders_and_atomic_saves_upload_complete_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox().await;
    let mut config = config(dir.path(), sandbox.url(), &sandbox);
    config.quiet_window = Duration::from_millis(400);
    let inbox = config.folders[0].path.clone();
    std::fs::create_dir_all(&inbox).unwrap();
    let daemon = Running::start(config).await;

    // A file written slowly in chunks: never sent before it is complete.
    let slow = inbox.join("slow.csv");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&slow).unwrap();
        for i in 0..8 {
            writeln!(f, "row,{i}").unwrap();
            f.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let complete = std::fs::metadata(&slow).unwrap().len();

    // A nested folder created after start, with a file inside.
    std::fs::create_dir_all(inbox.join("2026/11")).unwrap();
    std::fs::write(inbox.join("2026/11/statement.pdf"), PDF).unwrap();

    // An editor-style atomic save: write a temp file, rename over the target.
    std::fs::write(inbox.join(".report.pdf.swp"), [PDF, b"%tmp"].concat()).unwrap();
    std::fs::rename(inbox.join(".report.pdf.swp"), inbox.join("report.pdf")).unwrap();

    let rows = daemon
        .wait_for("three approved files", |rows| {
            ["slow.csv", "2026/11/statement.pdf", "report.pdf"]
                .iter()
                .all(|p| state_of(rows, p).is_some_and(|r| r.state == State::Approved))
        })
        .await;
    assert_eq!(
        state_of(&rows, "slow.csv").unwrap().size,
        complete,
        "the whole file was sent"
    );
    assert!(
        rows.iter().all(|r| !r.path.ends_with(b".swp")),
        "temp files are ignored: {rows:#?}"
    );
    let uploads: Vec<_> = sandbox
        .request_log()
        .into_iter()
        .filter(|e| e.operation_id.as_deref() == Some("uploadFile"))
        .collect();
    assert_eq!(uploads.len(), 3, "each file sent once: {uploads:#?}");
    daemon.stop().await;
}

fn png(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([seed, 0, 255 - seed]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_replaced_on_change_and_disabled_on_delete() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox().await;
    let mut config = config(dir.path(), sandbox.url(), &sandbox);
    config.folders[0].mapping = docsync::config::Mapping::Fixed(
        docsync::config::Target::MoovImages(docsync::config::MoovImagesTarget {
            account_id: "00000000-0000-4000-8000-000000000002".into(),
            replace_on_change: true,
            disable_on_delete: true,
        }),
    );
    let inbox = config.folders[0].path.clone();
    std::fs::create_dir_all(&inbox).unwrap();
    let daemon = Running::start(config).await;

    std::fs::write(inbox.join("logo.png"), png(1)).unwrap();
    let rows = daemon
        .wait_for("the image approved", |rows| {
            state_of(rows, "logo.png").is_some_and(|r| r.state == State::Approved)
        })
        .await;
    let image_id = state_of(&rows, "logo.png")
        .unwrap()
        .remote_id
        .clone()
        .unwrap();

    // Changed: the same image id gets the new bytes (updateImage), not a second image.
    std::fs::write(inbox.join("logo.png"), png(200)).unwrap();
    daemon
        .wait_for("the changed image approved", |rows| {
            rows.iter().any(|r| r.state == State::Superseded)
                && state_of(rows, "logo.png").is_some_and(|r| {
                    r.state == State::Approved && r.remote_id.as_deref() == Some(&image_id)
                })
        })
        .await;
    let ops: Vec<String> = sandbox
        .request_log()
        .into_iter()
        .filter_map(|e| e.operation_id)
        .collect();
    assert_eq!(
        ops.iter().filter(|o| *o == "uploadImage").count(),
        1,
        "{ops:?}"
    );
    assert_eq!(
        ops.iter().filter(|o| *o == "updateImage").count(),
        1,
        "{ops:?}"
    );

    // Deleted: the image is disabled on the server.
    std::fs::remove_file(inbox.join("logo.png")).unwrap();
    daemon
        .wait_for("the image disabled", |rows| {
            rows.iter().any(|r| {
                r.state == State::Deleted && r.remote_status.as_deref() == Some("disabled")
            })
        })
        .await;
    assert!(sandbox
        .request_log()
        .iter()
        .any(|e| e.operation_id.as_deref() == Some("deleteImage")));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_go_through_signed_urls_and_infected_files_fail() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxConfig {
        attachment_processing_delay: Duration::from_millis(100),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let mut config = config(dir.path(), sandbox.url(), &sandbox);
    config.credentials.attachments_api_key = Some(docsync::config::Secret::new(
        sandbox.credentials().attachments_api_key.clone(),
    ));
    config.folders[0].mapping = docsync::config::Mapping::Fixed(
        docsync::config::Target::Attachments(docsync::config::AttachmentsTarget {
            user_id: "user-7".into(),
            persist: true,
        }),
    );
    let inbox = config.folders[0].path.clone();
    std::fs::create_dir_all(&inbox).unwrap();
    let daemon = Running::start(config).await;

    std::fs::write(inbox.join("notes.txt"), b"meeting notes\n").unwrap();
    let eicar = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    std::fs::write(inbox.join("virus.txt"), eicar).unwrap();
    let rows = daemon
        .wait_for("both attachments decided", |rows| {
            state_of(rows, "notes.txt").is_some_and(|r| r.state == State::Approved)
                && state_of(rows, "virus.txt").is_some_and(|r| r.state == State::Rejected)
        })
        .await;
    let virus = state_of(&rows, "virus.txt").unwrap();
    assert!(
        virus
            .decision_reason
            .as_deref()
            .is_some_and(|r| r.contains("infected")),
        "{virus:#?}"
    );
    daemon.stop().await;
}
