//! The decision hooks' outbox: one `hook_outbox` row per decision event and
//! configured hook, written in the transaction of the state change that causes
//! it, delivered by the notify stage (`engine::notify`).
//!
//! Invariant: an event is committed with the state change that causes it. The
//! rows are written by a trigger on `events` ([`Store::enable_outbox`]): every
//! state change writes its `events` row in its own transaction (the store's one
//! transition rule), so every path that decides a file (the poller, the
//! uploader, the intake, a retry) writes its outbox rows too, and a crash
//! between the decision and the delivery loses nothing. The trigger is a
//! `TEMP` one, on this connection only, created when hooks are configured: no
//! hooks, no rows.

use rusqlite::{params, OptionalExtension, Row};

use super::{execute_cached, get_row, insert_event, sql, text_err, Store};
use crate::error::{Error, Result};
pub use crate::model::HookKind;
use crate::model::{State, TargetKey, DECISION_STATES};

/// The trigger's name (in the `temp` schema).
const TRIGGER: &str = "docsync_hook_outbox";

/// One undelivered event for one hook, with what the event says about its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The outbox row.
    pub id: i64,
    /// The event's id for receivers: the same for every hook and every attempt.
    pub uid: String,
    pub hook: HookKind,
    /// Deliveries tried so far.
    pub attempts: u32,
    /// The `events` row.
    pub event_id: i64,
    /// When the state changed (unix milliseconds).
    pub at: i64,
    pub from_state: Option<State>,
    pub state: State,
    /// The event's reason (why, in words).
    pub reason: String,
    pub request_id: Option<String>,
    pub file_id: i64,
    pub folder: String,
    /// Path relative to the folder root, raw bytes.
    pub path: Vec<u8>,
    pub target: TargetKey,
    /// The row's remote id when the event was written.
    pub remote_id: Option<String>,
    /// The server's reason (a rejection's), when the event was written.
    pub decision_reason: Option<String>,
}

/// What [`Store::outbox_failed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxFailure {
    /// Tried again at this time (unix milliseconds).
    RetryAt(i64),
    /// No more tries: recorded as given up (and in the file's history).
    GaveUp,
    /// Nothing recorded: another daemon delivered it meanwhile (PostgreSQL,
    /// after this daemon's claim on it expired).
    DeliveredElsewhere,
}

const ENTRY_COLUMNS: &str = "o.id, o.uid, o.hook, o.attempts, e.id, e.at, e.from_state, \
     e.to_state, e.reason, e.request_id, f.id, f.folder, f.path, f.target, f.account, \
     f.purpose, o.remote_id, o.decision_reason";

fn read_entry(row: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    let hook: String = row.get(2)?;
    let attempts: i64 = row.get(3)?;
    let from: Option<String> = row.get(6)?;
    let to: String = row.get(7)?;
    let kind: String = row.get(13)?;
    Ok(OutboxEntry {
        id: row.get(0)?,
        uid: row.get(1)?,
        hook: hook.parse().map_err(|e| text_err(2, e))?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        event_id: row.get(4)?,
        at: row.get(5)?,
        from_state: from
            .map(|s| s.parse())
            .transpose()
            .map_err(|e| text_err(6, e))?,
        state: to.parse().map_err(|e| text_err(7, e))?,
        reason: row.get(8)?,
        request_id: row.get(9)?,
        file_id: row.get(10)?,
        folder: row.get(11)?,
        path: row.get(12)?,
        target: TargetKey {
            kind: kind.parse().map_err(|e| text_err(13, e))?,
            account: row.get(14)?,
            purpose: row.get(15)?,
        },
        remote_id: row.get(16)?,
        decision_reason: row.get(17)?,
    })
}

/// The `IN (...)` list of `hooks` (our own constants, never outside text).
fn hook_list(hooks: &[HookKind]) -> String {
    hooks
        .iter()
        .map(|h| format!("'{}'", h.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The trigger writing one outbox row per hook in `hooks` for every event that
/// enters a decision state. The rows share one random `uid`.
fn trigger_sql(hooks: &[HookKind]) -> String {
    let states = DECISION_STATES
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut body = String::new();
    for (n, hook) in hooks.iter().enumerate() {
        let hook = hook.as_str();
        if n == 0 {
            body.push_str(&format!(
                "INSERT INTO hook_outbox (uid, event_id, hook, remote_id, decision_reason, \
                 next_attempt_at) SELECT lower(hex(randomblob(16))), NEW.id, '{hook}', \
                 f.remote_id, f.decision_reason, NEW.at FROM files f WHERE f.id = NEW.file_id;\n"
            ));
        } else {
            let first = hooks[0].as_str();
            body.push_str(&format!(
                "INSERT INTO hook_outbox (uid, event_id, hook, remote_id, decision_reason, \
                 next_attempt_at) SELECT o.uid, NEW.id, '{hook}', o.remote_id, \
                 o.decision_reason, NEW.at FROM hook_outbox o \
                 WHERE o.event_id = NEW.id AND o.hook = '{first}';\n"
            ));
        }
    }
    format!(
        "CREATE TEMP TRIGGER {TRIGGER} AFTER INSERT ON main.events \
         WHEN NEW.to_state IN ({states}) AND NEW.from_state IS NOT NEW.to_state \
         BEGIN\n{body}END"
    )
}

impl Store {
    /// From now on, every event that enters a decision state (approved,
    /// rejected, invalid, failed) writes one outbox row per hook in `hooks`, in
    /// its own transaction. Without hooks (an empty `hooks`), no rows are written.
    pub fn enable_outbox(&mut self, hooks: &[HookKind]) -> Result<()> {
        let mut hooks = hooks.to_vec();
        hooks.sort();
        hooks.dedup();
        let mut sql_text = format!("DROP TRIGGER IF EXISTS temp.{TRIGGER};");
        if !hooks.is_empty() {
            sql_text.push_str(&trigger_sql(&hooks));
        }
        self.conn
            .execute_batch(&sql_text)
            .map_err(self.db("enabling the hooks' outbox"))
    }

    /// The undelivered entries of `hooks` due at `now` (unix ms), oldest first.
    pub fn outbox_due(&self, hooks: &[HookKind], now: i64, limit: u32) -> Result<Vec<OutboxEntry>> {
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let what = "reading the hooks' outbox";
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM hook_outbox o INDEXED BY hook_outbox_due \
                 JOIN events e ON e.id = o.event_id JOIN files f ON f.id = e.file_id \
                 WHERE o.delivered_at IS NULL AND o.given_up_at IS NULL \
                 AND o.next_attempt_at <= ?1 AND o.hook IN ({}) \
                 ORDER BY o.next_attempt_at, o.id LIMIT ?2",
                hook_list(hooks)
            ))
            .map_err(self.db(what))?;
        let rows = stmt
            .query_map(params![now, limit], read_entry)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.db(what))?;
        Ok(rows)
    }

    /// When the next undelivered entry of `hooks` is due (unix ms), if any.
    pub fn outbox_next_due(&self, hooks: &[HookKind]) -> Result<Option<i64>> {
        if hooks.is_empty() {
            return Ok(None);
        }
        self.conn
            .query_row(
                &format!(
                    "SELECT MIN(next_attempt_at) FROM hook_outbox INDEXED BY hook_outbox_due \
                     WHERE delivered_at IS NULL AND given_up_at IS NULL AND hook IN ({})",
                    hook_list(hooks)
                ),
                [],
                |r| r.get(0),
            )
            .map_err(self.db("reading the hooks' outbox"))
    }

    /// How many entries are undelivered (neither delivered nor given up), for
    /// every hook, configured or not.
    pub fn outbox_undelivered(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM hook_outbox INDEXED BY hook_outbox_due \
                 WHERE delivered_at IS NULL AND given_up_at IS NULL",
                [],
                |r| r.get(0),
            )
            .map_err(self.db("counting the hooks' outbox"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Every undelivered entry is due at `now`: a restart tries each again at
    /// once, whatever its backoff said. Returns how many.
    pub fn outbox_due_now(&mut self, now: i64) -> Result<u64> {
        let n = self
            .conn
            .execute(
                "UPDATE hook_outbox SET next_attempt_at = ?1 \
                 WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_attempt_at > ?1",
                [now],
            )
            .map_err(self.db("rescheduling the hooks' outbox"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Entry `id` was delivered (at `now`, unix ms; one more attempt).
    pub fn outbox_delivered(&mut self, id: i64, now: i64) -> Result<()> {
        execute_cached(
            &self.conn,
            "UPDATE hook_outbox SET delivered_at = ?2, attempts = attempts + 1, \
             last_error = NULL WHERE id = ?1",
            params![id, now],
        )
        .map_err(self.db("recording a delivered hook event"))?;
        Ok(())
    }

    /// Delivering entry `id` failed with `error` (one more attempt). With
    /// `retry_at` (unix ms) it is tried again then; without, it is given up:
    /// marked so, and an event on its file (same state, so `history` shows it)
    /// says which hook gave up on what and why.
    pub fn outbox_failed(
        &mut self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<OutboxFailure> {
        let path = self.path.clone();
        let db = |what| sql(&path, what);
        let tx = self.tx()?;
        let found: Option<(String, i64, i64)> = tx
            .query_row(
                "SELECT o.hook, o.attempts + 1, e.file_id FROM hook_outbox o \
                 JOIN events e ON e.id = o.event_id WHERE o.id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db("reading a hook event"))?;
        let Some((hook, attempts, file_id)) = found else {
            return Err(Error::NoSuchHookEvent { id });
        };
        let outcome = match retry_at {
            Some(at) => {
                execute_cached(
                    &tx,
                    "UPDATE hook_outbox SET attempts = attempts + 1, last_error = ?2, \
                     next_attempt_at = ?3 WHERE id = ?1",
                    params![id, error, at],
                )
                .map_err(db("recording a failed hook delivery"))?;
                OutboxFailure::RetryAt(at)
            }
            None => {
                execute_cached(
                    &tx,
                    "UPDATE hook_outbox SET attempts = attempts + 1, last_error = ?2, \
                     given_up_at = ?3 WHERE id = ?1",
                    params![id, error, now],
                )
                .map_err(db("recording a hook given up"))?;
                if let Some(file) = get_row(&tx, file_id).map_err(db("reading a file"))? {
                    let reason = format!(
                        "the {hook} hook gave up on this event after {attempts} attempts: {error}"
                    );
                    insert_event(
                        &tx,
                        file_id,
                        now,
                        Some(file.state),
                        file.state,
                        &reason,
                        None,
                    )
                    .map_err(db("recording a hook given up"))?;
                }
                OutboxFailure::GaveUp
            }
        };
        tx.commit()
            .map_err(db("committing a failed hook delivery"))?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
