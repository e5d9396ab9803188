//! The notify stage: delivers the hooks' outbox (`[hooks]`).
//!
//! Every decision (approved, rejected, invalid, failed) writes its outbox rows in
//! the transaction of the state change itself (`store::outbox`); this stage
//! reads the due rows, delivers each to its hook ([`Hooks::deliver`]: the
//! command, the signed webhook) and records the outcome: delivered, tried again
//! after a backoff (`hooks.retry_initial`, doubling), or given up after
//! `hooks.max_attempts` (logged, and an event in the file's `history`). It never
//! blocks another stage: a hook that hangs or fails only delays other events.
//! On start, every undelivered row is due at once (a restart is a retry:
//! `Engine::run` reschedules them before any stage runs).
//!
//! Woken by `Wakeups::decided` (poll, upload), and at least every second (a
//! decision of the intake or a `retry` has no wake-up of its own).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

use super::ctx::Ctx;
use crate::error::Result;
use crate::hooks::{HookEvent, Hooks, EVENT_TYPE};
use crate::model::{now_ms, text, HookKind};
use crate::store::{OutboxEntry, OutboxFailure};

/// Rows read per round.
const BATCH: u32 = 100;

/// The longest sleep between two looks at the outbox.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub delivered: u32,
    /// Failed, to be tried again.
    pub retrying: u32,
    pub gave_up: u32,
}

/// Deliver until `stop`.
pub async fn run(ctx: Ctx, hooks: Arc<Hooks>, stop: CancellationToken) {
    let kinds = hooks.config().kinds();
    loop {
        if let Err(e) = deliver_due(&ctx, &hooks, &stop).await {
            warn!(error = %e, "reading the hooks' outbox failed; will try again");
        }
        let wanted = kinds.clone();
        let next = ctx.store.outbox_next_due(wanted).await.ok().flatten();
        let sleep = next.map_or(MAX_SLEEP, |at| {
            Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)).min(MAX_SLEEP)
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ctx.wake.decided.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Deliver every row due now, one at a time, until none is left or `stop`.
pub async fn deliver_due(ctx: &Ctx, hooks: &Hooks, stop: &CancellationToken) -> Result<Round> {
    let kinds = hooks.config().kinds();
    let mut round = Round::default();
    loop {
        let wanted = kinds.clone();
        let hold = hooks.config().longest_delivery();
        let due = ctx.store.outbox_due(wanted, now_ms(), BATCH, hold).await?;
        if due.is_empty() {
            return Ok(round);
        }
        for entry in due {
            if stop.is_cancelled() {
                return Ok(round);
            }
            // a stop drops a delivery under way: the row stays undelivered and
            // is tried again on the next start (at least once, never lost)
            tokio::select! {
                _ = stop.cancelled() => return Ok(round),
                done = deliver_one(ctx, hooks, entry, &mut round) => done?,
            }
        }
    }
}

async fn deliver_one(
    ctx: &Ctx,
    hooks: &Hooks,
    entry: OutboxEntry,
    round: &mut Round,
) -> Result<()> {
    let event = event_of(&entry);
    let span = tracing::info_span!(
        "hook",
        hook = %entry.hook,
        path = %event.path,
        state = %event.state,
        event = %entry.uid,
    );
    async {
        let id = entry.id;
        match hooks.deliver(entry.hook, &event).await {
            Ok(()) => {
                ctx.store.outbox_delivered(id, now_ms()).await?;
                debug!(attempt = event.attempt, "hook event delivered");
                round.delivered += 1;
            }
            Err(e) => {
                let config = hooks.config();
                let error = e.to_string();
                let attempts = event.attempt;
                let retry_at = (attempts < config.max_attempts).then(|| {
                    let wait = config.backoff(attempts).as_millis();
                    now_ms() + i64::try_from(wait).unwrap_or(i64::MAX / 2)
                });
                let message = error.clone();
                let outcome = ctx
                    .store
                    .outbox_failed(id, message, retry_at, now_ms())
                    .await?;
                match outcome {
                    OutboxFailure::RetryAt(_) => {
                        warn!(
                            attempt = attempts,
                            of = config.max_attempts,
                            error = %error,
                            "hook failed; will try again in {}",
                            humantime(config.backoff(attempts))
                        );
                        round.retrying += 1;
                    }
                    OutboxFailure::GaveUp => {
                        warn!(
                            attempts,
                            error = %error,
                            "hook gave up on this event (see `docsync history`)"
                        );
                        round.gave_up += 1;
                    }
                    OutboxFailure::DeliveredElsewhere => {
                        debug!(error = %error, "hook failed here; another daemon delivered this event meanwhile");
                    }
                }
            }
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// `500ms`, `5s`, `10m`, `1h`: a wait for a log line.
fn humantime(d: Duration) -> String {
    if d >= Duration::from_secs(3600) && d.as_secs().is_multiple_of(3600) {
        format!("{}h", d.as_secs() / 3600)
    } else if d >= Duration::from_secs(60) && d.as_secs().is_multiple_of(60) {
        format!("{}m", d.as_secs() / 60)
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// What the hooks are told about `entry`.
pub fn event_of(entry: &OutboxEntry) -> HookEvent {
    let utf8 = std::str::from_utf8(&entry.path).is_ok();
    HookEvent {
        id: entry.uid.clone(),
        kind: EVENT_TYPE,
        at: chrono::DateTime::from_timestamp_millis(entry.at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default(),
        state: entry.state.as_str().to_owned(),
        previous_state: entry.from_state.map(|s| s.as_str().to_owned()),
        folder: entry.folder.clone(),
        path: text::lossless(&entry.path).into_owned(),
        path_bytes_hex: (!utf8).then(|| hex::encode(&entry.path)),
        target: entry.target.kind.as_str().to_owned(),
        account: entry.target.account.clone(),
        purpose: entry.target.purpose.clone(),
        remote_id: entry.remote_id.clone(),
        reason: entry.reason.clone(),
        decision_reason: entry.decision_reason.clone(),
        request_id: entry.request_id.clone(),
        attempt: entry.attempts.saturating_add(1),
        path_bytes: entry.path.clone(),
    }
}

/// The hooks `ctx`'s store writes events for: call before any stage runs.
pub async fn enable(ctx: &Ctx, kinds: Vec<HookKind>) -> Result<()> {
    ctx.store.enable_outbox(kinds).await
}

#[cfg(test)]
mod tests;
