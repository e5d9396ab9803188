//! Text from outside (file names, server answers, remote ids) shown on a line of
//! text: a log line, a table cell, a message.
//!
//! [`escape`] is the one rendering: every character that could end the line, start
//! a forged one, colour the terminal or reorder what follows is written as an
//! escape, and bytes that are not UTF-8 as `\xNN`, so a name can never break its
//! line or pass for another one. [`fit`] shortens that rendering in the middle to a
//! column's width, keeping the start and the end (with the extension). JSON output
//! never goes through here: it keeps the exact text (JSON escaping is enough there).
//!
//! [`lossless`] is a name as text where no escaping is wanted yet (a log field, a
//! recorded reason): exact when it is UTF-8, a byte that is not as `\xNN`. The text
//! log formatter escapes every field with [`escape`]; the JSON logs keep it as it is.
//!
//! A backslash is shown as it is, so escaping is idempotent: text already escaped,
//! or made by [`lossless`], comes out of [`escape`] unchanged, and
//! `escape(lossless(b)) == escape(b)`. The price is that a name holding a literal
//! `\n` looks like one holding a newline; the exact bytes are in `--json`
//! (`path_bytes_hex` for names that are not UTF-8).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Whether `c` is shown escaped: control characters (C0, among them newline, CR, tab
/// and ESC; DEL; C1), the bidirectional formatting characters (which reorder what
/// follows them on the line: U+202E RIGHT-TO-LEFT OVERRIDE among them), and the
/// Unicode line and paragraph separators (U+2028, U+2029: some viewers break lines
/// there).
pub fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// One shown unit: a character as it is, an escaped character, or a byte that is
/// not UTF-8. [`fit`] never splits one.
#[derive(Debug, Clone, Copy)]
enum Unit<'a> {
    Plain(&'a str),
    Escaped(char),
    Byte(u8),
}

impl Unit<'_> {
    /// Terminal columns.
    fn width(self) -> usize {
        match self {
            Unit::Plain(s) => s.chars().map(|c| c.width().unwrap_or(0)).sum(),
            Unit::Escaped('\n' | '\r' | '\t') => 2,
            // `\u{…}`: 4 plus the hex digits
            Unit::Escaped(c) => 4 + format!("{:x}", u32::from(c)).len(),
            Unit::Byte(_) => 4,
        }
    }
}

impl fmt::Display for Unit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Unit::Plain(s) => f.write_str(s),
            Unit::Escaped('\n') => f.write_str("\\n"),
            Unit::Escaped('\r') => f.write_str("\\r"),
            Unit::Escaped('\t') => f.write_str("\\t"),
            Unit::Escaped(c) => write!(f, "\\u{{{:x}}}", u32::from(c)),
            Unit::Byte(b) => write!(f, "\\x{b:02X}"),
        }
    }
}

fn units(bytes: &[u8]) -> impl Iterator<Item = Unit<'_>> {
    bytes.utf8_chunks().flat_map(|chunk| {
        let valid = chunk.valid();
        valid
            .char_indices()
            .map(move |(i, c)| {
                if is_escaped(c) {
                    Unit::Escaped(c)
                } else {
                    Unit::Plain(&valid[i..i + c.len_utf8()])
                }
            })
            .chain(chunk.invalid().iter().map(|&b| Unit::Byte(b)))
    })
}

/// `bytes` for a line of text: the characters of [`is_escaped`] as `\n`, `\r`, `\t`
/// or `\u{1b}`, bytes that are not UTF-8 as `\xFF`, everything else as it is.
/// Borrows when there is nothing to escape.
pub fn escape(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.chars().any(is_escaped) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for unit in units(bytes) {
        let _ = write!(out, "{unit}");
    }
    Cow::Owned(out)
}

/// `bytes` as text, exact when they are UTF-8; a byte that is not is written `\xFF`
/// (no `str` can hold it, and U+FFFD would lose it). Nothing else is escaped.
pub fn lossless(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "{}", Unit::Byte(*b));
        }
    }
    Cow::Owned(out)
}

/// [`lossless`] for a path.
pub fn lossless_path(path: &Path) -> Cow<'_, str> {
    lossless(path.as_os_str().as_bytes())
}

/// [`escape`] for text that is already a `str` (a server's message, a remote id).
pub fn escape_str(text: &str) -> Cow<'_, str> {
    escape(text.as_bytes())
}

/// [`escape`] for a path, from its bytes (so bytes that are not UTF-8 show as
/// `\xNN`, not as U+FFFD the way `Path::display` would).
pub fn escape_path(path: &Path) -> Cow<'_, str> {
    escape(path.as_os_str().as_bytes())
}

/// The width of `shown` (text from [`escape`] or our own) in terminal columns.
pub fn width(shown: &str) -> usize {
    shown.width()
}

/// `bytes` escaped as [`escape`] does, then shortened in the middle to at most
/// `columns` terminal columns: the start, `…`, and the end, each about half (so a
/// path keeps some of its file name, not only its folders, and the end keeps the
/// extension). An escape is never cut in two. Text that fits is returned as
/// [`escape`] shows it.
pub fn fit(bytes: &[u8], columns: usize) -> String {
    let units: Vec<(Unit<'_>, usize)> = units(bytes).map(|u| (u, u.width())).collect();
    let total: usize = units.iter().map(|(_, w)| w).sum();
    if total <= columns {
        return escape(bytes).into_owned();
    }
    if columns == 0 {
        return String::new();
    }
    let budget = columns - 1; // the `…`
    let tail_budget = budget / 2;
    let mut tail_width = 0;
    let mut tail_start = units.len();
    for (i, (_, w)) in units.iter().enumerate().rev() {
        if tail_width + w > tail_budget {
            break;
        }
        tail_width += w;
        tail_start = i;
    }
    let head_budget = budget - tail_width;
    let mut head_width = 0;
    let mut head_end = 0;
    for (i, (_, w)) in units.iter().enumerate() {
        if i >= tail_start || head_width + w > head_budget {
            break;
        }
        head_width += w;
        head_end = i + 1;
    }
    let mut out = String::new();
    for (unit, _) in units.get(..head_end).unwrap_or_default() {
        let _ = write!(out, "{unit}");
    }
    out.push('…');
    for (unit, _) in units.get(tail_start..).unwrap_or_default() {
        let _ = write!(out, "{unit}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain.pdf", "plain.pdf"),
            (b"line\nbreak.pdf", "line\\nbreak.pdf"),
            (b"carriage\rreturn.pdf", "carriage\\rreturn.pdf"),
            (b"tab\there.pdf", "tab\\there.pdf"),
            (b"\x1b[31mred\x1b[0m.pdf", "\\u{1b}[31mred\\u{1b}[0m.pdf"),
            (b"nul\x00.pdf", "nul\\u{0}.pdf"),
            (b"del\x7f.pdf", "del\\u{7f}.pdf"),
            ("c1\u{85}next-line.pdf".as_bytes(), "c1\\u{85}next-line.pdf"),
            (
                "invoice\u{202e}fdp.exe".as_bytes(),
                "invoice\\u{202e}fdp.exe",
            ),
            (
                "isolate\u{2066}x\u{2069}.pdf".as_bytes(),
                "isolate\\u{2066}x\\u{2069}.pdf",
            ),
            ("para\u{2029}sep.pdf".as_bytes(), "para\\u{2029}sep.pdf"),
            (b"caf\xe9.pdf", "caf\\xE9.pdf"),
            (b"\xff\xfe", "\\xFF\\xFE"),
            // a truncated UTF-8 sequence: each byte shown
            (b"cut\xe2\x82.pdf", "cut\\xE2\\x82.pdf"),
            // printable text of any script stays as it is
            ("résumé 日本語 🦀.pdf".as_bytes(), "résumé 日本語 🦀.pdf"),
            (br#"say "hi" it's.pdf"#, r#"say "hi" it's.pdf"#),
            // a backslash is kept: escaping twice changes nothing
            (b"a\\nb.pdf", "a\\nb.pdf"),
            (
                b"a.pdf\n2026-01-01T00:00:00Z  INFO forged line.pdf",
                "a.pdf\\n2026-01-01T00:00:00Z  INFO forged line.pdf",
            ),
        ];
        for (input, want) in cases {
            let got = escape(input);
            assert_eq!(got, *want, "{input:?}");
            assert!(!got.chars().any(is_escaped), "{got:?}");
            assert_eq!(escape(got.as_bytes()), got, "idempotent: {got:?}");
        }
        assert!(matches!(escape(b"plain.pdf"), Cow::Borrowed(_)));
    }

    #[test]
    fn fit_table() {
        let long = format!("{}-end.pdf", "statement ".repeat(19)); // 190 + 8 characters
        assert_eq!(long.chars().count(), 198);
        let cases: Vec<(Vec<u8>, usize, &str)> = vec![
            // fits: unchanged (escaped)
            (b"short.pdf".to_vec(), 48, "short.pdf"),
            (b"a\nb.pdf".to_vec(), 48, "a\\nb.pdf"),
            // long: start, `…`, end with the extension
            (
                long.clone().into_bytes(),
                48,
                "statement statement stat…ment statement -end.pdf",
            ),
            (
                b"abcdefghijklmnopqrstuvwxyz.pdf".to_vec(),
                12,
                "abcdef…z.pdf",
            ),
            (b"abcdefghijklmnopqrstuvwxyz".to_vec(), 10, "abcde…wxyz"),
            // a path keeps part of its file name
            (
                b"acct-demo/business_verification/statement-for-march.pdf".to_vec(),
                40,
                "acct-demo/business_v…ement-for-march.pdf",
            ),
            // an escape is never cut: `\xE9` and `\n` are whole or left out
            (
                b"\xe9\xe9\xe9\xe9\xe9\xe9\xe9\xe9.pdf".to_vec(),
                16,
                "\\xE9\\xE9….pdf",
            ),
            (b"aaaaa\nbbbbbbbbbbb.pdf".to_vec(), 12, "aaaaa…b.pdf"),
            // wide characters count two columns
            (
                "日本語の書類日本語の書類.pdf".as_bytes().to_vec(),
                12,
                "日本語….pdf",
            ),
            (b"abc".to_vec(), 0, ""),
            (b"abcdef".to_vec(), 1, "…"),
        ];
        for (input, columns, want) in cases {
            let got = fit(&input, columns);
            assert_eq!(
                got,
                want,
                "{:?} in {columns}",
                String::from_utf8_lossy(&input)
            );
            assert!(width(&got) <= columns, "{got:?} is wider than {columns}");
            assert!(!got.chars().any(is_escaped), "{got:?}");
        }
    }

    #[test]
    fn a_200_character_name_keeps_its_start_and_extension() {
        let name = format!("{}.pdf", "x".repeat(96) + &"y".repeat(100));
        assert_eq!(name.chars().count(), 200);
        for columns in [20, 40, 48, 64] {
            let got = fit(name.as_bytes(), columns);
            assert_eq!(got.chars().count(), columns, "{got}");
            assert!(got.starts_with("xxxx"), "{got}");
            assert!(got.ends_with("yy.pdf"), "{got}");
            assert!(got.contains('…'), "{got}");
        }
    }

    #[test]
    fn lossless_keeps_utf8_and_writes_bad_bytes() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain.pdf", "plain.pdf"),
            (b"line\nbreak\x1b.pdf", "line\nbreak\x1b.pdf"),
            (b"caf\xe9.pdf", "caf\\xE9.pdf"),
            (b"\xff\n", "\\xFF\n"),
        ];
        for (input, want) in cases {
            let got = lossless(input);
            assert_eq!(got, *want, "{input:?}");
            // what a text log shows of it is what a table shows of the bytes
            assert_eq!(escape(got.as_bytes()), escape(input), "{input:?}");
        }
        assert!(matches!(lossless(b"a\nb"), Cow::Borrowed(_)));
    }

    #[test]
    fn paths_show_their_bytes() {
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/in/caf\xe9\n.pdf"));
        assert_eq!(escape_path(path), "/in/caf\\xE9\\n.pdf");
        assert_eq!(lossless_path(path), "/in/caf\\xE9\n.pdf");
    }
}
