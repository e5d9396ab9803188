//! The signed-URL attachments API: issue an upload URL, accept the PUT, report status.
//!
//! Status codes chosen where the documentation leaves a choice:
//! - missing/wrong `api-key`: 401 `unauthorized`;
//! - missing `user-id`, missing `filename`, bad `persist`, non-UUID `file_id`: 422 `validation_error`;
//! - PUT to an unknown token: 404 `attachment_document_does_not_exist`;
//! - PUT to a token already used: 409 `conflict` (checked before expiry);
//! - PUT to an expired token: 403 `attachment_access_forbidden`;
//! - PUT too large / empty / of a type not allowed: 422 `attachment_file_too_large` /
//!   `attachment_file_empty` / `attachment_type_not_allowed`;
//! - status of another user's file, of an unknown file, of a file whose bytes have not
//!   arrived, or of an expired `persist=false` file: 404 `attachment_document_does_not_exist`;
//! - status of an infected file: 200 `{status: "failed", reason: "infected"}`.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::Serialize;

use super::{AppState, MAX_ATTACHMENT_BYTES};
use crate::config::random_hex;
use crate::error::ApiError;
use crate::store::{self, AttachmentRow};

/// The EICAR anti-virus test string.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// Mime types accepted by the attachments API.
pub const ALLOWED_TYPES: &[&str] = &[
    "text/csv",
    "text/plain",
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
];

/// Bytes read (and discarded) past the limit before giving up on draining.
const DRAIN_CAP: u64 = 2 * MAX_ATTACHMENT_BYTES;

fn err(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::Attachment(status, code, detail.into())
}

/// Maps Moov-style internal errors to the attachments error body.
fn att(e: ApiError) -> ApiError {
    match e {
        ApiError::Internal(msg) => {
            tracing::error!(error = %msg, "internal error");
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_server_error",
                "Internal Server Error",
            )
        }
        other => other,
    }
}

fn check_api_key(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| k == st.inner.credentials.attachments_api_key);
    if ok {
        Ok(())
    } else {
        Err(err(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid API key",
        ))
    }
}

fn user_id(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get("user-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                "the user-id header is required",
            )
        })
}

#[derive(Serialize, Debug)]
struct FileLimits {
    allowed_types: Vec<&'static str>,
    max_size: u64,
}

#[derive(Serialize, Debug)]
struct SignedUrl {
    expires_in: i32,
    file_id: String,
    file_limits: FileLimits,
    file_url: String,
}

/// GET /v1/files/signed-url (getSignedUrl).
pub async fn signed_url(
    State(st): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_api_key(&st, &headers)?;
    let user = user_id(&headers)?;
    let q = super::query::parse(raw.as_deref())
        .map_err(|e| err(StatusCode::UNPROCESSABLE_ENTITY, "validation_error", e))?;
    let filename = q
        .get("filename")
        .cloned()
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| {
            err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                "the filename query parameter is required",
            )
        })?;
    if filename.chars().count() > 255 {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "filename must be at most 255 characters",
        ));
    }
    let persist = match q.get("persist").map(|p| p.to_ascii_lowercase()).as_deref() {
        None | Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(other) => {
            return Err(err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                format!("persist must be true or false, got {other:?}"),
            ))
        }
    };
    let now = st.now();
    let ttl = chrono::Duration::from_std(st.inner.signed_url_ttl)
        .unwrap_or(chrono::Duration::minutes(10));
    let token_expires_at = now
        .checked_add_signed(ttl)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    let row = AttachmentRow {
        file_id: uuid::Uuid::new_v4().to_string(),
        user_id: user,
        filename,
        persist,
        token: random_hex(32),
        token_expires_at,
        created_at: now,
        uploaded_at: None,
        sha256: None,
        size_bytes: None,
        content_type: None,
        infected: false,
    };
    let insert = row.clone();
    st.db(move |c| store::insert_attachment(c, &insert))
        .await
        .map_err(att)?;
    let body = SignedUrl {
        expires_in: i32::try_from(st.inner.signed_url_ttl.as_secs()).unwrap_or(i32::MAX),
        file_id: row.file_id,
        file_limits: FileLimits {
            allowed_types: ALLOWED_TYPES.to_vec(),
            max_size: MAX_ATTACHMENT_BYTES,
        },
        file_url: format!("{}/v1/uploads/{}", st.inner.public_url, row.token),
    };
    Ok(Json(body).into_response())
}

fn detect_type(head: &[u8], is_text: bool, filename: &str) -> Option<&'static str> {
    match infer::get(head).map(|k| k.mime_type()) {
        Some("application/pdf") => Some("application/pdf"),
        Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document") => {
            Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        }
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet") => {
            Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        }
        Some(_) => None,
        None if is_text => Some(if filename.to_ascii_lowercase().ends_with(".csv") {
            "text/csv"
        } else {
            "text/plain"
        }),
        None => None,
    }
}

/// PUT /v1/uploads/{token} (uploadToSignedUrl): the token is the credential.
pub async fn upload(
    State(st): State<AppState>,
    Path(token): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let now = st.now();
    let lookup = token.clone();
    let row = st
        .db(move |c| store::attachment_by_token(c, &lookup))
        .await
        .map_err(att)?
        .ok_or_else(|| {
            err(
                StatusCode::NOT_FOUND,
                "attachment_document_does_not_exist",
                "no upload URL with this token",
            )
        })?;
    if row.uploaded_at.is_some() {
        return Err(err(
            StatusCode::CONFLICT,
            "conflict",
            "this upload URL was already used",
        ));
    }
    if now > row.token_expires_at {
        return Err(err(
            StatusCode::FORBIDDEN,
            "attachment_access_forbidden",
            "this upload URL has expired",
        ));
    }
    let mut w = st
        .inner
        .blobs
        .writer(MAX_ATTACHMENT_BYTES)
        .await
        .map_err(|e| att(e.into()))?;
    w.scan_for(EICAR);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            err(
                StatusCode::BAD_REQUEST,
                "attachment_document_raised_an_error",
                format!("cannot read the request body: {e}"),
            )
        })?;
        w.write(&chunk).await.map_err(|e| att(e.into()))?;
        if w.bytes_seen() > DRAIN_CAP {
            break;
        }
    }
    if w.over_limit() {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "attachment_file_too_large",
            format!("the file exceeds the maximum size of {MAX_ATTACHMENT_BYTES} bytes"),
        ));
    }
    let mut blob = w.finish().await.map_err(|e| att(e.into()))?;
    if blob.len == 0 {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "attachment_file_empty",
            "the file is empty",
        ));
    }
    let Some(content_type) = detect_type(&blob.head, blob.is_text, &row.filename) else {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "attachment_type_not_allowed",
            format!(
                "the file's type is not allowed: allowed are {}",
                ALLOWED_TYPES.join(", ")
            ),
        ));
    };
    st.inner
        .blobs
        .commit(&mut blob)
        .await
        .map_err(|e| att(e.into()))?;
    let sha = blob.sha256.clone();
    let size = i64::try_from(blob.len).unwrap_or(i64::MAX);
    let infected = blob.needle_found;
    let file_id = row.file_id.clone();
    let recorded = st
        .db(move |c| store::mark_uploaded(c, &file_id, &sha, size, content_type, infected, now))
        .await
        .map_err(att)?;
    if !recorded {
        return Err(err(
            StatusCode::CONFLICT,
            "conflict",
            "this upload URL was already used",
        ));
    }
    tracing::info!(file_id = %row.file_id, size, infected, "attachment uploaded");
    let mut resp = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", blob.sha256)) {
        resp.headers_mut().insert(axum::http::header::ETAG, v);
    }
    Ok(resp)
}

#[derive(Serialize, Debug)]
struct FileStatus {
    file_id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<i64>,
}

/// GET /v1/files/{file_id}/status (getFileStatus).
pub async fn status(
    State(st): State<AppState>,
    Path(file_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_api_key(&st, &headers)?;
    let user = user_id(&headers)?;
    if uuid::Uuid::parse_str(&file_id).is_err() {
        return Err(err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            "file_id must be a UUID",
        ));
    }
    let not_found = || {
        err(
            StatusCode::NOT_FOUND,
            "attachment_document_does_not_exist",
            "Document with `file_id` is not available for the user with `user_id` on the document server.",
        )
    };
    let now = st.now();
    let lookup = file_id.clone();
    let row = st
        .db(move |c| store::attachment(c, &lookup))
        .await
        .map_err(att)?
        .filter(|r| r.user_id == user)
        .ok_or_else(not_found)?;
    let ephemeral_ttl =
        chrono::Duration::from_std(st.inner.ephemeral_ttl).unwrap_or(chrono::Duration::MAX);
    if !row.persist
        && row
            .created_at
            .checked_add_signed(ephemeral_ttl)
            .is_some_and(|end| end <= now)
    {
        st.sweep().await.map_err(att)?;
        return Err(not_found());
    }
    let Some(uploaded_at) = row.uploaded_at else {
        return Err(not_found());
    };
    let delay = chrono::Duration::from_std(st.inner.attachment_processing_delay)
        .unwrap_or(chrono::Duration::zero());
    let ready_at = uploaded_at.checked_add_signed(delay).unwrap_or(uploaded_at);
    let (status, reason) = if now < ready_at {
        ("processing", None)
    } else if row.infected {
        ("failed", Some("infected"))
    } else {
        ("ready", None)
    };
    Ok(Json(FileStatus {
        file_id: row.file_id,
        status,
        reason,
        size: row.size_bytes,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types() {
        assert_eq!(detect_type(b"a,b\n1,2\n", true, "x.CSV"), Some("text/csv"));
        assert_eq!(detect_type(b"hello", true, "x.txt"), Some("text/plain"));
        assert_eq!(
            detect_type(b"%PDF-1.4\n", false, "x.pdf"),
            Some("application/pdf")
        );
        assert_eq!(
            detect_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", false, "x.png"),
            None
        );
        assert_eq!(detect_type(b"\0\x01\x02", false, "x.bin"), None);
    }
}
