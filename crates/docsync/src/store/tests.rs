use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::model::TargetKind;

/// The accounts of the tests: Moov's account IDs are UUIDs.
const ACCT: &str = "00000000-0000-4000-8000-00000000acc0";
const OTHER: &str = "00000000-0000-4000-8000-00000000acc9";
const NEW_ACCOUNT: &str = "00000000-0000-4000-8000-00000000acc2";
const X: &str = "00000000-0000-4000-8000-0000000000aa";
const Y: &str = "00000000-0000-4000-8000-0000000000bb";

fn key(account: &str) -> TargetKey {
    TargetKey {
        kind: TargetKind::MoovFiles,
        account: account.into(),
        purpose: "business_verification".into(),
    }
}

fn obs(path: &[u8], size: u64, mtime_ns: i64) -> Observed {
    Observed {
        path: path.to_vec(),
        size,
        mtime_ns,
        target: key(ACCT),
    }
}

/// Put a row straight into `state`, bypassing the machine (tests only).
fn force_state(store: &Store, id: i64, state: State) {
    store
        .conn
        .execute(
            "UPDATE files SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )
        .unwrap();
}

fn new_row(store: &mut Store, path: &[u8]) -> i64 {
    let rec = store
        .observe_batch("inbox", &[obs(path, 10, 1)], false)
        .unwrap();
    match rec.observations[0] {
        Observation::New { id } => id,
        other => panic!("{other:?}"),
    }
}

fn event_count(store: &Store, id: i64) -> usize {
    store.events(id).unwrap().len()
}

/// The machine, written out independently of `State::successors`.
const EXPECTED: &[(State, &[State])] = {
    use State::*;
    &[
        (Discovered, &[Stable, Invalid, Skipped, Deleted]),
        (
            Stable,
            &[Discovered, Uploading, Invalid, Duplicate, Deleted],
        ),
        (Uploading, &[Pending, Retrying, Failed, Stable, Deleted]),
        (
            Retrying,
            &[Uploading, Failed, Discovered, Duplicate, Invalid, Deleted],
        ),
        (Pending, &[Approved, Rejected, Failed, Superseded, Deleted]),
        (Approved, &[Superseded, Deleted]),
        (Rejected, &[Superseded, Deleted]),
        (Failed, &[Retrying, Discovered, Deleted]),
        (Invalid, &[Stable, Discovered, Deleted]),
        (Duplicate, &[Discovered, Deleted]),
        (Superseded, &[]),
        (Deleted, &[]),
        (Skipped, &[Superseded, Stable, Deleted]),
    ]
};

#[test]
fn state_machine_table() {
    assert_eq!(EXPECTED.len(), State::ALL.len());
    for (from, allowed) in EXPECTED {
        for to in State::ALL {
            assert_eq!(
                from.can_transition_to(to),
                allowed.contains(&to),
                "{from} -> {to}"
            );
        }
    }
}

#[test]
fn every_pair_through_the_database() {
    let mut store = Store::open_in_memory().unwrap();
    for (i, (from, allowed)) in EXPECTED.iter().enumerate() {
        for (j, to) in State::ALL.into_iter().enumerate() {
            let id = new_row(&mut store, format!("f-{i}-{j}").as_bytes());
            force_state(&store, id, *from);
            let before = event_count(&store, id);
            let change = Change {
                next_attempt_at: Some(5),
                ..Change::because("test")
            };
            let result = store.transition(id, *from, to, &change);
            let row = store.get(id).unwrap().unwrap();
            if allowed.contains(&to) {
                let new = result.unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
                assert_eq!(new, row);
                assert_eq!(row.state, to);
                let events = store.events(id).unwrap();
                assert_eq!(events.len(), before + 1);
                let last = events.last().unwrap();
                assert_eq!((last.from_state, last.to_state), (Some(*from), to));
                assert_eq!(last.reason, "test");
                assert_eq!(row.next_attempt_at.is_some(), to == State::Retrying);
            } else {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, Error::IllegalTransition { .. }),
                    "{from} -> {to}: {err}"
                );
                assert_eq!(row.state, *from, "row untouched");
                assert_eq!(event_count(&store, id), before, "no event");
            }
        }
    }
}

#[test]
fn stale_state_is_refused() {
    let mut store = Store::open_in_memory().unwrap();
    let id = new_row(&mut store, b"a.pdf");
    let err = store
        .transition(id, State::Stable, State::Uploading, &Change::because("x"))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::StaleState {
            expected: State::Stable,
            actual: State::Discovered,
            ..
        }
    ));
    let err = store
        .transition(999, State::Stable, State::Uploading, &Change::because("x"))
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchFile { id: 999 }));
}

#[test]
fn transition_sets_fields_and_request_id() {
    let mut store = Store::open_in_memory().unwrap();
    let id = new_row(&mut store, b"a.pdf");
    force_state(&store, id, State::Uploading);
    let row = store
        .transition(
            id,
            State::Uploading,
            State::Pending,
            &Change {
                remote_id: Some("file-1".into()),
                remote_status: Some("pending".into()),
                request_id: Some("req-1".into()),
                ..Change::because("uploaded")
            },
        )
        .unwrap();
    assert_eq!(row.remote_id.as_deref(), Some("file-1"));
    assert_eq!(row.last_request_id.as_deref(), Some("req-1"));
    let row = store
        .transition(
            id,
            State::Pending,
            State::Rejected,
            &Change {
                remote_status: Some("rejected".into()),
                decision_reason: Some("blurry".into()),
                ..Change::because("decided")
            },
        )
        .unwrap();
    assert_eq!(row.decision_reason.as_deref(), Some("blurry"));
    assert_eq!(row.remote_id.as_deref(), Some("file-1"), "kept");
    let events = store.events(id).unwrap();
    assert_eq!(
        events[events.len() - 2].request_id.as_deref(),
        Some("req-1")
    );
}

#[test]
fn observe_batch_reconciles() {
    let mut store = Store::open_in_memory().unwrap();
    let first = store
        .observe_batch(
            "inbox",
            &[obs(b"a", 1, 1), obs(b"b", 2, 2), obs(b"c", 3, 3)],
            true,
        )
        .unwrap();
    let [a, b, c] = [0, 1, 2].map(|i| first.observations[i].id());
    assert!(first
        .observations
        .iter()
        .all(|o| matches!(o, Observation::New { .. })));

    // a unchanged, b grew while discovered, c stable then changed
    force_state(&store, c, State::Stable);
    let second = store
        .observe_batch(
            "inbox",
            &[obs(b"a", 1, 1), obs(b"b", 5, 2), obs(b"c", 4, 3)],
            true,
        )
        .unwrap();
    assert_eq!(
        second.observations,
        vec![
            Observation::Unchanged {
                id: a,
                state: State::Discovered
            },
            Observation::Changed { id: b },
            Observation::Changed { id: c },
        ]
    );
    assert_eq!(store.get(b).unwrap().unwrap().size, 5);
    let c_row = store.get(c).unwrap().unwrap();
    assert_eq!((c_row.state, c_row.size), (State::Discovered, 4));
    assert_eq!(
        store.events(c).unwrap().last().unwrap().from_state,
        Some(State::Stable)
    );

    // a pending file changes: superseded by a new row
    force_state(&store, a, State::Pending);
    let third = store
        .observe_batch("inbox", &[obs(b"a", 9, 9)], false)
        .unwrap();
    let Observation::Superseded { old, new } = third.observations[0] else {
        panic!("{third:?}")
    };
    assert_eq!(old, a);
    assert_eq!(store.get(a).unwrap().unwrap().state, State::Superseded);
    let new_row = store.get(new).unwrap().unwrap();
    assert_eq!(
        (new_row.state, new_row.supersedes),
        (State::Discovered, Some(a))
    );
    assert_eq!(store.find_live("inbox", b"a").unwrap().unwrap().id, new);

    // uploading rows are left to the uploader, even when changed or missing
    force_state(&store, b, State::Uploading);
    let fourth = store
        .observe_batch("inbox", &[obs(b"b", 6, 6)], true)
        .unwrap();
    assert_eq!(fourth.observations, vec![Observation::Busy { id: b }]);
    // the complete scan deleted the rest (c and the new a), not b
    let mut deleted = fourth.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, vec![c, new]);
    assert_eq!(store.get(b).unwrap().unwrap().state, State::Uploading);
    // a path that comes back after deletion gets a new row
    let fifth = store
        .observe_batch("inbox", &[obs(b"c", 4, 3)], false)
        .unwrap();
    assert!(matches!(fifth.observations[0], Observation::New { id } if id != c));
}

#[test]
fn incomplete_scan_deletes_nothing() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .observe_batch("inbox", &[obs(b"a", 1, 1)], true)
        .unwrap();
    let rec = store.observe_batch("inbox", &[], false).unwrap();
    assert!(rec.deleted.is_empty());
    // other folders are untouched by a complete scan
    let rec = store.observe_batch("other", &[], true).unwrap();
    assert!(rec.deleted.is_empty());
}

#[test]
fn non_utf8_paths_survive() {
    let mut store = Store::open_in_memory().unwrap();
    let path = b"caf\xe9/\xff\xfe.pdf";
    let id = new_row(&mut store, path);
    let row = store.get(id).unwrap().unwrap();
    assert_eq!(row.path, path.to_vec());
    assert_eq!(store.find_live("inbox", path).unwrap().unwrap().id, id);
    assert_eq!(store.history(None, path).unwrap().len(), 1);
}

#[test]
fn mark_deleted_by_path() {
    let mut store = Store::open_in_memory().unwrap();
    let id = new_row(&mut store, b"a.pdf");
    assert_eq!(
        store.mark_deleted("inbox", b"a.pdf", "removed").unwrap(),
        Some(id)
    );
    assert_eq!(
        store.mark_deleted("inbox", b"a.pdf", "removed").unwrap(),
        None
    );
    let id = new_row(&mut store, b"b.pdf");
    force_state(&store, id, State::Uploading);
    assert_eq!(
        store.mark_deleted("inbox", b"b.pdf", "removed").unwrap(),
        None
    );
}

fn intent(sha: &str, quota: Option<u64>) -> UploadIntent {
    UploadIntent {
        sha256: sha.into(),
        remote_name: None,
        quota,
        reason: "validated".into(),
    }
}

/// A new row at `path` with its upload intent committed (`uploading`, hash `sha`).
fn uploading_row(store: &mut Store, path: &[u8], sha: &str) -> i64 {
    let id = new_row(store, path);
    force_state(store, id, State::Stable);
    let out = store
        .begin_upload(id, State::Stable, &intent(sha, None))
        .unwrap();
    assert!(matches!(out, BeginUpload::Started(_)), "{out:?}");
    id
}

#[test]
fn begin_upload_commits_intent() {
    let mut store = Store::open_in_memory().unwrap();
    let id = new_row(&mut store, b"a.pdf");
    force_state(&store, id, State::Stable);
    let out = store
        .begin_upload(
            id,
            State::Stable,
            &UploadIntent {
                remote_name: Some("short.pdf".into()),
                ..intent("aa", Some(50))
            },
        )
        .unwrap();
    let BeginUpload::Started(row) = out else {
        panic!("{out:?}")
    };
    assert_eq!(row.state, State::Uploading);
    assert_eq!(row.sha256.as_deref(), Some("aa"));
    assert_eq!(row.remote_name.as_deref(), Some("short.pdf"));
    assert_eq!(row.attempts, 1);
    assert_eq!(store.uploading().unwrap(), vec![row]);
}

#[test]
fn begin_upload_detects_duplicates_per_target() {
    let mut store = Store::open_in_memory().unwrap();
    let first = uploading_row(&mut store, b"a.pdf", "same");

    let second = new_row(&mut store, b"copy of a.pdf");
    force_state(&store, second, State::Stable);
    let out = store
        .begin_upload(second, State::Stable, &intent("same", None))
        .unwrap();
    let BeginUpload::Duplicate { row, original } = out else {
        panic!("{out:?}")
    };
    assert_eq!((row.state, original.id), (State::Duplicate, first));
    assert!(store
        .events(second)
        .unwrap()
        .last()
        .unwrap()
        .reason
        .contains("a.pdf"));

    // the same content for another account is not a duplicate
    let other = store
        .observe_batch(
            "inbox",
            &[Observed {
                target: key(OTHER),
                ..obs(b"third.pdf", 10, 1)
            }],
            false,
        )
        .unwrap()
        .observations[0]
        .id();
    force_state(&store, other, State::Stable);
    let out = store
        .begin_upload(other, State::Stable, &intent("same", None))
        .unwrap();
    assert!(matches!(out, BeginUpload::Started(_)), "{out:?}");
    assert!(store
        .find_uploaded(&key(ACCT), "same", None)
        .unwrap()
        .is_some());
    assert!(store
        .find_uploaded(&key(ACCT), "nope", None)
        .unwrap()
        .is_none());
}

#[test]
fn begin_upload_enforces_quota() {
    let mut store = Store::open_in_memory().unwrap();
    for i in 0..3 {
        let id = new_row(&mut store, format!("{i}.pdf").as_bytes());
        force_state(&store, id, State::Stable);
        let out = store
            .begin_upload(id, State::Stable, &intent(&format!("h{i}"), Some(3)))
            .unwrap();
        assert!(matches!(out, BeginUpload::Started(_)));
    }
    assert_eq!(store.quota_used(&key(ACCT)).unwrap(), 3);
    let id = new_row(&mut store, b"4.pdf");
    force_state(&store, id, State::Stable);
    let out = store
        .begin_upload(id, State::Stable, &intent("h4", Some(3)))
        .unwrap();
    let BeginUpload::QuotaExceeded { row, used, limit } = out else {
        panic!("{out:?}")
    };
    assert_eq!((row.state, used, limit), (State::Invalid, 3, 3));
    assert!(store
        .events(id)
        .unwrap()
        .last()
        .unwrap()
        .reason
        .contains(ACCT));
}

#[test]
fn quota_counts_only_rows_on_the_server_once_the_account_holds_enough_rows() {
    let mut store = Store::open_in_memory().unwrap();
    for i in 0..3 {
        let id = new_row(&mut store, format!("gone-{i}.pdf").as_bytes());
        force_state(&store, id, State::Deleted);
    }
    let mut intent_for = |path: &str| {
        let id = new_row(&mut store, path.as_bytes());
        force_state(&store, id, State::Stable);
        let sha = format!("h-{path}");
        store
            .begin_upload(id, State::Stable, &intent(&sha, Some(2)))
            .unwrap()
    };
    let out = intent_for("sent.pdf");
    assert!(matches!(out, BeginUpload::Started(_)), "{out:?}");
    // the account has 4 other rows, enough for a quota of 2, but only
    // `sent.pdf` counts: started
    let out = intent_for("second.pdf");
    assert!(matches!(out, BeginUpload::Started(_)), "{out:?}");
    let out = intent_for("third.pdf");
    let BeginUpload::QuotaExceeded { used, limit, .. } = out else {
        panic!("{out:?}")
    };
    assert_eq!((used, limit), (2, 2));
    // the first look reads the index alone, never a row
    let plan = store.query_plan(upload::ACCOUNT_ROWS);
    assert!(
        plan.iter()
            .any(|p| p.contains("COVERING INDEX files_content")),
        "{plan:?}"
    );
}

/// A transition assigns the hash and the server's ID only when it changes
/// them: what it changes is written (and found through its index), what it
/// does not is kept.
#[test]
fn transitions_write_the_hash_and_the_remote_id_when_they_change_and_keep_them_otherwise() {
    let mut store = Store::open_in_memory().unwrap();
    let id = uploading_row(&mut store, b"a.pdf", "h1");
    let sent = Change {
        remote_id: Some("file-1".into()),
        ..Change::because("sent")
    };
    store
        .transition(id, State::Uploading, State::Pending, &sent)
        .unwrap();
    store
        .transition(
            id,
            State::Pending,
            State::Approved,
            &Change::because("decided"),
        )
        .unwrap();
    let row = store.get(id).unwrap().unwrap();
    assert_eq!(
        (row.state, row.sha256.as_deref(), row.remote_id.as_deref()),
        (State::Approved, Some("h1"), Some("file-1"))
    );
    let by_content = store.find_uploaded(&key(ACCT), "h1", None).unwrap();
    assert_eq!(by_content.map(|r| r.id), Some(id));
    let holder = store
        .remote_id_holder(&key(ACCT), "file-1", id + 1, Some("other"), None)
        .unwrap();
    assert_eq!(holder.map(|r| r.id), Some(id));

    // starting over clears the hash: no longer found by it
    let other = uploading_row(&mut store, b"b.pdf", "h2");
    store
        .transition(
            other,
            State::Uploading,
            State::Retrying,
            &Change::because("timeout"),
        )
        .unwrap();
    store
        .transition(
            other,
            State::Retrying,
            State::Discovered,
            &Change::because("changed"),
        )
        .unwrap();
    assert_eq!(store.get(other).unwrap().unwrap().sha256, None);
    assert!(store
        .find_uploaded(&key(ACCT), "h2", None)
        .unwrap()
        .is_none());
}

#[test]
fn retry_queries() {
    let mut store = Store::open_in_memory().unwrap();
    let a = new_row(&mut store, b"a");
    let b = new_row(&mut store, b"b");
    for (id, at) in [(a, 200), (b, 100)] {
        force_state(&store, id, State::Uploading);
        store
            .transition(
                id,
                State::Uploading,
                State::Retrying,
                &Change {
                    next_attempt_at: Some(at),
                    last_error: Some("503".into()),
                    ..Change::because("server busy")
                },
            )
            .unwrap();
    }
    assert_eq!(store.next_retry_at().unwrap(), Some(100));
    assert!(store.due_for_retry(99, 10).unwrap().is_empty());
    let due: Vec<i64> = store
        .due_for_retry(500, 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(due, vec![b, a]);
}

#[test]
fn pending_groups_counts_list_history() {
    let mut store = Store::open_in_memory().unwrap();
    let rows: Vec<i64> = store
        .observe_batch(
            "inbox",
            &[
                Observed {
                    target: key(X),
                    ..obs(b"1", 1, 1)
                },
                Observed {
                    target: key(Y),
                    ..obs(b"2", 1, 1)
                },
                Observed {
                    target: key(X),
                    ..obs(b"3", 1, 1)
                },
                obs(b"4", 1, 1),
            ],
            false,
        )
        .unwrap()
        .observations
        .iter()
        .map(Observation::id)
        .collect();
    for id in &rows[..3] {
        force_state(&store, *id, State::Pending);
    }
    let shape: Vec<(String, Vec<i64>)> = store
        .pending_accounts()
        .unwrap()
        .iter()
        .map(|g| {
            let rows = store.pending_rows(g.kind, &g.account).unwrap();
            assert_eq!(g.count, rows.len() as u64);
            (g.account.clone(), rows.iter().map(|r| r.id).collect())
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (X.to_owned(), vec![rows[0], rows[2]]),
            (Y.to_owned(), vec![rows[1]])
        ]
    );

    let counts = store.counts_by_state().unwrap();
    assert_eq!(counts.get(&State::Pending), Some(&3));
    assert_eq!(counts.get(&State::Discovered), Some(&1));

    let page = store
        .list(&ListFilter {
            limit: 2,
            offset: 1,
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.path.clone()).collect::<Vec<_>>(),
        vec![b"2".to_vec(), b"3".to_vec()]
    );
    let pending = store
        .list(&ListFilter {
            states: vec![State::Discovered],
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert!(store
        .list(&ListFilter {
            folder: Some("elsewhere".into()),
            ..ListFilter::default()
        })
        .unwrap()
        .is_empty());

    // history follows a path across superseded rows
    store
        .observe_batch("inbox", &[obs(b"1", 2, 2)], false)
        .unwrap();
    let history = store.history(Some("inbox"), b"1").unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].file.state, State::Superseded);
    assert_eq!(history[0].events.first().unwrap().from_state, None);
    assert_eq!(history[1].file.state, State::Discovered);
    // superseded rows are hidden from the default list, shown with include_history
    let all = store
        .list(&ListFilter {
            include_history: true,
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(all.len(), 5);
}

#[test]
fn migrations_are_valid() {
    MIGRATIONS.validate().unwrap();
    // 0001..0007
    assert_eq!(SCHEMA_VERSION, 7);
}

/// The retry stage's two queries walk the small partial index of retrying
/// rows (in due order, no sort), not an index every row is in.
#[test]
fn retry_queries_read_the_retrying_rows_only() {
    let store = Store::open_in_memory().unwrap();
    for sql in files::retry_queries() {
        let plan = store.query_plan(&sql);
        assert!(
            plan.iter().any(|step| step.contains("files_retry_due")),
            "{sql}\ndoes not use files_retry_due: {plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{sql}\nsorts: {plan:?}"
        );
    }
    let indexes: Vec<String> = store
        .conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'files'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(!indexes.iter().any(|i| i == "files_state"), "{indexes:?}");
}

#[test]
fn files_on_disk_have_private_modes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let id = {
        let mut store = Store::open_in_state_dir(&state).unwrap();
        new_row(&mut store, b"a.pdf")
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join(DB_FILE)), 0o600);
    let store = Store::open_in_state_dir(&state).unwrap();
    assert_eq!(store.get(id).unwrap().unwrap().path, b"a.pdf");
    let journal: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let fk: i64 = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
}

/// `docsync status` run while a daemon starts: the database is either not
/// there yet ("no state database") or complete, never there but empty (which
/// would read as a schema too old, "run the daemon once to migrate it").
#[test]
fn readers_never_see_a_database_being_created() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    for round in 0..30 {
        let path = dir.path().join(format!("{round}.db"));
        let created = Arc::new(AtomicBool::new(false));
        let reader = {
            let (path, created) = (path.clone(), created.clone());
            std::thread::spawn(move || loop {
                let done = created.load(Ordering::SeqCst);
                if path.exists() {
                    return Store::open_read_only(&path).map(|_| ());
                }
                assert!(!done, "the database never appeared");
            })
        };
        drop(Store::open(&path).unwrap());
        created.store(true, Ordering::SeqCst);
        if let Err(e) = reader.join().unwrap() {
            panic!("round {round}: a reader saw the database being created: {e}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".db") && !n.ends_with("-wal") && !n.ends_with("-shm"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Store::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SchemaTooNew {
                found,
                known: SCHEMA_VERSION,
                ..
            } if found == SCHEMA_VERSION + 1
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("newer") && msg.contains("upgrade docsync"),
        "{msg}"
    );
}

#[test]
fn single_instance_lock() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let lock = InstanceLock::acquire(&state).unwrap();
    assert_eq!(lock.dir(), state);
    let err = InstanceLock::acquire(&state).unwrap_err();
    let Error::AlreadyRunning { pid, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*pid, Some(std::process::id()));
    let msg = err.to_string();
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    assert!(msg.contains(&state.display().to_string()), "{msg}");
    drop(lock);
    InstanceLock::acquire(&state).unwrap();
}

#[tokio::test]
async fn shared_store_runs_on_the_blocking_pool() {
    let shared = SharedStore::new(Store::open_in_memory().unwrap());
    let id = shared
        .call(|s| {
            Ok(s.observe_batch("inbox", &[obs(b"a", 1, 1)], false)?
                .observations[0]
                .id())
        })
        .await
        .unwrap();
    let other = shared.clone();
    let row = other.call(move |s| s.get(id)).await.unwrap().unwrap();
    assert_eq!(row.state, State::Discovered);
}

#[test]
fn retry_moves_failed_and_invalid_rows() {
    let mut store = Store::open_in_memory().unwrap();
    let failed = new_row(&mut store, b"f.pdf");
    let invalid = new_row(&mut store, b"i.pdf");
    let pending = new_row(&mut store, b"p.pdf");
    force_state(&store, failed, State::Failed);
    store
        .conn
        .execute("UPDATE files SET attempts = 3 WHERE id = ?1", [failed])
        .unwrap();
    force_state(&store, invalid, State::Invalid);
    force_state(&store, pending, State::Pending);

    assert_eq!(
        store.retry(None, Some(b"f.pdf"), "retry").unwrap(),
        vec![failed]
    );
    let row = store.get(failed).unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (State::Retrying, 0));
    assert!(row.next_attempt_at.is_some());
    assert_eq!(
        store.retry(Some("other"), None, "retry").unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(
        store.retry(Some("inbox"), None, "retry --all").unwrap(),
        vec![invalid]
    );
    assert_eq!(store.get(invalid).unwrap().unwrap().state, State::Stable);
    assert_eq!(store.get(pending).unwrap().unwrap().state, State::Pending);
}

#[test]
fn read_only_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let id = {
        let mut store = Store::open(&path).unwrap();
        new_row(&mut store, b"a.pdf")
    };
    let reader = Store::open_read_only(&path).unwrap();
    assert_eq!(reader.get(id).unwrap().unwrap().path, b"a.pdf");
    // a writer and a reader at once (WAL)
    let mut writer = Store::open(&path).unwrap();
    new_row(&mut writer, b"b.pdf");
    assert_eq!(reader.list(&ListFilter::default()).unwrap().len(), 2);

    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 0")
        .unwrap();
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, Error::SchemaTooOld { found: 0, .. }), "{err}");
    assert!(Store::open_read_only(&dir.path().join("missing")).is_err());
}

#[test]
fn record_move_only_for_decided_rows() {
    let mut store = Store::open_in_memory().unwrap();
    let id = new_row(&mut store, b"a.pdf");
    assert!(matches!(
        store
            .record_move(id, b"approved/a.pdf", "moved")
            .unwrap_err(),
        Error::StaleState { .. }
    ));
    force_state(&store, id, State::Approved);
    let row = store.record_move(id, b"approved/a.pdf", "moved").unwrap();
    assert_eq!(row, store.get(id).unwrap().unwrap());
    // a new file at the old path supersedes the moved row
    let rec = store
        .observe_batch("inbox", &[obs(b"a.pdf", 99, 99)], true)
        .unwrap();
    assert!(matches!(rec.observations[0], Observation::Superseded { old, .. } if old == id));
}

#[test]
fn target_follows_the_configuration_until_sent() {
    let mut store = Store::open_in_memory().unwrap();
    let a = new_row(&mut store, b"a.pdf");
    let b = new_row(&mut store, b"b.pdf");
    force_state(&store, b, State::Pending);
    let moved = |p: &[u8]| Observed {
        target: key(NEW_ACCOUNT),
        ..obs(p, 10, 1)
    };
    store
        .observe_batch("inbox", &[moved(b"a.pdf"), moved(b"b.pdf")], false)
        .unwrap();
    assert_eq!(store.get(a).unwrap().unwrap().target, key(NEW_ACCOUNT));
    assert_eq!(
        store.get(b).unwrap().unwrap().target,
        key(ACCT),
        "already sent"
    );
}

#[test]
fn remote_updates_without_a_transition() {
    let mut store = Store::open_in_memory().unwrap();
    let id = store
        .observe_batch(
            "imgs",
            &[Observed {
                target: TargetKey {
                    kind: TargetKind::MoovImages,
                    account: ACCT.into(),
                    purpose: String::new(),
                },
                ..obs(b"logo.png", 10, 1)
            }],
            false,
        )
        .unwrap()
        .observations[0]
        .id();
    force_state(&store, id, State::Uploading);
    store
        .transition(
            id,
            State::Uploading,
            State::Pending,
            &Change {
                remote_id: Some("img-1".into()),
                ..Change::because("uploaded")
            },
        )
        .unwrap();
    let row = store
        .update_remote(
            id,
            State::Pending,
            &Change {
                remote_status: Some("processing".into()),
                request_id: Some("req-9".into()),
                ..Change::because("polled")
            },
        )
        .unwrap();
    assert_eq!(row.state, State::Pending);
    assert_eq!(row.remote_status.as_deref(), Some("processing"));
    assert_eq!(row.remote_id.as_deref(), Some("img-1"));
    assert_eq!(row, store.get(id).unwrap().unwrap());
    let last = store.events(id).unwrap().pop().unwrap();
    assert_eq!(
        (last.from_state, last.to_state),
        (Some(State::Pending), State::Pending)
    );
    assert!(store
        .update_remote(id, State::Approved, &Change::because("x"))
        .is_err());

    assert!(store
        .deleted_with_remote(TargetKind::MoovImages, "disabled")
        .unwrap()
        .is_empty());
    store.observe_batch("imgs", &[], true).unwrap();
    let todo = store
        .deleted_with_remote(TargetKind::MoovImages, "disabled")
        .unwrap();
    assert_eq!(todo.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    store
        .update_remote(
            id,
            State::Deleted,
            &Change {
                remote_status: Some("disabled".into()),
                ..Change::because("image disabled")
            },
        )
        .unwrap();
    assert!(store
        .deleted_with_remote(TargetKind::MoovImages, "disabled")
        .unwrap()
        .is_empty());
}

#[test]
fn status_page_queries_read_through_indexes() {
    let store = Store::open_in_memory().unwrap();
    for sql in overview::queries() {
        let plan = store.query_plan(&sql);
        for step in &plan {
            // `SCAN x USING (COVERING) INDEX` walks an index; a bare `SCAN x` reads
            // the whole table, which is what 100,000 files must never cost
            let table_scan = step.starts_with("SCAN") && !step.contains("INDEX");
            assert!(!table_scan, "{sql}\nreads a whole table: {plan:?}");
            // a keyset page sorted after the fact would read every row of a state
            assert!(
                !step.contains("TEMP B-TREE FOR ORDER BY"),
                "{sql}\nsorts instead of walking an index: {plan:?}"
            );
        }
    }
}

#[test]
fn counts_per_folder_and_keyset_pages_match_the_rows() {
    let mut store = Store::open_in_memory().unwrap();
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(new_row(&mut store, format!("f{n}.pdf").as_bytes()));
    }
    let other = store
        .observe_batch("other", &[obs(b"x.pdf", 1, 1)], false)
        .unwrap()
        .observations[0]
        .id();
    for &id in &ids[..3] {
        force_state(&store, id, State::Failed);
    }
    force_state(&store, ids[3], State::Rejected);
    force_state(&store, other, State::Failed);

    let folders = store.counts_by_folder().unwrap();
    assert_eq!(folders.len(), 2);
    assert_eq!(folders[0].folder, "inbox");
    assert_eq!(folders[0].counts.get(&State::Failed), Some(&3));
    assert_eq!(folders[0].counts.get(&State::Rejected), Some(&1));
    assert_eq!(folders[0].counts.get(&State::Discovered), Some(&3));
    assert_eq!(folders[1].counts.get(&State::Failed), Some(&1));

    // pages of 2 over failed + rejected in inbox: 4 rows, then nothing repeats
    let states = [State::Failed, State::Rejected];
    let first = store
        .page_in_states(&states, Some("inbox"), None, 2)
        .unwrap();
    assert_eq!(
        first.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids[..2]
    );
    let second = store
        .page_in_states(&states, Some("inbox"), first.next_after, 2)
        .unwrap();
    assert_eq!(
        second.rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids[2..4]
    );
    assert_eq!(second.next_after, None, "the last page says so");
    let everywhere = store
        .page_in_states(&[State::Failed], None, None, 10)
        .unwrap();
    assert_eq!(everywhere.rows.len(), 4);
}

#[test]
fn activity_counts_events_per_folder_in_their_bucket() {
    let mut store = Store::open_in_memory().unwrap();
    let a = new_row(&mut store, b"a.pdf");
    let b = new_row(&mut store, b"b.pdf");
    store
        .conn
        .execute("UPDATE events SET at = 1000 WHERE file_id = ?1", [a])
        .unwrap();
    store
        .conn
        .execute("UPDATE events SET at = 5500 WHERE file_id = ?1", [b])
        .unwrap();
    // 10 buckets of 1 s ending at 10 s: a is in bucket 1, b in bucket 5
    let activity = store.activity(10_000, 1000, 10).unwrap();
    let inbox = &activity["inbox"];
    assert_eq!(
        inbox,
        &vec![
            ActivityBucket {
                bucket: 1,
                events: 1
            },
            ActivityBucket {
                bucket: 5,
                events: 1
            }
        ]
    );
    // events before the window are not read
    assert!(store.activity(100_000, 1000, 10).unwrap().is_empty());
}

#[test]
fn the_write_check_passes_on_a_writer_and_fails_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Store::open_in_state_dir(dir.path()).unwrap();
    writer.check_writable().unwrap();
    let mut reader = Store::open_read_only(&dir.path().join(DB_FILE)).unwrap();
    let err = reader.check_writable().unwrap_err().to_string();
    assert!(err.contains("readiness check"), "{err}");
}

#[test]
fn a_hundred_thousand_files_are_counted_and_paged_without_loading_them() {
    let mut store = Store::open_in_memory().unwrap();
    let tx = store.conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO files (folder, path, target, account, purpose, size, mtime_ns, \
                 state, created_at, updated_at) \
                 VALUES ('inbox', ?1, 'moov-files', '00000000-0000-4000-8000-00000000acc0', 'p', 1, 1, ?2, 0, 0)",
            )
            .unwrap();
        for n in 0..100_000u32 {
            let state = if n % 10 == 0 { "failed" } else { "approved" };
            insert
                .execute(params![format!("f{n}.pdf").into_bytes(), state])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    let folders = store.counts_by_folder().unwrap();
    assert_eq!(folders[0].counts[&State::Failed], 10_000);
    assert_eq!(folders[0].counts[&State::Approved], 90_000);
    // walking every page of failed files: each page is 50 rows, none repeats
    let (mut after, mut seen, mut pages) = (None, 0usize, 0);
    loop {
        let page = store
            .page_in_states(&[State::Failed], Some("inbox"), after, 50)
            .unwrap();
        assert!(page.rows.len() <= 50);
        assert!(page.rows.iter().all(|r| r.state == State::Failed));
        assert!(page.rows.first().map(|r| r.id) > after);
        seen += page.rows.len();
        pages += 1;
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!((seen, pages), (10_000, 200));
}

#[test]
fn a_batch_commits_what_succeeded_and_rolls_back_only_what_failed() {
    let mut store = Store::open_in_memory().unwrap();
    let result: Result<()> = store.batch(|s| {
        s.observe_one("f", &obs(b"a.pdf", 1, 1)).unwrap();
        // refused: a is discovered, not stable; nothing of it is written
        let refused = s.transition(1, State::Stable, State::Uploading, &Change::because("x"));
        assert!(refused.is_err());
        s.observe_one("f", &obs(b"b.pdf", 1, 1)).unwrap();
        Err(Error::Task {
            what: "test",
            message: "the closure failed".into(),
        })
    });
    assert!(result.is_err());
    assert!(store.conn.is_autocommit());
    let counts = store.counts_by_state().unwrap();
    assert_eq!(counts.get(&State::Discovered), Some(&2));
    assert_eq!(store.events(1).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_calls_each_get_their_own_result_after_the_commit() {
    let mut store = Store::open_in_memory().unwrap();
    for n in 0..20u8 {
        store
            .observe_one("f", &obs(format!("{n}.pdf").as_bytes(), 1, 1))
            .unwrap();
    }
    let shared = SharedStore::new(store);
    let calls = (1..=20i64).map(|id| {
        let shared = shared.clone();
        tokio::spawn(async move {
            // every third call is refused (a stale state); the others commit
            let expected = if id % 3 == 0 {
                State::Stable
            } else {
                State::Discovered
            };
            shared
                .call_grouped(move |s| {
                    s.transition(id, expected, State::Stable, &Change::because("t"))
                })
                .await
        })
    });
    let results = futures::future::join_all(calls).await;
    for (i, result) in results.into_iter().enumerate() {
        let id = i as i64 + 1;
        let result = result.unwrap();
        assert_eq!(result.is_ok(), id % 3 != 0, "row {id}: {result:?}");
    }
    let counts = shared.call(|s| s.counts_by_state()).await.unwrap();
    assert_eq!(counts.get(&State::Stable), Some(&14));
    assert_eq!(counts.get(&State::Discovered), Some(&6));
}

#[test]
fn count_in_state_agrees_with_counts_by_state_and_reads_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let mut store = Store::open(&path).unwrap();
    let ids: Vec<i64> = (0..5u8)
        .map(|n| new_row(&mut store, format!("{n}.pdf").as_bytes()))
        .collect();
    for id in &ids[..2] {
        store
            .transition(*id, State::Discovered, State::Stable, &Change::because("t"))
            .unwrap();
    }
    force_state(&store, ids[2], State::Pending);
    let reader = Store::open_read_only(&path).unwrap();
    let counts = store.counts_by_state().unwrap();
    for state in State::ALL {
        let expected = counts.get(&state).copied().unwrap_or(0);
        assert_eq!(store.count_in_state(state).unwrap(), expected, "{state}");
        assert_eq!(reader.count_in_state(state).unwrap(), expected, "{state}");
    }
    assert_eq!(reader.count_in_state(State::Stable).unwrap(), 2);
    assert_eq!(reader.count_in_state(State::Approved).unwrap(), 0);
}

#[test]
fn count_events_since_counts_the_transitions_from_a_time_on() {
    let mut store = Store::open_in_memory().unwrap();
    let a = new_row(&mut store, b"a.pdf");
    let b = new_row(&mut store, b"b.pdf");
    store
        .transition(a, State::Discovered, State::Stable, &Change::because("t"))
        .unwrap();
    // b was created long ago; a's creation and its move to stable are recent
    store
        .conn
        .execute("UPDATE events SET at = 100 WHERE file_id = ?1", [b])
        .unwrap();
    let count = |since, to| store.count_events_since(since, to).unwrap();
    assert_eq!(count(0, None), 3);
    assert_eq!(count(0, Some(State::Discovered)), 2);
    assert_eq!(count(0, Some(State::Stable)), 1);
    assert_eq!(count(100, None), 3);
    assert_eq!(count(101, None), 2);
    assert_eq!(count(101, Some(State::Discovered)), 1);
    assert_eq!(count(101, Some(State::Pending)), 0);
    assert_eq!(count(now_ms() + 60_000, None), 0);
}

#[test]
fn replicate_copies_the_seed_row_for_each_file_with_its_event() {
    let mut store = Store::open_in_memory().unwrap();
    let seed = new_row(&mut store, b"seed.pdf");
    force_state(&store, seed, State::Pending);
    let change = Change {
        remote_id: Some("remote-seed".into()),
        remote_status: Some("approved".into()),
        decision_reason: Some("looks fine".into()),
        ..Change::because("decided")
    };
    store.update_remote(seed, State::Pending, &change).unwrap();
    force_state(&store, seed, State::Approved);
    let seed_row = store.get(seed).unwrap().unwrap();
    let replica = |n: u8| Replica {
        path: format!("copy-{n}.pdf").into_bytes(),
        account: OTHER.into(),
        size: 100 + u64::from(n),
        mtime_ns: 7,
        sha256: format!("sha-{n}"),
        remote_id: Some(format!("bench-replica-{n}")),
    };
    let reason = format!("replicated from row {seed} by the benchmark");
    let ids = store
        .replicate(seed, &[replica(0), replica(1)], &reason)
        .unwrap();
    assert_eq!(ids.len(), 2);
    for (n, id) in ids.iter().enumerate() {
        let r = replica(n as u8);
        let row = store.get(*id).unwrap().unwrap();
        assert_eq!(
            row,
            FileRow {
                id: *id,
                path: r.path.clone(),
                target: TargetKey {
                    account: r.account.clone(),
                    ..seed_row.target.clone()
                },
                size: r.size,
                mtime_ns: r.mtime_ns,
                sha256: Some(r.sha256.clone()),
                remote_id: r.remote_id.clone(),
                last_error: None,
                last_request_id: None,
                ..seed_row.clone()
            }
        );
        let events = store.events(*id).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].from_state, None);
        assert_eq!(events[0].to_state, State::Approved);
        assert_eq!(events[0].at, seed_row.updated_at);
        assert_eq!(events[0].reason, reason);
    }
    assert_eq!(store.count_in_state(State::Approved).unwrap(), 3);

    // no seed: nothing inserted
    let err = store.replicate(999, &[replica(5)], "r").unwrap_err();
    assert!(matches!(err, Error::NoSuchFile { id: 999 }), "{err:?}");
    // a path that already has a live row: the whole call inserts nothing
    assert!(store
        .replicate(seed, &[replica(6), replica(0)], "r")
        .is_err());
    assert_eq!(store.count_in_state(State::Approved).unwrap(), 3);
    assert!(store.find_live("inbox", b"copy-6.pdf").unwrap().is_none());
}

/// An upload's answer is checked against what is recorded: another row of the
/// target under the same remote ID with other content is found (through the
/// `files_remote` index); the same content and the replaced row are not.
#[test]
fn remote_id_holder_finds_an_id_given_before() {
    let mut store = Store::open_in_memory().unwrap();
    let a = new_row(&mut store, b"a.pdf");
    let b = new_row(&mut store, b"b.pdf");
    for (id, sha) in [(a, "aa"), (b, "bb")] {
        force_state(&store, id, State::Stable);
        store
            .begin_upload(id, State::Stable, &intent(sha, None))
            .unwrap();
    }
    let uploaded = Change {
        remote_id: Some("file-1".into()),
        ..Change::because("uploaded")
    };
    store
        .transition(a, State::Uploading, State::Pending, &uploaded)
        .unwrap();
    let holder = store
        .remote_id_holder(&key(ACCT), "file-1", b, Some("bb"), None)
        .unwrap();
    assert_eq!(holder.map(|r| r.id), Some(a));
    // the same content, the row it replaces, another ID or account: no one
    let none = [
        store.remote_id_holder(&key(ACCT), "file-1", b, Some("aa"), None),
        store.remote_id_holder(&key(ACCT), "file-1", b, Some("bb"), Some(a)),
        store.remote_id_holder(&key(ACCT), "file-2", b, Some("bb"), None),
        store.remote_id_holder(&key(OTHER), "file-1", b, Some("bb"), None),
        store.remote_id_holder(&key(ACCT), "file-1", a, Some("aa"), None),
    ];
    for found in none {
        assert_eq!(found.unwrap(), None);
    }
    let plan = store.query_plan(&upload::remote_id_holder_sql());
    assert!(
        plan.iter().any(|step| step.contains("files_remote")),
        "{plan:?}"
    );
}

/// The lock file tells the next start whether this run stopped cleanly: a
/// pid left in it means killed, crashed or a power loss.
#[test]
fn the_lock_file_remembers_an_unclean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let first = InstanceLock::acquire(&state).unwrap();
    assert!(first.last_stop_was_clean(), "no run before");
    drop(first); // as if killed: the pid stays in the file
    let second = InstanceLock::acquire(&state).unwrap();
    assert!(!second.last_stop_was_clean());
    second.stopped_cleanly().unwrap();
    let third = InstanceLock::acquire(&state).unwrap();
    assert!(third.last_stop_was_clean());
    let text = std::fs::read_to_string(state.join(LOCK_FILE)).unwrap();
    assert_eq!(
        text.trim(),
        std::process::id().to_string(),
        "the holder's pid"
    );
}

/// `docsync run` checks the lock before it starts anything: that check leaves
/// the lock file as it was, so a clean stop stays clean and a pid left by an
/// unclean one stays for the run that takes the lock.
#[test]
fn checking_the_lock_leaves_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    InstanceLock::acquire(&state)
        .unwrap()
        .stopped_cleanly()
        .unwrap();
    InstanceLock::ensure_free(&state).unwrap();
    let run = InstanceLock::acquire(&state).unwrap();
    assert!(run.last_stop_was_clean(), "the check is not a run");
    drop(run); // as if killed
    InstanceLock::ensure_free(&state).unwrap();
    let next = InstanceLock::acquire(&state).unwrap();
    assert!(!next.last_stop_was_clean(), "the check kept the pid");
    let err = InstanceLock::ensure_free(&state).unwrap_err();
    assert!(matches!(err, Error::AlreadyRunning { .. }), "{err}");
}

/// Commits are synced to disk before they return (an intent survives a power
/// loss, not just a crash): the writer runs `synchronous = FULL`.
#[test]
fn the_writer_syncs_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    let level: i64 = store
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(level, 2, "2 = FULL");
}

/// A poll cycle loads only the rows a listed decision is about: they are
/// found by remote ID through the `files_remote` index, never by reading
/// every pending row.
#[test]
fn pending_rows_are_found_by_remote_id() {
    let mut store = Store::open_in_memory().unwrap();
    let mut ids = Vec::new();
    for (n, path) in [b"a".as_slice(), b"b", b"c"].iter().enumerate() {
        let id = new_row(&mut store, path);
        force_state(&store, id, State::Stable);
        store
            .begin_upload(id, State::Stable, &intent(&format!("{n}{n}"), None))
            .unwrap();
        let sent = Change {
            remote_id: Some(format!("r{n}")),
            ..Change::because("uploaded")
        };
        store
            .transition(id, State::Uploading, State::Pending, &sent)
            .unwrap();
        ids.push(id);
    }
    let kind = TargetKind::MoovFiles;
    let wanted = vec!["r0".to_owned(), "r2".to_owned(), "gone".to_owned()];
    let rows = store.pending_by_remote_id(kind, ACCT, &wanted).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[0], ids[2]]
    );
    assert_eq!(
        store
            .count_pending_by_remote_id(kind, ACCT, &wanted)
            .unwrap(),
        2
    );
    assert!(store
        .pending_by_remote_id(kind, "other", &wanted)
        .unwrap()
        .is_empty());
    // more IDs than one statement takes
    let many: Vec<String> = (0..1200).map(|n| format!("r{n}")).collect();
    assert_eq!(
        store.count_pending_by_remote_id(kind, ACCT, &many).unwrap(),
        3
    );
    let accounts = store.pending_accounts().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!((accounts[0].account.as_str(), accounts[0].count), (ACCT, 3));
    let plan = store.query_plan(&files::pending_by_remote_id_sql(2));
    assert!(plan.iter().any(|s| s.contains("files_remote")), "{plan:?}");
}

/// The API the rows were synced against: none until recorded, then one row
/// (replaced, never added to), read back the same by a read-only reader.
#[test]
fn the_api_identity_is_recorded_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut store = Store::open_in_state_dir(&state).unwrap();
    assert_eq!(store.api_identity().unwrap(), None);

    store.set_api_identity(&ApiIdentity::Sandbox).unwrap();
    assert_eq!(store.api_identity().unwrap(), Some(ApiIdentity::Sandbox));

    let remote = ApiIdentity::Remote {
        moov: Some("https://api.moov.io".into()),
        attachments: Some("https://a.example".into()),
    };
    store.set_api_identity(&remote).unwrap();
    assert_eq!(store.api_identity().unwrap(), Some(remote.clone()));
    let rows: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM api_identity", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);

    let reader = Store::open_read_only(&state.join(DB_FILE)).unwrap();
    assert_eq!(reader.api_identity().unwrap(), Some(remote));
    // a sandbox with a URL cannot be written (the schema says so too)
    let bad = store.conn.execute(
        "UPDATE api_identity SET kind = 'sandbox', moov_url = 'http://127.0.0.1:1'",
        [],
    );
    assert!(bad.is_err(), "{bad:?}");
}

/// Starting over: a backup (mode 0600) keeps every row; then the rows and
/// their events are gone and the new API is recorded, in one step.
#[test]
fn start_over_forgets_the_rows_after_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut store = Store::open_in_state_dir(&state).unwrap();
    store.set_api_identity(&ApiIdentity::Sandbox).unwrap();
    let a = new_row(&mut store, b"a.pdf");
    new_row(&mut store, b"b.pdf");
    force_state(&store, a, State::Approved);
    assert_eq!(store.file_count().unwrap(), 2);

    let backup = state.join("docsync.db.backup");
    store.backup_to(&backup).unwrap();
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // never over an existing file
    assert!(store.backup_to(&backup).is_err());

    let real = ApiIdentity::Remote {
        moov: Some("https://api.moov.io".into()),
        attachments: None,
    };
    assert_eq!(store.start_over(&real).unwrap(), 2);
    assert_eq!(store.file_count().unwrap(), 0);
    let events: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 0);
    assert_eq!(store.api_identity().unwrap(), Some(real));

    let old = Store::open_read_only(&backup).unwrap();
    assert_eq!(old.file_count().unwrap(), 2);
    assert_eq!(old.get(a).unwrap().unwrap().state, State::Approved);
    assert_eq!(old.api_identity().unwrap(), Some(ApiIdentity::Sandbox));
}

/// The intake's writes skip the fsync (the next scan sees them again); the
/// store goes back to synced commits after, and an intent is never committed
/// unsynced: asked for inside the relaxed section, it is refused and the row
/// is left as it was.
#[test]
fn relaxed_commits_refuse_intents_and_end_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state.db")).unwrap();
    let id = new_row(&mut store, b"a.pdf");
    force_state(&store, id, State::Stable);
    let level = |s: &Store| -> i64 {
        s.conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap()
    };
    let inside = store
        .relaxed(|s| {
            let inside = level(s);
            let refused = s.begin_upload(id, State::Stable, &intent("aa", None));
            Ok((inside, refused))
        })
        .unwrap();
    assert_eq!(inside.0, 1, "1 = NORMAL inside");
    assert!(
        matches!(inside.1, Err(Error::IntentNotDurable { id: refused }) if refused == id),
        "{:?}",
        inside.1
    );
    assert_eq!(level(&store), 2, "2 = FULL again after");
    assert_eq!(store.get(id).unwrap().unwrap().state, State::Stable);
    let started = store
        .begin_upload(id, State::Stable, &intent("aa", None))
        .unwrap();
    assert!(matches!(started, BeginUpload::Started(_)), "{started:?}");
}

mod migration;
