//! Hash and validate one file that held still: streaming sha256, type sniffing
//! and the target's rules. Pure file I/O, no store: run it on `spawn_blocking`
//! *without* holding the store, so hashing a large file never blocks the writer.
//! The engine's upload stage records what it finds.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::hasher::{hash_file, HashOutcome, Hashed};
use super::validate::{max_bytes, size_problem, validate, Candidate, UploadPlan, Verdict};
use crate::error::{Error, Result};
use crate::model::Folder;

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

/// The file as it was when it held still: its path relative to the folder
/// root, and the size and mtime the stability window saw.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub rel: &'a [u8],
    pub size: u64,
    pub mtime_ns: i64,
}

/// Hash and validate a file that held still. Blocking I/O; touches no store.
/// The account's quota is not counted here: the store counts it in the
/// transaction that commits the intent (the one count that decides), so no
/// store call is needed before hashing.
pub fn check_file(folder: &Folder, seen: Seen<'_>) -> Result<Checked> {
    let rel = Path::new(OsStr::from_bytes(seen.rel));
    let target = match folder.target_for(rel) {
        Ok(t) => t,
        Err(reason) => {
            return Ok(Checked::Invalid {
                hashed: None,
                reason,
            })
        }
    };
    let abs = folder.file_path(seen.rel);
    let hashed = match hash_file(&abs, max_bytes(&target)) {
        Ok(HashOutcome::Done(h)) => h,
        Ok(HashOutcome::TooLarge { size }) => {
            return Ok(Checked::Invalid {
                hashed: None,
                reason: size_problem(&target, size).unwrap_or_default(),
            })
        }
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
    if hashed.size != seen.size || hashed.mtime_ns != seen.mtime_ns {
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
