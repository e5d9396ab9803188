//! What the engine's stages read from the shared state: counts for progress,
//! the rows of a state, the pending rows of an account for the poll, the
//! rows left `uploading` by this instance. Each one statement; rows come back
//! as SQLite's store returns them.

use std::collections::BTreeMap;

use super::rows::{self, columns};
use super::{PgError, PgResult, PgStore};
use crate::model::{State, TargetKind};
use crate::store::{FileRow, PendingAccount};

impl PgStore {
    /// How many rows are in each state (every host's).
    pub async fn counts_by_state(&self) -> PgResult<BTreeMap<State, u64>> {
        let what = "counting states";
        let client = self.client(what).await?;
        let found = client
            .query("SELECT state, COUNT(*) FROM files GROUP BY state", &[])
            .await
            .map_err(self.db(what))?;
        let mut counts = BTreeMap::new();
        for r in found {
            let state: String = r.try_get(0).map_err(self.db(what))?;
            let n: i64 = r.try_get(1).map_err(self.db(what))?;
            if let Ok(state) = state.parse::<State>() {
                counts.insert(state, u64::try_from(n).unwrap_or(0));
            }
        }
        Ok(counts)
    }

    /// Bytes of the files waiting, being uploaded or retrying.
    pub async fn bytes_to_send(&self) -> PgResult<u64> {
        let what = "adding up the bytes to send";
        let client = self.client(what).await?;
        let r = client
            .query_one(
                "SELECT COALESCE(SUM(size), 0)::bigint FROM files \
                 WHERE state IN ('discovered', 'stable', 'uploading', 'retrying')",
                &[],
            )
            .await
            .map_err(self.db(what))?;
        let n: i64 = r.try_get(0).map_err(self.db(what))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Whether the database takes writes now (nothing changes).
    pub async fn check_writable(&self) -> PgResult<()> {
        let what = "checking that the database takes writes";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        tx.execute(
            "UPDATE instances SET last_seen_at = now() WHERE id = $1",
            &[&self.instance],
        )
        .await
        .map_err(self.db(what))?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(())
    }

    /// Up to `limit` rows in `state`, oldest first.
    pub async fn in_state(&self, state: State, limit: u32) -> PgResult<Vec<FileRow>> {
        self.rows_where(
            "listing files by state",
            "state = $1 ORDER BY id LIMIT $2",
            &[&state.as_str(), &i64::from(limit)],
        )
        .await
    }

    /// Rows left `uploading` under this instance's lease (a restart under
    /// the same instance id, or a row taken over from another instance).
    pub async fn uploading_mine(&self) -> PgResult<Vec<FileRow>> {
        self.rows_where(
            "listing interrupted uploads",
            "state = 'uploading' AND lease_owner = $1 ORDER BY id",
            &[&self.instance],
        )
        .await
    }

    /// The kinds and accounts with pending rows, with their counts.
    pub async fn pending_accounts(&self) -> PgResult<Vec<PendingAccount>> {
        let what = "counting pending files";
        let client = self.client(what).await?;
        let found = client
            .query(
                "SELECT target, account, COUNT(*) FROM files WHERE state = 'pending' \
                 GROUP BY target, account ORDER BY target, account",
                &[],
            )
            .await
            .map_err(self.db(what))?;
        let mut out = Vec::with_capacity(found.len());
        for r in found {
            let kind: String = r.try_get(0).map_err(self.db(what))?;
            let n: i64 = r.try_get(2).map_err(self.db(what))?;
            out.push(PendingAccount {
                kind: kind.parse().map_err(|message| PgError::BadRow {
                    target: self.target.clone(),
                    id: 0,
                    message,
                })?,
                account: r.try_get(1).map_err(self.db(what))?,
                count: u64::try_from(n).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// The pending rows of `kind`/`account`.
    pub async fn pending_rows(&self, kind: TargetKind, account: &str) -> PgResult<Vec<FileRow>> {
        self.rows_where(
            "listing pending files",
            "state = 'pending' AND target = $1 AND account = $2 ORDER BY id",
            &[&kind.as_str(), &account],
        )
        .await
    }

    /// The pending rows of `kind`/`account` whose remote ID is one of
    /// `decided`, and how many of its pending rows `listed` names.
    pub async fn pending_listed(
        &self,
        kind: TargetKind,
        account: &str,
        decided: &[String],
        listed: &[String],
    ) -> PgResult<(Vec<FileRow>, u64)> {
        let rows = self
            .rows_where(
                "reading pending files",
                "target = $1 AND account = $2 AND remote_id = ANY($3) AND state = 'pending' \
                 ORDER BY id",
                &[&kind.as_str(), &account, &decided],
            )
            .await?;
        let what = "counting pending files";
        let client = self.client(what).await?;
        let r = client
            .query_one(
                "SELECT COUNT(*) FROM files WHERE target = $1 AND account = $2 \
                 AND remote_id = ANY($3) AND state = 'pending'",
                &[&kind.as_str(), &account, &listed],
            )
            .await
            .map_err(self.db(what))?;
        let n: i64 = r.try_get(0).map_err(self.db(what))?;
        Ok((rows, u64::try_from(n).unwrap_or(0)))
    }

    /// Deleted rows of `kind` with a remote ID whose remote status is not
    /// `done_status`.
    pub async fn deleted_with_remote(
        &self,
        kind: TargetKind,
        done_status: &str,
    ) -> PgResult<Vec<FileRow>> {
        self.rows_where(
            "listing deleted uploads",
            "state = 'deleted' AND target = $1 AND remote_id IS NOT NULL \
             AND remote_status IS DISTINCT FROM $2 ORDER BY id",
            &[&kind.as_str(), &done_status],
        )
        .await
    }

    /// `SELECT` the file columns `WHERE condition`.
    pub(super) async fn rows_where(
        &self,
        what: &'static str,
        condition: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> PgResult<Vec<FileRow>> {
        let client = self.client(what).await?;
        let sql = format!("SELECT {} FROM files WHERE {condition}", columns(""));
        let stmt = client.prepare_cached(&sql).await.map_err(self.db(what))?;
        let found = client.query(&stmt, params).await.map_err(self.db(what))?;
        found
            .iter()
            .map(|r| rows::read(&self.target, r).map(|l| l.row))
            .collect()
    }
}
