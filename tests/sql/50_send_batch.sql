-- carillon.send_batch, the set-based group commit of SendChannelMessage (sql/api/messaging_message.sql),
-- and carillon.send_few, the same for small batches an item at a time, must store and announce
-- exactly what the item-by-item path (carillon.run_op per item, as carillon_api.invoke_batch does for
-- other batches) stores and announces, and must decline (NULL or no rows, nothing written) any batch
-- with an item that path would refuse or treat specially.
select pg_temp.make_fixture();

-- A send item of the root key at a fixed request time.
create function pg_temp.send_item(p_channel text, p_bearer text, p_token text, p_now_ms bigint,
                                  p_extra jsonb default '{}') returns jsonb language sql stable as $$
    select jsonb_build_object('fn', 'send_channel_message',
        'ctx', pg_temp.ctx() || jsonb_build_object('now_ms', p_now_ms),
        'input', jsonb_build_object('ChannelArn', pg_temp.fx(p_channel), 'ChimeBearer', pg_temp.fx(p_bearer),
                                    'Content', 'm-' || p_token, 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
                                    'ClientRequestToken', p_token) || p_extra)
$$;

-- What a batch wrote: its messages (seq replaced by its rank: values differ between runs) and the
-- events it logged, in order.
create function pg_temp.written(p_since bigint, p_items jsonb) returns jsonb language sql stable as $$
    select jsonb_build_object(
        'messages', (select jsonb_agg(to_jsonb(m) - 'seq' || jsonb_build_object('rank', rank) order by rank)
                       from (select m.*, rank() over (order by m.seq) as rank from carillon.channel_messages m
                              where (m.channel_arn, m.message_id) in
                                    (select i->'input'->>'ChannelArn', carillon.send_message_id(i->'ctx', i->'input')
                                      from jsonb_array_elements(p_items) i)) m),
        'events', (select jsonb_agg(jsonb_build_object('channel', e.channel_arn, 'type', e.event_type,
                                                       'message_type', e.message_type, 'audience', e.audience,
                                                       'arns', e.arns,
                                                       -- as jsonb: each path writes its own text of it
                                                       'payload', coalesce(e.payload_text::jsonb, e.payload))
                                    order by e.position)
                     from carillon.events e where e.position > p_since))
$$;

-- The item-by-item path's result for p_items, then rolled back (an exception carries it out).
create function pg_temp.itemwise(p_items jsonb) returns jsonb language plpgsql as $$
declare
    v_mark bigint := pg_temp.mark();
    v_item jsonb;
    v_out jsonb := '[]';
    v_events jsonb := '[]';
    v_r jsonb;
begin
    begin
        perform carillon.lock_batch_channels(p_items);
        for v_item in select value from jsonb_array_elements(p_items) loop
            v_r := carillon.run_op(v_item->>'fn', v_item->'ctx', v_item->'input');
            v_events := v_events || coalesce(v_r->'__events', '[]');
            v_out := v_out || jsonb_build_array(jsonb_build_object('ok', v_r - '__events'));
        end loop;
        perform carillon.flush_events(v_events);
        raise exception using errcode = 'XX123',
            message = (pg_temp.written(v_mark, p_items) || jsonb_build_object('out', v_out))::text;
    exception when sqlstate 'XX123' then
        return SQLERRM::jsonb;
    end;
end $$;

-- The small-batch path's result for p_items (send_few's rows as the answers send_batch returns;
-- 'out' null when it declines; 'stored' the number of messages afterwards), then rolled back.
create function pg_temp.few(p_items jsonb) returns jsonb language plpgsql as $$
declare
    v_mark bigint := pg_temp.mark();
    v_out jsonb;
begin
    begin
        select jsonb_agg(jsonb_build_object('ok', f.ok::jsonb) order by f.ordinality) into v_out
          from carillon.send_few(p_items) with ordinality f;
        raise exception using errcode = 'XX123',
            message = (pg_temp.written(v_mark, p_items) || jsonb_build_object('out', v_out,
                'stored', (select count(*) from carillon.channel_messages)))::text;
    exception when sqlstate 'XX123' then
        return SQLERRM::jsonb;
    end;
end $$;

-- Both set paths must take p_items and write what the item path writes.
create function pg_temp.set_matches_itemwise(p_items jsonb) returns void language plpgsql as $$
declare
    v_ref jsonb := pg_temp.itemwise(p_items);
    v_few jsonb := pg_temp.few(p_items);
    v_mark bigint := pg_temp.mark();
    v_out text[];
    v_got jsonb;
begin
    if v_few->'out' = 'null'::jsonb then
        raise exception 'send_few declined a batch of plain sends: %', p_items;
    end if;
    if v_few - 'stored' is distinct from v_ref then
        raise exception E'the small-batch path wrote something else\n  few:   %\n  items: %', v_few - 'stored', v_ref;
    end if;
    v_out := carillon.send_batch(p_items);
    if v_out is null then
        raise exception 'send_batch declined a batch of plain sends: %', p_items;
    end if;
    -- Its answers are the response bodies as text, exactly as jsonb prints them (the gateway sends
    -- them as they are).
    if exists (select 1 from unnest(v_out) t where t is distinct from (t::jsonb)::text) then
        raise exception 'an answer of the set path is not as jsonb prints it: %', v_out;
    end if;
    v_got := pg_temp.written(v_mark, p_items) || jsonb_build_object('out',
        (select jsonb_agg(jsonb_build_object('ok', t::jsonb) order by n) from unnest(v_out) with ordinality as u(t, n)));
    if v_got is distinct from v_ref then
        raise exception E'the set path wrote something else\n  set:   %\n  items: %', v_got, v_ref;
    end if;
end $$;

-- Both set paths must decline p_items and write nothing.
create function pg_temp.set_declines(p_items jsonb) returns void language plpgsql as $$
declare
    v_mark bigint := pg_temp.mark();
    v_count bigint := (select count(*) from carillon.channel_messages);
    v_few jsonb;
begin
    if carillon.send_batch(p_items) is not null then
        raise exception 'send_batch took a batch it must decline: %', p_items;
    end if;
    v_few := pg_temp.few(p_items);
    if v_few->'out' <> 'null'::jsonb then
        raise exception 'send_few took a batch it must decline: %', p_items;
    end if;
    assert (v_few->>'stored')::bigint = v_count, 'send_few stored messages of a batch it declined';
    assert v_few->'events' = 'null'::jsonb, 'send_few logged events of a batch it declined';
    assert (select count(*) from carillon.channel_messages) = v_count, 'a declined batch stored messages';
    assert pg_temp.mark() = v_mark, 'a declined batch logged events';
end $$;

-- test: one message
select pg_temp.set_matches_itemwise(jsonb_build_array(pg_temp.send_item('priv', 'member', 't1', 1700000000000)));

-- test: many messages, two channels, senders of both kinds, optional members, CONTROL
select pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('bot')));
select pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('pub'),
    'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('member')));
select pg_temp.set_matches_itemwise(jsonb_build_array(
    pg_temp.send_item('priv', 'member', 'a1', 1700000000000),
    pg_temp.send_item('pub', 'member', 'a2', 1700000000000, '{"Metadata":"meta","ContentType":"text/markdown"}'),
    pg_temp.send_item('priv', 'bot', 'a3', 1700000000001, '{"MessageAttributes":{"k":{"StringValues":["v"]}}}'),
    pg_temp.send_item('priv', 'member2', 'a4', 1700000000001, '{"Type":"CONTROL","Content":"ctl"}'),
    pg_temp.send_item('pub', 'mod', 'a5', 1700000000002, '{"Content":"é \"q\" \\\\"}')));

-- test: optional members given as JSON null (and a null inside MessageAttributes) are left out of
-- the event's payload, as the item path's jsonb_strip_nulls leaves them out
select pg_temp.set_matches_itemwise(jsonb_build_array(
    pg_temp.send_item('priv', 'member', 'n1', 1700000003000,
                      '{"Metadata":null,"ContentType":null,"MessageAttributes":{"k":{"StringValues":["v"],"x":null}}}'),
    pg_temp.send_item('pub', 'mod', 'n2', 1700000003001, '{"MessageAttributes":null}')));

-- test: request text that JSON must escape (controls, a quote, a backslash, U+2028, non-ASCII) reads
-- back from the text payload as the same document the item path stores
select pg_temp.set_matches_itemwise(jsonb_build_array(
    pg_temp.send_item('priv', 'member', 'x1', 1700000003500,
                      jsonb_build_object('Content', E'tab\there\nline \u0001 \"q\" \\ \u2028 é 😀',
                                         'Metadata', E'\u001f\r', 'ContentType', E'text/\"x\"'))));

-- test: request times out of order: CreatedTimestamp never goes back within a channel
select pg_temp.set_matches_itemwise(jsonb_build_array(
    pg_temp.send_item('priv', 'member', 'o1', 1700000005000),
    pg_temp.send_item('priv', 'member2', 'o2', 1700000004000),
    pg_temp.send_item('priv', 'member', 'o3', 1700000006000),
    pg_temp.send_item('pub', 'mod', 'o4', 1700000001000)));

-- test: a channel whose last message is later than the request times
select pg_temp.ok('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('member'), 'Content', 'late', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
    'ClientRequestToken', 'late'));
select pg_temp.set_matches_itemwise(jsonb_build_array(
    pg_temp.send_item('priv', 'member', 'p1', 1600000000000),
    pg_temp.send_item('priv', 'member2', 'p2', 1600000000001)));

-- test: the batch is declined when an item would be refused or needs the item path
select pg_temp.ok('send_channel_message', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('member'), 'Content', 'm-late', 'Type', 'STANDARD', 'Persistence', 'PERSISTENT',
    'ClientRequestToken', 'late'));
select pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
    'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('hidden'), 'Type', 'HIDDEN'));
do $$
declare
    v_good jsonb := pg_temp.send_item('priv', 'member', 'g1', 1700000000000);
    v_bad jsonb;
begin
    foreach v_bad in array array[
        pg_temp.send_item('priv', 'outsider', 'b1', 1700000000000),            -- not a member
        pg_temp.send_item('priv', 'hidden', 'b2', 1700000000000),              -- HIDDEN member
        pg_temp.send_item('priv', 'other', 'b3', 1700000000000),               -- another AppInstance's user
        pg_temp.send_item('priv', 'member', 'b4', 1700000000000,
                          jsonb_build_object('Content', repeat('x', 4097))),    -- too long
        pg_temp.send_item('priv', 'member', 'b5', 1700000000000,
                          '{"Type":"CONTROL","Content":"this is longer than thirty bytes"}'),
        pg_temp.send_item('priv', 'member', 'b6', 1700000000000, '{"Type":"CONTROL","Content":"c","Metadata":""}'),
        pg_temp.send_item('priv', 'member', 'b7', 1700000000000,
                          jsonb_build_object('ChannelArn', pg_temp.fx('priv') || 'x')),  -- no such channel
        pg_temp.send_item('priv', 'member', 'b8', 1700000000000, '{"Persistence":"NON_PERSISTENT"}'),
        pg_temp.send_item('priv', 'member', 'b9', 1700000000000,
                          jsonb_build_object('Target', jsonb_build_array(jsonb_build_object('MemberArn', pg_temp.fx('target'))))),
        pg_temp.send_item('priv', 'member', 'b10', 1700000000000, '{"SubChannelId":"s"}'),
        pg_temp.send_item('priv', 'member', 'b11', 1700000000000) - 'input'
            || jsonb_build_object('input', (pg_temp.send_item('priv', 'member', 'b11', 1700000000000)->'input') - 'ClientRequestToken'),
        pg_temp.send_item('priv', 'member', 'late', 1700000000000),            -- a retry of a stored message
        v_good,                                                                 -- the same token twice in one batch
        jsonb_build_object('fn', 'update_channel', 'ctx', pg_temp.ctx(), 'input', '{}'::jsonb)]
    loop
        perform pg_temp.set_declines(jsonb_build_array(v_good, v_bad));
    end loop;
end $$;

-- test: a user credential whose user was deleted: declined
do $$
declare v_item jsonb := pg_temp.send_item('priv', 'member', 'u1', 1700000000000);
begin
    v_item := jsonb_set(v_item, '{ctx}', v_item->'ctx' || jsonb_build_object('principal', 'user',
        'user_arn', pg_temp.fx('member'), 'user_gen', 987654321));
    perform pg_temp.set_declines(jsonb_build_array(v_item));
end $$;

-- test: user credentials of the right generation go the set path, as their user or naming another sender; the wrong generation naming another sender is declined
do $$
declare
    v_gen bigint := (select generation from carillon.app_instance_users where arn = pg_temp.fx('member'));
    v_user jsonb := jsonb_build_object('principal', 'user', 'user_arn', pg_temp.fx('member'), 'user_gen', v_gen);
    v_self jsonb := pg_temp.send_item('priv', 'member', 'g1', 1700000000000);
    v_other jsonb := pg_temp.send_item('priv', 'member2', 'g2', 1700000000001);
    v_root jsonb := pg_temp.send_item('priv', 'member2', 'g3', 1700000000002);
begin
    v_self := jsonb_set(v_self, '{ctx}', v_self->'ctx' || v_user);
    v_other := jsonb_set(v_other, '{ctx}', v_other->'ctx' || v_user);
    perform pg_temp.set_matches_itemwise(jsonb_build_array(v_self, v_other, v_root));
    -- (new tokens: the batch above is stored, a retry of it would be declined anyway)
    v_other := pg_temp.send_item('priv', 'member2', 'g5', 1700000000003);
    v_other := jsonb_set(v_other, '{ctx}', v_other->'ctx' || v_user || jsonb_build_object('user_gen', v_gen + 1));
    perform pg_temp.set_declines(jsonb_build_array(pg_temp.send_item('priv', 'member2', 'g6', 1700000000004), v_other));
end $$;

-- test: through invoke_batch, a batch with one refused item answers every item on its own
do $$
declare v_out jsonb := carillon_api.invoke_batch(jsonb_build_array(
        pg_temp.send_item('priv', 'member', 'm1', 1700000000000),
        pg_temp.send_item('priv', 'outsider', 'm2', 1700000000000),
        pg_temp.send_item('priv', 'member2', 'm3', 1700000000000)));
begin
    assert v_out->0 ? 'ok' and v_out->2 ? 'ok', v_out::text;
    assert v_out #>> '{1,error,state}' = 'CH403', v_out::text;
    assert (select count(*) from carillon.channel_messages where channel_arn = pg_temp.fx('priv')
             and content in ('m-m1', 'm-m3')) = 2;
end $$;

-- test: the answers of a small batch carry their events as the log's readers get them (invoke_batch_rows' ev_ columns = events_after's row)
do $$
declare
    v_mark bigint := pg_temp.mark();
    v_items jsonb := jsonb_build_array(
        pg_temp.send_item('priv', 'member', 'e1', 1700000000000, '{"Metadata":"m","ContentType":"text/plain"}'),
        pg_temp.send_item('pub', 'mod', 'e2', 1700000000001, '{"Content":"é \"q\" \\\\","MessageAttributes":{"k":{"StringValues":["v"]}}}'),
        pg_temp.send_item('priv', 'bot', 'e3', 1700000000002, '{"Type":"CONTROL","Content":"ctl"}'));
    v_carried text[];
    v_logged text[];
    v_at float8;
    v_skew float8;
begin
    perform pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('bot')));
    v_mark := pg_temp.mark();
    select array_agg(concat_ws('|', b.ev_position, b.ev_channel_arn, b.ev_event_type, b.ev_message_type, b.ev_payload,
                               b.ev_audience, b.ev_arns, b.ev_joins, b.ev_leaves, b.ev_closes) order by b.ev_position),
           max(b.ev_created_at)
      into v_carried, v_at from carillon_api.invoke_batch_rows(v_items) b;
    select array_agg(concat_ws('|', r_position, r_channel_arn, r_event_type, r_message_type, r_payload,
                               r_audience, r_arns, r_joins, r_leaves, r_closes) order by r_position)
      into v_logged from carillon.events_after(v_mark, 100);
    assert cardinality(v_carried) = 3, format('three events carried: %s', v_carried);
    assert v_carried = v_logged, format(E'carried and logged differ\n  carried: %s\n  logged:  %s', v_carried, v_logged);
    v_skew := abs(v_at - (select max(r_created_at) from carillon.events_after(v_mark, 100)));
    assert v_skew < 0.001, format('created_at carried %s, logged %s', v_at, v_skew);
    -- a batch of more than 4 sends carries none (one read of the log serves them all)
    assert (select count(*) filter (where ev_position is null and ok is not null)
              from carillon_api.invoke_batch_rows(jsonb_build_array(
                       pg_temp.send_item('priv', 'member', 'f1', 1700000000010), pg_temp.send_item('priv', 'member', 'f2', 1700000000010),
                       pg_temp.send_item('priv', 'member', 'f3', 1700000000010), pg_temp.send_item('priv', 'member', 'f4', 1700000000010),
                       pg_temp.send_item('priv', 'member', 'f5', 1700000000010)))) = 5,
        'a batch of five carries no event';
    -- an item the set path does not take carries none (a retry of e1: the item path answers it)
    assert (select ev_position is null and ok is not null
              from carillon_api.invoke_batch_rows(jsonb_build_array(
                       pg_temp.send_item('priv', 'member', 'e1', 1700000000000, '{"Metadata":"m","ContentType":"text/plain"}')))),
        'a retry carries no event';
end $$;

-- test: the set path's statements keep their generic plans (planned again for every batch, they
-- doubled the lane's CPU a message once the tables grew: the plan_cache_mode of send_messages)
do $$
begin
    assert (select 'plan_cache_mode=force_generic_plan' = any(proconfig) from pg_proc
             where oid = to_regprocedure('carillon_api.send_messages(text[], text[], text[], text[], text[], bigint[], '
                                         'text[], text[], text[], text[], jsonb[], jsonb[], uuid[], text[], bigint[], '
                                         'text[], text[])')),
           'carillon_api.send_messages does not force generic plans';
end $$;
