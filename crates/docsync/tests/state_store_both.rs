//! The one store interface, [`StateStore`], answers the same on both
//! backends: each test here runs against SQLite (a database in a temporary
//! directory) and against PostgreSQL (a database of `docsync-pgtest`'s
//! throwaway cluster, as one daemon with its leases). Rows are set up through
//! the interface itself, as the engine's stages make them.
//!
//! Without PostgreSQL the PostgreSQL half says so loudly and is skipped,
//! unless `DOCSYNC_REQUIRE_POSTGRES=1` (CI), where it fails.

// the helpers below are test code too: a failed step fails the test
#![allow(clippy::expect_used)]

use std::time::Duration;

use docsync::error::Error;
use docsync::model::{now_ms, HookKind, State, TargetKey, TargetKind};
use docsync::store::pg::{PgInstance, PgStore};
use docsync::store::{
    BeginUpload, Change, FileCheck, IntentStart, Observation, Observed, OutboxEntry, OutboxFailure,
    Promotion, RetryOne, ScanVerdict, ServerAnswer, SharedStore, StateStore, Store, UploadAnswer,
    UploadAnswered, UploadIntent,
};
use docsync_pgtest::{database_or_skip, Database};

/// One backend under test, and what keeps it alive.
struct Backend {
    name: &'static str,
    store: StateStore,
    _dir: Option<tempfile::TempDir>,
    _db: Option<Database>,
}

/// SQLite, then PostgreSQL (when it can run here).
async fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = Store::open(&dir.path().join("docsync.db")).expect("a SQLite store");
    let mut all = vec![Backend {
        name: "SQLite",
        store: StateStore::sqlite(SharedStore::new(sqlite)),
        _dir: Some(dir),
        _db: None,
    }];
    if let Some(db) = database_or_skip(test) {
        let pg = PgStore::connect(&db.url, "host-a")
            .await
            .expect("a PostgreSQL store");
        let instance = PgInstance::new(pg, Duration::from_secs(600), Duration::from_secs(2))
            .await
            .expect("the instance");
        all.push(Backend {
            name: "PostgreSQL",
            store: StateStore::postgres(instance),
            _dir: None,
            _db: Some(db),
        });
    }
    all
}

fn target() -> TargetKey {
    TargetKey {
        kind: TargetKind::MoovFiles,
        account: "00000000-0000-4000-8000-00000000acc0".into(),
        purpose: "business_verification".into(),
    }
}

fn intent(sha256: &str) -> UploadIntent {
    UploadIntent {
        sha256: sha256.to_owned(),
        remote_name: None,
        quota: Some(50),
        reason: "validated".into(),
    }
}

/// A file at `path` seen by a scan and held still: its `stable` row's id.
async fn stable_row(store: &StateStore, path: &str) -> i64 {
    let observed = Observed {
        path: path.as_bytes().to_vec(),
        size: 10,
        mtime_ns: 1,
        target: target(),
    };
    let recorded = store
        .reconcile(
            "inbox".into(),
            vec![observed],
            false,
            vec![ScanVerdict::default()],
        )
        .await
        .expect("a scan");
    let Observation::New { id } = recorded.reconciled.observations[0] else {
        panic!("a new row: {recorded:?}")
    };
    let promoted = store
        .promote_stable(vec![Promotion {
            folder: "inbox".into(),
            path: path.as_bytes().to_vec(),
            size: 10,
            mtime_ns: 1,
            reason: "held still",
        }])
        .await
        .expect("promoted");
    assert_eq!(promoted.len(), 1);
    id
}

/// Take row `id` from the upload queue (on PostgreSQL: claim it), as the
/// upload stage does before hashing.
async fn take(store: &StateStore, id: i64) {
    let queue = store.upload_queue(now_ms(), 100).await.expect("the queue");
    assert!(
        queue.rows.iter().any(|r| r.id == id),
        "row {id} in the queue"
    );
}

/// The intent of row `id` (taken, content `sha256`), the file found as
/// `file` just before.
async fn begin(store: &StateStore, id: i64, sha256: &str, file: FileCheck) -> IntentStart {
    store
        .begin_upload(id, State::Stable, intent(sha256), move || Ok(file))
        .await
        .expect("the intent")
}

/// A row `uploading`, its intent committed.
async fn uploading_row(store: &StateStore, path: &str, sha256: &str) -> i64 {
    let id = stable_row(store, path).await;
    take(store, id).await;
    let start = begin(store, id, sha256, FileCheck::Unchanged).await;
    let IntentStart::Recorded { outcome, .. } = start else {
        panic!("an intent: {start:?}")
    };
    assert!(matches!(*outcome, BeginUpload::Started(_)), "{outcome:?}");
    id
}

async fn events(store: &StateStore, id: i64) -> usize {
    store
        .file_detail(id)
        .await
        .expect("the file")
        .expect("a row")
        .events
        .len()
}

/// A decision that cannot be recorded takes back the "on the server" half:
/// the row stays `uploading` without the remote ID, so settle asks the server
/// again instead of polling a half-recorded row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_recorded_halfway_is_undone_on_both_backends() {
    for b in backends("both_halfway").await {
        let store = &b.store;
        let id = uploading_row(store, "a.pdf", "aa").await;
        let before = events(store, id).await;
        let answer = ServerAnswer {
            on_server: Change {
                remote_id: Some("r1".into()),
                ..Change::because("uploaded")
            },
            // pending → stable is not a move the machine allows
            decided: Some((State::Stable, Change::because("decided"))),
        };
        let err = store.record_on_server(id, answer).await.expect_err(b.name);
        assert!(
            matches!(err, Error::IllegalTransition { .. }),
            "{}: {err:?}",
            b.name
        );
        let row = store.get(id).await.expect(b.name).expect(b.name);
        assert_eq!(row.state, State::Uploading, "{}", b.name);
        assert_eq!(row.remote_id, None, "{}", b.name);
        assert_eq!(events(store, id).await, before, "{}: no event", b.name);

        // the same answer with an allowed decision: both halves
        let answer = ServerAnswer {
            on_server: Change {
                remote_id: Some("r1".into()),
                ..Change::because("uploaded")
            },
            decided: Some((State::Approved, Change::because("approved"))),
        };
        let row = store.record_on_server(id, answer).await.expect(b.name);
        assert_eq!(row.state, State::Approved, "{}", b.name);
        assert_eq!(row.remote_id.as_deref(), Some("r1"), "{}", b.name);
    }
}

/// A file found changed just before its intent gets none: nothing is
/// written, so nothing is sent; unchanged, it starts. The same content again
/// on the same target is a duplicate, never a second upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intents_are_refused_for_changed_files_and_duplicates_on_both_backends() {
    for b in backends("both_intents").await {
        let store = &b.store;
        let id = stable_row(store, "a.pdf").await;
        let before = events(store, id).await;
        take(store, id).await;
        let start = begin(store, id, "aa", FileCheck::Replaced).await;
        assert_eq!(
            start,
            IntentStart::FileChanged(FileCheck::Replaced),
            "{}",
            b.name
        );
        let row = store.get(id).await.expect(b.name).expect(b.name);
        assert_eq!(row.state, State::Stable, "{}", b.name);
        assert_eq!(events(store, id).await, before, "{}", b.name);
        let start = begin(store, id, "aa", FileCheck::Unchanged).await;
        let IntentStart::Recorded { outcome, .. } = start else {
            panic!("{}: {start:?}", b.name)
        };
        assert!(
            matches!(*outcome, BeginUpload::Started(ref row) if row.state == State::Uploading),
            "{}: {outcome:?}",
            b.name
        );

        let copy = stable_row(store, "copy-of-a.pdf").await;
        take(store, copy).await;
        let start = begin(store, copy, "aa", FileCheck::Unchanged).await;
        let IntentStart::Recorded { outcome, .. } = start else {
            panic!("{}: {start:?}", b.name)
        };
        match *outcome {
            BeginUpload::Duplicate { row, original } => {
                assert_eq!(row.state, State::Duplicate, "{}", b.name);
                assert_eq!(original.id, id, "{}", b.name);
            }
            other => panic!("{}: not a duplicate: {other:?}", b.name),
        }
    }
}

/// What people see and do: an invalid file is listed with its reason, and a
/// retry puts it back to be checked again; a file that is not failed or
/// invalid is not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_and_retrying_answer_the_same_on_both_backends() {
    for b in backends("both_retry").await {
        let store = &b.store;
        let bad = stable_row(store, "bad.pdf").await;
        let good = stable_row(store, "good.pdf").await;
        store
            .transition(
                bad,
                State::Stable,
                State::Invalid,
                Change::because("not a PDF"),
            )
            .await
            .expect(b.name);
        let (page, next) = store
            .explained_page(vec![State::Invalid], None, None, 10)
            .await
            .expect(b.name);
        let listed: Vec<(i64, &str)> = page.iter().map(|(r, why)| (r.id, why.as_str())).collect();
        assert_eq!(listed, vec![(bad, "not a PDF")], "{}", b.name);
        assert_eq!(next, None, "{}", b.name);
        let counts = store.counts_by_folder().await.expect(b.name);
        assert_eq!(counts.len(), 1, "{}", b.name);
        assert_eq!(
            counts[0].counts.get(&State::Invalid),
            Some(&1),
            "{}",
            b.name
        );
        assert_eq!(counts[0].counts.get(&State::Stable), Some(&1), "{}", b.name);

        match store.retry_one(good, "docsync retry").await.expect(b.name) {
            RetryOne::NotRetryable(row) => assert_eq!(row.id, good, "{}", b.name),
            other => panic!("{}: {other:?}", b.name),
        }
        match store.retry_one(bad, "docsync retry").await.expect(b.name) {
            RetryOne::Retried { ids, .. } => assert_eq!(ids, vec![bad], "{}", b.name),
            other => panic!("{}: {other:?}", b.name),
        }
        let row = store.get(bad).await.expect(b.name).expect(b.name);
        assert_eq!(row.state, State::Stable, "{}", b.name);
        assert_eq!(
            store.retry_one(-1, "docsync retry").await.expect(b.name),
            RetryOne::NoSuchFile,
            "{}",
            b.name
        );
    }
}

/// An upload's answer makes the row `pending` with its file ID, and the poll
/// finds it by account; an ID the server gave before for other content is
/// not trusted (the row `failed`), on either backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_the_poll_read_the_same_on_both_backends() {
    for b in backends("both_answers").await {
        let store = &b.store;
        let id = uploading_row(store, "a.pdf", "aa").await;
        let answer = |id: i64, remote_id: &str, sha256: &str| UploadAnswer {
            id,
            target: target(),
            remote_id: remote_id.to_owned(),
            request_id: Some("req-1".into()),
            sha256: Some(sha256.to_owned()),
            replaces: None,
            answer: ServerAnswer {
                on_server: Change {
                    remote_id: Some(remote_id.to_owned()),
                    remote_status: Some("pending".into()),
                    ..Change::because("uploaded")
                },
                decided: None,
            },
        };
        match store
            .record_upload_answer(answer(id, "r1", "aa"))
            .await
            .expect(b.name)
        {
            UploadAnswered::OnServer(row) => {
                assert_eq!(row.state, State::Pending, "{}", b.name);
                assert_eq!(row.remote_id.as_deref(), Some("r1"), "{}", b.name);
            }
            other => panic!("{}: {other:?}", b.name),
        }
        let accounts = store.pending_accounts().await.expect(b.name);
        assert_eq!(accounts.len(), 1, "{}", b.name);
        assert_eq!(accounts[0].account, target().account, "{}", b.name);
        assert_eq!(accounts[0].count, 1, "{}", b.name);
        let (decided, listed) = store
            .pending_listed(
                TargetKind::MoovFiles,
                target().account,
                vec!["r1".into()],
                vec!["r1".into(), "not-ours".into()],
            )
            .await
            .expect(b.name);
        assert_eq!(
            decided.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![id],
            "{}",
            b.name
        );
        assert_eq!(listed, 1, "{}", b.name);

        // the same file ID for other content: not trusted
        let other = uploading_row(store, "b.pdf", "bb").await;
        match store
            .record_upload_answer(answer(other, "r1", "bb"))
            .await
            .expect(b.name)
        {
            UploadAnswered::IdHeldBy(row) => assert_eq!(row.id, id, "{}", b.name),
            other => panic!("{}: {other:?}", b.name),
        }
        let row = store.get(other).await.expect(b.name).expect(b.name);
        assert_eq!(row.state, State::Failed, "{}", b.name);
        let counts = store.counts_by_state().await.expect(b.name);
        assert_eq!(counts.get(&State::Pending), Some(&1), "{}", b.name);
        assert_eq!(counts.get(&State::Failed), Some(&1), "{}", b.name);
    }
}

/// A file gone from disk: its row `deleted`, once; a path never recorded is
/// said to be so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_file_is_deleted_on_both_backends() {
    for b in backends("both_gone").await {
        let store = &b.store;
        let id = stable_row(store, "a.pdf").await;
        let never = store
            .mark_gone("inbox".into(), b"never.pdf".to_vec(), "gone")
            .await
            .expect(b.name);
        assert!(never, "{}: a path without a row", b.name);
        let had = store
            .mark_gone("inbox".into(), b"a.pdf".to_vec(), "gone")
            .await
            .expect(b.name);
        assert!(!had, "{}", b.name);
        let row = store.get(id).await.expect(b.name).expect(b.name);
        assert_eq!(row.state, State::Deleted, "{}", b.name);
        // nothing left to send
        assert_eq!(store.bytes_to_send().await.expect(b.name), 0, "{}", b.name);
    }
}

/// A new file older than its folder's `max_age` is `skipped` (never sent) and
/// listed with its reason; a retry naming it puts it back to be sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_too_old_is_skipped_on_both_backends() {
    for b in backends("both_too_old").await {
        let store = &b.store;
        let observed = Observed {
            path: b"old.pdf".to_vec(),
            size: 10,
            mtime_ns: 1,
            target: target(),
        };
        let verdict = ScanVerdict {
            too_old: Some("older than max_age (30d)".into()),
            problem: None,
        };
        let recorded = store
            .reconcile("inbox".into(), vec![observed], false, vec![verdict])
            .await
            .expect(b.name);
        assert_eq!(recorded.skipped.len(), 1, "{}: {recorded:?}", b.name);
        let id = recorded.skipped[0];
        let row = store.get(id).await.expect(b.name).expect(b.name);
        assert_eq!(row.state, State::Skipped, "{}", b.name);
        let queue = store.upload_queue(now_ms(), 100).await.expect(b.name);
        assert!(queue.rows.is_empty(), "{}: nothing to send", b.name);
        let (page, _) = store
            .explained_page(vec![State::Skipped], None, None, 10)
            .await
            .expect(b.name);
        let listed: Vec<(i64, &str)> = page.iter().map(|(r, why)| (r.id, why.as_str())).collect();
        assert_eq!(listed, vec![(id, "older than max_age (30d)")], "{}", b.name);
    }
}

/// Every hook event due now, as the notify stage reads them (on PostgreSQL
/// one claim at a time): each handed to `deliver`, which says how it went.
async fn deliver_due(
    store: &StateStore,
    mut deliver: impl FnMut(&OutboxEntry) -> Result<(), Option<i64>>,
) -> Vec<(OutboxEntry, OutboxFailure)> {
    let hooks = vec![HookKind::Command, HookKind::Webhook];
    let mut failed = Vec::new();
    loop {
        let due = store
            .outbox_due(hooks.clone(), now_ms(), 100, Duration::from_secs(60))
            .await
            .expect("the due hook events");
        if due.is_empty() {
            return failed;
        }
        for entry in due {
            match deliver(&entry) {
                Ok(()) => store
                    .outbox_delivered(entry.id, now_ms())
                    .await
                    .expect("delivered"),
                Err(retry_at) => {
                    let outcome = store
                        .outbox_failed(entry.id, "exit status 3".into(), retry_at, now_ms())
                        .await
                        .expect("failed");
                    failed.push((entry, outcome));
                }
            }
        }
    }
}

/// The hooks' outbox: a decision writes one event per hook (one uid for
/// both), due at once; a failed delivery is due again after its wait, or
/// after a restart; given up, it is in the file's history. A move that is
/// not a decision writes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_reaches_each_hook_once_on_both_backends() {
    for b in backends("both_outbox").await {
        let store = &b.store;
        let before_hooks = stable_row(store, "early.pdf").await;
        store
            .transition(
                before_hooks,
                State::Stable,
                State::Invalid,
                Change::because("early"),
            )
            .await
            .expect(b.name);
        assert_eq!(
            store.outbox_undelivered().await.expect(b.name),
            0,
            "{}: no hooks yet",
            b.name
        );

        store
            .enable_outbox(vec![HookKind::Command, HookKind::Webhook])
            .await
            .expect(b.name);
        let id = stable_row(store, "bad.pdf").await;
        assert_eq!(
            store.outbox_undelivered().await.expect(b.name),
            0,
            "{}: no decision yet",
            b.name
        );
        store
            .transition(
                id,
                State::Stable,
                State::Invalid,
                Change::because("not a PDF"),
            )
            .await
            .expect(b.name);
        assert_eq!(
            store.outbox_undelivered().await.expect(b.name),
            2,
            "{}",
            b.name
        );

        let in_an_hour = now_ms() + 3_600_000;
        let mut seen = Vec::new();
        let failed = deliver_due(store, |entry| {
            seen.push(entry.clone());
            match entry.hook {
                HookKind::Command => Ok(()),
                HookKind::Webhook => Err(Some(in_an_hour)),
            }
        })
        .await;
        assert_eq!(seen.len(), 2, "{}: {seen:?}", b.name);
        assert_eq!(seen[0].uid, seen[1].uid, "{}: one uid per event", b.name);
        for entry in &seen {
            assert_eq!(entry.file_id, id, "{}", b.name);
            assert_eq!(entry.path, b"bad.pdf", "{}", b.name);
            assert_eq!(entry.from_state, Some(State::Stable), "{}", b.name);
            assert_eq!(entry.state, State::Invalid, "{}", b.name);
            assert_eq!(entry.reason, "not a PDF", "{}", b.name);
        }
        assert_eq!(failed.len(), 1, "{}", b.name);
        assert!(
            matches!(failed[0].1, OutboxFailure::RetryAt(_)),
            "{}: {failed:?}",
            b.name
        );
        assert_eq!(
            store.outbox_undelivered().await.expect(b.name),
            1,
            "{}",
            b.name
        );
        let next = store
            .outbox_next_due(vec![HookKind::Webhook])
            .await
            .expect(b.name)
            .expect("the webhook's event is still due");
        assert!(
            next > now_ms() + 3_000_000,
            "{}: due in an hour, not {next}",
            b.name
        );
        assert!(
            deliver_due(store, |_| Ok(())).await.is_empty(),
            "{}: nothing due now",
            b.name
        );

        // a restart tries it at once; this time it is given up
        assert_eq!(
            store.outbox_due_now(now_ms()).await.expect(b.name),
            1,
            "{}",
            b.name
        );
        let failed = deliver_due(store, |_| Err(None)).await;
        assert_eq!(failed.len(), 1, "{}", b.name);
        assert_eq!(failed[0].0.attempts, 1, "{}: the second attempt", b.name);
        assert_eq!(failed[0].1, OutboxFailure::GaveUp, "{}", b.name);
        assert_eq!(
            store.outbox_undelivered().await.expect(b.name),
            0,
            "{}",
            b.name
        );
        let detail = store.file_detail(id).await.expect(b.name).expect(b.name);
        let last = detail.events.last().expect("events");
        assert!(
            last.reason
                .contains("webhook hook gave up on this event after 2 attempts: exit status 3"),
            "{}: {last:?}",
            b.name
        );
        assert_eq!(
            detail.row.state,
            State::Invalid,
            "{}: the state stays",
            b.name
        );

        // retried: stable again is not a decision
        assert!(
            matches!(
                store.retry_one(id, "docsync retry").await.expect(b.name),
                RetryOne::Retried { .. }
            ),
            "{}",
            b.name
        );
        assert_eq!(
            store.outbox_undelivered().await.expect(b.name),
            0,
            "{}",
            b.name
        );
    }
}
