//! The intake's loop: watcher hints, rescans and the quiet window's deadlines
//! in; `stable` rows out (and the upload stage woken).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Intake, FIRST_SCAN_PART, SCAN_PART};
use crate::engine::ctx::Ctx;
use crate::error::{Error, Result};
use crate::local::scanner::{scan_folder_in_parts, ScannedFile};
use crate::local::watcher::{FolderHint, RescanQueue};
use crate::store::SeenIds;

/// The most watcher hints the intake applies in one store call.
const HINT_BATCH: usize = 1024;

/// Where the intake's hints come from: the watchers' channel and the rescans
/// they booked.
pub struct Hints {
    pub rx: mpsc::Receiver<FolderHint>,
    pub rescans: Arc<RescanQueue>,
}

/// Walk folder `n` off the store lock and record it as the walk goes: the
/// walk hands its files over in parts growing from [`FIRST_SCAN_PART`] to
/// [`SCAN_PART`], each recorded (one transaction), its files that held still
/// promoted (the upload stage woken) and dropped while the walk goes on; once
/// the walk is done, the vanished files. A restart over a large folder holds
/// one or two parts, never the whole walk, and starts sending after its
/// first part.
pub async fn scan(ctx: &Ctx, intake: &Arc<Mutex<Intake>>, n: usize) -> Result<()> {
    let Some((root, ignore)) = intake
        .lock()
        .await
        .folder(n)
        .map(|(f, ig)| (f.path.clone(), ig.clone()))
    else {
        return Ok(());
    };
    let (parts_tx, mut parts) = mpsc::channel::<Vec<ScannedFile>>(1);
    let walker = tokio::task::spawn_blocking(move || {
        scan_folder_in_parts(&root, &ignore, FIRST_SCAN_PART, SCAN_PART, &mut |files| {
            parts_tx.blocking_send(files).is_ok()
        })
    });
    let mut store = ctx.store.clone();
    let mut seen = SeenIds::new();
    let mut recorded = Ok(());
    while let Some(files) = parts.recv().await {
        let part = intake
            .lock()
            .await
            .apply_scan_part(&mut store, n, &files, &mut seen, Instant::now())
            .await;
        // files that held still before the walk saw them go on at once
        if let Err(e) = part.and(promote(ctx, intake).await) {
            recorded = Err(e);
            break;
        }
    }
    // stops the walk if recording failed
    drop(parts);
    let walked = walker.await.map_err(|e| Error::Task {
        what: "scan",
        message: e.to_string(),
    })??;
    recorded?;
    for error in &walked.errors {
        warn!(
            error,
            "part of the folder could not be read; retried on the next scan"
        );
    }
    intake
        .lock()
        .await
        .finish_scan(&mut store, n, &walked.skipped, walked.complete, seen)
        .await?;
    ctx.last_scan.mark(crate::model::now_ms());
    Ok(())
}

/// Rescan each of `folders`; the first error, after trying them all.
async fn rescan(ctx: &Ctx, intake: &Arc<Mutex<Intake>>, folders: Vec<usize>) -> Result<()> {
    let mut result = Ok(());
    for n in folders {
        ctx.metrics.rescan();
        if let Err(e) = scan(ctx, intake, n).await {
            result = Err(e);
        }
    }
    result
}

/// Apply a run of hints (with every hint already waiting) and promote what
/// became complete; then rescan the folders they asked for.
async fn apply_hints(
    ctx: &Ctx,
    intake: &Arc<Mutex<Intake>>,
    first: FolderHint,
    hints: &mut mpsc::Receiver<FolderHint>,
) -> Result<()> {
    // each path looked at once, the files of a folder recorded in one store
    // call, then the files the run made complete promoted together
    let mut batch = vec![first];
    while batch.len() < HINT_BATCH {
        match hints.try_recv() {
            Ok(hint) => batch.push(hint),
            Err(_) => break,
        }
    }
    let now = Instant::now();
    let mut store = ctx.store.clone();
    let intake2 = intake.clone();
    let ((rescans, looked), promoted, new_stable) =
        on_blocking_pool("applying hints", async move {
            let mut i = intake2.lock().await;
            let looked = i.on_hints(&mut store, &batch, now).await;
            let promoted = i.promote_ready(&mut store, now).await;
            (looked, promoted, i.take_new_stable())
        })
        .await?;
    if new_stable > 0 || promoted.as_ref().is_ok_and(|p| !p.is_empty()) {
        ctx.wake.stable.notify_one();
    }
    let result = looked.and(promoted.map(|_| ()));
    rescan(ctx, intake, rescans).await.and(result)
}

/// Promote the files whose quiet window passed; wake the upload stage for
/// them and for the new rows recorded `stable` at once.
async fn promote(ctx: &Ctx, intake: &Arc<Mutex<Intake>>) -> Result<()> {
    let now = Instant::now();
    let mut store = ctx.store.clone();
    let intake = intake.clone();
    let (promoted, new_stable) = on_blocking_pool("promoting files", async move {
        let mut i = intake.lock().await;
        let promoted = i.promote_ready(&mut store, now).await;
        (promoted, i.take_new_stable())
    })
    .await?;
    let count = promoted.as_ref().map_or(0, Vec::len);
    if count + new_stable > 0 {
        debug!(promoted = count, new_stable, "files became stable");
        ctx.wake.stable.notify_one();
    }
    promoted.map(|_| ())
}

/// Rows the upload stage put back to `discovered`: their quiet window again.
async fn track_discovered(ctx: &Ctx, intake: &Arc<Mutex<Intake>>) -> Result<()> {
    let now = Instant::now();
    let mut store = ctx.store.clone();
    let intake = intake.clone();
    on_blocking_pool("tracking changed files", async move {
        intake.lock().await.track_discovered(&mut store, now).await
    })
    .await?
    .map(|_| ())
}

/// Run an intake step on tokio's blocking pool: it stats files (a slow
/// network share must not hold up a runtime worker), and awaits the store
/// from there.
async fn on_blocking_pool<R: Send + 'static>(
    what: &'static str,
    step: impl std::future::Future<Output = R> + Send + 'static,
) -> Result<R> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(step))
        .await
        .map_err(|e| Error::Task {
            what,
            message: e.to_string(),
        })
}

/// Hints and scans in; `stable` rows out (and the upload stage woken), until
/// `stop`. The initial scan has run before (see [`crate::engine`]).
pub async fn run(
    ctx: Ctx,
    intake: Arc<Mutex<Intake>>,
    hints: Hints,
    scan_interval: Duration,
    stop: CancellationToken,
) {
    let Hints {
        rx: mut hints,
        rescans,
    } = hints;
    let folders = intake.lock().await.folders.len();
    let mut periodic = tokio::time::interval(scan_interval.max(Duration::from_secs(1)));
    periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    periodic.tick().await; // the first tick is now: the initial scan already ran
    let beat = ctx.beats.register("intake");
    loop {
        beat.beat();
        let deadline = intake.lock().await.next_deadline();
        let step: Result<()> = tokio::select! {
            _ = stop.cancelled() => return,
            hint = hints.recv(), if !hints.is_closed() => match hint {
                Some(hint) => apply_hints(&ctx, &intake, hint, &mut hints).await,
                None => Ok(()),
            },
            _ = ctx.wake.discovered.notified() => track_discovered(&ctx, &intake).await,
            // a rescan was booked: look at when it is due
            _ = rescans.booked() => Ok(()),
            _ = sleep_until(rescans.next_due()) => {
                rescan(&ctx, &intake, rescans.take_due(Instant::now())).await
            }
            _ = periodic.tick() => {
                let mut result = Ok(());
                for n in 0..folders {
                    if let Err(e) = scan(&ctx, &intake, n).await {
                        result = Err(e);
                    }
                }
                result
            }
            _ = sleep_until(deadline) => promote(&ctx, &intake).await,
            _ = beat.idle() => Ok(()),
        };
        if let Err(e) = step {
            // One bad step (a full disk, a locked database) must not stop the
            // daemon: log it and go on; the next scan repairs what was missed.
            warn!(error = %e, "intake step failed; continuing (every folder is rescanned in a few seconds)");
            // what the failed step held (hints, promotions) is found again by
            // a rescan soon, not only at the next periodic scan
            let soon = Instant::now() + Duration::from_secs(3);
            for n in 0..folders {
                rescans.book(n, soon);
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// Sleep until `at`; forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
