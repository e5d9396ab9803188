//! Recording what a folder scan saw, shared by every host watching the folder:
//! SQLite's reconciliation (`store::observe`, `Store::reconcile`) with the same
//! rules, in one PostgreSQL transaction per call. A path with no live row gets
//! a `discovered` one, or a `stable` one if the file was complete when seen
//! (the live-path unique index decides between two hosts inserting the same
//! path at once); a changed file goes back to `discovered`,
//! or a new row supersedes one whose content reached the server; a file
//! changed while it is `uploading` is left to its sender.

use std::collections::HashMap;

use deadpool_postgres::Transaction;

use super::super::composite::{Promotion, ScanRecorded, ScanVerdict, COMPLETE_WHEN_SEEN};
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
        self.relaxed(&tx).await?;
        let now = rows::db_now_ms(&tx, &self.target).await?;
        // most files of a scan are as recorded or new: both settled in one
        // statement each, the rest one by one
        let stable_at_once: Vec<bool> = verdicts.iter().map(ScanVerdict::stable_at_once).collect();
        let mut settled = self
            .settle_in_bulk(&tx, folder, observed, &stable_at_once, now)
            .await?;
        let mut out = ScanRecorded::default();
        for (i, obs) in observed.iter().enumerate() {
            let observation = match settled.remove(&i) {
                Some(seen) => seen,
                None => self.observe_one(&tx, folder, obs, now).await?,
            };
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
        self.relaxed(&tx).await?;
        let deleted = self.sweep_in(&tx, folder, seen).await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(deleted)
    }

    /// Files that held still: each `discovered` → `stable` if its live row
    /// still has the promotion's size and mtime (else left alone: another
    /// host promoted it, or it changed), relaxed as every intake write. The
    /// rows no other transaction holds are locked at once without waiting and
    /// promoted in one transaction; the others one at a time, each in a
    /// transaction of its own. (Waiting for row after row in one transaction
    /// deadlocked three daemons promoting the same files, again and again.)
    /// The rows promoted.
    pub async fn promote_stable(&self, promotions: &[Promotion]) -> PgResult<Vec<FileRow>> {
        let what = "promoting a file";
        let mut client = self.client(what).await?;
        let mut promoted = Vec::with_capacity(promotions.len());
        // first, in one transaction, every row no other transaction holds:
        // locked at once without waiting for any (SKIP LOCKED), so this
        // transaction never waits while holding row locks
        let mut left = Vec::new();
        {
            let tx = client.transaction().await.map_err(self.db(what))?;
            self.relaxed(&tx).await?;
            let mut locked = self.lock_live_rows(&tx, promotions).await?;
            let mut done = std::collections::HashSet::new();
            for (i, p) in promotions.iter().enumerate() {
                let Some(row) = locked.remove(&i) else {
                    left.push(p);
                    continue;
                };
                let still = row.state == State::Discovered
                    && row.size == p.size
                    && row.mtime_ns == p.mtime_ns;
                if still && done.insert(row.id) {
                    let change = Change::because(p.reason);
                    promoted.push(self.apply_in(&tx, &row, State::Stable, &change).await?);
                }
            }
            tx.commit().await.map_err(self.db(what))?;
        }
        // the rest one at a time, each waiting for its row in a transaction
        // of its own
        for p in left {
            let tx = client.transaction().await.map_err(self.db(what))?;
            self.relaxed(&tx).await?;
            let Some(row) = self.live_row(&tx, &p.folder, &p.path).await? else {
                continue;
            };
            if row.state != State::Discovered || row.size != p.size || row.mtime_ns != p.mtime_ns {
                continue;
            }
            let new = self
                .apply_in(&tx, &row, State::Stable, &Change::because(p.reason))
                .await?;
            tx.commit().await.map_err(self.db(what))?;
            promoted.push(new);
        }
        Ok(promoted)
    }

    /// The live rows of `promotions`' paths that no other transaction holds,
    /// locked for the rest of `tx` (`FOR UPDATE SKIP LOCKED`: never waiting),
    /// by index in `promotions`. A path missing here has no live row or is
    /// held by another transaction.
    async fn lock_live_rows(
        &self,
        tx: &Transaction<'_>,
        promotions: &[Promotion],
    ) -> PgResult<HashMap<usize, FileRow>> {
        let what = "finding files";
        let folders: Vec<&str> = promotions.iter().map(|p| p.folder.as_str()).collect();
        let paths: Vec<&[u8]> = promotions.iter().map(|p| p.path.as_slice()).collect();
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT {}, p.i FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY \
                     AS p(folder, path, i) \
                 CROSS JOIN LATERAL (SELECT * FROM files WHERE folder = p.folder \
                     AND path = p.path AND state NOT IN ('superseded', 'deleted') \
                     LIMIT 1 FOR UPDATE SKIP LOCKED) f",
                columns("f.")
            ))
            .await
            .map_err(self.db(what))?;
        let found = tx
            .query(&stmt, &[&folders, &paths])
            .await
            .map_err(self.db(what))?;
        let mut rows = HashMap::with_capacity(found.len());
        for r in found {
            // WITH ORDINALITY counts from 1; the row's own columns come first
            let ordinal: i64 = r.try_get(24).map_err(self.db(what))?;
            let Ok(i) = usize::try_from(ordinal - 1) else {
                continue;
            };
            rows.insert(i, rows::read(&self.target, &r)?.row);
        }
        Ok(rows)
    }

    /// A file gone from disk: its live row `deleted` (not an `uploading` one).
    /// `true` when the path had no live row at all.
    pub async fn mark_gone(&self, folder: &str, path: &[u8], reason: &str) -> PgResult<bool> {
        let what = "recording a deletion";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        self.relaxed(&tx).await?;
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

    /// What can be decided for many files of `observed` at once (by index
    /// in `observed`): a live row with the same size, mtime and target is
    /// [`Observation::Unchanged`] (nothing written); a path without a live
    /// row gets a `discovered` one ([`Observation::New`], with its event), or
    /// a `stable` one where `stable_at_once[i]` is set
    /// ([`Observation::NewStable`]), unless another host inserted it
    /// meanwhile. A statement for the lookup and one per state inserted,
    /// each through the live-path index; the files left out go one by one.
    async fn settle_in_bulk(
        &self,
        tx: &Transaction<'_>,
        folder: &str,
        observed: &[Observed],
        stable_at_once: &[bool],
        now: i64,
    ) -> PgResult<HashMap<usize, Observation>> {
        let what = "recording a scan";
        let mut out = HashMap::with_capacity(observed.len());
        if observed.is_empty() {
            return Ok(out);
        }
        let paths: Vec<&[u8]> = observed.iter().map(|o| o.path.as_slice()).collect();
        let sizes: Vec<i64> = observed
            .iter()
            .map(|o| i64::try_from(o.size).unwrap_or(i64::MAX))
            .collect();
        let mtimes: Vec<i64> = observed.iter().map(|o| o.mtime_ns).collect();
        let kinds: Vec<&str> = observed.iter().map(|o| o.target.kind.as_str()).collect();
        let accounts: Vec<&str> = observed.iter().map(|o| o.target.account.as_str()).collect();
        let purposes: Vec<&str> = observed.iter().map(|o| o.target.purpose.as_str()).collect();
        let lookup = tx
            .prepare_cached(
                // one lookup per file through `files_live_path` (LATERAL ...
                // LIMIT 1): a plain join let the planner, short of statistics
                // after a bulk insert, read every row of the folder per part
                "SELECT o.i, f.id, f.state, f.size = o.size AND f.mtime_ns = o.mtime_ns \
                     AND f.target = o.target AND f.account = o.account \
                     AND f.purpose = o.purpose \
                 FROM unnest($2::bytea[], $3::int8[], $4::int8[], $5::text[], $6::text[], \
                     $7::text[]) WITH ORDINALITY AS o(path, size, mtime_ns, target, account, \
                     purpose, i) \
                 LEFT JOIN LATERAL (SELECT id, state, size, mtime_ns, target, account, purpose \
                     FROM files WHERE folder = $1 AND path = o.path \
                     AND state NOT IN ('superseded', 'deleted') LIMIT 1) f ON true",
            )
            .await
            .map_err(self.db(what))?;
        let found = tx
            .query(
                &lookup,
                &[
                    &folder, &paths, &sizes, &mtimes, &kinds, &accounts, &purposes,
                ],
            )
            .await
            .map_err(self.db(what))?;
        // the files without a live row, each path once (a second sighting of
        // a path in the same call goes one by one, after the first)
        let mut absent: HashMap<&[u8], usize> = HashMap::new();
        for r in found {
            let ordinal: i64 = r.try_get(0).map_err(self.db(what))?;
            // WITH ORDINALITY counts from 1
            let Ok(i) = usize::try_from(ordinal - 1) else {
                continue;
            };
            let Some(obs) = observed.get(i) else {
                continue;
            };
            let id: Option<i64> = r.try_get(1).map_err(self.db(what))?;
            let same: Option<bool> = r.try_get(3).map_err(self.db(what))?;
            match (id, same) {
                (None, _) => {
                    absent.entry(obs.path.as_slice()).or_insert(i);
                }
                (Some(id), Some(true)) => {
                    let state: String = r.try_get(2).map_err(self.db(what))?;
                    let state = state.parse().map_err(|message| super::PgError::BadRow {
                        target: self.target.clone(),
                        id,
                        message,
                    })?;
                    out.insert(i, Observation::Unchanged { id, state });
                }
                (Some(_), _) => {}
            }
        }
        if absent.is_empty() {
            return Ok(out);
        }
        // in the scan's order within each state: row ids follow it, as one by one
        let mut new: Vec<usize> = absent.into_values().collect();
        new.sort_unstable();
        let (ready, waiting): (Vec<usize>, Vec<usize>) = new
            .into_iter()
            .partition(|&i| stable_at_once.get(i).copied().unwrap_or(false));
        for (new, to, reason) in [
            (ready, State::Stable, COMPLETE_WHEN_SEEN),
            (waiting, State::Discovered, "seen on disk"),
        ] {
            if new.is_empty() {
                continue;
            }
            let fresh: Vec<&Observed> = new.iter().filter_map(|&i| observed.get(i)).collect();
            let ids = self.insert_new(tx, folder, &fresh, to, reason, now).await?;
            // a path another host inserted meanwhile is left to the one-by-one path
            for i in new {
                let Some(obs) = observed.get(i) else { continue };
                if let Some(&id) = ids.get(&obs.path) {
                    let observation = match to {
                        State::Stable => Observation::NewStable { id },
                        _ => Observation::New { id },
                    };
                    out.insert(i, observation);
                }
            }
        }
        Ok(out)
    }

    /// New rows in state `to` for `new` (paths without a live row, in the
    /// order given), each with its creation event, in one statement; the ids
    /// of the rows inserted by path. A path another host inserted meanwhile
    /// is left out (the live-path index).
    async fn insert_new(
        &self,
        tx: &Transaction<'_>,
        folder: &str,
        new: &[&Observed],
        to: State,
        reason: &str,
        now: i64,
    ) -> PgResult<HashMap<Vec<u8>, i64>> {
        let what = "recording new files";
        let paths: Vec<&[u8]> = new.iter().map(|o| o.path.as_slice()).collect();
        let sizes: Vec<i64> = new
            .iter()
            .map(|o| i64::try_from(o.size).unwrap_or(i64::MAX))
            .collect();
        let mtimes: Vec<i64> = new.iter().map(|o| o.mtime_ns).collect();
        let kinds: Vec<&str> = new.iter().map(|o| o.target.kind.as_str()).collect();
        let accounts: Vec<&str> = new.iter().map(|o| o.target.account.as_str()).collect();
        let purposes: Vec<&str> = new.iter().map(|o| o.target.purpose.as_str()).collect();
        let insert = tx
            .prepare_cached(
                "WITH ins AS ( \
                     INSERT INTO files (folder, path, target, account, purpose, size, mtime_ns, \
                         state, created_at, updated_at) \
                     SELECT $1, n.path, n.target, n.account, n.purpose, n.size, n.mtime_ns, \
                         $10, $8, $8 \
                     FROM unnest($2::bytea[], $3::text[], $4::text[], $5::text[], $6::int8[], \
                         $7::int8[]) AS n(path, target, account, purpose, size, mtime_ns) \
                     ON CONFLICT (folder, path) WHERE state NOT IN ('superseded', 'deleted') \
                     DO NOTHING RETURNING id, path), \
                 ev AS ( \
                     INSERT INTO events (file_id, at, from_state, to_state, reason, instance) \
                     SELECT id, $8, NULL, $10, $11, $9 FROM ins) \
                 SELECT id, path FROM ins",
            )
            .await
            .map_err(self.db(what))?;
        let inserted = tx
            .query(
                &insert,
                &[
                    &folder,
                    &paths,
                    &kinds,
                    &accounts,
                    &purposes,
                    &sizes,
                    &mtimes,
                    &now,
                    &self.instance,
                    &to.as_str(),
                    &reason,
                ],
            )
            .await
            .map_err(self.db(what))?;
        let mut ids: HashMap<Vec<u8>, i64> = HashMap::with_capacity(inserted.len());
        for r in inserted {
            let id: i64 = r.try_get(0).map_err(self.db(what))?;
            let path: Vec<u8> = r.try_get(1).map_err(self.db(what))?;
            ids.insert(path, id);
        }
        Ok(ids)
    }

    /// `docsync baseline`: every file of `observed` without a live row in
    /// `folder` recorded `skipped` with `reason` (never read, never sent);
    /// rows that exist, whoever made them, are left as they are. One
    /// transaction; how many rows it made.
    pub async fn record_skipped(
        &self,
        folder: &str,
        observed: &[Observed],
        reason: &str,
    ) -> PgResult<usize> {
        let what = "recording a baseline";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let now = rows::db_now_ms(&tx, &self.target).await?;
        let all: Vec<&Observed> = observed.iter().collect();
        let ids = self
            .insert_new(&tx, folder, &all, State::Skipped, reason, now)
            .await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(ids.len())
    }

    /// The intake's writes commit without waiting for their WAL flush (as
    /// SQLite's `call_relaxed`): a crash can take back only those, and the
    /// next scan sees the same files again. Never an intent or an outcome.
    async fn relaxed(&self, tx: &Transaction<'_>) -> PgResult<()> {
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(self.db("relaxing the intake's commit"))
    }

    /// One file the bulk step left: its live row locked and compared.
    async fn observe_one(
        &self,
        tx: &Transaction<'_>,
        folder: &str,
        obs: &Observed,
        now: i64,
    ) -> PgResult<Observation> {
        let what = "recording a scan";
        let size = i64::try_from(obs.size).unwrap_or(i64::MAX);
        // the files found as recorded were settled in bulk (`settle_in_bulk`):
        // what comes here has changed, is new to a path another host just
        // took, or was seen twice in one call
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
