//! Intake: from hints and scans to `stable` rows. The first stage: it records
//! what [`crate::local`] saw in the store and wakes the upload stage when files
//! held still for the quiet window, or were complete when seen (a new one is
//! recorded `stable` at once: [`crate::store::ScanVerdict::stable_at_once`]).
//!
//! [`run`] owns one [`Intake`] and calls it with the store ([`IntakeStore`]:
//! the daemon's [`crate::store::StateStore`], whose intake writes commit relaxed):
//!
//! - [`Intake::on_hints`] for each run of waiting watcher hints, coalesced per path
//!   (a stat per path, the files of each folder in one store call;
//!   [`Intake::on_hint`] for a single one);
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
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::{info, warn};

use crate::error::Result;
use crate::local::ignore::IgnoreSet;
use crate::local::scanner::{relative_to_root, FileStat, Scan, ScannedFile, Skipped};
use crate::local::stability::StabilityTracker;
use crate::local::watcher::FolderHint;
use crate::model::{text, Folder};
use crate::store::{FileRow, Observation, Promotion, SeenIds, State};

mod records;
mod task;
mod verdicts;
pub use records::IntakeStore;
pub use task::{run, scan, Hints};
use verdicts::record_files;
pub use verdicts::{reconcile_folder, record_scan, unmapped_target, ReconcileSummary};

/// How many files of a walk are recorded in one store call (one
/// transaction): the walk is handed over, recorded and dropped in parts of
/// about this size, so a restart over a large folder holds one part at a time.
pub const SCAN_PART: usize = 4096;

/// The size of a walk's first part: parts start this small and double up to
/// [`SCAN_PART`], so the first files of a large walk are recorded (and, when
/// they held still, promoted) soon after it begins.
pub const FIRST_SCAN_PART: usize = 256;

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
    /// The wall clock a file's mtime and ctime are read against (how long
    /// it has been unchanged); the instants passed in drive the windows.
    wall_clock: fn() -> std::time::SystemTime,
    /// New rows recorded `stable` at once since [`Intake::take_new_stable`]
    /// last looked (their files were complete when seen).
    new_stable: usize,
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
            wall_clock: std::time::SystemTime::now,
            new_stable: 0,
        })
    }

    /// How many new rows were recorded `stable` at once (no quiet window:
    /// their files were complete when seen) since the last call: the upload
    /// stage is woken for them as for promoted ones.
    pub fn take_new_stable(&mut self) -> usize {
        std::mem::take(&mut self.new_stable)
    }

    /// The wall clock's time at `now` (an instant already past, or now).
    fn wall_at(&self, now: Instant) -> std::time::SystemTime {
        let wall = (self.wall_clock)();
        let ago = Instant::now().saturating_duration_since(now);
        wall.checked_sub(ago).unwrap_or(wall)
    }

    /// Read files' ages against `clock` instead of the system's.
    #[cfg(test)]
    fn with_wall_clock(mut self, clock: fn() -> std::time::SystemTime) -> Intake {
        self.wall_clock = clock;
        self
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

    /// Record a walk of folder `n` and start the quiet window of every file
    /// that is (again) `discovered`: its files in parts of [`SCAN_PART`]
    /// ([`Intake::apply_scan_part`]), then, if the walk was complete, the
    /// vanished files ([`Intake::finish_scan`]).
    pub async fn apply_scan<S: IntakeStore>(
        &mut self,
        store: &mut S,
        n: usize,
        scan: &Scan,
        now: Instant,
    ) -> Result<ReconcileSummary> {
        if self.folders.get(n).is_none() {
            return Ok(ReconcileSummary::default());
        }
        let mut seen = SeenIds::new();
        let mut summary = ReconcileSummary::default();
        for part in scan.files.chunks(SCAN_PART) {
            let recorded = self.apply_scan_part(store, n, part, &mut seen, now).await?;
            summary.absorb(recorded);
        }
        summary.reconciled.deleted = self
            .finish_scan(store, n, &scan.skipped, scan.complete, seen)
            .await?;
        Ok(summary)
    }

    /// Record part of a walk of folder `n` (one transaction) and start the
    /// quiet window of every file that is (again) `discovered`; the ids of
    /// the live rows of its files are added to `seen`.
    pub async fn apply_scan_part<S: IntakeStore>(
        &mut self,
        store: &mut S,
        n: usize,
        files: &[ScannedFile],
        seen: &mut SeenIds,
        now: Instant,
    ) -> Result<ReconcileSummary> {
        let wall = self.wall_at(now);
        let quiet = self.quiet;
        let Some(w) = self.folders.get_mut(n) else {
            return Ok(ReconcileSummary::default());
        };
        if files.is_empty() {
            return Ok(ReconcileSummary::default());
        }
        let complete: Vec<bool> = files
            .iter()
            .map(|f| complete_when_seen(&f.stat, false, quiet, wall))
            .collect();
        let summary = record_files(store, &w.folder, files, false, &complete).await?;
        w.report(&summary.unmapped);
        let stopped = summary.stopped();
        for (file, obs) in files.iter().zip(&summary.reconciled.observations) {
            seen.insert(obs.id());
            self.after_recording(n, file, false, obs, &stopped, (now, wall));
        }
        Ok(summary)
    }

    /// The end of a walk of folder `n` recorded in parts: log what it skipped
    /// (each once), and if it was `complete`, mark the live rows it did not
    /// see (not in `seen`) `deleted`; their ids.
    pub async fn finish_scan<S: IntakeStore>(
        &mut self,
        store: &mut S,
        n: usize,
        skipped: &[Skipped],
        complete: bool,
        seen: SeenIds,
    ) -> Result<Vec<i64>> {
        let Some(w) = self.folders.get_mut(n) else {
            return Ok(Vec::new());
        };
        let now_skipped = skipped.iter().map(|s| s.path.clone()).collect();
        for s in skipped {
            if !w.skipped.contains(&s.path) {
                info!(path = %text::lossless_path(&s.path), reason = %s.reason, "not synced");
            }
        }
        w.skipped = now_skipped;
        if !complete {
            return Ok(Vec::new());
        }
        store.sweep_vanished(w.key.clone(), seen).await
    }

    /// Apply one hint: stat the path and record what is there.
    pub async fn on_hint<S: IntakeStore>(
        &mut self,
        store: &mut S,
        hint: &FolderHint,
        now: Instant,
    ) -> Result<Followup> {
        match hint.hint.file() {
            Some((path, closed)) => {
                let (rescan, looked) = self
                    .look_at(store, vec![(hint.folder, path.to_owned(), closed)], now)
                    .await;
                looked?;
                Ok(rescan
                    .first()
                    .map_or(Followup::Nothing, |n| Followup::Rescan(*n)))
            }
            None => Ok(Followup::Rescan(hint.folder)),
        }
    }

    /// Apply a run of hints, coalesced per path: each path is looked at once,
    /// with a fresh stat, as its last hint says (a writer's close counts only if
    /// nothing came after it, so a file opened again is not taken as complete).
    /// Returns the folders to rescan, each once, and the first error: a failing
    /// path (or folder's store call) does not stop the others.
    pub async fn on_hints<S: IntakeStore>(
        &mut self,
        store: &mut S,
        hints: &[FolderHint],
        now: Instant,
    ) -> (Vec<usize>, Result<()>) {
        let mut rescan: Vec<usize> = Vec::new();
        let mut paths: Vec<(usize, PathBuf, bool)> = Vec::with_capacity(hints.len());
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
                    paths.push((hint.folder, path.to_owned(), closed));
                }
            }
        }
        let (more, looked) = self.look_at(store, paths, now).await;
        for n in more {
            if !rescan.contains(&n) {
                rescan.push(n);
            }
        }
        (rescan, looked)
    }

    /// Stat each of `paths` (folder, path, whether its writer closed it) and
    /// record what is there: the files of each folder in one store call, a
    /// vanished file's row `deleted`. Returns the folders to rescan and the
    /// first error (a failing folder or path does not stop the others).
    async fn look_at<S: IntakeStore>(
        &mut self,
        store: &mut S,
        paths: Vec<(usize, PathBuf, bool)>,
        now: Instant,
    ) -> (Vec<usize>, Result<()>) {
        let mut rescan = Vec::new();
        let mut first_error = None;
        let mut files: BTreeMap<usize, Vec<(ScannedFile, bool)>> = BTreeMap::new();
        for (n, path, closed) in paths {
            let Some(w) = self.folders.get(n) else {
                continue;
            };
            let Some(rel) = relative_to_root(&w.folder.path, &path, &w.ignore) else {
                continue;
            };
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => {
                    let stat = FileStat::from_metadata(&meta);
                    let file = ScannedFile {
                        rel,
                        abs: path,
                        stat,
                    };
                    files.entry(n).or_default().push((file, closed));
                }
                // directories are walked by the watcher; sockets and the like are skipped
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = (n, rel.as_os_str().as_bytes().to_vec());
                    self.tracker.forget(&key);
                    match store
                        .mark_gone(w.key.clone(), key.1, "removed from disk")
                        .await
                    {
                        // no row for it: maybe a directory went away with files inside
                        Ok(true) => rescan.push(n),
                        Ok(false) => {}
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                // unreadable for now: the next scan looks again
                Err(_) => rescan.push(n),
            }
        }
        for (n, seen) in files {
            if let Err(e) = self.record_seen(store, n, seen, now).await {
                first_error.get_or_insert(e);
            }
        }
        rescan.sort_unstable();
        rescan.dedup();
        (rescan, first_error.map_or(Ok(()), Err))
    }

    /// Record files of folder `n` seen by hints (not a whole walk) and start
    /// the quiet window of those that wait for one.
    async fn record_seen<S: IntakeStore>(
        &mut self,
        store: &mut S,
        n: usize,
        seen: Vec<(ScannedFile, bool)>,
        now: Instant,
    ) -> Result<()> {
        let wall = self.wall_at(now);
        let quiet = self.quiet;
        let Some(w) = self.folders.get_mut(n) else {
            return Ok(());
        };
        let (files, closed): (Vec<ScannedFile>, Vec<bool>) = seen.into_iter().unzip();
        let complete: Vec<bool> = files
            .iter()
            .zip(&closed)
            .map(|(f, &closed)| complete_when_seen(&f.stat, closed, quiet, wall))
            .collect();
        let summary = record_files(store, &w.folder, &files, false, &complete).await?;
        w.report(&summary.unmapped);
        let stopped = summary.stopped();
        let observed = summary.reconciled.observations.iter();
        for ((file, closed), obs) in files.iter().zip(closed).zip(observed) {
            self.after_recording(n, file, closed, obs, &stopped, (now, wall));
        }
        Ok(())
    }

    /// After `file` of folder `n` (`closed`: its writer's close was seen) was
    /// recorded as `obs`: counted if its row is `stable` already, else its
    /// quiet window started (or gone on with) if it waits for one and did not
    /// stop in the intake (`stopped`: [`ReconcileSummary::stopped`]).
    fn after_recording(
        &mut self,
        n: usize,
        file: &ScannedFile,
        closed: bool,
        obs: &Observation,
        stopped: &HashSet<i64>,
        at: (Instant, std::time::SystemTime),
    ) {
        if matches!(obs, Observation::NewStable { .. }) {
            self.new_stable += 1;
        } else if waits_for_window(obs) && !stopped.contains(&obs.id()) {
            let key = (n, file.rel_bytes());
            track(&mut self.tracker, self.quiet, key, &file.stat, closed, at);
        }
    }

    /// Start the quiet window again for `discovered` rows that do not wait for
    /// one (the upload stage found their file changed after it held still):
    /// each is stat'ed and recorded afresh, as a watcher hint would.
    pub async fn track_discovered<S: IntakeStore>(
        &mut self,
        store: &mut S,
        now: Instant,
    ) -> Result<usize> {
        let mut paths = Vec::new();
        for row in store.discovered().await? {
            let Some(n) = self.folders.iter().position(|w| w.key == row.folder) else {
                continue;
            };
            if self.tracker.contains(&(n, row.path.clone())) {
                continue;
            }
            paths.push((n, self.folders[n].folder.file_path(&row.path), false));
        }
        let tracked = paths.len();
        self.look_at(store, paths, now).await.1?;
        Ok(tracked)
    }

    /// Promote every file whose quiet window has passed at `now`, after a fresh stat
    /// confirms it (a changed file restarts its window, a vanished one is deleted).
    pub async fn promote_ready<S: IntakeStore>(
        &mut self,
        store: &mut S,
        now: Instant,
    ) -> Result<Vec<FileRow>> {
        let mut promotions = Vec::new();
        // what to track again if the store does not take the promotions
        let mut held = Vec::new();
        let mut changed = Vec::new();
        let mut gone = Vec::new();
        for ready in self.tracker.take_ready(now) {
            let (n, rel) = ready.key;
            let Some(w) = self.folders.get(n) else {
                continue;
            };
            let abs = w.folder.path.join(bytes_path(&rel));
            match FileStat::of_path(&abs) {
                Ok(stat) if stat.size == ready.size && stat.mtime_ns == ready.mtime_ns => {
                    held.push(((n, rel.clone()), stat.size, stat.mtime_ns));
                    promotions.push(Promotion {
                        folder: w.key.clone(),
                        path: rel,
                        size: stat.size,
                        mtime_ns: stat.mtime_ns,
                        reason: "size and modification time held still (or the writer closed it)",
                    });
                }
                // changed since: record the new size and restart the window
                Ok(_) => changed.push((n, abs, false)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    gone.push((w.key.clone(), rel));
                }
                Err(_) => {}
            }
        }
        let promoted = if promotions.is_empty() {
            Vec::new()
        } else {
            match store.promote_stable(promotions).await {
                Ok(promoted) => promoted,
                Err(e) => {
                    // the store did not answer (PostgreSQL restarting, a
                    // locked disk): the files wait another quiet window
                    // instead of staying `discovered` until the next scan
                    for (key, size, mtime_ns) in held {
                        self.tracker.observe(key, size, mtime_ns, now);
                    }
                    return Err(e);
                }
            }
        };
        if !changed.is_empty() {
            self.look_at(store, changed, now).await.1?;
        }
        for (folder, rel) in gone {
            store.mark_gone(folder, rel, "removed from disk").await?;
        }
        Ok(promoted)
    }
}

/// Whether a file is complete when it is seen: its writer closed it, or its
/// mtime and ctime are already older than the quiet window (it was written
/// before the daemon looked). Such a file waits no window: it is hashed and
/// re-stat'ed next, and the re-stat still catches a writer. A new one is
/// recorded `stable` at once ([`ScanVerdict::held_still`]).
fn complete_when_seen(
    stat: &FileStat,
    closed: bool,
    quiet: std::time::Duration,
    wall: std::time::SystemTime,
) -> bool {
    closed || stat.unchanged_for(wall) >= quiet
}

/// Start (or go on with) a file's quiet window; one complete when seen
/// ([`complete_when_seen`]) is ready at once. Any other file's window starts
/// when it last changed (its mtime or ctime), not when it was first seen: a
/// file found a while after its last write (in a directory walked when it
/// appeared, whose events were missed) waits only the rest of its window.
fn track(
    tracker: &mut StabilityTracker<FileKey>,
    quiet: std::time::Duration,
    key: FileKey,
    stat: &FileStat,
    closed: bool,
    (now, wall): (Instant, std::time::SystemTime),
) {
    if complete_when_seen(stat, closed, quiet, wall) {
        tracker.close_write(key, stat.size, stat.mtime_ns, now);
    } else {
        let since = now.checked_sub(stat.unchanged_for(wall)).unwrap_or(now);
        tracker.observe(key, stat.size, stat.mtime_ns, since);
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

#[cfg(test)]
mod tests;
