-- docsync state, schema version 1. Append-only: never edit a shipped migration,
-- add a new file instead. Times are unix milliseconds (UTC).

CREATE TABLE files (
    id               INTEGER PRIMARY KEY,
    -- the configured folder root, as written in the configuration
    folder           TEXT    NOT NULL,
    -- path relative to the folder root, raw bytes (non-UTF-8 names survive)
    path             BLOB    NOT NULL,
    -- target kind: moov-files | moov-images | attachments
    target           TEXT    NOT NULL,
    -- account id (moov-*) or user id (attachments)
    account          TEXT    NOT NULL,
    -- file purpose (moov-files), empty otherwise
    purpose          TEXT    NOT NULL DEFAULT '',
    size             INTEGER NOT NULL,
    mtime_ns         INTEGER NOT NULL,
    sha256           TEXT,
    state            TEXT    NOT NULL CHECK (state IN (
                        'discovered', 'stable', 'uploading', 'pending', 'approved',
                        'rejected', 'invalid', 'retrying', 'failed', 'superseded',
                        'duplicate', 'deleted')),
    remote_id        TEXT,
    remote_status    TEXT,
    decision_reason  TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_error       TEXT,
    last_request_id  TEXT,
    -- the name sent to the server when it differs from the local name
    remote_name      TEXT,
    -- the row this one replaced after the content changed
    supersedes       INTEGER REFERENCES files(id),
    -- where docsync moved the file after the decision (after_decision = "move"),
    -- relative to the folder root; the row keeps its original path
    moved_to         BLOB,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

-- at most one live row per path; superseded and deleted rows are history
CREATE UNIQUE INDEX files_live_path ON files(folder, path)
    WHERE state NOT IN ('superseded', 'deleted');
CREATE INDEX files_state ON files(state, next_attempt_at);
CREATE INDEX files_content ON files(target, account, purpose, sha256);
CREATE INDEX files_path ON files(path);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    file_id     INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    -- NULL when the row was created
    from_state  TEXT,
    to_state    TEXT    NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    request_id  TEXT
) STRICT;

CREATE INDEX events_file ON events(file_id, id);
