use std::time::{Duration, Instant};

use docsync_sandbox::{Credentials, FaultConfig, Sandbox, SandboxConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let env = start().await;
    for (m, p, want) in [
        ("GET", "/nope", StatusCode::NOT_FOUND),
        ("GET", "/v1/nope", StatusCode::NOT_FOUND),
        (
            "PATCH",
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "DELETE",
            "/v1/files/signed-url",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        ("POST", "/images/abc", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let r = env.moov(m.parse().unwrap(), p).send().await.unwrap();
        assert_eq!(r.status(), want, "{m} {p}");
        has_request_id(&r);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let body = json(r).await;
        assert!(
            body["error"].is_string() || body["error_code"].is_string(),
            "{body}"
        );
    }
}

async fn statuses(env: &Env, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = env
            .moov(
                Method::GET,
                "/accounts/00000000-0000-4000-8000-0000000000a1/files",
            )
            .send()
            .await
            .unwrap();
        has_request_id(&r);
        out.push(r.status().as_u16());
    }
    out
}

#[tokio::test]
async fn faults_are_deterministic_with_a_seed() {
    let env = start().await;
    let cfg = |seed| FaultConfig {
        seed,
        error_rate: 0.3,
        rate_limit_rate: 0.2,
        retry_after_secs: Some(7),
        ..FaultConfig::default()
    };
    env.sb.set_faults(cfg(42)).unwrap();
    let a = statuses(&env, 40).await;
    env.sb.set_faults(cfg(42)).unwrap();
    let b = statuses(&env, 40).await;
    assert_eq!(a, b);
    assert!(a.contains(&200) && a.contains(&429), "{a:?}");
    assert!(a.iter().any(|s| [500, 502, 503, 504].contains(s)), "{a:?}");
    env.sb.set_faults(cfg(43)).unwrap();
    assert_ne!(statuses(&env, 40).await, a);

    // 429 carries Retry-After; faults show in the request log.
    env.sb
        .set_faults(FaultConfig {
            rate_limit_rate: 1.0,
            retry_after_secs: Some(7),
            ..FaultConfig::default()
        })
        .unwrap();
    let r = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "7");
    let r = env
        .attach(Method::GET, "/v1/files/signed-url?filename=a", "u")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(json(r).await["message"].is_string());
    let last = env.sb.request_log().pop().unwrap();
    assert_eq!(last.fault.as_deref(), Some("429"));

    // Admin endpoint: set over HTTP, invalid settings refused, and off again.
    let r = env
        .http
        .post(env.url("/_sandbox/faults"))
        .json(&serde_json::json!({"error_rate": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = env
        .http
        .post(env.url("/_sandbox/faults"))
        .json(&serde_json::json!({"seed": 42, "error_rate": 0.3, "rate_limit_rate": 0.2, "retry_after_secs": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(statuses(&env, 40).await, a);
    env.http
        .post(env.url("/_sandbox/faults"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(statuses(&env, 10).await.iter().all(|s| *s == 200));
}

#[tokio::test]
async fn reset_latency_and_stall() {
    let env = start().await;
    env.sb
        .set_faults(FaultConfig {
            reset_rate: 1.0,
            ..FaultConfig::default()
        })
        .unwrap();
    let err = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
        )
        .send()
        .await
        .expect_err("connection dropped");
    assert!(!err.is_status());
    assert_eq!(env.sb.request_log().pop().unwrap().status, None);

    env.sb
        .set_faults(FaultConfig {
            latency_ms: 200,
            ..FaultConfig::default()
        })
        .unwrap();
    let t = Instant::now();
    let r = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(200));

    env.sb
        .set_faults(FaultConfig {
            stall_rate: 1.0,
            stall_ms: 300,
            ..FaultConfig::default()
        })
        .unwrap();
    let t = Instant::now();
    let r = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // A client with a short timeout sees the stall as a timeout.
    env.sb
        .set_faults(FaultConfig {
            stall_rate: 1.0,
            stall_ms: 60_000,
            ..FaultConfig::default()
        })
        .unwrap();
    let err = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
        )
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .expect_err("stalled");
    assert!(err.is_timeout());
    // Shutdown does not wait for the stall.
    let t = Instant::now();
    env.sb.shutdown().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn request_log_records_operations() {
    let env = start().await;
    env.sb.clear_request_log();
    let r1 = env
        .upload_file(
            "00000000-0000-4000-8000-0000000000a1",
            "x.csv",
            b"x".to_vec(),
        )
        .await;
    let r2 = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files/zzz",
        )
        .send()
        .await
        .unwrap();
    let r3 = env.http.get(env.url("/images/zzz")).send().await.unwrap();
    let ids: Vec<String> = [&r1, &r2, &r3]
        .iter()
        .map(|r| r.headers()["x-request-id"].to_str().unwrap().to_owned())
        .collect();
    let log = env.sb.request_log();
    let got: Vec<(Option<&str>, Option<u16>, &str)> = log
        .iter()
        .map(|e| (e.operation_id.as_deref(), e.status, e.request_id.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("uploadFile"), Some(200), ids[0].as_str()),
            (Some("getFileDetails"), Some(404), ids[1].as_str()),
            (Some("getPublicImage"), Some(404), ids[2].as_str()),
        ]
    );
    assert_eq!(log[0].method, "POST");
    assert_eq!(
        log[0].path,
        "/accounts/00000000-0000-4000-8000-0000000000a1/files"
    );
    // Over HTTP too.
    let v: Vec<Value> = env
        .http
        .get(env.url("/_sandbox/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["operation_id"], "uploadFile");
}

#[tokio::test]
async fn restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let creds = Credentials::random();
    let cfg = || SandboxConfig {
        data_dir: Some(dir.path().to_path_buf()),
        credentials: Some(creds.clone()),
        ..config()
    };
    let env = start_with(cfg()).await;
    let f = json(
        env.upload_file("00000000-0000-4000-8000-0000000000a1", "keep.pdf", pdf())
            .await,
    )
    .await;
    let i = json(
        env.upload_image(
            "00000000-0000-4000-8000-0000000000a1",
            png(10, 10, 1),
            Some("kept"),
        )
        .await,
    )
    .await;
    let t = env
        .token("/accounts/00000000-0000-4000-8000-0000000000a1/files.read")
        .await;
    let s = env.signed_url("u", "keep.txt", true).await;
    assert_eq!(
        env.http
            .put(s["file_url"].as_str().unwrap())
            .body("hello")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    env.sb.shutdown().await.unwrap();

    let env = start_with(cfg()).await;
    let list: Vec<Value> = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["fileID"], f["fileID"]);
    let img = json(
        env.moov(
            Method::GET,
            &format!(
                "/accounts/00000000-0000-4000-8000-0000000000a1/images/{}",
                i["imageID"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(img["altText"], "kept");
    let public = env
        .http
        .get(env.url(&format!("/images/{}", i["publicID"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::OK);
    let r = env
        .bearer(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
            t["access_token"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    env.advance(60);
    let st = json(
        env.attach(
            Method::GET,
            &format!("/v1/files/{}/status", s["file_id"].as_str().unwrap()),
            "u",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(st["status"], "ready");
    env.sb.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads() {
    let env = start().await;
    let env = std::sync::Arc::new(env);
    let mut tasks = Vec::new();
    for n in 0..200u32 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            let account = format!("00000000-0000-4000-8000-00000000acc{}", n % 5);
            let r = env
                .upload_file(
                    &account,
                    &format!("f{n}.csv"),
                    format!("n,{n}\n").into_bytes(),
                )
                .await;
            r.status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let list: Vec<Value> = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-00000000acc0/files",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 40);
}

#[tokio::test]
async fn sandbox_stops_on_shutdown() {
    let sb = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let url = sb.url().to_owned();
    assert!(sb.data_dir().exists());
    sb.shutdown().await.unwrap();
    let err = reqwest::get(format!("{url}/nope"))
        .await
        .expect_err("stopped");
    assert!(err.is_connect());
}

#[tokio::test]
async fn admin_clock_and_sweep() {
    let env = start().await;
    let before: Value = env
        .http
        .get(env.url("/_sandbox/clock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after: Value = env
        .http
        .post(env.url("/_sandbox/clock"))
        .json(&serde_json::json!({"advance_secs": 86400}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t0 = chrono::DateTime::parse_from_rfc3339(before["now"].as_str().unwrap()).unwrap();
    let t1 = chrono::DateTime::parse_from_rfc3339(after["now"].as_str().unwrap()).unwrap();
    assert!(t1 - t0 >= chrono::Duration::hours(24));
    let r = env
        .http
        .post(env.url("/_sandbox/clock"))
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let s = env.signed_url("u", "tmp.txt", false).await;
    env.http
        .put(s["file_url"].as_str().unwrap())
        .body("temporary")
        .send()
        .await
        .unwrap();
    env.advance(86401);
    let swept: Value = env
        .http
        .post(env.url("/_sandbox/sweep"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(swept["removed_blobs"], 1);
}
