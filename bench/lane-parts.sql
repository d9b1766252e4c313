-- The parts of the write lane's statement, each behind the send floor's server (bench/lane-parts.sh;
-- bench/lib.sh lane_floor_setup makes bench_ref.floor_batch and bench_ref.floor_lane first). Each
-- function stores a batch of p_n requests under the key p_k, as floor_batch does, plus one part.

-- + NOTIFY: the Carillon process's listener is woken (a node without sessions reads nothing on it:
-- carillon_hub_silent, src/realtime/listener.c).
create or replace function bench_ref.fb_notify(p_n int, p_k bigint) returns int language plpgsql as $$
begin
    perform bench_ref.floor_batch(p_n, p_k);
    perform pg_notify('carillon_events', (select max(position) from carillon.events)::text);
    return p_n;
end $$;

-- + the channel row's lock and update, and the event lock, as send_messages takes them.
create or replace function bench_ref.fb_locks(p_n int, p_k bigint) returns int language plpgsql as $$
declare v_arn text := (select channel_arn from bench_ref.msg_tpl);
begin
    perform 1 from carillon.channels where arn = v_arn for no key update;
    perform pg_advisory_xact_lock(7263, 1);
    perform bench_ref.floor_batch(p_n, p_k);
    update carillon.channels set last_message_at = now() where arn = v_arn;
    return p_n;
end $$;

-- The messages as floor_batch writes them, the events into the real log under the event lock and
-- its position sequence, and NOTIFY.
create or replace function bench_ref.fb_log(p_n int, p_k bigint) returns int language plpgsql as $$
declare v_top bigint;
begin
    perform pg_advisory_xact_lock(7263, 1);
    insert into bench_ref.lane_messages (channel_arn, message_id, request_key, seq, sender_arn, type, content, metadata,
                                         content_type, attributes, push_notification, created_at, updated_at, status)
    select t.channel_arn, lpad(to_hex(x.s), 32, '0'), md5(x.g::text || '-' || p_k)::uuid, x.s, t.sender_arn, t.type,
           t.content, t.metadata, t.content_type, t.attributes, t.push_notification, now(), now(), t.status
      from bench_ref.msg_tpl t, (select g, nextval('bench_ref.lane_seq') s from generate_series(1, p_n) g) x;
    with ins as (
        insert into carillon.events (position, app_instance_id, channel_arn, event_type, message_type, payload_text,
                                     audience, arns, joins, leaves, closes)
        select nextval('carillon.event_position'), t.app_instance_id, t.channel_arn, t.event_type, t.message_type,
               t.payload_text, t.audience, '{}', '{}', '{}', false
          from bench_ref.ev_tpl t, generate_series(1, p_n)
        returning position)
    select max(position) into v_top from ins;
    perform pg_notify('carillon_events', v_top::text);
    return p_n;
end $$;

-- The lane's statement sends its NOTIFY only when some node has sessions (carillon.events_heard,
-- since issue 11 session 22): a node that listens forever, as if it had a session (seen_at
-- 'infinity': never forgotten), so that floor_lane is the lane as a deployment with sessions runs it.
insert into carillon.ws_nodes (node, listening, seen_at) values (gen_random_uuid(), true, 'infinity');

-- The lane's statement without its NOTIFY (nothing is read back): a copy of send_messages with the
-- notification taken out of its write statement, and floor_lane calling the copy -- the lane of a
-- deployment without sessions.
do $$
declare d text;
begin
    d := pg_get_functiondef((select oid from pg_proc
                              where proname = 'send_messages' and pronamespace = 'carillon_api'::regnamespace));
    d := replace(d, 'carillon_api.send_messages', 'bench_ref.send_messages_quiet');
    if position($q$carillon.notify_events(max(n.position))::text$q$ in d) = 0 then
        raise exception 'lane-parts.sql: the NOTIFY of send_messages is not where this copy looks for it';
    end if;
    execute replace(d, $q$carillon.notify_events(max(n.position))::text$q$, $q$max(n.position)::text$q$);
    d := pg_get_functiondef('bench_ref.floor_lane'::regproc);
    execute replace(replace(d, 'bench_ref.floor_lane', 'bench_ref.floor_lane_quiet'),
                    'carillon_api.send_messages', 'bench_ref.send_messages_quiet');
end $$;
