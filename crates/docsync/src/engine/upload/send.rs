//! Send: one committed intent to the server, and its outcome recorded.
//!
//! A retried row first asks the server whether an earlier attempt arrived
//! ([`crate::remote::lookup`]); an attachment reserves its signed URL (and
//! records the reserved file id) before any byte is sent; a changed image
//! replaces the one its earlier content was uploaded as.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use docsync_client::ApiError;
use tokio::sync::OwnedSemaphorePermit;
use tracing::warn;

use super::super::ctx::Ctx;
use super::intent::Ready;
use super::outcome::{classify, classify_for_account, finish, Outcome};
use crate::error::Result;
use crate::local::scanner::FileStat;
use crate::metrics::Stage;
use crate::model::{Folder, Target};
use crate::remote::{Remote, RemoteError, Upload};
use crate::store::{Change, FileRow, State};

/// Send an `uploading` row and record the outcome; `in_hand` (the row's place
/// among the rows in hand) and the bytes kept for sending are given up once
/// the request is done, before the outcome's commit.
pub(super) async fn send(
    ctx: &Ctx,
    folder: &Folder,
    ready: Ready,
    in_hand: OwnedSemaphorePermit,
) -> Result<()> {
    let Ready {
        row,
        plan,
        content,
        superseded_remote_id,
        retried,
    } = ready;
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
    let path = folder.file_path(&row.path);
    let remote_name = row.remote_name.clone().unwrap_or(plan.file_name);
    let upload = Upload {
        path: &path,
        content: content.as_ref().map(|c| &c.0),
        remote_name: &remote_name,
        size: row.size,
        sha256: &sha256,
        content_type: plan.content_type,
    };

    // The request, and the lookup before it, hold one of the `concurrency`
    // slots; hashing, the intent and the outcome's commit do not, so a slot
    // never waits for the store.
    //
    // With the state shared in PostgreSQL, the exchange stops when this
    // daemon can no longer be sure it holds the row's lease: another host may
    // then take the row over, and it must find no request of ours still
    // running. The row stays `uploading`; whoever settles it asks the server
    // first. (On SQLite `lease_lost` never resolves.)
    let result = {
        let _slot = ctx.upload_slot().await;
        let exchange = exchange(
            ctx,
            &row,
            &target,
            &upload,
            &sha256,
            superseded_remote_id,
            retried,
        );
        tokio::select! {
            result = exchange => result,
            () = ctx.store.lease_lost(row.id) => {
                warn!("the lease on this file could not be renewed in time: its request was stopped; the server is asked before it is sent again");
                return Ok(());
            }
        }
    };
    drop(content);
    drop(in_hand);
    finish(ctx, &row, result).await
}

/// Ask about an earlier attempt where one may have arrived, then send.
async fn exchange(
    ctx: &Ctx,
    row: &FileRow,
    target: &Target,
    upload: &Upload<'_>,
    sha256: &str,
    superseded_remote_id: Option<String>,
    retried: bool,
) -> std::result::Result<(Remote, &'static str), Outcome> {
    // The path again, now that a slot is free: a file deleted or changed
    // while its intent waited for one is not sent from what was read before.
    if let Some(outcome) = gone_or_changed_before_sending(upload.path, row) {
        return Err(outcome);
    }
    // A retried row may have reached the server the first time; after an
    // unclean stop, so may a row that looks new (its intent may be lost).
    if retried || row.attempts > 1 || ctx.verifies_first_attempts() {
        let earlier = ctx
            .apis
            .earlier_attempt(target, row.remote_id.as_deref(), Some(sha256))
            .await;
        match earlier {
            Ok(Some(found)) => return Ok((found, "an earlier attempt reached the server")),
            Ok(None) => {}
            Err(e) => {
                ctx.metrics.failure(Stage::Upload, &e);
                return Err(classify(e));
            }
        }
    }

    // a replacement names an image too: a 404 there may be about the image
    let replacing = superseded_remote_id.is_some()
        && matches!(target, Target::MoovImages(images) if images.replace_on_change);
    let started = std::time::Instant::now();
    let result = match target {
        Target::MoovImages(images) => {
            match superseded_remote_id.filter(|_| images.replace_on_change) {
                Some(image_id) => ctx
                    .apis
                    .replace_image(&images.account_id, &image_id, upload)
                    .await
                    .map(|r| (r, "replaced the image uploaded from the earlier content")),
                None => ctx
                    .apis
                    .upload(target, upload)
                    .await
                    .map(|r| (r, "uploaded")),
            }
        }
        Target::Attachments(attachment) => {
            upload_attachment(ctx, row, &attachment.user_id, attachment.persist, upload).await
        }
        Target::MoovFiles(_) => ctx
            .apis
            .upload(target, upload)
            .await
            .map(|r| (r, "uploaded")),
    };
    match &result {
        Ok(_) => ctx.metrics.uploaded(row.size, started.elapsed()),
        Err(e) => ctx.metrics.upload_failed(e, started.elapsed()),
    }
    // an upload names only its account in the path: a 404 is about the account
    let account = match target {
        Target::MoovFiles(t) => Some(t.account_id.as_str()),
        Target::MoovImages(t) if !replacing => Some(t.account_id.as_str()),
        Target::MoovImages(_) | Target::Attachments(_) => None,
    };
    match result.map_err(|e| classify_for_account(e, account)) {
        Err(Outcome::Vanished(reason)) => Err(Outcome::Vanished(reason)),
        Err(outcome) => Err(changed_while_sent(upload.path, row).unwrap_or(outcome)),
        ok => ok,
    }
}

/// The file at `path` is gone (`Vanished`) or no longer the size and mtime
/// that were hashed (`Transient`: read again once it holds still).
fn gone_or_changed_before_sending(path: &Path, row: &FileRow) -> Option<Outcome> {
    match FileStat::of_path(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Outcome::Vanished(
            "vanished after its upload intent was committed; not sent".into(),
        )),
        Err(_) => None,
        Ok(now) if now.size == row.size && now.mtime_ns == row.mtime_ns => None,
        Ok(now) => Some(Outcome::Transient {
            reason: format!(
                "changed after its upload intent was committed (size {} -> {} bytes); \
                 not sent; read again once it holds still",
                row.size, now.size
            ),
            request_id: None,
            retry_after: None,
        }),
    }
}

/// A failed upload of a file that changed after it was hashed failed because
/// of the change (the stream ended short, or ran past the declared length):
/// it is no verdict of the server's. Retried, which reads the file again once
/// it holds still (the next attempt finds it changed: back to `discovered`).
fn changed_while_sent(path: &Path, row: &FileRow) -> Option<Outcome> {
    let now = FileStat::of_path(path).ok()?;
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
    if let Err(e) = ctx.store.update_remote(id, State::Uploading, change).await {
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
