//! When a file is complete: [`StabilityTracker`] decides when a `discovered` file
//! is `stable` (its size and mtime held still for the quiet window, or a
//! close_write was seen). It takes the current instant as an argument, so tests
//! drive it without sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

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

    /// A stat of the file, unchanged since `since` (when it was seen, or its
    /// last change if that is known and earlier): a change restarts its quiet
    /// window from `since`.
    pub fn observe(&mut self, key: K, size: u64, mtime_ns: i64, since: Instant) {
        match self.entries.get_mut(&key) {
            Some(t) if t.size == size && t.mtime_ns == mtime_ns => {}
            Some(t) => {
                *t = Tracked {
                    size,
                    mtime_ns,
                    since,
                    closed: false,
                };
            }
            None => {
                self.entries.insert(
                    key,
                    Tracked {
                        size,
                        mtime_ns,
                        since,
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

    /// Whether `key` waits for its quiet window.
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
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
