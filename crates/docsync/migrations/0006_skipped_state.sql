-- schema version 6: the state 'skipped' (already handled: not sent), for files
-- present when `docsync baseline` ran or older than `max_age` when first seen.
-- SQLite cannot change a CHECK constraint in place, so `files` is rebuilt as
-- its documented procedure says (sqlite.org/lang_altertable.html, "other kinds
-- of table schema changes"): a new table, the rows copied in one statement
-- (ids kept, so `events`, `hook_outbox` and `supersedes` still point at them),
-- the old table dropped, the new one renamed, every index created again.
-- Foreign keys are off while migrations run (`Store::setup`), so dropping the
-- old table deletes no event; `PRAGMA foreign_key_check` runs before the
-- migration commits. `events` has no CHECK on states and is left alone, with
-- its indexes; the hooks' trigger on it is a TEMP trigger the daemon creates
-- on every start (store/outbox.rs), not part of the schema.
CREATE TABLE files_new (
    id               INTEGER PRIMARY KEY,
    folder           TEXT    NOT NULL,
    path             BLOB    NOT NULL,
    target           TEXT    NOT NULL,
    account          TEXT    NOT NULL,
    purpose          TEXT    NOT NULL DEFAULT '',
    size             INTEGER NOT NULL,
    mtime_ns         INTEGER NOT NULL,
    sha256           TEXT,
    state            TEXT    NOT NULL CHECK (state IN (
                        'discovered', 'stable', 'uploading', 'pending', 'approved',
                        'rejected', 'invalid', 'retrying', 'failed', 'superseded',
                        'duplicate', 'deleted', 'skipped')),
    remote_id        TEXT,
    remote_status    TEXT,
    decision_reason  TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_error       TEXT,
    last_request_id  TEXT,
    remote_name      TEXT,
    supersedes       INTEGER REFERENCES files(id),
    moved_to         BLOB,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

INSERT INTO files_new (id, folder, path, target, account, purpose, size, mtime_ns, sha256,
    state, remote_id, remote_status, decision_reason, attempts, next_attempt_at, last_error,
    last_request_id, remote_name, supersedes, moved_to, created_at, updated_at)
SELECT id, folder, path, target, account, purpose, size, mtime_ns, sha256,
    state, remote_id, remote_status, decision_reason, attempts, next_attempt_at, last_error,
    last_request_id, remote_name, supersedes, moved_to, created_at, updated_at
FROM files;

DROP TABLE files;
ALTER TABLE files_new RENAME TO files;

-- the indexes of 0001, 0002 and 0003, as they were
CREATE UNIQUE INDEX files_live_path ON files(folder, path)
    WHERE state NOT IN ('superseded', 'deleted');
CREATE INDEX files_state ON files(state, next_attempt_at);
CREATE INDEX files_content ON files(target, account, purpose, sha256);
CREATE INDEX files_path ON files(path);
CREATE INDEX files_folder_state ON files(folder, state, id);
CREATE INDEX files_state_id ON files(state, id);
CREATE INDEX files_remote ON files(target, account, remote_id) WHERE remote_id IS NOT NULL;
