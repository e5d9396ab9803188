//! What the intake asks of the store, as a trait: the daemon's
//! [`StateStore`] answers it (the intake's writes commit relaxed, see
//! [`crate::store::StateStore`]); the intake's tests answer it with a bare
//! `Store` of their own.

use std::future::Future;

use crate::error::Result;
use crate::store::{FileRow, Observed, Promotion, ScanRecorded, ScanVerdict, SeenIds, StateStore};

/// The store as the intake sees it.
pub trait IntakeStore {
    /// Record a scan (or hints) of `folder` and apply each file's verdict,
    /// atomically.
    fn reconcile(
        &mut self,
        folder: String,
        observed: Vec<Observed>,
        complete: bool,
        verdicts: Vec<ScanVerdict>,
    ) -> impl Future<Output = Result<ScanRecorded>> + Send;

    /// The end of a complete scan recorded in parts: the live rows of
    /// `folder` whose id is not in `seen` `deleted`; their ids.
    fn sweep_vanished(
        &mut self,
        folder: String,
        seen: SeenIds,
    ) -> impl Future<Output = Result<Vec<i64>>> + Send;

    /// Each file that held still `discovered` → `stable` if its row still has
    /// that size and mtime (each on its own); the rows promoted.
    fn promote_stable(
        &mut self,
        promotions: Vec<Promotion>,
    ) -> impl Future<Output = Result<Vec<FileRow>>> + Send;

    /// A file gone from disk: its live row `deleted`; `true` when the path
    /// had no live row at all.
    fn mark_gone(
        &mut self,
        folder: String,
        path: Vec<u8>,
        reason: &'static str,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The rows in `discovered`.
    fn discovered(&mut self) -> impl Future<Output = Result<Vec<FileRow>>> + Send;
}

impl IntakeStore for StateStore {
    async fn reconcile(
        &mut self,
        folder: String,
        observed: Vec<Observed>,
        complete: bool,
        verdicts: Vec<ScanVerdict>,
    ) -> Result<ScanRecorded> {
        StateStore::reconcile(self, folder, observed, complete, verdicts).await
    }

    async fn sweep_vanished(&mut self, folder: String, seen: SeenIds) -> Result<Vec<i64>> {
        StateStore::sweep_vanished(self, folder, seen).await
    }

    async fn promote_stable(&mut self, promotions: Vec<Promotion>) -> Result<Vec<FileRow>> {
        StateStore::promote_stable(self, promotions).await
    }

    async fn mark_gone(
        &mut self,
        folder: String,
        path: Vec<u8>,
        reason: &'static str,
    ) -> Result<bool> {
        StateStore::mark_gone(self, folder, path, reason).await
    }

    async fn discovered(&mut self) -> Result<Vec<FileRow>> {
        StateStore::discovered(self).await
    }
}
