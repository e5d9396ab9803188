//! Walking a folder and deciding when a file is complete.
//!
//! [`scan_folder`] walks a root and returns every regular file with its size and
//! mtime, skipping ignored names. Symlinks are never followed out of the root. The
//! real tree is walked first; then symlinks inside the root are resolved: one to a
//! file or directory the walk already reports at its real path is skipped (no
//! duplicates), one to an ignored place (a hidden directory, say) is followed.
//! Directories are tracked by device and inode, so loops end. Entries are read in
//! name order, so the result is deterministic. [`reconcile_folder`] hands one scan to the store in one transaction: new and
//! changed files become `discovered`, vanished ones `deleted` (only after a complete
//! scan: a directory that could not be read deletes nothing).
//!
//! [`StabilityTracker`] decides when a `discovered` file is `stable`: its size and
//! mtime held still for the quiet window, or a close_write was seen. It takes the
//! current instant as an argument, so tests drive it without sleeping.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::hash::Hash;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{Folder, TargetKind};
use crate::error::{Error, Result};
use crate::ignore::IgnoreSet;
use crate::store::{Change, Observation, Observed, Reconciled, State, Store, TargetKey};

/// What a stat says about a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub dev: u64,
    pub ino: u64,
}

impl FileStat {
    pub fn from_metadata(meta: &Metadata) -> FileStat {
        FileStat {
            size: meta.len(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Stat `path`, following symlinks.
    pub fn of_path(path: &Path) -> std::io::Result<FileStat> {
        std::fs::metadata(path).map(|m| FileStat::from_metadata(&m))
    }

    /// Same size, mtime and inode: the content is taken to be the same.
    pub fn same_content_as(&self, other: &FileStat) -> bool {
        self == other
    }
}

/// A regular file found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// Relative to the folder root.
    pub rel: PathBuf,
    pub abs: PathBuf,
    pub stat: FileStat,
}

impl ScannedFile {
    /// The relative path as raw bytes (what the store keeps).
    pub fn rel_bytes(&self) -> Vec<u8> {
        self.rel.as_os_str().as_bytes().to_vec()
    }
}

/// Something the scan did not descend into or report, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// The result of one walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub files: Vec<ScannedFile>,
    pub skipped: Vec<Skipped>,
    /// Directories or files that could not be read (with the error).
    pub errors: Vec<String>,
    /// The whole tree was read: files not seen really are gone.
    pub complete: bool,
}

/// Walk `root` completely.
pub fn scan_folder(root: &Path, ignore: &IgnoreSet) -> Result<Scan> {
    scan_subtree(root, Path::new(""), ignore).map(|mut scan| {
        scan.complete = scan.errors.is_empty();
        scan
    })
}

/// Walk only `sub` (relative to `root`), e.g. a directory that just appeared.
/// The result is never `complete`.
pub fn scan_subtree(root: &Path, sub: &Path, ignore: &IgnoreSet) -> Result<Scan> {
    let canon_root =
        std::fs::canonicalize(root).map_err(|e| Error::io("opening folder", root, e))?;
    let mut scan = Scan::default();
    let mut visited: HashSet<(u64, u64)> = HashSet::new();
    let start = root.join(sub);
    let meta = std::fs::metadata(&start).map_err(|e| Error::io("reading", &start, e))?;
    if !meta.is_dir() {
        return Err(Error::io(
            "scanning",
            &start,
            std::io::Error::other("not a directory"),
        ));
    }
    visited.insert((meta.dev(), meta.ino()));
    let mut stack: Vec<PathBuf> = vec![sub.to_owned()];
    // symlinks wait until every real directory has been walked, so that a file or
    // directory reachable both ways is reported once, at its real path
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    loop {
        while let Some(rel_dir) = stack.pop() {
            walk_dir(
                root,
                &rel_dir,
                ignore,
                &mut visited,
                &mut stack,
                &mut links,
                &mut scan,
            );
        }
        if links.is_empty() {
            break;
        }
        for (rel, abs) in std::mem::take(&mut links) {
            follow_link(
                &canon_root,
                rel,
                abs,
                ignore,
                &mut visited,
                &mut stack,
                &mut scan,
            );
        }
    }
    scan.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(scan)
}

/// Read one real directory: report files, queue subdirectories and symlinks.
fn walk_dir(
    root: &Path,
    rel_dir: &Path,
    ignore: &IgnoreSet,
    visited: &mut HashSet<(u64, u64)>,
    stack: &mut Vec<PathBuf>,
    links: &mut Vec<(PathBuf, PathBuf)>,
    scan: &mut Scan,
) {
    let abs_dir = root.join(rel_dir);
    let read = std::fs::read_dir(&abs_dir).and_then(|rd| rd.collect::<std::io::Result<Vec<_>>>());
    let mut entries = match read {
        Ok(entries) => entries,
        Err(e) => {
            scan.errors.push(format!(
                "reading directory {} failed: {e}",
                abs_dir.display()
            ));
            return;
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let rel = rel_dir.join(&name);
        let abs = entry.path();
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) => {
                scan.errors
                    .push(format!("reading {} failed: {e}", abs.display()));
                continue;
            }
        };
        if file_type.is_symlink() {
            if !ignore.is_ignored_name(&name, false) && !ignore.is_ignored(&rel) {
                links.push((rel, abs));
            }
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            // vanished between readdir and stat: simply not there
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                scan.errors
                    .push(format!("reading {} failed: {e}", abs.display()));
                continue;
            }
        };
        if ignore.is_ignored_name(&name, meta.is_dir()) || ignore.is_ignored(&rel) {
            continue;
        }
        add_entry(
            rel,
            abs,
            &meta,
            visited,
            stack,
            scan,
            "directory already visited (a bind mount loop)",
        );
    }
}

/// Resolve a symlink found while walking: never out of the root, and not to what
/// the walk reports at its real path anyway.
fn follow_link(
    canon_root: &Path,
    rel: PathBuf,
    abs: PathBuf,
    ignore: &IgnoreSet,
    visited: &mut HashSet<(u64, u64)>,
    stack: &mut Vec<PathBuf>,
    scan: &mut Scan,
) {
    let target = match std::fs::canonicalize(&abs) {
        Ok(t) => t,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return skip(scan, abs, "symlink loop (it leads back to itself)")
        }
        Err(_) => return skip(scan, abs, "dangling symlink"),
    };
    let Ok(target_rel) = target.strip_prefix(canon_root) else {
        return skip(scan, abs, "symlink points outside the folder");
    };
    let meta = match std::fs::metadata(&abs) {
        Ok(m) => m,
        Err(e) => {
            scan.errors
                .push(format!("reading {} failed: {e}", abs.display()));
            return;
        }
    };
    if meta.is_file() && !ignore.is_ignored(target_rel) {
        return skip(
            scan,
            abs,
            "symlink to a file in the folder, synced at its real path",
        );
    }
    add_entry(
        rel,
        abs,
        &meta,
        visited,
        stack,
        scan,
        "symlink to a directory already walked (synced at its real path, or a loop)",
    );
}

fn add_entry(
    rel: PathBuf,
    abs: PathBuf,
    meta: &Metadata,
    visited: &mut HashSet<(u64, u64)>,
    stack: &mut Vec<PathBuf>,
    scan: &mut Scan,
    seen_reason: &str,
) {
    if meta.is_dir() {
        if visited.insert((meta.dev(), meta.ino())) {
            stack.push(rel);
        } else {
            skip(scan, abs, seen_reason);
        }
    } else if meta.is_file() {
        scan.files.push(ScannedFile {
            rel,
            abs,
            stat: FileStat::from_metadata(meta),
        });
    } else {
        skip(scan, abs, "not a regular file");
    }
}

fn skip(scan: &mut Scan, path: PathBuf, reason: &str) {
    scan.skipped.push(Skipped {
        path,
        reason: reason.to_owned(),
    });
}

/// The relative path of `abs` inside `root`, if it is inside and not ignored.
pub fn relative_to_root(root: &Path, abs: &Path, ignore: &IgnoreSet) -> Option<PathBuf> {
    let rel = abs.strip_prefix(root).ok()?;
    if rel.as_os_str().is_empty() || ignore.is_ignored(rel) {
        return None;
    }
    Some(rel.to_owned())
}

/// The summary of [`reconcile_folder`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileSummary {
    pub reconciled: Reconciled,
    /// Rows made `invalid` because their path maps to no target (convention layout).
    pub invalid: Vec<i64>,
}

/// Record one scan of `folder` in the store (one transaction for the batch), then
/// mark files whose path maps to no target `invalid` with the reason.
pub fn reconcile_folder(
    store: &mut Store,
    folder: &Folder,
    scan: &Scan,
) -> Result<ReconcileSummary> {
    let mut observed = Vec::with_capacity(scan.files.len());
    let mut problems = Vec::with_capacity(scan.files.len());
    for f in &scan.files {
        let (target, problem) = match folder.target_for(&f.rel) {
            Ok(t) => (t.key(), None),
            Err(reason) => (
                TargetKey {
                    kind: TargetKind::MoovFiles,
                    account: String::new(),
                    purpose: String::new(),
                },
                Some(reason),
            ),
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
    for (obs, problem) in reconciled.observations.iter().zip(problems) {
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
    })
}

/// A file that held still long enough (or was closed after writing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready<K> {
    pub key: K,
    pub size: u64,
    pub mtime_ns: i64,
}

#[derive(Debug, Clone)]
struct Tracked {
    size: u64,
    mtime_ns: i64,
    since: Instant,
    closed: bool,
}

/// Decides when files are complete. Keys are usually (folder, relative path).
#[derive(Debug, Clone)]
pub struct StabilityTracker<K> {
    quiet: Duration,
    entries: HashMap<K, Tracked>,
}

impl<K: Hash + Eq + Clone> StabilityTracker<K> {
    pub fn new(quiet: Duration) -> Self {
        StabilityTracker {
            quiet,
            entries: HashMap::new(),
        }
    }

    /// A stat of the file at `now`: a change restarts its quiet window.
    pub fn observe(&mut self, key: K, size: u64, mtime_ns: i64, now: Instant) {
        match self.entries.get_mut(&key) {
            Some(t) if t.size == size && t.mtime_ns == mtime_ns => {}
            Some(t) => {
                *t = Tracked {
                    size,
                    mtime_ns,
                    since: now,
                    closed: false,
                };
            }
            None => {
                self.entries.insert(
                    key,
                    Tracked {
                        size,
                        mtime_ns,
                        since: now,
                        closed: false,
                    },
                );
            }
        }
    }

    /// The writer closed the file; with a fresh stat (size, mtime) it is complete now.
    pub fn close_write(&mut self, key: K, size: u64, mtime_ns: i64, now: Instant) {
        self.observe(key.clone(), size, mtime_ns, now);
        if let Some(t) = self.entries.get_mut(&key) {
            t.closed = true;
        }
    }

    /// Stop tracking (deleted, or handled elsewhere).
    pub fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Take the files that are complete at `now`.
    pub fn take_ready(&mut self, now: Instant) -> Vec<Ready<K>> {
        let quiet = self.quiet;
        let ready: Vec<K> = self
            .entries
            .iter()
            .filter(|(_, t)| t.closed || now.saturating_duration_since(t.since) >= quiet)
            .map(|(k, _)| k.clone())
            .collect();
        ready
            .into_iter()
            .filter_map(|key| {
                self.entries.remove(&key).map(|t| Ready {
                    key,
                    size: t.size,
                    mtime_ns: t.mtime_ns,
                })
            })
            .collect()
    }

    /// When the next file becomes complete, if nothing changes (sleep until then):
    /// a closed file is complete at once, the others after the quiet window.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .map(|t| {
                if t.closed {
                    t.since
                } else {
                    t.since + self.quiet
                }
            })
            .min()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
