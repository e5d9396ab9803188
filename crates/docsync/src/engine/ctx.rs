//! What every stage shares: the store, the clients, the folders, the counters,
//! the set of rows being sent right now, the upload request slots, and the
//! wake-ups between stages.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::heartbeat::{Heartbeats, LastScan};
use crate::metrics::Metrics;
use crate::model::Folder;
use crate::remote::Apis;
use crate::store::StateStore;

/// What every stage shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub store: StateStore,
    pub apis: Apis,
    /// What the stages count, for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The rows this process is sending right now.
    pub in_flight: InFlight,
    /// How the stages wake each other (data goes through the store).
    pub wake: Arc<Wakeups>,
    /// Each stage's loop beats here (for a watchdog).
    pub beats: Heartbeats,
    /// When a folder scan last finished.
    pub last_scan: Arc<LastScan>,
    /// One permit per upload request in flight, `upload_concurrency` in all.
    upload_slots: Arc<Semaphore>,
    upload_concurrency: usize,
    folders: Arc<HashMap<String, Folder>>,
    retry_initial: Duration,
    retry_for: Duration,
    verify_first_attempts: bool,
}

impl Ctx {
    pub fn new(store: StateStore, apis: Apis, folders: &[Folder]) -> Self {
        let folders = folders.iter().map(|f| (f.key(), f.clone())).collect();
        Ctx {
            store,
            apis,
            metrics: Arc::new(Metrics::default()),
            in_flight: InFlight::default(),
            wake: Arc::default(),
            beats: Heartbeats::default(),
            last_scan: Arc::default(),
            upload_slots: Arc::new(Semaphore::new(crate::config::DEFAULT_CONCURRENCY)),
            upload_concurrency: crate::config::DEFAULT_CONCURRENCY,
            folders: Arc::new(folders),
            retry_initial: crate::config::DEFAULT_RETRY_INITIAL,
            retry_for: crate::config::DEFAULT_RETRY_FOR,
            verify_first_attempts: false,
        }
    }

    /// Ask the server before a file's first upload too, not only before a
    /// retry: after an unclean stop an intent may have been lost with its
    /// request already sent, and such a file looks new.
    pub fn verifying_first_attempts(mut self, verify: bool) -> Self {
        self.verify_first_attempts = verify;
        self
    }

    /// Whether a first upload is preceded by asking the server (see
    /// [`Ctx::verifying_first_attempts`]).
    pub fn verifies_first_attempts(&self) -> bool {
        self.verify_first_attempts
    }

    /// At most `concurrency` upload requests in flight at once (at least one).
    pub fn with_upload_concurrency(mut self, concurrency: usize) -> Self {
        self.upload_concurrency = concurrency.max(1);
        self.upload_slots = Arc::new(Semaphore::new(self.upload_concurrency));
        self
    }

    /// How many upload requests may be in flight at once.
    pub fn upload_concurrency(&self) -> usize {
        self.upload_concurrency
    }

    /// Wait for a free upload request slot; held while the request (and the
    /// lookup before it) is in flight. `None` only if the slots were closed,
    /// which nothing does.
    pub async fn upload_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.upload_slots.clone().acquire_owned().await.ok()
    }

    /// Beat on `beats` (see [`super::heartbeat`]).
    pub fn with_heartbeats(mut self, beats: Heartbeats) -> Self {
        self.beats = beats;
        self
    }

    /// The first wait before retrying a failed upload (see [`super::upload::backoff`]).
    pub fn with_retry_initial(mut self, initial: Duration) -> Self {
        self.retry_initial = initial;
        self
    }

    /// The first wait before retrying a failed upload.
    pub fn retry_initial(&self) -> Duration {
        self.retry_initial
    }

    /// How long a failing upload is retried after its first attempt
    /// (`[http] retry_for`) before it is `failed`.
    pub fn with_retry_for(mut self, budget: Duration) -> Self {
        self.retry_for = budget;
        self
    }

    /// How long a failing upload is retried after its first attempt.
    pub fn retry_for(&self) -> Duration {
        self.retry_for
    }

    /// The configured folder with this key.
    pub fn folder(&self, key: &str) -> Option<&Folder> {
        self.folders.get(key)
    }
}

/// The wake-ups between stages. Each says "look at the store again"; none
/// carries data.
#[derive(Debug, Default)]
pub struct Wakeups {
    /// Intake → upload: rows became `stable`. Settle → upload: rows went back
    /// to `stable` to be sent again.
    pub stable: Notify,
    /// Upload → intake: a row went back to `discovered` (its file changed
    /// after it held still); the intake starts its quiet window again.
    pub discovered: Notify,
    /// Poll, upload → notify: rows may have been decided (approved, rejected,
    /// failed, invalid), so the hooks' outbox may hold new events.
    pub decided: Notify,
}

/// The ids of the rows this process has in hand with the server right now:
/// being sent, or asked about after a restart or a takeover (settle). Such a
/// row is `uploading` and must not be taken for one a crash left behind; on
/// PostgreSQL its lease is renewed.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Mutex<HashSet<i64>>>);

impl InFlight {
    /// Claim `id`; `false` if it is being sent already.
    pub fn claim(&self, id: i64) -> bool {
        self.0.lock().map(|mut set| set.insert(id)).unwrap_or(false)
    }

    /// Release `id` once its outcome is recorded.
    pub fn release(&self, id: i64) {
        if let Ok(mut set) = self.0.lock() {
            set.remove(&id);
        }
    }

    /// Whether `id` is being sent.
    pub fn contains(&self, id: i64) -> bool {
        self.0.lock().map(|set| set.contains(&id)).unwrap_or(false)
    }

    /// The ids being sent (a snapshot).
    pub fn ids(&self) -> Vec<i64> {
        self.0
            .lock()
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether anything is being sent.
    pub fn is_empty(&self) -> bool {
        self.0.lock().map(|set| set.is_empty()).unwrap_or(true)
    }
}
