-- AppInstanceUserEndpoint: a push-notification device of a user.

create or replace function carillon.endpoint_row(p_user text, p_id text) returns carillon.app_instance_user_endpoints
language plpgsql stable as $$
begin
    return carillon.must_exist((select r from carillon.app_instance_user_endpoints r
                                 where r.user_arn = p_user and r.endpoint_id = p_id),
                               format('Endpoint %s of %s not found', p_id, p_user));
end $$;

-- RegisterAppInstanceUserEndpoint: at most carillon.quota('max_endpoints_per_user') endpoints per
-- user (Chime: 10); one more is ResourceLimitExceeded. The user row is locked (FOR NO KEY UPDATE, to
-- commit) before counting, so concurrent registrations for one user are counted one after the other.
create or replace function carillon_api.register_app_instance_user_endpoint(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_user carillon.app_instance_users := carillon.user_row(input->>'AppInstanceUserArn');
    v_id text := gen_random_uuid()::text;
    v_now timestamptz := carillon.req_time(ctx);
begin
    perform 1 from carillon.app_instance_users where arn = v_user.arn for no key update;
    if not found then    -- deleted meanwhile
        perform carillon.fail('CH404', format('AppInstanceUser %s not found', v_user.arn));
    end if;
    perform carillon.require_quota(
        (select count(*) from carillon.app_instance_user_endpoints where user_arn = v_user.arn) + 1,
        'max_endpoints_per_user', 10, format('Too many endpoints for AppInstanceUser %s', v_user.arn));
    insert into carillon.app_instance_user_endpoints
        (user_arn, endpoint_id, name, type, resource_arn, endpoint_attributes, allow_messages, created_at, updated_at)
    values (v_user.arn, v_id, input->>'Name', input->>'Type', input->>'ResourceArn', input->'EndpointAttributes',
            coalesce(input->>'AllowMessages', 'ALL'), v_now, v_now);
    return jsonb_build_object('AppInstanceUserArn', v_user.arn, 'EndpointId', v_id);
end $$;

-- EndpointState: INACTIVE/INVALID_PINPOINT_ARN while ResourceArn names no Pinpoint app of this
-- server (sql/api/pinpoint_apps.sql). Computed when read, so creating the app later makes it right.
-- Otherwise the stored state (074_push.sql; INACTIVE / INVALID_DEVICE_TOKEN after a dead token).
create or replace function carillon.endpoint_state(r carillon.app_instance_user_endpoints) returns jsonb
language sql stable as $$
    select case when not exists (select 1 from carillon.pinpoint_apps a where a.arn = r.resource_arn)
                then jsonb_build_object('Status', 'INACTIVE', 'StatusReason', 'INVALID_PINPOINT_ARN')
                -- stored by push delivery (sql/api/push.sql): INACTIVE / INVALID_DEVICE_TOKEN
                when r.status = 'INACTIVE' then jsonb_build_object('Status', 'INACTIVE', 'StatusReason', r.status_reason)
                else jsonb_build_object('Status', 'ACTIVE') end
$$;

create or replace function carillon.endpoint_summary(r carillon.app_instance_user_endpoints) returns jsonb
language sql stable as $$
    select jsonb_strip_nulls(jsonb_build_object(
        'AppInstanceUserArn', r.user_arn, 'EndpointId', r.endpoint_id, 'Name', r.name, 'Type', r.type,
        'AllowMessages', r.allow_messages, 'EndpointState', carillon.endpoint_state(r)))
$$;

create or replace function carillon_api.describe_app_instance_user_endpoint(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare r carillon.app_instance_user_endpoints :=
    carillon.endpoint_row(input->>'AppInstanceUserArn', input->>'EndpointId');
begin
    return jsonb_build_object('AppInstanceUserEndpoint', carillon.endpoint_summary(r) || jsonb_build_object(
        'ResourceArn', r.resource_arn, 'EndpointAttributes', r.endpoint_attributes,
        'CreatedTimestamp', carillon.ts(r.created_at), 'LastUpdatedTimestamp', carillon.ts(r.updated_at)));
end $$;

create or replace function carillon_api.list_app_instance_user_endpoints(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select carillon.keyset_page(ctx, input, 'AppInstanceUserEndpoints',
        $q$select endpoint_id as k, e from carillon.app_instance_user_endpoints e where user_arn = $3->>'user'$q$,
        'carillon.endpoint_summary(r.e)',
        jsonb_build_object('user', (carillon.user_row(input->>'AppInstanceUserArn')).arn))
$$;

create or replace function carillon_api.update_app_instance_user_endpoint(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
begin
    update carillon.app_instance_user_endpoints
       set name = coalesce(input->>'Name', name), allow_messages = coalesce(input->>'AllowMessages', allow_messages),
           updated_at = carillon.req_time(ctx)
     where user_arn = input->>'AppInstanceUserArn' and endpoint_id = input->>'EndpointId';
    if not found then
        perform carillon.fail('CH404', format('Endpoint %s of %s not found', input->>'EndpointId',
                                              input->>'AppInstanceUserArn'));
    end if;
    return jsonb_build_object('AppInstanceUserArn', input->>'AppInstanceUserArn', 'EndpointId', input->>'EndpointId');
end $$;

create or replace function carillon_api.deregister_app_instance_user_endpoint(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
begin
    delete from carillon.app_instance_user_endpoints
     where user_arn = input->>'AppInstanceUserArn' and endpoint_id = input->>'EndpointId';
    if not found then
        perform carillon.fail('CH404', format('Endpoint %s of %s not found', input->>'EndpointId',
                                              input->>'AppInstanceUserArn'));
    end if;
    return null;
end $$;
