//! Row leases: which instance works on which row, and on which account's poll.
//!
//! Every expiry is `now() + lease` on the database's clock and every check is
//! against `now()` there, so the hosts' own clocks never matter. A claim takes
//! only rows nobody holds (no lease, or an expired one) with `FOR UPDATE SKIP
//! LOCKED`: a row another transaction is claiming at that moment is skipped,
//! not waited for and never handed out twice.

use std::time::Duration;

use super::rows::{self, columns};
use super::{PgResult, PgStore};
use crate::model::TargetKind;
use crate::store::FileRow;

/// A lease on a row or an account's poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The instance holding it.
    pub owner: String,
    /// When it expires, unix milliseconds by the database's clock.
    pub expires_at_ms: i64,
}

/// A row and its lease, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedRow {
    pub row: FileRow,
    pub lease: Option<Lease>,
    /// Whether the lease had expired when the row was read (by the database's
    /// clock); `false` where the query did not ask.
    pub expired: bool,
}

/// An `uploading` row whose holder's lease expired, now leased to this
/// instance. Its request may have reached the server, or may still: **ask the
/// server (by the content marker, the server's list) before anything is
/// sent**. Found there: record it ([`PgStore::record_uploaded`]). Not found:
/// move it to `retrying` ([`PgStore::transition`]), from where a claim and
/// [`PgStore::begin_upload`] may send it again. Nothing in this store sends an
/// `uploading` row again directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub row: FileRow,
    pub lease: Lease,
    /// The instance whose lease expired.
    pub previous_owner: String,
}

/// The answer to [`PgStore::claim_poll_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollClaim {
    /// This instance polls the account until `expires_at_ms` (and may claim
    /// again to keep it).
    Mine { expires_at_ms: i64 },
    /// Another instance does; leave the account alone this cycle.
    Held(Lease),
}

/// A lease's length in milliseconds, for `now() + $n * interval '1 millisecond'`.
fn lease_ms(lease: Duration) -> f64 {
    // f64: PostgreSQL multiplies an interval by a double; milliseconds are exact
    lease.as_millis().min(1 << 52) as f64
}

impl PgStore {
    /// Lease up to `limit` rows ready to upload (`stable`, or `retrying` and due
    /// by the database's clock) that no instance holds, to this instance for
    /// `lease`. Concurrent claims by several instances never return the same row.
    pub async fn claim_uploads(&self, limit: u32, lease: Duration) -> PgResult<Vec<LeasedRow>> {
        let what = "claiming uploads";
        let sql = format!(
            "WITH due AS ( \
                 SELECT id FROM files \
                 WHERE (state = 'stable' OR (state = 'retrying' AND next_attempt_at <= docsync_now_ms())) \
                   AND (lease_owner IS NULL OR lease_expires_at <= now()) \
                 ORDER BY id LIMIT $1 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE files f SET lease_owner = $2, \
                 lease_expires_at = now() + $3::float8 * interval '1 millisecond' \
             FROM due WHERE f.id = due.id \
             RETURNING {}",
            columns("f.")
        );
        let client = self.client(what).await?;
        let stmt = client.prepare_cached(&sql).await.map_err(self.db(what))?;
        let found = client
            .query(
                &stmt,
                &[&i64::from(limit), &self.instance, &lease_ms(lease)],
            )
            .await
            .map_err(self.db(what))?;
        let mut claimed = found
            .iter()
            .map(|r| rows::read(&self.target, r))
            .collect::<PgResult<Vec<_>>>()?;
        claimed.sort_by_key(|c| c.row.id);
        Ok(claimed)
    }

    /// Extend this instance's leases on `ids` to `now() + lease` (a long upload
    /// renews its row while the request runs). Returns the ids still held; a
    /// row missing from the answer was taken over: stop working on it.
    pub async fn renew(&self, ids: &[i64], lease: Duration) -> PgResult<Vec<i64>> {
        let what = "renewing leases";
        let client = self.client(what).await?;
        let stmt = client
            .prepare_cached(
                "UPDATE files SET lease_expires_at = now() + $3::float8 * interval '1 millisecond' \
                 WHERE id = ANY($1) AND lease_owner = $2 RETURNING id",
            )
            .await
            .map_err(self.db(what))?;
        let held = client
            .query(&stmt, &[&ids, &self.instance, &lease_ms(lease)])
            .await
            .map_err(self.db(what))?;
        let mut held = held
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<i64>, _>>()
            .map_err(self.db(what))?;
        held.sort_unstable();
        Ok(held)
    }

    /// Give up this instance's leases on `ids` where no intent holds them (rows
    /// claimed but not started, at a stop): other instances may claim them at once.
    /// Returns the ids released.
    pub async fn release(&self, ids: &[i64]) -> PgResult<Vec<i64>> {
        let what = "releasing leases";
        let client = self.client(what).await?;
        let released = client
            .query(
                "UPDATE files SET lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = ANY($1) AND lease_owner = $2 AND state <> 'uploading' RETURNING id",
                &[&ids, &self.instance],
            )
            .await
            .map_err(self.db(what))?;
        let mut released = released
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<i64>, _>>()
            .map_err(self.db(what))?;
        released.sort_unstable();
        Ok(released)
    }

    /// Take over up to `limit` rows left `uploading` by an instance whose lease
    /// expired (it died, or lost the database for longer than its lease),
    /// leasing them to this instance for `lease`, with an event naming both.
    /// Each comes back as an [`Orphan`]: reconcile it with the server before
    /// anything is sent. A row this instance is still sending is never among
    /// them as long as it renews its lease.
    pub async fn take_over_expired(&self, limit: u32, lease: Duration) -> PgResult<Vec<Orphan>> {
        let what = "taking over expired uploads";
        let sql = format!(
            "WITH orphan AS ( \
                 SELECT id, lease_owner AS previous FROM files \
                 WHERE state = 'uploading' AND lease_expires_at <= now() \
                 ORDER BY id LIMIT $1 \
                 FOR UPDATE SKIP LOCKED), \
             taken AS ( \
                 UPDATE files f SET lease_owner = $2, \
                     lease_expires_at = now() + $3::float8 * interval '1 millisecond', \
                     updated_at = docsync_now_ms() \
                 FROM orphan WHERE f.id = orphan.id \
                 RETURNING {}, orphan.previous), \
             logged AS ( \
                 INSERT INTO events (file_id, at, from_state, to_state, reason, instance) \
                 SELECT id, docsync_now_ms(), 'uploading', 'uploading', \
                     'the lease of ' || previous || ' expired with the upload in flight; ' \
                     || $2 || ' took it over and asks the server before anything is sent', $2 \
                 FROM taken) \
             SELECT * FROM taken",
            columns("f.")
        );
        let client = self.client(what).await?;
        let stmt = client.prepare_cached(&sql).await.map_err(self.db(what))?;
        let found = client
            .query(
                &stmt,
                &[&i64::from(limit), &self.instance, &lease_ms(lease)],
            )
            .await
            .map_err(self.db(what))?;
        let mut orphans = Vec::with_capacity(found.len());
        for r in &found {
            let leased = rows::read(&self.target, r)?;
            let previous_owner: String = r.try_get("previous").map_err(self.db(what))?;
            let Some(lease) = leased.lease else { continue };
            orphans.push(Orphan {
                row: leased.row,
                lease,
                previous_owner,
            });
        }
        orphans.sort_by_key(|o| o.row.id);
        Ok(orphans)
    }

    /// Claim `account`'s poll (of `kind`) for `lease`: [`PollClaim::Mine`] when no
    /// other instance holds an unexpired lease on it (this instance's own is
    /// extended), else [`PollClaim::Held`] with the holder. So one instance polls
    /// an account per cycle, and another takes over once its lease expired.
    pub async fn claim_poll_account(
        &self,
        kind: TargetKind,
        account: &str,
        lease: Duration,
    ) -> PgResult<PollClaim> {
        let what = "claiming an account's poll";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let expiry = "(extract(epoch FROM lease_expires_at) * 1000)::bigint";
        let won = tx
            .query_opt(
                &format!(
                    "INSERT INTO poll_leases AS p (target, account, lease_owner, lease_expires_at) \
                     VALUES ($1, $2, $3, now() + $4::float8 * interval '1 millisecond') \
                     ON CONFLICT (target, account) DO UPDATE \
                     SET lease_owner = EXCLUDED.lease_owner, \
                         lease_expires_at = EXCLUDED.lease_expires_at \
                     WHERE p.lease_owner = EXCLUDED.lease_owner OR p.lease_expires_at <= now() \
                     RETURNING {expiry}"
                ),
                &[&kind.as_str(), &account, &self.instance, &lease_ms(lease)],
            )
            .await
            .map_err(self.db(what))?;
        let claim = match won {
            Some(row) => PollClaim::Mine {
                expires_at_ms: row.try_get(0).map_err(self.db(what))?,
            },
            None => {
                let row = tx
                    .query_one(
                        &format!(
                            "SELECT lease_owner, {expiry} FROM poll_leases \
                             WHERE target = $1 AND account = $2"
                        ),
                        &[&kind.as_str(), &account],
                    )
                    .await
                    .map_err(self.db(what))?;
                PollClaim::Held(Lease {
                    owner: row.try_get(0).map_err(self.db(what))?,
                    expires_at_ms: row.try_get(1).map_err(self.db(what))?,
                })
            }
        };
        tx.commit().await.map_err(self.db(what))?;
        Ok(claim)
    }
}
