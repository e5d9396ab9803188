//! The `[api]` section: the base URLs, the embedded sandbox, the API version and
//! the auth mode, and the rule that the APIs the folders use are configured (the
//! embedded sandbox is never a silent default).

use std::convert::identity;
use std::ops::Range;

use toml::Spanned;

use super::env::{env_vars, Env, Sourced};
use super::problems::Problems;
use super::raw::RawApi;
use super::{ApiConfig, AuthMode, Config, DEFAULT_API_VERSION};
use crate::model::Severity;

/// Where the `[api]` settings came from, for the problems found once the
/// folders are known ([`api_choice`]).
pub(super) struct ApiSources {
    /// The `[api]` table, if the file has one.
    table: Option<Range<usize>>,
    /// `api.attachments_url` or its variable.
    attachments_url: Option<(Option<Range<usize>>, String)>,
}

/// `[api]`: the base URLs, the embedded sandbox, the API version and the auth mode.
pub(super) fn api(
    raw: Option<Spanned<RawApi>>,
    env: &Env,
    p: &mut Problems<'_>,
) -> (ApiConfig, ApiSources) {
    let table = raw.as_ref().map(Spanned::span);
    let raw = raw.map(Spanned::into_inner).unwrap_or_default();
    let url = env.overlay(
        env_vars::API_URL,
        str::to_owned,
        "api.url",
        raw.url,
        identity,
    );
    let attachments_url = env.overlay(
        env_vars::ATTACHMENTS_URL,
        str::to_owned,
        "api.attachments_url",
        raw.attachments_url,
        identity,
    );
    let version = env.overlay(
        env_vars::API_VERSION,
        str::to_owned,
        "api.version",
        raw.version,
        identity,
    );
    let auth = auth_mode(raw.auth.unwrap_or_default(), env, p);
    for Sourced { span, key, value } in [&url, &attachments_url].into_iter().flatten() {
        if let Err(why) = check_base_url(value) {
            p.error(
                span.clone(),
                key.clone(),
                format!("`{value}` is not an http(s) URL: {why}"),
                "write the base URL, such as \"https://api.moov.io\" (or, to try docsync against the embedded sandbox, remove it and set api.sandbox = true)",
            );
        }
    }
    let sandbox = sandbox(raw.sandbox, env, url.as_ref(), p);
    let version = match version {
        Some(Sourced { span, key, value }) => {
            if !is_api_version(&value) {
                p.error(
                    span,
                    key,
                    format!("`{value}` is not an API version (the server answers 404 to malformed versions)"),
                    format!("use the form vYYYY.QQ.BB, such as \"{DEFAULT_API_VERSION}\""),
                );
            }
            value
        }
        None => DEFAULT_API_VERSION.to_owned(),
    };
    let sources = ApiSources {
        table,
        attachments_url: attachments_url
            .as_ref()
            .map(|s| (s.span.clone(), s.key.clone())),
    };
    let config = ApiConfig {
        url: url.map(|u| u.value).filter(|_| !sandbox),
        attachments_url: attachments_url.map(|u| u.value),
        sandbox,
        version,
        auth,
    };
    (config, sources)
}

/// How a setting's source reads in a message: the flag that sets a variable is
/// named with it.
fn source_name(key: &str) -> String {
    match key.strip_prefix("env ") {
        Some(env_vars::API_URL) => format!("--api-url ({})", env_vars::API_URL),
        Some(env_vars::SANDBOX) => format!("--sandbox ({})", env_vars::SANDBOX),
        Some(var) => var.to_owned(),
        None => key.to_owned(),
    }
}

/// `api.sandbox` (`DOCSYNC_SANDBOX`, which `--sandbox` sets, wins): whether the
/// embedded sandbox stands in for the API. Asking for it while an API URL is
/// configured is an error: which one was meant cannot be guessed.
fn sandbox(
    raw: Option<Spanned<bool>>,
    env: &Env,
    url: Option<&Sourced<String>>,
    p: &mut Problems<'_>,
) -> bool {
    let from_env = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(v.to_owned()),
    };
    let Some(Sourced { span, key, value }) =
        env.overlay(env_vars::SANDBOX, from_env, "api.sandbox", raw, Ok)
    else {
        return false;
    };
    match (value, url) {
        (Ok(true), Some(url)) => {
            p.error(
                span.or_else(|| url.span.clone()),
                key.clone(),
                format!(
                    "{} asks for the embedded sandbox, but {} names the API {}",
                    source_name(&key),
                    source_name(&url.key),
                    url.value
                ),
                format!(
                    "keep one: remove {} to sync with {}, or remove {} to try docsync against the embedded sandbox",
                    source_name(&key),
                    url.value,
                    source_name(&url.key)
                ),
            );
            false
        }
        (Ok(sandbox), _) => sandbox,
        (Err(v), _) => {
            p.error(
                span,
                key,
                format!("`{v}` is not true or false"),
                "set it to true (the embedded sandbox) or false",
            );
            false
        }
    }
}

/// Once the folders are known: the APIs they use must be configured (the
/// embedded sandbox is never a silent default), and the sandbox stands in for
/// every API or none.
pub(super) fn api_choice(config: &Config, sources: &ApiSources, p: &mut Problems<'_>) {
    let api = &config.api;
    if api.sandbox {
        if let (true, Some((span, key))) = (config.uses_attachments(), &sources.attachments_url) {
            p.error(
                span.clone(),
                key.clone(),
                format!(
                    "{} names an attachments API, but the embedded sandbox is asked for, and it stands in for every API",
                    source_name(key)
                ),
                "remove it to try the attachments folders against the sandbox too, or remove api.sandbox and set api.url",
            );
        }
        return;
    }
    let moov_missing = config.uses_moov() && api.url.is_none();
    let attachments_missing =
        config.uses_attachments() && api.url.is_none() && api.attachments_url.is_none();
    if moov_missing || attachments_missing {
        p.error(
            sources.table.clone(),
            "api.url",
            "no API is configured: api.url is not set (nor api.sandbox = true), so the files would have nowhere to go",
            format!(
                "set api.url to the Moov API (such as \"https://api.moov.io\") with its credentials ({}/{} or a credentials file), or set api.sandbox = true to try docsync against the embedded sandbox, a local stand-in whose approvals are not real",
                env_vars::PUBLIC_KEY,
                env_vars::SECRET_KEY
            ),
        );
    }
}

/// The file's auth mode, unless `DOCSYNC_AUTH` names another.
fn auth_mode(file: AuthMode, env: &Env, p: &mut Problems<'_>) -> AuthMode {
    match env.get(env_vars::AUTH) {
        None => file,
        Some("basic") => AuthMode::Basic,
        Some("oauth") => AuthMode::Oauth,
        Some(other) => {
            p.error(
                None,
                format!("env {}", env_vars::AUTH),
                format!("`{other}` is not an auth mode"),
                "set it to basic or oauth",
            );
            file
        }
    }
}

/// Whether `v` has the form `vYYYY.QQ.BB`.
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

/// `auth = "oauth"` means nothing to the embedded sandbox.
pub(super) fn oauth_on_the_sandbox(config: &Config, p: &mut Problems<'_>) {
    if config.api.auth == AuthMode::Oauth && config.api.sandbox {
        p.push(
            Severity::Warning,
            None,
            "api.auth",
            "oauth has no effect without api.url (the embedded sandbox is used)",
            "set api.url instead of api.sandbox, or remove auth",
        );
    }
}

/// Why `value` cannot be an API's base URL, parsed as a URL (not by prefix):
/// an http(s) scheme, a host, a port in range, nothing a request cannot carry.
fn check_base_url(value: &str) -> std::result::Result<(), String> {
    let parsed = url::Url::parse(value).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("the scheme is `{}`", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("it names no host".into());
    }
    if value.contains(char::is_whitespace) {
        return Err("it contains a space".into());
    }
    Ok(())
}
