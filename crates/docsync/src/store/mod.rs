//! The state store: one SQLite database per state directory.
//!
//! # Shape
//!
//! [`Store`] is a narrow API (a struct with methods, no SQL outside this module) so a
//! PostgreSQL backend can take its place later. Every state change goes through
//! [`State::can_transition_to`] (the one table of allowed transitions) and one private
//! function, `apply_transition`, which updates the row and inserts its event in the
//! caller's transaction.
//!
//! # One writer
//!
//! The daemon has exactly one writer: one [`Store`] (one connection) behind
//! [`SharedStore`], an `Arc<Mutex<Store>>` whose [`SharedStore::call`] runs a short
//! closure on tokio's blocking pool. Each closure is one short section (usually one
//! transaction); nothing holds the lock across an `.await`. Readers in other processes
//! (`docsync status`) open their own connection; WAL lets them read while the daemon
//! writes, and `busy_timeout` absorbs the rare checkpoint contention.
//!
//! Invariant: a row's state only changes together with an `events` row recording it.
//! Invariant: at most one live (not superseded, not deleted) row per (folder, path).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, Row, Savepoint};
use rusqlite_migration::{Migrations, M};

use crate::error::{Error, Result};
use crate::model::TargetKind;
pub use crate::model::{State, TargetKey, MOOV_FILES_PER_ACCOUNT};

/// The embedded migrations, in order. Append only.
const MIGRATION_LIST: &[M<'static>] = &[
    M::up(include_str!("../../migrations/0001_init.sql")),
    M::up(include_str!("../../migrations/0002_status_page_indexes.sql")),
];
static MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_LIST);

/// The schema version this binary writes.
pub const SCHEMA_VERSION: usize = MIGRATION_LIST.len();

/// The database file name inside the state directory.
pub const DB_FILE: &str = "docsync.db";
/// The lock file name inside the state directory.
pub const LOCK_FILE: &str = "lock";

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
    /// The path for display (lossy for non-UTF-8 names).
    pub fn path_display(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
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

/// Rows awaiting a decision on one account (one list call per cycle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingGroup {
    pub kind: TargetKind,
    pub account: String,
    pub rows: Vec<FileRow>,
}

/// A row with its events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub file: FileRow,
    pub events: Vec<Event>,
}

/// The state database. See the module docs for the one-writer rule.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// Distinct statements kept parsed per connection: all of the store's hot paths fit.
const STATEMENT_CACHE_CAPACITY: usize = 64;

const FILE_COLUMNS: &str = "id, folder, path, target, account, purpose, size, mtime_ns, sha256, \
     state, remote_id, remote_status, decision_reason, attempts, next_attempt_at, last_error, \
     last_request_id, remote_name, supersedes, moved_to, created_at, updated_at";

const COUNTS_BY_STATE: &str = "SELECT state, COUNT(*) FROM files GROUP BY state";

use crate::model::now_ms;

fn text_err(col: usize, msg: String) -> rusqlite::Error {
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

fn read_event(row: &Row<'_>) -> rusqlite::Result<Event> {
    let from: Option<String> = row.get(3)?;
    let to: String = row.get(4)?;
    Ok(Event {
        id: row.get(0)?,
        file_id: row.get(1)?,
        at: row.get(2)?,
        from_state: from
            .map(|s| s.parse().map_err(|e| text_err(3, e)))
            .transpose()?,
        to_state: to.parse().map_err(|e| text_err(4, e))?,
        reason: row.get(5)?,
        request_id: row.get(6)?,
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

fn get_row(tx: &Connection, id: i64) -> rusqlite::Result<Option<FileRow>> {
    query_row_cached(
        tx,
        &format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"),
        [id],
        read_file_row,
    )
    .optional()
}

fn find_live_row(tx: &Connection, folder: &str, path: &[u8]) -> rusqlite::Result<Option<FileRow>> {
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

fn insert_discovered(
    tx: &Connection,
    folder: &str,
    obs: &Observed,
    supersedes: Option<i64>,
    reason: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    execute_cached(
        tx,
        "INSERT INTO files (folder, path, target, account, purpose, size, mtime_ns, state, \
         supersedes, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'discovered', ?8, ?9, ?9)",
        params![
            folder,
            obs.path,
            obs.target.kind.as_str(),
            obs.target.account,
            obs.target.purpose,
            size_i64(obs.size),
            obs.mtime_ns,
            supersedes,
            now
        ],
    )?;
    let id = tx.last_insert_rowid();
    insert_event(tx, id, now, None, State::Discovered, reason, None)?;
    Ok(id)
}

/// The one place a state changes: checks the machine, writes the row and its event.
/// Runs inside the caller's transaction.
fn apply_transition(
    tx: &Connection,
    row: &FileRow,
    to: State,
    change: &Change,
    now: i64,
) -> Result<FileRow, TransitionError> {
    if !row.state.can_transition_to(to) {
        return Err(TransitionError::Illegal {
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
    execute_cached(
        tx,
        "UPDATE files SET size = ?2, mtime_ns = ?3, sha256 = ?4, state = ?5, remote_id = ?6, \
         remote_status = ?7, decision_reason = ?8, attempts = ?9, next_attempt_at = ?10, \
         last_error = ?11, last_request_id = ?12, remote_name = ?13, updated_at = ?14 \
         WHERE id = ?1",
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

/// Create the state directory (mode 0700) if it does not exist.
pub fn create_state_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("creating state directory", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("setting permissions on state directory", dir, e))
}

impl Store {
    /// Open (creating if needed, mode 0600) the database at `path` and migrate it.
    pub fn open(path: &Path) -> Result<Store> {
        if !path.exists() {
            Self::create(path)?;
        }
        let conn = Connection::open(path).map_err(|source| Error::Db {
            path: path.to_owned(),
            what: "opening",
            source,
        })?;
        Self::setup(conn, path.to_owned())
    }

    /// Create a migrated database at `path` in one step: built under a temporary
    /// name (mode 0600) and linked into place only when complete, so a reader
    /// (`docsync status` while the daemon starts) sees no database or a whole
    /// one, never an empty one. An existing database is never replaced.
    fn create(path: &Path) -> Result<()> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
        let built = (|| {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| Error::io("creating database", &tmp, e))?;
            let conn = Connection::open(&tmp).map_err(|source| Error::Db {
                path: tmp.clone(),
                what: "opening",
                source,
            })?;
            // closing the only connection checkpoints the WAL into the file
            drop(Self::setup(conn, tmp.clone())?);
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                // a filesystem without hard links: a rename (which would replace
                // a database created meanwhile, so only if there is none)
                Err(_) if !path.exists() => {
                    std::fs::rename(&tmp, path).map_err(|e| Error::io("creating database", path, e))
                }
                Err(_) => Ok(()),
            }
        })();
        for leftover in ["", "-wal", "-shm"] {
            let mut file = tmp.clone().into_os_string();
            file.push(leftover);
            let _ = std::fs::remove_file(file);
        }
        built
    }

    /// Open the database in `state_dir` (created 0700), as the daemon does.
    pub fn open_in_state_dir(state_dir: &Path) -> Result<Store> {
        create_state_dir(state_dir)?;
        Self::open(&state_dir.join(DB_FILE))
    }

    /// Open an existing database read-only (`docsync status`, `history`, scripts):
    /// never migrates or writes; refuses a schema that is older or newer than this
    /// binary's.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        use rusqlite::OpenFlags;
        let db = |what| sql(path, what);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(db("opening read-only"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db("setting busy_timeout"))?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db("reading user_version"))?;
        let found = usize::try_from(found).unwrap_or(usize::MAX);
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                path: path.to_owned(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(Error::SchemaTooOld {
                path: path.to_owned(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        Ok(Store {
            conn,
            path: path.to_owned(),
        })
    }

    /// A private in-memory database (tests, dry runs).
    pub fn open_in_memory() -> Result<Store> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(sql(&path, "opening"))?;
        Self::setup(conn, path)
    }

    fn setup(mut conn: Connection, path: PathBuf) -> Result<Store> {
        let db = |what| sql(&path, what);
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db("setting busy_timeout"))?;
        // in-memory databases answer "memory"; that is fine
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db("enabling WAL"))?;
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(db("setting pragmas"))?;
        // every statement the daemon runs per file stays parsed (rusqlite keeps 16)
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db("reading user_version"))?;
        let found = usize::try_from(found).unwrap_or(usize::MAX);
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                path,
                found,
                known: SCHEMA_VERSION,
            });
        }
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|source| Error::Migration {
                path: path.clone(),
                source,
            })?;
        Ok(Store { conn, path })
    }

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
            path: row.path_display(),
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
    /// one commit per step was most of the cost. Never use it around an upload
    /// intent that must be committed before a request is sent.
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
        let now = now_ms();
        let path = self.path.clone();
        let tx = self.tx()?;
        let result = reconcile(&tx, folder, observed, complete, now);
        match result {
            Ok(rec) => {
                tx.commit().map_err(|source| Error::Db {
                    path,
                    what: "committing a scan",
                    source,
                })?;
                Ok(rec)
            }
            Err((row, e)) => Err(match row {
                Some(row) => map_transition(&path, &row, e),
                None => match e {
                    TransitionError::Sql(source) => Error::Db {
                        path,
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
            }),
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

    /// Commit the intent to upload row `id` (in `stable` or `retrying`), checking for
    /// duplicate content on the same target and the account's quota in the same
    /// transaction. Invariant: this commits before the request is sent.
    pub fn begin_upload(
        &mut self,
        id: i64,
        expected: State,
        intent: &UploadIntent,
    ) -> Result<BeginUpload> {
        let db_path = self.path.clone();
        let now = now_ms();
        let tx = self.tx()?;
        let row = row_in(&tx, &db_path, id, expected, |s| s == expected)?;
        let original = find_uploaded_row(&tx, &row.target, &intent.sha256, Some(id))
            .map_err(sql(&db_path, "looking for duplicates"))?;
        let outcome = if let Some(original) = original {
            let change = Change {
                sha256: Some(intent.sha256.clone()),
                ..Change::because(format!(
                    "same content already uploaded as {} (remote id {})",
                    original.path_display(),
                    original.remote_id.as_deref().unwrap_or("not yet known")
                ))
            };
            apply_transition(&tx, &row, State::Duplicate, &change, now).map(|new| {
                BeginUpload::Duplicate {
                    row: new,
                    original: Box::new(original),
                }
            })
        } else {
            let used = match intent.quota {
                Some(_) => quota_used_in(&tx, &row.target, Some(id))
                    .map_err(sql(&db_path, "counting the quota"))?,
                None => 0,
            };
            match intent.quota {
                Some(limit) if used >= limit => {
                    let change = Change {
                        sha256: Some(intent.sha256.clone()),
                        ..Change::because(format!(
                            "account {} already holds {used} files, the most it may hold is {limit}; \
                             remove files on the server or use another account",
                            row.target.account
                        ))
                    };
                    apply_transition(&tx, &row, State::Invalid, &change, now).map(|new| {
                        BeginUpload::QuotaExceeded {
                            row: new,
                            used,
                            limit,
                        }
                    })
                }
                _ => {
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
    /// `path`, only that path's live row; with `folder`, only that folder.
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
                    "SELECT {FILE_COLUMNS} FROM files WHERE state IN ('failed', 'invalid') \
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

    /// Update what the server says about a row without changing its state (a poll
    /// that saw `processing`, an image disabled after its file was deleted). Sets the
    /// remote fields present in `change` and records an event with the same from and
    /// to state. Fails with [`Error::StaleState`] if the row is not in `expected`.
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

    /// One row by id.
    pub fn get(&self, id: i64) -> Result<Option<FileRow>> {
        get_row(&self.conn, id).map_err(self.db("reading a file"))
    }

    /// The live row for a path.
    pub fn find_live(&self, folder: &str, path: &[u8]) -> Result<Option<FileRow>> {
        find_live_row(&self.conn, folder, path).map_err(self.db("finding a file"))
    }

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
            &format!(
                "SELECT {FILE_COLUMNS} FROM files WHERE state = 'retrying' \
                 AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2"
            ),
            params![now_ms, limit],
            "listing files due for retry",
        )
    }

    /// The earliest `next_attempt_at` among retrying rows (to sleep until).
    pub fn next_retry_at(&self) -> Result<Option<i64>> {
        query_row_cached(
            &self.conn,
            "SELECT MIN(next_attempt_at) FROM files WHERE state = 'retrying'",
            [],
            |r| r.get(0),
        )
        .map_err(self.db("finding the next retry"))
    }

    /// Rows left in `uploading` (after a crash: reconcile with the server first).
    pub fn uploading(&self) -> Result<Vec<FileRow>> {
        self.in_state(State::Uploading, u32::MAX)
    }

    /// Pending rows grouped per target kind and account.
    pub fn pending_groups(&self) -> Result<Vec<PendingGroup>> {
        let rows = self.query_rows(
            &format!(
                "SELECT {FILE_COLUMNS} FROM files WHERE state = 'pending' \
                 ORDER BY target, account, id"
            ),
            [],
            "listing pending files",
        )?;
        let mut groups: Vec<PendingGroup> = Vec::new();
        for row in rows {
            match groups.last_mut() {
                Some(g) if g.kind == row.target.kind && g.account == row.target.account => {
                    g.rows.push(row)
                }
                _ => groups.push(PendingGroup {
                    kind: row.target.kind,
                    account: row.target.account.clone(),
                    rows: vec![row],
                }),
            }
        }
        Ok(groups)
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

    /// How many files count against the account's quota (on the server or on the way).
    pub fn quota_used(&self, target: &TargetKey) -> Result<u64> {
        quota_used_in(&self.conn, target, None).map_err(self.db("counting the quota"))
    }

    /// Number of rows in each state (states without rows are absent).
    pub fn counts_by_state(&self) -> Result<BTreeMap<State, u64>> {
        let mut stmt = self
            .conn
            .prepare_cached(COUNTS_BY_STATE)
            .map_err(self.db("counting states"))?;
        let pairs = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.db("counting states"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db("counting states"))?;
        let mut counts = BTreeMap::new();
        for (state, n) in pairs {
            if let Ok(state) = state.parse::<State>() {
                counts.insert(state, u64::try_from(n).unwrap_or(0));
            }
        }
        Ok(counts)
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

    /// Every row ever recorded for `path` (any folder unless given), with its events.
    pub fn history(&self, folder: Option<&str>, path: &[u8]) -> Result<Vec<History>> {
        let rows = match folder {
            Some(folder) => self.query_rows(
                &format!(
                    "SELECT {FILE_COLUMNS} FROM files WHERE folder = ?1 AND path = ?2 ORDER BY id"
                ),
                params![folder, path],
                "reading history",
            )?,
            None => self.query_rows(
                &format!("SELECT {FILE_COLUMNS} FROM files WHERE path = ?1 ORDER BY id"),
                params![path],
                "reading history",
            )?,
        };
        let mut out = Vec::with_capacity(rows.len());
        for file in rows {
            let events = self.events(file.id)?;
            out.push(History { file, events });
        }
        Ok(out)
    }

    /// The events of one row, oldest first.
    pub fn events(&self, file_id: i64) -> Result<Vec<Event>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, file_id, at, from_state, to_state, reason, request_id \
                 FROM events WHERE file_id = ?1 ORDER BY id",
            )
            .map_err(self.db("reading events"))?;
        let events = stmt
            .query_map([file_id], read_event)
            .map_err(self.db("reading events"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db("reading events"))?;
        Ok(events)
    }
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
             AND sha256 = ?4 AND id IS NOT ?5 \
             AND (state IN ('uploading', 'retrying', 'pending', 'approved', 'rejected') \
                  OR (remote_id IS NOT NULL AND state <> 'duplicate')) \
             ORDER BY id LIMIT 1"
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

fn quota_used_in(
    conn: &Connection,
    target: &TargetKey,
    exclude: Option<i64>,
) -> rusqlite::Result<u64> {
    let n: i64 = query_row_cached(
        conn,
        "SELECT COUNT(*) FROM files WHERE target = ?1 AND account = ?2 AND id IS NOT ?3 \
         AND (state IN ('uploading', 'retrying', 'pending', 'approved', 'rejected') \
              OR (remote_id IS NOT NULL AND state <> 'duplicate'))",
        params![target.kind.as_str(), target.account, exclude],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

type ReconcileError = (Option<Box<FileRow>>, TransitionError);

fn reconcile(
    tx: &Connection,
    folder: &str,
    observed: &[Observed],
    complete: bool,
    now: i64,
) -> std::result::Result<Reconciled, ReconcileError> {
    let sql = |e: rusqlite::Error| (None, TransitionError::Sql(e));
    let mut out = Reconciled::default();
    for obs in observed {
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
                State::Pending | State::Approved | State::Rejected => {
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
        let seen: std::collections::HashSet<&[u8]> =
            observed.iter().map(|o| o.path.as_slice()).collect();
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT {FILE_COLUMNS} FROM files WHERE folder = ?1 \
                 AND state NOT IN ('superseded', 'deleted', 'uploading') AND moved_to IS NULL"
            ))
            .map_err(sql)?;
        let live = stmt
            .query_map([folder], read_file_row)
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)?;
        for row in live {
            if !seen.contains(row.path.as_slice()) {
                apply_transition(
                    tx,
                    &row,
                    State::Deleted,
                    &Change::because("no longer on disk"),
                    now,
                )
                .map_err(|e| (Some(Box::new(row.clone())), e))?;
                out.deleted.push(row.id);
            }
        }
    }
    Ok(out)
}

/// The single-instance lock on a state directory, held until dropped.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    dir: PathBuf,
}

impl InstanceLock {
    /// Take the exclusive lock on `<dir>/lock` (creating the directory 0700 and the file
    /// 0600), and write our pid into it. Fails fast with [`Error::AlreadyRunning`],
    /// naming the holder's pid, if another process holds it.
    pub fn acquire(dir: &Path) -> Result<InstanceLock> {
        use fs4::fs_std::FileExt;
        create_state_dir(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("opening lock file", &path, e))?;
        let locked = file
            .try_lock_exclusive()
            .map_err(|e| Error::io("locking", &path, e))?;
        if !locked {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(Error::AlreadyRunning {
                dir: dir.to_owned(),
                pid,
            });
        }
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()
        };
        write(&mut file).map_err(|e| Error::io("writing pid to lock file", &path, e))?;
        Ok(InstanceLock {
            _file: file,
            dir: dir.to_owned(),
        })
    }

    /// The locked state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The one writer, shareable between tasks: a [`Store`] behind a mutex whose calls run
/// on tokio's blocking pool, one short section each.
#[derive(Debug, Clone)]
pub struct SharedStore {
    inner: Arc<Mutex<Store>>,
    grouped: Arc<Grouped>,
}

/// A call waiting for [`SharedStore::call_grouped`]'s next commit: it runs, and
/// returns what tells its caller the outcome once the commit is known.
type GroupedJob = Box<dyn FnOnce(&mut Store) -> GroupedReply + Send>;
/// Given the commit's failure (if it failed), answer the caller.
type GroupedReply = Box<dyn FnOnce(Option<&Error>) + Send>;

/// The calls waiting for a grouped commit, and whether a flush is on its way.
#[derive(Default)]
struct Grouped {
    queue: Mutex<(Vec<GroupedJob>, bool)>,
}

impl Grouped {
    /// The waiting calls (a panic elsewhere never leaves them unusable).
    fn waiting(&self) -> std::sync::MutexGuard<'_, (Vec<GroupedJob>, bool)> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for Grouped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grouped").finish_non_exhaustive()
    }
}

impl SharedStore {
    pub fn new(store: Store) -> Self {
        SharedStore {
            inner: Arc::new(Mutex::new(store)),
            grouped: Arc::default(),
        }
    }

    /// [`SharedStore::call`] for calls that may share one commit with the
    /// calls made meanwhile (the uploader's outcomes after a request: `pending`,
    /// `retrying`, `failed`): every call waiting when the store is free runs,
    /// each atomic on its own, in one [`Store::batch`], and each caller learns
    /// its result only after that commit. One trip to the blocking pool and one
    /// commit for all of them. Never for an upload intent, which must commit
    /// on its own before its request is sent.
    pub async fn call_grouped<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Store) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<R>>();
        let job: GroupedJob = Box::new(move |store| {
            let result = f(store);
            Box::new(move |commit_failed: Option<&Error>| {
                let answer = match commit_failed {
                    Some(e) => Err(Error::Task {
                        what: "committing grouped store calls",
                        message: e.to_string(),
                    }),
                    None => result,
                };
                let _ = tx.send(answer);
            })
        });
        let start = {
            let mut queue = self.grouped.waiting();
            queue.0.push(job);
            !std::mem::replace(&mut queue.1, true)
        };
        if start {
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.flush_grouped());
        }
        rx.await.unwrap_or_else(|_| {
            Err(Error::Task {
                what: "store call",
                message: "the grouped commit was abandoned (a call panicked)".into(),
            })
        })
    }

    /// Run the waiting grouped calls, one commit per round, until none is left.
    fn flush_grouped(&self) {
        loop {
            let jobs = {
                let mut queue = self.grouped.waiting();
                if queue.0.is_empty() {
                    queue.1 = false;
                    return;
                }
                std::mem::take(&mut queue.0)
            };
            let mut replies = Vec::with_capacity(jobs.len());
            let committed = self.call_blocking(|s| {
                s.batch(|s| {
                    for job in jobs {
                        // a panicking call is rolled back alone (its savepoint)
                        // and its caller told so; the others still commit
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(s)));
                        replies.extend(ran.ok());
                    }
                    Ok(())
                })
            });
            let failed = committed.err();
            for reply in replies {
                reply(failed.as_ref());
            }
        }
    }

    /// Run `f` with exclusive access to the store on the blocking pool.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Store) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let this = self.clone();
        let joined = tokio::task::spawn_blocking(move || this.call_blocking(f)).await;
        match joined {
            Ok(result) => result,
            Err(e) => Err(Error::Task {
                what: "store call",
                message: e.to_string(),
            }),
        }
    }

    /// Run `f` with exclusive access to the store on this thread, which must be
    /// one that may block (a `spawn_blocking` closure, never an async task): for
    /// work that is blocking already, such as the uploader's hash followed by
    /// its record, so the two cost one trip to the blocking pool.
    pub fn call_blocking<R>(&self, f: impl FnOnce(&mut Store) -> Result<R>) -> Result<R> {
        // a panic inside a closure rolled its transaction back; the store is usable
        let mut store = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        store.recover_open_transaction();
        f(&mut store)
    }
}

mod overview;
pub use overview::{ActivityBucket, FolderCounts, Page};

#[cfg(test)]
mod tests;
