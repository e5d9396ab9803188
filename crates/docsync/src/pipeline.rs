//! The local steps of the pipeline, between "stable" and "send the request":
//!
//! 1. [`promote_stable`]: the stability tracker says a file held still; if its row is
//!    still `discovered` with the same size and mtime, it becomes `stable`.
//! 2. [`check_file`]: streaming sha256 + type sniffing + the target's rules. Pure file
//!    I/O, no store access: run it on `spawn_blocking` *without* holding the store, so
//!    hashing a large file never blocks the writer.
//! 3. [`record_check`]: one short store call that records the outcome: the upload
//!    intent (`uploading`, committed before any request is sent), or `duplicate`,
//!    `invalid`, back to `discovered` (changed while hashing) or `deleted`.
//!
//! The uploader then sends [`Prepared::Upload`] rows and records `pending`, `retrying`
//! or `failed` with [`Store::transition`].

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::{AfterDecision, Folder};
use crate::error::{Error, Result};
use crate::hasher::{hash_file, Content, HashOutcome, Hashed};
use crate::store::{BeginUpload, Change, FileRow, State, Store, UploadIntent};
use crate::validate::{validate, Candidate, UploadPlan, Verdict};

/// The absolute path of a row's file.
pub fn file_path(folder: &Folder, row: &FileRow) -> PathBuf {
    folder.path.join(OsStr::from_bytes(&row.path))
}

/// Confirm a file the tracker found still: `discovered` → `stable` if the row still
/// has this size and mtime. Returns the stable row, or `None` if nothing changed
/// (no live row, another state, or a different size/mtime: the next observation
/// restarts the window).
pub fn promote_stable(
    store: &mut Store,
    folder_key: &str,
    path: &[u8],
    size: u64,
    mtime_ns: i64,
    reason: &str,
) -> Result<Option<FileRow>> {
    let Some(row) = store.find_live(folder_key, path)? else {
        return Ok(None);
    };
    if row.state != State::Discovered || row.size != size || row.mtime_ns != mtime_ns {
        return Ok(None);
    }
    store
        .transition(
            row.id,
            State::Discovered,
            State::Stable,
            &Change::because(reason),
        )
        .map(Some)
}

/// What [`check_file`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Hashed and valid: upload with this plan.
    Ready { hashed: Hashed, plan: UploadPlan },
    /// Never send it; the reason says what to do.
    Invalid {
        hashed: Option<Hashed>,
        reason: String,
    },
    /// The file changed since it was found stable (or while hashing): start over.
    Changed,
    /// The file is gone.
    Gone,
}

/// Hash and validate a `stable` row's file. Blocking I/O; touches no store.
/// The account's quota is not counted here: [`Store::begin_upload`] counts it in
/// the transaction that commits the intent (the one count that decides), so no
/// store call is needed before hashing.
pub fn check_file(folder: &Folder, row: &FileRow) -> Result<Checked> {
    let rel = Path::new(OsStr::from_bytes(&row.path));
    let target = match folder.target_for(rel) {
        Ok(t) => t,
        Err(reason) => {
            return Ok(Checked::Invalid {
                hashed: None,
                reason,
            })
        }
    };
    let abs = file_path(folder, row);
    let hashed = match hash_file(&abs) {
        Ok(HashOutcome::Done(h)) => h,
        Ok(HashOutcome::Changed { after: None, .. }) => return Ok(Checked::Gone),
        Ok(HashOutcome::Changed { .. }) => return Ok(Checked::Changed),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Checked::Gone)
        }
        // Recorded, not retried blindly every round: a person has to act.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => {
            return Ok(Checked::Invalid {
                hashed: None,
                reason: format!(
                    "the file cannot be read ({source}); give the user docsync runs as \
                     read permission, then run `docsync retry`"
                ),
            })
        }
        Err(e) => return Err(e),
    };
    if hashed.size != row.size || hashed.mtime_ns != row.mtime_ns {
        return Ok(Checked::Changed);
    }
    let file_name = rel.file_name().unwrap_or(rel.as_os_str());
    let verdict = validate(
        &target,
        &Candidate {
            file_name,
            size: hashed.size,
            kind: hashed.kind,
            // counted (and enforced) when the intent is committed
            quota_used: 0,
        },
    );
    Ok(match verdict {
        Verdict::Upload(plan) => Checked::Ready { hashed, plan },
        Verdict::Invalid(reason) => Checked::Invalid {
            hashed: Some(hashed),
            reason,
        },
    })
}

/// The outcome of [`record_check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// The intent is committed (`uploading`): send it (a small file's `content`
    /// is the bytes hashed, sent as they are instead of read again).
    Upload {
        row: FileRow,
        plan: UploadPlan,
        content: Option<Content>,
    },
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

/// Record what [`check_file`] found for `row` (which must still be `stable`).
pub fn record_check(store: &mut Store, row: &FileRow, checked: Checked) -> Result<Prepared> {
    let from = row.state;
    match checked {
        Checked::Ready { hashed, plan } => {
            let mut reason = format!(
                "hashed ({}, {}); upload intent committed",
                hashed.kind.name(),
                short(&hashed.sha256)
            );
            if let Some(rename) = &plan.rename {
                reason.push_str(&format!(
                    "; sent as {:?} because {}",
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
                BeginUpload::Started(row) => Prepared::Upload {
                    row,
                    plan,
                    content: hashed.content,
                },
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

/// Where `after_decision = "move"` puts a decided file, relative to the folder root:
/// an `approved/` or `rejected/` directory beside it. `None` when the folder leaves
/// files in place, the row is not decided, or it was moved already.
pub fn decision_destination(folder: &Folder, row: &FileRow) -> Option<PathBuf> {
    if folder.after_decision != AfterDecision::Move || row.moved_to.is_some() {
        return None;
    }
    let dir = match row.state {
        State::Approved => "approved",
        State::Rejected => "rejected",
        _ => return None,
    };
    let rel = Path::new(OsStr::from_bytes(&row.path));
    let name = rel.file_name()?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    Some(parent.join(dir).join(name))
}

/// Move a decided file into `approved/` or `rejected/` and record it. Returns the new
/// relative path, or `None` if there is nothing to move (see
/// [`decision_destination`]) or the file is already gone. An existing file at the
/// destination is never overwritten: ` (1)`, ` (2)`, ... is added to the name.
///
/// Run it inside one [`crate::store::SharedStore::call`], so that no scan is
/// reconciled between the rename and its record.
pub fn move_decided_file(
    store: &mut Store,
    folder: &Folder,
    row: &FileRow,
) -> Result<Option<PathBuf>> {
    let Some(dest_rel) = decision_destination(folder, row) else {
        return Ok(None);
    };
    let src = file_path(folder, row);
    let dest_rel = free_name(&folder.path, &dest_rel);
    let dest = folder.path.join(&dest_rel);
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
    }
    match std::fs::rename(&src, &dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("moving decided file", &src, e)),
    }
    let reason = format!("moved to {}", dest_rel.display());
    if let Err(e) = store.record_move(row.id, dest_rel.as_os_str().as_bytes(), &reason) {
        // put it back so disk and database agree
        let _ = std::fs::rename(&dest, &src);
        return Err(e);
    }
    Ok(Some(dest_rel))
}

/// `rel`, or `rel` with ` (n)` before its extension, whichever does not exist yet.
fn free_name(root: &Path, rel: &Path) -> PathBuf {
    if !root.join(rel).exists() {
        return rel.to_owned();
    }
    let stem = rel
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = rel.extension().map(|e| format!(".{}", e.to_string_lossy()));
    for n in 1..10_000 {
        let candidate = rel.with_file_name(format!("{stem} ({n}){}", ext.as_deref().unwrap_or("")));
        if !root.join(&candidate).exists() {
            return candidate;
        }
    }
    rel.with_file_name(format!(
        "{stem} ({}){}",
        uuid::Uuid::new_v4(),
        ext.as_deref().unwrap_or("")
    ))
}

/// The content-hash marker put into an upload's metadata (the moov-files `comment`
/// key), so a row found in `uploading` after a crash can be matched with the
/// server's list before anything is sent again.
pub const MARKER_PREFIX: &str = "docsync-sha256:";

/// The `comment` to send: the configured comment (if any) followed by the marker.
pub fn comment_with_marker(comment: Option<&str>, sha256: &str) -> String {
    match comment.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => format!("{c} [{MARKER_PREFIX}{sha256}]"),
        None => format!("[{MARKER_PREFIX}{sha256}]"),
    }
}

/// The sha256 in a comment written by [`comment_with_marker`], if any.
pub fn marker_in(comment: &str) -> Option<&str> {
    let start = comment.rfind(MARKER_PREFIX)? + MARKER_PREFIX.len();
    let hex = comment.get(start..start + 64)?;
    hex.bytes().all(|b| b.is_ascii_hexdigit()).then_some(hex)
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests;
