//! Configuration of a sandbox: address, data dir, credentials, decision rule, faults, clock.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use regex::Regex;

use crate::faults::FaultConfig;

/// The credentials clients use against a sandbox. `Debug` redacts the secrets.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    /// Moov public key (HTTP Basic username). Allowed on every account.
    pub public_key: String,
    /// Moov secret key (HTTP Basic password).
    pub secret_key: String,
    /// Value of the `api-key` header of the attachments API.
    pub attachments_api_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("public_key", &self.public_key)
            .field("secret_key", &"<redacted>")
            .field("attachments_api_key", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Random credentials (what a sandbox uses when none are configured).
    pub fn random() -> Self {
        Credentials {
            public_key: format!("pk_sandbox_{}", random_hex(12)),
            secret_key: format!("sk_sandbox_{}", random_hex(24)),
            attachments_api_key: format!("ak_sandbox_{}", random_hex(24)),
        }
    }
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill(&mut buf[..]);
    hex::encode(buf)
}

/// How pending Moov files are decided.
///
/// A file stays `pending` for `delay` after its upload; the first read after that
/// decides it (lazily, so decisions survive restarts and follow the injectable clock):
/// a name matching `reject_name_pattern` is rejected, otherwise a seeded
/// `rejection_rate` (a pure function of `seed`, the file's name and its content) may reject it,
/// otherwise it is approved.
#[derive(Clone, Debug)]
pub struct DecisionRule {
    /// How long new files stay pending.
    pub delay: Duration,
    /// File names matching this pattern are rejected. Default `(?i)reject`.
    pub reject_name_pattern: Option<Regex>,
    /// Fraction (0.0..=1.0) of the other files that are rejected.
    pub rejection_rate: f64,
    /// Seed for the rejection rate.
    pub seed: u64,
    /// The decisionReason given for a name match.
    pub name_reason: String,
    /// The decisionReason given for a random rejection.
    pub random_reason: String,
}

impl Default for DecisionRule {
    fn default() -> Self {
        DecisionRule {
            delay: Duration::from_secs(2),
            reject_name_pattern: Regex::new("(?i)reject").ok(),
            rejection_rate: 0.0,
            seed: 0,
            name_reason: "file name matches the sandbox rejection rule".to_owned(),
            random_reason: "document could not be verified".to_owned(),
        }
    }
}

/// The sandbox's notion of "now": the system clock plus an offset tests can advance.
///
/// Clones share the offset, so a test keeps a clone and calls [`Clock::advance`].
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock (offset zero).
    pub fn system() -> Self {
        Clock::default()
    }

    /// The current time of this clock.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst).max(0));
        Utc::now()
            .checked_add_signed(offset)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Moves this clock (and every clone) forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

/// Everything a sandbox needs to start.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Where to listen. Default `127.0.0.1:0` (a free port).
    pub addr: SocketAddr,
    /// Where to keep the database and the bytes. `None`: a temp dir owned by the handle.
    pub data_dir: Option<PathBuf>,
    /// Base URL used in links (image `link`, attachment `file_url`).
    /// `None`: `http://{bound address}`.
    pub public_url: Option<String>,
    /// Credentials; `None`: random ones (see [`SandboxHandle::credentials`](crate::SandboxHandle::credentials)).
    pub credentials: Option<Credentials>,
    /// How Moov files get decided.
    pub decision: DecisionRule,
    /// How long an attachment stays `processing` after its bytes arrive.
    pub attachment_processing_delay: Duration,
    /// Lifetime of a signed upload URL (`expires_in`). Default 600 s.
    pub signed_url_ttl: Duration,
    /// Lifetime of `persist=false` attachments. Default 24 h.
    pub ephemeral_ttl: Duration,
    /// Lifetime of bearer access tokens (`expires_in`). Default 3600 s.
    pub token_ttl: Duration,
    /// Fault injection (off by default).
    pub faults: FaultConfig,
    /// The clock (injectable for tests).
    pub clock: Clock,
    /// Largest number of entries kept in the request log (oldest dropped first).
    pub request_log_capacity: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            public_url: None,
            credentials: None,
            decision: DecisionRule::default(),
            attachment_processing_delay: Duration::from_secs(1),
            signed_url_ttl: Duration::from_secs(600),
            ephemeral_ttl: Duration::from_secs(24 * 3600),
            token_ttl: Duration::from_secs(3600),
            faults: FaultConfig::default(),
            clock: Clock::system(),
            request_log_capacity: 100_000,
        }
    }
}
