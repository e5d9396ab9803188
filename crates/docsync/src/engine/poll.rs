//! `pending` → `approved` | `rejected`: decisions read back from the server.
//!
//! Moov files: one list call per account per cycle, however many files wait
//! (never one GET per file). Attachments: one status call per pending file.
//! [`run`] calls [`poll_once`] on a timer that backs off while nothing
//! changes. After a decision, `after_decision = "move"` moves the file.
//! Also here: disabling the images of deleted files (`disable_on_delete`).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::ctx::Ctx;
use super::decision::{decided, log_decided};
use crate::error::Result;
use crate::metrics::Stage;
use crate::model::{AfterDecision, Folder, Target, TargetKind};
use crate::remote::{Decision, Remote};
use crate::store::{Change, FileMove, FileRow, State, StateStore};

/// The longest wait between two polls while no decision arrives.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// Decisions back, on a timer that backs off while nothing changes, until `stop`.
pub async fn run(ctx: Ctx, base: Duration, stop: CancellationToken) {
    let base = base.max(Duration::from_millis(100));
    let mut interval = base;
    let beat = ctx.beats.register("poll");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = beat.idle_while(tokio::time::sleep(interval)) => {}
        }
        let started = std::time::Instant::now();
        // waiting on the API is alive: every request has its timeouts and its
        // retries their bound, and the API may ask for long waits (Retry-After)
        let polled = beat.idle_while(poll_once(&ctx)).await;
        ctx.metrics.polled(started.elapsed());
        if polled.as_ref().is_ok_and(|cycle| cycle.decided > 0) {
            ctx.wake.decided.notify_one();
        }
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

/// What one cycle did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    /// Requests sent to read decisions.
    pub requests: u32,
    /// Rows whose decision arrived.
    pub decided: u32,
    /// Rows still waiting.
    pub waiting: u32,
}

/// Read every pending row's decision once. Only the rows a decision is about
/// are loaded: a Moov account's list is matched through the remote-ID index,
/// and rows still pending on the server stay in the database.
pub async fn poll_once(ctx: &Ctx) -> Result<Cycle> {
    let accounts = ctx.store.pending_accounts().await?;
    let mut cycle = Cycle::default();
    for group in accounts {
        let waiting = u32::try_from(group.count).unwrap_or(u32::MAX);
        match group.kind {
            TargetKind::MoovFiles => {
                cycle.requests += 1;
                let (files, request_id) = match ctx.apis.list_files(&group.account).await {
                    Ok(listed) => listed,
                    Err(e) => {
                        ctx.metrics.failure(Stage::Poll, &e);
                        warn!(account = %group.account, error = %e, "listing files failed; will poll again");
                        cycle.waiting += waiting;
                        continue;
                    }
                };
                let listed: Vec<String> = files.iter().map(|(id, _)| id.clone()).collect();
                let answered: HashMap<String, Decision> = files
                    .into_iter()
                    .filter(|(_, d)| *d != Decision::Pending)
                    .collect();
                let ids: Vec<String> = answered.keys().cloned().collect();
                let account = group.account.clone();
                let (rows, matched) = ctx
                    .store
                    .pending_listed(group.kind, account, ids, listed)
                    .await?;
                let mut decided = 0u32;
                for row in rows {
                    let Some(remote_id) = row.remote_id.clone() else {
                        continue;
                    };
                    let Some(decision) = answered.get(&remote_id) else {
                        continue;
                    };
                    let remote = Remote {
                        remote_id,
                        decision: decision.clone(),
                        request_id: request_id.clone(),
                    };
                    if record(ctx, &row, &remote).await? {
                        decided += 1;
                    }
                }
                cycle.decided += decided;
                cycle.waiting += waiting.saturating_sub(decided);
                // one line per account and cycle, not one per file
                let unlisted = group.count.saturating_sub(matched);
                if unlisted > 0 {
                    warn!(
                        account = %group.account,
                        count = unlisted,
                        "the server does not list these uploaded files (yet); still waiting"
                    );
                }
            }
            TargetKind::Attachments => {
                let account = group.account.clone();
                let rows = ctx.store.pending_rows(group.kind, account).await?;
                for row in rows {
                    let Some(file_id) = row.remote_id.clone() else {
                        continue;
                    };
                    cycle.requests += 1;
                    match ctx.apis.attachment_status(&group.account, &file_id).await {
                        Ok(remote) => {
                            if record(ctx, &row, &remote).await? {
                                cycle.decided += 1;
                            } else {
                                cycle.waiting += 1;
                            }
                        }
                        Err(e) => {
                            ctx.metrics.failure(Stage::Poll, &e);
                            warn!(path = %row.path_display(), error = %e, "reading the attachment status failed; will poll again");
                            cycle.waiting += 1;
                        }
                    }
                }
            }
            // Images are decided when uploaded; a pending one is approved now.
            TargetKind::MoovImages => {
                let account = group.account.clone();
                let rows = ctx.store.pending_rows(group.kind, account).await?;
                for row in rows {
                    let remote = Remote {
                        remote_id: row.remote_id.clone().unwrap_or_default(),
                        decision: Decision::Approved,
                        request_id: None,
                    };
                    record(ctx, &row, &remote).await?;
                    cycle.decided += 1;
                }
            }
        }
    }
    disable_deleted_images(ctx).await?;
    Ok(cycle)
}

/// Write a decision; `true` when the row left `pending`.
async fn record(ctx: &Ctx, row: &FileRow, remote: &Remote) -> Result<bool> {
    if let Decision::Unknown(word) = &remote.decision {
        // Not a decision: keep polling. Record the server's word once, so
        // `status` shows why the file still waits.
        if row.remote_status.as_deref() != Some(word.as_str()) {
            warn!(path = %row.path_display(), status = %word, "the server reports a status this docsync does not know; still waiting for a decision");
            let change = Change {
                remote_status: Some(word.clone()),
                request_id: remote.request_id.clone(),
                last_error: Some(unknown_status(word)),
                ..Change::because(unknown_status(word))
            };
            let id = row.id;
            if let Err(e) = ctx.store.update_remote(id, State::Pending, change).await {
                warn!(path = %row.path_display(), error = %e, "recording the unknown status failed");
            }
        }
        return Ok(false);
    }
    let Some((to, change)) = decided(remote) else {
        return Ok(false);
    };
    let id = row.id;
    let decided = ctx.store.transition(id, State::Pending, to, change).await?;
    log_decided(&decided);
    move_if_configured(ctx, &decided).await;
    Ok(true)
}

fn unknown_status(word: &str) -> String {
    format!(
        "the server reports status `{word}`, which this docsync does not know; \
         still waiting for approved or rejected (upgrade docsync if this persists)"
    )
}

/// `after_decision = "move"`: into `approved/` or `rejected/` beside the file.
/// A failed move is logged and left for the next decision-free cycle; the
/// decision itself is already recorded.
async fn move_if_configured(ctx: &Ctx, row: &FileRow) {
    let Some(folder) = ctx.folder(&row.folder).cloned() else {
        return;
    };
    if decision_destination(&folder, row).is_none() {
        return;
    }
    let path = row.path_display();
    if let Err(e) = move_decided_file(&ctx.store, &folder, row).await {
        warn!(path, error = %e, "moving the decided file failed; it stays where it is");
    }
}

/// Where `after_decision = "move"` puts a decided file, relative to the folder root:
/// an `approved/` or `rejected/` directory beside it. `None` when the folder leaves
/// files in place, the row is not decided, or it was moved already.
pub fn decision_destination(folder: &Folder, row: &FileRow) -> Option<PathBuf> {
    if folder.after_decision != AfterDecision::Move || row.moved_to.is_some() {
        return None;
    }
    let dir = match row.state {
        State::Approved => "approved",
        State::Rejected => "rejected",
        _ => return None,
    };
    let rel = Path::new(OsStr::from_bytes(&row.path));
    let name = rel.file_name()?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    Some(parent.join(dir).join(name))
}

/// Move a decided file into `approved/` or `rejected/` and record it. Returns the new
/// relative path, or `None` if there is nothing to move (see
/// [`decision_destination`]) or the file is already gone. An existing file at the
/// destination is never overwritten: ` (1)`, ` (2)`, ... is added to the name.
///
/// The rename and its record are one store call
/// ([`StateStore::move_and_record`]), so that no scan is recorded between them.
pub async fn move_decided_file(
    store: &StateStore,
    folder: &Folder,
    row: &FileRow,
) -> Result<Option<PathBuf>> {
    let Some((file_move, dest_rel)) = decided_file_move(folder, row) else {
        return Ok(None);
    };
    Ok(store.move_and_record(file_move).await?.then_some(dest_rel))
}

/// The move [`move_decided_file`] makes, and where it puts the file relative
/// to the folder root; `None` when there is nothing to move.
pub fn decided_file_move(folder: &Folder, row: &FileRow) -> Option<(FileMove, PathBuf)> {
    let dest_rel = decision_destination(folder, row)?;
    let dest_rel = free_name(&folder.path, &dest_rel);
    let file_move = FileMove {
        id: row.id,
        from: folder.file_path(&row.path),
        to: folder.path.join(&dest_rel),
        to_rel: dest_rel.as_os_str().as_bytes().to_vec(),
        reason: format!("moved to {}", dest_rel.display()),
    };
    Some((file_move, dest_rel))
}

/// `rel`, or `rel` with ` (n)` before its extension, whichever does not exist yet.
fn free_name(root: &Path, rel: &Path) -> PathBuf {
    if !root.join(rel).exists() {
        return rel.to_owned();
    }
    let stem = rel
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = rel.extension().map(|e| format!(".{}", e.to_string_lossy()));
    for n in 1..10_000 {
        let candidate = rel.with_file_name(format!("{stem} ({n}){}", ext.as_deref().unwrap_or("")));
        if !root.join(&candidate).exists() {
            return candidate;
        }
    }
    rel.with_file_name(format!(
        "{stem} ({}){}",
        uuid::Uuid::new_v4(),
        ext.as_deref().unwrap_or("")
    ))
}

/// Images deleted locally, in folders with `disable_on_delete`: disable them
/// on the server (they stay reachable at their public URL).
async fn disable_deleted_images(ctx: &Ctx) -> Result<()> {
    let rows = ctx
        .store
        .deleted_with_remote(TargetKind::MoovImages, "disabled")
        .await?;
    for row in rows {
        let Some(folder) = ctx.folder(&row.folder) else {
            continue;
        };
        let rel = Path::new(OsStr::from_bytes(&row.path));
        let Ok(Target::MoovImages(images)) = folder.target_for(rel) else {
            continue;
        };
        if !images.disable_on_delete {
            continue;
        }
        let Some(image_id) = row.remote_id.clone() else {
            continue;
        };
        match ctx.apis.disable_image(&images.account_id, &image_id).await {
            Ok(request_id) => {
                let change = Change {
                    remote_status: Some("disabled".into()),
                    request_id,
                    ..Change::because("deleted locally: image disabled on the server")
                };
                let id = row.id;
                ctx.store.update_remote(id, State::Deleted, change).await?;
            }
            Err(e) => {
                warn!(path = %row.path_display(), error = %e, "disabling the image failed; will try again")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
