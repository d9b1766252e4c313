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
    -- on the last day (see carillon.resume_window).
    delete from carillon.events where created_at < p_now - interval '1 day';
    return v_deleted;
end $$;
