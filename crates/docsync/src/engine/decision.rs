//! What a server answer means for a row: the one mapping from a [`Remote`]
//! (an upload's answer, an earlier attempt found again, a polled status) to the
//! store changes that record it. The upload, settle and poll stages all record
//! through it, so a decision reads the same whichever stage saw it first.

use tracing::info;

use crate::remote::{Decision, Remote};
use crate::store::{Change, FileRow, ServerAnswer, State};

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

/// What `remote` (an upload's answer, an earlier attempt found again) means
/// for its row: on the server (`uploading` → `pending`, `how` saying how we
/// know), and decided if a decision came with the answer (images need no
/// review). Recorded atomically by [`crate::store::StateStore::record_on_server`].
pub fn server_answer(remote: &Remote, how: &str) -> ServerAnswer {
    let on_server = Change {
        remote_id: Some(remote.remote_id.clone()),
        remote_status: Some(remote.decision.word().into()),
        request_id: remote.request_id.clone(),
        last_error: Some(String::new()),
        ..Change::because(how)
    };
    ServerAnswer {
        on_server,
        decided: decided(remote),
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
