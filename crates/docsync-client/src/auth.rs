//! Credentials and OAuth2 access tokens.
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` never show the value;
//! the value is read only where a header is built (and that header is marked
//! sensitive, so reqwest does not print it either).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A password, token or API key. `Debug` prints `Secret(***)`, `Display` `***`;
/// there is no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The secret's value: use it only to build a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Read from configuration files as a plain string.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

/// How a Moov client authenticates.
#[derive(Clone, Debug)]
pub enum MoovCredentials {
    /// HTTP Basic with the account's public key and secret key.
    Basic {
        public_key: String,
        secret_key: Secret,
    },
    /// A bearer token obtained elsewhere.
    Bearer(Secret),
    /// OAuth2 client credentials: tokens with exactly these scopes are fetched
    /// from POST /oauth2/token (with Basic auth) and refreshed before expiry.
    OAuth {
        public_key: String,
        secret_key: Secret,
        scopes: Vec<String>,
    },
}

impl MoovCredentials {
    pub fn basic(public_key: impl Into<String>, secret_key: impl Into<Secret>) -> Self {
        Self::Basic {
            public_key: public_key.into(),
            secret_key: secret_key.into(),
        }
    }

    /// The `Authorization` value for Basic auth, if these credentials have a key pair.
    pub(crate) fn basic_header(&self) -> Option<String> {
        use base64::Engine as _;
        match self {
            Self::Basic {
                public_key,
                secret_key,
            }
            | Self::OAuth {
                public_key,
                secret_key,
                ..
            } => {
                let pair = format!("{public_key}:{}", secret_key.expose());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            Self::Bearer(_) => None,
        }
    }
}

/// Scopes a client needs to read and write the files of `account_id`.
pub fn files_scopes(account_id: &str) -> [String; 2] {
    [
        format!("/accounts/{account_id}/files.read"),
        format!("/accounts/{account_id}/files.write"),
    ]
}

/// Scopes a client needs to read and write the images of `account_id`.
pub fn images_scopes(account_id: &str) -> [String; 2] {
    [
        format!("/accounts/{account_id}/images.read"),
        format!("/accounts/{account_id}/images.write"),
    ]
}

/// The OAuth token cache of a client: the token in use, and the scopes added with
/// `moov::Client::ensure_scopes` after the client was built.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    pub token: Option<CachedToken>,
    pub added_scopes: Vec<String>,
}

/// An access token and when to stop using it.
#[derive(Clone, Debug)]
pub(crate) struct CachedToken {
    pub token: Secret,
    /// Refresh from this instant on (a margin before the real expiry).
    pub refresh_at: Instant,
}

impl CachedToken {
    /// Tokens are refreshed 30 s (or a tenth of their life, if shorter) early.
    pub fn new(token: Secret, expires_in: Duration) -> Self {
        let margin = Duration::from_secs(30).min(expires_in / 10);
        Self {
            token,
            refresh_at: Instant::now() + expires_in.saturating_sub(margin),
        }
    }

    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let creds = MoovCredentials::OAuth {
            public_key: "pk".into(),
            secret_key: Secret::new("canary-secret-123"),
            scopes: vec!["/accounts/a/files.read".into()],
        };
        let shown = format!("{creds:?} {}", Secret::new("canary-secret-123"));
        assert!(!shown.contains("canary-secret-123"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn basic_header_encodes_the_key_pair() {
        let creds = MoovCredentials::basic("public", "secret");
        // base64("public:secret")
        assert_eq!(
            creds.basic_header().as_deref(),
            Some("Basic cHVibGljOnNlY3JldA==")
        );
        assert_eq!(
            MoovCredentials::Bearer(Secret::new("t")).basic_header(),
            None
        );
    }
}
