-- Channel flows run their processors (sql/api/messaging_flow.sql, src/flows/flows.c).
--
-- A STANDARD message sent or updated in a channel with a flow waits for its processor: one row of
-- carillon.flow_messages per processing (keyed by the CallbackId handed to the processor) holds what
-- the processor was given, which processor it was and where the processing stands. A persistent new
-- message is also stored in carillon.channel_messages with status PENDING (seen only by its sender);
-- a non-persistent one lives only here until it is delivered; a pending update keeps its new content
-- here while the stored message still shows the previous one to everybody.
--
-- Rows stay after the processing ends (state SENT, DENIED or FAILED) so that a second callback for
-- the same CallbackId is answered ConflictException; they are pruned once their deadline lies well
-- behind (carillon.flow_prune).

-- Status.Detail of a stored message (FAILED: why the processor could not be reached).
alter table carillon.channel_messages add column status_detail text;

create table carillon.flow_messages (
    callback_id   text primary key,        -- 32 lowercase hex chars, passed to the processor
    channel_arn   text not null references carillon.channels(arn) on delete cascade,
    message_id    text not null,
    kind          text not null,           -- CREATE | UPDATE
    persistent    boolean not null,
    sender_arn    text not null,
    message       jsonb not null,          -- the message as submitted: the websocket ChannelMessage
                                           -- document with Status PENDING, plus PushNotification
    processor     jsonb not null,          -- the flow's processor when the message was sent
    state         text not null default 'PENDING',  -- PENDING | SENT | DENIED | FAILED
    created_at    timestamptz not null,
    deadline      timestamptz not null,    -- no callback after this (ForbiddenException)
    finished_at   timestamptz
);
create index flow_messages_message_idx on carillon.flow_messages (channel_arn, message_id);
create index flow_messages_deadline_idx on carillon.flow_messages (deadline);
