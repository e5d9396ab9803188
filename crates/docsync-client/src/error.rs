//! [`ApiError`]: what went wrong with a call, in terms a caller can act on.
//!
//! Generated methods return progenitor's `Error<()>` with the raw response of
//! any non-2xx status (see the xtask's `progenitor_view`). [`ApiError::from_progenitor`]
//! reads that response once: the status picks the variant, the operation tag
//! set by the hooks picks the documented body schema (`errors::decode`, generated
//! from the spec), and the `x-request-id` header is kept for every variant.

use std::fmt;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use progenitor_client::Error;

pub use crate::operation::Api;
use crate::operation::{OperationTag, SIGNED_UPLOAD};
use crate::{attachments, moov};

/// The largest error body kept (an HTML proxy page can be big).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A documented error body, or what came instead.
#[derive(Clone, Debug)]
pub enum ErrorBody {
    Moov(moov::errors::ErrorBody),
    Attachments(attachments::errors::ErrorBody),
    /// The spec documents no body for this status.
    None,
    /// The body is not what the spec documents: kept as (truncated) text.
    Unexpected(String),
}

impl ErrorBody {
    /// The server's own explanation, if it gave one.
    pub fn message(&self) -> Option<String> {
        use attachments::errors::ErrorBody as A;
        use moov::errors::ErrorBody as M;
        let text = match self {
            Self::Moov(M::GenericError(e)) => e.error.clone(),
            Self::Moov(M::FileValidationError(e)) => {
                let fields = [
                    ("file", &e.file),
                    ("fileName", &e.file_name),
                    ("filePurpose", &e.file_purpose),
                    ("metadata", &e.metadata),
                ];
                let mut parts: Vec<String> = e.error.iter().cloned().collect();
                parts.extend(
                    fields
                        .iter()
                        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}: {v}"))),
                );
                parts.join("; ")
            }
            Self::Moov(M::ImageRequestValidationError(e)) => {
                let mut parts: Vec<String> =
                    e.image.iter().map(|v| format!("image: {v}")).collect();
                if let Some(alt) = e.metadata.as_ref().and_then(|m| m.alt_text.as_ref()) {
                    parts.push(format!("altText: {alt}"));
                }
                parts.join("; ")
            }
            Self::Moov(M::ImageMetadataValidationError(e)) => e
                .alt_text
                .as_ref()
                .map(|v| format!("altText: {v}"))
                .unwrap_or_default(),
            Self::Moov(M::AuthTokenValidationError(e)) => {
                [("scope", &e.scope), ("refresh_token", &e.refresh_token)]
                    .iter()
                    .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}: {v}")))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            Self::Attachments(A::AttachmentError(e)) => format!("{}: {}", e.error_code, e.detail),
            Self::Attachments(A::RateLimitError(e)) => e.message.clone(),
            Self::None => return None,
            Self::Unexpected(text) => text.clone(),
        };
        (!text.is_empty()).then_some(text)
    }
}

/// Why a call failed. Every variant that came from a response carries the
/// server's `x-request-id` (when it sent one).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request was malformed.
    #[error("bad request{}{}", msg(.body), rid(.request_id))]
    BadRequest {
        body: ErrorBody,
        request_id: Option<String>,
    },
    /// 401: credentials missing, wrong or expired.
    #[error("unauthorized: check the API credentials{}{}", msg(.body), rid(.request_id))]
    Unauthorized {
        body: ErrorBody,
        request_id: Option<String>,
    },
    /// 403: the credentials may not do this (scope or account).
    #[error("forbidden: the credentials lack the scope or account for this call{}{}", msg(.body), rid(.request_id))]
    Forbidden {
        body: ErrorBody,
        request_id: Option<String>,
    },
    /// 404: no such resource (or, for Moov, a malformed X-Moov-Version).
    #[error("not found{}{}", msg(.body), rid(.request_id))]
    NotFound {
        body: ErrorBody,
        request_id: Option<String>,
    },
    /// 409: conflicts with the resource's state (duplicate, quota, infected...).
    #[error("conflict{}{}", msg(.body), rid(.request_id))]
    Conflict {
        body: ErrorBody,
        request_id: Option<String>,
    },
    /// 422: the contents failed validation; the body names the fields.
    #[error("validation failed{}{}", msg(.body), rid(.request_id))]
    Validation {
        body: ErrorBody,
        request_id: Option<String>,
    },
    /// 429: rate limited; wait at least `retry_after` when the server said so.
    #[error("rate limited{}{}{}", after(.retry_after), msg(.body), rid(.request_id))]
    RateLimited {
        retry_after: Option<Duration>,
        body: ErrorBody,
        request_id: Option<String>,
    },
    /// 5xx: the server failed; usually worth retrying.
    #[error("server error {status}{}{}", msg(.body), rid(.request_id))]
    Server {
        status: u16,
        body: ErrorBody,
        retry_after: Option<Duration>,
        request_id: Option<String>,
    },
    /// 304 from getPublicImage: the caller's copy (If-None-Match) is current.
    #[error("not modified{}", rid(.request_id))]
    NotModified {
        etag: Option<String>,
        request_id: Option<String>,
    },
    /// Any other status.
    #[error("unexpected status {status}{}{}", msg(.body), rid(.request_id))]
    Status {
        status: u16,
        body: ErrorBody,
        request_id: Option<String>,
    },
    /// The connection failed, timed out or was reset.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    /// A success status whose body does not match the spec (missing field,
    /// unknown shape, not JSON).
    #[error("invalid response body: {detail}")]
    InvalidResponse { detail: String },
    /// The request could not be built (bad header value, unserialisable part).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

fn msg(body: &ErrorBody) -> String {
    body.message().map(|m| format!(": {m}")).unwrap_or_default()
}

fn rid(request_id: &Option<String>) -> String {
    request_id
        .as_ref()
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default()
}

fn after(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!(", retry after {}s", d.as_secs()))
        .unwrap_or_default()
}

impl ApiError {
    /// Turn a generated method's error into an `ApiError`, reading the body of
    /// an error response (at most 64 KiB of it).
    pub async fn from_progenitor(error: Error<()>) -> Self {
        match error {
            Error::UnexpectedResponse(response) => Self::from_response(response).await,
            Error::ErrorResponse(value) => {
                let status = value.status().as_u16();
                let request_id = header(value.headers(), "x-request-id");
                let retry_after = retry_after(value.headers());
                classify(status, ErrorBody::None, request_id, retry_after)
            }
            Error::CommunicationError(e)
            | Error::ResponseBodyError(e)
            | Error::InvalidUpgrade(e) => Self::Transport(e),
            Error::InvalidResponsePayload(bytes, e) => Self::InvalidResponse {
                detail: format!(
                    "{e} in `{}`",
                    truncate(&String::from_utf8_lossy(&bytes), 200)
                ),
            },
            Error::InvalidRequest(s) | Error::Custom(s) => Self::InvalidRequest(s),
        }
    }

    async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let request_id = header(&headers, "x-request-id");
        let retry_after = retry_after(&headers);
        let tag = response.extensions().get::<OperationTag>().copied();
        if status == 304 {
            return Self::NotModified {
                etag: header(&headers, "etag"),
                request_id,
            };
        }
        let bytes = match read_limited(response).await {
            Ok(bytes) => bytes,
            // a signed upload URL is a credential: not kept in the error
            Err(e) if tag.is_some_and(|t| t.operation == SIGNED_UPLOAD) => {
                return Self::Transport(e.without_url())
            }
            Err(e) => return Self::Transport(e),
        };
        let body = decode_body(tag, status, &bytes);
        classify(status, body, request_id, retry_after)
    }

    /// The server's `x-request-id`, if this error came from a response.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::BadRequest { request_id, .. }
            | Self::Unauthorized { request_id, .. }
            | Self::Forbidden { request_id, .. }
            | Self::NotFound { request_id, .. }
            | Self::Conflict { request_id, .. }
            | Self::Validation { request_id, .. }
            | Self::RateLimited { request_id, .. }
            | Self::Server { request_id, .. }
            | Self::NotModified { request_id, .. }
            | Self::Status { request_id, .. } => request_id.as_deref(),
            Self::Transport(_) | Self::InvalidResponse { .. } | Self::InvalidRequest(_) => None,
        }
    }

    /// The HTTP status, if this error came from a response.
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            Self::BadRequest { .. } => 400,
            Self::Unauthorized { .. } => 401,
            Self::Forbidden { .. } => 403,
            Self::NotFound { .. } => 404,
            Self::Conflict { .. } => 409,
            Self::Validation { .. } => 422,
            Self::RateLimited { .. } => 429,
            Self::NotModified { .. } => 304,
            Self::Server { status, .. } | Self::Status { status, .. } => *status,
            Self::Transport(e) => return e.status().map(|s| s.as_u16()),
            Self::InvalidResponse { .. } | Self::InvalidRequest(_) => return None,
        })
    }

    /// The documented body, if any.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Self::BadRequest { body, .. }
            | Self::Unauthorized { body, .. }
            | Self::RateLimited { body, .. }
            | Self::Forbidden { body, .. }
            | Self::NotFound { body, .. }
            | Self::Conflict { body, .. }
            | Self::Validation { body, .. }
            | Self::Server { body, .. }
            | Self::Status { body, .. } => Some(body),
            _ => None,
        }
    }

    /// Worth another try: 429, 500, 502, 503, 504 and transport failures.
    /// Never other 4xx: the server will not accept the same request later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::RateLimited { .. } => true,
            Self::Server { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            Self::Transport(e) => !e.is_builder() && !e.is_redirect(),
            _ => false,
        }
    }

    /// How long the server asked us to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } | Self::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

fn classify(
    status: u16,
    body: ErrorBody,
    request_id: Option<String>,
    retry_after: Option<Duration>,
) -> ApiError {
    match status {
        400 => ApiError::BadRequest { body, request_id },
        401 => ApiError::Unauthorized { body, request_id },
        403 => ApiError::Forbidden { body, request_id },
        404 => ApiError::NotFound { body, request_id },
        409 => ApiError::Conflict { body, request_id },
        422 => ApiError::Validation { body, request_id },
        429 => ApiError::RateLimited {
            retry_after,
            body,
            request_id,
        },
        500..=599 => ApiError::Server {
            status,
            body,
            retry_after,
            request_id,
        },
        _ => ApiError::Status {
            status,
            body,
            request_id,
        },
    }
}

fn decode_body(tag: Option<OperationTag>, status: u16, bytes: &[u8]) -> ErrorBody {
    let text = || truncate(&String::from_utf8_lossy(bytes), 500);
    let Some(tag) = tag else {
        return if bytes.is_empty() {
            ErrorBody::None
        } else {
            ErrorBody::Unexpected(text())
        };
    };
    macro_rules! decoded {
        ($module:ident, $variant:ident) => {
            match $module::errors::decode(tag.operation, status, bytes) {
                $module::errors::Decoded::Body(body) => ErrorBody::$variant(body),
                $module::errors::Decoded::NoBody if bytes.is_empty() => ErrorBody::None,
                _ if bytes.is_empty() => ErrorBody::None,
                _ => ErrorBody::Unexpected(text()),
            }
        };
    }
    match tag.api {
        Api::Moov => decoded!(moov, Moov),
        Api::Attachments => decoded!(attachments, Attachments),
    }
}

async fn read_limited(response: reqwest::Response) -> reqwest::Result<Vec<u8>> {
    let mut stream = response.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = MAX_ERROR_BODY.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    Ok(out)
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Moov => "moov",
            Self::Attachments => "attachments",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        headers.insert(reqwest::header::RETRY_AFTER, later.parse().unwrap());
        let got = retry_after(&headers).unwrap();
        assert!(
            got > Duration::from_secs(100) && got <= Duration::from_secs(120),
            "{got:?}"
        );
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let cases = [
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (409, false),
            (422, false),
            (429, true),
            (500, true),
            (501, false),
            (502, true),
            (503, true),
            (504, true),
        ];
        for (status, expected) in cases {
            let error = classify(status, ErrorBody::None, None, None);
            assert_eq!(error.is_retryable(), expected, "status {status}");
            assert_eq!(error.status(), Some(status));
        }
    }
}
