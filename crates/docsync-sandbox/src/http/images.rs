//! Moov Images API, including the public, unauthenticated rendition endpoint.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::auth::{guard, Perm};
use super::multipart::{drain, read_file_part, read_text_part, FilePart, ReadError};
use super::query;
use super::render::{self, Format, RenditionKey};
use super::{AppState, Rendition, MAX_IMAGES_PER_ACCOUNT, MAX_IMAGE_BYTES};
use crate::error::{ApiError, ImageMetadataValidationError, ImageRequestValidationError};
use crate::store::{self, Guarded, ImageRow};

/// Longest altText.
pub const MAX_ALT_TEXT_CHARS: usize = 125;
/// Default and largest page of listImageMetadata.
pub const MAX_PAGE: i64 = 200;
/// Rendition bytes kept in memory before the cache is emptied.
const RENDITION_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// ImageMetadata on the wire.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ImageMetadata {
    #[serde(rename = "imageID")]
    image_id: String,
    #[serde(rename = "publicID")]
    public_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alt_text: Option<String>,
    link: String,
    created_on: DateTime<Utc>,
    updated_on: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_on: Option<DateTime<Utc>>,
}

fn metadata(st: &AppState, r: ImageRow) -> ImageMetadata {
    ImageMetadata {
        link: format!("{}/images/{}", st.inner.public_url, r.public_id),
        image_id: r.image_id,
        public_id: r.public_id,
        alt_text: r.alt_text,
        created_on: r.created_on,
        updated_on: r.updated_on,
        disabled_on: r.disabled_on,
    }
}

/// Why an `{"altText": ...}` document was refused.
enum MetadataError {
    /// Not a JSON object (400 GenericError).
    Malformed(String),
    /// altText not a string or too long (422).
    Invalid(ImageMetadataValidationError),
}

/// Parses an ImageMetadataRequest (`{"altText": "..."}`; other keys are ignored).
fn parse_metadata(text: &[u8]) -> Result<Option<String>, MetadataError> {
    let value: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| MetadataError::Malformed(format!("metadata is not valid JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(MetadataError::Malformed(
            "metadata must be a JSON object".to_owned(),
        ));
    };
    let invalid = |msg: String| {
        MetadataError::Invalid(ImageMetadataValidationError {
            alt_text: Some(msg),
        })
    };
    match map.get("altText") {
        None => Ok(None),
        Some(serde_json::Value::String(a)) if a.chars().count() > MAX_ALT_TEXT_CHARS => {
            Err(invalid(format!(
                "altText must be at most {MAX_ALT_TEXT_CHARS} characters"
            )))
        }
        Some(serde_json::Value::String(a)) => Ok(Some(a.clone())),
        Some(_) => Err(invalid("altText must be a string".to_owned())),
    }
}

/// `skip` (default 0, at least 0) and `count` (default and maximum 200, at least 1);
/// values outside those ranges or not integers are answered 400 GenericError.
pub async fn list_images(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Vec<ImageMetadata>>, ApiError> {
    guard(&st, &headers, &account_id, Perm::ImagesRead).await?;
    let q = query::parse(raw.as_deref()).map_err(ApiError::bad_request)?;
    let num = |name: &str, default: i64, range: std::ops::RangeInclusive<i64>| {
        let Some(t) = q.get(name) else {
            return Ok(default);
        };
        match t.trim().parse::<i64>() {
            Ok(v) if range.contains(&v) => Ok(v),
            _ => Err(ApiError::bad_request(format!(
                "{name} must be an integer from {} to {}",
                range.start(),
                range.end()
            ))),
        }
    };
    let skip = num("skip", 0, 0..=i64::from(i32::MAX))?;
    let count = num("count", MAX_PAGE, 1..=MAX_PAGE)?;
    let rows = st
        .db(move |c| store::list_images(c, &account_id, skip, count))
        .await?;
    Ok(Json(rows.into_iter().map(|r| metadata(&st, r)).collect()))
}

/// GET /accounts/{accountID}/images/{imageID} (getImageMetadata).
pub async fn get_image(
    State(st): State<AppState>,
    Path((account_id, image_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<ImageMetadata>, ApiError> {
    guard(&st, &headers, &account_id, Perm::ImagesRead).await?;
    let row = st
        .db(move |c| store::get_image(c, &account_id, &image_id))
        .await?
        .ok_or(ApiError::Empty(StatusCode::NOT_FOUND))?;
    Ok(Json(metadata(&st, row)))
}

/// The parts of an uploadImage/updateImage request, validated.
struct ImageUpload {
    part: FilePart,
    content_type: &'static str,
    /// `None`: no metadata part; `Some(alt)`: replace the metadata.
    alt_text: Option<Option<String>>,
}

async fn read_image_upload(
    st: &AppState,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<ImageUpload, ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a multipart/form-data body: {}",
            e.body_text()
        ))
    })?;
    let mut image: Option<FilePart> = None;
    let mut meta: Option<Result<String, String>> = None;
    let mut too_large = false;
    let read: Result<(), ReadError> = async {
        while let Some(field) = multipart.next_field().await? {
            match field.name() {
                Some("image") if image.is_none() => {
                    image =
                        Some(read_file_part(&st.inner.blobs, field, MAX_IMAGE_BYTES, None).await?)
                }
                Some("metadata") if meta.is_none() => meta = Some(read_text_part(field).await?),
                Some(name @ ("image" | "metadata")) => {
                    return Err(ReadError::Malformed(format!(
                        "part {name:?} appears more than once"
                    )))
                }
                _ => drain(field).await?,
            }
        }
        Ok(())
    }
    .await;
    match read {
        Ok(()) => {}
        Err(ReadError::TooLarge) => too_large = true,
        Err(ReadError::Malformed(m)) => return Err(ApiError::bad_request(m)),
        Err(ReadError::Internal(e)) => return Err(e),
    }
    let mut err = ImageRequestValidationError::default();
    let alt_text: Option<Option<String>> = match meta {
        None => None,
        Some(Err(e)) => return Err(ApiError::bad_request(format!("metadata part: {e}"))),
        Some(Ok(t)) => match parse_metadata(t.as_bytes()) {
            Ok(alt) => Some(alt),
            Err(MetadataError::Malformed(m)) => return Err(ApiError::bad_request(m)),
            Err(MetadataError::Invalid(e)) => {
                err.metadata = Some(e);
                None
            }
        },
    };
    let mut content_type = "";
    match &image {
        _ if too_large => err.image = Some("image exceeds the maximum size of 16MB".into()),
        None => err.image = Some("image is required".into()),
        Some(p) if p.blob.len > MAX_IMAGE_BYTES => {
            err.image = Some("image exceeds the maximum size of 16MB".into())
        }
        Some(p) if p.blob.len == 0 => err.image = Some("image is empty".into()),
        Some(p) => match infer::get(&p.blob.head).map(|k| k.mime_type()) {
            Some(m @ ("image/png" | "image/jpeg" | "image/webp")) => {
                content_type = Format::from_mime(m).map_or("", Format::mime);
            }
            _ => err.image = Some("unsupported image type: use PNG, JPEG or WebP".into()),
        },
    }
    if err.image.is_none() {
        if let Some(path) = image
            .as_ref()
            .and_then(|p| p.blob.tmp_path())
            .map(|p| p.to_path_buf())
        {
            let decodable = tokio::task::spawn_blocking(move || {
                image::ImageReader::open(&path)
                    .and_then(|r| r.with_guessed_format())
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.into_dimensions().map_err(|e| e.to_string()))
            })
            .await?;
            if let Err(e) = decodable {
                err.image = Some(format!("image cannot be decoded: {e}"));
            }
        }
    }
    if err.image.is_some() || err.metadata.is_some() {
        return Err(ApiError::ImageValidation(err));
    }
    let part = image.ok_or_else(|| ApiError::internal("validated image lost its part"))?;
    Ok(ImageUpload {
        part,
        content_type,
        alt_text,
    })
}

/// POST /accounts/{accountID}/images (uploadImage): 201.
pub async fn upload_image(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    guard(&st, &headers, &account_id, Perm::ImagesWrite).await?;
    let mut up = read_image_upload(&st, multipart).await?;
    st.inner.blobs.commit(&mut up.part.blob).await?;
    let now = st.now();
    let row = ImageRow {
        image_id: uuid::Uuid::new_v4().to_string(),
        account_id,
        public_id: crate::config::random_hex(16),
        alt_text: up.alt_text.flatten(),
        sha256: up.part.blob.sha256.clone(),
        content_type: up.content_type.to_owned(),
        size_bytes: i64::try_from(up.part.blob.len).unwrap_or(i64::MAX),
        created_on: now,
        updated_on: now,
        disabled_on: None,
    };
    let insert = row.clone();
    match st
        .db(move |c| store::insert_image(c, &insert, MAX_IMAGES_PER_ACCOUNT))
        .await?
    {
        Guarded::Done => {}
        Guarded::Duplicate => {
            return Err(ApiError::conflict(
                "an identical image already exists in this account",
            ))
        }
        Guarded::LimitReached => {
            return Err(ApiError::conflict(format!(
                "account has reached the maximum of {MAX_IMAGES_PER_ACCOUNT} images"
            )))
        }
        Guarded::NotFound => return Err(ApiError::internal("unexpected insert outcome")),
    }
    Ok((StatusCode::CREATED, Json(metadata(&st, row))).into_response())
}

/// PUT /accounts/{accountID}/images/{imageID} (updateImage): replaces the bytes and,
/// when a metadata part is sent, the metadata.
pub async fn update_image(
    State(st): State<AppState>,
    Path((account_id, image_id)): Path<(String, String)>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<ImageMetadata>, ApiError> {
    guard(&st, &headers, &account_id, Perm::ImagesWrite).await?;
    let (a, i) = (account_id.clone(), image_id.clone());
    if st.db(move |c| store::get_image(c, &a, &i)).await?.is_none() {
        return Err(ApiError::Empty(StatusCode::NOT_FOUND));
    }
    let mut up = read_image_upload(&st, multipart).await?;
    st.inner.blobs.commit(&mut up.part.blob).await?;
    let now = st.now();
    let (a, i) = (account_id.clone(), image_id.clone());
    let replacement = store::Replacement {
        sha256: up.part.blob.sha256.clone(),
        content_type: up.content_type.to_owned(),
        size_bytes: i64::try_from(up.part.blob.len).unwrap_or(i64::MAX),
        alt_text: up.alt_text,
        now,
    };
    let outcome = st
        .db(move |c| store::replace_image(c, &a, &i, replacement))
        .await?;
    match outcome {
        Guarded::Done => {}
        Guarded::Duplicate => {
            return Err(ApiError::conflict(
                "an identical image already exists in this account",
            ))
        }
        Guarded::NotFound => return Err(ApiError::Empty(StatusCode::NOT_FOUND)),
        Guarded::LimitReached => return Err(ApiError::internal("unexpected update outcome")),
    }
    let row = st
        .db(move |c| store::get_image(c, &account_id, &image_id))
        .await?
        .ok_or(ApiError::Empty(StatusCode::NOT_FOUND))?;
    Ok(Json(metadata(&st, row)))
}

/// DELETE /accounts/{accountID}/images/{imageID} (deleteImage): 204, disables.
pub async fn delete_image(
    State(st): State<AppState>,
    Path((account_id, image_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    guard(&st, &headers, &account_id, Perm::ImagesWrite).await?;
    let now = st.now();
    if st
        .db(move |c| store::disable_image(c, &account_id, &image_id, now))
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::Empty(StatusCode::NOT_FOUND))
    }
}

/// PUT /accounts/{accountID}/images/{imageID}/metadata (updateImageMetadata).
pub async fn update_image_metadata(
    State(st): State<AppState>,
    Path((account_id, image_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ImageMetadata>, ApiError> {
    guard(&st, &headers, &account_id, Perm::ImagesWrite).await?;
    let alt_text = parse_metadata(&body).map_err(|e| match e {
        MetadataError::Malformed(m) => ApiError::bad_request(m),
        MetadataError::Invalid(v) => ApiError::ImageMetadataValidation(v),
    })?;
    let now = st.now();
    let (a, i) = (account_id.clone(), image_id.clone());
    let updated = st
        .db(move |c| store::set_alt_text(c, &a, &i, alt_text.as_deref(), now))
        .await?;
    if !updated {
        return Err(ApiError::Empty(StatusCode::NOT_FOUND));
    }
    let row = st
        .db(move |c| store::get_image(c, &account_id, &image_id))
        .await?
        .ok_or(ApiError::Empty(StatusCode::NOT_FOUND))?;
    Ok(Json(metadata(&st, row)))
}

/// GET /images/{publicID} (getPublicImage): no auth, no version header.
pub async fn get_public_image(
    State(st): State<AppState>,
    Path(public_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let q = query::parse(raw.as_deref()).map_err(ApiError::bad_request)?;
    let size =
        render::parse_size(q.get("size").map(String::as_str)).map_err(ApiError::bad_request)?;
    let row = st
        .db(move |c| store::get_image_by_public_id(c, &public_id))
        .await?
        .ok_or(ApiError::Empty(StatusCode::NOT_FOUND))?;
    let original = Format::from_mime(&row.content_type).unwrap_or(Format::Png);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = render::negotiate(accept, original);
    let key = RenditionKey {
        sha256: row.sha256.clone(),
        size,
        format,
    };
    let cached = st
        .inner
        .renditions
        .lock()
        .ok()
        .and_then(|m| m.get(&key).cloned());
    let rendition: Arc<Rendition> = match cached {
        Some(r) => r,
        None => {
            let path = st.inner.blobs.path(&row.sha256);
            let r = tokio::task::spawn_blocking(move || render::render(path, size, format))
                .await?
                .map_err(ApiError::internal)?;
            let r = Arc::new(r);
            if let Ok(mut m) = st.inner.renditions.lock() {
                let held: usize = m.values().map(|r| r.bytes.len()).sum();
                if held + r.bytes.len() > RENDITION_CACHE_BYTES {
                    m.clear();
                }
                m.insert(key, r.clone());
            }
            r
        }
    };
    let etag = HeaderValue::from_str(&rendition.etag).map_err(ApiError::internal)?;
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|inm| render::etag_matches(inm, &rendition.etag));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(rendition.bytes.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(rendition.content_type),
        );
        r
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag);
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(resp)
}
