//! The exact wire request of every operation of both specs, captured by a
//! loopback server and snapshotted (one snapshot per operation, named after
//! its operationId), plus the header rules the snapshots cannot show on their
//! own (secrets are redacted there, so their values are asserted here).

// Helpers outside #[test] fns unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    all_operations, expected_basic, render, success_reply, Captured, Clients, Reply, Server, Spec,
    ACCESS_TOKEN, ACCOUNT_ID, API_KEY, PUBLIC_KEY, SECRET_KEY, USER_ID,
};
use docsync_client::auth::files_scopes;
use docsync_client::{moov, FilePart, MoovCredentials, Secret, DEFAULT_MOOV_VERSION};

/// The snapshot text, after checking that no secret made it into it.
fn rendered(request: &Captured) -> String {
    let text = render(request);
    for secret in [
        SECRET_KEY,
        API_KEY,
        ACCESS_TOKEN,
        expected_basic().trim_start_matches("Basic "),
    ] {
        assert!(!text.contains(secret), "secret `{secret}` in:\n{text}");
    }
    text
}

fn assert_user_agent(request: &Captured) {
    let agent = request.header("user-agent").unwrap_or_default();
    assert!(agent.starts_with("docsync/"), "user-agent `{agent}`");
}

/// Moov: Basic auth and the default version on every authenticated call;
/// neither on the public image.
fn assert_moov_headers(operation: &str, request: &Captured) {
    if operation == "getPublicImage" {
        assert_eq!(request.header("authorization"), None, "{operation}");
        assert_eq!(request.header("x-moov-version"), None, "{operation}");
    } else {
        assert_eq!(
            request.header("authorization"),
            Some(expected_basic().as_str()),
            "{operation}"
        );
        assert_eq!(
            request.header_values("x-moov-version"),
            [DEFAULT_MOOV_VERSION],
            "{operation}"
        );
    }
    assert_eq!(request.header("api-key"), None, "{operation}");
}

/// Attachments: the api-key on API calls, never on the signed-URL PUT.
fn assert_attachments_headers(operation: &str, request: &Captured) {
    if operation == "uploadToSignedUrl" {
        assert_eq!(request.header("api-key"), None, "{operation}");
        assert_eq!(request.header("user-id"), None, "{operation}");
    } else {
        assert_eq!(request.header("api-key"), Some(API_KEY), "{operation}");
        assert_eq!(request.header("user-id"), Some(USER_ID), "{operation}");
    }
    assert_eq!(request.header("authorization"), None, "{operation}");
    assert_eq!(request.header("x-moov-version"), None, "{operation}");
}

#[tokio::test]
async fn every_operation_on_the_wire() {
    let operations = all_operations();
    assert!(operations.len() >= 14);
    for (spec, op) in operations {
        let reply = success_reply(&op.id);
        assert_eq!(
            reply.status,
            op.success_status(),
            "{}: the server must answer the documented success status",
            op.id
        );
        let server = Server::fixed(reply).await;
        let clients = Clients::new(&server);
        if let Err(e) = clients.call(&op.id).await {
            panic!("{}: {e:?}", op.id);
        }
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "{}: {requests:#?}", op.id);
        let request = &requests[0];
        assert_eq!(request.method.to_lowercase(), op.method, "{}", op.id);
        assert_user_agent(request);
        match spec {
            Spec::Moov => assert_moov_headers(&op.id, request),
            Spec::Attachments => assert_attachments_headers(&op.id, request),
        }
        insta::assert_snapshot!(op.id.clone(), rendered(request));
    }
}

#[tokio::test]
async fn upload_file_streamed_from_an_open_file() {
    let server = Server::fixed(success_reply("uploadFile")).await;
    let clients = Clients::new(&server);
    let body = moov::types::FileUploadRequestMultiPart {
        file: clients
            .file("statement.pdf", b"%PDF-1.4 bank statement\n")
            .await
            .with_content_type("application/pdf"),
        file_purpose: moov::types::FilePurpose::MerchantUnderwriting,
        metadata: None,
    };
    clients
        .moov
        .upload_file(ACCOUNT_ID, None, body)
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_moov_headers("uploadFile", &requests[0]);
    // Streamed from disk, yet sized: the form's length is known up front.
    assert!(requests[0].header("content-length").is_some());
    assert_eq!(requests[0].header("transfer-encoding"), None);
    insta::assert_snapshot!("uploadFile_from_open_file", rendered(&requests[0]));
}

/// A signed upload URL is a credential (its token, or its signature in the
/// query): a failed PUT to it says what failed without showing the URL.
#[tokio::test]
async fn a_failed_put_to_a_signed_url_does_not_show_the_url() {
    // a server that hangs up on every connection
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hang_up = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let server = Server::start(|_, _| success_reply("uploadToSignedUrl")).await;
    let clients = Clients::new(&server);
    let url = format!("http://{addr}/v1/uploads/tok-SECRET-123?X-Sig=SIG-SECRET-456");
    let error = clients
        .attachments
        .upload_to_file_url(&url, FilePart::from_bytes(&b"a,b\n"[..], "a.csv"))
        .await
        .unwrap_err();
    let error = docsync_client::ApiError::from_progenitor(error).await;
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(
            !shown.contains("SECRET") && !shown.contains("X-Sig"),
            "{shown}"
        );
    }
    assert!(error.is_retryable(), "a transport failure: {error}");
    hang_up.abort();
}

#[tokio::test]
async fn upload_to_file_url_puts_to_the_url_as_given_without_the_key() {
    // getSignedUrl hands out a URL with its own path and query (as object
    // storage would); the hand-written upload must PUT exactly there.
    let server = Server::start(|request, _| {
        if request.path == "/v1/files/signed-url" {
            let host = request.header("host").unwrap().to_string();
            let mut reply = success_reply("getSignedUrl");
            let mut body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
            body["file_url"] = format!("http://{host}/storage/tok-456?X-Sig=abc%2F1").into();
            reply.body = body.to_string().into_bytes();
            reply
        } else {
            success_reply("uploadToSignedUrl")
        }
    })
    .await;
    let clients = Clients::new(&server);
    let filename = "report.pdf".parse().unwrap();
    let user = USER_ID.parse().unwrap();
    let signed = clients
        .attachments
        .get_signed_url(&filename, None, &user)
        .await
        .unwrap()
        .into_inner();
    let contents = b"%PDF-1.4 fake pdf\n";
    let part = clients.file("report.pdf", contents).await;
    clients
        .attachments
        .upload_to_file_url(&signed.file_url, part)
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_attachments_headers("getSignedUrl", &requests[0]);
    let put = &requests[1];
    assert_attachments_headers("uploadToSignedUrl", put);
    assert_eq!(put.method, "PUT");
    assert_eq!(put.path, "/storage/tok-456");
    assert_eq!(put.query.as_deref(), Some("X-Sig=abc%2F1"));
    assert_eq!(put.body, contents);
    // Object stores want a Content-Length on a PUT, not a chunked body.
    assert_eq!(
        put.header("content-length"),
        Some(contents.len().to_string().as_str())
    );
    assert_eq!(put.header("transfer-encoding"), None);
    insta::assert_snapshot!("uploadToSignedUrl_via_file_url", rendered(put));
}

/// A server that hands out tokens and lists files, and an OAuth client of it.
async fn oauth_server(scopes: &[String]) -> (Server, moov::Client) {
    let server = Server::start(|request, _| {
        if request.path == "/oauth2/token" {
            success_reply("createAccessToken")
        } else {
            success_reply("listFiles")
        }
    })
    .await;
    let client = server.moov(MoovCredentials::OAuth {
        public_key: PUBLIC_KEY.into(),
        secret_key: Secret::new(SECRET_KEY),
        scopes: scopes.to_vec(),
    });
    (server, client)
}

#[tokio::test]
async fn oauth_fetches_a_token_with_basic_auth_then_sends_bearer() {
    let scopes = files_scopes(ACCOUNT_ID).to_vec();
    let (server, client) = oauth_server(&scopes).await;
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    client.list_files(ACCOUNT_ID, None).await.unwrap();

    let requests = server.requests();
    let summary: Vec<_> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    // One token for both calls (it is cached until shortly before expiry).
    assert_eq!(
        summary,
        [
            "POST /oauth2/token",
            "GET /accounts/00000000-0000-4000-8000-00000000acc1/files",
            "GET /accounts/00000000-0000-4000-8000-00000000acc1/files"
        ]
    );
    let token = &requests[0];
    assert_eq!(
        token.header("authorization"),
        Some(expected_basic().as_str())
    );
    assert_eq!(token.header("x-moov-version"), Some(DEFAULT_MOOV_VERSION));
    let body: serde_json::Value = serde_json::from_slice(&token.body).unwrap();
    assert_eq!(body["grant_type"], "client_credentials");
    assert_eq!(body["scope"], scopes.join(" "));
    assert_eq!(body.get("client_secret"), None, "secret only in the header");
    for call in &requests[1..] {
        let bearer = format!("Bearer {ACCESS_TOKEN}");
        assert_eq!(call.header("authorization"), Some(bearer.as_str()));
        assert_eq!(call.header("x-moov-version"), Some(DEFAULT_MOOV_VERSION));
    }
    insta::assert_snapshot!("oauth_createAccessToken", rendered(&requests[0]));
    insta::assert_snapshot!("oauth_listFiles", rendered(&requests[1]));
}

/// `ensure_scopes`: a scope the token lacks means one new token carrying it; a
/// scope it has already costs nothing.
#[tokio::test]
async fn ensure_scopes_fetches_one_new_token_only_for_new_scopes() {
    let scopes = files_scopes(ACCOUNT_ID).to_vec();
    let (server, client) = oauth_server(&scopes).await;
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    client.ensure_scopes(&scopes).await;
    client.list_files(ACCOUNT_ID, None).await.unwrap();
    let other = files_scopes("00000000-0000-4000-8000-000000000e1e").to_vec();
    client.ensure_scopes(&other).await;
    client
        .list_files("00000000-0000-4000-8000-000000000e1e", None)
        .await
        .unwrap();
    client.ensure_scopes(&other).await;
    client
        .list_files("00000000-0000-4000-8000-000000000e1e", None)
        .await
        .unwrap();

    let requests = server.requests();
    let tokens: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| r.path == "/oauth2/token")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(tokens.len(), 2, "{requests:#?}");
    assert_eq!(tokens[0]["scope"], scopes.join(" "));
    assert_eq!(tokens[1]["scope"], [scopes, other].concat().join(" "));
}

/// A token endpoint that fails answers for the call that needed the token: a 503
/// is retryable (with its Retry-After), a 401 says to check the credentials.
#[tokio::test]
async fn a_failed_token_request_keeps_its_status() {
    // requests: 0 token (503), 1 token (401), 2 token (ok), 3 listFiles
    let server = Server::start(|request, index| match (request.path.as_str(), index) {
        ("/oauth2/token", 0) => Reply::json(503, &serde_json::json!({"error": "try later"}))
            .header("retry-after", "7")
            .header("x-request-id", "rid-token-503"),
        ("/oauth2/token", 1) => Reply::json(401, &serde_json::json!({"error": "bad key"})),
        ("/oauth2/token", _) => success_reply("createAccessToken"),
        _ => success_reply("listFiles"),
    })
    .await;
    let client = server.moov(MoovCredentials::OAuth {
        public_key: PUBLIC_KEY.into(),
        secret_key: Secret::new(SECRET_KEY),
        scopes: files_scopes(ACCOUNT_ID).to_vec(),
    });
    let call = || async {
        match client.list_files(ACCOUNT_ID, None).await {
            Ok(_) => None,
            Err(e) => Some(docsync_client::ApiError::from_progenitor(e).await),
        }
    };

    let unavailable = call().await.expect("the token endpoint answered 503");
    assert!(unavailable.is_retryable(), "{unavailable:?}");
    assert_eq!(
        unavailable.retry_after(),
        Some(std::time::Duration::from_secs(7))
    );
    assert_eq!(unavailable.request_id(), Some("rid-token-503"));

    let refused = call().await.expect("the token endpoint answered 401");
    assert!(!refused.is_retryable(), "{refused:?}");
    assert!(
        refused
            .to_string()
            .starts_with("unauthorized: check the API credentials"),
        "{refused}"
    );
    assert!(!refused.to_string().contains(SECRET_KEY), "{refused}");

    assert!(call().await.is_none(), "a token, then the list");
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn bearer_credentials_are_sent_as_is() {
    let server = Server::fixed(success_reply("getFileDetails")).await;
    let client = server.moov(MoovCredentials::Bearer(Secret::new("given-token")));
    client
        .get_file_details(ACCOUNT_ID, "file-1", None)
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer given-token")
    );
    assert_eq!(
        requests[0].header("x-moov-version"),
        Some(DEFAULT_MOOV_VERSION)
    );
}

#[tokio::test]
async fn version_is_overridable_per_client_and_per_call() {
    let server = Server::fixed(success_reply("getFileDetails")).await;
    let client = moov::Client::builder(&server.url, MoovCredentials::basic(PUBLIC_KEY, SECRET_KEY))
        .version("v2025.01.00")
        .retry(docsync_client::RetryPolicy::none())
        .build()
        .unwrap();
    client
        .get_file_details(ACCOUNT_ID, "file-1", None)
        .await
        .unwrap();
    let per_call: moov::types::MoovVersion = "v2024.04.00".parse().unwrap();
    client
        .get_file_details(ACCOUNT_ID, "file-1", Some(&per_call))
        .await
        .unwrap();
    // The public image never carries one, whatever the client's version.
    client.get_public_image("pub-1", None, None).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].header_values("x-moov-version"), ["v2025.01.00"]);
    assert_eq!(requests[1].header_values("x-moov-version"), ["v2024.04.00"]);
    assert_eq!(
        requests[2].header_values("x-moov-version"),
        Vec::<&str>::new()
    );
    assert_eq!(requests[2].header("authorization"), None);
}

#[tokio::test]
async fn generated_signed_url_put_with_bytes_has_a_length() {
    // The same operation with an in-memory body: sized, no api-key.
    let server = Server::fixed(success_reply("uploadToSignedUrl")).await;
    let clients = Clients::new(&server);
    clients
        .attachments
        .upload_to_signed_url("tok-789", FilePart::from_bytes(&b"abc"[..], "a.txt"))
        .await
        .unwrap();
    let requests = server.requests();
    assert_eq!(requests[0].path, "/v1/uploads/tok-789");
    assert_eq!(requests[0].header("content-length"), Some("3"));
    assert_eq!(requests[0].body, b"abc");
    assert_attachments_headers("uploadToSignedUrl", &requests[0]);
}
