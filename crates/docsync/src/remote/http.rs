//! The `[http]` settings as the HTTP client takes them: the proxies, in the
//! order they apply, and the extra CA certificates (loaded at start).

use docsync_client::{AttachmentsClientBuilder, MoovClientBuilder};

use crate::config::{load_pem_bundle, HttpConfig, ProxySetting, ProxyUrl, LOOPBACK_NO_PROXY};
use crate::error::{Error, Result};

/// What every client is built with.
pub(super) struct Transport {
    proxies: Vec<reqwest::Proxy>,
    roots: Vec<reqwest::Certificate>,
    http: HttpConfig,
}

impl Transport {
    /// Read the CA file and build the proxies; an error names the file or the
    /// proxy (its password never shown).
    pub(super) fn new(http: &HttpConfig) -> Result<Transport> {
        let roots = match &http.ca_file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| Error::io("reading the CA file ([http] ca_file)", path, e))?;
                load_pem_bundle(&bytes).map_err(|why| Error::Client {
                    api: "HTTP",
                    message: format!(
                        "CA file {} ([http] ca_file) is not a usable PEM bundle: {why}",
                        path.display()
                    ),
                })?
            }
            None => Vec::new(),
        };
        describe(http, roots.len());
        Ok(Transport {
            proxies: proxies(&http.proxy)?,
            roots,
            http: http.clone(),
        })
    }

    pub(super) fn moov(&self, builder: MoovClientBuilder) -> MoovClientBuilder {
        builder
            .connect_timeout(self.http.connect_timeout)
            .read_timeout(self.http.read_timeout)
            .proxies(self.proxies.clone())
            .extra_roots(self.roots.clone())
    }

    pub(super) fn attachments(
        &self,
        builder: AttachmentsClientBuilder,
    ) -> AttachmentsClientBuilder {
        builder
            .connect_timeout(self.http.connect_timeout)
            .read_timeout(self.http.read_timeout)
            .proxies(self.proxies.clone())
            .extra_roots(self.roots.clone())
    }
}

/// Say at start which proxy and extra CA certificates requests use (a proxy's
/// password as `***`).
fn describe(http: &HttpConfig, roots: usize) {
    match &http.proxy {
        ProxySetting::Explicit(url) => {
            tracing::info!(proxy = %url, "every request through [http] proxy")
        }
        ProxySetting::Direct => tracing::info!("no proxy ([http] proxy = \"none\")"),
        ProxySetting::Environment(env) => {
            for (var, url) in [
                ("HTTPS_PROXY", &env.https),
                ("HTTP_PROXY", &env.http),
                ("ALL_PROXY", &env.all),
            ] {
                if let Some(url) = url {
                    tracing::info!(proxy = %url, no_proxy = %no_proxy_list(&env.no_proxy), "requests through the proxy of {var}");
                }
            }
        }
    }
    if let Some(path) = &http.ca_file {
        tracing::info!(ca_file = %path.display(), certificates = roots, "extra CA certificates trusted");
    }
}

/// A proxy for one kind of request (`Proxy::https`, `http`, `all`).
type MakeProxy = fn(&str) -> reqwest::Result<reqwest::Proxy>;

/// The proxies of a [`ProxySetting`], in the order they apply: an explicit one
/// for everything; else the environment's (https, http, then all), each
/// skipping `NO_PROXY`'s hosts and loopback ones.
pub(super) fn proxies(setting: &ProxySetting) -> Result<Vec<reqwest::Proxy>> {
    let bad = |url: &ProxyUrl, e: reqwest::Error| Error::Client {
        api: "HTTP",
        message: format!("the proxy {url} cannot be used: {}", e.without_url()),
    };
    match setting {
        ProxySetting::Direct => Ok(Vec::new()),
        ProxySetting::Explicit(url) => Ok(vec![
            reqwest::Proxy::all(url.expose()).map_err(|e| bad(url, e))?
        ]),
        ProxySetting::Environment(env) => {
            let no_proxy = reqwest::NoProxy::from_string(&no_proxy_list(&env.no_proxy));
            let mut list = Vec::new();
            let mut add = |url: &Option<ProxyUrl>, make: MakeProxy| -> Result<()> {
                if let Some(url) = url {
                    let proxy = make(url.expose()).map_err(|e| bad(url, e))?;
                    list.push(proxy.no_proxy(no_proxy.clone()));
                }
                Ok(())
            };
            add(&env.https, |u| reqwest::Proxy::https(u))?;
            add(&env.http, |u| reqwest::Proxy::http(u))?;
            add(&env.all, |u| reqwest::Proxy::all(u))?;
            Ok(list)
        }
    }
}

/// `NO_PROXY` with the loopback hosts added.
pub(super) fn no_proxy_list(no_proxy: &str) -> String {
    if no_proxy.trim().is_empty() {
        LOOPBACK_NO_PROXY.to_owned()
    } else {
        format!("{no_proxy},{LOOPBACK_NO_PROXY}")
    }
}
