//! A synced folder: its root, how its files map to targets (a fixed target, or the
//! `<accountID>/<filePurpose>/<file>` layout, whose account folders must be named
//! by Moov account IDs, UUIDs), how it is watched, and what happens to a file once
//! it is decided.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::max_age::MaxAge;
use super::target::{moov_account_id_problem, FileMetadata, FilePurpose, MoovFilesTarget, Target};

/// How a folder maps files to targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// Every file goes to this target.
    Fixed(Target),
    /// moov-files by layout: `<root>/<accountID>/<filePurpose>/<file>`.
    Convention,
}

/// What to do with a local file once the server decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterDecision {
    #[default]
    Leave,
    /// Move into `approved/` or `rejected/` beside the file.
    Move,
}

/// How a folder is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherKind {
    /// inotify / FSEvents / ReadDirectoryChangesW.
    Native,
    /// Periodic stat of the tree, for network filesystems.
    Poll { interval: Duration },
}

/// One synced folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The root, resolved against the configuration file's directory.
    pub path: PathBuf,
    pub mapping: Mapping,
    /// Extra ignore globs (the defaults always apply).
    pub ignore: Vec<String>,
    pub after_decision: AfterDecision,
    pub watcher: WatcherKind,
    /// Files older than this when first seen are recorded `skipped`, not sent
    /// (the folder's `max_age`, else the top level's; `--only-newer-than` wins).
    pub max_age: Option<MaxAge>,
}

impl Folder {
    /// The key rows are stored under (the resolved root, lossy for display).
    pub fn key(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// The absolute path of the file at `rel` (relative path bytes, as recorded).
    pub fn file_path(&self, rel: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(rel))
    }

    /// The target of the file at `rel` (relative to the root). `Err` holds a
    /// reason a person can act on: the path does not fit the convention layout, or
    /// the account cannot be a Moov account (nothing is sent to it).
    pub fn target_for(&self, rel: &Path) -> std::result::Result<Target, String> {
        match &self.mapping {
            Mapping::Fixed(target) => match target.account_problem() {
                // `config` refuses such a target; a folder built otherwise is held to it too
                Some(problem) => Err(format!(
                    "{problem}; set the folder's account_id to the account's ID"
                )),
                None => Ok(target.clone()),
            },
            Mapping::Convention => convention_target(rel),
        }
    }
}

/// The zero-config mapping: `<accountID>/<filePurpose>/<file...>` → moov-files.
pub fn convention_target(rel: &Path) -> std::result::Result<Target, String> {
    let parts: Vec<_> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if parts.len() < 3 {
        return Err(format!(
            "{} is not inside <accountID>/<filePurpose>/; move it into a folder such as \
             <accountID>/business_verification/",
            rel.display()
        ));
    }
    let account = parts[0].to_str().filter(|a| !a.is_empty()).ok_or_else(|| {
        format!(
            "account folder {:?} is not valid UTF-8; rename it to the account id",
            parts[0]
        )
    })?;
    if let Some(problem) = moov_account_id_problem(account) {
        return Err(format!("{problem}; rename the folder to the account's ID"));
    }
    let purpose_name = parts[1]
        .to_str()
        .ok_or_else(|| format!("purpose folder {:?} is not valid UTF-8", parts[1]))?;
    let purpose: FilePurpose = purpose_name.parse()?;
    Ok(Target::MoovFiles(MoovFilesTarget {
        account_id: account.to_owned(),
        file_purpose: purpose,
        metadata: FileMetadata::default(),
    }))
}
