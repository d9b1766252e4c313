-- ChannelFlow: a container of up to three processors (AWS Lambda functions) that pre-process the
-- STANDARD messages of the channels it is associated with; arn = <AppInstance arn>/channel-flow/<uuid>.
--
-- Processing (docs/flows.md): a STANDARD message sent to a channel with a flow, or an update of one,
-- waits for the flow's processor. carillon.flow_start records it (carillon.flow_messages, keyed by a
-- new CallbackId), enqueues a 'flow' outbox row in the same transaction (src/flows/flows.c invokes
-- the processor from it) and tells the sender alone (PENDING_CREATE_/PENDING_UPDATE_CHANNEL_MESSAGE).
-- The processor answers with ChannelFlowCallback (SENT with its values, or DENIED); when it cannot
-- be invoked, carillon.flow_invocation_failed applies the processor's FallbackAction (ABORT: FAILED,
-- CONTINUE: SENT unchanged). All three end in carillon.flow_finish.
--
-- Access: the flow operations (Create/Describe/Update/Delete/ListChannelFlows,
-- ListChannelsAssociatedWithChannelFlow, ChannelFlowCallback) have no bearer; they are developer
-- operations, allowed to the root key and admin keys only (user credentials are refused in C).
-- AssociateChannelFlow/DisassociateChannelFlow take a bearer that must moderate the channel or
-- administer its AppInstance (Chime: "Only administrators or channel moderators can associate a
-- channel flow").
--
-- Decisions where Chime's documentation is silent:
--   * ProcessorList is 1..3 as in the model. Chime's default quota is one processor per flow
--     ("submit a support ticket for an increase"); a self-hosted server has no support desk, so the
--     model's limit applies. ExecutionOrder values must be unique within a flow (BadRequest); they
--     need not be contiguous. Processors are stored and returned in the order given.
--   * The Lambda ARN is validated against the model's pattern (in C); whether it lies in the
--     AppInstance's account and region is not checked (Carillon's account id is its own, the
--     Lambda functions live in a real AWS account).
--   * Flow names need not be unique.
--   * DeleteChannelFlow of an unknown flow answers NotFound; of a flow still associated with a
--     channel, ConflictException (Chime: "works only when the channel flow is not associated with
--     any channel"). Deleting a flow deletes its tags.
--   * A channel has at most one flow. AssociateChannelFlow with the flow the channel already has is
--     a no-op success (no event); with another flow, ConflictException (disassociate first).
--   * A flow of another AppInstance is NotFound to AssociateChannelFlow (flows are looked up within
--     the channel's AppInstance; other tenants' resources are not revealed).
--   * DisassociateChannelFlow of a flow the channel is not associated with: NotFound.
--   * Only the processor with the lowest ExecutionOrder runs (Chime runs one processor per flow
--     today); the others of a flow of two or three are stored and not invoked.
--   * The processor a message goes to, and its FallbackAction, are those of the flow when the message
--     is sent: updating or disassociating the flow later does not change a processing under way.
--   * CallbackId: 32 lowercase hex chars, new for each processing (a send, an update).
--   * Deadline: CARILLON_FLOW_CALLBACK_DEADLINE_SECONDS (carillon.flow_callback_deadline_seconds;
--     Chime: 48 hours) from the send; a later callback is ForbiddenException and the message stays
--     PENDING (Chime documents nothing else happening to it).
--   * ChannelFlowCallback: a CallbackId unknown in the channel is NotFound (BadRequest on a channel
--     without a flow, as before); a MessageId other than the one the CallbackId was issued for is
--     BadRequest; a CallbackId already answered (or failed over) is ConflictException -- even the
--     same callback repeated. CallbackId is the model's idempotency token, but it is the service's
--     token, answered once; carillon.run_op keeps no idempotency record for this operation, so that
--     a repeated callback meets this check instead of a replayed success.
--   * The callback's values replace the message's where given (Content, Metadata,
--     MessageAttributes, SubChannelId, ContentType, PushNotification); those left out keep what the
--     sender gave ("make no changes" is a callback with MessageId alone). Content keeps the send's
--     limit (4096 bytes). SubChannelId applies to elastic channels only and must name an existing
--     sub-channel (BadRequest).
--   * While a message awaits its processor, its sender may not update it (Conflict), and a second
--     update of a message waits for the first one's processing (Conflict): two updates processed
--     concurrently could be applied in the wrong order. The sender may redact it (a redacted
--     message stays redacted whatever the processor says) and an admin may delete it (the callback
--     then changes nothing).
--   * A DENIED update leaves the message as it was (SENT); a FAILED update (ABORT) too, with
--     FAILED_UPDATE_CHANNEL_MESSAGE to the sender. GetChannelMessageStatus answers PENDING while an
--     update of the message is being processed, else the stored message's status.
--   * A non-persistent message is not stored: while pending it lives in carillon.flow_messages
--     only (Get/List/GetChannelMessageStatus do not find it) and, once SENT, it is delivered to
--     the members as a non-persistent message.
--   * Status.Detail: FAILED carries the reason the processor could not be invoked; the other
--     statuses carry none.
--   * Associating and disassociating change the Channel document (ChannelFlowArn) and its
--     LastUpdatedTimestamp, and emit UPDATE_CHANNEL (SYSTEM, the Channel document, to the members)
--     as UpdateChannel does.
--
-- Locking: Associate locks the channel row, then the flow row (FOR KEY SHARE); DeleteChannelFlow
-- locks the flow row (FOR UPDATE) and then looks for associated channels without locking them. An
-- association racing a deletion therefore either commits first (the deletion then sees it:
-- Conflict) or finds the flow gone (NotFound) -- never a foreign-key error.

create or replace function carillon.flow_row(p_arn text) returns carillon.channel_flows
language plpgsql stable as $$
begin
    return carillon.must_exist((select r from carillon.channel_flows r where r.arn = p_arn),
                               format('ChannelFlow %s not found', p_arn));
end $$;

-- ExecutionOrder must be unique within the flow (the model checks 1..3 and the list size).
create or replace function carillon.flow_check_processors(p_processors jsonb) returns void
language plpgsql immutable as $$
declare v_dup int;
begin
    select (p->>'ExecutionOrder')::int into v_dup
      from jsonb_array_elements(p_processors) p
     group by (p->>'ExecutionOrder')::int
    having count(*) > 1
     limit 1;
    if v_dup is not null then
        perform carillon.fail('CH400', format('ExecutionOrder %s is used by more than one processor; each processor of a channel flow needs its own ExecutionOrder', v_dup));
    end if;
end $$;

create or replace function carillon.flow_summary(f carillon.channel_flows) returns jsonb
language sql stable as $$
    select jsonb_build_object('ChannelFlowArn', f.arn, 'Name', f.name, 'Processors', f.processors)
$$;

-- CreateChannelFlow: 201 {ChannelFlowArn}. ClientRequestToken retries are answered by carillon.run_op.
-- At most carillon.quota('max_channel_flows') flows per AppInstance (Chime: 100); one more is
-- ResourceLimitExceeded.
create or replace function carillon_api.create_channel_flow(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_app_arn text := input->>'AppInstanceArn';
    v_app_id text;
    v_arn text := v_app_arn || '/channel-flow/' || gen_random_uuid()::text;
    v_now timestamptz := carillon.req_time(ctx);
begin
    -- FOR NO KEY UPDATE: a concurrent DeleteAppInstance waits for us (or we see it gone: NotFound),
    -- and concurrent CreateChannelFlows of the AppInstance are counted one after the other.
    v_app_id := carillon.app_instance_lock(v_app_arn, true);
    perform carillon.flow_check_processors(input->'Processors');
    perform carillon.require_quota(
        (select count(*) from carillon.channel_flows where app_instance_id = v_app_id) + 1,
        'max_channel_flows', 100, format('Too many channel flows in AppInstance %s', v_app_arn));
    insert into carillon.channel_flows (arn, app_instance_id, name, processors, created_at, updated_at)
    values (v_arn, v_app_id, input->>'Name', input->'Processors', v_now, v_now);
    perform carillon.put_tags(v_arn, input->'Tags');
    return jsonb_build_object('ChannelFlowArn', v_arn);
end $$;

create or replace function carillon_api.describe_channel_flow(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare f carillon.channel_flows := carillon.flow_row(input->>'ChannelFlowArn');
begin
    return jsonb_build_object('ChannelFlow', carillon.flow_summary(f) || jsonb_build_object(
        'CreatedTimestamp', carillon.ts(f.created_at), 'LastUpdatedTimestamp', carillon.ts(f.updated_at)));
end $$;

create or replace function carillon_api.list_channel_flows(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select carillon.keyset_page(ctx, input, 'ChannelFlows',
        $q$select arn as k, f from carillon.channel_flows f where app_instance_id = $3->>'app'$q$,
        'carillon.flow_summary(r.f)',
        jsonb_build_object('app', carillon.app_instance_id(input->>'AppInstanceArn')))
$$;

-- UpdateChannelFlow: Processors and Name are both required and replace the stored ones.
create or replace function carillon_api.update_channel_flow(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
begin
    perform carillon.flow_check_processors(input->'Processors');
    update carillon.channel_flows
       set name = input->>'Name', processors = input->'Processors', updated_at = carillon.req_time(ctx)
     where arn = input->>'ChannelFlowArn';
    if not found then
        perform carillon.fail('CH404', format('ChannelFlow %s not found', input->>'ChannelFlowArn'));
    end if;
    return jsonb_build_object('ChannelFlowArn', input->>'ChannelFlowArn');
end $$;

create or replace function carillon_api.delete_channel_flow(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_arn text := input->>'ChannelFlowArn';
    v_channel text;
begin
    perform 1 from carillon.channel_flows where arn = v_arn for update;
    if not found then
        perform carillon.fail('CH404', format('ChannelFlow %s not found', v_arn));
    end if;
    select arn into v_channel from carillon.channels where flow_arn = v_arn order by arn limit 1;
    if v_channel is not null then
        perform carillon.fail('CH409', format('ChannelFlow %s is associated with channel %s; disassociate it from every channel first', v_arn, v_channel));
    end if;
    delete from carillon.channel_flows where arn = v_arn;
    perform carillon.drop_tags(v_arn);
    return null;
end $$;

-- AssociateChannelFlow: PUT, 200 without a body.
create or replace function carillon_api.associate_channel_flow(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_flow text := input->>'ChannelFlowArn';
begin
    perform carillon.require_manager(c, v_bearer);
    c := carillon.channel_lock(c.arn);
    perform 1 from carillon.channel_flows where arn = v_flow and app_instance_id = c.app_instance_id for key share;
    if not found then
        perform carillon.fail('CH404', format('ChannelFlow %s not found in the AppInstance of channel %s', v_flow, c.arn));
    end if;
    if c.flow_arn = v_flow then
        return null;
    end if;
    if c.flow_arn is not null then
        perform carillon.fail('CH409', format('Channel %s is already associated with ChannelFlow %s; a channel can have one channel flow, disassociate it first', c.arn, c.flow_arn));
    end if;
    update carillon.channels set flow_arn = v_flow, updated_at = carillon.req_time(ctx)
     where arn = c.arn
    returning * into c;
    return jsonb_build_object('__events', jsonb_build_array(
        carillon.event(c.arn, c.app_instance_id, 'UPDATE_CHANNEL', 'SYSTEM', carillon.channel_doc(c, true))));
end $$;

-- DisassociateChannelFlow: DELETE, 204.
create or replace function carillon_api.disassociate_channel_flow(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_flow text := input->>'ChannelFlowArn';
begin
    perform carillon.require_manager(c, v_bearer);
    c := carillon.channel_lock(c.arn);
    if c.flow_arn is distinct from v_flow then
        perform carillon.fail('CH404', format('Channel %s is not associated with ChannelFlow %s', c.arn, v_flow));
    end if;
    update carillon.channels set flow_arn = null, updated_at = carillon.req_time(ctx)
     where arn = c.arn
    returning * into c;
    return jsonb_build_object('__events', jsonb_build_array(
        carillon.event(c.arn, c.app_instance_id, 'UPDATE_CHANNEL', 'SYSTEM', carillon.channel_doc(c, true))));
end $$;

create or replace function carillon_api.list_channels_associated_with_channel_flow(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select carillon.keyset_page(ctx, input, 'Channels',
        $q$select arn as k, name, mode, privacy, metadata from carillon.channels where flow_arn = $3->>'flow'$q$,
        $i$jsonb_strip_nulls(jsonb_build_object('Name', r.name, 'ChannelArn', r.k, 'Mode', r.mode,
                                                'Privacy', r.privacy, 'Metadata', r.metadata))$i$,
        jsonb_build_object('flow', (carillon.flow_row(input->>'ChannelFlowArn')).arn))
$$;


-- ---------------------------------------------------------------- processing

-- How long a processor has to call back (CARILLON_FLOW_CALLBACK_DEADLINE_SECONDS; Chime: 48 hours).
create or replace function carillon.flow_deadline() returns interval
language sql stable as $$
    select carillon.quota('flow_callback_deadline_seconds', 172800) * interval '1 second'
$$;

-- A sender-only event about a message in processing (PENDING_/DENIED_/FAILED_*).
create or replace function carillon.flow_sender_event(p_app_id text, p_channel text, p_sender text, p_type text,
                                                      p_doc jsonb) returns jsonb
language sql immutable as $$
    select carillon.event(p_channel, p_app_id, p_type, 'STANDARD', p_doc, 'only', array[p_sender])
$$;

-- What the processor is given: the ChannelMessage of the invocation payload (processor-setup).
create or replace function carillon.flow_invocation(p_callback_id text, p_doc jsonb) returns jsonb
language sql immutable as $$
    select jsonb_build_object('EventType', 'CHANNEL_MESSAGE_EVENT', 'CallbackId', p_callback_id,
        'ChannelMessage', jsonb_strip_nulls(jsonb_build_object(
            'MessageId', p_doc->'MessageId', 'ChannelArn', p_doc->'ChannelArn', 'Content', p_doc->'Content',
            'Metadata', p_doc->'Metadata', 'Sender', p_doc->'Sender', 'Persistence', p_doc->'Persistence',
            'LastEditedTimestamp', p_doc->'LastEditedTimestamp', 'Type', p_doc->'Type',
            'CreatedTimestamp', p_doc->'CreatedTimestamp', 'MessageAttributes', p_doc->'MessageAttributes',
            'SubChannelId', p_doc->'SubChannelId', 'ContentType', p_doc->'ContentType')))
$$;

-- Starts the processing of a message (p_kind CREATE or UPDATE) in a channel with flow p_flow: p_doc
-- is the websocket ChannelMessage document as submitted (its Status is set to PENDING here),
-- p_push the send's PushNotification (kept for when the message is SENT). Records the processing,
-- enqueues the invocation in this transaction, and returns the sender's PENDING_* event.
create or replace function carillon.flow_start(p_app_id text, p_flow text, p_kind text, p_persistent boolean,
                                               p_doc jsonb, p_push jsonb, p_now timestamptz) returns jsonb
language plpgsql as $$
declare
    v_cb text := replace(gen_random_uuid()::text, '-', '');
    v_doc jsonb := p_doc || jsonb_build_object('Status', jsonb_build_object('Value', 'PENDING'));
    v_proc jsonb;
begin
    select p into v_proc from carillon.channel_flows f, jsonb_array_elements(f.processors) p
     where f.arn = p_flow order by (p->>'ExecutionOrder')::int limit 1;
    -- Processings whose deadline lies a deadline behind can no longer be answered or conflict with
    -- anything: a few are dropped whenever a new one starts.
    delete from carillon.flow_messages
     where callback_id in (select callback_id from carillon.flow_messages
                            where deadline < p_now - carillon.flow_deadline()
                            order by deadline limit 8 for update skip locked);
    insert into carillon.flow_messages (callback_id, channel_arn, message_id, kind, persistent, sender_arn,
                                        message, processor, created_at, deadline)
    values (v_cb, p_doc->>'ChannelArn', p_doc->>'MessageId', p_kind, p_persistent, p_doc#>>'{Sender,Arn}',
            v_doc || jsonb_strip_nulls(jsonb_build_object('PushNotification', p_push)), v_proc,
            p_now, p_now + carillon.flow_deadline());
    perform carillon.outbox_enqueue('flow', v_cb, jsonb_build_object(
        'function', v_proc #>> '{Configuration,Lambda,ResourceArn}',
        'event', carillon.flow_invocation(v_cb, v_doc)));
    return carillon.flow_sender_event(p_app_id, p_doc->>'ChannelArn', p_doc#>>'{Sender,Arn}',
                                      'PENDING_' || p_kind || '_CHANNEL_MESSAGE', v_doc);
end $$;

-- SendChannelMessage of a STANDARD message to a channel with flow p_flow (called by
-- carillon_api.send_channel_message once the message, if persistent, is stored as PENDING).
create or replace function carillon.flow_send(input jsonb, p_id text, p_app_id text, p_flow text, p_sender jsonb,
                                              p_at timestamptz) returns jsonb
language plpgsql as $$
declare
    v_at text := carillon.iso(p_at);
    v_doc jsonb := jsonb_strip_nulls(jsonb_build_object(
        'ChannelArn', input->>'ChannelArn', 'MessageId', p_id, 'Content', input->>'Content',
        'Metadata', input->>'Metadata', 'Type', input->>'Type', 'CreatedTimestamp', v_at,
        'LastUpdatedTimestamp', v_at, 'Sender', p_sender, 'Redacted', false,
        'Persistence', input->>'Persistence', 'MessageAttributes', input->'MessageAttributes',
        'SubChannelId', input->>'SubChannelId', 'ContentType', input->>'ContentType', 'Target', input->'Target'));
begin
    return jsonb_strip_nulls(jsonb_build_object(
        'ChannelArn', input->>'ChannelArn', 'MessageId', p_id, 'Status', jsonb_build_object('Value', 'PENDING'),
        'SubChannelId', input->>'SubChannelId',
        '__events', jsonb_build_array(carillon.flow_start(p_app_id, p_flow, 'CREATE', input->>'Persistence' = 'PERSISTENT',
                                                          v_doc, input->'PushNotification', p_at))));
end $$;

-- UpdateChannelMessage of STANDARD message m (locked, SENT, checked) in channel c, which has a flow:
-- the stored message keeps showing its current content; the new one waits for the processor.
create or replace function carillon.flow_update(ctx jsonb, input jsonb, c carillon.channels,
                                                m carillon.channel_messages) returns jsonb
language plpgsql as $$
declare
    v_at text := carillon.iso(greatest(carillon.req_time(ctx), m.created_at));
    v_doc jsonb := carillon.message_doc(m, true) || jsonb_build_object(
        'Content', input->>'Content', 'LastEditedTimestamp', v_at, 'LastUpdatedTimestamp', v_at);
begin
    if exists (select 1 from carillon.flow_messages
                where channel_arn = m.channel_arn and message_id = m.message_id and state = 'PENDING') then
        perform carillon.fail('CH409', format('An update of message %s is still being processed by the channel flow', m.message_id));
    end if;
    if input ? 'Metadata' then
        v_doc := v_doc - 'Metadata' || jsonb_strip_nulls(jsonb_build_object('Metadata', nullif(input->>'Metadata', '')));
    end if;
    if input ? 'ContentType' then
        v_doc := v_doc - 'ContentType' || jsonb_strip_nulls(jsonb_build_object('ContentType', nullif(input->>'ContentType', '')));
    end if;
    return jsonb_strip_nulls(jsonb_build_object(
        'ChannelArn', c.arn, 'MessageId', m.message_id, 'Status', jsonb_build_object('Value', 'PENDING'),
        'SubChannelId', m.sub_channel_id,
        '__events', jsonb_build_array(carillon.flow_start(c.app_instance_id, c.flow_arn, 'UPDATE', true, v_doc, null,
                                                          carillon.req_time(ctx)))));
end $$;

-- Ends processing f (locked, PENDING) with p_verdict: SENT with the processor's values p_values
-- (members of ChannelMessageCallback; those left out keep the submitted ones), DENIED, or FAILED
-- with p_detail. Returns the events.
create or replace function carillon.flow_finish(f carillon.flow_messages, p_app_id text, p_verdict text,
                                                p_values jsonb, p_detail text, p_now timestamptz) returns jsonb
language plpgsql as $$
declare
    v jsonb := coalesce(p_values, '{}');
    v_doc jsonb := f.message - 'PushNotification';
    v_push jsonb := coalesce(v->'PushNotification', f.message->'PushNotification');
    m carillon.channel_messages;
    v_events jsonb := '[]';
begin
    update carillon.flow_messages set state = p_verdict, finished_at = p_now where callback_id = f.callback_id;
    if p_verdict <> 'SENT' then
        v_doc := v_doc || jsonb_build_object('Status', jsonb_strip_nulls(jsonb_build_object(
                     'Value', p_verdict, 'Detail', left(p_detail, 256))));
        if f.kind = 'CREATE' and f.persistent then
            if p_verdict = 'DENIED' then
                -- Chime does not store denied messages.
                delete from carillon.channel_messages
                 where channel_arn = f.channel_arn and message_id = f.message_id and status = 'PENDING';
            else
                update carillon.channel_messages set status = p_verdict, status_detail = left(p_detail, 256)
                 where channel_arn = f.channel_arn and message_id = f.message_id and status = 'PENDING';
            end if;
        end if;
        return jsonb_build_array(carillon.flow_sender_event(p_app_id, f.channel_arn, f.sender_arn,
                                     p_verdict || '_' || f.kind || '_CHANNEL_MESSAGE', v_doc));
    end if;

    if f.persistent then
        -- The stored message takes the processed values; a message redacted meanwhile stays
        -- redacted, one deleted meanwhile is gone (nothing to announce).
        update carillon.channel_messages
           set content = case when redacted then content else coalesce(v->>'Content', v_doc->>'Content') end,
               metadata = case when redacted then null
                               when v ? 'Metadata' then nullif(v->>'Metadata', '') else v_doc->>'Metadata' end,
               attributes = case when v ? 'MessageAttributes' then v->'MessageAttributes'
                                 when f.kind = 'CREATE' then v_doc->'MessageAttributes' else attributes end,
               sub_channel_id = coalesce(v->>'SubChannelId', sub_channel_id),
               content_type = case when v ? 'ContentType' then nullif(v->>'ContentType', '')
                                   else v_doc->>'ContentType' end,
               push_notification = case when f.kind = 'CREATE' then v_push else push_notification end,
               status = 'SENT', status_detail = null,
               edited_at = case when f.kind = 'UPDATE' then greatest(p_now, created_at) else edited_at end,
               updated_at = case when f.kind = 'UPDATE' then greatest(p_now, created_at) else updated_at end
         where channel_arn = f.channel_arn and message_id = f.message_id
           and (status = 'PENDING' or f.kind = 'UPDATE')
        returning * into m;
        if not found then
            return v_events;
        end if;
        v_events := jsonb_build_array(carillon.message_event(p_app_id, m, f.kind || '_CHANNEL_MESSAGE',
                                                             carillon.message_doc(m, true)));
        if f.kind = 'CREATE' and m.push_notification is not null and not m.redacted then
            perform carillon.push_enqueue_message(m.channel_arn, m.message_id);
        end if;
        return v_events;
    end if;

    -- Non-persistent: delivered once, never stored. The row built here only routes the event.
    v_doc := v_doc || jsonb_strip_nulls(jsonb_build_object(
        'Content', v->'Content', 'Metadata', v->'Metadata', 'MessageAttributes', v->'MessageAttributes',
        'SubChannelId', v->'SubChannelId', 'ContentType', v->'ContentType'))
        || jsonb_build_object('Status', jsonb_build_object('Value', 'SENT'));
    if v->>'Metadata' = '' then v_doc := v_doc - 'Metadata'; end if;
    if v->>'ContentType' = '' then v_doc := v_doc - 'ContentType'; end if;
    m.channel_arn := f.channel_arn;
    m.message_id := f.message_id;
    m.sender_arn := f.sender_arn;
    m.type := 'STANDARD';
    m.target := v_doc->'Target';
    m.sub_channel_id := v_doc->>'SubChannelId';
    return jsonb_build_array(carillon.message_event(p_app_id, m, 'CREATE_CHANNEL_MESSAGE', v_doc));
end $$;

-- ChannelFlowCallback: the processor's answer for the processing it was invoked for (CallbackId).
-- {ChannelArn, CallbackId}; the checks and their order are in the header.
create or replace function carillon_api.channel_flow_callback(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_row(input->>'ChannelArn');
    v_cb text := input->>'CallbackId';
    v jsonb := coalesce(input->'ChannelMessage', '{}') - 'MessageId';
    f carillon.flow_messages;
    v_events jsonb;
begin
    -- One lock order everywhere: the channel, then the processing, then the message.
    perform carillon.channel_lock_row(c.arn, true);
    select * into f from carillon.flow_messages where callback_id = v_cb and channel_arn = c.arn for update;
    if not found then
        if c.flow_arn is null then
            perform carillon.fail('CH400', format('Channel %s is not associated with a channel flow', c.arn));
        end if;
        perform carillon.fail('CH404', format('No message %s of channel %s is awaiting a channel flow callback %s',
                                              input #>> '{ChannelMessage,MessageId}', c.arn, v_cb));
    end if;
    if f.message_id <> input #>> '{ChannelMessage,MessageId}' then
        perform carillon.fail('CH400', format('CallbackId %s was issued for message %s, not %s',
                                              v_cb, f.message_id, input #>> '{ChannelMessage,MessageId}'));
    end if;
    if f.state <> 'PENDING' then
        perform carillon.fail('CH409', format('The callback %s was already answered (message %s is %s)',
                                              v_cb, f.message_id, f.state));
    end if;
    if carillon.req_time(ctx) > f.deadline then
        perform carillon.fail('CH403', format('The deadline of callback %s passed at %s', v_cb, carillon.iso(f.deadline)));
    end if;
    if coalesce((input->>'DeleteResource')::boolean, false) then
        v_events := carillon.flow_finish(f, c.app_instance_id, 'DENIED', null, null, carillon.req_time(ctx));
    else
        if v ? 'Content' then
            perform carillon.message_check_content('STANDARD', v->>'Content', false);
        end if;
        if v ? 'SubChannelId' and (c.elastic is null or not exists (
                select 1 from carillon.channel_memberships
                 where channel_arn = c.arn and sub_channel_id = v->>'SubChannelId')) then
            perform carillon.fail('CH400', format('SubChannel %s does not exist in channel %s', v->>'SubChannelId', c.arn));
        end if;
        v_events := carillon.flow_finish(f, c.app_instance_id, 'SENT', v, null, carillon.req_time(ctx));
    end if;
    return jsonb_build_object('ChannelArn', c.arn, 'CallbackId', v_cb, '__events', v_events);
end $$;

-- The processor of processing p_callback_id could not be invoked (src/flows/flows.c, after its
-- retries or on a permanent refusal; p_detail says why): its FallbackAction applies -- ABORT: FAILED,
-- CONTINUE: SENT as submitted. Commits its own events. Returns the outcome, or null when the
-- processing is gone or was already answered.
create or replace function carillon.flow_invocation_failed(p_callback_id text, p_detail text) returns text
language plpgsql as $$
declare
    v_channel text := (select channel_arn from carillon.flow_messages where callback_id = p_callback_id);
    v_app_id text;
    f carillon.flow_messages;
    v_verdict text;
begin
    select app_instance_id into v_app_id from carillon.channels where arn = v_channel for no key update;
    select * into f from carillon.flow_messages where callback_id = p_callback_id for update;
    if v_app_id is null or not found or f.state <> 'PENDING' then
        return null;
    end if;
    v_verdict := case when f.processor->>'FallbackAction' = 'CONTINUE' then 'SENT' else 'FAILED' end;
    perform carillon.flush_events(carillon.flow_finish(f, v_app_id, v_verdict, null,
        case when v_verdict = 'FAILED' then 'The processor could not be invoked: ' || p_detail end, now()));
    return v_verdict;
end $$;
