//! Recording what the folder scan and the watcher saw: new, changed and vanished
//! files, reconciled with the live rows of their folder in one transaction.

use rusqlite::{params, Connection, OptionalExtension};

use super::composite::COMPLETE_WHEN_SEEN;
use super::files::{find_live_row, get_row};
use super::seen::SeenIds;
use super::{
    apply_transition, execute_cached, insert_event, map_transition, query_row_cached, size_i64,
    sql, text_err, Change, FileRow, State, Store, TransitionError,
};
use crate::error::{Error, Result};
use crate::model::{now_ms, TargetKey};

/// A file seen on disk by a scan or a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Path relative to the folder root, raw bytes.
    pub path: Vec<u8>,
    pub size: u64,
    pub mtime_ns: i64,
    pub target: TargetKey,
}

/// What [`Store::observe_batch`] did with one observed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// A new row in `discovered`.
    New { id: i64 },
    /// A new row in `stable` at once: the file was complete when it was
    /// seen ([`super::ScanVerdict::stable_at_once`]).
    NewStable { id: i64 },
    /// Same size and mtime as recorded.
    Unchanged { id: i64, state: State },
    /// The size or mtime changed; the row is (back) in `discovered`.
    Changed { id: i64 },
    /// The content changed after upload: `old` is superseded, `new` is discovered.
    Superseded { old: i64, new: i64 },
    /// Changed while an upload is in flight; left for the uploader, seen again later.
    Busy { id: i64 },
}

impl Observation {
    /// The id of the live row for the path after this observation.
    pub fn id(&self) -> i64 {
        match *self {
            Observation::New { id }
            | Observation::NewStable { id }
            | Observation::Unchanged { id, .. }
            | Observation::Changed { id }
            | Observation::Busy { id } => id,
            Observation::Superseded { new, .. } => new,
        }
    }
}

/// The result of reconciling a folder scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// One entry per observed file, in input order.
    pub observations: Vec<Observation>,
    /// Rows marked deleted because their file was not seen.
    pub deleted: Vec<i64>,
}

impl Store {
    /// Reconcile observed files of one folder in one transaction.
    ///
    /// New paths get a `discovered` row; changed files go back to `discovered` (or, if
    /// their content already reached the server, the old row is superseded by a new
    /// one). With `complete` (a full scan of the folder), live rows whose file was not
    /// observed are marked `deleted` — except rows in `uploading`, which belong to the
    /// uploader until it finishes.
    pub fn observe_batch(
        &mut self,
        folder: &str,
        observed: &[Observed],
        complete: bool,
    ) -> Result<Reconciled> {
        self.observe_batch_with(folder, observed, complete, &[])
    }

    /// [`Store::observe_batch`], where a file without a live row whose
    /// `stable_at_once[i]` is set gets a `stable` row
    /// ([`Observation::NewStable`]) instead of a `discovered` one.
    pub(super) fn observe_batch_with(
        &mut self,
        folder: &str,
        observed: &[Observed],
        complete: bool,
        stable_at_once: &[bool],
    ) -> Result<Reconciled> {
        let now = now_ms();
        let path = self.path.clone();
        let tx = self.tx()?;
        let result = reconcile(&tx, folder, observed, complete, stable_at_once, now);
        match result {
            Ok(rec) => {
                tx.commit().map_err(|source| Error::Db {
                    path,
                    what: "committing a scan",
                    source,
                })?;
                Ok(rec)
            }
            Err((row, e)) => Err(reconcile_error(&path, row, e)),
        }
    }

    /// The end of a complete scan of `folder` recorded in parts (each by
    /// [`Store::observe_batch`] without `complete`, the ids of their
    /// observations in `seen`): live rows not seen are marked `deleted`, as
    /// `complete` does for a scan recorded at once. One transaction; the ids
    /// of the rows deleted.
    pub fn sweep_vanished(&mut self, folder: &str, seen: &SeenIds) -> Result<Vec<i64>> {
        let now = now_ms();
        let path = self.path.clone();
        let tx = self.tx()?;
        match sweep(&tx, folder, seen, now) {
            Ok(deleted) => {
                tx.commit().map_err(sql(&path, "committing a scan"))?;
                Ok(deleted)
            }
            Err((row, e)) => Err(reconcile_error(&path, row, e)),
        }
    }

    /// [`Store::observe_batch`] for one file seen by a hint (never deletes others).
    pub fn observe_one(&mut self, folder: &str, observed: &Observed) -> Result<Observation> {
        let rec = self.observe_batch(folder, std::slice::from_ref(observed), false)?;
        rec.observations.first().copied().ok_or(Error::Task {
            what: "observing a file",
            message: "no observation returned".into(),
        })
    }

    /// `docsync baseline`: record each observed file that has no live row yet
    /// as `skipped` (already handled: not sent), with `reason`, in one
    /// transaction. Files that have a row are left exactly as they are. Returns
    /// how many rows were added.
    pub fn record_skipped(
        &mut self,
        folder: &str,
        observed: &[Observed],
        reason: &str,
    ) -> Result<usize> {
        let db_path = self.path.clone();
        let now = now_ms();
        let tx = self.tx()?;
        let mut added = 0;
        for obs in observed {
            let known = find_live_row(&tx, folder, &obs.path)
                .map_err(sql(&db_path, "finding a file"))?
                .is_some();
            if !known {
                insert_row(&tx, folder, obs, State::Skipped, None, reason, now)
                    .map_err(sql(&db_path, "recording a skipped file"))?;
                added += 1;
            }
        }
        tx.commit()
            .map_err(sql(&db_path, "committing a baseline"))?;
        Ok(added)
    }

    /// Mark the live row at `path` deleted (a removal hint confirmed by a stat).
    /// Returns the row id, or `None` if there is no live row or it is `uploading`.
    pub fn mark_deleted(&mut self, folder: &str, path: &[u8], reason: &str) -> Result<Option<i64>> {
        let db_path = self.path.clone();
        let tx = self.tx()?;
        let row = find_live_row(&tx, folder, path).map_err(sql(&db_path, "finding a file"))?;
        let Some(row) = row else { return Ok(None) };
        // an uploading row belongs to the uploader until its request finishes
        if row.state == State::Uploading || !row.state.can_transition_to(State::Deleted) {
            return Ok(None);
        }
        apply_transition(
            &tx,
            &row,
            State::Deleted,
            &Change::because(reason),
            now_ms(),
        )
        .map_err(|e| map_transition(&db_path, &row, e))?;
        tx.commit()
            .map_err(sql(&db_path, "committing a deletion"))?;
        Ok(Some(row.id))
    }
}

fn insert_discovered(
    tx: &Connection,
    folder: &str,
    obs: &Observed,
    supersedes: Option<i64>,
    reason: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    insert_row(tx, folder, obs, State::Discovered, supersedes, reason, now)
}

/// A new row in `state` (`discovered`, `stable` when complete already, or
/// `skipped` by a baseline), with the event that created it.
fn insert_row(
    tx: &Connection,
    folder: &str,
    obs: &Observed,
    state: State,
    supersedes: Option<i64>,
    reason: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    execute_cached(
        tx,
        "INSERT INTO files (folder, path, target, account, purpose, size, mtime_ns, state, \
         supersedes, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?10, ?8, ?9, ?9)",
        params![
            folder,
            obs.path,
            obs.target.kind.as_str(),
            obs.target.account,
            obs.target.purpose,
            size_i64(obs.size),
            obs.mtime_ns,
            supersedes,
            now,
            state.as_str()
        ],
    )?;
    let id = tx.last_insert_rowid();
    insert_event(tx, id, now, None, state, reason, None)?;
    Ok(id)
}

/// The live row at `obs`'s path if it has `obs`'s size, mtime and target:
/// a file a rescan finds as it was (most of a restart's), answered from two
/// columns instead of the whole row. Anything else is `None`, and read whole.
fn unchanged_live(
    tx: &Connection,
    folder: &str,
    obs: &Observed,
) -> rusqlite::Result<Option<Observation>> {
    query_row_cached(
        tx,
        "SELECT id, state FROM files WHERE folder = ?1 AND path = ?2 \
         AND state NOT IN ('superseded', 'deleted') \
         AND size = ?3 AND mtime_ns = ?4 AND target = ?5 AND account = ?6 AND purpose = ?7",
        params![
            folder,
            obs.path,
            size_i64(obs.size),
            obs.mtime_ns,
            obs.target.kind.as_str(),
            obs.target.account,
            obs.target.purpose
        ],
        |r| {
            let id: i64 = r.get(0)?;
            let state = r.get_ref(1)?.as_str()?;
            let state = state.parse::<State>().map_err(|e| text_err(1, e))?;
            Ok(Observation::Unchanged { id, state })
        },
    )
    .optional()
}

type ReconcileError = (Option<Box<FileRow>>, TransitionError);

fn reconcile(
    tx: &Connection,
    folder: &str,
    observed: &[Observed],
    complete: bool,
    stable_at_once: &[bool],
    now: i64,
) -> std::result::Result<Reconciled, ReconcileError> {
    let sql = |e: rusqlite::Error| (None, TransitionError::Sql(e));
    let mut out = Reconciled::default();
    for (i, obs) in observed.iter().enumerate() {
        if let Some(unchanged) = unchanged_live(tx, folder, obs).map_err(sql)? {
            out.observations.push(unchanged);
            continue;
        }
        let mut existing = find_live_row(tx, folder, &obs.path).map_err(sql)?;
        if let Some(row) = existing.as_mut() {
            // the configuration (or the layout) now maps the file elsewhere: follow it
            // while nothing has been sent
            if row.target != obs.target && !row.state.is_remote() && row.remote_id.is_none() {
                execute_cached(
                    tx,
                    "UPDATE files SET target = ?2, account = ?3, purpose = ?4, updated_at = ?5 \
                     WHERE id = ?1",
                    params![
                        row.id,
                        obs.target.kind.as_str(),
                        obs.target.account,
                        obs.target.purpose,
                        now
                    ],
                )
                .map_err(sql)?;
                row.target = obs.target.clone();
            }
        }
        let observation = match existing {
            None if stable_at_once.get(i).copied().unwrap_or(false) => Observation::NewStable {
                id: insert_row(
                    tx,
                    folder,
                    obs,
                    State::Stable,
                    None,
                    COMPLETE_WHEN_SEEN,
                    now,
                )
                .map_err(sql)?,
            },
            None => Observation::New {
                id: insert_discovered(tx, folder, obs, None, "seen on disk", now).map_err(sql)?,
            },
            Some(row) if row.size == obs.size && row.mtime_ns == obs.mtime_ns => {
                Observation::Unchanged {
                    id: row.id,
                    state: row.state,
                }
            }
            Some(row) => match row.state {
                State::Discovered => {
                    execute_cached(
                        tx,
                        "UPDATE files SET size = ?2, mtime_ns = ?3, updated_at = ?4 WHERE id = ?1",
                        params![row.id, size_i64(obs.size), obs.mtime_ns, now],
                    )
                    .map_err(sql)?;
                    Observation::Changed { id: row.id }
                }
                State::Uploading => Observation::Busy { id: row.id },
                // a skipped row was never sent, but it stands for what was there
                // when it was skipped: a change is a new file, on a new row, as
                // for a file whose content reached the server
                State::Pending | State::Approved | State::Rejected | State::Skipped => {
                    let reason = format!(
                        "content changed on disk (size {} -> {}); a new row takes over",
                        row.size, obs.size
                    );
                    apply_transition(tx, &row, State::Superseded, &Change::because(reason), now)
                        .map_err(|e| (Some(Box::new(row.clone())), e))?;
                    let new = insert_discovered(
                        tx,
                        folder,
                        obs,
                        Some(row.id),
                        &format!("content changed; replaces row {}", row.id),
                        now,
                    )
                    .map_err(sql)?;
                    Observation::Superseded { old: row.id, new }
                }
                _ => {
                    let change = Change {
                        observed: Some((obs.size, obs.mtime_ns)),
                        ..Change::because("content changed on disk; starting over")
                    };
                    apply_transition(tx, &row, State::Discovered, &change, now)
                        .map_err(|e| (Some(Box::new(row.clone())), e))?;
                    Observation::Changed { id: row.id }
                }
            },
        };
        out.observations.push(observation);
    }
    if complete {
        let mut seen = SeenIds::new();
        for obs in &out.observations {
            seen.insert(obs.id());
        }
        out.deleted = sweep(tx, folder, &seen, now)?;
    }
    Ok(out)
}

/// Mark `deleted` every live row of `folder` whose id is not in `seen` (its
/// file was not seen by a complete scan), except rows in `uploading`, which
/// belong to the uploader until it finishes. The live rows are streamed as ids
/// and only the vanished ones read whole: a restart over a large folder never
/// holds every row, nor every path.
fn sweep(
    tx: &Connection,
    folder: &str,
    seen: &SeenIds,
    now: i64,
) -> std::result::Result<Vec<i64>, ReconcileError> {
    let sql = |e: rusqlite::Error| (None, TransitionError::Sql(e));
    let mut vanished = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id FROM files WHERE folder = ?1 \
                 AND state NOT IN ('superseded', 'deleted', 'uploading') AND moved_to IS NULL",
            )
            .map_err(sql)?;
        let mut rows = stmt.query([folder]).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let id: i64 = row.get(0).map_err(sql)?;
            if !seen.contains(id) {
                vanished.push(id);
            }
        }
    }
    let mut deleted = Vec::with_capacity(vanished.len());
    for id in vanished {
        let Some(row) = get_row(tx, id).map_err(sql)? else {
            continue;
        };
        apply_transition(
            tx,
            &row,
            State::Deleted,
            &Change::because("no longer on disk"),
            now,
        )
        .map_err(|e| (Some(Box::new(row.clone())), e))?;
        deleted.push(row.id);
    }
    Ok(deleted)
}

/// The store's error for a failed reconcile or sweep.
fn reconcile_error(path: &std::path::Path, row: Option<Box<FileRow>>, e: TransitionError) -> Error {
    match row {
        Some(row) => map_transition(path, &row, e),
        None => match e {
            TransitionError::Sql(source) => Error::Db {
                path: path.to_owned(),
                what: "reconciling a scan",
                source,
            },
            TransitionError::Illegal { from, to } => Error::IllegalTransition {
                id: 0,
                path: String::new(),
                from,
                to,
            },
        },
    }
}
