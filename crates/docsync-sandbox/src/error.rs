//! The library's error type and the wire error responses.

use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Errors of the sandbox library (starting, storage, shutdown).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// A filesystem operation on the data dir failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A database operation failed.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// Running the migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// The server task failed.
    #[error("server error: {0}")]
    Server(std::io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// Result alias of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `{"error": "..."}` (Moov GenericError).
#[derive(Serialize, Debug)]
pub struct GenericError {
    pub error: String,
}

/// Moov FileValidationError (422 of uploadFile).
#[derive(Serialize, Debug, Default)]
pub struct FileValidationError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(rename = "FileName", skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(rename = "filePurpose", skip_serializing_if = "Option::is_none")]
    pub file_purpose: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

/// Moov ImageMetadataValidationError.
#[derive(Serialize, Debug, Default)]
pub struct ImageMetadataValidationError {
    #[serde(rename = "altText", skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
}

/// Moov ImageRequestValidationError (422 of uploadImage/updateImage).
#[derive(Serialize, Debug, Default)]
pub struct ImageRequestValidationError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ImageMetadataValidationError>,
}

/// Moov AuthTokenValidationError (422 of createAccessToken).
#[derive(Serialize, Debug, Default)]
pub struct AuthTokenValidationError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// An error answer of a handler. Every variant maps to one documented wire shape.
#[derive(Debug)]
pub enum ApiError {
    /// Moov error with no body (401, 403, 404, 429, 5xx).
    Empty(StatusCode),
    /// Moov GenericError with a status (400, 409).
    Generic(StatusCode, String),
    /// 422 FileValidationError.
    FileValidation(FileValidationError),
    /// 422 ImageRequestValidationError.
    ImageValidation(ImageRequestValidationError),
    /// 422 ImageMetadataValidationError.
    ImageMetadataValidation(ImageMetadataValidationError),
    /// 422 AuthTokenValidationError.
    TokenValidation(AuthTokenValidationError),
    /// Attachments AttachmentError `{error_code, detail}`.
    Attachment(StatusCode, &'static str, String),
    /// An unexpected failure (logged, answered 500 without details).
    Internal(String),
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::Generic(StatusCode::BAD_REQUEST, msg.into())
    }
    pub fn conflict(msg: impl Into<String>) -> Self {
        ApiError::Generic(StatusCode::CONFLICT, msg.into())
    }
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        ApiError::Internal(msg.to_string())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::Internal(format!("database error: {e}"))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("background task failed: {e}"))
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::Internal(format!("i/o error: {e}"))
    }
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Empty(status) => status.into_response(),
            ApiError::Generic(status, error) => json(status, &GenericError { error }),
            ApiError::FileValidation(body) => json(StatusCode::UNPROCESSABLE_ENTITY, &body),
            ApiError::ImageValidation(body) => json(StatusCode::UNPROCESSABLE_ENTITY, &body),
            ApiError::ImageMetadataValidation(body) => {
                json(StatusCode::UNPROCESSABLE_ENTITY, &body)
            }
            ApiError::TokenValidation(body) => json(StatusCode::UNPROCESSABLE_ENTITY, &body),
            ApiError::Attachment(status, code, detail) => json(
                status,
                &serde_json::json!({ "error_code": code, "detail": detail }),
            ),
            ApiError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}
