//! `docsync status`, `docsync history` (read-only: they work while the daemon runs)
//! and `docsync retry` (a short write through its own connection; WAL and the
//! busy timeout make that safe next to the daemon, so it does not take the lock).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use docsync::model::text;
use docsync::store::{FileRow, History, ListFilter, State, Store, DB_FILE};
use serde_json::{json, Map, Value};

use super::{setup, HistoryArgs, RetryArgs, StatusArgs, EXIT_NO_STATE, EXIT_OK, EXIT_PROBLEMS};

/// Table columns (terminal columns) for a name and the server's words: longer ones
/// are shortened in the middle ([`text::fit`]); `--json` has them whole.
const PATH_COLUMNS: usize = 48;
const REMOTE_ID_COLUMNS: usize = 40;
const REMOTE_STATUS_COLUMNS: usize = 20;

/// The database in the state directory, if it exists.
fn database(args: &super::ConfigArgs) -> anyhow::Result<(PathBuf, bool)> {
    let dir = setup::state_dir(args)?;
    let db = dir.join(DB_FILE);
    let exists = db.is_file();
    Ok((db, exists))
}

fn no_database(db: &Path) {
    eprintln!(
        "docsync: no state yet: no state database at {} (docsync has not run with this \
         state directory; run it first, or pass --state-dir or --config to look elsewhere)",
        db.display()
    );
}

fn open_read_only(db: &Path) -> anyhow::Result<Store> {
    Store::open_read_only(db).with_context(|| format!("opening {} read-only", db.display()))
}

/// `API: ...`: which API the rows were synced against (the embedded sandbox
/// says it is not the real one).
fn api_line(store: &Store, db: &Path) -> anyhow::Result<String> {
    let api = store
        .api_identity()
        .with_context(|| format!("reading the API recorded in {}", db.display()))?;
    Ok(match api {
        Some(api) => format!("API: {api}"),
        None => "API: not recorded yet (recorded when the daemon starts)".to_owned(),
    })
}

/// Unix milliseconds as RFC 3339 (UTC, milliseconds).
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Why a row is where it is: the server's decision reason or the last error; for
/// rows that stopped locally (invalid, duplicate, skipped, failed without an error) the
/// reason of their last event.
fn reason(store: &Store, row: &FileRow) -> anyhow::Result<Option<String>> {
    let recorded = [&row.decision_reason, &row.last_error]
        .into_iter()
        .flatten()
        .find(|r| !r.is_empty());
    if let Some(r) = recorded {
        return Ok(Some(r.clone()));
    }
    if matches!(
        row.state,
        State::Invalid | State::Duplicate | State::Failed | State::Skipped
    ) {
        let events = store
            .events(row.id)
            .with_context(|| format!("reading the events of {}", text::escape(&row.path)))?;
        return Ok(events.last().map(|e| e.reason.clone()));
    }
    Ok(None)
}

/// The `status --json` object of a row: exactly path, state, remote_id,
/// remote_status, reason, updated (+ path_bytes_hex for non-UTF-8 paths, and
/// next_attempt for a `retrying` row: when it is sent again). Every
/// value exact, unescaped (JSON escapes them); a path that is not UTF-8 with U+FFFD
/// for its bad bytes, which `path_bytes_hex` gives exactly.
fn row_json(row: &FileRow, reason: Option<String>) -> Value {
    let mut obj = Map::new();
    obj.insert(
        "path".into(),
        Value::String(String::from_utf8_lossy(&row.path).into_owned()),
    );
    if std::str::from_utf8(&row.path).is_err() {
        obj.insert("path_bytes_hex".into(), Value::String(hex(&row.path)));
    }
    obj.insert("state".into(), Value::String(row.state.as_str().into()));
    obj.insert("remote_id".into(), json!(row.remote_id));
    obj.insert("remote_status".into(), json!(row.remote_status));
    obj.insert("reason".into(), json!(reason));
    obj.insert("updated".into(), Value::String(rfc3339(row.updated_at)));
    if let Some(at) = next_attempt(row) {
        obj.insert("next_attempt".into(), Value::String(rfc3339(at)));
    }
    Value::Object(obj)
}

/// When a `retrying` row is sent again (unix ms).
fn next_attempt(row: &FileRow) -> Option<i64> {
    row.next_attempt_at.filter(|_| row.state == State::Retrying)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("writing JSON")?;
    outln!("{text}");
    Ok(())
}

/// `docsync status`.
pub fn status(args: StatusArgs) -> anyhow::Result<u8> {
    setup::say_config(setup::config_file(&args.config)?.as_deref());
    setup::sqlite_state_only(&args.config, "status")?;
    let (db, exists) = database(&args.config)?;
    if !exists {
        no_database(&db);
        if args.json {
            outln!("[]");
        }
        return Ok(EXIT_NO_STATE);
    }
    let store = open_read_only(&db)?;
    let api = api_line(&store, &db)?;
    let folder = match &args.folder {
        Some(f) => Some(setup::absolute(f)?.to_string_lossy().into_owned()),
        None => None,
    };
    let filter = ListFilter {
        states: args.states.clone(),
        folder,
        include_history: args.all,
        limit: args.limit,
        offset: 0,
    };
    let rows = store
        .list(&filter)
        .with_context(|| format!("listing files in {}", db.display()))?;
    let reasons = rows
        .iter()
        .map(|r| reason(&store, r))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let summary =
        super::folder_summary::lines(&store, filter.folder.as_deref(), docsync::model::now_ms())
            .with_context(|| format!("summarising the folders in {}", db.display()))?;
    if args.json {
        // stdout stays the array of rows scripts parse
        eprintln!("docsync: {api}");
        for line in &summary {
            eprintln!("docsync: {line}");
        }
        let list = rows
            .iter()
            .zip(reasons)
            .map(|(r, why)| row_json(r, why))
            .collect();
        print_json(&Value::Array(list))?;
        return Ok(EXIT_OK);
    }
    outln!("{api}");
    if rows.is_empty() {
        outln!("no files recorded in {}", db.display());
        for line in &summary {
            eprintln!("{line}");
        }
        return Ok(EXIT_OK);
    }
    // the reason last: it is the long column, shown whole (it says what to do);
    // every other column has a fixed most, so no name stretches the table
    let header = [
        "PATH",
        "STATE",
        "REMOTE ID",
        "REMOTE STATUS",
        "UPDATED",
        "NEXT ATTEMPT",
        "REASON",
    ];
    let table: Vec<[String; 7]> = rows
        .iter()
        .zip(&reasons)
        .map(|(r, why)| {
            [
                text::fit(&r.path, PATH_COLUMNS),
                r.state.to_string(),
                cell(r.remote_id.as_deref(), REMOTE_ID_COLUMNS),
                cell(r.remote_status.as_deref(), REMOTE_STATUS_COLUMNS),
                rfc3339(r.updated_at),
                next_attempt(r).map_or_else(|| "-".into(), rfc3339),
                text::escape_str(why.as_deref().unwrap_or("-")).into_owned(),
            ]
        })
        .collect();
    print_table(&header, &table);
    // the summary below the table, on stderr: stdout stays the API line and the
    // table that scripts read
    for line in &summary {
        eprintln!("{line}");
    }
    if u32::try_from(rows.len()).is_ok_and(|n| n == args.limit) {
        eprintln!(
            "docsync: showing the first {} rows; pass --limit for more",
            args.limit
        );
    }
    Ok(EXIT_OK)
}

/// A table cell of text from the server: escaped, at most `columns` wide, `-` if none.
fn cell(value: Option<&str>, columns: usize) -> String {
    value.map_or_else(|| "-".into(), |v| text::fit(v.as_bytes(), columns))
}

/// Cells are already escaped (and fitted); widths are terminal columns.
fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(text::width);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(text::width(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                // no trailing padding
                out.push_str(&" ".repeat(w.saturating_sub(text::width(cell)) + 2));
            }
        }
        outln!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Every recorded row for `path`: first as given (relative to a synced folder),
/// then as a path inside a synced folder (each ancestor tried as the root).
fn find_history(store: &Store, path: &Path) -> anyhow::Result<Vec<History>> {
    let what = || format!("reading the history of {}", path.display());
    if path.is_relative() {
        let found = store
            .history(None, path.as_os_str().as_bytes())
            .with_context(what)?;
        if !found.is_empty() {
            return Ok(found);
        }
    }
    let abs = setup::absolute(path)?;
    for root in abs.ancestors().skip(1) {
        let Ok(rel) = abs.strip_prefix(root) else {
            continue;
        };
        let found = store
            .history(Some(&root.to_string_lossy()), rel.as_os_str().as_bytes())
            .with_context(what)?;
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Ok(Vec::new())
}

fn history_json(store: &Store, h: &History) -> anyhow::Result<Value> {
    let events: Vec<Value> = h
        .events
        .iter()
        .map(|e| {
            json!({
                "time": rfc3339(e.at),
                "from": e.from_state.map(State::as_str),
                "to": e.to_state.as_str(),
                "reason": e.reason,
                "request_id": e.request_id,
            })
        })
        .collect();
    let mut file = row_json(&h.file, reason(store, &h.file)?);
    if let Value::Object(obj) = &mut file {
        obj.insert("folder".into(), Value::String(h.file.folder.clone()));
        obj.insert("events".into(), Value::Array(events));
    }
    Ok(file)
}

/// `docsync history PATH`: exit 1 if nothing is recorded for it.
pub fn history(args: HistoryArgs) -> anyhow::Result<u8> {
    setup::sqlite_state_only(&args.config, "history")?;
    let (db, exists) = database(&args.config)?;
    if !exists {
        no_database(&db);
        if args.json {
            outln!("[]");
        }
        return Ok(EXIT_NO_STATE);
    }
    let store = open_read_only(&db)?;
    let found = find_history(&store, &args.path)?;
    if args.json {
        let list = found
            .iter()
            .map(|h| history_json(&store, h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        print_json(&Value::Array(list))?;
    }
    if found.is_empty() {
        eprintln!(
            "docsync: no history for {} in {} (status lists the recorded paths, relative to their folder)",
            text::escape_path(&args.path),
            db.display()
        );
        return Ok(EXIT_PROBLEMS);
    }
    if args.json {
        return Ok(EXIT_OK);
    }
    for (i, h) in found.iter().enumerate() {
        if i > 0 {
            outln!("");
        }
        let f = &h.file;
        outln!(
            "{} (in {}): {}{}",
            text::escape(&f.path),
            text::escape_str(&f.folder),
            f.state,
            f.remote_id
                .as_deref()
                .map(|id| format!(", remote id {}", text::escape_str(id)))
                .unwrap_or_default()
        );
        // the reason last, as in `status`: the long column
        let rows: Vec<[String; 5]> = h
            .events
            .iter()
            .map(|e| {
                [
                    rfc3339(e.at),
                    e.from_state.map_or_else(|| "-".into(), |s| s.to_string()),
                    e.to_state.to_string(),
                    cell(e.request_id.as_deref(), REMOTE_ID_COLUMNS),
                    text::escape_str(&e.reason).into_owned(),
                ]
            })
            .collect();
        print_table(&["TIME", "FROM", "TO", "REQUEST ID", "REASON"], &rows);
    }
    Ok(EXIT_OK)
}

/// `docsync retry PATH | --all-failed`: failed rows back to retrying, invalid rows
/// back to stable (checked again). Says how many moved.
pub fn retry(args: RetryArgs) -> anyhow::Result<u8> {
    setup::sqlite_state_only(&args.config, "retry")?;
    let (db, exists) = database(&args.config)?;
    if !exists {
        no_database(&db);
        outln!("retry: 0 files moved");
        return Ok(EXIT_OK);
    }
    let mut store = Store::open(&db).with_context(|| format!("opening {}", db.display()))?;
    let moved = match &args.path {
        None => store
            .retry(None, None, "docsync retry --all-failed")
            .with_context(|| format!("retrying failed files in {}", db.display()))?,
        Some(path) => {
            let found = find_history(&store, path)?;
            let Some(h) = found.iter().rev().find(|h| h.file.state.is_live()) else {
                eprintln!(
                    "docsync: no file {} is recorded in {}",
                    text::escape_path(path),
                    db.display()
                );
                outln!("retry: 0 files moved");
                return Ok(EXIT_PROBLEMS);
            };
            let (folder, rel) = (h.file.folder.clone(), h.file.path.clone());
            let moved = store
                .retry(Some(&folder), Some(&rel), "docsync retry")
                .with_context(|| format!("retrying {}", path.display()))?;
            if moved.is_empty() {
                eprintln!(
                    "docsync: {} is {}; only failed, invalid and skipped files are retried",
                    text::escape(&h.file.path),
                    h.file.state
                );
            }
            moved
        }
    };
    outln!(
        "retry: {} file{} moved back to the queue",
        moved.len(),
        if moved.len() == 1 { "" } else { "s" }
    );
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use docsync::config::TargetKind;
    use docsync::store::TargetKey;

    use super::*;

    fn row(path: &[u8]) -> FileRow {
        FileRow {
            id: 1,
            folder: "/inbox".into(),
            path: path.to_vec(),
            target: TargetKey {
                kind: TargetKind::MoovFiles,
                account: "00000000-0000-4000-8000-00000000acc0".into(),
                purpose: "business_verification".into(),
            },
            size: 1,
            mtime_ns: 0,
            sha256: None,
            state: State::Rejected,
            remote_id: Some("r1".into()),
            remote_status: Some("rejected".into()),
            decision_reason: Some("blurry".into()),
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            last_request_id: None,
            remote_name: None,
            supersedes: None,
            moved_to: None,
            created_at: 0,
            updated_at: 1_700_000_000_123,
        }
    }

    #[test]
    fn status_json_has_exactly_the_documented_keys() {
        let cases: [(&[u8], Value); 2] = [
            (
                b"a/b.pdf",
                json!({
                    "path": "a/b.pdf", "state": "rejected", "remote_id": "r1",
                    "remote_status": "rejected", "reason": "blurry",
                    "updated": "2023-11-14T22:13:20.123Z",
                }),
            ),
            (
                b"caf\xe9.pdf",
                json!({
                    "path": "caf\u{fffd}.pdf", "path_bytes_hex": "636166e92e706466",
                    "state": "rejected", "remote_id": "r1", "remote_status": "rejected",
                    "reason": "blurry", "updated": "2023-11-14T22:13:20.123Z",
                }),
            ),
        ];
        for (path, want) in cases {
            let r = row(path);
            assert_eq!(row_json(&r, r.decision_reason.clone()), want);
        }
    }

    /// A retrying row says when it is sent again; other rows have no such key.
    #[test]
    fn a_retrying_row_shows_its_next_attempt() {
        let mut r = row(b"a.pdf");
        r.state = State::Retrying;
        r.next_attempt_at = Some(1_700_000_060_000);
        let v = row_json(&r, None);
        assert_eq!(v["next_attempt"], json!("2023-11-14T22:14:20.000Z"));
        r.state = State::Failed;
        assert!(row_json(&r, None).get("next_attempt").is_none());
    }
}
