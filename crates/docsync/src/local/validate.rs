//! The targets' local rules, checked before anything is sent.
//!
//! [`validate`] returns either an [`UploadPlan`] (the name to send, its content type,
//! the quota to re-check when the intent is committed) or [`Verdict::Invalid`] with a
//! reason a person can act on. Types are decided by the bytes ([`FileKind`]), never by
//! the extension. A name longer than Moov's 64 characters is shortened, keeping its
//! start and its extension and adding a short hash; the rename is returned so the
//! caller records it (`remote_name`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::hasher::FileKind;
use crate::model::{text, Target};

const MIB: u64 = 1024 * 1024;
/// Largest file moov-files accepts.
pub const MOOV_FILES_MAX_BYTES: u64 = 20 * MIB;
/// Largest image moov-images accepts.
pub const MOOV_IMAGES_MAX_BYTES: u64 = 16 * MIB;
/// Largest attachment.
pub const ATTACHMENTS_MAX_BYTES: u64 = 10 * MIB;
/// Moov's `fileName` maxLength (characters).
pub const MAX_NAME_CHARS: usize = 64;
/// Most files one Moov account may hold.
pub use crate::model::MOOV_FILES_PER_ACCOUNT;

/// What is known about a file when it is validated.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The local file name (no directories).
    pub file_name: &'a OsStr,
    pub size: u64,
    pub kind: FileKind,
    /// Files already counted against the account (0 where the store counts them when the intent is committed).
    pub quota_used: u64,
}

/// A name change to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// How to upload a valid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPlan {
    /// The name to send.
    pub file_name: String,
    /// Set when `file_name` differs from the local name.
    pub rename: Option<Rename>,
    /// The Content-Type of the file part.
    pub content_type: &'static str,
    pub kind: FileKind,
    /// The account's file limit, to re-check atomically with the upload intent.
    pub quota: Option<u64>,
}

/// The outcome of validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Upload(UploadPlan),
    /// Never send this file; the reason says what to do.
    Invalid(String),
}

/// A size for people: in the largest binary unit that keeps it at least 1.
fn human(bytes: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    match (unit, value >= 10.0) {
        (0, _) => format!("{bytes} bytes"),
        (_, true) => format!("{value:.0} {}", units[unit]),
        (_, false) => format!("{value:.1} {}", units[unit]),
    }
}

fn extension(name: &str) -> Option<String> {
    Path::new(name)
        .extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase)
}

/// The largest file `target` accepts.
pub fn max_bytes(target: &Target) -> u64 {
    match target {
        Target::MoovFiles(_) => MOOV_FILES_MAX_BYTES,
        Target::MoovImages(_) => MOOV_IMAGES_MAX_BYTES,
        Target::Attachments(_) => ATTACHMENTS_MAX_BYTES,
    }
}

/// Why a file of `size` bytes can never go to `target`, decided from its
/// metadata alone (before a byte is read); `None` if the size is fine.
pub fn size_problem(target: &Target, size: u64) -> Option<String> {
    let max = max_bytes(target);
    (size > max).then(|| {
        format!(
            "the file is {} ({size} bytes), more than the {} {} accepts; compress or split it",
            human(size),
            human(max),
            target.kind().as_str()
        )
    })
}

/// The file kind a name's extension promises, if it names one this checks.
fn promised_kind(name: &str) -> Option<FileKind> {
    Some(match extension(name)?.as_str() {
        "pdf" => FileKind::Pdf,
        "png" => FileKind::Png,
        "jpg" | "jpeg" => FileKind::Jpeg,
        "webp" => FileKind::Webp,
        "docx" => FileKind::Docx,
        "xlsx" => FileKind::Xlsx,
        "csv" | "txt" => FileKind::Text,
        _ => return None,
    })
}

/// The extension a file of `kind` should have.
fn extension_for(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Pdf => ".pdf",
        FileKind::Png => ".png",
        FileKind::Jpeg => ".jpg",
        FileKind::Webp => ".webp",
        FileKind::Docx => ".docx",
        FileKind::Xlsx => ".xlsx",
        FileKind::Text => ".csv or .txt",
        FileKind::Other(_) | FileKind::Unknown => "",
    }
}

/// Check `candidate` against `target`'s rules.
pub fn validate(target: &Target, candidate: &Candidate<'_>) -> Verdict {
    let kind_name = target.kind().as_str();
    if candidate.size == 0 {
        return Verdict::Invalid("the file is empty; save the document into it again".into());
    }
    let (allowed, what): (&[FileKind], &str) = match target {
        Target::MoovFiles(_) => (
            &[FileKind::Text, FileKind::Jpeg, FileKind::Pdf, FileKind::Png],
            "csv, jpeg, pdf or png",
        ),
        Target::MoovImages(_) => (
            &[FileKind::Png, FileKind::Jpeg, FileKind::Webp],
            "png, jpeg or webp",
        ),
        Target::Attachments(_) => (
            &[
                FileKind::Text,
                FileKind::Pdf,
                FileKind::Docx,
                FileKind::Xlsx,
            ],
            "csv, txt, pdf, docx or xlsx",
        ),
    };
    if let Some(problem) = size_problem(target, candidate.size) {
        return Verdict::Invalid(problem);
    }
    if !allowed.contains(&candidate.kind) {
        return Verdict::Invalid(format!(
            "the content is {}, but {kind_name} accepts only {what} (checked by the file's bytes, \
             not its extension); export or convert it to one of those",
            candidate.kind.name()
        ));
    }

    let local = candidate.file_name.to_string_lossy();
    // The bytes decide the type; a name that promises another type would
    // mislead whoever opens the upload, so it is refused with the fix.
    if promised_kind(&local).is_some_and(|k| k != candidate.kind) {
        let ext = extension(&local).unwrap_or_default();
        return Verdict::Invalid(format!(
            "content is {}, name says .{ext}: rename it to {}",
            candidate.kind.name().to_ascii_uppercase(),
            extension_for(candidate.kind)
        ));
    }
    let (mut name, mut rename_reason) = sendable_name(candidate.file_name.as_bytes());
    if name.chars().count() > MAX_NAME_CHARS {
        rename_reason.push(format!(
            "the name is longer than {MAX_NAME_CHARS} characters"
        ));
        name = shorten_name(&name, MAX_NAME_CHARS);
    }
    let rename = (!rename_reason.is_empty()).then(|| Rename {
        from: text::lossless(candidate.file_name.as_bytes()).into_owned(),
        to: name.clone(),
        reason: rename_reason.join(" and "),
    });

    let quota = match target {
        Target::MoovFiles(t) => {
            if candidate.quota_used >= MOOV_FILES_PER_ACCOUNT {
                return Verdict::Invalid(format!(
                    "account {} already holds {} files, the most Moov allows is {MOOV_FILES_PER_ACCOUNT}; \
                     remove files from the account or use another account",
                    t.account_id, candidate.quota_used
                ));
            }
            Some(MOOV_FILES_PER_ACCOUNT)
        }
        _ => None,
    };

    let content_type = match (target, candidate.kind) {
        (Target::MoovFiles(_), FileKind::Text) => "text/csv",
        (Target::Attachments(_), FileKind::Text) if extension(&name).as_deref() == Some("csv") => {
            "text/csv"
        }
        (_, kind) => kind.mime(),
    };
    Verdict::Upload(UploadPlan {
        file_name: name,
        rename,
        content_type,
        kind: candidate.kind,
        quota,
    })
}

/// The name to send for a local name's bytes, and why it differs (empty if it does
/// not).
///
/// - A name that is not UTF-8 (written in Latin-1, say) is sent percent-encoded:
///   each byte that is not UTF-8 as `%XX`, and a `%` of the name as `%25`, so the
///   local bytes can be read back from the sent name (U+FFFD would lose them and
///   make two such names alike). Not `\xNN`, the way logs and tables show the byte:
///   a backslash is an escape inside a multipart header's quoted filename, and
///   servers disagree on undoing it (Go's `mime` does, multer keeps `\\`, some
///   take it for a Windows path separator); a `%` arrives as it is everywhere.
///   The exact bytes also stay in docsync's record (`status --json`: `path_bytes_hex`).
/// - A control character (a newline, a tab) cannot travel in a multipart header
///   (the server would refuse the whole request): sent as `_`.
fn sendable_name(bytes: &[u8]) -> (String, Vec<String>) {
    let utf8 = std::str::from_utf8(bytes).is_ok();
    let mut name = String::with_capacity(bytes.len());
    let mut not_utf8: Vec<u8> = Vec::new();
    let mut control = false;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                c if c.is_control() => {
                    control = true;
                    name.push('_');
                }
                '%' if !utf8 => name.push_str("%25"),
                c => name.push(c),
            }
        }
        for b in chunk.invalid() {
            name.push_str(&format!("%{b:02X}"));
            not_utf8.push(*b);
        }
    }
    let mut reasons = Vec::new();
    if let Some(first) = not_utf8.first() {
        let which = match not_utf8.len() {
            1 => format!("its byte 0x{first:02X} was sent percent-encoded, as %{first:02X}"),
            n => format!(
                "its {n} bytes that are not were sent percent-encoded, as %XX \
                 (0x{first:02X} as %{first:02X})"
            ),
        };
        reasons.push(format!(
            "the name is not valid UTF-8: {which}, and a % of the name as %25; \
             the exact name is in `docsync status --json` (path_bytes_hex)"
        ));
    }
    if control {
        reasons.push(
            "the name contains control characters (such as a newline or tab), sent as `_`"
                .to_owned(),
        );
    }
    (name, reasons)
}

/// Shorten `name` to at most `max` characters: keep its start and its extension, and
/// put 8 hex digits of the name's sha256 between them so distinct long names stay
/// distinct. Names that fit are returned unchanged.
pub fn shorten_name(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_owned();
    }
    let hash = hex::encode(Sha256::digest(name.as_bytes()));
    let tag = hash.get(..8).unwrap_or(&hash);
    // keep a short, plain extension; a long or odd one is treated as part of the name
    let ext = Path::new(name)
        .extension()
        .and_then(OsStr::to_str)
        .filter(|e| {
            !e.is_empty() && e.chars().count() <= 10 && e.chars().all(|c| c.is_ascii_alphanumeric())
        });
    let suffix = match ext {
        Some(ext) => format!("-{tag}.{ext}"),
        None => format!("-{tag}"),
    };
    let stem_len = max.saturating_sub(suffix.chars().count());
    let stem_source = match ext {
        Some(ext) => &name[..name.len() - ext.len() - 1],
        None => name,
    };
    let stem: String = stem_source.chars().take(stem_len).collect();
    // never end on part of a `%XX` (a byte that is not UTF-8, see `sendable_name`)
    let stem = match stem.char_indices().rev().take(2).find(|(_, c)| *c == '%') {
        Some((cut, _)) => stem.get(..cut).unwrap_or_default(),
        None => &stem,
    };
    let stem = stem.trim_end_matches([' ', '.', '-', '_']);
    let mut out = format!("{stem}{suffix}");
    if out.chars().count() > max {
        out = out.chars().skip(out.chars().count() - max).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        AttachmentsTarget, FileMetadata, FilePurpose, MoovFilesTarget, MoovImagesTarget,
    };

    fn files() -> Target {
        Target::MoovFiles(MoovFilesTarget {
            account_id: "00000000-0000-4000-8000-00000000acc1".into(),
            file_purpose: FilePurpose::BusinessVerification,
            metadata: FileMetadata::default(),
        })
    }
    fn images() -> Target {
        Target::MoovImages(MoovImagesTarget {
            account_id: "00000000-0000-4000-8000-00000000acc1".into(),
            replace_on_change: true,
            disable_on_delete: false,
        })
    }
    fn attachments() -> Target {
        Target::Attachments(AttachmentsTarget {
            user_id: "user-1".into(),
            persist: true,
        })
    }

    fn check(target: &Target, name: &str, size: u64, kind: FileKind, quota_used: u64) -> Verdict {
        validate(
            target,
            &Candidate {
                file_name: OsStr::new(name),
                size,
                kind,
                quota_used,
            },
        )
    }

    /// (target, name, size, kind, quota used, Ok(content type) | Err(part of the reason))
    type Case = (
        Target,
        &'static str,
        u64,
        FileKind,
        u64,
        std::result::Result<&'static str, &'static str>,
    );

    #[test]
    fn table() {
        use FileKind::*;
        // (target, name, size, kind, quota used, Ok(content type) | Err(substring of the reason))
        let cases: Vec<Case> = vec![
            (files(), "a.pdf", 10, Pdf, 0, Ok("application/pdf")),
            (files(), "a.csv", 10, Text, 0, Ok("text/csv")),
            (files(), "a.jpg", 10, Jpeg, 0, Ok("image/jpeg")),
            (files(), "a.png", 10, Png, 0, Ok("image/png")),
            // the bytes decide; a name promising another type is refused with the fix
            (
                files(),
                "scan.pdf",
                10,
                Png,
                0,
                Err("content is PNG, name says .pdf: rename it to .png"),
            ),
            (
                files(),
                "photo.JPEG",
                10,
                Pdf,
                0,
                Err("content is PDF, name says .jpeg: rename it to .pdf"),
            ),
            (files(), "export.txt", 10, Pdf, 0, Err("rename it to .pdf")),
            (
                files(),
                "report.pdf",
                10,
                Text,
                0,
                Err("rename it to .csv or .txt"),
            ),
            (files(), "scan", 10, Png, 0, Ok("image/png")), // no extension: nothing promised
            (files(), "scan.dat", 10, Pdf, 0, Ok("application/pdf")),
            (files(), "a.pdf", 0, Pdf, 0, Err("empty")),
            (files(), "a.pdf", 20 * MIB, Pdf, 0, Ok("application/pdf")),
            (
                files(),
                "a.pdf",
                20 * MIB + 1,
                Pdf,
                0,
                Err("more than the 20 MiB"),
            ),
            (
                files(),
                "a.webp",
                10,
                Webp,
                0,
                Err("accepts only csv, jpeg, pdf or png"),
            ),
            (files(), "a.pdf", 10, Unknown, 0, Err("unknown binary data")),
            (files(), "a.docx", 10, Docx, 0, Err("the content is docx")),
            (files(), "a.pdf", 10, Pdf, 49, Ok("application/pdf")),
            (files(), "a.pdf", 10, Pdf, 50, Err("already holds 50 files")),
            (images(), "a.png", 10, Png, 0, Ok("image/png")),
            (images(), "a.webp", 10, Webp, 0, Ok("image/webp")),
            (images(), "a.jpg", 16 * MIB, Jpeg, 0, Ok("image/jpeg")),
            (images(), "a.jpg", 16 * MIB + 1, Jpeg, 0, Err("16 MiB")),
            (images(), "a.pdf", 10, Pdf, 0, Err("png, jpeg or webp")),
            (images(), "a.png", 10, Png, 500, Ok("image/png")), // the file quota is moov-files only
            (attachments(), "a.csv", 10, Text, 0, Ok("text/csv")),
            (attachments(), "a.txt", 10, Text, 0, Ok("text/plain")),
            (attachments(), "a.pdf", 10, Pdf, 0, Ok("application/pdf")),
            (attachments(), "a.docx", 10, Docx, 0, Ok(DOCX_MIME_FOR_TEST)),
            (attachments(), "a.xlsx", 10, Xlsx, 0, Ok(XLSX_MIME_FOR_TEST)),
            (
                attachments(),
                "a.png",
                10,
                Png,
                0,
                Err("csv, txt, pdf, docx or xlsx"),
            ),
            (attachments(), "a.pdf", 10 * MIB + 1, Pdf, 0, Err("10 MiB")),
            (attachments(), "a.txt", 0, Text, 0, Err("empty")),
        ];
        for (i, (target, name, size, kind, used, want)) in cases.into_iter().enumerate() {
            let got = check(&target, name, size, kind, used);
            match (&got, want) {
                (Verdict::Upload(plan), Ok(ct)) => {
                    assert_eq!(plan.content_type, ct, "case {i}");
                    assert_eq!(plan.file_name, name, "case {i}");
                    assert!(plan.rename.is_none(), "case {i}");
                }
                (Verdict::Invalid(reason), Err(needle)) => {
                    assert!(
                        reason.contains(needle),
                        "case {i}: {reason:?} lacks {needle:?}"
                    )
                }
                _ => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }

    const DOCX_MIME_FOR_TEST: &str =
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    const XLSX_MIME_FOR_TEST: &str =
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

    #[test]
    fn quota_is_only_for_moov_files() {
        let Verdict::Upload(plan) = check(&files(), "a.pdf", 1, FileKind::Pdf, 0) else {
            panic!()
        };
        assert_eq!(plan.quota, Some(50));
        let Verdict::Upload(plan) = check(&images(), "a.png", 1, FileKind::Png, 0) else {
            panic!()
        };
        assert_eq!(plan.quota, None);
    }

    #[test]
    fn long_names_are_shortened_and_recorded() {
        let long = format!("{}.pdf", "quarterly financial statement ".repeat(4));
        let Verdict::Upload(plan) = check(&files(), &long, 10, FileKind::Pdf, 0) else {
            panic!()
        };
        assert!(
            plan.file_name.chars().count() <= MAX_NAME_CHARS,
            "{}",
            plan.file_name
        );
        assert!(plan.file_name.ends_with(".pdf"));
        assert!(plan.file_name.starts_with("quarterly financial statement"));
        let rename = plan.rename.unwrap();
        assert_eq!(rename.from, long);
        assert_eq!(rename.to, plan.file_name);
        assert!(rename.reason.contains("64"));
    }

    #[test]
    fn shorten_table() {
        let cases: &[(&str, usize)] = &[
            ("short.pdf", 64),
            (&"a".repeat(64), 64),
            (&"a".repeat(65), 64),
            (&format!("{}.pdf", "é".repeat(100)), 64),
            (&format!("{}.verylongextension", "x".repeat(80)), 64),
            (&format!("{}.pdf", "x".repeat(80)), 12),
            (&format!("{}.pdf", "x".repeat(80)), 5),
            (
                "...........................................................................",
                64,
            ),
        ];
        for (name, max) in cases {
            let s = shorten_name(name, *max);
            assert!(s.chars().count() <= *max, "{name} -> {s}");
            if name.chars().count() <= *max {
                assert_eq!(&s, name);
            }
        }
        // distinct long names stay distinct
        let a = shorten_name(&format!("{}a.pdf", "x".repeat(80)), 64);
        let b = shorten_name(&format!("{}b.pdf", "x".repeat(80)), 64);
        assert_ne!(a, b);
        // deterministic
        assert_eq!(a, shorten_name(&format!("{}a.pdf", "x".repeat(80)), 64));
    }

    #[test]
    fn control_characters_are_replaced_and_recorded() {
        let Verdict::Upload(plan) = check(&files(), "line\nbreak\t.pdf", 3, FileKind::Pdf, 0)
        else {
            panic!()
        };
        assert_eq!(plan.file_name, "line_break_.pdf");
        assert!(plan.rename.unwrap().reason.contains("control characters"));
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_are_renamed() {
        use std::os::unix::ffi::OsStrExt;
        let v = validate(
            &files(),
            &Candidate {
                file_name: OsStr::from_bytes(b"caf\xe9.pdf"),
                size: 3,
                kind: FileKind::Pdf,
                quota_used: 0,
            },
        );
        let Verdict::Upload(plan) = v else {
            panic!("{v:?}")
        };
        // lossless: the byte percent-encoded (and a `%` of such a name), said so
        assert_eq!(plan.file_name, "caf%E9.pdf");
        let rename = plan.rename.unwrap();
        assert_eq!(rename.from, "caf\\xE9.pdf");
        assert!(
            rename
                .reason
                .contains("not valid UTF-8: its byte 0xE9 was sent percent-encoded, as %E9"),
            "{}",
            rename.reason
        );

        let send = |bytes: &[u8]| match validate(
            &files(),
            &Candidate {
                file_name: OsStr::from_bytes(bytes),
                size: 3,
                kind: FileKind::Pdf,
                quota_used: 0,
            },
        ) {
            Verdict::Upload(plan) => plan,
            other => panic!("{other:?}"),
        };
        assert_eq!(send(b"50% caf\xe9.pdf").file_name, "50%25 caf%E9.pdf");
        // a UTF-8 name keeps its `%`
        assert_eq!(send(b"50% off.pdf").file_name, "50% off.pdf");
        assert!(send(b"50% off.pdf").rename.is_none());
        // names that differ only in their bad bytes stay distinct, also when shortened
        assert_ne!(
            send(b"caf\xe9.pdf").file_name,
            send(b"caf\xe8.pdf").file_name
        );
        let long = |b: u8| {
            [&b"x"[..]; 55]
                .concat()
                .into_iter()
                .chain([b; 4])
                .chain(*b".pdf")
                .collect::<Vec<u8>>()
        };
        let (a, b) = (send(&long(0xe9)), send(&long(0xe8)));
        assert_ne!(a.file_name, b.file_name);
        for plan in [a, b] {
            assert!(
                plan.file_name.chars().count() <= MAX_NAME_CHARS,
                "{}",
                plan.file_name
            );
            assert!(plan.file_name.ends_with(".pdf"), "{}", plan.file_name);
            let reason = plan.rename.unwrap().reason;
            assert!(
                reason.contains("its 4 bytes that are not were sent percent-encoded, as %XX"),
                "{reason}"
            );
            assert!(reason.contains("longer than 64"), "{reason}");
        }
    }

    #[test]
    fn a_shortened_name_never_ends_on_half_an_escape() {
        for pad in 40..64 {
            let name = format!("{}{}.pdf", "x".repeat(pad), "%E9".repeat(10));
            let short = shorten_name(&name, MAX_NAME_CHARS);
            let stem = short.rsplit_once('-').map(|(s, _)| s).unwrap_or(&short);
            let tail = stem.get(stem.len().saturating_sub(2)..).unwrap_or(stem);
            assert!(!tail.contains('%'), "{name} -> {short}");
        }
    }
}
