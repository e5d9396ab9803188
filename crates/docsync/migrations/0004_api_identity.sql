-- schema version 4: which API the rows were synced against, so that a daemon
-- pointed at another API refuses to start until told what to do with them
-- (`--start-over` or `--keep-history`). At most one row. Base URLs only,
-- normalised; the embedded sandbox is recorded as kind 'sandbox', never by its
-- random port. Never credentials.
CREATE TABLE api_identity (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    kind             TEXT    NOT NULL CHECK (kind IN ('sandbox', 'remote')),
    -- the Moov API's base URL (NULL: the sandbox, or no folder uses it)
    moov_url         TEXT,
    -- the attachments API's base URL (NULL: the sandbox, or no folder uses it)
    attachments_url  TEXT,
    recorded_at      INTEGER NOT NULL,
    CHECK (kind = 'remote' OR (moov_url IS NULL AND attachments_url IS NULL))
) STRICT;
