//! Read-only queries: `docsync status` and `history`, the status page and the
//! metrics (`docsync run --admin`), and the benchmark, which polls the counts while
//! the daemon runs.
//!
//! The status page's queries and the counts are bounded: counts come from the
//! `(folder, state, id)`, `(state, id)` and `events_at` indexes, lists are keyset
//! pages (`id > after ... LIMIT n`), activity reads only the events of the last
//! window through `events_at`. None of them loads every row, so the page stays
//! quick with 100,000 files.

use std::collections::BTreeMap;

use rusqlite::{params, Row};

use super::{query_row_cached, text_err, Event, FileRow, State, Store, FILE_COLUMNS};
use crate::error::Result;

/// One folder's rows by state (states without rows are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderCounts {
    pub folder: String,
    pub counts: BTreeMap<State, u64>,
}

/// How many transitions one folder's files made in one time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityBucket {
    /// Index of the bucket, 0 = the oldest in the window.
    pub bucket: u32,
    pub events: u64,
}

/// A keyset page of rows: what to show and where the next page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub rows: Vec<FileRow>,
    /// The `after` of the next page; `None` on the last page.
    pub next_after: Option<i64>,
}

impl Page {
    /// The first `limit` of `rows` (read in id order, one more than `limit`
    /// when there are more), and where the next page starts.
    pub(super) fn cut(mut rows: Vec<FileRow>, limit: u32) -> Page {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_after = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Page { rows, next_after }
    }
}

/// A row with its events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub file: FileRow,
    pub events: Vec<Event>,
}

impl Store {
    /// Rows per folder and state, folders in name order.
    pub fn counts_by_folder(&self) -> Result<Vec<FolderCounts>> {
        let what = "counting states per folder";
        let mut stmt = self
            .conn
            .prepare_cached(COUNTS_BY_FOLDER)
            .map_err(self.db(what))?;
        let triples = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(self.db(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db(what))?;
        Ok(folder_counts(triples))
    }

    /// Transitions per folder in `buckets` equal buckets of `bucket_ms` ending at
    /// `now_ms` (the oldest bucket first; buckets without events are absent).
    pub fn activity(
        &self,
        now_ms: i64,
        bucket_ms: i64,
        buckets: u32,
    ) -> Result<BTreeMap<String, Vec<ActivityBucket>>> {
        let what = "reading recent activity";
        let bucket_ms = bucket_ms.max(1);
        let since = now_ms - bucket_ms * i64::from(buckets);
        let mut stmt = self.conn.prepare_cached(ACTIVITY).map_err(self.db(what))?;
        let triples = stmt
            .query_map(params![since, bucket_ms, now_ms], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(self.db(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db(what))?;
        Ok(activity_buckets(triples))
    }

    /// One keyset page of the rows in any of `states` (optionally of one folder),
    /// by id, starting after `after`. One indexed range query per state.
    pub fn page_in_states(
        &self,
        states: &[State],
        folder: Option<&str>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Page> {
        let after = after.unwrap_or(0);
        let take = limit.saturating_add(1);
        let mut rows = Vec::new();
        for state in states {
            let mut page = match folder {
                Some(folder) => self.query_rows(
                    &page_sql(true),
                    params![folder, state.as_str(), after, take],
                    "listing a page of files",
                )?,
                None => self.query_rows(
                    &page_sql(false),
                    params![state.as_str(), after, take],
                    "listing a page of files",
                )?,
            };
            rows.append(&mut page);
        }
        rows.sort_by_key(|r| r.id);
        Ok(Page::cut(rows, limit))
    }

    /// Number of rows in each state (states without rows are absent).
    pub fn counts_by_state(&self) -> Result<BTreeMap<State, u64>> {
        let mut stmt = self
            .conn
            .prepare_cached(COUNTS_BY_STATE)
            .map_err(self.db("counting states"))?;
        let pairs = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.db("counting states"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db("counting states"))?;
        let mut counts = BTreeMap::new();
        for (state, n) in pairs {
            if let Ok(state) = state.parse::<State>() {
                counts.insert(state, u64::try_from(n).unwrap_or(0));
            }
        }
        Ok(counts)
    }

    /// Rows in `state`: one count through the `(state, id)` index, cheap enough to
    /// poll while the daemon writes.
    pub fn count_in_state(&self, state: State) -> Result<u64> {
        let n: i64 = query_row_cached(&self.conn, COUNT_IN_STATE, [state.as_str()], |r| r.get(0))
            .map_err(self.db("counting the rows in a state"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Transitions recorded at or after `since_ms` (unix ms), counting only those
    /// into `to` when given (a row's creation counts as a transition into its first
    /// state). One count through the `events_at` index.
    pub fn count_events_since(&self, since_ms: i64, to: Option<State>) -> Result<u64> {
        let n: i64 = query_row_cached(
            &self.conn,
            COUNT_EVENTS_SINCE,
            params![since_ms, to.map(State::as_str)],
            |r| r.get(0),
        )
        .map_err(self.db("counting recent events"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Every row ever recorded for `path` (any folder unless given), with its events.
    pub fn history(&self, folder: Option<&str>, path: &[u8]) -> Result<Vec<History>> {
        let rows = match folder {
            Some(folder) => self.query_rows(
                &format!(
                    "SELECT {FILE_COLUMNS} FROM files WHERE folder = ?1 AND path = ?2 ORDER BY id"
                ),
                params![folder, path],
                "reading history",
            )?,
            None => self.query_rows(
                &format!("SELECT {FILE_COLUMNS} FROM files WHERE path = ?1 ORDER BY id"),
                params![path],
                "reading history",
            )?,
        };
        let mut out = Vec::with_capacity(rows.len());
        for file in rows {
            let events = self.events(file.id)?;
            out.push(History { file, events });
        }
        Ok(out)
    }

    /// The events of one row, oldest first.
    pub fn events(&self, file_id: i64) -> Result<Vec<Event>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, file_id, at, from_state, to_state, reason, request_id \
                 FROM events WHERE file_id = ?1 ORDER BY id",
            )
            .map_err(self.db("reading events"))?;
        let events = stmt
            .query_map([file_id], read_event)
            .map_err(self.db("reading events"))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db("reading events"))?;
        Ok(events)
    }

    /// Whether the database takes writes now: rewrites the schema version in a
    /// transaction that is rolled back (nothing changes). For the readiness check.
    pub fn check_writable(&mut self) -> Result<()> {
        let path = self.path.clone();
        let db = |source| crate::error::Error::Db {
            path: path.clone(),
            what: "writing (readiness check)",
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(db)?;
        tx.rollback().map_err(db)
    }
}

/// `(folder, state, count)` rows, ordered by folder, as [`FolderCounts`]
/// (either backend's query).
pub(super) fn folder_counts(triples: Vec<(String, String, i64)>) -> Vec<FolderCounts> {
    let mut out: Vec<FolderCounts> = Vec::new();
    for (folder, state, n) in triples {
        let Ok(state) = state.parse::<State>() else {
            continue;
        };
        if out.last().map(|f| &f.folder) != Some(&folder) {
            out.push(FolderCounts {
                folder: folder.clone(),
                counts: BTreeMap::new(),
            });
        }
        if let Some(last) = out.last_mut() {
            last.counts.insert(state, u64::try_from(n).unwrap_or(0));
        }
    }
    out
}

/// `(folder, bucket, count)` rows as each folder's [`ActivityBucket`]s
/// (either backend's query).
pub(super) fn activity_buckets(
    triples: Vec<(String, i64, i64)>,
) -> BTreeMap<String, Vec<ActivityBucket>> {
    let mut out: BTreeMap<String, Vec<ActivityBucket>> = BTreeMap::new();
    for (folder, bucket, n) in triples {
        let (Ok(bucket), Ok(events)) = (u32::try_from(bucket), u64::try_from(n)) else {
            continue;
        };
        out.entry(folder)
            .or_default()
            .push(ActivityBucket { bucket, events });
    }
    out
}

const COUNTS_BY_STATE: &str = "SELECT state, COUNT(*) FROM files GROUP BY state";

const COUNT_IN_STATE: &str = "SELECT COUNT(*) FROM files WHERE state = ?1";

const COUNT_EVENTS_SINCE: &str =
    "SELECT COUNT(*) FROM events WHERE at >= ?1 AND (?2 IS NULL OR to_state = ?2)";

const COUNTS_BY_FOLDER: &str = "SELECT folder, state, COUNT(*) FROM files GROUP BY folder, state";

const ACTIVITY: &str = "SELECT f.folder, (e.at - ?1) / ?2 AS bucket, COUNT(*) \
     FROM events e JOIN files f ON f.id = e.file_id \
     WHERE e.at >= ?1 AND e.at < ?3 GROUP BY f.folder, bucket";

/// A keyset page of one state, of one folder (`?1` folder, `?2` state, `?3` after,
/// `?4` limit) or of all (`?1` state, `?2` after, `?3` limit).
fn page_sql(of_folder: bool) -> String {
    if of_folder {
        format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE folder = ?1 AND state = ?2 \
             AND id > ?3 ORDER BY id LIMIT ?4"
        )
    } else {
        format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE state = ?1 AND id > ?2 \
             ORDER BY id LIMIT ?3"
        )
    }
}

fn read_event(row: &Row<'_>) -> rusqlite::Result<Event> {
    let from: Option<String> = row.get(3)?;
    let to: String = row.get(4)?;
    Ok(Event {
        id: row.get(0)?,
        file_id: row.get(1)?,
        at: row.get(2)?,
        from_state: from
            .map(|s| s.parse().map_err(|e| text_err(3, e)))
            .transpose()?,
        to_state: to.parse().map_err(|e| text_err(4, e))?,
        reason: row.get(5)?,
        request_id: row.get(6)?,
        instance: None,
    })
}

/// The bounded queries of this module, for the test that checks each one reads
/// through an index.
#[cfg(test)]
pub(super) fn queries() -> Vec<String> {
    vec![
        COUNTS_BY_FOLDER.to_owned(),
        ACTIVITY.to_owned(),
        page_sql(true),
        page_sql(false),
        COUNTS_BY_STATE.to_owned(),
        COUNT_IN_STATE.to_owned(),
        COUNT_EVENTS_SINCE.to_owned(),
    ]
}

#[cfg(test)]
impl Store {
    /// `EXPLAIN QUERY PLAN` details of `sql` (parameters bound to NULL).
    pub(super) fn query_plan(&self, sql: &str) -> Vec<String> {
        let mut stmt = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    }
}
