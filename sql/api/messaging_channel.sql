-- Channel: create, describe, update, delete, list, search, the moderated-by-user views, expiration
-- settings, read markers, and the janitor's expiry of channels.
--
-- Access (see messaging_common.sql): the bearer must be an AppInstanceUser or AppInstanceBot of the
-- channel's AppInstance (Forbidden otherwise); moderators of the channel and AppInstanceAdmins manage
-- it (UpdateChannel, DeleteChannel, PutChannelExpirationSettings); PRIVATE channels are invisible
-- to non-members.
--
-- Decisions where Chime's documentation is silent or loose:
--   * CreateChannel: MemberArns/ModeratorArns that are not users or bots of the AppInstance (unknown
--     ARNs, or identities of another AppInstance) are NotFound, as identity's CreateAppInstanceAdmin
--     answers for an unknown user; the bearer not being one is Forbidden (it is about who acts).
--     Members are added in the order creator, ModeratorArns, MemberArns (duplicates once), so the
--     CREATE_CHANNEL_MEMBERSHIP events start with the creator. A taken ChannelId is Conflict.
--     Elastic channels (Chime's developer guide): the creator and ModeratorArns become moderators
--     only, not members; MemberArns are refused (BadRequest), and so is Mode UNRESTRICTED.
--   * UpdateChannel: Name, Mode and Metadata are optional in the current model; an absent one keeps
--     its value (Metadata "" clears it). Every successful update moves LastUpdatedTimestamp and emits
--     UPDATE_CHANNEL (SYSTEM, the Channel document, to the members). An elastic channel cannot
--     become UNRESTRICTED (BadRequest).
--   * DeleteChannel: DELETE_CHANNEL (SYSTEM, the Channel document as it was, to the members) is
--     built before the rows go; memberships, messages, moderators and bans go with the channel
--     (foreign keys), and so do its tags. No DELETE_CHANNEL_MEMBERSHIP events besides it.
--   * ListChannels: Privacy absent = PUBLIC (the documented way to list public channels, and the
--     only listing every identity of the AppInstance may see); PRIVATE only for an AppInstanceAdmin
--     (Forbidden otherwise). Ordered by ChannelArn, keyset-paginated.
--   * SearchChannels: several Fields must all hold. MEMBERS INCLUDES v = every ARN of v is a member;
--     MEMBERS EQUALS v = the member set is exactly v (as a set). Scope: without a bearer (root or
--     admin keys) every channel of the account; with a bearer that is an AppInstanceAdmin every
--     channel of its AppInstance; any other user or bot only the channels it is a member of (the
--     documented "channels that they belong to"), and for it HIDDEN members other than itself do not
--     count (it may not learn of them by searching). Ordered by ChannelArn.
--   * ListChannelsModeratedByAppInstanceUser: AppInstanceUserArn defaults to the bearer; asking for
--     another user or bot needs the bearer to be an AppInstanceAdmin of the AppInstance (Forbidden);
--     a user or bot of another AppInstance is NotFound.
--     DescribeChannelModeratedByAppInstanceUser: allowed for the user itself and for whoever manages
--     the channel (moderators, admins); NotFound when the user does not moderate it.
--   * PutChannelExpirationSettings: without a bearer only the root and admin keys (user credentials
--     always act as their user); with one, a moderator or an AppInstanceAdmin. Absent
--     ExpirationSettings removes them. A change moves LastUpdatedTimestamp and emits UPDATE_CHANNEL
--     (the Channel document carries ExpirationSettings), as UpdateChannel does; putting the settings
--     the channel already has changes nothing and emits nothing.
--   * UpdateChannelReadMarker: only members (Forbidden otherwise); the marker becomes the request
--     time (never moving backwards). Not available on elastic channels (BadRequest; Chime: no read
--     markers there). No event (UPDATE_CHANNEL_READ_MARKER is not a websocket event).
--   * Expiry (carillon.expire_channels, called by the janitor): a channel expires ExpirationDays after
--     its creation (CREATED_TIMESTAMP) or its last message, or its creation when it has none
--     (LAST_MESSAGE_TIMESTAMP). Expired channels are deleted with everything they hold, and a
--     DELETE_CHANNEL event tells connected members (and clears every node's channel index, so a
--     channel later re-created with the same ChannelId does not reach the old members).
--
-- Locking: writes lock the channel row first (FOR UPDATE when the channel itself changes or goes,
-- FOR KEY SHARE when only a membership changes), then memberships.

-- The AppInstance of a bearer that must be a user or bot of some AppInstance (Forbidden otherwise).
create or replace function carillon.channel_bearer_app_id(p_bearer text) returns text
language plpgsql stable as $$
declare v_id text;
begin
    if p_bearer is null then
        perform carillon.fail('CH400', 'ChimeBearer is required');
    end if;
    select app_instance_id into v_id from carillon.app_instance_users where arn = p_bearer;
    if v_id is null then
        select app_instance_id into v_id from carillon.app_instance_bots where arn = p_bearer;
    end if;
    if v_id is null then
        perform carillon.fail('CH403', format('%s is not an AppInstanceUser or AppInstanceBot', p_bearer));
    end if;
    return v_id;
end $$;

-- A member, moderator or banned ARN named in the input must be a user or bot of the AppInstance.
create or replace function carillon.channel_require_identity(p_app_id text, p_arn text, p_what text) returns void
language plpgsql stable as $$
begin
    if not carillon.is_app_identity(p_app_id, p_arn) then
        perform carillon.fail('CH404', format('%s %s is not an AppInstanceUser or AppInstanceBot of this AppInstance', p_what, p_arn));
    end if;
end $$;

-- The channel row, locked (FOR UPDATE), or NotFound.
create or replace function carillon.channel_lock(p_arn text) returns carillon.channels
language plpgsql as $$
begin
    return carillon.must_exist((select r from carillon.channels r where r.arn = p_arn for update),
                               format('Channel %s not found', p_arn));
end $$;

-- CreateChannel: the bearer creates; it becomes a moderator and (non-elastic) a member, then the
-- ModeratorArns (moderators and members) and MemberArns. Events: CREATE_CHANNEL_MEMBERSHIP for each
-- member, the creator's first.
create or replace function carillon_api.create_channel(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_app_arn text := input->>'AppInstanceArn';
    v_app_id text := carillon.app_instance_id(v_app_arn);
    v_bearer text := carillon.bearer(ctx, input);
    v_id text := coalesce(input->>'ChannelId', gen_random_uuid()::text);
    v_arn text := v_app_arn || '/channel/' || v_id;
    v_now timestamptz := carillon.req_time(ctx);
    v_elastic boolean := input->'ElasticChannelConfiguration' is not null;
    v_mods text[];
    v_members text[];
    v_arn_x text;
    c carillon.channels%rowtype;
    m carillon.channel_memberships%rowtype;
    v_events jsonb := '[]';
begin
    perform carillon.require_app_identity(v_app_id, v_bearer);
    -- Moderators: the creator, then ModeratorArns in order, each once.
    select array_agg(x order by first) into v_mods
      from (select x, min(n) as first
              from (select v_bearer as x, 0::bigint as n
                    union all
                    select e, n from jsonb_array_elements_text(coalesce(input->'ModeratorArns', '[]')) with ordinality t(e, n)) s
             group by x) d;
    if v_elastic then
        if input->'MemberArns' is not null then
            perform carillon.fail('CH400', 'MemberArns cannot be given when creating an elastic channel; add members with CreateChannelMembership');
        end if;
        if input->>'Mode' = 'UNRESTRICTED' then
            perform carillon.fail('CH400', 'An elastic channel cannot be UNRESTRICTED');
        end if;
        v_members := '{}';
    else
        -- Members: the moderators (creator first), then MemberArns in order, each once.
        select array_agg(x order by first) into v_members
          from (select x, min(n) as first
                  from (select e as x, n from unnest(v_mods) with ordinality t(e, n)
                        union all
                        select e, 100 + n from jsonb_array_elements_text(coalesce(input->'MemberArns', '[]')) with ordinality t(e, n)) s
                 group by x) d;
    end if;
    foreach v_arn_x in array v_mods[2:] loop
        perform carillon.channel_require_identity(v_app_id, v_arn_x, 'Moderator');
    end loop;
    for v_arn_x in select jsonb_array_elements_text(coalesce(input->'MemberArns', '[]')) loop
        perform carillon.channel_require_identity(v_app_id, v_arn_x, 'Member');
    end loop;

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
    insert into carillon.channel_moderators (channel_arn, moderator_arn, created_by, created_at)
    select v_arn, x, v_bearer, v_now from unnest(v_mods) x;
    perform carillon.moderator_require_quota(v_arn);
    foreach v_arn_x in array v_members loop
        m := carillon.add_member(c, v_arn_x, 'DEFAULT', v_bearer, v_now);
        v_events := v_events || jsonb_build_array(carillon.membership_event(c, m, 'CREATE_CHANNEL_MEMBERSHIP'));
    end loop;
    -- CREATE_CHANNEL is streamed (docs/streaming.md), not pushed to websocket sessions.
    return jsonb_build_object('ChannelArn', v_arn, '__events',
        jsonb_build_array(carillon.stream_event(v_arn, v_app_id, 'CREATE_CHANNEL', carillon.channel_doc(c, true)))
        || v_events);
end $$;

create or replace function carillon_api.describe_channel(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare c carillon.channels := carillon.channel_for(ctx, input);
begin
    perform carillon.require_visible(c, carillon.bearer(ctx, input));
    return jsonb_build_object('Channel', carillon.channel_doc(c, false));
end $$;

-- UpdateChannel: PUT, 200 {ChannelArn}. Event UPDATE_CHANNEL.
create or replace function carillon_api.update_channel(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
begin
    perform carillon.require_manager(c, v_bearer);
    c := carillon.channel_lock(c.arn);
    if c.elastic is not null and input->>'Mode' = 'UNRESTRICTED' then
        perform carillon.fail('CH400', 'An elastic channel cannot be UNRESTRICTED');
    end if;
    update carillon.channels
       set name = coalesce(input->>'Name', name),
           mode = coalesce(input->>'Mode', mode),
           metadata = case when input ? 'Metadata' then nullif(input->>'Metadata', '') else metadata end,
           updated_at = carillon.req_time(ctx)
     where arn = c.arn
    returning * into c;
    return jsonb_build_object('ChannelArn', c.arn, '__events', jsonb_build_array(
        carillon.event(c.arn, c.app_instance_id, 'UPDATE_CHANNEL', 'SYSTEM', carillon.channel_doc(c, true))));
end $$;

-- DeleteChannel: DELETE, 204. Event DELETE_CHANNEL, built from the row before it goes; the event's
-- audience is resolved from the log (the members' sessions know the channel), not from the rows.
create or replace function carillon_api.delete_channel(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_event jsonb;
begin
    perform carillon.require_manager(c, carillon.bearer(ctx, input));
    c := carillon.channel_lock(c.arn);
    v_event := carillon.event(c.arn, c.app_instance_id, 'DELETE_CHANNEL', 'SYSTEM', carillon.channel_doc(c, true),
                              p_closes => true);
    delete from carillon.channels where arn = c.arn;
    perform carillon.drop_tags(c.arn);
    return jsonb_build_object('__events', jsonb_build_array(v_event));
end $$;

-- ListChannels: GET /channels?app-instance-arn=..., {Channels: [ChannelSummary], NextToken}.
create or replace function carillon_api.list_channels(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    v_app_id text := carillon.app_instance_id(input->>'AppInstanceArn');
    v_bearer text := carillon.bearer(ctx, input);
    v_privacy text := coalesce(input->>'Privacy', 'PUBLIC');
begin
    perform carillon.require_app_identity(v_app_id, v_bearer);
    if v_privacy = 'PRIVATE' and not carillon.is_admin(v_app_id, v_bearer) then
        perform carillon.fail('CH403', 'Only an AppInstanceAdmin may list private channels');
    end if;
    return carillon.keyset_page(ctx, input, 'Channels',
        $q$select arn as k, c from carillon.channels c where app_instance_id = $3->>'app' and privacy = $3->>'privacy'$q$,
        'carillon.channel_summary(r.c, false)',
        jsonb_build_object('app', v_app_id, 'privacy', v_privacy));
end $$;

-- SearchChannels: POST /channels?operation=search {Fields}, {Channels: [ChannelSummary], NextToken}.
create or replace function carillon_api.search_channels(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    v_bearer text := carillon.bearer(ctx, input);
    v_app_id text;
    v_all boolean := true;           -- every channel in scope, every membership counts
begin
    if v_bearer is not null then
        v_app_id := carillon.channel_bearer_app_id(v_bearer);
        v_all := carillon.is_admin(v_app_id, v_bearer);
    end if;
    -- A channel matches when no field fails: a field fails when one of its Values is not a member
    -- (as the bearer may see the members), or, for EQUALS, when the channel has other members too.
    return carillon.keyset_page(ctx, input, 'Channels',
        $q$select c.arn as k, c from carillon.channels c
            where c.arn in (select channel_arn from carillon.channel_memberships
                             where member_arn = $3 #>> '{fields,0,Values,0}')
              and ($3->>'app' is null or c.app_instance_id = $3->>'app')
              and (($3->>'all')::boolean
                   or exists (select 1 from carillon.channel_memberships b
                               where b.channel_arn = c.arn and b.member_arn = $3->>'bearer'))
              and not exists (
                  select 1
                    from (select value->>'Operator' as op,
                                 array(select distinct jsonb_array_elements_text(value->'Values')) as vals
                            from jsonb_array_elements($3->'fields')) f
                   where (select count(*) from carillon.channel_memberships m
                           where m.channel_arn = c.arn and m.member_arn = any(f.vals)
                             and (($3->>'all')::boolean or m.type <> 'HIDDEN' or m.member_arn = $3->>'bearer'))
                         <> cardinality(f.vals)
                      or (f.op = 'EQUALS'
                          and (select count(*) from carillon.channel_memberships m
                                where m.channel_arn = c.arn
                                  and (($3->>'all')::boolean or m.type <> 'HIDDEN' or m.member_arn = $3->>'bearer'))
                              <> cardinality(f.vals)))$q$,
        'carillon.channel_summary(r.c, false)',
        jsonb_build_object('app', v_app_id, 'all', v_all, 'bearer', v_bearer, 'fields', input->'Fields'));
end $$;

-- ListChannelsModeratedByAppInstanceUser: {Channels: [{ChannelSummary}], NextToken}.
create or replace function carillon_api.list_channels_moderated_by_app_instance_user(ctx jsonb, input jsonb)
returns jsonb language plpgsql stable as $$
declare
    v_bearer text := carillon.bearer(ctx, input);
    v_app_id text := carillon.channel_bearer_app_id(v_bearer);
    v_user text := coalesce(input->>'AppInstanceUserArn', v_bearer);
begin
    if v_user <> v_bearer then
        if not carillon.is_admin(v_app_id, v_bearer) then
            perform carillon.fail('CH403', 'Only an AppInstanceAdmin may list the channels another user or bot moderates');
        end if;
        perform carillon.channel_require_identity(v_app_id, v_user, 'AppInstanceUser');
    end if;
    return carillon.keyset_page(ctx, input, 'Channels',
        $q$select mo.channel_arn as k, c from carillon.channel_moderators mo
             join carillon.channels c on c.arn = mo.channel_arn
            where mo.moderator_arn = $3->>'user' and c.app_instance_id = $3->>'app'$q$,
        $i$jsonb_build_object('ChannelSummary', carillon.channel_summary(r.c, false))$i$,
        jsonb_build_object('user', v_user, 'app', v_app_id));
end $$;

-- DescribeChannelModeratedByAppInstanceUser: {Channel: {ChannelSummary}}.
create or replace function carillon_api.describe_channel_moderated_by_app_instance_user(ctx jsonb, input jsonb)
returns jsonb language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_user text := input->>'AppInstanceUserArn';
begin
    if v_user <> v_bearer and not carillon.can_manage(c, v_bearer) then
        perform carillon.fail('CH403', 'Only the user itself, a channel moderator or an AppInstanceAdmin may ask this');
    end if;
    if not carillon.is_moderator(c.arn, v_user) then
        perform carillon.fail('CH404', format('%s does not moderate channel %s', v_user, c.arn));
    end if;
    return jsonb_build_object('Channel', jsonb_build_object('ChannelSummary', carillon.channel_summary(c, false)));
end $$;

-- PutChannelExpirationSettings: PUT, 200 {ChannelArn, ExpirationSettings}.
create or replace function carillon_api.put_channel_expiration_settings(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_row(input->>'ChannelArn');
    v_bearer text := carillon.bearer(ctx, input);
    v_days int := (input #>> '{ExpirationSettings,ExpirationDays}')::int;
    v_criterion text := input #>> '{ExpirationSettings,ExpirationCriterion}';
    v_events jsonb := '[]';
begin
    if v_bearer is null then
        if ctx->>'principal' is distinct from 'root' and ctx->>'principal' not like 'admin:%' then
            perform carillon.fail('CH403', 'ChimeBearer is required');
        end if;
    else
        perform carillon.require_app_identity(c.app_instance_id, v_bearer);
        perform carillon.require_manager(c, v_bearer);
    end if;
    c := carillon.channel_lock(c.arn);
    if c.expiration_days is distinct from v_days or c.expiration_criterion is distinct from v_criterion then
        update carillon.channels
           set expiration_days = v_days, expiration_criterion = v_criterion, updated_at = carillon.req_time(ctx)
         where arn = c.arn
        returning * into c;
        -- Sessions hear UPDATE_CHANNEL; streams get UPDATE_CHANNEL_EXPIRATION_SETTINGS.
        v_events := jsonb_build_array(
            carillon.event(c.arn, c.app_instance_id, 'UPDATE_CHANNEL', 'SYSTEM', carillon.channel_doc(c, true))
            || jsonb_build_object('stream_type', 'UPDATE_CHANNEL_EXPIRATION_SETTINGS'));
    end if;
    return jsonb_strip_nulls(jsonb_build_object(
        'ChannelArn', c.arn,
        'ExpirationSettings', carillon.expiration_json(c.expiration_days, c.expiration_criterion)))
        || jsonb_build_object('__events', v_events);
end $$;

-- UpdateChannelReadMarker: PUT, 200 {ChannelArn}.
create or replace function carillon_api.update_channel_read_marker(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_now timestamptz := carillon.req_time(ctx);
begin
    perform carillon.channel_lock_row(c.arn, false);
    if c.elastic is not null then
        perform carillon.fail('CH400', 'Elastic channels have no read markers');
    end if;
    update carillon.channel_memberships
       set read_marker_at = greatest(coalesce(read_marker_at, v_now), v_now)
     where channel_arn = c.arn and member_arn = v_bearer;
    if not found then
        perform carillon.fail('CH403', format('%s is not a member of channel %s', v_bearer, c.arn));
    end if;
    return jsonb_build_object('ChannelArn', c.arn);
end $$;

-- The janitor's expiry of channels (see the header). Returns how many channels were deleted.
create or replace function carillon.expire_channels(p_now timestamptz) returns int
language plpgsql as $$
declare
    v_deleted int := 0;
    v_arn text;
    v_events jsonb := '[]';
begin
    for v_arn in
        select arn from carillon.channels
         where expiration_days is not null
           and case expiration_criterion
                   when 'LAST_MESSAGE_TIMESTAMP' then coalesce(last_message_at, created_at)
                   else created_at
               end + make_interval(days => expiration_days) <= p_now
         for update skip locked
    loop
        v_events := v_events || jsonb_build_array(carillon.channel_gone_event(v_arn));
        delete from carillon.channels where arn = v_arn;
        perform carillon.drop_tags(v_arn);
        v_deleted := v_deleted + 1;
    end loop;
    perform carillon.flush_events(v_events);
    return v_deleted;
end $$;
