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
    let replicas = create(inbox, files)?;
    Store::open(db)?
        .replicate(
            seed,
            &replicas,
            &format!("replicated from row {seed} by the benchmark"),
        )
        .context("replicating the seed row")?;
    Ok(())
}

/// [`replicate`] for a state in PostgreSQL at `url`, the seed named by its
/// path `seed_rel`: one statement, rows and events.
pub async fn replicate_pg(
    url: &str,
    inbox: &Path,
    seed_rel: &str,
    files: &[Planned],
) -> Result<()> {
    let replicas = create(inbox, files)?;
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to the bench's PostgreSQL")?;
    let connection = tokio::spawn(connection);
    let seed: i64 = client
        .query_one(
            "SELECT id FROM files WHERE path = $1 AND state NOT IN ('superseded', 'deleted')",
            &[&seed_rel.as_bytes()],
        )
        .await
        .with_context(|| format!("finding the row of {seed_rel}"))?
        .try_get(0)?;
    let paths: Vec<&[u8]> = replicas.iter().map(|r| r.path.as_slice()).collect();
    let accounts: Vec<&str> = replicas.iter().map(|r| r.account.as_str()).collect();
    let sizes: Vec<i64> = replicas
        .iter()
        .map(|r| i64::try_from(r.size).unwrap_or(i64::MAX))
        .collect();
    let mtimes: Vec<i64> = replicas.iter().map(|r| r.mtime_ns).collect();
    let shas: Vec<&str> = replicas.iter().map(|r| r.sha256.as_str()).collect();
    let remote_ids: Vec<Option<&str>> = replicas.iter().map(|r| r.remote_id.as_deref()).collect();
    let reason = format!("replicated from row {seed} by the benchmark");
    client
        .execute(
            "WITH ins AS ( \
                 INSERT INTO files (folder, path, target, account, purpose, size, mtime_ns, \
                     sha256, state, remote_id, remote_status, decision_reason, attempts, \
                     next_attempt_at, created_at, updated_at) \
                 SELECT s.folder, r.path, s.target, r.account, s.purpose, r.size, r.mtime_ns, \
                     r.sha256, s.state, r.remote_id, s.remote_status, s.decision_reason, \
                     s.attempts, s.next_attempt_at, s.created_at, s.updated_at \
                 FROM files s, unnest($2::bytea[], $3::text[], $4::int8[], $5::int8[], \
                     $6::text[], $7::text[]) AS r(path, account, size, mtime_ns, sha256, remote_id) \
                 WHERE s.id = $1 \
                 RETURNING id, state, updated_at) \
             INSERT INTO events (file_id, at, from_state, to_state, reason) \
             SELECT id, updated_at, NULL, state, $8 FROM ins",
            &[
                &seed,
                &paths,
                &accounts,
                &sizes,
                &mtimes,
                &shas,
                &remote_ids,
                &reason,
            ],
        )
        .await
        .context("replicating the seed row in PostgreSQL")?;
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// Create `files` under `inbox`, each as a [`Replica`]: its real size, mtime
/// and sha256, a made-up remote id.
fn create(inbox: &Path, files: &[Planned]) -> Result<Vec<Replica>> {
    fixtures::create(files)?;
    files
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
        .collect()
}
