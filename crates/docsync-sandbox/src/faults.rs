//! Fault injection: deterministic for a given seed and request order.
//!
//! Request number `n` (counted from the last [`Faults::set`]) draws from an RNG
//! seeded with `(seed, n)`, so a sequential client sees the same faults every run.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What faults to inject. All rates are fractions in `0.0..=1.0`; the default is off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Seed of the fault RNG.
    pub seed: u64,
    /// Fraction of requests answered 500/502/503/504 (chosen uniformly).
    pub error_rate: f64,
    /// Fraction of requests answered 429.
    pub rate_limit_rate: f64,
    /// `Retry-After` seconds sent with injected 429s (`None`: no header).
    pub retry_after_secs: Option<u64>,
    /// Latency added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Fraction of requests whose connection is dropped without an answer.
    pub reset_rate: f64,
    /// Fraction of requests that stall for `stall_ms` before being answered.
    pub stall_rate: f64,
    /// How long a stalled request sleeps, in milliseconds.
    pub stall_ms: u64,
    /// The statuses `error_rate` picks from (uniformly). Default 500, 502, 503, 504.
    pub error_statuses: Vec<u16>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 0,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: Some(1),
            latency_ms: 0,
            reset_rate: 0.0,
            stall_rate: 0.0,
            stall_ms: 30_000,
            error_statuses: vec![500, 502, 503, 504],
        }
    }
}

impl FaultConfig {
    /// Whether any fault is configured.
    pub fn is_active(&self) -> bool {
        self.error_rate > 0.0
            || self.rate_limit_rate > 0.0
            || self.latency_ms > 0
            || self.reset_rate > 0.0
            || self.stall_rate > 0.0
    }

    /// Checks that rates are within 0..=1.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("reset_rate", self.reset_rate),
            ("stall_rate", self.stall_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        if self.error_statuses.is_empty()
            || self.error_statuses.iter().any(|s| !(500..=599).contains(s))
        {
            return Err("error_statuses must be a non-empty list of 5xx codes".to_owned());
        }
        let sum = self.error_rate + self.rate_limit_rate + self.reset_rate + self.stall_rate;
        if sum > 1.0 + 1e-9 {
            return Err(format!("the fault rates add up to {sum}, more than 1"));
        }
        Ok(())
    }
}

/// The fault chosen for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer normally.
    None,
    /// Drop the connection without an answer.
    Reset,
    /// Sleep, then answer normally.
    Stall(Duration),
    /// Answer 429 (with `Retry-After` seconds if set).
    RateLimit(Option<u64>),
    /// Answer with this 5xx status.
    Error(StatusCode),
}

impl FaultAction {
    /// A short name for the request log.
    pub fn label(&self) -> Option<String> {
        match self {
            FaultAction::None => None,
            FaultAction::Reset => Some("reset".into()),
            FaultAction::Stall(d) => Some(format!("stall {}ms", d.as_millis())),
            FaultAction::RateLimit(_) => Some("429".into()),
            FaultAction::Error(s) => Some(s.as_u16().to_string()),
        }
    }
}

/// The live fault settings of a sandbox.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<(FaultConfig, u64)>,
}

impl Faults {
    pub fn new(config: FaultConfig) -> Self {
        Faults {
            inner: Mutex::new((config, 0)),
        }
    }

    /// Replaces the settings and restarts the request count (so runs repeat).
    pub fn set(&self, config: FaultConfig) {
        if let Ok(mut g) = self.inner.lock() {
            *g = (config, 0);
        }
    }

    /// The current settings.
    pub fn get(&self) -> FaultConfig {
        self.inner.lock().map(|g| g.0.clone()).unwrap_or_default()
    }

    /// Draws the fault of the next request, plus the latency to add.
    pub fn draw(&self) -> (FaultAction, Duration) {
        let Ok(mut g) = self.inner.lock() else {
            return (FaultAction::None, Duration::ZERO);
        };
        if !g.0.is_active() {
            return (FaultAction::None, Duration::ZERO);
        }
        let n = g.1;
        g.1 += 1;
        let c = &g.0;
        (decide(c, n), Duration::from_millis(c.latency_ms))
    }
}

/// The fault of request number `n` under `c` (pure).
pub fn decide(c: &FaultConfig, n: u64) -> FaultAction {
    let mut rng = rand::rngs::StdRng::seed_from_u64(c.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let u: f64 = rng.gen();
    let mut edge = c.reset_rate;
    if u < edge {
        return FaultAction::Reset;
    }
    edge += c.stall_rate;
    if u < edge {
        return FaultAction::Stall(Duration::from_millis(c.stall_ms));
    }
    edge += c.rate_limit_rate;
    if u < edge {
        return FaultAction::RateLimit(c.retry_after_secs);
    }
    edge += c.error_rate;
    if u < edge {
        let codes = &c.error_statuses;
        let code = codes
            .get(rng.gen_range(0..codes.len().max(1)))
            .and_then(|c| StatusCode::from_u16(*c).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return FaultAction::Error(code);
    }
    FaultAction::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults() {
        let c = FaultConfig {
            seed: 7,
            error_rate: 0.3,
            rate_limit_rate: 0.2,
            ..FaultConfig::default()
        };
        let a: Vec<_> = (0..100).map(|n| decide(&c, n)).collect();
        let b: Vec<_> = (0..100).map(|n| decide(&c, n)).collect();
        assert_eq!(a, b);
        assert!(a.iter().any(|f| matches!(f, FaultAction::Error(_))));
        assert!(a.iter().any(|f| matches!(f, FaultAction::RateLimit(_))));
        assert!(a.contains(&FaultAction::None));
    }

    #[test]
    fn rates_are_validated() {
        let c = FaultConfig {
            error_rate: 0.8,
            reset_rate: 0.5,
            ..FaultConfig::default()
        };
        assert!(c.validate().is_err());
        assert!(FaultConfig::default().validate().is_ok());
    }
}
