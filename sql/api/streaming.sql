-- Streaming export (docs/streaming.md, src/streaming/streaming.c): what each streaming
-- configuration exports, read from the event log (carillon.events and carillon.stream_events, one
-- position sequence) after a persisted cursor per (AppInstance, stream); the exporter's lease.

-- The highest committed position of either log. Positions are taken under the event lock held to
-- commit (docs/events.md), so every event committed later has a higher position.
create or replace function carillon.stream_log_position() returns bigint
language sql stable as $$
    select greatest((select coalesce(max(position), 0) from carillon.events),
                    (select coalesce(max(position), 0) from carillon.stream_events))
$$;

-- The cursors follow the configurations: one per stream ARN of the AppInstance (both DataTypes may
-- share one). A stream already configured keeps its position; a DataType new to a stream starts at
-- the current end of the log (events from before a configuration are not sent); a stream no longer
-- configured loses its cursor.
create or replace function carillon.streaming_sync(p_app text, p_confs jsonb) returns void
language plpgsql as $$
declare v_now bigint := carillon.stream_log_position();
begin
    delete from carillon.streaming_cursors
     where app_instance_id = p_app
       and stream_arn not in (select c->>'ResourceArn' from jsonb_array_elements(coalesce(p_confs, '[]')) c);
    insert into carillon.streaming_cursors as sc (app_instance_id, stream_arn, since, position)
    select p_app, c->>'ResourceArn', jsonb_object_agg(c->>'DataType', v_now), v_now
      from jsonb_array_elements(coalesce(p_confs, '[]')) c
     group by c->>'ResourceArn'
    on conflict (app_instance_id, stream_arn) do update
       set since = (select jsonb_object_agg(k, coalesce(sc.since->k, excluded.since->k))
                      from jsonb_object_keys(excluded.since) k);
end $$;

-- The DataType an event belongs to (null: not streamed). ChannelMessage: the four message events of
-- SENT messages (a flow's PENDING/DENIED/FAILED notices have their own event types and are not
-- streamed). Channel: the channel, its expiration settings, memberships, bans, moderators and
-- sub-channels.
create or replace function carillon.stream_data_type(p_type text, p_payload jsonb) returns text
language sql immutable as $$
    select case
        when p_type in ('CREATE_CHANNEL_MESSAGE', 'UPDATE_CHANNEL_MESSAGE', 'REDACT_CHANNEL_MESSAGE',
                        'DELETE_CHANNEL_MESSAGE')
             and coalesce(p_payload #>> '{Status,Value}', 'SENT') = 'SENT' then 'ChannelMessage'
        when p_type in ('CREATE_CHANNEL', 'UPDATE_CHANNEL', 'DELETE_CHANNEL', 'UPDATE_CHANNEL_EXPIRATION_SETTINGS',
                        'CREATE_CHANNEL_MEMBERSHIP', 'DELETE_CHANNEL_MEMBERSHIP', 'BATCH_CREATE_CHANNEL_MEMBERSHIP',
                        'CREATE_CHANNEL_BAN', 'DELETE_CHANNEL_BAN', 'CREATE_CHANNEL_MODERATOR',
                        'DELETE_CHANNEL_MODERATOR', 'CREATE_SUB_CHANNEL', 'DELETE_SUB_CHANNEL') then 'Channel'
    end
$$;

-- The Kinesis record data of one event: {"EventType", "Payload"}. A BatchCreateChannelMembership is
-- streamed as one CREATE_CHANNEL_MEMBERSHIP per member added (the event types Chime streams).
create or replace function carillon.stream_records(p_type text, p_payload jsonb) returns setof text
language sql immutable as $$
    select jsonb_build_object('EventType', p_type, 'Payload', p_payload)::text
     where p_type <> 'BATCH_CREATE_CHANNEL_MEMBERSHIP'
    union all
    select jsonb_build_object('EventType', 'CREATE_CHANNEL_MEMBERSHIP', 'Payload', jsonb_strip_nulls(jsonb_build_object(
               'ChannelArn', p_payload->'ChannelArn', 'InvitedBy', p_payload->'InvitedBy', 'Type', p_payload->'Type',
               'Member', m.member, 'SubChannelId', p_payload->'SubChannelId')))::text
      from jsonb_array_elements(case when p_type = 'BATCH_CREATE_CHANNEL_MEMBERSHIP'
                                     then coalesce(p_payload->'Members', '[]') else '[]' end)
           with ordinality as m(member, n)
$$;

-- The next records of one stream after log position p_after: rows (position, channel ARN, record
-- data) in log order, then one last row (position, null, null) telling how far the log was read —
-- the cursor may move there once every record above was acknowledged. At most p_limit records
-- (never splitting one event's records) from at most p_window positions, so a query's work is
-- bounded however sparse the stream's events are in the log. No rows at all: the stream is no
-- longer configured.
create or replace function carillon.streaming_read(p_app text, p_stream text, p_after bigint, p_limit int,
                                                   p_window int)
returns table (r_position bigint, r_channel_arn text, r_data text)
language plpgsql stable as $$
declare
    v_since jsonb;
    v_top bigint;
    v_n int := 0;
    v_rows int;
    v_type text;
    e record;
begin
    select since into v_since from carillon.streaming_cursors where app_instance_id = p_app and stream_arn = p_stream;
    if v_since is null then
        return;
    end if;
    v_top := least(p_after + p_window, carillon.stream_log_position());
    for e in
        select l.position, l.channel_arn, coalesce(l.stream_type, l.event_type) as t,
               coalesce(l.payload_text::jsonb, l.payload) as payload
          from carillon.events l
         where l.position > p_after and l.position <= v_top and l.app_instance_id = p_app
        union all
        select s.position, s.channel_arn, s.event_type, s.payload
          from carillon.stream_events s
         where s.position > p_after and s.position <= v_top and s.app_instance_id = p_app
         order by 1
    loop
        v_type := carillon.stream_data_type(e.t, e.payload);
        continue when v_type is null or not v_since ? v_type or e.position <= (v_since->>v_type)::bigint;
        if v_n >= p_limit then
            v_top := e.position - 1;
            exit;
        end if;
        return query select e.position, e.channel_arn, d from carillon.stream_records(e.t, e.payload) d;
        get diagnostics v_rows = row_count;
        v_n := v_n + v_rows;
    end loop;
    return query select greatest(v_top, p_after), null::text, null::text;
end $$;

-- Every stream to export: (AppInstance id, stream ARN, acknowledged position).
create or replace function carillon.streaming_sinks() returns table (r_app text, r_stream text, r_position bigint)
language sql stable as $$
    select app_instance_id, stream_arn, position from carillon.streaming_cursors order by 1, 2
$$;

-- Moves a cursor forward (never back): every record at or below p_position was acknowledged.
create or replace function carillon.streaming_advance(p_app text, p_stream text, p_position bigint) returns void
language sql as $$
    update carillon.streaming_cursors set position = p_position, updated_at = now()
     where app_instance_id = p_app and stream_arn = p_stream and position < p_position
$$;

-- The exporter's lease: p_node gets (or keeps) it when it holds it or it has expired. True when
-- p_node holds it for the next p_seconds. Concurrent claims serialise on the row: the second sees
-- the first's holder once that commits.
create or replace function carillon.streaming_lease_claim(p_node text, p_seconds int) returns boolean
language sql as $$
    with claimed as (
        update carillon.streaming_lease
           set holder = p_node, expires_at = clock_timestamp() + make_interval(secs => p_seconds)
         where name = 'kinesis' and (holder = p_node or expires_at < clock_timestamp())
        returning 1)
    select exists (select 1 from claimed)
$$;

-- A node stopping hands the lease on at once instead of letting it run out.
create or replace function carillon.streaming_lease_release(p_node text) returns void
language sql as $$
    update carillon.streaming_lease set expires_at = '-infinity' where name = 'kinesis' and holder = p_node
$$;
