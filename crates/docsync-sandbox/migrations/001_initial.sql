-- Initial schema of the sandbox. Append-only: never edit a shipped migration.
CREATE TABLE files (
    file_id         TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT NOT NULL,
    file_name       TEXT NOT NULL,
    file_purpose    TEXT NOT NULL,
    file_status     TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    decision_reason TEXT,
    size_bytes      INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    created_on      TEXT NOT NULL,
    updated_on      TEXT NOT NULL
);
CREATE INDEX files_by_account ON files (account_id, created_on);

CREATE TABLE images (
    image_id     TEXT PRIMARY KEY NOT NULL,
    account_id   TEXT NOT NULL,
    public_id    TEXT NOT NULL UNIQUE,
    alt_text     TEXT,
    sha256       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    created_on   TEXT NOT NULL,
    updated_on   TEXT NOT NULL,
    disabled_on  TEXT
);
CREATE INDEX images_by_account ON images (account_id, created_on);
CREATE INDEX images_by_hash ON images (account_id, sha256);

CREATE TABLE tokens (
    access_token       TEXT PRIMARY KEY NOT NULL,
    refresh_token      TEXT NOT NULL UNIQUE,
    scope              TEXT NOT NULL,
    expires_at         TEXT NOT NULL,
    refresh_expires_at TEXT NOT NULL,
    revoked            INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE attachments (
    file_id          TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL,
    filename         TEXT NOT NULL,
    persist          INTEGER NOT NULL,
    token            TEXT NOT NULL UNIQUE,
    token_expires_at TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    uploaded_at      TEXT,
    sha256           TEXT,
    size_bytes       INTEGER,
    content_type     TEXT,
    infected         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX attachments_ephemeral ON attachments (persist, created_at);
