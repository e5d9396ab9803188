//! [`FilePart`]: the binary part of a multipart upload, or the body of a
//! signed-URL PUT, streamed from disk so memory does not grow with file size.

use std::path::Path;

use bytes::Bytes;
use tokio_util::io::ReaderStream;

/// A file to send: its bytes (an open file, streamed; or bytes in memory), the
/// name the server should record, and its content type.
#[derive(Debug)]
pub struct FilePart {
    source: Source,
    file_name: String,
    content_type: String,
}

#[derive(Debug)]
enum Source {
    File { file: tokio::fs::File, len: u64 },
    Bytes(Bytes),
}

impl FilePart {
    /// Open `path` for streaming; the part is named after the file.
    pub async fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref();
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".to_string());
        Ok(Self::from_file(file, len, file_name))
    }

    /// Stream `len` bytes from an open file (for callers that already opened
    /// and checked it).
    pub fn from_file(file: tokio::fs::File, len: u64, file_name: impl Into<String>) -> Self {
        Self {
            source: Source::File { file, len },
            file_name: file_name.into(),
            content_type: "application/octet-stream".to_string(),
        }
    }

    /// Bytes already in memory (small files, tests).
    pub fn from_bytes(bytes: impl Into<Bytes>, file_name: impl Into<String>) -> Self {
        Self {
            source: Source::Bytes(bytes.into()),
            file_name: file_name.into(),
            content_type: "application/octet-stream".to_string(),
        }
    }

    /// The name sent with the part (a part's filename, not a local path).
    pub fn with_file_name(mut self, file_name: impl Into<String>) -> Self {
        self.file_name = file_name.into();
        self
    }

    /// The part's content type (default `application/octet-stream`).
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = content_type.into();
        self
    }

    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The number of bytes that will be sent, when known.
    pub fn len(&self) -> Option<u64> {
        match &self.source {
            Source::File { len, .. } => Some(*len),
            Source::Bytes(bytes) => u64::try_from(bytes.len()).ok(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The part of a multipart form; fails only on a content type that is not
    /// a valid MIME type.
    pub fn into_part(self) -> Result<reqwest::multipart::Part, String> {
        let part = match self.source {
            Source::File { file, len } => reqwest::multipart::Part::stream_with_length(
                reqwest::Body::wrap_stream(ReaderStream::with_capacity(file, 64 * 1024)),
                len,
            ),
            Source::Bytes(bytes) => {
                let len = bytes.len() as u64;
                reqwest::multipart::Part::stream_with_length(reqwest::Body::from(bytes), len)
            }
        };
        part.file_name(self.file_name)
            .mime_str(&self.content_type)
            .map_err(|e| format!("content type `{}`: {e}", self.content_type))
    }

    /// The raw body of a PUT (signed-URL uploads).
    pub fn into_body(self) -> reqwest::Body {
        match self.source {
            Source::File { file, .. } => {
                reqwest::Body::wrap_stream(ReaderStream::with_capacity(file, 64 * 1024))
            }
            Source::Bytes(bytes) => reqwest::Body::from(bytes),
        }
    }
}

impl From<FilePart> for reqwest::Body {
    fn from(part: FilePart) -> Self {
        part.into_body()
    }
}
