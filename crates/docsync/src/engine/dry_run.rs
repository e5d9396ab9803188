//! A dry run: what one pass would do with every file on disk, and why,
//! decided by the daemon's own code: the intake's reconcile (`max_age`, paths
//! that map to no target, the size limit), the quiet window, the local check
//! (hash and validate) and the upload intent (duplicates, the quota), run
//! against a throwaway copy of the state database ([`Store::open_snapshot`]).
//! Nothing is sent and no request is made (no client exists here); the real
//! database is never written.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::local::check::{check_file, Seen};
use crate::local::ignore::IgnoreSet;
use crate::local::scanner::scan_folder;
use crate::model::{Folder, State, TargetKey};
use crate::store::{FileRow, Store};

use super::api_check::{check_api, ApiChange};
use super::intake::reconcile_folder;
use super::upload::intent::{commit_intent, Prepared};

/// What a pass would do with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Send it.
    Upload,
    /// Not send it, and that is fine: already uploaded, a duplicate, skipped.
    Skip,
    /// Not send it: invalid (the reason says how to fix it).
    Refuse,
    /// Not yet: it changed within the quiet window (still being written).
    Wait,
}

impl Verdict {
    /// `would upload`, `would skip`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Upload => "would upload",
            Verdict::Skip => "would skip",
            Verdict::Refuse => "would refuse",
            Verdict::Wait => "would wait",
        }
    }
}

/// One file and what a pass would do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The folder's key (its root).
    pub folder: String,
    /// Relative to the folder root, raw bytes.
    pub path: Vec<u8>,
    pub verdict: Verdict,
    /// Why, in words a person can act on.
    pub reason: String,
    pub target: TargetKey,
    pub size: u64,
    /// When the file was hashed (now, or by an earlier run).
    pub sha256: Option<String>,
}

/// Every file of `config`'s folders, in folder order then path order, with its
/// verdict. `store` must be a throwaway copy ([`Store::open_snapshot`]): the
/// daemon's code records its steps in it as it would in the real database.
///
/// First the check a run makes of the API the rows were synced against: a
/// changed API is [`crate::Error::ApiChanged`], as for a run, unless `choice`
/// says what to do with the rows (`--start-over` forgets them in the copy,
/// so every file is planned as new; no backup is made: nothing is written).
pub fn plan(store: &mut Store, config: &Config, choice: ApiChange) -> Result<Vec<Planned>> {
    match choice {
        ApiChange::StartOver => match check_api(store, config, ApiChange::Refuse) {
            Err(Error::ApiChanged { .. }) => {
                store.start_over(&config.api_identity())?;
            }
            other => other?,
        },
        choice => check_api(store, config, choice)?,
    }
    let quiet = config.quiet_window;
    let mut out = Vec::new();
    for folder in &config.folders {
        if !folder.path.is_dir() {
            continue;
        }
        let scan = scan_folder(&folder.path, &IgnoreSet::for_folder(folder)?)?;
        let summary = reconcile_folder(store, folder, &scan)?;
        let now = SystemTime::now();
        let mut planned = BTreeMap::new();
        for (file, obs) in scan.files.iter().zip(&summary.reconciled.observations) {
            let Some(row) = store.get(obs.id())? else {
                continue;
            };
            let rel = file.rel_bytes();
            let (verdict, reason, row) = if row.state == State::Discovered {
                if file.stat.quiet_for(quiet, now) {
                    let stable = store.promote_stable(
                        &folder.key(),
                        &rel,
                        file.stat.size,
                        file.stat.mtime_ns,
                        "dry run",
                    )?;
                    match stable {
                        Some(stable) => check(store, folder, stable)?,
                        None => wait(row, "changed while being looked at"),
                    }
                } else {
                    wait(row, "still being written (changed within the quiet window)")
                }
            } else if matches!(row.state, State::Stable | State::Retrying) {
                check(store, folder, row)?
            } else {
                recorded(store, row)?
            };
            planned.insert(
                rel.clone(),
                Planned {
                    folder: folder.key(),
                    path: rel,
                    verdict,
                    reason,
                    target: row.target.clone(),
                    size: row.size,
                    sha256: row.sha256.clone(),
                },
            );
        }
        out.extend(planned.into_values());
    }
    Ok(out)
}

fn wait(row: FileRow, why: &str) -> (Verdict, String, FileRow) {
    (Verdict::Wait, why.to_owned(), row)
}

/// Hash and validate a file that held still, then commit its intent in the
/// copy: what the upload stage does, up to the request it would send.
fn check(store: &mut Store, folder: &Folder, row: FileRow) -> Result<(Verdict, String, FileRow)> {
    let seen = Seen {
        rel: &row.path,
        size: row.size,
        mtime_ns: row.mtime_ns,
    };
    let checked = check_file(folder, seen)?;
    let path = folder.file_path(&row.path);
    Ok(match commit_intent(store, &row, checked, &path)? {
        Prepared::Upload(ready) => {
            let mut reason = format!(
                "{} to {} {}",
                ready.plan.kind.name(),
                ready.row.target.kind.as_str(),
                ready.row.target.account
            );
            if !ready.row.target.purpose.is_empty() {
                reason.push_str(&format!(" ({})", ready.row.target.purpose));
            }
            if let Some(rename) = &ready.plan.rename {
                reason.push_str(&format!(
                    "; sent as \"{}\" because {}",
                    rename.to, rename.reason
                ));
            }
            if ready.retried {
                reason.push_str("; a retry: the server is asked about the earlier attempt first");
            }
            (Verdict::Upload, reason, ready.row)
        }
        Prepared::Duplicate { row, .. } => {
            let reason = format!("duplicate: {}", last_reason(store, &row)?);
            (Verdict::Skip, reason, row)
        }
        Prepared::Invalid { row } => {
            let reason = format!("invalid: {}", last_reason(store, &row)?);
            (Verdict::Refuse, reason, row)
        }
        Prepared::Restarted { row } => wait(row, "changed while being read"),
        Prepared::Deleted { row } => (Verdict::Skip, "vanished while being read".into(), row),
    })
}

/// A file docsync already decided about: what its row says.
fn recorded(store: &Store, row: FileRow) -> Result<(Verdict, String, FileRow)> {
    let reason = last_reason(store, &row)?;
    Ok(match row.state {
        State::Invalid => (Verdict::Refuse, format!("invalid: {reason}"), row),
        State::Skipped => (Verdict::Skip, format!("skipped: {reason}"), row),
        State::Duplicate => (Verdict::Skip, format!("duplicate: {reason}"), row),
        State::Failed => (
            Verdict::Skip,
            format!("failed earlier ({reason}); `docsync retry PATH` sends it again"),
            row,
        ),
        state => {
            let at = row
                .remote_id
                .as_deref()
                .map(|id| format!(", remote id {id}"))
                .unwrap_or_default();
            (
                Verdict::Skip,
                format!("already uploaded ({state}{at})"),
                row,
            )
        }
    })
}

/// The reason of the row's last transition.
fn last_reason(store: &Store, row: &FileRow) -> Result<String> {
    Ok(store
        .events(row.id)?
        .last()
        .map(|e| e.reason.clone())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests;
