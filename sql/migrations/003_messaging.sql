-- Chime SDK Messaging resources and the event log.

create table carillon.channel_flows (
    arn              text primary key,
    app_instance_id  text not null references carillon.app_instances(id) on delete cascade,
    name             text not null,
    processors       jsonb not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null
);
create index on carillon.channel_flows (app_instance_id);

create table carillon.channels (
    arn              text primary key,
    app_instance_id  text not null references carillon.app_instances(id) on delete cascade,
    channel_id       text not null,
    name             text not null,
    mode             text not null,          -- UNRESTRICTED | RESTRICTED
    privacy          text not null,          -- PUBLIC | PRIVATE
    metadata         text,
    created_by       text not null,          -- bearer ARN
    flow_arn         text references carillon.channel_flows(arn),
    elastic          jsonb,                  -- ElasticChannelConfiguration
    expiration_days  int,
    expiration_criterion text,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    last_message_at  timestamptz,
    unique (app_instance_id, channel_id)
);
create index on carillon.channels (app_instance_id, privacy, arn);
create index on carillon.channels (flow_arn) where flow_arn is not null;

create table carillon.channel_memberships (
    channel_arn      text not null references carillon.channels(arn) on delete cascade,
    member_arn       text not null,
    type             text not null,          -- DEFAULT | HIDDEN
    invited_by       text not null,
    sub_channel_id   text,
    preferences      jsonb,                  -- ChannelMembershipPreferences
    read_marker_at   timestamptz,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    primary key (channel_arn, member_arn)
);
create index on carillon.channel_memberships (member_arn);

create table carillon.channel_moderators (
    channel_arn      text not null references carillon.channels(arn) on delete cascade,
    moderator_arn    text not null,
    created_by       text not null,
    created_at       timestamptz not null,
    primary key (channel_arn, moderator_arn)
);
create index on carillon.channel_moderators (moderator_arn);

create table carillon.channel_bans (
    channel_arn      text not null references carillon.channels(arn) on delete cascade,
    member_arn       text not null,
    created_by       text not null,
    created_at       timestamptz not null,
    primary key (channel_arn, member_arn)
);

create sequence carillon.message_seq;

create table carillon.channel_messages (
    channel_arn      text not null references carillon.channels(arn) on delete cascade,
    message_id       text not null,
    seq              bigint not null,        -- commit order within the channel
    sender_arn       text not null,
    type             text not null,          -- STANDARD | CONTROL
    content          text not null,
    metadata         text,
    content_type     text,
    attributes       jsonb,
    push_notification jsonb,
    target           jsonb,                  -- [{MemberArn}] or null
    sub_channel_id   text,
    redacted         boolean not null default false,
    status           text not null default 'SENT',
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    edited_at        timestamptz,
    primary key (channel_arn, message_id)
);
create index on carillon.channel_messages (channel_arn, created_at, seq);

create table carillon.streaming_configurations (
    app_instance_id  text primary key references carillon.app_instances(id) on delete cascade,
    configurations   jsonb not null
);

-- The event log: every write that Chime pushes to websocket sessions records its event here, in
-- the write's own transaction. `position` is assigned under a transaction-scoped advisory lock
-- taken just before the events are inserted and held until commit, so positions are in commit
-- order: a reader that has seen position N never later finds a committed event below N
-- (see docs/events.md).
create sequence carillon.event_position;

create table carillon.events (
    position       bigint primary key,
    created_at     timestamptz not null default now(),
    app_instance_id text not null,
    channel_arn    text not null,
    event_type     text not null,            -- CREATE_CHANNEL_MESSAGE, DELETE_CHANNEL_MEMBERSHIP, ...
    message_type   text not null,            -- STANDARD | CONTROL | SYSTEM
    payload        jsonb not null,           -- the websocket Payload (ISO-8601 timestamps)
    audience       text not null,            -- 'members': every member (+ arns); 'only': just arns
    arns           text[] not null default '{}'
);
