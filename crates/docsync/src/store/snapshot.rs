//! A throwaway copy of a state database, in memory: what a dry run decides
//! against. The daemon's own code (the intake's reconcile, the upload intent
//! with its duplicate and quota checks) runs on it unchanged; whatever it
//! writes goes into the copy, which is dropped, so the real database stays
//! byte for byte as it was.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{sql, Store};
use crate::error::{Error, Result};

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
