//! The remote APIs, as the engine needs them: upload one file, find an
//! upload again after a crash ([`lookup`]), and read decisions back.
//! [`connect`] builds the clients from the configuration, [`marker`] is the
//! content-hash marker every upload carries, [`ratelimit`] the shared limit.
//!
//! This is the only module that calls the generated client. It never touches
//! the store: callers record what it returns. Reads (lists, statuses) go
//! through the client's retry policy (429/5xx/transport, honouring
//! Retry-After). Uploads are sent once: an ambiguous failure may have reached
//! the server, so the uploader records it as `retrying` and asks the server
//! (by the content marker) before sending again.
//!
//! Every request, each retry of a read included, first waits its turn at the
//! shared [`RateLimiter`] (`max_requests_per_second`), if one is configured.

use std::path::Path;

use docsync_client::moov::types::{FileStatus, ImageMetadataRequest};
use docsync_client::{attachments, moov, ApiError, FilePart, ResponseValue, RetryPolicy};

use crate::model::Target;
use marker::{files_metadata, image_alt_text};
use ratelimit::RateLimiter;

pub mod connect;
mod http;
pub mod lookup;
pub mod marker;
pub mod ratelimit;

/// One file to send.
#[derive(Clone, Copy, Debug)]
pub struct Upload<'a> {
    pub path: &'a Path,
    /// The file's bytes when the hasher kept them (a small file): sent as they
    /// are, exactly what was hashed. `None`: streamed from `path`.
    pub content: Option<&'a bytes::Bytes>,
    /// The name the server records (shortened when the local one is too long).
    pub remote_name: &'a str,
    /// The size hashed: what the server must say it received.
    pub size: u64,
    pub sha256: &'a str,
    pub content_type: &'a str,
}

/// The server's view of one uploaded file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Waiting for review (Moov files) or processing (attachments).
    Pending,
    /// Approved (Moov files), ready (attachments), or stored (images).
    Approved,
    /// Rejected (Moov files) or failed processing (attachments), with the reason.
    Rejected(Option<String>),
    /// A status this build does not know (the server's word): not a decision,
    /// so polling goes on; recorded so that `status` shows what the server says.
    Unknown(String),
}

impl Decision {
    /// The word stored in `remote_status`.
    pub fn word(&self) -> &'static str {
        match self {
            Decision::Pending => "pending",
            Decision::Unknown(_) => "unknown",
            Decision::Approved => "approved",
            Decision::Rejected(_) => "rejected",
        }
    }
}

/// What the server answered to an upload or a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub remote_id: String,
    pub decision: Decision,
    pub request_id: Option<String>,
}

/// A signed upload URL reserved for an attachment (the first half of its upload).
#[derive(Clone, Debug)]
pub struct SignedUpload {
    pub file_id: String,
    pub file_url: String,
    pub max_size: i64,
}

/// The clients for the configured APIs.
#[derive(Clone, Debug)]
pub struct Apis {
    pub moov: Option<moov::Client>,
    pub attachments: Option<attachments::Client>,
    /// `max_requests_per_second`: every request waits its turn here, retries
    /// included (`None`: no limit).
    pub limiter: Option<RateLimiter>,
}

/// An error of the remote layer: the API's, or a local file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Api(Box<ApiError>),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no {0} API is configured for this folder")]
    NotConfigured(&'static str),
    /// A success answer that does not match what was sent (another name or
    /// size, no marker): the server's word for this upload cannot be trusted.
    #[error("the server's answer does not match the upload: {reason} (request {})", .request_id.as_deref().unwrap_or("without an ID"))]
    Mismatch {
        reason: String,
        request_id: Option<String>,
    },
}

impl From<ApiError> for RemoteError {
    fn from(error: ApiError) -> Self {
        Self::Api(Box::new(error))
    }
}

impl RemoteError {
    /// The server answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api(e) if matches!(**e, ApiError::NotFound { .. }))
    }
}

pub(super) fn request_id<T>(value: &ResponseValue<T>) -> Option<String> {
    value
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn open(upload: &Upload<'_>) -> Result<FilePart, RemoteError> {
    let part = match upload.content {
        Some(bytes) => FilePart::from_bytes(bytes.clone(), upload.remote_name),
        None => FilePart::open(upload.path)
            .await
            .map_err(|source| RemoteError::Read {
                path: upload.path.display().to_string(),
                source,
            })?,
    };
    Ok(part
        .with_file_name(upload.remote_name)
        .with_content_type(upload.content_type))
}

pub(super) fn file_decision(status: &FileStatus, reason: Option<&String>) -> Decision {
    match status {
        FileStatus::Approved => Decision::Approved,
        FileStatus::Rejected => Decision::Rejected(reason.cloned()),
        FileStatus::Pending => Decision::Pending,
        // a status this build does not know yet: keep polling
        FileStatus::Unknown(word) => Decision::Unknown(word.clone()),
    }
}

fn attachment_decision(status: &attachments::types::FileStatus) -> Decision {
    use attachments::types::ProcessingState;
    match &status.status {
        ProcessingState::Ready => Decision::Approved,
        ProcessingState::Failed => Decision::Rejected(status.reason.clone()),
        ProcessingState::Processing => Decision::Pending,
        ProcessingState::Unknown(word) => Decision::Unknown(word.clone()),
    }
}

/// The part of a Moov account a call touches (its OAuth scopes).
#[derive(Debug, Clone, Copy)]
pub(super) enum Area {
    Files,
    Images,
}

impl Apis {
    /// Wait until the rate limit allows one more request.
    pub(super) async fn wait_turn(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
    }

    /// The Moov client, for a call on `area` of `account_id`: with OAuth, its
    /// tokens then carry that account's scopes (accounts of the
    /// `<accountID>/<filePurpose>/` layout are known only at run time).
    pub(super) async fn moov_for(
        &self,
        area: Area,
        account_id: &str,
    ) -> Result<&moov::Client, RemoteError> {
        let client = self
            .moov
            .as_ref()
            .ok_or(RemoteError::NotConfigured("Moov"))?;
        let scopes = match area {
            Area::Files => docsync_client::auth::files_scopes(account_id),
            Area::Images => docsync_client::auth::images_scopes(account_id),
        };
        client.ensure_scopes(&scopes).await;
        Ok(client)
    }

    fn attachments(&self) -> Result<&attachments::Client, RemoteError> {
        self.attachments
            .as_ref()
            .ok_or(RemoteError::NotConfigured("attachments"))
    }

    /// Upload a file to Moov Files or Images. (Attachments go in two steps:
    /// [`Apis::reserve_attachment`] then [`Apis::put_attachment`].)
    pub async fn upload(&self, to: &Target, upload: &Upload<'_>) -> Result<Remote, RemoteError> {
        match to {
            Target::MoovFiles(target) => {
                let client = self.moov_for(Area::Files, &target.account_id).await?;
                let account_id = &target.account_id;
                let purpose: moov::types::FilePurpose = target
                    .file_purpose
                    .as_str()
                    .parse()
                    .unwrap_or_else(|never| match never {});
                let metadata = files_metadata(&target.metadata, upload.sha256);
                let response = RetryPolicy::none()
                    .run(|| async {
                        let body = moov::types::FileUploadRequestMultiPart {
                            file: open(upload)
                                .await
                                .map_err(|e| progenitor_client_error(e.to_string()))?,
                            file_purpose: purpose.clone(),
                            metadata: Some(metadata.clone()),
                        };
                        self.wait_turn().await;
                        client.upload_file(account_id, None, body).await
                    })
                    .await?;
                let rid = request_id(&response);
                let details = response.into_inner();
                let mut wrong = Vec::new();
                if details.file_name.as_str() != upload.remote_name {
                    wrong.push(format!(
                        "it names the file {:?}, {:?} was sent",
                        details.file_name.as_str(),
                        upload.remote_name
                    ));
                }
                if u64::try_from(details.file_size_bytes).ok() != Some(upload.size) {
                    wrong.push(format!(
                        "it says {} bytes arrived, {} were sent",
                        details.file_size_bytes, upload.size
                    ));
                }
                if !wrong.is_empty() {
                    return Err(RemoteError::Mismatch {
                        reason: wrong.join(" and "),
                        request_id: rid,
                    });
                }
                Ok(Remote {
                    decision: file_decision(&details.file_status, details.decision_reason.as_ref()),
                    remote_id: details.file_id,
                    request_id: rid,
                })
            }
            Target::MoovImages(target) => {
                let client = self.moov_for(Area::Images, &target.account_id).await?;
                let account_id = &target.account_id;
                let alt_text = alt_text_value(upload)?;
                let response = RetryPolicy::none()
                    .run(|| async {
                        let body = moov::types::ImageUploadRequestMultiPart {
                            image: open(upload)
                                .await
                                .map_err(|e| progenitor_client_error(e.to_string()))?,
                            metadata: Some(ImageMetadataRequest {
                                alt_text: Some(alt_text.clone()),
                            }),
                        };
                        self.wait_turn().await;
                        client.upload_image(account_id, None, body).await
                    })
                    .await?;
                let rid = request_id(&response);
                Ok(Remote {
                    remote_id: response.into_inner().image_id,
                    decision: Decision::Approved,
                    request_id: rid,
                })
            }
            Target::Attachments(_) => Err(RemoteError::NotConfigured(
                "single-step attachments (use reserve_attachment + put_attachment)",
            )),
        }
    }

    /// Replace a synced image's bytes (its metadata is kept).
    pub async fn replace_image(
        &self,
        account_id: &str,
        image_id: &str,
        upload: &Upload<'_>,
    ) -> Result<Remote, RemoteError> {
        let client = self.moov_for(Area::Images, account_id).await?;
        let alt_text = alt_text_value(upload)?;
        let response = RetryPolicy::none()
            .run(|| async {
                let body = moov::types::ImageUploadRequestMultiPart {
                    image: open(upload)
                        .await
                        .map_err(|e| progenitor_client_error(e.to_string()))?,
                    metadata: Some(ImageMetadataRequest {
                        alt_text: Some(alt_text.clone()),
                    }),
                };
                self.wait_turn().await;
                client.update_image(account_id, image_id, None, body).await
            })
            .await?;
        let rid = request_id(&response);
        Ok(Remote {
            remote_id: response.into_inner().image_id,
            decision: Decision::Approved,
            request_id: rid,
        })
    }

    /// Disable a synced image (it stays reachable at its public URL).
    pub async fn disable_image(
        &self,
        account_id: &str,
        image_id: &str,
    ) -> Result<Option<String>, RemoteError> {
        let client = self.moov_for(Area::Images, account_id).await?;
        let response = client
            .retry_policy()
            .run(|| async {
                self.wait_turn().await;
                client.delete_image(account_id, image_id, None).await
            })
            .await?;
        Ok(request_id(&response))
    }

    /// Reserve a signed upload URL for an attachment. Record `file_id` before
    /// calling [`Apis::put_attachment`].
    pub async fn reserve_attachment(
        &self,
        user_id: &str,
        persist: bool,
        remote_name: &str,
    ) -> Result<(SignedUpload, Option<String>), RemoteError> {
        let client = self.attachments()?;
        let filename: attachments::types::GetSignedUrlFilename = remote_name
            .parse()
            .map_err(|e| invalid(format!("attachment name `{remote_name}`: {e}")))?;
        let user: attachments::types::UserId = user_id
            .parse()
            .map_err(|e| invalid(format!("user id `{user_id}`: {e}")))?;
        let response = client
            .retry_policy()
            .run(|| async {
                self.wait_turn().await;
                client.get_signed_url(&filename, Some(persist), &user).await
            })
            .await?;
        let rid = request_id(&response);
        let signed = response.into_inner();
        Ok((
            SignedUpload {
                file_id: signed.file_id.to_string(),
                file_url: signed.file_url,
                max_size: signed.file_limits.max_size,
            },
            rid,
        ))
    }

    /// PUT an attachment's bytes to its signed URL.
    pub async fn put_attachment(
        &self,
        signed: &SignedUpload,
        upload: &Upload<'_>,
    ) -> Result<Remote, RemoteError> {
        let client = self.attachments()?;
        let response = RetryPolicy::none()
            .run(|| async {
                let part = open(upload)
                    .await
                    .map_err(|e| progenitor_client_error(e.to_string()))?;
                self.wait_turn().await;
                client.upload_to_file_url(&signed.file_url, part).await
            })
            .await?;
        Ok(Remote {
            remote_id: signed.file_id.clone(),
            decision: Decision::Pending,
            request_id: request_id(&response),
        })
    }

    /// The processing state of one attachment.
    pub async fn attachment_status(
        &self,
        user_id: &str,
        file_id: &str,
    ) -> Result<Remote, RemoteError> {
        let client = self.attachments()?;
        let id: uuid::Uuid = file_id
            .parse()
            .map_err(|_| invalid(format!("attachment id `{file_id}` is not a UUID")))?;
        let user: attachments::types::UserId = user_id
            .parse()
            .map_err(|e| invalid(format!("user id `{user_id}`: {e}")))?;
        let response = client
            .retry_policy()
            .run(|| async {
                self.wait_turn().await;
                client.get_file_status(&id, &user).await
            })
            .await?;
        let rid = request_id(&response);
        let status = response.into_inner();
        Ok(Remote {
            remote_id: file_id.to_string(),
            decision: attachment_decision(&status),
            request_id: rid,
        })
    }

    /// Every file of a Moov account with its decision: one list call.
    pub async fn list_files(
        &self,
        account_id: &str,
    ) -> Result<(Vec<(String, Decision)>, Option<String>), RemoteError> {
        let client = self.moov_for(Area::Files, account_id).await?;
        let response = client
            .retry_policy()
            .run(|| async {
                self.wait_turn().await;
                client.list_files(account_id, None).await
            })
            .await?;
        let rid = request_id(&response);
        let files = response
            .into_inner()
            .into_iter()
            .map(|f| {
                let decision = file_decision(&f.file_status, f.decision_reason.as_ref());
                (f.file_id, decision)
            })
            .collect();
        Ok((files, rid))
    }
}

fn invalid(message: String) -> RemoteError {
    ApiError::InvalidRequest(message).into()
}

fn alt_text_value(
    upload: &Upload<'_>,
) -> Result<moov::types::ImageMetadataRequestAltText, RemoteError> {
    image_alt_text(upload.remote_name, upload.sha256)
        .parse()
        .map_err(|e| invalid(format!("alt text for {}: {e}", upload.remote_name)))
}

/// A local failure inside a retried call (the file could not be opened):
/// not retryable, reported with its message.
fn progenitor_client_error(message: String) -> progenitor_client::Error<()> {
    progenitor_client::Error::Custom(message)
}
