//! A throwaway copy of a state database, in memory: what a dry run decides
//! against. The daemon's own code (the intake's reconcile, the upload intent
//! with its duplicate and quota checks) runs on it unchanged; whatever it
//! writes goes into the copy, which is dropped, so the real database stays
//! byte for byte as it was. The copy is of the SQLite database
//! ([`Store::open_snapshot`]) or of what a dry run reads from the PostgreSQL
//! state ([`StateCopy`], [`Store::open_copy`]).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};

use super::{size_i64, sql, ApiIdentity, Event, FileRow, Store};
use crate::error::{Error, Result};

/// What a pass's decisions read from a state, taken from PostgreSQL for a
/// dry run: every live row and every row that holds content on the server
/// (the quota and duplicate checks count those), each row's last event (its
/// reason), and the API the rows were synced against.
#[derive(Debug, Clone, Default)]
pub struct StateCopy {
    pub rows: Vec<FileRow>,
    /// The last event of each row in `rows`.
    pub last_events: Vec<Event>,
    pub api: Option<ApiIdentity>,
}

impl Store {
    /// An in-memory copy of the database at `path` (SQLite's backup API),
    /// migrated to this binary's schema; or, when there is no database yet, an
    /// empty one. Never creates, writes or migrates the file: without a WAL
    /// beside it (no daemon running) the file is opened `immutable` (not even a
    /// lock or a `-shm` is created); with one, read-only, so that what a
    /// running daemon committed is in the copy.
    pub fn open_snapshot(path: &Path) -> Result<Store> {
        let shown = PathBuf::from(format!("{} (a copy in memory)", path.display()));
        if !path.exists() {
            let conn = Connection::open_in_memory().map_err(sql(&shown, "opening"))?;
            return Self::setup(conn, shown);
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let uri = if Path::new(&wal).exists() {
            format!("file:{}?mode=ro", uri_path(path))
        } else {
            format!("file:{}?immutable=1", uri_path(path))
        };
        let source = Connection::open_with_flags(&uri, flags)
            .map_err(sql(path, "opening read-only for a dry run"))?;
        source
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql(path, "setting busy_timeout"))?;
        let mut copy = Connection::open_in_memory().map_err(sql(&shown, "opening"))?;
        {
            let backup = rusqlite::backup::Backup::new(&source, &mut copy)
                .map_err(sql(path, "copying for a dry run"))?;
            backup
                .run_to_completion(4096, std::time::Duration::ZERO, None)
                .map_err(sql(path, "copying for a dry run"))?;
        }
        drop(source);
        Self::setup(copy, shown).map_err(|e| match e {
            // name the real file, not the copy
            Error::SchemaTooNew { found, known, .. } => Error::SchemaTooNew {
                path: path.to_owned(),
                found,
                known,
            },
            other => other,
        })
    }
}

impl Store {
    /// An in-memory database holding `copy` (row ids kept; a row's
    /// `supersedes` left out, as the row it names may not be in the copy).
    pub fn open_copy(copy: &StateCopy, from: &str) -> Result<Store> {
        let shown = PathBuf::from(format!("{from} (a copy in memory)"));
        let conn = Connection::open_in_memory().map_err(sql(&shown, "opening"))?;
        let mut store = Self::setup(conn, shown.clone())?;
        let db = |what| sql(&shown, what);
        let tx = store.tx()?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO files (id, folder, path, target, account, purpose, size, \
                     mtime_ns, sha256, state, remote_id, remote_status, decision_reason, \
                     attempts, next_attempt_at, last_error, last_request_id, remote_name, \
                     moved_to, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
                     ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
                )
                .map_err(db("copying the state"))?;
            for r in &copy.rows {
                insert
                    .execute(params![
                        r.id,
                        r.folder,
                        r.path,
                        r.target.kind.as_str(),
                        r.target.account,
                        r.target.purpose,
                        size_i64(r.size),
                        r.mtime_ns,
                        r.sha256,
                        r.state.as_str(),
                        r.remote_id,
                        r.remote_status,
                        r.decision_reason,
                        r.attempts,
                        r.next_attempt_at,
                        r.last_error,
                        r.last_request_id,
                        r.remote_name,
                        r.moved_to,
                        r.created_at,
                        r.updated_at,
                    ])
                    .map_err(db("copying the state"))?;
            }
            let mut event = tx
                .prepare(
                    "INSERT INTO events (file_id, at, from_state, to_state, reason, request_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(db("copying the state"))?;
            for e in &copy.last_events {
                event
                    .execute(params![
                        e.file_id,
                        e.at,
                        e.from_state.map(|s| s.as_str()),
                        e.to_state.as_str(),
                        e.reason,
                        e.request_id,
                    ])
                    .map_err(db("copying the state"))?;
            }
        }
        tx.commit().map_err(db("copying the state"))?;
        if let Some(api) = &copy.api {
            store.set_api_identity(api)?;
        }
        Ok(store)
    }
}

/// `path` for a `file:` URI: every byte but unreserved ones and `/` escaped.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
