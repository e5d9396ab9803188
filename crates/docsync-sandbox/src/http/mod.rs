//! The HTTP layer: shared state, the router, and the middleware every request goes
//! through (request id, fault injection, request log, tracing span).

mod admin;
mod attachments;
mod auth;
mod files;
mod images;
mod multipart;
mod query;
mod render;

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use rusqlite::Connection;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::blobs::BlobStore;
use crate::config::{Clock, Credentials, DecisionRule, SandboxConfig};
use crate::error::{ApiError, Result};
use crate::faults::{FaultAction, Faults};
use crate::reqlog::{RequestLog, RequestLogEntry};
use crate::store::Store;

pub(crate) use render::Rendition;

/// Largest Moov file (20 MB).
pub const MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;
/// Most files per account.
pub const MAX_FILES_PER_ACCOUNT: i64 = 50;
/// Largest Moov image (16 MB).
pub const MAX_IMAGE_BYTES: u64 = 16 * 1024 * 1024;
/// Most (enabled) images per account.
pub const MAX_IMAGES_PER_ACCOUNT: i64 = 300;
/// Largest attachment (10 MiB).
pub const MAX_ATTACHMENT_BYTES: u64 = 10_485_760;

/// The state shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub credentials: Credentials,
    pub decision: DecisionRule,
    pub attachment_processing_delay: Duration,
    pub signed_url_ttl: Duration,
    pub ephemeral_ttl: Duration,
    pub token_ttl: Duration,
    pub public_url: String,
    pub store: Arc<Store>,
    pub blobs: BlobStore,
    pub faults: Faults,
    pub log: RequestLog,
    pub clock: Clock,
    pub shutdown: CancellationToken,
    pub renditions: Mutex<HashMap<render::RenditionKey, Arc<Rendition>>>,
    pub tokens: Mutex<HashMap<String, crate::store::TokenRow>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("public_url", &self.inner.public_url)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the data dir (database + blobs) and builds the state.
    ///
    /// `public_url` is the base of the links the sandbox hands out (no trailing slash).
    pub fn open(config: &SandboxConfig, data_dir: &Path, public_url: String) -> Result<Self> {
        // tokens and documents: private to their owner when we create the dir
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(crate::Error::io(data_dir))?;
        let store = Store::open(&data_dir.join("sandbox.sqlite3"))?;
        let blobs = BlobStore::open(data_dir)?;
        config.faults.validate().map_err(crate::Error::Config)?;
        Ok(AppState {
            inner: Arc::new(Inner {
                credentials: config
                    .credentials
                    .clone()
                    .unwrap_or_else(Credentials::random),
                decision: config.decision.clone(),
                attachment_processing_delay: config.attachment_processing_delay,
                signed_url_ttl: config.signed_url_ttl,
                ephemeral_ttl: config.ephemeral_ttl,
                token_ttl: config.token_ttl,
                public_url: public_url.trim_end_matches('/').to_owned(),
                store: Arc::new(store),
                blobs,
                faults: Faults::new(config.faults.clone()),
                log: RequestLog::new(config.request_log_capacity),
                clock: config.clock.clone(),
                shutdown: CancellationToken::new(),
                renditions: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The credentials this state accepts.
    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    /// The request log.
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.inner.log.entries()
    }

    /// Clears the request log.
    pub fn clear_request_log(&self) {
        self.inner.log.clear()
    }

    /// Replaces the fault settings (and restarts the seeded sequence).
    pub fn set_faults(&self, faults: crate::faults::FaultConfig) -> Result<()> {
        faults.validate().map_err(crate::Error::Config)?;
        self.inner.faults.set(faults);
        Ok(())
    }

    /// The current fault settings.
    pub fn faults(&self) -> crate::faults::FaultConfig {
        self.inner.faults.get()
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Cancels stalls in flight (part of shutdown).
    pub fn cancel_stalls(&self) {
        self.inner.shutdown.cancel();
    }

    /// Removes expired `persist=false` attachments and their unreferenced bytes.
    pub async fn sweep(&self) -> Result<usize, ApiError> {
        let ttl =
            chrono::Duration::from_std(self.inner.ephemeral_ttl).unwrap_or(chrono::Duration::MAX);
        let Some(cutoff) = self.inner.clock.now().checked_sub_signed(ttl) else {
            return Ok(0);
        };
        let orphans = self
            .db(move |c| crate::store::delete_ephemeral(c, cutoff))
            .await?;
        for h in &orphans {
            self.inner.blobs.remove(h);
        }
        Ok(orphans.len())
    }

    /// Runs a database closure on the blocking pool.
    pub(crate) async fn db<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let store = self.inner.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.with(f)).await??)
    }

    /// "Now" on the sandbox clock, truncated to milliseconds (what the database keeps).
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let t = self.inner.clock.now();
        chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
    }
}

/// Which API a path belongs to (error bodies differ).
fn is_attachments_path(path: &str) -> bool {
    path.starts_with("/v1/")
}

/// The spec's operationId of a matched route.
pub fn operation_id(method: &Method, route: &str) -> Option<&'static str> {
    let op = match (method.as_str(), route) {
        ("POST", "/oauth2/token") => "createAccessToken",
        ("POST", "/accounts/{accountID}/files") => "uploadFile",
        ("GET", "/accounts/{accountID}/files") => "listFiles",
        ("GET", "/accounts/{accountID}/files/{fileID}") => "getFileDetails",
        ("GET", "/accounts/{accountID}/images") => "listImageMetadata",
        ("POST", "/accounts/{accountID}/images") => "uploadImage",
        ("GET", "/accounts/{accountID}/images/{imageID}") => "getImageMetadata",
        ("PUT", "/accounts/{accountID}/images/{imageID}") => "updateImage",
        ("DELETE", "/accounts/{accountID}/images/{imageID}") => "deleteImage",
        ("PUT", "/accounts/{accountID}/images/{imageID}/metadata") => "updateImageMetadata",
        ("GET", "/images/{publicID}") => "getPublicImage",
        ("GET", "/v1/files/signed-url") => "getSignedUrl",
        ("PUT", "/v1/uploads/{token}") => "uploadToSignedUrl",
        ("GET", "/v1/files/{file_id}/status") => "getFileStatus",
        _ => return None,
    };
    Some(op)
}

/// The sandbox's router (both APIs plus `/_sandbox/*`).
pub fn router(state: AppState) -> Router {
    let files_limit = DefaultBodyLimit::max((2 * MAX_FILE_BYTES + 1024 * 1024) as usize);
    let images_limit = DefaultBodyLimit::max((2 * MAX_IMAGE_BYTES + 1024 * 1024) as usize);
    Router::new()
        .route("/oauth2/token", post(auth::create_access_token))
        .route(
            "/accounts/{accountID}/files",
            post(files::upload_file)
                .layer(files_limit)
                .get(files::list_files),
        )
        .route("/accounts/{accountID}/files/{fileID}", get(files::get_file))
        .route(
            "/accounts/{accountID}/images",
            get(images::list_images).post(images::upload_image.layer(images_limit)),
        )
        .route(
            "/accounts/{accountID}/images/{imageID}",
            get(images::get_image)
                .put(images::update_image.layer(images_limit))
                .delete(images::delete_image),
        )
        .route(
            "/accounts/{accountID}/images/{imageID}/metadata",
            put(images::update_image_metadata),
        )
        .route("/images/{publicID}", get(images::get_public_image))
        .route("/v1/files/signed-url", get(attachments::signed_url))
        .route(
            "/v1/uploads/{token}",
            put(attachments::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/files/{file_id}/status", get(attachments::status))
        .route(
            "/_sandbox/faults",
            get(admin::get_faults)
                .post(admin::set_faults)
                .put(admin::set_faults),
        )
        .route(
            "/_sandbox/requests",
            get(admin::requests).delete(admin::clear_requests),
        )
        .route(
            "/_sandbox/clock",
            get(admin::clock).post(admin::advance_clock),
        )
        .route("/_sandbox/sweep", post(admin::sweep))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found(req: Request) -> Response {
    let path = req.uri().path();
    if is_attachments_path(path) {
        ApiError::Attachment(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {} {path}", req.method()),
        )
        .into_response()
    } else {
        ApiError::Generic(
            StatusCode::NOT_FOUND,
            format!("no route for {} {path}", req.method()),
        )
        .into_response()
    }
}

async fn method_not_allowed(req: Request) -> Response {
    let path = req.uri().path();
    let msg = format!("method {} is not allowed on {path}", req.method());
    if is_attachments_path(path) {
        ApiError::Attachment(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", msg)
            .into_response()
    } else {
        ApiError::Generic(StatusCode::METHOD_NOT_ALLOWED, msg).into_response()
    }
}

/// A response whose body fails at once: hyper drops the connection without
/// answering (the "connection reset" fault).
fn reset_response() -> Response {
    let stream = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection reset",
        ))
    });
    Response::new(Body::from_stream(stream))
}

fn injected(path: &str, action: &FaultAction) -> Option<Response> {
    let attachments = is_attachments_path(path);
    match action {
        FaultAction::RateLimit(retry_after) => {
            let mut resp = if attachments {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(serde_json::json!({ "message": "Rate limit exceeded!" })),
                )
                    .into_response()
            } else {
                StatusCode::TOO_MANY_REQUESTS.into_response()
            };
            if let Some(secs) = retry_after {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut()
                        .insert(axum::http::header::RETRY_AFTER, v);
                }
            }
            Some(resp)
        }
        FaultAction::Error(code) => Some(if attachments {
            let (ec, detail) = match *code {
                StatusCode::SERVICE_UNAVAILABLE => (
                    "attachment_document_not_reachable",
                    "The file attachment service does not respond as expected. Please try again later.",
                ),
                _ => ("internal_server_error", "Internal Server Error"),
            };
            ApiError::Attachment(*code, ec, detail.to_owned()).into_response()
        } else {
            code.into_response()
        }),
        FaultAction::Reset => Some(reset_response()),
        FaultAction::Stall(_) | FaultAction::None => None,
    }
}

/// Middleware of every request: request id, tracing span, faults, request log.
async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let received_at = st.now();
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let op = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| operation_id(&method, m.as_str()));
    let span = tracing::info_span!("request", request_id = %request_id, %method, %path, op);
    async move {
        let admin = path.starts_with("/_sandbox/");
        let (action, latency) = if admin {
            (FaultAction::None, Duration::ZERO)
        } else {
            st.inner.faults.draw()
        };
        if !latency.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(latency) => {}
                _ = st.inner.shutdown.cancelled() => {}
            }
        }
        if let FaultAction::Stall(d) = &action {
            tokio::select! {
                _ = tokio::time::sleep(*d) => {}
                _ = st.inner.shutdown.cancelled() => {}
            }
        }
        let mut resp = match injected(&path, &action) {
            Some(r) => r,
            None => next.run(req).await,
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        let status = (action != FaultAction::Reset).then(|| resp.status().as_u16());
        tracing::debug!(status, "answered");
        st.inner.log.push(RequestLogEntry {
            received_at,
            method: method.to_string(),
            path,
            operation_id: op.map(str::to_owned),
            status,
            request_id,
            fault: action.label(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        resp
    }
    .instrument(span)
    .await
}
