//! Settle: rows left in `uploading` by a stop or a failed step.
//!
//! Such a row's request may or may not have reached the server. Before
//! anything is sent again, the server is asked ([`crate::remote::lookup`]):
//! found → `pending` (or decided) with the remote id; not found → `stable`, and
//! the upload stage is woken to send it again. If the server cannot be asked,
//! the row stays in `uploading` and is asked again on the next round: nothing
//! is re-sent blind.
//!
//! [`settle_once`] runs before the other stages start (whatever the last stop
//! left behind), then [`run`] looks again every second for rows that no upload
//! of this process is sending (a store failure while recording an outcome
//! leaves such a row behind).

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ctx::Ctx;
use super::decision::server_answer;
use crate::error::Result;
use crate::store::{Change, FileRow, State};

/// How often [`run`] looks for rows left in `uploading`.
const INTERVAL: Duration = Duration::from_secs(1);

/// What [`settle_once`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Found on the server: now `pending` (or decided).
    pub found: u32,
    /// Not on the server: back to `stable`.
    pub resend: u32,
    /// The server could not be asked: still `uploading`.
    pub unresolved: u32,
}

/// The rows in `uploading` that no upload of this process is sending.
///
/// The in-flight set is read inside the store call, after the rows: a row
/// sent by this process is in the set from before it entered `uploading`
/// until after its outcome is recorded, and no outcome can be recorded while
/// this call holds the store, so a row finishing meanwhile is never taken for
/// a stuck one.
pub async fn stuck_uploading(ctx: &Ctx) -> Result<Vec<FileRow>> {
    let in_flight = ctx.in_flight.clone();
    ctx.store
        .stuck_uploading(move |id| in_flight.contains(id))
        .await
}

/// Ask the server about every row in `uploading` that this process is not
/// sending, and record the answer.
pub async fn settle_once(ctx: &Ctx) -> Result<Settled> {
    // In hand until each is answered, as an upload's row is: on PostgreSQL
    // their leases are renewed meanwhile, so a slow server does not let them
    // expire (and be taken over again, by anyone) while they wait their turn.
    let mut rows: VecDeque<FileRow> = stuck_uploading(ctx)
        .await?
        .into_iter()
        .filter(|row| ctx.in_flight.claim(row.id))
        .collect();
    let mut done = Settled::default();
    while let Some(row) = rows.pop_front() {
        let id = row.id;
        let settled = settle_row(ctx, row, &mut done).await;
        ctx.in_flight.release(id);
        if let Err(e) = settled {
            for row in rows {
                ctx.in_flight.release(row.id);
            }
            return Err(e);
        }
    }
    if done.resend > 0 {
        ctx.wake.stable.notify_one();
    }
    Ok(done)
}

/// Ask the server about `row` and record the answer, counted in `done`.
async fn settle_row(ctx: &Ctx, row: FileRow, done: &mut Settled) -> Result<()> {
    let Some(folder) = ctx.folder(&row.folder) else {
        return Ok(());
    };
    let rel = Path::new(OsStr::from_bytes(&row.path));
    let Ok(target) = folder.target_for(rel) else {
        return Ok(());
    };
    let lookup = ctx
        .apis
        .earlier_attempt(&target, row.remote_id.as_deref(), row.sha256.as_deref())
        .await;
    let id = row.id;
    match lookup {
        Ok(Some(remote)) => {
            let how = "reconciled after a restart: the upload had reached the server";
            ctx.store
                .record_on_server(id, server_answer(&remote, how))
                .await?;
            info!(path = %row.path_display(), remote_id = %remote.remote_id, "reconciled: already on the server");
            done.found += 1;
        }
        Ok(None) => {
            let change =
                Change::because("reconciled after a restart: not on the server; will upload again");
            ctx.store
                .transition(id, State::Uploading, State::Stable, change)
                .await?;
            info!(path = %row.path_display(), "reconciled: not on the server; will upload again");
            done.resend += 1;
        }
        Err(e) => {
            warn!(path = %row.path_display(), error = %e, "cannot reconcile with the server yet; nothing is re-sent until it can");
            done.unresolved += 1;
        }
    }
    Ok(())
}

/// Settle rows left in `uploading` until `stop`.
pub async fn run(ctx: Ctx, stop: CancellationToken) {
    let beat = ctx.beats.register("settle");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = beat.idle_while(tokio::time::sleep(INTERVAL)) => {}
        }
        // asking the API is alive (see the poll stage): bounded by the client
        if let Err(e) = beat.idle_while(settle_once(&ctx)).await {
            warn!(error = %e, "reconciling interrupted uploads failed; will try again");
        }
    }
}

#[cfg(test)]
mod tests;
