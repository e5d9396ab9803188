#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::*;
use crate::config::{CommandHook, HooksConfig};
use crate::engine::testkit::stage;
use crate::store::{Change, State};

fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("hook.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn command_hooks(program: PathBuf, max_attempts: u32) -> Hooks {
    Hooks::new(HooksConfig {
        command: Some(CommandHook {
            program,
            args: Vec::new(),
        }),
        max_attempts,
        retry_initial: Duration::from_millis(5),
        ..HooksConfig::default()
    })
    .unwrap()
}

/// A file of the stage's folder made `invalid` (a decision) with hooks on.
async fn invalid_file(s: &crate::engine::testkit::Stage, name: &str) -> i64 {
    enable(&s.ctx, vec![HookKind::Command]).await.unwrap();
    let row = s.stable_file(name, b"not a document").await;
    let id = row.id;
    s.ctx
        .store
        .call(move |st| {
            st.transition(
                id,
                State::Stable,
                State::Invalid,
                &Change::because("not a document"),
            )
        })
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_decision_reaches_the_command_once() {
    let s = stage(Duration::from_millis(50)).await;
    let id = invalid_file(&s, "odd.bin").await;
    let out = s._dir.path().join("heard");
    let hooks = command_hooks(
        script(
            s._dir.path(),
            &format!(
                r#"printf '%s %s %s\n' "$DOCSYNC_STATE" "$DOCSYNC_PATH" "$DOCSYNC_ATTEMPT" >> {}"#,
                out.display()
            ),
        ),
        3,
    );
    let stop = CancellationToken::new();
    let round = deliver_due(&s.ctx, &hooks, &stop).await.unwrap();
    assert_eq!(
        round,
        Round {
            delivered: 1,
            ..Round::default()
        }
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "invalid odd.bin 1\n"
    );
    // delivered: never again
    let again = deliver_due(&s.ctx, &hooks, &stop).await.unwrap();
    assert_eq!(again, Round::default());
    let left = s
        .ctx
        .store
        .call(|st| st.outbox_undelivered())
        .await
        .unwrap();
    assert_eq!(left, 0);
    let events = s.ctx.store.call(move |st| st.events(id)).await.unwrap();
    assert!(!events.iter().any(|e| e.reason.contains("hook")));
}

#[tokio::test]
async fn a_hook_that_keeps_failing_is_given_up_into_the_history() {
    let s = stage(Duration::from_millis(50)).await;
    let id = invalid_file(&s, "odd.bin").await;
    let hooks = command_hooks(script(s._dir.path(), "echo 'chat is down' >&2; exit 1"), 2);
    let stop = CancellationToken::new();
    // the first attempt fails; the second comes after its backoff (5 ms, so
    // maybe in the same round) and is the last
    let mut total = Round::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while total.gave_up == 0 {
        let round = deliver_due(&s.ctx, &hooks, &stop).await.unwrap();
        total.delivered += round.delivered;
        total.retrying += round.retrying;
        total.gave_up += round.gave_up;
        assert!(Instant::now() < deadline, "never given up: {total:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        total,
        Round {
            retrying: 1,
            gave_up: 1,
            delivered: 0
        }
    );
    assert_eq!(
        s.ctx
            .store
            .call(|st| st.outbox_undelivered())
            .await
            .unwrap(),
        0
    );
    let events = s.ctx.store.call(move |st| st.events(id)).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.to_state, State::Invalid);
    assert!(
        last.reason
            .starts_with("the command hook gave up on this event after 2 attempts: command hook: ")
            && last
                .reason
                .ends_with("hook.sh failed (exit status: 1): chat is down"),
        "{}",
        last.reason
    );
}

#[test]
fn the_event_carries_the_row_exactly() {
    let entry = OutboxEntry {
        id: 1,
        uid: "abc".into(),
        hook: HookKind::Webhook,
        attempts: 2,
        event_id: 7,
        at: 1_700_000_000_123,
        from_state: Some(State::Pending),
        state: State::Rejected,
        reason: "rejected by the server".into(),
        request_id: Some("req-1".into()),
        file_id: 3,
        folder: "/srv/inbox".into(),
        path: b"caf\xe9.pdf".to_vec(),
        target: crate::model::TargetKey {
            kind: crate::model::TargetKind::MoovFiles,
            account: "acct".into(),
            purpose: "business_verification".into(),
        },
        remote_id: Some("r-9".into()),
        decision_reason: Some("blurry".into()),
    };
    let event = event_of(&entry);
    let json: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "id": "abc",
            "type": "file.decision",
            "at": "2023-11-14T22:13:20.123Z",
            "state": "rejected",
            "previous_state": "pending",
            "folder": "/srv/inbox",
            "path": "caf\\xE9.pdf",
            "path_bytes_hex": "636166e92e706466",
            "target": "moov-files",
            "account": "acct",
            "purpose": "business_verification",
            "remote_id": "r-9",
            "reason": "rejected by the server",
            "decision_reason": "blurry",
            "request_id": "req-1",
            "attempt": 3,
        })
    );
    let vars: std::collections::HashMap<_, _> = event.env_vars().into_iter().collect();
    use std::os::unix::ffi::OsStrExt;
    assert_eq!(vars["DOCSYNC_PATH"].as_bytes(), b"caf\xe9.pdf");
    assert_eq!(
        vars["DOCSYNC_FULL_PATH"].as_bytes(),
        b"/srv/inbox/caf\xe9.pdf"
    );
    assert_eq!(vars["DOCSYNC_STATE"], "rejected");
    assert_eq!(vars["DOCSYNC_REQUEST_ID"], "req-1");
}
