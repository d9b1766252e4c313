-- The event log's trim horizon (migration 096): carillon.resume_window refuses a resume from below
-- the highest position the janitor has deleted, and nothing else; a hole in the positions (one
-- handed out by the sequence to a write that rolled back) is not a trimmed event.
select pg_temp.make_fixture();

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
    perform pg_temp.ok('update_channel', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'Name', 'after the hole'));
    v_pos := pg_temp.mark();
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
