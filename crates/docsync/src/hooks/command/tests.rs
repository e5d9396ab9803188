#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

fn event() -> HookEvent {
    HookEvent {
        id: "0123abcd".into(),
        kind: super::super::EVENT_TYPE,
        at: "2026-01-02T03:04:05.678Z".into(),
        state: "rejected".into(),
        previous_state: Some("pending".into()),
        folder: "/srv/inbox".into(),
        path: "a b/c.pdf".into(),
        path_bytes_hex: None,
        target: "moov-files".into(),
        account: "acct".into(),
        purpose: "business_verification".into(),
        remote_id: Some("r-1".into()),
        reason: "rejected by the server".into(),
        decision_reason: Some("blurry".into()),
        request_id: None,
        attempt: 1,
        path_bytes: b"a b/c.pdf".to_vec(),
    }
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn hook(program: PathBuf, args: &[&str]) -> CommandHook {
    CommandHook {
        program,
        args: args.iter().map(Into::into).collect(),
    }
}

#[tokio::test]
async fn runs_without_a_shell_with_the_event_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let program = script(
        dir.path(),
        "notify.sh",
        &format!(
            r#"printf '%s|%s|%s|%s|%s|%s|%s\n' "$1" "$2" "$DOCSYNC_STATE" "$DOCSYNC_PATH" "$DOCSYNC_FULL_PATH" "$DOCSYNC_REMOTE_ID" "$DOCSYNC_REQUEST_ID" >> {}"#,
            out.display()
        ),
    );
    // an argument with a space and a `$`: argv, never a shell line
    run(
        &hook(program, &["one two", "$HOME"]),
        Duration::from_secs(20),
        &event(),
    )
    .await
    .unwrap();
    let got = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        got,
        "one two|$HOME|rejected|a b/c.pdf|/srv/inbox/a b/c.pdf|r-1|\n"
    );
}

#[tokio::test]
async fn a_failing_command_says_how_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "fail.sh", "echo 'no route to chat' >&2; exit 3");
    let err = run(&hook(program, &[]), Duration::from_secs(20), &event())
        .await
        .unwrap_err();
    assert!(err.contains("fail.sh failed (exit status: 3)"), "{err}");
    assert!(err.ends_with("no route to chat"), "{err}");
}

#[tokio::test]
async fn a_missing_command_is_a_failure_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let err = run(
        &hook(dir.path().join("gone.sh"), &[]),
        Duration::from_secs(20),
        &event(),
    )
    .await
    .unwrap_err();
    assert!(err.starts_with("could not start "), "{err}");
    assert!(err.contains("gone.sh"), "{err}");
}

#[tokio::test]
async fn a_command_that_hangs_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let program = script(
        dir.path(),
        "hang.sh",
        &format!("sleep 300 &\necho $! > {}\nwait", pid_file.display()),
    );
    let err = run(&hook(program, &[]), Duration::from_secs(2), &event())
        .await
        .unwrap_err();
    assert!(err.contains("did not finish within 2s; killed"), "{err}");
    // the `sleep` it started went with it
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let gone = match std::fs::read_to_string(proc_dir.join("stat")) {
            Err(_) => true,
            // a zombie waiting for its parent is dead too
            Ok(stat) => stat.split_whitespace().nth(2) == Some("Z"),
        };
        if gone {
            break;
        }
        assert!(Instant::now() < deadline, "the hook's child still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
