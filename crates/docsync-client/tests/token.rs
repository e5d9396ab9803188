//! OAuth token lifetime and revocation, against a loopback server that hands
//! out numbered tokens (`tok-1`, `tok-2`, ...) and decides per token whether
//! the API accepts it.
//!
//! Nothing here waits: an expiry in the past or far in the future is what the
//! server answers, so the outcome never depends on how fast the test runs.

// Helpers outside #[test] fns unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{success_reply, Captured, Reply, Server, ACCOUNT_ID, PUBLIC_KEY, SECRET_KEY};
use docsync_client::auth::files_scopes;
use docsync_client::moov::types as mt;
use docsync_client::{moov, ApiError, FilePart, MoovCredentials, Secret};
use serde_json::json;

fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// A token answer for `tok-<n>` with this `expires_in`.
fn token_reply(n: usize, expires_in: i64) -> Reply {
    Reply::json(
        200,
        &json!({
            "access_token": format!("tok-{n}"),
            "expires_in": expires_in,
            "refresh_token": format!("refresh-{n}"),
            "scope": files_scopes(ACCOUNT_ID).join(" "),
            "token_type": "Bearer"
        }),
    )
}

/// A server whose token endpoint numbers its tokens and answers `expires_in(now)`
/// for each (`now`: the Unix time at the answer); every other request is
/// answered by `api(bearer token, request)`.
async fn token_server(
    expires_in: impl Fn(i64) -> i64 + Send + Sync + 'static,
    api: impl Fn(Option<&str>, &Captured) -> Reply + Send + Sync + 'static,
) -> (Server, moov::Client) {
    let issued = Arc::new(AtomicUsize::new(0));
    let server = Server::start(move |request, _| {
        if request.path == "/oauth2/token" {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            token_reply(n, expires_in(unix_now()))
        } else {
            let bearer = request
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "));
            api(bearer, request)
        }
    })
    .await;
    let client = server.moov(MoovCredentials::OAuth {
        public_key: PUBLIC_KEY.into(),
        secret_key: Secret::new(SECRET_KEY),
        scopes: files_scopes(ACCOUNT_ID).to_vec(),
    });
    (server, client)
}

/// Each request as `METHOD /path [Bearer token]`.
fn summary(server: &Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| {
            let auth = match r.header("authorization") {
                Some(v) if v.starts_with("Bearer ") => format!(" [{v}]"),
                Some(_) => " [basic]".to_string(),
                None => String::new(),
            };
            format!("{} {}{auth}", r.method, r.path)
        })
        .collect()
}

const TOKEN: &str = "POST /oauth2/token [basic]";
const LIST_1: &str = "GET /accounts/00000000-0000-4000-8000-00000000acc1/files [Bearer tok-1]";
const LIST_2: &str = "GET /accounts/00000000-0000-4000-8000-00000000acc1/files [Bearer tok-2]";
const UPLOAD_1: &str = "POST /accounts/00000000-0000-4000-8000-00000000acc1/files [Bearer tok-1]";

// ---------------------------------------------------------------------------
// expires_in as a Unix time (Moov's spec) or as seconds (OAuth 2.0)
// ---------------------------------------------------------------------------

/// Moov's spec describes `expires_in` as the Unix time of expiry. One already
/// past means the token is expired: it serves the call it was fetched for,
/// and the next call fetches a new one.
#[tokio::test]
async fn a_unix_time_expiry_in_the_past_is_refreshed_on_the_next_call() {
    let (server, client) = token_server(|now| now - 60, |_, _| success_reply("listFiles")).await;
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    assert_eq!(summary(&server), [TOKEN, LIST_1, TOKEN, LIST_2]);
}

/// A Unix time an hour away is an hour of life: the token is reused.
#[tokio::test]
async fn a_unix_time_expiry_in_the_near_future_is_reused() {
    let (server, client) = token_server(|now| now + 3600, |_, _| success_reply("listFiles")).await;
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    assert_eq!(summary(&server), [TOKEN, LIST_1, LIST_1]);
}

/// OAuth 2.0's reading still holds for small values: 3600 is an hour from now.
#[tokio::test]
async fn expires_in_as_seconds_is_still_understood() {
    let (server, client) = token_server(|_| 3600, |_, _| success_reply("listFiles")).await;
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    assert_eq!(summary(&server), [TOKEN, LIST_1, LIST_1]);

    // 0 seconds: expired as soon as it is issued.
    let (server, client) = token_server(|_| 0, |_, _| success_reply("listFiles")).await;
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    assert_eq!(summary(&server), [TOKEN, LIST_1, TOKEN, LIST_2]);
}

// ---------------------------------------------------------------------------
// 401 on a request made with a cached token
// ---------------------------------------------------------------------------

/// The server revoked `tok-1` (it answers 401 to it) although the client
/// believes it fresh: the client drops it, fetches `tok-2` and sends the same
/// request once more, which succeeds. Later calls keep `tok-2`.
#[tokio::test]
async fn a_revoked_token_is_replaced_and_the_call_retried_once() {
    let (server, client) = token_server(
        |now| now + 3600,
        |bearer, _| match bearer {
            Some("tok-1") => Reply::empty(401),
            _ => success_reply("listFiles"),
        },
    )
    .await;
    let files = client.list_files(ACCOUNT_ID, None).await.unwrap();
    assert_eq!(files.status(), 200);
    assert_eq!(summary(&server), [TOKEN, LIST_1, TOKEN, LIST_2]);

    client.list_files(ACCOUNT_ID, None).await.unwrap();
    assert_eq!(summary(&server), [TOKEN, LIST_1, TOKEN, LIST_2, LIST_2]);
}

/// A request that is refused again with the new token is not sent a third
/// time: the second 401 is the caller's answer.
#[tokio::test]
async fn a_second_401_is_returned_without_another_retry() {
    let (server, client) = token_server(|now| now + 3600, |_, _| Reply::empty(401)).await;
    let err = client.list_files(ACCOUNT_ID, None).await.unwrap_err();
    let err = ApiError::from_progenitor(err).await;
    assert_eq!(err.status(), Some(401), "{err:?}");
    assert_eq!(summary(&server), [TOKEN, LIST_1, TOKEN, LIST_2]);
}

/// When the new token cannot be fetched after a 401, the call fails as it
/// would had `pre` fetched the token: with the token endpoint's answer (a 503
/// stays retryable). The refused token is gone, so the next call fetches again.
#[tokio::test]
async fn a_failed_refresh_after_a_401_keeps_the_token_endpoint_status() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let server = Server::start(move |request, _| {
        if request.path == "/oauth2/token" {
            match tokens.fetch_add(1, Ordering::SeqCst) + 1 {
                2 => Reply::empty(503).header("retry-after", "3"),
                n => token_reply(n, 3600),
            }
        } else if request.header("authorization") == Some("Bearer tok-1") {
            Reply::empty(401)
        } else {
            success_reply("listFiles")
        }
    })
    .await;
    let client = server.moov(MoovCredentials::OAuth {
        public_key: PUBLIC_KEY.into(),
        secret_key: Secret::new(SECRET_KEY),
        scopes: files_scopes(ACCOUNT_ID).to_vec(),
    });
    let err = client.list_files(ACCOUNT_ID, None).await.unwrap_err();
    let err = ApiError::from_progenitor(err).await;
    assert_eq!(err.status(), Some(503), "{err:?}");
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(summary(&server), [TOKEN, LIST_1, TOKEN]);

    client.list_files(ACCOUNT_ID, None).await.unwrap();
    assert_eq!(
        summary(&server),
        [
            TOKEN,
            LIST_1,
            TOKEN,
            TOKEN,
            "GET /accounts/00000000-0000-4000-8000-00000000acc1/files [Bearer tok-3]"
        ]
    );
}

/// A multipart upload's body is a stream that reqwest cannot clone, so it is
/// not sent again after a 401; but the refused token is dropped, so the next
/// call (the caller's own retry, say) gets a new one.
#[tokio::test]
async fn a_401_on_an_unreplayable_upload_drops_the_token_without_resending() {
    let (server, client) = token_server(
        |now| now + 3600,
        |bearer, request| match (bearer, request.method.as_str()) {
            (Some("tok-1"), _) => Reply::empty(401),
            (_, "POST") => success_reply("uploadFile"),
            _ => success_reply("listFiles"),
        },
    )
    .await;
    let upload = mt::FileUploadRequestMultiPart {
        file: FilePart::from_bytes(b"name,amount\nalice,10\n".to_vec(), "a.csv")
            .with_content_type("text/csv"),
        file_purpose: mt::FilePurpose::BusinessVerification,
        metadata: None,
    };
    let err = client
        .upload_file(ACCOUNT_ID, None, upload)
        .await
        .unwrap_err();
    let err = ApiError::from_progenitor(err).await;
    assert_eq!(err.status(), Some(401), "{err:?}");
    assert_eq!(summary(&server), [TOKEN, UPLOAD_1]);

    client.list_files(ACCOUNT_ID, None).await.unwrap();
    assert_eq!(summary(&server), [TOKEN, UPLOAD_1, TOKEN, LIST_2]);
}

/// The token request itself is never retried on 401: it carries the key
/// pair, and a new token cannot fix that.
#[tokio::test]
async fn a_401_from_the_token_endpoint_is_not_retried() {
    let server = Server::fixed(Reply::empty(401)).await;
    let client = server.moov(MoovCredentials::OAuth {
        public_key: PUBLIC_KEY.into(),
        secret_key: Secret::new(SECRET_KEY),
        scopes: files_scopes(ACCOUNT_ID).to_vec(),
    });
    let body = mt::AuthTokenRequest {
        grant_type: mt::GrantType::ClientCredentials,
        client_id: Some(PUBLIC_KEY.to_string()),
        client_secret: None,
        scope: Some(files_scopes(ACCOUNT_ID).join(" ")),
        refresh_token: None,
    };
    client.create_access_token(None, &body).await.unwrap_err();
    assert_eq!(summary(&server), [TOKEN]);

    client.list_files(ACCOUNT_ID, None).await.unwrap_err();
    assert_eq!(summary(&server), [TOKEN, TOKEN]);
}

/// With a bearer token given by the caller there is nothing to refresh: a 401
/// is returned as is.
#[tokio::test]
async fn a_401_with_a_given_bearer_token_is_not_retried() {
    let server = Server::fixed(Reply::empty(401)).await;
    let client = server.moov(MoovCredentials::Bearer(Secret::new("tok-given")));
    client.list_files(ACCOUNT_ID, None).await.unwrap_err();
    assert_eq!(
        summary(&server),
        ["GET /accounts/00000000-0000-4000-8000-00000000acc1/files [Bearer tok-given]"]
    );
}
