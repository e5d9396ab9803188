//! A large synced (or pending) state made fast: a few files go through a real
//! sync, then their database rows are replicated for many more files that are
//! really on disk (with their real size, mtime and sha256), as if they had been
//! synced the same way. The daemon then starts on a state it cannot tell from
//! a real one (the rows' remote ids are made up: the sandbox does not hold them).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result};
use docsync::store::{Replica, Store};
use docsync_bench::fixtures::{self, Planned};
use sha2::{Digest, Sha256};

/// The id of the live row of `rel` (relative to the inbox).
pub fn row_id(db: &Path, rel: &str) -> Result<i64> {
    Store::open_read_only(db)?
        .history(None, rel.as_bytes())?
        .into_iter()
        .find(|h| h.file.state.is_live())
        .map(|h| h.file.id)
        .with_context(|| format!("finding the row of {rel}"))
}

/// Create `files` under `inbox` and give each a copy of row `seed` (its state,
/// target kind, folder and remote status), in one transaction. The daemon must
/// not be running.
pub fn replicate(db: &Path, inbox: &Path, seed: i64, files: &[Planned]) -> Result<()> {
    fixtures::create(files)?;
    let replicas = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let meta = std::fs::metadata(&f.path)
                .with_context(|| format!("reading {}", f.path.display()))?;
            let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
            let bytes = std::fs::read(&f.path)?;
            let rel = f.path.strip_prefix(inbox)?;
            Ok(Replica {
                path: rel.as_os_str().as_bytes().to_vec(),
                account: f.account.clone(),
                size: meta.len(),
                mtime_ns,
                sha256: hex::encode(Sha256::digest(&bytes)),
                remote_id: Some(format!("bench-replica-{i}")),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Store::open(db)?
        .replicate(
            seed,
            &replicas,
            &format!("replicated from row {seed} by the benchmark"),
        )
        .context("replicating the seed row")?;
    Ok(())
}
