//! What a server answer means for a row: the one mapping from a [`Remote`]
//! (an upload's answer, an earlier attempt found again, a polled status) to the
//! store changes that record it. The upload, settle and poll stages all record
//! through it, so a decision reads the same whichever stage saw it first.

use tracing::info;

use crate::error::Result;
use crate::remote::{Decision, Remote};
use crate::store::{Change, FileRow, State, Store};

/// The decision in `remote`, as the change that takes a row out of `pending`;
/// `None` while the server has not decided (or says something unknown).
pub fn decided(remote: &Remote) -> Option<(State, Change)> {
    let change = |reason: String| Change {
        remote_status: Some(remote.decision.word().into()),
        request_id: remote.request_id.clone(),
        last_error: Some(String::new()),
        ..Change::because(reason)
    };
    match &remote.decision {
        Decision::Pending | Decision::Unknown(_) => None,
        Decision::Approved => Some((State::Approved, change("approved by the server".into()))),
        Decision::Rejected(reason) => Some((
            State::Rejected,
            Change {
                decision_reason: reason.clone(),
                ..change(format!(
                    "rejected by the server: {}",
                    reason.as_deref().unwrap_or("no reason given")
                ))
            },
        )),
    }
}

/// Record that row `id`'s upload is on the server (`uploading` → `pending`,
/// `how` saying how we know), and the decision if one came with the answer
/// (images need no review). Returns the row as it ends.
pub fn record_on_server(store: &mut Store, id: i64, remote: &Remote, how: &str) -> Result<FileRow> {
    let change = Change {
        remote_id: Some(remote.remote_id.clone()),
        remote_status: Some(remote.decision.word().into()),
        request_id: remote.request_id.clone(),
        last_error: Some(String::new()),
        ..Change::because(how)
    };
    let row = store.transition(id, State::Uploading, State::Pending, &change)?;
    match decided(remote) {
        Some((to, change)) => store.transition(id, State::Pending, to, &change),
        None => Ok(row),
    }
}

/// Log a decision once it is recorded.
pub fn log_decided(row: &FileRow) {
    info!(
        path = %row.path_display(),
        state = row.state.as_str(),
        reason = row.decision_reason.as_deref().unwrap_or(""),
        "decided"
    );
}
