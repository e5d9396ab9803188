//! Streaming sha256 of a file, with type sniffing from its bytes (never its name).
//!
//! The file is read in [`CHUNK`]-sized pieces, so memory does not grow with its size.
//! After hashing, the path is stat'ed again: if size, mtime or inode changed (the file
//! was still being written, or replaced by an atomic save), the result is
//! [`HashOutcome::Changed`] and the caller starts over. A file of at most one chunk
//! comes back with its bytes ([`Hashed::content`]), so the uploader sends exactly
//! what was hashed without opening it again. This is blocking I/O: run it on
//! `tokio::task::spawn_blocking`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::scanner::FileStat;
use crate::error::{Error, Result};

/// Bytes read per call.
pub const CHUNK: usize = 64 * 1024;

/// The content type, decided from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Pdf,
    Png,
    Jpeg,
    Webp,
    Docx,
    Xlsx,
    /// UTF-8 text without NUL bytes (CSV or plain text).
    Text,
    /// Another recognised type (its MIME type).
    Other(&'static str),
    /// Binary data of no recognised type (or an empty file).
    Unknown,
}

const DOCX_MIME: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX_MIME: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

impl FileKind {
    /// The MIME type to send.
    pub fn mime(self) -> &'static str {
        match self {
            FileKind::Pdf => "application/pdf",
            FileKind::Png => "image/png",
            FileKind::Jpeg => "image/jpeg",
            FileKind::Webp => "image/webp",
            FileKind::Docx => DOCX_MIME,
            FileKind::Xlsx => XLSX_MIME,
            FileKind::Text => "text/plain",
            FileKind::Other(m) => m,
            FileKind::Unknown => "application/octet-stream",
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Pdf => "pdf",
            FileKind::Png => "png",
            FileKind::Jpeg => "jpeg",
            FileKind::Webp => "webp",
            FileKind::Docx => "docx",
            FileKind::Xlsx => "xlsx",
            FileKind::Text => "text",
            FileKind::Other(m) => m,
            FileKind::Unknown => "unknown binary data",
        }
    }

    /// Sniff from the first bytes (`is_text` says whether the whole file is UTF-8
    /// text without NULs).
    pub fn sniff(head: &[u8], is_text: bool) -> FileKind {
        if head.is_empty() {
            return FileKind::Unknown;
        }
        match infer::get(head).map(|t| t.mime_type()) {
            Some("application/pdf") => FileKind::Pdf,
            Some("image/png") => FileKind::Png,
            Some("image/jpeg") => FileKind::Jpeg,
            Some("image/webp") => FileKind::Webp,
            Some(DOCX_MIME) => FileKind::Docx,
            Some(XLSX_MIME) => FileKind::Xlsx,
            // infer knows a few text formats (html, xml, shell scripts): still text
            Some(_) | None if is_text => FileKind::Text,
            Some(m) => FileKind::Other(m),
            None => FileKind::Unknown,
        }
    }
}

/// A finished hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// Lower-case hex.
    pub sha256: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub kind: FileKind,
    /// The whole content of a file of at most [`CHUNK`] bytes: the bytes just
    /// hashed, which the uploader sends instead of reading the file again.
    pub content: Option<Content>,
}

/// The bytes of a small file, exactly as hashed (at most [`CHUNK`] of them).
#[derive(Clone, PartialEq, Eq)]
pub struct Content(pub Vec<u8>);

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Content({} bytes)", self.0.len())
    }
}

/// What hashing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOutcome {
    Done(Hashed),
    /// The file changed (or vanished) while it was read: start over.
    Changed {
        before: FileStat,
        after: Option<FileStat>,
    },
}

/// Tracks whether a byte stream is UTF-8 without NULs, across chunk boundaries.
#[derive(Debug, Default)]
struct TextCheck {
    ok: bool,
    carry: Vec<u8>,
}

impl TextCheck {
    fn new() -> Self {
        TextCheck {
            ok: true,
            carry: Vec::new(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if !self.ok {
            return;
        }
        if chunk.contains(&0) {
            self.ok = false;
            return;
        }
        // only the few carried bytes of a split character are copied
        let mut rest = chunk;
        if !self.carry.is_empty() {
            while !self.carry.is_empty() && !rest.is_empty() {
                self.carry.push(rest[0]);
                rest = &rest[1..];
                match std::str::from_utf8(&self.carry) {
                    Ok(_) => self.carry.clear(),
                    Err(e) if e.error_len().is_some() => {
                        self.ok = false;
                        return;
                    }
                    Err(_) if self.carry.len() >= 4 => {
                        self.ok = false;
                        return;
                    }
                    Err(_) => {}
                }
            }
        }
        match std::str::from_utf8(rest) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => {
                self.carry.extend_from_slice(&rest[e.valid_up_to()..]);
            }
            Err(_) => self.ok = false,
        }
    }

    fn finish(self) -> bool {
        self.ok && self.carry.is_empty()
    }
}

/// Hash the file at `path`, sniff its type, and check it did not change meanwhile.
pub fn hash_file(path: &Path) -> Result<HashOutcome> {
    hash_file_with(path, |_| {})
}

/// [`hash_file`] with a hook called after each chunk (tests use it to change the file).
fn hash_file_with(path: &Path, mut after_chunk: impl FnMut(u64)) -> Result<HashOutcome> {
    let before = FileStat::of_path(path).map_err(|e| Error::io("reading metadata of", path, e))?;
    let mut file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut hasher = Sha256::new();
    let mut text = TextCheck::new();
    let mut head: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        text.feed(chunk);
        if head.len() < CHUNK {
            let take = (CHUNK - head.len()).min(n);
            head.extend_from_slice(&chunk[..take]);
        }
        total += n as u64;
        after_chunk(total);
    }
    let after = match FileStat::of_path(path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("reading metadata of", path, e)),
    };
    let unchanged =
        after.as_ref().is_some_and(|a| a.same_content_as(&before)) && total == before.size;
    if !unchanged {
        return Ok(HashOutcome::Changed { before, after });
    }
    let kind = FileKind::sniff(&head, total > 0 && text.finish());
    // the head is the whole file when it fits in one chunk
    let content = (total <= CHUNK as u64).then_some(Content(head));
    Ok(HashOutcome::Done(Hashed {
        sha256: hex::encode(hasher.finalize()),
        size: total,
        mtime_ns: before.mtime_ns,
        kind,
        content,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCX: &[u8] =
        b"PK\x03\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0word/document.xml";

    fn hash_bytes(bytes: &[u8]) -> Hashed {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        match hash_file(&path).unwrap() {
            HashOutcome::Done(h) => h,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn hashes_like_sha256() {
        let h = hash_bytes(b"abc");
        assert_eq!(
            h.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(h.size, 3);
    }

    #[test]
    fn hashes_across_chunks() {
        let data: Vec<u8> = (0..(CHUNK * 3 + 17)).map(|i| (i % 251) as u8).collect();
        let h = hash_bytes(&data);
        assert_eq!(h.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(h.size, data.len() as u64);
        assert_eq!(h.content, None, "only files of one chunk are kept");
    }

    #[test]
    fn a_small_file_comes_back_with_the_bytes_hashed() {
        let data: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
        let h = hash_bytes(&data);
        assert_eq!(h.content, Some(Content(data.clone())));
        assert_eq!(h.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(hash_bytes(b"").content, Some(Content(Vec::new())));
    }

    #[test]
    fn sniffs_types_by_bytes() {
        let cases: &[(&[u8], FileKind)] = &[
            (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", FileKind::Pdf),
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", FileKind::Png),
            (b"\xff\xd8\xff\xe0\0\x10JFIF\0", FileKind::Jpeg),
            (b"RIFF\x24\0\0\0WEBPVP8 ", FileKind::Webp),
            (DOCX, FileKind::Docx),
            (b"name,amount\nal,1\n", FileKind::Text),
            ("caf\u{e9},\u{1f600}\n".as_bytes(), FileKind::Text),
            (b"a,b\0c", FileKind::Unknown),
            (b"\xff\xfe\x00\x01", FileKind::Unknown),
            (b"", FileKind::Unknown),
            (
                b"\x1f\x8b\x08\0\0\0\0\0",
                FileKind::Other("application/gzip"),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(hash_bytes(bytes).kind, *want, "{bytes:?}");
        }
    }

    #[test]
    fn text_split_across_chunks() {
        // a 4-byte character straddling the chunk boundary is still text
        let mut data = vec![b'a'; CHUNK - 2];
        data.extend_from_slice("\u{1f600}".as_bytes());
        data.extend_from_slice(b",x\n");
        assert_eq!(hash_bytes(&data).kind, FileKind::Text);
        // a NUL after the first chunk makes it binary
        let mut data = vec![b'a'; CHUNK + 10];
        data.push(0);
        assert_eq!(hash_bytes(&data).kind, FileKind::Unknown);
        // a truncated character at the end is not text
        let mut data = b"abc".to_vec();
        data.extend_from_slice(&"\u{1f600}".as_bytes()[..2]);
        assert_eq!(hash_bytes(&data).kind, FileKind::Unknown);
    }

    #[test]
    fn text_check_table() {
        let cases: &[(&[&[u8]], bool)] = &[
            (&[b"abc"], true),
            (&[b"ab\xc3", b"\xa9"], true),
            (&[b"\xf0", b"\x9f", b"\x98", b"\x80z"], true),
            (&[b"\xf0\x9f", b"z"], false),
            (&[b"\xc3"], false),
            (&[b"\xff"], false),
            (&[b"a", b"\0"], false),
        ];
        for (chunks, want) in cases {
            let mut t = TextCheck::new();
            chunks.iter().for_each(|c| t.feed(c));
            assert_eq!(t.finish(), *want, "{chunks:?}");
        }
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.pdf");
        let err = hash_file(&path).unwrap_err();
        assert!(err.to_string().contains("gone.pdf"), "{err}");
    }

    #[test]
    fn changed_while_hashing_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.pdf");
        let mut data = b"%PDF-1.4\n".to_vec();
        data.resize(CHUNK * 2, b'x');
        std::fs::write(&path, &data).unwrap();
        let p2 = path.clone();
        let outcome = hash_file_with(&path, move |done| {
            if done == CHUNK as u64 {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(&p2).unwrap();
                f.write_all(b"more").unwrap();
            }
        })
        .unwrap();
        match outcome {
            HashOutcome::Changed { before, after } => {
                assert_eq!(before.size, (CHUNK * 2) as u64);
                assert_eq!(after.unwrap().size, (CHUNK * 2 + 4) as u64);
            }
            other => panic!("expected Changed, got {other:?}"),
        }
    }

    #[test]
    fn vanished_while_hashing_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.pdf");
        std::fs::write(&path, vec![b'a'; CHUNK + 1]).unwrap();
        let p2 = path.clone();
        let outcome = hash_file_with(&path, move |done| {
            if done == CHUNK as u64 {
                std::fs::remove_file(&p2).unwrap();
            }
        })
        .unwrap();
        assert!(
            matches!(outcome, HashOutcome::Changed { after: None, .. }),
            "{outcome:?}"
        );
    }

    #[test]
    fn detects_replacement_after_stat() {
        // simulate "changed while hashing": compare against a stat taken before a rewrite
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.pdf");
        std::fs::write(&path, b"%PDF-1.4 one").unwrap();
        let before = FileStat::of_path(&path).unwrap();
        std::fs::write(dir.path().join("tmp"), b"%PDF-1.4 two, longer").unwrap();
        std::fs::rename(dir.path().join("tmp"), &path).unwrap();
        let after = FileStat::of_path(&path).unwrap();
        assert!(!after.same_content_as(&before));
    }
}
