-- No JIT compilation for Carillon's own sessions. Every statement Carillon runs is a short OLTP
-- statement over a few rows, but the planner's estimates for statements that unpack jsonb arrays
-- (jsonb_array_elements is estimated at 100 rows, and a lateral join of two of them at 20,100) put
-- some above jit_above_cost: carillon.flush_events' insert of a batch's events cost 104,377, so
-- every batch compiled it with LLVM again, 30-50 ms of CPU each time, while holding the event lock
-- that every writing transaction queues on (docs/perf-notes-h11bench.md: the send rate went from
-- 316 to 1,035 msg/s at 64 in flight with nothing else changed). The setting belongs to the role
-- Carillon connects as, in this database only, so psql sessions of other roles and other databases
-- keep theirs; it applies to connections opened after this migration. A role may always change its
-- own defaults; should the server refuse anyway, the migration goes on without it (the operator can
-- set jit = off in postgresql.conf instead).
do $$
begin
    execute format('alter role %I in database %I set jit = off', current_user, current_database());
exception when insufficient_privilege then
    raise notice 'carillon: could not set jit = off for role %: set it in postgresql.conf (%)', current_user, sqlerrm;
end $$;

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
