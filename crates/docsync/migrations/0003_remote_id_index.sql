-- The answer to an upload is checked against what is recorded: an ID already
-- recorded for other content at the same target is refused. This index keeps
-- that lookup off a table scan; only rows with a remote ID are in it.
CREATE INDEX files_remote ON files(target, account, remote_id) WHERE remote_id IS NOT NULL;
