use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::*;

fn dims(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).unwrap();
    (img.width(), img.height())
}

#[tokio::test]
async fn upload_get_list_each_format() {
    let env = start().await;
    let mut ids = Vec::new();
    for (i, bytes) in [png(8, 8, 1), jpeg(8, 8, 1), webp(8, 8, 1)]
        .into_iter()
        .enumerate()
    {
        let r = env
            .upload_image(
                "00000000-0000-4000-8000-00000000acc1",
                bytes,
                Some(&format!("alt {i}")),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "image {i}");
        has_request_id(&r);
        let m = json(r).await;
        assert_eq!(m["altText"], format!("alt {i}"));
        let public = m["publicID"].as_str().unwrap();
        assert_eq!(m["link"], env.url(&format!("/images/{public}")));
        assert!(m.get("disabledOn").is_none());
        ids.push(m["imageID"].as_str().unwrap().to_owned());
    }
    let r = env
        .moov(
            Method::GET,
            &format!(
                "/accounts/00000000-0000-4000-8000-00000000acc1/images/{}",
                ids[1]
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["imageID"], ids[1].as_str());
    let list = |q: &'static str| {
        let req = env.moov(
            Method::GET,
            &format!("/accounts/00000000-0000-4000-8000-00000000acc1/images{q}"),
        );
        async move {
            let v: Vec<Value> = req.send().await.unwrap().json().await.unwrap();
            v.iter()
                .map(|m| m["imageID"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, ids);
    assert_eq!(list("?skip=1&count=1").await, ids[1..2].to_vec());
    assert_eq!(list("?skip=5").await, Vec::<String>::new());
    for bad in [
        "?count=0",
        "?count=201",
        "?skip=-1",
        "?count=abc",
        "?skip=1&skip=2",
    ] {
        let r = env
            .moov(
                Method::GET,
                &format!("/accounts/00000000-0000-4000-8000-00000000acc1/images{bad}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(json(r).await["error"].is_string(), "{bad}");
    }
    let r = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-00000000acc1/images/nope",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Another account sees nothing.
    let r = env
        .moov(
            Method::GET,
            "/accounts/00000000-0000-4000-8000-00000000acc2/images",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await, serde_json::json!([]));
}

#[tokio::test]
async fn duplicate_and_validation() {
    let env = start().await;
    let img = png(8, 8, 7);
    assert_eq!(
        env.upload_image("00000000-0000-4000-8000-00000000acc1", img.clone(), None)
            .await
            .status(),
        StatusCode::CREATED
    );
    let r = env
        .upload_image("00000000-0000-4000-8000-00000000acc1", img.clone(), None)
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(json(r).await["error"].is_string());
    // The same bytes in another account are fine.
    assert_eq!(
        env.upload_image("00000000-0000-4000-8000-00000000acc2", img, None)
            .await
            .status(),
        StatusCode::CREATED
    );

    for (what, bytes) in [
        ("pdf", pdf()),
        ("gif", GIF.to_vec()),
        ("empty", vec![]),
        ("truncated png", png(8, 8, 9)[..30].to_vec()),
    ] {
        let r = env
            .upload_image("00000000-0000-4000-8000-00000000acc1", bytes, None)
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        assert!(json(r).await["image"].is_string(), "{what}");
    }
    let r = env
        .moov(
            Method::POST,
            "/accounts/00000000-0000-4000-8000-00000000acc1/images",
        )
        .multipart(Form::new().text("metadata", "{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json(r).await["image"].is_string());
    let r = env
        .upload_image(
            "00000000-0000-4000-8000-00000000acc1",
            png(8, 8, 10),
            Some(&"x".repeat(126)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json(r).await["metadata"]["altText"].is_string());
    let r = env
        .moov(
            Method::POST,
            "/accounts/00000000-0000-4000-8000-00000000acc1/images",
        )
        .multipart(
            Form::new()
                .part("image", Part::bytes(png(8, 8, 11)).file_name("a.png"))
                .text("metadata", "{oops"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = env
        .moov(
            Method::POST,
            "/accounts/00000000-0000-4000-8000-00000000acc1/images",
        )
        .multipart(
            Form::new()
                .part("image", Part::bytes(png(8, 8, 11)).file_name("a.png"))
                .text("metadata", ""),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = env
        .moov(
            Method::POST,
            "/accounts/00000000-0000-4000-8000-00000000acc1/images",
        )
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(json(r).await["error"].is_string());
}

#[tokio::test]
async fn oversize_image_is_422() {
    let env = start().await;
    let mut big = png(8, 8, 1);
    big.resize(docsync_sandbox::MAX_IMAGE_BYTES as usize + 1, 0);
    let r = env
        .upload_image("00000000-0000-4000-8000-00000000acc1", big, None)
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json(r).await["image"].as_str().unwrap().contains("16MB"));
}

#[tokio::test]
async fn replace_metadata_delete() {
    let env = start().await;
    let m = json(
        env.upload_image(
            "00000000-0000-4000-8000-00000000acc1",
            png(8, 8, 1),
            Some("first"),
        )
        .await,
    )
    .await;
    let id = m["imageID"].as_str().unwrap().to_owned();
    let path = format!("/accounts/00000000-0000-4000-8000-00000000acc1/images/{id}");
    let put = |form: Form| env.moov(Method::PUT, &path).multipart(form).send();

    // Replace without metadata: altText kept.
    let r = put(Form::new().part("image", Part::bytes(png(8, 8, 2)).file_name("b.png")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m2 = json(r).await;
    assert_eq!(m2["altText"], "first");
    assert_eq!(m2["publicID"], m["publicID"]);
    // Replace with metadata: altText replaced.
    let r = put(Form::new()
        .part("image", Part::bytes(jpeg(8, 8, 3)).file_name("c.jpg"))
        .text("metadata", r#"{"altText":"second"}"#))
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["altText"], "second");
    // Replacing with the bytes of another image of the account: 409.
    json(
        env.upload_image("00000000-0000-4000-8000-00000000acc1", png(8, 8, 4), None)
            .await,
    )
    .await;
    let r = put(Form::new().part("image", Part::bytes(png(8, 8, 4)).file_name("d.png")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = env
        .moov(
            Method::PUT,
            "/accounts/00000000-0000-4000-8000-00000000acc1/images/nope",
        )
        .multipart(Form::new().part("image", Part::bytes(png(8, 8, 5)).file_name("e.png")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Metadata endpoint.
    let meta = |body: &'static str| {
        env.moov(Method::PUT, &format!("{path}/metadata"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = meta(r#"{"altText":"third"}"#).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json(r).await["altText"], "third");
    let long = Box::leak(format!(r#"{{"altText":"{}"}}"#, "y".repeat(126)).into_boxed_str());
    let r = meta(long).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json(r).await["altText"].is_string());
    let r = meta(r#"{"altText":null}"#).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json(r).await["altText"].is_string());
    for bad in ["{bad", "[]", ""] {
        let r = meta(bad).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let r = env
        .moov(
            Method::PUT,
            "/accounts/00000000-0000-4000-8000-00000000acc1/images/nope/metadata",
        )
        .json(&serde_json::json!({"altText": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Delete disables; the public URL still serves it.
    let r = env.moov(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    has_request_id(&r);
    assert!(r.bytes().await.unwrap().is_empty());
    let m3 = json(env.moov(Method::GET, &path).send().await.unwrap()).await;
    assert!(m3["disabledOn"].is_string());
    let r = env
        .http
        .get(m3["link"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = env
        .moov(
            Method::DELETE,
            "/accounts/00000000-0000-4000-8000-00000000acc1/images/nope",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn public_image_resize_negotiation_etag() {
    let env = start().await;
    let m = json(
        env.upload_image(
            "00000000-0000-4000-8000-00000000acc1",
            png(800, 400, 1),
            None,
        )
        .await,
    )
    .await;
    let link = m["link"].as_str().unwrap().to_owned();
    let get = |size: Option<&str>, accept: Option<&str>| {
        let mut req = env.http.get(&link);
        if let Some(s) = size {
            req = req.query(&[("size", s)]);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        req.send()
    };
    // Size: default fits 400x400; one side 0 keeps the aspect ratio.
    for (size, want) in [
        (None, (400, 200)),
        (Some("0x100"), (200, 100)),
        (Some("100x0"), (100, 50)),
        (Some("100x100"), (100, 50)),
    ] {
        let r = get(size, None).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{size:?}");
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(dims(&r.bytes().await.unwrap()), want, "{size:?}");
    }
    for bad in ["abc", "10x", "x10", "1x2x3"] {
        let r = get(Some(bad), None).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(json(r).await["error"].is_string());
    }
    // Accept negotiation.
    for (accept, want, fmt) in [
        (
            "image/jpeg;q=1, image/png;q=0.7, image/webp;q=0",
            "image/jpeg",
            image::ImageFormat::Jpeg,
        ),
        ("image/webp", "image/webp", image::ImageFormat::WebP),
        ("image/png", "image/png", image::ImageFormat::Png),
        (
            "image/webp;q=0.2, image/png;q=0.5",
            "image/png",
            image::ImageFormat::Png,
        ),
    ] {
        let r = get(Some("50x50"), Some(accept)).await.unwrap();
        assert_eq!(r.headers()["content-type"], want, "{accept}");
        let bytes = r.bytes().await.unwrap();
        assert_eq!(image::guess_format(&bytes).unwrap(), fmt, "{accept}");
    }
    // Strong ETag; If-None-Match gives 304 without a body.
    let r = get(Some("64x64"), Some("image/jpeg")).await.unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let r = env
        .http
        .get(&link)
        .query(&[("size", "64x64")])
        .header("accept", "image/jpeg")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    has_request_id(&r);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.bytes().await.unwrap().is_empty());
    // A different rendition has a different ETag.
    let r = env
        .http
        .get(&link)
        .query(&[("size", "64x64")])
        .header("accept", "image/png")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
    // Unknown public ID.
    let r = env.http.get(env.url("/images/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
