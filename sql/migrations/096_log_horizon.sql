-- The event log's trim horizon: the highest position the janitor has deleted (0: none yet). A resume
-- from since-position N can read the gap (N, P] complete exactly when N is at or above it
-- (carillon.resume_window). The window used to take the first retained position minus one for
-- it, which is wrong whenever positions below the first event were never committed: a position
-- comes from a sequence, and a write that rolls back leaves a hole, so a young log whose first
-- event sat at position 2 refused a resume from 0 although nothing had been trimmed.
create table if not exists carillon.log_horizon (
    one      boolean primary key default true check (one),
    position bigint not null
);
-- A log that already exists keeps the old, cautious bound: below its first position something may
-- have been trimmed; an empty log, everything the sequence has handed out.
insert into carillon.log_horizon (position)
select coalesce((select min(position) - 1 from carillon.events),
                (select case when is_called then last_value else 0 end from carillon.event_position))
on conflict do nothing;
