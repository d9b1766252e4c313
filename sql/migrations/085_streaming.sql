-- Streaming export (docs/streaming.md): each streaming configuration's events are put to its Kinesis
-- stream by one node at a time, read from the event log from a persisted cursor.

-- Events Chime streams but does not push to websocket sessions (CREATE_CHANNEL, the ban and
-- moderator events, UPDATE_CHANNEL_EXPIRATION_SETTINGS): recorded by carillon.flush_events in the
-- write's own transaction, with positions from the same sequence under the same lock as
-- carillon.events, so both logs together are in commit order. Only AppInstances with a streaming
-- configuration record them.
create table carillon.stream_events (
    position        bigint primary key,
    created_at      timestamptz not null default now(),
    app_instance_id text not null,
    channel_arn     text not null,
    event_type      text not null,
    payload         jsonb not null
);

-- A websocket event may be streamed under another EventType ('-': not streamed at all); null means
-- its own event_type.
alter table carillon.events add column stream_type text;

-- One cursor per (AppInstance, stream): every event of the stream's data types at or below
-- `position` has been acknowledged by Kinesis. `since` holds, per DataType, the log position its
-- configuration started from (events from before a configuration are not sent).
create table carillon.streaming_cursors (
    app_instance_id text not null references carillon.app_instances(id) on delete cascade,
    stream_arn      text not null,
    since           jsonb not null,          -- {"ChannelMessage": 123, "Channel": 123}
    position        bigint not null,
    updated_at      timestamptz not null default now(),
    primary key (app_instance_id, stream_arn)
);

-- The exporter's lease: the node named in `holder` exports until `expires_at` (database time), and
-- renews it well before. Another node claims it only once it has expired.
create table carillon.streaming_lease (
    name       text primary key,
    holder     text,
    expires_at timestamptz not null default '-infinity'
);
insert into carillon.streaming_lease (name) values ('kinesis');

-- Configurations stored before this migration start exporting from here.
insert into carillon.streaming_cursors (app_instance_id, stream_arn, since, position)
select s.app_instance_id, c->>'ResourceArn',
       jsonb_object_agg(c->>'DataType', (select coalesce(max(position), 0) from carillon.events)),
       (select coalesce(max(position), 0) from carillon.events)
  from carillon.streaming_configurations s, jsonb_array_elements(s.configurations) c
 group by s.app_instance_id, c->>'ResourceArn';
