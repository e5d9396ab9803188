//! The rows a folder scan saw, by id. A full scan marks each live row it
//! observed here; the live rows of the folder left unmarked are the files
//! that vanished ([`super::Store::sweep_vanished`]). A bitset: a scan over a
//! million files holds about 128 KiB, not every path.

use std::collections::HashSet;

/// Ids below this are kept in the bitset (at most 8 MiB of it); the rest,
/// and negative ids, in a set.
const BITSET_IDS: i64 = 1 << 26;

/// A set of row ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenIds {
    words: Vec<u64>,
    other: HashSet<i64>,
    /// When the scan began (unix ms; 0 from `Default`): a shared store sweeps
    /// only rows older than that, since another host may have recorded a file
    /// after this scan's walk passed its directory.
    started_ms: i64,
}

impl SeenIds {
    pub fn new() -> SeenIds {
        SeenIds {
            started_ms: crate::model::now_ms(),
            ..SeenIds::default()
        }
    }

    /// When the scan began (unix ms), 0 if not known.
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    pub fn insert(&mut self, id: i64) {
        match bit(id) {
            Some((word, mask)) => {
                if self.words.len() <= word {
                    self.words.resize(word + 1, 0);
                }
                self.words[word] |= mask;
            }
            None => {
                self.other.insert(id);
            }
        }
    }

    pub fn contains(&self, id: i64) -> bool {
        match bit(id) {
            Some((word, mask)) => self.words.get(word).is_some_and(|w| w & mask != 0),
            None => self.other.contains(&id),
        }
    }
}

/// The word and mask of `id` in the bitset, if it goes there.
fn bit(id: i64) -> Option<(usize, u64)> {
    if !(0..BITSET_IDS).contains(&id) {
        return None;
    }
    let id = usize::try_from(id).ok()?;
    Some((id / 64, 1u64 << (id % 64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_small_large_and_negative_ids() {
        let mut seen = SeenIds::new();
        for id in [0, 1, 63, 64, 1_000_001, BITSET_IDS, i64::MAX, -5] {
            assert!(!seen.contains(id));
            seen.insert(id);
            assert!(seen.contains(id));
        }
        for id in [2, 62, 65, 1_000_000, BITSET_IDS + 1, -4] {
            assert!(!seen.contains(id), "{id}");
        }
    }
}
