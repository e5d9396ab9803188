//! Filesystem notifications as hints.
//!
//! A [`FolderWatcher`] wraps notify's recursive watcher (or its [`notify::PollWatcher`]
//! for network filesystems) and turns its callback into [`FolderHint`]s on a tokio
//! channel. Hints are never the truth: the consumer re-stats the path and the periodic
//! scan reconciles everything. So hints may be duplicated or lost; a lost hint only
//! delays a file until the next scan, and an overflow (ours or the kernel's) becomes
//! [`Hint::Rescan`].
//!
//! A directory that appears (created, or moved in) is walked at once and a
//! [`Hint::Changed`] sent for every file in it, because files written before the
//! watch on the new directory was set up produce no event.
//!
//! notify adds the watch on a new directory only after it has reported the
//! directory, so a file written between that walk and the new watch would produce
//! neither a hint nor an event: each new directory also books a rescan of its folder
//! a moment later, on the [`RescanQueue`]. Hints dropped on a full channel book one
//! there too, so it is owed even when no other hint follows.
//!
//! The consumer should treat [`Hint::Removed`] for a path without a row as a possible
//! directory (schedule a rescan). Tests feed synthetic hints through the same channel
//! (see [`HintSender`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::event::{
    AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode,
};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::ignore::IgnoreSet;
use super::scanner::{relative_to_root, scan_subtree};
use crate::error::{Error, Result};
use crate::model::WatcherKind;

/// What might have happened at a path (absolute).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hint {
    /// Created or modified: stat it and feed the stability tracker.
    Changed(PathBuf),
    /// A writer closed it: stable now if a fresh stat agrees.
    CloseWrite(PathBuf),
    /// Removed or moved away (maybe a directory).
    Removed(PathBuf),
    /// Events were lost: scan the whole folder.
    Rescan,
    /// A directory appeared (its files are reported as [`Hint::Changed`] too):
    /// scan the folder again once notify watches it.
    DirectoryAppeared(PathBuf),
}

impl Hint {
    /// The file it is about and whether its writer closed it; `None` for the
    /// hints that ask for a rescan of the whole folder.
    pub fn file(&self) -> Option<(&Path, bool)> {
        match self {
            Hint::Changed(p) | Hint::Removed(p) => Some((p, false)),
            Hint::CloseWrite(p) => Some((p, true)),
            Hint::Rescan | Hint::DirectoryAppeared(_) => None,
        }
    }
}

/// A hint for one configured folder (its index in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderHint {
    pub folder: usize,
    pub hint: Hint,
}

/// The channel hints travel on.
pub fn hint_channel(capacity: usize) -> (mpsc::Sender<FolderHint>, mpsc::Receiver<FolderHint>) {
    mpsc::channel(capacity.max(1))
}

/// How long after a directory appears its folder is walked again: long enough for
/// notify to have set up the watch on it.
pub const NEW_DIRECTORY_RESCAN_DELAY: Duration = Duration::from_millis(250);
/// A booked rescan is postponed by later bookings at most this long.
const MAX_RESCAN_POSTPONE: Duration = Duration::from_secs(2);

/// Rescans owed to folders, booked outside the hint channel (which may be full):
/// by a hint dropped on a full channel, and by a directory that appeared.
#[derive(Debug, Default)]
pub struct RescanQueue {
    /// folder -> (first booked, due)
    due: Mutex<BTreeMap<usize, (Instant, Instant)>>,
    booked: tokio::sync::Notify,
}

impl RescanQueue {
    /// Owe folder `folder` a rescan at `at` or later. A rescan already booked is
    /// moved to the later time, but never more than `MAX_RESCAN_POSTPONE` after
    /// it was first booked (a stream of new directories still gets its scans).
    pub fn book(&self, folder: usize, at: Instant) {
        if let Ok(mut due) = self.due.lock() {
            let now = Instant::now();
            let (first, when) = due.entry(folder).or_insert((now, at));
            *when = (*when).max(at).min(*first + MAX_RESCAN_POSTPONE);
        }
        self.booked.notify_one();
    }

    /// When the next booked rescan is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due
            .lock()
            .ok()
            .and_then(|due| due.values().map(|(_, when)| *when).min())
    }

    /// The folders whose rescan is due at `now` (taken off the queue).
    pub fn take_due(&self, now: Instant) -> Vec<usize> {
        let Ok(mut due) = self.due.lock() else {
            return Vec::new();
        };
        let ready: Vec<usize> = due
            .iter()
            .filter(|(_, (_, when))| *when <= now)
            .map(|(folder, _)| *folder)
            .collect();
        for folder in &ready {
            due.remove(folder);
        }
        ready
    }

    /// Wait until something is booked (a permit is kept if nobody waits).
    pub async fn booked(&self) {
        self.booked.notified().await;
    }
}

/// Sends hints for one folder without ever blocking: when the channel is full the
/// hint is dropped and a rescan of the folder is booked on the [`RescanQueue`].
#[derive(Debug, Clone)]
pub struct HintSender {
    tx: mpsc::Sender<FolderHint>,
    folder: usize,
    rescans: Arc<RescanQueue>,
}

impl HintSender {
    pub fn new(tx: mpsc::Sender<FolderHint>, folder: usize, rescans: Arc<RescanQueue>) -> Self {
        HintSender {
            tx,
            folder,
            rescans,
        }
    }

    /// Send `hint`; `false` if it was dropped (a rescan is then booked) or the
    /// receiver is gone. A [`Hint::DirectoryAppeared`] books a rescan a moment later
    /// instead of travelling on the channel.
    pub fn send(&self, hint: Hint) -> bool {
        if let Hint::DirectoryAppeared(_) = hint {
            self.rescans
                .book(self.folder, Instant::now() + NEW_DIRECTORY_RESCAN_DELAY);
            return true;
        }
        match self.tx.try_send(FolderHint {
            folder: self.folder,
            hint,
        }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.rescans.book(self.folder, Instant::now());
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Translate one notify event into hints (pure except for walking new directories).
pub fn hints_from_event(root: &Path, ignore: &IgnoreSet, event: &notify::Event) -> Vec<Hint> {
    if event.need_rescan() {
        return vec![Hint::Rescan];
    }
    let mut hints = Vec::new();
    let relevant = |p: &Path| relative_to_root(root, p, ignore).is_some();
    let appeared = |p: &Path, hints: &mut Vec<Hint>| {
        if !relevant(p) {
            return;
        }
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => walk_new_dir(root, p, ignore, hints),
            _ => hints.push(Hint::Changed(p.to_owned())),
        }
    };
    match &event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            for p in event.paths.iter().filter(|p| relevant(p)) {
                hints.push(Hint::CloseWrite(p.clone()));
            }
        }
        EventKind::Access(_) => {}
        EventKind::Create(CreateKind::Folder) => {
            for p in event.paths.iter().filter(|p| relevant(p)) {
                walk_new_dir(root, p, ignore, &mut hints);
            }
        }
        EventKind::Create(_) => event.paths.iter().for_each(|p| appeared(p, &mut hints)),
        EventKind::Modify(ModifyKind::Name(mode)) => match mode {
            RenameMode::From => {
                for p in event.paths.iter().filter(|p| relevant(p)) {
                    hints.push(Hint::Removed(p.clone()));
                }
            }
            RenameMode::Both => {
                if let [from, to, ..] = event.paths.as_slice() {
                    if relevant(from) {
                        hints.push(Hint::Removed(from.clone()));
                    }
                    appeared(to, &mut hints);
                }
            }
            _ => event.paths.iter().for_each(|p| appeared(p, &mut hints)),
        },
        EventKind::Modify(_) | EventKind::Any | EventKind::Other => {
            for p in event.paths.iter().filter(|p| relevant(p)) {
                hints.push(Hint::Changed(p.clone()));
            }
        }
        EventKind::Remove(kind) => {
            for p in event.paths.iter().filter(|p| relevant(p)) {
                hints.push(Hint::Removed(p.clone()));
            }
            if *kind == RemoveKind::Folder && !hints.is_empty() {
                hints.push(Hint::Rescan);
            }
        }
    }
    hints
}

fn walk_new_dir(root: &Path, dir: &Path, ignore: &IgnoreSet, hints: &mut Vec<Hint>) {
    let Ok(rel) = dir.strip_prefix(root) else {
        return;
    };
    match scan_subtree(root, rel, ignore) {
        Ok(scan) => {
            hints.extend(scan.files.into_iter().map(|f| Hint::Changed(f.abs)));
            hints.push(Hint::DirectoryAppeared(dir.to_owned()));
            if !scan.errors.is_empty() {
                hints.push(Hint::Rescan);
            }
        }
        // gone again, or unreadable: let a scan sort it out
        Err(_) => hints.push(Hint::Rescan),
    }
}

/// A running watcher for one folder; dropping it stops the watch.
pub struct FolderWatcher {
    _watcher: Box<dyn Watcher + Send>,
    root: PathBuf,
}

impl std::fmt::Debug for FolderWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWatcher")
            .field("root", &self.root)
            .finish()
    }
}

impl FolderWatcher {
    /// Start watching `root` recursively; hints go to `tx` tagged with `folder`.
    pub fn start(
        folder: usize,
        root: &Path,
        kind: WatcherKind,
        ignore: IgnoreSet,
        tx: mpsc::Sender<FolderHint>,
        rescans: Arc<RescanQueue>,
    ) -> Result<FolderWatcher> {
        let sender = HintSender::new(tx, folder, rescans);
        let cb_root = root.to_owned();
        let handler = move |res: notify::Result<notify::Event>| {
            let hints = match res {
                Ok(event) => hints_from_event(&cb_root, &ignore, &event),
                Err(_) => vec![Hint::Rescan],
            };
            for hint in hints {
                sender.send(hint);
            }
        };
        let err = |source| Error::Watch {
            path: root.to_owned(),
            source,
        };
        let mut watcher: Box<dyn Watcher + Send> = match kind {
            WatcherKind::Native => Box::new(notify::recommended_watcher(handler).map_err(err)?),
            WatcherKind::Poll { interval } => Box::new(
                notify::PollWatcher::new(
                    handler,
                    notify::Config::default().with_poll_interval(interval),
                )
                .map_err(err)?,
            ),
        };
        watcher.watch(root, RecursiveMode::Recursive).map_err(err)?;
        Ok(FolderWatcher {
            _watcher: watcher,
            root: root.to_owned(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests;
