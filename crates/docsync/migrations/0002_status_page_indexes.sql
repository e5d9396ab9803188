-- schema version 2: indexes for the status page (`docsync run --admin`), so it stays
-- quick with 100,000 files: counts per folder and state and keyset pages of one
-- state (files_folder_state, files_state_id), recent activity (events_at).
CREATE INDEX files_folder_state ON files(folder, state, id);
CREATE INDEX files_state_id ON files(state, id);
CREATE INDEX events_at ON events(at);
