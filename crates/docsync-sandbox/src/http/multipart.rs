//! Streaming multipart reading shared by uploadFile, uploadImage and updateImage.

use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;

use crate::blobs::{BlobStore, BlobWriter, PendingBlob};
use crate::error::ApiError;

/// Largest accepted text part (filePurpose, metadata).
const MAX_TEXT_PART: usize = 64 * 1024;

/// Why reading a multipart body failed.
#[derive(Debug)]
pub enum ReadError {
    /// The body is not valid multipart (answer 400).
    Malformed(String),
    /// The body exceeded the route's body limit (answer as "too large").
    TooLarge,
    /// A server-side failure.
    Internal(ApiError),
}

impl From<MultipartError> for ReadError {
    fn from(e: MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ReadError::TooLarge
        } else {
            ReadError::Malformed(format!("malformed multipart body: {}", e.body_text()))
        }
    }
}

/// A streamed binary part.
#[derive(Debug)]
pub struct FilePart {
    pub file_name: Option<String>,
    pub blob: PendingBlob,
}

/// A quoted filename's `\x` pairs undone where `x` is a MIME tspecial, as Go's
/// `mime` package (Moov's server) does: clients write a backslash as `\\` (and a
/// quote as `\"`, which multer has undone already); a backslash before anything
/// else stays, as Go keeps it.
fn unquote_pairs(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if "()<>@,;:\\\"/[]?=".contains(next) {
                    out.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// Streams a part to a temp blob, hashing it; bytes past `limit` are counted only.
pub async fn read_file_part(
    blobs: &BlobStore,
    mut field: Field<'_>,
    limit: u64,
    scan: Option<&'static [u8]>,
) -> Result<FilePart, ReadError> {
    let file_name = field.file_name().map(unquote_pairs);
    let mut w: BlobWriter = blobs
        .writer(limit)
        .await
        .map_err(|e| ReadError::Internal(e.into()))?;
    if let Some(needle) = scan {
        w.scan_for(needle);
    }
    while let Some(chunk) = field.chunk().await? {
        w.write(&chunk)
            .await
            .map_err(|e| ReadError::Internal(e.into()))?;
    }
    let blob = w
        .finish()
        .await
        .map_err(|e| ReadError::Internal(e.into()))?;
    Ok(FilePart { file_name, blob })
}

/// Reads a small text part; `Ok(Err(..))` when it is not UTF-8 or too long.
pub async fn read_text_part(mut field: Field<'_>) -> Result<Result<String, String>, ReadError> {
    let mut buf = Vec::new();
    let mut too_long = false;
    while let Some(chunk) = field.chunk().await? {
        if buf.len() + chunk.len() > MAX_TEXT_PART {
            too_long = true;
        } else {
            buf.extend_from_slice(&chunk);
        }
    }
    if too_long {
        return Ok(Err(format!("part is longer than {MAX_TEXT_PART} bytes")));
    }
    Ok(String::from_utf8(buf).map_err(|_| "part is not valid UTF-8".to_owned()))
}

/// Reads and discards a part.
pub async fn drain(mut field: Field<'_>) -> Result<(), ReadError> {
    while field.chunk().await?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_pairs_are_undone_as_go_does() {
        for (sent, want) in [
            ("plain.pdf", "plain.pdf"),
            (r"back\\slash.pdf", r"back\slash.pdf"),
            (r"two\\\\.pdf", r"two\\.pdf"),
            (r"caf\xE9.pdf", r"caf\xE9.pdf"),
            (r"C:\dev\a.pdf", r"C:\dev\a.pdf"),
            (r#"say "hi".pdf"#, r#"say "hi".pdf"#),
        ] {
            assert_eq!(unquote_pairs(sent), want, "{sent}");
        }
    }
}
