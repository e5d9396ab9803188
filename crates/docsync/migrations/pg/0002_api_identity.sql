-- docsync state in PostgreSQL, schema version 2: which API the shared rows
-- were synced against (SQLite's migrations/0004_api_identity.sql). One row;
-- every daemon sharing the state checks it at start and refuses another API,
-- so no daemon records as uploaded a file the configured server never got.
CREATE TABLE api_identity (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    -- sandbox | remote
    kind            TEXT    NOT NULL CHECK (kind IN ('sandbox', 'remote')),
    -- the Moov API's base URL (remote), normalised
    moov_url        TEXT,
    -- the attachments API's base URL (remote), normalised
    attachments_url TEXT,
    recorded_at     BIGINT  NOT NULL,
    CHECK (kind = 'remote' OR (moov_url IS NULL AND attachments_url IS NULL))
);
