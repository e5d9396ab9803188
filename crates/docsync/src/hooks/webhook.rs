//! One signed POST of an event to `webhook_url` (see `signature` for what is
//! signed). A 2xx answer is delivered; anything else, or no answer, is a failure.

use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE, USER_AGENT};

use super::{signature, HookEvent};
use crate::config::{WebhookHook, WEBHOOK_TIMEOUT};

/// `sha256=<hex>`: HMAC-SHA256 of `"{timestamp}.{body}"`.
pub const SIGNATURE_HEADER: &str = "X-Docsync-Signature";
/// Unix seconds, part of what is signed.
pub const TIMESTAMP_HEADER: &str = "X-Docsync-Timestamp";
/// The event's id (also in the body): the same on every attempt.
pub const EVENT_ID_HEADER: &str = "X-Docsync-Event-Id";

/// The webhook's client: connect and total timeouts, redirects not followed (a
/// signed event goes only where it was configured to).
pub(super) fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(WEBHOOK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// POST `event` to `hook`, signed.
pub(super) async fn post(
    client: &reqwest::Client,
    hook: &WebhookHook,
    event: &HookEvent,
) -> Result<(), String> {
    let body = event.to_json();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let signature = signature::sign(&hook.secret, timestamp, &body);
    let host = hook.url.host_str().unwrap_or("?").to_owned();
    let response = client
        .post(hook.url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(
            USER_AGENT,
            HeaderValue::from_static(concat!("docsync/", env!("CARGO_PKG_VERSION"))),
        )
        .header(EVENT_ID_HEADER, &event.id)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        // without the URL: it may carry a token of the receiver's
        .map_err(|e| format!("POST to {host} failed: {}", e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("POST to {host} answered {status}"))
    }
}
