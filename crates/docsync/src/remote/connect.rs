//! Clients for the configured APIs, built from the configuration.
//!
//! The configuration holds its secrets in the client's own `Secret` type, so they
//! are handed over as they are. Every client gets the `[http]` settings
//! (`remote::http`): timeouts, proxies, extra CA certificates.

use docsync_client::auth::MoovCredentials;
use docsync_client::{attachments, moov};

use super::http::Transport;
use super::Apis;
use crate::config::{AuthMode, Config};
use crate::error::{Error, Result};

/// Build the clients the configured folders need. A missing credential for an
/// API a folder uses is an error naming the variable to set.
pub fn apis(config: &Config) -> Result<Apis> {
    let transport = Transport::new(&config.http)?;
    let moov = match (&config.api.url, config.uses_moov()) {
        (Some(url), true) => Some(moov_client(config, url, &transport)?),
        _ => None,
    };
    let attachments = match (
        config
            .api
            .attachments_url
            .as_ref()
            .or(config.api.url.as_ref()),
        config.uses_attachments(),
    ) {
        (Some(url), true) => {
            let key = config.credentials.attachments_api_key.as_ref().ok_or_else(|| {
                Error::MissingCredential(
                    "an attachments folder is configured but no API key is: set DOCSYNC_ATTACHMENTS_API_KEY or `attachments_api_key` in the credentials file".into(),
                )
            })?;
            let client = transport
                .attachments(attachments::Client::builder(url.as_str(), key.clone()))
                .build()
                .map_err(|e| Error::Client {
                    api: "attachments",
                    message: e.to_string(),
                })?;
            Some(client)
        }
        _ => None,
    };
    let limiter = config
        .max_requests_per_second
        .and_then(|rate| super::ratelimit::RateLimiter::per_second(rate.get()));
    Ok(Apis {
        moov,
        attachments,
        limiter,
    })
}

fn moov_client(config: &Config, url: &str, transport: &Transport) -> Result<moov::Client> {
    let missing = |what: &str, var: &str| {
        Error::MissingCredential(format!(
            "a Moov folder is configured but no {what} is: set {var} or `{}` in the credentials file",
            what.replace(' ', "_")
        ))
    };
    let public_key = config
        .credentials
        .public_key
        .as_ref()
        .ok_or_else(|| missing("public key", "DOCSYNC_PUBLIC_KEY"))?;
    let secret_key = config
        .credentials
        .secret_key
        .as_ref()
        .ok_or_else(|| missing("secret key", "DOCSYNC_SECRET_KEY"))?;
    let credentials = match config.api.auth {
        AuthMode::Basic => MoovCredentials::basic(public_key.expose(), secret_key.clone()),
        AuthMode::Oauth => MoovCredentials::OAuth {
            public_key: public_key.expose().to_string(),
            secret_key: secret_key.clone(),
            scopes: config.oauth_scopes(),
        },
    };
    transport
        .moov(moov::Client::builder(url, credentials))
        .version(config.api.version.clone())
        .build()
        .map_err(|e| Error::Client {
            api: "Moov",
            message: e.to_string(),
        })
}
