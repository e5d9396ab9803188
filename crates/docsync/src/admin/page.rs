//! The status page: server-rendered HTML (maud escapes every value: file names are
//! user input; a name, a reason, a request or remote id is also shown as
//! `docsync status` shows it, its control and bidi characters escaped by
//! `model::text`), no script, refreshing itself every
//! few seconds.
//!
//! - `/`: the API the folders are synced with (the embedded sandbox says it is
//!   not the real API), each folder with its counts by state (each a link to those files) and a
//!   sparkline of the last 30 minutes' transitions; then the first page of
//!   rejected, failed and invalid files with their reasons and request ids.
//! - `/files?states=failed,rejected&folder=F&after=ID`: one keyset page of files.
//! - `/files/{id}`: one file, its fields and every recorded transition, and for a
//!   failed or invalid file a retry button.
//! - `POST /files/{id}/retry`: the button. Cross-site requests are refused: the
//!   form's per-process token must come back, and a browser's `Origin` and
//!   `Sec-Fetch-Site` headers, when sent, must say the page's own origin.
//!
//! Every query is bounded (see `store::overview`): a page of [`PAGE_SIZE`] rows,
//! counts from an index, activity from the recent events only.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Form, Path, Query, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;
use tracing::info;

use super::{internal, AdminState};
use crate::model::{now_ms, text};
use crate::store::{
    ActivityBucket, Event, FileDetail, FileRow, FolderCounts, Holder, RetryOne, State, StateStore,
};

/// Rows per page.
pub const PAGE_SIZE: u32 = 50;
/// Seconds between the page's own reloads.
pub const REFRESH_SECONDS: u32 = 5;
/// The sparkline: this many buckets of this many milliseconds.
const SPARK_BUCKETS: u32 = 30;
const SPARK_BUCKET_MS: i64 = 60_000;
/// At most this many events shown on a file's page (the newest).
const EVENTS_SHOWN: usize = 500;

/// The states of files that need a person: shown first.
const PROBLEMS: [State; 3] = [State::Rejected, State::Failed, State::Invalid];

/// The columns of the folder table: the live states, in pipeline order.
const COLUMNS: [State; 11] = [
    State::Discovered,
    State::Stable,
    State::Uploading,
    State::Pending,
    State::Retrying,
    State::Approved,
    State::Rejected,
    State::Failed,
    State::Invalid,
    State::Duplicate,
    State::Skipped,
];

/// Unix ms as `2026-12-01 18:30:05 UTC`.
fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn states_param(states: &[State]) -> String {
    states
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn files_link(folder: Option<&str>, states: &[State], after: Option<i64>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("states", &states_param(states));
    if let Some(folder) = folder {
        query.append_pair("folder", folder);
    }
    if let Some(after) = after {
        query.append_pair("after", &after.to_string());
    }
    format!("/files?{}", query.finish())
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.rejected,.failed,.invalid{color:#b00020}.approved{color:#087f23}\
a.file-link,td.t{white-space:nowrap}\
#api.sandbox{background:#fff3cd;border:1px solid #e0c36b;padding:.4em .6em;display:inline-block}code{font-size:12px}nav a{margin-right:1em}svg rect{fill:#5b7dbd}";

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_SECONDS);
                title { (title) " · docsync" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav { a href="/" { "docsync" } a href=(files_link(None, &PROBLEMS, None)) { "problems" } a href="/metrics" { "metrics" } a href="/readyz" { "readiness" } }
                h1 { (title) }
                (body)
                p { small { "Refreshes every " (REFRESH_SECONDS) " s · " (when(now_ms())) } }
            }
        }
    }
}

fn sparkline(buckets: &[ActivityBucket]) -> Markup {
    let mut counts = vec![0u64; SPARK_BUCKETS as usize];
    for b in buckets {
        if let Some(slot) = counts.get_mut(b.bucket as usize) {
            *slot = b.events;
        }
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let total: u64 = counts.iter().sum();
    let (w, h) = (4u32, 20u32);
    html! {
        svg.spark width=(SPARK_BUCKETS * (w + 1)) height=(h) role="img"
            aria-label={ (total) " transitions in the last 30 minutes" } {
            title { (total) " transitions in the last 30 minutes (one bar a minute)" }
            @for (i, n) in counts.iter().enumerate() {
                @let bar = u32::try_from(n * u64::from(h) / max).unwrap_or(h).max(u32::from(*n > 0));
                rect x=(i as u32 * (w + 1)) y=(h - bar) width=(w) height=(bar) {}
            }
        }
    }
}

/// The files of a page; with `holders` (the state shared in PostgreSQL), a
/// column saying which daemon holds each.
fn rows_table(
    rows: &[(FileRow, String)],
    show_folder: bool,
    holders: Option<&HashMap<i64, Holder>>,
) -> Markup {
    html! {
        table #files {
            tr { th { "file" } @if show_folder { th { "folder" } } th { "state" } th { "reason" } th { "request id" } th { "updated" } @if holders.is_some() { th { "held by" } } }
            @for (row, why) in rows {
                tr data-id=(row.id) {
                    td { a.file-link href={ "/files/" (row.id) } { (text::escape(&row.path)) } }
                    @if show_folder { td { (text::escape_str(&row.folder)) } }
                    td class=(row.state.as_str()) { (row.state.as_str()) }
                    td { (text::escape_str(why)) }
                    td { code { (text::escape_str(row.last_request_id.as_deref().unwrap_or(""))) } }
                    td.t { (when(row.updated_at)) }
                    @if let Some(holders) = holders {
                        td.held { (text::escape_str(&holders.get(&row.id).map(holder_text).unwrap_or_default())) }
                    }
                }
            }
        }
    }
}

/// `INSTANCE on HOST until TIME` (`, expired` when its lease ran out); not
/// escaped yet (names from the shared database: escape where shown).
fn holder_text(h: &Holder) -> String {
    let expired = if h.expired { ", expired" } else { "" };
    format!(
        "{} on {} until {}{expired}",
        h.instance,
        h.hostname,
        when(h.until_ms)
    )
}

/// What `/` shows (see [`read_overview`]).
struct Overview {
    folders: Vec<FolderCounts>,
    activity: BTreeMap<String, Vec<ActivityBucket>>,
    problems: Vec<(FileRow, String)>,
    more: Option<i64>,
}

/// What `/` shows: the counts, the activity and the first page of problems.
async fn read_overview(store: &StateStore) -> crate::Result<Overview> {
    let (problems, more) = store
        .explained_page(PROBLEMS.to_vec(), None, None, PAGE_SIZE)
        .await?;
    Ok(Overview {
        folders: store.counts_by_folder().await?,
        activity: store
            .activity(now_ms(), SPARK_BUCKET_MS, SPARK_BUCKETS)
            .await?,
        problems,
        more,
    })
}

/// `GET /`.
pub async fn overview(AxumState(state): AxumState<AdminState>) -> Response {
    let read = read_overview(&state.reader).await;
    let mut view = match read {
        Ok(view) => view,
        Err(e) => return internal(&format!("reading the state database: {e}")),
    };
    for configured in state.folders.iter() {
        if !view.folders.iter().any(|f| &f.folder == configured) {
            view.folders.push(FolderCounts {
                folder: configured.clone(),
                counts: BTreeMap::new(),
            });
        }
    }
    let api = state.api.as_ref();
    let body = html! {
        p #api class=(if api.is_sandbox() { "sandbox" } else { "remote" }) { "API: " (api.to_string()) }
        h2 { "Folders" }
        table #folders {
            tr { th { "folder" } @for s in COLUMNS { th { (s.as_str()) } } th { "last 30 min" } }
            @for f in &view.folders {
                tr.folder data-folder=(f.folder) {
                    td { (f.folder) }
                    @for s in COLUMNS {
                        @let n = f.counts.get(&s).copied().unwrap_or(0);
                        td.n data-state=(s.as_str()) {
                            @if n > 0 { a href=(files_link(Some(&f.folder), &[s], None)) { (n) } } @else { "0" }
                        }
                    }
                    td { (sparkline(view.activity.get(&f.folder).map_or(&[][..], Vec::as_slice))) }
                }
            }
        }
        h2 { "Rejected, failed and invalid files" }
        @if view.problems.is_empty() {
            p #no-problems { "None." }
        } @else {
            (rows_table(&view.problems, true, None))
            @if let Some(after) = view.more {
                p { a.next href=(files_link(None, &PROBLEMS, Some(after))) { "More →" } }
            }
        }
    };
    layout("Status", body).into_response()
}

/// The query of `/files`.
#[derive(Debug, Deserialize)]
pub struct FilesQuery {
    /// Comma-separated states (default: rejected, failed, invalid).
    pub states: Option<String>,
    pub folder: Option<String>,
    pub after: Option<i64>,
}

/// `GET /files`.
pub async fn files(
    AxumState(state): AxumState<AdminState>,
    Query(q): Query<FilesQuery>,
) -> Response {
    let states: Vec<State> = match q.states.as_deref() {
        None | Some("") => PROBLEMS.to_vec(),
        Some(list) => match list
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<State>, _>>()
        {
            Ok(states) => states,
            Err(e) => {
                let all: Vec<_> = State::ALL.iter().map(|s| s.as_str()).collect();
                return (
                    StatusCode::BAD_REQUEST,
                    format!(
                        "states: {e}; use a comma-separated list of {}\n",
                        all.join(", ")
                    ),
                )
                    .into_response();
            }
        },
    };
    let (folder, after) = (q.folder.clone(), q.after);
    let wanted = states.clone();
    let read = state
        .reader
        .explained_page(wanted, folder, after, PAGE_SIZE)
        .await;
    let (rows, more) = match read {
        Ok(read) => read,
        Err(e) => return internal(&format!("reading the state database: {e}")),
    };
    let holders = if state.reader.is_shared() {
        let ids = rows.iter().map(|(r, _)| r.id).collect();
        match state.reader.holders(ids).await {
            Ok(found) => Some(found),
            Err(e) => return internal(&format!("reading who holds which file: {e}")),
        }
    } else {
        None
    };
    let title = format!(
        "Files: {}{}",
        states_param(&states),
        q.folder
            .as_deref()
            .map(|f| format!(" in {f}"))
            .unwrap_or_default()
    );
    let body = html! {
        @if rows.is_empty() { p { "No files." } } @else { (rows_table(&rows, q.folder.is_none(), holders.as_ref())) }
        @if let Some(next) = more {
            p { a.next href=(files_link(q.folder.as_deref(), &states, Some(next))) { "Next page →" } }
        }
    };
    layout(&title, body).into_response()
}

/// `GET /files/{id}`.
pub async fn file(AxumState(state): AxumState<AdminState>, Path(id): Path<i64>) -> Response {
    let read = state.reader.file_detail(id).await;
    let FileDetail {
        row,
        reason: why,
        events,
        holder,
    } = match read {
        Ok(Some(found)) => found,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                layout("No such file", html! { p { "No file has id " (id) "." } }),
            )
                .into_response()
        }
        Err(e) => return internal(&format!("reading the state database: {e}")),
    };
    let shown: &[Event] = &events[events.len().saturating_sub(EVENTS_SHOWN)..];
    let field = |name: &str, value: Option<String>| {
        html! { @if let Some(v) = value { tr { th { (name) } td { (text::escape_str(&v)) } } } }
    };
    let retryable = matches!(row.state, State::Failed | State::Invalid);
    // several daemons share the state: who works on the file, who made each change
    let held_by = holder.as_ref().map(holder_text);
    let by_whom = events.iter().any(|e| e.instance.is_some());
    let body = html! {
        table #file {
            tr { th { "state" } td #state class=(row.state.as_str()) { (row.state.as_str()) } }
            (field("folder", Some(row.folder.clone())))
            (field("target", Some(format!("{} {} {}", row.target.kind.as_str(), row.target.account, row.target.purpose))))
            (field("reason", (!why.is_empty()).then(|| why.clone())))
            (field("request id", row.last_request_id.clone()))
            (field("remote id", row.remote_id.clone()))
            (field("remote status", row.remote_status.clone()))
            (field("size", Some(format!("{} bytes", row.size))))
            (field("sha256", row.sha256.clone()))
            (field("attempts", Some(row.attempts.to_string())))
            (field("next attempt", row.next_attempt_at.map(when)))
            (field("moved to", row.moved_to.as_ref().map(|p| text::escape(p).into_owned())))
            (field("created", Some(when(row.created_at))))
            (field("updated", Some(when(row.updated_at))))
            (field("held by", held_by))
            @if let Some(old) = row.supersedes { tr { th { "replaces" } td { a href={ "/files/" (old) } { "row " (old) } } } }
        }
        @if retryable {
            form #retry method="post" action={ "/files/" (row.id) "/retry" } {
                input type="hidden" name="token" value=(state.form_token.as_str());
                button type="submit" { "Retry this file" }
            }
        }
        h2 { "History" }
        @if shown.len() < events.len() { p { "The newest " (shown.len()) " of " (events.len()) " transitions." } }
        table #history {
            tr { th { "at" } th { "from" } th { "to" } th { "reason" } th { "request id" } @if by_whom { th { "by" } } }
            @for e in shown {
                tr {
                    td.t { (when(e.at)) }
                    td { (e.from_state.map(|s| s.as_str()).unwrap_or("(new)")) }
                    td class=(e.to_state.as_str()) { (e.to_state.as_str()) }
                    td { (text::escape_str(&e.reason)) }
                    td { code { (text::escape_str(e.request_id.as_deref().unwrap_or(""))) } }
                    @if by_whom { td.by { (text::escape_str(e.instance.as_deref().unwrap_or(""))) } }
                }
            }
        }
    };
    layout(&text::escape(&row.path), body).into_response()
}

/// The retry form.
#[derive(Debug, Deserialize)]
pub struct RetryForm {
    pub token: String,
}

/// Why a POST is refused as cross-site, if it is.
fn cross_site(headers: &HeaderMap, token: &str, expected: &str) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return Some("the request came from another site (Sec-Fetch-Site)");
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let same = match (origin.to_str(), host) {
            (Ok(origin), Some(host)) => {
                origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    == Some(host)
            }
            _ => false,
        };
        if !same {
            return Some("the request came from another origin (Origin)");
        }
    }
    // same length and every byte equal, without stopping at the first difference
    let equal = token.len() == expected.len()
        && token
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    (!equal)
        .then_some("the form's token is missing or stale: reload the page and press retry again")
}

/// `POST /files/{id}/retry`.
pub async fn retry(
    AxumState(state): AxumState<AdminState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Form(form): Form<RetryForm>,
) -> Response {
    if let Some(why) = cross_site(&headers, &form.token, &state.form_token) {
        return (StatusCode::FORBIDDEN, format!("retry refused: {why}\n")).into_response();
    }
    let result = state
        .writer
        .retry_one(id, "retry requested on the status page")
        .await
        .map(|retried| match retried {
            RetryOne::NoSuchFile => Err(format!("no file has id {id}")),
            RetryOne::NotRetryable(row) => Err(format!(
                "{} is {}, not failed or invalid: nothing to retry",
                text::escape(&row.path),
                row.state
            )),
            RetryOne::Retried { row, ids } => Ok((row.path_display(), ids.len())),
        });
    match result {
        Ok(Ok((path, n))) => {
            info!(path, rows = n, "retry requested on the status page");
            Redirect::to(&format!("/files/{id}")).into_response()
        }
        Ok(Err(why)) => (StatusCode::CONFLICT, format!("retry refused: {why}\n")).into_response(),
        Err(e) => internal(&format!("recording the retry: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let host = ("host", "127.0.0.1:8384");
        // a form posted from the page itself
        let ok = headers(&[
            host,
            ("origin", "http://127.0.0.1:8384"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(cross_site(&ok, "t0k", "t0k"), None);
        // curl: no browser headers, the token is enough
        assert_eq!(cross_site(&headers(&[host]), "t0k", "t0k"), None);
        for (h, token) in [
            (headers(&[host, ("sec-fetch-site", "cross-site")]), "t0k"),
            (headers(&[host, ("origin", "http://evil.example")]), "t0k"),
            (headers(&[host, ("origin", "null")]), "t0k"),
            (headers(&[host]), "wrong"),
            (headers(&[host]), ""),
        ] {
            assert!(cross_site(&h, token, "t0k").is_some(), "{h:?} {token}");
        }
    }

    #[test]
    fn every_live_state_has_a_column_skipped_included() {
        for state in State::ALL.into_iter().filter(|s| s.is_live()) {
            assert!(COLUMNS.contains(&state), "no column for {state}");
        }
    }

    #[test]
    fn file_names_are_escaped() {
        let rows = vec![(
            FileRow {
                id: 7,
                folder: "inbox".into(),
                path: b"<script>alert(1)</script>.pdf".to_vec(),
                target: crate::store::TargetKey {
                    kind: crate::config::TargetKind::MoovFiles,
                    account: "00000000-0000-4000-8000-00000000000a".into(),
                    purpose: "p".into(),
                },
                size: 1,
                mtime_ns: 0,
                sha256: None,
                state: State::Failed,
                remote_id: None,
                remote_status: None,
                decision_reason: None,
                attempts: 0,
                next_attempt_at: None,
                last_error: None,
                last_request_id: Some("\"><img src=x>".into()),
                remote_name: None,
                supersedes: None,
                moved_to: None,
                created_at: 0,
                updated_at: 0,
            },
            "bad & <b>worse</b>\nforged line \u{202e}".to_owned(),
        )];
        // a daemon's name from the shared database is text too
        let holders = HashMap::from([(
            rows[0].0.id,
            Holder {
                instance: "<b>host</b>\nforged".into(),
                hostname: "h".into(),
                pid: None,
                until_ms: 0,
                expired: true,
            },
        )]);
        let html = rows_table(&rows, true, Some(&holders)).into_string();
        assert!(
            html.contains("&lt;b&gt;host&lt;/b&gt;\\nforged on h until"),
            "{html}"
        );
        assert!(html.contains(", expired"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;.pdf"),
            "{html}"
        );
        assert!(
            html.contains("bad &amp; &lt;b&gt;worse&lt;/b&gt;\\nforged line \\u{202e}"),
            "reasons from outside are escaped like names: {html}"
        );
    }
}
