//! Which files are never synced: built-in patterns for partial downloads, editor
//! temporaries and hidden files, plus the folder's configured globs.
//!
//! A pattern without `/` is matched against every component of the path relative to
//! the folder root (so `.*` hides `.git/config` too); a pattern with `/` is matched
//! against the whole relative path (`drafts/**`).

use std::ffi::OsStr;
use std::path::{Component, Path};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::model::{AfterDecision, Folder};

/// The built-in patterns, always active.
pub const DEFAULT_PATTERNS: &[&str] = &[
    "*.part",       // partial downloads (Firefox, curl -C, rsync --partial-dir)
    "*.tmp",        // generic temporaries
    "*.crdownload", // Chrome downloads in progress
    "*.download",   // Safari downloads in progress
    "~$*",          // Microsoft Office lock files
    ".~*",          // LibreOffice lock files (.~lock.*#)
    ".DS_Store",    // macOS Finder metadata
    "Thumbs.db",    // Windows thumbnails
    "*.swp",        // vim swap files
    "*.swx",        // vim swap files
    "*.swo",        // vim swap files
    "4913",         // vim's probe file for directory writability
    "*~",           // emacs / vim / gedit backups
    ".#*",          // emacs lock links
    "#*#",          // emacs auto-save files
    ".*",           // hidden files and directories
];

/// Directory names skipped when a folder moves decided files into subfolders.
pub const DECISION_DIRS: &[&str] = &["approved", "rejected"];

/// A compiled set of ignore patterns.
#[derive(Debug, Clone)]
pub struct IgnoreSet {
    names: GlobSet,
    paths: GlobSet,
    skip_decision_dirs: bool,
    patterns: Vec<String>,
}

impl IgnoreSet {
    /// The set a configured folder uses: the defaults, its own globs, and its
    /// decision directories when it moves decided files.
    pub fn for_folder(folder: &Folder) -> Result<Self> {
        IgnoreSet::new(&folder.ignore, folder.after_decision == AfterDecision::Move)
    }

    /// The defaults plus `extra` globs. With `skip_decision_dirs`, directories named
    /// `approved` and `rejected` are skipped as well (used with `after_decision = "move"`).
    pub fn new<S: AsRef<str>>(extra: &[S], skip_decision_dirs: bool) -> Result<Self> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        let mut patterns = Vec::new();
        let all = DEFAULT_PATTERNS
            .iter()
            .copied()
            .chain(extra.iter().map(AsRef::as_ref));
        for pattern in all {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| Error::Glob {
                    pattern: pattern.to_owned(),
                    source,
                })?;
            if pattern.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
            patterns.push(pattern.to_owned());
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|source| Error::Glob {
                pattern: patterns.join(", "),
                source,
            })
        };
        Ok(Self {
            names: build(names)?,
            paths: build(paths)?,
            skip_decision_dirs,
            patterns,
        })
    }

    /// Only the built-in patterns.
    pub fn defaults() -> Self {
        match Self::new::<&str>(&[], false) {
            Ok(set) => set,
            // The defaults are constants covered by tests; an empty set is the only
            // sane fallback and never happens in practice.
            Err(_) => Self {
                names: GlobSet::empty(),
                paths: GlobSet::empty(),
                skip_decision_dirs: false,
                patterns: Vec::new(),
            },
        }
    }

    /// Every active pattern, defaults first.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether a single file or directory name is ignored (used while walking).
    pub fn is_ignored_name(&self, name: &OsStr, is_dir: bool) -> bool {
        if self.names.is_match(Path::new(name)) {
            return true;
        }
        is_dir && self.skip_decision_dirs && DECISION_DIRS.iter().any(|d| name == *d)
    }

    /// Whether an entry the walk found in a directory it walks (a directory
    /// that is not ignored, nor in one that is) is ignored: its own name, and
    /// its whole path against the path patterns. The walk never enters an
    /// ignored directory, so the parents' names need no second look.
    pub fn is_ignored_entry(&self, name: &OsStr, rel: &Path, is_dir: bool) -> bool {
        self.is_ignored_name(name, is_dir) || self.is_ignored_path(rel)
    }

    /// Whether the directory `rel` (relative to the folder root), or one it
    /// lies in, is ignored: what a walk that starts at `rel` checks first.
    pub fn is_ignored_dir(&self, rel: &Path) -> bool {
        rel.ancestors()
            .filter(|dir| !dir.as_os_str().is_empty())
            .any(|dir| {
                dir.file_name()
                    .is_some_and(|name| self.is_ignored_name(name, true))
                    || self.is_ignored_path(dir)
            })
    }

    fn is_ignored_path(&self, rel: &Path) -> bool {
        !self.paths.is_empty() && self.paths.is_match(rel)
    }

    /// Whether a path relative to the folder root is ignored: any component matches
    /// a name pattern, or the whole path matches a path pattern.
    pub fn is_ignored(&self, rel: &Path) -> bool {
        let components: Vec<&OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let last = components.len().saturating_sub(1);
        for (i, name) in components.iter().enumerate() {
            if self.is_ignored_name(name, i < last) {
                return true;
            }
        }
        self.is_ignored_path(rel)
    }
}

impl Default for IgnoreSet {
    fn default() -> Self {
        Self::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_compile() {
        let set = IgnoreSet::new::<&str>(&[], false).unwrap();
        assert_eq!(set.patterns().len(), DEFAULT_PATTERNS.len());
    }

    #[test]
    fn table() {
        let set = IgnoreSet::new(&["*.bak", "drafts/**"], true).unwrap();
        let cases: &[(&str, bool)] = &[
            ("report.pdf", false),
            ("a/b/report.pdf", false),
            ("report.pdf.part", true),
            ("x.tmp", true),
            ("big.iso.crdownload", true),
            ("~$report.docx", true),
            (".~lock.report.docx#", true),
            (".DS_Store", true),
            (".report.pdf.swp", true),
            ("report.swx", true),
            ("4913", true),
            ("report.pdf~", true),
            (".#report.pdf", true),
            ("#report.pdf#", true),
            (".hidden", true),
            (".git/config", true),
            ("a/.cache/x.pdf", true),
            ("old.bak", true),
            ("drafts/x.pdf", true),
            ("sub/drafts/x.pdf", false),
            ("approved/x.pdf", true),
            (
                "00000000-0000-4000-8000-00000000acc0/business_verification/rejected/x.pdf",
                true,
            ),
            ("approved", false), // a file named approved is not a decision directory
            ("photo 2024.jpg", false),
            ("~report.pdf", false),
        ];
        for (path, want) in cases {
            assert_eq!(set.is_ignored(Path::new(path)), *want, "{path}");
        }
    }

    #[test]
    fn a_directory_is_ignored_by_its_own_name_a_parent_or_a_path_pattern() {
        let set = IgnoreSet::new(&["drafts/old"], true).unwrap();
        for (dir, want) in [
            ("a/b", false),
            ("a/.cache/b", true),
            ("approved", true),
            ("x/rejected/y", true),
            ("drafts", false),
            ("drafts/old", true),
            ("drafts/old/2024", true),
        ] {
            assert_eq!(set.is_ignored_dir(Path::new(dir)), want, "{dir}");
        }
        // what the walk checks of an entry in a directory it walks
        let entry = |rel: &str, is_dir| {
            let rel = Path::new(rel);
            set.is_ignored_entry(rel.file_name().unwrap(), rel, is_dir)
        };
        assert!(entry("drafts/old", true));
        assert!(entry("a/approved", true));
        assert!(!entry("a/approved", false));
        assert!(entry("a/x.tmp", false));
        assert!(!entry("a/x.pdf", false));
    }

    #[test]
    fn decision_dirs_only_when_moving() {
        let set = IgnoreSet::new::<&str>(&[], false).unwrap();
        assert!(!set.is_ignored(Path::new("approved/x.pdf")));
    }

    #[test]
    fn invalid_glob_is_reported() {
        let err = IgnoreSet::new(&["a[b"], false).unwrap_err();
        assert!(err.to_string().contains("a[b"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names() {
        use std::os::unix::ffi::OsStrExt;
        let set = IgnoreSet::defaults();
        assert!(!set.is_ignored(Path::new(OsStr::from_bytes(b"caf\xe9.pdf"))));
        assert!(set.is_ignored(Path::new(OsStr::from_bytes(b"caf\xe9.tmp"))));
    }
}
