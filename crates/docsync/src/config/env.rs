//! The `DOCSYNC_*` environment overlay: the variables docsync reads ([`Env`],
//! [`env_vars`]), and the rule that a set variable wins over the file's value.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

/// The configuration file's environment-variable names.
pub mod env_vars {
    pub const API_URL: &str = "DOCSYNC_API_URL";
    pub const SANDBOX: &str = "DOCSYNC_SANDBOX";
    pub const ATTACHMENTS_URL: &str = "DOCSYNC_ATTACHMENTS_URL";
    pub const API_VERSION: &str = "DOCSYNC_API_VERSION";
    pub const AUTH: &str = "DOCSYNC_AUTH";
    pub const STATE_DIR: &str = "DOCSYNC_STATE_DIR";
    pub const STATE_URL: &str = "DOCSYNC_STATE_URL";
    pub const CONCURRENCY: &str = "DOCSYNC_CONCURRENCY";
    pub const SCAN_INTERVAL: &str = "DOCSYNC_SCAN_INTERVAL";
    pub const QUIET_WINDOW: &str = "DOCSYNC_QUIET_WINDOW";
    pub const POLL_INTERVAL: &str = "DOCSYNC_POLL_INTERVAL";
    pub const RETRY_INITIAL: &str = "DOCSYNC_RETRY_INITIAL";
    pub const MAX_RPS: &str = "DOCSYNC_MAX_RPS";
    pub const MAX_AGE: &str = "DOCSYNC_MAX_AGE";
    pub const HTTP_CONNECT_TIMEOUT: &str = "DOCSYNC_HTTP_CONNECT_TIMEOUT";
    pub const HTTP_READ_TIMEOUT: &str = "DOCSYNC_HTTP_READ_TIMEOUT";
    pub const HTTP_PROXY: &str = "DOCSYNC_HTTP_PROXY";
    pub const HTTP_CA_FILE: &str = "DOCSYNC_HTTP_CA_FILE";
    pub const HTTP_RETRY_FOR: &str = "DOCSYNC_HTTP_RETRY_FOR";
    pub const CREDENTIALS_FILE: &str = "DOCSYNC_CREDENTIALS_FILE";
    pub const PUBLIC_KEY: &str = "DOCSYNC_PUBLIC_KEY";
    pub const SECRET_KEY: &str = "DOCSYNC_SECRET_KEY";
    pub const ATTACHMENTS_API_KEY: &str = "DOCSYNC_ATTACHMENTS_API_KEY";
    pub const WEBHOOK_SECRET: &str = "DOCSYNC_WEBHOOK_SECRET";
}

/// The proxy variables honoured when `[http] proxy` is not set (curl's names).
pub const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The environment variables docsync reads, captured once (tests build their own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// `DOCSYNC_*`, `HOME`, `XDG_STATE_HOME`, `PATH` (where a bare hook command
    /// is looked for) and the proxy variables ([`PROXY_VARS`]) from the
    /// process environment.
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars()
                .filter(|(k, _)| {
                    k.starts_with("DOCSYNC_")
                        || k == "HOME"
                        || k == "XDG_STATE_HOME"
                        || k == "PATH"
                        || PROXY_VARS.contains(&k.as_str())
                })
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

/// A setting's value and where it came from, for problems about it: a `DOCSYNC_*`
/// variable (no span, key `env VAR`) or the file (its span and key path).
pub(super) struct Sourced<T> {
    pub(super) span: Option<Range<usize>>,
    pub(super) key: String,
    pub(super) value: T,
}

impl Env {
    /// The setting `key`: the variable `var` if it is set (its value through
    /// `from_env`), else the file's value (through `from_file`), else `None`.
    pub(super) fn overlay<R, T>(
        &self,
        var: &str,
        from_env: impl FnOnce(&str) -> T,
        key: &str,
        file: Option<Spanned<R>>,
        from_file: impl FnOnce(R) -> T,
    ) -> Option<Sourced<T>> {
        match self.get(var) {
            Some(v) => Some(Sourced {
                span: None,
                key: format!("env {var}"),
                value: from_env(v),
            }),
            None => file.map(|s| Sourced {
                span: Some(s.span()),
                key: key.to_owned(),
                value: from_file(s.into_inner()),
            }),
        }
    }
}
