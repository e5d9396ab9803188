//! The engine: the daemon's stages, started together and stopped together.
//!
//! ```text
//!            settle (rows a stop left in `uploading`: asked, not re-sent blind)
//!               │ stable
//!               ▼
//! watchers ─hints─> intake ─stable─> upload ─pending─> poll
//!  (local/)    (scan, quiet window)  (check, intent,    (decisions, moves)
//!                    ▲                send, outcome)
//!                    └──── discovered (changed after it held still)
//! ```
//!
//! Read the stages in this order to follow one file from the folder to its
//! decision: [`intake`], [`upload`] (with its steps `intent`, `send`,
//! `outcome`), [`poll`]; [`settle`] handles what a stop interrupted; [`notify`]
//! tells the configured hooks about decisions (from the outbox the decisions
//! wrote in their own transactions). Each stage
//! owns its loop (a `run` function with a stop token), reads its work from the
//! store, and writes its results there; the arrows above are only wake-ups
//! ([`ctx::Wakeups`]), never calls from one stage into another. [`decision`]
//! is the one mapping from a server answer to a row's state that the upload,
//! settle and poll stages share.
//!
//! [`Engine::run`] is the one entry point: it takes the instance lock, checks
//! that the state database was synced against the configured API
//! ([`ApiChange`]), settles what the last stop left, starts the watchers, scans
//! once, then runs the stages (and the admin listener, if given) until the mode
//! is done or `shutdown` is cancelled. In-flight uploads get [`GRACE`] to
//! finish; whatever is still `uploading` after that is settled on the next start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::admin::{self, AdminState, Liveness};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::hooks::Hooks;
use crate::local::ignore::IgnoreSet;
use crate::local::watcher::{hint_channel, FolderWatcher, RescanQueue};
use crate::model::{now_ms, text, Folder, HookKind, WatcherKind};
use crate::remote::Apis;
use crate::store::pg::{PgInstance, PgStore};
use crate::store::{
    create_state_dir, InstanceLock, SharedStore, State, StateStore, Store, DB_FILE,
};

mod api_check;
pub mod baseline;
pub mod ctx;
pub mod decision;
pub mod dry_run;
pub mod heartbeat;
pub mod intake;
pub mod notify;
pub mod poll;
pub mod settle;
pub mod upload;

#[cfg(test)]
mod testkit;

pub use api_check::{ApiChange, START_OVER_SHARED};
pub use ctx::Ctx;
pub use heartbeat::Heartbeats;
use intake::{Hints, Intake};

/// How soon a folder whose first scan failed (the store unreachable) is
/// walked again.
const FIRST_SCAN_RETRY: Duration = Duration::from_secs(3);

/// How long in-flight uploads may take to finish after a stop is asked.
pub const GRACE: Duration = Duration::from_secs(10);

/// How long to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Until `shutdown` is cancelled.
    Watch,
    /// Scan once, upload everything, wait for decisions; stop when nothing is
    /// left to do or after `timeout`.
    Once { timeout: Duration },
}

/// What the daemon publishes while it runs (for a progress bar or a status page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub counts: BTreeMap<State, u64>,
    /// When a folder scan last finished (Unix ms): `None` until the first scan
    /// has recorded what the folders held.
    pub scanned_at: Option<i64>,
    /// Bytes of files uploaded by this run.
    pub bytes_sent: u64,
    /// Bytes of the files still to upload (waiting, uploading or retrying).
    /// Counted only while someone subscribes to the snapshots.
    pub bytes_left: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub counts: BTreeMap<State, u64>,
    /// `Mode::Once` stopped at its timeout with work left (uploads or decisions).
    pub timed_out: bool,
}

impl Report {
    /// Files that ended badly: rejected, failed or invalid.
    pub fn failures(&self) -> u64 {
        [State::Rejected, State::Failed, State::Invalid]
            .iter()
            .map(|s| self.counts.get(s).copied().unwrap_or(0))
            .sum()
    }

    /// 0: everything decided and accepted; 1: something was rejected, failed or
    /// invalid; 3: timed out with work left.
    pub fn exit_code(&self) -> i32 {
        if self.failures() > 0 {
            1
        } else if self.timed_out {
            3
        } else {
            0
        }
    }
}

/// One run of the daemon: what to run on, how long, and who listens.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    apis: Apis,
    mode: Mode,
    progress: Option<watch::Sender<Snapshot>>,
    admin: Option<admin::Listener>,
    api_change: ApiChange,
    heartbeats: Heartbeats,
}

impl Engine {
    /// Run on `config`'s folders against `apis`, until stopped ([`Mode::Watch`]).
    pub fn new(config: Config, apis: Apis) -> Engine {
        Engine {
            config,
            apis,
            mode: Mode::Watch,
            progress: None,
            admin: None,
            api_change: ApiChange::Refuse,
            heartbeats: Heartbeats::default(),
        }
    }

    /// What to do if the state database was synced against another API
    /// (default: refuse to run).
    pub fn on_api_change(mut self, choice: ApiChange) -> Engine {
        self.api_change = choice;
        self
    }

    /// How long to run.
    pub fn mode(mut self, mode: Mode) -> Engine {
        self.mode = mode;
        self
    }

    /// Publish the counts on `progress` while running.
    pub fn progress(mut self, progress: watch::Sender<Snapshot>) -> Engine {
        self.progress = Some(progress);
        self
    }

    /// Every loop (each stage's and the engine's own) beats on `beats` while it
    /// is alive, for a watchdog (see [`heartbeat`]).
    pub fn heartbeats(mut self, beats: Heartbeats) -> Engine {
        self.heartbeats = beats;
        self
    }

    /// Serve the admin listener ([`crate::admin`]) while running.
    pub fn admin(mut self, listener: admin::Listener) -> Engine {
        self.admin = Some(listener);
        self
    }

    /// Run until the mode is done or `shutdown` is cancelled.
    ///
    /// Takes the state directory's instance lock first (a second daemon on the
    /// same state fails fast), then checks that the database was synced against
    /// the configured API ([`ApiChange`]; [`Error::ApiChanged`]). In-flight uploads get [`GRACE`] after a stop;
    /// what does not finish is settled on the next start.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Report> {
        let Engine {
            config,
            apis,
            mode,
            progress,
            admin,
            api_change,
            heartbeats,
        } = self;
        create_state_dir(&config.state_dir)?;
        let lock = InstanceLock::acquire(&config.state_dir)?;
        if !lock.last_stop_was_clean() {
            warn!("the last run did not stop cleanly: every upload asks the server first, so nothing is sent twice");
        }
        let store = open_state(&config, api_change).await?;
        let hook_kinds = config.hooks.kinds();
        store.enable_outbox(hook_kinds.clone()).await?;
        let hooks = match hook_kinds.is_empty() {
            true => {
                let left = store.outbox_undelivered().await?;
                if left > 0 {
                    warn!(count = left, "hook events are undelivered and no hook is configured now; they wait until [hooks] is configured again");
                }
                None
            }
            false => {
                // a restart is a retry: every undelivered event is due now (before
                // `Mode::Once` first asks whether any is)
                let due = store.outbox_due_now(now_ms()).await?;
                if due > 0 {
                    info!(
                        count = due,
                        "hook events undelivered at the last stop: trying them again now"
                    );
                }
                Some(Arc::new(Hooks::new(config.hooks.clone())?))
            }
        };
        let ctx = Ctx::new(store, apis, &config.folders)
            .with_retry_initial(config.retry_initial)
            .with_retry_for(config.http.retry_for)
            .verifying_first_attempts(!lock.last_stop_was_clean())
            .with_upload_concurrency(config.concurrency)
            .with_heartbeats(heartbeats);
        let publish = |counts: BTreeMap<State, u64>| async {
            if let Some(progress) = &progress {
                let snapshot = snapshot(&ctx, counts, progress.receiver_count() > 0).await;
                progress.send_replace(snapshot);
            }
        };

        let settled = settle::settle_once(&ctx).await?;
        if settled != settle::Settled::default() {
            info!(
                found = settled.found,
                resend = settled.resend,
                unresolved = settled.unresolved,
                "reconciled uploads interrupted by the last stop"
            );
        }

        let stop = shutdown.child_token();
        let tracker = TaskTracker::new();
        let liveness = Arc::new(Liveness::default());
        if let Some(listener) = admin {
            let state = admin_state(&config, &ctx, &liveness)?;
            tracker.spawn(
                admin::serve(listener, state, stop.clone())
                    .instrument(tracing::info_span!("admin")),
            );
        }
        let intake = Arc::new(tokio::sync::Mutex::new(Intake::new(
            &config.folders,
            config.quiet_window,
        )?));

        // Watchers first, then the initial scan: nothing written meanwhile is missed.
        let (tx, rx) = hint_channel(4096);
        let rescans = Arc::new(RescanQueue::default());
        let watchers = match mode {
            Mode::Watch => start_watchers(&config.folders, &tx, &rescans)?,
            Mode::Once { .. } => Vec::new(),
        };
        drop(tx);
        // The upload stage first: the initial scan promotes the files that held
        // still part by part, and they are sent while the walk goes on.
        tracker.spawn(
            upload::run(ctx.clone(), tracker.clone(), stop.clone())
                .instrument(tracing::info_span!("upload")),
        );
        // the rows it claims keep their leases from the start
        if let Some(every) = ctx.store.renew_every() {
            tracker.spawn(
                renew_leases(ctx.clone(), every, stop.clone())
                    .instrument(tracing::info_span!("leases")),
            );
        }
        for (n, folder) in config.folders.iter().enumerate() {
            let Err(e) = intake::scan(&ctx, &intake, n).await else {
                continue;
            };
            match mode {
                // Uploads run during the first scan: a store outage may
                // interrupt it, as it may any later scan. The daemon goes on
                // and the folder is walked again soon.
                Mode::Watch => {
                    warn!(
                        folder = %text::lossless_path(&folder.path),
                        error = %e,
                        "the first scan of the folder failed; it is scanned again in a few seconds"
                    );
                    rescans.book(n, std::time::Instant::now() + FIRST_SCAN_RETRY);
                }
                // A single pass that could not look at a folder fails.
                Mode::Once { .. } => {
                    stop.cancel();
                    tracker.close();
                    tracker.wait().await;
                    return Err(e);
                }
            }
        }

        let intake_run = intake::run(
            ctx.clone(),
            intake.clone(),
            Hints { rx, rescans },
            config.scan_interval,
            stop.clone(),
        );
        let intake_done = liveness.clone();
        tracker.spawn(
            async move {
                intake_run.await;
                intake_done.set_watching(false);
            }
            .instrument(tracing::info_span!("intake")),
        );
        liveness.set_watching(true);
        tracker.spawn(
            poll::run(ctx.clone(), config.poll_interval, stop.clone())
                .instrument(tracing::info_span!("poll")),
        );
        tracker.spawn(
            settle::run(ctx.clone(), stop.clone()).instrument(tracing::info_span!("settle")),
        );
        if let Some(hooks) = hooks {
            tracker.spawn(
                notify::run(ctx.clone(), hooks, stop.clone())
                    .instrument(tracing::info_span!("notify")),
            );
        }

        let deadline = match mode {
            Mode::Once { timeout } => Some(tokio::time::Instant::now() + timeout),
            Mode::Watch => None,
        };
        let mut timed_out = false;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let beat = ctx.beats.register("engine");
        let mut last_counts = BTreeMap::new();
        let mut store_down = false;
        let counts = loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    break ctx.store.counts_by_state().await.unwrap_or(last_counts);
                }
                _ = tick.tick() => {}
            }
            beat.beat();
            // the store out of reach (PostgreSQL restarting, a locked disk) is
            // waited out, said once: the stages retry on their own
            let counts = match ctx.store.counts_by_state().await {
                Ok(counts) => {
                    if std::mem::take(&mut store_down) {
                        info!("the state store answers again");
                    }
                    counts
                }
                Err(e) => {
                    if !std::mem::replace(&mut store_down, true) {
                        warn!(error = %e, "the state store does not answer; waiting for it");
                    }
                    if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        timed_out = true;
                        break last_counts;
                    }
                    continue;
                }
            };
            last_counts = counts.clone();
            publish(counts.clone()).await;
            if let Some(deadline) = deadline {
                let waiting = intake.lock().await.waiting();
                let files_done =
                    ctx.in_flight.is_empty() && waiting == 0 && work_left(&counts) == 0;
                // every decision's hook event tried once (the outbox rows were
                // committed with the decisions); failures wait for the next run
                if files_done && !hooks_due(&ctx, &hook_kinds).await {
                    break counts;
                }
                if tokio::time::Instant::now() >= deadline {
                    if files_done {
                        warn!("hook events were still being delivered at the timeout; the next run delivers them");
                    } else {
                        timed_out = true;
                    }
                    break counts;
                }
            }
        };

        stop.cancel();
        tracker.close();
        let finished = tokio::time::timeout(GRACE, tracker.wait()).await.is_ok();
        if !finished {
            warn!(
                "in-flight uploads did not finish within {}s; they are reconciled on the next start",
                GRACE.as_secs()
            );
        }
        drop(watchers);
        if let Err(e) = ctx.store.release_unstarted().await {
            warn!(error = %e, "giving up the leases of rows not started failed; they expire on their own");
        }
        let counts = ctx.store.counts_by_state().await.unwrap_or(counts);
        publish(counts.clone()).await;
        if finished {
            if let Err(e) = lock.stopped_cleanly() {
                warn!(error = %e, "recording the clean stop failed; the next start asks the server before every upload");
            }
        }
        Ok(Report { counts, timed_out })
    }
}

/// The state store `config` names: SQLite in the state directory (opened,
/// migrated and checked against the configured API, before any stage asks it
/// anything; the dry run checks its copy the same way), or PostgreSQL shared
/// with other daemons (`state.url`).
async fn open_state(config: &Config, api_change: ApiChange) -> Result<StateStore> {
    let Some(url) = &config.state.url else {
        let mut db = Store::open_in_state_dir(&config.state_dir)?;
        api_check::check_api(&mut db, config, api_change)?;
        return Ok(StateStore::sqlite(SharedStore::new(db)));
    };
    if config.api.sandbox {
        // fake approvals must never land in a state other daemons share
        return Err(Error::NotOnPostgres {
            what: "the embedded sandbox",
        });
    }
    let instance = config.state.instance_id(&config.state_dir);
    let pg = PgStore::connect(url.expose(), &instance).await?;
    api_check::check_shared_api(&pg, config, api_change).await?;
    info!(database = %pg.target(), instance = %text::escape(instance.as_bytes()), "state shared in PostgreSQL");
    Ok(StateStore::postgres(
        PgInstance::new(pg, config.state.lease, config.poll_interval).await?,
    ))
}

/// Keep the leases of the rows this daemon has in hand (state in
/// PostgreSQL) until `stop`. A renewal that fails is tried again at the
/// next beat; a row whose lease runs out meanwhile has its request stopped
/// ([`StateStore::lease_lost`]).
async fn renew_leases(ctx: Ctx, every: Duration, stop: tokio_util::sync::CancellationToken) {
    let beat = ctx.beats.register("leases");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = beat.idle_while(tokio::time::sleep(every)) => {}
        }
        beat.beat();
        if let Err(e) = ctx.store.renew_leases(ctx.in_flight.ids()).await {
            warn!(error = %e, "renewing leases failed; will try again (requests stop before their lease could run out)");
        }
    }
}

/// What to publish: the counts, the last scan, and (when `bytes`) the bytes
/// sent and left. A failed read of the bytes leaves them at 0: the counts
/// matter more than a progress bar.
async fn snapshot(ctx: &Ctx, counts: BTreeMap<State, u64>, bytes: bool) -> Snapshot {
    let bytes_left = if bytes && work_left(&counts) > 0 {
        ctx.store.bytes_to_send().await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "reading the bytes left to send failed");
            0
        })
    } else {
        0
    };
    Snapshot {
        counts,
        scanned_at: ctx.last_scan.get(),
        bytes_sent: ctx.metrics.sent_bytes(),
        bytes_left,
    }
}

/// One watcher per folder, in configuration order (the hints' folder index);
/// a folder whose watcher cannot start is polled every 2 s instead.
fn start_watchers(
    folders: &[Folder],
    tx: &tokio::sync::mpsc::Sender<crate::local::watcher::FolderHint>,
    rescans: &Arc<RescanQueue>,
) -> Result<Vec<FolderWatcher>> {
    let mut watchers = Vec::new();
    for (n, folder) in folders.iter().enumerate() {
        std::fs::create_dir_all(&folder.path)
            .map_err(|e| Error::io("creating the folder", &folder.path, e))?;
        let start = |kind: WatcherKind| -> Result<FolderWatcher> {
            FolderWatcher::start(
                n,
                &folder.path,
                kind,
                IgnoreSet::for_folder(folder)?,
                tx.clone(),
                rescans.clone(),
            )
        };
        match start(folder.watcher) {
            Ok(w) => watchers.push(w),
            Err(e) => {
                warn!(folder = %text::lossless_path(&folder.path), error = %e, "watching failed; falling back to polling every 2s");
                watchers.push(start(WatcherKind::Poll {
                    interval: Duration::from_secs(2),
                })?);
            }
        }
    }
    Ok(watchers)
}

/// What the admin listener reads: its own read-only connection, the writer for
/// retries, the metrics and the configured folders and APIs.
fn admin_state(config: &Config, ctx: &Ctx, liveness: &Arc<Liveness>) -> Result<AdminState> {
    // SQLite: the page reads on a connection of its own, never the writer's;
    // PostgreSQL: the store's pool serves both
    let reader = if ctx.store.is_shared() {
        ctx.store.clone()
    } else {
        StateStore::sqlite_read_only(&config.state_dir.join(DB_FILE))?
    };
    let api_urls = [&config.api.url, &config.api.attachments_url]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    Ok(AdminState {
        reader,
        writer: ctx.store.clone(),
        metrics: ctx.metrics.clone(),
        liveness: liveness.clone(),
        folders: Arc::new(config.folders.iter().map(Folder::key).collect()),
        api_urls: Arc::new(api_urls),
        api: Arc::new(config.api_identity()),
        form_token: Arc::new(AdminState::new_form_token()),
    })
}

/// Whether a hook event of `kinds` is due now (not yet tried in this run, or
/// being tried).
async fn hooks_due(ctx: &Ctx, kinds: &[HookKind]) -> bool {
    if kinds.is_empty() {
        return false;
    }
    let kinds = kinds.to_vec();
    match ctx.store.outbox_next_due(kinds).await {
        Ok(next) => next.is_some_and(|at| at <= now_ms()),
        Err(e) => {
            warn!(error = %e, "reading the hooks' outbox failed");
            false
        }
    }
}

/// Rows that still need the daemon: not yet uploaded, or waiting for a decision.
fn work_left(counts: &BTreeMap<State, u64>) -> u64 {
    [
        State::Discovered,
        State::Stable,
        State::Uploading,
        State::Retrying,
        State::Pending,
    ]
    .iter()
    .map(|s| counts.get(s).copied().unwrap_or(0))
    .sum()
}
