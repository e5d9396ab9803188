//! `[hooks]`: a command and/or a signed webhook told about every decision.
//!
//! ```toml
//! [hooks]
//! on_decision = ["/usr/local/bin/notify.sh", "--channel", "kyc"]  # argv, no shell
//! command_timeout = "30s"        # killed after this long (a failed attempt)
//! webhook_url = "https://hooks.example.com/docsync"
//! max_attempts = 8               # per event and hook, then given up (in `history`)
//! retry_initial = "5s"           # first wait after a failure (doubles, at most 10m)
//! ```
//!
//! The webhook's secret is `webhook_secret` in the credentials file or
//! `DOCSYNC_WEBHOOK_SECRET`; never in this file.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::credentials::Secret;
use super::env::{env_vars, Env};
use super::parse::{parse_duration, Paths};
use super::problems::{Problems, DURATION_FIX};
use super::raw::RawHooks;
use super::Credentials;
use crate::model::HookKind;

/// Default time a hook command may run.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deliveries tried per event and hook before giving up.
pub const DEFAULT_HOOK_ATTEMPTS: u32 = 8;
/// Default first wait after a failed delivery.
pub const DEFAULT_HOOK_RETRY_INITIAL: Duration = Duration::from_secs(5);
/// How long one webhook request may take (connecting included).
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait between two deliveries of one event.
pub const MAX_HOOK_RETRY: Duration = Duration::from_secs(600);

/// The `[hooks]` section. [`HooksConfig::kinds`] is empty when none is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksConfig {
    /// `on_decision`.
    pub command: Option<CommandHook>,
    /// `webhook_url` with its secret.
    pub webhook: Option<WebhookHook>,
    pub command_timeout: Duration,
    pub max_attempts: u32,
    pub retry_initial: Duration,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            command: None,
            webhook: None,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_attempts: DEFAULT_HOOK_ATTEMPTS,
            retry_initial: DEFAULT_HOOK_RETRY_INITIAL,
        }
    }
}

impl HooksConfig {
    /// The longest one delivery may take (the command's timeout or the
    /// webhook's, and a margin): how long a daemon sharing its state holds a
    /// hook event it delivers.
    pub fn longest_delivery(&self) -> Duration {
        self.command_timeout.max(WEBHOOK_TIMEOUT) + Duration::from_secs(10)
    }

    /// The configured hooks.
    pub fn kinds(&self) -> Vec<HookKind> {
        let mut kinds = Vec::new();
        if self.command.is_some() {
            kinds.push(HookKind::Command);
        }
        if self.webhook.is_some() {
            kinds.push(HookKind::Webhook);
        }
        kinds
    }

    /// The wait after the `attempts`th failed delivery: `retry_initial`,
    /// doubling, at most [`MAX_HOOK_RETRY`] (or `retry_initial`, if longer).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.retry_initial
            .saturating_mul(factor)
            .min(MAX_HOOK_RETRY.max(self.retry_initial))
    }
}

/// `on_decision`: the program (resolved when the file was read) and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandHook {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// `webhook_url` and the secret its signature is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHook {
    pub url: url::Url,
    pub secret: Secret,
}

/// The `[hooks]` section, checked: the command found and executable, the URL
/// an http(s) URL, its secret present.
pub(super) fn hooks(
    raw: Option<Spanned<RawHooks>>,
    env: &Env,
    paths: &Paths,
    credentials: &Credentials,
    p: &mut Problems<'_>,
) -> HooksConfig {
    let mut config = HooksConfig::default();
    let Some(raw) = raw else {
        return config;
    };
    let section = raw.span();
    let raw = raw.into_inner();
    let any_hook = raw.on_decision.is_some() || raw.webhook_url.is_some();
    if let Some(argv) = raw.on_decision {
        config.command = command(argv, env, paths, p);
    }
    if let Some(url) = raw.webhook_url {
        config.webhook = webhook(url, credentials, p);
    }
    if let Some(t) = raw.command_timeout {
        config.command_timeout =
            positive_duration(t, "hooks.command_timeout", p).unwrap_or(DEFAULT_COMMAND_TIMEOUT);
    }
    if let Some(r) = raw.retry_initial {
        config.retry_initial =
            positive_duration(r, "hooks.retry_initial", p).unwrap_or(DEFAULT_HOOK_RETRY_INITIAL);
    }
    if let Some(n) = raw.max_attempts {
        match u32::try_from(*n.get_ref()) {
            Ok(n @ 1..=100) => config.max_attempts = n,
            _ => p.error(
                Some(n.span()),
                "hooks.max_attempts",
                format!("max_attempts {} is out of range", n.get_ref()),
                "use a number from 1 to 100",
            ),
        }
    }
    if !any_hook {
        p.push(
            crate::model::Severity::Warning,
            Some(section),
            "hooks",
            "[hooks] has neither on_decision nor webhook_url, so no hook runs",
            "add on_decision = [\"/path/to/command\"] or webhook_url = \"https://...\", or remove [hooks]",
        );
    }
    config
}

fn positive_duration(raw: Spanned<String>, key: &str, p: &mut Problems<'_>) -> Option<Duration> {
    match parse_duration(raw.get_ref()) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            p.error(
                Some(raw.span()),
                key,
                "the duration must be more than zero",
                DURATION_FIX,
            );
            None
        }
        Err(msg) => {
            p.error(Some(raw.span()), key, msg, DURATION_FIX);
            None
        }
    }
}

/// `on_decision`: argv, its program found (a bare name in `PATH`, a path with a
/// slash against the configuration's directory) and executable.
fn command(
    argv: Spanned<Vec<String>>,
    env: &Env,
    paths: &Paths,
    p: &mut Problems<'_>,
) -> Option<CommandHook> {
    let span = Some(argv.span());
    let key = "hooks.on_decision";
    let mut argv = argv.into_inner().into_iter();
    let Some(program) = argv.next().filter(|s| !s.trim().is_empty()) else {
        p.error(
            span,
            key,
            "on_decision names no command",
            "give the command and its arguments, such as [\"/usr/local/bin/notify.sh\", \"--quiet\"]",
        );
        return None;
    };
    let shown = program.escape_debug().to_string();
    let resolved = if program.contains('/') {
        // `./x` and `a/./x` as `x` and `a/x`: the path as people write it
        Some(paths.resolve(&program).components().collect::<PathBuf>())
    } else {
        find_in_path(&program, env.get("PATH"))
    };
    let Some(resolved) = resolved else {
        p.error(
            span,
            key,
            format!("command `{shown}` was not found in PATH"),
            "give its full path, such as /usr/local/bin/notify.sh, or install it",
        );
        return None;
    };
    match std::fs::metadata(&resolved) {
        Err(e) => {
            p.error(
                span,
                key,
                format!("command {} cannot be used: {e}", resolved.display()),
                "correct the path, or create the command",
            );
            return None;
        }
        Ok(meta) if !meta.is_file() => {
            p.error(
                span,
                key,
                format!("command {} is not a file", resolved.display()),
                "name an executable file",
            );
            return None;
        }
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => {
            p.error(
                span,
                key,
                format!(
                    "command {} is not executable (mode {:04o})",
                    resolved.display(),
                    meta.permissions().mode() & 0o7777
                ),
                format!("run `chmod +x {}`", resolved.display()),
            );
            return None;
        }
        Ok(_) => {}
    }
    Some(CommandHook {
        program: resolved,
        args: argv.map(OsString::from).collect(),
    })
}

/// The first executable file `name` in the directories of `path`.
fn find_in_path(name: &str, path: Option<&str>) -> Option<PathBuf> {
    path?
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `webhook_url`: an http(s) URL with a host, and the secret to sign with.
fn webhook(
    raw: Spanned<String>,
    credentials: &Credentials,
    p: &mut Problems<'_>,
) -> Option<WebhookHook> {
    let span = Some(raw.span());
    let key = "hooks.webhook_url";
    let text = raw.into_inner();
    let fix = "use an http:// or https:// URL, such as https://hooks.example.com/docsync";
    let url = match url::Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => url,
        Ok(url) => {
            p.error(
                span,
                key,
                format!(
                    "webhook_url `{}` is not an http(s) URL (scheme `{}`)",
                    text.escape_debug(),
                    url.scheme()
                ),
                fix,
            );
            return None;
        }
        Err(e) => {
            p.error(
                span,
                key,
                format!("webhook_url `{}` is not a URL: {e}", text.escape_debug()),
                fix,
            );
            return None;
        }
    };
    let Some(secret) = credentials.webhook_secret.clone() else {
        p.error(
            span,
            key,
            "the webhook secret is missing (needed to sign every event sent to webhook_url)",
            format!(
                "set {}, or add webhook_secret to the credentials file (mode 0600); \
                 the receiver checks the signature with the same secret",
                env_vars::WEBHOOK_SECRET
            ),
        );
        return None;
    };
    Some(WebhookHook { url, secret })
}

#[cfg(test)]
mod tests;
