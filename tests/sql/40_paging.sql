-- The keyset listings' shared helpers (carillon.keyset_page, carillon.identity_page in
-- sql/api/00_common.sql), through the listing functions, called as the gateway calls a read: the
-- operation function with the request context, whose "after" is the cursor the gateway unsealed
-- from the NextToken (the page's "__next").
select pg_temp.make_fixture();

-- Every page of a listing, MaxResults p_max (null: the default), as [page, ...].
create function pg_temp.walk(p_fn text, p_input jsonb, p_max int) returns jsonb language plpgsql as $$
declare
    v_ctx jsonb := pg_temp.ctx();
    v_page jsonb;
    v_pages jsonb := '[]';
begin
    loop
        execute format('select carillon_api.%I($1, $2)', p_fn) into v_page
          using v_ctx, p_input || coalesce(jsonb_build_object('MaxResults', p_max), '{}');
        v_pages := v_pages || jsonb_build_array(v_page);
        exit when v_page->'__next' is null;
        assert jsonb_array_length(v_pages) < 100, 'the walk ends';
        v_ctx := pg_temp.ctx() || jsonb_build_object('after', v_page->'__next');
    end loop;
    return v_pages;
end $$;

-- The items of all pages under p_key, in page order.
create function pg_temp.items(p_pages jsonb, p_key text) returns jsonb language sql as $$
    select coalesce(jsonb_agg(i order by p.n, x.m), '[]')
      from jsonb_array_elements(p_pages) with ordinality p(page, n),
           jsonb_array_elements(p.page->p_key) with ordinality x(i, m)
$$;

-- test: pages of 2 walk every DEFAULT member once, in ARN order; each cursor is its page's last key
do $$
declare
    v_pages jsonb;
    v_expected jsonb;
    v_page jsonb;
begin
    perform pg_temp.ok('create_channel_membership', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('hidden'), 'Type', 'HIDDEN'));
    v_pages := pg_temp.walk('list_channel_memberships', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
                            'ChimeBearer', pg_temp.fx('member')), 2);
    select jsonb_agg(jsonb_build_object('Member', jsonb_build_object('Arn', a, 'Name', initcap(pg_temp.name_of(a))))
                     order by a)
      into v_expected
      from unnest(array[pg_temp.fx('mod'), pg_temp.fx('member'), pg_temp.fx('member2'), pg_temp.fx('target')]) a;
    assert pg_temp.items(v_pages, 'ChannelMemberships') = v_expected,
        format('walked %s, expected %s', pg_temp.items(v_pages, 'ChannelMemberships'), v_expected);
    assert jsonb_array_length(v_pages) = 2, v_pages::text;
    for v_page in select value from jsonb_array_elements(v_pages) loop
        assert v_page->>'ChannelArn' = pg_temp.fx('priv'), v_page::text;
        assert v_page->'__next' is null
               or v_page->'__next' = v_page->'ChannelMemberships'->-1->'Member'->'Arn', v_page::text;
    end loop;
    assert v_pages->-1->'__next' is null, 'the last page has no cursor';
end $$;

-- test: a page exactly as long as MaxResults that ends the listing has no cursor; the default is 50
do $$
declare v_pages jsonb;
begin
    v_pages := pg_temp.walk('list_channel_memberships', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
                            'ChimeBearer', pg_temp.fx('member')), 4);
    assert jsonb_array_length(v_pages) = 1 and jsonb_array_length(v_pages->0->'ChannelMemberships') = 4, v_pages::text;
    v_pages := pg_temp.walk('list_channel_memberships', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
                            'ChimeBearer', pg_temp.fx('member')), 3);
    assert jsonb_array_length(v_pages) = 2, v_pages::text;
    for i in 1..55 loop
        perform pg_temp.invoke('create_app_instance_bot', jsonb_build_object('AppInstanceArn', pg_temp.fx('app'),
            'Name', 'b' || i, 'Configuration', '{"Lex":{"LexBotAliasArn":"arn:aws:lex:us-east-1:123456789012:bot-alias/A/B","LocaleId":"en_US"}}'::jsonb));
    end loop;
    v_pages := pg_temp.walk('list_app_instance_bots', jsonb_build_object('AppInstanceArn', pg_temp.fx('app')), null);
    assert jsonb_array_length(v_pages->0->'AppInstanceBots') = 50 and jsonb_array_length(v_pages) = 2
           and jsonb_array_length(v_pages->1->'AppInstanceBots') = 6, v_pages::text;
    assert v_pages->0->>'AppInstanceArn' = pg_temp.fx('app'), 'the listing''s extra fields';
end $$;

-- test: the cursor is exclusive and need not be a listed key; the users' cursor is the AppInstanceUserId
do $$
declare v_page jsonb;
begin
    v_page := carillon_api.list_app_instance_users(pg_temp.ctx() || '{"after": "member"}',
                                                   jsonb_build_object('AppInstanceArn', pg_temp.fx('app'), 'MaxResults', 2));
    assert v_page->'AppInstanceUsers' = jsonb_build_array(
        jsonb_build_object('AppInstanceUserArn', pg_temp.fx('member2'), 'Name', 'Member2'),
        jsonb_build_object('AppInstanceUserArn', pg_temp.fx('mod'), 'Name', 'Mod')), v_page::text;
    assert v_page->>'__next' = 'mod', v_page::text;
    v_page := carillon_api.list_app_instance_users(pg_temp.ctx() || '{"after": "n"}',
                                                   jsonb_build_object('AppInstanceArn', pg_temp.fx('app')));
    assert v_page->'AppInstanceUsers'->0->>'AppInstanceUserArn' = pg_temp.fx('outsider') and v_page->'__next' is null,
        v_page::text;
end $$;

-- test: an empty listing is an empty array without a cursor
do $$
declare v_page jsonb;
begin
    v_page := carillon_api.list_channel_bans(pg_temp.ctx(), jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
                                             'ChimeBearer', pg_temp.fx('mod')));
    assert v_page = jsonb_build_object('ChannelArn', pg_temp.fx('priv'), 'ChannelBans', '[]'::jsonb), v_page::text;
end $$;

-- test: identity listings (admins, moderators, bans): {<item>: {Arn, Name}} by ARN, scoped to their AppInstance or channel
do $$
declare v_pages jsonb;
begin
    perform pg_temp.ok('create_channel_ban', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('outsider')));
    perform pg_temp.ok('create_channel_ban', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('bot')));
    perform pg_temp.ok('create_channel_ban', jsonb_build_object('ChannelArn', pg_temp.fx('pub'),
        'ChimeBearer', pg_temp.fx('mod'), 'MemberArn', pg_temp.fx('hidden')));
    v_pages := pg_temp.walk('list_channel_bans', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
                            'ChimeBearer', pg_temp.fx('admin')), 1);
    assert pg_temp.items(v_pages, 'ChannelBans') = (
        select jsonb_agg(jsonb_build_object('Member', jsonb_build_object('Arn', a, 'Name', n)) order by a)
          from (values (pg_temp.fx('outsider'), 'Outsider'), (pg_temp.fx('bot'), 'Bot')) v(a, n)), v_pages::text;
    perform pg_temp.ok('create_channel_moderator', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
        'ChimeBearer', pg_temp.fx('mod'), 'ChannelModeratorArn', pg_temp.fx('member')));
    v_pages := pg_temp.walk('list_channel_moderators', jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
                            'ChimeBearer', pg_temp.fx('member2')), 1);
    assert pg_temp.items(v_pages, 'ChannelModerators') = (
        select jsonb_agg(jsonb_build_object('Moderator', jsonb_build_object('Arn', a, 'Name', n)) order by a)
          from (values (pg_temp.fx('mod'), 'Mod'), (pg_temp.fx('member'), 'Member')) v(a, n)), v_pages::text;
    v_pages := pg_temp.walk('list_app_instance_admins', jsonb_build_object('AppInstanceArn', pg_temp.fx('app')), null);
    assert v_pages = jsonb_build_array(jsonb_build_object('AppInstanceArn', pg_temp.fx('app'), 'AppInstanceAdmins',
        jsonb_build_array(jsonb_build_object('Admin', jsonb_build_object('Arn', pg_temp.fx('admin'), 'Name', 'Admin'))))),
        v_pages::text;
end $$;
