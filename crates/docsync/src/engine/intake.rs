//! Intake: from hints and scans to `stable` rows. The first stage: it records
//! what [`crate::local`] saw in the store and wakes the upload stage when files
//! held still for the quiet window.
//!
//! [`run`] owns one [`Intake`] and calls it with the store:
//!
//! - [`Intake::on_hints`] for each run of waiting watcher hints, coalesced per path
//!   (a stat per path, all in one store call; [`Intake::on_hint`] for a single one);
//! - [`Intake::apply_scan`] after walking a folder with
//!   [`crate::local::scanner::scan_folder`] *outside* the store lock (on start, on
//!   a timer, and when a hint asks for a rescan);
//! - [`Intake::promote_ready`] when [`Intake::next_deadline`] passes;
//! - [`Intake::track_discovered`] when the upload stage put rows back to
//!   `discovered` (their file changed after it held still).
//!
//! Every method takes `now`, so tests (and `tokio::time::pause`, via
//! `tokio::time::Instant::into_std`) drive the quiet window without sleeping.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{info, warn};

use crate::error::Result;
use crate::local::ignore::IgnoreSet;
use crate::local::scanner::{relative_to_root, FileStat, Scan, ScannedFile};
use crate::local::stability::StabilityTracker;
use crate::local::validate::size_problem;
use crate::local::watcher::FolderHint;
use crate::model::{text, Folder, TargetKey, TargetKind};
use crate::store::{Change, FileRow, Observation, Observed, Reconciled, State, Store};

mod task;
pub use task::{run, scan, Hints};

/// A stability-tracker key: folder index and relative path bytes.
pub type FileKey = (usize, Vec<u8>);

#[derive(Debug, Clone)]
struct Watched {
    folder: Folder,
    key: String,
    ignore: IgnoreSet,
    /// What the last scan skipped (symlinks out of the root, loops, sockets...), so
    /// each is logged once, not on every scan.
    skipped: HashSet<PathBuf>,
    /// The reasons already logged why a path maps to no target. Every file of an
    /// account folder that names no Moov account has the same reason: the folder
    /// is reported once, not once per file and scan.
    reported: HashSet<String>,
}

impl Watched {
    /// Log each reason in `problems` the first time it is met.
    fn report(&mut self, problems: &[(PathBuf, String)]) {
        for (rel, reason) in problems {
            if self.reported.contains(reason) {
                continue;
            }
            warn!(
                folder = %self.key.escape_debug(),
                path = %rel.to_string_lossy().escape_debug(),
                "not synced (nothing in it is sent): {reason}"
            );
            self.reported.insert(reason.clone());
        }
    }
}

/// What the caller should do after a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followup {
    Nothing,
    /// Walk folder `n` and call [`Intake::apply_scan`].
    Rescan(usize),
}

/// Hints and scans in, `discovered`/`stable`/`deleted` rows out.
#[derive(Debug)]
pub struct Intake {
    folders: Vec<Watched>,
    tracker: StabilityTracker<FileKey>,
    quiet: std::time::Duration,
}

impl Intake {
    /// One entry per configured folder, in configuration order (hint folder indexes).
    pub fn new(folders: &[Folder], quiet: std::time::Duration) -> Result<Intake> {
        let folders = folders
            .iter()
            .map(|f| {
                Ok(Watched {
                    key: f.key(),
                    ignore: IgnoreSet::for_folder(f)?,
                    folder: f.clone(),
                    skipped: HashSet::new(),
                    reported: HashSet::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Intake {
            folders,
            tracker: StabilityTracker::new(quiet),
            quiet,
        })
    }

    /// Folder `n` and its compiled ignore set (for walking it).
    pub fn folder(&self, n: usize) -> Option<(&Folder, &IgnoreSet)> {
        self.folders.get(n).map(|w| (&w.folder, &w.ignore))
    }

    /// How many files wait for their quiet window.
    pub fn waiting(&self) -> usize {
        self.tracker.len()
    }

    /// When [`Intake::promote_ready`] should run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.tracker.next_deadline()
    }

    /// Record a walk of folder `n` (one transaction) and start the quiet window of
    /// every file that is (again) `discovered`.
    pub fn apply_scan(
        &mut self,
        store: &mut Store,
        n: usize,
        scan: &Scan,
        now: Instant,
    ) -> Result<ReconcileSummary> {
        let Some(w) = self.folders.get_mut(n) else {
            return Ok(ReconcileSummary::default());
        };
        let skipped = scan.skipped.iter().map(|s| s.path.clone()).collect();
        for s in &scan.skipped {
            if !w.skipped.contains(&s.path) {
                info!(path = %text::lossless_path(&s.path), reason = %s.reason, "not synced");
            }
        }
        w.skipped = skipped;
        let summary = reconcile_folder(store, &w.folder, scan)?;
        w.report(&summary.unmapped);
        for (file, obs) in scan.files.iter().zip(&summary.reconciled.observations) {
            if waits_for_window(obs) && !summary.stopped(obs.id()) {
                let key = (n, file.rel_bytes());
                track(&mut self.tracker, self.quiet, key, &file.stat, false, now);
            }
        }
        Ok(summary)
    }

    /// Apply one hint: stat the path and record what is there.
    pub fn on_hint(
        &mut self,
        store: &mut Store,
        hint: &FolderHint,
        now: Instant,
    ) -> Result<Followup> {
        match hint.hint.file() {
            Some((path, closed)) => self.on_path(store, hint.folder, path, closed, now),
            None => Ok(Followup::Rescan(hint.folder)),
        }
    }

    /// Apply a run of hints, coalesced per path: each path is looked at once,
    /// with a fresh stat, as its last hint says (a writer's close counts only if
    /// nothing came after it, so a file opened again is not taken as complete).
    /// Returns the folders to rescan, each once, and the first error: a failing
    /// path does not stop the others.
    pub fn on_hints(
        &mut self,
        store: &mut Store,
        hints: &[FolderHint],
        now: Instant,
    ) -> (Vec<usize>, Result<()>) {
        let mut rescan: Vec<usize> = Vec::new();
        let mut paths: Vec<(usize, &Path, bool)> = Vec::with_capacity(hints.len());
        let mut seen: HashMap<(usize, &Path), usize> = HashMap::with_capacity(hints.len());
        for hint in hints {
            let Some((path, closed)) = hint.hint.file() else {
                if !rescan.contains(&hint.folder) {
                    rescan.push(hint.folder);
                }
                continue;
            };
            match seen.entry((hint.folder, path)) {
                Entry::Occupied(at) => paths[*at.get()].2 = closed,
                Entry::Vacant(slot) => {
                    slot.insert(paths.len());
                    paths.push((hint.folder, path, closed));
                }
            }
        }
        let mut first_error = None;
        for (n, path, closed) in paths {
            match self.on_path(store, n, path, closed, now) {
                Ok(Followup::Rescan(n)) if !rescan.contains(&n) => rescan.push(n),
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        (rescan, first_error.map_or(Ok(()), Err))
    }

    /// Stat `path` (in folder `n`) and record what is there; `closed`: its
    /// writer closed it.
    fn on_path(
        &mut self,
        store: &mut Store,
        n: usize,
        path: &Path,
        closed: bool,
        now: Instant,
    ) -> Result<Followup> {
        let Some(w) = self.folders.get(n) else {
            return Ok(Followup::Nothing);
        };
        let Some(rel) = relative_to_root(&w.folder.path, path, &w.ignore) else {
            return Ok(Followup::Nothing);
        };
        let key = (
            n,
            std::os::unix::ffi::OsStrExt::as_bytes(rel.as_os_str()).to_vec(),
        );
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {
                let stat = FileStat::from_metadata(&meta);
                let file = ScannedFile {
                    rel,
                    abs: path.to_owned(),
                    stat,
                };
                let scan = Scan {
                    files: vec![file],
                    complete: false,
                    ..Scan::default()
                };
                let summary = reconcile_folder(store, &w.folder, &scan)?;
                if let Some(w) = self.folders.get_mut(n) {
                    w.report(&summary.unmapped);
                }
                let Some(obs) = summary.reconciled.observations.first() else {
                    return Ok(Followup::Nothing);
                };
                if waits_for_window(obs) && !summary.stopped(obs.id()) {
                    track(&mut self.tracker, self.quiet, key, &stat, closed, now);
                }
                Ok(Followup::Nothing)
            }
            // directories are walked by the watcher; sockets and the like are skipped
            Ok(_) => Ok(Followup::Nothing),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.tracker.forget(&key);
                let deleted = store.mark_deleted(&w.key, &key.1, "removed from disk")?;
                if deleted.is_none() && store.find_live(&w.key, &key.1)?.is_none() {
                    // no row for it: maybe a directory went away with files inside
                    return Ok(Followup::Rescan(n));
                }
                Ok(Followup::Nothing)
            }
            // unreadable for now: the next scan looks again
            Err(_) => Ok(Followup::Rescan(n)),
        }
    }

    /// Start the quiet window again for `discovered` rows that do not wait for
    /// one (the upload stage found their file changed after it held still):
    /// each is stat'ed and recorded afresh, as a watcher hint would.
    pub fn track_discovered(&mut self, store: &mut Store, now: Instant) -> Result<usize> {
        let mut tracked = 0;
        for row in store.discovered(u32::MAX)? {
            let Some(n) = self.folders.iter().position(|w| w.key == row.folder) else {
                continue;
            };
            if self.tracker.contains(&(n, row.path.clone())) {
                continue;
            }
            let abs = self.folders[n].folder.file_path(&row.path);
            self.on_path(store, n, &abs, false, now)?;
            tracked += 1;
        }
        Ok(tracked)
    }

    /// Promote every file whose quiet window has passed at `now`, after a fresh stat
    /// confirms it (a changed file restarts its window, a vanished one is deleted).
    pub fn promote_ready(&mut self, store: &mut Store, now: Instant) -> Result<Vec<FileRow>> {
        let mut promoted = Vec::new();
        for ready in self.tracker.take_ready(now) {
            let (n, rel) = ready.key;
            let Some(w) = self.folders.get(n) else {
                continue;
            };
            let abs = w.folder.path.join(bytes_path(&rel));
            match FileStat::of_path(&abs) {
                Ok(stat) if stat.size == ready.size && stat.mtime_ns == ready.mtime_ns => {
                    let reason = "size and modification time held still (or the writer closed it)";
                    if let Some(row) =
                        promote_stable(store, &w.key, &rel, stat.size, stat.mtime_ns, reason)?
                    {
                        promoted.push(row);
                    }
                }
                Ok(_) => {
                    // changed since: record the new size and restart the window
                    self.on_path(store, n, &abs, false, now)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    store.mark_deleted(&w.key, &rel, "removed from disk")?;
                }
                Err(_) => {}
            }
        }
        Ok(promoted)
    }
}

/// Start (or go on with) a file's quiet window. A file whose writer closed
/// it, or whose mtime and ctime are already older than the window when it is
/// seen (it was written before the daemon looked), is complete at once: it
/// is hashed and re-stat'ed next, and the re-stat still catches a writer.
fn track(
    tracker: &mut StabilityTracker<FileKey>,
    quiet: std::time::Duration,
    key: FileKey,
    stat: &FileStat,
    closed: bool,
    now: Instant,
) {
    if closed || stat.quiet_for(quiet, std::time::SystemTime::now()) {
        tracker.close_write(key, stat.size, stat.mtime_ns, now);
    } else {
        tracker.observe(key, stat.size, stat.mtime_ns, now);
    }
}

fn waits_for_window(obs: &Observation) -> bool {
    matches!(
        obs,
        Observation::New { .. }
            | Observation::Changed { .. }
            | Observation::Superseded { .. }
            | Observation::Unchanged {
                state: State::Discovered,
                ..
            }
    )
}

fn bytes_path(bytes: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(bytes))
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
    /// Whether row `id` stopped here (invalid or skipped): no quiet window.
    pub fn stopped(&self, id: i64) -> bool {
        self.invalid.contains(&id) || self.skipped.contains(&id)
    }
}

/// Record one scan of `folder` in the store (one transaction for the batch), then
/// mark new files older than the folder's `max_age` `skipped` (from the stat
/// alone: never read), and files whose path maps to no target `invalid`, each
/// with the reason.
pub fn reconcile_folder(
    store: &mut Store,
    folder: &Folder,
    scan: &Scan,
) -> Result<ReconcileSummary> {
    let mut observed = Vec::with_capacity(scan.files.len());
    let mut problems = Vec::with_capacity(scan.files.len());
    let mut too_old = Vec::with_capacity(scan.files.len());
    let mut unmapped = Vec::new();
    let now = std::time::SystemTime::now();
    for f in &scan.files {
        too_old.push(
            folder
                .max_age
                .as_ref()
                .filter(|m| m.skips(f.stat.mtime_ns, now))
                .map(|m| m.reason(f.stat.mtime_ns)),
        );
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
        problems.push(problem);
    }
    let reconciled = store.observe_batch(&folder.key(), &observed, scan.complete)?;
    let mut invalid = Vec::new();
    let mut skipped = Vec::new();
    for ((obs, problem), too_old) in reconciled.observations.iter().zip(problems).zip(too_old) {
        // only a file seen for the first time: one docsync already knows keeps
        // its row (a skipped one stays skipped, never read again)
        if let (Observation::New { id }, Some(reason)) = (obs, too_old) {
            store.transition(
                *id,
                State::Discovered,
                State::Skipped,
                &Change::because(reason),
            )?;
            skipped.push(*id);
            continue;
        }
        let Some(reason) = problem else { continue };
        let fresh = matches!(
            obs,
            Observation::New { .. } | Observation::Changed { .. } | Observation::Superseded { .. }
        ) || matches!(
            obs,
            Observation::Unchanged {
                state: State::Discovered,
                ..
            }
        );
        if fresh {
            store.transition(
                obs.id(),
                State::Discovered,
                State::Invalid,
                &Change::because(reason),
            )?;
            invalid.push(obs.id());
        }
    }
    Ok(ReconcileSummary {
        reconciled,
        invalid,
        skipped,
        unmapped,
    })
}

#[cfg(test)]
mod tests;
