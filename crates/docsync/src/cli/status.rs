//! `docsync status`, `docsync history` (read-only: they work while the daemon runs)
//! and `docsync retry` (a short write through its own connection; WAL and the
//! busy timeout make that safe next to the daemon, so it does not take the lock).
//!
//! Each works on whichever state the configuration names: the SQLite database
//! in the state directory, or the PostgreSQL state several daemons share
//! (`state.url`), where `status` also says which daemon holds which row and
//! `history` which one made each change.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Context;
use docsync::model::text;
use docsync::store::{FileRow, History, Holder, ListFilter, State, StateView, Store, DB_FILE};
use serde_json::{json, Map, Value};

use super::{setup, HistoryArgs, RetryArgs, StatusArgs, EXIT_NO_STATE, EXIT_OK, EXIT_PROBLEMS};

/// Table columns (terminal columns) for a name and the server's words: longer ones
/// are shortened in the middle ([`text::fit`]); `--json` has them whole.
const PATH_COLUMNS: usize = 48;
const REMOTE_ID_COLUMNS: usize = 40;
const REMOTE_STATUS_COLUMNS: usize = 20;
/// The daemon holding a row, or that made a change (PostgreSQL state).
const HOLDER_COLUMNS: usize = 40;

/// The state a command works on, opened, and where it is (for messages).
struct Opened {
    view: StateView,
    place: String,
}

/// Open the state `args` name: the PostgreSQL state (`state.url`), or the
/// SQLite database in the state directory (read-only unless `write`). `None`
/// after saying so on stderr when there is no state there yet.
async fn open_state(
    args: &super::ConfigArgs,
    write: bool,
    command: &str,
) -> anyhow::Result<Option<Opened>> {
    if let Some(url) = setup::state_url(args)? {
        // what a `retry` records as the instance that made the change
        let host = docsync::model::host_name().unwrap_or_else(|| "localhost".to_owned());
        let who = format!("{host}: docsync {command}");
        let view = StateView::postgres(&url, &who)
            .await
            .context("opening the PostgreSQL state (state.url)")?;
        let Some(view) = view else {
            eprintln!(
                "docsync: no state yet: the PostgreSQL database of state.url holds no docsync \
                 state (no daemon has used it yet; run one with this configuration first)"
            );
            return Ok(None);
        };
        let place = match &view {
            StateView::Postgres(pg) => format!("the PostgreSQL state {}", pg.target()),
            StateView::Sqlite(_) => String::new(),
        };
        return Ok(Some(Opened { view, place }));
    }
    let db = setup::state_dir(args)?.join(DB_FILE);
    if !db.is_file() {
        eprintln!(
            "docsync: no state yet: no state database at {} (docsync has not run with this \
             state directory; run it first, or pass --state-dir or --config to look elsewhere)",
            db.display()
        );
        return Ok(None);
    }
    let store = if write {
        Store::open(&db).with_context(|| format!("opening {}", db.display()))?
    } else {
        Store::open_read_only(&db).with_context(|| format!("opening {} read-only", db.display()))?
    };
    Ok(Some(Opened {
        view: StateView::Sqlite(Box::new(store)),
        place: db.display().to_string(),
    }))
}

/// `API: ...`: which API the rows were synced against (the embedded sandbox
/// says it is not the real one).
async fn api_line(state: &Opened) -> anyhow::Result<String> {
    let api = state
        .view
        .api_identity()
        .await
        .with_context(|| format!("reading the API recorded in {}", state.place))?;
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
async fn reason(view: &StateView, row: &FileRow) -> anyhow::Result<Option<String>> {
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
        let events = view
            .events(row.id)
            .await
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

/// The `held_by` object of `status --json` (PostgreSQL state only): the
/// daemon holding the row's lease, its host and process, until when.
fn holder_json(h: &Holder) -> Value {
    json!({
        "instance": h.instance,
        "host": h.hostname,
        "pid": h.pid,
        "until": rfc3339(h.until_ms),
        "expired": h.expired,
    })
}

/// The `HELD BY` cell: the instance (with its host when its name does not
/// start with it), `(expired)` when its lease ran out.
fn holder_cell(h: Option<&Holder>) -> String {
    let Some(h) = h else {
        return "-".into();
    };
    let mut cell = text::fit(h.instance.as_bytes(), HOLDER_COLUMNS);
    if !h.instance.starts_with(&h.hostname) {
        cell.push_str(&format!(
            " on {}",
            text::fit(h.hostname.as_bytes(), HOLDER_COLUMNS)
        ));
    }
    if h.expired {
        cell.push_str(" (expired)");
    }
    cell
}

/// `docsync status`.
pub async fn status(args: StatusArgs) -> anyhow::Result<u8> {
    setup::say_config(setup::config_file(&args.config)?.as_deref());
    let Some(state) = open_state(&args.config, false, "status").await? else {
        if args.json {
            outln!("[]");
        }
        return Ok(EXIT_NO_STATE);
    };
    let api = api_line(&state).await?;
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
    let view = &state.view;
    let rows = view
        .list(&filter)
        .await
        .with_context(|| format!("listing files in {}", state.place))?;
    let mut reasons = Vec::with_capacity(rows.len());
    for r in &rows {
        reasons.push(reason(view, r).await?);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let holders: HashMap<i64, Holder> = view
        .holders(&ids)
        .await
        .with_context(|| format!("reading who holds which file in {}", state.place))?;
    let summary =
        super::folder_summary::lines(view, filter.folder.as_deref(), docsync::model::now_ms())
            .await
            .with_context(|| format!("summarising the folders in {}", state.place))?;
    if args.json {
        // stdout stays the array of rows scripts parse
        eprintln!("docsync: {api}");
        for line in &summary {
            eprintln!("docsync: {line}");
        }
        let list = rows
            .iter()
            .zip(reasons)
            .map(|(r, why)| {
                let mut obj = row_json(r, why);
                if let (Value::Object(obj), true) = (&mut obj, view.is_shared()) {
                    let held = holders.get(&r.id).map_or(Value::Null, holder_json);
                    obj.insert("held_by".into(), held);
                }
                obj
            })
            .collect();
        print_json(&Value::Array(list))?;
        return Ok(EXIT_OK);
    }
    outln!("{api}");
    if rows.is_empty() {
        outln!("no files recorded in {}", state.place);
        for line in &summary {
            eprintln!("{line}");
        }
        return Ok(EXIT_OK);
    }
    // the reason last: it is the long column, shown whole (it says what to do);
    // every other column has a fixed most, so no name stretches the table
    let mut header = vec![
        "PATH",
        "STATE",
        "REMOTE ID",
        "REMOTE STATUS",
        "UPDATED",
        "NEXT ATTEMPT",
    ];
    if view.is_shared() {
        header.push("HELD BY");
    }
    header.push("REASON");
    let table: Vec<Vec<String>> = rows
        .iter()
        .zip(&reasons)
        .map(|(r, why)| {
            let mut cells = vec![
                text::fit(&r.path, PATH_COLUMNS),
                r.state.to_string(),
                cell(r.remote_id.as_deref(), REMOTE_ID_COLUMNS),
                cell(r.remote_status.as_deref(), REMOTE_STATUS_COLUMNS),
                rfc3339(r.updated_at),
                next_attempt(r).map_or_else(|| "-".into(), rfc3339),
            ];
            if view.is_shared() {
                cells.push(holder_cell(holders.get(&r.id)));
            }
            cells.push(text::escape_str(why.as_deref().unwrap_or("-")).into_owned());
            cells
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

/// Cells are already escaped (and fitted); widths are terminal columns. Every
/// row has as many cells as `header`.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| text::width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(text::width(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i + 1 < n {
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
async fn find_history(view: &StateView, path: &Path) -> anyhow::Result<Vec<History>> {
    let what = || format!("reading the history of {}", path.display());
    if path.is_relative() {
        let found = view
            .history(None, path.as_os_str().as_bytes())
            .await
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
        let found = view
            .history(Some(&root.to_string_lossy()), rel.as_os_str().as_bytes())
            .await
            .with_context(what)?;
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Ok(Vec::new())
}

/// A row's history for `history --json`; on the PostgreSQL state each event
/// also has `by`, the daemon (instance) that made the change.
async fn history_json(view: &StateView, h: &History) -> anyhow::Result<Value> {
    let events: Vec<Value> = h
        .events
        .iter()
        .map(|e| {
            let mut event = json!({
                "time": rfc3339(e.at),
                "from": e.from_state.map(State::as_str),
                "to": e.to_state.as_str(),
                "reason": e.reason,
                "request_id": e.request_id,
            });
            if let (Value::Object(obj), true) = (&mut event, view.is_shared()) {
                obj.insert("by".into(), json!(e.instance));
            }
            event
        })
        .collect();
    let mut file = row_json(&h.file, reason(view, &h.file).await?);
    if let Value::Object(obj) = &mut file {
        obj.insert("folder".into(), Value::String(h.file.folder.clone()));
        obj.insert("events".into(), Value::Array(events));
    }
    Ok(file)
}

/// `docsync history PATH`: exit 1 if nothing is recorded for it.
pub async fn history(args: HistoryArgs) -> anyhow::Result<u8> {
    let Some(state) = open_state(&args.config, false, "history").await? else {
        if args.json {
            outln!("[]");
        }
        return Ok(EXIT_NO_STATE);
    };
    let view = &state.view;
    let found = find_history(view, &args.path).await?;
    if args.json {
        let mut list = Vec::with_capacity(found.len());
        for h in &found {
            list.push(history_json(view, h).await?);
        }
        print_json(&Value::Array(list))?;
    }
    if found.is_empty() {
        eprintln!(
            "docsync: no history for {} in {} (status lists the recorded paths, relative to their folder)",
            text::escape_path(&args.path),
            state.place
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
        let mut header = vec!["TIME", "FROM", "TO", "REQUEST ID"];
        if view.is_shared() {
            header.push("BY");
        }
        header.push("REASON");
        let rows: Vec<Vec<String>> = h
            .events
            .iter()
            .map(|e| {
                let mut cells = vec![
                    rfc3339(e.at),
                    e.from_state.map_or_else(|| "-".into(), |s| s.to_string()),
                    e.to_state.to_string(),
                    cell(e.request_id.as_deref(), REMOTE_ID_COLUMNS),
                ];
                if view.is_shared() {
                    cells.push(cell(e.instance.as_deref(), HOLDER_COLUMNS));
                }
                cells.push(text::escape_str(&e.reason).into_owned());
                cells
            })
            .collect();
        print_table(&header, &rows);
    }
    Ok(EXIT_OK)
}

/// `docsync retry PATH | --all-failed`: failed rows back to retrying, invalid rows
/// back to stable (checked again). Says how many moved.
pub async fn retry(args: RetryArgs) -> anyhow::Result<u8> {
    let Some(mut state) = open_state(&args.config, true, "retry").await? else {
        outln!("retry: 0 files moved");
        return Ok(EXIT_OK);
    };
    let place = state.place.clone();
    let moved = match &args.path {
        None => state
            .view
            .retry(None, None, "docsync retry --all-failed")
            .await
            .with_context(|| format!("retrying failed files in {place}"))?,
        Some(path) => {
            let found = find_history(&state.view, path).await?;
            let Some(h) = found.iter().rev().find(|h| h.file.state.is_live()) else {
                eprintln!(
                    "docsync: no file {} is recorded in {place}",
                    text::escape_path(path),
                );
                outln!("retry: 0 files moved");
                return Ok(EXIT_PROBLEMS);
            };
            let (folder, rel) = (h.file.folder.clone(), h.file.path.clone());
            let moved = state
                .view
                .retry(Some(&folder), Some(&rel), "docsync retry")
                .await
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
