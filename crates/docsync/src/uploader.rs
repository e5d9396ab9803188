//! `stable`/`retrying` → hashed and validated → intent committed → sent →
//! `pending`; or `invalid`, `duplicate`, `retrying`, `failed`.
//!
//! Invariant: the upload intent (`uploading`) is committed before the request is
//! sent ([`crate::pipeline::record_check`]). Invariant: a row is never sent again
//! without first asking the server whether an earlier attempt arrived (by the
//! content-hash marker, or the attachment's reserved file id), so a timeout or a
//! crash mid-request never makes a second copy. For the same reason the upload
//! request itself is not retried inside the client: ambiguous failures (5xx,
//! transport) go through `retrying` and that check.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use docsync_client::ApiError;
use tracing::{info, warn};

use crate::config::{Folder, Target};
use crate::daemon::Ctx;
use crate::error::{Error, Result};
use crate::metrics::Stage;
use crate::pipeline::{check_file, file_path, record_check, Prepared};
use crate::remote::{Decision, Remote, RemoteError, Upload};
use crate::store::{Attempts, Change, FileRow, State};

/// Longest wait between two attempts of one file.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// Hash, validate and upload one `stable` or `retrying` row. Errors are
/// recorded on the row; what comes back is only a store failure.
///
/// `Ok(true)`: the file changed since it held still, and its row is back in
/// `discovered`; only the intake moves such a row on, so it must be told (as
/// the watcher would).
pub async fn process(ctx: &Ctx, row: FileRow) -> Result<bool> {
    let Some(folder) = ctx.folder(&row.folder).cloned() else {
        warn!(folder = %row.folder, "row of a folder no longer configured; skipped");
        return Ok(false);
    };
    // Hashed off the store lock, then recorded, in one trip to the blocking
    // pool; the quota is counted when the intent is committed.
    let prepared = {
        let (folder, store) = (folder.clone(), ctx.store.clone());
        tokio::task::spawn_blocking(move || {
            let checked = check_file(&folder, &row)?;
            store.call_blocking(|s| record_check(s, &row, checked))
        })
        .await
        .map_err(|e| Error::Task {
            what: "hashing",
            message: e.to_string(),
        })??
    };
    match prepared {
        Prepared::Upload { row, plan, content } => {
            let content = content.map(|c| c.0);
            send(
                ctx,
                &folder,
                row,
                (plan.file_name, plan.content_type),
                content,
            )
            .await
            .map(|()| false)
        }
        Prepared::Invalid { row } => {
            info!(path = %row.path_display(), "invalid: not sent (see `docsync history`)");
            Ok(false)
        }
        Prepared::Duplicate { row, .. } => {
            info!(path = %row.path_display(), "same content already uploaded: not sent again");
            Ok(false)
        }
        Prepared::Restarted { .. } => Ok(true),
        Prepared::Deleted { .. } => Ok(false),
    }
}

/// Send an `uploading` row and record the outcome.
async fn send(
    ctx: &Ctx,
    folder: &Folder,
    row: FileRow,
    (file_name, content_type): (String, &str),
    content: Option<Vec<u8>>,
) -> Result<()> {
    let rel = Path::new(OsStr::from_bytes(&row.path));
    let target = match folder.target_for(rel) {
        Ok(target) => target,
        Err(reason) => return finish(ctx, &row, Err(Outcome::Permanent(reason, None))).await,
    };
    let Some(sha256) = row.sha256.clone() else {
        return finish(
            ctx,
            &row,
            Err(Outcome::Permanent("no content hash recorded".into(), None)),
        )
        .await;
    };
    let path = file_path(folder, &row);
    let remote_name = row.remote_name.clone().unwrap_or(file_name);
    let upload = Upload {
        path: &path,
        content: content.as_deref(),
        remote_name: &remote_name,
        sha256: &sha256,
        content_type,
    };

    // A retried row may have reached the server the first time.
    if row.attempts > 1 {
        match earlier_attempt(ctx, &target, &row, &sha256).await {
            Ok(Some(found)) => {
                return finish(
                    ctx,
                    &row,
                    Ok((found, "an earlier attempt reached the server")),
                )
                .await
            }
            Ok(None) => {}
            Err(e) => {
                ctx.metrics.failure(Stage::Upload, &e);
                return finish(ctx, &row, Err(classify(e))).await;
            }
        }
    }

    let started = std::time::Instant::now();
    let result = match &target {
        Target::MoovImages(images) => {
            match replaced_image(ctx, &row, images.replace_on_change).await? {
                Some(image_id) => ctx
                    .apis
                    .replace_image(&images.account_id, &image_id, &upload)
                    .await
                    .map(|r| (r, "replaced the image uploaded from the earlier content")),
                None => ctx
                    .apis
                    .upload(&target, &upload)
                    .await
                    .map(|r| (r, "uploaded")),
            }
        }
        Target::Attachments(attachment) => {
            upload_attachment(ctx, &row, &attachment.user_id, attachment.persist, &upload).await
        }
        Target::MoovFiles(_) => ctx
            .apis
            .upload(&target, &upload)
            .await
            .map(|r| (r, "uploaded")),
    };
    match &result {
        Ok(_) => ctx.metrics.uploaded(row.size, started.elapsed()),
        Err(e) => ctx.metrics.upload_failed(e, started.elapsed()),
    }
    let result = match result.map_err(classify) {
        Err(Outcome::Vanished(reason)) => Err(Outcome::Vanished(reason)),
        Err(outcome) => Err(changed_while_sent(&path, &row).unwrap_or(outcome)),
        ok => ok,
    };
    finish(ctx, &row, result).await
}

/// A failed upload of a file that changed after it was hashed failed because
/// of the change (the stream ended short, or ran past the declared length):
/// it is no verdict of the server's. Retried, which reads the file again once
/// it holds still (the next attempt finds it changed: back to `discovered`).
fn changed_while_sent(path: &Path, row: &FileRow) -> Option<Outcome> {
    let now = crate::scanner::FileStat::of_path(path).ok()?;
    if now.size == row.size && now.mtime_ns == row.mtime_ns {
        return None;
    }
    Some(Outcome::Transient {
        reason: format!(
            "the file changed while it was being sent (size {} -> {} bytes); \
             it is read again once it holds still",
            row.size, now.size
        ),
        request_id: None,
        retry_after: None,
    })
}

/// Signed URL first (its file id recorded before any byte is sent), then the PUT.
async fn upload_attachment(
    ctx: &Ctx,
    row: &FileRow,
    user_id: &str,
    persist: bool,
    upload: &Upload<'_>,
) -> std::result::Result<(Remote, &'static str), RemoteError> {
    let (signed, request_id) = ctx
        .apis
        .reserve_attachment(user_id, persist, upload.remote_name)
        .await?;
    let change = Change {
        remote_id: Some(signed.file_id.clone()),
        request_id,
        ..Change::because("upload URL reserved")
    };
    let id = row.id;
    if let Err(e) = ctx
        .store
        .call(move |s| s.update_remote(id, State::Uploading, &change))
        .await
    {
        // Without the id on record a crash could not be reconciled: do not send.
        return Err(ApiError::InvalidRequest(format!(
            "recording the reserved file id failed: {e}"
        ))
        .into());
    }
    let size = std::fs::metadata(upload.path).map(|m| m.len()).unwrap_or(0);
    if i64::try_from(size).is_ok_and(|s| s > signed.max_size) {
        return Err(ApiError::InvalidRequest(format!(
            "{} bytes is more than the {} the attachments API accepts",
            size, signed.max_size
        ))
        .into());
    }
    ctx.apis
        .put_attachment(&signed, upload)
        .await
        .map(|r| (r, "uploaded to its signed URL"))
}

/// Did an earlier attempt of this row arrive?
async fn earlier_attempt(
    ctx: &Ctx,
    target: &Target,
    row: &FileRow,
    sha256: &str,
) -> std::result::Result<Option<Remote>, RemoteError> {
    match target {
        Target::Attachments(attachment) => match &row.remote_id {
            Some(file_id) => match ctx
                .apis
                .attachment_status(&attachment.user_id, file_id)
                .await
            {
                Ok(found) => Ok(Some(found)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            },
            None => Ok(None),
        },
        _ => ctx.apis.find_by_marker(target, sha256).await,
    }
}

/// For a changed image, the remote id of the image it replaces.
async fn replaced_image(
    ctx: &Ctx,
    row: &FileRow,
    replace_on_change: bool,
) -> Result<Option<String>> {
    let Some(old) = row.supersedes.filter(|_| replace_on_change) else {
        return Ok(None);
    };
    let old = ctx.store.call(move |s| s.get(old)).await?;
    Ok(old.and_then(|o| o.remote_id))
}

/// How a failed upload ends.
#[derive(Debug)]
pub enum Outcome {
    /// The server will never accept it: `failed`, with its words.
    Permanent(String, Option<String>),
    /// Try again later (not before `retry_after`).
    Transient {
        reason: String,
        request_id: Option<String>,
        retry_after: Option<Duration>,
    },
    /// The file vanished before or while it was sent.
    Vanished(String),
}

fn classify(error: RemoteError) -> Outcome {
    match error {
        RemoteError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Outcome::Vanished(format!("vanished while being sent: {source}"))
        }
        RemoteError::Read { path, source } => Outcome::Transient {
            reason: format!("could not read {path}: {source}"),
            request_id: None,
            retry_after: None,
        },
        RemoteError::NotConfigured(what) => Outcome::Permanent(
            format!(
                "no {what} API is configured; add its URL and credentials, then `docsync retry`"
            ),
            None,
        ),
        RemoteError::Api(e) => {
            let e = *e;
            let request_id = e.request_id().map(str::to_string);
            if let ApiError::InvalidResponse { .. } = e {
                // A success status with a body that cannot be read: the upload
                // may well have arrived. Not `failed` (a `docsync retry` of a
                // failed row would send it blind, making a second copy) but
                // `retrying`, whose next attempt asks the server by the marker
                // first.
                return Outcome::Transient {
                    reason: format!(
                        "the server's answer could not be read ({e}); \
                         checking whether the upload arrived before trying again"
                    ),
                    request_id,
                    retry_after: None,
                };
            }
            if e.is_retryable() {
                Outcome::Transient {
                    reason: e.to_string(),
                    retry_after: e.retry_after(),
                    request_id,
                }
            } else {
                Outcome::Permanent(e.to_string(), request_id)
            }
        }
    }
}

/// Exponential backoff with jitter (±10 %) from the default first wait:
/// 5 s, 10 s, 20 s ... at most 15 min.
pub fn backoff(attempts: u32) -> Duration {
    backoff_from(crate::config::DEFAULT_RETRY_INITIAL, attempts)
}

/// Exponential backoff with jitter (±10 %): `initial`, twice that, four times
/// ... at most 15 min (`retry_initial` in the configuration).
pub fn backoff_from(initial: Duration, attempts: u32) -> Duration {
    let base = initial.saturating_mul(1u32 << attempts.min(12));
    let capped = base.min(MAX_BACKOFF);
    let jitter = rand::random::<f64>() * 0.2 + 0.9;
    capped.mul_f64(jitter)
}

async fn finish(
    ctx: &Ctx,
    row: &FileRow,
    result: std::result::Result<(Remote, &'static str), Outcome>,
) -> Result<()> {
    let id = row.id;
    let path = row.path_display();
    match result {
        Ok((remote, how)) => {
            let change = Change {
                remote_id: Some(remote.remote_id.clone()),
                remote_status: Some(status_word(&remote.decision).into()),
                request_id: remote.request_id.clone(),
                last_error: Some(String::new()),
                ..Change::because(how)
            };
            let decided = decided_change(&remote);
            ctx.store
                .call_grouped(move |s| {
                    s.transition(id, State::Uploading, State::Pending, &change)?;
                    if let Some((to, change)) = decided {
                        s.transition(id, State::Pending, to, &change)?;
                    }
                    Ok(())
                })
                .await?;
            info!(path, remote_id = %remote.remote_id, request_id = remote.request_id.as_deref().unwrap_or("-"), "uploaded");
        }
        Err(Outcome::Permanent(reason, request_id)) => {
            warn!(path, request_id = request_id.as_deref().unwrap_or("-"), %reason, "upload refused");
            let change = Change {
                last_error: Some(reason.clone()),
                request_id,
                ..Change::because(reason)
            };
            ctx.store
                .call_grouped(move |s| s.transition(id, State::Uploading, State::Failed, &change))
                .await?;
        }
        Err(Outcome::Transient {
            reason,
            request_id,
            retry_after,
        }) => {
            ctx.metrics.retry_scheduled();
            // Never sooner than the server asked (Retry-After).
            let wait = backoff_from(ctx.retry_initial(), row.attempts)
                .max(retry_after.unwrap_or_default());
            warn!(path, request_id = request_id.as_deref().unwrap_or("-"), %reason, retry_in_s = wait.as_secs(), "upload failed; will retry");
            let next =
                crate::model::now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
            let change = Change {
                last_error: Some(reason.clone()),
                request_id,
                next_attempt_at: Some(next),
                attempts: Attempts::Keep,
                ..Change::because(format!("{reason}; retrying in {}s", wait.as_secs()))
            };
            ctx.store
                .call_grouped(move |s| s.transition(id, State::Uploading, State::Retrying, &change))
                .await?;
        }
        Err(Outcome::Vanished(reason)) => {
            ctx.store
                .call_grouped(move |s| {
                    s.transition(
                        id,
                        State::Uploading,
                        State::Deleted,
                        &Change::because(reason),
                    )
                })
                .await?;
        }
    }
    Ok(())
}

/// The decision that arrives with the upload itself (images need no review;
/// an attachment's status comes later).
fn decided_change(remote: &Remote) -> Option<(State, Change)> {
    match &remote.decision {
        Decision::Pending | Decision::Unknown(_) => None,
        Decision::Approved => Some((State::Approved, Change::because("accepted by the server"))),
        Decision::Rejected(reason) => Some((
            State::Rejected,
            Change {
                decision_reason: reason.clone(),
                ..Change::because(format!(
                    "rejected by the server: {}",
                    reason.as_deref().unwrap_or("no reason given")
                ))
            },
        )),
    }
}

/// The word stored in `remote_status`.
pub fn status_word(decision: &Decision) -> &'static str {
    match decision {
        Decision::Pending => "pending",
        Decision::Unknown(_) => "unknown",
        Decision::Approved => "approved",
        Decision::Rejected(_) => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(0);
        assert!(
            first >= Duration::from_millis(4500) && first <= Duration::from_millis(5500),
            "{first:?}"
        );
        assert!(backoff(3) > backoff(1));
        assert!(backoff(40) <= MAX_BACKOFF.mul_f64(1.1));
        let fast = backoff_from(Duration::from_millis(50), 0);
        assert!(
            fast >= Duration::from_millis(45) && fast <= Duration::from_millis(55),
            "{fast:?}"
        );
        assert!(backoff_from(Duration::from_millis(50), 40) <= MAX_BACKOFF.mul_f64(1.1));
    }

    #[test]
    fn only_transient_api_errors_are_retried() {
        let transient = classify(RemoteError::from(ApiError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            body: docsync_client::ErrorBody::None,
            request_id: Some("r1".into()),
        }));
        assert!(
            matches!(transient, Outcome::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(7))
        );
        let permanent = classify(RemoteError::from(ApiError::Validation {
            body: docsync_client::ErrorBody::None,
            request_id: Some("r2".into()),
        }));
        assert!(matches!(permanent, Outcome::Permanent(_, Some(ref id)) if id == "r2"));
        let gone = classify(RemoteError::Read {
            path: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert!(matches!(gone, Outcome::Vanished(_)));
        // 2xx with an unreadable body: ambiguous, so retried (marker check first)
        let unreadable = classify(RemoteError::from(ApiError::InvalidResponse {
            detail: "missing field `fileID`".into(),
        }));
        assert!(
            matches!(unreadable, Outcome::Transient { ref reason, .. } if reason.contains("missing field `fileID`")),
            "{unreadable:?}"
        );
    }
}
