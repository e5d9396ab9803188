//! How an upload ended, and its record: a failed request is `classify`'d as
//! permanent (`failed`), transient (`retrying`, after a [`backoff`], while the
//! budget `[http] retry_for` lasts: [`next_wait`]; then `failed`, saying so) or
//! a file that vanished (`deleted`); an answer is recorded through
//! [`super::super::decision`].

use std::time::Duration;

use docsync_client::ApiError;
use tracing::{info, warn};

use super::super::ctx::Ctx;
use super::super::decision::server_answer;
use crate::error::Result;
use crate::model::EXAMPLE_MOOV_ACCOUNT_ID;
use crate::remote::{Remote, RemoteError};
use crate::store::{Attempts, Change, FileRow, State, UploadAnswer, UploadAnswered};

/// Longest wait between two attempts of one file.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

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

pub(super) fn classify(error: RemoteError) -> Outcome {
    match error {
        RemoteError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Outcome::Vanished(format!("vanished while being sent: {source}"))
        }
        RemoteError::Read { path, source } => Outcome::Transient {
            reason: format!("could not read {path}: {source}"),
            request_id: None,
            retry_after: None,
        },
        RemoteError::Mismatch { reason, request_id } => Outcome::Permanent(
            format!("the server's answer does not match the upload: {reason}; not marked pending"),
            request_id,
        ),
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
                let timed_out = matches!(&e, ApiError::Transport(t) if t.is_timeout());
                Outcome::Transient {
                    reason: if timed_out {
                        format!(
                            "timed out: the server did not answer within [http] \
                             read_timeout or connect_timeout ({e})"
                        )
                    } else {
                        e.to_string()
                    },
                    retry_after: e.retry_after(),
                    request_id,
                }
            } else {
                Outcome::Permanent(e.to_string(), request_id)
            }
        }
    }
}

/// [`classify`] for a request that named a Moov account (`account`; `None` for
/// the attachments API): a 404 there means the server knows no such account (or
/// the API version is malformed), so the refusal says what to check.
pub(super) fn classify_for_account(error: RemoteError, account: Option<&str>) -> Outcome {
    let not_found = error.is_not_found();
    match (classify(error), account) {
        (Outcome::Permanent(reason, request_id), Some(account)) if not_found => Outcome::Permanent(
            format!(
                "{reason}: the server knows no account `{}`; check that it is the \
                     account's Moov ID (a UUID such as {EXAMPLE_MOOV_ACCOUNT_ID}) and \
                     the configured API version, then `docsync retry`",
                account.escape_debug()
            ),
            request_id,
        ),
        (outcome, _) => outcome,
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

/// The wait before the next attempt of a file whose attempts began `elapsed`
/// ago: the backoff, never less than the server's `Retry-After`, and never
/// past the budget (`retry_for`): the last attempt falls at its end. `None`
/// when the budget is spent, or the server asks for a wait beyond it.
pub fn next_wait(
    backoff: Duration,
    retry_after: Duration,
    elapsed: Duration,
    budget: Duration,
) -> Option<Duration> {
    let remaining = budget.saturating_sub(elapsed);
    if remaining.is_zero() || retry_after > remaining {
        return None;
    }
    Some(backoff.min(remaining).max(retry_after))
}

/// The reason recorded when the retry budget is spent.
fn exhausted(reason: &str, elapsed: Duration, attempts: u32, budget: Duration) -> String {
    format!(
        "{reason}; retries exhausted: {attempts} attempts over {} ([http] retry_for = {}); \
         not sent again until `docsync retry PATH` (or `docsync retry --all-failed`), \
         which asks the server first whether an attempt arrived",
        human(Duration::from_secs(elapsed.as_secs())),
        human(budget)
    )
}

/// A duration the way the configuration writes one: `1h`, `90s`, `1500ms`.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        _ if d.subsec_millis() != 0 || secs == 0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Record how an upload ended: on the server (`pending`, or decided), or
/// `failed`, `retrying` or `deleted`.
pub(super) async fn finish(
    ctx: &Ctx,
    row: &FileRow,
    result: std::result::Result<(Remote, &'static str), Outcome>,
) -> Result<()> {
    let id = row.id;
    let path = row.path_display();
    match result {
        Ok((remote, how)) => {
            let answer = UploadAnswer {
                id,
                target: row.target.clone(),
                remote_id: remote.remote_id.clone(),
                request_id: remote.request_id.clone(),
                sha256: row.sha256.clone(),
                replaces: row.supersedes,
                answer: server_answer(&remote, how),
            };
            // checked when it comes back: an ID the server gave before for
            // other content is not this upload's
            let reused = match ctx.store.record_upload_answer(answer).await? {
                UploadAnswered::IdHeldBy(other) => Some(other.path_display()),
                UploadAnswered::OnServer(_) => None,
            };
            match reused {
                Some(other) => {
                    warn!(path, remote_id = %remote.remote_id, other = %other, request_id = remote.request_id.as_deref().unwrap_or("-"), "the server answered with a file ID already recorded for other content; not marked pending")
                }
                None => {
                    info!(path, remote_id = %remote.remote_id, request_id = remote.request_id.as_deref().unwrap_or("-"), "uploaded")
                }
            }
        }
        Err(Outcome::Permanent(reason, request_id)) => {
            warn!(path, request_id = request_id.as_deref().unwrap_or("-"), %reason, "upload refused");
            let change = Change {
                last_error: Some(reason.clone()),
                request_id,
                ..Change::because(reason)
            };
            ctx.store
                .record_outcome(id, State::Uploading, State::Failed, change)
                .await?;
        }
        Err(Outcome::Transient {
            reason,
            request_id,
            retry_after,
        }) => {
            let backoff = backoff_from(ctx.retry_initial(), row.attempts);
            let (budget, attempts, created_at) = (ctx.retry_for(), row.attempts, row.created_at);
            let retry_after = retry_after.unwrap_or_default();
            let log_reason = reason.clone();
            let log_request_id = request_id.clone();
            let verdict = ctx
                .store
                .record_failed_attempt(id, created_at, move |since| {
                    let now = crate::model::now_ms();
                    let elapsed =
                        Duration::from_millis(u64::try_from(now - since).unwrap_or_default());
                    match next_wait(backoff, retry_after, elapsed, budget) {
                        Some(wait) => {
                            let next =
                                now + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                            let change = Change {
                                last_error: Some(reason.clone()),
                                request_id,
                                next_attempt_at: Some(next),
                                attempts: Attempts::Keep,
                                ..Change::because(format!(
                                    "{reason}; retrying in {}s",
                                    wait.as_secs()
                                ))
                            };
                            (State::Retrying, change, Ok(wait))
                        }
                        None => {
                            let given_up = exhausted(&reason, elapsed, attempts, budget);
                            let change = Change {
                                last_error: Some(given_up.clone()),
                                request_id,
                                ..Change::because(given_up.clone())
                            };
                            (State::Failed, change, Err(given_up))
                        }
                    }
                })
                .await?;
            let request_id = log_request_id.as_deref().unwrap_or("-");
            match verdict {
                Ok(wait) => {
                    ctx.metrics.retry_scheduled();
                    warn!(path, request_id, reason = %log_reason, retry_in_s = wait.as_secs(), "upload failed; will retry");
                }
                Err(given_up) => {
                    warn!(path, request_id, reason = %given_up, "upload failed; retries exhausted");
                }
            }
        }
        Err(Outcome::Vanished(reason)) => {
            ctx.store
                .record_outcome(
                    id,
                    State::Uploading,
                    State::Deleted,
                    Change::because(reason),
                )
                .await?;
        }
    }
    Ok(())
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
    fn the_retry_budget_bounds_the_waits() {
        let s = Duration::from_secs;
        // within the budget: the backoff, at least what the server asked
        assert_eq!(next_wait(s(5), s(0), s(10), s(3600)), Some(s(5)));
        assert_eq!(next_wait(s(5), s(30), s(10), s(3600)), Some(s(30)));
        // the last attempt falls at the budget's end
        assert_eq!(next_wait(s(600), s(0), s(3500), s(3600)), Some(s(100)));
        // spent, or the server asks for a wait beyond it: give up
        assert_eq!(next_wait(s(5), s(0), s(3600), s(3600)), None);
        assert_eq!(next_wait(s(5), s(0), s(4000), s(3600)), None);
        assert_eq!(next_wait(s(5), s(200), s(3500), s(3600)), None);
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
        assert_eq!(human(s(90)), "90s");
        let why = exhausted("503", s(3600), 14, s(3600));
        assert!(
            why.contains("retries exhausted")
                && why.contains("retry_for = 1h")
                && why.contains("docsync retry"),
            "{why}"
        );
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

    /// A 404 to a request naming an account (the sandbox's answer, and Moov's, to
    /// an account ID that is not a UUID) is a permanent refusal that says what
    /// to check; a 404 elsewhere keeps the plain words.
    #[test]
    fn not_found_for_an_account_says_to_check_the_account_id() {
        let not_found = || {
            RemoteError::from(ApiError::NotFound {
                body: docsync_client::ErrorBody::None,
                request_id: Some("r404".into()),
            })
        };
        let outcome = classify_for_account(not_found(), Some("acme"));
        let Outcome::Permanent(reason, Some(id)) = outcome else {
            panic!("not permanent: {outcome:?}");
        };
        assert_eq!(id, "r404");
        assert!(
            reason.contains("the server knows no account `acme`")
                && reason.contains("a UUID such as")
                && reason.contains("docsync retry"),
            "{reason}"
        );
        let elsewhere = classify_for_account(not_found(), None);
        assert!(
            matches!(elsewhere, Outcome::Permanent(ref reason, _) if !reason.contains("account")),
            "{elsewhere:?}"
        );
        // other answers to an account are classified as ever
        let busy = classify_for_account(
            RemoteError::from(ApiError::RateLimited {
                retry_after: None,
                body: docsync_client::ErrorBody::None,
                request_id: None,
            }),
            Some("acme"),
        );
        assert!(matches!(busy, Outcome::Transient { .. }), "{busy:?}");
    }
}
