-- AppInstance: the tenant that users, bots, admins and channels belong to; and its retention settings.

create or replace function carillon.app_instance_row(p_arn text) returns carillon.app_instances
language plpgsql stable as $$
begin
    return carillon.must_exist((select r from carillon.app_instances r where r.arn = p_arn),
                               format('AppInstance %s not found', p_arn));
end $$;

create or replace function carillon_api.create_app_instance(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_id text := gen_random_uuid()::text;
    v_arn text := carillon.arn_prefix(ctx) || 'app-instance/' || v_id;
    v_now timestamptz := carillon.req_time(ctx);
begin
    insert into carillon.app_instances (id, arn, name, metadata, created_at, updated_at)
    values (v_id, v_arn, input->>'Name', input->>'Metadata', v_now, v_now);
    perform carillon.put_tags(v_arn, input->'Tags');
    return jsonb_build_object('AppInstanceArn', v_arn);
end $$;

create or replace function carillon_api.describe_app_instance(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare r carillon.app_instances := carillon.app_instance_row(input->>'AppInstanceArn');
begin
    return jsonb_build_object('AppInstance', jsonb_strip_nulls(jsonb_build_object(
        'AppInstanceArn', r.arn, 'Name', r.name, 'Metadata', r.metadata,
        'CreatedTimestamp', carillon.ts(r.created_at), 'LastUpdatedTimestamp', carillon.ts(r.updated_at))));
end $$;

create or replace function carillon_api.list_app_instances(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select carillon.keyset_page(ctx, input, 'AppInstances',
        'select arn as k, name, metadata from carillon.app_instances',
        $i$jsonb_strip_nulls(jsonb_build_object('AppInstanceArn', r.k, 'Name', r.name, 'Metadata', r.metadata))$i$)
$$;

create or replace function carillon_api.update_app_instance(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
begin
    update carillon.app_instances
       set name = input->>'Name', metadata = input->>'Metadata', updated_at = carillon.req_time(ctx)
     where arn = input->>'AppInstanceArn';
    if not found then
        perform carillon.fail('CH404', format('AppInstance %s not found', input->>'AppInstanceArn'));
    end if;
    return jsonb_build_object('AppInstanceArn', input->>'AppInstanceArn');
end $$;

-- Deleting an AppInstance removes its users (and their endpoints), bots, admins, channels (with a
-- DELETE_CHANNEL event each, for connected members and every node's channel index) and all tags.
create or replace function carillon_api.delete_app_instance(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_id text := carillon.app_instance_id(input->>'AppInstanceArn');
    v_events jsonb;
begin
    select coalesce(jsonb_agg(carillon.channel_gone_event(arn)), '[]') into v_events
      from carillon.channels where app_instance_id = v_id;
    delete from carillon.app_instances where id = v_id;
    perform carillon.drop_tags(input->>'AppInstanceArn');
    return jsonb_build_object('__events', v_events);
end $$;

create or replace function carillon.retention_output(r carillon.app_instances) returns jsonb
language sql stable as $$
    select jsonb_strip_nulls(jsonb_build_object(
        'AppInstanceRetentionSettings',
            case when r.retention_days is null then '{}'::jsonb
                 else jsonb_build_object('ChannelRetentionSettings',
                                         jsonb_build_object('RetentionDays', r.retention_days)) end,
        'InitiateDeletionTimestamp', carillon.ts(r.retention_set_at)))
$$;

create or replace function carillon_api.put_app_instance_retention_settings(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare r carillon.app_instances%rowtype;
begin
    update carillon.app_instances
       set retention_days = (input #>> '{AppInstanceRetentionSettings,ChannelRetentionSettings,RetentionDays}')::int,
           retention_set_at = carillon.req_time(ctx)
     where arn = input->>'AppInstanceArn'
    returning * into r;
    if not found then
        perform carillon.fail('CH404', format('AppInstance %s not found', input->>'AppInstanceArn'));
    end if;
    return carillon.retention_output(r);
end $$;

create or replace function carillon_api.get_app_instance_retention_settings(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select carillon.retention_output(carillon.app_instance_row(input->>'AppInstanceArn'))
$$;
