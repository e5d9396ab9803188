//! What the intake records for the files a scan or hints saw: each file's
//! verdict from its stat and path alone (too old, unmapped, over the limit,
//! complete when seen), recorded with the observations in one store call.

use std::collections::HashSet;
use std::path::PathBuf;

use super::IntakeStore;
use crate::error::Result;
use crate::local::scanner::{Scan, ScannedFile};
use crate::local::validate::size_problem;
use crate::model::{Folder, TargetKey, TargetKind};
use crate::store::{Observed, Reconciled, ScanRecorded, ScanVerdict, Store};

/// The target recorded for a file whose path maps to none (its row is not sent:
/// `invalid` with the reason, or `skipped`).
pub fn unmapped_target() -> TargetKey {
    TargetKey {
        kind: TargetKind::MoovFiles,
        account: String::new(),
        purpose: String::new(),
    }
}

/// The summary of [`reconcile_folder`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileSummary {
    pub reconciled: Reconciled,
    /// Rows made `invalid` by this call: their path maps to no target, or the file
    /// is over the target's size limit.
    pub invalid: Vec<i64>,
    /// New rows made `skipped` by this call: older than the folder's `max_age`.
    pub skipped: Vec<i64>,
    /// Every file of the scan whose path maps to no target (invalid now or
    /// before), with the reason: its account folder names no Moov account, or it
    /// is outside the `<accountID>/<filePurpose>/` layout.
    pub unmapped: Vec<(PathBuf, String)>,
}

impl ReconcileSummary {
    /// Add what recording another part of the same scan did.
    pub(super) fn absorb(&mut self, part: ReconcileSummary) {
        let r = part.reconciled;
        self.reconciled.observations.extend(r.observations);
        self.reconciled.deleted.extend(r.deleted);
        self.invalid.extend(part.invalid);
        self.skipped.extend(part.skipped);
        self.unmapped.extend(part.unmapped);
    }

    /// The rows that stopped here (invalid or skipped): no quiet window. A
    /// set, so asking about every file of a part costs one lookup each, not a
    /// pass over the part's invalid rows (a folder laid out wrong is invalid
    /// file after file).
    pub fn stopped(&self) -> HashSet<i64> {
        self.invalid.iter().chain(&self.skipped).copied().collect()
    }
}

/// What to record for each file of a scan of `folder`: the observations,
/// each file's verdict (too old for the folder's `max_age`: `skipped` from
/// the stat alone, never read; a path that maps to no target or a file over
/// the target's size limit: `invalid`; `complete[i]`: the file was complete
/// when seen), and the files that map to no target.
fn scan_verdicts(
    folder: &Folder,
    files: &[ScannedFile],
    complete: &[bool],
) -> (Vec<Observed>, Vec<ScanVerdict>, Vec<(PathBuf, String)>) {
    let mut observed = Vec::with_capacity(files.len());
    let mut verdicts = Vec::with_capacity(files.len());
    let mut unmapped = Vec::new();
    let now = std::time::SystemTime::now();
    for (i, f) in files.iter().enumerate() {
        let too_old = folder
            .max_age
            .as_ref()
            .filter(|m| m.skips(f.stat.mtime_ns, now))
            .map(|m| m.reason(f.stat.mtime_ns));
        // metadata before bytes: a file over the target's limit is refused
        // when first seen, never hashed
        let (target, problem) = match folder.target_for(&f.rel) {
            Ok(t) => (t.key(), size_problem(&t, f.stat.size)),
            Err(reason) => {
                unmapped.push((f.rel.clone(), reason.clone()));
                (unmapped_target(), Some(reason))
            }
        };
        observed.push(Observed {
            path: f.rel_bytes(),
            size: f.stat.size,
            mtime_ns: f.stat.mtime_ns,
            target,
        });
        verdicts.push(ScanVerdict {
            too_old,
            problem,
            held_still: complete.get(i).copied().unwrap_or(false),
        });
    }
    (observed, verdicts, unmapped)
}

fn summary(recorded: ScanRecorded, unmapped: Vec<(PathBuf, String)>) -> ReconcileSummary {
    ReconcileSummary {
        reconciled: recorded.reconciled,
        invalid: recorded.invalid,
        skipped: recorded.skipped,
        unmapped,
    }
}

/// Record one scan of `folder` in the store (one atomic call), then mark new
/// files older than the folder's `max_age` `skipped`, and files whose path
/// maps to no target `invalid`, each with the reason (`scan_verdicts`).
pub async fn record_scan<S: IntakeStore>(
    store: &mut S,
    folder: &Folder,
    scan: &Scan,
) -> Result<ReconcileSummary> {
    record_files(store, folder, &scan.files, scan.complete, &[]).await
}

/// [`record_scan`] for some files of a scan (`complete`: all of them);
/// `complete_when_seen[i]`: `files[i]` waits no quiet window.
pub(super) async fn record_files<S: IntakeStore>(
    store: &mut S,
    folder: &Folder,
    files: &[ScannedFile],
    complete: bool,
    complete_when_seen: &[bool],
) -> Result<ReconcileSummary> {
    let (observed, verdicts, unmapped) = scan_verdicts(folder, files, complete_when_seen);
    let recorded = store
        .reconcile(folder.key(), observed, complete, verdicts)
        .await?;
    Ok(summary(recorded, unmapped))
}

/// [`record_scan`] on a [`Store`] itself: the same verdicts and the same
/// store call, for the dry run (an in-memory copy) and the tests.
pub fn reconcile_folder(
    store: &mut Store,
    folder: &Folder,
    scan: &Scan,
) -> Result<ReconcileSummary> {
    let (observed, verdicts, unmapped) = scan_verdicts(folder, &scan.files, &[]);
    let recorded = store.reconcile(&folder.key(), &observed, scan.complete, &verdicts)?;
    Ok(summary(recorded, unmapped))
}
