//! Credentials: the API keys, read from a file only its owner can read and from
//! `DOCSYNC_*` variables (which win), and the check that the real APIs get theirs.
//! Secrets are [`Secret`]s, whose `Debug` and `Display` never show the value.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::env::{env_vars, Env, Sourced};
use super::problems::{span_suffix, Problems};
use super::Config;
use crate::error::{Error, Result};

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
    /// The key of the decision webhook's signature (`[hooks] webhook_url`).
    pub webhook_secret: Option<Secret>,
    pub source: CredentialSource,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    public_key: Option<Secret>,
    secret_key: Option<Secret>,
    attachments_api_key: Option<Secret>,
    webhook_secret: Option<Secret>,
}

/// Read a credentials file (TOML with `public_key`, `secret_key`,
/// `attachments_api_key`, `webhook_secret`), refusing it unless only its owner can read it.
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
        webhook_secret: file.webhook_secret,
        source: CredentialSource::File(path.to_owned()),
    })
}

/// The credentials: the file named by `file` (if any; its problems go to `p`), then
/// the `DOCSYNC_*` secret variables over it.
pub(super) fn load_credentials(
    file: Option<Sourced<PathBuf>>,
    env: &Env,
    p: &mut Problems<'_>,
) -> Credentials {
    let mut credentials = Credentials::default();
    if let Some(file) = file {
        match read_credentials_file(&file.value) {
            Ok(c) => credentials = c,
            Err(Error::CredentialsMode { path, mode }) => p.error(
                file.span,
                file.key,
                format!(
                    "credentials file {} has mode {mode:04o}; it must be readable by its owner only",
                    path.display()
                ),
                format!("run `chmod 600 {}`", path.display()),
            ),
            Err(e) => p.error(
                file.span,
                file.key,
                e.to_string(),
                "fix or recreate the credentials file",
            ),
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
        (env_vars::WEBHOOK_SECRET, &mut credentials.webhook_secret),
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
    credentials
}

/// Report the credentials the real APIs need and `config` lacks (the embedded
/// sandbox needs none).
pub(super) fn missing_credentials(config: &Config, p: &mut Problems<'_>) {
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
}
