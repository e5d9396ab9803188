//! Moov Files API: uploadFile, listFiles, getFileDetails, and the decision rule.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::auth::{guard, Perm};
use super::multipart::{drain, read_file_part, read_text_part, FilePart, ReadError};
use super::{AppState, MAX_FILES_PER_ACCOUNT, MAX_FILE_BYTES};
use crate::config::DecisionRule;
use crate::error::{ApiError, FileValidationError};
use crate::store::{self, FileRow, Guarded};

/// The documented file purposes.
pub const FILE_PURPOSES: &[&str] = &[
    "business_verification",
    "representative_verification",
    "individual_verification",
    "merchant_underwriting",
    "account_requirement",
    "identity_verification",
];

/// The metadata keys accepted (v2024.01.00 documents all four).
pub const METADATA_KEYS: &[&str] = &[
    "representative_id",
    "comment",
    "requirement_id",
    "error_code",
];

/// Longest fileName.
pub const MAX_FILE_NAME_CHARS: usize = 64;

/// FileDetails on the wire.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct FileDetails {
    #[serde(rename = "fileID")]
    file_id: String,
    file_name: String,
    #[serde(rename = "accountID")]
    account_id: String,
    file_purpose: String,
    file_status: String,
    metadata: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision_reason: Option<String>,
    file_size_bytes: i64,
    created_on: DateTime<Utc>,
    updated_on: DateTime<Utc>,
}

impl From<FileRow> for FileDetails {
    fn from(r: FileRow) -> Self {
        FileDetails {
            file_id: r.file_id,
            file_name: r.file_name,
            account_id: r.account_id,
            file_purpose: r.file_purpose,
            file_status: r.file_status,
            metadata: r.metadata,
            decision_reason: r.decision_reason,
            file_size_bytes: r.size_bytes,
            created_on: r.created_on,
            updated_on: r.updated_on,
        }
    }
}

/// Applies the decision rule to a pending file whose delay has passed.
/// Returns whether the row changed.
pub fn decide(rule: &DecisionRule, row: &mut FileRow, now: DateTime<Utc>) -> bool {
    if row.file_status != "pending" {
        return false;
    }
    let delay = chrono::Duration::from_std(rule.delay).unwrap_or(chrono::Duration::MAX);
    let Some(due) = row.created_on.checked_add_signed(delay) else {
        return false;
    };
    if now < due {
        return false;
    }
    let by_name = rule
        .reject_name_pattern
        .as_ref()
        .is_some_and(|re| re.is_match(&row.file_name));
    let reason = if by_name {
        Some(rule.name_reason.clone())
    } else if rule.rejection_rate > 0.0 {
        // A pure function of (seed, name, content): the same upload gets the same
        // answer on every run, whatever its (random) fileID.
        let mut h: u64 = rule.seed ^ 0xcbf2_9ce4_8422_2325;
        for b in row.file_name.bytes().chain([0]).chain(row.sha256.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(h);
        (rng.gen::<f64>() < rule.rejection_rate).then(|| rule.random_reason.clone())
    } else {
        None
    };
    row.file_status = if reason.is_some() {
        "rejected"
    } else {
        "approved"
    }
    .to_owned();
    row.decision_reason = reason;
    row.updated_on = due;
    true
}

async fn decide_and_store(st: &AppState, mut rows: Vec<FileRow>) -> Result<Vec<FileRow>, ApiError> {
    let now = st.now();
    let changed: Vec<FileRow> = rows
        .iter_mut()
        .filter_map(|r| decide(&st.inner.decision, r, now).then(|| r.clone()))
        .collect();
    if !changed.is_empty() {
        st.db(move |c| {
            let tx = c.transaction()?;
            for r in &changed {
                store::set_file_decision(&tx, r)?;
            }
            tx.commit()
        })
        .await?;
    }
    Ok(rows)
}

/// GET /accounts/{accountID}/files (listFiles).
pub async fn list_files(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<FileDetails>>, ApiError> {
    guard(&st, &headers, &account_id, Perm::FilesRead).await?;
    let rows = st.db(move |c| store::list_files(c, &account_id)).await?;
    let rows = decide_and_store(&st, rows).await?;
    Ok(Json(rows.into_iter().map(FileDetails::from).collect()))
}

/// GET /accounts/{accountID}/files/{fileID} (getFileDetails).
pub async fn get_file(
    State(st): State<AppState>,
    Path((account_id, file_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<FileDetails>, ApiError> {
    guard(&st, &headers, &account_id, Perm::FilesRead).await?;
    let row = st
        .db(move |c| store::get_file(c, &account_id, &file_id))
        .await?
        .ok_or(ApiError::Empty(StatusCode::NOT_FOUND))?;
    let mut rows = decide_and_store(&st, vec![row]).await?;
    let row = rows.pop().ok_or(ApiError::Empty(StatusCode::NOT_FOUND))?;
    Ok(Json(row.into()))
}

/// The content type of an uploadFile body, decided by its bytes.
fn detect_file_type(part: &FilePart) -> Option<&'static str> {
    match infer::get(&part.blob.head) {
        Some(k) => match k.mime_type() {
            "image/png" => Some("image/png"),
            "image/jpeg" => Some("image/jpeg"),
            "application/pdf" => Some("application/pdf"),
            _ => None,
        },
        None if part.blob.is_text => Some("text/csv"),
        None => None,
    }
}

/// Validates the metadata part; returns the canonical JSON text.
fn validate_metadata(text: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("metadata is not valid JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("metadata must be a JSON object".to_owned());
    };
    for (k, v) in &map {
        if !METADATA_KEYS.contains(&k.as_str()) {
            return Err(format!(
                "unknown metadata key {k:?}: valid keys are {}",
                METADATA_KEYS.join(", ")
            ));
        }
        if !v.is_string() {
            return Err(format!("metadata value of {k:?} must be a string"));
        }
    }
    serde_json::to_string(&map).map_err(|e| format!("metadata cannot be serialised: {e}"))
}

/// POST /accounts/{accountID}/files (uploadFile).
pub async fn upload_file(
    State(st): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<FileDetails>, ApiError> {
    guard(&st, &headers, &account_id, Perm::FilesWrite).await?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a multipart/form-data body: {}",
            e.body_text()
        ))
    })?;

    let mut file: Option<FilePart> = None;
    let mut purpose: Option<Result<String, String>> = None;
    let mut metadata: Option<Result<String, String>> = None;
    let mut too_large = false;
    let read: Result<(), ReadError> = async {
        while let Some(field) = multipart.next_field().await? {
            match field.name() {
                Some("file") if file.is_none() => {
                    file = Some(read_file_part(&st.inner.blobs, field, MAX_FILE_BYTES, None).await?)
                }
                Some("filePurpose") if purpose.is_none() => {
                    purpose = Some(read_text_part(field).await?)
                }
                Some("metadata") if metadata.is_none() => {
                    metadata = Some(read_text_part(field).await?)
                }
                Some(name @ ("file" | "filePurpose" | "metadata")) => {
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

    let mut err = FileValidationError::default();
    let mut content_type = "";
    match &file {
        _ if too_large => err.file = Some("file exceeds the maximum size of 20MB".into()),
        None => err.file = Some("file is required".into()),
        Some(f) if f.blob.len > MAX_FILE_BYTES => {
            err.file = Some("file exceeds the maximum size of 20MB".into())
        }
        Some(f) if f.blob.len == 0 => err.file = Some("file is empty".into()),
        Some(f) => match detect_file_type(f) {
            Some(ct) => content_type = ct,
            None => {
                err.file = Some("unsupported file type: valid types are csv, png, jpeg, pdf".into())
            }
        },
    }
    let file_name = file
        .as_ref()
        .and_then(|f| f.file_name.clone())
        .unwrap_or_default();
    if file.is_some() && !too_large {
        if file_name.trim().is_empty() {
            err.file_name = Some("fileName is required".into());
        } else if file_name.chars().count() > MAX_FILE_NAME_CHARS {
            err.file_name = Some(format!(
                "fileName must be at most {MAX_FILE_NAME_CHARS} characters"
            ));
        }
    }
    match &purpose {
        None => err.file_purpose = Some("filePurpose is required".into()),
        Some(Err(e)) => err.file_purpose = Some(e.clone()),
        Some(Ok(p)) if !FILE_PURPOSES.contains(&p.trim()) => {
            err.file_purpose = Some(format!(
                "invalid filePurpose {p:?}: valid values are {}",
                FILE_PURPOSES.join(", ")
            ))
        }
        Some(Ok(_)) => {}
    }
    let metadata = match metadata {
        None => Ok("{}".to_owned()),
        Some(Ok(t)) if t.trim().is_empty() => Ok("{}".to_owned()),
        Some(Ok(t)) => validate_metadata(&t),
        Some(Err(e)) => Err(e),
    };
    let metadata = match metadata {
        Ok(m) => m,
        Err(e) => {
            err.metadata = Some(e);
            String::new()
        }
    };
    let failed: Vec<&str> = [
        err.file.as_ref().map(|_| "file"),
        err.file_name.as_ref().map(|_| "FileName"),
        err.file_purpose.as_ref().map(|_| "filePurpose"),
        err.metadata.as_ref().map(|_| "metadata"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !failed.is_empty() {
        err.error = Some(format!("validation failed: {}", failed.join(", ")));
        return Err(ApiError::FileValidation(err));
    }
    let (Some(mut part), Some(Ok(purpose))) = (file, purpose) else {
        return Err(ApiError::internal("validated upload lost its parts"));
    };

    st.inner.blobs.commit(&mut part.blob).await?;
    let now = st.now();
    let row = FileRow {
        file_id: uuid::Uuid::new_v4().to_string(),
        account_id,
        file_name,
        file_purpose: purpose.trim().to_owned(),
        file_status: "pending".into(),
        metadata,
        decision_reason: None,
        size_bytes: i64::try_from(part.blob.len).unwrap_or(i64::MAX),
        sha256: part.blob.sha256.clone(),
        content_type: content_type.to_owned(),
        created_on: now,
        updated_on: now,
    };
    let insert = row.clone();
    match st
        .db(move |c| store::insert_file(c, &insert, MAX_FILES_PER_ACCOUNT))
        .await?
    {
        Guarded::Done => {}
        Guarded::LimitReached => {
            return Err(ApiError::conflict(format!(
                "account has reached the maximum of {MAX_FILES_PER_ACCOUNT} files"
            )))
        }
        Guarded::Duplicate | Guarded::NotFound => {
            return Err(ApiError::internal("unexpected insert outcome"))
        }
    }
    tracing::info!(file_id = %row.file_id, size = row.size_bytes, "file uploaded");
    Ok(Json(row.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> FileRow {
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        FileRow {
            file_id: format!("id-{name}"),
            account_id: "00000000-0000-0000-0000-00000000000a".into(),
            file_name: name.into(),
            file_purpose: "business_verification".into(),
            file_status: "pending".into(),
            metadata: "{}".into(),
            decision_reason: None,
            size_bytes: 1,
            sha256: String::new(),
            content_type: "text/csv".into(),
            created_on: t,
            updated_on: t,
        }
    }

    #[test]
    fn decision_rule() {
        let rule = DecisionRule::default();
        let mut r = row("please-REJECT-me.pdf");
        let t0 = r.created_on;
        assert!(!decide(&rule, &mut r, t0 + chrono::Duration::seconds(1)));
        assert_eq!(r.file_status, "pending");
        assert!(decide(&rule, &mut r, t0 + chrono::Duration::seconds(2)));
        assert_eq!(r.file_status, "rejected");
        assert!(r.decision_reason.is_some());
        let mut ok = row("invoice.pdf");
        assert!(decide(&rule, &mut ok, t0 + chrono::Duration::seconds(5)));
        assert_eq!(ok.file_status, "approved");
        assert_eq!(ok.updated_on, t0 + chrono::Duration::seconds(2));
    }

    #[test]
    fn seeded_rejection_rate_is_stable() {
        let rule = DecisionRule {
            rejection_rate: 0.5,
            seed: 42,
            ..DecisionRule::default()
        };
        let t = row("x").created_on + chrono::Duration::seconds(10);
        let outcome = |n: usize| {
            let mut r = row(&format!("file{n}.pdf"));
            decide(&rule, &mut r, t);
            r.file_status
        };
        let a: Vec<_> = (0..50).map(outcome).collect();
        let b: Vec<_> = (0..50).map(outcome).collect();
        assert_eq!(a, b);
        assert!(a.iter().any(|s| s == "rejected") && a.iter().any(|s| s == "approved"));
    }

    #[test]
    fn metadata_validation() {
        assert!(validate_metadata(r#"{"comment":"x","representative_id":"r"}"#).is_ok());
        assert!(validate_metadata(r#"{"other":"x"}"#).is_err());
        assert!(validate_metadata("[1]").is_err());
        assert!(validate_metadata("{").is_err());
    }
}
