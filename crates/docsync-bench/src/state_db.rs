//! Reading the daemon's state database (read-only, while it runs).

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

/// A read-only connection to `state/docsync.db`.
pub struct StateDb {
    conn: Connection,
}

impl StateDb {
    pub fn open(path: &Path) -> Result<StateDb> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(StateDb { conn })
    }

    /// Rows in `state`.
    pub fn count(&self, state: &str) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT count(*) FROM files WHERE state = ?1",
                [state],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .with_context(|| format!("counting {state} rows"))
    }

    /// Transitions recorded at or after `since_ms` (unix ms) into `to_state`
    /// (any state when `None`).
    pub fn events_since(&self, since_ms: i64, to_state: Option<&str>) -> Result<u64> {
        let n = match to_state {
            Some(s) => self.conn.query_row(
                "SELECT count(*) FROM events WHERE at >= ?1 AND to_state = ?2",
                rusqlite::params![since_ms, s],
                |r| r.get::<_, i64>(0),
            ),
            None => self.conn.query_row(
                "SELECT count(*) FROM events WHERE at >= ?1",
                [since_ms],
                |r| r.get::<_, i64>(0),
            ),
        };
        n.map(|n| n.max(0) as u64).context("counting events")
    }
}
