//! Upload intents and their outcomes: the intent committed before a request (with
//! the duplicate and quota checks in the same transaction), `docsync retry`, and
//! what the server says about a row afterwards.

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    apply_transition, execute_cached, insert_event, map_transition, query_row_cached,
    read_file_row, row_in, sql, Attempts, Change, FileRow, State, Store, FILE_COLUMNS,
};
use crate::error::{Error, Result};
use crate::model::{now_ms, TargetKey};

/// The upload intent to commit with [`Store::begin_upload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadIntent {
    pub sha256: String,
    /// The name sent to the server, when it differs from the local one.
    pub remote_name: Option<String>,
    /// The most files the account may hold (checked in the same transaction).
    pub quota: Option<u64>,
    /// Why the intent was committed (stored in the event).
    pub reason: String,
}

/// The outcome of [`Store::begin_upload`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeginUpload {
    /// The row is now `uploading`: send the request.
    Started(FileRow),
    /// The same content was already uploaded to the same target: the row is `duplicate`.
    Duplicate {
        row: FileRow,
        original: Box<FileRow>,
    },
    /// The account is full: the row is `invalid`.
    QuotaExceeded { row: FileRow, used: u64, limit: u64 },
}

impl Store {
    /// Commit the intent to upload row `id` (in `stable` or `retrying`), checking for
    /// duplicate content on the same target and the account's quota in the same
    /// transaction. Invariant: this commits before the request is sent.
    pub fn begin_upload(
        &mut self,
        id: i64,
        expected: State,
        intent: &UploadIntent,
    ) -> Result<BeginUpload> {
        if self.relaxed {
            return Err(Error::IntentNotDurable { id });
        }
        let db_path = self.path.clone();
        let now = now_ms();
        let tx = self.tx()?;
        let row = row_in(&tx, &db_path, id, expected, |s| s == expected)?;
        let original = find_uploaded_row(&tx, &row.target, &intent.sha256, Some(id))
            .map_err(sql(&db_path, "looking for duplicates"))?;
        let outcome = if let Some(original) = original {
            let change = Change {
                sha256: Some(intent.sha256.clone()),
                ..Change::because(duplicate_reason(&original))
            };
            apply_transition(&tx, &row, State::Duplicate, &change, now).map(|new| {
                BeginUpload::Duplicate {
                    row: new,
                    original: Box::new(original),
                }
            })
        } else {
            let reached = match intent.quota {
                Some(limit) => quota_reached(&tx, &row.target, id, limit)
                    .map_err(sql(&db_path, "counting the quota"))?
                    .map(|used| (used, limit)),
                None => None,
            };
            match reached {
                Some((used, limit)) => {
                    let change = Change {
                        sha256: Some(intent.sha256.clone()),
                        ..Change::because(quota_reason(&row.target.account, used, limit))
                    };
                    apply_transition(&tx, &row, State::Invalid, &change, now).map(|new| {
                        BeginUpload::QuotaExceeded {
                            row: new,
                            used,
                            limit,
                        }
                    })
                }
                None => {
                    let change = Change {
                        sha256: Some(intent.sha256.clone()),
                        remote_name: intent.remote_name.clone(),
                        attempts: Attempts::Increment,
                        ..Change::because(intent.reason.clone())
                    };
                    apply_transition(&tx, &row, State::Uploading, &change, now)
                        .map(BeginUpload::Started)
                }
            }
        };
        let outcome = outcome.map_err(|e| map_transition(&db_path, &row, e))?;
        tx.commit()
            .map_err(sql(&db_path, "committing an upload intent"))?;
        Ok(outcome)
    }

    /// `docsync retry`: move `failed` rows to `retrying` (due now, attempts reset) and
    /// `invalid` rows back to `stable` (checked again), in one transaction. With
    /// `path`, only that path's live row; with `folder`, only that folder. A
    /// `skipped` row (never sent on purpose) is sent only when its path is
    /// named: it goes to `stable`, checked and sent as a new file; `--all-failed`
    /// (no `path`) leaves skipped rows alone.
    pub fn retry(
        &mut self,
        folder: Option<&str>,
        path: Option<&[u8]>,
        reason: &str,
    ) -> Result<Vec<i64>> {
        let db_path = self.path.clone();
        let now = now_ms();
        let tx = self.tx()?;
        let rows = {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {FILE_COLUMNS} FROM files \
                     WHERE (state IN ('failed', 'invalid') OR (?2 IS NOT NULL AND state = 'skipped')) \
                     AND (?1 IS NULL OR folder = ?1) AND (?2 IS NULL OR path = ?2) ORDER BY id"
                ))
                .map_err(sql(&db_path, "finding files to retry"))?;
            let rows = stmt
                .query_map(params![folder, path], read_file_row)
                .map_err(sql(&db_path, "finding files to retry"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql(&db_path, "finding files to retry"))?;
            rows
        };
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let (to, change) = match row.state {
                State::Failed => (
                    State::Retrying,
                    Change {
                        attempts: Attempts::Reset,
                        next_attempt_at: Some(now),
                        ..Change::because(reason)
                    },
                ),
                _ => (State::Stable, Change::because(reason)),
            };
            if let Err(e) = apply_transition(&tx, &row, to, &change, now) {
                return Err(map_transition(&db_path, &row, e));
            }
            ids.push(row.id);
        }
        tx.commit().map_err(sql(&db_path, "committing a retry"))?;
        Ok(ids)
    }

    /// Update what the server says about a row without changing its state (a poll
    /// that saw `processing`, an image disabled after its file was deleted). Sets the
    /// remote fields present in `change` and records an event with the same from and
    /// to state. Fails with [`Error::StaleState`]
    /// if the row is not in `expected`.
    pub fn update_remote(&mut self, id: i64, expected: State, change: &Change) -> Result<FileRow> {
        let db_path = self.path.clone();
        let now = now_ms();
        let tx = self.tx()?;
        let row = row_in(&tx, &db_path, id, expected, |s| s == expected)?;
        let pick = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
        let new = FileRow {
            remote_id: pick(&change.remote_id, &row.remote_id),
            remote_status: pick(&change.remote_status, &row.remote_status),
            decision_reason: pick(&change.decision_reason, &row.decision_reason),
            last_error: pick(&change.last_error, &row.last_error),
            last_request_id: pick(&change.request_id, &row.last_request_id),
            updated_at: now,
            ..row.clone()
        };
        execute_cached(
            &tx,
            "UPDATE files SET remote_id = ?2, remote_status = ?3, decision_reason = ?4, \
             last_error = ?5, last_request_id = ?6, updated_at = ?7 WHERE id = ?1",
            params![
                id,
                new.remote_id,
                new.remote_status,
                new.decision_reason,
                new.last_error,
                new.last_request_id,
                now
            ],
        )
        .map_err(sql(&db_path, "updating remote fields"))?;
        insert_event(
            &tx,
            id,
            now,
            Some(row.state),
            row.state,
            &change.reason,
            change.request_id.as_deref(),
        )
        .map_err(sql(&db_path, "updating remote fields"))?;
        tx.commit()
            .map_err(sql(&db_path, "committing remote fields"))?;
        Ok(new)
    }

    /// A row whose identical content already reached (or is reaching) the same target.
    pub fn find_uploaded(
        &self,
        target: &TargetKey,
        sha256: &str,
        exclude: Option<i64>,
    ) -> Result<Option<FileRow>> {
        find_uploaded_row(&self.conn, target, sha256, exclude)
            .map_err(self.db("looking for duplicates"))
    }

    /// Another row of the same target already recorded under `remote_id` for
    /// other content than `sha256`: the server answered row `id`'s upload with
    /// an ID it gave before, which is not trusted. `replaces` is the row whose
    /// ID may come back (the image a changed image replaces).
    pub fn remote_id_holder(
        &self,
        target: &TargetKey,
        remote_id: &str,
        id: i64,
        sha256: Option<&str>,
        replaces: Option<i64>,
    ) -> Result<Option<FileRow>> {
        query_row_cached(
            &self.conn,
            &remote_id_holder_sql(),
            params![
                target.kind.as_str(),
                target.account,
                remote_id,
                id,
                replaces,
                sha256
            ],
            read_file_row,
        )
        .optional()
        .map_err(self.db("checking the server's file ID"))
    }

    /// How many files count against the account's quota (on the server or on the way).
    pub fn quota_used(&self, target: &TargetKey) -> Result<u64> {
        quota_used_in(&self.conn, target, None).map_err(self.db("counting the quota"))
    }
}

/// The reason recorded when a row is a duplicate of `original` (both backends).
pub(super) fn duplicate_reason(original: &FileRow) -> String {
    format!(
        "same content already uploaded as {} (remote id {})",
        original.path_display(),
        original.remote_id.as_deref().unwrap_or("not yet known")
    )
}

/// The reason recorded when `account` is full (both backends).
pub(super) fn quota_reason(account: &str, used: u64, limit: u64) -> String {
    format!(
        "account {account} already holds {used} files, the most it may hold is {limit}; \
         remove files on the server or use another account"
    )
}

/// Which rows hold content on (or on its way to) the server: what counts
/// against an account's quota and what a new upload duplicates (both backends).
pub(super) const ON_SERVER: &str =
    "(state IN ('uploading', 'retrying', 'pending', 'approved', 'rejected') \
     OR (remote_id IS NOT NULL AND state <> 'duplicate'))";

/// The query of [`Store::remote_id_holder`] (it reads through `files_remote`).
pub(super) fn remote_id_holder_sql() -> String {
    format!(
        "SELECT {FILE_COLUMNS} FROM files WHERE target = ?1 AND account = ?2 \
         AND remote_id = ?3 AND id <> ?4 AND id IS NOT ?5 \
         AND (sha256 IS NULL OR sha256 IS NOT ?6) ORDER BY id LIMIT 1"
    )
}

fn find_uploaded_row(
    conn: &Connection,
    target: &TargetKey,
    sha256: &str,
    exclude: Option<i64>,
) -> rusqlite::Result<Option<FileRow>> {
    query_row_cached(
        conn,
        &format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE target = ?1 AND account = ?2 AND purpose = ?3 \
             AND sha256 = ?4 AND id IS NOT ?5 AND {ON_SERVER} ORDER BY id LIMIT 1"
        ),
        params![
            target.kind.as_str(),
            target.account,
            target.purpose,
            sha256,
            exclude
        ],
        read_file_row,
    )
    .optional()
}

/// How many rows an account has at a target, whatever their states, one row
/// (`?3`) left out: read from `files_content` alone.
pub(super) const ACCOUNT_ROWS: &str = "SELECT COUNT(*) FROM files INDEXED BY files_content \
     WHERE target = ?1 AND account = ?2 AND id <> ?3";

/// `Some(used)` when the files counting against `target`'s quota (row
/// `exclude` left out) number `limit` or more, `None` when they do not. Most
/// accounts hold fewer rows than their quota, whatever the rows' states: that
/// count reads `files_content` alone (the account's range of the index, no
/// row), and only past it is each row's state read ([`ON_SERVER`]).
fn quota_reached(
    conn: &Connection,
    target: &TargetKey,
    exclude: i64,
    limit: u64,
) -> rusqlite::Result<Option<u64>> {
    let rows: i64 = query_row_cached(
        conn,
        ACCOUNT_ROWS,
        params![target.kind.as_str(), target.account, exclude],
        |r| r.get(0),
    )?;
    if u64::try_from(rows).unwrap_or(0) < limit {
        return Ok(None);
    }
    let used = quota_used_in(conn, target, Some(exclude))?;
    Ok((used >= limit).then_some(used))
}

fn quota_used_in(
    conn: &Connection,
    target: &TargetKey,
    exclude: Option<i64>,
) -> rusqlite::Result<u64> {
    let n: i64 = query_row_cached(
        conn,
        &format!(
            "SELECT COUNT(*) FROM files WHERE target = ?1 AND account = ?2 AND id IS NOT ?3 \
             AND {ON_SERVER}"
        ),
        params![target.kind.as_str(), target.account, exclude],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}
