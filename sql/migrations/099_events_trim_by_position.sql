-- The event log is trimmed along its position key, not through an index of its creation times
-- (carillon.janitor). Migration 090's index on events (created_at) let the janitor's minutely
-- delete find the rows older than a day without reading the log, but it cost every event an index
-- entry on the write path -- an insertion at the index's right edge under the event lock, ≈ 60
-- bytes of WAL, for every message sent -- to serve one query a minute. The janitor now finds the
-- first event inside the day (or the week) by bisecting the position key from the log's trim
-- horizon (carillon.log_position_at, one probe of the primary key a step) and deletes the prefix
-- below it.
drop index if exists carillon.events_created_at_idx;
