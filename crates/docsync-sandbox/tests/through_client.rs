//! Every operation of `openapi/moov.yaml` and `openapi/attachments.yaml`, and every
//! documented error the sandbox can produce, driven through the generated client
//! (`docsync-client`) against a real sandbox on a loopback port.
//!
//! Each test starts its own sandbox (temp data dir, port 0). Time-dependent
//! behaviour (file decisions, attachment processing, URL and token expiry) is
//! driven by advancing the sandbox clock, never by sleeping.
//!
//! A few documented errors cannot be expressed through the typed client because
//! the client validates its inputs first (altText longer than 125, a `size` that
//! does not match `WxH`) or cannot build the request at all (a malformed multipart
//! or JSON body). Those are sent raw and decoded with the client's own
//! [`ApiError::from_progenitor`] (see [`raw_typed`]), so the typed error path is
//! still what is asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io::Cursor;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::time::Duration;

use docsync_client::attachments::types as at;
use docsync_client::auth::{files_scopes, images_scopes};
use docsync_client::moov::types as mt;
use docsync_client::moov::ClientInfo;
use docsync_client::operation::OperationTag;
use docsync_client::{
    attachments, moov, Api, ApiError, ErrorBody, FilePart, MoovCredentials, ResponseValue,
    RetryPolicy, Secret,
};
use docsync_sandbox::{DecisionRule, FaultConfig, Sandbox, SandboxConfig, SandboxHandle};
use futures::StreamExt;
use progenitor_client::Error as PError;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// The accounts of the tests. Moov's account IDs are UUIDs, and the sandbox
/// answers any other ID 404 (`tests/api/auth.rs`).
const ACCT1: &str = "00000000-0000-4000-8000-00000000acc1";
const ACCT2: &str = "00000000-0000-4000-8000-00000000acc2";
const ACCT3: &str = "00000000-0000-4000-8000-00000000acc3";
const ACCT_A: &str = "00000000-0000-4000-8000-00000000acca";
const ACCT_B: &str = "00000000-0000-4000-8000-00000000accb";

const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

/// Decisions and attachment processing only happen when a test advances the clock.
async fn start() -> SandboxHandle {
    start_with(SandboxConfig::default()).await
}

async fn start_with(cfg: SandboxConfig) -> SandboxHandle {
    let cfg = SandboxConfig {
        decision: DecisionRule {
            delay: Duration::from_secs(60),
            ..DecisionRule::default()
        },
        attachment_processing_delay: Duration::from_secs(30),
        ..cfg
    };
    Sandbox::start(cfg).await.expect("sandbox starts")
}

fn advance(sb: &SandboxHandle, secs: u64) {
    sb.clock().advance(Duration::from_secs(secs));
}

fn basic(sb: &SandboxHandle) -> moov::Client {
    let c = sb.credentials();
    moov_client(
        sb,
        MoovCredentials::basic(c.public_key.clone(), c.secret_key.clone()),
    )
}

fn moov_client(sb: &SandboxHandle, creds: MoovCredentials) -> moov::Client {
    moov::Client::builder(sb.url(), creds)
        .retry(RetryPolicy::none())
        .build()
        .unwrap()
}

fn bearer(sb: &SandboxHandle, token: &str) -> moov::Client {
    moov_client(sb, MoovCredentials::Bearer(Secret::new(token)))
}

fn att_client(sb: &SandboxHandle) -> attachments::Client {
    attachments::Client::builder(sb.url(), sb.credentials().attachments_api_key.clone())
        .retry(RetryPolicy::none())
        .build()
        .unwrap()
}

fn image_bytes(w: u32, h: u32, seed: u8, f: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            u8::try_from(x % 256).unwrap().wrapping_add(seed),
            u8::try_from(y % 256).unwrap().wrapping_mul(3),
            seed,
        ])
    });
    let mut buf = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut buf, f)
        .unwrap();
    buf.into_inner()
}

fn png(seed: u8) -> Vec<u8> {
    image_bytes(8, 8, seed, image::ImageFormat::Png)
}

fn jpeg(seed: u8) -> Vec<u8> {
    image_bytes(8, 8, seed, image::ImageFormat::Jpeg)
}

fn webp(seed: u8) -> Vec<u8> {
    image_bytes(8, 8, seed, image::ImageFormat::WebP)
}

fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

fn csv() -> Vec<u8> {
    b"name,amount\nalice,10\nbob,20\n".to_vec()
}

fn file_req(bytes: Vec<u8>, name: &str, ct: &str) -> mt::FileUploadRequestMultiPart {
    mt::FileUploadRequestMultiPart {
        file: FilePart::from_bytes(bytes, name).with_content_type(ct),
        file_purpose: mt::FilePurpose::BusinessVerification,
        metadata: Some(r#"{"comment":"Q3"}"#.to_owned()),
    }
}

fn image_req(bytes: Vec<u8>, alt: Option<&str>) -> mt::ImageUploadRequestMultiPart {
    mt::ImageUploadRequestMultiPart {
        image: FilePart::from_bytes(bytes, "img.png").with_content_type("image/png"),
        metadata: alt.map(|a| mt::ImageMetadataRequest {
            alt_text: Some(a.parse().unwrap()),
        }),
    }
}

fn alt(a: &str) -> mt::ImageMetadataRequest {
    mt::ImageMetadataRequest {
        alt_text: Some(a.parse().unwrap()),
    }
}

fn user(u: &str) -> at::UserId {
    u.parse().unwrap()
}

fn fname(f: &str) -> at::GetSignedUrlFilename {
    f.parse().unwrap()
}

/// The x-request-id of a success, asserted non-empty.
fn rid<T>(v: &ResponseValue<T>) -> String {
    let id = v
        .headers()
        .get("x-request-id")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(!id.is_empty(), "success without x-request-id");
    id
}

async fn ok<T>(
    what: &str,
    r: impl Future<Output = Result<ResponseValue<T>, PError<()>>>,
) -> ResponseValue<T> {
    match r.await {
        Ok(v) => {
            rid(&v);
            v
        }
        Err(e) => panic!("{what}: {}", ApiError::from_progenitor(e).await),
    }
}

async fn err<T>(r: impl Future<Output = Result<ResponseValue<T>, PError<()>>>) -> ApiError {
    match r.await {
        Ok(v) => panic!("expected an error, got {}", v.status()),
        Err(e) => ApiError::from_progenitor(e).await,
    }
}

async fn body_bytes(v: ResponseValue<docsync_client::ByteStream>) -> Vec<u8> {
    let mut s = v.into_inner_stream();
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Sends a request the typed client cannot express and decodes its answer with
/// the client's own error path (tagged as `operation`, as the hooks do).
async fn raw_typed(api: Api, operation: &'static str, req: reqwest::RequestBuilder) -> ApiError {
    let mut resp = req.send().await.unwrap();
    resp.extensions_mut()
        .insert(OperationTag { api, operation });
    ApiError::from_progenitor(PError::UnexpectedResponse(resp)).await
}

// ---------------------------------------------------------------------------
// Expected errors
// ---------------------------------------------------------------------------

/// The variant an error must be.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Validation,
    RateLimited(Option<u64>),
    Server(u16),
}

/// What the decoded body must be.
#[derive(Clone, Copy, Debug)]
enum Body {
    /// Not checked (e.g. bodiless Moov errors, whose decoding is the client's choice).
    Any,
    /// Moov GenericError.
    Generic,
    /// Moov FileValidationError naming this field (`file`, `FileName`, `filePurpose`, `metadata`).
    FileField(&'static str),
    /// Moov ImageRequestValidationError with `image` set.
    ImageField,
    /// Moov ImageRequestValidationError with `metadata.altText` set.
    ImageMetaField,
    /// Moov ImageMetadataValidationError with `altText` set.
    AltText,
    /// Moov AuthTokenValidationError naming `scope`.
    TokenScope,
    /// Moov AuthTokenValidationError naming `refresh_token`.
    TokenRefresh,
    /// Attachments AttachmentError with this error_code.
    Att(&'static str),
    /// Attachments RateLimitError.
    AttRateLimit,
}

fn body_ok(body: Option<&ErrorBody>, want: Body) -> bool {
    use attachments::errors::ErrorBody as A;
    use moov::errors::ErrorBody as M;
    let Some(body) = body else {
        return matches!(want, Body::Any);
    };
    match (want, body) {
        (Body::Any, _) => true,
        (Body::Generic, ErrorBody::Moov(M::GenericError(g))) => !g.error.is_empty(),
        (Body::FileField(f), ErrorBody::Moov(M::FileValidationError(e))) => {
            let set = match f {
                "file" => e.file.is_some(),
                "FileName" => e.file_name.is_some(),
                "filePurpose" => e.file_purpose.is_some(),
                "metadata" => e.metadata.is_some(),
                _ => false,
            };
            // Exactly the named field (plus the summary) is set.
            let count = [&e.file, &e.file_name, &e.file_purpose, &e.metadata]
                .iter()
                .filter(|v| v.is_some())
                .count();
            set && count == 1
        }
        (Body::ImageField, ErrorBody::Moov(M::ImageRequestValidationError(e))) => e.image.is_some(),
        (Body::ImageMetaField, ErrorBody::Moov(M::ImageRequestValidationError(e))) => {
            e.metadata.as_ref().is_some_and(|m| m.alt_text.is_some())
        }
        (Body::AltText, ErrorBody::Moov(M::ImageMetadataValidationError(e))) => {
            e.alt_text.is_some()
        }
        (Body::TokenScope, ErrorBody::Moov(M::AuthTokenValidationError(e))) => e.scope.is_some(),
        (Body::TokenRefresh, ErrorBody::Moov(M::AuthTokenValidationError(e))) => {
            e.refresh_token.is_some()
        }
        (Body::Att(code), ErrorBody::Attachments(A::AttachmentError(e))) => {
            e.error_code == code && !e.detail.is_empty()
        }
        (Body::AttRateLimit, ErrorBody::Attachments(A::RateLimitError(e))) => !e.message.is_empty(),
        _ => false,
    }
}

/// Asserts the variant, the body and a non-empty request id.
fn check(name: &str, e: &ApiError, want: Want, body: Body) {
    let variant = match (want, e) {
        (Want::BadRequest, ApiError::BadRequest { .. })
        | (Want::Unauthorized, ApiError::Unauthorized { .. })
        | (Want::Forbidden, ApiError::Forbidden { .. })
        | (Want::NotFound, ApiError::NotFound { .. })
        | (Want::Conflict, ApiError::Conflict { .. })
        | (Want::Validation, ApiError::Validation { .. }) => true,
        (Want::RateLimited(secs), ApiError::RateLimited { retry_after, .. }) => {
            *retry_after == secs.map(Duration::from_secs)
        }
        (Want::Server(s), ApiError::Server { status, .. }) => *status == s,
        _ => false,
    };
    assert!(variant, "{name}: expected {want:?}, got {e:?}");
    assert!(
        body_ok(e.body(), body),
        "{name}: expected body {body:?}, got {:?}",
        e.body()
    );
    assert!(
        e.request_id().is_some_and(|id| !id.is_empty()),
        "{name}: no request id in {e:?}"
    );
}

type Call<'a> = Pin<Box<dyn Future<Output = Result<(), PError<()>>> + 'a>>;

fn call<'a, T: 'a>(f: impl Future<Output = Result<ResponseValue<T>, PError<()>>> + 'a) -> Call<'a> {
    Box::pin(async move { f.await.map(|_| ()) })
}

struct Case<'a> {
    name: String,
    call: Call<'a>,
    want: Want,
    body: Body,
}

fn case<'a>(name: impl Into<String>, call: Call<'a>, want: Want, body: Body) -> Case<'a> {
    Case {
        name: name.into(),
        call,
        want,
        body,
    }
}

/// Runs a table of error cases; returns how many ran.
async fn run(cases: Vec<Case<'_>>) -> usize {
    let n = cases.len();
    for c in cases {
        match c.call.await {
            Ok(()) => panic!("{}: expected {:?}, got a success", c.name, c.want),
            Err(e) => check(&c.name, &ApiError::from_progenitor(e).await, c.want, c.body),
        }
    }
    n
}

/// Every authenticated Moov account operation, called on `account` (fresh futures).
fn account_ops<'a>(
    c: &'a moov::Client,
    account: &'a str,
    file_id: &'a str,
    image_id: &'a str,
    seed: u8,
) -> Vec<(&'static str, Call<'a>)> {
    vec![
        (
            "uploadFile",
            call(c.upload_file(account, None, file_req(csv(), "a.csv", "text/csv"))),
        ),
        ("listFiles", call(c.list_files(account, None))),
        (
            "getFileDetails",
            call(c.get_file_details(account, file_id, None)),
        ),
        (
            "uploadImage",
            call(c.upload_image(account, None, image_req(png(seed), None))),
        ),
        (
            "listImageMetadata",
            call(c.list_image_metadata(account, None, None, None)),
        ),
        (
            "getImageMetadata",
            call(c.get_image_metadata(account, image_id, None)),
        ),
        (
            "updateImage",
            call(c.update_image(
                account,
                image_id,
                None,
                image_req(png(seed.wrapping_add(1)), None),
            )),
        ),
        (
            "updateImageMetadata",
            Box::pin(async move {
                let body = alt("x");
                c.update_image_metadata(account, image_id, None, &body)
                    .await
                    .map(|_| ())
            }),
        ),
        ("deleteImage", call(c.delete_image(account, image_id, None))),
    ]
}

// ---------------------------------------------------------------------------
// createAccessToken and auth
// ---------------------------------------------------------------------------

#[tokio::test]
async fn tokens_bearer_oauth_and_auth_errors() {
    let sb = start().await;
    let c = basic(&sb);
    let creds = sb.credentials().clone();

    // createAccessToken: success, then the token used by a Bearer client.
    let scope = [files_scopes(ACCT1), images_scopes(ACCT1)]
        .concat()
        .join(" ");
    let req = mt::AuthTokenRequest {
        grant_type: mt::GrantType::ClientCredentials,
        client_id: None,
        client_secret: None,
        refresh_token: None,
        scope: Some(scope.clone()),
    };
    let tok = ok("createAccessToken", c.create_access_token(None, &req))
        .await
        .into_inner();
    assert_eq!(tok.token_type, "Bearer");
    assert_eq!(tok.scope, scope);
    assert_eq!(tok.expires_in, 3600);
    assert!(!tok.access_token.is_empty());
    let refresh = tok.refresh_token.clone().expect("a refresh token");

    let b = bearer(&sb, &tok.access_token);
    let up = ok(
        "uploadFile (bearer)",
        b.upload_file(ACCT1, None, file_req(csv(), "bearer.csv", "text/csv")),
    )
    .await
    .into_inner();
    let listed = ok("listFiles (bearer)", b.list_files(ACCT1, None))
        .await
        .into_inner();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].file_id, up.file_id);

    // createAccessToken with credentials in the body instead of Basic auth.
    let anon = moov_client(&sb, MoovCredentials::Bearer(Secret::new("unused")));
    let body_creds = mt::AuthTokenRequest {
        client_id: Some(creds.public_key.clone()),
        client_secret: Some(creds.secret_key.clone()),
        ..req.clone()
    };
    let t2 = ok(
        "createAccessToken (client_secret in body)",
        anon.create_access_token(None, &body_creds),
    )
    .await
    .into_inner();
    assert_eq!(t2.scope, scope);

    // refresh_token grant: a narrower scope, the old access token revoked.
    let refresh_req = mt::AuthTokenRequest {
        grant_type: mt::GrantType::RefreshToken,
        client_id: None,
        client_secret: None,
        refresh_token: Some(refresh.as_str().parse().unwrap()),
        scope: Some("/accounts/00000000-0000-4000-8000-00000000acc1/files.read".to_owned()),
    };
    let t3 = ok(
        "createAccessToken (refresh_token)",
        c.create_access_token(None, &refresh_req),
    )
    .await
    .into_inner();
    assert_eq!(
        t3.scope,
        "/accounts/00000000-0000-4000-8000-00000000acc1/files.read"
    );
    let e = err(b.list_files(ACCT1, None)).await;
    check("revoked access token", &e, Want::Unauthorized, Body::Any);

    // OAuth credentials: the client fetches (and caches) its own token.
    let oauth = moov_client(
        &sb,
        MoovCredentials::OAuth {
            public_key: creds.public_key.clone(),
            secret_key: Secret::new(creds.secret_key.clone()),
            scopes: [files_scopes(ACCT1), images_scopes(ACCT1)].concat(),
        },
    );
    ok(
        "uploadFile (oauth)",
        oauth.upload_file(ACCT1, None, file_req(pdf(), "oauth.pdf", "application/pdf")),
    )
    .await;
    let listed = ok("listFiles (oauth)", oauth.list_files(ACCT1, None))
        .await
        .into_inner();
    assert_eq!(listed.len(), 2);
    ok(
        "uploadImage (oauth)",
        oauth.upload_image(ACCT1, None, image_req(png(1), Some("oauth"))),
    )
    .await;
    let e = err(oauth.list_files(ACCT2, None)).await;
    check(
        "oauth token on another account",
        &e,
        Want::Forbidden,
        Body::Any,
    );

    // OAuth credentials whose token request the server refuses (422, malformed
    // scope). The client flattens the token endpoint's answer into
    // `InvalidRequest` (no status, no request id, never retryable) instead of
    // surfacing the typed 422: accepted here, reported as a client gap.
    let bad_oauth = moov_client(
        &sb,
        MoovCredentials::OAuth {
            public_key: creds.public_key.clone(),
            secret_key: Secret::new(creds.secret_key.clone()),
            scopes: vec!["not a scope!".to_owned()],
        },
    );
    match err(bad_oauth.list_files(ACCT1, None)).await {
        ApiError::Validation { .. } => {}
        ApiError::InvalidRequest(msg) => assert!(msg.contains("validation failed"), "{msg}"),
        other => panic!("oauth with a refused scope: {other:?}"),
    }

    // createAccessToken errors.
    let wrong = moov_client(
        &sb,
        MoovCredentials::basic(creds.public_key.clone(), "sk_wrong"),
    );
    let v1 = moov::Client::builder(
        sb.url(),
        MoovCredentials::basic(creds.public_key.clone(), creds.secret_key.clone()),
    )
    .version("v1")
    .retry(RetryPolicy::none())
    .build()
    .unwrap();
    let no_scope = mt::AuthTokenRequest {
        scope: None,
        ..req.clone()
    };
    let bad_scope = mt::AuthTokenRequest {
        scope: Some("not a scope!".to_owned()),
        ..req.clone()
    };
    let bad_refresh = mt::AuthTokenRequest {
        refresh_token: Some("sbx_rt_nope".parse().unwrap()),
        ..refresh_req.clone()
    };
    let reused_refresh = refresh_req.clone();
    let widen = mt::AuthTokenRequest {
        refresh_token: Some(t3.refresh_token.clone().unwrap().as_str().parse().unwrap()),
        scope: Some("/accounts/00000000-0000-4000-8000-00000000acc9/files.write".to_owned()),
        ..refresh_req.clone()
    };
    let bad_grant = mt::AuthTokenRequest {
        grant_type: mt::GrantType::Unknown("password".to_owned()),
        ..req.clone()
    };
    let cases = vec![
        case(
            "createAccessToken wrong secret",
            call(wrong.create_access_token(None, &req)),
            Want::Unauthorized,
            Body::Any,
        ),
        case(
            "createAccessToken no credentials at all",
            call(anon.create_access_token(None, &req)),
            Want::Unauthorized,
            Body::Any,
        ),
        case(
            "createAccessToken malformed X-Moov-Version",
            call(v1.create_access_token(None, &req)),
            Want::NotFound,
            Body::Any,
        ),
        case(
            "createAccessToken unsupported grant_type",
            call(c.create_access_token(None, &bad_grant)),
            Want::BadRequest,
            Body::Generic,
        ),
        case(
            "createAccessToken without scope",
            call(c.create_access_token(None, &no_scope)),
            Want::Validation,
            Body::TokenScope,
        ),
        case(
            "createAccessToken malformed scope",
            call(c.create_access_token(None, &bad_scope)),
            Want::Validation,
            Body::TokenScope,
        ),
        case(
            "createAccessToken unknown refresh_token",
            call(c.create_access_token(None, &bad_refresh)),
            Want::Validation,
            Body::TokenRefresh,
        ),
        case(
            "createAccessToken refresh_token used twice",
            call(c.create_access_token(None, &reused_refresh)),
            Want::Validation,
            Body::TokenRefresh,
        ),
        case(
            "createAccessToken refresh widening the scope",
            call(c.create_access_token(None, &widen)),
            Want::Validation,
            Body::TokenScope,
        ),
    ];
    let mut n = run(cases).await;

    // 400 of createAccessToken for a body that is not JSON (the client always
    // sends JSON): raw, decoded by the client.
    let e = raw_typed(
        Api::Moov,
        "create_access_token",
        reqwest::Client::new()
            .post(format!("{}/oauth2/token", sb.url()))
            .basic_auth(&creds.public_key, Some(&creds.secret_key))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    check(
        "createAccessToken malformed JSON",
        &e,
        Want::BadRequest,
        Body::Generic,
    );
    n += 1;

    // Auth errors of every account operation: wrong secret, bogus bearer,
    // a token for another account, a token without the scope, a malformed version.
    let files_read_only = ok(
        "createAccessToken files.read",
        c.create_access_token(
            None,
            &mt::AuthTokenRequest {
                scope: Some("/accounts/00000000-0000-4000-8000-00000000acc1/files.read /accounts/00000000-0000-4000-8000-00000000acc1/images.read".into()),
                ..req.clone()
            },
        ),
    )
    .await
    .into_inner();
    let other_acct = bearer(&sb, &tok_for(&c, ACCT_B).await);
    let read_only = bearer(&sb, &files_read_only.access_token);
    let bogus = bearer(&sb, "sbx_at_bogus");
    let mut cases = Vec::new();
    for (client, acct, want, label) in [
        (&wrong, ACCT1, Want::Unauthorized, "wrong secret"),
        (&bogus, ACCT1, Want::Unauthorized, "bogus bearer"),
        (
            &other_acct,
            ACCT1,
            Want::Forbidden,
            "token for another account",
        ),
        (&v1, ACCT1, Want::NotFound, "malformed X-Moov-Version"),
    ] {
        for (op, fut) in account_ops(client, acct, "f", "i", 9) {
            cases.push(case(format!("{op}: {label}"), fut, want, Body::Any));
        }
    }
    // Read scopes only: every write is 403, reads succeed.
    for (op, fut) in account_ops(&read_only, ACCT1, "f", "i", 9) {
        if matches!(op, "listFiles" | "listImageMetadata") {
            fut.await.unwrap();
        } else if matches!(op, "getFileDetails" | "getImageMetadata") {
            // Allowed, then not found.
            cases.push(case(
                format!("{op}: read scope, unknown id"),
                fut,
                Want::NotFound,
                Body::Any,
            ));
        } else {
            cases.push(case(
                format!("{op}: token without the write scope"),
                fut,
                Want::Forbidden,
                Body::Any,
            ));
        }
    }
    n += run(cases).await;

    // An expired access token is 401.
    advance(&sb, 3601);
    let e = err(read_only.list_files(ACCT1, None)).await;
    check("expired access token", &e, Want::Unauthorized, Body::Any);
    n += 1;
    assert!(n >= 50, "{n} auth cases");
}

async fn tok_for(c: &moov::Client, account: &str) -> String {
    let req = mt::AuthTokenRequest {
        grant_type: mt::GrantType::ClientCredentials,
        client_id: None,
        client_secret: None,
        refresh_token: None,
        scope: Some(
            [files_scopes(account), images_scopes(account)]
                .concat()
                .join(" "),
        ),
    };
    let t = ok("createAccessToken", c.create_access_token(None, &req))
        .await
        .into_inner();
    String::from(t.access_token)
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

#[tokio::test]
async fn files_every_type_decisions_and_errors() {
    let sb = start().await;
    let c = basic(&sb);

    // uploadFile for each type (decided by content), then getFileDetails/listFiles.
    let uploads = [
        ("statement.csv", csv(), "text/csv"),
        ("logo.png", png(1), "image/png"),
        ("photo.jpg", jpeg(1), "image/jpeg"),
        ("doc.pdf", pdf(), "application/pdf"),
        ("please-reject-me.pdf", pdf(), "application/pdf"),
    ];
    let mut ids = Vec::new();
    for (name, bytes, ct) in uploads {
        let len = i64::try_from(bytes.len()).unwrap();
        let f = ok(name, c.upload_file(ACCT1, None, file_req(bytes, name, ct)))
            .await
            .into_inner();
        assert_eq!(f.file_name.as_str(), name);
        assert_eq!(f.account_id, ACCT1);
        assert_eq!(f.file_purpose, mt::FilePurpose::BusinessVerification);
        assert_eq!(f.file_status, mt::FileStatus::Pending);
        assert_eq!(f.file_size_bytes, len);
        assert_eq!(f.decision_reason, None);
        let meta: serde_json::Value = serde_json::from_str(&f.metadata).unwrap();
        assert_eq!(meta, serde_json::json!({"comment": "Q3"}));
        ids.push((name, f.file_id));
    }
    // Purpose and metadata are optional/enumerated: another purpose, no metadata.
    let f = ok(
        "uploadFile without metadata",
        c.upload_file(
            ACCT1,
            None,
            mt::FileUploadRequestMultiPart {
                file: FilePart::from_bytes(csv(), "x.csv"),
                file_purpose: mt::FilePurpose::IdentityVerification,
                metadata: None,
            },
        ),
    )
    .await
    .into_inner();
    assert_eq!(f.file_purpose, mt::FilePurpose::IdentityVerification);
    assert_eq!(f.metadata, "{}");

    let listed = ok("listFiles", c.list_files(ACCT1, None))
        .await
        .into_inner();
    assert_eq!(listed.len(), 6);
    assert!(listed
        .iter()
        .all(|f| f.file_status == mt::FileStatus::Pending));
    let got = ok("getFileDetails", c.get_file_details(ACCT1, &ids[3].1, None))
        .await
        .into_inner();
    assert_eq!(got.file_name.as_str(), "doc.pdf");

    // The decision rule: after the delay, the name matching the pattern is
    // rejected with a reason, the others approved.
    advance(&sb, 61);
    for (name, id) in &ids {
        let f = ok(name, c.get_file_details(ACCT1, id, None))
            .await
            .into_inner();
        if name.contains("reject") {
            assert_eq!(f.file_status, mt::FileStatus::Rejected, "{name}");
            assert!(f.decision_reason.as_deref().is_some_and(|r| !r.is_empty()));
        } else {
            assert_eq!(f.file_status, mt::FileStatus::Approved, "{name}");
            assert_eq!(f.decision_reason, None);
        }
        assert!(f.updated_on > f.created_on);
    }
    let listed = ok("listFiles after decisions", c.list_files(ACCT1, None))
        .await
        .into_inner();
    assert_eq!(
        listed
            .iter()
            .filter(|f| f.file_status == mt::FileStatus::Rejected)
            .count(),
        1
    );

    // Errors of uploadFile / getFileDetails.
    let long = format!("{}.csv", "n".repeat(61));
    let with = |bytes: Vec<u8>, name: &str, purpose: mt::FilePurpose, meta: Option<&str>| {
        mt::FileUploadRequestMultiPart {
            file: FilePart::from_bytes(bytes, name),
            file_purpose: purpose,
            metadata: meta.map(str::to_owned),
        }
    };
    let bv = || mt::FilePurpose::BusinessVerification;
    let cases = vec![
        case(
            "uploadFile GIF content named .png",
            call(c.upload_file(ACCT1, None, with(GIF.to_vec(), "x.png", bv(), None))),
            Want::Validation,
            Body::FileField("file"),
        ),
        case(
            "uploadFile binary content named .pdf",
            call(c.upload_file(
                ACCT1,
                None,
                with(vec![0, 1, 2, 3, 255, 254], "x.pdf", bv(), None),
            )),
            Want::Validation,
            Body::FileField("file"),
        ),
        case(
            "uploadFile empty file",
            call(c.upload_file(ACCT1, None, with(Vec::new(), "x.csv", bv(), None))),
            Want::Validation,
            Body::FileField("file"),
        ),
        case(
            "uploadFile fileName of 65 chars",
            call(c.upload_file(ACCT1, None, with(csv(), &long, bv(), None))),
            Want::Validation,
            Body::FileField("FileName"),
        ),
        case(
            "uploadFile unknown metadata key",
            call(c.upload_file(
                ACCT1,
                None,
                with(csv(), "x.csv", bv(), Some(r#"{"colour":"red"}"#)),
            )),
            Want::Validation,
            Body::FileField("metadata"),
        ),
        case(
            "uploadFile metadata not JSON",
            call(c.upload_file(ACCT1, None, with(csv(), "x.csv", bv(), Some("{")))),
            Want::Validation,
            Body::FileField("metadata"),
        ),
        case(
            "uploadFile unknown filePurpose",
            call(c.upload_file(
                ACCT1,
                None,
                with(
                    csv(),
                    "x.csv",
                    mt::FilePurpose::Unknown("taxes".into()),
                    None,
                ),
            )),
            Want::Validation,
            Body::FileField("filePurpose"),
        ),
        case(
            "getFileDetails unknown id",
            call(c.get_file_details(ACCT1, "00000000-0000-0000-0000-000000000000", None)),
            Want::NotFound,
            Body::Any,
        ),
        case(
            "getFileDetails id of another account",
            call(c.get_file_details(ACCT2, &ids[0].1, None)),
            Want::NotFound,
            Body::Any,
        ),
    ];
    let mut n = run(cases).await;

    // 400: a body that is not multipart (the client cannot send one).
    let creds = sb.credentials();
    let e = raw_typed(
        Api::Moov,
        "upload_file",
        reqwest::Client::new()
            .post(format!(
                "{}/accounts/00000000-0000-4000-8000-00000000acc1/files",
                sb.url()
            ))
            .basic_auth(&creds.public_key, Some(&creds.secret_key))
            .header("content-type", "multipart/form-data; boundary=x")
            .body("--x\r\nnot a part"),
    )
    .await;
    check(
        "uploadFile malformed multipart",
        &e,
        Want::BadRequest,
        Body::Generic,
    );
    n += 1;

    // 409: the 51st file of an account.
    for i in 0..50 {
        ok(
            "uploadFile (filling account 3)",
            c.upload_file(
                ACCT3,
                None,
                file_req(csv(), &format!("f{i}.csv"), "text/csv"),
            ),
        )
        .await;
    }
    let e = err(c.upload_file(ACCT3, None, file_req(csv(), "f51.csv", "text/csv"))).await;
    check("uploadFile 51st file", &e, Want::Conflict, Body::Generic);
    n += 1;
    assert_eq!(
        ok("listFiles account 3", c.list_files(ACCT3, None))
            .await
            .into_inner()
            .len(),
        50
    );
    assert!(n >= 11);
}

#[tokio::test]
async fn accounts_never_see_each_others_files() {
    let sb = start().await;
    let c = basic(&sb);
    let a = ok(
        "upload A",
        c.upload_file(ACCT_A, None, file_req(csv(), "a.csv", "text/csv")),
    )
    .await
    .into_inner();
    let b = ok(
        "upload B",
        c.upload_file(ACCT_B, None, file_req(pdf(), "b.pdf", "application/pdf")),
    )
    .await
    .into_inner();
    let ia = ok(
        "image A",
        c.upload_image(ACCT_A, None, image_req(png(1), None)),
    )
    .await
    .into_inner();
    let la = ok("list A", c.list_files(ACCT_A, None)).await.into_inner();
    let lb = ok("list B", c.list_files(ACCT_B, None)).await.into_inner();
    assert_eq!(
        la.iter().map(|f| &f.file_id).collect::<Vec<_>>(),
        [&a.file_id]
    );
    assert_eq!(
        lb.iter().map(|f| &f.file_id).collect::<Vec<_>>(),
        [&b.file_id]
    );
    assert!(
        ok("images B", c.list_image_metadata(ACCT_B, None, None, None))
            .await
            .into_inner()
            .is_empty()
    );

    let token_a = bearer(&sb, &tok_for(&c, ACCT_A).await);
    ok(
        "A reads A",
        token_a.get_file_details(ACCT_A, &a.file_id, None),
    )
    .await;
    let cases = vec![
        case(
            "listFiles of B with A's token",
            call(token_a.list_files(ACCT_B, None)),
            Want::Forbidden,
            Body::Any,
        ),
        case(
            "getFileDetails of B's file with A's token",
            call(token_a.get_file_details(ACCT_B, &b.file_id, None)),
            Want::Forbidden,
            Body::Any,
        ),
        case(
            "getImageMetadata of A's image through B",
            call(c.get_image_metadata(ACCT_B, &ia.image_id, None)),
            Want::NotFound,
            Body::Any,
        ),
        case(
            "getFileDetails of A's file through B (basic)",
            call(c.get_file_details(ACCT_B, &a.file_id, None)),
            Want::NotFound,
            Body::Any,
        ),
        case(
            "deleteImage of A's image through B",
            call(c.delete_image(ACCT_B, &ia.image_id, None)),
            Want::NotFound,
            Body::Any,
        ),
    ];
    run(cases).await;
    // A's image is untouched.
    let still = ok(
        "A's image",
        c.get_image_metadata(ACCT_A, &ia.image_id, None),
    )
    .await
    .into_inner();
    assert_eq!(still.disabled_on, None);
}

// ---------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------

fn dims(bytes: &[u8]) -> (u32, u32) {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .unwrap()
        .into_dimensions()
        .unwrap()
}

#[tokio::test]
async fn images_every_operation_and_errors() {
    let sb = start().await;
    let c = basic(&sb);

    // uploadImage: 201 for each format.
    let mut imgs = Vec::new();
    for (i, (bytes, alt_text)) in [
        (png(1), Some("a png")),
        (jpeg(2), None),
        (webp(3), Some("w")),
    ]
    .into_iter()
    .enumerate()
    {
        let v = ok(
            "uploadImage",
            c.upload_image(ACCT1, None, image_req(bytes, alt_text)),
        )
        .await;
        assert_eq!(v.status().as_u16(), 201, "image {i}");
        let m = v.into_inner();
        assert_eq!(m.alt_text.as_deref(), alt_text);
        assert_eq!(m.disabled_on, None);
        assert!(
            m.link.ends_with(&format!("/images/{}", m.public_id)),
            "{}",
            m.link
        );
        imgs.push(m);
    }

    // listImageMetadata with skip/count.
    let all = ok("list", c.list_image_metadata(ACCT1, None, None, None))
        .await
        .into_inner();
    assert_eq!(all.len(), 3);
    let page = ok(
        "list skip=1 count=1",
        c.list_image_metadata(ACCT1, NonZeroU32::new(1), Some(1), None),
    )
    .await
    .into_inner();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].image_id, all[1].image_id);
    let tail = ok(
        "list skip=2",
        c.list_image_metadata(ACCT1, NonZeroU32::new(200), Some(2), None),
    )
    .await
    .into_inner();
    assert_eq!(tail.len(), 1);
    assert!(ok(
        "list skip=3",
        c.list_image_metadata(ACCT1, None, Some(3), None)
    )
    .await
    .into_inner()
    .is_empty());

    // getImageMetadata.
    let png_img = &imgs[0];
    let got = ok("get", c.get_image_metadata(ACCT1, &png_img.image_id, None))
        .await
        .into_inner();
    assert_eq!(got.public_id, png_img.public_id);
    assert_eq!(got.alt_text.as_deref(), Some("a png"));

    // updateImage: metadata kept when omitted, replaced when given.
    let kept = ok(
        "updateImage without metadata",
        c.update_image(ACCT1, &png_img.image_id, None, image_req(png(10), None)),
    )
    .await
    .into_inner();
    assert_eq!(kept.alt_text.as_deref(), Some("a png"));
    assert_eq!(kept.public_id, png_img.public_id);
    assert!(kept.updated_on >= png_img.updated_on);
    let replaced = ok(
        "updateImage with metadata",
        c.update_image(
            ACCT1,
            &png_img.image_id,
            None,
            image_req(
                image_bytes(40, 20, 11, image::ImageFormat::Png),
                Some("new alt"),
            ),
        ),
    )
    .await
    .into_inner();
    assert_eq!(replaced.alt_text.as_deref(), Some("new alt"));

    // updateImageMetadata.
    let m = ok(
        "updateImageMetadata",
        c.update_image_metadata(ACCT1, &png_img.image_id, None, &alt("described")),
    )
    .await
    .into_inner();
    assert_eq!(m.alt_text.as_deref(), Some("described"));
    let cleared = ok(
        "updateImageMetadata without altText",
        c.update_image_metadata(
            ACCT1,
            &imgs[2].image_id,
            None,
            &mt::ImageMetadataRequest::default(),
        ),
    )
    .await
    .into_inner();
    assert_eq!(cleared.alt_text, None);

    // getPublicImage: size, ETag, If-None-Match.
    let pid = &png_img.public_id;
    let size: mt::GetPublicImageSize = "20x0".parse().unwrap();
    let v = ok(
        "getPublicImage 20x0",
        c.get_public_image(pid, Some(&size), None),
    )
    .await;
    let ct = v
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let etag = v
        .headers()
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(ct, "image/png");
    assert!(etag.starts_with('"'), "strong ETag: {etag}");
    let bytes = body_bytes(v).await;
    assert_eq!(dims(&bytes), (20, 10), "40x20 scaled to width 20");
    let default = body_bytes(
        ok(
            "getPublicImage default",
            c.get_public_image(pid, None, None),
        )
        .await,
    )
    .await;
    assert_eq!(dims(&default), (400, 200), "fits 400x400");
    let e = err(c.get_public_image(pid, Some(&size), Some(&etag))).await;
    match &e {
        ApiError::NotModified {
            etag: got,
            request_id,
        } => {
            assert_eq!(got.as_deref(), Some(etag.as_str()));
            assert!(request_id.as_deref().is_some_and(|r| !r.is_empty()));
        }
        other => panic!("If-None-Match: expected NotModified, got {other:?}"),
    }
    let v = ok(
        "getPublicImage other ETag",
        c.get_public_image(pid, Some(&size), Some("\"stale\"")),
    )
    .await;
    assert_eq!(v.status().as_u16(), 200);

    // Accept: the generated method has no Accept parameter, so the same
    // generated method runs on a reqwest client whose default Accept is WebP.
    for (accept, want) in [
        ("image/webp", image::ImageFormat::WebP),
        (
            "image/jpeg;q=0.9, image/png;q=0.5",
            image::ImageFormat::Jpeg,
        ),
        ("image/*", image::ImageFormat::Png),
    ] {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::ACCEPT, accept.parse().unwrap());
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        let negotiating = moov::Client::new_with_client(sb.url(), http, c.inner().clone());
        let v = ok(
            "getPublicImage with Accept",
            negotiating.get_public_image(pid, Some(&size), None),
        )
        .await;
        let ct = v
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = body_bytes(v).await;
        assert_eq!(image::guess_format(&bytes).unwrap(), want, "{accept}");
        assert_eq!(ct, want.to_mime_type(), "{accept}");
        assert_eq!(dims(&bytes), (20, 10));
    }

    // deleteImage: 204, then disabledOn set and the public URL still served.
    let jpg = &imgs[1];
    let v = ok("deleteImage", c.delete_image(ACCT1, &jpg.image_id, None)).await;
    assert_eq!(v.status().as_u16(), 204);
    let gone = ok(
        "get deleted",
        c.get_image_metadata(ACCT1, &jpg.image_id, None),
    )
    .await
    .into_inner();
    assert!(gone.disabled_on.is_some());
    let served = ok(
        "getPublicImage of a deleted image",
        c.get_public_image(&jpg.public_id, None, None),
    )
    .await;
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(
        image::guess_format(&body_bytes(served).await).unwrap(),
        image::ImageFormat::Jpeg
    );
    // A disabled image's bytes may be uploaded again.
    ok(
        "re-upload deleted bytes",
        c.upload_image(ACCT1, None, image_req(jpeg(2), None)),
    )
    .await;

    // Errors.
    let png_id = png_img.image_id.clone();
    let webp_id = imgs[2].image_id.clone();
    let current_png = image_bytes(40, 20, 11, image::ImageFormat::Png);
    let nobody = "00000000-0000-0000-0000-000000000000";
    let pdf_as_image = || mt::ImageUploadRequestMultiPart {
        image: FilePart::from_bytes(pdf(), "x.png").with_content_type("image/png"),
        metadata: None,
    };
    let truncated_png = {
        let mut b = png(42);
        b.truncate(20);
        b
    };
    let cases = vec![
        case(
            "uploadImage duplicate content",
            call(c.upload_image(ACCT1, None, image_req(current_png.clone(), None))),
            Want::Conflict,
            Body::Generic,
        ),
        case(
            "updateImage to another image's content",
            call(c.update_image(ACCT1, &webp_id, None, image_req(current_png.clone(), None))),
            Want::Conflict,
            Body::Generic,
        ),
        case(
            "uploadImage PDF content",
            call(c.upload_image(ACCT1, None, pdf_as_image())),
            Want::Validation,
            Body::ImageField,
        ),
        case(
            "uploadImage GIF content",
            call(c.upload_image(ACCT1, None, image_req(GIF.to_vec(), None))),
            Want::Validation,
            Body::ImageField,
        ),
        case(
            "uploadImage truncated PNG",
            call(c.upload_image(ACCT1, None, image_req(truncated_png, None))),
            Want::Validation,
            Body::ImageField,
        ),
        case(
            "uploadImage empty",
            call(c.upload_image(ACCT1, None, image_req(Vec::new(), None))),
            Want::Validation,
            Body::ImageField,
        ),
        case(
            "updateImage PDF content",
            call(c.update_image(ACCT1, &png_id, None, pdf_as_image())),
            Want::Validation,
            Body::ImageField,
        ),
        case(
            "listImageMetadata count=201",
            call(c.list_image_metadata(ACCT1, NonZeroU32::new(201), None, None)),
            Want::BadRequest,
            Body::Generic,
        ),
        case(
            "listImageMetadata skip=-1",
            call(c.list_image_metadata(ACCT1, None, Some(-1), None)),
            Want::BadRequest,
            Body::Generic,
        ),
        case(
            "getImageMetadata unknown id",
            call(c.get_image_metadata(ACCT1, nobody, None)),
            Want::NotFound,
            Body::Any,
        ),
        case(
            "updateImage unknown id",
            call(c.update_image(ACCT1, nobody, None, image_req(png(50), None))),
            Want::NotFound,
            Body::Any,
        ),
        case(
            "deleteImage unknown id",
            call(c.delete_image(ACCT1, nobody, None)),
            Want::NotFound,
            Body::Any,
        ),
        case(
            "updateImageMetadata unknown id",
            Box::pin(async {
                let body = alt("x");
                c.update_image_metadata(ACCT1, nobody, None, &body)
                    .await
                    .map(|_| ())
            }),
            Want::NotFound,
            Body::Any,
        ),
        case(
            "getPublicImage unknown publicID",
            call(c.get_public_image("0123456789abcdef", None, None)),
            Want::NotFound,
            Body::Any,
        ),
    ];
    let mut n = run(cases).await;

    // What the typed client refuses to send (it validates altText and size
    // itself, and always sends well-formed JSON): sent raw, decoded by the client.
    assert!(
        "a".repeat(126)
            .parse::<mt::ImageMetadataRequestAltText>()
            .is_err(),
        "the client itself refuses altText > 125"
    );
    assert!("big".parse::<mt::GetPublicImageSize>().is_err());
    let creds = sb.credentials().clone();
    let http = reqwest::Client::new();
    let moov_req = |m: reqwest::Method, path: &str| {
        http.request(m, format!("{}{path}", sb.url()))
            .basic_auth(&creds.public_key, Some(&creds.secret_key))
    };
    let long_alt = serde_json::json!({ "altText": "a".repeat(126) }).to_string();
    let meta_path =
        format!("/accounts/00000000-0000-4000-8000-00000000acc1/images/{png_id}/metadata");
    let raw: Vec<(&str, &'static str, reqwest::RequestBuilder, Want, Body)> = vec![
        (
            "updateImageMetadata altText of 126 chars",
            "update_image_metadata",
            moov_req(reqwest::Method::PUT, &meta_path)
                .header("content-type", "application/json")
                .body(long_alt.clone()),
            Want::Validation,
            Body::AltText,
        ),
        (
            "updateImageMetadata altText not a string",
            "update_image_metadata",
            moov_req(reqwest::Method::PUT, &meta_path)
                .header("content-type", "application/json")
                .body(r#"{"altText": 5}"#),
            Want::Validation,
            Body::AltText,
        ),
        (
            "updateImageMetadata malformed JSON",
            "update_image_metadata",
            moov_req(reqwest::Method::PUT, &meta_path)
                .header("content-type", "application/json")
                .body("{"),
            Want::BadRequest,
            Body::Generic,
        ),
        (
            "uploadImage metadata altText of 126 chars",
            "upload_image",
            moov_req(
                reqwest::Method::POST,
                "/accounts/00000000-0000-4000-8000-00000000acc1/images",
            )
            .multipart(
                reqwest::multipart::Form::new()
                    .part(
                        "image",
                        reqwest::multipart::Part::bytes(png(60)).file_name("i.png"),
                    )
                    .text("metadata", long_alt.clone()),
            ),
            Want::Validation,
            Body::ImageMetaField,
        ),
        (
            "uploadImage malformed metadata JSON",
            "upload_image",
            moov_req(
                reqwest::Method::POST,
                "/accounts/00000000-0000-4000-8000-00000000acc1/images",
            )
            .multipart(
                reqwest::multipart::Form::new()
                    .part(
                        "image",
                        reqwest::multipart::Part::bytes(png(61)).file_name("i.png"),
                    )
                    .text("metadata", "{"),
            ),
            Want::BadRequest,
            Body::Generic,
        ),
        (
            "updateImage metadata altText of 126 chars",
            "update_image",
            moov_req(
                reqwest::Method::PUT,
                &format!("/accounts/00000000-0000-4000-8000-00000000acc1/images/{png_id}"),
            )
            .multipart(
                reqwest::multipart::Form::new()
                    .part(
                        "image",
                        reqwest::multipart::Part::bytes(png(62)).file_name("i.png"),
                    )
                    .text("metadata", long_alt.clone()),
            ),
            Want::Validation,
            Body::ImageMetaField,
        ),
        (
            "updateImage not multipart",
            "update_image",
            moov_req(
                reqwest::Method::PUT,
                &format!("/accounts/00000000-0000-4000-8000-00000000acc1/images/{png_id}"),
            )
            .header("content-type", "application/json")
            .body("{}"),
            Want::BadRequest,
            Body::Generic,
        ),
        (
            "getPublicImage malformed size",
            "get_public_image",
            http.get(format!("{}/images/{pid}?size=big", sb.url())),
            Want::BadRequest,
            Body::Generic,
        ),
    ];
    for (name, op, req, want, body) in raw {
        check(name, &raw_typed(Api::Moov, op, req).await, want, body);
        n += 1;
    }
    // None of the refused requests changed anything.
    let m = ok(
        "get after errors",
        c.get_image_metadata(ACCT1, &png_id, None),
    )
    .await
    .into_inner();
    assert_eq!(m.alt_text.as_deref(), Some("described"));
    assert!(n >= 22);
}

// ---------------------------------------------------------------------------
// Attachments
// ---------------------------------------------------------------------------

fn token_of(file_url: &str) -> &str {
    file_url.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn attachments_every_operation_and_errors() {
    let sb = start().await;
    let a = att_client(&sb);
    let u1 = user("u1");
    let u2 = user("u2");

    // getSignedUrl.
    let s = ok(
        "getSignedUrl",
        a.get_signed_url(&fname("notes.pdf"), None, &u1),
    )
    .await
    .into_inner();
    assert_eq!(s.expires_in, 600);
    assert_eq!(s.file_limits.max_size, 10_485_760);
    assert!(s
        .file_limits
        .allowed_types
        .iter()
        .any(|t| t == "application/pdf"));
    assert!(s.file_url.starts_with(sb.url()), "{}", s.file_url);
    assert_eq!(token_of(&s.file_url).len(), 64, "unguessable token");

    // Before the bytes arrive, the file is not available.
    let e = err(a.get_file_status(&s.file_id, &u1)).await;
    check(
        "getFileStatus before upload",
        &e,
        Want::NotFound,
        Body::Att("attachment_document_does_not_exist"),
    );

    // uploadToSignedUrl through the generated method (token from the URL).
    let v = ok(
        "uploadToSignedUrl",
        a.upload_to_signed_url(
            token_of(&s.file_url),
            FilePart::from_bytes(pdf(), "notes.pdf"),
        ),
    )
    .await;
    assert!(v.headers().get("etag").is_some());

    // getFileStatus: processing, then ready after the clock moves.
    let st = ok("getFileStatus", a.get_file_status(&s.file_id, &u1))
        .await
        .into_inner();
    assert_eq!(st.file_id, s.file_id);
    assert_eq!(st.status, at::ProcessingState::Processing);
    assert_eq!(st.size, Some(i64::try_from(pdf().len()).unwrap()));

    // uploadToSignedUrl through upload_to_file_url (the URL as given).
    let s2 = ok(
        "getSignedUrl persist=false",
        a.get_signed_url(&fname("table.csv"), Some(false), &u1),
    )
    .await
    .into_inner();
    ok(
        "upload_to_file_url",
        a.upload_to_file_url(&s2.file_url, FilePart::from_bytes(csv(), "table.csv")),
    )
    .await;

    // EICAR: failed, reason infected.
    let s3 = ok(
        "getSignedUrl eicar",
        a.get_signed_url(&fname("virus.txt"), Some(true), &u1),
    )
    .await
    .into_inner();
    ok(
        "upload eicar",
        a.upload_to_file_url(
            &s3.file_url,
            FilePart::from_bytes(format!("hello\n{EICAR}\n").into_bytes(), "virus.txt"),
        ),
    )
    .await;

    advance(&sb, 31);
    for (id, want, reason) in [
        (&s.file_id, at::ProcessingState::Ready, None),
        (&s2.file_id, at::ProcessingState::Ready, None),
        (&s3.file_id, at::ProcessingState::Failed, Some("infected")),
    ] {
        let st = ok("getFileStatus after delay", a.get_file_status(id, &u1))
            .await
            .into_inner();
        assert_eq!(st.status, want, "{id}");
        assert_eq!(st.reason.as_deref(), reason, "{id}");
    }

    // Errors.
    let wrong_key = attachments::Client::builder(sb.url(), "ak_wrong")
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let blank = user(" ");
    let long_name = fname(&format!("{}.pdf", "n".repeat(252)));
    let fresh = |name: &str| {
        let a = &a;
        let name = fname(name);
        async move {
            a.get_signed_url(&name, None, &user("u1"))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let png_url = fresh("pic.png").await;
    let big_url = fresh("big.txt").await;
    let empty_url = fresh("empty.txt").await;
    let unknown = uuid::Uuid::new_v4();
    let a_pdf = fname("a.pdf");
    let cases = vec![
        case(
            "getSignedUrl wrong api-key",
            call(wrong_key.get_signed_url(&a_pdf, None, &u1)),
            Want::Unauthorized,
            Body::Att("unauthorized"),
        ),
        case(
            "getSignedUrl blank user-id",
            call(a.get_signed_url(&a_pdf, None, &blank)),
            Want::Validation,
            Body::Att("validation_error"),
        ),
        case(
            "getSignedUrl filename of 256 chars",
            call(a.get_signed_url(&long_name, None, &u1)),
            Want::Validation,
            Body::Att("validation_error"),
        ),
        case(
            "uploadToSignedUrl reused URL",
            call(a.upload_to_signed_url(token_of(&s.file_url), pdf())),
            Want::Conflict,
            Body::Att("conflict"),
        ),
        case(
            "upload_to_file_url reused URL",
            call(a.upload_to_file_url(&s2.file_url, FilePart::from_bytes(csv(), "t.csv"))),
            Want::Conflict,
            Body::Att("conflict"),
        ),
        case(
            "uploadToSignedUrl unknown token",
            call(a.upload_to_signed_url("deadbeef", pdf())),
            Want::NotFound,
            Body::Att("attachment_document_does_not_exist"),
        ),
        case(
            "uploadToSignedUrl type not allowed (PNG)",
            call(a.upload_to_signed_url(token_of(&png_url.file_url), png(1))),
            Want::Validation,
            Body::Att("attachment_type_not_allowed"),
        ),
        case(
            "uploadToSignedUrl over 10 MiB",
            call(a.upload_to_file_url(
                &big_url.file_url,
                FilePart::from_bytes(vec![b'a'; 10_485_761], "big.txt"),
            )),
            Want::Validation,
            Body::Att("attachment_file_too_large"),
        ),
        case(
            "uploadToSignedUrl empty",
            call(a.upload_to_signed_url(token_of(&empty_url.file_url), Vec::<u8>::new())),
            Want::Validation,
            Body::Att("attachment_file_empty"),
        ),
        case(
            "getFileStatus wrong api-key",
            call(wrong_key.get_file_status(&s.file_id, &u1)),
            Want::Unauthorized,
            Body::Att("unauthorized"),
        ),
        case(
            "getFileStatus blank user-id",
            call(a.get_file_status(&s.file_id, &blank)),
            Want::Validation,
            Body::Att("validation_error"),
        ),
        case(
            "getFileStatus another user's file",
            call(a.get_file_status(&s.file_id, &u2)),
            Want::NotFound,
            Body::Att("attachment_document_does_not_exist"),
        ),
        case(
            "getFileStatus unknown file",
            call(a.get_file_status(&unknown, &u1)),
            Want::NotFound,
            Body::Att("attachment_document_does_not_exist"),
        ),
    ];
    let mut n = run(cases).await;

    // A file_id that is not a UUID cannot be typed (the parameter is a Uuid).
    let e = raw_typed(
        Api::Attachments,
        "get_file_status",
        reqwest::Client::new()
            .get(format!("{}/v1/files/not-a-uuid/status", sb.url()))
            .header("api-key", &sb.credentials().attachments_api_key)
            .header("user-id", "u1"),
    )
    .await;
    check(
        "getFileStatus file_id not a UUID",
        &e,
        Want::Validation,
        Body::Att("validation_error"),
    );
    n += 1;

    // An expired upload URL is 403; a persist=false file is gone after 24 h.
    let late = fresh("late.pdf").await;
    advance(&sb, 601);
    let e = err(a.upload_to_signed_url(token_of(&late.file_url), pdf())).await;
    check(
        "uploadToSignedUrl expired URL",
        &e,
        Want::Forbidden,
        Body::Att("attachment_access_forbidden"),
    );
    advance(&sb, 24 * 3600);
    let e = err(a.get_file_status(&s2.file_id, &u1)).await;
    check(
        "getFileStatus persist=false after 24h",
        &e,
        Want::NotFound,
        Body::Att("attachment_document_does_not_exist"),
    );
    let kept = ok(
        "persisted file after 24h",
        a.get_file_status(&s.file_id, &u1),
    )
    .await
    .into_inner();
    assert_eq!(kept.status, at::ProcessingState::Ready);
    n += 2;
    assert!(n >= 16);
}

// ---------------------------------------------------------------------------
// Injected faults: 429 with Retry-After and each 5xx, on every operation
// ---------------------------------------------------------------------------

#[tokio::test]
async fn faults_on_every_operation() {
    let sb = start().await;
    let c = basic(&sb);
    let a = att_client(&sb);
    let u = user("u1");

    // Real ids first (faults off), so each faulted call would otherwise succeed.
    let file = ok(
        "upload",
        c.upload_file(ACCT1, None, file_req(csv(), "a.csv", "text/csv")),
    )
    .await
    .into_inner();
    let img = ok(
        "image",
        c.upload_image(ACCT1, None, image_req(png(1), None)),
    )
    .await
    .into_inner();
    let signed = ok("signed", a.get_signed_url(&fname("a.pdf"), None, &u))
        .await
        .into_inner();
    let token_req = mt::AuthTokenRequest {
        grant_type: mt::GrantType::ClientCredentials,
        client_id: None,
        client_secret: None,
        refresh_token: None,
        scope: Some("/accounts/00000000-0000-4000-8000-00000000acc1/files.read".into()),
    };

    let b_pdf = fname("b.pdf");
    let ops = |seed: u8| -> Vec<(&'static str, Api, Call<'_>)> {
        let mut v: Vec<(&'static str, Api, Call<'_>)> =
            account_ops(&c, ACCT1, &file.file_id, &img.image_id, seed)
                .into_iter()
                .map(|(n, f)| (n, Api::Moov, f))
                .collect();
        v.push((
            "createAccessToken",
            Api::Moov,
            call(c.create_access_token(None, &token_req)),
        ));
        v.push((
            "getPublicImage",
            Api::Moov,
            call(c.get_public_image(&img.public_id, None, None)),
        ));
        v.push((
            "getSignedUrl",
            Api::Attachments,
            call(a.get_signed_url(&b_pdf, None, &u)),
        ));
        v.push((
            "uploadToSignedUrl",
            Api::Attachments,
            call(a.upload_to_signed_url(token_of(&signed.file_url), pdf())),
        ));
        v.push((
            "getFileStatus",
            Api::Attachments,
            call(a.get_file_status(&signed.file_id, &u)),
        ));
        v
    };
    assert_eq!(ops(0).len(), 14, "every operation of both specs");

    let mut n = 0;
    // 429 with and without Retry-After.
    for retry_after in [Some(7), None] {
        sb.set_faults(FaultConfig {
            rate_limit_rate: 1.0,
            retry_after_secs: retry_after,
            ..FaultConfig::default()
        })
        .unwrap();
        let cases = ops(20)
            .into_iter()
            .map(|(op, api, fut)| {
                let body = if api == Api::Attachments {
                    Body::AttRateLimit
                } else {
                    Body::Any
                };
                case(
                    format!("{op}: 429 retry-after {retry_after:?}"),
                    fut,
                    Want::RateLimited(retry_after),
                    body,
                )
            })
            .collect();
        n += run(cases).await;
    }
    // Each 5xx status.
    for status in [500u16, 502, 503, 504] {
        sb.set_faults(FaultConfig {
            error_rate: 1.0,
            error_statuses: vec![status],
            ..FaultConfig::default()
        })
        .unwrap();
        let cases = ops(30)
            .into_iter()
            .map(|(op, api, fut)| {
                let body = match (api, status) {
                    (Api::Attachments, 500) => Body::Att("internal_server_error"),
                    (Api::Attachments, 503) => Body::Att("attachment_document_not_reachable"),
                    _ => Body::Any,
                };
                case(format!("{op}: {status}"), fut, Want::Server(status), body)
            })
            .collect();
        n += run(cases).await;
    }
    assert_eq!(n, 14 * 6);

    // Faults off: nothing was changed by the faulted calls.
    sb.set_faults(FaultConfig::default()).unwrap();
    assert_eq!(
        ok("files after faults", c.list_files(ACCT1, None))
            .await
            .into_inner()
            .len(),
        1
    );
    let still = ok(
        "image after faults",
        c.get_image_metadata(ACCT1, &img.image_id, None),
    )
    .await
    .into_inner();
    assert_eq!(still.disabled_on, None);
    ok(
        "signed URL still unused",
        a.upload_to_signed_url(token_of(&signed.file_url), pdf()),
    )
    .await;
    // The request log recorded the injected faults with their operation ids.
    let log = sb.request_log();
    let faulted: Vec<_> = log.iter().filter(|e| e.fault.is_some()).collect();
    assert_eq!(faulted.len(), 14 * 6);
    assert!(faulted.iter().all(|e| e.operation_id.is_some()));
}
