-- The decision hooks' outbox (`[hooks]` in the configuration): one row per
-- decision event and configured hook (the command, the webhook), written by a
-- trigger in the same transaction as the state change that causes it (see
-- store/outbox.rs), so no event is lost across a crash or a restart. The
-- notify stage delivers the rows and marks them delivered, or given up after
-- its retry budget. Rows go with their event (`--start-over`).
CREATE TABLE hook_outbox (
    id               INTEGER PRIMARY KEY,
    -- what receivers deduplicate on: the same for every hook and every attempt
    uid              TEXT    NOT NULL,
    event_id         INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    hook             TEXT    NOT NULL CHECK (hook IN ('command', 'webhook')),
    -- the row's remote id and decision reason when the event was written
    remote_id        TEXT,
    decision_reason  TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    delivered_at     INTEGER,
    given_up_at      INTEGER,
    UNIQUE (event_id, hook)
) STRICT;

-- what the notify stage reads: the undelivered rows, by when they are due
CREATE INDEX hook_outbox_due ON hook_outbox(next_attempt_at, id)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
