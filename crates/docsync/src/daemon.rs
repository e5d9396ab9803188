//! The daemon: the long-lived tasks of the pipeline, started together and
//! stopped together.
//!
//! ```text
//! watchers ──hints──> intake ──stable rows──> uploader ──> pending ──> poller
//!   (notify)          (scan, quiet window)    (hash, validate, send)   (decisions)
//! ```
//!
//! Each task has one job and talks to the others through the store and a
//! `Notify` ("new stable rows"). All of them stop on one `CancellationToken`;
//! in-flight uploads get [`GRACE`] to finish, and whatever is still
//! `uploading` after that is reconciled with the server on the next start.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::admin::{self, AdminState, Liveness};
use crate::config::{Config, Folder, WatcherKind};
use crate::error::{Error, Result};
use crate::ignore::IgnoreSet;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::remote::Apis;
use crate::scanner::scan_folder;
use crate::store::{create_state_dir, InstanceLock, SharedStore, State, Store, DB_FILE};
use crate::watcher::{hint_channel, FolderHint, FolderWatcher, Hint, RescanQueue};
use crate::{poller, reconcile, uploader};

/// How long in-flight uploads may take to finish after a stop is asked.
pub const GRACE: Duration = Duration::from_secs(10);

/// The longest wait between two polls while no decision arrives.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// How many rows the uploader takes per round.
const BATCH: u32 = 256;

/// The most watcher hints the intake applies in one store call.
const HINT_BATCH: usize = 1024;

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

/// What every task shares: the store, the clients, the folders.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub store: SharedStore,
    pub apis: Apis,
    /// What the tasks count, for `/metrics`.
    pub metrics: Arc<Metrics>,
    folders: Arc<HashMap<String, Folder>>,
    retry_initial: Duration,
}

impl Ctx {
    pub fn new(store: SharedStore, apis: Apis, folders: &[Folder]) -> Self {
        let folders = folders.iter().map(|f| (f.key(), f.clone())).collect();
        Ctx {
            store,
            apis,
            metrics: Arc::new(Metrics::default()),
            folders: Arc::new(folders),
            retry_initial: crate::config::DEFAULT_RETRY_INITIAL,
        }
    }

    /// The first wait before retrying a failed upload (see [`crate::uploader::backoff`]).
    pub fn with_retry_initial(mut self, initial: Duration) -> Self {
        self.retry_initial = initial;
        self
    }

    /// The first wait before retrying a failed upload.
    pub fn retry_initial(&self) -> Duration {
        self.retry_initial
    }

    /// The configured folder with this key.
    pub fn folder(&self, key: &str) -> Option<&Folder> {
        self.folders.get(key)
    }
}

pub use crate::model::now_ms;

/// Run the daemon on `config`'s folders against `apis`.
///
/// Takes the state directory's instance lock first (a second daemon on the same
/// state fails fast), publishes counts on `progress`, and returns when `mode` is
/// done or `shutdown` is cancelled (in-flight uploads get [`GRACE`]; what does
/// not finish is reconciled on the next start).
pub async fn run(
    config: Config,
    apis: Apis,
    mode: Mode,
    shutdown: CancellationToken,
    progress: watch::Sender<Snapshot>,
) -> Result<Report> {
    run_with_admin(config, apis, mode, shutdown, progress, None).await
}

/// [`run`], serving the admin listener ([`crate::admin`]) on `admin` while it runs.
pub async fn run_with_admin(
    config: Config,
    apis: Apis,
    mode: Mode,
    shutdown: CancellationToken,
    progress: watch::Sender<Snapshot>,
    admin: Option<admin::Listener>,
) -> Result<Report> {
    create_state_dir(&config.state_dir)?;
    let _lock = InstanceLock::acquire(&config.state_dir)?;
    let store = SharedStore::new(Store::open_in_state_dir(&config.state_dir)?);
    let ctx = Ctx::new(store, apis, &config.folders).with_retry_initial(config.retry_initial);

    let in_flight = Arc::new(Mutex::new(HashSet::new()));
    let found = reconcile::reconcile_uploading(&ctx, &in_flight).await?;
    if found != reconcile::Reconciled::default() {
        info!(
            found = found.found,
            resend = found.resend,
            unresolved = found.unresolved,
            "reconciled uploads interrupted by the last stop"
        );
    }

    let stop = shutdown.child_token();
    let tracker = TaskTracker::new();
    let liveness = Arc::new(Liveness::default());
    if let Some(listener) = admin {
        let state = admin_state(&config, &ctx, &liveness)?;
        tracker.spawn(
            admin::serve(listener, state, stop.clone()).instrument(tracing::info_span!("admin")),
        );
    }
    let stable = Arc::new(Notify::new());
    let intake = Arc::new(Mutex::new(Intake::new(
        &config.folders,
        config.quiet_window,
    )?));

    // Watchers first, then the initial scan: nothing written meanwhile is missed.
    let (tx, rx) = hint_channel(4096);
    let rescans = Arc::new(RescanQueue::default());
    let mut watchers = Vec::new();
    if mode == Mode::Watch {
        for (n, folder) in config.folders.iter().enumerate() {
            std::fs::create_dir_all(&folder.path)
                .map_err(|e| Error::io("creating the folder", &folder.path, e))?;
            let kind = folder.watcher;
            let started = FolderWatcher::start(
                n,
                &folder.path,
                kind,
                IgnoreSet::for_folder(folder)?,
                tx.clone(),
                rescans.clone(),
            );
            match started {
                Ok(w) => watchers.push(w),
                Err(e) => {
                    warn!(folder = %folder.path.display(), error = %e, "watching failed; falling back to polling every 2s");
                    let poll = WatcherKind::Poll {
                        interval: Duration::from_secs(2),
                    };
                    watchers.push(FolderWatcher::start(
                        n,
                        &folder.path,
                        poll,
                        IgnoreSet::for_folder(folder)?,
                        tx.clone(),
                        rescans.clone(),
                    )?);
                }
            }
        }
    }
    // the uploader tells the intake about files that changed under it
    let restarted = tx.clone();
    drop(tx);
    for n in 0..config.folders.len() {
        scan(&ctx, &intake, n).await?;
    }

    let intake_run = intake_task(
        ctx.clone(),
        intake.clone(),
        config.folders.len(),
        (rx, rescans),
        config.scan_interval,
        stable.clone(),
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
        uploader_task(
            ctx.clone(),
            config.concurrency.max(1),
            (restarted, config.folders.iter().map(Folder::key).collect()),
            stable.clone(),
            in_flight.clone(),
            tracker.clone(),
            stop.clone(),
        )
        .instrument(tracing::info_span!("uploader")),
    );
    tracker.spawn(
        poller_task(ctx.clone(), config.poll_interval, stop.clone())
            .instrument(tracing::info_span!("poller")),
    );

    let deadline = match mode {
        Mode::Once { timeout } => Some(tokio::time::Instant::now() + timeout),
        Mode::Watch => None,
    };
    let mut timed_out = false;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let counts = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break ctx.store.call(|s| s.counts_by_state()).await?,
            _ = tick.tick() => {}
        }
        let counts = ctx.store.call(|s| s.counts_by_state()).await?;
        progress.send_replace(Snapshot {
            counts: counts.clone(),
        });
        if let Some(deadline) = deadline {
            let waiting = intake.lock().map(|i| i.waiting()).unwrap_or(0);
            let busy = in_flight.lock().map(|s| !s.is_empty()).unwrap_or(false);
            if !busy && waiting == 0 && work_left(&counts) == 0 {
                break counts;
            }
            if tokio::time::Instant::now() >= deadline {
                timed_out = true;
                break counts;
            }
        }
    };

    stop.cancel();
    tracker.close();
    if tokio::time::timeout(GRACE, tracker.wait()).await.is_err() {
        warn!(
            "in-flight uploads did not finish within {}s; they are reconciled on the next start",
            GRACE.as_secs()
        );
    }
    drop(watchers);
    let counts = ctx
        .store
        .call(|s| s.counts_by_state())
        .await
        .unwrap_or(counts);
    progress.send_replace(Snapshot {
        counts: counts.clone(),
    });
    Ok(Report { counts, timed_out })
}

/// What the admin listener reads: its own read-only connection, the writer for
/// retries, the metrics and the configured folders and APIs.
fn admin_state(config: &Config, ctx: &Ctx, liveness: &Arc<Liveness>) -> Result<AdminState> {
    let reader = Store::open_read_only(&config.state_dir.join(DB_FILE))?;
    let api_urls = [&config.api.url, &config.api.attachments_url]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    Ok(AdminState {
        reader: SharedStore::new(reader),
        writer: ctx.store.clone(),
        metrics: ctx.metrics.clone(),
        liveness: liveness.clone(),
        folders: Arc::new(config.folders.iter().map(Folder::key).collect()),
        api_urls: Arc::new(api_urls),
        form_token: Arc::new(AdminState::new_form_token()),
    })
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

/// Walk folder `n` off the store lock, then record it.
async fn scan(ctx: &Ctx, intake: &Arc<Mutex<Intake>>, n: usize) -> Result<()> {
    let Some((root, ignore)) = intake
        .lock()
        .ok()
        .and_then(|i| i.folder(n).map(|(f, ig)| (f.path.clone(), ig.clone())))
    else {
        return Ok(());
    };
    let walked = tokio::task::spawn_blocking(move || scan_folder(&root, &ignore))
        .await
        .map_err(|e| Error::Task {
            what: "scan",
            message: e.to_string(),
        })??;
    for error in &walked.errors {
        warn!(
            error,
            "part of the folder could not be read; retried on the next scan"
        );
    }
    let intake = intake.clone();
    let now = std::time::Instant::now();
    ctx.store
        .call(move |s| {
            let mut intake = intake.lock().map_err(|_| poisoned())?;
            intake.apply_scan(s, n, &walked, now).map(|_| ())
        })
        .await
}

fn poisoned() -> Error {
    Error::Task {
        what: "intake",
        message: "a previous intake step panicked".into(),
    }
}

/// Hints and scans in; `stable` rows out (and the uploader woken).
async fn intake_task(
    ctx: Ctx,
    intake: Arc<Mutex<Intake>>,
    folders: usize,
    (mut hints, rescans): (tokio::sync::mpsc::Receiver<FolderHint>, Arc<RescanQueue>),
    scan_interval: Duration,
    stable: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut rescan = tokio::time::interval(scan_interval.max(Duration::from_secs(1)));
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    rescan.tick().await; // the first tick is now: the initial scan already ran
    loop {
        let deadline = intake.lock().ok().and_then(|i| i.next_deadline());
        let sleep = sleep_until(deadline);
        let rescan_due = sleep_until(rescans.next_due());
        let step: Result<()> = tokio::select! {
            _ = stop.cancelled() => return,
            hint = hints.recv(), if !hints.is_closed() => match hint {
                Some(hint) => {
                    // take every hint already waiting: one store call (one
                    // commit) for the run, each path looked at once, and the
                    // files it made complete promoted in the same call
                    let mut batch = vec![hint];
                    while batch.len() < HINT_BATCH {
                        match hints.try_recv() {
                            Ok(hint) => batch.push(hint),
                            Err(_) => break,
                        }
                    }
                    let intake2 = intake.clone();
                    let now = std::time::Instant::now();
                    let applied = ctx.store.call(move |s| s.batch(|s| {
                        let mut i = intake2.lock().map_err(|_| poisoned())?;
                        let rescans = i.on_hints(s, &batch, now);
                        let promoted = i.promote_ready(s, now);
                        Ok((rescans, promoted))
                    })).await;
                    match applied {
                        Ok(((rescans, looked), promoted)) => {
                            if promoted.as_ref().is_ok_and(|p| !p.is_empty()) {
                                stable.notify_one();
                            }
                            let mut result = looked.and(promoted.map(|_| ()));
                            for n in rescans {
                                ctx.metrics.rescan();
                                if let Err(e) = scan(&ctx, &intake, n).await {
                                    result = Err(e);
                                }
                            }
                            result
                        }
                        Err(e) => Err(e),
                    }
                }
                None => Ok(()),
            },
            // a rescan was booked: look at when it is due
            _ = rescans.booked() => Ok(()),
            _ = rescan_due => {
                let mut result = Ok(());
                for n in rescans.take_due(std::time::Instant::now()) {
                    ctx.metrics.rescan();
                    if let Err(e) = scan(&ctx, &intake, n).await {
                        result = Err(e);
                    }
                }
                result
            }
            _ = rescan.tick() => {
                let mut result = Ok(());
                for n in 0..folders {
                    if let Err(e) = scan(&ctx, &intake, n).await {
                        result = Err(e);
                    }
                }
                result
            }
            _ = sleep => {
                let intake2 = intake.clone();
                let now = std::time::Instant::now();
                match ctx.store.call(move |s| {
                    let mut i = intake2.lock().map_err(|_| poisoned())?;
                    i.promote_ready(s, now)
                }).await {
                    Ok(promoted) => {
                        if !promoted.is_empty() {
                            debug!(count = promoted.len(), "files became stable");
                            stable.notify_one();
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = step {
            // One bad step (a full disk, a locked database) must not stop the
            // daemon: log it and go on; the next scan repairs what was missed.
            warn!(error = %e, "intake step failed; continuing");
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// Sleep until `at`; forever without one.
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Stable and due rows out to the network, at most `concurrency` at a time.
/// A row whose file changed under it goes back to `discovered`: a hint on
/// `restarted` (folder keys in hint order) makes the intake look at it again.
async fn uploader_task(
    ctx: Ctx,
    concurrency: usize,
    restarted: (tokio::sync::mpsc::Sender<FolderHint>, Vec<String>),
    stable: Arc<Notify>,
    in_flight: Arc<Mutex<HashSet<i64>>>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    // rows whose processing ended since the current batch was read
    let finished: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let mut reconcile_again = false;
    loop {
        if reconcile_again {
            match reconcile::reconcile_uploading(&ctx, &in_flight).await {
                Ok(done) => reconcile_again = done.unresolved > 0,
                Err(e) => {
                    warn!(error = %e, "reconciling interrupted uploads failed; will try again")
                }
            }
        }
        let now = now_ms();
        // rows finished from here on may still be in this batch (read before
        // they finished): they are skipped, not hashed again
        if let Ok(mut set) = finished.lock() {
            set.clear();
        }
        let in_flight2 = in_flight.clone();
        let batch = ctx
            .store
            .call(move |s| {
                let mut rows = s.due_for_hashing(BATCH)?;
                let full = rows.len() >= BATCH as usize;
                let retries = s.due_for_retry(now, BATCH)?;
                let full = full || retries.len() >= BATCH as usize;
                rows.extend(retries);
                // only rows no upload of ours is sending (the set is read under
                // the store, so a row finishing meanwhile is not counted)
                let uploading = s.uploading()?;
                let busy = in_flight2.lock().map(|set| set.clone()).unwrap_or_default();
                let stuck = uploading.iter().any(|r| !busy.contains(&r.id));
                Ok((rows, full, stuck))
            })
            .await;
        let (rows, full) = match batch {
            Ok((rows, full, stuck)) => {
                reconcile_again |= stuck;
                (rows, full)
            }
            Err(e) => {
                warn!(error = %e, "reading the upload queue failed; will try again");
                (Vec::new(), false)
            }
        };
        let mut dispatched = 0usize;
        for row in rows {
            let done = finished
                .lock()
                .map(|set| set.contains(&row.id))
                .unwrap_or(false);
            let fresh = !done
                && in_flight
                    .lock()
                    .map(|mut set| set.insert(row.id))
                    .unwrap_or(false);
            if !fresh {
                continue;
            }
            dispatched += 1;
            let permit = tokio::select! {
                _ = stop.cancelled() => return,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (ctx, in_flight, finished) = (ctx.clone(), in_flight.clone(), finished.clone());
            let (hints, keys) = (restarted.0.clone(), restarted.1.clone());
            let span = tracing::info_span!("file", path = %row.path_display(), id = row.id);
            tracker.spawn(
                async move {
                    let id = row.id;
                    let changed = ctx.folder(&row.folder).map(|f| crate::pipeline::file_path(f, &row));
                    let folder = keys.iter().position(|k| *k == row.folder);
                    match uploader::process(&ctx, row).await {
                        Ok(true) => {
                            if let (Some(path), Some(folder)) = (changed, folder) {
                                let hint = FolderHint { folder, hint: Hint::Changed(path) };
                                let _ = hints.send(hint).await;
                            }
                        }
                        Ok(false) => {}
                        Err(e) => {
                            warn!(error = %e, "recording an upload step failed; the row is picked up again");
                        }
                    }
                    if let Ok(mut set) = finished.lock() {
                        set.insert(id);
                    }
                    if let Ok(mut set) = in_flight.lock() {
                        set.remove(&id);
                    }
                    drop(permit);
                }
                .instrument(span),
            );
        }
        // A full batch leaves rows behind that no notification announces (they were
        // announced already): take the next batch at once instead of after a second.
        if full && dispatched > 0 {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = stable.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Decisions back, on a timer that backs off while nothing changes.
async fn poller_task(ctx: Ctx, base: Duration, stop: CancellationToken) {
    let base = base.max(Duration::from_millis(100));
    let mut interval = base;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let started = std::time::Instant::now();
        let polled = poller::poll_once(&ctx).await;
        ctx.metrics.polled(started.elapsed());
        match polled {
            Ok(cycle) if cycle.decided > 0 || cycle.requests == 0 => interval = base,
            Ok(cycle) => {
                debug!(
                    requests = cycle.requests,
                    waiting = cycle.waiting,
                    "no decision yet"
                );
                interval = (interval * 2).min(MAX_POLL_INTERVAL);
            }
            Err(e) => {
                warn!(error = %e, "polling failed; will try again");
                interval = (interval * 2).min(MAX_POLL_INTERVAL);
            }
        }
    }
}
