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
use crate::store::{BeginUpload, Change, FileRow, State, Store, UploadIntent};

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

/// Record what [`check_file`] found for `row` (which must still be `stable` or
/// `retrying`): for a file ready to send, the upload intent, committed before
/// any request is sent.
///
/// The path before the handle: an upload cannot be taken back, so just before
/// the intent is committed, `path` is stat'ed again. A file gone since it was
/// read (an app's temporary file) is `deleted`, one replaced or changed since
/// (another inode, size or mtime) goes back to `discovered`; neither is sent.
pub fn commit_intent(
    store: &mut Store,
    row: &FileRow,
    checked: Checked,
    path: &Path,
) -> Result<Prepared> {
    let from = row.state;
    match checked {
        Checked::Ready { hashed, plan } => {
            match recheck(path, &hashed.stat)? {
                Recheck::Same => {}
                Recheck::Gone => {
                    let change = Change::because("vanished after it was read; not sent");
                    let row = store.transition(row.id, from, State::Deleted, &change)?;
                    return Ok(Prepared::Deleted { row });
                }
                Recheck::Replaced => {
                    let change = Change::because(
                        "replaced or changed after it was read; not sent; \
                         read again once it holds still",
                    );
                    let row = store.transition(row.id, from, State::Discovered, &change)?;
                    return Ok(Prepared::Restarted { row });
                }
            }
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
            Ok(match store.begin_upload(row.id, from, &intent)? {
                BeginUpload::Started(row) => {
                    let superseded_remote_id = match row.supersedes {
                        Some(old) => store.get(old)?.and_then(|o| o.remote_id),
                        None => None,
                    };
                    Prepared::Upload(Ready {
                        row,
                        plan,
                        content: hashed.content,
                        superseded_remote_id,
                        retried: from == State::Retrying,
                    })
                }
                BeginUpload::Duplicate { row, original } => Prepared::Duplicate { row, original },
                BeginUpload::QuotaExceeded { row, .. } => Prepared::Invalid { row },
            })
        }
        Checked::Invalid { hashed, reason } => {
            let change = Change {
                sha256: hashed.map(|h| h.sha256),
                ..Change::because(reason)
            };
            let row = store.transition(row.id, from, State::Invalid, &change)?;
            Ok(Prepared::Invalid { row })
        }
        Checked::Changed => {
            let change =
                Change::because("changed after it looked complete; waiting for it to settle again");
            let row = store.transition(row.id, from, State::Discovered, &change)?;
            Ok(Prepared::Restarted { row })
        }
        Checked::Gone => {
            let row = store.transition(
                row.id,
                from,
                State::Deleted,
                &Change::because("vanished before upload"),
            )?;
            Ok(Prepared::Deleted { row })
        }
    }
}

/// What a fresh stat of the path shows, against the stat taken when hashing.
enum Recheck {
    Same,
    Gone,
    /// Another inode, size or mtime.
    Replaced,
}

fn recheck(path: &Path, hashed: &FileStat) -> Result<Recheck> {
    match FileStat::of_path(path) {
        Ok(now) if now.same_content_as(hashed) => Ok(Recheck::Same),
        Ok(_) => Ok(Recheck::Replaced),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Recheck::Gone),
        Err(e) => Err(Error::io("checking the file again before sending", path, e)),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
