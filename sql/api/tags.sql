-- Tags, shared by both services, keyed by the resource ARN (ROUTES.md 5.1).

-- Does the ARN name a resource this server holds? AppInstances, their users and bots (identity),
-- channels and channel flows (messaging).
create or replace function carillon.resource_exists(p_arn text) returns boolean
language sql stable as $$
    select exists (select 1 from carillon.app_instances where arn = p_arn)
        or exists (select 1 from carillon.app_instance_users where arn = p_arn)
        or exists (select 1 from carillon.app_instance_bots where arn = p_arn)
        or exists (select 1 from carillon.channels where arn = p_arn)
        or exists (select 1 from carillon.channel_flows where arn = p_arn)
$$;

create or replace function carillon.require_resource(p_arn text) returns void
language plpgsql stable as $$
begin
    if not carillon.resource_exists(p_arn) then
        perform carillon.fail('CH404', format('Resource %s not found', p_arn));
    end if;
end $$;

create or replace function carillon_api.tag_resource(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
begin
    perform carillon.require_resource(input->>'ResourceARN');
    perform carillon.put_tags(input->>'ResourceARN', input->'Tags');
    return null;
end $$;

create or replace function carillon_api.untag_resource(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
begin
    perform carillon.require_resource(input->>'ResourceARN');
    delete from carillon.tags
     where resource_arn = input->>'ResourceARN'
       and key in (select jsonb_array_elements_text(input->'TagKeys'));
    return null;
end $$;

create or replace function carillon_api.list_tags_for_resource(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
begin
    perform carillon.require_resource(input->>'ResourceARN');
    return jsonb_build_object('Tags', coalesce(
        (select jsonb_agg(jsonb_build_object('Key', key, 'Value', value) order by key)
           from carillon.tags where resource_arn = input->>'ResourceARN'), '[]'));
end $$;
