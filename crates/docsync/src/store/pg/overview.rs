//! What people read from the shared state: `docsync status`, `history` and
//! `retry`, and the status page (`--admin`). The same answers as SQLite's
//! `overview` and `composite` give, plus what only a shared state has: which
//! host holds which row ([`Holder`](crate::store::Holder)) and which one made each change
//! ([`crate::store::Event::instance`]).
//!
//! Lists are bounded as SQLite's are (a limit, or a keyset page through the
//! `(state, id)` and `(folder, state, id)` indexes); activity reads only the
//! events of its window through `events_at`.

use std::collections::{BTreeMap, HashMap};

use super::super::composite::recorded_reason;
use super::super::overview;
use super::super::upload::ON_SERVER;
use super::rows;
use super::{PgResult, PgStore};
use crate::model::State;
use crate::store::{
    ActivityBucket, Attempts, Change, Event, FileDetail, FileRow, FolderCounts, History, Holder,
    ListFilter, Page, RetryOne, StateCopy,
};

const EVENT_COLUMNS: &str = "id, file_id, at, from_state, to_state, reason, request_id, instance";

impl PgStore {
    /// Rows for `docsync status`, ordered by folder and path (as SQLite's
    /// [`crate::store::Store::list`]).
    pub async fn list(&self, filter: &ListFilter) -> PgResult<Vec<FileRow>> {
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        let limit = i64::from(filter.limit);
        let offset = i64::from(filter.offset);
        let history = filter.include_history || !states.is_empty();
        self.rows_where(
            "listing files",
            "(cardinality($1::text[]) = 0 OR state = ANY($1)) \
             AND ($2 OR state NOT IN ('superseded', 'deleted')) \
             AND ($3::text IS NULL OR folder = $3) \
             ORDER BY folder, path, id LIMIT $4 OFFSET $5",
            &[&states, &history, &filter.folder, &limit, &offset],
        )
        .await
    }

    /// The lease holders of the rows `ids` that have one (expired or not).
    pub async fn holders(&self, ids: &[i64]) -> PgResult<HashMap<i64, Holder>> {
        let what = "reading who holds which file";
        let client = self.client(what).await?;
        let found = client
            .query(
                "SELECT f.id, f.lease_owner, i.hostname, i.pid, \
                 (extract(epoch FROM f.lease_expires_at) * 1000)::bigint, \
                 f.lease_expires_at <= now() \
                 FROM files f JOIN instances i ON i.id = f.lease_owner \
                 WHERE f.id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(self.db(what))?;
        let mut out = HashMap::with_capacity(found.len());
        for r in found {
            let id: i64 = r.try_get(0).map_err(self.db(what))?;
            out.insert(
                id,
                Holder {
                    instance: r.try_get(1).map_err(self.db(what))?,
                    hostname: r.try_get(2).map_err(self.db(what))?,
                    pid: r.try_get(3).map_err(self.db(what))?,
                    until_ms: r.try_get(4).map_err(self.db(what))?,
                    expired: r.try_get(5).map_err(self.db(what))?,
                },
            );
        }
        Ok(out)
    }

    /// Every row ever recorded for `path` (any folder unless given), with its
    /// events.
    pub async fn history(&self, folder: Option<&str>, path: &[u8]) -> PgResult<Vec<History>> {
        let rows = self
            .rows_where(
                "reading history",
                "path = $1 AND ($2::text IS NULL OR folder = $2) ORDER BY id",
                &[&path, &folder],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for file in rows {
            let events = self.events(file.id).await?;
            out.push(History { file, events });
        }
        Ok(out)
    }

    /// The events of row `id`, oldest first, each with the instance that
    /// made it.
    pub async fn events(&self, file_id: i64) -> PgResult<Vec<Event>> {
        let what = "reading events";
        let client = self.client(what).await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE file_id = $1 ORDER BY id"
            ))
            .await
            .map_err(self.db(what))?;
        let found = client
            .query(&stmt, &[&file_id])
            .await
            .map_err(self.db(what))?;
        found.iter().map(|r| self.read_event(r)).collect()
    }

    fn read_event(&self, r: &tokio_postgres::Row) -> PgResult<Event> {
        let what = "reading events";
        let id: i64 = r.try_get(0).map_err(self.db(what))?;
        let state = |n: usize, text: Option<String>| -> PgResult<Option<State>> {
            text.map(|s| {
                s.parse().map_err(|message| super::PgError::BadRow {
                    target: self.target.clone(),
                    id,
                    message: format!("event column {n}: {message}"),
                })
            })
            .transpose()
        };
        let from: Option<String> = r.try_get(3).map_err(self.db(what))?;
        let to: String = r.try_get(4).map_err(self.db(what))?;
        Ok(Event {
            id,
            file_id: r.try_get(1).map_err(self.db(what))?,
            at: r.try_get(2).map_err(self.db(what))?,
            from_state: state(3, from)?,
            to_state: state(4, Some(to))?.unwrap_or(State::Discovered),
            reason: r.try_get(5).map_err(self.db(what))?,
            request_id: r.try_get(6).map_err(self.db(what))?,
            instance: r.try_get(7).map_err(self.db(what))?,
        })
    }

    /// Rows per folder and state, folders in name order.
    pub async fn counts_by_folder(&self) -> PgResult<Vec<FolderCounts>> {
        let triples = self
            .triples(
                "counting states per folder",
                "SELECT folder, state, COUNT(*) FROM files GROUP BY folder, state \
                 ORDER BY folder, state",
                &[],
            )
            .await?;
        Ok(overview::folder_counts(triples))
    }

    /// Per folder, when its longest-waiting `pending` row became pending.
    pub async fn oldest_pending_by_folder(&self) -> PgResult<BTreeMap<String, i64>> {
        let what = "finding the oldest pending file of each folder";
        let client = self.client(what).await?;
        let found = client
            .query(
                "SELECT folder, MIN(updated_at) FROM files WHERE state = 'pending' \
                 GROUP BY folder",
                &[],
            )
            .await
            .map_err(self.db(what))?;
        found
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(self.db(what))
    }

    /// Transitions per folder in `buckets` buckets of `bucket_ms` ending at
    /// `now_ms` (as SQLite's [`crate::store::Store::activity`]).
    pub async fn activity(
        &self,
        now_ms: i64,
        bucket_ms: i64,
        buckets: u32,
    ) -> PgResult<BTreeMap<String, Vec<ActivityBucket>>> {
        let bucket_ms = bucket_ms.max(1);
        let since = now_ms - bucket_ms * i64::from(buckets);
        let triples = self
            .triples(
                "reading recent activity",
                "SELECT f.folder, (e.at - $1) / $2 AS bucket, COUNT(*) \
                 FROM events e JOIN files f ON f.id = e.file_id \
                 WHERE e.at >= $1 AND e.at < $3 GROUP BY f.folder, bucket \
                 ORDER BY f.folder, bucket",
                &[&since, &bucket_ms, &now_ms],
            )
            .await?;
        Ok(overview::activity_buckets(triples))
    }

    /// The rows of a three-column `sql`, as tuples.
    async fn triples<A, B, C>(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> PgResult<Vec<(A, B, C)>>
    where
        A: for<'r> tokio_postgres::types::FromSql<'r>,
        B: for<'r> tokio_postgres::types::FromSql<'r>,
        C: for<'r> tokio_postgres::types::FromSql<'r>,
    {
        let client = self.client(what).await?;
        let found = client.query(sql, params).await.map_err(self.db(what))?;
        found
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(self.db(what))
    }

    /// A keyset page of the rows in any of `states` (of one folder when
    /// given), each with the reason to show, and the next page's `after`.
    pub async fn explained_page(
        &self,
        states: &[State],
        folder: Option<&str>,
        after: Option<i64>,
        limit: u32,
    ) -> PgResult<(Vec<(FileRow, String)>, Option<i64>)> {
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let after = after.unwrap_or(0);
        let take = i64::from(limit) + 1;
        let rows = self
            .rows_where(
                "listing a page of files",
                "state = ANY($1) AND ($2::text IS NULL OR folder = $2) AND id > $3 \
                 ORDER BY id LIMIT $4",
                &[&states, &folder, &after, &take],
            )
            .await?;
        let Page { rows, next_after } = Page::cut(rows, limit);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let reason = self.reason_shown(&row).await?;
            out.push((row, reason));
        }
        Ok((out, next_after))
    }

    /// Row `id`, its reason and its events; `None` without such a row.
    pub async fn file_detail(&self, id: i64) -> PgResult<Option<FileDetail>> {
        let Some(leased) = self.get(id).await? else {
            return Ok(None);
        };
        let events = self.events(id).await?;
        let reason = reason_from(&leased.row, &events);
        let holder = self.holders(&[id]).await?.remove(&id);
        Ok(Some(FileDetail {
            row: leased.row,
            reason,
            events,
            holder,
        }))
    }

    /// The reason to show for a row: the decision, the last error, or the
    /// reason of its last transition.
    pub async fn reason_shown(&self, row: &FileRow) -> PgResult<String> {
        if let Some(r) = recorded_reason(row) {
            return Ok(r);
        }
        Ok(reason_from(row, &self.events(row.id).await?))
    }

    /// `docsync retry` (as SQLite's [`crate::store::Store::retry`]): `failed`
    /// rows to `retrying` (due now, attempts reset), `invalid` rows back to
    /// `stable`, and, only when `path` names it, a `skipped` row to `stable`;
    /// one transaction. A row another daemon holds a live lease on is left
    /// alone. The ids moved.
    pub async fn retry(
        &self,
        folder: Option<&str>,
        path: Option<&[u8]>,
        reason: &str,
    ) -> PgResult<Vec<i64>> {
        let what = "retrying files";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let found = tx
            .query(
                "SELECT id FROM files \
                 WHERE (state IN ('failed', 'invalid') OR ($2::bytea IS NOT NULL AND state = 'skipped')) \
                 AND ($1::text IS NULL OR folder = $1) AND ($2::bytea IS NULL OR path = $2) \
                 ORDER BY id",
                &[&folder, &path],
            )
            .await
            .map_err(self.db(what))?;
        let now = rows::db_now_ms(&tx, &self.target).await?;
        let mut ids = Vec::with_capacity(found.len());
        for r in found {
            let id: i64 = r.try_get(0).map_err(self.db(what))?;
            let leased = rows::lock_row(&tx, &self.target, id).await?;
            let retryable = match leased.row.state {
                State::Failed | State::Invalid => true,
                State::Skipped => path.is_some(),
                _ => false,
            };
            if !retryable || rows::check_lease(&leased, &self.instance, false).is_err() {
                continue;
            }
            let change = match leased.row.state {
                State::Failed => Change {
                    attempts: Attempts::Reset,
                    next_attempt_at: Some(now),
                    ..Change::because(reason)
                },
                _ => Change::because(reason),
            };
            let to = if leased.row.state == State::Failed {
                State::Retrying
            } else {
                State::Stable
            };
            rows::apply(&tx, &self.target, &self.instance, &leased.row, to, &change).await?;
            ids.push(id);
        }
        tx.commit().await.map_err(self.db(what))?;
        Ok(ids)
    }

    /// A retry of the one row `id`, only if it is `failed` or `invalid`.
    pub async fn retry_one(&self, id: i64, reason: &str) -> PgResult<RetryOne> {
        let Some(leased) = self.get(id).await? else {
            return Ok(RetryOne::NoSuchFile);
        };
        let row = leased.row;
        if !matches!(row.state, State::Failed | State::Invalid) {
            return Ok(RetryOne::NotRetryable(row));
        }
        let ids = self
            .retry(Some(&row.folder), Some(&row.path), reason)
            .await?;
        Ok(RetryOne::Retried { row, ids })
    }
}

/// The reason to show for `row` given its `events`.
fn reason_from(row: &FileRow, events: &[Event]) -> String {
    recorded_reason(row)
        .or_else(|| events.last().map(|e| e.reason.clone()))
        .unwrap_or_default()
}

impl PgStore {
    /// What a dry run decides against ([`StateCopy`]): the live rows, the rows
    /// holding content on the server, each one's last event, and the API;
    /// read in one snapshot (`REPEATABLE READ`, read only), so daemons
    /// working meanwhile leave it consistent.
    pub async fn copy_for_dry_run(&self) -> PgResult<StateCopy> {
        let what = "copying the state for a dry run";
        let mut client = self.client(what).await?;
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(self.db(what))?;
        // the rows a pass's decisions read: the live ones, and those the
        // duplicate and quota checks count
        let wanted = format!("state NOT IN ('superseded', 'deleted') OR {ON_SERVER}");
        let found = tx
            .query(
                &format!(
                    "SELECT {} FROM files WHERE {wanted} ORDER BY id",
                    rows::columns("")
                ),
                &[],
            )
            .await
            .map_err(self.db(what))?;
        let rows = found
            .iter()
            .map(|r| rows::read(&self.target, r).map(|leased| leased.row))
            .collect::<PgResult<Vec<_>>>()?;
        let events = tx
            .query(
                &format!(
                    "SELECT DISTINCT ON (file_id) {EVENT_COLUMNS} FROM events \
                     WHERE file_id IN (SELECT id FROM files WHERE {wanted}) \
                     ORDER BY file_id, id DESC"
                ),
                &[],
            )
            .await
            .map_err(self.db(what))?;
        let last_events = events
            .iter()
            .map(|r| self.read_event(r))
            .collect::<PgResult<Vec<_>>>()?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(StateCopy {
            rows,
            last_events,
            api: self.api_identity().await?,
        })
    }
}
