-- (JIT: the gateway's pool connections run with jit = off, set in their startup options by
-- src/db/pool.c; the planner's estimates for statements that unpack jsonb arrays put a batch's
-- event insert above jit_above_cost, and compiling it cost 30-50 ms a batch under the event lock.)

-- Room for the versions of a hot channel row. Every persisted send moves its channel's
-- last_message_at, so one busy channel's row gets a new version several thousand times a second.
-- Those updates are HOT (no indexed column changes) while the row's page has room; when it has
-- none and the old versions are still visible to a running transaction, the new version goes to
-- another page: the table spreads (100 channels: 5 pages -> 49 in three minutes at 700 msg/s) and
-- every index of channels gets an entry. The send path's channel lookups are then scans over more
-- pages (a plan cached for a 5-page table is a sequential scan) until autovacuum comes by, at most
-- once a minute. Half-empty pages keep a busy row's chain on its page, and the page is pruned
-- while half of it is still free. Existing pages keep their layout until rewritten; new and
-- updated rows follow the setting.
alter table carillon.channels set (fillfactor = 50);

-- The janitor trims the event log by age (carillon.janitor: created_at older than a day), once a
-- minute on every node. Without an index on created_at that delete read the whole log each time,
-- a day of events at the write rate (0.9 kB an event: 190 MB after 210,000 messages, read in full
-- every minute, and linearly more); with it, finding nothing to trim is a short range scan. The
-- key is the inserting transaction's start time, so new entries go to the index's right edge.
create index if not exists events_created_at_idx on carillon.events (created_at);
