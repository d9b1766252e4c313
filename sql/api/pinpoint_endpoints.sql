-- The Pinpoint endpoint registry of an app: UpdateEndpoint (202, create or update),
-- UpdateEndpointsBatch, GetEndpoint, DeleteEndpoint, GetUserEndpoints, DeleteUserEndpoints
-- (docs/push.md). Address, ChannelType, EndpointStatus, OptOut and User.UserId are columns (the
-- senders read them); everything else given is kept in body as given and returned as it was.

-- The endpoint as Pinpoint's EndpointResponse.
create or replace function carillon.pinpoint_endpoint_json(e carillon.pinpoint_endpoints) returns jsonb
language sql immutable as $$
    select (e.body - 'User') || jsonb_strip_nulls(jsonb_build_object(
        'Address', e.address, 'ApplicationId', e.app_id, 'ChannelType', e.channel_type,
        -- Pinpoint's cohort: a stable 0..99 bucket of the endpoint
        'CohortId', (abs(hashtext(e.endpoint_id)::bigint) % 100)::text,
        'CreationDate', carillon.pinpoint_date(e.created_at),
        'EffectiveDate', coalesce(e.body->>'EffectiveDate', carillon.pinpoint_date(e.updated_at)),
        'EndpointStatus', e.status, 'Id', e.endpoint_id, 'OptOut', e.opt_out,
        'User', case when e.user_id is not null or e.body ? 'User'
                     then coalesce(e.body->'User', '{}') || jsonb_strip_nulls(jsonb_build_object('UserId', e.user_id)) end))
$$;

-- Create or update endpoint p_id of app p_app from an EndpointRequest (or EndpointBatchItem). The
-- values given replace the stored ones, member by member; what is not given stays. A new Address
-- without an EndpointStatus makes the endpoint ACTIVE again (a device that re-registers with a
-- fresh token). At most 15 endpoints per user id, as Pinpoint.
create or replace function carillon.pinpoint_upsert_endpoint(ctx jsonb, p_app text, p_id text, p_req jsonb)
returns void language plpgsql as $$
declare
    v_now timestamptz := carillon.req_time(ctx);
    v_old carillon.pinpoint_endpoints;
    v_status text := p_req->>'EndpointStatus';
    v_user text;
begin
    if p_id is null or length(p_id) not between 1 and 256 or p_id ~ '[${}/]' then
        perform carillon.fail('CH400', 'An endpoint Id is 1 to 256 characters without $, {, } or /');
    end if;
    if v_status is not null and v_status not in ('ACTIVE', 'INACTIVE') then
        perform carillon.fail('CH400', 'EndpointStatus must be ACTIVE or INACTIVE');
    end if;
    if p_req->>'OptOut' is not null and p_req->>'OptOut' not in ('ALL', 'NONE') then
        perform carillon.fail('CH400', 'OptOut must be ALL or NONE');
    end if;
    if length(p_req->>'Address') > 4096 then
        perform carillon.fail('CH400', 'Address must be at most 4096 characters');
    end if;
    select * into v_old from carillon.pinpoint_endpoints where app_id = p_app and endpoint_id = p_id for update;
    if v_status is null and p_req->>'Address' is distinct from v_old.address and p_req ? 'Address' then
        v_status := 'ACTIVE';
    end if;
    insert into carillon.pinpoint_endpoints as e
           (app_id, endpoint_id, channel_type, address, status, opt_out, user_id, body, created_at, updated_at)
    values (p_app, p_id, p_req->>'ChannelType', p_req->>'Address', coalesce(v_status, 'ACTIVE'),
            coalesce(p_req->>'OptOut', 'NONE'), p_req->'User'->>'UserId',
            p_req - 'Id' - 'Address' - 'ChannelType' - 'EndpointStatus' - 'OptOut', v_now, v_now)
    on conflict (app_id, endpoint_id) do update
       set channel_type = coalesce(p_req->>'ChannelType', e.channel_type),
           address = coalesce(p_req->>'Address', e.address),
           status = coalesce(v_status, e.status),
           opt_out = coalesce(p_req->>'OptOut', e.opt_out),
           user_id = coalesce(p_req->'User'->>'UserId', e.user_id),
           body = e.body || excluded.body,
           updated_at = excluded.updated_at
    returning user_id into v_user;
    if v_user is not null
       and (select count(*) from carillon.pinpoint_endpoints where app_id = p_app and user_id = v_user) > 15 then
        perform carillon.fail('CH400', format('User %s has more than 15 endpoints', v_user));
    end if;
end $$;

create or replace function carillon.pinpoint_accepted(ctx jsonb) returns jsonb
language sql immutable as $$
    select jsonb_build_object('MessageBody', jsonb_build_object('Message', 'Accepted', 'RequestID', ctx->>'request_id'))
$$;

create or replace function carillon_api.pinpoint_update_endpoint(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
begin
    perform carillon.pinpoint_upsert_endpoint(ctx, (carillon.pinpoint_app_lock(input->>'ApplicationId')).id,
                                              input->>'EndpointId', input->'EndpointRequest');
    return carillon.pinpoint_accepted(ctx);
end $$;

-- UpdateEndpointsBatch: up to 100 items, each with its Id; all or none (one refused item refuses the batch).
create or replace function carillon_api.pinpoint_update_endpoints_batch(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_app text := (carillon.pinpoint_app_lock(input->>'ApplicationId')).id;
    v_items jsonb := input->'EndpointBatchRequest'->'Item';
    v_item jsonb;
begin
    if jsonb_array_length(v_items) not between 1 and 100 then
        perform carillon.fail('CH400', 'EndpointBatchRequest.Item must hold 1 to 100 endpoints');
    end if;
    for v_item in select value from jsonb_array_elements(v_items) loop
        if v_item->>'Id' is null then
            perform carillon.fail('CH400', 'Every EndpointBatchItem needs its Id');
        end if;
        perform carillon.pinpoint_upsert_endpoint(ctx, v_app, v_item->>'Id', v_item);
    end loop;
    return carillon.pinpoint_accepted(ctx);
end $$;

create or replace function carillon.pinpoint_endpoint_row(p_app text, p_id text) returns carillon.pinpoint_endpoints
language plpgsql stable as $$
declare v carillon.pinpoint_endpoints;
begin
    perform carillon.pinpoint_app_row(p_app);
    select * into v from carillon.pinpoint_endpoints where app_id = p_app and endpoint_id = p_id;
    if not found then
        perform carillon.fail('CH404', format('Endpoint %s of application %s not found', p_id, p_app));
    end if;
    return v;
end $$;

create or replace function carillon_api.pinpoint_get_endpoint(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select jsonb_build_object('EndpointResponse', carillon.pinpoint_endpoint_json(
        carillon.pinpoint_endpoint_row(input->>'ApplicationId', input->>'EndpointId')))
$$;

create or replace function carillon_api.pinpoint_delete_endpoint(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare v carillon.pinpoint_endpoints;
begin
    perform carillon.pinpoint_app_row(input->>'ApplicationId');
    delete from carillon.pinpoint_endpoints where app_id = input->>'ApplicationId' and endpoint_id = input->>'EndpointId'
    returning * into v;
    if not found then
        perform carillon.fail('CH404', format('Endpoint %s of application %s not found', input->>'EndpointId',
                                              input->>'ApplicationId'));
    end if;
    return jsonb_build_object('EndpointResponse', carillon.pinpoint_endpoint_json(v));
end $$;

-- GetUserEndpoints: the user's endpoints (at most 15, so one page), NotFound when there are none.
create or replace function carillon_api.pinpoint_get_user_endpoints(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare v jsonb;
begin
    perform carillon.pinpoint_app_row(input->>'ApplicationId');
    select jsonb_agg(carillon.pinpoint_endpoint_json(e) order by e.endpoint_id) into v
      from carillon.pinpoint_endpoints e where e.app_id = input->>'ApplicationId' and e.user_id = input->>'UserId';
    if v is null then
        perform carillon.fail('CH404', format('User %s has no endpoints in application %s', input->>'UserId',
                                              input->>'ApplicationId'));
    end if;
    return jsonb_build_object('EndpointsResponse', jsonb_build_object('Item', v));
end $$;

create or replace function carillon_api.pinpoint_delete_user_endpoints(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare v jsonb;
begin
    perform carillon.pinpoint_app_row(input->>'ApplicationId');
    with gone as (delete from carillon.pinpoint_endpoints
                   where app_id = input->>'ApplicationId' and user_id = input->>'UserId' returning *)
    select jsonb_agg(carillon.pinpoint_endpoint_json(g) order by g.endpoint_id) into v from gone g;
    if v is null then
        perform carillon.fail('CH404', format('User %s has no endpoints in application %s', input->>'UserId',
                                              input->>'ApplicationId'));
    end if;
    return jsonb_build_object('EndpointsResponse', jsonb_build_object('Item', v));
end $$;
