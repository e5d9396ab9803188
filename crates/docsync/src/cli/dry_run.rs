//! `docsync sync --once --dry-run [--json]` and `docsync run --dry-run`: one
//! pass's verdict on every file, decided by the engine's own code
//! ([`docsync::engine::dry_run`]) against an in-memory copy of the state
//! (the SQLite database, or what the decisions read from the PostgreSQL
//! state). Sends nothing (no client is built: not even a token is asked
//! for), writes nothing, creates nothing, takes no lock, starts no sandbox.

use anyhow::Context;
use docsync::config::Config;
use docsync::engine::dry_run::{plan, Planned, Verdict};
use docsync::engine::{ApiChange, START_OVER_SHARED};
use docsync::error::Error;
use docsync::model::text;
use docsync::store::pg::PgStore;
use docsync::store::{StateCopy, Store, DB_FILE};
use serde_json::{json, Map, Value};

use super::run::Start;
use super::{setup, EXIT_OK, EXIT_PROBLEMS};

/// The widest path column of the text output.
const PATH_COLUMNS: usize = 60;

/// Exit 0 when nothing would be refused, 1 when a file is invalid.
pub async fn dry_run(start: &Start<'_>, json: bool) -> anyhow::Result<u8> {
    let mut config = setup::load(start.api, start.folder)?;
    setup::only_newer_than(&mut config, start.only_newer_than);
    let (mut copy, place, had_state) = match config.state.url.clone() {
        Some(url) => shared_copy(&config, url.expose(), start.api_change).await?,
        None => {
            let db = config.state_dir.join(DB_FILE);
            let copy = Store::open_snapshot(&db)
                .with_context(|| format!("reading {} for a dry run", db.display()))?;
            (copy, db.display().to_string(), db.exists())
        }
    };
    let planned = plan(&mut copy, &config, start.api_change)
        .with_context(|| format!("planning a dry run over {place}"))?;
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
    let line = summary(&planned, had_state);
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

/// A copy of what the decisions read from the PostgreSQL state at `url` (an
/// empty one when no daemon has used it yet), where it is, and whether there
/// was a state. A viewer's connection: nothing is migrated or recorded. What
/// a run refuses with a shared state (the embedded sandbox, `--start-over`)
/// is refused here too.
async fn shared_copy(
    config: &Config,
    url: &str,
    choice: ApiChange,
) -> anyhow::Result<(Store, String, bool)> {
    if config.api.sandbox {
        return Err(Error::NotOnPostgres {
            what: "the embedded sandbox",
        }
        .into());
    }
    if choice == ApiChange::StartOver {
        return Err(Error::NotOnPostgres {
            what: START_OVER_SHARED,
        }
        .into());
    }
    let host = docsync::model::host_name().unwrap_or_else(|| "localhost".to_owned());
    let pg = PgStore::connect_viewer(url, &format!("{host}: docsync dry run"))
        .await
        .context("opening the PostgreSQL state (state.url)")?;
    let Some(pg) = pg else {
        let copy = Store::open_copy(&StateCopy::default(), "the PostgreSQL state")?;
        return Ok((copy, "the PostgreSQL state".to_owned(), false));
    };
    let place = format!("the PostgreSQL state {}", pg.target());
    let taken = pg
        .copy_for_dry_run()
        .await
        .with_context(|| format!("reading {place} for a dry run"))?;
    let copy = Store::open_copy(&taken, &place)?;
    Ok((copy, place, true))
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
