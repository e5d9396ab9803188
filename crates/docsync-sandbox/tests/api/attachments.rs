use reqwest::{Method, StatusCode};

use crate::common::*;

#[tokio::test]
async fn signed_url_upload_status() {
    let env = start().await;
    let s = env.signed_url("user-1", "report.csv", true).await;
    assert_eq!(s["expires_in"], 600);
    uuid::Uuid::parse_str(s["file_id"].as_str().unwrap()).unwrap();
    assert_eq!(s["file_limits"]["max_size"], 10_485_760);
    let types = s["file_limits"]["allowed_types"].as_array().unwrap();
    assert_eq!(types.len(), 5);
    assert!(types.iter().any(|t| t == "application/pdf"));
    let url = s["file_url"].as_str().unwrap();
    let token = url.strip_prefix(&env.url("/v1/uploads/")).unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));

    let r = env.http.put(url).body("a,b\n1,2\n").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    has_request_id(&r);

    let status = |user: &'static str| {
        env.attach(
            Method::GET,
            &format!("/v1/files/{}/status", s["file_id"].as_str().unwrap()),
            user,
        )
        .send()
    };
    let st = json(status("user-1").await.unwrap()).await;
    assert_eq!(st["status"], "processing");
    assert_eq!(st["file_id"], s["file_id"]);
    env.advance(31);
    let st = json(status("user-1").await.unwrap()).await;
    assert_eq!(st["status"], "ready");
    assert!(st.get("reason").is_none());
    assert_eq!(st["size"], 8);

    // Another user never sees it.
    let r = status("user-2").await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json(r).await["error_code"],
        "attachment_document_does_not_exist"
    );
}

#[tokio::test]
async fn eicar_fails_as_infected() {
    let env = start().await;
    let s = env.signed_url("user-1", "virus.txt", true).await;
    let body = format!("hello\n{EICAR}\n");
    let r = env
        .http
        .put(s["file_url"].as_str().unwrap())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    env.advance(31);
    let r = env
        .attach(
            Method::GET,
            &format!("/v1/files/{}/status", s["file_id"].as_str().unwrap()),
            "user-1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let st = json(r).await;
    assert_eq!(st["status"], "failed");
    assert_eq!(st["reason"], "infected");
}

#[tokio::test]
async fn auth_and_validation_errors() {
    let env = start().await;
    for (what, key) in [("missing", None), ("wrong", Some("nope"))] {
        for path in [
            "/v1/files/signed-url?filename=a.txt",
            "/v1/files/7f888113-d35a-4536-b9bc-c55076736ab6/status",
        ] {
            let mut req = env.http.get(env.url(path)).header("user-id", "u");
            if let Some(k) = key {
                req = req.header("api-key", k);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what} {path}");
            has_request_id(&r);
            let body = json(r).await;
            assert_eq!(body["error_code"], "unauthorized");
            assert!(body["detail"].is_string());
        }
    }
    let r = env
        .http
        .get(env.url("/v1/files/signed-url?filename=a.txt"))
        .header("api-key", &env.sb.credentials().attachments_api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for q in ["", "?filename=", "?filename=a.txt&persist=maybe"] {
        let r = env
            .attach(Method::GET, &format!("/v1/files/signed-url{q}"), "u")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        assert!(json(r).await["error_code"].is_string());
    }
    let r = env
        .attach(Method::GET, "/v1/files/not-a-uuid/status", "u")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = env
        .attach(
            Method::GET,
            "/v1/files/7f888113-d35a-4536-b9bc-c55076736ab6/status",
            "u",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Signed but never uploaded.
    let s = env.signed_url("u", "a.txt", true).await;
    let r = env
        .attach(
            Method::GET,
            &format!("/v1/files/{}/status", s["file_id"].as_str().unwrap()),
            "u",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn upload_url_rules() {
    let env = start().await;
    // Reused: 409.
    let s = env.signed_url("u", "a.pdf", true).await;
    let url = s["file_url"].as_str().unwrap();
    assert_eq!(
        env.http.put(url).body(pdf()).send().await.unwrap().status(),
        StatusCode::OK
    );
    let r = env.http.put(url).body(pdf()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(json(r).await["error_code"], "conflict");
    // Unknown token: 404.
    let r = env
        .http
        .put(env.url("/v1/uploads/deadbeef"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Content checks: 422.
    for (what, body, code) in [
        (
            "png not allowed",
            png(4, 4, 1),
            "attachment_type_not_allowed",
        ),
        (
            "binary not allowed",
            vec![0u8, 1, 2, 3],
            "attachment_type_not_allowed",
        ),
        ("empty", vec![], "attachment_file_empty"),
        (
            "oversize",
            vec![b'a'; docsync_sandbox::MAX_ATTACHMENT_BYTES as usize + 1],
            "attachment_file_too_large",
        ),
    ] {
        let s = env.signed_url("u", "x.txt", true).await;
        let r = env
            .http
            .put(s["file_url"].as_str().unwrap())
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        assert_eq!(json(r).await["error_code"], code, "{what}");
    }
    // Exactly the limit is fine.
    let s = env.signed_url("u", "max.txt", true).await;
    let r = env
        .http
        .put(s["file_url"].as_str().unwrap())
        .body(vec![b'a'; docsync_sandbox::MAX_ATTACHMENT_BYTES as usize])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Expired: 403.
    let s = env.signed_url("u", "late.txt", true).await;
    env.advance(601);
    let r = env
        .http
        .put(s["file_url"].as_str().unwrap())
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(r).await["error_code"], "attachment_access_forbidden");
}

#[tokio::test]
async fn non_persistent_files_go_after_24h() {
    let env = start().await;
    let keep = env.signed_url("u", "keep.txt", true).await;
    let gone = env.signed_url("u", "gone.txt", false).await;
    for s in [&keep, &gone] {
        let url = s["file_url"].as_str().unwrap();
        let body = format!("content of {url}");
        assert_eq!(
            env.http.put(url).body(body).send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    let status = |s: &serde_json::Value| {
        env.attach(
            Method::GET,
            &format!("/v1/files/{}/status", s["file_id"].as_str().unwrap()),
            "u",
        )
        .send()
    };
    env.advance(23 * 3600);
    assert_eq!(status(&gone).await.unwrap().status(), StatusCode::OK);
    let blobs_before = count_files(&env.sb.data_dir().join("blobs"));
    env.advance(3600 + 1);
    let r = status(&gone).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json(r).await["error_code"],
        "attachment_document_does_not_exist"
    );
    assert_eq!(
        count_files(&env.sb.data_dir().join("blobs")),
        blobs_before - 1
    );
    assert_eq!(json(status(&keep).await.unwrap()).await["status"], "ready");
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_dir(e.path()).unwrap().count())
        .sum()
}
