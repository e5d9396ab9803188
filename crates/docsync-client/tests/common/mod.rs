//! Shared by the integration tests: a loopback capture server, the specs'
//! operations (read with openapiv3), valid response bodies, and one call of
//! every operation through the generated clients.
#![allow(dead_code)]

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use docsync_client::{attachments, moov, ApiError, FilePart, MoovCredentials, RetryPolicy};
use futures::StreamExt;
use openapiv3::{OpenAPI, ReferenceOr, StatusCode};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Loopback capture server
// ---------------------------------------------------------------------------

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Every header (lower-case names, values in arrival order).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request (head and body) had arrived.
    pub at: Instant,
}

impl Captured {
    /// The values of header `name`.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name` (panics if it is repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        let values = self.header_values(name);
        assert!(
            values.len() <= 1,
            "header {name} sent {} times",
            values.len()
        );
        values.first().copied()
    }
}

/// What the server answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, value: &Value) -> Self {
        Self::raw(status, "application/json", value.to_string().into_bytes())
    }

    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Responder = dyn Fn(&Captured, usize) -> Reply + Send + Sync;

struct Shared {
    captured: Mutex<Vec<Captured>>,
    responder: Box<Responder>,
}

/// An axum server on 127.0.0.1:<ephemeral> that records every request and
/// answers with `responder(request, index)`. Stops when dropped.
pub struct Server {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(
        responder: impl Fn(&Captured, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            captured: Mutex::new(Vec::new()),
            responder: Box::new(responder),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// A server that always gives the same answer.
    pub async fn fixed(reply: Reply) -> Self {
        Self::start(move |_, _| reply.clone()).await
    }

    /// A server answering `replies[i]` to the i-th request (the last one
    /// from then on).
    pub async fn script(replies: Vec<Reply>) -> Self {
        assert!(!replies.is_empty());
        Self::start(move |_, i| replies[i.min(replies.len() - 1)].clone()).await
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.shared.captured.lock().unwrap().clone()
    }

    pub fn moov(&self, credentials: MoovCredentials) -> moov::Client {
        moov::Client::builder(&self.url, credentials)
            .retry(RetryPolicy::none())
            .build()
            .unwrap()
    }

    pub fn moov_basic(&self) -> moov::Client {
        self.moov(MoovCredentials::basic(PUBLIC_KEY, SECRET_KEY))
    }

    pub fn attachments(&self) -> attachments::Client {
        attachments::Client::builder(&self.url, API_KEY)
            .retry(RetryPolicy::none())
            .build()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let captured = Captured {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
    };
    let index = {
        let mut list = shared.captured.lock().unwrap();
        list.push(captured.clone());
        list.len() - 1
    };
    let reply = (shared.responder)(&captured, index);
    let mut builder = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(reply.body)).unwrap()
}

pub const PUBLIC_KEY: &str = "pk_test";
pub const SECRET_KEY: &str = "sk_test";
pub const API_KEY: &str = "attachments-api-key";
pub const ACCOUNT_ID: &str = "00000000-0000-4000-8000-00000000acc1";
pub const USER_ID: &str = "user-42";
pub const FILE_UUID: &str = "6f1c1a52-4a57-4d8e-9d8f-2f1b7c0e9a11";
pub const ACCESS_TOKEN: &str = "access-token-abc";

/// `Basic base64("pk_test:sk_test")`.
pub fn expected_basic() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{PUBLIC_KEY}:{SECRET_KEY}"))
    )
}

// ---------------------------------------------------------------------------
// Rendering a captured request for a snapshot
// ---------------------------------------------------------------------------

/// Headers whose values change from run to run (or machine to machine).
const VOLATILE: &[&str] = &["host", "date", "accept-encoding"];

/// The request as a stable text: method, path, query, headers sorted by name
/// (volatile ones dropped, secrets redacted, the multipart boundary replaced
/// by `<boundary>`), then the body.
pub fn render(request: &Captured) -> String {
    let boundary = request
        .header("content-type")
        .and_then(|ct| ct.split("boundary=").nth(1))
        .map(|b| b.trim_matches('"').to_string());
    let mut out = format!("{} {}", request.method, request.path);
    if let Some(query) = &request.query {
        out.push('?');
        out.push_str(query);
    }
    out.push('\n');
    let mut headers = request.headers.clone();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in headers {
        if VOLATILE.contains(&name.as_str()) {
            continue;
        }
        if name == "content-length" && boundary.is_some() {
            continue;
        }
        let value = match name.as_str() {
            "authorization" => match value.split_once(' ') {
                Some((scheme, _)) => format!("{scheme} <redacted>"),
                None => "<redacted>".to_string(),
            },
            "api-key" => "<redacted>".to_string(),
            "user-agent" => match value.split_once('/') {
                Some((product, _)) => format!("{product}/<version>"),
                None => value,
            },
            _ => value,
        };
        let value = match &boundary {
            Some(b) => value.replace(b.as_str(), "<boundary>"),
            None => value,
        };
        out.push_str(&format!("{name}: {value}\n"));
    }
    out.push('\n');
    let body = escape(&request.body);
    let body = match &boundary {
        Some(b) => body.replace(b.as_str(), "<boundary>"),
        None => body,
    };
    if body.is_empty() {
        out.push_str("<empty body>\n");
    } else {
        out.push_str(&body);
        if !body.ends_with('\n') {
            out.push_str("\n<no newline at end of body>\n");
        }
    }
    out
}

/// Printable ASCII as is, `\n` as a line break, everything else escaped
/// (`\r`, `\xNN`), so snapshots are plain text.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\n' => out.push('\n'),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The specs
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spec {
    Moov,
    Attachments,
}

impl Spec {
    pub const ALL: [Spec; 2] = [Spec::Moov, Spec::Attachments];

    pub fn name(self) -> &'static str {
        match self {
            Self::Moov => "moov",
            Self::Attachments => "attachments",
        }
    }

    pub fn spec_path(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../openapi")
            .join(format!("{}.yaml", self.name()))
    }

    pub fn generated_path(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/generated")
            .join(format!("{}.rs", self.name()))
    }

    pub fn operations(self) -> Vec<SpecOperation> {
        spec_operations(&self.spec_path())
    }
}

/// One operation of a spec, with its documented responses.
#[derive(Clone, Debug)]
pub struct SpecOperation {
    pub id: String,
    pub method: String,
    pub path: String,
    /// `(status, name of the JSON body's schema, if the response has a body)`.
    pub responses: Vec<(u16, Option<String>)>,
}

impl SpecOperation {
    pub fn success_status(&self) -> u16 {
        let success: Vec<u16> = self
            .responses
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| (200..300).contains(s))
            .collect();
        assert_eq!(
            success.len(),
            1,
            "{}: success statuses {success:?}",
            self.id
        );
        success[0]
    }
}

pub fn spec_operations(path: &Path) -> Vec<SpecOperation> {
    let text = std::fs::read_to_string(path).unwrap();
    let spec: OpenAPI = serde_yaml::from_str(&text).unwrap();
    let components = spec.components.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (path, item) in spec.paths.iter() {
        let ReferenceOr::Item(item) = item else {
            panic!("path {path}: $ref path items are not supported here")
        };
        for (method, op) in item.iter() {
            let id = op
                .operation_id
                .clone()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            let mut responses = Vec::new();
            for (status, response) in &op.responses.responses {
                let StatusCode::Code(code) = status else {
                    panic!("{id}: status ranges are not supported here")
                };
                let response = match response {
                    ReferenceOr::Item(r) => r.clone(),
                    ReferenceOr::Reference { reference } => {
                        let name = reference.trim_start_matches("#/components/responses/");
                        match components.responses.get(name) {
                            Some(ReferenceOr::Item(r)) => r.clone(),
                            _ => panic!("{id}: unresolved {reference}"),
                        }
                    }
                };
                let schema = response
                    .content
                    .get("application/json")
                    .and_then(|media| media.schema.as_ref())
                    .map(|schema| match schema {
                        ReferenceOr::Reference { reference } => reference
                            .trim_start_matches("#/components/schemas/")
                            .to_string(),
                        ReferenceOr::Item(_) => "inline".to_string(),
                    });
                responses.push((*code, schema));
            }
            out.push(SpecOperation {
                id,
                method: method.to_string(),
                path: path.clone(),
                responses,
            });
        }
    }
    out
}

/// `getSignedUrl` -> `get_signed_url` (an acronym stays one word: `getURLs`
/// -> `get_urls`).
pub fn snake_case(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

// ---------------------------------------------------------------------------
// Valid bodies
// ---------------------------------------------------------------------------

pub fn file_details(status: &str, purpose: &str) -> Value {
    json!({
        "fileID": "file-1",
        "fileName": "people.csv",
        "accountID": ACCOUNT_ID,
        "filePurpose": purpose,
        "fileStatus": status,
        "metadata": "{\"comment\":\"wire test\"}",
        "decisionReason": "document is legible",
        "fileSizeBytes": 14,
        "createdOn": "2024-01-02T03:04:05Z",
        "updatedOn": "2024-01-02T03:05:06Z"
    })
}

pub fn image_metadata() -> Value {
    json!({
        "imageID": "img-1",
        "publicID": "pub-1",
        "altText": "A red square",
        "link": "https://api.moov.io/images/pub-1",
        "createdOn": "2024-01-02T03:04:05Z",
        "updatedOn": "2024-01-02T03:05:06Z",
        "disabledOn": null
    })
}

pub const PNG_BYTES: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-fake-image";

/// The documented success answer of `operation`, with an `x-request-id`.
pub fn success_reply(operation: &str) -> Reply {
    let reply = match operation {
        "createAccessToken" => Reply::json(
            200,
            &json!({
                "access_token": ACCESS_TOKEN,
                "expires_in": 3600,
                "refresh_token": "refresh-token-xyz",
                "scope": "/accounts/00000000-0000-4000-8000-00000000acc1/files.read /accounts/00000000-0000-4000-8000-00000000acc1/files.write",
                "token_type": "Bearer"
            }),
        ),
        "listFiles" => Reply::json(
            200,
            &json!([file_details("pending", "identity_verification")]),
        ),
        "uploadFile" | "getFileDetails" => {
            Reply::json(200, &file_details("approved", "identity_verification"))
        }
        "listImageMetadata" => Reply::json(200, &json!([image_metadata()])),
        "uploadImage" => Reply::json(201, &image_metadata()),
        "getImageMetadata" | "updateImage" | "updateImageMetadata" => {
            Reply::json(200, &image_metadata())
        }
        "deleteImage" => Reply::empty(204),
        "getPublicImage" => Reply::raw(200, "image/png", PNG_BYTES).header("etag", "\"etag-1\""),
        "getSignedUrl" => Reply::json(
            200,
            &json!({
                "expires_in": 600,
                "file_id": FILE_UUID,
                "file_limits": {
                    "allowed_types": ["text/csv", "application/pdf"],
                    "max_size": 10485760
                },
                "file_url": "https://storage.example.com/upload/tok-123?sig=abc"
            }),
        ),
        "uploadToSignedUrl" => Reply::empty(200),
        "getFileStatus" => Reply::json(
            200,
            &json!({"file_id": FILE_UUID, "status": "failed", "reason": "infected", "size": 1234}),
        ),
        other => panic!("no success reply for operation {other}"),
    };
    reply.header("x-request-id", &format!("rid-{operation}-ok"))
}

/// A body valid for the named error schema.
pub fn error_body(schema: &str) -> Value {
    match schema {
        "GenericError" => json!({"error": "duplicate file"}),
        "FileValidationError" => json!({
            "error": "validation failed",
            "FileName": "must be at most 64 characters",
            "filePurpose": "unknown purpose"
        }),
        "ImageRequestValidationError" => json!({
            "image": "unsupported image type",
            "metadata": {"altText": "must be at most 125 characters"}
        }),
        "ImageMetadataValidationError" => json!({"altText": "must be at most 125 characters"}),
        "AuthTokenValidationError" => json!({"scope": "unknown scope /accounts/x/files.delete"}),
        "AttachmentError" => json!({
            "error_code": "attachment_document_raised_an_error",
            "detail": "The file attachment service has raised an error."
        }),
        "RateLimitError" => json!({"message": "Rate limit exceeded"}),
        other => panic!("no example body for schema {other}"),
    }
}

// ---------------------------------------------------------------------------
// Calling every operation
// ---------------------------------------------------------------------------

/// Clients pointing at one server, and a directory for files to upload.
pub struct Clients {
    pub moov: moov::Client,
    pub attachments: attachments::Client,
    pub dir: tempfile::TempDir,
}

impl Clients {
    pub fn new(server: &Server) -> Self {
        Self {
            moov: server.moov_basic(),
            attachments: server.attachments(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A file with a fixed name (the part's file name) in this test's own dir.
    pub async fn file(&self, name: &str, contents: &[u8]) -> FilePart {
        let path = self.dir.path().join(name);
        tokio::fs::write(&path, contents).await.unwrap();
        FilePart::open(&path).await.unwrap()
    }

    /// Call `operation` once with fixed arguments; `Ok` holds the decoded
    /// success value (Debug), `Err` the typed error.
    pub async fn call(&self, operation: &str) -> Result<String, ApiError> {
        use attachments::types as at;
        use moov::types as mt;
        let m = &self.moov;
        let a = &self.attachments;
        macro_rules! done {
            ($call:expr) => {
                match $call.await {
                    Ok(value) => Ok(format!("{:#?}", value.into_inner())),
                    Err(e) => Err(ApiError::from_progenitor(e).await),
                }
            };
        }
        match operation {
            "createAccessToken" => {
                let body = mt::AuthTokenRequest {
                    grant_type: mt::GrantType::ClientCredentials,
                    client_id: Some(PUBLIC_KEY.to_string()),
                    client_secret: None,
                    scope: Some(docsync_client::auth::files_scopes(ACCOUNT_ID).join(" ")),
                    refresh_token: None,
                };
                done!(m.create_access_token(None, &body))
            }
            "listFiles" => done!(m.list_files(ACCOUNT_ID, None)),
            "uploadFile" => {
                let body = mt::FileUploadRequestMultiPart {
                    file: FilePart::from_bytes(&b"id,name\n1,Ada\n"[..], "people.csv")
                        .with_content_type("text/csv"),
                    file_purpose: mt::FilePurpose::IdentityVerification,
                    metadata: Some(r#"{"comment":"wire test"}"#.to_string()),
                };
                done!(m.upload_file(ACCOUNT_ID, None, body))
            }
            "getFileDetails" => done!(m.get_file_details(ACCOUNT_ID, "file-1", None)),
            "listImageMetadata" => {
                done!(m.list_image_metadata(ACCOUNT_ID, NonZeroU32::new(50), Some(10), None))
            }
            "uploadImage" => {
                let body = mt::ImageUploadRequestMultiPart {
                    image: FilePart::from_bytes(PNG_BYTES, "square.png")
                        .with_content_type("image/png"),
                    metadata: Some(mt::ImageMetadataRequest {
                        alt_text: Some("A red square".parse().unwrap()),
                    }),
                };
                done!(m.upload_image(ACCOUNT_ID, None, body))
            }
            "getImageMetadata" => done!(m.get_image_metadata(ACCOUNT_ID, "img-1", None)),
            "updateImage" => {
                // Streamed from a file on disk; no metadata part (kept as is).
                let body = mt::ImageUploadRequestMultiPart {
                    image: self
                        .file("replacement.png", PNG_BYTES)
                        .await
                        .with_content_type("image/png"),
                    metadata: None,
                };
                done!(m.update_image(ACCOUNT_ID, "img-1", None, body))
            }
            "deleteImage" => done!(m.delete_image(ACCOUNT_ID, "img-1", None)),
            "updateImageMetadata" => {
                let body = mt::ImageMetadataRequest {
                    alt_text: Some("A blue square".parse().unwrap()),
                };
                done!(m.update_image_metadata(ACCOUNT_ID, "img-1", None, &body))
            }
            "getPublicImage" => {
                let size: mt::GetPublicImageSize = "800x600".parse().unwrap();
                match m
                    .get_public_image("pub-1", Some(&size), Some("\"etag-0\""))
                    .await
                {
                    Ok(value) => {
                        let status = value.status();
                        let header = |name: &str| {
                            value
                                .headers()
                                .get(name)
                                .map(|v| v.to_str().unwrap().to_string())
                        };
                        let (content_type, etag) = (header("content-type"), header("etag"));
                        let mut stream = value.into_inner();
                        let mut bytes = Vec::new();
                        while let Some(chunk) = stream.next().await {
                            bytes.extend_from_slice(&chunk.unwrap());
                        }
                        Ok(format!(
                            "status: {status}\ncontent-type: {content_type:?}\netag: {etag:?}\nbytes: {bytes:?}"
                        ))
                    }
                    Err(e) => Err(ApiError::from_progenitor(e).await),
                }
            }
            "getSignedUrl" => {
                let filename: at::GetSignedUrlFilename = "report.pdf".parse().unwrap();
                let user: at::UserId = USER_ID.parse().unwrap();
                done!(a.get_signed_url(&filename, Some(false), &user))
            }
            "uploadToSignedUrl" => {
                let part = self.file("report.pdf", b"%PDF-1.4 fake pdf\n").await;
                done!(a.upload_to_signed_url("tok-123", part))
            }
            "getFileStatus" => {
                let id: uuid::Uuid = FILE_UUID.parse().unwrap();
                let user: at::UserId = USER_ID.parse().unwrap();
                done!(a.get_file_status(&id, &user))
            }
            other => panic!("no call for operation {other}: add one to tests/common/mod.rs"),
        }
    }
}

/// Every operation of both specs: `(spec, operation)`.
pub fn all_operations() -> Vec<(Spec, SpecOperation)> {
    Spec::ALL
        .into_iter()
        .flat_map(|spec| spec.operations().into_iter().map(move |op| (spec, op)))
        .collect()
}
