-- The event rows of each messaging write, called through carillon_api.invoke_batch as the gateway's
-- group commit does (and carillon_api.invoke for single requests): exactly the rows stored in
-- carillon.events (type, channel, audience, message type, addressed ARNs), and none for a refused
-- write. Expected rows read "EVENT_TYPE channel audience message_type [arns]" (lib/common.sql,
-- pg_temp.events_since) with the fixture's names.
select pg_temp.make_fixture();

-- test: CreateChannel: CREATE_CHANNEL_MEMBERSHIP per member, the creator first; refused: none
do $$
declare v_mark bigint := pg_temp.mark(); v_out jsonb;
begin
    v_out := pg_temp.ok('create_channel', jsonb_build_object('AppInstanceArn', pg_temp.fx('app'), 'Name', 'new',
        'ChimeBearer', pg_temp.fx('member'), 'ChannelId', 'new', 'Privacy', 'PRIVATE',
        'ModeratorArns', jsonb_build_array(pg_temp.fx('mod')), 'MemberArns', jsonb_build_array(pg_temp.fx('target'))));
    perform pg_temp.fx_set('new', v_out->>'ChannelArn');
    perform pg_temp.expect_events(v_mark, array[
        'CREATE_CHANNEL_MEMBERSHIP new members SYSTEM [member]',
        'CREATE_CHANNEL_MEMBERSHIP new members SYSTEM [mod]',
        'CREATE_CHANNEL_MEMBERSHIP new members SYSTEM [target]']);
    v_mark := pg_temp.mark();
    -- a bearer of another AppInstance; and a member that is not a user of the AppInstance
    perform pg_temp.refused('create_channel', jsonb_build_object('AppInstanceArn', pg_temp.fx('app'), 'Name', 'x',
        'ChimeBearer', pg_temp.fx('other')), 'CH403');
    perform pg_temp.refused('create_channel', jsonb_build_object('AppInstanceArn', pg_temp.fx('app'), 'Name', 'x',
        'ChimeBearer', pg_temp.fx('member'), 'MemberArns', jsonb_build_array(pg_temp.fx('other'))), 'CH404');
    perform pg_temp.expect_events(v_mark, '{}');
end $$;

-- test: UpdateChannel: UPDATE_CHANNEL to the members; refused for a member: none
do $$
declare v_mark bigint := pg_temp.mark();
begin
    perform pg_temp.refused('update_channel', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'Name', 'renamed'), 'CH403');
    perform pg_temp.expect_events(v_mark, '{}');
    perform pg_temp.ok('update_channel', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'Name', 'renamed'));
    perform pg_temp.invoke('update_channel', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('admin'), 'Metadata', 'm'));
    perform pg_temp.expect_events(v_mark, array[
        'UPDATE_CHANNEL priv members SYSTEM []',
        'UPDATE_CHANNEL priv members SYSTEM []']);
end $$;

-- test: DeleteChannel: DELETE_CHANNEL to the members; refused for a member: none
do $$
declare v_mark bigint := pg_temp.mark();
begin
    perform pg_temp.refused('delete_channel', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member')), 'CH403');
    perform pg_temp.expect_events(v_mark, '{}');
    perform pg_temp.ok('delete_channel', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('admin')));
    perform pg_temp.expect_events(v_mark, array['DELETE_CHANNEL priv members SYSTEM []']);
end $$;

-- test: CreateChannelMembership: CREATE_CHANNEL_MEMBERSHIP to the members; HIDDEN only to the member; refused: none
do $$
declare v_mark bigint := pg_temp.mark();
begin
    -- RESTRICTED: a member may not add others; HIDDEN is for moderators only; banned identities stay out
    perform pg_temp.refused('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'MemberArn', pg_temp.fx('outsider')), 'CH403');
    perform pg_temp.refused('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('pub'),
        'ChimeBearer', pg_temp.fx('outsider'), 'MemberArn', pg_temp.fx('outsider'), 'Type', 'HIDDEN'), 'CH403');
    perform pg_temp.refused('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('member')), 'CH409');
    perform pg_temp.expect_events(v_mark, '{}');
    perform pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('outsider')));
    perform pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('admin'), 'MemberArn', pg_temp.fx('hidden'), 'Type', 'HIDDEN'));
    -- joining a PUBLIC channel oneself
    perform pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('pub'),
        'ChimeBearer', pg_temp.fx('bot'), 'MemberArn', pg_temp.fx('bot')));
    perform pg_temp.expect_events(v_mark, array[
        'CREATE_CHANNEL_MEMBERSHIP priv members SYSTEM [outsider]',
        'CREATE_CHANNEL_MEMBERSHIP priv only SYSTEM [hidden]',
        'CREATE_CHANNEL_MEMBERSHIP pub members SYSTEM [bot]']);
end $$;

-- test: BatchCreateChannelMembership: one BATCH_CREATE_CHANNEL_MEMBERSHIP naming the added members; HIDDEN only to them; refused or nobody added: none
do $$
declare v_mark bigint := pg_temp.mark(); v_out jsonb;
begin
    perform pg_temp.refused('batch_create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'MemberArns', jsonb_build_array(pg_temp.fx('outsider'))), 'CH403');
    -- allowed, but every member fails on its own (already members): Errors, no event
    v_out := pg_temp.ok('batch_create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArns', jsonb_build_array(pg_temp.fx('member'), pg_temp.fx('target'))));
    assert jsonb_array_length(v_out->'Errors') = 2, v_out::text;
    perform pg_temp.expect_events(v_mark, '{}');
    -- one added, one refused (another AppInstance's user), one already a member
    v_out := pg_temp.ok('batch_create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'),
        'MemberArns', jsonb_build_array(pg_temp.fx('outsider'), pg_temp.fx('other'), pg_temp.fx('member'))));
    assert jsonb_array_length(v_out->'Errors') = 2, v_out::text;
    perform pg_temp.ok('batch_create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('pub'),
        'ChimeBearer', pg_temp.fx('admin'), 'Type', 'HIDDEN',
        'MemberArns', jsonb_build_array(pg_temp.fx('hidden'), pg_temp.fx('bot'))));
    perform pg_temp.expect_events(v_mark, array[
        'BATCH_CREATE_CHANNEL_MEMBERSHIP priv members SYSTEM [outsider]',
        'BATCH_CREATE_CHANNEL_MEMBERSHIP pub only SYSTEM [hidden,bot]']);
end $$;

-- test: DeleteChannelMembership: DELETE_CHANNEL_MEMBERSHIP to the members and the removed one; HIDDEN only to it; refused: none
do $$
declare v_mark bigint;
begin
    perform pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('hidden'), 'Type', 'HIDDEN'));
    v_mark := pg_temp.mark();
    perform pg_temp.refused('delete_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member2'), 'MemberArn', pg_temp.fx('member')), 'CH403');
    perform pg_temp.refused('delete_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('outsider')), 'CH404');
    perform pg_temp.expect_events(v_mark, '{}');
    -- a member leaves; a moderator removes one; an admin removes a HIDDEN one
    perform pg_temp.ok('delete_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member2'), 'MemberArn', pg_temp.fx('member2')));
    perform pg_temp.ok('delete_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('target')));
    perform pg_temp.ok('delete_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('admin'), 'MemberArn', pg_temp.fx('hidden')));
    perform pg_temp.expect_events(v_mark, array[
        'DELETE_CHANNEL_MEMBERSHIP priv members SYSTEM [member2]',
        'DELETE_CHANNEL_MEMBERSHIP priv members SYSTEM [target]',
        'DELETE_CHANNEL_MEMBERSHIP priv only SYSTEM [hidden]']);
end $$;

-- test: Create/DeleteChannelModerator: no event on a channel that is not elastic; refused: none
do $$
declare v_mark bigint := pg_temp.mark();
begin
    perform pg_temp.refused('create_channel_moderator', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'ChannelModeratorArn', pg_temp.fx('member2')), 'CH403');
    perform pg_temp.ok('create_channel_moderator', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'ChannelModeratorArn', pg_temp.fx('member2')));
    assert carillon.is_member(pg_temp.fx('priv'), pg_temp.fx('member2')), 'stays a member';
    perform pg_temp.refused('delete_channel_moderator', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'ChannelModeratorArn', pg_temp.fx('member2')), 'CH403');
    perform pg_temp.ok('delete_channel_moderator', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('admin'), 'ChannelModeratorArn', pg_temp.fx('member2')));
    perform pg_temp.expect_events(v_mark, '{}');
end $$;

-- test: ChannelModerator on an elastic channel: promoting a member drops its membership (DELETE_CHANNEL_MEMBERSHIP)
do $$
declare v_mark bigint; v_el text;
begin
    v_el := pg_temp.fx_set('el', (pg_temp.ok('create_channel', jsonb_build_object('AppInstanceArn', pg_temp.fx('app'),
        'Name', 'el', 'ChimeBearer', pg_temp.fx('mod'), 'Privacy', 'PUBLIC', 'Mode', 'RESTRICTED',
        'ElasticChannelConfiguration', jsonb_build_object('MaximumSubChannels', 2, 'TargetMembershipsPerSubChannel', 2,
                                                          'MinimumMembershipPercentage', 10))))->>'ChannelArn');
    perform pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', v_el,
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('member')));
    v_mark := pg_temp.mark();
    perform pg_temp.ok('create_channel_moderator', jsonb_build_object('ChannelArn', v_el,
        'ChimeBearer', pg_temp.fx('mod'), 'ChannelModeratorArn', pg_temp.fx('member')));
    perform pg_temp.expect_events(v_mark, array['DELETE_CHANNEL_MEMBERSHIP el members SYSTEM [member]']);
end $$;

-- test: CreateChannelBan: banning a member removes it (DELETE_CHANNEL_MEMBERSHIP); a non-member: no event; refused: none
do $$
declare v_mark bigint := pg_temp.mark();
begin
    perform pg_temp.refused('create_channel_ban', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'MemberArn', pg_temp.fx('member2')), 'CH403');
    perform pg_temp.refused('create_channel_ban', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('admin')), 'CH403');
    perform pg_temp.expect_events(v_mark, '{}');
    perform pg_temp.ok('create_channel_ban', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('member2')));
    perform pg_temp.ok('create_channel_ban', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('outsider')));
    perform pg_temp.ok('delete_channel_ban', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('outsider')));
    perform pg_temp.expect_events(v_mark, array['DELETE_CHANNEL_MEMBERSHIP priv members SYSTEM [member2]']);
end $$;

-- test: SendChannelMessage: CREATE_CHANNEL_MESSAGE to the members, targeted only to sender and target; refused: none
do $$
declare v_mark bigint := pg_temp.mark();
begin
    perform pg_temp.refused('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('outsider'), 'Content', 'hi', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
        'ClientRequestToken', 'r1'), 'CH403');
    perform pg_temp.refused('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'Content', repeat('x', 31), 'Type', 'CONTROL', 'Persistence', 'NON_PERSISTENT'),
        'CH400');
    perform pg_temp.expect_events(v_mark, '{}');
    perform pg_temp.ok('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'Content', 'hi', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
        'ClientRequestToken', 't1'));
    perform pg_temp.invoke('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'Content', 'typing', 'Type', 'CONTROL', 'Persistence', 'NON_PERSISTENT'));
    perform pg_temp.ok('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'Content', 'psst', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
        'ClientRequestToken', 't2', 'Target', jsonb_build_array(jsonb_build_object('MemberArn', pg_temp.fx('target')))));
    -- the same persistent send again: answered from the stored message, no second event
    perform pg_temp.ok('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'Content', 'hi', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
        'ClientRequestToken', 't1'));
    perform pg_temp.expect_events(v_mark, array[
        'CREATE_CHANNEL_MESSAGE priv members STANDARD []',
        'CREATE_CHANNEL_MESSAGE priv members CONTROL []',
        'CREATE_CHANNEL_MESSAGE priv only STANDARD [member,target]']);
end $$;

-- test: Update/Redact/DeleteChannelMessage: one event each to the message's audience; refused: none
do $$
declare v_mark bigint; v_id text;
begin
    v_id := pg_temp.ok('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'Content', 'hi', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
        'ClientRequestToken', 't1'))->>'MessageId';
    v_mark := pg_temp.mark();
    -- only the sender updates; only the sender, moderators and admins redact; only admins delete
    perform pg_temp.refused('update_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MessageId', v_id, 'Content', 'edited'), 'CH403');
    perform pg_temp.refused('redact_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member2'), 'MessageId', v_id), 'CH403');
    perform pg_temp.refused('delete_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MessageId', v_id), 'CH403');
    perform pg_temp.expect_events(v_mark, '{}');
    perform pg_temp.ok('update_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'MessageId', v_id, 'Content', 'edited'));
    perform pg_temp.ok('redact_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MessageId', v_id));
    -- redacting again succeeds without an event
    perform pg_temp.ok('redact_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'MessageId', v_id));
    perform pg_temp.ok('delete_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('admin'), 'MessageId', v_id));
    perform pg_temp.expect_events(v_mark, array[
        'UPDATE_CHANNEL_MESSAGE priv members STANDARD []',
        'REDACT_CHANNEL_MESSAGE priv members STANDARD []',
        'DELETE_CHANNEL_MESSAGE priv members STANDARD []']);
end $$;

-- test: Associate/DisassociateChannelFlow: UPDATE_CHANNEL each; again the same flow: none; refused: none
do $$
declare v_mark bigint; v_flow text;
begin
    v_flow := pg_temp.fx_set('flow', (pg_temp.ok('create_channel_flow', jsonb_build_object('AppInstanceArn', pg_temp.fx('app'),
        'Name', 'f', 'Processors', '[{"Name":"p","Configuration":{"Lambda":{"ResourceArn":"arn:aws:lambda:us-east-1:123456789012:function:f","InvocationType":"ASYNC"}},"ExecutionOrder":1,"FallbackAction":"CONTINUE"}]'::jsonb)))
        ->>'ChannelFlowArn');
    v_mark := pg_temp.mark();
    perform pg_temp.refused('associate_channel_flow', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'ChannelFlowArn', v_flow), 'CH403');
    perform pg_temp.expect_events(v_mark, '{}');
    perform pg_temp.ok('associate_channel_flow', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'ChannelFlowArn', v_flow));
    perform pg_temp.ok('associate_channel_flow', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'ChannelFlowArn', v_flow));
    perform pg_temp.refused('disassociate_channel_flow', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('member'), 'ChannelFlowArn', v_flow), 'CH403');
    perform pg_temp.ok('disassociate_channel_flow', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('admin'), 'ChannelFlowArn', v_flow));
    perform pg_temp.expect_events(v_mark, array[
        'UPDATE_CHANNEL priv members SYSTEM []',
        'UPDATE_CHANNEL priv members SYSTEM []']);
end $$;

-- test: a batch: the events of the items that succeed, in item order; a refused item adds none
do $$
declare v_mark bigint := pg_temp.mark(); v_out jsonb;
begin
    v_out := carillon_api.invoke_batch(jsonb_build_array(
        jsonb_build_object('fn', 'send_channel_message', 'ctx', pg_temp.ctx(), 'input', jsonb_build_object(
            'ChannelArn', pg_temp.fx('priv'), 'ChimeBearer', pg_temp.fx('member'), 'Content', 'a', 'Type', 'STANDARD',
            'Persistence', 'PERSISTENT', 'ClientRequestToken', 'b1')),
        jsonb_build_object('fn', 'update_channel', 'ctx', pg_temp.ctx(), 'input', jsonb_build_object(
            'ChannelArn', pg_temp.fx('priv'), 'ChimeBearer', pg_temp.fx('member'), 'Name', 'no')),
        jsonb_build_object('fn', 'create_channel_membership', 'ctx', pg_temp.ctx(), 'input', jsonb_build_object(
            'ChannelArn', pg_temp.fx('pub'), 'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('member')))));
    assert v_out->0 ? 'ok' and v_out->1 #>> '{error,state}' = 'CH403' and v_out->2 ? 'ok', v_out::text;
    perform pg_temp.expect_events(v_mark, array[
        'CREATE_CHANNEL_MESSAGE priv members STANDARD []',
        'CREATE_CHANNEL_MEMBERSHIP pub members SYSTEM [member]']);
end $$;

-- test: an event written before migration 097 (its payload as jsonb, no payload_text) reads as its
-- text, as new ones do; a row with neither is refused
do $$
declare v_pos bigint := nextval('carillon.event_position'); v_text text;
begin
    insert into carillon.events (position, app_instance_id, channel_arn, event_type, message_type, payload, audience)
    values (v_pos, 'app', pg_temp.fx('priv'), 'CREATE_CHANNEL_MESSAGE', 'STANDARD',
            '{"Content": "old", "MessageId": "m-old"}', 'members');
    select r_payload into v_text from carillon.events_after(v_pos - 1, 1);
    assert v_text::jsonb = '{"Content": "old", "MessageId": "m-old"}', coalesce(v_text, 'NULL');
    perform pg_temp.raises(format(
        $q$insert into carillon.events (position, app_instance_id, channel_arn, event_type, message_type, audience)
           values (nextval('carillon.event_position'), 'app', %L, 'UPDATE_CHANNEL', 'SYSTEM', 'members')$q$,
        pg_temp.fx('priv')), '23514');
    delete from carillon.events where position = v_pos;
end $$;
