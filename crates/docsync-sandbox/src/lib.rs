//! docsync-sandbox: a local reference server for the Moov Files and Images APIs and
//! the signed-URL attachments API (`openapi/moov.yaml`, `openapi/attachments.yaml`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), docsync_sandbox::Error> {
//! let sandbox = docsync_sandbox::Sandbox::start(Default::default()).await?;
//! println!("{} {:?}", sandbox.url(), sandbox.credentials());
//! sandbox.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Metadata lives in SQLite (`{data}/sandbox.sqlite3`), bytes under `{data}/blobs`,
//! content-addressed by SHA-256. Time-dependent behaviour (file decisions, attachment
//! processing, URL expiry, `persist=false` cleanup) follows the injectable [`Clock`].

mod blobs;
mod config;
mod error;
mod faults;
mod http;
mod reqlog;
mod store;

use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{Clock, Credentials, DecisionRule, SandboxConfig};
pub use error::{Error, Result};
pub use faults::{FaultAction, FaultConfig};
pub use http::{
    operation_id, router, AppState, MAX_ATTACHMENT_BYTES, MAX_FILES_PER_ACCOUNT, MAX_FILE_BYTES,
    MAX_IMAGES_PER_ACCOUNT, MAX_IMAGE_BYTES,
};
pub use reqlog::RequestLogEntry;
pub use store::migrations;

/// Entry point: starts sandboxes.
#[derive(Debug)]
pub struct Sandbox;

impl Sandbox {
    /// The router of a sandbox on `state` (to serve it in-process, e.g. with
    /// `tower::ServiceExt::oneshot`, or on a listener of your own).
    pub fn router(state: AppState) -> axum::Router {
        router(state)
    }

    /// Serves on `listener` until `shutdown` is cancelled (the mini-redis shape).
    /// `config.addr` is ignored; `config.data_dir` `None` means a temp dir for the run.
    pub async fn run(
        config: SandboxConfig,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })?;
        let (data_dir, _temp) = data_dir(&config)?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let state = open_state(&config, &data_dir, public_url).await?;
        let stop = shutdown.clone();
        let stalls = state.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            stalls.cancel_stalls();
        });
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(Error::Server)
    }

    /// Binds `config.addr`, opens the data dir and serves both APIs until the handle
    /// is shut down or dropped.
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle> {
        let (data_dir, temp) = data_dir(&config)?;
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.addr,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })?;
        let url = format!("http://{local}");
        let public_url = config.public_url.clone().unwrap_or_else(|| url.clone());
        let state = open_state(&config, &data_dir, public_url).await?;
        let app = router(state.clone());
        let stop = CancellationToken::new();
        let server = {
            let stop = stop.clone();
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            })
        };
        let sweeper = {
            let stop = stop.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {
                            if let Err(e) = state.sweep().await {
                                tracing::warn!(error = ?e, "sweeping expired attachments failed");
                            }
                        }
                    }
                }
            })
        };
        tracing::info!(%url, data_dir = %data_dir.display(), "sandbox listening");
        Ok(SandboxHandle {
            url,
            addr: local,
            data_dir,
            state,
            stop,
            server: Some(server),
            sweeper: Some(sweeper),
            _temp: temp,
        })
    }
}

fn data_dir(config: &SandboxConfig) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    Ok(match &config.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("docsync-sandbox-")
                .tempdir()
                .map_err(Error::io(std::env::temp_dir()))?;
            (t.path().to_path_buf(), Some(t))
        }
    })
}

async fn open_state(
    config: &SandboxConfig,
    data_dir: &std::path::Path,
    public_url: String,
) -> Result<AppState> {
    let config = config.clone();
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || AppState::open(&config, &data_dir, public_url)).await?
}

/// A running sandbox. Dropping it stops the server (without waiting);
/// [`SandboxHandle::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct SandboxHandle {
    url: String,
    addr: std::net::SocketAddr,
    data_dir: PathBuf,
    state: AppState,
    stop: CancellationToken,
    server: Option<JoinHandle<std::io::Result<()>>>,
    sweeper: Option<JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

impl SandboxHandle {
    /// Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The data dir (a temp dir when none was configured).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The accepted credentials.
    pub fn credentials(&self) -> &Credentials {
        self.state.credentials()
    }

    /// The requests received so far (oldest first, bounded).
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.state.request_log()
    }

    /// Empties the request log.
    pub fn clear_request_log(&self) {
        self.state.clear_request_log()
    }

    /// Replaces the fault settings; the seeded sequence restarts.
    pub fn set_faults(&self, faults: FaultConfig) -> Result<()> {
        self.state.set_faults(faults)
    }

    /// The sandbox's clock (advance it in tests).
    pub fn clock(&self) -> &Clock {
        self.state.clock()
    }

    /// The shared state (e.g. to build more routers on the same data).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting, cancels stalls, waits (up to 10 s) for requests in flight.
    pub async fn shutdown(mut self) -> Result<()> {
        self.stop.cancel();
        self.state.cancel_stalls();
        if let Some(s) = self.sweeper.take() {
            let _ = s.await;
        }
        if let Some(server) = self.server.take() {
            match tokio::time::timeout(Duration::from_secs(10), server).await {
                Ok(joined) => joined?.map_err(Error::Server)?,
                Err(_) => tracing::warn!("sandbox did not stop within 10s"),
            }
        }
        Ok(())
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.stop.cancel();
        self.state.cancel_stalls();
        if let Some(s) = self.server.take() {
            s.abort();
        }
        if let Some(s) = self.sweeper.take() {
            s.abort();
        }
    }
}
