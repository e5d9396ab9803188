-- `files_state(state, next_attempt_at)` overlapped `files_state_id(state, id)`:
-- both were rewritten on every insert and state change, and only the retry
-- queries (`state = 'retrying'`, ordered by due time) needed the first. A
-- partial index holds just the retrying rows, so a row that never retries
-- never touches it.
DROP INDEX files_state;
CREATE INDEX files_retry_due ON files(next_attempt_at, id) WHERE state = 'retrying';
