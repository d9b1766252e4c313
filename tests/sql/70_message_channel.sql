-- A message lives as long as its channel (migration 098: the channel row's lock and a trigger on
-- channels, where a foreign key with ON DELETE CASCADE did it): deleting a channel, or the
-- AppInstance that holds it, deletes its messages and no other channel's; a send to a channel that
-- is gone is refused by every write path and stores nothing.
select pg_temp.make_fixture();

-- A persistent send of mod (a member of both channels) into a channel of the fixture, through the
-- group commit.
create function pg_temp.send(p_channel text, p_token text) returns jsonb language sql as $$
    select pg_temp.ok('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx(p_channel),
        'ChimeBearer', pg_temp.fx('mod'), 'Content', 'm-' || p_token, 'Type', 'STANDARD',
        'Persistence', 'PERSISTENT', 'ClientRequestToken', p_token))
$$;

create function pg_temp.messages_of(p_channel text) returns bigint language sql stable as $$
    select count(*) from carillon.channel_messages where channel_arn = pg_temp.fx(p_channel)
$$;

-- test: deleting a channel deletes its messages and leaves the other channel's
select pg_temp.send('priv', 'p1'), pg_temp.send('priv', 'p2'), pg_temp.send('pub', 'q1');
do $$
begin
    assert pg_temp.messages_of('priv') = 2 and pg_temp.messages_of('pub') = 1, 'the sends were not stored';
    perform pg_temp.ok('delete_channel', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
                                                            'ChimeBearer', pg_temp.fx('mod')));
    assert pg_temp.messages_of('priv') = 0, 'the deleted channel''s messages outlived it';
    assert pg_temp.messages_of('pub') = 1, 'another channel''s messages went with it';
end $$;

-- test: deleting the AppInstance deletes its channels' messages
select pg_temp.send('priv', 'p1'), pg_temp.send('pub', 'q1');
do $$
begin
    perform pg_temp.invoke('delete_app_instance', jsonb_build_object('AppInstanceArn', pg_temp.fx('app')));
    assert pg_temp.messages_of('priv') = 0 and pg_temp.messages_of('pub') = 0,
        'messages outlived their AppInstance''s channels';
end $$;

-- test: a send to a deleted channel is refused by the item path and declined by both batch paths, storing nothing
do $$
declare
    v_items jsonb;
begin
    perform pg_temp.ok('delete_channel', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
                                                            'ChimeBearer', pg_temp.fx('mod')));
    perform pg_temp.refused('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'Content', 'late', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
        'ClientRequestToken', 'r1'), 'CH404');
    -- Twelve sends for send_batch, the first four of them for send_few (batches of up to eight).
    select jsonb_agg(jsonb_build_object('fn', 'send_channel_message', 'ctx', pg_temp.ctx(),
               'input', jsonb_build_object('ChannelArn', pg_temp.fx('priv'), 'ChimeBearer', pg_temp.fx('mod'),
                   'Content', 'late', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT', 'ClientRequestToken', 't' || g))
               order by g)
      into v_items from generate_series(1, 12) g;
    assert carillon.send_batch(v_items) is null, 'send_batch took a batch into a deleted channel';
    assert not exists (select from carillon.send_few(jsonb_path_query_array(v_items, '$[0 to 3]'))),
        'send_few took a batch into a deleted channel';
    assert pg_temp.messages_of('priv') = 0, 'a send into a deleted channel stored a message';
end $$;
