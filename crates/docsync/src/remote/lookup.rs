//! Finding an earlier attempt on the server: did an upload whose answer was
//! lost (a crash, a timeout, an unreadable response) arrive? One question, asked
//! by the upload stage before a retry and by the settle stage after a restart.

use super::marker::{files_marker, marker_in};
use super::{file_decision, request_id, Apis, Area, Decision, Remote, RemoteError};
use crate::model::Target;

impl Apis {
    /// Did an earlier attempt of this upload reach the server? Attachments are
    /// asked by the file id reserved before their bytes were sent
    /// (`reserved_id`; none: nothing can have arrived), the others by the
    /// content marker. `None`: the server has no such upload.
    pub async fn earlier_attempt(
        &self,
        to: &Target,
        reserved_id: Option<&str>,
        sha256: Option<&str>,
    ) -> Result<Option<Remote>, RemoteError> {
        match (to, reserved_id, sha256) {
            (Target::Attachments(attachment), Some(file_id), _) => {
                match self.attachment_status(&attachment.user_id, file_id).await {
                    Ok(found) => Ok(Some(found)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }
            (Target::Attachments(_), None, _) => Ok(None),
            (_, _, Some(sha256)) => self.find_by_marker(to, sha256).await,
            (_, _, None) => Ok(None),
        }
    }

    /// Find an upload of this content on the server by its marker (crash
    /// reconciliation). `None`: the server has no such upload.
    async fn find_by_marker(
        &self,
        to: &Target,
        sha256: &str,
    ) -> Result<Option<Remote>, RemoteError> {
        match to {
            Target::MoovFiles(target) => {
                let client = self.moov_for(Area::Files, &target.account_id).await?;
                let account_id = &target.account_id;
                let response = client
                    .retry_policy()
                    .run(|| async {
                        self.wait_turn().await;
                        client.list_files(account_id, None).await
                    })
                    .await?;
                let rid = request_id(&response);
                Ok(response
                    .into_inner()
                    .into_iter()
                    .find(|f| files_marker(&f.metadata).as_deref() == Some(sha256))
                    .map(|f| Remote {
                        decision: file_decision(&f.file_status, f.decision_reason.as_ref()),
                        remote_id: f.file_id,
                        request_id: rid.clone(),
                    }))
            }
            Target::MoovImages(target) => {
                let client = self.moov_for(Area::Images, &target.account_id).await?;
                let account_id = &target.account_id;
                let page = 200u32;
                let mut skip = 0i32;
                loop {
                    let count = std::num::NonZeroU32::new(page);
                    let response = client
                        .retry_policy()
                        .run(|| async {
                            self.wait_turn().await;
                            client
                                .list_image_metadata(account_id, count, Some(skip), None)
                                .await
                        })
                        .await?;
                    let rid = request_id(&response);
                    let images = response.into_inner();
                    let found = images
                        .iter()
                        .find(|i| i.alt_text.as_deref().and_then(marker_in) == Some(sha256));
                    if let Some(image) = found {
                        return Ok(Some(Remote {
                            remote_id: image.image_id.clone(),
                            decision: Decision::Approved,
                            request_id: rid,
                        }));
                    }
                    if images.len() < page as usize {
                        return Ok(None);
                    }
                    skip = skip.saturating_add(page as i32);
                }
            }
            // Attachments are found by their reserved file id instead.
            Target::Attachments(_) => Ok(None),
        }
    }
}
