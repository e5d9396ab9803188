//! The configuration file as TOML reads it: the serde types with their spans,
//! before any value is checked or resolved (the `parse` module does that).

use serde::Deserialize;
use toml::Spanned;

use super::AuthMode;
use crate::model::{AfterDecision, Target};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) api: Option<Spanned<RawApi>>,
    pub(super) credentials: Option<Spanned<RawCredentials>>,
    #[serde(default)]
    pub(super) folder: Vec<Spanned<RawFolder>>,
    pub(super) state_dir: Option<Spanned<String>>,
    pub(super) state: Option<Spanned<super::state::RawState>>,
    pub(super) concurrency: Option<Spanned<i64>>,
    pub(super) scan_interval: Option<Spanned<String>>,
    pub(super) quiet_window: Option<Spanned<String>>,
    pub(super) poll_interval: Option<Spanned<String>>,
    pub(super) retry_initial: Option<Spanned<String>>,
    pub(super) max_requests_per_second: Option<Spanned<f64>>,
    pub(super) max_age: Option<Spanned<String>>,
    pub(super) admin: Option<Spanned<RawAdmin>>,
    pub(super) hooks: Option<Spanned<RawHooks>>,
    pub(super) http: Option<Spanned<super::http::RawHttp>>,
}

/// `[hooks]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    pub(super) on_decision: Option<Spanned<Vec<String>>>,
    pub(super) command_timeout: Option<Spanned<String>>,
    pub(super) webhook_url: Option<Spanned<String>>,
    pub(super) max_attempts: Option<Spanned<i64>>,
    pub(super) retry_initial: Option<Spanned<String>>,
}

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) address: Spanned<String>,
    #[serde(default)]
    pub(super) allow_remote: bool,
}

/// `[api]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub(super) url: Option<Spanned<String>>,
    pub(super) attachments_url: Option<Spanned<String>>,
    pub(super) version: Option<Spanned<String>>,
    pub(super) auth: Option<AuthMode>,
    pub(super) sandbox: Option<Spanned<bool>>,
}

/// `[credentials]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredentials {
    pub(super) file: Option<Spanned<String>>,
}

/// A folder's `watcher`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RawWatcher {
    Native,
    Poll,
}

/// One `[[folder]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFolder {
    pub(super) path: Spanned<String>,
    pub(super) target: Option<Spanned<Target>>,
    #[serde(default)]
    pub(super) ignore: Vec<String>,
    #[serde(default)]
    pub(super) after_decision: AfterDecision,
    pub(super) watcher: Option<RawWatcher>,
    pub(super) watcher_interval: Option<Spanned<String>>,
    pub(super) max_age: Option<Spanned<String>>,
}

/// The sections of a file, as untyped values with their spans (for
/// `problems::more_schema_problems`).
#[derive(Debug, Deserialize)]
pub(super) struct Sections {
    #[serde(default)]
    pub(super) folder: Vec<Spanned<toml::Value>>,
    pub(super) api: Option<Spanned<toml::Value>>,
    pub(super) credentials: Option<Spanned<toml::Value>>,
    pub(super) hooks: Option<Spanned<toml::Value>>,
}

/// [`RawFolder`] without spans: `toml::Value` cannot produce them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only deserialised, to find errors
pub(super) struct PlainFolder {
    path: String,
    target: Option<Target>,
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    after_decision: AfterDecision,
    watcher: Option<RawWatcher>,
    watcher_interval: Option<String>,
    max_age: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only deserialised, to find errors
pub(super) struct PlainApi {
    url: Option<String>,
    attachments_url: Option<String>,
    version: Option<String>,
    auth: Option<AuthMode>,
    sandbox: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only deserialised, to find errors
pub(super) struct PlainCredentials {
    file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only deserialised, to find errors
pub(super) struct PlainHooks {
    on_decision: Option<Vec<String>>,
    command_timeout: Option<String>,
    webhook_url: Option<String>,
    max_attempts: Option<i64>,
    retry_initial: Option<String>,
}

/// The top-level keys named in an unknown-field message.
pub(super) const TOP_LEVEL_KEYS: &[&str] = &[
    "api",
    "admin",
    "http",
    "credentials",
    "folder",
    "state_dir",
    "state",
    "concurrency",
    "scan_interval",
    "quiet_window",
    "poll_interval",
    "retry_initial",
    "max_requests_per_second",
    "max_age",
    "hooks",
];
