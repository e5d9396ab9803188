//! Retries against a loopback server: what is retried, how often, and how
//! long the client waits. Timing assertions are lower bounds only (taken
//! from the server's receive times), so a slow machine cannot fail them.

// Helpers outside #[test] fns unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{success_reply, Reply, Server, ACCOUNT_ID, PUBLIC_KEY, SECRET_KEY};
use docsync_client::{moov, ApiError, FilePart, MoovCredentials, RetryPolicy};

fn fast(max_retries: usize) -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(10),
        jitter: false,
        max_retries,
        ..RetryPolicy::default()
    }
}

fn client(server: &Server, retry: RetryPolicy) -> moov::Client {
    moov::Client::builder(&server.url, MoovCredentials::basic(PUBLIC_KEY, SECRET_KEY))
        .retry(retry)
        .build()
        .unwrap()
}

fn status(code: u16) -> Reply {
    Reply::empty(code).header("x-request-id", &format!("rid-{code}"))
}

/// Runs `list_files` with the client's policy, recording each retry's delay.
async fn list_files_with_retries(
    client: &moov::Client,
) -> (Result<usize, ApiError>, Vec<Duration>) {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&delays);
    let result = client
        .retry_policy()
        .run_with(
            || client.list_files(ACCOUNT_ID, None),
            move |_, delay| seen.lock().unwrap().push(delay),
        )
        .await
        .map(|files| files.into_inner().len());
    let delays = delays.lock().unwrap().clone();
    (result, delays)
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = Server::script(vec![status(503), status(503), success_reply("listFiles")]).await;
    let client = client(&server, fast(5));
    let (result, delays) = list_files_with_retries(&client).await;
    assert_eq!(result.unwrap(), 1);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(delays.len(), 2, "{delays:?}");
    assert_eq!(
        delays[0],
        Duration::from_millis(10),
        "no jitter: exactly the initial delay"
    );
    assert!(delays[1] >= delays[0], "backoff grows: {delays:?}");
    for (pair, delay) in requests.windows(2).zip(&delays) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= *delay,
            "gap {gap:?} shorter than the delay {delay:?}"
        );
    }
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    for code in [400, 401, 403, 404, 409, 422] {
        let server = Server::fixed(status(code)).await;
        let client = client(&server, fast(5));
        let (result, delays) = list_files_with_retries(&client).await;
        let error = result.unwrap_err();
        assert_eq!(error.status(), Some(code), "{error:?}");
        assert_eq!(error.request_id(), Some(format!("rid-{code}").as_str()));
        assert_eq!(server.requests().len(), 1, "{code} was retried");
        assert!(delays.is_empty(), "{code}: {delays:?}");
    }
}

#[tokio::test]
async fn retry_after_makes_the_next_attempt_wait() {
    let server = Server::script(vec![
        status(429).header("retry-after", "1"),
        success_reply("listFiles"),
    ])
    .await;
    let client = client(&server, fast(5));
    let (result, delays) = list_files_with_retries(&client).await;
    assert_eq!(result.unwrap(), 1);
    assert_eq!(
        delays,
        [Duration::from_secs(1)],
        "Retry-After beats the 10 ms backoff"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at.duration_since(requests[0].at);
    assert!(gap >= Duration::from_secs(1), "retried after only {gap:?}");
}

#[tokio::test]
async fn retries_stop_after_max_retries() {
    let server = Server::fixed(status(503)).await;
    let client = client(&server, fast(2));
    let (result, delays) = list_files_with_retries(&client).await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, ApiError::Server { status: 503, .. }),
        "{error:?}"
    );
    assert_eq!(error.request_id(), Some("rid-503"));
    assert_eq!(server.requests().len(), 3, "1 attempt + 2 retries");
    assert_eq!(delays.len(), 2);
}

#[tokio::test]
async fn the_policy_can_be_set_per_call() {
    let server = Server::script(vec![status(500), success_reply("listFiles")]).await;
    // The client's own policy does not retry ...
    let client = client(&server, RetryPolicy::none());
    let error = client
        .retry_policy()
        .run(|| client.list_files(ACCOUNT_ID, None))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ApiError::Server { status: 500, .. }),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
    // ... this call does (the server answers 200 from now on).
    let server = Server::script(vec![status(500), success_reply("listFiles")]).await;
    let client = moov::Client::builder(&server.url, MoovCredentials::basic(PUBLIC_KEY, SECRET_KEY))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let files = fast(1)
        .run(|| client.list_files(ACCOUNT_ID, None))
        .await
        .unwrap();
    assert_eq!(files.status(), 200);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn multipart_bodies_are_rebuilt_for_each_attempt() {
    let server = Server::script(vec![status(504), success_reply("uploadFile")]).await;
    let client = client(&server, fast(3));
    let contents = b"id,name\n1,Ada\n";
    let uploaded = client
        .retry_policy()
        .run(|| {
            let body = moov::types::FileUploadRequestMultiPart {
                file: FilePart::from_bytes(&contents[..], "people.csv"),
                file_purpose: moov::types::FilePurpose::IdentityVerification,
                metadata: None,
            };
            client.upload_file(ACCOUNT_ID, None, body)
        })
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        let body = String::from_utf8_lossy(&request.body);
        assert!(body.contains("id,name\n1,Ada\n"), "{body}");
        assert!(body.contains("identity_verification"), "{body}");
    }
}
