//! The intent: one short store call that records what the local check found.
//! For a file ready to send that is the upload intent (`uploading`, with the
//! sha256 and the name to send), committed before the request is sent, with
//! the duplicate and quota checks in the same transaction; otherwise
//! `duplicate`, `invalid`, back to `discovered` (changed while hashing) or
//! `deleted`.
//!
//! [`check_file`]: crate::local::check::check_file

use std::path::Path;

use crate::error::{Error, Result};
use crate::local::check::Checked;
use crate::local::hasher::Content;
use crate::local::scanner::FileStat;
use crate::local::validate::UploadPlan;
use crate::store::{
    BeginUpload, Change, FileCheck, FileRow, IntentStart, State, StateStore, Store, UploadIntent,
};

/// A row whose intent is committed (`uploading`): what [`super::send`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub row: FileRow,
    pub plan: UploadPlan,
    /// A small file's bytes as hashed, sent as they are instead of read again.
    pub content: Option<Content>,
    /// The remote id of what the file's earlier content was uploaded as
    /// (an image that `replace_on_change` replaces).
    pub superseded_remote_id: Option<String>,
    /// The row came from `retrying`: an earlier attempt was made (also after a
    /// `docsync retry`, which resets the attempts), so the server is asked
    /// about it before anything is sent.
    pub retried: bool,
}

/// The outcome of [`commit_intent`].
// One per row in hand, moved along and dropped: boxing the common variant
// would add an allocation per file to save a few hundred bytes of stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// The intent is committed (`uploading`): send it.
    Upload(Ready),
    /// The same content already went to the same target.
    Duplicate {
        row: FileRow,
        original: Box<FileRow>,
    },
    /// Failed validation or the quota (`invalid`).
    Invalid { row: FileRow },
    /// Changed since it was stable: back to `discovered`.
    Restarted { row: FileRow },
    /// Vanished: `deleted`.
    Deleted { row: FileRow },
}

/// What to record for a checked row: decided here, from the row and the
/// check alone (no store, no disk), so the daemon ([`record_intent`]) and the
/// dry run ([`commit_intent`]) record the same.
enum Step {
    /// Ready to send: the upload intent, if the file is still as hashed.
    Begin {
        intent: UploadIntent,
        plan: UploadPlan,
        content: Option<Content>,
        stat: FileStat,
    },
    /// Not to be sent: one transition, and what it means.
    Record {
        to: State,
        change: Change,
        ends: Ends,
    },
}

/// What a [`Step::Record`] transition makes of the row.
#[derive(Clone, Copy)]
enum Ends {
    Invalid,
    Restarted,
    Deleted,
}

impl Ends {
    fn prepared(self, row: FileRow) -> Prepared {
        match self {
            Ends::Invalid => Prepared::Invalid { row },
            Ends::Restarted => Prepared::Restarted { row },
            Ends::Deleted => Prepared::Deleted { row },
        }
    }
}

fn step(checked: Checked) -> Step {
    let record = |to, change, ends| Step::Record { to, change, ends };
    match checked {
        Checked::Ready { hashed, plan } => {
            let mut reason = format!(
                "hashed ({}, {}); upload intent committed",
                hashed.kind.name(),
                short(&hashed.sha256)
            );
            if let Some(rename) = &plan.rename {
                reason.push_str(&format!(
                    "; sent as \"{}\" because {}",
                    rename.to, rename.reason
                ));
            }
            let intent = UploadIntent {
                sha256: hashed.sha256.clone(),
                remote_name: plan.rename.as_ref().map(|r| r.to.clone()),
                quota: plan.quota,
                reason,
            };
            Step::Begin {
                intent,
                plan,
                content: hashed.content,
                stat: hashed.stat,
            }
        }
        Checked::Invalid { hashed, reason } => {
            let change = Change {
                sha256: hashed.map(|h| h.sha256),
                ..Change::because(reason)
            };
            record(State::Invalid, change, Ends::Invalid)
        }
        Checked::Changed => record(
            State::Discovered,
            Change::because("changed after it looked complete; waiting for it to settle again"),
            Ends::Restarted,
        ),
        Checked::Gone => record(
            State::Deleted,
            Change::because("vanished before upload"),
            Ends::Deleted,
        ),
    }
}

/// The transition of a file found changed just before its intent.
fn changed_before_intent(file: FileCheck) -> (State, Change, Ends) {
    match file {
        FileCheck::Gone => (
            State::Deleted,
            Change::because("vanished after it was read; not sent"),
            Ends::Deleted,
        ),
        _ => (
            State::Discovered,
            Change::because(
                "replaced or changed after it was read; not sent; \
                 read again once it holds still",
            ),
            Ends::Restarted,
        ),
    }
}

/// What the intent's outcome makes of the row.
fn started(
    outcome: BeginUpload,
    superseded_remote_id: Option<String>,
    plan: UploadPlan,
    content: Option<Content>,
    from: State,
) -> Prepared {
    match outcome {
        BeginUpload::Started(row) => Prepared::Upload(Ready {
            row,
            plan,
            content,
            superseded_remote_id,
            retried: from == State::Retrying,
        }),
        BeginUpload::Duplicate { row, original } => Prepared::Duplicate { row, original },
        BeginUpload::QuotaExceeded { row, .. } => Prepared::Invalid { row },
    }
}

/// Record what [`check_file`](crate::local::check::check_file) found for `row` (which must still be `stable` or
/// `retrying`): for a file ready to send, the upload intent, committed (and
/// synced, with those of the other files ready now) before this returns, so
/// before any request is sent.
///
/// The path before the handle: an upload cannot be taken back, so just before
/// the intent is written, `path` is stat'ed again
/// ([`StateStore::begin_upload`]). A file gone since it was read (an app's
/// temporary file) is `deleted`, one replaced or changed since (another inode,
/// size or mtime) goes back to `discovered`; neither is sent.
pub async fn record_intent(
    store: &StateStore,
    row: &FileRow,
    checked: Checked,
    path: &Path,
) -> Result<Prepared> {
    let from = row.state;
    let (to, change, ends) = match step(checked) {
        Step::Record { to, change, ends } => (to, change, ends),
        Step::Begin {
            intent,
            plan,
            content,
            stat,
        } => {
            let path = path.to_owned();
            let check = move || recheck(&path, &stat);
            match store.begin_upload(row.id, from, intent, check).await? {
                IntentStart::Recorded {
                    outcome,
                    superseded_remote_id,
                } => return Ok(started(*outcome, superseded_remote_id, plan, content, from)),
                IntentStart::FileChanged(file) => changed_before_intent(file),
            }
        }
    };
    let row = store.record_outcome(row.id, from, to, change).await?;
    Ok(ends.prepared(row))
}

/// [`record_intent`] on a [`Store`] itself: the same steps, for the dry run
/// (an in-memory copy of the database) and the stage tests.
pub fn commit_intent(
    store: &mut Store,
    row: &FileRow,
    checked: Checked,
    path: &Path,
) -> Result<Prepared> {
    let from = row.state;
    let (to, change, ends) = match step(checked) {
        Step::Record { to, change, ends } => (to, change, ends),
        Step::Begin {
            intent,
            plan,
            content,
            stat,
        } => {
            let file = recheck(path, &stat)?;
            match store.begin_upload_checked(row.id, from, &intent, file)? {
                IntentStart::Recorded {
                    outcome,
                    superseded_remote_id,
                } => return Ok(started(*outcome, superseded_remote_id, plan, content, from)),
                IntentStart::FileChanged(file) => changed_before_intent(file),
            }
        }
    };
    let row = store.transition(row.id, from, to, &change)?;
    Ok(ends.prepared(row))
}

/// A fresh stat of the path, against the stat taken when hashing.
fn recheck(path: &Path, hashed: &FileStat) -> Result<FileCheck> {
    match FileStat::of_path(path) {
        Ok(now) if now.same_content_as(hashed) => Ok(FileCheck::Unchanged),
        Ok(_) => Ok(FileCheck::Replaced),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileCheck::Gone),
        Err(e) => Err(Error::io("checking the file again before sending", path, e)),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
