//! The optional admin listener (`docsync run --admin 127.0.0.1:8384`): liveness and
//! readiness probes, Prometheus metrics and a server-rendered status page.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | 200 while the process serves requests |
//! | `GET /readyz` | each check named on its own line; 503 when one fails ([`health`]) |
//! | `GET /metrics` | OpenMetrics text, scraped by Prometheus ([`crate::metrics`]) |
//! | `GET /`, `/files`, `/files/{id}` | the status page ([`page`]) |
//! | `POST /files/{id}/retry` | queue a failed or invalid file again |
//!
//! It runs as one more task on the daemon's `CancellationToken`. Pages read through
//! their own read-only connection; the retry button goes through the daemon's one
//! writer. It listens on loopback only unless allowed otherwise
//! ([`check_address`]), and answers only requests addressed to a loopback name
//! (a page of another site cannot reach it by DNS rebinding). The retry form
//! carries a per-process token and must come from the page's own origin.

pub mod health;
pub mod page;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::StateStore;

pub use health::Liveness;

/// Refuse an address other machines can reach unless `allow_remote`.
pub fn check_address(addr: SocketAddr, allow_remote: bool) -> Result<()> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(Error::AdminNotLoopback { addr })
    }
}

/// A bound admin listener, ready to serve.
#[derive(Debug)]
pub struct Listener {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    allow_remote: bool,
}

impl Listener {
    /// Bind `addr` (port 0: any free port), after [`check_address`].
    pub fn bind(addr: SocketAddr, allow_remote: bool) -> Result<Listener> {
        check_address(addr, allow_remote)?;
        let bind = |source| Error::AdminBind { addr, source };
        let std = std::net::TcpListener::bind(addr).map_err(bind)?;
        std.set_nonblocking(true).map_err(bind)?;
        let listener = tokio::net::TcpListener::from_std(std).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        Ok(Listener {
            listener,
            addr,
            allow_remote,
        })
    }

    /// The bound address (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// A read-only connection for the pages (never the writer's lock).
    pub reader: StateStore,
    /// The daemon's one writer, for the retry button only.
    pub writer: StateStore,
    pub metrics: Arc<Metrics>,
    pub liveness: Arc<Liveness>,
    /// The configured folders (shown even before they have rows).
    pub folders: Arc<Vec<String>>,
    /// The API base URLs the readiness check connects to.
    pub api_urls: Arc<Vec<String>>,
    /// Which API the folders are synced with (shown on the status page: the
    /// embedded sandbox says it is not the real API).
    pub api: Arc<crate::model::ApiIdentity>,
    /// Put in every retry form and required back: a page of another site cannot
    /// know it.
    pub form_token: Arc<String>,
}

impl AdminState {
    /// A fresh random form token for this process.
    pub fn new_form_token() -> String {
        hex::encode(rand::random::<[u8; 16]>())
    }
}

/// The routes, with the Host check unless `allow_remote`.
pub fn router(state: AdminState, allow_remote: bool) -> Router {
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics))
        .route("/", get(page::overview))
        .route("/files", get(page::files))
        .route("/files/{id}", get(page::file))
        .route("/files/{id}/retry", post(page::retry))
        .with_state(state);
    if allow_remote {
        router
    } else {
        router.layer(axum::middleware::from_fn(loopback_host_only))
    }
}

/// Serve until `stop` is cancelled.
pub async fn serve(listener: Listener, state: AdminState, stop: CancellationToken) {
    let addr = listener.addr;
    info!("admin listener on http://{addr}/ (status page, /metrics, /healthz, /readyz)");
    let app = router(state, listener.allow_remote);
    let served = axum::serve(listener.listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        warn!(%addr, error = %e, "the admin listener stopped");
    }
}

/// `GET /metrics`: the daemon's counters, with files by state read now.
async fn metrics(AxumState(state): AxumState<AdminState>) -> Response {
    let counts = state.reader.counts_by_state().await;
    let text = counts.map(|counts| state.metrics.encode(&counts));
    match text {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(Err(e)) => internal(&format!("encoding the metrics: {e}")),
        Err(e) => internal(&format!("reading the state database: {e}")),
    }
}

/// A 500 with a plain-text reason (logged too).
pub(crate) fn internal(reason: &str) -> Response {
    warn!(reason, "admin request failed");
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{reason}\n")).into_response()
}

/// Whether the request's Host names a loopback address or `localhost`.
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn loopback_host_only(request: Request, next: Next) -> Response {
    if host_is_loopback(request.headers()) {
        next.run(request).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "this admin listener answers requests to 127.0.0.1, [::1] or localhost only \
             (start it with --admin-allow-remote to serve other names)\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_loopback_addresses_unless_allowed() {
        for ok in ["127.0.0.1:8384", "[::1]:0", "127.0.0.2:1"] {
            check_address(ok.parse().unwrap(), false).unwrap();
        }
        let err = check_address("0.0.0.0:8384".parse().unwrap(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0.0.0.0:8384 is not a loopback address"),
            "{err}"
        );
        assert!(err.contains("--admin-allow-remote"), "{err}");
        check_address("0.0.0.0:8384".parse().unwrap(), true).unwrap();
    }

    #[test]
    fn host_check_accepts_loopback_names_only() {
        let with = |host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, host.parse().unwrap());
            host_is_loopback(&h)
        };
        for ok in [
            "127.0.0.1:8384",
            "localhost:1",
            "LOCALHOST",
            "[::1]:9",
            "127.0.0.1",
        ] {
            assert!(with(ok), "{ok}");
        }
        for bad in [
            "evil.example:8384",
            "10.0.0.1:8384",
            "localhost.evil.example",
        ] {
            assert!(!with(bad), "{bad}");
        }
        assert!(!host_is_loopback(&HeaderMap::new()));
    }
}
