//! What the PostgreSQL store returns when something fails. Every message says
//! which database (user, host, database name: never the password), what was
//! being done, and what to do about it.

use crate::model::State;

/// Result alias for the PostgreSQL store.
pub type PgResult<T> = std::result::Result<T, PgError>;

/// Every error of [`super::PgStore`].
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection URL (or key=value string) could not be read.
    #[error(
        "the PostgreSQL state URL is not valid: {source}; write it as \
         postgres://USER@HOST[:PORT]/DATABASE (a socket directory as ?host=/path) or as \
         libpq key=value pairs"
    )]
    BadUrl {
        #[source]
        source: tokio_postgres::Error,
    },

    /// The instance id is not usable.
    #[error(
        "instance id {0:?}: use 1 to 200 characters, none of them a control character \
         (e.g. the host name and a number)"
    )]
    BadInstanceId(String),

    /// The connection pool could not be built.
    #[error("PostgreSQL {target}: setting up the connection pool failed: {message}")]
    Setup { target: String, message: String },

    /// No connection could be had from the pool (server down, unreachable, refused).
    #[error(
        "PostgreSQL {target}: no connection for {what}: {source}; check that the server is up \
         and reachable and that the URL's user may log in"
    )]
    Pool {
        target: String,
        what: &'static str,
        #[source]
        source: deadpool_postgres::PoolError,
    },

    /// A statement failed.
    #[error("PostgreSQL {target}: {what} failed: {}", db_message(source))]
    Db {
        target: String,
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A migration failed; the transaction was rolled back, nothing is half-applied.
    #[error("PostgreSQL {target}: applying migration {name} failed: {source}")]
    Migration {
        target: String,
        name: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    /// The database was migrated by a newer docsync.
    #[error(
        "PostgreSQL {target}: the schema is at version {found}, newer than this docsync knows \
         ({known}); upgrade docsync on this host (every host sharing the database runs the \
         same version)"
    )]
    SchemaTooNew {
        target: String,
        found: i32,
        known: i32,
    },

    /// A row read back could not be understood (a value outside the schema's CHECKs).
    #[error("PostgreSQL {target}: file {id}: {message}")]
    BadRow {
        target: String,
        id: i64,
        message: String,
    },

    /// This instance does not hold the row's lease (any more): the row was not
    /// changed, and nothing may be sent for it.
    #[error(
        "file {id}: this instance ({instance}) does not hold its lease ({holder}); nothing was \
         changed and nothing may be sent for it: drop the row and claim work again"
    )]
    LeaseLost {
        id: i64,
        instance: String,
        /// Who holds it now, in words ("held by X until ...", "not leased").
        holder: String,
    },

    /// A state transition the state machine does not allow.
    #[error("file {id} ({path}): illegal transition {from} -> {to}")]
    IllegalTransition {
        id: i64,
        path: String,
        from: State,
        to: State,
    },

    /// An intent is only ever committed by [`super::PgStore::begin_upload`].
    #[error(
        "file {id}: a row becomes `uploading` only through begin_upload (the intent, with its \
         lease, duplicate and quota checks)"
    )]
    NotAnIntent { id: i64 },

    /// The row is no longer in the state the caller expected (another host moved it).
    #[error("file {id}: expected state {expected}, found {actual}")]
    StaleState {
        id: i64,
        expected: State,
        actual: State,
    },

    /// Another daemon runs with this instance id on the same database.
    #[error(
        "PostgreSQL {target}: another docsync runs as instance {instance:?} on this database; \
         give each daemon its own [state] instance (or state_dir), or stop the other one"
    )]
    InstanceTaken { target: String, instance: String },

    /// No row with this id.
    #[error("file {id}: no such row in the database")]
    NoSuchFile { id: i64 },

    /// No hook outbox row with this id.
    #[error("hook event {id}: no such row in the outbox")]
    NoSuchHookEvent { id: i64 },
}

impl From<PgError> for crate::error::Error {
    /// The errors the engine tells apart keep their shared variants (a row
    /// another host moved is `StaleState` on either backend).
    fn from(e: PgError) -> Self {
        use crate::error::Error;
        match e {
            PgError::StaleState {
                id,
                expected,
                actual,
            } => Error::StaleState {
                id,
                expected,
                actual,
            },
            PgError::NoSuchFile { id } => Error::NoSuchFile { id },
            PgError::NoSuchHookEvent { id } => Error::NoSuchHookEvent { id },
            PgError::IllegalTransition { id, path, from, to } => {
                Error::IllegalTransition { id, path, from, to }
            }
            other => Error::Pg(other),
        }
    }
}

/// What the server said (`SQLSTATE code: message`, never the `DETAIL`, which
/// may quote row values), or the client's own words when there is no server
/// error (`db error` alone says nothing).
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
