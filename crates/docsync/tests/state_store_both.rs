//! The one store interface, [`StateStore`], answers the same on both
//! backends: each test here runs against SQLite (a database in a temporary
//! directory) and against PostgreSQL (a database of `docsync-pgtest`'s
//! throwaway cluster, as one daemon with its leases). Rows are set up through
//! the interface itself, as the engine's stages make them; where a test must
//! start from a given state, a connection of its own puts the row there, as
//! the SQLite store's unit tests (`store/tests.rs`) do, whose backend-neutral
//! cases are here: every move of the state machine, stale moves, a scan's
//! reconciliation, names that are not UTF-8, the quota and duplicates per
//! account, counts and pages, retries coming due.
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
    Promotion, RetryOne, ScanRecorded, ScanVerdict, ServerAnswer, SharedStore, StateStore, Store,
    UploadAnswer, UploadAnswered, UploadIntent,
};
use docsync_pgtest::{database_or_skip, Database};

/// One backend under test, and what keeps it alive.
struct Backend {
    name: &'static str,
    store: StateStore,
    /// A connection of the test's own, to put a row in any state.
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
    _db: Option<Database>,
}

enum Raw {
    Sqlite(std::path::PathBuf),
    Postgres(tokio_postgres::Client),
}

impl Backend {
    /// Put row `id` straight into `state`, as the SQLite store's unit tests
    /// do, to start from any state (an `uploading` row held by this daemon,
    /// as PostgreSQL requires).
    async fn force_state(&self, id: i64, state: State) {
        match &self.raw {
            Raw::Sqlite(db) => {
                sqlite(db)
                    .execute(
                        "UPDATE files SET state = ?1 WHERE id = ?2",
                        rusqlite::params![state.as_str(), id],
                    )
                    .expect("the row's state forced");
            }
            Raw::Postgres(client) => {
                client
                    .execute(
                        "UPDATE files SET state = $1::text, \
                         lease_owner = CASE WHEN $1::text = 'uploading' THEN 'host-a' END, \
                         lease_expires_at = CASE WHEN $1::text = 'uploading' \
                             THEN now() + interval '10 minutes' END \
                         WHERE id = $2",
                        &[&state.as_str(), &id],
                    )
                    .await
                    .expect("the row's state forced");
            }
        }
    }

    /// Every row made an hour earlier: on PostgreSQL a complete scan sweeps
    /// only rows older than the scan less a minute (another host may have
    /// recorded a file this host's walk passed by).
    async fn age_rows(&self) {
        let sql = "UPDATE files SET created_at = created_at - 3600000";
        match &self.raw {
            Raw::Sqlite(db) => {
                sqlite(db).execute(sql, []).expect("rows aged");
            }
            Raw::Postgres(client) => {
                client.execute(sql, &[]).await.expect("rows aged");
            }
        }
    }
}

/// A connection of the test's own to the SQLite database `db`.
fn sqlite(db: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).expect("a connection of the test's own");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("a busy timeout");
    conn
}

/// SQLite, then PostgreSQL (when it can run here).
async fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("docsync.db");
    let sqlite = Store::open(&file).expect("a SQLite store");
    let mut all = vec![Backend {
        name: "SQLite",
        store: StateStore::sqlite(SharedStore::new(sqlite)),
        raw: Raw::Sqlite(file),
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
        let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .expect("a connection of the test's own");
        tokio::spawn(conn);
        all.push(Backend {
            name: "PostgreSQL",
            store: StateStore::postgres(instance),
            raw: Raw::Postgres(client),
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

/// Take `stable` row `id` and commit `intent` for its file, found
/// unchanged: what the intent decided.
async fn decide(store: &StateStore, id: i64, intent: UploadIntent) -> BeginUpload {
    take(store, id).await;
    let start = store
        .begin_upload(id, State::Stable, intent, || Ok(FileCheck::Unchanged))
        .await
        .expect("the intent");
    let IntentStart::Recorded { outcome, .. } = start else {
        panic!("an intent: {start:?}")
    };
    *outcome
}

/// A row `uploading`, its intent committed.
async fn uploading_row(store: &StateStore, path: &str, sha256: &str) -> i64 {
    let id = stable_row(store, path).await;
    let outcome = decide(store, id, intent(sha256)).await;
    assert!(matches!(outcome, BeginUpload::Started(_)), "{outcome:?}");
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
        // complete when seen, but too old: skipped all the same
        let verdict = ScanVerdict {
            too_old: Some("older than max_age (30d)".into()),
            problem: None,
            held_still: true,
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

/// A new file complete when seen (its writer closed it, or it held still for
/// the quiet window before the daemon looked) is `stable` at once, with one
/// event, and in the upload queue; one still being written is `discovered`;
/// one with a problem is `invalid`, complete or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_complete_when_seen_is_stable_at_once_on_both_backends() {
    for b in backends("both_complete_when_seen").await {
        let store = &b.store;
        let file = |name: &str| Observed {
            path: name.as_bytes().to_vec(),
            size: 10,
            mtime_ns: 1,
            target: target(),
        };
        let verdict = |held_still, problem: Option<&str>| ScanVerdict {
            too_old: None,
            problem: problem.map(str::to_owned),
            held_still,
        };
        let recorded = store
            .reconcile(
                "inbox".into(),
                vec![file("done.pdf"), file("writing.pdf"), file("bad.pdf")],
                false,
                vec![
                    verdict(true, None),
                    verdict(false, None),
                    verdict(true, Some("over the size limit")),
                ],
            )
            .await
            .expect(b.name);
        let states = {
            let mut states = Vec::new();
            for obs in &recorded.reconciled.observations {
                let row = store.get(obs.id()).await.expect(b.name).expect(b.name);
                states.push(row.state);
            }
            states
        };
        assert_eq!(
            states,
            vec![State::Stable, State::Discovered, State::Invalid],
            "{}: {recorded:?}",
            b.name
        );
        assert!(
            matches!(
                recorded.reconciled.observations[0],
                Observation::NewStable { .. }
            ),
            "{}: {recorded:?}",
            b.name
        );
        let done = recorded.reconciled.observations[0].id();
        let detail = store.file_detail(done).await.expect(b.name).expect(b.name);
        let events: Vec<(Option<State>, State)> = detail
            .events
            .iter()
            .map(|e| (e.from_state, e.to_state))
            .collect();
        assert_eq!(events, vec![(None, State::Stable)], "{}", b.name);
        let queue = store.upload_queue(now_ms(), 100).await.expect(b.name);
        let queued: Vec<i64> = queue.rows.iter().map(|r| r.id).collect();
        assert_eq!(
            queued,
            vec![done],
            "{}: only the complete file is due",
            b.name
        );
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

// ---- the SQLite store's own tests (store/tests.rs), through the interface

fn seen(path: &[u8], size: u64, mtime_ns: i64) -> Observed {
    Observed {
        path: path.to_vec(),
        size,
        mtime_ns,
        target: target(),
    }
}

/// One scan of `inbox` (`complete`: every file of the folder is in it).
async fn scan(store: &StateStore, observed: Vec<Observed>, complete: bool) -> ScanRecorded {
    let verdicts = vec![ScanVerdict::default(); observed.len()];
    store
        .reconcile("inbox".into(), observed, complete, verdicts)
        .await
        .expect("a scan")
}

/// A new `discovered` row at `path`.
async fn new_row(store: &StateStore, path: &[u8]) -> i64 {
    let recorded = scan(store, vec![seen(path, 10, 1)], false).await;
    match recorded.reconciled.observations[0] {
        Observation::New { id } => id,
        ref other => panic!("a new row: {other:?}"),
    }
}

/// Every move the state machine allows is recorded with its event; every
/// other is refused, leaving the row and its history untouched. (Into
/// `uploading` only an intent moves a row: see the intent tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_allowed_move_and_no_other_on_both_backends() {
    for b in backends("both_moves").await {
        let store = &b.store;
        for (i, from) in State::ALL.into_iter().enumerate() {
            for (j, to) in State::ALL.into_iter().enumerate() {
                if to == State::Uploading {
                    continue;
                }
                let id = new_row(store, format!("f-{i}-{j}").as_bytes()).await;
                b.force_state(id, from).await;
                let before = events(store, id).await;
                let change = Change {
                    next_attempt_at: Some(5),
                    ..Change::because("test")
                };
                let result = store.transition(id, from, to, change).await;
                let detail = store.file_detail(id).await.expect(b.name).expect(b.name);
                if from.can_transition_to(to) {
                    let new = result.unwrap_or_else(|e| panic!("{}: {from} -> {to}: {e}", b.name));
                    assert_eq!(new.state, to, "{}: {from} -> {to}", b.name);
                    assert_eq!(detail.row.state, to, "{}: {from} -> {to}", b.name);
                    assert_eq!(
                        detail.events.len(),
                        before + 1,
                        "{}: {from} -> {to}",
                        b.name
                    );
                    let last = detail.events.last().expect("an event");
                    assert_eq!(
                        (last.from_state, last.to_state, last.reason.as_str()),
                        (Some(from), to, "test"),
                        "{}",
                        b.name
                    );
                    assert_eq!(
                        detail.row.next_attempt_at.is_some(),
                        to == State::Retrying,
                        "{}: {from} -> {to}",
                        b.name
                    );
                } else {
                    let err = result.expect_err(b.name);
                    assert!(
                        matches!(err, Error::IllegalTransition { .. }),
                        "{}: {from} -> {to}: {err}",
                        b.name
                    );
                    assert_eq!(detail.row.state, from, "{}: row untouched", b.name);
                    assert_eq!(detail.events.len(), before, "{}: no event", b.name);
                }
            }
        }
    }
}

/// A move from a state the row is no longer in, or of a row that does not
/// exist, is refused as such; a move records the server's ids and keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_moves_are_refused_and_moves_keep_the_servers_ids_on_both_backends() {
    for b in backends("both_stale").await {
        let store = &b.store;
        let id = new_row(store, b"a.pdf").await;
        let err = store
            .transition(id, State::Stable, State::Invalid, Change::because("x"))
            .await
            .expect_err(b.name);
        assert!(
            matches!(
                err,
                Error::StaleState {
                    expected: State::Stable,
                    actual: State::Discovered,
                    ..
                }
            ),
            "{}: {err}",
            b.name
        );
        let err = store
            .transition(999_999, State::Stable, State::Invalid, Change::because("x"))
            .await
            .expect_err(b.name);
        assert!(
            matches!(err, Error::NoSuchFile { id: 999_999 }),
            "{}: {err}",
            b.name
        );

        b.force_state(id, State::Uploading).await;
        let row = store
            .transition(
                id,
                State::Uploading,
                State::Pending,
                Change {
                    remote_id: Some("file-1".into()),
                    remote_status: Some("pending".into()),
                    request_id: Some("req-1".into()),
                    ..Change::because("uploaded")
                },
            )
            .await
            .expect(b.name);
        assert_eq!(row.remote_id.as_deref(), Some("file-1"), "{}", b.name);
        assert_eq!(row.last_request_id.as_deref(), Some("req-1"), "{}", b.name);
        let row = store
            .transition(
                id,
                State::Pending,
                State::Rejected,
                Change {
                    remote_status: Some("rejected".into()),
                    decision_reason: Some("blurry".into()),
                    ..Change::because("decided")
                },
            )
            .await
            .expect(b.name);
        assert_eq!(row.decision_reason.as_deref(), Some("blurry"), "{}", b.name);
        assert_eq!(row.remote_id.as_deref(), Some("file-1"), "{}: kept", b.name);
        let detail = store.file_detail(id).await.expect(b.name).expect(b.name);
        let n = detail.events.len();
        assert_eq!(
            detail.events[n - 2].request_id.as_deref(),
            Some("req-1"),
            "{}",
            b.name
        );
        // a poll's news without a move: the same state, an event
        let row = store
            .update_remote(
                id,
                State::Rejected,
                Change {
                    remote_status: Some("rejected (final)".into()),
                    ..Change::because("polled")
                },
            )
            .await
            .expect(b.name);
        assert_eq!(
            (row.state, row.remote_status.as_deref()),
            (State::Rejected, Some("rejected (final)")),
            "{}",
            b.name
        );
        assert!(
            store
                .update_remote(id, State::Approved, Change::because("x"))
                .await
                .is_err(),
            "{}: not in that state",
            b.name
        );
    }
}

/// A scan: an unchanged file is left alone, a file changed before it was
/// sent is looked at again (same row), a file changed after it was sent
/// gets a new row superseding the old, an `uploading` row is left to its
/// sender, a complete scan deletes the rows of files gone (an incomplete one
/// none), and a path back after its deletion is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_reconciles_rows_the_same_on_both_backends() {
    for b in backends("both_scan").await {
        let store = &b.store;
        let first = scan(
            store,
            vec![seen(b"a", 1, 1), seen(b"b", 2, 2), seen(b"c", 3, 3)],
            true,
        )
        .await;
        let ids: Vec<i64> = first
            .reconciled
            .observations
            .iter()
            .map(|o| o.id())
            .collect();
        assert!(
            first
                .reconciled
                .observations
                .iter()
                .all(|o| matches!(o, Observation::New { .. })),
            "{}: {first:?}",
            b.name
        );
        let (a, bb, c) = (ids[0], ids[1], ids[2]);
        b.force_state(c, State::Stable).await;
        let second = scan(
            store,
            vec![seen(b"a", 1, 1), seen(b"b", 5, 2), seen(b"c", 4, 3)],
            true,
        )
        .await;
        assert_eq!(
            second.reconciled.observations,
            vec![
                Observation::Unchanged {
                    id: a,
                    state: State::Discovered
                },
                Observation::Changed { id: bb },
                Observation::Changed { id: c },
            ],
            "{}",
            b.name
        );
        let c_row = store.get(c).await.expect(b.name).expect(b.name);
        assert_eq!(
            (c_row.state, c_row.size),
            (State::Discovered, 4),
            "{}",
            b.name
        );

        b.force_state(a, State::Pending).await;
        let third = scan(store, vec![seen(b"a", 9, 9)], false).await;
        let Observation::Superseded { old, new } = third.reconciled.observations[0] else {
            panic!("{}: {third:?}", b.name)
        };
        assert_eq!(old, a, "{}", b.name);
        assert_eq!(
            store.get(a).await.expect(b.name).expect(b.name).state,
            State::Superseded
        );
        let new_row = store.get(new).await.expect(b.name).expect(b.name);
        assert_eq!(
            (new_row.state, new_row.supersedes),
            (State::Discovered, Some(a)),
            "{}",
            b.name
        );
        // an incomplete scan deletes nothing
        assert!(scan(store, Vec::new(), false)
            .await
            .reconciled
            .deleted
            .is_empty());

        b.force_state(bb, State::Uploading).await;
        b.age_rows().await;
        let fourth = scan(store, vec![seen(b"b", 6, 6)], true).await;
        assert_eq!(
            fourth.reconciled.observations,
            vec![Observation::Busy { id: bb }],
            "{}",
            b.name
        );
        let mut deleted = fourth.reconciled.deleted.clone();
        deleted.sort_unstable();
        assert_eq!(deleted, vec![c, new], "{}", b.name);
        assert_eq!(
            store.get(bb).await.expect(b.name).expect(b.name).state,
            State::Uploading
        );
        let fifth = scan(store, vec![seen(b"c", 4, 3)], false).await;
        assert!(
            matches!(fifth.reconciled.observations[0], Observation::New { id } if id != c),
            "{}: {fifth:?}",
            b.name
        );
    }
}

/// A file name that is not UTF-8 is kept byte for byte and found again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_is_not_utf8_survives_on_both_backends() {
    for b in backends("both_bytes").await {
        let store = &b.store;
        let path = b"caf\xe9/\xff\xfe.pdf";
        let id = new_row(store, path).await;
        assert_eq!(
            store.get(id).await.expect(b.name).expect(b.name).path,
            path.to_vec()
        );
        let again = scan(store, vec![seen(path, 10, 1)], false).await;
        assert_eq!(
            again.reconciled.observations,
            vec![Observation::Unchanged {
                id,
                state: State::Discovered
            }],
            "{}",
            b.name
        );
    }
}

/// The quota counts the account's files on the server or on their way: the
/// intent past it makes the row `invalid`, naming the account; the same
/// content for another account is no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_and_duplicates_count_per_account_on_both_backends() {
    for b in backends("both_quota").await {
        let store = &b.store;
        let with_quota = |sha: &str| UploadIntent {
            quota: Some(3),
            ..intent(sha)
        };
        for i in 0..3 {
            let id = stable_row(store, &format!("{i}.pdf")).await;
            let outcome = decide(store, id, with_quota(&format!("h{i}"))).await;
            assert!(
                matches!(outcome, BeginUpload::Started(_)),
                "{}: {outcome:?}",
                b.name
            );
        }
        let id = stable_row(store, "4.pdf").await;
        match decide(store, id, with_quota("h4")).await {
            BeginUpload::QuotaExceeded { row, used, limit } => {
                assert_eq!(
                    (row.state, used, limit),
                    (State::Invalid, 3, 3),
                    "{}",
                    b.name
                );
            }
            other => panic!("{}: {other:?}", b.name),
        }
        let detail = store.file_detail(id).await.expect(b.name).expect(b.name);
        assert!(
            detail
                .events
                .last()
                .is_some_and(|e| e.reason.contains(&target().account)),
            "{}: {:?}",
            b.name,
            detail.events
        );

        // the same content as 0.pdf, for another account: sent
        let other = TargetKey {
            account: "00000000-0000-4000-8000-00000000acc1".into(),
            ..target()
        };
        let recorded = store
            .reconcile(
                "inbox".into(),
                vec![Observed {
                    target: other,
                    ..seen(b"elsewhere.pdf", 10, 1)
                }],
                false,
                vec![ScanVerdict::default()],
            )
            .await
            .expect(b.name);
        let elsewhere = recorded.reconciled.observations[0].id();
        b.force_state(elsewhere, State::Stable).await;
        let outcome = decide(store, elsewhere, intent("h0")).await;
        assert!(
            matches!(outcome, BeginUpload::Started(_)),
            "{}: {outcome:?}",
            b.name
        );
    }
}

/// Counts per folder, pages that list every row once (the last one says it
/// is the last), and a retry that is due only once its time has come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_pages_and_due_retries_on_both_backends() {
    for b in backends("both_pages").await {
        let store = &b.store;
        let mut ids = Vec::new();
        for n in 0..7 {
            ids.push(new_row(store, format!("f{n}.pdf").as_bytes()).await);
        }
        let other = store
            .reconcile(
                "other".into(),
                vec![seen(b"x.pdf", 1, 1)],
                false,
                vec![ScanVerdict::default()],
            )
            .await
            .expect(b.name)
            .reconciled
            .observations[0]
            .id();
        for &id in &ids[..3] {
            b.force_state(id, State::Failed).await;
        }
        b.force_state(ids[3], State::Rejected).await;
        b.force_state(other, State::Failed).await;

        let folders = store.counts_by_folder().await.expect(b.name);
        let counts: Vec<(&str, [Option<u64>; 3])> = folders
            .iter()
            .map(|f| {
                let n = |s: State| f.counts.get(&s).copied();
                (
                    f.folder.as_str(),
                    [n(State::Failed), n(State::Rejected), n(State::Discovered)],
                )
            })
            .collect();
        assert_eq!(
            counts,
            vec![
                ("inbox", [Some(3), Some(1), Some(3)]),
                ("other", [Some(1), None, None])
            ],
            "{}",
            b.name
        );

        let states = vec![State::Failed, State::Rejected];
        let (first, after) = store
            .explained_page(states.clone(), Some("inbox".into()), None, 2)
            .await
            .expect(b.name);
        let first: Vec<i64> = first.iter().map(|(r, _)| r.id).collect();
        assert_eq!(first, ids[..2], "{}", b.name);
        let (second, after) = store
            .explained_page(states, Some("inbox".into()), after, 2)
            .await
            .expect(b.name);
        let second: Vec<i64> = second.iter().map(|(r, _)| r.id).collect();
        assert_eq!(second, ids[2..4], "{}", b.name);
        assert_eq!(after, None, "{}: the last page says so", b.name);
        let (everywhere, _) = store
            .explained_page(vec![State::Failed], None, None, 10)
            .await
            .expect(b.name);
        assert_eq!(everywhere.len(), 4, "{}", b.name);

        // a retry a second ago is due; one in an hour is not
        for (id, at) in [(ids[4], now_ms() - 1_000), (ids[5], now_ms() + 3_600_000)] {
            b.force_state(id, State::Uploading).await;
            store
                .transition(
                    id,
                    State::Uploading,
                    State::Retrying,
                    Change {
                        next_attempt_at: Some(at),
                        last_error: Some("503".into()),
                        ..Change::because("server busy")
                    },
                )
                .await
                .expect(b.name);
        }
        let queue = store.upload_queue(now_ms(), 100).await.expect(b.name);
        let queued: Vec<i64> = queue.rows.iter().map(|r| r.id).collect();
        assert!(queued.contains(&ids[4]), "{}: {queued:?}", b.name);
        assert!(!queued.contains(&ids[5]), "{}: {queued:?}", b.name);
    }
}
