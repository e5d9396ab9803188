-- docsync state in PostgreSQL, schema version 5: one row per server backend
-- (connection), rewritten after each upload intent. An intent commits without
-- waiting for its WAL flush, so the account's advisory lock it holds is not
-- held across an fsync (one account's intents are decided one at a time:
-- with the flush inside, a burst into one account ran at one fsync per file).
-- The intent's request is sent only after this row's update committed with
-- synchronous_commit = on: that commit waits for the WAL to be flushed up to
-- its own record, which comes after the intent's, so the intent is on disk.
-- Each connection writes its own row: concurrent intents never wait on each
-- other here, and PostgreSQL flushes their WAL together.
CREATE TABLE durability_marks (
    backend   INTEGER     PRIMARY KEY,
    marked_at TIMESTAMPTZ NOT NULL
);
