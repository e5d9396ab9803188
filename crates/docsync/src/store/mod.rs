//! The state store: one SQLite database per state directory.
//!
//! # Shape
//!
//! The daemon (the engine's stages, the admin listener) talks to the store
//! through one interface, [`StateStore`]: one async method per question it
//! asks, and where an answer takes several store operations that must hold
//! together, one composite method that runs them atomically
//! ([`Store::atomically`]). SQLite is its one backend today; the PostgreSQL
//! store (`pg`) is the next, behind the same methods.
//!
//! [`Store`] is the SQLite database itself: a narrow API (a struct with
//! methods, no SQL outside this module). Every state change goes through
//! [`State::can_transition_to`] (the one table of allowed transitions) and one
//! private function, `apply_transition`, which updates the row and inserts its
//! event in the caller's transaction. The dry run, the baseline and the
//! read-only commands (`status`, `history`) use it directly.
//!
//! # One writer
//!
//! The daemon has exactly one writer: one [`Store`] (one connection) behind
//! [`SharedStore`], an `Arc<Mutex<Store>>` whose [`SharedStore::call`] runs a short
//! closure on tokio's blocking pool; in the daemon, [`StateStore`]'s SQLite
//! methods are the only such closures. Each is one short section (usually one
//! transaction); nothing holds the lock across an `.await`. Readers in other
//! processes (`docsync status`) open their own connection; WAL lets them read
//! while the daemon writes, and `busy_timeout` absorbs the rare checkpoint
//! contention.
//!
//! Invariant: a row's state only changes together with an `events` row recording it.
//! Invariant: at most one live (not superseded, not deleted) row per (folder, path).
//!
//! # Layout
//!
//! This file holds [`Store`] itself (transactions and batches, the one transition
//! function) and the row types. Its methods are split by the question they
//! answer, each file an `impl Store` block:
//!
//! - `open`: opening and creating a database, its migrations and pragmas.
//! - `files`: reading and writing file rows (by id, by path, lists by state).
//! - `observe`: recording what a folder scan or a hint saw on disk.
//! - `outbox`: the decision hooks' outbox (written by a trigger with the state
//!   change, read and marked by the notify stage).
//! - `identity`: which API the rows were synced against, and starting over.
//! - `upload`: upload intents and their outcomes (duplicates, quota, retries,
//!   what the server says).
//! - `overview`: the read API of `status`, `history`, the status page, the
//!   metrics and the benchmark (counts, pages, events).
//! - `seed`: bulk rows for benchmarks and load tests (never used by the daemon).
//! - `lock`: the state directory and its single-instance lock.
//! - `shared`: [`SharedStore`], one store shared between tasks.
//! - `state_store`: [`StateStore`], the one interface the daemon talks to, and
//!   how each method commits (grouped, relaxed, or on its own).
//! - `composite`: the interface's composites on SQLite, each one
//!   [`Store::atomically`] section (a scan and its verdicts, an intent after
//!   the file's re-stat, an upload's answer, a failed attempt, a decided
//!   file's move, a retry from the status page).
//! - `snapshot`: an in-memory copy of a database, for dry runs.
//! - `pg`: the PostgreSQL store for several daemons (issue 16, in progress: not
//!   behind [`StateStore`] yet, so not used by the daemon).
//!
//! Everything public is reachable as `store::X`, wherever it is defined.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, Row, Savepoint};

use crate::error::{Error, Result};
use crate::model::now_ms;
pub use crate::model::{ApiIdentity, State, TargetKey, MOOV_FILES_PER_ACCOUNT};

mod backlog;
mod budget;
mod composite;
mod files;
mod identity;
mod lock;
mod observe;
mod open;
mod outbox;
mod overview;
pub mod pg;
mod seed;
mod seen;
mod shared;
mod snapshot;
pub use snapshot::StateCopy;
mod state_store;
mod upload;
mod view;

pub use composite::{
    Explained, FileCheck, FileDetail, FileMove, IntentStart, Promotion, RetryOne, ScanRecorded,
    ScanVerdict, ServerAnswer, UploadAnswer, UploadAnswered, UploadQueue,
};
pub use files::{ListFilter, PendingAccount};
pub use lock::{create_state_dir, InstanceLock};
pub use observe::{Observation, Observed, Reconciled};
pub use outbox::{HookKind, OutboxEntry, OutboxFailure};
pub use overview::{ActivityBucket, FolderCounts, History, Page};
pub use seed::Replica;
pub use seen::SeenIds;
pub use shared::SharedStore;
pub use state_store::StateStore;
pub use upload::{BeginUpload, UploadIntent};
pub use view::StateView;

use files::get_row;
#[cfg(test)]
use open::{MIGRATIONS, MIGRATION_LIST};

pub use open::SCHEMA_VERSION;

/// The database file name inside the state directory.
pub const DB_FILE: &str = "docsync.db";

/// The lock file name inside the state directory.
pub const LOCK_FILE: &str = "lock";

/// The embedded sandbox's data directory inside the state directory (its
/// presence says the sandbox ran with this state).
pub const SANDBOX_DIR: &str = "sandbox";

/// One row of the `files` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub id: i64,
    pub folder: String,
    /// Path relative to the folder root, as raw bytes.
    pub path: Vec<u8>,
    pub target: TargetKey,
    pub size: u64,
    pub mtime_ns: i64,
    pub sha256: Option<String>,
    pub state: State,
    pub remote_id: Option<String>,
    pub remote_status: Option<String>,
    pub decision_reason: Option<String>,
    pub attempts: u32,
    /// Unix milliseconds.
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_request_id: Option<String>,
    pub remote_name: Option<String>,
    pub supersedes: Option<i64>,
    /// Where docsync moved the file after its decision (relative to the folder root).
    pub moved_to: Option<Vec<u8>>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl FileRow {
    /// The path as text (a log field, a recorded reason): exact when it is UTF-8, a
    /// byte that is not as `\xNN` ([`crate::model::text::lossless`]); the exact
    /// bytes are [`FileRow::path`]. Not escaped for a line: the text logs escape
    /// every field, a table or a message uses [`crate::model::text::escape`].
    pub fn path_display(&self) -> String {
        crate::model::text::lossless(&self.path).into_owned()
    }
}

/// One row of the `events` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub file_id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// `None` when the row was created.
    pub from_state: Option<State>,
    pub to_state: State,
    pub reason: String,
    pub request_id: Option<String>,
    /// The daemon (instance) that made the change: PostgreSQL only, where
    /// several share the state; `None` on SQLite.
    pub instance: Option<String>,
}

/// Who holds a row's lease: the daemon claiming, sending or reconciling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The instance (`state.instance`; by default `HOST:STATE_DIR`).
    pub instance: String,
    /// The host the instance last started on.
    pub hostname: String,
    pub pid: Option<i32>,
    /// When the lease runs out, unix ms by the database's clock.
    pub until_ms: i64,
    /// It ran out already (the holder died or lost the database): another
    /// daemon takes the row over, asking the server first.
    pub expired: bool,
}

/// What to do with `attempts` in a transition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Attempts {
    #[default]
    Keep,
    Increment,
    Reset,
}

/// The fields a transition sets besides the state. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Why, in words a person can act on (stored in the event).
    pub reason: String,
    /// The server's x-request-id, if a request caused this.
    pub request_id: Option<String>,
    pub sha256: Option<String>,
    pub remote_id: Option<String>,
    pub remote_status: Option<String>,
    pub decision_reason: Option<String>,
    pub remote_name: Option<String>,
    pub last_error: Option<String>,
    /// Required meaning for `retrying`: when to try again (unix ms; now if `None`).
    pub next_attempt_at: Option<i64>,
    /// New size and mtime (a re-stat saw them).
    pub observed: Option<(u64, i64)>,
    pub attempts: Attempts,
}

impl Change {
    /// A change with only a reason.
    pub fn because(reason: impl Into<String>) -> Self {
        Change {
            reason: reason.into(),
            ..Change::default()
        }
    }
}

/// The state database. See the module docs for the one-writer rule.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Inside [`Store::relaxed`]: commits are not synced, and an upload
    /// intent is refused.
    relaxed: bool,
}

const FILE_COLUMNS: &str = "id, folder, path, target, account, purpose, size, mtime_ns, sha256, \
     state, remote_id, remote_status, decision_reason, attempts, next_attempt_at, last_error, \
     last_request_id, remote_name, supersedes, moved_to, created_at, updated_at";

pub(super) fn text_err(col: usize, msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        Box::<dyn std::error::Error + Send + Sync>::from(msg),
    )
}

fn read_file_row(row: &Row<'_>) -> rusqlite::Result<FileRow> {
    let state: String = row.get(9)?;
    let kind: String = row.get(3)?;
    let size: i64 = row.get(6)?;
    let attempts: i64 = row.get(13)?;
    Ok(FileRow {
        id: row.get(0)?,
        folder: row.get(1)?,
        path: row.get(2)?,
        target: TargetKey {
            kind: kind.parse().map_err(|e| text_err(3, e))?,
            account: row.get(4)?,
            purpose: row.get(5)?,
        },
        size: u64::try_from(size).unwrap_or(0),
        mtime_ns: row.get(7)?,
        sha256: row.get(8)?,
        state: state.parse().map_err(|e| text_err(9, e))?,
        remote_id: row.get(10)?,
        remote_status: row.get(11)?,
        decision_reason: row.get(12)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: row.get(14)?,
        last_error: row.get(15)?,
        last_request_id: row.get(16)?,
        remote_name: row.get(17)?,
        supersedes: row.get(18)?,
        moved_to: row.get(19)?,
        created_at: row.get(20)?,
        updated_at: row.get(21)?,
    })
}

/// `conn.execute` through the connection's statement cache: the hot paths run the
/// same few statements for every file, so each is parsed once per connection.
fn execute_cached(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `conn.query_row` through the connection's statement cache.
fn query_row_cached<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, read)
}

fn size_i64(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

fn insert_event(
    tx: &Connection,
    file_id: i64,
    at: i64,
    from: Option<State>,
    to: State,
    reason: &str,
    request_id: Option<&str>,
) -> rusqlite::Result<()> {
    execute_cached(
        tx,
        "INSERT INTO events (file_id, at, from_state, to_state, reason, request_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            file_id,
            at,
            from.map(State::as_str),
            to.as_str(),
            reason,
            request_id
        ],
    )?;
    Ok(())
}

/// A move the state machine forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IllegalMove {
    from: State,
    to: State,
}

/// The row `row` becomes when it moves to `to` with `change` at `now`, or the
/// illegal move. Pure, so both backends apply a change the same way.
fn transitioned(
    row: &FileRow,
    to: State,
    change: &Change,
    now: i64,
) -> Result<FileRow, IllegalMove> {
    if !row.state.can_transition_to(to) {
        return Err(IllegalMove {
            from: row.state,
            to,
        });
    }
    let mut new = row.clone();
    new.state = to;
    new.updated_at = now;
    if let Some((size, mtime)) = change.observed {
        new.size = size;
        new.mtime_ns = mtime;
    }
    let set = |field: &mut Option<String>, value: &Option<String>| {
        if let Some(v) = value {
            *field = Some(v.clone());
        }
    };
    set(&mut new.sha256, &change.sha256);
    set(&mut new.remote_id, &change.remote_id);
    set(&mut new.remote_status, &change.remote_status);
    set(&mut new.decision_reason, &change.decision_reason);
    set(&mut new.remote_name, &change.remote_name);
    set(&mut new.last_error, &change.last_error);
    set(&mut new.last_request_id, &change.request_id);
    match change.attempts {
        Attempts::Keep => {}
        Attempts::Increment => new.attempts = new.attempts.saturating_add(1),
        Attempts::Reset => new.attempts = 0,
    }
    new.next_attempt_at = match to {
        State::Retrying => Some(change.next_attempt_at.unwrap_or(now)),
        _ => None,
    };
    if to == State::Discovered {
        // starting over: the old hash and name no longer describe the file
        new.sha256 = change.sha256.clone();
        new.remote_name = None;
        new.last_error = None;
        new.attempts = 0;
    }
    Ok(new)
}

/// The statement of [`apply_transition`] (`?1` the id, then the columns in
/// table order), with `$indexed` the assignments of indexed columns besides
/// `state`.
macro_rules! update_row {
    ($indexed:literal) => {
        concat!(
            "UPDATE files SET size = ?2, mtime_ns = ?3, state = ?5, remote_status = ?7, \
             decision_reason = ?8, attempts = ?9, next_attempt_at = ?10, last_error = ?11, \
             last_request_id = ?12, remote_name = ?13, updated_at = ?14",
            $indexed,
            " WHERE id = ?1"
        )
    };
}

/// [`update_row`] by which of the two indexed columns the transition changes:
/// bit 0 `sha256` (`files_content`), bit 1 `remote_id` (`files_remote`).
/// SQLite rewrites the entry of every index whose column an UPDATE assigns,
/// even to the value it had, and both keys are random (a hash, a server's
/// ID), so each entry rewritten is most often a page of its own in the WAL.
/// Most transitions change neither (`pending` -> `approved`): 1,000 decisions
/// in a 101,000-row database wrote 4,458 WAL frames this way, 6,560 with both
/// assigned.
const UPDATE_ROW: [&str; 4] = [
    update_row!(""),
    update_row!(", sha256 = ?4"),
    update_row!(", remote_id = ?6"),
    update_row!(", sha256 = ?4, remote_id = ?6"),
];

/// The one place a state changes: checks the machine, writes the row and its event.
/// Runs inside the caller's transaction.
fn apply_transition(
    tx: &Connection,
    row: &FileRow,
    to: State,
    change: &Change,
    now: i64,
) -> Result<FileRow, TransitionError> {
    let new = transitioned(row, to, change, now)
        .map_err(|IllegalMove { from, to }| TransitionError::Illegal { from, to })?;
    let sets =
        usize::from(new.sha256 != row.sha256) | usize::from(new.remote_id != row.remote_id) << 1;
    execute_cached(
        tx,
        UPDATE_ROW[sets],
        params![
            new.id,
            size_i64(new.size),
            new.mtime_ns,
            new.sha256,
            new.state.as_str(),
            new.remote_id,
            new.remote_status,
            new.decision_reason,
            i64::from(new.attempts),
            new.next_attempt_at,
            new.last_error,
            new.last_request_id,
            new.remote_name,
            now
        ],
    )?;
    insert_event(
        tx,
        new.id,
        now,
        Some(row.state),
        to,
        &change.reason,
        change.request_id.as_deref(),
    )?;
    Ok(new)
}

/// Internal error for `apply_transition`, mapped to [`Error`] with the row's context.
#[derive(Debug)]
enum TransitionError {
    Illegal { from: State, to: State },
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for TransitionError {
    fn from(e: rusqlite::Error) -> Self {
        TransitionError::Sql(e)
    }
}

impl Store {
    /// The database path (`:memory:` for in-memory stores).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        sql(&self.path, what)
    }
}

fn map_transition(db_path: &Path, row: &FileRow, e: TransitionError) -> Error {
    match e {
        TransitionError::Illegal { from, to } => Error::IllegalTransition {
            id: row.id,
            path: crate::model::text::escape(&row.path).into_owned(),
            from,
            to,
        },
        TransitionError::Sql(source) => Error::Db {
            path: db_path.to_owned(),
            what: "recording a transition",
            source,
        },
    }
}

/// A `map_err` argument: an [`Error::Db`] on the database at `path` while doing `what`.
fn sql(path: &Path, what: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Db { path, what, source }
}

/// Row `id` read inside `tx`; [`Error::StaleState`] (naming `expected`) unless its
/// state passes `ok`.
fn row_in(
    tx: &Connection,
    db_path: &Path,
    id: i64,
    expected: State,
    ok: impl Fn(State) -> bool,
) -> Result<FileRow> {
    let row = get_row(tx, id)
        .map_err(sql(db_path, "reading a file"))?
        .ok_or(Error::NoSuchFile { id })?;
    if ok(row.state) {
        Ok(row)
    } else {
        Err(Error::StaleState {
            id,
            expected,
            actual: row.state,
        })
    }
}

/// The savepoint [`Store::batch`] holds open while its closure runs.
const BATCH_SAVEPOINT: &str = "docsync_batch";

/// The savepoint [`Store::atomically`] holds open while its closure runs.
const ATOMIC_SAVEPOINT: &str = "docsync_atomic";

impl Store {
    /// One atomic section: a transaction of its own, or a savepoint inside the
    /// enclosing [`Store::batch`] (whose commit then makes it durable).
    fn tx(&mut self) -> Result<Savepoint<'_>> {
        let path = self.path.clone();
        self.conn
            .savepoint()
            .map_err(sql(&path, "starting a transaction"))
    }

    /// Run `f` with every store call inside it grouped into one commit: each
    /// call stays atomic on its own (a savepoint, rolled back alone if it fails),
    /// and all of them become durable together when `f` returns, whatever it
    /// returns. For the intake's many small steps (a hint, a promotion), where
    /// one commit per step was most of the cost. Never send a request from
    /// inside it: an intent is committed only when `f` has returned (which is
    /// how [`SharedStore::call_grouped`] uses it: it answers after the commit).
    pub fn batch<R>(&mut self, f: impl FnOnce(&mut Store) -> Result<R>) -> Result<R> {
        let path = self.path.clone();
        self.conn
            .execute_batch(&format!("SAVEPOINT {BATCH_SAVEPOINT}"))
            .map_err(sql(&path, "starting a batch"))?;
        let result = f(self);
        self.conn
            .execute_batch(&format!("RELEASE {BATCH_SAVEPOINT}"))
            .map_err(sql(&path, "committing a batch"))?;
        result
    }

    /// Run `f` as one atomic section: every store call inside it is undone
    /// together if `f` fails (a savepoint, rolled back to on an error), and
    /// kept together if it succeeds. A composite of the store interface
    /// ([`StateStore`]) runs its calls in one of these, so a failure in its
    /// second half leaves its first half undone. Inside a [`Store::batch`] it
    /// commits with the batch.
    pub fn atomically<R>(&mut self, f: impl FnOnce(&mut Store) -> Result<R>) -> Result<R> {
        let path = self.path.clone();
        self.conn
            .execute_batch(&format!("SAVEPOINT {ATOMIC_SAVEPOINT}"))
            .map_err(sql(&path, "starting an atomic section"))?;
        match f(self) {
            Ok(done) => {
                self.conn
                    .execute_batch(&format!("RELEASE {ATOMIC_SAVEPOINT}"))
                    .map_err(sql(&path, "committing an atomic section"))?;
                Ok(done)
            }
            Err(e) => {
                // undo what the section did; the error that stopped it is the one to report
                let _ = self.conn.execute_batch(&format!(
                    "ROLLBACK TO {ATOMIC_SAVEPOINT}; RELEASE {ATOMIC_SAVEPOINT}"
                ));
                Err(e)
            }
        }
    }

    /// Run `f` with its commits not synced to disk (`synchronous = NORMAL`): they
    /// survive a crash of the process, and a power loss can take back only the
    /// last of them. For the intake's writes (what a scan or a hint saw, a
    /// promotion to stable), which the next scan after a reboot sees again:
    /// one fsync per intake batch was most of a burst's cost. An upload
    /// intent is refused inside it ([`Error::IntentNotDurable`]): every intent
    /// is committed at `FULL`, and that sync makes every earlier commit
    /// durable too (the WAL is one file, synced to its end).
    pub fn relaxed<R>(&mut self, f: impl FnOnce(&mut Store) -> Result<R>) -> Result<R> {
        let path = self.path.clone();
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(sql(&path, "relaxing commits"))?;
        self.relaxed = true;
        let result = f(self);
        self.relaxed = false;
        self.recover_open_transaction();
        self.conn
            .execute_batch("PRAGMA synchronous = FULL")
            .map_err(sql(&path, "restoring synced commits"))?;
        result
    }

    /// Roll back a transaction a panicking closure left open (a [`Store::batch`]
    /// unwound before its commit), so the next call starts clean.
    fn recover_open_transaction(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Move row `id` from `expected` to `to`, in one transaction with its event.
    ///
    /// Fails with [`Error::StaleState`] if the row is no longer in `expected` and
    /// with [`Error::IllegalTransition`] if the machine forbids the move.
    pub fn transition(
        &mut self,
        id: i64,
        expected: State,
        to: State,
        change: &Change,
    ) -> Result<FileRow> {
        let path = self.path.clone();
        let tx = self.tx()?;
        let row = row_in(&tx, &path, id, expected, |s| s == expected)?;
        let new = apply_transition(&tx, &row, to, change, now_ms())
            .map_err(|e| map_transition(&path, &row, e))?;
        tx.commit().map_err(sql(&path, "committing a transition"))?;
        Ok(new)
    }

    /// The file rows `sql` (which selects [`FILE_COLUMNS`]) returns for `params`.
    fn query_rows(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        what: &'static str,
    ) -> Result<Vec<FileRow>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.db(what))?;
        let rows = stmt
            .query_map(params, read_file_row)
            .map_err(self.db(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db(what))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests;
