//! Crash reconciliation: rows found in `uploading` when the daemon starts.
//!
//! Such a row's request may or may not have reached the server before the
//! crash. Before anything is sent again, the server is asked: found (by the
//! content-hash marker, or the attachment's reserved file id) → `pending`
//! with the remote id; not found → `stable`, to be uploaded again. If the
//! server cannot be asked, the row stays in `uploading` and is reconciled on a
//! later cycle: nothing is re-sent blind.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::config::Target;
use crate::daemon::Ctx;
use crate::error::Result;
use crate::remote::{Remote, RemoteError};
use crate::store::{Change, FileRow, State};
use crate::uploader::status_word;

/// What [`reconcile_uploading`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Found on the server: now `pending` (or decided).
    pub found: u32,
    /// Not on the server: back to `stable`.
    pub resend: u32,
    /// The server could not be asked: still `uploading`.
    pub unresolved: u32,
}

/// The rows in `uploading` that no upload of this process is sending.
///
/// The set is read inside the store call, after the rows: a row sent by this
/// process is in the set from before it entered `uploading` until after its
/// outcome is recorded, and no outcome can be recorded while this call holds
/// the store, so a row finishing meanwhile is never taken for a stuck one.
pub async fn stuck_uploading(
    ctx: &Ctx,
    in_flight: &Arc<Mutex<HashSet<i64>>>,
) -> Result<Vec<FileRow>> {
    let in_flight = in_flight.clone();
    ctx.store
        .call(move |s| {
            let rows = s.uploading()?;
            let busy = in_flight.lock().map(|set| set.clone()).unwrap_or_default();
            Ok(rows.into_iter().filter(|r| !busy.contains(&r.id)).collect())
        })
        .await
}

/// Reconcile every row in `uploading` except those `in_flight` (being sent by
/// this process right now). At start nothing is in flight.
pub async fn reconcile_uploading(
    ctx: &Ctx,
    in_flight: &Arc<Mutex<HashSet<i64>>>,
) -> Result<Reconciled> {
    let rows = stuck_uploading(ctx, in_flight).await?;
    let mut done = Reconciled::default();
    for row in rows {
        let Some(folder) = ctx.folder(&row.folder).cloned() else {
            continue;
        };
        let rel = Path::new(OsStr::from_bytes(&row.path));
        let Ok(target) = folder.target_for(rel) else {
            continue;
        };
        let lookup: std::result::Result<Option<Remote>, RemoteError> =
            match (&target, &row.remote_id, &row.sha256) {
                (Target::Attachments(a), Some(file_id), _) => {
                    match ctx.apis.attachment_status(&a.user_id, file_id).await {
                        Ok(remote) => Ok(Some(remote)),
                        Err(e) if e.is_not_found() => Ok(None),
                        Err(e) => Err(e),
                    }
                }
                (Target::Attachments(_), None, _) => Ok(None),
                (_, _, Some(sha256)) => ctx.apis.find_by_marker(&target, sha256).await,
                (_, _, None) => Ok(None),
            };
        let id = row.id;
        match lookup {
            Ok(Some(remote)) => {
                let change = Change {
                    remote_id: Some(remote.remote_id.clone()),
                    remote_status: Some(status_word(&remote.decision).into()),
                    request_id: remote.request_id.clone(),
                    ..Change::because(
                        "reconciled after a restart: the upload had reached the server",
                    )
                };
                ctx.store
                    .call(move |s| s.transition(id, State::Uploading, State::Pending, &change))
                    .await?;
                info!(path = %row.path_display(), remote_id = %remote.remote_id, "reconciled: already on the server");
                done.found += 1;
            }
            Ok(None) => {
                let change = Change::because(
                    "reconciled after a restart: not on the server; will upload again",
                );
                ctx.store
                    .call(move |s| s.transition(id, State::Uploading, State::Stable, &change))
                    .await?;
                info!(path = %row.path_display(), "reconciled: not on the server; will upload again");
                done.resend += 1;
            }
            Err(e) => {
                warn!(path = %row.path_display(), error = %e, "cannot reconcile with the server yet; nothing is re-sent until it can");
                done.unresolved += 1;
            }
        }
    }
    Ok(done)
}
