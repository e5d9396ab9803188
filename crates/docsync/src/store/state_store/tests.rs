//! The interface's composites hold together: what a user would see if one
//! half of a composite were recorded without the other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rusqlite::params;

use super::*;
use crate::error::Error;
use crate::model::TargetKey;
use crate::store::{BeginUpload, Observation, Observed, Store};

fn target() -> TargetKey {
    TargetKey {
        kind: TargetKind::MoovFiles,
        account: "00000000-0000-4000-8000-00000000acc0".into(),
        purpose: "business_verification".into(),
    }
}

/// A store with one row at `a.pdf`, put straight into `state`.
fn store_with_row(state: State) -> (Store, i64) {
    let mut store = Store::open_in_memory().unwrap();
    let observed = Observed {
        path: b"a.pdf".to_vec(),
        size: 10,
        mtime_ns: 1,
        target: target(),
    };
    let rec = store.observe_batch("inbox", &[observed], false).unwrap();
    let Observation::New { id } = rec.observations[0] else {
        panic!("{rec:?}")
    };
    store
        .conn
        .execute(
            "UPDATE files SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
        )
        .unwrap();
    (store, id)
}

fn interface(store: Store) -> StateStore {
    StateStore::sqlite(SharedStore::new(store))
}

fn intent() -> UploadIntent {
    UploadIntent {
        sha256: "aa".into(),
        remote_name: None,
        quota: Some(50),
        reason: "validated".into(),
    }
}

/// A decision that cannot be recorded takes back the "on the server" half:
/// the row stays `uploading` without the remote ID, so settle asks the server
/// again instead of polling a half-recorded row.
#[tokio::test]
async fn an_answer_recorded_halfway_is_undone() {
    let (store, id) = store_with_row(State::Uploading);
    let events = store.events(id).unwrap().len();
    let store = interface(store);
    let answer = ServerAnswer {
        on_server: Change {
            remote_id: Some("r1".into()),
            ..Change::because("uploaded")
        },
        // pending → stable is not a move the machine allows
        decided: Some((State::Stable, Change::because("decided"))),
    };
    let err = store.record_on_server(id, answer).await.unwrap_err();
    assert!(matches!(err, Error::IllegalTransition { .. }), "{err:?}");
    let row = store.get(id).await.unwrap().unwrap();
    assert_eq!(row.state, State::Uploading);
    assert_eq!(row.remote_id, None);
    let after = store.call(move |s| s.events(id)).await.unwrap();
    assert_eq!(after.len(), events, "no event of the undone half");
}

/// The same answer with a decision the machine allows records both halves.
#[tokio::test]
async fn an_answer_with_its_decision_is_recorded_whole() {
    let (store, id) = store_with_row(State::Uploading);
    let store = interface(store);
    let answer = ServerAnswer {
        on_server: Change {
            remote_id: Some("r1".into()),
            ..Change::because("uploaded")
        },
        decided: Some((State::Approved, Change::because("approved"))),
    };
    let row = store.record_on_server(id, answer).await.unwrap();
    assert_eq!(row.state, State::Approved);
    assert_eq!(row.remote_id.as_deref(), Some("r1"));
}

/// A file found changed just before its intent gets none: nothing is written
/// (the row stays `stable`, no event), so nothing is sent.
#[tokio::test]
async fn a_file_changed_before_its_intent_gets_none() {
    let (store, id) = store_with_row(State::Stable);
    let events = store.events(id).unwrap().len();
    let store = interface(store);
    let start = store
        .begin_upload(id, State::Stable, intent(), || Ok(FileCheck::Replaced))
        .await
        .unwrap();
    assert_eq!(start, IntentStart::FileChanged(FileCheck::Replaced));
    let row = store.get(id).await.unwrap().unwrap();
    assert_eq!(row.state, State::Stable);
    let after = store.call(move |s| s.events(id)).await.unwrap();
    assert_eq!(after.len(), events);

    let start = store
        .begin_upload(id, State::Stable, intent(), || Ok(FileCheck::Unchanged))
        .await
        .unwrap();
    let IntentStart::Recorded { outcome, .. } = start else {
        panic!("{start:?}")
    };
    assert!(matches!(*outcome, BeginUpload::Started(ref row) if row.state == State::Uploading));
}

/// Inside a group commit, a composite that fails is undone alone: the
/// outcomes grouped with it are still recorded.
#[test]
fn a_failed_composite_in_a_batch_is_undone_alone() {
    let (mut store, id) = store_with_row(State::Uploading);
    let second = {
        let rec = store
            .observe_batch(
                "inbox",
                &[Observed {
                    path: b"b.pdf".to_vec(),
                    size: 10,
                    mtime_ns: 1,
                    target: target(),
                }],
                false,
            )
            .unwrap();
        rec.observations[0].id()
    };
    let bad = ServerAnswer {
        on_server: Change::because("uploaded"),
        decided: Some((State::Stable, Change::because("not allowed"))),
    };
    store
        .batch(|s| {
            assert!(s.record_on_server(id, &bad).is_err());
            s.transition(
                second,
                State::Discovered,
                State::Stable,
                &Change::because("held still"),
            )
        })
        .unwrap();
    assert_eq!(store.get(id).unwrap().unwrap().state, State::Uploading);
    assert_eq!(store.get(second).unwrap().unwrap().state, State::Stable);
}
