use std::time::Duration;

use super::intent::{Prepared, Ready};
use super::*;
use crate::engine::testkit::{fixture, process, stage};
use crate::store::{Change, State};

#[test]
fn stable_file_gets_an_upload_intent() {
    let mut fx = fixture();
    std::fs::write(fx.root.join("a.pdf"), b"%PDF-1.4 hello").unwrap();
    let rows = fx.scan_and_settle();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, State::Stable);
    let Prepared::Upload(Ready { row, plan, .. }) = fx.prepare(&rows[0]) else {
        panic!()
    };
    assert_eq!(row.state, State::Uploading);
    assert_eq!(row.sha256.as_deref().map(str::len), Some(64));
    assert_eq!(plan.content_type, "application/pdf");
    assert_eq!(plan.file_name, "a.pdf");
    assert_eq!(fx.folder.file_path(&row.path), fx.root.join("a.pdf"));
    let states: Vec<State> = fx
        .store
        .events(row.id)
        .unwrap()
        .iter()
        .map(|e| e.to_state)
        .collect();
    assert_eq!(
        states,
        vec![State::Discovered, State::Stable, State::Uploading]
    );
}

#[test]
fn outcomes_table() {
    let mut fx = fixture();
    let long = format!("{}.pdf", "annual report ".repeat(6));
    std::fs::write(fx.root.join("a.pdf"), b"%PDF-1.4 same").unwrap();
    std::fs::write(fx.root.join("b copy.pdf"), b"%PDF-1.4 same").unwrap();
    std::fs::write(fx.root.join("empty.pdf"), b"").unwrap();
    std::fs::write(fx.root.join("fake.pdf"), b"MZ\x90\0 not a pdf").unwrap();
    std::fs::write(fx.root.join(&long), b"%PDF-1.4 long").unwrap();
    std::fs::write(fx.root.join("edited.pdf"), b"%PDF-1.4 v1").unwrap();
    std::fs::write(fx.root.join("gone.pdf"), b"%PDF-1.4 bye").unwrap();
    let rows = fx.scan_and_settle();
    assert_eq!(rows.len(), 7);

    // changes after the file looked complete
    std::fs::write(fx.root.join("edited.pdf"), b"%PDF-1.4 version two").unwrap();
    std::fs::remove_file(fx.root.join("gone.pdf")).unwrap();

    let mut got = Vec::new();
    for row in &rows {
        let name = row.path_display();
        let outcome = match fx.prepare(row) {
            Prepared::Upload(Ready { row, .. }) => format!("upload {:?}", row.remote_name),
            Prepared::Duplicate { original, .. } => {
                format!("duplicate of {}", original.path_display())
            }
            Prepared::Invalid { row } => {
                format!(
                    "invalid: {}",
                    fx.store.events(row.id).unwrap().last().unwrap().reason
                )
            }
            Prepared::Restarted { row } => format!("restarted {}", row.state),
            Prepared::Deleted { row } => format!("deleted {}", row.state),
        };
        got.push((name, outcome));
    }
    let find = |n: &str| {
        got.iter()
            .find(|(name, _)| name == n)
            .map(|(_, o)| o.clone())
            .unwrap()
    };
    assert_eq!(find("a.pdf"), "upload None");
    assert_eq!(find("b copy.pdf"), "duplicate of a.pdf");
    assert!(find("empty.pdf").starts_with("invalid: the file is empty"));
    assert!(
        find("fake.pdf").contains("not its extension"),
        "{}",
        find("fake.pdf")
    );
    assert_eq!(find("edited.pdf"), "restarted discovered");
    assert_eq!(find("gone.pdf"), "deleted deleted");
    let long_outcome = find(&long);
    assert!(
        long_outcome.starts_with("upload Some(\"annual report"),
        "{long_outcome}"
    );
    let long_row = fx
        .store
        .find_live(&fx.folder.key(), long.as_bytes())
        .unwrap()
        .unwrap();
    let remote = long_row.remote_name.unwrap();
    assert!(remote.chars().count() <= 64 && remote.ends_with(".pdf"));
    let reason = &fx
        .store
        .events(long_row.id)
        .unwrap()
        .last()
        .unwrap()
        .reason
        .clone();
    assert!(reason.contains("longer than 64"), "{reason}");
}

/// The stage end to end against the sandbox: a stable file is sent once and
/// its row is `pending` with the server's id; the server holds exactly it.
#[tokio::test]
async fn a_stable_file_is_sent_and_recorded_pending() {
    let st = stage(Duration::from_secs(3600)).await;
    let row = st.stable_file("a.pdf", b"%PDF-1.4 one").await;
    assert_eq!(
        process(&st.ctx, row.clone()).await.unwrap(),
        Processed::Sent
    );
    let row = st.row(row.id).await;
    assert_eq!(row.state, State::Pending);
    let remote_id = row.remote_id.clone().unwrap();
    let listed = st
        .ctx
        .apis
        .list_files(crate::engine::testkit::ACCOUNT)
        .await
        .unwrap()
        .0;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, remote_id);
    assert!(st.ctx.in_flight.is_empty());
}

/// A retried row whose earlier attempt reached the server is found by its
/// marker and recorded, not sent a second time.
#[tokio::test]
async fn a_retry_whose_first_attempt_arrived_is_not_sent_again() {
    let st = stage(Duration::from_secs(3600)).await;
    let row = st.sent_but_unrecorded("a.pdf", b"%PDF-1.4 twice?").await;
    // the answer was lost: `retrying`, due now
    let id = row.id;
    st.ctx
        .store
        .call(move |s| {
            s.transition(
                id,
                State::Uploading,
                State::Retrying,
                &Change {
                    next_attempt_at: Some(0),
                    attempts: crate::store::Attempts::Keep,
                    ..Change::because("the answer was lost")
                },
            )
        })
        .await
        .unwrap();
    let retry = st.row(id).await;
    assert!(retry.attempts >= 1, "{}", retry.attempts);
    assert_eq!(process(&st.ctx, retry).await.unwrap(), Processed::Sent);
    let row = st.row(id).await;
    assert_eq!(row.state, State::Pending);
    let listed = st
        .ctx
        .apis
        .list_files(crate::engine::testkit::ACCOUNT)
        .await
        .unwrap()
        .0;
    assert_eq!(listed.len(), 1, "sent once");
    let events = st.ctx.store.call(move |s| s.events(id)).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.reason == "an earlier attempt reached the server"),
        "{events:?}"
    );
}

/// A file that changed after it held still goes back to `discovered` and is
/// not sent; the stage reports it so the intake is woken.
#[tokio::test]
async fn a_file_changed_after_it_held_still_is_not_sent() {
    let st = stage(Duration::from_secs(3600)).await;
    let row = st.stable_file("a.pdf", b"%PDF-1.4 v1").await;
    std::fs::write(st.folder.path.join("a.pdf"), b"%PDF-1.4 version two").unwrap();
    assert_eq!(
        process(&st.ctx, row.clone()).await.unwrap(),
        Processed::Restarted
    );
    assert_eq!(st.row(row.id).await.state, State::Discovered);
    assert_eq!(
        st.sandbox
            .request_log()
            .iter()
            .filter(|e| e.method == "POST")
            .count(),
        0
    );
}

/// The path before the handle: a file deleted after it was read (an app's
/// temporary file) is not sent, and its row says so.
#[test]
fn a_file_gone_after_it_was_read_is_not_sent() {
    let mut fx = fixture();
    std::fs::write(fx.root.join("tmp.pdf"), b"%PDF-1.4 short-lived").unwrap();
    let rows = fx.scan_and_settle();
    let row = &rows[0];
    let seen = crate::local::check::Seen {
        rel: &row.path,
        size: row.size,
        mtime_ns: row.mtime_ns,
    };
    let checked = crate::local::check::check_file(&fx.folder, seen).unwrap();
    std::fs::remove_file(fx.root.join("tmp.pdf")).unwrap();
    let path = fx.folder.file_path(&row.path);
    let prepared = intent::commit_intent(&mut fx.store, row, checked, &path).unwrap();
    let Prepared::Deleted { row } = prepared else {
        panic!("sent a file that is gone: {prepared:?}")
    };
    assert_eq!(row.state, State::Deleted);
    let last = fx.store.events(row.id).unwrap().pop().unwrap();
    assert_eq!(last.reason, "vanished after it was read; not sent");
}

/// A file replaced after it was read (same name, another inode) is not sent
/// either: it is read again once it holds still.
#[test]
fn a_file_replaced_after_it_was_read_is_not_sent() {
    let mut fx = fixture();
    std::fs::write(fx.root.join("a.pdf"), b"%PDF-1.4 first").unwrap();
    let rows = fx.scan_and_settle();
    let row = &rows[0];
    let seen = crate::local::check::Seen {
        rel: &row.path,
        size: row.size,
        mtime_ns: row.mtime_ns,
    };
    let checked = crate::local::check::check_file(&fx.folder, seen).unwrap();
    // an atomic save: a new file renamed over the old one, same size
    std::fs::write(fx.root.join(".a.pdf.tmp"), b"%PDF-1.4 other").unwrap();
    std::fs::rename(fx.root.join(".a.pdf.tmp"), fx.root.join("a.pdf")).unwrap();
    let path = fx.folder.file_path(&row.path);
    let prepared = intent::commit_intent(&mut fx.store, row, checked, &path).unwrap();
    let Prepared::Restarted { row } = prepared else {
        panic!("sent a replaced file: {prepared:?}")
    };
    assert_eq!(row.state, State::Discovered);
}

/// A stand-in for a Moov server that answers every upload with the file ID,
/// size and (unless set) the name it is told, whatever was sent. Bound to
/// 127.0.0.1:0; it stops with the test's runtime.
async fn answering_server(file_id: &'static str, size: u64, name: Option<&'static str>) -> String {
    use axum::routing::post;
    let answer = move |body: axum::body::Bytes| async move {
        let text = String::from_utf8_lossy(&body);
        let sent = text
            .split("filename=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("")
            .to_owned();
        let details = serde_json::json!({
            "accountID": crate::engine::testkit::ACCOUNT,
            "createdOn": "2026-01-01T00:00:00Z",
            "updatedOn": "2026-01-01T00:00:00Z",
            "fileID": file_id,
            "fileName": name.map(str::to_owned).unwrap_or(sent),
            "filePurpose": "business_verification",
            "fileSizeBytes": size,
            "fileStatus": "pending",
            "metadata": "{}",
        });
        ([("x-request-id", "req-mock-1")], axum::Json(details))
    };
    let app = axum::Router::new().route("/accounts/{account}/files", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn answered_by(
    file_id: &'static str,
    size: u64,
    name: Option<&'static str>,
) -> crate::engine::testkit::Stage {
    let sandbox = docsync_sandbox::Sandbox::start(docsync_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let url = answering_server(file_id, size, name).await;
    crate::engine::testkit::stage_at(sandbox, &url)
}

/// Checked when it comes back: a server that answers every upload with the
/// same file ID gets the first file recorded, and every other one `failed`
/// with the request ID, never `pending` under an ID that is not its own.
#[tokio::test]
async fn an_id_already_recorded_for_other_content_is_refused() {
    let st = answered_by("file-same", 11, None).await;
    let a = st.stable_file("a.pdf", b"%PDF-1.4 a1").await;
    let b = st.stable_file("b.pdf", b"%PDF-1.4 b2").await;
    assert_eq!(process(&st.ctx, a.clone()).await.unwrap(), Processed::Sent);
    assert_eq!(st.row(a.id).await.state, State::Pending);
    assert_eq!(process(&st.ctx, b.clone()).await.unwrap(), Processed::Sent);
    let b = st.row(b.id).await;
    assert_eq!(b.state, State::Failed);
    assert_eq!(b.remote_id, None);
    let id = b.id;
    let last = st.ctx.store.call(move |s| s.events(id)).await.unwrap();
    assert_eq!(
        last.last().unwrap().request_id.as_deref(),
        Some("req-mock-1")
    );
    let reason = b.last_error.unwrap_or_default();
    assert!(
        reason.contains("file ID file-same") && reason.contains("a.pdf"),
        "{reason}"
    );
    assert_eq!(st.row(a.id).await.remote_id.as_deref(), Some("file-same"));
}

/// An answer naming another size or another name than what was sent is a
/// recorded error with the request ID; the file is not marked pending.
#[tokio::test]
async fn an_answer_with_another_size_or_name_is_refused() {
    for (size, name, needle) in [
        (99, None, "it says 99 bytes arrived, 11 were sent"),
        (11, Some("other.pdf"), "it names the file \"other.pdf\""),
    ] {
        let st = answered_by("file-1", size, name).await;
        let a = st.stable_file("a.pdf", b"%PDF-1.4 a1").await;
        assert_eq!(process(&st.ctx, a.clone()).await.unwrap(), Processed::Sent);
        let a = st.row(a.id).await;
        assert_eq!(a.state, State::Failed, "{needle}");
        let id = a.id;
        let last = st.ctx.store.call(move |s| s.events(id)).await.unwrap();
        assert_eq!(
            last.last().unwrap().request_id.as_deref(),
            Some("req-mock-1")
        );
        let reason = a.last_error.unwrap_or_default();
        assert!(reason.contains(needle), "{reason}");
    }
}

/// The intent is committed (and synced) before the request leaves: at the
/// moment the server receives the upload, a second connection to the state
/// database already sees the row `uploading` with the content's hash.
#[tokio::test]
async fn the_intent_is_committed_before_the_server_receives_the_upload() {
    use axum::routing::post;
    use std::sync::{Arc, Mutex};
    /// (state, sha256) of the row as a reader saw it at each receipt
    type Seen = Vec<(State, Option<String>)>;
    /// the database and the folder key, once the fixture exists
    type Slot = Option<(std::path::PathBuf, String)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let db_slot: Arc<Mutex<Slot>> = Arc::default();
    let (seen2, db2) = (seen.clone(), db_slot.clone());
    let answer = move |body: axum::body::Bytes| {
        let (seen, db) = (seen2.clone(), db2.clone());
        async move {
            // what another reader sees while this request is being received
            if let Some((db, folder)) = db.lock().unwrap().clone() {
                let reader = crate::store::Store::open_read_only(&db).unwrap();
                let row = reader.find_live(&folder, b"a.pdf").unwrap().unwrap();
                seen.lock().unwrap().push((row.state, row.sha256));
            }
            let text = String::from_utf8_lossy(&body);
            let name = text
                .split("filename=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_owned();
            axum::Json(serde_json::json!({
                "accountID": crate::engine::testkit::ACCOUNT,
                "createdOn": "2026-01-01T00:00:00Z",
                "updatedOn": "2026-01-01T00:00:00Z",
                "fileID": "file-1",
                "fileName": name,
                "filePurpose": "business_verification",
                "fileSizeBytes": 11,
                "fileStatus": "pending",
                "metadata": "{}",
            }))
        }
    };
    let app = axum::Router::new().route("/accounts/{account}/files", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sandbox = docsync_sandbox::Sandbox::start(docsync_sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let st = crate::engine::testkit::stage_at(sandbox, &url);
    *db_slot.lock().unwrap() = Some((st.db.clone(), st.folder.key()));

    let row = st.stable_file("a.pdf", b"%PDF-1.4 a1").await;
    assert_eq!(
        process(&st.ctx, row.clone()).await.unwrap(),
        Processed::Sent
    );
    let seen = seen.lock().unwrap().clone();
    let sha = st.row(row.id).await.sha256;
    assert_eq!(seen, vec![(State::Uploading, sha.clone())]);
    assert!(sha.is_some());
}

/// After an unclean stop an intent may be lost with its request already
/// sent: the file looks new. Its first upload then asks the server first, and
/// finds it there instead of sending it again.
#[tokio::test]
async fn after_an_unclean_stop_a_file_that_looks_new_is_found_not_resent() {
    let mut st = stage(Duration::from_secs(3600)).await;
    // sent before the stop, its intent lost: the server has it, the store
    // has only a fresh row
    st.uploaded_behind_the_store("a.pdf", b"%PDF-1.4 lost intent")
        .await;
    let row = st.stable_file("a.pdf", b"%PDF-1.4 lost intent").await;
    assert_eq!(row.attempts, 0);
    let id = row.id;
    let posts = |st: &crate::engine::testkit::Stage| {
        st.sandbox
            .request_log()
            .iter()
            .filter(|e| e.method == "POST")
            .count()
    };
    let before = posts(&st);
    st.ctx = st.ctx.clone().verifying_first_attempts(true);
    let row = st.row(id).await;
    assert_eq!(process(&st.ctx, row).await.unwrap(), Processed::Sent);
    let row = st.row(id).await;
    assert_eq!(row.state, State::Pending);
    assert_eq!(posts(&st), before, "not sent again");
    let listed = st
        .ctx
        .apis
        .list_files(crate::engine::testkit::ACCOUNT)
        .await
        .unwrap()
        .0;
    assert_eq!(listed.len(), 1);
    assert_eq!(row.remote_id.as_deref(), Some(listed[0].0.as_str()));
}

/// A file `failed` after transient failures (its retry budget spent) may have
/// reached the server on an attempt whose answer was lost. `docsync retry`
/// resets its attempts; its next upload still asks the server first, and
/// finds it there instead of sending a second copy.
#[tokio::test]
async fn a_retried_failed_file_is_looked_up_before_it_is_sent_again() {
    let st = stage(Duration::from_secs(3600)).await;
    let row = st.sent_but_unrecorded("a.pdf", b"%PDF-1.4 arrived").await;
    let id = row.id;
    st.ctx
        .store
        .call(move |s| {
            let given_up = Change::because("503; retries exhausted");
            s.transition(id, State::Uploading, State::Failed, &given_up)?;
            s.retry(None, None, "docsync retry")
        })
        .await
        .unwrap();
    let row = st.row(id).await;
    assert_eq!((row.state, row.attempts), (State::Retrying, 0));
    let posts = |st: &crate::engine::testkit::Stage| {
        st.sandbox
            .request_log()
            .iter()
            .filter(|e| e.method == "POST")
            .count()
    };
    let before = posts(&st);
    assert_eq!(process(&st.ctx, row).await.unwrap(), Processed::Sent);
    assert_eq!(st.row(id).await.state, State::Pending);
    assert_eq!(posts(&st), before, "found on the server, not sent again");
}

/// Rows are hashed and their intents committed while every request slot is
/// busy, but no request leaves without a slot; and a file deleted while its
/// intent waited for one is not sent from what was read before: its row
/// says so.
#[tokio::test]
async fn a_file_deleted_while_waiting_for_a_request_slot_is_not_sent() {
    let mut st = stage(Duration::from_secs(3600)).await;
    st.ctx = st.ctx.clone().with_upload_concurrency(1);
    let row = st.stable_file("a.pdf", b"%PDF-1.4 short-lived").await;
    let busy = st.ctx.upload_slot().await.expect("a slot");
    let ctx = st.ctx.clone();
    let sending = tokio::spawn(async move { process(&ctx, row).await });
    let id = {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let rows = st
                .ctx
                .store
                .call(|s| s.in_state(State::Uploading, 10))
                .await
                .unwrap();
            if let Some(row) = rows.first() {
                break row.id;
            }
            assert!(std::time::Instant::now() < deadline, "no intent committed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    assert!(!sending.is_finished(), "it waits for the slot");
    std::fs::remove_file(st.folder.path.join("a.pdf")).unwrap();
    drop(busy);
    sending.await.unwrap().unwrap();
    let row = st.row(id).await;
    assert_eq!(row.state, State::Deleted);
    let last = st.ctx.store.call(move |s| s.events(id)).await.unwrap();
    assert!(
        last.last().is_some_and(|e| e.reason.contains("not sent")),
        "{last:?}"
    );
    assert_eq!(
        st.sandbox
            .request_log()
            .iter()
            .filter(|e| e.method == "POST")
            .count(),
        0,
        "nothing reached the server"
    );
}

/// What the upload stage logs, for a test on the current thread: the rows
/// it takes in hand (its `file` spans) and its warnings.
#[derive(Clone, Default)]
struct StageLog {
    taken: Arc<std::sync::atomic::AtomicUsize>,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StageLog {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "file" {
            self.taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut text = Text(String::new());
            event.record(&mut text);
            self.warnings.lock().unwrap().push(text.0);
        }
    }
}

impl StageLog {
    fn taken(&self) -> usize {
        self.taken.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn pauses(&self) -> Vec<String> {
        let warnings = self.warnings.lock().unwrap();
        warnings
            .iter()
            .filter(|w| w.contains("upload stage pauses"))
            .cloned()
            .collect()
    }
    async fn wait_for_pauses(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.pauses().len() < n {
            if tokio::time::Instant::now() >= deadline {
                let warnings = self.warnings.lock().unwrap();
                let first: Vec<&String> = warnings.iter().take(3).collect();
                panic!(
                    "no pause {n} after 30 s; {} warnings, the first: {first:?}",
                    warnings.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A store that refuses every intent (a full disk) must not have the stage
/// spin through the same rows, hashing them and warning once per row, round
/// after round: it warns once per round, pauses (longer each time), and once
/// the store works again it sends every row, once.
#[tokio::test]
async fn a_store_refusing_every_intent_pauses_the_stage_instead_of_spinning() {
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;
    use tracing_subscriber::layer::SubscriberExt;
    // more than a batch: a full batch used to send the stage straight back
    // to the queue
    const ROWS: usize = BATCH as usize + 44;
    let st = stage(Duration::from_secs(3600)).await;
    for n in 0..ROWS {
        std::fs::write(
            st.folder.path.join(format!("f{n:03}.pdf")),
            format!("%PDF-1.4 {n}"),
        )
        .unwrap();
    }
    st.stable_file("f000.pdf", b"%PDF-1.4 0").await;
    let folder = st.folder.clone();
    st.ctx
        .store
        .call(move |s| {
            for n in 1..ROWS {
                let row = s
                    .find_live(&folder.key(), format!("f{n:03}.pdf").as_bytes())?
                    .unwrap();
                s.promote_stable(&folder.key(), &row.path, row.size, row.mtime_ns, "test")?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let db = rusqlite::Connection::open(&st.db).unwrap();
    db.execute_batch(
        "CREATE TRIGGER full_disk BEFORE UPDATE OF state ON files \
         WHEN NEW.state = 'uploading' \
         BEGIN SELECT RAISE(ABORT, 'database or disk is full (simulated)'); END;",
    )
    .unwrap();

    let log = StageLog::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(log.clone()));
    let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
    let stage = tokio::spawn(run(st.ctx.clone(), tracker.clone(), stop.clone()));

    log.wait_for_pauses(1).await;
    let first = log.pauses()[0].clone();
    assert!(first.contains("disk is full"), "{first}");
    let before = log.taken();
    assert!(before <= ROWS, "{before} rows taken before the first pause");
    log.wait_for_pauses(2).await;
    let round = log.taken() - before;
    assert!(round <= ROWS, "{round} rows taken in one round");
    assert!(
        log.pauses()[1].contains("pauses 2s"),
        "the second pause is longer: {:?}",
        log.pauses()
    );
    assert_eq!(
        log.warnings.lock().unwrap().len(),
        2,
        "one warning per round, none per row: {:?}",
        log.warnings.lock().unwrap()
    );

    // the disk has room again: every row is decided (sent, or refused by
    // the account's quota of 50 files), and nothing is sent twice
    db.execute_batch("DROP TRIGGER full_disk").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let counts = st.ctx.store.counts_by_state().await.unwrap();
        let waiting = [State::Stable, State::Uploading, State::Retrying]
            .iter()
            .any(|s| counts.get(s).is_some_and(|n| *n > 0));
        if !waiting {
            break counts;
        }
        assert!(tokio::time::Instant::now() < deadline, "{counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.cancel();
    stage.await.unwrap();
    tracker.close();
    tracker.wait().await;
    let uploads = st
        .sandbox
        .request_log()
        .iter()
        .filter(|e| e.operation_id.as_deref() == Some("uploadFile"))
        .count() as u64;
    assert_eq!(counts.get(&State::Pending), Some(&uploads), "{counts:?}");
    assert_eq!(counts.values().sum::<u64>(), ROWS as u64, "{counts:?}");
}
