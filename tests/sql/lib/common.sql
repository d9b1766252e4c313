-- Helpers of the SQL tests (tests/sql/run.sh runs this first in every test's transaction). They live
-- in pg_temp: call them as pg_temp.name(...). Everything is rolled back at the end of the test.
set client_min_messages = warning;

-- The request context of the root key (as the gateway builds it in src/api/sql_handler.c).
create function pg_temp.ctx() returns jsonb language sql volatile as $$
    select jsonb_build_object('region', 'us-east-1', 'account', '123456789012', 'principal', 'root',
                              'now_ms', (extract(epoch from clock_timestamp()) * 1000)::bigint)
$$;

-- Named things of the fixture: ARNs and ids, by a short name the assertions use.
create temp table fx (key text primary key, val text not null);

create function pg_temp.fx(p_key text) returns text language plpgsql stable as $$
declare v text;
begin
    select val into v from fx where key = p_key;
    if v is null then
        raise exception 'fixture has no %', p_key;
    end if;
    return v;
end $$;

create function pg_temp.fx_set(p_key text, p_val text) returns text language sql as $$
    insert into fx values (p_key, p_val) on conflict (key) do update set val = excluded.val returning val
$$;

-- One operation through carillon_api.invoke (one request, one transaction: its events are stored
-- by it). An error propagates.
create function pg_temp.invoke(p_fn text, p_input jsonb) returns jsonb language sql as $$
    select carillon_api.invoke(p_fn, pg_temp.ctx(), p_input)
$$;

-- One write through carillon_api.invoke_batch, as the gateway's group commit sends it: returns the
-- item's {"ok": output} or {"error": {"state", "message"}}.
create function pg_temp.batch(p_fn text, p_input jsonb) returns jsonb language sql as $$
    select carillon_api.invoke_batch(jsonb_build_array(
               jsonb_build_object('fn', p_fn, 'ctx', pg_temp.ctx(), 'input', p_input)))->0
$$;

-- A write that must succeed (through invoke_batch); returns its output.
create function pg_temp.ok(p_fn text, p_input jsonb) returns jsonb language plpgsql as $$
declare r jsonb := pg_temp.batch(p_fn, p_input);
begin
    if not r ? 'ok' then
        raise exception '% was refused: %', p_fn, r->'error';
    end if;
    return r->'ok';
end $$;

-- A write that must be refused with SQLSTATE p_state (through invoke_batch).
create function pg_temp.refused(p_fn text, p_input jsonb, p_state text) returns void language plpgsql as $$
declare r jsonb := pg_temp.batch(p_fn, p_input);
begin
    if r #>> '{error,state}' is distinct from p_state then
        raise exception '% should have been refused with %, got %', p_fn, p_state, r;
    end if;
end $$;

-- A statement that must raise SQLSTATE p_state.
create function pg_temp.raises(p_sql text, p_state text) returns void language plpgsql as $$
begin
    execute p_sql;
    raise exception 'expected SQLSTATE % from: %', p_state, p_sql using errcode = 'XX001';
exception when others then
    if SQLSTATE = 'XX001' or SQLSTATE <> p_state then
        raise exception 'expected SQLSTATE % from: %, got % (%)', p_state, p_sql, SQLSTATE, SQLERRM;
    end if;
end $$;

-- The event log position now: the events a test's writes store come after it.
create function pg_temp.mark() returns bigint language sql as $$
    select coalesce(max(position), 0) from carillon.events
$$;

-- A fixture name for an ARN (the ARN itself when it has none).
create function pg_temp.name_of(p_val text) returns text language sql stable as $$
    select coalesce((select key from fx where val = p_val order by key limit 1), p_val)
$$;

-- The events of the fixture's AppInstances stored after p_mark, in log order, each as
-- "EVENT_TYPE channel audience message_type [arns]" with fixture names for ARNs. The routing facts
-- are read here only, so that a change of how events record them changes this one function.
create function pg_temp.events_since(p_mark bigint) returns text[] language sql stable as $$
    select coalesce(array_agg(format('%s %s %s %s [%s]', e.event_type, pg_temp.name_of(e.channel_arn), e.audience,
                                     e.message_type,
                                     array_to_string(array(select pg_temp.name_of(a) from unnest(e.arns) a), ','))
                              order by e.position), '{}')
      from carillon.events e
     where e.position > p_mark
       and e.app_instance_id in (select val from fx where key like 'app_id%')
$$;

create function pg_temp.expect_events(p_mark bigint, p_expected text[]) returns void language plpgsql as $$
declare v_got text[] := pg_temp.events_since(p_mark);
begin
    if v_got is distinct from p_expected then
        raise exception E'events differ\n  expected: %\n  got:      %', p_expected, v_got;
    end if;
end $$;

-- The fixture: AppInstance "app" (and "app2"), its users admin (an AppInstanceAdmin), mod, member,
-- member2, target, hidden, outsider, and a bot; "other", a user of app2. Channels (created by mod,
-- so mod moderates them): "priv" (PRIVATE, RESTRICTED; members mod, member, member2, target),
-- "pub" (PUBLIC, RESTRICTED; member mod).
create function pg_temp.make_fixture() returns void language plpgsql as $$
declare
    v_app text;
    v_app2 text;
    v_user text;
    v_tag text := substr(md5(random()::text), 1, 10);
begin
    v_app := pg_temp.fx_set('app', (pg_temp.invoke('create_app_instance',
                                     jsonb_build_object('Name', 'sqltest-' || v_tag)))->>'AppInstanceArn');
    v_app2 := pg_temp.fx_set('app2', (pg_temp.invoke('create_app_instance',
                                      jsonb_build_object('Name', 'sqltest2-' || v_tag)))->>'AppInstanceArn');
    perform pg_temp.fx_set('app_id', carillon.app_instance_id(v_app));
    perform pg_temp.fx_set('app_id2', carillon.app_instance_id(v_app2));
    foreach v_user in array array['admin', 'mod', 'member', 'member2', 'target', 'hidden', 'outsider'] loop
        perform pg_temp.fx_set(v_user, (pg_temp.invoke('create_app_instance_user', jsonb_build_object(
            'AppInstanceArn', v_app, 'AppInstanceUserId', v_user, 'Name', initcap(v_user))))->>'AppInstanceUserArn');
    end loop;
    perform pg_temp.fx_set('bot', (pg_temp.invoke('create_app_instance_bot', jsonb_build_object(
        'AppInstanceArn', v_app, 'Name', 'Bot',
        'Configuration', '{"Lex":{"LexBotAliasArn":"arn:aws:lex:us-east-1:123456789012:bot-alias/A/B","LocaleId":"en_US"}}'::jsonb)))
        ->>'AppInstanceBotArn');
    perform pg_temp.fx_set('other', (pg_temp.invoke('create_app_instance_user', jsonb_build_object(
        'AppInstanceArn', v_app2, 'AppInstanceUserId', 'other', 'Name', 'Other')))->>'AppInstanceUserArn');
    perform pg_temp.invoke('create_app_instance_admin', jsonb_build_object(
        'AppInstanceArn', v_app, 'AppInstanceAdminArn', pg_temp.fx('admin')));
    perform pg_temp.fx_set('priv', (pg_temp.invoke('create_channel', jsonb_build_object(
        'AppInstanceArn', v_app, 'Name', 'priv', 'ChimeBearer', pg_temp.fx('mod'), 'Privacy', 'PRIVATE',
        'Mode', 'RESTRICTED',
        'MemberArns', jsonb_build_array(pg_temp.fx('member'), pg_temp.fx('member2'), pg_temp.fx('target')))))
        ->>'ChannelArn');
    perform pg_temp.fx_set('pub', (pg_temp.invoke('create_channel', jsonb_build_object(
        'AppInstanceArn', v_app, 'Name', 'pub', 'ChimeBearer', pg_temp.fx('mod'), 'Privacy', 'PUBLIC',
        'Mode', 'RESTRICTED')))->>'ChannelArn');
end $$;

-- A channel row of the fixture by name.
create function pg_temp.ch(p_key text) returns carillon.channels language sql stable as $$
    select carillon.channel_row(pg_temp.fx(p_key))
$$;
