-- The event log's trim horizon (migration 096): carillon.resume_window refuses a resume from below
-- the highest position the janitor has deleted, and nothing else; a hole in the positions (one
-- handed out by the sequence to a write that rolled back) is not a trimmed event.
select pg_temp.make_fixture();

-- An event in the log (the private channel renamed to p_name); its position.
create function pg_temp.logged(p_name text) returns bigint language plpgsql as $$
begin
    perform pg_temp.ok('update_channel', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'Name', p_name));
    return pg_temp.mark();
end $$;

-- The events up to p_upto made p_age old, then a janitor pass.
create function pg_temp.trim_aged(p_upto bigint, p_age interval) returns void language plpgsql as $$
begin
    update carillon.events set created_at = now() - p_age where position <= p_upto;
    perform carillon.janitor(now());
end $$;

-- test: after a trim, a resume from below the horizon is refused; from the horizon it reads past a hole
do $$
declare
    v_top bigint := pg_temp.mark();
    v_hole bigint;
    v_pos bigint;
begin
    assert v_top > 0, 'the fixture logged events';
    -- the janitor two days from now: everything logged so far is past the log's day
    perform carillon.janitor(now() + interval '2 days');
    assert (select count(*) from carillon.events) = 0, 'the janitor trimmed the log';
    assert (select position from carillon.log_horizon) = v_top, 'the horizon is the last position trimmed';
    assert not carillon.resume_window(v_top - 1, v_top, 1000), 'a resume from below the horizon was taken';
    assert carillon.resume_window(v_top, v_top, 1000), 'a resume from the horizon was refused';
    -- a position the sequence handed out and no event holds, then an event
    v_hole := nextval('carillon.event_position');
    v_pos := pg_temp.logged('after the hole');
    assert v_pos > v_hole and v_hole > v_top, format('positions %s, %s, %s', v_top, v_hole, v_pos);
    assert carillon.resume_window(v_top, v_pos, 1000), 'a resume from the horizon was refused at the hole';
    assert carillon.resume_window(v_hole, v_pos, 1000);
    assert not carillon.resume_window(v_top - 1, v_pos, 1000), 'the trim was forgotten';
end $$;

-- test: a janitor pass that trims nothing leaves the horizon where it was
do $$
declare v_before bigint := (select position from carillon.log_horizon);
begin
    perform carillon.janitor(now());
    assert (select position from carillon.log_horizon) = v_before;
end $$;

-- test: the janitor trims the log's prefix older than a day and keeps the events inside it (the log is read along its positions: migration 099)
do $$
declare
    v_old bigint;
    v_new bigint;
begin
    delete from carillon.streaming_cursors;
    v_old := pg_temp.logged('a day ago');
    v_new := pg_temp.logged('now');
    assert v_new > v_old;
    perform pg_temp.trim_aged(v_old, interval '25 hours');
    assert not exists (select 1 from carillon.events where position <= v_old), 'an event older than a day was kept';
    assert exists (select 1 from carillon.events where position = v_new), 'an event inside the day was trimmed';
    assert (select position from carillon.log_horizon) = v_old, 'the horizon is not the last position trimmed';
    -- the next pass, with nothing older than a day, trims nothing
    perform carillon.janitor(now());
    assert exists (select 1 from carillon.events where position = v_new);
    assert (select position from carillon.log_horizon) = v_old;
end $$;

-- test: events a stream has not taken stay up to a week, those it has taken go after a day
do $$
declare
    v_taken bigint;
    v_waiting bigint;
    v_new bigint;
begin
    delete from carillon.streaming_cursors;
    v_taken := pg_temp.logged('taken');
    v_waiting := pg_temp.logged('waiting');
    v_new := pg_temp.logged('now');
    insert into carillon.streaming_cursors (app_instance_id, stream_arn, since, position)
    values ((pg_temp.ch('priv')).app_instance_id, 'stream', '{}', v_taken);
    perform pg_temp.trim_aged(v_waiting, interval '2 days');
    assert not exists (select 1 from carillon.events where position <= v_taken), 'an event the stream took was kept';
    assert exists (select 1 from carillon.events where position = v_waiting), 'an event the stream has not taken was trimmed';
    assert (select position from carillon.log_horizon) = v_taken;
    perform pg_temp.trim_aged(v_waiting, interval '8 days');
    assert not exists (select 1 from carillon.events where position <= v_waiting), 'an event older than a week was kept';
    assert exists (select 1 from carillon.events where position = v_new), 'an event inside the day was trimmed';
    assert (select position from carillon.log_horizon) = v_waiting;
end $$;

-- test: a janitor pass over a long log with nothing to trim reads a few of its blocks, not the log (it read every block of it, once a minute, before migration 090; docs/perf/write-path-decay.md)
do $$
declare
    v_first bigint := nextval('carillon.event_position');
    v_heap bigint;
    v_pages bigint;
begin
    delete from carillon.streaming_cursors;
    -- The log is these rows alone: what came before is trimmed (the rows rolled back by earlier
    -- runs on this database lie below the horizon, where no pass looks).
    delete from carillon.events where position < v_first;
    update carillon.log_horizon set position = v_first;
    insert into carillon.events (position, app_instance_id, channel_arn, event_type, message_type, audience, payload_text)
    select nextval('carillon.event_position'), 'app', 'channel', 'CREATE_CHANNEL_MESSAGE', 'STANDARD', 'members',
           repeat('x', 200)
      from generate_series(1, 20000);
    v_pages := pg_relation_size('carillon.events') / current_setting('block_size')::int;
    assert v_pages > 400, format('the log has only %s pages', v_pages);
    v_heap := pg_stat_get_xact_blocks_fetched('carillon.events'::regclass);
    perform carillon.janitor(now());
    v_heap := pg_stat_get_xact_blocks_fetched('carillon.events'::regclass) - v_heap;
    -- a bisection over the whole range of positions is at most 64 probes, a block each
    assert v_heap < 80, format('the janitor read %s of the log''s %s pages', v_heap, v_pages);
    assert (select count(*) from carillon.events where position > v_first) = 20000, 'the janitor trimmed events of the day';
    assert (select position from carillon.log_horizon) = v_first;
end $$;
