//! What the daemon counts while it runs, for `/metrics` (Prometheus text format)
//! on the admin listener.
//!
//! The tasks record events here (an upload done, a retry scheduled, a failure and
//! its class, a poll cycle's duration, a rescan); [`Metrics::encode`] adds what is
//! read from the store at scrape time (files by state, queue depth). Recording is a
//! few atomic operations: cheap enough to do always, admin listener or not.

use std::collections::BTreeMap;
use std::time::Duration;

use docsync_client::ApiError;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::remote::RemoteError;
use crate::store::State;

type StageClass = [(&'static str, &'static str); 2];
type StateLabel = [(&'static str, &'static str); 1];

/// The daemon's counters and histograms, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    uploads: Counter,
    retries: Counter,
    failures: Family<StageClass, Counter>,
    bytes_sent: Counter,
    upload_seconds: Histogram,
    poll_seconds: Histogram,
    rescans: Counter,
    files: Family<StateLabel, Gauge>,
    queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Where a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Upload,
    Poll,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Upload => "upload",
            Stage::Poll => "poll",
        }
    }
}

/// The class of a failure, as a metric label: the kind of HTTP answer or the
/// local cause.
pub fn failure_class(error: &RemoteError) -> &'static str {
    match error {
        RemoteError::Read { .. } => "local_read",
        RemoteError::NotConfigured(_) => "not_configured",
        RemoteError::Mismatch { .. } => "answer_mismatch",
        RemoteError::Api(e) => match **e {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::Validation { .. } => "validation",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Server { .. } => "server_error",
            ApiError::NotModified { .. } | ApiError::Status { .. } => "unexpected_status",
            ApiError::Transport(_) => "transport",
            ApiError::InvalidResponse { .. } => "invalid_response",
            ApiError::InvalidRequest(_) => "invalid_request",
        },
    }
}

/// 5 ms to about 80 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.005, 2.0, 15)
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("docsync");
        let m = Metrics {
            registry: Registry::default(),
            uploads: Counter::default(),
            retries: Counter::default(),
            failures: Family::default(),
            bytes_sent: Counter::default(),
            upload_seconds: Histogram::new(latency_buckets()),
            poll_seconds: Histogram::new(latency_buckets()),
            rescans: Counter::default(),
            files: Family::default(),
            queue_depth: Gauge::default(),
        };
        registry.register(
            "uploads",
            "Files the server accepted an upload of",
            m.uploads.clone(),
        );
        registry.register(
            "retries",
            "Uploads that failed transiently and were scheduled again",
            m.retries.clone(),
        );
        registry.register(
            "failures",
            "Failed requests by stage (upload, poll) and class (HTTP answer or local cause)",
            m.failures.clone(),
        );
        registry.register(
            "sent_bytes",
            "Bytes of file content in accepted uploads",
            m.bytes_sent.clone(),
        );
        registry.register_with_unit(
            "upload_duration",
            "Time from sending an upload to its answer",
            prometheus_client::registry::Unit::Seconds,
            m.upload_seconds.clone(),
        );
        registry.register_with_unit(
            "poll_duration",
            "Time of one poll cycle (reading every pending decision once)",
            prometheus_client::registry::Unit::Seconds,
            m.poll_seconds.clone(),
        );
        registry.register(
            "watcher_rescans",
            "Full rescans of a folder asked by its watcher (event queue overflow, a new directory, unreliable events)",
            m.rescans.clone(),
        );
        registry.register(
            "files",
            "Rows in the state database by state",
            m.files.clone(),
        );
        registry.register(
            "queue_depth",
            "Files waiting to be sent: stable, retrying and uploading",
            m.queue_depth.clone(),
        );
        Metrics { registry, ..m }
    }

    /// An upload the server accepted, of `bytes`, answered after `took`.
    pub fn uploaded(&self, bytes: u64, took: Duration) {
        self.uploads.inc();
        self.bytes_sent.inc_by(bytes);
        self.upload_seconds.observe(took.as_secs_f64());
    }

    /// Bytes of the uploads the server accepted so far.
    pub fn sent_bytes(&self) -> u64 {
        self.bytes_sent.get()
    }

    /// An upload that failed with `error` after `took`.
    pub fn upload_failed(&self, error: &RemoteError, took: Duration) {
        self.upload_seconds.observe(took.as_secs_f64());
        self.failure(Stage::Upload, error);
    }

    /// A transient failure: the row goes to `retrying`.
    pub fn retry_scheduled(&self) {
        self.retries.inc();
    }

    /// A failed request, counted by stage and class.
    pub fn failure(&self, stage: Stage, error: &RemoteError) {
        self.failures
            .get_or_create(&[("stage", stage.as_str()), ("class", failure_class(error))])
            .inc();
    }

    /// One poll cycle took `took`.
    pub fn polled(&self, took: Duration) {
        self.poll_seconds.observe(took.as_secs_f64());
    }

    /// A watcher asked for a full rescan.
    pub fn rescan(&self) {
        self.rescans.inc();
    }

    /// The exposition text, with files by state and queue depth from `counts`.
    pub fn encode(&self, counts: &BTreeMap<State, u64>) -> Result<String, std::fmt::Error> {
        let count = |s: State| counts.get(&s).copied().unwrap_or(0);
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for state in State::ALL {
            self.files
                .get_or_create(&[("state", state.as_str())])
                .set(gauge(count(state)));
        }
        self.queue_depth.set(gauge(
            count(State::Stable) + count(State::Retrying) + count(State::Uploading),
        ));
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_its_values() {
        let m = Metrics::new();
        m.uploaded(1000, Duration::from_millis(30));
        m.uploaded(24, Duration::from_millis(30));
        m.retry_scheduled();
        m.failure(
            Stage::Upload,
            &RemoteError::from(ApiError::RateLimited {
                retry_after: None,
                body: docsync_client::ErrorBody::None,
                request_id: None,
            }),
        );
        m.polled(Duration::from_millis(3));
        m.rescan();
        let counts = BTreeMap::from([
            (State::Approved, 2),
            (State::Stable, 3),
            (State::Retrying, 1),
        ]);
        let text = m.encode(&counts).unwrap();
        for line in [
            "docsync_uploads_total 2",
            "docsync_retries_total 1",
            "docsync_failures_total{stage=\"upload\",class=\"rate_limited\"} 1",
            "docsync_sent_bytes_total 1024",
            "docsync_upload_duration_seconds_count 2",
            "docsync_upload_duration_seconds_bucket{le=\"0.04\"} 2",
            "docsync_poll_duration_seconds_count 1",
            "docsync_watcher_rescans_total 1",
            "docsync_files{state=\"approved\"} 2",
            "docsync_files{state=\"failed\"} 0",
            "docsync_queue_depth 4",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
}
