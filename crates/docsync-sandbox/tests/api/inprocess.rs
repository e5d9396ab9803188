use std::io::BufRead;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use docsync_sandbox::{AppState, Sandbox, SandboxConfig};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::common::*;

/// The router can be driven in-process without a socket.
#[tokio::test]
async fn router_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::open(&config(), dir.path(), "http://sandbox.test".into()).unwrap();
    let c = state.credentials().clone();
    let app = Sandbox::router(state.clone());
    let req = Request::get("/accounts/00000000-0000-4000-8000-0000000000a1/images")
        .header(
            "authorization",
            format!(
                "Basic {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    format!("{}:{}", c.public_key, c.secret_key)
                )
            ),
        )
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(
        state.request_log()[0].operation_id.as_deref(),
        Some("listImageMetadata")
    );
}

/// `Sandbox::run` serves a listener until cancelled.
#[tokio::test]
async fn run_until_cancelled() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(Sandbox::run(
        SandboxConfig::default(),
        listener,
        stop.clone(),
    ));
    let r = reqwest::get(format!("http://{addr}/images/nope"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// The binary prints its URL and credentials and serves them.
#[tokio::test]
async fn binary_prints_url_and_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_docsync-sandbox"))
        .args(["--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .args([
            "--public-key",
            "pk_test",
            "--secret-key",
            "sk_test",
            "--api-key",
            "ak_test",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .take(5)
            .map(Result::unwrap)
            .collect()
    })
    .await
    .unwrap();
    let url = lines[0].rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("sk_test")));
    let r = reqwest::Client::new()
        .get(format!(
            "{url}/accounts/00000000-0000-4000-8000-0000000000a1/files"
        ))
        .basic_auth("pk_test", Some("sk_test"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(dir.path().join("sandbox.sqlite3").exists());
}
