//! A large synced (or pending) state made fast: a few files go through a real
//! sync, then their database rows are replicated for many more files that are
//! really on disk (with their real size, mtime and sha256), as if they had been
//! synced the same way. The daemon then starts on a state it cannot tell from
//! a real one (the rows' remote ids are made up: the sandbox does not hold them).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use docsync_bench::fixtures::{self, Planned};
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

/// The id of the live row of `rel` (relative to the inbox).
pub fn row_id(db: &Path, rel: &str) -> Result<i64> {
    let conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    conn.query_row(
        "SELECT id FROM files WHERE path = ?1 AND state NOT IN ('superseded', 'deleted')",
        [rel.as_bytes()],
        |r| r.get(0),
    )
    .with_context(|| format!("finding the row of {rel}"))
}

/// Create `files` under `inbox` and give each a copy of row `seed` (its state,
/// target kind, folder and remote status), in one transaction. The daemon must
/// not be running.
pub fn replicate(db: &Path, inbox: &Path, seed: i64, files: &[Planned]) -> Result<()> {
    fixtures::create(files)?;
    let mut conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO files (folder, path, target, account, purpose, size, mtime_ns, sha256, \
             state, remote_id, remote_status, decision_reason, attempts, created_at, updated_at) \
             SELECT folder, ?2, target, ?3, purpose, ?4, ?5, ?6, state, ?7, remote_status, \
             decision_reason, attempts, created_at, updated_at FROM files WHERE id = ?1",
        )?;
        let mut event = tx.prepare(
            "INSERT INTO events (file_id, at, from_state, to_state, reason) \
             SELECT ?1, updated_at, NULL, state, 'replicated from row ' || ?2 || ' by the benchmark' \
             FROM files WHERE id = ?1",
        )?;
        for (i, f) in files.iter().enumerate() {
            let meta = std::fs::metadata(&f.path)
                .with_context(|| format!("reading {}", f.path.display()))?;
            let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
            let bytes = std::fs::read(&f.path)?;
            let sha = hex::encode(Sha256::digest(&bytes));
            let rel = f.path.strip_prefix(inbox)?;
            insert.execute(params![
                seed,
                rel.as_os_str().as_bytes(),
                f.account,
                meta.len() as i64,
                mtime_ns,
                sha,
                format!("bench-replica-{i}"),
            ])?;
            event.execute(params![tx.last_insert_rowid(), seed])?;
        }
    }
    tx.commit().context("committing the replicated rows")?;
    Ok(())
}
