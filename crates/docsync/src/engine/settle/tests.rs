use std::time::Duration;

use super::*;
use crate::engine::testkit::{stage, ACCOUNT};
use crate::store::UploadIntent;

/// Put row `id` into `uploading` from `from`, as a stop in the middle of a
/// request leaves it.
async fn interrupt(ctx: &Ctx, id: i64, from: State) {
    ctx.store
        .call(move |s| s.transition(id, from, State::Uploading, &Change::because("test")))
        .await
        .unwrap();
}

/// Commit row `id`'s upload intent (from `stable`) with hash `sha256`, as a
/// stop right after it leaves it.
async fn commit_intent(ctx: &Ctx, id: i64, sha256: String) {
    ctx.store
        .call(move |s| {
            s.begin_upload(
                id,
                State::Stable,
                &UploadIntent {
                    sha256,
                    remote_name: None,
                    quota: None,
                    reason: "test intent".into(),
                },
            )
        })
        .await
        .unwrap();
}

fn posts(st: &crate::engine::testkit::Stage) -> usize {
    st.sandbox
        .request_log()
        .iter()
        .filter(|e| e.method == "POST")
        .count()
}

/// An upload that reached the server before the stop is found by its marker
/// and recorded `pending` with the server's id; nothing is sent again.
#[tokio::test]
async fn an_upload_that_arrived_is_found_not_resent() {
    let st = stage(Duration::from_secs(3600)).await;
    let row = st.sent_but_unrecorded("a.pdf", b"%PDF-1.4 arrived").await;
    assert_eq!(row.state, State::Uploading);
    let posts_before = posts(&st);

    let settled = settle_once(&st.ctx).await.unwrap();
    let want = Settled {
        found: 1,
        ..Settled::default()
    };
    assert_eq!(settled, want);
    let row = st.row(row.id).await;
    assert_eq!(row.state, State::Pending);
    let listed = st.ctx.apis.list_files(ACCOUNT).await.unwrap().0;
    assert_eq!(listed.len(), 1);
    assert_eq!(row.remote_id.as_deref(), Some(listed[0].0.as_str()));
    assert_eq!(posts(&st), posts_before, "nothing sent again");
}

/// An intent whose request never left is sent again: back to `stable`, and
/// the upload stage is woken.
#[tokio::test]
async fn an_upload_that_never_arrived_goes_back_to_stable() {
    let st = stage(Duration::from_secs(3600)).await;
    let row = st.stable_file("a.pdf", b"%PDF-1.4 never sent").await;
    let id = row.id;
    commit_intent(&st.ctx, id, "ab".repeat(32)).await;
    let woken = st.ctx.wake.stable.notified();
    let settled = settle_once(&st.ctx).await.unwrap();
    let want = Settled {
        resend: 1,
        ..Settled::default()
    };
    assert_eq!(settled, want);
    assert_eq!(st.row(id).await.state, State::Stable);
    tokio::time::timeout(Duration::from_secs(5), woken)
        .await
        .expect("the upload stage is woken");
    assert_eq!(posts(&st), 0);
}

/// A row this process is sending right now is not taken for one a stop left.
#[tokio::test]
async fn a_row_in_flight_is_left_alone() {
    let st = stage(Duration::from_secs(3600)).await;
    let row = st.stable_file("a.pdf", b"%PDF-1.4 in flight").await;
    interrupt(&st.ctx, row.id, State::Stable).await;
    assert!(st.ctx.in_flight.claim(row.id));
    assert!(stuck_uploading(&st.ctx).await.unwrap().is_empty());
    assert_eq!(settle_once(&st.ctx).await.unwrap(), Settled::default());
    st.ctx.in_flight.release(row.id);
    assert_eq!(stuck_uploading(&st.ctx).await.unwrap().len(), 1);
}

/// The rows being asked about are in hand until each is answered (on
/// PostgreSQL, that keeps their leases renewed while a slow server answers
/// the rows before them), and given back after.
#[tokio::test]
async fn rows_being_asked_about_are_in_hand_until_answered() {
    let st = stage(Duration::from_secs(3600)).await;
    let mut ids = Vec::new();
    for (n, name) in ["a.pdf", "b.pdf", "c.pdf"].into_iter().enumerate() {
        let row = st.stable_file(name, name.as_bytes()).await;
        let id = row.id;
        // an intent with a hash: the server is asked for its marker
        commit_intent(&st.ctx, id, format!("{n}").repeat(64)).await;
        ids.push(id);
    }
    st.sandbox
        .set_faults(docsync_sandbox::FaultConfig {
            latency_ms: 200,
            ..docsync_sandbox::FaultConfig::default()
        })
        .unwrap();
    let ctx = st.ctx.clone();
    let settling = tokio::spawn(async move { settle_once(&ctx).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut held = st.ctx.in_flight.ids();
        held.sort_unstable();
        if held == ids {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rows were never all in hand at once: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let settled = settling.await.unwrap().unwrap();
    assert_eq!(settled.resend, 3, "{settled:?}");
    assert!(st.ctx.in_flight.is_empty(), "{:?}", st.ctx.in_flight.ids());
}
