-- ChannelFlow: a container of up to three processors (AWS Lambda functions) that pre-process the
-- STANDARD messages of the channels it is associated with; arn = <AppInstance arn>/channel-flow/<uuid>.
--
-- Carillon stores flows and their associations and returns them faithfully, but it does NOT run the
-- processors yet (invoking them and the PENDING_/DENIED_/FAILED_* message states are a later issue):
-- a message sent to an associated channel is delivered as if the channel had no flow, and
-- ChannelFlowCallback therefore never finds a message awaiting a callback (see below).
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

-- ChannelFlowCallback: a processor's answer for the message it was invoked with (CallbackId is the
-- token the service passed to that invocation). Carillon does not invoke processors yet, so no
-- message ever awaits a callback. The checks a real callback would pass still run, in this order:
-- the channel exists (NotFound), it has a channel flow (BadRequest: nothing can be processed on a
-- channel without one), and then -- always, for now -- NotFound: no message with that MessageId is
-- awaiting a callback with that CallbackId. Nothing is stored, so a repeated callback answers the
-- same. (The {ChannelArn, CallbackId} reply is left for when processors run; a success reply for a
-- callback that changed nothing would tell the processor its verdict was applied.)
create or replace function carillon_api.channel_flow_callback(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare c carillon.channels := carillon.channel_row(input->>'ChannelArn');
begin
    if c.flow_arn is null then
        perform carillon.fail('CH400', format('Channel %s is not associated with a channel flow', c.arn));
    end if;
    perform carillon.fail('CH404', format(
        'No message %s of channel %s is awaiting a channel flow callback %s (Carillon does not run channel flow processors yet)',
        input #>> '{ChannelMessage,MessageId}', c.arn, input->>'CallbackId'));
    return null;
end $$;
