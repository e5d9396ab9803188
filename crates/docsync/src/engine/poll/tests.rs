use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::engine::intake::reconcile_folder;
use crate::engine::testkit::process;
use crate::engine::testkit::{fixture, stage, Fixture};
use crate::engine::upload::intent::{Prepared, Ready};
use crate::engine::upload::Processed;
use crate::local::ignore::IgnoreSet;
use crate::local::scanner::scan_folder;

/// [`super::move_decided_file`] on the fixture's bare store: the same move,
/// recorded by the same store call.
fn move_decided_file(
    store: &mut crate::store::Store,
    folder: &Folder,
    row: &FileRow,
) -> Result<Option<PathBuf>> {
    let Some((file_move, dest_rel)) = decided_file_move(folder, row) else {
        return Ok(None);
    };
    Ok(store.move_and_record(&file_move)?.then_some(dest_rel))
}

fn move_fixture() -> Fixture {
    let mut fx = fixture();
    fx.folder.after_decision = crate::model::AfterDecision::Move;
    fx
}

/// Drive a stable row to a decision (what the uploader and poller will do).
fn decide(fx: &mut Fixture, row: &FileRow, to: State) -> FileRow {
    let Prepared::Upload(Ready { row, .. }) = fx.prepare(row) else {
        panic!()
    };
    fx.store
        .transition(
            row.id,
            State::Uploading,
            State::Pending,
            &Change::because("uploaded"),
        )
        .unwrap();
    fx.store
        .transition(row.id, State::Pending, to, &Change::because("decided"))
        .unwrap()
}

#[test]
fn decided_files_move_and_stay_decided() {
    let mut fx = move_fixture();
    std::fs::create_dir(fx.root.join("sub")).unwrap();
    std::fs::write(fx.root.join("sub/a.pdf"), b"%PDF-1.4 a").unwrap();
    std::fs::write(fx.root.join("b.pdf"), b"%PDF-1.4 b").unwrap();
    // a file already sits where a.pdf would go
    std::fs::create_dir_all(fx.root.join("sub/approved")).unwrap();
    std::fs::write(fx.root.join("sub/approved/a.pdf"), b"older").unwrap();
    let rows = fx.scan_and_settle();
    assert_eq!(rows.len(), 2, "approved/ is skipped");
    let b = decide(&mut fx, &rows[0], State::Rejected);
    let a = decide(&mut fx, &rows[1], State::Approved);
    assert_eq!(
        decision_destination(&fx.folder, &a),
        Some(PathBuf::from("sub/approved/a.pdf"))
    );

    let moved = move_decided_file(&mut fx.store, &fx.folder, &a).unwrap();
    assert_eq!(moved, Some(PathBuf::from("sub/approved/a (1).pdf")));
    assert!(fx.root.join("sub/approved/a (1).pdf").exists());
    assert_eq!(
        std::fs::read(fx.root.join("sub/approved/a.pdf")).unwrap(),
        b"older"
    );
    let moved = move_decided_file(&mut fx.store, &fx.folder, &b).unwrap();
    assert_eq!(moved, Some(PathBuf::from("rejected/b.pdf")));

    // a full rescan leaves the moved rows decided, not deleted
    let scan = scan_folder(&fx.root, &IgnoreSet::for_folder(&fx.folder).unwrap()).unwrap();
    let summary = reconcile_folder(&mut fx.store, &fx.folder, &scan).unwrap();
    assert!(summary.reconciled.deleted.is_empty());
    let a_row = fx.store.get(a.id).unwrap().unwrap();
    assert_eq!(a_row.state, State::Approved);
    assert_eq!(
        a_row.moved_to.as_deref(),
        Some(b"sub/approved/a (1).pdf".as_slice())
    );
    let last = fx.store.events(a.id).unwrap().pop().unwrap();
    assert_eq!(
        (last.from_state, last.to_state),
        (Some(State::Approved), State::Approved)
    );
    assert!(last.reason.contains("moved to"));
    // moving again is a no-op
    assert_eq!(
        move_decided_file(&mut fx.store, &fx.folder, &a_row).unwrap(),
        None
    );
}

#[test]
fn leave_means_no_move() {
    let mut fx = fixture();
    std::fs::write(fx.root.join("a.pdf"), b"%PDF-1.4 a").unwrap();
    let rows = fx.scan_and_settle();
    let a = decide(&mut fx, &rows[0], State::Approved);
    assert_eq!(decision_destination(&fx.folder, &a), None);
    assert_eq!(
        move_decided_file(&mut fx.store, &fx.folder, &a).unwrap(),
        None
    );
    assert!(fx.root.join("a.pdf").exists());
}

/// One poll cycle reads the decisions of every pending file of an account
/// with one list call, and records them.
#[tokio::test]
async fn a_cycle_records_decisions_with_one_list_call() {
    let st = stage(Duration::ZERO).await;
    let mut ids = Vec::new();
    for name in ["a.pdf", "b.pdf", "c.pdf"] {
        let row = st
            .stable_file(name, format!("%PDF-1.4 {name}").as_bytes())
            .await;
        assert_eq!(
            process(&st.ctx, row.clone()).await.unwrap(),
            Processed::Sent
        );
        ids.push(row.id);
    }
    for id in &ids {
        assert_eq!(st.row(*id).await.state, State::Pending);
    }
    let cycle = poll_once(&st.ctx).await.unwrap();
    assert_eq!(cycle.requests, 1, "{cycle:?}");
    assert_eq!(cycle.decided, 3, "{cycle:?}");
    for id in ids {
        let row = st.row(id).await;
        assert!(
            matches!(row.state, State::Approved | State::Rejected),
            "{:?}",
            row.state
        );
        assert!(row.remote_status.is_some());
    }
    // nothing left: the next cycle sends nothing
    assert_eq!(poll_once(&st.ctx).await.unwrap().requests, 0);
}

/// Files the server has not decided yet stay pending: one list call, nothing
/// recorded, all still waiting.
#[tokio::test]
async fn undecided_files_stay_pending_after_one_list_call() {
    let st = stage(Duration::from_secs(3600)).await;
    for name in ["a.pdf", "b.pdf"] {
        let row = st
            .stable_file(name, format!("%PDF-1.4 {name}").as_bytes())
            .await;
        assert_eq!(process(&st.ctx, row).await.unwrap(), Processed::Sent);
    }
    let cycle = poll_once(&st.ctx).await.unwrap();
    assert_eq!(
        cycle,
        Cycle {
            requests: 1,
            decided: 0,
            waiting: 2
        }
    );
}
