//! Building clients: base URL, credentials, version, timeouts, retries.
//!
//! Always `new_with_client`: progenitor's `Client::new` puts a 15 s limit on
//! the whole request, which a 20 MB upload on a slow link exceeds. Here a
//! connection must open within `connect_timeout` and the server must not go
//! silent for longer than `read_timeout`, but a long transfer that keeps moving
//! is never cut.

use std::time::Duration;

use std::sync::Arc;

use crate::auth::{MoovCredentials, Secret};
use crate::hooks::{AttachmentsContext, MoovContext, TokenSource};
use crate::retry::RetryPolicy;
use crate::{attachments, moov, DEFAULT_MOOV_VERSION};

/// Options shared by both builders.
#[derive(Clone)]
struct Http {
    connect_timeout: Duration,
    read_timeout: Duration,
    user_agent: String,
    /// `None`: reqwest's own rule (the environment's proxy variables);
    /// `Some`: exactly these proxies, tried in order (empty: none at all).
    proxies: Option<Vec<reqwest::Proxy>>,
    /// CA certificates trusted besides the system's.
    extra_roots: Vec<reqwest::Certificate>,
}

/// By hand: a proxy's URL may carry a password, so only counts are shown.
impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("user_agent", &self.user_agent)
            .field("proxies", &self.proxies.as_ref().map(Vec::len))
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

impl Default for Http {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            user_agent: format!("docsync/{}", env!("CARGO_PKG_VERSION")),
            proxies: None,
            extra_roots: Vec::new(),
        }
    }
}

impl Http {
    fn build(&self) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(&self.user_agent);
        if let Some(proxies) = &self.proxies {
            builder = builder.no_proxy();
            for proxy in proxies {
                builder = builder.proxy(proxy.clone());
            }
        }
        if !self.extra_roots.is_empty() {
            builder = builder.tls_certs_merge(self.extra_roots.clone());
        }
        builder.build()
    }
}

/// Builds a [`moov::Client`].
#[derive(Debug)]
pub struct MoovClientBuilder {
    base_url: String,
    credentials: MoovCredentials,
    version: String,
    retry: RetryPolicy,
    http: Http,
}

impl moov::Client {
    /// Start building a client for the Moov API at `base_url`.
    pub fn builder(base_url: impl Into<String>, credentials: MoovCredentials) -> MoovClientBuilder {
        MoovClientBuilder {
            base_url: base_url.into(),
            credentials,
            version: DEFAULT_MOOV_VERSION.to_string(),
            retry: RetryPolicy::default(),
            http: Http::default(),
        }
    }
}

impl MoovClientBuilder {
    /// The `X-Moov-Version` sent on every authenticated request.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout = timeout;
        self
    }

    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.http.read_timeout = timeout;
        self
    }

    /// Send requests through exactly these proxies (the first that applies to a
    /// request), instead of reqwest's reading of the proxy variables; an empty
    /// list sends every request directly.
    pub fn proxies(mut self, proxies: Vec<reqwest::Proxy>) -> Self {
        self.http.proxies = Some(proxies);
        self
    }

    /// Trust these CA certificates besides the system's.
    pub fn extra_roots(mut self, roots: Vec<reqwest::Certificate>) -> Self {
        self.http.extra_roots = roots;
        self
    }

    pub fn build(self) -> Result<moov::Client, reqwest::Error> {
        let http = self.http.build()?;
        let base_url = self.base_url.trim_end_matches('/');
        let token_source = match &self.credentials {
            MoovCredentials::OAuth {
                public_key,
                secret_key,
                ..
            } => {
                let basic = MoovContext {
                    credentials: MoovCredentials::basic(public_key.clone(), secret_key.clone()),
                    version: self.version.clone(),
                    retry: self.retry.clone(),
                    token: Arc::default(),
                    token_source: None,
                };
                Some(TokenSource::new(moov::Client::new_with_client(
                    base_url,
                    http.clone(),
                    basic,
                )))
            }
            _ => None,
        };
        let context = MoovContext {
            credentials: self.credentials,
            version: self.version,
            retry: self.retry,
            token: Arc::default(),
            token_source,
        };
        Ok(moov::Client::new_with_client(base_url, http, context))
    }
}

/// Builds an [`attachments::Client`].
#[derive(Debug)]
pub struct AttachmentsClientBuilder {
    base_url: String,
    api_key: Secret,
    retry: RetryPolicy,
    http: Http,
}

impl attachments::Client {
    /// Start building a client for the attachments API at `base_url`.
    pub fn builder(
        base_url: impl Into<String>,
        api_key: impl Into<Secret>,
    ) -> AttachmentsClientBuilder {
        AttachmentsClientBuilder {
            base_url: base_url.into(),
            api_key: api_key.into(),
            retry: RetryPolicy::default(),
            http: Http::default(),
        }
    }
}

impl AttachmentsClientBuilder {
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout = timeout;
        self
    }

    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.http.read_timeout = timeout;
        self
    }

    /// Send requests through exactly these proxies (the first that applies to a
    /// request), instead of reqwest's reading of the proxy variables; an empty
    /// list sends every request directly.
    pub fn proxies(mut self, proxies: Vec<reqwest::Proxy>) -> Self {
        self.http.proxies = Some(proxies);
        self
    }

    /// Trust these CA certificates besides the system's.
    pub fn extra_roots(mut self, roots: Vec<reqwest::Certificate>) -> Self {
        self.http.extra_roots = roots;
        self
    }

    pub fn build(self) -> Result<attachments::Client, reqwest::Error> {
        let http = self.http.build()?;
        let context = AttachmentsContext {
            api_key: self.api_key,
            retry: self.retry,
        };
        Ok(attachments::Client::new_with_client(
            self.base_url.trim_end_matches('/'),
            http,
            context,
        ))
    }
}
