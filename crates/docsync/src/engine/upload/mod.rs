//! Upload: `stable`/`retrying` rows to the server, at most `concurrency` at a
//! time. One row goes through four steps, in this order, each in its own file:
//!
//! 1. check ([`crate::local::check`]): hash and validate the file, off the store;
//! 2. [`intent`]: record what the check found; for a file ready to send, the
//!    upload intent (`uploading`), committed before any request is sent;
//! 3. [`send`]: ask the server about an earlier attempt (a retried row), then
//!    send;
//! 4. [`outcome`]: record `pending` (or decided), `retrying`, `failed` or
//!    `deleted`.
//!
//! Invariant: a row is never sent again without first asking the server
//! whether an earlier attempt arrived (by the content-hash marker, or the
//! attachment's reserved file id), so a timeout or a crash mid-request never
//! makes a second copy. For the same reason the upload request itself is not
//! retried inside the client: ambiguous failures (5xx, transport) go through
//! `retrying` and that check.
//!
//! Fed by the store (`due_for_hashing`, `due_for_retry`), woken by
//! [`super::ctx::Wakeups::stable`]. A row whose file changed after it held
//! still goes back to `discovered` and wakes the intake
//! ([`super::ctx::Wakeups::discovered`]); nothing is handed back directly.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use super::ctx::Ctx;
use crate::error::{Error, Result};
use crate::local::check::{check_file, Seen};
use crate::model::now_ms;
use crate::store::{FileRow, UploadQueue};
use intent::{record_intent, Prepared};

pub mod intent;
pub mod outcome;
pub mod send;

pub use outcome::{backoff, backoff_from};

/// How many rows the stage takes per round.
const BATCH: u32 = 256;

/// Rows in hand (being hashed, committed, sent or recorded) per request slot.
const IN_HAND_PER_SLOT: usize = 2;

/// The stage's first pause after rows failed to be recorded (the store
/// refused a write: a full disk, a locked or broken database); it doubles
/// with each round that fails again, up to [`MAX_STORE_PAUSE`].
const STORE_PAUSE: Duration = Duration::from_secs(1);
const MAX_STORE_PAUSE: Duration = Duration::from_secs(60);

/// What the rows in hand met in the store since the stage last looked: a
/// store that refuses every write (a full disk) must not have the stage read
/// the same rows, hash them and fail again at once, warning once per row,
/// round after round. The stage pauses instead when nothing at all was
/// recorded, and warns once per round either way.
#[derive(Debug, Default)]
struct StoreTrouble {
    /// Rows whose step could not be recorded, and the last error.
    failed: Option<(usize, String)>,
    /// Whether a row was recorded since (the store works again).
    recorded: bool,
}

impl StoreTrouble {
    fn note(trouble: &Mutex<StoreTrouble>, outcome: std::result::Result<(), &Error>) {
        let Ok(mut t) = trouble.lock() else {
            return;
        };
        match outcome {
            Ok(()) => t.recorded = true,
            Err(e) => {
                let rows = t.failed.as_ref().map_or(0, |(n, _)| *n);
                t.failed = Some((rows + 1, e.to_string()));
            }
        }
    }

    /// What happened since the last call: the failures, and whether any row
    /// was recorded.
    fn take(trouble: &Mutex<StoreTrouble>) -> (Option<(usize, String)>, bool) {
        trouble
            .lock()
            .map(|mut t| {
                let t = std::mem::take(&mut *t);
                (t.failed, t.recorded)
            })
            .unwrap_or((None, false))
    }
}

/// The pause after `rounds` rounds in a row that failed to record rows.
fn store_pause(rounds: u32) -> Duration {
    STORE_PAUSE
        .saturating_mul(1u32 << rounds.saturating_sub(1).min(6))
        .min(MAX_STORE_PAUSE)
}

/// What became of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// Sent; the outcome (pending, decided, retrying, failed) is recorded.
    Sent,
    /// Never sent: `invalid`, with the reason.
    Invalid,
    /// The same content already went to the same target: `duplicate`.
    Duplicate,
    /// The file changed after it held still: back to `discovered`.
    Restarted,
    /// The file is gone: `deleted`.
    Deleted,
    /// Its folder is no longer configured: left as it is.
    Skipped,
}

/// Hash, validate and upload one `stable` or `retrying` row. Errors are
/// recorded on the row; what comes back is only a store failure. `in_hand`
/// is the row's place among the rows in hand: given up (with the bytes kept
/// for sending) once its request is done, before the outcome is recorded.
pub async fn process(ctx: &Ctx, row: FileRow, in_hand: OwnedSemaphorePermit) -> Result<Processed> {
    let Some(folder) = ctx.folder(&row.folder).cloned() else {
        warn!(folder = %row.folder, "row of a folder no longer configured; skipped");
        return Ok(Processed::Skipped);
    };
    // Hashed off the store lock; then the intent is committed together with
    // those of every other file ready now (one commit, one fsync, for all of
    // them), and only then is the request sent. The quota is counted in that
    // commit.
    let (row, checked) = {
        let folder = folder.clone();
        tokio::task::spawn_blocking(move || {
            let seen = Seen {
                rel: &row.path,
                size: row.size,
                mtime_ns: row.mtime_ns,
            };
            check_file(&folder, seen).map(|checked| (row, checked))
        })
        .await
        .map_err(|e| Error::Task {
            what: "hashing",
            message: e.to_string(),
        })??
    };
    let path = folder.file_path(&row.path);
    let prepared = record_intent(&ctx.store, &row, checked, &path).await?;
    match prepared {
        Prepared::Upload(ready) => send::send(ctx, &folder, ready, in_hand)
            .await
            .map(|()| Processed::Sent),
        Prepared::Invalid { row } => {
            info!(path = %row.path_display(), "invalid: not sent (see `docsync history`)");
            Ok(Processed::Invalid)
        }
        Prepared::Duplicate { row, .. } => {
            info!(path = %row.path_display(), "same content already uploaded: not sent again");
            Ok(Processed::Duplicate)
        }
        Prepared::Restarted { .. } => Ok(Processed::Restarted),
        Prepared::Deleted { .. } => Ok(Processed::Deleted),
    }
}

/// Take due rows from the store and send them until `stop`. Uploads run on
/// `tracker`, so the caller can give them a grace period to finish.
///
/// At most [`Ctx::upload_concurrency`] requests are in flight (the slot is
/// taken in [`send`]), and twice as many rows are in hand until their request
/// is done: while a request is out, the next rows are hashed and their
/// intents committed, so a slot that frees finds a row ready instead of
/// waiting for the disk and the store. A row whose request is done gives its
/// place up before its outcome is committed, so the next row does not wait
/// for that commit either.
pub async fn run(ctx: Ctx, tracker: TaskTracker, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(ctx.upload_concurrency() * IN_HAND_PER_SLOT));
    // rows whose processing ended since the current batch was read
    let finished: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let trouble: Arc<Mutex<StoreTrouble>> = Arc::default();
    // rounds in a row whose rows could not be recorded
    let mut failing_rounds = 0u32;
    let beat = ctx.beats.register("upload");
    loop {
        beat.beat();
        match StoreTrouble::take(&trouble) {
            // nothing recorded since, only failures: the store refuses
            // writes (a full disk, the database down), so wait before the
            // same rows are taken again
            (Some((rows, error)), false) => {
                failing_rounds += 1;
                let pause = store_pause(failing_rounds);
                warn!(
                    rows,
                    error = %error,
                    "recording upload steps failed; the upload stage pauses {}s, then tries those rows again",
                    pause.as_secs()
                );
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = beat.idle_while(tokio::time::sleep(pause)) => {}
                }
            }
            // the store works (other rows were recorded): those rows are
            // taken again like any others
            (Some((rows, error)), true) => {
                failing_rounds = 0;
                warn!(
                    rows,
                    error = %error,
                    "recording upload steps failed for some rows; they are taken again"
                );
            }
            (None, true) => failing_rounds = 0,
            (None, false) => {}
        }
        let now = now_ms();
        // rows finished from here on may still be in this batch (read before
        // they finished): they are skipped, not hashed again
        if let Ok(mut set) = finished.lock() {
            set.clear();
        }
        let batch = ctx.store.upload_queue(now, BATCH).await;
        let UploadQueue { rows, full } = batch.unwrap_or_else(|e| {
            warn!(error = %e, "reading the upload queue failed; will try again");
            UploadQueue::default()
        });
        let mut dispatched = 0usize;
        for row in rows {
            let done = finished
                .lock()
                .map(|set| set.contains(&row.id))
                .unwrap_or(false);
            if done || !ctx.in_flight.claim(row.id) {
                continue;
            }
            dispatched += 1;
            let permit = tokio::select! {
                _ = stop.cancelled() => {
                    ctx.in_flight.release(row.id);
                    return;
                }
                // every row in hand busy with an upload: waiting is idle
                permit = beat.idle_while(permits.clone().acquire_owned()) => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (ctx, finished, trouble) = (ctx.clone(), finished.clone(), trouble.clone());
            let span = tracing::info_span!("file", path = %row.path_display(), id = row.id);
            tracker.spawn(
                async move {
                    let id = row.id;
                    let processed = process(&ctx, row, permit).await;
                    StoreTrouble::note(&trouble, processed.as_ref().map(|_| ()));
                    match processed {
                        Ok(Processed::Restarted) => ctx.wake.discovered.notify_one(),
                        // invalid or failed: maybe an event for the hooks
                        Ok(_) => ctx.wake.decided.notify_one(),
                        // counted above: the stage warns once per round and pauses
                        Err(e) => {
                            tracing::debug!(error = %e, "recording an upload step failed; the row is picked up again");
                        }
                    }
                    if let Ok(mut set) = finished.lock() {
                        set.insert(id);
                    }
                    ctx.in_flight.release(id);
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
            _ = ctx.wake.stable.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = beat.idle() => {}
        }
    }
}

#[cfg(test)]
mod tests;
