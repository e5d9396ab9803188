//! `[http]`: how requests travel (timeouts, the proxy, an extra CA bundle) and
//! how long one file's failing upload is retried (`retry_for`).
//!
//! The proxy rule: `proxy = "URL"` sends every request through that proxy,
//! loopback included (the user asked for it); `proxy = "none"` sends every
//! request directly. Without `proxy`, the environment's `HTTPS_PROXY`,
//! `HTTP_PROXY` and `ALL_PROXY` (or their lower-case forms) are honoured, minus
//! the hosts `NO_PROXY` names, and never for loopback destinations
//! (`localhost`, 127.0.0.0/8, `::1`: the embedded sandbox, a local test
//! server), as Go's HTTP client does: a proxy set for the outside world does
//! not swallow local traffic by accident.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::env::{env_vars, Env, Sourced};
use super::parse::parse_duration;
use super::problems::{Problems, DURATION_FIX};
use crate::model::Severity;

/// Default time a connection may take to open.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time the server may stay silent during a request.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time one file's failing upload is retried before it is `failed`
/// (Moov's SDKs give up after an hour too).
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(3600);

/// The hosts an environment proxy never applies to (see the module docs).
pub const LOOPBACK_NO_PROXY: &str = "localhost,127.0.0.0/8,::1";

/// The `[http]` section, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub proxy: ProxySetting,
    /// An extra PEM bundle of CA certificates, added to the system's roots.
    pub ca_file: Option<PathBuf>,
    /// How long one file's upload is retried after its first attempt before it
    /// is `failed` (`docsync retry` starts it again).
    pub retry_for: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            proxy: ProxySetting::Environment(EnvProxies::default()),
            ca_file: None,
            retry_for: DEFAULT_RETRY_FOR,
        }
    }
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySetting {
    /// Every request through this proxy (`[http] proxy`).
    Explicit(ProxyUrl),
    /// Every request directly (`proxy = "none"`).
    Direct,
    /// The environment's proxy variables (never for loopback hosts).
    Environment(EnvProxies),
}

/// The proxy variables of the environment, as found when docsync started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvProxies {
    pub https: Option<ProxyUrl>,
    pub http: Option<ProxyUrl>,
    pub all: Option<ProxyUrl>,
    /// `NO_PROXY` as given (comma-separated hosts, domains, IP networks).
    pub no_proxy: String,
}

/// A proxy URL. It may carry a password (`http://user:pass@proxy:3128`): its
/// `Debug` and `Display` show `***` in its place; [`ProxyUrl::expose`] gives
/// the whole URL (for the HTTP client only).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl(url::Url);

impl ProxyUrl {
    /// An `http://` or `https://` URL with a host; the error says
    /// what is wrong without repeating a password.
    pub fn parse(text: &str) -> Result<ProxyUrl, String> {
        let text = text.trim();
        // `proxy.example:3128` is an HTTP proxy, as curl takes it
        let full = if text.contains('/') {
            text.to_owned()
        } else {
            format!("http://{text}")
        };
        let url = url::Url::parse(&full)
            .map_err(|e| format!("`{}` is not a URL ({e})", redact_text(text).escape_debug()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "proxy scheme `{}` is not supported (in `{}`)",
                url.scheme(),
                redact(&url)
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{}` names no proxy host", redact(&url)));
        }
        Ok(ProxyUrl(url))
    }

    /// The URL with its password, for the HTTP client.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// The URL with its password as `***`.
fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // only fails for URLs that cannot have a password, which this one has
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// Text that did not parse as a URL, with everything before its last `@`
/// (after a `scheme://`: where a login would be) as `***`.
fn redact_text(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    match text.rfind('@') {
        Some(at) if at >= start => format!(
            "{}***{}",
            text.get(..start).unwrap_or_default(),
            text.get(at..).unwrap_or_default()
        ),
        _ => text.to_owned(),
    }
}

/// `[http]` as TOML reads it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) connect_timeout: Option<Spanned<String>>,
    pub(super) read_timeout: Option<Spanned<String>>,
    pub(super) proxy: Option<Spanned<String>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) retry_for: Option<Spanned<String>>,
}

/// Resolve `[http]` with its `DOCSYNC_HTTP_*` overrides and the proxy variables.
pub(super) fn http(
    raw: Option<RawHttp>,
    env: &Env,
    resolve: impl Fn(&str) -> PathBuf,
    p: &mut Problems<'_>,
) -> HttpConfig {
    let raw = raw.unwrap_or_default();
    let connect_timeout = duration(
        raw.connect_timeout,
        "http.connect_timeout",
        env_vars::HTTP_CONNECT_TIMEOUT,
        DEFAULT_CONNECT_TIMEOUT,
        env,
        p,
    );
    let read_timeout = duration(
        raw.read_timeout,
        "http.read_timeout",
        env_vars::HTTP_READ_TIMEOUT,
        DEFAULT_READ_TIMEOUT,
        env,
        p,
    );
    let retry_for = duration(
        raw.retry_for,
        "http.retry_for",
        env_vars::HTTP_RETRY_FOR,
        DEFAULT_RETRY_FOR,
        env,
        p,
    );
    let proxy = proxy(raw.proxy, env, p);
    let ca_file = env
        .overlay(
            env_vars::HTTP_CA_FILE,
            |v: &str| PathBuf::from(v),
            "http.ca_file",
            raw.ca_file,
            |f| resolve(&f),
        )
        .and_then(|sourced| {
            let ok = ca_file_problem(&sourced.value).map(|(message, fix)| {
                p.error(sourced.span.clone(), sourced.key.clone(), message, fix)
            });
            ok.is_none().then_some(sourced.value)
        });
    HttpConfig {
        connect_timeout,
        read_timeout,
        proxy,
        ca_file,
        retry_for,
    }
}

fn duration(
    raw: Option<Spanned<String>>,
    key: &str,
    var: &str,
    default: Duration,
    env: &Env,
    p: &mut Problems<'_>,
) -> Duration {
    let Some(Sourced { span, key, value }) =
        env.overlay(var, str::to_owned, key, raw, std::convert::identity)
    else {
        return default;
    };
    match parse_duration(&value) {
        Ok(d) if d.is_zero() => {
            p.error(
                span,
                key,
                "the duration must be more than zero",
                DURATION_FIX,
            );
            default
        }
        Ok(d) => d,
        Err(msg) => {
            p.error(span, key, msg, DURATION_FIX);
            default
        }
    }
}

/// `proxy` (`DOCSYNC_HTTP_PROXY` wins), else the environment's variables.
fn proxy(raw: Option<Spanned<String>>, env: &Env, p: &mut Problems<'_>) -> ProxySetting {
    let fix = "write the proxy's URL, such as \"http://proxy.example:3128\" \
               (\"http://user:password@host:port\" with a login), or \"none\" for no proxy";
    if let Some(Sourced { span, key, value }) = env.overlay(
        env_vars::HTTP_PROXY,
        str::to_owned,
        "http.proxy",
        raw,
        std::convert::identity,
    ) {
        if value.trim().eq_ignore_ascii_case("none") {
            return ProxySetting::Direct;
        }
        return match ProxyUrl::parse(&value) {
            Ok(url) => ProxySetting::Explicit(url),
            Err(message) => {
                p.error(span, key, message, fix);
                ProxySetting::Direct
            }
        };
    }
    let mut var = |names: [&str; 2]| {
        let (name, value) = names.into_iter().find_map(|n| env.get(n).map(|v| (n, v)))?;
        match ProxyUrl::parse(value) {
            Ok(url) => Some(url),
            Err(message) => {
                // the user's shell may set it for other programs: not fatal
                p.push(
                    Severity::Warning,
                    None,
                    format!("env {name}"),
                    format!("{message}; {name} is ignored, requests do not use it"),
                    format!(
                        "correct {name} or unset it, or set proxy under [http], which wins \
                         (\"none\": no proxy)"
                    ),
                );
                None
            }
        }
    };
    ProxySetting::Environment(EnvProxies {
        https: var(["HTTPS_PROXY", "https_proxy"]),
        http: var(["HTTP_PROXY", "http_proxy"]),
        all: var(["ALL_PROXY", "all_proxy"]),
        no_proxy: ["NO_PROXY", "no_proxy"]
            .into_iter()
            .find_map(|n| env.get(n))
            .unwrap_or_default()
            .to_owned(),
    })
}

/// What is wrong with a CA file, and the fix: missing, unreadable, or holding
/// no PEM certificate that parses.
pub fn ca_file_problem(path: &Path) -> Option<(String, String)> {
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some((
                format!("CA file {shown} does not exist"),
                "set ca_file to a PEM file of CA certificates, or remove it".to_owned(),
            ))
        }
        Err(e) => {
            return Some((
                format!("CA file {shown} cannot be read: {e}"),
                format!("make {shown} readable by the user docsync runs as"),
            ))
        }
    };
    match load_pem_bundle(&bytes) {
        Ok(_) => None,
        Err(why) => Some((
            format!("CA file {shown} is not a usable PEM bundle: {why}"),
            "give a file of `-----BEGIN CERTIFICATE-----` blocks (convert DER with \
             `openssl x509 -inform der -in ca.der -out ca.pem`)"
                .to_owned(),
        )),
    }
}

/// The certificates of a PEM bundle: at least one, each one that parses.
pub fn load_pem_bundle(bytes: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err("it holds no `-----BEGIN CERTIFICATE-----` block".to_owned());
    }
    let certs = reqwest::Certificate::from_pem_bundle(bytes)
        .map_err(|e| format!("a certificate does not parse ({e})"))?;
    if certs.is_empty() {
        return Err("no certificate in it parses".to_owned());
    }
    // what the TLS stack will do with them at start: fail here instead
    reqwest::Client::builder()
        .tls_certs_merge(certs.clone())
        .build()
        .map_err(|e| format!("the TLS stack refuses it ({e})"))?;
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_password_is_never_shown() {
        let url = ProxyUrl::parse("http://alice:s3cret@proxy.example:3128").unwrap();
        assert_eq!(url.to_string(), "http://alice:***@proxy.example:3128/");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.expose().contains("s3cret"));
        let bad = ProxyUrl::parse("http://alice:s3cret@[bad").unwrap_err();
        assert!(!bad.contains("s3cret"), "{bad}");
        let scheme = ProxyUrl::parse("ftp://bob:hunter2@proxy:21").unwrap_err();
        assert!(
            scheme.contains("`ftp`") && !scheme.contains("hunter2"),
            "{scheme}"
        );
    }

    #[test]
    fn a_pem_bundle_needs_a_certificate_that_parses() {
        assert!(load_pem_bundle(b"not a pem").is_err());
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(load_pem_bundle(broken).is_err());
        let good = include_bytes!("../../tests/e2e/fixtures/test-ca.pem");
        assert_eq!(load_pem_bundle(good).map(|c| c.len()), Ok(1));
    }

    const BASE: &str = "[[folder]]\npath = \"/in\"\n[api]\nsandbox = true\n";

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<HttpConfig, Vec<crate::model::Problem>> {
        let env = Env::from_pairs(env.iter().copied());
        super::super::parse(text, Some(Path::new("/etc/docsync.toml")), &env).map(|c| c.http)
    }

    #[test]
    fn defaults_values_and_environment_overrides() {
        assert_eq!(parse(BASE, &[]).unwrap(), HttpConfig::default());
        let text = format!(
            "{BASE}[http]\nconnect_timeout = \"2s\"\nread_timeout = \"1.5s\"\n\
             proxy = \"http://proxy.example:3128\"\nretry_for = \"10m\"\n"
        );
        let http = parse(&text, &[]).unwrap();
        assert_eq!(http.connect_timeout, Duration::from_secs(2));
        assert_eq!(http.read_timeout, Duration::from_millis(1500));
        assert_eq!(http.retry_for, Duration::from_secs(600));
        assert!(
            matches!(&http.proxy, ProxySetting::Explicit(u) if u.expose() == "http://proxy.example:3128/")
        );
        // DOCSYNC_HTTP_* win; the proxy variables only count without `proxy`
        let http = parse(
            &text,
            &[
                ("DOCSYNC_HTTP_READ_TIMEOUT", "3s"),
                ("DOCSYNC_HTTP_RETRY_FOR", "1h"),
                ("DOCSYNC_HTTP_PROXY", "none"),
                ("HTTPS_PROXY", "http://env.example:8080"),
            ],
        )
        .unwrap();
        assert_eq!(http.read_timeout, Duration::from_secs(3));
        assert_eq!(http.retry_for, Duration::from_secs(3600));
        assert_eq!(http.proxy, ProxySetting::Direct);
        let http = parse(
            BASE,
            &[
                ("https_proxy", "http://env.example:8080"),
                ("NO_PROXY", "internal.example"),
            ],
        )
        .unwrap();
        let ProxySetting::Environment(env) = http.proxy else {
            panic!("{:?}", http.proxy);
        };
        assert_eq!(
            env.https.map(|u| u.to_string()).as_deref(),
            Some("http://env.example:8080/")
        );
        assert_eq!((env.http, env.all), (None, None));
        assert_eq!(env.no_proxy, "internal.example");
    }

    #[test]
    fn bad_values_are_located_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let text = format!(
            "{BASE}[http]\nconnect_timeout = \"0s\"\nread_timeout = \"soon\"\n\
             proxy = \"http//alice:pw123@proxy\"\nca_file = {:?}\n",
            missing.display()
        );
        let problems = parse(&text, &[]).unwrap_err();
        let find = |key: &str| {
            problems
                .iter()
                .find(|p| p.location.key.as_deref() == Some(key))
                .unwrap_or_else(|| panic!("no problem for {key}: {problems:?}"))
        };
        let p = find("http.connect_timeout");
        assert_eq!(p.location.line_col, Some((6, 19)));
        assert!(p.message.contains("more than zero"), "{p}");
        let p = find("http.read_timeout");
        assert!(
            p.message.contains("`soon`") && p.fix.contains("\"1s\""),
            "{p}"
        );
        let p = find("http.proxy");
        assert!(!p.to_string().contains("pw123"), "{p}");
        assert!(p.fix.contains("\"none\""), "{p}");
        let p = find("http.ca_file");
        assert!(
            p.message.contains("missing.pem") && p.message.contains("does not exist"),
            "{p}"
        );
        assert_eq!(
            p.location.file.as_deref(),
            Some(Path::new("/etc/docsync.toml"))
        );
        assert_eq!(p.location.line_col.map(|(l, _)| l), Some(9));

        let text = format!("{BASE}[http]\nca_file = {:?}\n", garbage.display());
        let problems = parse(&text, &[]).unwrap_err();
        assert!(
            problems.iter().any(|p| p.message.contains("garbage.pem")
                && p.message.contains("not a usable PEM bundle")
                && p.fix.contains("BEGIN CERTIFICATE")),
            "{problems:?}"
        );
        // a proxy variable docsync cannot use: a warning naming it (never its
        // password), and the variable ignored
        let env = Env::from_pairs([("HTTP_PROXY", "ftp://bob:hunter2@proxy:21")]);
        let (config, problems) = super::super::parse_all(BASE, None, &env);
        assert!(
            problems.iter().any(|p| p.severity == Severity::Warning
                && p.location.key.as_deref() == Some("env HTTP_PROXY")
                && p.message.contains("ignored")
                && !p.to_string().contains("hunter2")),
            "{problems:?}"
        );
        assert_eq!(
            config.map(|c| c.http.proxy),
            Some(ProxySetting::Environment(EnvProxies::default()))
        );
        // without a scheme, a proxy is an HTTP one (as curl has it)
        let http = parse(BASE, &[("HTTPS_PROXY", "proxy.example:3128")]).unwrap();
        assert!(
            matches!(&http.proxy, ProxySetting::Environment(e)
                if e.https.as_ref().map(ProxyUrl::expose) == Some("http://proxy.example:3128/")),
            "{:?}",
            http.proxy
        );
    }
}
