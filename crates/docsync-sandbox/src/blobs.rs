//! Bytes on disk, content-addressed by SHA-256 (`blobs/ab/abcdef…`).
//!
//! Invariant: no path under the data dir is ever built from a client-supplied name;
//! uploads are streamed to `tmp/{uuid}` while hashed, then renamed to their hash.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// How many leading bytes of an upload are kept in memory for type detection.
const HEAD_LEN: usize = 8192;

/// The blob directory of a sandbox.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating) `{data}/blobs` and `{data}/tmp`, emptying `tmp`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let root = data_dir.to_path_buf();
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(Error::io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
        let blobs = root.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(Error::io(&blobs))?;
        Ok(BlobStore { root })
    }

    /// Where the blob with this hex SHA-256 lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("xx");
        self.root.join("blobs").join(prefix).join(sha256)
    }

    /// Starts a streamed write; bytes beyond `limit` are counted but not stored.
    pub async fn writer(&self, limit: u64) -> std::io::Result<BlobWriter> {
        let path = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let file = tokio::fs::File::create(&path).await?;
        Ok(BlobWriter {
            file: Some(tokio::io::BufWriter::with_capacity(256 * 1024, file)),
            tmp: TmpFile(Some(path)),
            hasher: Sha256::new(),
            len: 0,
            head: Vec::with_capacity(HEAD_LEN),
            limit,
            text: TextCheck::default(),
            needle: None,
        })
    }

    /// Moves a finished upload to its content address (a no-op if already present).
    pub async fn commit(&self, blob: &mut PendingBlob) -> std::io::Result<()> {
        let dest = self.path(&blob.sha256);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        if let Some(tmp) = blob.tmp.0.take() {
            if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
                let _ = tokio::fs::remove_file(&tmp).await;
            } else {
                tokio::fs::rename(&tmp, &dest).await?;
            }
        }
        Ok(())
    }

    /// Removes a blob (used when nothing refers to it any more).
    pub fn remove(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.path(sha256));
    }
}

/// A temp file removed on drop unless taken.
#[derive(Debug)]
struct TmpFile(Option<PathBuf>);

impl Drop for TmpFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A streamed upload in progress.
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    tmp: TmpFile,
    hasher: Sha256,
    len: u64,
    head: Vec<u8>,
    limit: u64,
    text: TextCheck,
    needle: Option<NeedleScan>,
}

/// Incremental "is this text" check, as lenient as the spreadsheets that write
/// CSVs: any 8-bit encoding (UTF-8, Latin-1, Windows-1252) without NUL bytes, or
/// UTF-16 announced by its byte-order mark.
#[derive(Debug, Default)]
struct TextCheck {
    /// Bytes seen so far (the BOM is in the first two).
    seen: u64,
    utf16: bool,
    nul: bool,
}

impl TextCheck {
    fn feed(&mut self, chunk: &[u8]) {
        if self.seen == 0 {
            self.utf16 = matches!(chunk.get(..2), Some([0xff, 0xfe] | [0xfe, 0xff]));
        }
        self.seen += chunk.len() as u64;
        self.nul = self.nul || (!self.utf16 && chunk.contains(&0));
    }

    fn finish(&self) -> bool {
        !self.nul
    }
}

/// Looks for a byte string across chunk boundaries.
#[derive(Debug)]
struct NeedleScan {
    needle: &'static [u8],
    tail: Vec<u8>,
    found: bool,
}

impl NeedleScan {
    fn feed(&mut self, chunk: &[u8]) {
        if self.found || self.needle.is_empty() {
            return;
        }
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        if buf.windows(self.needle.len()).any(|w| w == self.needle) {
            self.found = true;
            return;
        }
        let keep = (self.needle.len() - 1).min(buf.len());
        self.tail = buf[buf.len() - keep..].to_vec();
    }
}

impl BlobWriter {
    /// Also reports whether `needle` occurs in the bytes (see [`PendingBlob::needle_found`]).
    pub fn scan_for(&mut self, needle: &'static [u8]) {
        self.needle = Some(NeedleScan {
            needle,
            tail: Vec::new(),
            found: false,
        });
    }

    /// Appends a chunk (hashing it); past the limit bytes are only counted.
    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.len += chunk.len() as u64;
        if self.len > self.limit {
            // Over the limit: stop storing, drop the partial file early.
            self.file = None;
            return Ok(());
        }
        if self.head.len() < HEAD_LEN {
            let take = (HEAD_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        self.text.feed(chunk);
        if let Some(scan) = self.needle.as_mut() {
            scan.feed(chunk);
        }
        if let Some(file) = self.file.as_mut() {
            file.write_all(chunk).await?;
        }
        Ok(())
    }

    /// Bytes seen so far (including those past the limit).
    pub fn bytes_seen(&self) -> u64 {
        self.len
    }

    /// Whether more than `limit` bytes were written.
    pub fn over_limit(&self) -> bool {
        self.len > self.limit
    }

    /// Flushes and closes the temp file.
    pub async fn finish(mut self) -> std::io::Result<PendingBlob> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
        }
        Ok(PendingBlob {
            sha256: hex::encode(self.hasher.finalize()),
            len: self.len,
            head: self.head,
            is_text: self.text.finish(),
            needle_found: self.needle.as_ref().is_some_and(|n| n.found),
            tmp: TmpFile(self.tmp.0.take()),
        })
    }
}

/// A complete upload in a temp file, not yet committed.
#[derive(Debug)]
pub struct PendingBlob {
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Number of bytes.
    pub len: u64,
    /// The first bytes (for magic-byte detection).
    pub head: Vec<u8>,
    /// Whether the bytes are valid UTF-8 without NUL bytes.
    pub is_text: bool,
    /// Whether the needle given to [`BlobWriter::scan_for`] occurs.
    pub needle_found: bool,
    tmp: TmpFile,
}

impl PendingBlob {
    /// The temp file (until committed).
    pub fn tmp_path(&self) -> Option<&Path> {
        self.tmp.0.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(chunks: &[&[u8]]) -> bool {
        let mut t = TextCheck::default();
        for c in chunks {
            t.feed(c);
        }
        t.finish()
    }

    #[test]
    fn text_check_across_chunks() {
        let euro = "€".as_bytes();
        assert!(text(&[b"a,b\n", &euro[..1], &euro[1..], b"\n"]));
        assert!(!text(&[b"a\0b"]));
        // Windows-1252 and Latin-1, as Excel saves a CSV: text too
        assert!(text(&[b"caf\xe9;3 \x80\r\n"]));
        // UTF-16 with its BOM holds NUL bytes and is text
        assert!(text(&[b"\xff\xfe", b"a\0,\0"]));
    }

    #[test]
    fn needle_across_chunks() {
        let needle: &'static [u8] = b"EICAR-TEST";
        for split in 0..needle.len() {
            let mut s = NeedleScan {
                needle,
                tail: Vec::new(),
                found: false,
            };
            let mut data = b"xx".to_vec();
            data.extend_from_slice(needle);
            let cut = 2 + split;
            s.feed(&data[..cut]);
            s.feed(&data[cut..]);
            assert!(s.found, "split at {split}");
        }
        let mut s = NeedleScan {
            needle,
            tail: Vec::new(),
            found: false,
        };
        s.feed(b"EICAR-");
        s.feed(b"TES");
        assert!(!s.found);
    }

    #[tokio::test]
    async fn streamed_write_is_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.writer(10).await.unwrap();
        w.write(b"hello ").await.unwrap();
        w.write(b"world").await.unwrap();
        assert!(w.over_limit());
        drop(w);
        let mut w = store.writer(100).await.unwrap();
        w.write(b"hello ").await.unwrap();
        w.write(b"world").await.unwrap();
        let mut blob = w.finish().await.unwrap();
        assert_eq!(blob.len, 11);
        assert!(blob.is_text);
        store.commit(&mut blob).await.unwrap();
        let path = store.path(&blob.sha256);
        assert_eq!(std::fs::read(path).unwrap(), b"hello world");
        // Temp files are gone (the over-limit one was dropped too).
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
