//! Recording what a folder scan saw, shared by every host watching the folder:
//! SQLite's reconciliation (`store::observe`, `Store::reconcile`) with the same
//! rules, in one PostgreSQL transaction per call. A path with no live row gets
//! a `discovered` one (the live-path unique index decides between two hosts
//! inserting the same path at once); a changed file goes back to `discovered`,
//! or a new row supersedes one whose content reached the server; a file
//! changed while it is `uploading` is left to its sender.

use deadpool_postgres::Transaction;

use super::super::composite::{ScanRecorded, ScanVerdict};
use super::super::{Change, FileRow, Observation, Observed, SeenIds};
use super::rows::{self, columns, Event};
use super::{PgResult, PgStore};
use crate::model::State;

/// Rows another host recorded this close to the start of a scan (or after
/// it) are not swept: the scan's walk may have passed their directory before
/// they were there. Also covers clocks that disagree by less.
const SWEEP_MARGIN_MS: i64 = 60_000;

impl PgStore {
    /// Record `observed` files of `folder` and apply each file's verdict
    /// (`verdicts[i]` for `observed[i]`: a new file too old is `skipped`, a
    /// fresh row with a problem `invalid`), in one transaction. With
    /// `complete`, live rows not observed are swept as
    /// [`PgStore::sweep_vanished`] does.
    pub async fn reconcile(
        &self,
        folder: &str,
        observed: &[Observed],
        complete: bool,
        verdicts: &[ScanVerdict],
    ) -> PgResult<ScanRecorded> {
        let what = "recording a scan";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let now = rows::db_now_ms(&tx, &self.target).await?;
        let mut out = ScanRecorded::default();
        for (i, obs) in observed.iter().enumerate() {
            let observation = self.observe_one(&tx, folder, obs, now).await?;
            out.reconciled.observations.push(observation);
            let Some(verdict) = verdicts.get(i) else {
                continue;
            };
            if let (Observation::New { id }, Some(reason)) = (observation, &verdict.too_old) {
                self.move_row(&tx, id, State::Discovered, State::Skipped, reason)
                    .await?;
                out.skipped.push(id);
                continue;
            }
            let Some(reason) = &verdict.problem else {
                continue;
            };
            let fresh = matches!(
                observation,
                Observation::New { .. }
                    | Observation::Changed { .. }
                    | Observation::Superseded { .. }
                    | Observation::Unchanged {
                        state: State::Discovered,
                        ..
                    }
            );
            if fresh {
                let id = observation.id();
                self.move_row(&tx, id, State::Discovered, State::Invalid, reason)
                    .await?;
                out.invalid.push(id);
            }
        }
        if complete {
            let mut seen = SeenIds::new();
            for obs in &out.reconciled.observations {
                seen.insert(obs.id());
            }
            out.reconciled.deleted = self.sweep_in(&tx, folder, &seen).await?;
        }
        tx.commit().await.map_err(self.db(what))?;
        Ok(out)
    }

    /// [`PgStore::reconcile`] of part of a scan, without verdicts: what
    /// became of each file, in input order.
    pub async fn observe_batch(
        &self,
        folder: &str,
        observed: &[Observed],
    ) -> PgResult<Vec<Observation>> {
        let recorded = self.reconcile(folder, observed, false, &[]).await?;
        Ok(recorded.reconciled.observations)
    }

    /// The end of a complete scan recorded in parts: the live rows of
    /// `folder` not in `seen` and older than the scan (less a margin) are
    /// `deleted`, except rows in `uploading` (their sender's). The ids deleted.
    pub async fn sweep_vanished(&self, folder: &str, seen: &SeenIds) -> PgResult<Vec<i64>> {
        let what = "recording a scan";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let deleted = self.sweep_in(&tx, folder, seen).await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(deleted)
    }

    /// `discovered` → `stable` for the live row at `path` if it still has
    /// this size and mtime; `None` otherwise (another host promoted it, or it
    /// changed).
    pub async fn promote_stable(
        &self,
        folder: &str,
        path: &[u8],
        size: u64,
        mtime_ns: i64,
        reason: &str,
    ) -> PgResult<Option<FileRow>> {
        let what = "promoting a file";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let Some(row) = self.live_row(&tx, folder, path).await? else {
            return Ok(None);
        };
        if row.state != State::Discovered || row.size != size || row.mtime_ns != mtime_ns {
            return Ok(None);
        }
        let new = self
            .apply_in(&tx, &row, State::Stable, &Change::because(reason))
            .await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(Some(new))
    }

    /// A file gone from disk: its live row `deleted` (not an `uploading` one).
    /// `true` when the path had no live row at all.
    pub async fn mark_gone(&self, folder: &str, path: &[u8], reason: &str) -> PgResult<bool> {
        let what = "recording a deletion";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let Some(row) = self.live_row(&tx, folder, path).await? else {
            return Ok(true);
        };
        if row.state != State::Uploading && row.state.can_transition_to(State::Deleted) {
            self.apply_in(&tx, &row, State::Deleted, &Change::because(reason))
                .await?;
        }
        tx.commit().await.map_err(self.db(what))?;
        Ok(false)
    }

    async fn observe_one(
        &self,
        tx: &Transaction<'_>,
        folder: &str,
        obs: &Observed,
        now: i64,
    ) -> PgResult<Observation> {
        let what = "recording a scan";
        let size = i64::try_from(obs.size).unwrap_or(i64::MAX);
        let unchanged = tx
            .prepare_cached(
                "SELECT id, state FROM files WHERE folder = $1 AND path = $2 \
                 AND state NOT IN ('superseded', 'deleted') AND size = $3 AND mtime_ns = $4 \
                 AND target = $5 AND account = $6 AND purpose = $7",
            )
            .await
            .map_err(self.db(what))?;
        let found = tx
            .query_opt(
                &unchanged,
                &[
                    &folder,
                    &obs.path,
                    &size,
                    &obs.mtime_ns,
                    &obs.target.kind.as_str(),
                    &obs.target.account,
                    &obs.target.purpose,
                ],
            )
            .await
            .map_err(self.db(what))?;
        if let Some(r) = found {
            let state: String = r.try_get(1).map_err(self.db(what))?;
            return Ok(Observation::Unchanged {
                id: r.try_get(0).map_err(self.db(what))?,
                state: state.parse().map_err(|message| super::PgError::BadRow {
                    target: self.target.clone(),
                    id: 0,
                    message,
                })?,
            });
        }
        let Some(mut row) = self.live_row(tx, folder, &obs.path).await? else {
            // no live row: a new one, unless another host inserted it meanwhile
            let inserted = self
                .insert_discovered(tx, folder, obs, None, "seen on disk", now)
                .await?;
            return match inserted {
                Some(id) => Ok(Observation::New { id }),
                // the other host's row, committed before ON CONFLICT answered
                None => {
                    let (id, state) = self.live_id(tx, folder, &obs.path).await?;
                    Ok(Observation::Unchanged { id, state })
                }
            };
        };
        if row.target != obs.target && !row.state.is_remote() && row.remote_id.is_none() {
            // the configuration maps the file elsewhere now: follow it while
            // nothing has been sent
            tx.execute(
                "UPDATE files SET target = $2, account = $3, purpose = $4, updated_at = $5 \
                 WHERE id = $1",
                &[
                    &row.id,
                    &obs.target.kind.as_str(),
                    &obs.target.account,
                    &obs.target.purpose,
                    &now,
                ],
            )
            .await
            .map_err(self.db(what))?;
            row.target = obs.target.clone();
        }
        if row.size == obs.size && row.mtime_ns == obs.mtime_ns {
            return Ok(Observation::Unchanged {
                id: row.id,
                state: row.state,
            });
        }
        Ok(match row.state {
            State::Discovered => {
                tx.execute(
                    "UPDATE files SET size = $2, mtime_ns = $3, updated_at = $4 WHERE id = $1",
                    &[&row.id, &size, &obs.mtime_ns, &now],
                )
                .await
                .map_err(self.db(what))?;
                Observation::Changed { id: row.id }
            }
            State::Uploading => Observation::Busy { id: row.id },
            State::Pending | State::Approved | State::Rejected | State::Skipped => {
                let reason = format!(
                    "content changed on disk (size {} -> {}); a new row takes over",
                    row.size, obs.size
                );
                self.apply_in(tx, &row, State::Superseded, &Change::because(reason))
                    .await?;
                let because = format!("content changed; replaces row {}", row.id);
                match self
                    .insert_discovered(tx, folder, obs, Some(row.id), &because, now)
                    .await?
                {
                    Some(new) => Observation::Superseded { old: row.id, new },
                    None => Observation::Busy { id: row.id },
                }
            }
            _ => {
                let change = Change {
                    observed: Some((obs.size, obs.mtime_ns)),
                    ..Change::because("content changed on disk; starting over")
                };
                self.apply_in(tx, &row, State::Discovered, &change).await?;
                Observation::Changed { id: row.id }
            }
        })
    }

    /// A new row in `discovered` with its event; `None` when another host's
    /// live row for the path won.
    async fn insert_discovered(
        &self,
        tx: &Transaction<'_>,
        folder: &str,
        obs: &Observed,
        supersedes: Option<i64>,
        reason: &str,
        now: i64,
    ) -> PgResult<Option<i64>> {
        let what = "recording a new file";
        let insert = tx
            .prepare_cached(
                "INSERT INTO files (folder, path, target, account, purpose, size, mtime_ns, \
                 state, supersedes, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'discovered', $8, $9, $9) \
                 ON CONFLICT (folder, path) WHERE state NOT IN ('superseded', 'deleted') \
                 DO NOTHING RETURNING id",
            )
            .await
            .map_err(self.db(what))?;
        let size = i64::try_from(obs.size).unwrap_or(i64::MAX);
        let inserted = tx
            .query_opt(
                &insert,
                &[
                    &folder,
                    &obs.path,
                    &obs.target.kind.as_str(),
                    &obs.target.account,
                    &obs.target.purpose,
                    &size,
                    &obs.mtime_ns,
                    &supersedes,
                    &now,
                ],
            )
            .await
            .map_err(self.db(what))?;
        let Some(r) = inserted else { return Ok(None) };
        let id: i64 = r.try_get(0).map_err(self.db(what))?;
        let event = Event {
            file_id: id,
            at: now,
            from: None,
            to: State::Discovered,
            reason,
            request_id: None,
            instance: &self.instance,
        };
        rows::insert_event(tx, &self.target, &event).await?;
        Ok(Some(id))
    }

    /// The live row at `path`, locked for the rest of `tx`.
    pub(super) async fn live_row(
        &self,
        tx: &Transaction<'_>,
        folder: &str,
        path: &[u8],
    ) -> PgResult<Option<FileRow>> {
        let what = "finding a file";
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT {} FROM files WHERE folder = $1 AND path = $2 \
                 AND state NOT IN ('superseded', 'deleted') FOR UPDATE",
                columns("")
            ))
            .await
            .map_err(self.db(what))?;
        let found = tx
            .query_opt(&stmt, &[&folder, &path])
            .await
            .map_err(self.db(what))?;
        found
            .map(|r| rows::read(&self.target, &r).map(|l| l.row))
            .transpose()
    }

    async fn live_id(
        &self,
        tx: &Transaction<'_>,
        folder: &str,
        path: &[u8],
    ) -> PgResult<(i64, State)> {
        let row = self
            .live_row(tx, folder, path)
            .await?
            .ok_or(super::PgError::NoSuchFile { id: 0 })?;
        Ok((row.id, row.state))
    }

    async fn sweep_in(
        &self,
        tx: &Transaction<'_>,
        folder: &str,
        seen: &SeenIds,
    ) -> PgResult<Vec<i64>> {
        let what = "sweeping vanished files";
        let before = seen.started_ms().saturating_sub(SWEEP_MARGIN_MS);
        let ids = tx
            .query(
                "SELECT id FROM files WHERE folder = $1 \
                 AND state NOT IN ('superseded', 'deleted', 'uploading') AND moved_to IS NULL \
                 AND created_at < $2",
                &[&folder, &before],
            )
            .await
            .map_err(self.db(what))?;
        let mut deleted = Vec::new();
        for r in ids {
            let id: i64 = r.try_get(0).map_err(self.db(what))?;
            if seen.contains(id) {
                continue;
            }
            let leased = rows::lock_row(tx, &self.target, id).await?;
            let row = leased.row;
            if row.state == State::Uploading || !row.state.can_transition_to(State::Deleted) {
                continue;
            }
            self.apply_in(
                tx,
                &row,
                State::Deleted,
                &Change::because("no longer on disk"),
            )
            .await?;
            deleted.push(id);
        }
        Ok(deleted)
    }

    /// Row `id` from `from` to `to` with `reason`, in `tx`.
    async fn move_row(
        &self,
        tx: &Transaction<'_>,
        id: i64,
        from: State,
        to: State,
        reason: &str,
    ) -> PgResult<FileRow> {
        let row = rows::lock_row(tx, &self.target, id).await?.row;
        rows::expect_state(&row, from)?;
        self.apply_in(tx, &row, to, &Change::because(reason)).await
    }

    pub(super) async fn apply_in(
        &self,
        tx: &Transaction<'_>,
        row: &FileRow,
        to: State,
        change: &Change,
    ) -> PgResult<FileRow> {
        rows::apply(tx, &self.target, &self.instance, row, to, change).await
    }
}
