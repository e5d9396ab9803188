//! `docsync baseline`: mark what the folders hold now as already handled.
//! Every file present that has no row yet is recorded `skipped` (never read,
//! never sent, no request made); files with a row are left as they are, so a
//! second baseline adds nothing. Files that appear afterwards are new: the
//! daemon uploads them as usual. On SQLite the caller holds the state
//! directory's lock; on PostgreSQL daemons may run meanwhile (a path one of
//! them recorded first keeps its row: the live-path index decides).

use crate::error::Result;
use crate::local::ignore::IgnoreSet;
use crate::local::scanner::scan_folder;
use crate::model::Folder;
use crate::store::{Observed, Store};

use super::intake::unmapped_target;

/// The reason recorded with every file a baseline skips.
pub const BASELINE_REASON: &str = "baseline: present when `docsync baseline` ran";

/// What a baseline did in one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaselineCount {
    /// The folder's key (its root).
    pub folder: String,
    /// Files found in it (ignored ones left out).
    pub found: usize,
    /// Of those, recorded `skipped` now (the others already had a row).
    pub skipped: usize,
    /// Whether the folder exists (a missing one is reported, not created).
    pub exists: bool,
    /// Parts of the folder that could not be read (their files are not recorded).
    pub errors: Vec<String>,
}

/// Record every file of `folders` without a row as `skipped`, one transaction
/// per folder (SQLite; on PostgreSQL the caller records each folder's
/// [`folder_files`] with `PgStore::record_skipped`).
pub fn baseline(store: &mut Store, folders: &[Folder]) -> Result<Vec<BaselineCount>> {
    let mut out = Vec::with_capacity(folders.len());
    for folder in folders {
        let (mut count, observed) = folder_files(folder)?;
        if count.exists {
            count.skipped = store.record_skipped(&count.folder, &observed, BASELINE_REASON)?;
        }
        out.push(count);
    }
    Ok(out)
}

/// What `folder` holds now, as a baseline records it (its count with nothing
/// recorded yet): every file not ignored, from one scan; nothing is read.
pub fn folder_files(folder: &Folder) -> Result<(BaselineCount, Vec<Observed>)> {
    let mut count = BaselineCount {
        folder: folder.key(),
        exists: folder.path.is_dir(),
        ..BaselineCount::default()
    };
    if !count.exists {
        return Ok((count, Vec::new()));
    }
    let scan = scan_folder(&folder.path, &IgnoreSet::for_folder(folder)?)?;
    let observed: Vec<Observed> = scan
        .files
        .iter()
        .map(|f| Observed {
            path: f.rel_bytes(),
            size: f.stat.size,
            mtime_ns: f.stat.mtime_ns,
            target: folder
                .target_for(&f.rel)
                .map_or_else(|_| unmapped_target(), |t| t.key()),
        })
        .collect();
    count.found = observed.len();
    count.errors = scan.errors;
    Ok((count, observed))
}

#[cfg(test)]
pub(crate) mod tests;
