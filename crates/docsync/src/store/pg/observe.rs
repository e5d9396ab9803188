//! Recording what a folder scan saw, shared by every host watching the folder:
//! a path with no live row gets a `discovered` one (the live-path unique index
//! decides between two hosts inserting the same path at once).
//!
//! Only new paths for now: a changed or vanished file (SQLite's
//! `Store::observe_batch` reconciliation) is step 2's port.

use super::super::{Observation, Observed};
use super::rows::{self, columns, Event};
use super::{PgResult, PgStore};
use crate::model::State;

impl PgStore {
    /// Record `observed` files of `folder` in one transaction: a new
    /// `discovered` row (with its event) for each path without a live row;
    /// [`Observation::Unchanged`] for a live row with the same size and mtime;
    /// [`Observation::Busy`] (left alone, seen again later) for one that
    /// changed, until the reconciliation is ported.
    pub async fn observe_batch(
        &self,
        folder: &str,
        observed: &[Observed],
    ) -> PgResult<Vec<Observation>> {
        let what = "recording a scan";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let now = rows::db_now_ms(&tx, &self.target).await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO files (folder, path, target, account, purpose, size, mtime_ns, \
                 state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'discovered', $8, $8) \
                 ON CONFLICT (folder, path) WHERE state NOT IN ('superseded', 'deleted') \
                 DO NOTHING RETURNING id",
            )
            .await
            .map_err(self.db(what))?;
        let live = tx
            .prepare_cached(&format!(
                "SELECT {} FROM files WHERE folder = $1 AND path = $2 \
                 AND state NOT IN ('superseded', 'deleted')",
                columns("")
            ))
            .await
            .map_err(self.db(what))?;
        let mut out = Vec::with_capacity(observed.len());
        for obs in observed {
            let size = i64::try_from(obs.size).unwrap_or(i64::MAX);
            let inserted = tx
                .query_opt(
                    &insert,
                    &[
                        &folder,
                        &obs.path,
                        &obs.target.kind.as_str(),
                        &obs.target.account,
                        &obs.target.purpose,
                        &size,
                        &obs.mtime_ns,
                        &now,
                    ],
                )
                .await
                .map_err(self.db(what))?;
            if let Some(r) = inserted {
                let id: i64 = r.try_get(0).map_err(self.db(what))?;
                let event = Event {
                    file_id: id,
                    at: now,
                    from: None,
                    to: State::Discovered,
                    reason: "seen on disk",
                    request_id: None,
                    instance: &self.instance,
                };
                rows::insert_event(&tx, &self.target, &event).await?;
                out.push(Observation::New { id });
                continue;
            }
            let r = tx
                .query_one(&live, &[&folder, &obs.path])
                .await
                .map_err(self.db(what))?;
            let row = rows::read(&self.target, &r)?.row;
            out.push(if row.size == obs.size && row.mtime_ns == obs.mtime_ns {
                Observation::Unchanged {
                    id: row.id,
                    state: row.state,
                }
            } else {
                Observation::Busy { id: row.id }
            });
        }
        tx.commit().await.map_err(self.db(what))?;
        Ok(out)
    }
}
