use reqwest::{Method, StatusCode};

use crate::common::*;

/// Every authenticated Moov operation (method, path).
const OPS: &[(&str, &str)] = &[
    (
        "POST",
        "/accounts/00000000-0000-4000-8000-0000000000a1/files",
    ),
    (
        "GET",
        "/accounts/00000000-0000-4000-8000-0000000000a1/files",
    ),
    (
        "GET",
        "/accounts/00000000-0000-4000-8000-0000000000a1/files/f1",
    ),
    (
        "GET",
        "/accounts/00000000-0000-4000-8000-0000000000a1/images",
    ),
    (
        "POST",
        "/accounts/00000000-0000-4000-8000-0000000000a1/images",
    ),
    (
        "GET",
        "/accounts/00000000-0000-4000-8000-0000000000a1/images/i1",
    ),
    (
        "PUT",
        "/accounts/00000000-0000-4000-8000-0000000000a1/images/i1",
    ),
    (
        "DELETE",
        "/accounts/00000000-0000-4000-8000-0000000000a1/images/i1",
    ),
    (
        "PUT",
        "/accounts/00000000-0000-4000-8000-0000000000a1/images/i1/metadata",
    ),
];

#[tokio::test]
async fn missing_or_wrong_credentials_are_401() {
    let env = start().await;
    for (m, p) in OPS {
        let m: Method = m.parse().unwrap();
        let r = env
            .http
            .request(m.clone(), env.url(p))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{m} {p}");
        has_request_id(&r);
        assert!(r.bytes().await.unwrap().is_empty());
        let r = env
            .http
            .request(m.clone(), env.url(p))
            .basic_auth(&env.sb.credentials().public_key, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{m} {p} wrong secret");
        let r = env
            .bearer(m.clone(), p, "not-a-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{m} {p} bad bearer");
    }
    // createAccessToken itself needs Basic credentials.
    let r = env
        .http
        .post(env.url("/oauth2/token"))
        .json(&serde_json::json!({"grant_type":"client_credentials","scope":"/accounts/00000000-0000-4000-8000-0000000000a1/files.read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// Moov's account IDs are UUIDs. The documents do not say what Moov answers to
/// one that is not; the sandbox answers 404 with no body (what the spec
/// documents on every account operation, and what a malformed version gets),
/// after the credentials: none or wrong are still 401, and a token whose scope
/// names the malformed ID gets 404 too, not 403. Nothing is stored.
#[tokio::test]
async fn account_ids_that_are_not_uuids_are_404() {
    let env = start().await;
    let a1 = "00000000-0000-4000-8000-0000000000a1";
    let bad_ids = [
        "acme",
        "acct-1",
        "a1",
        // a UUID without its hyphens, or with one missing digit
        "00000000000040008000000000000a1",
        "000000000000400080000000000000a1",
        "00000000-0000-4000-8000-0000000000a",
        "urn:uuid:00000000-0000-4000-8000-0000000000a1",
    ];
    for bad in bad_ids {
        let tok = env
            .token(&format!(
                "/accounts/{bad}/files.read /accounts/{bad}/images.read"
            ))
            .await;
        let at = tok["access_token"].as_str().unwrap();
        for (m, p) in OPS {
            let p = p.replace(a1, bad);
            let m: Method = m.parse().unwrap();
            let mut req = env.moov(m.clone(), &p);
            if m == Method::POST && p.ends_with("/files") {
                let form = reqwest::multipart::Form::new()
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(pdf()).file_name("a.pdf"),
                    )
                    .text("filePurpose", "business_verification");
                req = req.multipart(form);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{m} {p}");
            has_request_id(&r);
            assert!(r.bytes().await.unwrap().is_empty(), "{m} {p}: a body");
            // credentials are checked first
            let r = env
                .http
                .request(m.clone(), env.url(&p))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{m} {p} without credentials"
            );
            // a token "for" the malformed account does not make it one
            if m == Method::GET {
                let r = env.bearer(m.clone(), &p, at).send().await.unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::NOT_FOUND,
                    "{m} {p} with a bearer token"
                );
            }
        }
    }
    // the requests were answered, and nothing was stored for them
    let log = env.sb.request_log();
    let uploads: Vec<_> = log
        .iter()
        .filter(|e| e.operation_id.as_deref() == Some("uploadFile"))
        .collect();
    assert!(!uploads.is_empty());
    assert!(
        uploads.iter().all(|e| matches!(e.status, Some(401 | 404))),
        "{uploads:#?}"
    );
    // a UUID is an account (one without files, here)
    let r = env
        .moov(Method::GET, &format!("/accounts/{a1}/files"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await, serde_json::json!([]));
}

#[tokio::test]
async fn malformed_version_is_404() {
    let env = start().await;
    for v in ["2024.01.00", "v2024.02.00", "latest", "v24.01.00"] {
        for (m, p) in [
            (
                "GET",
                "/accounts/00000000-0000-4000-8000-0000000000a1/files",
            ),
            (
                "GET",
                "/accounts/00000000-0000-4000-8000-0000000000a1/images",
            ),
            ("POST", "/oauth2/token"),
        ] {
            let r = env
                .moov(m.parse().unwrap(), p)
                .header("x-moov-version", v)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{v} {m} {p}");
            has_request_id(&r);
        }
    }
    for v in ["v2024.01.00", "v2025.07.02", "v2099.10.99"] {
        let r = env
            .moov(
                Method::GET,
                "/accounts/00000000-0000-4000-8000-0000000000a1/files",
            )
            .header("x-moov-version", v)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{v}");
    }
}

#[tokio::test]
async fn bearer_scopes_are_enforced() {
    let env = start().await;
    let tok = env
        .token("/accounts/00000000-0000-4000-8000-0000000000a1/files.read /accounts/00000000-0000-4000-8000-0000000000a1/images.write")
        .await;
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 3600);
    assert_eq!(
        tok["scope"],
        "/accounts/00000000-0000-4000-8000-0000000000a1/files.read /accounts/00000000-0000-4000-8000-0000000000a1/images.write"
    );
    let at = tok["access_token"].as_str().unwrap();
    assert!(tok["refresh_token"].is_string());
    let cases: &[(&str, &str, StatusCode)] = &[
        (
            "GET",
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
            StatusCode::OK,
        ),
        (
            "GET",
            "/accounts/00000000-0000-4000-8000-0000000000a1/files/nope",
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
            StatusCode::FORBIDDEN,
        ),
        (
            "GET",
            "/accounts/00000000-0000-4000-8000-0000000000a2/files",
            StatusCode::FORBIDDEN,
        ),
        (
            "GET",
            "/accounts/00000000-0000-4000-8000-0000000000a1/images",
            StatusCode::FORBIDDEN,
        ),
        (
            "DELETE",
            "/accounts/00000000-0000-4000-8000-0000000000a1/images/nope",
            StatusCode::NOT_FOUND,
        ),
        (
            "DELETE",
            "/accounts/00000000-0000-4000-8000-0000000000a2/images/nope",
            StatusCode::FORBIDDEN,
        ),
    ];
    for (m, p, want) in cases {
        let r = env.bearer(m.parse().unwrap(), p, at).send().await.unwrap();
        assert_eq!(r.status(), *want, "{m} {p}");
        has_request_id(&r);
        if *want == StatusCode::FORBIDDEN {
            assert!(r.bytes().await.unwrap().is_empty());
        }
    }
    // Tokens expire on the sandbox clock.
    env.advance(3601);
    let r = env
        .bearer(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
            at,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_endpoint_errors_and_refresh() {
    let env = start().await;
    let c = env.sb.credentials().clone();
    // Form-encoded body, credentials in the body.
    let r = env
        .http
        .post(env.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.public_key.as_str()),
            ("client_secret", c.secret_key.as_str()),
            ("scope", "/accounts/00000000-0000-4000-8000-0000000000a1/files.write /accounts/00000000-0000-4000-8000-0000000000a1/files.read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let tok = json(r).await;

    let post = |body: serde_json::Value| env.moov(Method::POST, "/oauth2/token").json(&body).send();
    let r = post(serde_json::json!({"grant_type": "password"}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(json(r).await["error"].is_string());
    let r = env
        .moov(Method::POST, "/oauth2/token")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    for (body, field) in [
        (
            serde_json::json!({"grant_type": "client_credentials"}),
            "scope",
        ),
        (
            serde_json::json!({"grant_type": "client_credentials", "scope": "files.read"}),
            "scope",
        ),
        (
            serde_json::json!({"grant_type": "refresh_token"}),
            "refresh_token",
        ),
        (
            serde_json::json!({"grant_type": "refresh_token", "refresh_token": "nope"}),
            "refresh_token",
        ),
    ] {
        let r = post(body.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(json(r).await[field].is_string(), "{body}");
    }
    // Refresh: a new pair with the same scope; the old refresh token is spent.
    let rt = tok["refresh_token"].as_str().unwrap();
    let r = post(serde_json::json!({"grant_type": "refresh_token", "refresh_token": rt}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let new = json(r).await;
    assert_eq!(new["scope"], tok["scope"]);
    assert_ne!(new["access_token"], tok["access_token"]);
    let r = env
        .bearer(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
            new["access_token"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = post(serde_json::json!({"grant_type": "refresh_token", "refresh_token": rt}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Refreshing cannot widen the scope.
    let r = post(serde_json::json!({
        "grant_type": "refresh_token",
        "refresh_token": new["refresh_token"],
        "scope": "/accounts/00000000-0000-4000-8000-0000000000a9/files.read"
    }))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// What the tests above leave out: the wrong half of a key pair, the token
/// endpoint with a wrong secret, and a token used outside what it was granted:
/// another account (also ones whose ids differ from the granted one in a digit
/// or two), and operations of the granted account it has no scope for. No
/// refusal echoes the credential it was given.
#[tokio::test]
async fn wrong_keys_and_tokens_out_of_scope_are_refused() {
    let env = start().await;
    let c = env.sb.credentials().clone();
    for (user, pass, what) in [
        ("pk_not_ours", c.secret_key.as_str(), "unknown public key"),
        (c.secret_key.as_str(), c.public_key.as_str(), "keys swapped"),
        (c.public_key.as_str(), "", "empty secret"),
    ] {
        for (m, p) in OPS {
            let r = env
                .http
                .request(m.parse().unwrap(), env.url(p))
                .basic_auth(user, Some(pass))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}: {m} {p}");
            assert!(r.bytes().await.unwrap().is_empty(), "{what}: {m} {p}");
        }
    }
    // the token endpoint: a wrong secret, as Basic credentials and in the body
    let scope = "/accounts/00000000-0000-4000-8000-0000000000a1/files.read";
    let r = env
        .http
        .post(env.url("/oauth2/token"))
        .basic_auth(&c.public_key, Some("sk_wrong"))
        .json(&serde_json::json!({"grant_type": "client_credentials", "scope": scope}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = env
        .http
        .post(env.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.public_key.as_str()),
            ("client_secret", "sk_wrong"),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body = r.text().await.unwrap();
    assert!(!body.contains("sk_wrong"), "{body}");

    // a token that may only upload files of a1
    let tok = env
        .token("/accounts/00000000-0000-4000-8000-0000000000a1/files.write")
        .await;
    let at = tok["access_token"].as_str().unwrap();
    let file = || {
        reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(pdf()).file_name("a.pdf"),
            )
            .text("filePurpose", "business_verification")
    };
    let cases: &[(&str, &str)] = &[
        // writing does not grant reading
        (
            "GET",
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
        ),
        (
            "GET",
            "/accounts/00000000-0000-4000-8000-0000000000a1/files/f1",
        ),
        // files do not grant images
        (
            "GET",
            "/accounts/00000000-0000-4000-8000-0000000000a1/images",
        ),
        (
            "POST",
            "/accounts/00000000-0000-4000-8000-0000000000a1/images",
        ),
        (
            "PUT",
            "/accounts/00000000-0000-4000-8000-0000000000a1/images/i1",
        ),
        (
            "DELETE",
            "/accounts/00000000-0000-4000-8000-0000000000a1/images/i1",
        ),
        (
            "PUT",
            "/accounts/00000000-0000-4000-8000-0000000000a1/images/i1/metadata",
        ),
        // other accounts, also ones whose ids look like a1's
        (
            "POST",
            "/accounts/00000000-0000-4000-8000-0000000000a2/files",
        ),
        (
            "POST",
            "/accounts/00000000-0000-4000-8000-000000000a11/files",
        ),
        (
            "POST",
            "/accounts/00000000-0000-4000-8000-00000000000a/files",
        ),
        (
            "GET",
            "/accounts/00000000-0000-4000-8000-000000000a11/files",
        ),
    ];
    for (m, p) in cases {
        let mut req = env.bearer(m.parse().unwrap(), p, at);
        if *m == "POST" && p.ends_with("/files") {
            req = req.multipart(file());
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{m} {p}");
        has_request_id(&r);
        assert!(r.bytes().await.unwrap().is_empty(), "{m} {p}");
    }
    // ... while what it was granted works
    let r = env
        .bearer(
            Method::POST,
            "/accounts/00000000-0000-4000-8000-0000000000a1/files",
            at,
        )
        .multipart(file())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // nothing was stored for the refused uploads
    let listed = json(
        env.moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-0000000000a2/files",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(listed, serde_json::json!([]));
}
