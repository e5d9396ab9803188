//! [`StateStore`]: the one store interface the daemon talks to (the engine's
//! stages and the admin listener). One async method per question they ask;
//! where an answer takes several store operations that must hold together,
//! the method is one composite, atomic in the backend (see `composite`).
//!
//! Two backends: SQLite, a [`SharedStore`] (one writer connection, calls on
//! tokio's blocking pool), one daemon's own; and PostgreSQL, a
//! [`PgInstance`] (the shared state under leases, issue 16). Every method is
//! one `match` over them.
//!
//! How each method commits on SQLite is part of its contract:
//! - *grouped* ([`SharedStore::call_grouped`]): the upload intent and the
//!   outcomes after a request share one synced commit with the calls made
//!   meanwhile; the method answers only after that commit, so the request is
//!   sent only after its intent is on disk (`synchronous = FULL`).
//! - *relaxed* ([`SharedStore::call_relaxed`]): the intake's writes commit
//!   unsynced; a power loss can take back only those, and the next scan sees
//!   the same files again.
//! - every other method: one call ([`SharedStore::call`]), synced.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::composite::{
    FileCheck, FileDetail, FileMove, IntentStart, Promotion, RetryOne, ScanRecorded, ScanVerdict,
    ServerAnswer, UploadAnswer, UploadAnswered, UploadQueue,
};
use super::pg::PgInstance;
use super::{
    ActivityBucket, Change, FileRow, FolderCounts, Holder, HookKind, Observed, OutboxEntry,
    OutboxFailure, PendingAccount, SeenIds, SharedStore, State, UploadIntent,
};
use crate::error::Result;
use crate::model::TargetKind;

/// Hook events a daemon claims at once on PostgreSQL: one, right before its
/// delivery, so a claim never waits behind other deliveries.
const PG_OUTBOX_CLAIM: u32 = 1;

/// The daemon's state store, whichever database holds it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StateStore {
    backend: Backend,
}

/// Where the state is.
#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SharedStore),
    /// Shared by several daemons, under leases (issue 16).
    Postgres(Box<PgInstance>),
}

impl StateStore {
    /// The state in SQLite, through its one writer (or a read-only connection).
    pub fn sqlite(store: SharedStore) -> Self {
        StateStore {
            backend: Backend::Sqlite(store),
        }
    }

    /// The state in PostgreSQL, shared with other daemons.
    pub fn postgres(instance: PgInstance) -> Self {
        StateStore {
            backend: Backend::Postgres(Box::new(instance)),
        }
    }

    /// Whether several daemons share this state (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// How often the leases of the rows in hand are renewed (`None`: no
    /// leases, SQLite).
    pub fn renew_every(&self) -> Option<std::time::Duration> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => Some(pg.renew_every()),
        }
    }

    /// Renew the leases of the rows in hand (`ids`); nothing to do on SQLite.
    pub async fn renew_leases(&self, ids: Vec<i64>) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(pg) => pg.renew(&ids).await,
        }
    }

    /// Resolves when this daemon can no longer be sure it holds row `id`'s
    /// lease (a request in flight must stop); never on SQLite.
    pub async fn lease_lost(&self, id: i64) {
        match &self.backend {
            Backend::Sqlite(_) => std::future::pending().await,
            Backend::Postgres(pg) => pg.lease_lost(id).await,
        }
    }

    /// At a stop: give up the leases of rows claimed but not started.
    pub async fn release_unstarted(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(pg) => pg.release_unstarted().await,
        }
    }

    /// Row `id`'s work is over: its lease's floor is dropped.
    fn done_with(&self, id: i64) {
        if let Backend::Postgres(pg) = &self.backend {
            pg.done_with(id);
        }
    }

    /// The SQLite database at `db` opened read-only, on a connection of its
    /// own (never the writer's lock): for the status page.
    pub fn sqlite_read_only(db: &Path) -> Result<Self> {
        Ok(StateStore::sqlite(SharedStore::new(
            super::Store::open_read_only(db)?,
        )))
    }

    /// Tests only: run `f` on the SQLite store itself, to set rows up or
    /// inspect them.
    #[cfg(test)]
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut super::Store) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.call(f).await,
            Backend::Postgres(_) => Err(crate::error::Error::NotOnPostgres {
                what: "a test's direct access",
            }),
        }
    }

    // ---- reads for the engine's loop, progress and metrics

    /// How many rows are in each state (live rows and history alike).
    pub async fn counts_by_state(&self) -> Result<BTreeMap<State, u64>> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(|s| s.counts_by_state()).await,
            Backend::Postgres(pg) => Ok(pg.store().counts_by_state().await?),
        }
    }

    /// The bytes of the files still to upload.
    pub async fn bytes_to_send(&self) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(|s| s.bytes_to_send()).await,
            Backend::Postgres(pg) => Ok(pg.store().bytes_to_send().await?),
        }
    }

    /// Whether the database takes writes now (nothing changes): `/readyz`.
    pub async fn check_writable(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(|s| s.check_writable()).await,
            Backend::Postgres(pg) => Ok(pg.store().check_writable().await?),
        }
    }

    /// Row `id`.
    pub async fn get(&self, id: i64) -> Result<Option<FileRow>> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.get(id)).await,
            Backend::Postgres(pg) => Ok(pg.store().get(id).await?.map(|l| l.row)),
        }
    }

    /// Move row `id` from `expected` to `to` with its event, one transaction.
    pub async fn transition(
        &self,
        id: i64,
        expected: State,
        to: State,
        change: Change,
    ) -> Result<FileRow> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call(move |s| s.transition(id, expected, to, &change))
                    .await
            }
            Backend::Postgres(pg) => {
                let row = pg.store().transition(id, expected, to, &change).await?;
                self.done_with(id);
                Ok(row)
            }
        }
    }

    /// What the server says about row `id` (in `expected`), its state kept.
    pub async fn update_remote(&self, id: i64, expected: State, change: Change) -> Result<FileRow> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call(move |s| s.update_remote(id, expected, &change))
                    .await
            }
            Backend::Postgres(pg) => Ok(pg.store().update_remote(id, expected, &change).await?),
        }
    }

    // ---- intake (relaxed)

    /// Composite: record a scan or hints of one folder and apply each file's
    /// verdict (`skipped`, `invalid`), atomically ([`super::Store::reconcile`]).
    pub async fn reconcile(
        &self,
        folder: String,
        observed: Vec<Observed>,
        complete: bool,
        verdicts: Vec<ScanVerdict>,
    ) -> Result<ScanRecorded> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call_relaxed(move |s| s.reconcile(&folder, &observed, complete, &verdicts))
                    .await
            }
            Backend::Postgres(pg) => Ok(pg
                .store()
                .reconcile(&folder, &observed, complete, &verdicts)
                .await?),
        }
    }

    /// The end of a complete scan recorded in parts: live rows of `folder`
    /// whose id is not in `seen` `deleted` ([`super::Store::sweep_vanished`]).
    pub async fn sweep_vanished(&self, folder: String, seen: SeenIds) -> Result<Vec<i64>> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call_relaxed(move |s| s.sweep_vanished(&folder, &seen))
                    .await
            }
            Backend::Postgres(pg) => Ok(pg.store().sweep_vanished(&folder, &seen).await?),
        }
    }

    /// Files that held still, each `discovered` → `stable` if its row still
    /// has that size and mtime ([`super::Store::promote_stable`], each atomic on
    /// its own, all in one commit); the rows promoted.
    pub async fn promote_stable(&self, promotions: Vec<Promotion>) -> Result<Vec<FileRow>> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call_relaxed(move |s| {
                    s.batch(|s| {
                        let mut promoted = Vec::new();
                        for p in &promotions {
                            promoted.extend(s.promote_stable(
                                &p.folder, &p.path, p.size, p.mtime_ns, p.reason,
                            )?);
                        }
                        Ok(promoted)
                    })
                })
                .await
            }
            Backend::Postgres(pg) => Ok(pg.store().promote_stable(&promotions).await?),
        }
    }

    /// A file gone from disk: its live row `deleted` ([`super::Store::mark_gone`]);
    /// `true` when the path had no live row at all.
    pub async fn mark_gone(
        &self,
        folder: String,
        path: Vec<u8>,
        reason: &'static str,
    ) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call_relaxed(move |s| s.mark_gone(&folder, &path, reason))
                    .await
            }
            Backend::Postgres(pg) => Ok(pg.store().mark_gone(&folder, &path, reason).await?),
        }
    }

    /// The rows in `discovered` (the upload stage put some back).
    pub async fn discovered(&self) -> Result<Vec<FileRow>> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(|s| s.discovered(u32::MAX)).await,
            Backend::Postgres(pg) => Ok(pg.store().in_state(State::Discovered, u32::MAX).await?),
        }
    }

    // ---- upload stage

    /// Composite read: the rows due to be hashed, then due for a retry at `now`.
    pub async fn upload_queue(&self, now: i64, limit: u32) -> Result<UploadQueue> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.upload_queue(now, limit)).await,
            Backend::Postgres(pg) => pg.upload_queue(limit).await,
        }
    }

    /// Composite, grouped: the upload intent of row `id` (in `from`), with the
    /// duplicate and quota checks, committed and synced before this answers.
    /// `check_file` stats the file just before: a file changed since it was
    /// hashed gets no intent ([`super::Store::begin_upload_checked`]).
    pub async fn begin_upload(
        &self,
        id: i64,
        from: State,
        intent: UploadIntent,
        check_file: impl FnOnce() -> Result<FileCheck> + Send + 'static,
    ) -> Result<IntentStart> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call_grouped(move |s| {
                    let file = check_file()?;
                    s.begin_upload_checked(id, from, &intent, file)
                })
                .await
            }
            Backend::Postgres(pg) => pg.begin_upload(id, from, &intent, check_file).await,
        }
    }

    /// Grouped: an upload's outcome that is one transition (`failed`,
    /// `deleted`, a file changed before its intent).
    pub async fn record_outcome(
        &self,
        id: i64,
        expected: State,
        to: State,
        change: Change,
    ) -> Result<FileRow> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call_grouped(move |s| s.transition(id, expected, to, &change))
                    .await
            }
            Backend::Postgres(pg) => {
                let row = pg.store().transition(id, expected, to, &change).await?;
                self.done_with(id);
                Ok(row)
            }
        }
    }

    /// Composite, grouped: an upload's answer, after checking its file ID is
    /// not already another content's ([`super::Store::record_upload_answer`]).
    pub async fn record_upload_answer(&self, answer: UploadAnswer) -> Result<UploadAnswered> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call_grouped(move |s| s.record_upload_answer(&answer))
                    .await
            }
            Backend::Postgres(pg) => {
                let answered = pg.store().record_upload_answer(&answer).await?;
                self.done_with(answer.id);
                Ok(answered)
            }
        }
    }

    /// Composite, grouped: a failed attempt of row `id`, `retrying` or
    /// `failed` as `decide` says given when the run of attempts began, read in
    /// the same section ([`super::Store::record_failed_attempt`]).
    pub async fn record_failed_attempt<T: Send + 'static>(
        &self,
        id: i64,
        started: i64,
        decide: impl FnOnce(i64) -> (State, Change, T) + Send + 'static,
    ) -> Result<T> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call_grouped(move |s| s.record_failed_attempt(id, started, decide))
                    .await
            }
            Backend::Postgres(pg) => {
                let back = pg
                    .store()
                    .record_failed_attempt(id, started, decide)
                    .await?;
                self.done_with(id);
                Ok(back)
            }
        }
    }

    // ---- settle

    /// Rows in `uploading` that `is_sending` says no upload of this process
    /// is sending; `is_sending` is asked after the rows are read, while no
    /// outcome can be recorded.
    pub async fn stuck_uploading(
        &self,
        is_sending: impl Fn(i64) -> bool + Send + 'static,
    ) -> Result<Vec<FileRow>> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call(move |s| {
                    let rows = s.uploading()?;
                    Ok(rows.into_iter().filter(|r| !is_sending(r.id)).collect())
                })
                .await
            }
            Backend::Postgres(pg) => pg.stuck_uploading(is_sending).await,
        }
    }

    /// Composite: row `id`'s upload is on the server, and decided if the
    /// answer said so; both or neither ([`super::Store::record_on_server`]).
    pub async fn record_on_server(&self, id: i64, answer: ServerAnswer) -> Result<FileRow> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.record_on_server(id, &answer)).await,
            Backend::Postgres(pg) => {
                let row = pg.store().record_on_server(id, &answer).await?;
                self.done_with(id);
                Ok(row)
            }
        }
    }

    // ---- poll

    /// The kinds and accounts with pending rows, with their counts.
    pub async fn pending_accounts(&self) -> Result<Vec<PendingAccount>> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(|s| s.pending_accounts()).await,
            Backend::Postgres(pg) => pg.pending_accounts().await,
        }
    }

    /// Every pending row of `kind`/`account`.
    pub async fn pending_rows(&self, kind: TargetKind, account: String) -> Result<Vec<FileRow>> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.pending_rows(kind, &account)).await,
            Backend::Postgres(pg) => Ok(pg.store().pending_rows(kind, &account).await?),
        }
    }

    /// Composite read: the pending rows of `kind`/`account` whose remote ID
    /// is one of `decided`, and how many of its pending rows `listed` names.
    pub async fn pending_listed(
        &self,
        kind: TargetKind,
        account: String,
        decided: Vec<String>,
        listed: Vec<String>,
    ) -> Result<(Vec<FileRow>, u64)> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call(move |s| {
                    let rows = s.pending_by_remote_id(kind, &account, &decided)?;
                    let matched = s.count_pending_by_remote_id(kind, &account, &listed)?;
                    Ok((rows, matched))
                })
                .await
            }
            Backend::Postgres(pg) => Ok(pg
                .store()
                .pending_listed(kind, &account, &decided, &listed)
                .await?),
        }
    }

    /// Composite: move a decided file and record it, under the writer
    /// ([`super::Store::move_and_record`]); `false` when the file was gone.
    pub async fn move_and_record(&self, file_move: FileMove) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.move_and_record(&file_move)).await,
            Backend::Postgres(pg) => pg.move_and_record(&file_move).await,
        }
    }

    /// Deleted rows of `kind` with a remote ID whose remote status is not yet
    /// `done_status` (images to disable).
    pub async fn deleted_with_remote(
        &self,
        kind: TargetKind,
        done_status: &'static str,
    ) -> Result<Vec<FileRow>> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call(move |s| s.deleted_with_remote(kind, done_status))
                    .await
            }
            Backend::Postgres(pg) => Ok(pg.store().deleted_with_remote(kind, done_status).await?),
        }
    }

    // ---- hooks' outbox

    /// The hooks whose outbox rows the decisions write from now on (on
    /// PostgreSQL: this daemon's subscription; every daemon's decisions write
    /// rows for the hooks any daemon subscribed to).
    pub async fn enable_outbox(&self, hooks: Vec<HookKind>) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.enable_outbox(&hooks)).await,
            Backend::Postgres(pg) => Ok(pg.store().subscribe_hooks(&hooks).await?),
        }
    }

    /// How many outbox rows are undelivered (of any hook).
    pub async fn outbox_undelivered(&self) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(|s| s.outbox_undelivered()).await,
            Backend::Postgres(pg) => Ok(pg.store().outbox_undelivered().await?),
        }
    }

    /// Make every undelivered outbox row due at `now` (a restart is a
    /// retry); how many there are.
    pub async fn outbox_due_now(&self, now: i64) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.outbox_due_now(now)).await,
            Backend::Postgres(pg) => Ok(pg.store().outbox_due_now().await?),
        }
    }

    /// Up to `limit` undelivered outbox rows of `hooks` due at `now`, to be
    /// delivered within `hold` (on PostgreSQL: claimed one at a time for
    /// that long, so no other daemon delivers it meanwhile).
    pub async fn outbox_due(
        &self,
        hooks: Vec<HookKind>,
        now: i64,
        limit: u32,
        hold: std::time::Duration,
    ) -> Result<Vec<OutboxEntry>> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.outbox_due(&hooks, now, limit)).await,
            Backend::Postgres(pg) => Ok(pg
                .store()
                .claim_outbox(&hooks, limit.min(PG_OUTBOX_CLAIM), hold)
                .await?),
        }
    }

    /// When the next undelivered outbox row of `hooks` is due (unix ms, this
    /// host's clock; on PostgreSQL a row another daemon holds is due when its
    /// claim ends).
    pub async fn outbox_next_due(&self, hooks: Vec<HookKind>) -> Result<Option<i64>> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.outbox_next_due(&hooks)).await,
            Backend::Postgres(pg) => {
                let due_in = pg.store().outbox_next_due_in(&hooks).await?;
                Ok(due_in.map(|ms| crate::model::now_ms().saturating_add(ms)))
            }
        }
    }

    /// Outbox row `id` delivered at `now`.
    pub async fn outbox_delivered(&self, id: i64, now: i64) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.outbox_delivered(id, now)).await,
            Backend::Postgres(pg) => Ok(pg.store().outbox_delivered(id).await?),
        }
    }

    /// Outbox row `id` failed with `error`: tried again at `retry_at`, or
    /// given up (an event in the file's history) without one.
    pub async fn outbox_failed(
        &self,
        id: i64,
        error: String,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<OutboxFailure> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call(move |s| s.outbox_failed(id, &error, retry_at, now))
                    .await
            }
            Backend::Postgres(pg) => {
                // the database keeps its own clock: the wait is what carries over
                let retry_in = retry_at.map(|at| {
                    std::time::Duration::from_millis(u64::try_from(at - now).unwrap_or(0))
                });
                Ok(pg.store().outbox_failed(id, &error, retry_in).await?)
            }
        }
    }

    // ---- the status page

    /// Rows and files per state of each folder.
    pub async fn counts_by_folder(&self) -> Result<Vec<FolderCounts>> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(|s| s.counts_by_folder()).await,
            Backend::Postgres(pg) => Ok(pg.store().counts_by_folder().await?),
        }
    }

    /// Transitions per folder in `buckets` buckets of `bucket_ms` up to `now`.
    pub async fn activity(
        &self,
        now: i64,
        bucket_ms: i64,
        buckets: u32,
    ) -> Result<BTreeMap<String, Vec<ActivityBucket>>> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.activity(now, bucket_ms, buckets)).await,
            Backend::Postgres(pg) => Ok(pg.store().activity(now, bucket_ms, buckets).await?),
        }
    }

    /// Composite read: a page of rows in `states`, each with its reason
    /// ([`super::Store::explained_page`]).
    pub async fn explained_page(
        &self,
        states: Vec<State>,
        folder: Option<String>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<(FileRow, String)>, Option<i64>)> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.call(move |s| s.explained_page(&states, folder.as_deref(), after, limit))
                    .await
            }
            Backend::Postgres(pg) => Ok(pg
                .store()
                .explained_page(&states, folder.as_deref(), after, limit)
                .await?),
        }
    }

    /// Who holds the rows `ids` (PostgreSQL: the daemons whose leases they
    /// carry); always empty on SQLite, where one daemon holds everything.
    pub async fn holders(&self, ids: Vec<i64>) -> Result<HashMap<i64, Holder>> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(HashMap::new()),
            Backend::Postgres(pg) => Ok(pg.store().holders(&ids).await?),
        }
    }

    /// Composite read: row `id`, its reason and its events.
    pub async fn file_detail(&self, id: i64) -> Result<Option<FileDetail>> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.file_detail(id)).await,
            Backend::Postgres(pg) => Ok(pg.store().file_detail(id).await?),
        }
    }

    /// Composite: send row `id` again if it is `failed` or `invalid`
    /// ([`super::Store::retry_one`]).
    pub async fn retry_one(&self, id: i64, reason: &'static str) -> Result<RetryOne> {
        match &self.backend {
            Backend::Sqlite(db) => db.call(move |s| s.retry_one(id, reason)).await,
            Backend::Postgres(pg) => Ok(pg.store().retry_one(id, reason).await?),
        }
    }
}

#[cfg(test)]
mod tests;
