//! Reading and writing file rows: one row by id or by path, lists by state, the
//! pending rows per account, `docsync status`'s listing, and the record of a move.

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    execute_cached, insert_event, query_row_cached, read_file_row, row_in, sql, text_err, FileRow,
    State, Store, FILE_COLUMNS,
};
use crate::error::Result;
use crate::model::{now_ms, TargetKind};

/// A filter for [`Store::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// Only these states (all when empty).
    pub states: Vec<State>,
    pub folder: Option<String>,
    /// Include superseded and deleted rows (when `states` is empty).
    pub include_history: bool,
    pub limit: u32,
    pub offset: u32,
}

impl Default for ListFilter {
    fn default() -> Self {
        ListFilter {
            states: Vec::new(),
            folder: None,
            include_history: false,
            limit: 1000,
            offset: 0,
        }
    }
}

/// A target kind and account with rows awaiting a decision (one list call
/// per cycle), and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAccount {
    pub kind: TargetKind,
    pub account: String,
    pub count: u64,
}

/// The query of [`Store::pending_by_remote_id`] for `n` IDs: through the
/// `files_remote` index (named, so the planner cannot walk every pending row).
pub(super) fn pending_by_remote_id_sql(n: usize) -> String {
    let marks = vec!["?"; n].join(", ");
    format!(
        "SELECT {FILE_COLUMNS} FROM files INDEXED BY files_remote \
         WHERE target = ? AND account = ? AND remote_id IN ({marks}) AND state = 'pending'"
    )
}

/// How many remote IDs go into one `IN (...)` (SQLite's parameter limit is
/// far above; this keeps each statement small).
const IDS_PER_QUERY: usize = 500;

pub(super) fn get_row(tx: &Connection, id: i64) -> rusqlite::Result<Option<FileRow>> {
    query_row_cached(
        tx,
        &format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"),
        [id],
        read_file_row,
    )
    .optional()
}

pub(super) fn find_live_row(
    tx: &Connection,
    folder: &str,
    path: &[u8],
) -> rusqlite::Result<Option<FileRow>> {
    query_row_cached(
        tx,
        &format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE folder = ?1 AND path = ?2 \
             AND state NOT IN ('superseded', 'deleted')"
        ),
        params![folder, path],
        read_file_row,
    )
    .optional()
}

impl Store {
    /// One row by id.
    pub fn get(&self, id: i64) -> Result<Option<FileRow>> {
        get_row(&self.conn, id).map_err(self.db("reading a file"))
    }

    /// The live row for a path.
    pub fn find_live(&self, folder: &str, path: &[u8]) -> Result<Option<FileRow>> {
        find_live_row(&self.conn, folder, path).map_err(self.db("finding a file"))
    }

    /// Rows in `state`, oldest first.
    pub fn in_state(&self, state: State, limit: u32) -> Result<Vec<FileRow>> {
        self.query_rows(
            &format!("SELECT {FILE_COLUMNS} FROM files WHERE state = ?1 ORDER BY id LIMIT ?2"),
            params![state.as_str(), limit],
            "listing files by state",
        )
    }

    /// Rows waiting for the quiet window (`discovered`).
    pub fn discovered(&self, limit: u32) -> Result<Vec<FileRow>> {
        self.in_state(State::Discovered, limit)
    }

    /// Rows due for hashing and validation (`stable`).
    pub fn due_for_hashing(&self, limit: u32) -> Result<Vec<FileRow>> {
        self.in_state(State::Stable, limit)
    }

    /// Rows in `retrying` whose `next_attempt_at` has come (unix ms).
    pub fn due_for_retry(&self, now_ms: i64, limit: u32) -> Result<Vec<FileRow>> {
        self.query_rows(
            &due_for_retry_sql(),
            params![now_ms, limit],
            "listing files due for retry",
        )
    }

    /// The earliest `next_attempt_at` among retrying rows (to sleep until).
    pub fn next_retry_at(&self) -> Result<Option<i64>> {
        query_row_cached(&self.conn, NEXT_RETRY_SQL, [], |r| r.get(0))
            .map_err(self.db("finding the next retry"))
    }

    /// Rows left in `uploading` (after a crash: reconcile with the server first).
    pub fn uploading(&self) -> Result<Vec<FileRow>> {
        self.in_state(State::Uploading, u32::MAX)
    }

    /// The target kinds and accounts with pending rows, with their counts:
    /// what one poll cycle walks, without loading the rows.
    pub fn pending_accounts(&self) -> Result<Vec<PendingAccount>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT target, account, COUNT(*) FROM files WHERE state = 'pending' \
                 GROUP BY target, account ORDER BY target, account",
            )
            .map_err(self.db("counting pending files"))?;
        let rows = stmt
            .query_map([], |r| {
                let kind: String = r.get(0)?;
                Ok(PendingAccount {
                    kind: kind.parse().map_err(|e| text_err(0, e))?,
                    account: r.get(1)?,
                    count: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.db("counting pending files"))?;
        Ok(rows)
    }

    /// The pending rows of `kind`/`account` whose remote ID is one of
    /// `remote_ids` (through the `files_remote` index): the rows a listed
    /// decision is about, and no other.
    pub fn pending_by_remote_id(
        &self,
        kind: TargetKind,
        account: &str,
        remote_ids: &[String],
    ) -> Result<Vec<FileRow>> {
        let mut out = Vec::new();
        for chunk in remote_ids.chunks(IDS_PER_QUERY) {
            let sql = pending_by_remote_id_sql(chunk.len());
            let args = [kind.as_str(), account]
                .into_iter()
                .chain(chunk.iter().map(String::as_str));
            out.extend(self.query_rows(
                &sql,
                rusqlite::params_from_iter(args),
                "reading pending files",
            )?);
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// How many pending rows of `kind`/`account` have a remote ID among
    /// `remote_ids` (the rest the server does not list).
    pub fn count_pending_by_remote_id(
        &self,
        kind: TargetKind,
        account: &str,
        remote_ids: &[String],
    ) -> Result<u64> {
        let mut total = 0u64;
        for chunk in remote_ids.chunks(IDS_PER_QUERY) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT COUNT(*) FROM files INDEXED BY files_remote \
                 WHERE target = ? AND account = ? AND remote_id IN ({marks}) \
                 AND state = 'pending'"
            );
            let args = [kind.as_str(), account]
                .into_iter()
                .chain(chunk.iter().map(String::as_str));
            let n: i64 = self
                .conn
                .query_row(&sql, rusqlite::params_from_iter(args), |r| r.get(0))
                .map_err(self.db("counting pending files"))?;
            total += u64::try_from(n).unwrap_or(0);
        }
        Ok(total)
    }

    /// The pending rows of `kind`/`account` (for targets polled file by file).
    pub fn pending_rows(&self, kind: TargetKind, account: &str) -> Result<Vec<FileRow>> {
        self.query_rows(
            &format!(
                "SELECT {FILE_COLUMNS} FROM files WHERE state = 'pending' \
                 AND target = ?1 AND account = ?2 ORDER BY id"
            ),
            rusqlite::params![kind.as_str(), account],
            "listing pending files",
        )
    }

    /// Rows for `docsync status`, ordered by folder and path.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<FileRow>> {
        let mut sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if !filter.states.is_empty() {
            let marks = vec!["?"; filter.states.len()].join(", ");
            sql.push_str(&format!(" AND state IN ({marks})"));
            args.extend(filter.states.iter().map(|s| s.as_str().to_owned().into()));
        } else if !filter.include_history {
            sql.push_str(" AND state NOT IN ('superseded', 'deleted')");
        }
        if let Some(folder) = &filter.folder {
            sql.push_str(" AND folder = ?");
            args.push(folder.clone().into());
        }
        sql.push_str(" ORDER BY folder, path, id LIMIT ? OFFSET ?");
        args.push(i64::from(filter.limit).into());
        args.push(i64::from(filter.offset).into());
        self.query_rows(&sql, rusqlite::params_from_iter(args), "listing files")
    }

    /// Rows of `kind` deleted locally whose upload still exists remotely and whose
    /// `remote_status` is not `done_status` (moov-images `disable_on_delete`: the
    /// images still to disable).
    pub fn deleted_with_remote(&self, kind: TargetKind, done_status: &str) -> Result<Vec<FileRow>> {
        self.query_rows(
            &format!(
                "SELECT {FILE_COLUMNS} FROM files WHERE state = 'deleted' AND target = ?1 \
                 AND remote_id IS NOT NULL AND remote_status IS NOT ?2 ORDER BY id"
            ),
            params![kind.as_str(), done_status],
            "listing deleted uploads",
        )
    }

    /// Record that docsync moved a decided file (`approved` or `rejected`) to
    /// `moved_to` (relative to the folder root). The state does not change; an event
    /// with the same from and to state records the move. The row keeps its original
    /// path (so `history PATH` finds it) and is no longer expected on disk there.
    pub fn record_move(&mut self, id: i64, moved_to: &[u8], reason: &str) -> Result<FileRow> {
        let db_path = self.path.clone();
        let now = now_ms();
        let tx = self.tx()?;
        let row = row_in(&tx, &db_path, id, State::Approved, |s| {
            matches!(s, State::Approved | State::Rejected)
        })?;
        execute_cached(
            &tx,
            "UPDATE files SET moved_to = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, moved_to, now],
        )
        .map_err(sql(&db_path, "recording a move"))?;
        insert_event(&tx, id, now, Some(row.state), row.state, reason, None)
            .map_err(sql(&db_path, "recording a move"))?;
        tx.commit().map_err(sql(&db_path, "committing a move"))?;
        Ok(FileRow {
            moved_to: Some(moved_to.to_vec()),
            updated_at: now,
            ..row
        })
    }
}

// The retry stage's queries walk the partial index `files_retry_due`
// (migration 0007): `state = 'retrying'` is written out, as the index's WHERE
// is, and `INDEXED BY` keeps the planner off `files_state_id` plus a sort.
fn due_for_retry_sql() -> String {
    format!(
        "SELECT {FILE_COLUMNS} FROM files INDEXED BY files_retry_due WHERE state = 'retrying' \
         AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2"
    )
}

const NEXT_RETRY_SQL: &str = "SELECT MIN(next_attempt_at) FROM files INDEXED BY files_retry_due \
     WHERE state = 'retrying'";

/// The retry queries, for the test that checks their plans.
#[cfg(test)]
pub(super) fn retry_queries() -> [String; 2] {
    [due_for_retry_sql(), NEXT_RETRY_SQL.to_owned()]
}
