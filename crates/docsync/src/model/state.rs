//! A file's state and the one table of the transitions it may make.

use std::fmt;
use std::str::FromStr;

/// A file's state. See [`State::can_transition_to`] for the machine.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Seen on disk, maybe still being written.
    Discovered,
    /// Size and mtime held still for the quiet window (or close_write seen).
    Stable,
    /// The upload intent is committed; the request may be in flight.
    Uploading,
    /// Uploaded; waiting for the server's decision.
    Pending,
    /// The server approved it (or processed it).
    Approved,
    /// The server rejected it; `decision_reason` says why.
    Rejected,
    /// Failed local validation; never sent.
    Invalid,
    /// A transient failure; retried at `next_attempt_at`.
    Retrying,
    /// A permanent failure (a 4xx the server will never accept).
    Failed,
    /// The content changed after upload; a newer row took over.
    Superseded,
    /// The same content was already uploaded to the same target.
    Duplicate,
    /// The file vanished from disk.
    Deleted,
    /// Already handled: not sent. Present when `docsync baseline` ran, or older
    /// than `max_age` when first seen; never read. `docsync retry PATH` sends it.
    Skipped,
}

impl State {
    /// Every state, in pipeline order.
    pub const ALL: [State; 13] = [
        State::Discovered,
        State::Stable,
        State::Uploading,
        State::Pending,
        State::Approved,
        State::Rejected,
        State::Invalid,
        State::Retrying,
        State::Failed,
        State::Superseded,
        State::Duplicate,
        State::Deleted,
        State::Skipped,
    ];

    /// The name stored in the database and shown to people.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Discovered => "discovered",
            State::Stable => "stable",
            State::Uploading => "uploading",
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Invalid => "invalid",
            State::Retrying => "retrying",
            State::Failed => "failed",
            State::Superseded => "superseded",
            State::Duplicate => "duplicate",
            State::Deleted => "deleted",
            State::Skipped => "skipped",
        }
    }

    /// The states this one may move to. This table is the state machine.
    pub const fn successors(self) -> &'static [State] {
        use State::*;
        match self {
            // still being written, or waiting for the quiet window; `Skipped`:
            // older than `max_age` when first seen (decided from the stat alone)
            Discovered => &[Stable, Invalid, Skipped, Deleted],
            // hashed and validated: upload, or stop here; changed during hashing: start over
            Stable => &[Discovered, Uploading, Invalid, Duplicate, Deleted],
            // the request's outcome; `Stable` and `Deleted` after crash reconciliation
            // found nothing on the server (changed or vanished meanwhile)
            Uploading => &[Pending, Retrying, Failed, Stable, Deleted],
            Retrying => &[Uploading, Failed, Discovered, Duplicate, Invalid, Deleted],
            // a decision arrives; or the content changed / vanished after upload
            Pending => &[Approved, Rejected, Failed, Superseded, Deleted],
            Approved => &[Superseded, Deleted],
            Rejected => &[Superseded, Deleted],
            // nothing reached the server: a change starts over on the same row;
            // `docsync retry` moves failed rows back to retrying, invalid ones to stable
            Failed => &[Retrying, Discovered, Deleted],
            Invalid => &[Stable, Discovered, Deleted],
            Duplicate => &[Discovered, Deleted],
            // already handled, never sent: a change of content supersedes it as
            // an approved row's does (the new row is a new file); `docsync retry
            // PATH` (that path only) sends it: `Stable`
            Skipped => &[Superseded, Stable, Deleted],
            Superseded => &[],
            Deleted => &[],
        }
    }

    /// Whether `self -> to` is allowed.
    pub fn can_transition_to(self, to: State) -> bool {
        self.successors().contains(&to)
    }

    /// Live rows represent a file currently on disk.
    pub const fn is_live(self) -> bool {
        !matches!(self, State::Superseded | State::Deleted)
    }

    /// States whose content has reached (or may have reached) the server.
    pub const fn is_remote(self) -> bool {
        matches!(
            self,
            State::Uploading | State::Pending | State::Approved | State::Rejected
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown state `{s}`"))
    }
}
