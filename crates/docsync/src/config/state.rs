//! `[state]`: where the state lives when several daemons share it.
//!
//! Without `url` (the default) the state is the SQLite database in
//! `state_dir`, one daemon's own. With `url = "postgres://…"` (or
//! `DOCSYNC_STATE_URL`) it is in PostgreSQL, shared by every daemon pointed
//! at the same database; `instance` names this daemon there (default: the
//! host name and the state directory), and the `state_dir` still holds the
//! instance lock.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::env::{env_vars, Env};
use super::problems::Problems;

/// `[state]` as TOML reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) url: Option<Spanned<String>>,
    pub(super) instance: Option<Spanned<String>>,
    pub(super) lease: Option<Spanned<String>>,
}

/// How long a daemon's claim on a row lasts without a renewal, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The shortest lease: renewals and the fence before it need room.
const MIN_LEASE: Duration = Duration::from_secs(2);
const MAX_LEASE: Duration = Duration::from_secs(3600);

/// Where the state is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// The PostgreSQL database shared by several daemons; `None`: SQLite in
    /// `state_dir`.
    pub url: Option<StateUrl>,
    /// This daemon's name in the shared state (what its leases carry);
    /// `None`: [`StateConfig::instance_id`]'s default.
    pub instance: Option<String>,
    /// How long a daemon's claim on a row lasts without a renewal: how soon
    /// another daemon takes over the uploads of one that died.
    pub lease: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            url: None,
            instance: None,
            lease: DEFAULT_LEASE,
        }
    }
}

impl StateConfig {
    /// This daemon's instance id: `instance`, or `HOSTNAME:STATE_DIR` (two
    /// daemons on one host need two state directories anyway, for the lock).
    pub fn instance_id(&self, state_dir: &Path) -> String {
        if let Some(id) = &self.instance {
            return id.clone();
        }
        let host = crate::model::host_name().unwrap_or_else(|| "localhost".to_owned());
        format!("{host}:{}", state_dir.display())
    }
}

/// A PostgreSQL connection URL. It may carry a password: `Debug` and
/// `Display` show neither it nor anything after the scheme's host part.
#[derive(Clone, PartialEq, Eq)]
pub struct StateUrl(String);

impl StateUrl {
    /// The URL itself, to connect with (never to log).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StateUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateUrl(<redacted>)")
    }
}

/// `[state]` with `DOCSYNC_STATE_URL` over its `url`.
pub(super) fn state(raw: Option<RawState>, env: &Env, p: &mut Problems<'_>) -> StateConfig {
    let (url, instance, lease) = match raw {
        Some(r) => (r.url, r.instance, r.lease),
        None => (None, None, None),
    };
    let lease = lease.map_or(DEFAULT_LEASE, |l| {
        let span = Some(l.span());
        let text = l.into_inner();
        match super::parse::parse_duration(&text) {
            Ok(d) if (MIN_LEASE..=MAX_LEASE).contains(&d) => d,
            Ok(_) => {
                p.error(
                    span,
                    "state.lease",
                    format!("`{text}` is outside 2s..1h"),
                    "use e.g. \"30s\" (the default): how soon another daemon takes over the \
                     uploads of one that died",
                );
                DEFAULT_LEASE
            }
            Err(e) => {
                p.error(span, "state.lease", e, super::problems::DURATION_FIX);
                DEFAULT_LEASE
            }
        }
    });
    let url = env.overlay(
        env_vars::STATE_URL,
        |v| v.to_owned(),
        "state.url",
        url,
        |s| s,
    );
    let url = url.and_then(|u| {
        let text = u.value.trim();
        let is_pg = text.starts_with("postgres://") || text.starts_with("postgresql://");
        if !is_pg {
            // never echo the value: it may hold a password
            p.error(
                u.span,
                u.key,
                "the state URL is not a PostgreSQL URL",
                "write postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (a socket directory as \
                 ?host=/path), or remove it to keep the state in SQLite in state_dir",
            );
            return None;
        }
        Some(StateUrl(text.to_owned()))
    });
    let instance = instance.and_then(|i| {
        let span = Some(i.span());
        let id = i.into_inner();
        let bad =
            id.trim().is_empty() || id.chars().count() > 200 || id.chars().any(char::is_control);
        if bad {
            p.error(
                span,
                "state.instance",
                "the instance name is empty, too long or holds a control character",
                "use 1 to 200 printable characters, unique per daemon (e.g. the host name)",
            );
            return None;
        }
        Some(id)
    });
    StateConfig {
        url,
        instance,
        lease,
    }
}
