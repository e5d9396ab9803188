//! Opening a state database: creating it in one step, migrating it, the
//! connection's pragmas, and the read-only and in-memory variants.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

use super::{create_state_dir, sql, Store, DB_FILE};
use crate::error::{Error, Result};

/// The embedded migrations, in order. Append only.
pub(super) const MIGRATION_LIST: &[M<'static>] = &[
    M::up(include_str!("../../migrations/0001_init.sql")),
    M::up(include_str!(
        "../../migrations/0002_status_page_indexes.sql"
    )),
    M::up(include_str!("../../migrations/0003_remote_id_index.sql")),
    M::up(include_str!("../../migrations/0004_api_identity.sql")),
    M::up(include_str!("../../migrations/0005_hook_outbox.sql")),
    // rebuilds `files` (see the file): foreign keys are off while it runs
    // (`Store::setup`) and checked before it commits
    M::up(include_str!("../../migrations/0006_skipped_state.sql")).foreign_key_check(),
    M::up(include_str!("../../migrations/0007_retry_due_index.sql")),
];

pub(super) static MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_LIST);

/// The schema version this binary writes.
pub const SCHEMA_VERSION: usize = MIGRATION_LIST.len();

/// Distinct statements kept parsed per connection: all of the store's hot paths fit.
const STATEMENT_CACHE_CAPACITY: usize = 64;

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
            relaxed: false,
        })
    }

    /// A private in-memory database (tests, dry runs).
    pub fn open_in_memory() -> Result<Store> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(sql(&path, "opening"))?;
        Self::setup(conn, path)
    }

    pub(super) fn setup(mut conn: Connection, path: PathBuf) -> Result<Store> {
        let db = |what| sql(&path, what);
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db("setting busy_timeout"))?;
        // in-memory databases answer "memory"; that is fine
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db("enabling WAL"))?;
        // FULL: every commit syncs the WAL to disk before it returns, so an
        // upload intent committed before its request survives a power loss,
        // not just a crash. Commits are grouped (`SharedStore::call_grouped`,
        // `Store::batch`), so that is one fsync per batch, not per file.
        // temp_store = MEMORY: a grouped commit runs each call in a savepoint
        // of its own (`Store::batch`), and SQLite keeps the pages a savepoint
        // may have to restore in a statement journal, which otherwise spills to
        // a temporary file past 64 KiB: about 11 page writes per uploaded file,
        // two thirds of the writer's `pwrite` calls. They are never needed
        // after a crash (the WAL is), so memory is the place for them; the
        // journal is emptied when the batch's transaction ends.
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;",
        )
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
        if found < SCHEMA_VERSION {
            // A migration that rebuilds a table (0006) must not cascade the
            // drop of the old one into `events`: foreign keys are off while
            // migrations run (the pragma is a no-op inside their transaction),
            // and `foreign_key_check` runs before such a migration commits.
            conn.execute_batch("PRAGMA foreign_keys = OFF;")
                .map_err(db("setting pragmas"))?;
            let migrated = MIGRATIONS
                .to_latest(&mut conn)
                .map_err(|source| Error::Migration {
                    path: path.clone(),
                    source,
                });
            conn.execute_batch("PRAGMA foreign_keys = ON;")
                .map_err(db("setting pragmas"))?;
            migrated?;
        }
        Ok(Store {
            conn,
            path,
            relaxed: false,
        })
    }
}
