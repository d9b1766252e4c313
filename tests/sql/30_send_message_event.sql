-- carillon_api.send_channel_message writes its event document out inline (the hot path; see its
-- header). Its "__events" item must equal what the general builders produce from the same message:
-- carillon.message_event(app, m, 'CREATE_CHANNEL_MESSAGE', carillon.message_doc(m, true, persistence)),
-- which is carillon.event(...) with the message's audience.
select pg_temp.make_fixture();

-- The comparison: p_input sent by the root key; the stored message (or, for NON_PERSISTENT, the
-- row it would have been) through the general builders.
create function pg_temp.send_matches_builder(p_input jsonb) returns void language plpgsql as $$
declare
    v_ctx jsonb := pg_temp.ctx();
    v_out jsonb := carillon_api.send_channel_message(v_ctx, p_input);
    v_id text := v_out->>'MessageId';
    m carillon.channel_messages;
    v_expected jsonb;
begin
    assert jsonb_array_length(v_out->'__events') = 1, v_out::text;
    if p_input->>'Persistence' = 'PERSISTENT' then
        select * into m from carillon.channel_messages where channel_arn = p_input->>'ChannelArn' and message_id = v_id;
        assert found, 'the persistent message is stored';
    else
        m := jsonb_populate_record(null::carillon.channel_messages, jsonb_build_object(
            'channel_arn', p_input->>'ChannelArn', 'message_id', v_id, 'sender_arn', p_input->>'ChimeBearer',
            'type', p_input->>'Type', 'content', p_input->>'Content', 'metadata', p_input->>'Metadata',
            'content_type', p_input->>'ContentType', 'attributes', p_input->'MessageAttributes',
            'target', p_input->'Target', 'sub_channel_id', p_input->>'SubChannelId', 'redacted', false,
            'status', 'SENT', 'created_at', carillon.req_time(v_ctx), 'updated_at', carillon.req_time(v_ctx)));
    end if;
    v_expected := carillon.message_event((pg_temp.ch('priv')).app_instance_id, m, 'CREATE_CHANNEL_MESSAGE',
                                         carillon.message_doc(m, true, p_input->>'Persistence'));
    if v_out->'__events'->0 is distinct from v_expected then
        raise exception E'send_channel_message''s event differs from the builders''\n  inline:  %\n  builder: %',
            v_out->'__events'->0, v_expected;
    end if;
end $$;

-- test: a persistent STANDARD message with Metadata, ContentType and MessageAttributes
select pg_temp.send_matches_builder(jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('member'), 'Content', 'hello "world" é', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
    'Metadata', 'meta', 'ContentType', 'text/markdown', 'ClientRequestToken', 'c1',
    'MessageAttributes', '{"color":{"StringValues":["red","blue"]}}'::jsonb));

-- test: a persistent message without the optional fields
select pg_temp.send_matches_builder(jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('member'), 'Content', 'plain', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
    'ClientRequestToken', 'c2'));

-- test: a NON_PERSISTENT CONTROL message (not stored)
select pg_temp.send_matches_builder(jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('member'), 'Content', 'typing', 'Type', 'CONTROL', 'Persistence', 'NON_PERSISTENT'));

-- test: a targeted message (audience: sender and target), and one targeted at its sender
select pg_temp.send_matches_builder(jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('member'), 'Content', 'psst', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
    'ClientRequestToken', 'c3', 'Target', jsonb_build_array(jsonb_build_object('MemberArn', pg_temp.fx('target')))));
select pg_temp.send_matches_builder(jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('member'), 'Content', 'note', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
    'ClientRequestToken', 'c4', 'Target', jsonb_build_array(jsonb_build_object('MemberArn', pg_temp.fx('member')))));

-- test: a bot's message (the bot's Sender identity)
select pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('bot')));
select pg_temp.send_matches_builder(jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('bot'), 'Content', 'beep', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
    'ClientRequestToken', 'c5'));

-- test: an elastic channel's message (audience: the members of its sub-channel)
do $$
declare v_el text; v_sub text; v_user text;
begin
    v_el := pg_temp.fx_set('el', (pg_temp.ok('create_channel', jsonb_build_object('AppInstanceArn', pg_temp.fx('app'),
        'Name', 'el', 'ChimeBearer', pg_temp.fx('mod'), 'Privacy', 'PUBLIC', 'Mode', 'RESTRICTED',
        'ElasticChannelConfiguration', jsonb_build_object('MaximumSubChannels', 3, 'TargetMembershipsPerSubChannel', 2,
                                                          'MinimumMembershipPercentage', 10))))->>'ChannelArn');
    foreach v_user in array array['member', 'member2', 'target'] loop
        perform pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', v_el,
            'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx(v_user)));
    end loop;
    select sub_channel_id into v_sub from carillon.channel_memberships
     where channel_arn = v_el and member_arn = pg_temp.fx('member');
    perform pg_temp.send_matches_builder(jsonb_build_object('ChannelArn', v_el,
        'ChimeBearer', pg_temp.fx('member'), 'Content', 'sub', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
        'ClientRequestToken', 'c6', 'SubChannelId', v_sub));
end $$;
