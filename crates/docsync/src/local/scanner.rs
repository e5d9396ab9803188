//! Walking a folder and deciding when a file is complete.
//!
//! [`scan_folder`] walks a root and returns every regular file with its size and
//! mtime, skipping ignored names. Symlinks are never followed out of the root. The
//! real tree is walked first; then symlinks inside the root are resolved: one to a
//! file or directory the walk already reports at its real path is skipped (no
//! duplicates), one to an ignored place (a hidden directory, say) is followed.
//! Directories are tracked by device and inode, so loops end. Entries are read in
//! name order, so the result is deterministic. The scan is a value: recording it is
//! the engine's intake's job ([`crate::engine::intake`]); [`scan_folder_in_parts`]
//! hands it over in parts, so that a large folder is never held whole.

use std::collections::HashSet;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::ignore::IgnoreSet;
use crate::error::{Error, Result};

/// What a stat says about a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// The inode's last change (nanoseconds since the Unix epoch): a rename or
    /// a chmod moves it, a backdated mtime does not hide a fresh file.
    pub ctime_ns: i64,
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
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
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
        (self.size, self.mtime_ns, self.dev, self.ino)
            == (other.size, other.mtime_ns, other.dev, other.ino)
    }

    /// How long before `now` the file last changed: its content (mtime) or
    /// its inode (ctime), whichever is later; zero for a time in the future.
    pub fn unchanged_for(&self, now: std::time::SystemTime) -> std::time::Duration {
        let Ok(since_epoch) = now.duration_since(std::time::UNIX_EPOCH) else {
            return std::time::Duration::ZERO;
        };
        let now_ns = i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX);
        let last_change = self.mtime_ns.max(self.ctime_ns);
        let age = u64::try_from(now_ns.saturating_sub(last_change)).unwrap_or(0);
        std::time::Duration::from_nanos(age)
    }

    /// Whether neither the content (mtime) nor the inode (ctime) changed for
    /// `quiet` before `now`: such a file was complete before it was seen.
    pub fn quiet_for(&self, quiet: std::time::Duration, now: std::time::SystemTime) -> bool {
        self.unchanged_for(now) >= quiet
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

/// Walk `root` completely, handing the files over in parts (after each
/// directory that brings the files not yet handed over to the part's size or
/// more, and at the end) to `on_part`, so that a walk over a million files
/// never holds them all. Parts start at about `first` files and double up to
/// `chunk`: the first files are handed over soon after the walk begins (a
/// restart over a large backlog starts sending early), later ones in parts
/// large enough to record cheaply. `on_part` returns `false` to stop the
/// walk (the scan is then not `complete`). The returned [`Scan`] has no
/// `files`: only what was skipped, the errors, and whether it is complete.
/// Files come in walk order, not sorted.
pub fn scan_folder_in_parts(
    root: &Path,
    ignore: &IgnoreSet,
    first: usize,
    chunk: usize,
    on_part: &mut dyn FnMut(Vec<ScannedFile>) -> bool,
) -> Result<Scan> {
    let chunk = chunk.max(1);
    let mut part = first.clamp(1, chunk);
    let mut stopped = false;
    let mut hand_over = |files: &mut Vec<ScannedFile>, at_least: usize| {
        if !stopped && !files.is_empty() && files.len() >= at_least {
            stopped = !on_part(std::mem::take(files));
        }
        !stopped
    };
    let mut scan = walk(root, Path::new(""), ignore, &mut |files| {
        let before = files.len();
        let went_on = hand_over(files, part);
        if files.len() < before {
            part = part.saturating_mul(2).min(chunk);
        }
        went_on
    })?;
    let went_on = hand_over(&mut scan.files, 0);
    scan.files.clear();
    scan.complete = scan.errors.is_empty() && went_on;
    Ok(scan)
}

/// Walk only `sub` (relative to `root`), e.g. a directory that just appeared.
/// The result is never `complete`.
pub fn scan_subtree(root: &Path, sub: &Path, ignore: &IgnoreSet) -> Result<Scan> {
    let mut scan = walk(root, sub, ignore, &mut |_| true)?;
    scan.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(scan)
}

/// Walk `sub` of `root`; after each directory, `after_dir` is given the files
/// found so far (it may take them) and returns `false` to stop.
fn walk(
    root: &Path,
    sub: &Path,
    ignore: &IgnoreSet,
    after_dir: &mut dyn FnMut(&mut Vec<ScannedFile>) -> bool,
) -> Result<Scan> {
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
    // below, each entry's own name is checked: the directories it is in were
    // checked as the walk entered them, and `sub`'s are checked here
    if ignore.is_ignored_dir(sub) {
        return Ok(scan);
    }
    visited.insert((meta.dev(), meta.ino()));
    let mut stack: Vec<PathBuf> = vec![sub.to_owned()];
    // symlinks wait until every real directory has been walked, so that a file or
    // directory reachable both ways is reported once, at its real path
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    'walk: loop {
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
            if !after_dir(&mut scan.files) {
                break 'walk;
            }
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
    // each name read once: sorting by `DirEntry::file_name` would copy it at
    // every comparison
    let read = std::fs::read_dir(&abs_dir).and_then(|rd| {
        rd.map(|entry| entry.map(|e| (e.file_name(), e)))
            .collect::<std::io::Result<Vec<_>>>()
    });
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
    // the names in one directory are unique
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, entry) in entries {
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
            if !ignore.is_ignored_entry(&name, &rel, false) {
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
        if ignore.is_ignored_entry(&name, &rel, meta.is_dir()) {
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

#[cfg(test)]
mod tests;
