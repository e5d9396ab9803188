//! The retry budget's clock: when a row's current run of upload attempts began.

use rusqlite::params;

use super::{query_row_cached, Store};
use crate::error::Result;

impl Store {
    /// When row `id`'s current run of attempts began (unix ms): its latest
    /// first attempt (`stable` → `uploading`) or `docsync retry` (`failed` →
    /// `retrying`), whichever came last; `None` if it made neither. Read from
    /// the events, through their per-file index.
    pub fn attempts_since(&self, id: i64) -> Result<Option<i64>> {
        query_row_cached(
            &self.conn,
            "SELECT MAX(at) FROM events WHERE file_id = ?1 \
             AND ((from_state = 'stable' AND to_state = 'uploading') \
                  OR (from_state = 'failed' AND to_state = 'retrying'))",
            params![id],
            |r| r.get::<_, Option<i64>>(0),
        )
        .map_err(self.db("reading when the attempts began"))
    }
}
