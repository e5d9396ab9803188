//! The request log: what the sandbox received and answered, for tests and benchmarks.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One request as seen by the sandbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestLogEntry {
    /// When the request was received (sandbox clock).
    pub received_at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    /// The spec's operationId, when the route is one of the spec's operations.
    pub operation_id: Option<String>,
    /// The status answered; `None` when the connection was dropped (fault).
    pub status: Option<u16>,
    /// The `x-request-id` answered.
    pub request_id: String,
    /// The injected fault, if any (`reset`, `429`, `503`, `stall 30000ms`).
    pub fault: Option<String>,
    /// Time spent answering, in milliseconds.
    pub duration_ms: u64,
}

/// A bounded, shared request log.
#[derive(Debug)]
pub struct RequestLog {
    entries: Mutex<VecDeque<RequestLogEntry>>,
    capacity: usize,
}

impl RequestLog {
    pub fn new(capacity: usize) -> Self {
        RequestLog {
            entries: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&self, e: RequestLogEntry) {
        if let Ok(mut g) = self.entries.lock() {
            if g.len() >= self.capacity {
                g.pop_front();
            }
            g.push_back(e);
        }
    }

    /// A copy of the entries, oldest first.
    pub fn entries(&self) -> Vec<RequestLogEntry> {
        self.entries
            .lock()
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut g) = self.entries.lock() {
            g.clear();
        }
    }
}
