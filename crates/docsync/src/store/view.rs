//! [`StateView`]: the state as the commands people run see it (`docsync
//! status`, `history`, `retry`), whichever database holds it. Not the
//! daemon's store ([`super::StateStore`]): no leases are taken, nothing is
//! migrated, and the one write (`retry`) is a short transaction next to the
//! running daemons.
//!
//! On SQLite the calls run on the caller's thread (a command does one thing
//! at a time); on PostgreSQL they also say which daemon holds which row
//! ([`StateView::holders`]) and which one made each change
//! ([`super::Event::instance`]).

use std::collections::{BTreeMap, HashMap};

use super::pg::PgStore;
use super::{ApiIdentity, Event, FileRow, FolderCounts, History, Holder, ListFilter, Store};
use crate::error::Result;

/// The state, opened for a command.
#[derive(Debug)]
pub enum StateView {
    /// One host's SQLite database (read-only, or writable for `retry`).
    Sqlite(Box<Store>),
    /// The PostgreSQL state several daemons share.
    Postgres(Box<PgStore>),
}

impl StateView {
    /// The PostgreSQL state at `url`, as `who` (what a `retry` records as
    /// the instance that made the change); `None` when no daemon has used
    /// that database yet.
    pub async fn postgres(url: &str, who: &str) -> Result<Option<StateView>> {
        Ok(PgStore::connect_viewer(url, who)
            .await?
            .map(|pg| StateView::Postgres(Box::new(pg))))
    }

    /// Whether several daemons share this state (rows have holders).
    pub fn is_shared(&self) -> bool {
        matches!(self, StateView::Postgres(_))
    }

    /// The API the rows were synced against, if recorded.
    pub async fn api_identity(&self) -> Result<Option<ApiIdentity>> {
        match self {
            StateView::Sqlite(s) => s.api_identity(),
            StateView::Postgres(pg) => Ok(pg.api_identity().await?),
        }
    }

    /// Rows for `status`, ordered by folder and path.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<FileRow>> {
        match self {
            StateView::Sqlite(s) => s.list(filter),
            StateView::Postgres(pg) => Ok(pg.list(filter).await?),
        }
    }

    /// The events of row `id`, oldest first.
    pub async fn events(&self, id: i64) -> Result<Vec<Event>> {
        match self {
            StateView::Sqlite(s) => s.events(id),
            StateView::Postgres(pg) => Ok(pg.events(id).await?),
        }
    }

    /// Every row ever recorded for `path` (any folder unless given), with
    /// its events.
    pub async fn history(&self, folder: Option<&str>, path: &[u8]) -> Result<Vec<History>> {
        match self {
            StateView::Sqlite(s) => s.history(folder, path),
            StateView::Postgres(pg) => Ok(pg.history(folder, path).await?),
        }
    }

    /// Rows per folder and state, folders in name order.
    pub async fn counts_by_folder(&self) -> Result<Vec<FolderCounts>> {
        match self {
            StateView::Sqlite(s) => s.counts_by_folder(),
            StateView::Postgres(pg) => Ok(pg.counts_by_folder().await?),
        }
    }

    /// Per folder, when its longest-waiting `pending` row became pending.
    pub async fn oldest_pending_by_folder(&self) -> Result<BTreeMap<String, i64>> {
        match self {
            StateView::Sqlite(s) => s.oldest_pending_by_folder(),
            StateView::Postgres(pg) => Ok(pg.oldest_pending_by_folder().await?),
        }
    }

    /// Who holds the rows `ids` (those with a lease); always empty on
    /// SQLite, where one daemon holds everything.
    pub async fn holders(&self, ids: &[i64]) -> Result<HashMap<i64, Holder>> {
        match self {
            StateView::Sqlite(_) => Ok(HashMap::new()),
            StateView::Postgres(pg) => Ok(pg.holders(ids).await?),
        }
    }

    /// `docsync retry` ([`Store::retry`]): the ids moved back to the queue.
    /// On PostgreSQL the command is recorded as an instance first, so the
    /// events say who retried.
    pub async fn retry(
        &mut self,
        folder: Option<&str>,
        path: Option<&[u8]>,
        reason: &str,
    ) -> Result<Vec<i64>> {
        match self {
            StateView::Sqlite(s) => s.retry(folder, path, reason),
            StateView::Postgres(pg) => {
                pg.register().await?;
                Ok(pg.retry(folder, path, reason).await?)
            }
        }
    }
}
