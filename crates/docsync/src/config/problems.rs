//! Problems with their locations: the collector that accumulates every [`Problem`]
//! found in a configuration (file, line and column, key path), the "fix" hints,
//! and the second look at a file whose typed parse stopped at its first error.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::raw::{PlainApi, PlainCredentials, PlainFolder, PlainHooks, Sections, TOP_LEVEL_KEYS};
use crate::model::{Location, Problem, Severity};

/// The 1-based line and column of byte `offset` in `text`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// ` (line L, column C)` for a span of `text`, or nothing.
pub(super) fn span_suffix(text: &str, span: Option<Range<usize>>) -> String {
    match span {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            format!(" (line {line}, column {col})")
        }
        None => String::new(),
    }
}

/// Every problem found so far in one configuration text.
pub(super) struct Problems<'a> {
    file: Option<PathBuf>,
    text: &'a str,
    list: Vec<Problem>,
}

impl<'a> Problems<'a> {
    /// No problems yet in `text`, read from `file` (if any).
    pub(super) fn new(file: Option<&Path>, text: &'a str) -> Problems<'a> {
        Problems {
            file: file.map(Path::to_owned),
            text,
            list: Vec::new(),
        }
    }

    /// Add a problem. `span` locates it in the text; `key` is the key path, or
    /// `env VAR` (then the problem names no file), or empty for none.
    pub(super) fn push(
        &mut self,
        severity: Severity,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let key = key.into();
        self.list.push(Problem {
            severity,
            location: Location {
                file: if key.starts_with("env ") {
                    None
                } else {
                    self.file.clone()
                },
                line_col: span.map(|s| line_col(self.text, s.start)),
                key: Some(key).filter(|k| !k.is_empty()),
            },
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// Add an error (see [`Problems::push`]).
    pub(super) fn error(
        &mut self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Error, span, key, message, fix);
    }

    /// Whether every problem so far is a warning (or there are none).
    pub(super) fn only_warnings(&self) -> bool {
        self.list.iter().all(|x| x.severity == Severity::Warning)
    }

    /// The problems, in the order they were found.
    pub(super) fn into_list(self) -> Vec<Problem> {
        self.list
    }
}

/// The fix for a malformed duration.
pub(super) const DURATION_FIX: &str =
    "write a number with a unit, such as \"500ms\", \"1s\", \"5m\" or \"1h\"";

/// The fix for a TOML syntax or schema error, from its message.
pub(super) fn fix_for_toml(message: &str) -> String {
    if message.contains("unknown field") {
        "remove the key or correct its spelling (the message lists the allowed keys)".into()
    } else if message.contains("missing field") {
        "add the missing key".into()
    } else if message.contains("unknown variant") {
        "use one of the values the message lists".into()
    } else if message.contains("invalid type") {
        "give the value the type the message expects (strings in quotes)".into()
    } else if message.contains("duplicate key") {
        "keep only one of the duplicate keys".into()
    } else {
        "correct the TOML syntax at this position".into()
    }
}

/// After the typed parse stopped at its first schema error (at `first`), check the
/// other sections one by one so `config check` reports every problem, not just the
/// first. Each further problem is located at its section (`[[folder]]`, `[api]`)
/// and named by key path. Sections containing `first` are skipped (already reported).
pub(super) fn more_schema_problems(text: &str, first: Option<Range<usize>>, p: &mut Problems<'_>) {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return; // a syntax error: nothing more can be read
    };
    let Ok(sections) = toml::from_str::<Sections>(text) else {
        return;
    };
    let contains_first = |span: &Range<usize>| {
        first
            .as_ref()
            .is_some_and(|f| span.start <= f.start && f.start < span.end.max(span.start + 1))
    };
    for key in table.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            let line_start = text
                .match_indices(key.as_str())
                .map(|(i, _)| i)
                .find(|&i| i == 0 || text.as_bytes().get(i - 1) == Some(&b'\n'));
            let span = line_start.map(|i| i..i + key.len());
            if span.as_ref().is_some_and(contains_first) {
                continue;
            }
            p.error(
                span,
                key.clone(),
                format!(
                    "unknown field `{key}`, expected one of {}",
                    TOP_LEVEL_KEYS.join(", ")
                ),
                fix_for_toml("unknown field"),
            );
        }
    }
    let mut check =
        |span: Range<usize>, key: String, result: std::result::Result<(), toml::de::Error>| {
            if contains_first(&span) {
                return;
            }
            if let Err(e) = result {
                let message = e.message().to_owned();
                let fix = fix_for_toml(&message);
                p.error(Some(span), key, message, fix);
            }
        };
    for (i, folder) in sections.folder.iter().enumerate() {
        let result = PlainFolder::deserialize(folder.get_ref().clone()).map(drop);
        check(folder.span(), format!("folder[{i}]"), result);
    }
    if let Some(api) = &sections.api {
        check(
            api.span(),
            "api".into(),
            PlainApi::deserialize(api.get_ref().clone()).map(drop),
        );
    }
    if let Some(c) = &sections.credentials {
        check(
            c.span(),
            "credentials".into(),
            PlainCredentials::deserialize(c.get_ref().clone()).map(drop),
        );
    }
    if let Some(h) = &sections.hooks {
        check(
            h.span(),
            "hooks".into(),
            PlainHooks::deserialize(h.get_ref().clone()).map(drop),
        );
    }
}
