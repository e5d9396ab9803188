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
//! max_age = "30d"                     # files older than this when first seen are recorded
//!                                     # `skipped`, never read or sent (or a date: "2024-06-01",
//!                                     # RFC 3339; a folder's own max_age wins; DOCSYNC_MAX_AGE
//!                                     # replaces this one; `--only-newer-than` wins over all)
//!
//! [api]
//! url = "https://api.moov.io"         # required, unless sandbox = true
//! attachments_url = "https://..."     # the attachments API (absent: url)
//! sandbox = true                      # instead of url: the embedded sandbox, a local
//!                                     # stand-in whose approvals are not real
//! version = "v2024.01.00"             # X-Moov-Version
//! auth = "basic"                      # or "oauth" (client credentials, least scopes)
//!
//! [credentials]
//! file = "credentials.toml"           # must be mode 0600; env vars win
//!
//! [http]
//! connect_timeout = "10s"             # a connection must open within this
//! read_timeout = "60s"                # the server may stay silent this long mid-request
//! proxy = "http://proxy.example:3128" # every request through it (user:password@ allowed, never
//!                                     # shown); "none": no proxy; absent: HTTPS_PROXY/HTTP_PROXY/
//!                                     # ALL_PROXY minus NO_PROXY, never for loopback hosts
//! ca_file = "/etc/ssl/corp-ca.pem"    # extra PEM CA certificates, added to the system's roots
//! retry_for = "1h"                    # a failing upload is retried this long after its first
//!                                     # attempt (backoff from retry_initial, at most 15m apart),
//!                                     # then `failed` until `docsync retry`
//!
//! [admin]                             # `docsync run` only; --admin / DOCSYNC_ADMIN win
//! address = "127.0.0.1:8384"          # status page, /metrics, /healthz, /readyz
//! allow_remote = false                # true: a non-loopback address (the page has no login)
//!
//! [hooks]                             # hear about decisions (see the `hooks` module)
//! on_decision = ["/usr/local/bin/notify.sh", "kyc"]   # argv, run without a shell
//! webhook_url = "https://hooks.example.com/docsync"  # signed JSON POST
//!                                     # (secret: DOCSYNC_WEBHOOK_SECRET or the credentials file)
//!
//! [[folder]]
//! path = "inbox/kyb"
//! ignore = ["*.bak"]                  # added to the defaults
//! after_decision = "leave"            # or "move" (into approved/ and rejected/)
//! watcher = "native"                  # or "poll" with watcher_interval = "5s"
//! max_age = "7d"                      # this folder's own (see the top-level max_age)
//! # account_id: the account's Moov ID, a UUID (anything else is a `config check` error)
//! target = { kind = "moov-files", account_id = "7f888113-d35a-4536-b9bc-c55076736ab6", file_purpose = "business_verification" }
//!
//! [[folder]]
//! path = "inbox/by-account"           # no target: <accountID>/<filePurpose>/<file>,
//!                                     # <accountID> a UUID (other folders are `invalid`)
//! ```
//!
//! Relative paths are resolved against the configuration file's directory; `~/` is
//! the home directory.
//!
//! The embedded sandbox is never a silent default: it is used when asked
//! (`api.sandbox = true`, `--sandbox`, `DOCSYNC_SANDBOX=true`) or when nothing is
//! configured at all ([`Config::zero_config`] without an API URL). A file whose
//! folders need an API and that names none is an error, and so is asking for the
//! sandbox and naming an API URL.
//!
//! Environment overrides: `DOCSYNC_API_URL`, `DOCSYNC_SANDBOX`, `DOCSYNC_ATTACHMENTS_URL`,
//! `DOCSYNC_API_VERSION`, `DOCSYNC_AUTH`, `DOCSYNC_STATE_DIR`, `DOCSYNC_CONCURRENCY`,
//! `DOCSYNC_SCAN_INTERVAL`, `DOCSYNC_QUIET_WINDOW`, `DOCSYNC_POLL_INTERVAL`,
//! `DOCSYNC_RETRY_INITIAL`, `DOCSYNC_MAX_RPS`, `DOCSYNC_CREDENTIALS_FILE`, `DOCSYNC_HTTP_CONNECT_TIMEOUT`,
//! `DOCSYNC_HTTP_READ_TIMEOUT`, `DOCSYNC_HTTP_PROXY`, `DOCSYNC_HTTP_CA_FILE`, `DOCSYNC_HTTP_RETRY_FOR`; secrets: `DOCSYNC_PUBLIC_KEY`, `DOCSYNC_SECRET_KEY`,
//! `DOCSYNC_ATTACHMENTS_API_KEY`, `DOCSYNC_WEBHOOK_SECRET`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
pub use crate::model::{
    convention_target, normalise_base_url, AfterDecision, ApiIdentity, AttachmentsTarget,
    FileMetadata, FilePurpose, Folder, Location, Mapping, MoovFilesTarget, MoovImagesTarget,
    Problem, Severity, Target, TargetKind, WatcherKind,
};

mod api;
mod credentials;
mod env;
mod hooks;
mod http;
mod parse;
mod problems;
mod raw;
mod state;

pub use credentials::{read_credentials_file, CredentialSource, Credentials, Secret};
pub use env::{default_state_dir, env_vars, Env, PROXY_VARS};
pub use hooks::{
    CommandHook, HooksConfig, WebhookHook, DEFAULT_COMMAND_TIMEOUT, DEFAULT_HOOK_ATTEMPTS,
    DEFAULT_HOOK_RETRY_INITIAL, MAX_HOOK_RETRY, WEBHOOK_TIMEOUT,
};
pub use http::{
    ca_file_problem, load_pem_bundle, EnvProxies, HttpConfig, ProxySetting, ProxyUrl,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_RETRY_FOR, LOOPBACK_NO_PROXY,
};
pub use parse::{parse_all, parse_duration};
pub use state::{StateConfig, StateUrl};

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
    /// The Moov API base URL (also the attachments API's, unless that has its
    /// own). `None` after parsing when `sandbox` is set (the cli puts the embedded
    /// sandbox's URL here once it runs), or when the only folders are attachments
    /// folders with their own `attachments_url`.
    pub url: Option<String>,
    /// The attachments API base URL; `None` means `url`.
    pub attachments_url: Option<String>,
    /// The embedded sandbox stands in for every API (`api.sandbox = true`,
    /// `DOCSYNC_SANDBOX`, or the zero-config setup without an API URL).
    pub sandbox: bool,
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
    /// `[state]`: SQLite in `state_dir` (default) or a shared PostgreSQL.
    pub state: StateConfig,
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
    /// `[hooks]`: who hears about decisions (none by default).
    pub hooks: HooksConfig,
    /// `[http]`: timeouts, proxy, extra CA certificates, the retry budget.
    pub http: HttpConfig,
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
    /// defaults and environment overrides for everything else. With no API URL
    /// in `env` (nothing is configured at all), the embedded sandbox.
    pub fn zero_config(root: &Path, env: &Env) -> Result<Config> {
        let mut text = format!(
            "[[folder]]\npath = {}\n",
            toml_string(&root.to_string_lossy())
        );
        if env.get(env_vars::API_URL).is_none() && env.get(env_vars::SANDBOX).is_none() {
            text.push_str("[api]\nsandbox = true\n");
        }
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

    /// Which API the folders are synced with, as the state database records it:
    /// the sandbox, or the normalised base URL of each API a folder uses.
    pub fn api_identity(&self) -> ApiIdentity {
        if self.api.sandbox {
            return ApiIdentity::Sandbox;
        }
        let moov = self
            .uses_moov()
            .then_some(self.api.url.as_deref())
            .flatten();
        let attachments = self
            .uses_attachments()
            .then(|| {
                self.api
                    .attachments_url
                    .as_deref()
                    .or(self.api.url.as_deref())
            })
            .flatten();
        ApiIdentity::Remote {
            moov: moov.map(normalise_base_url),
            attachments: attachments.map(normalise_base_url),
        }
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

#[cfg(test)]
mod tests;
