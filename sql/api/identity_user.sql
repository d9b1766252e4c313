-- AppInstanceUser: a chat identity, arn = <app instance arn>/user/<AppInstanceUserId>.

create or replace function carillon.user_row(p_arn text) returns carillon.app_instance_users
language plpgsql stable as $$
begin
    return carillon.must_exist((select r from carillon.app_instance_users r where r.arn = p_arn),
                               format('AppInstanceUser %s not found', p_arn));
end $$;

create or replace function carillon.expiration_json(p_days int, p_criterion text) returns jsonb
language sql immutable as $$
    select case when p_days is null then null
                else jsonb_build_object('ExpirationDays', p_days, 'ExpirationCriterion', p_criterion) end
$$;

create or replace function carillon_api.create_app_instance_user(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_app_arn text := input->>'AppInstanceArn';
    v_app_id text := carillon.app_instance_id(v_app_arn);
    v_arn text := v_app_arn || '/user/' || (input->>'AppInstanceUserId');
    v_now timestamptz := carillon.req_time(ctx);
begin
    insert into carillon.app_instance_users
        (arn, app_instance_id, user_id, name, metadata, expiration_days, expiration_criterion, created_at, updated_at)
    values (v_arn, v_app_id, input->>'AppInstanceUserId', input->>'Name', input->>'Metadata',
            (input #>> '{ExpirationSettings,ExpirationDays}')::int,
            input #>> '{ExpirationSettings,ExpirationCriterion}', v_now, v_now)
    on conflict do nothing;
    if not found then
        perform carillon.fail('CH409', format('AppInstanceUser %s already exists', v_arn));
    end if;
    perform carillon.put_tags(v_arn, input->'Tags');
    return jsonb_build_object('AppInstanceUserArn', v_arn);
end $$;

create or replace function carillon_api.describe_app_instance_user(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare r carillon.app_instance_users := carillon.user_row(input->>'AppInstanceUserArn');
begin
    return jsonb_build_object('AppInstanceUser', jsonb_strip_nulls(jsonb_build_object(
        'AppInstanceUserArn', r.arn, 'Name', r.name, 'Metadata', r.metadata,
        'CreatedTimestamp', carillon.ts(r.created_at), 'LastUpdatedTimestamp', carillon.ts(r.updated_at),
        'ExpirationSettings', carillon.expiration_json(r.expiration_days, r.expiration_criterion))));
end $$;

create or replace function carillon_api.list_app_instance_users(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select carillon.keyset_page(ctx, input, 'AppInstanceUsers',
        $q$select user_id as k, arn, name, metadata from carillon.app_instance_users where app_instance_id = $3->>'app'$q$,
        $i$jsonb_strip_nulls(jsonb_build_object('AppInstanceUserArn', r.arn, 'Name', r.name, 'Metadata', r.metadata))$i$,
        jsonb_build_object('app', carillon.app_instance_id(input->>'AppInstanceArn')),
        jsonb_build_object('AppInstanceArn', input->>'AppInstanceArn'))
$$;

create or replace function carillon_api.update_app_instance_user(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
begin
    update carillon.app_instance_users
       set name = input->>'Name', metadata = input->>'Metadata', updated_at = carillon.req_time(ctx)
     where arn = input->>'AppInstanceUserArn';
    if not found then
        perform carillon.fail('CH404', format('AppInstanceUser %s not found', input->>'AppInstanceUserArn'));
    end if;
    return jsonb_build_object('AppInstanceUserArn', input->>'AppInstanceUserArn');
end $$;

-- Deleting a user removes its endpoints (cascade), admin grants, tags, channel memberships (with
-- their DELETE_CHANNEL_MEMBERSHIP events), moderator roles and bans (carillon.user_gone).
create or replace function carillon_api.delete_app_instance_user(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare v_events jsonb;
begin
    perform carillon.user_row(input->>'AppInstanceUserArn');
    v_events := carillon.user_gone(input->>'AppInstanceUserArn');
    delete from carillon.app_instance_users where arn = input->>'AppInstanceUserArn';
    return jsonb_build_object('__events', v_events);
end $$;

create or replace function carillon_api.put_app_instance_user_expiration_settings(ctx jsonb, input jsonb)
returns jsonb language plpgsql as $$
declare r carillon.app_instance_users%rowtype;
begin
    update carillon.app_instance_users
       set expiration_days = (input #>> '{ExpirationSettings,ExpirationDays}')::int,
           expiration_criterion = input #>> '{ExpirationSettings,ExpirationCriterion}',
           updated_at = carillon.req_time(ctx)
     where arn = input->>'AppInstanceUserArn'
    returning * into r;
    if not found then
        perform carillon.fail('CH404', format('AppInstanceUser %s not found', input->>'AppInstanceUserArn'));
    end if;
    return jsonb_strip_nulls(jsonb_build_object('AppInstanceUserArn', r.arn,
        'ExpirationSettings', carillon.expiration_json(r.expiration_days, r.expiration_criterion)));
end $$;
