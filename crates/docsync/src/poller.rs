//! `pending` → `approved` | `rejected`: decisions read back from the server.
//!
//! Moov files: one list call per account per cycle, however many files wait
//! (never one GET per file). Attachments: one status call per pending file.
//! The daemon calls [`poll_once`] on a timer that backs off while nothing
//! changes. After a decision, `after_decision = "move"` moves the file.
//! Also here: disabling the images of deleted files (`disable_on_delete`).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tracing::{debug, info, warn};

use crate::config::{Target, TargetKind};
use crate::daemon::Ctx;
use crate::error::Result;
use crate::metrics::Stage;
use crate::pipeline::{decision_destination, move_decided_file};
use crate::remote::{Decision, Remote};
use crate::store::{Change, FileRow, State};
use crate::uploader::status_word;

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

/// Read every pending row's decision once.
pub async fn poll_once(ctx: &Ctx) -> Result<Cycle> {
    let groups = ctx.store.call(|s| s.pending_groups()).await?;
    let mut cycle = Cycle::default();
    for group in groups {
        match group.kind {
            TargetKind::MoovFiles => {
                cycle.requests += 1;
                let listed = match ctx.apis.list_files(&group.account).await {
                    Ok(listed) => listed,
                    Err(e) => {
                        ctx.metrics.failure(Stage::Poll, &e);
                        warn!(account = %group.account, error = %e, "listing files failed; will poll again");
                        cycle.waiting += group.rows.len() as u32;
                        continue;
                    }
                };
                let (files, request_id) = listed;
                let by_id: HashMap<String, Decision> = files.into_iter().collect();
                let mut unlisted = Vec::new();
                for row in group.rows {
                    let Some(remote_id) = row.remote_id.clone() else {
                        continue;
                    };
                    match by_id.get(&remote_id) {
                        Some(decision) => {
                            let remote = Remote {
                                remote_id,
                                decision: decision.clone(),
                                request_id: request_id.clone(),
                            };
                            if record(ctx, &row, &remote).await? {
                                cycle.decided += 1;
                            } else {
                                cycle.waiting += 1;
                            }
                        }
                        None => {
                            debug!(path = %row.path_display(), %remote_id, "the server does not list this file (yet)");
                            unlisted.push(row.path_display());
                            cycle.waiting += 1;
                        }
                    }
                }
                // one line per account and cycle, not one per file
                if let Some(first) = unlisted.first() {
                    warn!(
                        account = %group.account,
                        count = unlisted.len(),
                        example = %first,
                        "the server does not list these uploaded files (yet); still waiting"
                    );
                }
            }
            TargetKind::Attachments => {
                for row in group.rows {
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
                for row in group.rows {
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
    let (to, change) = match &remote.decision {
        Decision::Pending => return Ok(false),
        Decision::Unknown(word) => {
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
                if let Err(e) = ctx
                    .store
                    .call(move |s| s.update_remote(id, State::Pending, &change))
                    .await
                {
                    warn!(path = %row.path_display(), error = %e, "recording the unknown status failed");
                }
            }
            return Ok(false);
        }
        Decision::Approved => (
            State::Approved,
            Change {
                remote_status: Some(status_word(&remote.decision).into()),
                request_id: remote.request_id.clone(),
                last_error: Some(String::new()),
                ..Change::because("approved by the server")
            },
        ),
        Decision::Rejected(reason) => (
            State::Rejected,
            Change {
                remote_status: Some(status_word(&remote.decision).into()),
                decision_reason: reason.clone(),
                request_id: remote.request_id.clone(),
                last_error: Some(String::new()),
                ..Change::because(format!(
                    "rejected by the server: {}",
                    reason.as_deref().unwrap_or("no reason given")
                ))
            },
        ),
    };
    let id = row.id;
    let decided = ctx
        .store
        .call(move |s| s.transition(id, State::Pending, to, &change))
        .await?;
    info!(path = %decided.path_display(), state = decided.state.as_str(), reason = decided.decision_reason.as_deref().unwrap_or(""), "decided");
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
    let store = ctx.store.clone();
    let row = row.clone();
    let path = row.path_display();
    let result = store
        .call(move |s| move_decided_file(s, &folder, &row))
        .await;
    if let Err(e) = result {
        warn!(path, error = %e, "moving the decided file failed; it stays where it is");
    }
}

/// Images deleted locally, in folders with `disable_on_delete`: disable them
/// on the server (they stay reachable at their public URL).
async fn disable_deleted_images(ctx: &Ctx) -> Result<()> {
    let rows = ctx
        .store
        .call(|s| s.deleted_with_remote(TargetKind::MoovImages, "disabled"))
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
                ctx.store
                    .call(move |s| s.update_remote(id, State::Deleted, &change))
                    .await?;
            }
            Err(e) => {
                warn!(path = %row.path_display(), error = %e, "disabling the image failed; will try again")
            }
        }
    }
    Ok(())
}
