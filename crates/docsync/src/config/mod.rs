//! The configuration: a TOML file with environment overrides, credentials, and
//! `docsync config check`.
//!
//! ```toml
//! state_dir = "/var/lib/docsync"      # default: $XDG_STATE_HOME/docsync
//! concurrency = 4                     # uploads in flight
//! scan_interval = "5m"                # full rescans
//! quiet_window = "1s"                 # size+mtime still this long = complete
//! poll_interval = "2s"                # decision polling (backs off to 60s while nothing changes)
//! retry_initial = "5s"                # first wait before retrying a failed upload (doubles, at most 15m;
//!                                     # a server's Retry-After is always honoured: the wait is the longer)
//! max_requests_per_second = 10        # cap on every request sent (uploads, lists, statuses); default: none
//!
//! [api]
//! url = "https://api.moov.io"         # absent: the embedded sandbox
//! attachments_url = "https://..."     # the attachments API (absent: the sandbox)
//! version = "v2024.01.00"             # X-Moov-Version
//! auth = "basic"                      # or "oauth" (client credentials, least scopes)
//!
//! [credentials]
//! file = "credentials.toml"           # must be mode 0600; env vars win
//!
//! [admin]                             # `docsync run` only; --admin / DOCSYNC_ADMIN win
//! address = "127.0.0.1:8384"          # status page, /metrics, /healthz, /readyz
//! allow_remote = false                # true: a non-loopback address (the page has no login)
//!
//! [[folder]]
//! path = "inbox/kyb"
//! ignore = ["*.bak"]                  # added to the defaults
//! after_decision = "leave"            # or "move" (into approved/ and rejected/)
//! watcher = "native"                  # or "poll" with watcher_interval = "5s"
//! target = { kind = "moov-files", account_id = "...", file_purpose = "business_verification" }
//!
//! [[folder]]
//! path = "inbox/by-account"           # no target: <accountID>/<filePurpose>/<file>
//! ```
//!
//! Relative paths are resolved against the configuration file's directory; `~/` is
//! the home directory.
//! Environment overrides: `DOCSYNC_API_URL`, `DOCSYNC_ATTACHMENTS_URL`,
//! `DOCSYNC_API_VERSION`, `DOCSYNC_AUTH`, `DOCSYNC_STATE_DIR`, `DOCSYNC_CONCURRENCY`,
//! `DOCSYNC_SCAN_INTERVAL`, `DOCSYNC_QUIET_WINDOW`, `DOCSYNC_POLL_INTERVAL`,
//! `DOCSYNC_RETRY_INITIAL`, `DOCSYNC_MAX_RPS`, `DOCSYNC_CREDENTIALS_FILE`; secrets: `DOCSYNC_PUBLIC_KEY`, `DOCSYNC_SECRET_KEY`,
//! `DOCSYNC_ATTACHMENTS_API_KEY`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::ignore::IgnoreSet;
pub use crate::model::{
    convention_target, AfterDecision, AttachmentsTarget, FileMetadata, FilePurpose, Folder,
    Location, Mapping, MoovFilesTarget, MoovImagesTarget, Problem, Severity, Target, TargetKind,
    WatcherKind,
};

/// The Moov API version sent when none is configured.
pub const DEFAULT_API_VERSION: &str = "v2024.01.00";
/// Default uploads in flight.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default time between full scans.
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(300);
/// Default quiet window before a file counts as complete.
pub const DEFAULT_QUIET_WINDOW: Duration = Duration::from_secs(1);
/// Default time between decision polls.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Default first wait before retrying a failed upload.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(5);
/// The highest `max_requests_per_second` accepted.
pub const MAX_RPS_LIMIT: f64 = 10_000.0;
/// Default interval of the polling watcher.
pub const DEFAULT_WATCHER_INTERVAL: Duration = Duration::from_secs(5);

/// A request rate: a positive, finite number of requests per second (so it
/// compares like an integer: never NaN).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct RequestRate(f64);

impl Eq for RequestRate {}

impl RequestRate {
    /// `per_second` if it is positive, finite and at most [`MAX_RPS_LIMIT`].
    pub fn new(per_second: f64) -> Option<RequestRate> {
        (per_second.is_finite() && per_second > 0.0 && per_second <= MAX_RPS_LIMIT)
            .then_some(RequestRate(per_second))
    }

    /// Requests per second.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// The configuration file's environment-variable names.
pub mod env_vars {
    pub const API_URL: &str = "DOCSYNC_API_URL";
    pub const ATTACHMENTS_URL: &str = "DOCSYNC_ATTACHMENTS_URL";
    pub const API_VERSION: &str = "DOCSYNC_API_VERSION";
    pub const AUTH: &str = "DOCSYNC_AUTH";
    pub const STATE_DIR: &str = "DOCSYNC_STATE_DIR";
    pub const CONCURRENCY: &str = "DOCSYNC_CONCURRENCY";
    pub const SCAN_INTERVAL: &str = "DOCSYNC_SCAN_INTERVAL";
    pub const QUIET_WINDOW: &str = "DOCSYNC_QUIET_WINDOW";
    pub const POLL_INTERVAL: &str = "DOCSYNC_POLL_INTERVAL";
    pub const RETRY_INITIAL: &str = "DOCSYNC_RETRY_INITIAL";
    pub const MAX_RPS: &str = "DOCSYNC_MAX_RPS";
    pub const CREDENTIALS_FILE: &str = "DOCSYNC_CREDENTIALS_FILE";
    pub const PUBLIC_KEY: &str = "DOCSYNC_PUBLIC_KEY";
    pub const SECRET_KEY: &str = "DOCSYNC_SECRET_KEY";
    pub const ATTACHMENTS_API_KEY: &str = "DOCSYNC_ATTACHMENTS_API_KEY";
}

// ---------------------------------------------------------------------------------
// secrets

/// Passwords, tokens and keys: the client's [`docsync_client::Secret`], which never
/// prints its value and has no `Serialize`, so it is never written back or logged.
pub use docsync_client::Secret;

/// Where credentials came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CredentialSource {
    #[default]
    None,
    Env,
    File(PathBuf),
    /// Some from the environment, the rest from this file.
    EnvAndFile(PathBuf),
}

/// API credentials. Environment variables take precedence over the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// Moov public key (Basic username, OAuth client id).
    pub public_key: Option<Secret>,
    /// Moov secret key (Basic password, OAuth client secret).
    pub secret_key: Option<Secret>,
    /// The attachments API key.
    pub attachments_api_key: Option<Secret>,
    pub source: CredentialSource,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    public_key: Option<Secret>,
    secret_key: Option<Secret>,
    attachments_api_key: Option<Secret>,
}

/// Read a credentials file (TOML with `public_key`, `secret_key`,
/// `attachments_api_key`), refusing it unless only its owner can read it.
pub fn read_credentials_file(path: &Path) -> Result<Credentials> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io("reading credentials file", path, e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::CredentialsMode {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("reading credentials file", path, e))?;
    let file: CredentialsFile = toml::from_str(&text).map_err(|e| Error::Credentials {
        path: path.to_owned(),
        // never echo the file's content: the message only, without the snippet
        message: format!("{}{}", e.message(), span_suffix(&text, e.span())),
    })?;
    Ok(Credentials {
        public_key: file.public_key,
        secret_key: file.secret_key,
        attachments_api_key: file.attachments_api_key,
        source: CredentialSource::File(path.to_owned()),
    })
}

fn span_suffix(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            format!(" (line {line}, column {col})")
        }
        None => String::new(),
    }
}

/// How the daemon authenticates against the Moov API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// HTTP Basic with the public and secret keys.
    #[default]
    Basic,
    /// OAuth2 client credentials, asking for the least scopes the folders need.
    Oauth,
}

/// The `[api]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The Moov API base URL; `None` means the embedded sandbox.
    pub url: Option<String>,
    /// The attachments API base URL; `None` means the embedded sandbox.
    pub attachments_url: Option<String>,
    /// The `X-Moov-Version` header.
    pub version: String,
    pub auth: AuthMode,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub api: ApiConfig,
    pub credentials: Credentials,
    pub folders: Vec<Folder>,
    pub state_dir: PathBuf,
    pub concurrency: usize,
    pub scan_interval: Duration,
    pub quiet_window: Duration,
    pub poll_interval: Duration,
    /// First wait before retrying a failed upload (doubling per attempt, at
    /// most 15 min; a server's Retry-After wins when it is longer).
    pub retry_initial: Duration,
    /// The most requests per second sent to the APIs (`None`: no limit).
    pub max_requests_per_second: Option<RequestRate>,
    /// The `[admin]` listener of `docsync run` (`--admin` wins over it).
    pub admin: Option<AdminConfig>,
    /// The file this was read from, if any.
    pub source: Option<PathBuf>,
}

/// The `[admin]` section: where `docsync run` serves the status page, `/metrics`,
/// `/healthz` and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminConfig {
    pub address: SocketAddr,
    /// Whether a non-loopback address is allowed (the page has no login).
    pub allow_remote: bool,
}

impl Config {
    /// The zero-config setup: one folder using the `<accountID>/<filePurpose>/` layout,
    /// defaults and environment overrides for everything else.
    pub fn zero_config(root: &Path, env: &Env) -> Result<Config> {
        let text = format!(
            "[[folder]]\npath = {}\n",
            toml_string(&root.to_string_lossy())
        );
        parse(&text, None, env).map_err(|problems| Error::Config {
            path: root.to_owned(),
            problems,
        })
    }

    /// The OAuth scopes the configured targets need, least privilege: for each
    /// moov-files account `files.read` and `files.write`, for each moov-images
    /// account `images.read` and `images.write`. The accounts of convention
    /// folders are found at run time; `remote` adds theirs as it meets them.
    pub fn oauth_scopes(&self) -> Vec<String> {
        use docsync_client::auth::{files_scopes, images_scopes};
        let scopes: BTreeSet<String> = self
            .folders
            .iter()
            .flat_map(|folder| match &folder.mapping {
                Mapping::Fixed(Target::MoovFiles(t)) => files_scopes(&t.account_id).to_vec(),
                Mapping::Fixed(Target::MoovImages(t)) => images_scopes(&t.account_id).to_vec(),
                Mapping::Fixed(Target::Attachments(_)) | Mapping::Convention => Vec::new(),
            })
            .collect();
        scopes.into_iter().collect()
    }

    /// Whether any folder sends to the Moov API.
    pub fn uses_moov(&self) -> bool {
        self.folders
            .iter()
            .any(|f| !matches!(f.mapping, Mapping::Fixed(Target::Attachments(_))))
    }

    /// Whether any folder sends to the attachments API.
    pub fn uses_attachments(&self) -> bool {
        self.folders
            .iter()
            .any(|f| matches!(f.mapping, Mapping::Fixed(Target::Attachments(_))))
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

// ---------------------------------------------------------------------------------
// environment

/// The environment variables docsync reads, captured once (tests build their own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// `DOCSYNC_*`, `HOME` and `XDG_STATE_HOME` from the process environment.
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars()
                .filter(|(k, _)| k.starts_with("DOCSYNC_") || k == "HOME" || k == "XDG_STATE_HOME")
                .collect(),
        }
    }

    /// An explicit environment.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A non-empty variable.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The default state directory: `$XDG_STATE_HOME/docsync`, `~/.local/state/docsync`,
/// or `.docsync` in the working directory.
pub fn default_state_dir(env: &Env) -> PathBuf {
    if let Some(x) = env.get("XDG_STATE_HOME") {
        return Path::new(x).join("docsync");
    }
    if let Some(home) = env.get("HOME") {
        return Path::new(home).join(".local/state/docsync");
    }
    PathBuf::from(".docsync")
}

// ---------------------------------------------------------------------------------
// problems

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Problems<'a> {
    file: Option<PathBuf>,
    text: &'a str,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn push(
        &mut self,
        severity: Severity,
        span: Option<std::ops::Range<usize>>,
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

    fn error(
        &mut self,
        span: Option<std::ops::Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Error, span, key, message, fix);
    }
}

// ---------------------------------------------------------------------------------
// parsing

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    api: Option<Spanned<RawApi>>,
    credentials: Option<Spanned<RawCredentials>>,
    #[serde(default)]
    folder: Vec<Spanned<RawFolder>>,
    state_dir: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
    scan_interval: Option<Spanned<String>>,
    quiet_window: Option<Spanned<String>>,
    poll_interval: Option<Spanned<String>>,
    retry_initial: Option<Spanned<String>>,
    max_requests_per_second: Option<Spanned<f64>>,
    admin: Option<Spanned<RawAdmin>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    address: Spanned<String>,
    #[serde(default)]
    allow_remote: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    url: Option<Spanned<String>>,
    attachments_url: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
    auth: Option<AuthMode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawWatcher {
    Native,
    Poll,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFolder {
    path: Spanned<String>,
    target: Option<Target>,
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    after_decision: AfterDecision,
    watcher: Option<RawWatcher>,
    watcher_interval: Option<Spanned<String>>,
}

/// The sections of a file, as untyped values with their spans (for
/// [`more_schema_problems`]).
#[derive(Debug, Deserialize)]
struct Sections {
    #[serde(default)]
    folder: Vec<Spanned<toml::Value>>,
    api: Option<Spanned<toml::Value>>,
    credentials: Option<Spanned<toml::Value>>,
}

/// [`RawFolder`] without spans: `toml::Value` cannot produce them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only deserialised, to find errors
struct PlainFolder {
    path: String,
    target: Option<Target>,
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    after_decision: AfterDecision,
    watcher: Option<RawWatcher>,
    watcher_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only deserialised, to find errors
struct PlainApi {
    url: Option<String>,
    attachments_url: Option<String>,
    version: Option<String>,
    auth: Option<AuthMode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only deserialised, to find errors
struct PlainCredentials {
    file: Option<String>,
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "api",
    "credentials",
    "folder",
    "state_dir",
    "concurrency",
    "scan_interval",
    "quiet_window",
    "poll_interval",
    "retry_initial",
    "max_requests_per_second",
];

/// After the typed parse stopped at its first schema error (at `first`), check the
/// other sections one by one so `config check` reports every problem, not just the
/// first. Each further problem is located at its section (`[[folder]]`, `[api]`)
/// and named by key path. Sections containing `first` are skipped (already reported).
fn more_schema_problems(text: &str, first: Option<std::ops::Range<usize>>, p: &mut Problems<'_>) {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return; // a syntax error: nothing more can be read
    };
    let Ok(sections) = toml::from_str::<Sections>(text) else {
        return;
    };
    let contains_first = |span: &std::ops::Range<usize>| {
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
    let mut check = |span: std::ops::Range<usize>,
                     key: String,
                     result: std::result::Result<(), toml::de::Error>| {
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
}

/// Parse a duration such as `500ms`, `1s`, `1.5s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("`{text}` has no unit")),
        other => return Err(format!("`{other}` is not a duration unit")),
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

const DURATION_FIX: &str =
    "write a number with a unit, such as \"500ms\", \"1s\", \"5m\" or \"1h\"";

fn fix_for_toml(message: &str) -> String {
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

/// Load and resolve a configuration file.
pub fn load(path: &Path, env: &Env) -> Result<Config> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io("reading configuration", path, e))?;
    parse(&text, Some(path), env).map_err(|problems| Error::Config {
        path: path.to_owned(),
        problems,
    })
}

/// Every problem in a configuration file (errors and warnings), for
/// `docsync config check`. Empty means the file is fine.
pub fn check(path: &Path, env: &Env) -> Vec<Problem> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_all(&text, Some(path), env).1,
        Err(e) => vec![Problem {
            severity: Severity::Error,
            location: Location {
                file: Some(path.to_owned()),
                ..Location::default()
            },
            message: format!("cannot read the configuration: {e}"),
            fix: format!(
                "create {} or pass --config with the right path",
                path.display()
            ),
        }],
    }
}

/// Parse configuration text. `origin` is the file it came from (relative paths are
/// resolved against its directory, and problems name it). Fails with every error
/// found; warnings alone do not fail.
pub fn parse(
    text: &str,
    origin: Option<&Path>,
    env: &Env,
) -> std::result::Result<Config, Vec<Problem>> {
    match parse_all(text, origin, env) {
        (Some(config), problems) if problems.iter().all(|p| p.severity == Severity::Warning) => {
            Ok(config)
        }
        (_, problems) => Err(problems),
    }
}

/// `[admin]`: an address with a port, on loopback unless `allow_remote`.
fn admin_config(raw: RawAdmin, p: &mut Problems<'_>) -> Option<AdminConfig> {
    let span = Some(raw.address.span());
    let text = raw.address.into_inner();
    let Ok(address) = text.trim().parse::<SocketAddr>() else {
        p.error(
            span,
            "admin.address",
            format!("`{text}` is not an IP address with a port"),
            "use an address such as 127.0.0.1:8384 (port 0: any free port, logged)",
        );
        return None;
    };
    if !address.ip().is_loopback() && !raw.allow_remote {
        p.error(
            span,
            "admin.address",
            format!("{address} can be reached from other machines, and the status page has no login"),
            "use 127.0.0.1:PORT, or set allow_remote = true behind a firewall or an authenticating proxy",
        );
        return None;
    }
    Some(AdminConfig {
        address,
        allow_remote: raw.allow_remote,
    })
}

/// Parse and resolve, returning the config (if there were no errors) and every problem.
pub fn parse_all(text: &str, origin: Option<&Path>, env: &Env) -> (Option<Config>, Vec<Problem>) {
    let mut p = Problems {
        file: origin.map(Path::to_owned),
        text,
        list: Vec::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let message = e.message().to_owned();
            let fix = fix_for_toml(&message);
            p.error(e.span(), "", message, fix);
            more_schema_problems(text, e.span(), &mut p);
            return (None, p.list);
        }
    };
    let base = origin
        .and_then(Path::parent)
        .map(Path::to_owned)
        .unwrap_or_default();
    let home = env.get("HOME").map(PathBuf::from);
    let resolve = |s: &str| -> PathBuf {
        if let (Some(rest), Some(home)) = (s.strip_prefix("~/"), &home) {
            return home.join(rest);
        }
        let path = Path::new(s);
        if path.is_absolute() {
            path.to_owned()
        } else {
            base.join(path)
        }
    };

    // [api]
    let raw_api = raw.api.map(Spanned::into_inner);
    let mut url = raw_api
        .as_ref()
        .and_then(|a| a.url.clone())
        .map(|s| (s.span(), s.into_inner()));
    let mut attachments_url = raw_api
        .as_ref()
        .and_then(|a| a.attachments_url.clone())
        .map(|s| (s.span(), s.into_inner()));
    let mut version = raw_api
        .as_ref()
        .and_then(|a| a.version.clone())
        .map(|s| (Some(s.span()), "api.version".to_owned(), s.into_inner()));
    let mut auth = raw_api.as_ref().and_then(|a| a.auth).unwrap_or_default();
    if let Some(v) = env.get(env_vars::API_URL) {
        url = Some((0..0, v.to_owned()));
    }
    if let Some(v) = env.get(env_vars::ATTACHMENTS_URL) {
        attachments_url = Some((0..0, v.to_owned()));
    }
    if let Some(v) = env.get(env_vars::API_VERSION) {
        version = Some((None, format!("env {}", env_vars::API_VERSION), v.to_owned()));
    }
    if let Some(v) = env.get(env_vars::AUTH) {
        match v {
            "basic" => auth = AuthMode::Basic,
            "oauth" => auth = AuthMode::Oauth,
            other => p.error(
                None,
                format!("env {}", env_vars::AUTH),
                format!("`{other}` is not an auth mode"),
                "set it to basic or oauth",
            ),
        }
    }
    for (key, env_key, value) in [
        ("api.url", env_vars::API_URL, &url),
        (
            "api.attachments_url",
            env_vars::ATTACHMENTS_URL,
            &attachments_url,
        ),
    ] {
        if let Some((span, u)) = value {
            let from_env = env.get(env_key).is_some();
            if !(u.starts_with("http://") || u.starts_with("https://"))
                || u.len() <= "https://".len()
            {
                p.error(
                    (!from_env).then(|| span.clone()),
                    if from_env { format!("env {env_key}") } else { key.to_owned() },
                    format!("`{u}` is not an http(s) URL"),
                    "write the base URL, such as \"https://api.moov.io\", or remove it to use the embedded sandbox",
                );
            }
        }
    }
    let version = match version {
        Some((span, key, v)) => {
            if !is_api_version(&v) {
                p.error(
                    span,
                    key,
                    format!("`{v}` is not an API version (the server answers 404 to malformed versions)"),
                    format!("use the form vYYYY.QQ.BB, such as \"{DEFAULT_API_VERSION}\""),
                );
            }
            v
        }
        None => DEFAULT_API_VERSION.to_owned(),
    };

    // numbers and durations
    let mut concurrency = DEFAULT_CONCURRENCY;
    let conc = match env.get(env_vars::CONCURRENCY) {
        Some(v) => Some((
            None,
            format!("env {}", env_vars::CONCURRENCY),
            v.parse::<i64>().map_err(|_| v.to_owned()),
        )),
        None => raw
            .concurrency
            .map(|c| (Some(c.span()), "concurrency".to_owned(), Ok(*c.get_ref()))),
    };
    if let Some((span, key, value)) = conc {
        match value {
            Ok(n) if (1..=64).contains(&n) => {
                concurrency = usize::try_from(n).unwrap_or(DEFAULT_CONCURRENCY)
            }
            Ok(n) => p.error(
                span,
                key,
                format!("concurrency {n} is out of range"),
                "use a number from 1 to 64",
            ),
            Err(v) => p.error(
                span,
                key,
                format!("`{v}` is not a number"),
                "use a number from 1 to 64",
            ),
        }
    }
    let mut duration =
        |raw: Option<Spanned<String>>, key: &str, env_key: &str, default: Duration| -> Duration {
            let (span, key, text) = match (env.get(env_key), raw) {
                (Some(v), _) => (None, format!("env {env_key}"), v.to_owned()),
                (None, Some(s)) => (Some(s.span()), key.to_owned(), s.into_inner()),
                (None, None) => return default,
            };
            match parse_duration(&text) {
                Ok(d) if d.is_zero() => {
                    p.error(
                        span,
                        key,
                        "the duration must be more than zero",
                        DURATION_FIX,
                    );
                    default
                }
                Ok(d) => d,
                Err(msg) => {
                    p.error(span, key, msg, DURATION_FIX);
                    default
                }
            }
        };
    let scan_interval = duration(
        raw.scan_interval,
        "scan_interval",
        env_vars::SCAN_INTERVAL,
        DEFAULT_SCAN_INTERVAL,
    );
    let quiet_window = duration(
        raw.quiet_window,
        "quiet_window",
        env_vars::QUIET_WINDOW,
        DEFAULT_QUIET_WINDOW,
    );
    let poll_interval = duration(
        raw.poll_interval,
        "poll_interval",
        env_vars::POLL_INTERVAL,
        DEFAULT_POLL_INTERVAL,
    );
    let retry_initial = duration(
        raw.retry_initial,
        "retry_initial",
        env_vars::RETRY_INITIAL,
        DEFAULT_RETRY_INITIAL,
    );
    let rps = match env.get(env_vars::MAX_RPS) {
        Some(v) => Some((
            None,
            format!("env {}", env_vars::MAX_RPS),
            v.trim().parse::<f64>().map_err(|_| v.to_owned()),
        )),
        None => raw.max_requests_per_second.map(|r| {
            (
                Some(r.span()),
                "max_requests_per_second".to_owned(),
                Ok(*r.get_ref()),
            )
        }),
    };
    let mut max_requests_per_second = None;
    if let Some((span, key, value)) = rps {
        let fix = format!("use a number of requests per second above 0 and at most {MAX_RPS_LIMIT}, such as 10, or remove it for no limit");
        match value {
            Ok(n) if RequestRate::new(n).is_some() => max_requests_per_second = RequestRate::new(n),
            Ok(n) => p.error(
                span,
                key,
                format!("{n} requests per second is out of range"),
                fix,
            ),
            Err(v) => p.error(span, key, format!("`{v}` is not a number"), fix),
        }
    }

    let admin = raw
        .admin
        .map(Spanned::into_inner)
        .and_then(|a| admin_config(a, &mut p));

    let state_dir = match (env.get(env_vars::STATE_DIR), &raw.state_dir) {
        (Some(v), _) => PathBuf::from(v),
        (None, Some(s)) => resolve(s.get_ref()),
        (None, None) => default_state_dir(env),
    };

    // folders
    let mut folders = Vec::new();
    if raw.folder.is_empty() {
        p.error(
            None,
            "folder",
            "no folder is configured",
            "add a [[folder]] table with a path (and a target, or use the <accountID>/<filePurpose>/ layout)",
        );
    }
    for (i, spanned) in raw.folder.into_iter().enumerate() {
        let span = spanned.span();
        let f = spanned.into_inner();
        let key = |k: &str| format!("folder[{i}].{k}");
        if f.path.get_ref().trim().is_empty() {
            p.error(
                Some(f.path.span()),
                key("path"),
                "the folder path is empty",
                "set path to the folder to sync",
            );
            continue;
        }
        let path = resolve(f.path.get_ref());
        if !path.is_dir() {
            p.push(
                Severity::Warning,
                Some(f.path.span()),
                key("path"),
                format!("folder {} does not exist (yet)", path.display()),
                format!(
                    "create it with `mkdir -p {}` or correct the path",
                    path.display()
                ),
            );
        }
        let mapping = match f.target {
            Some(target) => {
                let (what, id) = match &target {
                    Target::Attachments(t) => ("user_id", &t.user_id),
                    Target::MoovFiles(t) => ("account_id", &t.account_id),
                    Target::MoovImages(t) => ("account_id", &t.account_id),
                };
                if id.trim().is_empty() || id.contains('/') {
                    p.error(
                        Some(span.clone()),
                        key(&format!("target.{what}")),
                        format!("{what} `{id}` is not valid"),
                        format!("set {what} to the id from the dashboard (no slashes)"),
                    );
                }
                Mapping::Fixed(target)
            }
            None => Mapping::Convention,
        };
        if let Err(e) = IgnoreSet::new(&f.ignore, false) {
            p.error(
                Some(span.clone()),
                key("ignore"),
                e.to_string(),
                "fix the glob (escape [ ] { } * ? with a backslash)",
            );
        }
        let watcher = match (f.watcher, f.watcher_interval) {
            (Some(RawWatcher::Poll), Some(s)) => match parse_duration(s.get_ref()) {
                Ok(d) if !d.is_zero() => WatcherKind::Poll { interval: d },
                Ok(_) => {
                    p.error(
                        Some(s.span()),
                        key("watcher_interval"),
                        "the duration must be more than zero",
                        DURATION_FIX,
                    );
                    WatcherKind::Poll {
                        interval: DEFAULT_WATCHER_INTERVAL,
                    }
                }
                Err(msg) => {
                    p.error(Some(s.span()), key("watcher_interval"), msg, DURATION_FIX);
                    WatcherKind::Poll {
                        interval: DEFAULT_WATCHER_INTERVAL,
                    }
                }
            },
            (Some(RawWatcher::Poll), None) => WatcherKind::Poll {
                interval: DEFAULT_WATCHER_INTERVAL,
            },
            (_, Some(s)) => {
                p.error(
                    Some(s.span()),
                    key("watcher_interval"),
                    "watcher_interval only applies to the polling watcher",
                    "add watcher = \"poll\" or remove watcher_interval",
                );
                WatcherKind::Native
            }
            _ => WatcherKind::Native,
        };
        folders.push((
            span,
            Folder {
                path,
                mapping,
                ignore: f.ignore,
                after_decision: f.after_decision,
                watcher,
            },
        ));
    }
    // overlapping folders would sync one file twice
    for (i, (span_a, a)) in folders.iter().enumerate() {
        for (j, (_, b)) in folders.iter().enumerate() {
            if i < j && (a.path.starts_with(&b.path) || b.path.starts_with(&a.path)) {
                p.error(
                    Some(span_a.clone()),
                    format!("folder[{j}].path"),
                    format!(
                        "folders {} and {} overlap, so files would be synced twice",
                        a.path.display(),
                        b.path.display()
                    ),
                    "give each folder its own directory, neither inside the other",
                );
            }
        }
    }
    let folders: Vec<Folder> = folders.into_iter().map(|(_, f)| f).collect();

    // credentials
    let file_path = match (
        env.get(env_vars::CREDENTIALS_FILE),
        raw.credentials.map(Spanned::into_inner),
    ) {
        (Some(v), _) => Some((
            None,
            format!("env {}", env_vars::CREDENTIALS_FILE),
            PathBuf::from(v),
        )),
        (None, Some(RawCredentials { file: Some(f) })) => Some((
            Some(f.span()),
            "credentials.file".to_owned(),
            resolve(f.get_ref()),
        )),
        _ => None,
    };
    let mut credentials = Credentials::default();
    if let Some((span, key, path)) = &file_path {
        match read_credentials_file(path) {
            Ok(c) => credentials = c,
            Err(Error::CredentialsMode { path, mode }) => p.error(
                span.clone(),
                key.clone(),
                format!(
                    "credentials file {} has mode {mode:04o}; it must be readable by its owner only",
                    path.display()
                ),
                format!("run `chmod 600 {}`", path.display()),
            ),
            Err(e) => p.error(span.clone(), key.clone(), e.to_string(), "fix or recreate the credentials file"),
        }
    }
    let mut from_env = false;
    for (var, slot) in [
        (env_vars::PUBLIC_KEY, &mut credentials.public_key),
        (env_vars::SECRET_KEY, &mut credentials.secret_key),
        (
            env_vars::ATTACHMENTS_API_KEY,
            &mut credentials.attachments_api_key,
        ),
    ] {
        if let Some(v) = env.get(var) {
            *slot = Some(Secret::new(v));
            from_env = true;
        }
    }
    credentials.source = match (&credentials.source, from_env) {
        (CredentialSource::File(f), true) => CredentialSource::EnvAndFile(f.clone()),
        (_, true) => CredentialSource::Env,
        (s, false) => s.clone(),
    };

    let config = Config {
        api: ApiConfig {
            url: url.map(|(_, u)| u),
            attachments_url: attachments_url.map(|(_, u)| u),
            version,
            auth,
        },
        credentials,
        folders,
        state_dir,
        concurrency,
        scan_interval,
        quiet_window,
        poll_interval,
        retry_initial,
        max_requests_per_second,
        admin,
        source: origin.map(Path::to_owned),
    };

    // credentials needed by the real APIs (the embedded sandbox needs none)
    if config.api.url.is_some() && config.uses_moov() {
        for (name, var, have) in [
            (
                "public key",
                env_vars::PUBLIC_KEY,
                config.credentials.public_key.is_some(),
            ),
            (
                "secret key",
                env_vars::SECRET_KEY,
                config.credentials.secret_key.is_some(),
            ),
        ] {
            if !have {
                p.error(
                    None,
                    "credentials",
                    format!("the Moov {name} is missing (needed for api.url)"),
                    format!("set {var}, or add it to the credentials file (mode 0600)"),
                );
            }
        }
    }
    if config.api.attachments_url.is_some()
        && config.uses_attachments()
        && config.credentials.attachments_api_key.is_none()
    {
        p.error(
            None,
            "credentials",
            "the attachments API key is missing (needed for api.attachments_url)",
            format!(
                "set {}, or add attachments_api_key to the credentials file (mode 0600)",
                env_vars::ATTACHMENTS_API_KEY
            ),
        );
    }
    if config.api.auth == AuthMode::Oauth && config.api.url.is_none() {
        p.push(
            Severity::Warning,
            None,
            "api.auth",
            "oauth has no effect without api.url (the embedded sandbox is used)",
            "set api.url or remove auth",
        );
    }

    let ok = p.list.iter().all(|x| x.severity == Severity::Warning);
    (ok.then_some(config), p.list)
}

fn is_api_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 11
        && b[0] == b'v'
        && b[5] == b'.'
        && b[8] == b'.'
        && [1, 2, 3, 4, 6, 7, 9, 10]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

#[cfg(test)]
mod tests;
