//! The decision hooks' outbox in PostgreSQL (`migrations/pg/0004`; SQLite's is
//! `store::outbox`). A trigger on `events` writes one row per subscribed hook
//! kind in the transaction of each decision, whichever daemon decided; here a
//! daemon subscribes its hooks, claims due rows one at a time (a lease, from
//! the database's clock, long enough for one delivery), and records how each
//! delivery went. Times are the database's clock; the engine's (its host's)
//! times come in only as waits ("in 5 s"), so hosts whose clocks disagree
//! still agree on what is due.

use std::time::Duration;

use tokio_postgres::Row;

use super::super::{OutboxEntry, OutboxFailure};
use super::rows::{insert_event, Event};
use super::{PgError, PgResult, PgStore};
use crate::model::{HookKind, State, TargetKey};

/// The columns [`read_entry`] reads, for the claimed rows `c`.
const ENTRY_COLUMNS: &str = "c.id, c.uid, c.hook, c.attempts, e.id, e.at, e.from_state, \
     e.to_state, e.reason, e.request_id, f.id, f.folder, f.path, f.target, f.account, \
     f.purpose, c.remote_id, c.decision_reason";

/// An undelivered row: neither delivered nor given up.
const UNDELIVERED: &str = "delivered_at IS NULL AND given_up_at IS NULL";

fn names(hooks: &[HookKind]) -> Vec<&'static str> {
    hooks.iter().map(|h| h.as_str()).collect()
}

impl PgStore {
    /// This instance delivers `hooks` from now on (none: it withdraws the
    /// ones it had). Every decision, by any daemon, writes a row for each
    /// hook kind some instance subscribed to.
    pub async fn subscribe_hooks(&self, hooks: &[HookKind]) -> PgResult<()> {
        let what = "subscribing the hooks";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        tx.execute(
            "DELETE FROM hook_subscriptions WHERE instance = $1",
            &[&self.instance],
        )
        .await
        .map_err(self.db(what))?;
        tx.execute(
            "INSERT INTO hook_subscriptions (instance, hook) \
             SELECT $1, h FROM unnest($2::text[]) AS h ON CONFLICT DO NOTHING",
            &[&self.instance, &names(hooks)],
        )
        .await
        .map_err(self.db(what))?;
        tx.commit().await.map_err(self.db(what))
    }

    /// Claim up to `limit` undelivered rows of `hooks` that are due, oldest
    /// first, for `hold` (no other instance delivers them meanwhile; rows
    /// another instance holds are left alone, its expired claims taken).
    pub async fn claim_outbox(
        &self,
        hooks: &[HookKind],
        limit: u32,
        hold: Duration,
    ) -> PgResult<Vec<OutboxEntry>> {
        if hooks.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let what = "claiming hook events";
        let client = self.client(what).await?;
        let sql = format!(
            "WITH claimed AS ( \
               UPDATE hook_outbox o SET lease_owner = $1, \
                 lease_expires_at = now() + make_interval(secs => $4::float8) \
               WHERE o.id IN ( \
                 SELECT id FROM hook_outbox WHERE {UNDELIVERED} \
                   AND next_attempt_at <= docsync_now_ms() AND hook = ANY($2) \
                   AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at <= now()) \
                 ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
               RETURNING o.*) \
             SELECT {ENTRY_COLUMNS} FROM claimed c JOIN events e ON e.id = c.event_id \
             JOIN files f ON f.id = e.file_id ORDER BY c.next_attempt_at, c.id"
        );
        let stmt = client.prepare_cached(&sql).await.map_err(self.db(what))?;
        let rows = client
            .query(
                &stmt,
                &[
                    &self.instance,
                    &names(hooks),
                    &i64::from(limit),
                    &hold.as_secs_f64(),
                ],
            )
            .await
            .map_err(self.db(what))?;
        rows.iter().map(|r| self.read_entry(r)).collect()
    }

    /// In how many milliseconds (of the database's clock; 0 or less: now) the
    /// next undelivered row of `hooks` is due for this instance: a row another
    /// instance holds is due when its claim expires, if it is still there.
    pub async fn outbox_next_due_in(&self, hooks: &[HookKind]) -> PgResult<Option<i64>> {
        if hooks.is_empty() {
            return Ok(None);
        }
        let what = "reading the hooks' outbox";
        let client = self.client(what).await?;
        let sql = format!(
            "SELECT MIN(CASE WHEN lease_owner <> $1 AND lease_expires_at > now() \
               THEN GREATEST(next_attempt_at, \
                 (extract(epoch FROM lease_expires_at) * 1000)::bigint) \
               ELSE next_attempt_at END) - docsync_now_ms() \
             FROM hook_outbox WHERE {UNDELIVERED} AND hook = ANY($2)"
        );
        let stmt = client.prepare_cached(&sql).await.map_err(self.db(what))?;
        let row = client
            .query_one(&stmt, &[&self.instance, &names(hooks)])
            .await
            .map_err(self.db(what))?;
        row.try_get(0).map_err(self.db(what))
    }

    /// How many rows are undelivered, of every hook.
    pub async fn outbox_undelivered(&self) -> PgResult<u64> {
        let what = "counting the hooks' outbox";
        let row = self
            .client(what)
            .await?
            .query_one(
                &format!("SELECT COUNT(*) FROM hook_outbox WHERE {UNDELIVERED}"),
                &[],
            )
            .await
            .map_err(self.db(what))?;
        let n: i64 = row.try_get(0).map_err(self.db(what))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Every undelivered row is due now (a restart is a retry); how many.
    pub async fn outbox_due_now(&self) -> PgResult<u64> {
        let what = "rescheduling the hooks' outbox";
        let n = self
            .client(what)
            .await?
            .execute(
                &format!(
                    "UPDATE hook_outbox SET next_attempt_at = docsync_now_ms() \
                     WHERE {UNDELIVERED} AND next_attempt_at > docsync_now_ms()"
                ),
                &[],
            )
            .await
            .map_err(self.db(what))?;
        Ok(n)
    }

    /// Row `id` was delivered (one more attempt); its claim released.
    pub async fn outbox_delivered(&self, id: i64) -> PgResult<()> {
        let what = "recording a delivered hook event";
        let client = self.client(what).await?;
        let stmt = client
            .prepare_cached(
                "UPDATE hook_outbox SET delivered_at = docsync_now_ms(), \
                 attempts = attempts + 1, last_error = NULL, lease_owner = NULL, \
                 lease_expires_at = NULL WHERE id = $1",
            )
            .await
            .map_err(self.db(what))?;
        client.execute(&stmt, &[&id]).await.map_err(self.db(what))?;
        Ok(())
    }

    /// Delivering row `id` failed with `error` (one more attempt): tried again
    /// `retry_in` from now, or, without, given up, with an event on its file
    /// (same state, so `history` shows it) saying which hook gave up and why.
    /// A row delivered meanwhile (by another instance) stays delivered.
    pub async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_in: Option<Duration>,
    ) -> PgResult<OutboxFailure> {
        let what = "recording a failed hook delivery";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let found = tx
            .query_opt(
                "SELECT o.hook, o.attempts + 1, e.file_id, f.state, \
                   o.delivered_at IS NOT NULL, docsync_now_ms() \
                 FROM hook_outbox o JOIN events e ON e.id = o.event_id \
                 JOIN files f ON f.id = e.file_id WHERE o.id = $1 FOR UPDATE OF o",
                &[&id],
            )
            .await
            .map_err(self.db(what))?
            .ok_or(PgError::NoSuchHookEvent { id })?;
        let hook: String = found.try_get(0).map_err(self.db(what))?;
        let attempts: i32 = found.try_get(1).map_err(self.db(what))?;
        let file_id: i64 = found.try_get(2).map_err(self.db(what))?;
        let state: String = found.try_get(3).map_err(self.db(what))?;
        let delivered: bool = found.try_get(4).map_err(self.db(what))?;
        let now: i64 = found.try_get(5).map_err(self.db(what))?;
        if delivered {
            // its claim expired and another instance delivered it meanwhile
            return Ok(OutboxFailure::DeliveredElsewhere);
        }
        let outcome = match retry_in {
            Some(wait) => {
                let at = now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                tx.execute(
                    "UPDATE hook_outbox SET attempts = attempts + 1, last_error = $2, \
                     next_attempt_at = $3, lease_owner = NULL, lease_expires_at = NULL \
                     WHERE id = $1",
                    &[&id, &error, &at],
                )
                .await
                .map_err(self.db(what))?;
                OutboxFailure::RetryAt(at)
            }
            None => {
                tx.execute(
                    "UPDATE hook_outbox SET attempts = attempts + 1, last_error = $2, \
                     given_up_at = $3, lease_owner = NULL, lease_expires_at = NULL \
                     WHERE id = $1",
                    &[&id, &error, &now],
                )
                .await
                .map_err(self.db("recording a hook given up"))?;
                let state: State = state.parse().map_err(|message| PgError::BadRow {
                    target: self.target.clone(),
                    id: file_id,
                    message,
                })?;
                let reason = format!(
                    "the {hook} hook gave up on this event after {attempts} attempts: {error}"
                );
                insert_event(
                    &tx,
                    &self.target,
                    &Event {
                        file_id,
                        at: now,
                        from: Some(state),
                        to: state,
                        reason: &reason,
                        request_id: None,
                        instance: &self.instance,
                    },
                )
                .await?;
                OutboxFailure::GaveUp
            }
        };
        tx.commit().await.map_err(self.db(what))?;
        Ok(outcome)
    }

    /// A row selected with [`ENTRY_COLUMNS`].
    fn read_entry(&self, row: &Row) -> PgResult<OutboxEntry> {
        let what = "reading a hook event";
        let file_id: i64 = row.try_get(10).map_err(self.db(what))?;
        let bad = |message: String| PgError::BadRow {
            target: self.target.clone(),
            id: file_id,
            message,
        };
        let text = |i: usize| -> PgResult<String> { row.try_get(i).map_err(self.db(what)) };
        let attempts: i32 = row.try_get(3).map_err(self.db(what))?;
        let from: Option<String> = row.try_get(6).map_err(self.db(what))?;
        Ok(OutboxEntry {
            id: row.try_get(0).map_err(self.db(what))?,
            uid: text(1)?,
            hook: text(2)?.parse().map_err(bad)?,
            attempts: u32::try_from(attempts).unwrap_or(0),
            event_id: row.try_get(4).map_err(self.db(what))?,
            at: row.try_get(5).map_err(self.db(what))?,
            from_state: from.map(|s| s.parse()).transpose().map_err(bad)?,
            state: text(7)?.parse().map_err(bad)?,
            reason: text(8)?,
            request_id: row.try_get(9).map_err(self.db(what))?,
            file_id,
            folder: text(11)?,
            path: row.try_get(12).map_err(self.db(what))?,
            target: TargetKey {
                kind: text(13)?.parse().map_err(bad)?,
                account: text(14)?,
                purpose: text(15)?,
            },
            remote_id: row.try_get(16).map_err(self.db(what))?,
            decision_reason: row.try_get(17).map_err(self.db(what))?,
        })
    }
}
