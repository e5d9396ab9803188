//! The upload intent under a lease, and its outcome.
//!
//! [`PgStore::begin_upload`] is [`crate::store::Store::begin_upload`] for
//! several hosts: in one transaction it locks the row, checks that this
//! instance still holds its lease, takes the account's advisory lock (so two
//! hosts' intents for one account are decided one after the other), then
//! checks duplicates and the quota over every host's rows and commits
//! `uploading`. When it returns `Started`, the intent is committed and on
//! disk: only then may the request be sent. The commit itself does not wait
//! for its WAL flush (the account's lock would be held across an fsync, and
//! one account's intents would go one fsync at a time); the flush is waited
//! for after the lock is released ([`PgStore::wait_durable`]), where the
//! intents of concurrent uploads share it.

use deadpool_postgres::Transaction;

use super::super::upload::{duplicate_reason, quota_reason, ON_SERVER};
use super::super::{Attempts, BeginUpload, Change, FileRow, UploadIntent};
use super::rows::{self, columns};
use super::{PgResult, PgStore};
use crate::model::{State, TargetKey};

impl PgStore {
    /// Commit the intent to upload row `id` (in `expected`: `stable` or
    /// `retrying`), leased to this instance and unexpired, with the duplicate
    /// check and the account's quota over every host's rows in the same
    /// transaction. [`PgError::LeaseLost`](super::error::PgError::LeaseLost) when the lease is not this
    /// instance's (any more): nothing changed, nothing may be sent. On
    /// `Started` the row keeps this instance's lease: renew it while the
    /// request runs.
    pub async fn begin_upload(
        &self,
        id: i64,
        expected: State,
        intent: &UploadIntent,
    ) -> PgResult<BeginUpload> {
        let what = "committing an upload intent";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(self.db(what))?;
        let leased = rows::lock_row(&tx, &self.target, id).await?;
        let holds = leased
            .lease
            .as_ref()
            .is_some_and(|l| l.owner == self.instance)
            && !leased.expired;
        if !holds {
            return Err(rows::lease_lost(&leased, &self.instance));
        }
        rows::expect_state(&leased.row, expected)?;
        let row = leased.row;
        self.lock_account(&tx, &row.target).await?;
        let (original, used) = self
            .duplicate_and_quota_in(&tx, &row.target, &intent.sha256, id)
            .await?;
        let outcome = if let Some(original) = original {
            let change = Change {
                sha256: Some(intent.sha256.clone()),
                ..Change::because(duplicate_reason(&original))
            };
            let new = self.apply_in(&tx, &row, State::Duplicate, &change).await?;
            BeginUpload::Duplicate {
                row: new,
                original: Box::new(original),
            }
        } else {
            match intent.quota {
                Some(limit) if used >= limit => {
                    let change = Change {
                        sha256: Some(intent.sha256.clone()),
                        ..Change::because(quota_reason(&row.target.account, used, limit))
                    };
                    let new = self.apply_in(&tx, &row, State::Invalid, &change).await?;
                    BeginUpload::QuotaExceeded {
                        row: new,
                        used,
                        limit,
                    }
                }
                _ => {
                    let change = Change {
                        sha256: Some(intent.sha256.clone()),
                        remote_name: intent.remote_name.clone(),
                        attempts: Attempts::Increment,
                        ..Change::because(intent.reason.clone())
                    };
                    BeginUpload::Started(self.apply_in(&tx, &row, State::Uploading, &change).await?)
                }
            }
        };
        tx.commit().await.map_err(self.db(what))?;
        if matches!(outcome, BeginUpload::Started(_)) {
            // nothing is sent for a duplicate or a full account: only an
            // intent must be on disk before this returns
            self.wait_durable(&client).await?;
        }
        Ok(outcome)
    }

    /// Wait until everything `client` committed is on disk: one synced
    /// commit of this connection's own `durability_marks` row, which waits
    /// for the WAL flush up to its record, after every earlier commit's. (A
    /// transaction that writes nothing commits without a flush.)
    async fn wait_durable(&self, client: &deadpool_postgres::Object) -> PgResult<()> {
        let what = "syncing an upload intent to disk";
        let stmt = client
            .prepare_cached(
                "INSERT INTO durability_marks (backend, marked_at) \
                 VALUES (pg_backend_pid(), now()) \
                 ON CONFLICT (backend) DO UPDATE SET marked_at = EXCLUDED.marked_at",
            )
            .await
            .map_err(self.db(what))?;
        client.execute(&stmt, &[]).await.map_err(self.db(what))?;
        Ok(())
    }

    /// The server answered row `id`'s upload with `remote_id`: `uploading` →
    /// `pending`, the lease released. Taken from whichever instance sent it,
    /// even one whose lease was taken over meanwhile: the server's answer is
    /// the truth, and the taker, reconciling, then finds the row no longer
    /// `uploading` instead of sending it again.
    pub async fn record_uploaded(
        &self,
        id: i64,
        remote_id: &str,
        request_id: Option<&str>,
    ) -> PgResult<FileRow> {
        let what = "recording an upload";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let leased = rows::lock_row(&tx, &self.target, id).await?;
        rows::expect_state(&leased.row, State::Uploading)?;
        let change = Change {
            remote_id: Some(remote_id.to_owned()),
            request_id: request_id.map(str::to_owned),
            ..Change::because(format!("uploaded by {}", self.instance))
        };
        let new = self
            .apply_in(&tx, &leased.row, State::Pending, &change)
            .await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(new)
    }

    /// How many files count against the account's quota, every host's rows
    /// (on the server or on the way).
    pub async fn quota_used(&self, target: &TargetKey) -> PgResult<u64> {
        let what = "counting the quota";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let used = self.quota_used_in(&tx, target, None).await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(used)
    }

    /// The account's advisory lock, held until `tx` ends: the intents of one
    /// account (on any host) are decided one at a time, so two hosts cannot
    /// both see room in the quota, or both miss the other's identical file.
    /// A hash collision between two accounts only serialises them more.
    async fn lock_account(&self, tx: &Transaction<'_>, target: &TargetKey) -> PgResult<()> {
        let what = "locking the account";
        let stmt = tx
            .prepare_cached(
                "SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2::text, 0))",
            )
            .await
            .map_err(self.db(what))?;
        tx.execute(&stmt, &[&target.kind.as_str(), &target.account])
            .await
            .map_err(self.db(what))?;
        Ok(())
    }

    /// Under the account's lock, in one statement: the row on the server (or
    /// on its way) with this content on this target, if any, and how many
    /// files count against the account's quota, row `id` left out of both.
    async fn duplicate_and_quota_in(
        &self,
        tx: &Transaction<'_>,
        target: &TargetKey,
        sha256: &str,
        id: i64,
    ) -> PgResult<(Option<FileRow>, u64)> {
        let what = "looking for duplicates and counting the quota";
        let sql = format!(
            "SELECT {}, q.n FROM (SELECT COUNT(*) AS n FROM files WHERE target = $1 \
               AND account = $2 AND id <> $5 AND {ON_SERVER}) q \
             LEFT JOIN LATERAL (SELECT * FROM files WHERE target = $1 AND account = $2 \
               AND purpose = $3 AND sha256 = $4 AND id <> $5 AND {ON_SERVER} \
               ORDER BY id LIMIT 1) d ON true",
            columns("d.")
        );
        let stmt = tx.prepare_cached(&sql).await.map_err(self.db(what))?;
        let found = tx
            .query_one(
                &stmt,
                &[
                    &target.kind.as_str(),
                    &target.account,
                    &target.purpose,
                    &sha256,
                    &id,
                ],
            )
            .await
            .map_err(self.db(what))?;
        let n: i64 = found.try_get(24).map_err(self.db(what))?;
        let original_id: Option<i64> = found.try_get(0).map_err(self.db(what))?;
        let original = match original_id {
            Some(_) => Some(rows::read(&self.target, &found)?.row),
            None => None,
        };
        Ok((original, u64::try_from(n).unwrap_or(0)))
    }

    async fn quota_used_in(
        &self,
        tx: &Transaction<'_>,
        target: &TargetKey,
        exclude: Option<i64>,
    ) -> PgResult<u64> {
        let what = "counting the quota";
        let sql = format!(
            "SELECT COUNT(*) FROM files WHERE target = $1 AND account = $2 \
             AND id IS DISTINCT FROM $3 AND {ON_SERVER}"
        );
        let stmt = tx.prepare_cached(&sql).await.map_err(self.db(what))?;
        let row = tx
            .query_one(&stmt, &[&target.kind.as_str(), &target.account, &exclude])
            .await
            .map_err(self.db(what))?;
        let n: i64 = row.try_get(0).map_err(self.db(what))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
