//! Streaming sha256 of a file, with type sniffing from its bytes (never its name).
//!
//! The file is read in [`CHUNK`]-sized pieces. After hashing, the path is stat'ed
//! again: if size, mtime or inode changed (the file was still being written, or
//! replaced by an atomic save), the result is [`HashOutcome::Changed`] and the
//! caller starts over. A file of at most [`KEEP_BYTES`] comes back with its bytes
//! ([`Hashed::content`]): it is read once, and the uploader sends exactly what was
//! hashed without opening it again. A larger one is streamed from disk when sent,
//! so memory does not grow with its size. This is blocking I/O: run it on
//! `tokio::task::spawn_blocking`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::scanner::FileStat;
use crate::error::{Error, Result};

/// Bytes read per call.
pub const CHUNK: usize = 64 * 1024;

/// The largest file whose bytes are kept from hashing to sending. Reading such
/// a file once instead of twice (and sending it without the blocking-pool trip
/// per chunk a streamed file costs) is worth holding its bytes: at most
/// `2 x concurrency` rows are in hand, so at most that many MiB.
pub const KEEP_BYTES: u64 = 1024 * 1024;

/// The content type, decided from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Pdf,
    Png,
    Jpeg,
    Webp,
    Docx,
    Xlsx,
    /// Text in a common encoding (CSV or plain text): see `TextCheck`.
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

    /// Sniff from the first bytes (`is_text` says whether the whole file is text
    /// in a common encoding). A known binary signature wins over `is_text`.
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
    /// The whole content of a file of at most [`KEEP_BYTES`]: the bytes just
    /// hashed, which the uploader sends instead of reading the file again.
    pub content: Option<Content>,
    /// The path's stat right after hashing (inode included): what the path must
    /// still show when the upload intent is committed.
    pub stat: FileStat,
}

/// The bytes of a small file, exactly as hashed (at most [`KEEP_BYTES`] of
/// them); cloned without a copy.
#[derive(Clone, PartialEq, Eq)]
pub struct Content(pub bytes::Bytes);

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
    /// Its metadata says it is larger than the limit: not read at all.
    TooLarge {
        size: u64,
    },
}

/// Tracks whether a byte stream is text in a common encoding: UTF-16 with a
/// byte-order mark, or 8-bit text (UTF-8 with or without a BOM, Latin-1,
/// Windows-1252 ...): no NUL byte and no control character but tab, line feed,
/// form feed, carriage return and the DOS end-of-file mark (0x1A). Which 8-bit
/// encoding it is does not matter here: the bytes are sent as they are.
#[derive(Debug)]
struct TextCheck {
    /// Set from the first two bytes: UTF-16 (with its BOM) may hold NUL bytes.
    utf16: Option<bool>,
    ok: bool,
}

impl TextCheck {
    fn new() -> Self {
        TextCheck {
            utf16: None,
            ok: true,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        let utf16 = *self.utf16.get_or_insert_with(|| {
            chunk.starts_with(&[0xff, 0xfe]) || chunk.starts_with(&[0xfe, 0xff])
        });
        if utf16 || !self.ok {
            return;
        }
        self.ok = !chunk
            .iter()
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | 0x1a));
    }

    fn finish(self) -> bool {
        self.ok
    }
}

/// Hash the file at `path`, sniff its type, and check it did not change meanwhile.
///
/// Metadata first: a file whose stat says it is larger than `max_bytes` is
/// [`HashOutcome::TooLarge`] without a byte read. Otherwise at most one byte
/// more than the stat's size is read, so a file that grows while it is read
/// (and comes back [`HashOutcome::Changed`]) is never read past `max_bytes + 1`.
pub fn hash_file(path: &Path, max_bytes: u64) -> Result<HashOutcome> {
    hash_file_with(path, max_bytes, |_| {})
}

/// [`hash_file`] with a hook called after each chunk (tests use it to change the file).
fn hash_file_with(
    path: &Path,
    max_bytes: u64,
    mut after_chunk: impl FnMut(u64),
) -> Result<HashOutcome> {
    let before = FileStat::of_path(path).map_err(|e| Error::io("reading metadata of", path, e))?;
    if before.size > max_bytes {
        return Ok(HashOutcome::TooLarge { size: before.size });
    }
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut file = file.take(before.size.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut text = TextCheck::new();
    // a file kept whole is read straight into its bytes; of another, only
    // the head is kept (for sniffing its type)
    let keep = before.size <= KEEP_BYTES;
    let mut head: Vec<u8> = Vec::with_capacity(if keep {
        usize::try_from(before.size)
            .unwrap_or(CHUNK)
            .saturating_add(1)
    } else {
        CHUNK
    });
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
        if keep {
            head.extend_from_slice(chunk);
        } else if head.len() < CHUNK {
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
    let after = match after {
        Some(a) if a.same_content_as(&before) && total == before.size => a,
        after => return Ok(HashOutcome::Changed { before, after }),
    };
    let kind = FileKind::sniff(
        head.get(..CHUNK).unwrap_or(&head),
        total > 0 && text.finish(),
    );
    let content = keep.then(|| Content(head.into()));
    Ok(HashOutcome::Done(Hashed {
        sha256: hex::encode(hasher.finalize()),
        size: total,
        mtime_ns: before.mtime_ns,
        kind,
        content,
        stat: after,
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
        match hash_file(&path, u64::MAX).unwrap() {
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
        assert_eq!(h.content.map(|c| c.0.to_vec()), Some(data));
    }

    #[test]
    fn a_file_up_to_the_limit_comes_back_with_the_bytes_hashed() {
        let data: Vec<u8> = (0..KEEP_BYTES).map(|i| (i % 251) as u8).collect();
        let h = hash_bytes(&data);
        assert_eq!(h.content, Some(Content(data.clone().into())));
        assert_eq!(h.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(hash_bytes(b"").content, Some(Content(Vec::new().into())));
        // one byte more: streamed from disk when sent, its bytes not held
        let larger: Vec<u8> = (0..=KEEP_BYTES).map(|i| (i % 251) as u8).collect();
        let h = hash_bytes(&larger);
        assert_eq!(h.content, None);
        assert_eq!(h.sha256, hex::encode(Sha256::digest(&larger)));
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
            (b"\xff\xfe\x00\x01", FileKind::Text),
            (b"\x01\x02\x03\x04", FileKind::Unknown),
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
        // a control character after the first chunk makes it binary too
        let mut data = vec![b'a'; CHUNK + 10];
        data.push(0x07);
        assert_eq!(hash_bytes(&data).kind, FileKind::Unknown);
    }

    #[test]
    fn text_check_table() {
        let cases: &[(&[&[u8]], bool)] = &[
            (&[b"abc"], true),
            (&[b"ab\xc3", b"\xa9"], true),
            (&[b"\xf0", b"\x9f", b"\x98", b"\x80z"], true),
            (&[b"a\tb\r\n\x0c\x1a"], true),
            (&[b"a", b"\0"], false),
            (&[b"a", b"\x1b[0m"], false),
            (&[b"\xff\xfe", b"a\0"], true),
        ];
        for (chunks, want) in cases {
            let mut t = TextCheck::new();
            chunks.iter().for_each(|c| t.feed(c));
            assert_eq!(t.finish(), *want, "{chunks:?}");
        }
    }

    /// CSVs as spreadsheets and editors save them: each is text, whatever the
    /// encoding; only NUL bytes (outside UTF-16) or a binary signature are not.
    #[test]
    fn text_in_any_common_encoding() {
        let cases: &[(&str, &[u8], FileKind)] = &[
            (
                "utf-8",
                "name;amount\ncaf\u{e9};3 \u{20ac}\n".as_bytes(),
                FileKind::Text,
            ),
            (
                "utf-8 with bom",
                b"\xef\xbb\xbfname;amount\ncaf\xc3\xa9;3\n",
                FileKind::Text,
            ),
            // Latin-1: e-acute is 0xE9 (invalid as UTF-8)
            ("latin-1", b"name;amount\r\ncaf\xe9;3\r\n", FileKind::Text),
            // Windows-1252, as Excel saves it: the euro sign is 0x80
            (
                "windows-1252",
                b"name;amount\r\ncaf\xe9;3 \x80\r\n",
                FileKind::Text,
            ),
            (
                "utf-16le with bom",
                b"\xff\xfen\0a\0m\0e\0;\0\xe9\0\r\0\n\0",
                FileKind::Text,
            ),
            (
                "utf-16be with bom",
                b"\xfe\xff\0n\0a\0m\0e\0;\0\xe9\0\r\0\n",
                FileKind::Text,
            ),
            ("nul bytes", b"name;amount\n\0\0\0\n", FileKind::Unknown),
            (
                "png signature",
                b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
                FileKind::Png,
            ),
            (
                "pdf signature",
                b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
                FileKind::Pdf,
            ),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(hash_bytes(bytes).kind, *want, "{what}");
        }
    }

    /// The size from metadata decides first: a sparse 1 TiB file over the
    /// limit is not read at all.
    #[test]
    fn a_file_over_the_limit_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.pdf");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(1 << 40).unwrap();
        let mut chunks = 0;
        let outcome = hash_file_with(&path, 20 << 20, |_| chunks += 1).unwrap();
        assert_eq!(outcome, HashOutcome::TooLarge { size: 1 << 40 });
        assert_eq!(chunks, 0, "not a byte read");
    }

    /// A file that grows while it is read is never read past its first size
    /// plus one byte (so never past the limit + 1), and starts over.
    #[test]
    fn a_growing_file_is_not_read_past_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.pdf");
        std::fs::write(&path, vec![b'%'; CHUNK * 2]).unwrap();
        let limit = (CHUNK * 2) as u64;
        let p2 = path.clone();
        let mut read = 0;
        let outcome = hash_file_with(&path, limit, |done| {
            read = done;
            if done == CHUNK as u64 {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(&p2).unwrap();
                f.write_all(&vec![b'x'; CHUNK * 4]).unwrap();
            }
        })
        .unwrap();
        assert!(
            matches!(outcome, HashOutcome::Changed { .. }),
            "{outcome:?}"
        );
        assert!(
            read <= limit + 1,
            "read {read} bytes of a file limited to {limit}"
        );
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.pdf");
        let err = hash_file(&path, u64::MAX).unwrap_err();
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
        let outcome = hash_file_with(&path, u64::MAX, move |done| {
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
        let outcome = hash_file_with(&path, u64::MAX, move |done| {
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
