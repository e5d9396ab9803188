//! The library's error type.

use std::path::PathBuf;

use crate::model::{ApiIdentity, Problem, State};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error the docsync library returns. Messages are lower-case and say what
/// failed and on which file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a file or directory failed.
    #[error("{what} {path} failed: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The configuration has one or more problems.
    #[error("invalid configuration {path}: {}", Problem::summarise(problems))]
    Config {
        path: PathBuf,
        problems: Vec<Problem>,
    },

    /// The credentials file is readable by others.
    #[error(
        "credentials file {path} has mode {mode:04o}, which lets other users read it; run `chmod 600 {path}`"
    )]
    CredentialsMode { path: PathBuf, mode: u32 },

    /// The credentials file could not be parsed.
    #[error("credentials file {path} is not valid: {message}")]
    Credentials { path: PathBuf, message: String },

    /// A credential an API needs is not configured; the message names where to set it.
    #[error("{0}")]
    MissingCredential(String),

    /// Building an API client failed.
    #[error("building the {api} client: {message}")]
    Client { api: &'static str, message: String },

    /// `--admin` names an address other machines can reach, without permission.
    #[error(
        "the admin address {addr} is not a loopback address: the status page can retry files \
         and shows file names, so it listens on 127.0.0.1 or [::1] only; use e.g. \
         127.0.0.1:{port}, or pass --admin-allow-remote (DOCSYNC_ADMIN_ALLOW_REMOTE=true) \
         behind a firewall or an authenticating proxy", port = addr.port()
    )]
    AdminNotLoopback { addr: std::net::SocketAddr },

    /// The admin listener could not bind its address.
    #[error(
        "listening on the admin address {addr} failed: {source}; pick a free port (or 0 for any)"
    )]
    AdminBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// Opening or querying the state database failed.
    #[error("database {path}: {what} failed: {source}")]
    Db {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },

    /// Running the schema migrations failed.
    #[error("database {path}: migration failed: {source}")]
    Migration {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },

    /// The database was written by a newer docsync.
    #[error(
        "database {path} has schema version {found}, newer than the {known} this docsync knows; upgrade docsync or use another state_dir"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },

    /// The database has not been migrated to this binary's schema yet (read-only open).
    #[error(
        "database {path} has schema version {found}, older than the {known} this docsync needs; run the daemon once to migrate it"
    )]
    SchemaTooOld {
        path: PathBuf,
        found: usize,
        known: usize,
    },

    /// Another docsync process holds the state directory.
    #[error("another docsync{} already uses the state directory {dir}; stop it or choose another state_dir", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning { dir: PathBuf, pid: Option<u32> },

    /// The state database's rows were synced against another API than the one
    /// configured now: the daemon does not run until told what to do with them.
    #[error(
        "the state database {db} was synced against another API than the one configured now \
         (then: {}; now: {current}): the files it records as uploaded and decided are so on \
         the old API only. Run once with --start-over to forget those rows and upload every \
         file in the folders to the new API (a backup of the old database is kept next to \
         it), or with --keep-history to record the new API and keep the rows as they are \
         (files already synced are not sent again)",
        recorded_api(recorded.as_ref())
    )]
    ApiChanged {
        db: PathBuf,
        /// `None`: not recorded (an older docsync), but the embedded sandbox ran
        /// with this state directory.
        recorded: Option<ApiIdentity>,
        current: ApiIdentity,
    },

    /// The shared state's rows (PostgreSQL) were synced against another API
    /// than the one this daemon is configured with.
    #[error(
        "the shared state {target} was synced against another API than the one configured \
         now (then: {recorded}; now: {current}): every daemon sharing it must use the same \
         API. Point this daemon at {recorded}, or, if every daemon moves to the new API, run \
         one of them once with --keep-history to record it (files already synced are not \
         sent again; --start-over is not available with a shared state: use a new database)"
    )]
    SharedApiChanged {
        target: String,
        recorded: Box<ApiIdentity>,
        current: Box<ApiIdentity>,
    },

    /// A state transition the state machine does not allow.
    #[error("file {id} ({path}): illegal transition {from} -> {to}")]
    IllegalTransition {
        id: i64,
        path: String,
        from: State,
        to: State,
    },

    /// The row is no longer in the state the caller expected (someone else moved it).
    #[error("file {id}: expected state {expected}, found {actual}")]
    StaleState {
        id: i64,
        expected: State,
        actual: State,
    },

    /// An upload intent was asked for inside [`crate::store::Store::relaxed`],
    /// whose commits are not synced: a bug in docsync, refused so the intent
    /// cannot be lost to a power loss.
    #[error(
        "file {id}: an upload intent may only be committed synced to disk \
         (a bug in docsync: please report it)"
    )]
    IntentNotDurable { id: i64 },

    /// No row with this id.
    #[error("file {id}: no such row in the database")]
    NoSuchFile { id: i64 },

    /// The shared state in PostgreSQL failed (the message names the database,
    /// never its password, and what to do).
    #[error(transparent)]
    Pg(crate::store::pg::PgError),

    /// Something the state in PostgreSQL does not carry yet.
    #[error(
        "{what} is not supported with the state in PostgreSQL yet; use the SQLite state \
         (remove state.url) for it"
    )]
    NotOnPostgres { what: &'static str },

    /// A decision hook failed (one attempt: the notify stage retries it).
    #[error("{hook} hook: {message}")]
    Hook {
        hook: crate::model::HookKind,
        message: String,
    },

    /// No hook outbox row with this id.
    #[error("hook event {id}: no such row in the outbox")]
    NoSuchHookEvent { id: i64 },

    /// The filesystem watcher could not be started.
    #[error("watching {path} failed: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },

    /// A background task panicked or was cancelled.
    #[error("{what} failed: {message}")]
    Task { what: &'static str, message: String },

    /// A glob pattern is invalid.
    #[error("ignore pattern `{pattern}` is invalid: {source}")]
    Glob {
        pattern: String,
        #[source]
        source: globset::Error,
    },
}

/// The API of [`Error::ApiChanged`]'s rows, in words.
fn recorded_api(recorded: Option<&ApiIdentity>) -> String {
    match recorded {
        Some(api) => api.to_string(),
        None => "not recorded by the older docsync that synced them, but the embedded sandbox \
                 ran with this state directory"
            .to_owned(),
    }
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
