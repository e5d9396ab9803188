#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::model::TargetKind;
use crate::store::{Change, Observation, Observed, DB_FILE};

const ACCT: &str = "00000000-0000-4000-8000-00000000acc0";
const BOTH: &[HookKind] = &[HookKind::Command, HookKind::Webhook];

fn new_row(store: &mut Store, path: &[u8]) -> i64 {
    let observed = Observed {
        path: path.to_vec(),
        size: 10,
        mtime_ns: 1,
        target: TargetKey {
            kind: TargetKind::MoovFiles,
            account: ACCT.into(),
            purpose: "business_verification".into(),
        },
    };
    let rec = store.observe_batch("inbox", &[observed], false).unwrap();
    match rec.observations[0] {
        Observation::New { id } => id,
        other => panic!("{other:?}"),
    }
}

/// Walk row `id` from `discovered` to `pending` with remote id `r-1`.
fn to_pending(store: &mut Store, id: i64) {
    let steps = [
        (State::Discovered, State::Stable),
        (State::Stable, State::Uploading),
        (State::Uploading, State::Pending),
    ];
    for (from, to) in steps {
        let change = Change {
            remote_id: (to == State::Pending).then(|| "r-1".to_owned()),
            ..Change::because("step")
        };
        store.transition(id, from, to, &change).unwrap();
    }
}

fn reject(store: &mut Store, id: i64) {
    let change = Change {
        decision_reason: Some("blurry scan".into()),
        request_id: Some("req-9".into()),
        ..Change::because("rejected by the server")
    };
    store
        .transition(id, State::Pending, State::Rejected, &change)
        .unwrap();
}

#[test]
fn without_hooks_a_decision_writes_no_outbox_row() {
    let mut store = Store::open_in_memory().unwrap();
    let id = new_row(&mut store, b"a.pdf");
    to_pending(&mut store, id);
    reject(&mut store, id);
    assert_eq!(store.outbox_undelivered().unwrap(), 0);
    assert!(store.outbox_due(BOTH, i64::MAX, 10).unwrap().is_empty());
}

#[test]
fn a_decision_writes_one_row_per_hook_with_what_it_says() {
    let mut store = Store::open_in_memory().unwrap();
    store.enable_outbox(BOTH).unwrap();
    let id = new_row(&mut store, b"dir/a.pdf");
    to_pending(&mut store, id);
    // the steps before the decision are no events for a hook
    assert_eq!(store.outbox_undelivered().unwrap(), 0);
    reject(&mut store, id);
    let due = store.outbox_due(BOTH, i64::MAX, 10).unwrap();
    assert_eq!(due.len(), 2, "{due:?}");
    let hooks: Vec<HookKind> = due.iter().map(|e| e.hook).collect();
    assert!(hooks.contains(&HookKind::Command) && hooks.contains(&HookKind::Webhook));
    assert_eq!(due[0].uid, due[1].uid, "one event: one id for receivers");
    assert_eq!(due[0].uid.len(), 32);
    for e in &due {
        assert_eq!(e.state, State::Rejected);
        assert_eq!(e.from_state, Some(State::Pending));
        assert_eq!(e.path, b"dir/a.pdf");
        assert_eq!(e.folder, "inbox");
        assert_eq!(e.target.account, ACCT);
        assert_eq!(e.remote_id.as_deref(), Some("r-1"));
        assert_eq!(e.decision_reason.as_deref(), Some("blurry scan"));
        assert_eq!(e.request_id.as_deref(), Some("req-9"));
        assert_eq!(e.reason, "rejected by the server");
        assert_eq!(e.attempts, 0);
    }
    // only the configured hooks are read
    assert_eq!(
        store
            .outbox_due(&[HookKind::Webhook], i64::MAX, 10)
            .unwrap()
            .len(),
        1
    );

    // a recorded move stays in the state: no new event for a hook
    store.record_move(id, b"rejected/a.pdf", "moved").unwrap();
    assert_eq!(store.outbox_undelivered().unwrap(), 2);

    // a second file that is invalid at once: one more event, a new id
    let other = new_row(&mut store, b"b.exe");
    store
        .transition(
            other,
            State::Discovered,
            State::Invalid,
            &Change::because("not a document"),
        )
        .unwrap();
    let due = store
        .outbox_due(&[HookKind::Command], i64::MAX, 10)
        .unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[1].state, State::Invalid);
    assert_ne!(due[0].uid, due[1].uid);
}

#[test]
fn only_the_configured_hooks_get_rows() {
    let mut store = Store::open_in_memory().unwrap();
    store.enable_outbox(&[HookKind::Webhook]).unwrap();
    let id = new_row(&mut store, b"a.pdf");
    to_pending(&mut store, id);
    reject(&mut store, id);
    assert_eq!(store.outbox_undelivered().unwrap(), 1);
    assert!(store
        .outbox_due(&[HookKind::Command], i64::MAX, 10)
        .unwrap()
        .is_empty());
    // hooks switched off again: nothing more is written
    store.enable_outbox(&[]).unwrap();
    let other = new_row(&mut store, b"b.pdf");
    store
        .transition(
            other,
            State::Discovered,
            State::Invalid,
            &Change::because("bad"),
        )
        .unwrap();
    assert_eq!(store.outbox_undelivered().unwrap(), 1);
}

#[test]
fn a_failed_transition_leaves_no_outbox_row() {
    let mut store = Store::open_in_memory().unwrap();
    store.enable_outbox(BOTH).unwrap();
    let id = new_row(&mut store, b"a.pdf");
    to_pending(&mut store, id);
    // a decision refused (the row moved on meanwhile): no event, no outbox row
    let before = store.outbox_undelivered().unwrap();
    let err = store
        .transition(id, State::Uploading, State::Rejected, &Change::because("x"))
        .unwrap_err();
    assert!(matches!(err, Error::StaleState { .. }), "{err}");
    assert_eq!(store.outbox_undelivered().unwrap(), before);
    assert_eq!(store.get(id).unwrap().unwrap().state, State::Pending);
}

#[test]
fn failures_back_off_then_give_up_into_the_history() {
    let mut store = Store::open_in_memory().unwrap();
    store.enable_outbox(&[HookKind::Webhook]).unwrap();
    let id = new_row(&mut store, b"a.pdf");
    to_pending(&mut store, id);
    reject(&mut store, id);
    let entry = store.outbox_due(BOTH, i64::MAX, 10).unwrap().remove(0);

    let now = entry.at + 1_000;
    let outcome = store
        .outbox_failed(entry.id, "HTTP 500", Some(now + 5_000), now)
        .unwrap();
    assert_eq!(outcome, OutboxFailure::RetryAt(now + 5_000));
    assert!(store.outbox_due(BOTH, now + 4_999, 10).unwrap().is_empty());
    assert_eq!(store.outbox_next_due(BOTH).unwrap(), Some(now + 5_000));
    let again = store.outbox_due(BOTH, now + 5_000, 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);

    // a restart makes it due at once
    assert_eq!(store.outbox_due_now(now + 10).unwrap(), 1);
    assert_eq!(store.outbox_due(BOTH, now + 10, 10).unwrap().len(), 1);

    let outcome = store
        .outbox_failed(entry.id, "connection refused", None, now + 20)
        .unwrap();
    assert_eq!(outcome, OutboxFailure::GaveUp);
    assert!(store.outbox_due(BOTH, i64::MAX, 10).unwrap().is_empty());
    assert_eq!(store.outbox_undelivered().unwrap(), 0);
    assert_eq!(store.outbox_next_due(BOTH).unwrap(), None);
    let events = store.events(id).unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.from_state, last.to_state),
        (Some(State::Rejected), State::Rejected)
    );
    assert_eq!(
        last.reason,
        "the webhook hook gave up on this event after 2 attempts: connection refused"
    );
    // the give-up event is no decision: it makes no outbox row of its own
    assert_eq!(store.outbox_undelivered().unwrap(), 0);

    assert!(matches!(
        store.outbox_failed(9_999, "x", None, now),
        Err(Error::NoSuchHookEvent { id: 9_999 })
    ));
}

#[test]
fn delivered_entries_are_done() {
    let mut store = Store::open_in_memory().unwrap();
    store.enable_outbox(BOTH).unwrap();
    let id = new_row(&mut store, b"a.pdf");
    to_pending(&mut store, id);
    reject(&mut store, id);
    let due = store.outbox_due(BOTH, i64::MAX, 10).unwrap();
    store.outbox_delivered(due[0].id, due[0].at).unwrap();
    let left = store.outbox_due(BOTH, i64::MAX, 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, due[1].id);
    assert_eq!(store.outbox_undelivered().unwrap(), 1);
}

#[test]
fn undelivered_entries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let mut store = Store::open(&path).unwrap();
        store.enable_outbox(&[HookKind::Command]).unwrap();
        let id = new_row(&mut store, b"a.pdf");
        to_pending(&mut store, id);
        reject(&mut store, id);
    }
    let store = Store::open(&path).unwrap();
    let due = store
        .outbox_due(&[HookKind::Command], i64::MAX, 10)
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].state, State::Rejected);
}
