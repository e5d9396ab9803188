//! `docsync sync --once --dry-run [--json]` and `docsync run --dry-run`: one
//! pass's verdict on every file, decided by the engine's own code
//! ([`docsync::engine::dry_run`]) against an in-memory copy of the state
//! database. Sends nothing (no client is built: not even a token is asked
//! for), writes nothing, creates nothing, takes no lock, starts no sandbox.

use anyhow::Context;
use docsync::engine::dry_run::{plan, Planned, Verdict};
use docsync::model::text;
use docsync::store::{Store, DB_FILE};
use serde_json::{json, Map, Value};

use super::run::Start;
use super::{setup, EXIT_OK, EXIT_PROBLEMS};

/// The widest path column of the text output.
const PATH_COLUMNS: usize = 60;

/// Exit 0 when nothing would be refused, 1 when a file is invalid.
pub fn dry_run(start: &Start<'_>, json: bool) -> anyhow::Result<u8> {
    let mut config = setup::load(start.api, start.folder)?;
    setup::only_newer_than(&mut config, start.only_newer_than);
    if config.state.url.is_some() {
        anyhow::bail!(
            "the state is in PostgreSQL (state.url): a dry run plans against the SQLite state only yet"
        );
    }
    let db = config.state_dir.join(DB_FILE);
    let mut copy = Store::open_snapshot(&db)
        .with_context(|| format!("reading {} for a dry run", db.display()))?;
    let planned = plan(&mut copy, &config, start.api_change)
        .with_context(|| format!("planning a dry run over {}", db.display()))?;
    drop(copy);
    let several = config.folders.len() > 1;
    if json {
        let rows: Vec<Value> = planned.iter().map(row_json).collect();
        outln!("{}", Value::Array(rows));
    } else {
        let width = planned
            .iter()
            .map(|p| shown_path(p, several).chars().count())
            .max()
            .unwrap_or(0);
        for p in &planned {
            outln!(
                "{:<12}  {:<width$}  {}",
                p.verdict.as_str(),
                shown_path(p, several),
                text::escape_str(&p.reason)
            );
        }
    }
    let line = summary(&planned, db.exists());
    if json {
        eprintln!("{line}");
    } else {
        outln!("{line}");
    }
    Ok(if count(&planned, Verdict::Refuse) > 0 {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    })
}

/// The path, escaped and fitted to the column (with its folder when there
/// are several).
fn shown_path(p: &Planned, several: bool) -> String {
    let path = text::fit(&p.path, PATH_COLUMNS);
    if several {
        format!("{}: {path}", text::escape_str(&p.folder))
    } else {
        path
    }
}

fn count(planned: &[Planned], verdict: Verdict) -> usize {
    planned.iter().filter(|p| p.verdict == verdict).count()
}

/// `dry run: 4 files: 1 would upload, 2 would skip, 1 would refuse, 0 would wait; ...`
fn summary(planned: &[Planned], had_state: bool) -> String {
    let parts: Vec<String> = [
        Verdict::Upload,
        Verdict::Skip,
        Verdict::Refuse,
        Verdict::Wait,
    ]
    .iter()
    .map(|v| format!("{} {}", count(planned, *v), v.as_str()))
    .collect();
    let state = if had_state {
        "the state database was not changed"
    } else {
        "no state database was created"
    };
    format!(
        "dry run: {} file{}: {}; nothing was sent and {state}",
        planned.len(),
        if planned.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// One `--json` object: exact values (JSON escapes them); a path that is not
/// UTF-8 also as `path_bytes_hex`.
fn row_json(p: &Planned) -> Value {
    let mut obj = Map::new();
    obj.insert("folder".into(), Value::String(p.folder.clone()));
    obj.insert(
        "path".into(),
        Value::String(String::from_utf8_lossy(&p.path).into_owned()),
    );
    if std::str::from_utf8(&p.path).is_err() {
        obj.insert(
            "path_bytes_hex".into(),
            Value::String(super::status::hex(&p.path)),
        );
    }
    obj.insert("verdict".into(), json!(p.verdict));
    obj.insert("reason".into(), Value::String(p.reason.clone()));
    obj.insert(
        "target".into(),
        Value::String(p.target.kind.as_str().into()),
    );
    obj.insert("account".into(), Value::String(p.target.account.clone()));
    obj.insert("size".into(), json!(p.size));
    if let Some(sha) = &p.sha256 {
        obj.insert("sha256".into(), Value::String(sha.clone()));
    }
    Value::Object(obj)
}
