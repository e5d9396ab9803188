-- docsync state in PostgreSQL, schema version 3: the state 'skipped' (already
-- handled: not sent), for files older than their folder's `max_age` when first
-- seen (SQLite's migrations/0006_skipped_state.sql). Version 1 left it out of
-- the CHECK, so every such file failed its scan step on PostgreSQL.
ALTER TABLE files DROP CONSTRAINT files_state_check;
ALTER TABLE files ADD CONSTRAINT files_state_check CHECK (state IN (
    'discovered', 'stable', 'uploading', 'pending', 'approved', 'rejected',
    'invalid', 'retrying', 'failed', 'superseded', 'duplicate', 'deleted',
    'skipped'));
