use std::io::Cursor;
use std::time::Duration;

use docsync_sandbox::{Clock, DecisionRule, Sandbox, SandboxConfig, SandboxHandle};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

pub struct Env {
    pub sb: SandboxHandle,
    pub http: reqwest::Client,
}

/// A config whose delays only pass when a test advances the clock.
pub fn config() -> SandboxConfig {
    SandboxConfig {
        decision: DecisionRule {
            delay: Duration::from_secs(60),
            ..DecisionRule::default()
        },
        attachment_processing_delay: Duration::from_secs(30),
        clock: Clock::system(),
        ..SandboxConfig::default()
    }
}

pub async fn start() -> Env {
    start_with(config()).await
}

pub async fn start_with(cfg: SandboxConfig) -> Env {
    let sb = Sandbox::start(cfg).await.expect("sandbox starts");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    Env { sb, http }
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sb.url())
    }

    /// A Moov request with HTTP Basic credentials.
    pub fn moov(&self, method: Method, path: &str) -> RequestBuilder {
        let c = self.sb.credentials();
        self.http
            .request(method, self.url(path))
            .basic_auth(&c.public_key, Some(&c.secret_key))
    }

    pub fn bearer(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    pub async fn token(&self, scope: &str) -> Value {
        let r = self
            .moov(Method::POST, "/oauth2/token")
            .json(&serde_json::json!({"grant_type": "client_credentials", "scope": scope}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    pub async fn upload_file(&self, account: &str, name: &str, bytes: Vec<u8>) -> Response {
        let form = Form::new()
            .part("file", Part::bytes(bytes).file_name(name.to_owned()))
            .text("filePurpose", "business_verification")
            .text("metadata", r#"{"comment":"test"}"#);
        self.moov(Method::POST, &format!("/accounts/{account}/files"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn upload_image(&self, account: &str, bytes: Vec<u8>, alt: Option<&str>) -> Response {
        let mut form = Form::new().part(
            "image",
            Part::bytes(bytes)
                .file_name("img.png")
                .mime_str("image/png")
                .unwrap(),
        );
        if let Some(alt) = alt {
            form = form.text(
                "metadata",
                serde_json::json!({ "altText": alt }).to_string(),
            );
        }
        self.moov(Method::POST, &format!("/accounts/{account}/images"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    pub fn attach(&self, method: Method, path: &str, user: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("api-key", &self.sb.credentials().attachments_api_key)
            .header("user-id", user)
    }

    pub async fn signed_url(&self, user: &str, filename: &str, persist: bool) -> Value {
        let r = self
            .attach(Method::GET, "/v1/files/signed-url", user)
            .query(&[("filename", filename), ("persist", &persist.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    pub fn advance(&self, secs: u64) {
        self.sb.clock().advance(Duration::from_secs(secs));
    }
}

/// Asserts the x-request-id header is a UUID.
pub fn has_request_id(r: &Response) {
    let id = r
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap();
    uuid::Uuid::parse_str(id).expect("x-request-id is a UUID");
}

pub async fn json(r: Response) -> Value {
    r.json().await.unwrap()
}

/// A PNG of `w`x`h` whose pixels depend on `seed` (distinct seeds: distinct bytes).
pub fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    encode(w, h, seed, image::ImageFormat::Png)
}

pub fn jpeg(w: u32, h: u32, seed: u8) -> Vec<u8> {
    encode(w, h, seed, image::ImageFormat::Jpeg)
}

pub fn webp(w: u32, h: u32, seed: u8) -> Vec<u8> {
    encode(w, h, seed, image::ImageFormat::WebP)
}

fn encode(w: u32, h: u32, seed: u8, f: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x as u8).wrapping_add(seed),
            (y as u8).wrapping_mul(3),
            seed,
        ])
    });
    let mut buf = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut buf, f)
        .unwrap();
    buf.into_inner()
}

pub fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

pub const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

pub const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
