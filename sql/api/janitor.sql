-- A channel disappears (deleted, expired, or its AppInstance deleted): the DELETE_CHANNEL event to
-- its members, built before the rows go.
create or replace function carillon.channel_gone_event(p_arn text) returns jsonb
language sql stable as $$
    select carillon.event(c.arn, c.app_instance_id, 'DELETE_CHANNEL', 'SYSTEM', carillon.channel_doc(c, true),
                          p_closes => true)
      from carillon.channels c where c.arn = p_arn
$$;

-- An AppInstanceUser (or bot) disappears: its admin grants, tags, moderator roles and bans go, and
-- its channel memberships with a DELETE_CHANNEL_MEMBERSHIP event each (so connected members, and
-- every node's channel index, learn of it). Returns the events; the caller deletes the user row.
create or replace function carillon.user_gone(p_arn text) returns jsonb
language plpgsql as $$
declare
    v_events jsonb := '[]';
    m carillon.channel_memberships%rowtype;
    c carillon.channels%rowtype;
begin
    for m in delete from carillon.channel_memberships where member_arn = p_arn returning * loop
        select * into c from carillon.channels where arn = m.channel_arn;
        v_events := v_events || jsonb_build_array(carillon.membership_event(c, m, 'DELETE_CHANNEL_MEMBERSHIP'));
    end loop;
    delete from carillon.channel_moderators where moderator_arn = p_arn;
    delete from carillon.channel_bans where member_arn = p_arn;
    delete from carillon.app_instance_admins where admin_arn = p_arn;
    perform carillon.drop_tags(p_arn);
    return v_events;
end $$;

-- The first position of the event log whose event was written at or after p_at: the events below
-- it are older (NULL: every event is older, or there is none). A bisection along the position key,
-- each step one probe of its index (`position >= mid order by position limit 1`, which no planner
-- estimate turns into a scan of the log): log2 of the positions between the horizon and the last
-- event, at most 63 however long the log, where a lookup by time needs an index of the log's times,
-- which cost every event an index entry on the write path (migration 099), or a scan of the log.
-- An event's created_at is its transaction's start, in position order but for a transaction that
-- started before another and took the event lock after it: the bisection may place such an event,
-- a few milliseconds off, on either side.
create or replace function carillon.log_position_at(p_at timestamptz) returns bigint
language plpgsql stable as $$
declare
    -- From the trim horizon (migration 096: no event is at or below it), not min(position), which
    -- walks the index entries of the rows the last trim deleted until vacuum has removed them.
    v_lo bigint := (select position + 1 from carillon.log_horizon);
    v_hi bigint := (select max(position) from carillon.events);
    v_mid bigint;
    v_at timestamptz;
begin
    if v_hi is null or (select created_at from carillon.events where position = v_hi) < p_at then
        return null;
    end if;
    -- The answer is in [v_lo, v_hi]: the first event at or after v_hi (itself) is not older.
    while v_lo < v_hi loop
        v_mid := v_lo + (v_hi - v_lo) / 2;
        v_at := (select created_at from carillon.events where position >= v_mid order by position limit 1);
        if v_at >= p_at then
            v_hi := v_mid;
        else
            v_lo := v_mid + 1;
        end if;
    end loop;
    return v_lo;
end $$;

-- Periodic maintenance, run by every node's janitor (src/janitor.c); idempotent and cheap.
--   * AppInstanceUsers whose ExpirationSettings have run out are deleted (with their endpoints,
--     admin grants, tags, channel memberships, moderator roles and bans), as Chime does.
--   * Channels whose ExpirationSettings have run out are deleted (carillon.expire_channels).
--   * ClientRequestToken records older than a day are forgotten, and so are events.
create or replace function carillon.janitor(p_now timestamptz) returns int
language plpgsql as $$
declare
    v_deleted int := 0;
    v_arn text;
    v_keep bigint;
    v_day bigint;
    v_week bigint;
    v_last bigint;
    v_top bigint;
begin
    for v_arn in
        select arn from carillon.app_instance_users
         where expiration_criterion = 'CREATED_TIMESTAMP'
           and created_at + make_interval(days => expiration_days) <= p_now
         for update skip locked
    loop
        perform carillon.flush_events(carillon.user_gone(v_arn));
        delete from carillon.app_instance_users where arn = v_arn;
        v_deleted := v_deleted + 1;
    end loop;
    v_deleted := v_deleted + carillon.expire_channels(p_now);
    delete from carillon.idempotency where created_at < p_now - interval '1 day';
    -- The event log is a bounded window: sessions read it live, and resuming clients may catch up
    -- on the last day (see carillon.resume_window). Events a stream has not taken yet stay up to
    -- a week (docs/streaming.md), so an exporter that was down for a while loses nothing.
    v_keep := coalesce((select min(position) from carillon.streaming_cursors), 9223372036854775807);
    -- What goes is a prefix of the log, found along its position key (the log has no index of its
    -- times: migration 099): the events before the first one inside the day, as far as a stream
    -- has taken them (at or below v_keep), and the events before the first one inside the week
    -- whatever the streams.
    v_day := carillon.log_position_at(p_now - interval '1 day');
    v_week := carillon.log_position_at(p_now - interval '7 days');
    v_last := greatest(least(v_day - 1, v_keep), coalesce(v_week - 1, 9223372036854775807));
    -- The highest position deleted becomes the log's trim horizon (migration 096): resumes from
    -- below it are refused from now on. The delete is bounded below by the horizon too, and made
    -- only when there is something to trim: `position <= v_last` alone is planned from statistics
    -- that may still count the rows of the last trims, and a plan for most of the log is a scan of
    -- it (the test of a pass over a long log caught one).
    v_top := (select position from carillon.log_horizon);
    if v_last > v_top then
        with gone as (
            delete from carillon.events where position > v_top and position <= v_last
            returning position)
        update carillon.log_horizon h set position = g.top
          from (select max(position) as top from gone) g
         where g.top > h.position;
    end if;
    delete from carillon.stream_events
     where created_at < p_now - interval '1 day' and (position <= v_keep or created_at < p_now - interval '7 days');
    return v_deleted;
end $$;

-- Retention (PutAppInstanceRetentionSettings, ChannelRetentionSettings.RetentionDays): messages
-- older than the period are deleted from every channel of the AppInstance, and nothing else is.
-- The janitor (src/janitor.c) calls this repeatedly, one short transaction per call, until it
-- answers a null cursor:
--   * a call walks the channels of AppInstances that have a retention period, in (AppInstance id,
--     channel ARN) order after the cursor (p_app, p_arn), at most p_max_channels of them, and
--     deletes at most p_max_rows messages in all;
--   * message rows locked by a writer (an update, a redaction of an old message) are skipped, never
--     waited for, and a channel row is never locked: a hot channel is not held up, and what was
--     skipped goes at the next sweep;
--   * when the row budget runs out inside a channel, the cursor stays before that channel, so the
--     next call finishes it.
-- p_day_seconds is the length of a day (86400; CARILLON_RETENTION_DAY_SECONDS lets tests shorten
-- it). The rows' space is reused once autovacuum has passed over them.
create or replace function carillon.retention_sweep(p_now timestamptz, p_day_seconds int, p_app text, p_arn text,
                                                    p_max_rows int, p_max_channels int)
returns table (deleted int, next_app text, next_arn text)
language plpgsql as $$
declare
    a record;
    v_arn text;
    v_left int := p_max_rows;
    v_channels int := 0;
    v_n int;
    v_cur_app text := coalesce(p_app, '');
    v_cur_arn text := coalesce(p_arn, '');
begin
    for a in select i.id, i.retention_days from carillon.app_instances i
              where i.retention_days is not null and i.id >= v_cur_app
              order by i.id
    loop
        for v_arn in select c.arn from carillon.channels c
                      where c.app_instance_id = a.id and (a.id > coalesce(p_app, '') or c.arn > v_cur_arn)
                      order by c.arn
        loop
            with doomed as (
                select m.channel_arn, m.message_id from carillon.channel_messages m
                 where m.channel_arn = v_arn
                   and m.created_at < p_now - make_interval(secs => a.retention_days::double precision * p_day_seconds)
                 order by m.created_at, m.seq
                 limit v_left
                   for update skip locked)
            delete from carillon.channel_messages m using doomed d
             where m.channel_arn = d.channel_arn and m.message_id = d.message_id;
            get diagnostics v_n = row_count;
            v_left := v_left - v_n;
            if v_left <= 0 then
                return query select p_max_rows - v_left, v_cur_app, v_cur_arn;  -- this channel again
                return;
            end if;
            v_cur_app := a.id;
            v_cur_arn := v_arn;
            v_channels := v_channels + 1;
            if v_channels >= p_max_channels then
                return query select p_max_rows - v_left, v_cur_app, v_cur_arn;
                return;
            end if;
        end loop;
    end loop;
    return query select p_max_rows - v_left, null::text, null::text;
end $$;
