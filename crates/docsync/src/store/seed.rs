//! Bulk rows for benchmarks and load tests: a large synced (or pending) state made
//! quickly by copying one real row for many files. The daemon never calls this.

use rusqlite::params;

use super::{execute_cached, get_row, size_i64, sql, Store};
use crate::error::{Error, Result};

/// One file for [`Store::replicate`]: what its row takes from the file rather than
/// from the row it copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Path relative to the folder root, raw bytes.
    pub path: Vec<u8>,
    pub account: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub sha256: String,
    pub remote_id: Option<String>,
}

impl Store {
    /// Insert one copy of row `seed` per replica, all in one transaction, and
    /// return the new ids in order.
    ///
    /// A copy takes the seed's folder, target kind, purpose, state, remote status,
    /// decision, attempts, next attempt and timestamps, and the replica's path,
    /// account, size, mtime, sha256 and remote id. Its one event records its
    /// creation straight into the seed's state, at the seed's `updated_at`, with
    /// `reason`.
    ///
    /// For benchmarks and load tests only: a copy skips the state machine (it never
    /// went through the states before its seed's). Fails with
    /// [`Error::NoSuchFile`] if there is no row `seed`, and inserts nothing if a
    /// replica's path already has a live row in the seed's folder.
    pub fn replicate(&mut self, seed: i64, replicas: &[Replica], reason: &str) -> Result<Vec<i64>> {
        let db_path = self.path.clone();
        let tx = self.tx()?;
        get_row(&tx, seed)
            .map_err(sql(&db_path, "reading a file"))?
            .ok_or(Error::NoSuchFile { id: seed })?;
        let mut ids = Vec::with_capacity(replicas.len());
        for r in replicas {
            execute_cached(
                &tx,
                REPLICA_ROW,
                params![
                    seed,
                    r.path,
                    r.account,
                    size_i64(r.size),
                    r.mtime_ns,
                    r.sha256,
                    r.remote_id
                ],
            )
            .map_err(sql(&db_path, "replicating a row"))?;
            let id = tx.last_insert_rowid();
            execute_cached(&tx, REPLICA_EVENT, params![id, reason])
                .map_err(sql(&db_path, "replicating a row"))?;
            ids.push(id);
        }
        tx.commit()
            .map_err(sql(&db_path, "committing replicated rows"))?;
        Ok(ids)
    }
}

/// A copy of row `?1` with path `?2`, account `?3`, size `?4`, mtime `?5`, sha256
/// `?6` and remote id `?7`.
const REPLICA_ROW: &str = "INSERT INTO files (folder, path, target, account, purpose, size, \
     mtime_ns, sha256, state, remote_id, remote_status, decision_reason, attempts, \
     next_attempt_at, created_at, updated_at) \
     SELECT folder, ?2, target, ?3, purpose, ?4, ?5, ?6, state, ?7, remote_status, \
     decision_reason, attempts, next_attempt_at, created_at, updated_at FROM files WHERE id = ?1";

/// The creation event of the copy `?1`, with reason `?2`.
const REPLICA_EVENT: &str = "INSERT INTO events (file_id, at, from_state, to_state, reason) \
     SELECT ?1, updated_at, NULL, state, ?2 FROM files WHERE id = ?1";
