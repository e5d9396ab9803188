use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn upload_list_get_each_type() {
    let env = start().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("data.csv", b"a,b\n1,2\n".to_vec()),
        ("logo.png", png(4, 4, 1)),
        ("photo.jpg", jpeg(4, 4, 1)),
        ("doc.pdf", pdf()),
        // The type is decided by content, not by the extension.
        ("really-a-png.csv", png(4, 4, 2)),
    ];
    let mut ids = Vec::new();
    for (name, bytes) in &cases {
        let r = env
            .upload_file("00000000-0000-4000-8000-00000000acc1", name, bytes.clone())
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        has_request_id(&r);
        let body = json(r).await;
        assert_eq!(body["fileName"], *name);
        assert_eq!(body["accountID"], "00000000-0000-4000-8000-00000000acc1");
        assert_eq!(body["filePurpose"], "business_verification");
        assert_eq!(body["fileStatus"], "pending");
        assert_eq!(body["fileSizeBytes"], bytes.len() as u64);
        assert_eq!(body["metadata"], r#"{"comment":"test"}"#);
        assert!(body.get("decisionReason").is_none());
        for k in ["createdOn", "updatedOn"] {
            chrono::DateTime::parse_from_rfc3339(body[k].as_str().unwrap()).unwrap();
        }
        ids.push(body["fileID"].as_str().unwrap().to_owned());
    }
    let r = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-00000000acc1/files",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let list: Vec<Value> = r.json().await.unwrap();
    let listed: Vec<&str> = list.iter().map(|f| f["fileID"].as_str().unwrap()).collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());

    let r = env
        .moov(
            Method::GET,
            &format!(
                "/accounts/00000000-0000-4000-8000-00000000acc1/files/{}",
                ids[0]
            ),
        )
        .header("x-moov-version", "v2024.01.00")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["fileID"], ids[0].as_str());

    let r = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-00000000acc1/files/does-not-exist",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    has_request_id(&r);
    assert!(r.bytes().await.unwrap().is_empty());
}

/// Each validation failure is a 422 FileValidationError naming the field.
#[tokio::test]
async fn validation_errors_name_the_field() {
    let env = start().await;
    let long_name = format!("{}.csv", "n".repeat(61));
    type Build = Box<dyn Fn() -> Form>;
    let file = |name: &str, bytes: Vec<u8>| Part::bytes(bytes).file_name(name.to_owned());
    let cases: Vec<(&str, Build, &str)> = vec![
        (
            "missing file",
            Box::new(|| Form::new().text("filePurpose", "business_verification")),
            "file",
        ),
        (
            "empty file",
            Box::new(move || {
                Form::new()
                    .part("file", file("a.csv", vec![]))
                    .text("filePurpose", "business_verification")
            }),
            "file",
        ),
        (
            "gif is not allowed",
            Box::new(move || {
                Form::new()
                    .part("file", file("a.gif", GIF.to_vec()))
                    .text("filePurpose", "business_verification")
            }),
            "file",
        ),
        (
            "binary is not csv",
            Box::new(move || {
                Form::new()
                    .part("file", file("a.csv", vec![0, 1, 2, 3]))
                    .text("filePurpose", "business_verification")
            }),
            "file",
        ),
        (
            // 8-bit text (Windows-1252, Latin-1) is csv; NUL bytes in it are not
            "8-bit text with NUL bytes is not csv",
            Box::new(move || {
                Form::new()
                    .part("file", file("a.csv", vec![b'a', 0xe9, 0, b'b']))
                    .text("filePurpose", "business_verification")
            }),
            "file",
        ),
        (
            "name of 65 chars",
            Box::new(move || {
                Form::new()
                    .part("file", file(&long_name, b"a,b".to_vec()))
                    .text("filePurpose", "business_verification")
            }),
            "FileName",
        ),
        (
            "missing purpose",
            Box::new(move || Form::new().part("file", file("a.csv", b"a,b".to_vec()))),
            "filePurpose",
        ),
        (
            "unknown purpose",
            Box::new(move || {
                Form::new()
                    .part("file", file("a.csv", b"a,b".to_vec()))
                    .text("filePurpose", "fun")
            }),
            "filePurpose",
        ),
        (
            "metadata not JSON",
            Box::new(move || {
                Form::new()
                    .part("file", file("a.csv", b"a,b".to_vec()))
                    .text("filePurpose", "business_verification")
                    .text("metadata", "{nope")
            }),
            "metadata",
        ),
        (
            "metadata unknown key",
            Box::new(move || {
                Form::new()
                    .part("file", file("a.csv", b"a,b".to_vec()))
                    .text("filePurpose", "business_verification")
                    .text("metadata", r#"{"other_keys":"x"}"#)
            }),
            "metadata",
        ),
        (
            "metadata not an object",
            Box::new(move || {
                Form::new()
                    .part("file", file("a.csv", b"a,b".to_vec()))
                    .text("filePurpose", "business_verification")
                    .text("metadata", "[]")
            }),
            "metadata",
        ),
    ];
    for (what, form, field) in cases {
        let r = env
            .moov(
                Method::POST,
                "/accounts/00000000-0000-4000-8000-00000000acc1/files",
            )
            .multipart(form())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        has_request_id(&r);
        let body = json(r).await;
        assert!(body[field].is_string(), "{what}: {body}");
        assert!(body["error"].is_string(), "{what}: {body}");
    }
    // All four documented keys are accepted.
    let r = env
        .moov(Method::POST, "/accounts/00000000-0000-4000-8000-00000000acc1/files")
        .multipart(
            Form::new()
                .part("file", Part::bytes(b"a,b".to_vec()).file_name("ok.csv"))
                .text("filePurpose", "account_requirement")
                .text(
                    "metadata",
                    r#"{"representative_id":"r","comment":"c","requirement_id":"q","error_code":"e"}"#,
                ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Nothing invalid was stored.
    let list: Vec<Value> = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-00000000acc1/files",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
}

#[tokio::test]
async fn oversize_file_is_422() {
    let env = start().await;
    let big = vec![b'a'; docsync_sandbox::MAX_FILE_BYTES as usize + 1];
    let r = env
        .upload_file("00000000-0000-4000-8000-00000000acc1", "big.csv", big)
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json(r).await;
    assert!(body["file"].as_str().unwrap().contains("20MB"), "{body}");
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let env = start().await;
    let cases: Vec<(&str, &str, &[u8])> = vec![
        ("not multipart", "application/json", b"{}"),
        (
            "bad multipart",
            "multipart/form-data; boundary=XYZ",
            b"--XYZ\r\ngarbage without end",
        ),
        ("no boundary", "multipart/form-data", b"whatever"),
    ];
    for (what, ct, body) in cases {
        let r = env
            .moov(
                Method::POST,
                "/accounts/00000000-0000-4000-8000-00000000acc1/files",
            )
            .header("content-type", ct)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        has_request_id(&r);
        assert!(json(r).await["error"].is_string(), "{what}");
    }
}

#[tokio::test]
async fn fifty_first_file_is_409() {
    let env = start().await;
    for i in 0..docsync_sandbox::MAX_FILES_PER_ACCOUNT {
        let r = env
            .upload_file(
                "00000000-0000-4000-8000-000000000f11",
                &format!("f{i}.csv"),
                format!("row,{i}\n").into_bytes(),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = env
        .upload_file(
            "00000000-0000-4000-8000-000000000f11",
            "one-too-many.csv",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(json(r).await["error"].as_str().unwrap().contains("50"));
    // Other accounts are unaffected.
    let r = env
        .upload_file(
            "00000000-0000-4000-8000-000000000e1e",
            "fine.csv",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn decision_rule_after_delay() {
    let env = start().await;
    let ok = json(
        env.upload_file(
            "00000000-0000-4000-8000-00000000acc1",
            "invoice.csv",
            b"a".to_vec(),
        )
        .await,
    )
    .await;
    let bad = json(
        env.upload_file(
            "00000000-0000-4000-8000-00000000acc1",
            "please-Reject-me.csv",
            b"b".to_vec(),
        )
        .await,
    )
    .await;
    let get = |id: String| {
        let req = env.moov(
            Method::GET,
            &format!("/accounts/00000000-0000-4000-8000-00000000acc1/files/{id}"),
        );
        async move { json(req.send().await.unwrap()).await }
    };
    let ok_id = ok["fileID"].as_str().unwrap().to_owned();
    let bad_id = bad["fileID"].as_str().unwrap().to_owned();
    assert_eq!(get(ok_id.clone()).await["fileStatus"], "pending");
    env.advance(61);
    let ok = get(ok_id).await;
    assert_eq!(ok["fileStatus"], "approved");
    assert!(ok.get("decisionReason").is_none());
    let list: Vec<Value> = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-00000000acc1/files",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bad = list
        .iter()
        .find(|f| f["fileID"] == bad_id.as_str())
        .unwrap();
    assert_eq!(bad["fileStatus"], "rejected");
    assert!(bad["decisionReason"].is_string());
    assert_ne!(bad["updatedOn"], bad["createdOn"]);
}

#[tokio::test]
async fn accounts_are_isolated() {
    let env = start().await;
    let f = json(
        env.upload_file(
            "00000000-0000-4000-8000-00000000acca",
            "a.csv",
            b"a".to_vec(),
        )
        .await,
    )
    .await;
    let id = f["fileID"].as_str().unwrap();
    let list: Vec<Value> = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-00000000accb/files",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.is_empty());
    let r = env
        .moov(
            Method::GET,
            &format!("/accounts/00000000-0000-4000-8000-00000000accb/files/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// A seeded rejection rate decides the same uploads the same way on every run.
#[tokio::test]
async fn seeded_rejection_rate_repeats() {
    async fn run(seed: u64) -> Vec<String> {
        let mut cfg = config();
        cfg.decision.rejection_rate = 0.5;
        cfg.decision.seed = seed;
        cfg.decision.reject_name_pattern = None;
        let env = start_with(cfg).await;
        for i in 0..20 {
            let r = env
                .upload_file(
                    "00000000-0000-4000-8000-00000000000a",
                    &format!("reject-{i}.csv"),
                    format!("{i}").into_bytes(),
                )
                .await;
            assert_eq!(r.status(), StatusCode::OK);
        }
        env.advance(61);
        let list: Vec<Value> = env
            .moov(
                Method::GET,
                "/accounts/00000000-0000-4000-8000-00000000000a/files",
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.iter()
            .map(|f| f["fileStatus"].as_str().unwrap().to_owned())
            .collect()
    }
    let a = run(9).await;
    assert_eq!(a, run(9).await);
    assert!(
        a.iter().any(|s| s == "rejected") && a.iter().any(|s| s == "approved"),
        "{a:?}"
    );
}
