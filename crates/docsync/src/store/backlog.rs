//! What is left to do: the bytes still to upload (the progress bar of `sync`)
//! and, per folder, how long the oldest file has waited for a decision
//! (`docsync status`). Both read only the rows of the states they ask about,
//! through the `(state, id)` and `(folder, state, id)` indexes.

use std::collections::BTreeMap;

use super::{query_row_cached, State, Store};
use crate::error::Result;

/// The states whose bytes are still to be sent.
const TO_SEND: [State; 4] = [
    State::Discovered,
    State::Stable,
    State::Uploading,
    State::Retrying,
];

const BYTES_TO_SEND: &str = "SELECT COALESCE(SUM(size), 0) FROM files \
     WHERE state IN (?1, ?2, ?3, ?4)";

const OLDEST_PENDING: &str = "SELECT folder, MIN(updated_at) FROM files \
     WHERE state = ?1 GROUP BY folder";

impl Store {
    /// Bytes of the files waiting to be uploaded, being uploaded or retrying.
    pub fn bytes_to_send(&self) -> Result<u64> {
        let n: i64 = query_row_cached(&self.conn, BYTES_TO_SEND, TO_SEND.map(State::as_str), |r| {
            r.get(0)
        })
        .map_err(self.db("adding up the bytes to send"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Per folder, when its longest-waiting `pending` row became pending (Unix
    /// ms; a pending row changes only by leaving `pending`). Folders with no
    /// pending row are absent.
    pub fn oldest_pending_by_folder(&self) -> Result<BTreeMap<String, i64>> {
        let what = "finding the oldest pending file of each folder";
        let mut stmt = self
            .conn
            .prepare_cached(OLDEST_PENDING)
            .map_err(self.db(what))?;
        let pairs = stmt
            .query_map([State::Pending.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(self.db(what))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db(what))?;
        Ok(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;
    use crate::model::{TargetKey, TargetKind};
    use crate::store::{Observation, Observed};

    /// A row of `size` bytes in `folder`, put straight into `state` at `at`.
    fn row(store: &mut Store, folder: &str, path: &str, size: u64, state: State, at: i64) {
        let observed = Observed {
            path: path.as_bytes().to_vec(),
            size,
            mtime_ns: 1,
            target: TargetKey {
                kind: TargetKind::MoovFiles,
                account: "00000000-0000-4000-8000-00000000acc0".into(),
                purpose: "business_verification".into(),
            },
        };
        let rec = store.observe_batch(folder, &[observed], false).unwrap();
        let Observation::New { id } = rec.observations[0] else {
            panic!("{:?}", rec.observations[0]);
        };
        store
            .conn
            .execute(
                "UPDATE files SET state = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, state.as_str(), at],
            )
            .unwrap();
    }

    #[test]
    fn bytes_to_send_counts_only_what_is_not_sent_yet() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.bytes_to_send().unwrap(), 0);
        row(&mut store, "a", "1", 100, State::Discovered, 1);
        row(&mut store, "a", "2", 20, State::Stable, 1);
        row(&mut store, "a", "3", 3, State::Uploading, 1);
        row(&mut store, "b", "4", 4000, State::Retrying, 1);
        row(&mut store, "b", "5", 50_000, State::Pending, 1);
        row(&mut store, "b", "6", 600_000, State::Approved, 1);
        row(&mut store, "b", "7", 7_000_000, State::Failed, 1);
        assert_eq!(store.bytes_to_send().unwrap(), 4123);
    }

    #[test]
    fn oldest_pending_per_folder() {
        let mut store = Store::open_in_memory().unwrap();
        row(&mut store, "/a", "1", 1, State::Pending, 5_000);
        row(&mut store, "/a", "2", 1, State::Pending, 3_000);
        row(&mut store, "/a", "3", 1, State::Approved, 1_000);
        row(&mut store, "/b", "4", 1, State::Pending, 9_000);
        row(&mut store, "/c", "5", 1, State::Stable, 1_000);
        let oldest = store.oldest_pending_by_folder().unwrap();
        let expected: BTreeMap<String, i64> = [("/a".to_owned(), 3_000), ("/b".to_owned(), 9_000)]
            .into_iter()
            .collect();
        assert_eq!(oldest, expected);
    }

    #[test]
    fn both_read_through_indexes() {
        let store = Store::open_in_memory().unwrap();
        for sql in [BYTES_TO_SEND, OLDEST_PENDING] {
            let plan = store.query_plan(sql);
            assert!(
                plan.iter()
                    .all(|step| !step.starts_with("SCAN") || step.contains("INDEX")),
                "{sql}\nreads a whole table: {plan:?}"
            );
        }
    }
}
