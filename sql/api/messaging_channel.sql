-- Channel: create, describe (more operations of this resource follow in this file).

-- CreateChannel: the bearer creates; it becomes a moderator and a member. MemberArns/ModeratorArns
-- are added too (moderators are also members). Events: CREATE_CHANNEL_MEMBERSHIP for each member.
create or replace function carillon_api.create_channel(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_app_arn text := input->>'AppInstanceArn';
    v_app_id text := carillon.app_instance_id(v_app_arn);
    v_bearer text := carillon.bearer(ctx, input);
    v_id text := coalesce(input->>'ChannelId', gen_random_uuid()::text);
    v_arn text := v_app_arn || '/channel/' || v_id;
    v_now timestamptz := carillon.req_time(ctx);
    c carillon.channels%rowtype;
    m carillon.channel_memberships%rowtype;
    v_events jsonb := '[]';
    v_member text;
begin
    perform carillon.require_app_identity(v_app_id, v_bearer);
    insert into carillon.channels (arn, app_instance_id, channel_id, name, mode, privacy, metadata, created_by,
                                   elastic, expiration_days, expiration_criterion, created_at, updated_at)
    values (v_arn, v_app_id, v_id, input->>'Name', coalesce(input->>'Mode', 'RESTRICTED'),
            coalesce(input->>'Privacy', 'PRIVATE'), input->>'Metadata', v_bearer,
            input->'ElasticChannelConfiguration',
            (input #>> '{ExpirationSettings,ExpirationDays}')::int,
            input #>> '{ExpirationSettings,ExpirationCriterion}', v_now, v_now)
    on conflict do nothing
    returning * into c;
    if not found then
        perform carillon.fail('CH409', format('Channel %s already exists', v_arn));
    end if;
    perform carillon.put_tags(v_arn, input->'Tags');
    for v_member in
        select v_bearer
        union select jsonb_array_elements_text(coalesce(input->'ModeratorArns', '[]'))
        union select jsonb_array_elements_text(coalesce(input->'MemberArns', '[]'))
    loop
        m := carillon.add_member(c, v_member, 'DEFAULT', v_bearer, v_now);
        v_events := v_events || jsonb_build_array(carillon.membership_event(c, m, 'CREATE_CHANNEL_MEMBERSHIP'));
    end loop;
    insert into carillon.channel_moderators (channel_arn, moderator_arn, created_by, created_at)
    select v_arn, x, v_bearer, v_now
      from (select v_bearer as x union select jsonb_array_elements_text(coalesce(input->'ModeratorArns', '[]'))) s
    on conflict do nothing;
    return jsonb_build_object('ChannelArn', v_arn, '__events', v_events);
end $$;

create or replace function carillon_api.describe_channel(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare c carillon.channels := carillon.channel_for(ctx, input);
begin
    perform carillon.require_visible(c, carillon.bearer(ctx, input));
    return jsonb_build_object('Channel', carillon.channel_doc(c, false));
end $$;
