//! Hostile file names through the real binary: a name holding a newline and a
//! forged log line, a 200-character name, a name that is not UTF-8, and one with an
//! ANSI escape and a right-to-left override. Text logs and tables show them
//! escaped (one event is one line; no name stretches the table), `--json` and the
//! JSON logs keep them exact, and every one is uploaded, the record saying what
//! was sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use serde_json::Value;

use crate::harness::{pdf, TestSandbox, Workspace};

const FORGED: &[u8] = b"a.pdf\n2026-01-01T00:00:00Z  INFO forged line.pdf";
const FORGED_SHOWN: &str = r"a.pdf\n2026-01-01T00:00:00Z  INFO forged line.pdf";
const LATIN1: &[u8] = b"caf\xe9 invoice.pdf";
const LATIN1_SHOWN: &str = r"caf\xE9 invoice.pdf";
const ANSI_BIDI: &str = "\u{1b}[31mred\u{202e}fdp.pdf";
const ANSI_BIDI_SHOWN: &str = r"\u{1b}[31mred\u{202e}fdp.pdf";
/// The PATH column's most, in terminal columns (`cli/status.rs`).
const PATH_COLUMNS: usize = 48;

/// 200 characters, its start and its end easy to tell apart.
fn long_name() -> String {
    let mut name = String::from("start-of-a-very-long-name");
    while name.chars().count() < 200 - "-end-of-it.pdf".len() {
        name.push('x');
    }
    name.push_str("-end-of-it.pdf");
    assert_eq!(name.chars().count(), 200);
    name
}

/// A character a line of text must not hold raw (control, bidi, line separators).
fn hostile(c: char) -> bool {
    docsync::model::text::is_escaped(c)
}

/// `2026-05-01T10:11:12.123456Z  INFO …`: a timestamp with fractions and a level.
fn is_log_line(line: &str) -> bool {
    let Some((time, rest)) = line.split_once(' ') else {
        return false;
    };
    let level = rest.trim_start();
    time.len() > 20
        && time.ends_with('Z')
        && time.as_bytes().get(10) == Some(&b'T')
        && time.contains('.')
        && time
            .get(..4)
            .is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit()))
        && ["TRACE ", "DEBUG ", "INFO ", "WARN ", "ERROR "]
            .iter()
            .any(|l| level.starts_with(l))
}

#[test]
fn hostile_names_are_escaped_in_logs_and_tables_and_exact_in_json() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    let long = long_name();
    let names: [(&[u8], String); 4] = [
        (FORGED, FORGED_SHOWN.into()),
        (long.as_bytes(), long.clone()),
        (LATIN1, LATIN1_SHOWN.into()),
        (ANSI_BIDI.as_bytes(), ANSI_BIDI_SHOWN.into()),
    ];
    for (i, (name, _)) in names.iter().enumerate() {
        std::fs::write(
            w.inbox.join(OsStr::from_bytes(name)),
            pdf(&format!("hostile {i}")),
        )
        .unwrap();
    }

    let out = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("sync: 4 files: 4 approved"), "{out}");

    // the text log: every line a real log line, none forged, nothing raw
    assert!(!out.stderr.is_empty(), "{out}");
    for line in out.stderr.lines() {
        assert!(is_log_line(line), "not a log line: {line:?}\n{out}");
        assert!(
            !line.starts_with("2026-01-01T00:00:00Z"),
            "a forged line: {line:?}\n{out}"
        );
        assert!(!line.chars().any(hostile), "raw in the log: {line:?}");
    }
    for (_, shown) in &names {
        assert!(
            out.stderr.contains(&format!("path={shown}")),
            "{shown} not logged escaped\n{out}"
        );
    }
    assert!(!out.stderr.contains('\u{fffd}'), "{out}");

    // `status`: escaped, one line per row, the path column at most 48 wide
    let out = w.run(["status"]);
    assert_eq!(out.code(), Some(0), "{out}");
    // the first line names the API the rows were synced against
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("API: "), "{out}");
    lines.remove(0);
    assert_eq!(lines.len(), 1 + names.len(), "{out}");
    for line in &lines {
        assert!(!line.chars().any(hostile), "raw in the table: {line:?}");
    }
    let header = lines[0];
    let state_at = header.find("STATE").unwrap();
    let reason_at = header.find("REASON").unwrap();
    assert!(state_at <= PATH_COLUMNS + 2, "{out}");
    let rows = &lines[1..];
    let json = w.status_json();
    let longest_reason = json
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or("-").chars().count())
        .max()
        .unwrap();
    for row in rows {
        let chars: Vec<char> = row.chars().collect();
        // the state starts where the header says: no name stretched its column
        let state: String = chars[state_at..].iter().take(8).collect();
        assert_eq!(state, "approved", "{row:?}\n{out}");
        assert!(
            chars.len() <= reason_at + longest_reason,
            "longer than the table: {row:?}\n{out}"
        );
    }
    let path_cell = |start: &str| -> String {
        rows.iter()
            .find(|r| r.starts_with(start))
            .unwrap_or_else(|| panic!("no row starting {start:?}\n{out}"))
            .chars()
            .take(state_at)
            .collect::<String>()
            .trim_end()
            .to_owned()
    };
    // the long name: its start, `…`, its end with the extension
    let shown_long = path_cell("start-of-a-very-long-nam");
    assert_eq!(shown_long.chars().count(), PATH_COLUMNS, "{shown_long}");
    assert!(
        shown_long.contains('…') && shown_long.ends_with("-end-of-it.pdf"),
        "{shown_long}"
    );
    // the forged name is one cell (49 columns escaped: shortened too)
    let shown_forged = path_cell(r"a.pdf\n2026-01-01T");
    assert!(shown_forged.ends_with("forged line.pdf"), "{shown_forged}");
    assert_eq!(path_cell(r"caf\xE9"), LATIN1_SHOWN);
    assert_eq!(path_cell(r"\u{1b}[31mred"), ANSI_BIDI_SHOWN);

    // `status --json`: exact names (the bytes of one that is not UTF-8 in hex)
    let by_path = |p: &str| -> &Value {
        json.iter()
            .find(|r| r["path"] == p)
            .unwrap_or_else(|| panic!("{p:?} not in {json:#?}"))
    };
    for name in [std::str::from_utf8(FORGED).unwrap(), &long, ANSI_BIDI] {
        let row = by_path(name);
        assert_eq!(row["state"], "approved", "{row}");
        assert!(row.get("path_bytes_hex").is_none(), "{row}");
    }
    let latin1 = by_path("caf\u{fffd} invoice.pdf");
    assert_eq!(latin1["path_bytes_hex"], hex(LATIN1), "{latin1}");
    assert_eq!(latin1["state"], "approved", "{latin1}");

    // what the server got: the name that is not UTF-8 percent-encoded (lossless);
    // the rest with `_` for their control characters, the long one shortened to 64
    let server: Vec<String> = sandbox
        .server_files()
        .into_iter()
        .map(|f| f.file_name)
        .collect();
    for sent in [
        "caf%E9 invoice.pdf",
        "a.pdf_2026-01-01T00:00:00Z  INFO forged line.pdf",
        "_[31mred\u{202e}fdp.pdf",
    ] {
        assert!(
            server.iter().any(|n| n == sent),
            "{sent:?} not in {server:?}"
        );
    }
    assert!(
        server
            .iter()
            .any(|n| n.starts_with("start-of-a-very-long-name") && n.chars().count() <= 64),
        "{server:?}"
    );
    // and the record says what was sent, and why
    let out = w.run([OsStr::new("history"), OsStr::from_bytes(LATIN1)]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout.contains(
            r#"sent as "caf%E9 invoice.pdf" because the name is not valid UTF-8: its byte 0xE9 was sent percent-encoded, as %E9"#
        ),
        "{out}"
    );
    assert!(
        out.stdout.starts_with(&format!("{LATIN1_SHOWN} (in ")),
        "{out}"
    );
    // `history` of the forged name: its lines are its own
    let out = w.run([OsStr::new("history"), OsStr::from_bytes(FORGED)]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stdout.starts_with(&format!("{FORGED_SHOWN} (in ")),
        "{out}"
    );
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("2026-01-01")),
        "{out}"
    );
    assert!(
        !out.stdout.chars().any(|c| c != '\n' && hostile(c)),
        "{out}"
    );

    json_logs_keep_names_exact(&sandbox);
}

/// `--log-format json` keeps a name exact (JSON escaping is enough there); a byte
/// that is not UTF-8 is written `\xFF`, as no JSON string can hold it.
fn json_logs_keep_names_exact(sandbox: &TestSandbox) {
    let w = Workspace::with_sandbox(sandbox);
    w.write_config("");
    for (i, name) in [FORGED, LATIN1].iter().enumerate() {
        std::fs::write(
            w.inbox.join(OsStr::from_bytes(name)),
            pdf(&format!("json log {i}")),
        )
        .unwrap();
    }
    let out = w.run(["sync", "--once", "--timeout", "60s", "--log-format", "json"]);
    assert_eq!(out.code(), Some(0), "{out}");
    let events: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{out}")))
        .collect();
    for exact in [std::str::from_utf8(FORGED).unwrap(), LATIN1_SHOWN] {
        assert!(
            events.iter().any(|e| e["path"] == exact),
            "no event with the path {exact:?}\n{out}"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
