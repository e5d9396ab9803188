//! `/healthz` (the process answers) and `/readyz` (it can do its job): the
//! watchers and intake are running, the state database takes writes, and every
//! configured API accepts a TCP connection. Each check is one line of the body,
//! so a failing probe says which part is down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AdminState;

/// How long the API check waits for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the daemon reports about its own tasks.
#[derive(Debug, Default)]
pub struct Liveness {
    watching: AtomicBool,
}

impl Liveness {
    /// The watchers are started and the intake task is consuming their hints.
    pub fn set_watching(&self, on: bool) {
        self.watching.store(on, Ordering::SeqCst);
    }

    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::SeqCst)
    }
}

/// One named check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 with every check `ok`, else 503.
pub async fn readyz(AxumState(state): AxumState<AdminState>) -> Response {
    let checks = run_checks(&state).await;
    let ready = checks.iter().all(|c| c.ok);
    let mut body = String::from(if ready { "ready\n" } else { "not ready\n" });
    for c in &checks {
        let word = if c.ok { "ok" } else { "FAIL" };
        body.push_str(&format!("{}: {word} ({})\n", c.name, c.detail));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

/// Every readiness check, in a fixed order: watcher, database, api.
pub async fn run_checks(state: &AdminState) -> Vec<Check> {
    let gone: Vec<&str> = state
        .folders
        .iter()
        .filter(|f| !std::path::Path::new(f.as_str()).is_dir())
        .map(String::as_str)
        .collect();
    let watcher = if !state.liveness.watching() {
        Check {
            name: "watcher",
            ok: false,
            detail: "the watchers and the intake task are not running (starting, or stopped)"
                .into(),
        }
    } else if !gone.is_empty() {
        Check {
            name: "watcher",
            ok: false,
            detail: format!(
                "watched folder(s) no longer a directory: {}; recreate them or fix the configuration",
                gone.join(", ")
            ),
        }
    } else {
        Check {
            name: "watcher",
            ok: true,
            detail: format!("{} folder(s) watched, intake running", state.folders.len()),
        }
    };
    let database = match state.writer.check_writable().await {
        Ok(()) => Check {
            name: "database",
            ok: true,
            detail: "writable".into(),
        },
        Err(e) => Check {
            name: "database",
            ok: false,
            detail: e.to_string(),
        },
    };
    let mut api = Check {
        name: "api",
        ok: true,
        detail: String::new(),
    };
    let mut details = Vec::new();
    for url in state.api_urls.iter() {
        match connect(url).await {
            Ok(took) => details.push(format!(
                "{url} accepted a connection in {}ms",
                took.as_millis()
            )),
            Err(why) => {
                api.ok = false;
                details.push(format!("{url}: {why}"));
            }
        }
    }
    if details.is_empty() {
        api.ok = false;
        details.push("no API URL is configured".into());
    }
    api.detail = details.join("; ");
    vec![watcher, database, api]
}

/// Open (and close) a TCP connection to the URL's host and port: reachable
/// without sending a request, so the probe costs no API call or rate limit.
async fn connect(url: &str) -> Result<Duration, String> {
    let parsed = host_and_port(url)?;
    let started = Instant::now();
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&parsed)).await {
        Ok(Ok(_stream)) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(format!("connecting to {parsed} failed: {e}")),
        Err(_) => Err(format!(
            "connecting to {parsed} timed out after {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// `host:port` of an http(s) URL (default ports 80/443).
fn host_and_port(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{url}`: unsupported scheme `{}`", parsed.scheme()));
    }
    let host = match parsed.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => return Err(format!("`{url}` has no host")),
    };
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("`{url}` has no port"))?;
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn host_and_port_of_api_urls() {
        for (url, want) in [
            ("http://127.0.0.1:5000/", "127.0.0.1:5000"),
            ("https://api.moov.io", "api.moov.io:443"),
            ("http://example.test/v1?x=1", "example.test:80"),
            ("http://[::1]:8080/x", "[::1]:8080"),
            ("http://[::1]/x", "[::1]:80"),
        ] {
            assert_eq!(host_and_port(url).unwrap(), want, "{url}");
        }
        assert!(host_and_port("ftp://x")
            .unwrap_err()
            .contains("unsupported scheme"));
        assert!(host_and_port("nope").unwrap_err().contains("is not a URL"));
    }
}
