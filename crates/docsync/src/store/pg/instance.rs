//! [`PgInstance`]: the PostgreSQL store as one daemon's engine uses it,
//! behind [`crate::store::StateStore`]. It adds what the engine needs to work
//! under leases:
//!
//! - rows to upload are claimed with a lease ([`PgStore::claim_uploads`]);
//! - the engine renews the leases of the rows it has in hand
//!   ([`PgInstance::renew`], every [`PgInstance::renew_every`]);
//! - for each row it holds, the instance knows a time before which the lease
//!   is certainly still its own (the *floor*: the moment it asked for the
//!   lease, on its own monotonic clock, plus the lease's length, since the
//!   database's expiry counts from later than that). A request in flight is
//!   abandoned before its floor, less the fence margin, unless a renewal
//!   moved the floor ([`PgInstance::lease_lost`]). So a request never runs
//!   past the moment another host may take its row over: by then the sender
//!   has stopped, and the taker asks the server before sending anything.
//! - rows left `uploading` by an instance whose lease expired are taken over,
//!   and with this instance's own, handed to the settle stage to ask the server.
//! - an account's poll is claimed each cycle: one host polls it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use super::super::composite::{FileCheck, FileMove, IntentStart, UploadQueue};
use super::super::{BeginUpload, FileRow, PendingAccount, State, UploadIntent};
use super::{InstanceGuard, PgStore, PollClaim};
use crate::error::{Error, Result};

/// The lease is renewed every this part of it, and a request is abandoned
/// this part of it before the lease's floor.
const LEASE_PARTS: u32 = 6;
/// Rows taken over per settle round.
const TAKEOVER_BATCH: u32 = 256;

/// The PostgreSQL store of one daemon, with its leases' floors. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgInstance {
    store: PgStore,
    _lock: Arc<InstanceGuard>,
    floors: Arc<Mutex<HashMap<i64, Instant>>>,
    /// How long a claim or an intent holds its row without a renewal.
    lease: Duration,
    poll_lease: Duration,
}

impl PgInstance {
    /// `store` for a daemon whose claims last `lease` and that polls every
    /// `poll_interval` (an account's poll lease outlives one cycle, so its
    /// holder keeps it while it lives). Takes the instance's lock
    /// ([`PgStore::take_instance`]).
    pub async fn new(
        store: PgStore,
        lease: Duration,
        poll_interval: Duration,
    ) -> Result<PgInstance> {
        let lock = store.take_instance().await?;
        Ok(PgInstance {
            store,
            _lock: Arc::new(lock),
            floors: Arc::default(),
            lease,
            poll_lease: poll_interval * 2 + Duration::from_secs(5),
        })
    }

    /// How often the engine renews the leases of the rows in hand.
    pub fn renew_every(&self) -> Duration {
        self.lease / LEASE_PARTS
    }

    /// The store itself.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    fn set_floor(&self, id: i64, asked: Instant) {
        if let Ok(mut floors) = self.floors.lock() {
            floors.insert(id, asked + self.lease);
        }
    }

    fn drop_floor(&self, id: i64) {
        if let Ok(mut floors) = self.floors.lock() {
            floors.remove(&id);
        }
    }

    fn floor(&self, id: i64) -> Option<Instant> {
        self.floors.lock().ok().and_then(|f| f.get(&id).copied())
    }

    /// Lease rows ready to upload: `stable`, then due `retrying` ones.
    pub async fn upload_queue(&self, limit: u32) -> Result<UploadQueue> {
        let asked = Instant::now();
        let claimed = self.store.claim_uploads(limit, self.lease).await?;
        let full = claimed.len() >= limit as usize;
        let mut rows = Vec::with_capacity(claimed.len());
        for leased in claimed {
            self.set_floor(leased.row.id, asked);
            rows.push(leased.row);
        }
        // as SQLite's queue: the rows to hash first, then the retries
        rows.sort_by_key(|r| (r.state != State::Stable, r.id));
        Ok(UploadQueue { rows, full })
    }

    /// The intent of row `id` under its lease, after `check_file` found the
    /// file as it was hashed.
    pub async fn begin_upload(
        &self,
        id: i64,
        from: State,
        intent: &UploadIntent,
        check_file: impl FnOnce() -> Result<FileCheck> + Send + 'static,
    ) -> Result<IntentStart> {
        let file = tokio::task::spawn_blocking(check_file)
            .await
            .map_err(|e| Error::Task {
                what: "checking the file before its intent",
                message: e.to_string(),
            })??;
        if file != FileCheck::Unchanged {
            return Ok(IntentStart::FileChanged(file));
        }
        let asked = Instant::now();
        let outcome = self.store.begin_upload(id, from, intent).await?;
        let superseded_remote_id = match &outcome {
            BeginUpload::Started(row) => {
                self.set_floor(id, asked);
                match row.supersedes {
                    Some(old) => self.store.get(old).await?.and_then(|o| o.row.remote_id),
                    None => None,
                }
            }
            _ => {
                self.drop_floor(id);
                None
            }
        };
        Ok(IntentStart::Recorded {
            outcome: Box::new(outcome),
            superseded_remote_id,
        })
    }

    /// The row's work is over (its outcome recorded): no floor kept.
    pub fn done_with(&self, id: i64) {
        self.drop_floor(id);
    }

    /// Renew the leases of `ids` (the rows in hand); a row no longer held
    /// loses its floor, so a request for it stops at once.
    pub async fn renew(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let asked = Instant::now();
        let held = self.store.renew(ids, self.lease).await?;
        for id in ids {
            match held.binary_search(id) {
                Ok(_) => self.set_floor(*id, asked),
                Err(_) => self.drop_floor(*id),
            }
        }
        Ok(())
    }

    /// Resolves when this instance may no longer be sure it holds row
    /// `id`'s lease: its floor, less a sixth of the lease, has passed (now at
    /// once when it has no floor). Pending while renewals keep moving it.
    pub async fn lease_lost(&self, id: i64) {
        loop {
            let Some(floor) = self.floor(id) else { return };
            let fence = floor.checked_sub(self.lease / LEASE_PARTS).unwrap_or(floor);
            if Instant::now() >= fence {
                return;
            }
            tokio::time::sleep_until(fence).await;
        }
    }

    /// Rows in `uploading` to ask the server about: those whose holder's
    /// lease expired (now leased to this instance) and this instance's own,
    /// less those `is_sending` says this process is sending.
    pub async fn stuck_uploading(
        &self,
        is_sending: impl Fn(i64) -> bool + Send + 'static,
    ) -> Result<Vec<FileRow>> {
        let asked = Instant::now();
        let orphans = self
            .store
            .take_over_expired(TAKEOVER_BATCH, self.lease)
            .await?;
        for orphan in &orphans {
            info!(
                path = %orphan.row.path_display(),
                previous = %crate::model::text::escape(orphan.previous_owner.as_bytes()),
                "took over an upload whose instance's lease expired; asking the server first"
            );
        }
        let mine = self.store.uploading_mine().await?;
        let stuck: Vec<FileRow> = mine.into_iter().filter(|r| !is_sending(r.id)).collect();
        for row in &stuck {
            self.set_floor(row.id, asked);
        }
        Ok(stuck)
    }

    /// The accounts with pending rows whose poll this instance holds this
    /// cycle (claimed here; another host's are left to it).
    pub async fn pending_accounts(&self) -> Result<Vec<PendingAccount>> {
        let mut mine = Vec::new();
        for account in self.store.pending_accounts().await? {
            let claim = self
                .store
                .claim_poll_account(account.kind, &account.account, self.poll_lease)
                .await?;
            if matches!(claim, PollClaim::Mine { .. }) {
                mine.push(account);
            }
        }
        Ok(mine)
    }

    /// Move a decided file and record it; the file is put back if the
    /// record fails. `false` when the file was gone already.
    pub async fn move_and_record(&self, m: &FileMove) -> Result<bool> {
        if !m.move_file()? {
            return Ok(false);
        }
        if let Err(e) = self.store.record_move(m.id, &m.to_rel, &m.reason).await {
            m.put_back();
            return Err(e.into());
        }
        Ok(true)
    }

    /// Give up the leases of rows claimed but not started (at a stop).
    pub async fn release_unstarted(&self) -> Result<()> {
        let ids: Vec<i64> = match self.floors.lock() {
            Ok(floors) => floors.keys().copied().collect(),
            Err(_) => Vec::new(),
        };
        self.store.release(&ids).await?;
        Ok(())
    }
}
