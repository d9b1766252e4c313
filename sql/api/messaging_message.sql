-- ChannelMessage: SendChannelMessage (the hot path), GetChannelMessage, ListChannelMessages,
-- UpdateChannelMessage, RedactChannelMessage, DeleteChannelMessage, GetChannelMessageStatus.
--
-- Access (Chime's "Understanding authorization by role" table):
--   * Send: only members of the channel, and not HIDDEN ones (they observe, they do not speak).
--     AppInstanceAdmins and moderators must be members too ("create a membership for yourself
--     first"). The bearer must still be a user or bot of the AppInstance.
--   * Get / List: whoever sees the channel (carillon.require_visible: members, moderators, admins;
--     anyone of the AppInstance for a PUBLIC channel).
--   * Update: only the sender, and only while it is still a member (or a moderator/admin).
--   * Redact: the sender (while a member) or a moderator/admin of the channel.
--   * Delete: AppInstanceAdmins only. Chime: "Only admins can perform this action"; its role table
--     lists DeleteChannelMessage as Denied for moderators and for members (senders included).
--   * GetChannelMessageStatus: only the sender ("your own messages").
--   * Targeted messages (Target [{MemberArn}]) exist only for their sender and target: to everyone
--     else Get/Update/Redact/Status answer NotFound and List leaves them out (moderators and admins
--     included: "Only users who can see targeted messages can take actions on them"). The one
--     exception is Delete: "administrators can delete targeted messages that they can't see".
--
-- Decisions where Chime's documentation is silent:
--   * Sizes. STANDARD Content is at most 4096 BYTES of UTF-8 ("4KB"), CONTROL Content at most 30
--     bytes ("limited to 30 bytes"); bytes rather than characters so that the documented wire size
--     holds for any script, and so that stored content always fits the response shape Content
--     (max 4096 characters). Metadata keeps the model's limit (1024 characters, checked in C, as for
--     every other Metadata); CONTROL messages carry no Metadata at all (BadRequest, even ""). The same
--     limits apply to UpdateChannelMessage, by the type the message was sent with.
--   * Target: exactly one (the model); MemberArn must be present and a member of the channel (the
--     sender itself is allowed); otherwise BadRequest. HIDDEN members may be targets.
--   * MessageId: 32 lowercase hex characters (a random UUID without dashes).
--   * NON_PERSISTENT messages are never stored: they produce their CREATE_CHANNEL_MESSAGE event and
--     nothing else (Get answers NotFound, List never shows them, Update/Redact/Delete cannot reach
--     them), and they do not move the channel's LastMessageTimestamp ("the last persistent
--     message"; a typing indicator must not make a channel unread in the prefetch).
--   * Ordering. A persistent send first locks the channel row until commit -- by moving
--     channels.last_message_at forward to the request time, or, when that would not move it, with
--     SELECT ... FOR NO KEY UPDATE -- and only then takes seq = nextval(message_seq) and
--     created_at = greatest(request time, previous last_message_at). Per channel, (created_at, seq)
--     therefore grows in commit order, even across gateway nodes with skewed clocks and inside one
--     group-commit batch; ListChannelMessages pages on that key, so a walk never skips or repeats a
--     message while writes continue, and messages of the same millisecond keep their send order.
--     Update, Redact and Delete lock the channel row too (FOR NO KEY UPDATE, the same mode as the
--     send's update) before the message row: one lock order, channel then message, everywhere.
--   * NotBefore / NotAfter are inclusive bounds on CreatedTimestamp (the names say "not before" and
--     "not after"); NotBefore later than NotAfter is simply an empty listing.
--   * Redacting keeps the row (Redacted true), erases Content (stored as '') and Metadata, and sets
--     LastUpdatedTimestamp; redacting an already redacted message succeeds without a new event.
--     Updating a redacted message is ConflictException.
--   * UpdateChannelMessage replaces Content; Metadata and ContentType are replaced when given ("" clears
--     them) and kept when left out. It sets LastEditedTimestamp and LastUpdatedTimestamp.
--   * Event payloads (websocket, ISO timestamps): the ChannelMessage document. DELETE_CHANNEL_MESSAGE
--     carries the document without Content/Metadata/MessageAttributes (Content ""), so a deletion does
--     not re-broadcast what it removes. Events of a message go to the channel's members, to
--     [sender, target] only for a targeted message, and to the members of its sub-channel only for
--     an elastic channel's message.
--   * Elastic channels: every message lives in a sub-channel. Send requires SubChannelId (BadRequest)
--     and the sender's membership must be in that sub-channel (Forbidden); the target must be in it
--     too. Regular members list only their own sub-channel (SubChannelId required); moderators and
--     admins may list one sub-channel or, without SubChannelId, the whole channel. A SubChannelId
--     given to Get/Update/Redact/Delete/Status must name the message's sub-channel (NotFound);
--     members reach only messages of their sub-channel (Forbidden); senders edit or redact only
--     while they belong to the message's sub-channel (Chime: after a rebalance "that member can
--     only edit or redact the messages that they send in that new sub-channel"). On a channel that
--     is not elastic, SubChannelId is BadRequest.
--   * Channel flows (sql/api/messaging_flow.sql, docs/flows.md): in a channel with a flow, a STANDARD
--     message (persistent or not) and the update of one are answered Status PENDING and go to the
--     flow's processor; CONTROL messages bypass it. Get and List hide messages that are not SENT
--     (PENDING, FAILED) from everyone but their sender. GetChannelMessageStatus is the stored
--     status, with its Detail, or PENDING while an update of the message is being processed.

-- The message document. iso = true: websocket payload form, false: REST form. A redacted message
-- shows Content "" and no Metadata. p_sender saves the lookup of the sender's name when known.
create or replace function carillon.message_doc(m carillon.channel_messages, iso boolean,
                                                p_persistence text default 'PERSISTENT',
                                                p_sender jsonb default null) returns jsonb
language sql stable as $$
    select jsonb_strip_nulls(jsonb_build_object(
        'ChannelArn', m.channel_arn, 'MessageId', m.message_id,
        'Content', case when m.redacted then '' else m.content end,
        'Metadata', case when m.redacted then null else m.metadata end,
        'Type', m.type,
        'CreatedTimestamp', carillon.tsv(m.created_at, iso),
        'LastEditedTimestamp', carillon.tsv(m.edited_at, iso),
        'LastUpdatedTimestamp', carillon.tsv(m.updated_at, iso),
        'Sender', coalesce(p_sender, carillon.identity_of(m.sender_arn)),
        'Redacted', m.redacted, 'Persistence', p_persistence,
        'Status', jsonb_build_object('Value', m.status, 'Detail', m.status_detail),
        'MessageAttributes', m.attributes, 'SubChannelId', m.sub_channel_id,
        'ContentType', m.content_type, 'Target', m.target))
$$;

-- ChannelMessageSummary (ListChannelMessages): the document without ChannelArn, Persistence and
-- SubChannelId.
create or replace function carillon.message_summary(m carillon.channel_messages) returns jsonb
language sql stable as $$
    select carillon.message_doc(m, false) - 'ChannelArn' - 'Persistence' - 'SubChannelId'
$$;

-- Who hears about a message: [sender, target] for a targeted message, the members of its
-- sub-channel in an elastic channel, else every member of the channel.
create or replace function carillon.message_event(p_app_id text, m carillon.channel_messages, p_type text,
                                                  p_payload jsonb) returns jsonb
language sql stable as $$
    select case
        when m.target is not null then
            carillon.event(m.channel_arn, p_app_id, p_type, m.type, p_payload, 'only',
                           case when m.target->0->>'MemberArn' = m.sender_arn then array[m.sender_arn]
                                else array[m.sender_arn, m.target->0->>'MemberArn'] end)
        when m.sub_channel_id is not null then
            carillon.event(m.channel_arn, p_app_id, p_type, m.type, p_payload, 'only',
                           array(select member_arn from carillon.channel_memberships
                                  where channel_arn = m.channel_arn and sub_channel_id = m.sub_channel_id
                                  order by member_arn))
        else carillon.event(m.channel_arn, p_app_id, p_type, m.type, p_payload)
    end
$$;

-- Content limits by message type (see the header).
create or replace function carillon.message_check_content(p_type text, p_content text, p_has_metadata boolean)
returns void language plpgsql immutable as $$
begin
    if p_type = 'CONTROL' then
        if octet_length(p_content) > 30 then
            perform carillon.fail('CH400', format('CONTROL message content is limited to 30 bytes (got %s)', octet_length(p_content)));
        end if;
        if p_has_metadata then
            perform carillon.fail('CH400', 'CONTROL messages cannot carry Metadata');
        end if;
    elsif octet_length(p_content) > 4096 then
        perform carillon.fail('CH400', format('STANDARD message content is limited to 4096 bytes (got %s)', octet_length(p_content)));
    end if;
end $$;

-- The channel named by input.ChannelArn, locked (FOR NO KEY UPDATE, as a send's update of
-- last_message_at locks it) before any message row; the bearer must belong to its AppInstance.
create or replace function carillon.message_channel_locked(ctx jsonb, input jsonb) returns carillon.channels
language plpgsql as $$
declare c carillon.channels := carillon.must_exist(
    (select t from carillon.channels t where t.arn = input->>'ChannelArn' for no key update),
    format('Channel %s not found', input->>'ChannelArn'));
begin
    perform carillon.require_app_identity(c.app_instance_id, carillon.bearer(ctx, input));
    return c;
end $$;

-- SubChannelId exists only on elastic channels.
create or replace function carillon.message_check_sub_channel(c carillon.channels, input jsonb) returns void
language plpgsql immutable as $$
begin
    if c.elastic is null and input ? 'SubChannelId' then
        perform carillon.fail('CH400', 'SubChannelId applies only to elastic channels');
    end if;
end $$;

-- The stored message input.MessageId of channel c as the bearer may see it: NotFound when it does
-- not exist, is targeted at someone else, is still being processed and not the bearer's, or lies in
-- another sub-channel than the SubChannelId given. In an elastic channel, a bearer who is neither
-- moderator nor admin must belong to the message's sub-channel (Forbidden). p_lock: FOR UPDATE.
create or replace function carillon.message_visible(c carillon.channels, input jsonb, p_bearer text,
                                                    p_lock boolean default false)
returns carillon.channel_messages language plpgsql as $$
declare m carillon.channel_messages%rowtype;
begin
    perform carillon.message_check_sub_channel(c, input);
    if p_lock then
        select * into m from carillon.channel_messages
         where channel_arn = c.arn and message_id = input->>'MessageId' for update;
    else
        select * into m from carillon.channel_messages
         where channel_arn = c.arn and message_id = input->>'MessageId';
    end if;
    if not found
       or (m.target is not null and m.sender_arn <> p_bearer and m.target->0->>'MemberArn' <> p_bearer)
       or (m.status <> 'SENT' and m.sender_arn <> p_bearer)
       or (input ? 'SubChannelId' and m.sub_channel_id is distinct from input->>'SubChannelId') then
        perform carillon.fail('CH404', format('Message %s not found in channel %s', input->>'MessageId', c.arn));
    end if;
    if m.sub_channel_id is not null and not carillon.can_manage(c, p_bearer)
       and not exists (select 1 from carillon.channel_memberships
                        where channel_arn = c.arn and member_arn = p_bearer and sub_channel_id = m.sub_channel_id) then
        perform carillon.fail('CH403', 'The message belongs to a sub-channel you are not a member of');
    end if;
    return m;
end $$;

-- The sender may still act on its message (edit, redact): it must be a member of the channel -- of
-- the message's sub-channel in an elastic channel -- or manage the channel.
create or replace function carillon.message_sender_may_act(c carillon.channels, m carillon.channel_messages)
returns boolean language sql stable as $$
    select exists (select 1 from carillon.channel_memberships
                    where channel_arn = c.arn and member_arn = m.sender_arn
                      and (m.sub_channel_id is null or sub_channel_id = m.sub_channel_id))
           or (m.sub_channel_id is null and carillon.can_manage(c, m.sender_arn))
$$;

-- SendChannelMessage: 201 {ChannelArn, MessageId, Status {Value SENT}, SubChannelId}.
-- The hot path, kept to three statements for an ordinary channel and no helper calls: the checks and
-- the event document are written out inline, because SQL-function calls made from PL/pgSQL are not
-- inlined and cost more than the rest of the work (measured: with carillon.message_doc/message_event
-- the function took ~0.55 ms per message inside a group-commit subtransaction, ~0.13 ms without):
--   1. the channel: a persistent message moves last_message_at forward, which locks the row; when
--      the clock does not move (several messages in one millisecond, or a request stamped before the
--      channel's last message) the row is only locked (SELECT ... FOR NO KEY UPDATE), so that a busy
--      channel does not get one new row version per message -- at most one per millisecond;
--   2. the bearer: its membership, its identity in the AppInstance, and the target's membership;
--   3. the insert (persistent messages only).
create or replace function carillon_api.send_channel_message(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_arn text := input->>'ChannelArn';
    v_bearer text := coalesce(input->>'ChimeBearer', ctx->>'user_arn'); -- carillon.bearer, inline: hot path
    v_now timestamptz := to_timestamp((ctx->>'now_ms')::bigint / 1000.0); -- carillon.req_time, inline
    v_type text := input->>'Type';
    v_content text := input->>'Content';
    v_persistent boolean := input->>'Persistence' = 'PERSISTENT';
    v_sub text := input->>'SubChannelId';
    v_target text;
    -- A persistent message carries the key of its ClientRequestToken (always present: the SDKs fill
    -- it in), unique, so that the message's own row makes the send idempotent: a retry finds the row
    -- instead of writing an idempotency record (carillon.run_op skips that for persistent sends).
    v_token text := input->>'ClientRequestToken';
    v_key uuid := case when v_token is not null and input->>'Persistence' = 'PERSISTENT'
                       then carillon.send_request_key(ctx, input) end;
    v_id text := case when v_key is not null then carillon.send_message_id(ctx, input)
                      else replace(gen_random_uuid()::text, '-', '') end;
    v_prev carillon.channel_messages;
    v_app_id text;
    v_elastic boolean;
    v_at timestamptz;
    v_mtype text;
    v_msub text;
    v_sender jsonb;
    v_target_ok boolean;
    v_at_iso text;
    v_audience text := 'members';
    v_arns text[] := '{}';
    v_flow text;
begin
    if v_type = 'CONTROL' then
        if octet_length(v_content) > 30 then
            perform carillon.fail('CH400', format('CONTROL message content is limited to 30 bytes (got %s)', octet_length(v_content)));
        end if;
        if input ? 'Metadata' then
            perform carillon.fail('CH400', 'CONTROL messages cannot carry Metadata');
        end if;
    elsif octet_length(v_content) > 4096 then
        perform carillon.fail('CH400', format('STANDARD message content is limited to 4096 bytes (got %s)', octet_length(v_content)));
    end if;
    if input ? 'Target' then
        v_target := input #>> '{Target,0,MemberArn}';
        if v_target is null then
            perform carillon.fail('CH400', 'Target needs a MemberArn');
        end if;
    end if;
    if v_bearer is null then
        perform carillon.fail('CH400', 'ChimeBearer is required');
    end if;

    -- 1. The channel (locked first: see the ordering note in the header).
    if v_persistent then
        update carillon.channels set last_message_at = v_now
         where arn = v_arn and (last_message_at is null or last_message_at < v_now)
        returning app_instance_id, elastic is not null, v_now, flow_arn into v_app_id, v_elastic, v_at, v_flow;
        if not found then
            select app_instance_id, elastic is not null, greatest(last_message_at, v_now), flow_arn
              into v_app_id, v_elastic, v_at, v_flow
              from carillon.channels where arn = v_arn for no key update;
        end if;
    else
        select app_instance_id, elastic is not null, v_now, flow_arn into v_app_id, v_elastic, v_at, v_flow
          from carillon.channels where arn = v_arn;
    end if;
    -- Channel flows process STANDARD messages only (CONTROL messages bypass them).
    if v_type = 'CONTROL' then
        v_flow := null;
    end if;
    if v_app_id is null then
        perform carillon.fail('CH404', format('Channel %s not found', v_arn));
    end if;

    -- 2. The bearer and the target.
    select m.type, m.sub_channel_id,
           coalesce((select jsonb_build_object('Arn', u.arn, 'Name', u.name) from carillon.app_instance_users u
                      where u.arn = v_bearer and u.app_instance_id = v_app_id),
                    (select jsonb_strip_nulls(jsonb_build_object('Arn', b.arn, 'Name', b.name))
                       from carillon.app_instance_bots b where b.arn = v_bearer and b.app_instance_id = v_app_id)),
           v_target is null or exists (select 1 from carillon.channel_memberships t
                                        where t.channel_arn = v_arn and t.member_arn = v_target
                                          and (not v_elastic or t.sub_channel_id = v_sub))
      into v_mtype, v_msub, v_sender, v_target_ok
      from (select 1) one
      left join carillon.channel_memberships m on m.channel_arn = v_arn and m.member_arn = v_bearer;
    if v_sender is null then
        perform carillon.fail('CH403', format('%s is not an AppInstanceUser or AppInstanceBot of this AppInstance', v_bearer));
    end if;
    if v_mtype is null then
        perform carillon.fail('CH403', 'Only members of the channel can send messages to it');
    end if;
    if v_mtype = 'HIDDEN' then
        perform carillon.fail('CH403', 'HIDDEN members cannot send messages');
    end if;
    if v_elastic then
        if v_sub is null then
            perform carillon.fail('CH400', 'SubChannelId is required to send to an elastic channel');
        end if;
        if v_msub is distinct from v_sub then
            perform carillon.fail('CH403', format('The sender is not a member of sub-channel %s', v_sub));
        end if;
    elsif v_sub is not null then
        perform carillon.fail('CH400', 'SubChannelId applies only to elastic channels');
    end if;
    if not v_target_ok then
        perform carillon.fail('CH400', format('The target %s is not a member of the channel', v_target));
    end if;

    -- 3. The message.
    if v_persistent then
        insert into carillon.channel_messages
            (channel_arn, message_id, request_key, seq, sender_arn, type, content, metadata, content_type,
             attributes, push_notification, target, sub_channel_id, created_at, updated_at, status)
        values (v_arn, v_id, v_key, nextval('carillon.message_seq'), v_bearer, v_type, v_content,
                input->>'Metadata', input->>'ContentType', input->'MessageAttributes', input->'PushNotification',
                input->'Target', v_sub, v_at, v_at, case when v_flow is null then 'SENT' else 'PENDING' end)
        on conflict (request_key) do nothing;
        if not found then
            -- The same ClientRequestToken again: the same request answers as before (with the id
            -- stored then), and emits nothing; other parameters are a Conflict.
            select * into v_prev from carillon.channel_messages where request_key = v_key;
            v_id := v_prev.message_id;
            if v_prev.type is distinct from v_type or v_prev.content is distinct from v_content
               or v_prev.metadata is distinct from input->>'Metadata'
               or v_prev.content_type is distinct from input->>'ContentType'
               or v_prev.attributes is distinct from input->'MessageAttributes'
               or v_prev.target is distinct from input->'Target'
               or v_prev.sub_channel_id is distinct from v_sub then
                if v_prev.redacted or v_prev.edited_at is not null
                   or (v_flow is not null and v_prev.status <> 'PENDING') then
                    -- edited, redacted or changed by its channel flow's processor since: a late
                    -- retry of the original send
                    return jsonb_strip_nulls(jsonb_build_object('ChannelArn', v_arn, 'MessageId', v_id,
                        'Status', jsonb_build_object('Value', v_prev.status), 'SubChannelId', v_prev.sub_channel_id));
                end if;
                perform carillon.fail('CH409', 'The ClientRequestToken was already used with different parameters');
            end if;
            return jsonb_strip_nulls(jsonb_build_object('ChannelArn', v_arn, 'MessageId', v_id,
                'Status', jsonb_build_object('Value', v_prev.status), 'SubChannelId', v_sub));
        end if;
        -- The push intents, in this transaction (sql/api/push.sql).
        -- (A message held for its channel flow's processor pushes once it is SENT: carillon.flow_finish.)
        perform carillon.push_enqueue_message(v_arn, v_id) where input ? 'PushNotification' and v_flow is null;
    end if;

    if v_flow is not null then
        return carillon.flow_send(input, v_id, v_app_id, v_flow, v_sender, v_at);
    end if;

    -- The event (carillon.message_event's audience rules, inline).
    if v_target is not null then
        v_audience := 'only';
        v_arns := case when v_target = v_bearer then array[v_bearer] else array[v_bearer, v_target] end;
    elsif v_sub is not null then
        v_audience := 'only';
        v_arns := array(select member_arn from carillon.channel_memberships
                         where channel_arn = v_arn and sub_channel_id = v_sub order by member_arn);
    end if;
    v_at_iso := to_char(v_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    return jsonb_strip_nulls(jsonb_build_object(
        'ChannelArn', v_arn, 'MessageId', v_id, 'Status', jsonb_build_object('Value', 'SENT'),
        'SubChannelId', v_sub,
        '__events', jsonb_build_array(jsonb_build_object(
            'channel_arn', v_arn, 'app_instance_id', v_app_id, 'event_type', 'CREATE_CHANNEL_MESSAGE',
            'message_type', v_type, 'audience', v_audience, 'arns', to_jsonb(v_arns),
            'joins', '[]'::jsonb, 'leaves', '[]'::jsonb, 'closes', false,
            'payload', jsonb_strip_nulls(jsonb_build_object(
                'ChannelArn', v_arn, 'MessageId', v_id, 'Content', v_content, 'Metadata', input->>'Metadata',
                'Type', v_type, 'CreatedTimestamp', v_at_iso, 'LastUpdatedTimestamp', v_at_iso,
                'Sender', v_sender, 'Redacted', false, 'Persistence', input->>'Persistence',
                'Status', jsonb_build_object('Value', 'SENT'), 'MessageAttributes', input->'MessageAttributes',
                'SubChannelId', v_sub, 'ContentType', input->>'ContentType', 'Target', input->'Target'))))));
end $$;

-- A persistent send's idempotency key: the md5 of its channel, sender and ClientRequestToken, as a
-- uuid (channel_messages.request_key, unique: see sql/migrations/095_message_ids.sql).
create or replace function carillon.request_key_of(p_arn text, p_bearer text, p_token text) returns uuid
language sql immutable as $$
    select md5(p_arn || chr(1) || p_bearer || chr(1) || p_token)::uuid
$$;
create or replace function carillon.send_request_key(ctx jsonb, input jsonb) returns uuid
language sql immutable as $$
    select carillon.request_key_of(input->>'ChannelArn', coalesce(input->>'ChimeBearer', ctx->>'user_arn', ''),
                                   input->>'ClientRequestToken')
$$;

-- A persistent message's id: the request time in milliseconds (12 hex digits), so that a channel's
-- new messages go to the right edge of the primary key, then 20 hex digits of the request key, so
-- that two sends in one millisecond differ. A retry of the send is found by its request key and
-- answers with the id stored the first time. The batch path below computes it in two statements;
-- this keeps the two and the per-item function's formula one. send_message_id_of takes the request
-- key already computed (send_batch's check has it).
create or replace function carillon.message_id_at(p_now_ms bigint, p_key uuid) returns text
language sql immutable as $$
    select lpad(to_hex(p_now_ms), 12, '0') || left(replace(p_key::text, '-', ''), 20)
$$;
create or replace function carillon.send_message_id_of(ctx jsonb, p_key uuid) returns text
language sql immutable as $$
    select carillon.message_id_at((ctx->>'now_ms')::bigint, p_key)
$$;
-- The CREATE_CHANNEL_MESSAGE event's payload of a plain persistent send (send_batch, send_few), as
-- the JSON text the websocket frame carries (events.payload_text, migration 097): the document
-- jsonb_strip_nulls(jsonb_build_object(...)) of the item path makes -- the same members, no null
-- member, MessageAttributes and Sender stripped of nulls as deep as that strips them -- built as
-- text, with no jsonb document on the way (one SQL expression: the planner inlines it, which it
-- would not do for a function declared immutable around the stable to_json). What it
-- saves the lane and every listener: BENCHMARKS.md, issue 11 session 16. tests/sql/50_send_batch.sql
-- compares it with the item path's payload as jsonb. The message id (hex digits) and the Type
-- (CONTROL or STANDARD: both callers' checks decline any other) need no escaping and get none.
create or replace function carillon.sent_message_payload_of(p_arn text, p_id text, p_content text, p_metadata text,
                                                            p_type text, p_iso text, p_sender jsonb,
                                                            p_attributes jsonb, p_content_type text) returns text
language sql stable as $$
    select '{"ChannelArn": ' || to_json(p_arn)::text
        || ', "MessageId": "' || p_id || '"'
        || coalesce(', "Content": ' || to_json(p_content)::text, '')
        || coalesce(', "Metadata": ' || to_json(p_metadata)::text, '')
        || coalesce(', "Type": "' || p_type || '"', '')
        || ', "CreatedTimestamp": "' || p_iso || '", "LastUpdatedTimestamp": "' || p_iso || '"'
        || coalesce(', "Sender": ' || jsonb_strip_nulls(nullif(p_sender, 'null'))::text, '')
        || ', "Redacted": false, "Persistence": "PERSISTENT", "Status": {"Value": "SENT"}'
        || coalesce(', "MessageAttributes": '
                    || jsonb_strip_nulls(nullif(p_attributes, 'null'))::text, '')
        || coalesce(', "ContentType": ' || to_json(p_content_type)::text, '')
        || '}'
$$;
create or replace function carillon.sent_message_payload(p_arn text, p_id text, p_input jsonb, p_iso text,
                                                         p_sender jsonb) returns text
language sql stable as $$
    select carillon.sent_message_payload_of(p_arn, p_id, p_input->>'Content', p_input->>'Metadata',
                                            p_input->>'Type', p_iso, p_sender, p_input->'MessageAttributes',
                                            p_input->>'ContentType')
$$;
create or replace function carillon.send_message_id(ctx jsonb, input jsonb) returns text
language sql immutable as $$
    select carillon.send_message_id_of(ctx, carillon.send_request_key(ctx, input))
$$;

-- The set-based group commit of SendChannelMessage (called by carillon_api.invoke_batch; it locks
-- the batch's channels in ARN order itself). A batch made only of ordinary persistent sends --
-- no Target, no SubChannelId, a ClientRequestToken, a channel that is not elastic and has no flow
-- for the message (CONTROL messages bypass flows) -- that all pass every check of
-- send_channel_message is written with two statements whatever its size:
--   1. one SELECT checks every item (the token's user, sizes, the channel, the sender's
--      membership and identity); a retry (a request key already stored, or twice in the batch) is
--      met by the insert of step 2 in the unique request_key index: unique_violation, which this
--      function catches (nothing of the batch is kept);
--   2. after the event lock, one statement inserts all messages, moves each channel's
--      last_message_at once, logs the events (what flush_events would write, without a JSON list
--      in between) and returns the message ids, from which the answers are written (the gateway
--      writes them for a batch it sends as columns; this function with
--      carillon.sent_message_answer for one that came as JSON: the JSON text of each response body);
-- and the push intents of the messages that ask for a push. Each statement costs a fixed executor
-- start-up and PL/pgSQL dispatch (≈ 0.02-0.03 ms) that a batch of one or two messages -- the size at
-- a moderate rate -- pays in full, so the steps are few.
-- It returns the outputs in item order. Anything else -- another operation in the batch, a check
-- that fails, a retry -- returns NULL before writing anything, and the caller runs the batch item
-- by item as before, where each item gets its own answer. The results are the same either way: message ids, CreatedTimestamp
-- (request time, never before the channel's previous message, non-decreasing in item order per
-- channel), seq and event position in item order, the CREATE_CHANNEL_MESSAGE event document.
-- (It returned jsonb: the old function goes first, once.)
do $$
begin
    if exists (select 1 from pg_proc where oid = to_regprocedure('carillon.send_batch(jsonb)')
                                     and prorettype = 'jsonb'::regtype) then
        drop function carillon.send_batch(jsonb);
    end if;
end $$;
create or replace function carillon.send_batch(p_items jsonb) returns text[]
language plpgsql as $$
declare
    v_plain boolean;
    v_ids text[];
begin
    -- 0. Only batches of plain persistent sends (cheap: no table read). A CONTROL message with a
    -- Metadata member, even JSON null, is not one (the item path refuses it; send_messages sees
    -- only the member's text).
    select coalesce(bool_and(coalesce(e->>'fn' = 'send_channel_message'
                                      and e->'input'->>'Persistence' = 'PERSISTENT'
                                      and not e->'input' ? 'Target' and not e->'input' ? 'SubChannelId'
                                      and e->'input'->>'ClientRequestToken' is not null
                                      and coalesce(e->'input'->>'ChimeBearer', e->'ctx'->>'user_arn') is not null
                                      and not (e->'input'->>'Type' = 'CONTROL' and e->'input' ? 'Metadata'),
                                      false)), false)
      into v_plain
      from jsonb_array_elements(p_items) e;
    if not v_plain then
        return null;
    end if;
    -- The items as carillon_api.send_messages takes them (the gateway sends a batch of plain sends
    -- as these columns itself: src/api/send_batch.c), and the answers from the message ids it
    -- returns, as the gateway writes them.
    begin
        select carillon_api.send_messages(
                           array_agg(distinct e->'input'->>'ChannelArn'),
                           array_agg(e->'input'->>'ChannelArn' order by n),
                           array_agg(coalesce(e->'input'->>'ChimeBearer', e->'ctx'->>'user_arn') order by n),
                           array_agg(e->'ctx'->>'principal' order by n),
                           array_agg(e->'ctx'->>'user_arn' order by n),
                           array_agg((e->'ctx'->>'user_gen')::bigint order by n),
                           array_agg(e->'input'->>'Type' order by n),
                           array_agg(e->'input'->>'Content' order by n),
                           array_agg(e->'input'->>'Metadata' order by n),
                           array_agg(e->'input'->>'ContentType' order by n),
                           array_agg(e->'input'->'MessageAttributes' order by n),
                           array_agg(e->'input'->'PushNotification' order by n),
                           array_agg(k.key order by n),
                           array_agg(carillon.message_id_at((e->'ctx'->>'now_ms')::bigint, k.key) order by n),
                           array_agg((e->'ctx'->>'now_ms')::bigint order by n),
                           null, null)
          into v_ids
          from jsonb_array_elements(p_items) with ordinality as t(e, n),
               lateral (select carillon.send_request_key(e->'ctx', e->'input') as key) k;
    exception when unique_violation then
        -- a retry in the batch: send_messages' insert met its request key (nothing of it is kept)
        return null;
    end;
    if v_ids is null then
        return null;
    end if;
    return (select array_agg(carillon.sent_message_answer(e->'input'->>'ChannelArn', v_ids[n]) order by n)
              from jsonb_array_elements(p_items) with ordinality as t(e, n));
end $$;

-- The answer of a plain send: its response body's JSON text as a jsonb of it would print (src/api/
-- send_batch.c writes the same).
create or replace function carillon.sent_message_answer(p_arn text, p_id text) returns text
language sql immutable as $$
    select '{"Status": {"Value": "SENT"}, "MessageId": ' || to_json(p_id)::text
           || ', "ChannelArn": ' || to_json(p_arn)::text || '}'
$$;

-- send_batch's steps 1-3 on the batch as columns, one element an item, in item order -- the
-- gateway's call for a batch of plain sends (src/api/send_batch.c: select unnest(...), a row an
-- answer, none when it declines): p_channels the batch's distinct channels; p_bearers the sender
-- (ChimeBearer, else the credential's user); p_principals, p_user_arns, p_user_gens the caller (the
-- request context's principal, user_arn, user_gen); the input's members (NULL where absent;
-- MessageAttributes and PushNotification as the JSON given, so JSON null is present); p_keys and
-- p_ids each send's request key and message id (carillon.request_key_of, carillon.message_id_at:
-- the gateway computes the same); p_now_ms the request time; p_heads and p_tails each event document
-- before its CreatedTimestamp's value and after its Sender (carillon.sent_message_payload_of's text;
-- NULL: this function writes the document). Returns the message ids in item order
-- (the gateway writes each answer from its request and id), or NULL, before writing anything, for a
-- batch the item path must take.
-- (Earlier forms, which took the request tokens and computed keys and ids here, go first, once.)
do $$
begin
    drop function if exists carillon_api.send_messages(text[], text[], text[], text[], text[], bigint[], text[],
                                                       text[], text[], text[], jsonb[], jsonb[], text[], bigint[]);
    drop function if exists carillon_api.send_messages(text[], text[], text[], text[], text[], bigint[], text[],
                                                       text[], text[], text[], jsonb[], jsonb[], uuid[], text[],
                                                       bigint[]);
    drop function if exists carillon.send_cols(text[], text[], text[], text[], text[], bigint[], text[], text[],
                                               text[], text[], jsonb[], jsonb[], text[], bigint[]);
end $$;
create or replace function carillon_api.send_messages(p_channels text[], p_arns text[], p_bearers text[],
                                                      p_principals text[], p_user_arns text[], p_user_gens bigint[],
                                                      p_types text[], p_contents text[], p_metadata text[],
                                                      p_content_types text[], p_attributes jsonb[], p_push jsonb[],
                                                      p_keys uuid[], p_ids text[], p_now_ms bigint[],
                                                      p_heads text[], p_tails text[])
returns text[]
-- Its statements' plans are generic, made once per connection. With the batch in arrays the
-- planner can tell a custom plan the arrays' lengths, and after an ANALYZE of the growing tables
-- the plan cache chose custom plans -- every statement planned again for every batch, the write
-- statement's CTEs included: the lane's CPU a message 90 -> 175 µs from the fourth minute of
-- bench/send.sh long on (BENCHMARKS.md, issue 11 session 18). Every plan here is index probes
-- whatever the batch's size.
language plpgsql set plan_cache_mode = force_generic_plan as $$
declare
    v_ok boolean;
    v_out text[];
    v_notified text;
    -- What the check found for each item, in item order, for the write to use as it is: the
    -- channel's AppInstance and last message time (its row is locked above), the sender
    -- document.
    v_apps text[];
    v_lasts timestamptz[];
    v_senders jsonb[];
    v_sender_texts text[];
begin
    -- The channel rows, locked to commit in ARN order, as lock_batch_channels locks them for the
    -- item path (a batch of sends has no other rows to lock: invoke_batch takes that function only
    -- for a batch declined here); a batch's one channel by its key (most have one: that spared the
    -- lane a pass and a sort, BENCHMARKS.md issue 11 session 17). A statement of its own, before the
    -- check: the check's snapshot must be taken after the locks are held, so that it sees what a
    -- write that held one committed.
    if cardinality(p_channels) = 1 then
        perform 1 from carillon.channels where arn = p_channels[1] for no key update;
    else
        perform 1 from carillon.channels where arn = any(p_channels) order by arn for no key update;
    end if;
    -- 1. Every check of send_channel_message, for every item at once.
    -- Every lookup is a LATERAL subquery with LIMIT 1: one index probe per row whatever the planner
    -- guesses about the batch (a plain join or EXISTS may be turned into a hash of the whole table,
    -- which costs as much as the table is large: measured, 75 ms per batch of 64 over 7,000
    -- messages, growing with the table). The lookups that depend only on the channel, the sender
    -- and the credential run once for each such combination in the batch (`pairs`: a batch is
    -- mostly one sender's sends into one channel; the check of 31 such sends 0.45 -> 0.19 ms,
    -- BENCHMARKS.md issue 11 session 15); the bot is looked up only when no user has the sender's
    -- ARN, the credential's user apart only when it is not the sender. A retry -- a request key
    -- already stored, or twice in the batch -- is not looked for here: the insert below meets it in
    -- the unique request_key index, which the insert probes anyway, and the statement fails with
    -- unique_violation before anything commits; the caller then sends the batch the general way,
    -- as any this function declines (the gateway: src/api/sql_handler.c; send_batch(jsonb) catches
    -- it). A probe an item here was 4 % of the lane's instructions (BENCHMARKS.md, issue 11 session
    -- 19), a retry in a batch is rare, and the exception block that would catch it here is a
    -- subtransaction for every batch.
    with items as (
        select t.n, t.arn, t.bearer, t.principal, t.user_arn, t.user_gen, t.type, t.content,
               t.metadata is not null as has_metadata
          from unnest(p_arns, p_bearers, p_principals, p_user_arns, p_user_gens, p_types, p_contents, p_metadata)
               with ordinality as t(arn, bearer, principal, user_arn, user_gen, type, content, metadata, n)),
    pairs as (
        select p.arn, p.bearer, p.principal, p.user_arn, p.user_gen,
               c.app_instance_id as app, c.last_message_at as last_at, c.flow_arn is null as no_flow,
               sd.sender, jsonb_strip_nulls(sd.sender)::text as sender_text,
               -- coalesce: a missing row (no channel, no membership) makes a check NULL, which
               -- bool_and would skip.
               coalesce((p.principal is distinct from 'user'
                         or case when p.user_arn = p.bearer then u.generation = p.user_gen else tu.ok end)
               and c.arn is not null and c.elastic is null and m.type = 'DEFAULT'
               and (u.arn is not null or b.arn is not null), false) as ok
          from (select distinct arn, bearer, principal, user_arn, user_gen from items) p
          left join lateral (select c.arn, c.app_instance_id, c.elastic, c.flow_arn, c.last_message_at
                               from carillon.channels c
                              where c.arn = p.arn limit 1) c on true
          left join lateral (select m.type from carillon.channel_memberships m
                              where m.channel_arn = p.arn and m.member_arn = p.bearer limit 1) m on true
          left join lateral (select true as ok from carillon.app_instance_users tu
                              where p.principal = 'user' and p.user_arn <> p.bearer
                                and tu.arn = p.user_arn and tu.generation = p.user_gen limit 1) tu on true
          left join lateral (select u.arn, u.name, u.generation from carillon.app_instance_users u
                              where u.arn = p.bearer and u.app_instance_id = c.app_instance_id limit 1) u on true
          left join lateral (select b.arn, b.name from carillon.app_instance_bots b
                              where u.arn is null and b.arn = p.bearer and b.app_instance_id = c.app_instance_id
                              limit 1) b on true
          cross join lateral (select case when u.arn is not null then jsonb_build_object('Arn', u.arn, 'Name', u.name)
                                          else jsonb_strip_nulls(jsonb_build_object('Arn', b.arn, 'Name', b.name))
                                     end as sender) sd)
    -- The aggregates take the rows in item order from the sorted subquery (one sort instead of
    -- one per ordered aggregate).
    select coalesce(bool_and(ok), false),
           array_agg(app), array_agg(last_at), array_agg(sender), array_agg(sender_text)
      into v_ok, v_apps, v_lasts, v_senders, v_sender_texts
      from (
        select i.n, k.app, k.last_at, k.sender, k.sender_text,
               coalesce(k.ok and (k.no_flow or i.type = 'CONTROL')
               and case when i.type = 'CONTROL' then octet_length(i.content) <= 30 and not i.has_metadata
                        when i.type = 'STANDARD' then octet_length(i.content) <= 4096 end, false) as ok
          from items i
          left join pairs k on k.arn = i.arn and k.bearer = i.bearer and k.principal is not distinct from i.principal
                           and k.user_arn is not distinct from i.user_arn and k.user_gen is not distinct from i.user_gen
         order by i.n) s;
    if not v_ok then
        return null;
    end if;

    -- 2. The event lock first (held to commit, so positions are in commit order: see flush_events;
    -- taken after the channel rows, as every writer takes it), then the messages, the channels, the
    -- events and the answers in one statement, from what the check found (no second lookup).
    -- Sequence numbers and event positions are taken in item order: nextval runs in the projection
    -- of a subquery sorted by n.
    perform pg_advisory_xact_lock(7263, 1);
    with items as (
        select t.*, to_timestamp(t.now_ms / 1000.0) as now
          from unnest(p_arns, p_bearers, p_types, p_contents, p_metadata, p_content_types, p_attributes, p_push,
                      p_now_ms, v_apps, v_lasts, v_senders, v_sender_texts, p_keys, p_ids, p_heads, p_tails)
               with ordinality as t(arn, bearer, type, content, metadata, content_type, attributes, push,
                                    now_ms, app_instance_id, last_at, sender, sender_text, key, id, head, tail, n)),
    timed as (
        select i.*,
               greatest(i.last_at,
                        max(i.now) over (partition by i.arn order by i.n
                                         rows between unbounded preceding and current row)) as at
          from items i),
    numbered as (
        select o.*, nextval('carillon.message_seq') as seq, nextval('carillon.event_position') as position,
               to_char(o.at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as iso
          from (select * from timed order by n) o),
    stored as (
        insert into carillon.channel_messages
            (channel_arn, message_id, request_key, seq, sender_arn, type, content, metadata, content_type,
             attributes, push_notification, created_at, updated_at, status)
        select arn, id, key, seq, bearer, type, content, metadata, content_type, attributes, push, at, at, 'SENT'
          from numbered),
    -- One channel row per channel, found by its key (a join of the batch's rows with channels is
    -- planned as a hash join over a scan of channels, the batch taken for 100 rows: 0.15 ms a batch
    -- over 100 channels whose rows churn).
    moved as (
        update carillon.channels c set last_message_at = (select max(t.at) from timed t where t.arn = c.arn)
         where c.arn = any(p_channels)
           and (c.last_message_at is null
                or c.last_message_at < (select max(t.at) from timed t where t.arn = c.arn))),
    logged as (
        insert into carillon.events (position, app_instance_id, channel_arn, event_type, message_type, payload_text,
                                     audience, arns, joins, leaves, closes)
        select position, app_instance_id, arn, 'CREATE_CHANNEL_MESSAGE', type,
               -- The event document around its time and sender, as the gateway wrote it from the
               -- request (src/api/send_batch.c; as sent_message_payload_of writes it, byte for byte),
               -- which spared the lane 5 % of its instructions (BENCHMARKS.md, issue 11 session
               -- 19); written here for an item without one.
               coalesce(head || iso || '", "LastUpdatedTimestamp": "' || iso || '"'
                        || coalesce(', "Sender": ' || sender_text, '') || tail,
                        carillon.sent_message_payload_of(arn, id, content, metadata, type, iso, sender, attributes,
                                                         content_type)),
               'members', '{}', '{}', '{}', false
          from numbered)
    -- (A batch this large is read back from the log by the writing node too: carrying its events in
    -- the answers, as send_few does for a batch of up to four, costs the lane more than that one read.)
    -- The message ids in item order: the gateway writes the answers from them and the requests
    -- (src/api/send_batch.c; send_batch(jsonb) for a batch that came as JSON), which spared the lane
    -- 5 % of its instructions (BENCHMARKS.md, issue 11 session 19). The notification of the log's new
    -- end in the same statement (sent at commit, like any NOTIFY; a statement of its own cost one
    -- more executor start), when anyone would hear it (carillon.notify_events, as every writer
    -- sends it; this statement runs after the one that took the event lock).
    select array_agg(n.id order by n.n), carillon.notify_events(max(n.position))::text
      into v_out, v_notified
      from numbered n;

    -- 3. The push intents (sql/api/push.sql; they read the stored messages), a statement only for a
    -- batch with a message that asks for one (the test is an expression, which PL/pgSQL evaluates
    -- without starting an executor).
    if cardinality(array_remove(p_push, null)) > 0 then
        perform carillon.push_enqueue_message(t.arn, t.id)
           from unnest(p_arns, p_push, p_ids) as t(arn, push, id)
          where t.push is not null;
    end if;

    return v_out;
end $$;


-- The same group commit for a small batch, an item at a time (carillon_api.invoke_batch_rows takes it
-- for batches of up to eight sends; at a moderate rate a batch holds one or two). Each check and each
-- write is a plain statement with a cached plan, where send_batch's set-based statements and the
-- jsonb answer between invoke_batch and invoke_batch_rows cost a fixed executor start-up (every node of
-- their plans, every relation and index opened, every expression compiled) that a batch of one pays in
-- full: a recorded batch of one message 0.62 -> 0.43 ms, of two 0.94 -> 0.60, of four 0.98 -> 0.84, of
-- eight the same (BENCHMARKS.md, issue 11 session 13). It answers invoke_batch_rows' rows, so it locks
-- the batch's channels itself: one channel's row in its check (FOR NO KEY UPDATE, to commit), several
-- through lock_batch_channels (ARN order). No rows, before anything is written, for any batch that
-- send_batch declines; otherwise the rows, events, answers and notification send_batch's would be
-- (tests/sql/50_send_batch.sql runs both against the item-by-item path).
create or replace function carillon.send_few(p_items jsonb)
returns table(ok text, state text, message text,
              ev_position bigint, ev_channel_arn text, ev_event_type text, ev_message_type text, ev_payload text,
              ev_audience text, ev_arns text, ev_joins text, ev_leaves text, ev_closes boolean, ev_created_at float8)
language plpgsql as $$
declare
    v_n int := jsonb_array_length(p_items);
    e jsonb;
    v_in jsonb;
    v_ctx jsonb;
    v_type text;
    v_bearer text;
    v_key uuid;
    c record;
    v_sender jsonb;
    -- per item, in item order: what the check found, for the write
    v_arns text[] := '{}';
    v_bearers text[] := '{}';
    v_keys uuid[] := '{}';
    v_apps text[] := '{}';
    v_senders jsonb[] := '{}';
    v_ats timestamptz[] := '{}';
    v_ids text[] := '{}';
    -- per distinct channel: its running last message time
    v_chans text[] := '{}';
    v_lasts timestamptz[] := '{}';
    k int;
    j int;
    v_id text;
    v_seq bigint;
    v_pos bigint;
    v_iso text;
    v_payload text;
    v_created timestamptz;
begin
    -- The channel rows, locked to commit (lock_batch_channels: one row is locked by the check below;
    -- several in ARN order, as every batch takes them).
    -- (Here and below, a lookup is a PERFORM and a test of FOUND: an expression with a subquery
    -- is planned with a subplan, which costs several µs more a call.)
    if v_n > 1 then
        perform from jsonb_array_elements(p_items) i
         where i->'input'->>'ChannelArn' is distinct from p_items->0->'input'->>'ChannelArn';
        if found then
            perform carillon.lock_batch_channels(p_items);
        end if;
    end if;
    -- 1. Every check of send_batch (its steps 0 and 1), an item at a time.
    for k in 1 .. v_n loop
        e := p_items->(k - 1);
        v_in := e->'input';
        v_ctx := e->'ctx';
        v_type := v_in->>'Type';
        v_bearer := coalesce(v_in->>'ChimeBearer', v_ctx->>'user_arn');
        if e->>'fn' is distinct from 'send_channel_message' or v_in->>'Persistence' is distinct from 'PERSISTENT'
           or v_in ? 'Target' or v_in ? 'SubChannelId' or v_in->>'ClientRequestToken' is null
           or v_bearer is null then
            return;
        end if;
        if not coalesce(case when v_type = 'CONTROL' then octet_length(v_in->>'Content') <= 30 and not v_in ? 'Metadata'
                             when v_type = 'STANDARD' then octet_length(v_in->>'Content') <= 4096 end, false) then
            return;
        end if;
        if v_ctx->>'principal' = 'user' then
            perform from carillon.app_instance_users tu
             where tu.arn = v_ctx->>'user_arn' and tu.generation = (v_ctx->>'user_gen')::bigint;
            if not found then
                return;
            end if;
        end if;
        select ch.app_instance_id, ch.elastic, ch.flow_arn, ch.last_message_at into c
          from carillon.channels ch where ch.arn = v_in->>'ChannelArn' for no key update;
        if not found or c.elastic is not null or (c.flow_arn is not null and v_type <> 'CONTROL') then
            return;
        end if;
        perform from carillon.channel_memberships m
         where m.channel_arn = v_in->>'ChannelArn' and m.member_arn = v_bearer and m.type = 'DEFAULT';
        if not found then
            return;
        end if;
        select jsonb_build_object('Arn', u.arn, 'Name', u.name) into v_sender
          from carillon.app_instance_users u where u.arn = v_bearer and u.app_instance_id = c.app_instance_id;
        if v_sender is null then
            select jsonb_strip_nulls(jsonb_build_object('Arn', b.arn, 'Name', b.name)) into v_sender
              from carillon.app_instance_bots b where b.arn = v_bearer and b.app_instance_id = c.app_instance_id;
            if v_sender is null then
                return;
            end if;
        end if;
        -- a retry: a request key already stored, or twice in the batch (exact: see send_batch)
        v_key := carillon.send_request_key(v_ctx, v_in);
        if v_key = any(v_keys) then
            return;
        end if;
        perform from carillon.channel_messages r where r.request_key = v_key;
        if found then
            return;
        end if;
        -- CreatedTimestamp: the request time, never before the channel's previous message
        j := array_position(v_chans, v_in->>'ChannelArn');
        if j is null then
            v_chans := v_chans || (v_in->>'ChannelArn');
            v_lasts := v_lasts || c.last_message_at;
            j := cardinality(v_chans);
        end if;
        v_lasts[j] := greatest(v_lasts[j], to_timestamp((v_ctx->>'now_ms')::bigint / 1000.0));
        v_arns := v_arns || (v_in->>'ChannelArn');
        v_bearers := v_bearers || v_bearer;
        v_keys := v_keys || v_key;
        v_apps := v_apps || c.app_instance_id;
        v_senders := v_senders || v_sender;
        v_ats := v_ats || v_lasts[j];
    end loop;

    -- 2. The event lock (as send_batch), then each message, its event and its answer; sequence
    -- numbers and positions in item order.
    perform pg_advisory_xact_lock(7263, 1);
    for k in 1 .. v_n loop
        e := p_items->(k - 1);
        v_in := e->'input';
        v_id := carillon.send_message_id(e->'ctx', v_in);
        v_ids := v_ids || v_id;
        v_seq := nextval('carillon.message_seq');
        v_pos := nextval('carillon.event_position');
        v_iso := to_char(v_ats[k] at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
        insert into carillon.channel_messages
            (channel_arn, message_id, request_key, seq, sender_arn, type, content, metadata, content_type,
             attributes, push_notification, created_at, updated_at, status)
        values (v_arns[k], v_id, v_keys[k], v_seq, v_bearers[k], v_in->>'Type', v_in->>'Content', v_in->>'Metadata',
                v_in->>'ContentType', v_in->'MessageAttributes', v_in->'PushNotification', v_ats[k], v_ats[k], 'SENT');
        insert into carillon.events (position, app_instance_id, channel_arn, event_type, message_type, payload_text,
                                     audience, arns, joins, leaves, closes)
        values (v_pos, v_apps[k], v_arns[k], 'CREATE_CHANNEL_MESSAGE', v_in->>'Type',
                carillon.sent_message_payload(v_arns[k], v_id, v_in, v_iso, v_senders[k]),
                'members', '{}', '{}', '{}', false)
        returning payload_text, created_at into v_payload, v_created;
        ok := jsonb_build_object('ChannelArn', v_arns[k], 'MessageId', v_id,
                                 'Status', jsonb_build_object('Value', 'SENT'))::text;
        -- In a batch of up to four (the size at a moderate rate) each answer carries its event as the
        -- log now holds it (invoke_batch_rows' ev_ columns), and the writing node reads none of them
        -- back. Carrying cost the lane ≈ 14 µs a message (the payload printed from its jsonb and a
        -- larger answer, measured over batches of 31, before the payload was stored as text:
        -- migration 097), which a batch of one or two saves several times over in the read it
        -- spares; a larger batch, where one read serves many messages, is read back.
        if v_n <= 4 then
            ev_position := v_pos; ev_channel_arn := v_arns[k]; ev_event_type := 'CREATE_CHANNEL_MESSAGE';
            ev_message_type := v_in->>'Type'; ev_payload := v_payload; ev_audience := 'members';
            ev_arns := '[]'; ev_joins := '[]'; ev_leaves := '[]'; ev_closes := false;
            ev_created_at := extract(epoch from v_created);
        end if;
        return next;
    end loop;
    -- each channel's last message time once
    for j in 1 .. cardinality(v_chans) loop
        update carillon.channels set last_message_at = v_lasts[j]
         where arn = v_chans[j] and (last_message_at is null or last_message_at < v_lasts[j]);
    end loop;

    -- 3. The push intents (after the messages: they read them).
    for k in 1 .. v_n loop
        if p_items->(k - 1)->'input' ? 'PushNotification' then
            perform carillon.push_enqueue_message(v_arns[k], v_ids[k]);
        end if;
    end loop;

    perform carillon.notify_events(v_pos);
end $$;

-- GetChannelMessage: {ChannelMessage}.
create or replace function carillon_api.get_channel_message(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    m carillon.channel_messages;
begin
    perform carillon.require_visible(c, v_bearer);
    m := carillon.message_visible(c, input, v_bearer);
    return jsonb_build_object('ChannelMessage', carillon.message_doc(m, false));
end $$;

-- The messages of a listing, in order, at most p_lim: keys strictly between (p_lo_at, p_lo_seq) and
-- (p_hi_at, p_hi_seq). Four static statements (direction x sub-channel or not) so that each one is a
-- plain keyset range scan of an index: (channel_arn, created_at, seq), or the partial
-- (channel_arn, sub_channel_id, created_at, seq) of elastic sub-channels; the visibility filters
-- (targeted messages of others, messages still in a flow) apply to the rows of the range.
create or replace function carillon.message_range(p_channel text, p_sub text, p_asc boolean, p_bearer text,
                                                  p_lo_at timestamptz, p_lo_seq bigint,
                                                  p_hi_at timestamptz, p_hi_seq bigint, p_lim int)
returns setof carillon.channel_messages language plpgsql stable as $$
begin
    if p_sub is null and p_asc then
        return query select * from carillon.channel_messages m
          where m.channel_arn = p_channel
            and (m.created_at, m.seq) > (p_lo_at, p_lo_seq) and (m.created_at, m.seq) < (p_hi_at, p_hi_seq)
            and (m.target is null or m.sender_arn = p_bearer or m.target->0->>'MemberArn' = p_bearer)
            and (m.status = 'SENT' or m.sender_arn = p_bearer)
          order by m.created_at, m.seq limit p_lim;
    elsif p_sub is null then
        return query select * from carillon.channel_messages m
          where m.channel_arn = p_channel
            and (m.created_at, m.seq) > (p_lo_at, p_lo_seq) and (m.created_at, m.seq) < (p_hi_at, p_hi_seq)
            and (m.target is null or m.sender_arn = p_bearer or m.target->0->>'MemberArn' = p_bearer)
            and (m.status = 'SENT' or m.sender_arn = p_bearer)
          order by m.created_at desc, m.seq desc limit p_lim;
    elsif p_asc then
        return query select * from carillon.channel_messages m
          where m.channel_arn = p_channel and m.sub_channel_id = p_sub
            and (m.created_at, m.seq) > (p_lo_at, p_lo_seq) and (m.created_at, m.seq) < (p_hi_at, p_hi_seq)
            and (m.target is null or m.sender_arn = p_bearer or m.target->0->>'MemberArn' = p_bearer)
            and (m.status = 'SENT' or m.sender_arn = p_bearer)
          order by m.created_at, m.seq limit p_lim;
    else
        return query select * from carillon.channel_messages m
          where m.channel_arn = p_channel and m.sub_channel_id = p_sub
            and (m.created_at, m.seq) > (p_lo_at, p_lo_seq) and (m.created_at, m.seq) < (p_hi_at, p_hi_seq)
            and (m.target is null or m.sender_arn = p_bearer or m.target->0->>'MemberArn' = p_bearer)
            and (m.status = 'SENT' or m.sender_arn = p_bearer)
          order by m.created_at desc, m.seq desc limit p_lim;
    end if;
end $$;

-- ListChannelMessages: {ChannelArn, ChannelMessages, NextToken, SubChannelId}; keyset pagination on
-- (created_at, seq) -- the cursor is [created_at in epoch microseconds, seq]. NotBefore, NotAfter
-- and the cursor become one open key range: created_at >= NotBefore is key > (NotBefore, 0) (seq
-- starts at 1), created_at <= NotAfter is key < (NotAfter, max bigint), and the cursor tightens the
-- bound on the side the walk moves away from.
create or replace function carillon_api.list_channel_messages(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_lim int := carillon.page_size(input);
    v_sub text := input->>'SubChannelId';
    v_asc boolean := coalesce(input->>'SortOrder', 'DESCENDING') = 'ASCENDING';
    v_lo_at timestamptz := '-infinity';
    v_lo_seq bigint := 0;
    v_hi_at timestamptz := 'infinity';
    v_hi_seq bigint := 9223372036854775807;
    v_after_at timestamptz;
    v_after_seq bigint;
    v_rows jsonb;
begin
    perform carillon.require_visible(c, v_bearer);
    perform carillon.message_check_sub_channel(c, input);
    if c.elastic is not null and not carillon.can_manage(c, v_bearer) then
        if v_sub is null then
            perform carillon.fail('CH400', 'SubChannelId is required to list the messages of an elastic channel');
        end if;
        if not exists (select 1 from carillon.channel_memberships
                        where channel_arn = c.arn and member_arn = v_bearer and sub_channel_id = v_sub) then
            perform carillon.fail('CH403', format('Not a member of sub-channel %s', v_sub));
        end if;
    end if;
    if input ? 'NotBefore' then
        v_lo_at := timestamptz 'epoch' + round((input->>'NotBefore')::numeric * 1000000)::bigint * interval '1 microsecond';
    end if;
    if input ? 'NotAfter' then
        v_hi_at := timestamptz 'epoch' + round((input->>'NotAfter')::numeric * 1000000)::bigint * interval '1 microsecond';
    end if;
    if ctx->'after' is not null then
        v_after_at := timestamptz 'epoch' + (ctx->'after'->>0)::bigint * interval '1 microsecond';
        v_after_seq := (ctx->'after'->>1)::bigint;
        if v_asc and (v_after_at, v_after_seq) > (v_lo_at, v_lo_seq) then
            v_lo_at := v_after_at;
            v_lo_seq := v_after_seq;
        elsif not v_asc and (v_after_at, v_after_seq) < (v_hi_at, v_hi_seq) then
            v_hi_at := v_after_at;
            v_hi_seq := v_after_seq;
        end if;
    end if;
    select jsonb_agg(jsonb_build_object(
               'k', jsonb_build_array((extract(epoch from s.created_at) * 1000000)::bigint, s.seq),
               'v', carillon.message_summary(s))
               order by case when v_asc then s.created_at end, case when v_asc then s.seq end,
                        s.created_at desc, s.seq desc)
      into v_rows
      from carillon.message_range(c.arn, v_sub, v_asc, v_bearer, v_lo_at, v_lo_seq, v_hi_at, v_hi_seq, v_lim + 1) s;
    return carillon.page(v_rows, v_lim, 'ChannelMessages',
                         jsonb_strip_nulls(jsonb_build_object('ChannelArn', c.arn, 'SubChannelId', v_sub)));
end $$;

-- UpdateChannelMessage: the sender edits its own message. {ChannelArn, MessageId, Status, SubChannelId}.
create or replace function carillon_api.update_channel_message(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.message_channel_locked(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_now timestamptz := carillon.req_time(ctx);
    m carillon.channel_messages;
begin
    m := carillon.message_visible(c, input, v_bearer, true);
    if m.sender_arn <> v_bearer then
        perform carillon.fail('CH403', 'Only the sender of a message can update it');
    end if;
    if not carillon.message_sender_may_act(c, m) then
        perform carillon.fail('CH403', 'Only a member of the channel can update its messages');
    end if;
    if m.redacted then
        perform carillon.fail('CH409', 'A redacted message cannot be updated');
    end if;
    perform carillon.message_check_content(m.type, input->>'Content', input ? 'Metadata');
    if m.status <> 'SENT' then
        perform carillon.fail('CH409', format('Message %s is %s: only a SENT message can be updated', m.message_id, m.status));
    end if;
    if c.flow_arn is not null and m.type = 'STANDARD' then
        return carillon.flow_update(ctx, input, c, m);
    end if;
    update carillon.channel_messages
       set content = input->>'Content',
           metadata = case when input ? 'Metadata' then nullif(input->>'Metadata', '') else metadata end,
           content_type = case when input ? 'ContentType' then nullif(input->>'ContentType', '') else content_type end,
           edited_at = greatest(v_now, created_at),
           updated_at = greatest(v_now, created_at)
     where channel_arn = m.channel_arn and message_id = m.message_id
    returning * into m;
    return jsonb_strip_nulls(jsonb_build_object(
        'ChannelArn', c.arn, 'MessageId', m.message_id, 'Status', jsonb_build_object('Value', m.status),
        'SubChannelId', m.sub_channel_id,
        '__events', jsonb_build_array(carillon.message_event(c.app_instance_id, m, 'UPDATE_CHANNEL_MESSAGE',
                                                             carillon.message_doc(m, true)))));
end $$;

-- RedactChannelMessage: the sender or a moderator/admin. {ChannelArn, MessageId, SubChannelId}.
create or replace function carillon_api.redact_channel_message(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.message_channel_locked(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_now timestamptz := carillon.req_time(ctx);
    m carillon.channel_messages;
    v_events jsonb := '[]';
begin
    m := carillon.message_visible(c, input, v_bearer, true);
    if not ((m.sender_arn = v_bearer and carillon.message_sender_may_act(c, m)) or carillon.can_manage(c, v_bearer)) then
        perform carillon.fail('CH403', 'Only the sender, a channel moderator or an AppInstanceAdmin can redact a message');
    end if;
    if not m.redacted then
        update carillon.channel_messages
           set content = '', metadata = null, redacted = true, updated_at = greatest(v_now, created_at)
         where channel_arn = m.channel_arn and message_id = m.message_id
        returning * into m;
        v_events := jsonb_build_array(carillon.message_event(c.app_instance_id, m, 'REDACT_CHANNEL_MESSAGE',
                                                             carillon.message_doc(m, true)));
    end if;
    return jsonb_strip_nulls(jsonb_build_object(
        'ChannelArn', c.arn, 'MessageId', m.message_id, 'SubChannelId', m.sub_channel_id, '__events', v_events));
end $$;

-- DeleteChannelMessage: AppInstanceAdmins only, targeted messages included. 204.
create or replace function carillon_api.delete_channel_message(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.message_channel_locked(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    m carillon.channel_messages;
begin
    if not carillon.is_admin(c.app_instance_id, v_bearer) then
        perform carillon.fail('CH403', 'Only an AppInstanceAdmin can delete channel messages');
    end if;
    perform carillon.message_check_sub_channel(c, input);
    delete from carillon.channel_messages
     where channel_arn = c.arn and message_id = input->>'MessageId'
       and (not input ? 'SubChannelId' or sub_channel_id = input->>'SubChannelId')
    returning * into m;
    if not found then
        perform carillon.fail('CH404', format('Message %s not found in channel %s', input->>'MessageId', c.arn));
    end if;
    return jsonb_build_object('__events', jsonb_build_array(carillon.message_event(
        c.app_instance_id, m, 'DELETE_CHANNEL_MESSAGE',
        carillon.message_doc(m, true) - 'Metadata' - 'MessageAttributes' || jsonb_build_object('Content', ''))));
end $$;

-- GetChannelMessageStatus: {Status} of the bearer's own message.
create or replace function carillon_api.get_channel_message_status(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    m carillon.channel_messages;
begin
    m := carillon.message_visible(c, input, v_bearer);
    if m.sender_arn <> v_bearer then
        perform carillon.fail('CH403', 'Only the sender can get the status of a message');
    end if;
    if exists (select 1 from carillon.flow_messages f
                where f.channel_arn = m.channel_arn and f.message_id = m.message_id
                  and f.kind = 'UPDATE' and f.state = 'PENDING') then
        return jsonb_build_object('Status', jsonb_build_object('Value', 'PENDING'));
    end if;
    return jsonb_build_object('Status', jsonb_strip_nulls(jsonb_build_object('Value', m.status, 'Detail', m.status_detail)));
end $$;
