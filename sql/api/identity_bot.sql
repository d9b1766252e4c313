-- AppInstanceBot: a bot identity (Amazon Lex configuration stored, not run), arn = <app>/bot/<uuid>.

create or replace function carillon_api.create_app_instance_bot(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_app_id text := carillon.app_instance_id(input->>'AppInstanceArn');
    v_arn text := (input->>'AppInstanceArn') || '/bot/' || gen_random_uuid()::text;
    v_now timestamptz := carillon.req_time(ctx);
begin
    insert into carillon.app_instance_bots (arn, app_instance_id, name, metadata, configuration, created_at, updated_at)
    values (v_arn, v_app_id, input->>'Name', input->>'Metadata', input->'Configuration', v_now, v_now);
    perform carillon.put_tags(v_arn, input->'Tags');
    return jsonb_build_object('AppInstanceBotArn', v_arn);
end $$;

create or replace function carillon_api.describe_app_instance_bot(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare r carillon.app_instance_bots := carillon.must_exist(
    (select t from carillon.app_instance_bots t where t.arn = input->>'AppInstanceBotArn'),
    format('AppInstanceBot %s not found', input->>'AppInstanceBotArn'));
begin
    return jsonb_build_object('AppInstanceBot', jsonb_strip_nulls(jsonb_build_object(
        'AppInstanceBotArn', r.arn, 'Name', r.name, 'Metadata', r.metadata, 'Configuration', r.configuration,
        'CreatedTimestamp', carillon.ts(r.created_at), 'LastUpdatedTimestamp', carillon.ts(r.updated_at))));
end $$;

create or replace function carillon_api.list_app_instance_bots(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select carillon.keyset_page(ctx, input, 'AppInstanceBots',
        $q$select arn as k, name, metadata from carillon.app_instance_bots where app_instance_id = $3->>'app'$q$,
        $i$jsonb_strip_nulls(jsonb_build_object('AppInstanceBotArn', r.k, 'Name', r.name, 'Metadata', r.metadata))$i$,
        jsonb_build_object('app', carillon.app_instance_id(input->>'AppInstanceArn')),
        jsonb_build_object('AppInstanceArn', input->>'AppInstanceArn'))
$$;

create or replace function carillon_api.update_app_instance_bot(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
begin
    update carillon.app_instance_bots
       set name = input->>'Name', metadata = input->>'Metadata',
           configuration = coalesce(input->'Configuration', configuration),
           updated_at = carillon.req_time(ctx)
     where arn = input->>'AppInstanceBotArn';
    if not found then
        perform carillon.fail('CH404', format('AppInstanceBot %s not found', input->>'AppInstanceBotArn'));
    end if;
    return jsonb_build_object('AppInstanceBotArn', input->>'AppInstanceBotArn');
end $$;

create or replace function carillon_api.delete_app_instance_bot(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare v_events jsonb;
begin
    if not exists (select 1 from carillon.app_instance_bots where arn = input->>'AppInstanceBotArn') then
        perform carillon.fail('CH404', format('AppInstanceBot %s not found', input->>'AppInstanceBotArn'));
    end if;
    v_events := carillon.user_gone(input->>'AppInstanceBotArn');
    delete from carillon.app_instance_bots where arn = input->>'AppInstanceBotArn';
    return jsonb_build_object('__events', v_events);
end $$;
