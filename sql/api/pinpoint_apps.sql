-- Pinpoint apps: CreateApp, GetApp, GetApps, DeleteApp (docs/push.md). Only the root credential or
-- an admin key reaches these (CARILLON_OP_ADMIN). With the payload trait the gateway hands over
-- the request body as one member (CreateApplicationRequest) and sends back the one member of the
-- returned document (ApplicationResponse) as the whole body.

-- Pinpoint's dates are ISO 8601 strings with milliseconds.
create or replace function carillon.pinpoint_date(t timestamptz) returns text
language sql immutable as $$ select to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

create or replace function carillon.pinpoint_app_row(p_id text) returns carillon.pinpoint_apps
language plpgsql stable as $$
begin
    return carillon.must_exist((select a from carillon.pinpoint_apps a where a.id = p_id),
                               format('Application %s not found', p_id));
end $$;

-- The app p_id with its row locked (FOR KEY SHARE, to commit: what is written under it cannot lose
-- its app to a concurrent DeleteApp), or NotFound.
create or replace function carillon.pinpoint_app_lock(p_id text) returns carillon.pinpoint_apps
language plpgsql as $$
declare v carillon.pinpoint_apps;
begin
    select * into v from carillon.pinpoint_apps where id = p_id for key share;
    if not found then
        perform carillon.fail('CH404', format('Application %s not found', p_id));
    end if;
    return v;
end $$;

create or replace function carillon.pinpoint_app_json(a carillon.pinpoint_apps) returns jsonb
language sql immutable as $$
    select jsonb_build_object('Arn', a.arn, 'Id', a.id, 'Name', a.name, 'tags', a.tags,
                              'CreationDate', carillon.pinpoint_date(a.created_at))
$$;

-- PageSize is a string in Pinpoint's model: 1..1000, default 100.
create or replace function carillon.pinpoint_page_size(input jsonb) returns int
language plpgsql immutable as $$
declare v int;
begin
    if input->>'PageSize' is null then
        return 100;
    end if;
    if input->>'PageSize' !~ '^[0-9]{1,4}$' or (input->>'PageSize')::int not between 1 and 1000 then
        perform carillon.fail('CH400', 'PageSize must be an integer from 1 to 1000');
    end if;
    return (input->>'PageSize')::int;
end $$;

-- A Pinpoint listing: keyset_page's document {p_list: items, __next?} made into
-- {p_member: {p_list: items}, __next?}; the gateway seals __next into p_member's NextToken.
create or replace function carillon.pinpoint_keyset_page(ctx jsonb, input jsonb, p_member text, p_list text,
                                                         p_rows text, p_item text, p_args jsonb default '{}')
returns jsonb language plpgsql stable as $$
declare v jsonb := carillon.keyset_page(ctx, input || jsonb_build_object('MaxResults', carillon.pinpoint_page_size(input)),
                                        p_list, p_rows, p_item, p_args);
begin
    return jsonb_build_object(p_member, v - '__next')
        || case when v ? '__next' then jsonb_build_object('__next', v->'__next') else '{}' end;
end $$;

-- CreateApp: a new app with a 32-hex-digit id, like Pinpoint's. Name 1..256 characters; at most 50
-- tags (keys up to 128, values up to 256 characters, AWS's tagging rules).
create or replace function carillon_api.pinpoint_create_app(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_req jsonb := input->'CreateApplicationRequest';
    v_id text := md5(gen_random_uuid()::text);
    v_app carillon.pinpoint_apps;
begin
    if length(btrim(v_req->>'Name')) = 0 or length(v_req->>'Name') > 256 then
        perform carillon.fail('CH400', 'Name must be 1 to 256 characters, not only spaces');
    end if;
    if (select count(*) from jsonb_object_keys(coalesce(v_req->'tags', '{}'))) > 50
       or exists (select 1 from jsonb_each_text(coalesce(v_req->'tags', '{}')) t
                   where length(t.key) not between 1 and 128 or length(t.value) > 256) then
        perform carillon.fail('CH400', 'tags: at most 50, keys of 1 to 128 and values of at most 256 characters');
    end if;
    insert into carillon.pinpoint_apps (id, arn, name, tags, created_at)
    values (v_id, 'arn:aws:mobiletargeting:' || (ctx->>'region') || ':' || (ctx->>'account') || ':apps/' || v_id,
            v_req->>'Name', coalesce(v_req->'tags', '{}'), carillon.req_time(ctx))
    returning * into v_app;
    return jsonb_build_object('ApplicationResponse', carillon.pinpoint_app_json(v_app));
end $$;

create or replace function carillon_api.pinpoint_get_app(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select jsonb_build_object('ApplicationResponse',
                              carillon.pinpoint_app_json(carillon.pinpoint_app_row(input->>'ApplicationId')))
$$;

-- GetApps: every app, by id, PageSize at a time.
create or replace function carillon_api.pinpoint_get_apps(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select carillon.pinpoint_keyset_page(ctx, input, 'ApplicationsResponse', 'Item',
        'select id as k, a from carillon.pinpoint_apps a', 'carillon.pinpoint_app_json(r.a)')
$$;

-- DeleteApp: the app, its channels (and their sealed secrets) and its endpoints go (cascade). Chime
-- endpoints naming it read INVALID_PINPOINT_ARN from then on (identity_endpoint.sql).
create or replace function carillon_api.pinpoint_delete_app(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare v_app carillon.pinpoint_apps;
begin
    delete from carillon.pinpoint_apps where id = input->>'ApplicationId' returning * into v_app;
    if not found then
        perform carillon.fail('CH404', format('Application %s not found', input->>'ApplicationId'));
    end if;
    return jsonb_build_object('ApplicationResponse', carillon.pinpoint_app_json(v_app));
end $$;
