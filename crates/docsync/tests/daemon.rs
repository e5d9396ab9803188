//! The daemon library against a real sandbox, in process: files dropped into a
//! folder end up decided in the store, exactly once.

use std::path::Path;
use std::time::Duration;

use docsync::config::{parse, Env};
use docsync::daemon::{run, Mode, Snapshot};
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
target = {{ kind = "moov-files", account_id = "acct-1", file_purpose = "business_verification" }}
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

async fn sync_once(config: docsync::config::Config) -> docsync::daemon::Report {
    let apis = docsync::connect::apis(&config).unwrap();
    let (tx, _rx) = watch::channel(Snapshot::default());
    run(
        config,
        apis,
        Mode::Once {
            timeout: Duration::from_secs(60),
        },
        CancellationToken::new(),
        tx,
    )
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
