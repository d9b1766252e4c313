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
