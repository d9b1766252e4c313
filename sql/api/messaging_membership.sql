-- ChannelMembership: create, batch-create, describe, list, delete, the per-user views
-- (DescribeChannelMembershipForAppInstanceUser, ListChannelMembershipsForAppInstanceUser),
-- membership preferences, and the sub-channels of elastic channels (ListSubChannels).
--
-- Decisions where Chime's documentation is silent (see each function for the details):
--   * Adding members: moderators and AppInstanceAdmins add anyone; in UNRESTRICTED channels members
--     add others; in PUBLIC channels anyone of the AppInstance may add itself. Type HIDDEN is "only
--     supported by moderators" (model documentation): HIDDEN memberships are created by moderators
--     and admins only (Forbidden for anyone else, including a member joining itself).
--   * A MemberArn that is not a user or bot of the channel's AppInstance is NotFound; a banned one is
--     Forbidden; an existing member is a Conflict (carillon.add_member).
--   * HIDDEN members are seen only by moderators, admins and themselves: not listed without the
--     HIDDEN filter, the HIDDEN listing is for moderators/admins (Forbidden otherwise), and
--     DescribeChannelMembership of someone else's HIDDEN membership is NotFound for others.
--   * A SubChannelId on a non-elastic channel is a BadRequest everywhere.
--   * Quota: a non-elastic channel has at most carillon.quota('max_channel_memberships') members
--     (CARILLON_MAX_CHANNEL_MEMBERSHIPS, Chime's 10,000), HIDDEN ones included; one more is
--     ResourceLimitExceeded, whoever adds it (CreateChannelMembership, joining a PUBLIC channel,
--     CreateChannel's members); BatchCreateChannelMembership adds the members there is room for and
--     reports each of the others in Errors (ErrorCode ResourceLimitExceeded).
--   * DescribeChannelMembership/ListChannelMemberships follow the channel's visibility: PRIVATE
--     channels for members, moderators and admins; PUBLIC ones for the whole AppInstance.
--   * Preferences: only the member itself (not moderators or admins, as documented); a FilterRule
--     must be a valid Chime filter rule, FILTERED requires one and ALL/NONE refuse one (BadRequest).
--     Not a member: NotFound; banned: Forbidden; elastic channel: BadRequest.
--   * The per-user views (…ForAppInstanceUser): the user itself, an AppInstanceAdmin, or the
--     server's own keys (root, admin access keys) acting as any bearer.
--   * Elastic channels: placement in sub-channels by carillon.elastic_sub_channel
--     (messaging_common.sql); a sub-channel left below its minimum is dissolved into the others
--     (carillon.membership_rebalance); BatchCreateChannelMembership emits one
--     CREATE_CHANNEL_MEMBERSHIP per new member there, as Chime documents.

-- The SQLSTATE of a membership failure as a BatchCreateChannelMembership ErrorCode.
create or replace function carillon.membership_error_code(p_state text) returns text
language sql immutable as $$
    select case p_state when 'CH400' then 'BadRequest' when 'CH403' then 'Forbidden' when 'CH404' then 'NotFound'
                        when 'CH409' then 'Conflict' when 'CH410' then 'ResourceLimitExceeded' else 'ServiceFailure' end
$$;

-- May p_bearer add p_members (with membership type p_type) to channel c? Forbidden otherwise.
create or replace function carillon.membership_require_add_right(c carillon.channels, p_bearer text,
                                                                 p_members text[], p_type text) returns void
language plpgsql stable as $$
begin
    if carillon.can_manage(c, p_bearer) then
        return;
    end if;
    if p_type = 'HIDDEN' then
        perform carillon.fail('CH403', 'Only a channel moderator or an AppInstanceAdmin may create HIDDEN memberships');
    end if;
    if c.mode = 'UNRESTRICTED' and carillon.is_member(c.arn, p_bearer) then
        return;
    end if;
    if c.privacy = 'PUBLIC' and p_members <@ array[p_bearer] then
        return;    -- joining a public channel oneself
    end if;
    perform carillon.fail('CH403', 'Not allowed to add members to this channel');
end $$;

-- Membership writes lock the channel row first (before any membership row, the order every
-- channel write follows): FOR KEY SHARE, which only a concurrent DeleteChannel (or an update taking
-- FOR UPDATE) waits for, so that a channel deleted meanwhile is a NotFound rather than a failed
-- foreign key; on elastic channels FOR NO KEY UPDATE, which also serialises the placement of
-- members in sub-channels.
create or replace function carillon.membership_lock_channel(c carillon.channels) returns void
language plpgsql as $$
begin
    perform carillon.channel_lock_row(c.arn, c.elastic is not null);
end $$;

-- Adding members: FOR NO KEY UPDATE on every channel, so that concurrent additions are counted one
-- after the other against the membership quota (carillon.add_member_counted). Every write through
-- carillon_api.invoke_batch already holds this lock (carillon.lock_batch_channels); taking it here
-- keeps the count right for any other caller.
create or replace function carillon.membership_lock_channel_for_add(c carillon.channels) returns void
language plpgsql as $$
begin
    perform carillon.channel_lock_row(c.arn, true);
end $$;

-- The membership of p_member in channel c, or NotFound.
create or replace function carillon.membership_row(c carillon.channels, p_member text) returns carillon.channel_memberships
language plpgsql stable as $$
begin
    return carillon.must_exist((select m from carillon.channel_memberships m
                                 where m.channel_arn = c.arn and m.member_arn = p_member),
                               format('%s is not a member of this channel', p_member));
end $$;

-- Server-side credentials (the root key, admin access keys) rather than a user's own credential.
create or replace function carillon.membership_server_principal(ctx jsonb) returns boolean
language sql immutable as $$
    select ctx->>'user_arn' is null and (ctx->>'principal' = 'root' or ctx->>'principal' like 'admin:%')
$$;

-- CreateChannelMembership: see the rights above. Event: CREATE_CHANNEL_MEMBERSHIP to the members,
-- including the new one (a HIDDEN member is announced only to itself).
create or replace function carillon_api.create_channel_membership(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_member text := input->>'MemberArn';
    m carillon.channel_memberships%rowtype;
begin
    perform carillon.membership_require_add_right(c, v_bearer, array[v_member], input->>'Type');
    perform carillon.membership_lock_channel_for_add(c);
    m := carillon.add_member(c, v_member, input->>'Type', v_bearer, carillon.req_time(ctx), input->>'SubChannelId');
    return jsonb_strip_nulls(jsonb_build_object(
        'ChannelArn', c.arn, 'Member', carillon.identity_of(v_member), 'SubChannelId', m.sub_channel_id,
        '__events', jsonb_build_array(carillon.membership_event(c, m, 'CREATE_CHANNEL_MEMBERSHIP'))));
end $$;

-- BatchCreateChannelMembership: the rights of CreateChannelMembership, checked once for the request
-- (a bearer who may only join a PUBLIC channel itself may list only itself). Then each member is
-- added on its own: one that fails (banned: Forbidden, not in the AppInstance: NotFound, already a
-- member or listed twice: Conflict, elastic channel full or the channel at its membership quota:
-- ResourceLimitExceeded) goes to Errors and the others are added: at the quota, the members listed
-- first are added (as many as there is room for) and the rest are reported in Errors (Chime's shape:
-- BatchCreateChannelMembershipError {MemberArn, ErrorCode, ErrorMessage}). Events: one BATCH_CREATE_CHANNEL_MEMBERSHIP (the BatchChannelMemberships
-- document) to the members including the new ones, or only to the new ones for HIDDEN memberships;
-- none when nobody was added. On elastic channels Chime sends individual CREATE_CHANNEL_MEMBERSHIP
-- events instead (one per new member, with its SubChannelId). The response's SubChannelId is the
-- sub-channel all new members went to, left out when they went to several.
create or replace function carillon_api.batch_create_channel_membership(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_type text := coalesce(input->>'Type', 'DEFAULT');
    v_now timestamptz := carillon.req_time(ctx);
    v_members text[] := array(select jsonb_array_elements_text(input->'MemberArns'));
    v_member text;
    m carillon.channel_memberships%rowtype;
    v_added text[] := '{}';
    v_subs text[] := '{}';
    v_errors jsonb := '[]';
    v_events jsonb := '[]';
    v_doc jsonb;
    v_count bigint;
begin
    perform carillon.membership_require_add_right(c, v_bearer, v_members, v_type);
    -- Taken here, outside the per-member subtransactions, so that it is held to the end.
    perform carillon.membership_lock_channel_for_add(c);
    -- The membership quota's count (non-elastic channels only), once under the lock, then kept:
    -- each member need not count the channel again.
    if c.elastic is null then
        select count(*) into v_count from carillon.channel_memberships where channel_arn = c.arn;
    end if;
    foreach v_member in array v_members loop
        begin
            m := carillon.add_member_counted(c, v_member, v_type, v_bearer, v_now, input->>'SubChannelId', v_count);
            v_count := v_count + 1;
            v_added := v_added || v_member;
            if m.sub_channel_id is not null and not m.sub_channel_id = any(v_subs) then
                v_subs := v_subs || m.sub_channel_id;
            end if;
            if c.elastic is not null then
                v_events := v_events || jsonb_build_array(carillon.membership_event(c, m, 'CREATE_CHANNEL_MEMBERSHIP'));
            end if;
        exception when others then
            if SQLSTATE not in ('CH400', 'CH403', 'CH404', 'CH409', 'CH410') then
                raise;
            end if;
            v_errors := v_errors || jsonb_build_array(jsonb_build_object(
                'MemberArn', v_member, 'ErrorCode', carillon.membership_error_code(SQLSTATE), 'ErrorMessage', SQLERRM));
        end;
    end loop;
    v_doc := jsonb_strip_nulls(jsonb_build_object(
        'InvitedBy', carillon.identity_of(v_bearer), 'Type', v_type,
        'Members', coalesce((select jsonb_agg(carillon.identity_of(x) order by n)
                               from unnest(v_added) with ordinality as t(x, n)), '[]'),
        'ChannelArn', c.arn,
        'SubChannelId', case when cardinality(v_subs) = 1 then v_subs[1] end));
    if c.elastic is null and cardinality(v_added) > 0 then
        v_events := jsonb_build_array(carillon.event(c.arn, c.app_instance_id, 'BATCH_CREATE_CHANNEL_MEMBERSHIP', 'SYSTEM',
                                                     v_doc, case when v_type = 'HIDDEN' then 'only' else 'members' end,
                                                     v_added, p_joins => v_added));
    end if;
    return jsonb_build_object('BatchChannelMemberships', v_doc, 'Errors', v_errors, '__events', v_events);
end $$;

-- DescribeChannelMembership: visible to whoever sees the channel (members, moderators, admins; the
-- whole AppInstance for PUBLIC channels) and to the member itself. NotFound when there is no such
-- membership, when another's HIDDEN membership is asked for by someone who is neither moderator nor
-- admin, or when a SubChannelId is given that is not the membership's sub-channel.
create or replace function carillon_api.describe_channel_membership(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_member text := input->>'MemberArn';
    m carillon.channel_memberships%rowtype;
begin
    if v_bearer <> v_member then
        perform carillon.require_visible(c, v_bearer);
    end if;
    if input ? 'SubChannelId' and c.elastic is null then
        perform carillon.fail('CH400', 'SubChannelId is only for elastic channels');
    end if;
    select * into m from carillon.channel_memberships where channel_arn = c.arn and member_arn = v_member;
    if not found
       or (m.type = 'HIDDEN' and v_bearer <> v_member and not carillon.can_manage(c, v_bearer))
       or (input ? 'SubChannelId' and m.sub_channel_id is distinct from input->>'SubChannelId') then
        perform carillon.fail('CH404', format('%s is not a member of this channel', v_member));
    end if;
    return jsonb_build_object('ChannelMembership', carillon.membership_doc(m, false));
end $$;

-- ListChannelMemberships: Type DEFAULT (the default) lists the DEFAULT members, HIDDEN the hidden ones
-- (moderators and admins only). SubChannelId (elastic channels) restricts the listing to one
-- sub-channel. Ordered by member ARN.
create or replace function carillon_api.list_channel_memberships(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_type text := coalesce(input->>'Type', 'DEFAULT');
    v_sub text := input->>'SubChannelId';
begin
    perform carillon.require_visible(c, v_bearer);
    if v_type = 'HIDDEN' and not carillon.can_manage(c, v_bearer) then
        perform carillon.fail('CH403', 'Only a channel moderator or an AppInstanceAdmin may list HIDDEN members');
    end if;
    if v_sub is not null and c.elastic is null then
        perform carillon.fail('CH400', 'SubChannelId is only for elastic channels');
    end if;
    return carillon.keyset_page(ctx, input, 'ChannelMemberships',
        $q$select member_arn as k from carillon.channel_memberships
            where channel_arn = $3->>'channel' and type = $3->>'type'
              and ($3->>'sub' is null or sub_channel_id = $3->>'sub')$q$,
        $i$jsonb_build_object('Member', carillon.identity_of(r.k))$i$,
        jsonb_build_object('channel', c.arn, 'type', v_type, 'sub', v_sub),
        jsonb_build_object('ChannelArn', c.arn));
end $$;

-- Elastic channels: after a member left sub-channel p_sub, a sub-channel left with fewer than
-- ceil(TargetMembershipsPerSubChannel * MinimumMembershipPercentage / 100) members is dissolved when
-- the other sub-channels have room for its members (each goes to the sub-channel with the fewest
-- members, below the target); each moved member hears UPDATE_CHANNEL_MEMBERSHIP (its membership with
-- the new SubChannelId), as Chime documents for transferred members. Returns those events. (Chime
-- deletes the memberships of moderators in a dissolved sub-channel; Carillon moves them like the
-- others, since it keeps one membership per member.) The caller holds the channel row lock.
create or replace function carillon.membership_rebalance(c carillon.channels, p_sub text, p_now timestamptz)
returns jsonb language plpgsql as $$
declare
    v_target int := (c.elastic->>'TargetMembershipsPerSubChannel')::int;
    v_min int := ceil((c.elastic->>'TargetMembershipsPerSubChannel')::numeric
                      * (c.elastic->>'MinimumMembershipPercentage')::numeric / 100);
    v_n int;
    v_room bigint;
    v_dest text;
    r record;
    m carillon.channel_memberships%rowtype;
    v_events jsonb := '[]';
begin
    if p_sub is null then
        return v_events;
    end if;
    select count(*) into v_n from carillon.channel_memberships where channel_arn = c.arn and sub_channel_id = p_sub;
    if v_n = 0 or v_n >= v_min then
        return v_events;
    end if;
    select coalesce(sum(v_target - n), 0) into v_room
      from (select count(*) as n from carillon.channel_memberships
             where channel_arn = c.arn and sub_channel_id is not null and sub_channel_id <> p_sub
             group by sub_channel_id) s
     where n < v_target;
    if v_room < v_n then
        return v_events;
    end if;
    for r in select member_arn from carillon.channel_memberships
              where channel_arn = c.arn and sub_channel_id = p_sub order by created_at, member_arn loop
        select sub_channel_id into v_dest
          from carillon.channel_memberships
         where channel_arn = c.arn and sub_channel_id is not null and sub_channel_id <> p_sub
         group by sub_channel_id
        having count(*) < v_target
         order by count(*), min(created_at), sub_channel_id
         limit 1;
        update carillon.channel_memberships set sub_channel_id = v_dest, updated_at = p_now
         where channel_arn = c.arn and member_arn = r.member_arn
        returning * into m;
        v_events := v_events || jsonb_build_array(carillon.event(c.arn, c.app_instance_id, 'UPDATE_CHANNEL_MEMBERSHIP',
                                                                 'SYSTEM', carillon.membership_doc(m, true), 'only',
                                                                 array[m.member_arn]));
    end loop;
    return v_events;
end $$;

-- DeleteChannelMembership: a member leaves (bearer = MemberArn), or a moderator/admin removes anyone;
-- anyone else is Forbidden. NotFound when MemberArn is not a member (or, on an elastic channel, not
-- in the given SubChannelId). Event: DELETE_CHANNEL_MEMBERSHIP to the members and the removed member
-- (a HIDDEN member: only to itself). Channel moderator status is a separate resource and stays.
create or replace function carillon_api.delete_channel_membership(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_member text := input->>'MemberArn';
    v_sub text := input->>'SubChannelId';
    m carillon.channel_memberships%rowtype;
    v_events jsonb;
begin
    if v_bearer <> v_member and not carillon.can_manage(c, v_bearer) then
        perform carillon.fail('CH403', 'Only the member itself, a channel moderator or an AppInstanceAdmin may remove a membership');
    end if;
    if c.elastic is null and v_sub is not null then
        perform carillon.fail('CH400', 'SubChannelId is only for elastic channels');
    end if;
    perform carillon.membership_lock_channel(c);
    delete from carillon.channel_memberships
     where channel_arn = c.arn and member_arn = v_member and (v_sub is null or sub_channel_id = v_sub)
    returning * into m;
    if not found then
        perform carillon.fail('CH404', format('%s is not a member of this channel', v_member));
    end if;
    v_events := jsonb_build_array(carillon.membership_event(c, m, 'DELETE_CHANNEL_MEMBERSHIP'));
    if c.elastic is not null then
        v_events := v_events || carillon.membership_rebalance(c, m.sub_channel_id, carillon.req_time(ctx));
    end if;
    return jsonb_build_object('__events', v_events);
end $$;

-- The ChannelMembershipForAppInstanceUserSummary of a membership (REST form).
create or replace function carillon.membership_user_summary(c carillon.channels, m carillon.channel_memberships)
returns jsonb language sql stable as $$
    select jsonb_build_object(
        'ChannelSummary', carillon.channel_summary(c, false),
        'AppInstanceUserMembershipSummary', jsonb_strip_nulls(jsonb_build_object(
            'Type', m.type, 'ReadMarkerTimestamp', carillon.tsv(m.read_marker_at, false),
            'SubChannelId', m.sub_channel_id)))
$$;

-- DescribeChannelMembershipForAppInstanceUser: a user or bot asks about itself; an AppInstanceAdmin
-- (and the server's own keys, the root key and admin access keys, which may act as any bearer anyway)
-- about anyone; others are Forbidden. NotFound when AppInstanceUserArn is not a member.
create or replace function carillon_api.describe_channel_membership_for_app_instance_user(ctx jsonb, input jsonb)
returns jsonb language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_user text := input->>'AppInstanceUserArn';
    m carillon.channel_memberships%rowtype;
begin
    if v_bearer <> v_user and not carillon.is_admin(c.app_instance_id, v_bearer)
       and not carillon.membership_server_principal(ctx) then
        perform carillon.fail('CH403', 'Only an AppInstanceAdmin may ask about the membership of another user');
    end if;
    m := carillon.membership_row(c, v_user);
    return jsonb_build_object('ChannelMembership', carillon.membership_user_summary(c, m));
end $$;

-- ListChannelMembershipsForAppInstanceUser: the channels AppInstanceUserArn (default: the bearer)
-- belongs to, HIDDEN memberships included, ordered by channel ARN. Another user's list: an
-- AppInstanceAdmin of the bearer's AppInstance, or the server's own keys, only (Forbidden otherwise);
-- a user or bot of another AppInstance is NotFound.
create or replace function carillon_api.list_channel_memberships_for_app_instance_user(ctx jsonb, input jsonb)
returns jsonb language plpgsql stable as $$
declare
    v_bearer text := carillon.bearer(ctx, input);
    v_user text := coalesce(input->>'AppInstanceUserArn', v_bearer);
    v_app_id text;
begin
    select app_instance_id into v_app_id
      from (select app_instance_id from carillon.app_instance_users where arn = v_bearer
            union all select app_instance_id from carillon.app_instance_bots where arn = v_bearer) s
     limit 1;
    if v_app_id is null then
        perform carillon.fail('CH403', format('%s is not an AppInstanceUser or AppInstanceBot', v_bearer));
    end if;
    if v_user <> v_bearer then
        if not carillon.is_admin(v_app_id, v_bearer) and not carillon.membership_server_principal(ctx) then
            perform carillon.fail('CH403', 'Only an AppInstanceAdmin may list the memberships of another user');
        end if;
        if not carillon.is_app_identity(v_app_id, v_user) then
            perform carillon.fail('CH404', format('No AppInstanceUser or AppInstanceBot %s in this AppInstance', v_user));
        end if;
    end if;
    return carillon.keyset_page(ctx, input, 'ChannelMemberships',
        $q$select m.channel_arn as k, c, m from carillon.channel_memberships m
             join carillon.channels c on c.arn = m.channel_arn
            where m.member_arn = $3->>'user' and c.app_instance_id = $3->>'app'$q$,
        'carillon.membership_user_summary(r.c, r.m)',
        jsonb_build_object('user', v_user, 'app', v_app_id));
end $$;

-- A push-notification FilterRule (Chime: "Using filter rules to filter messages"): a JSON object
-- (Amazon SNS filter-policy style) run against the message attributes. Accepted here:
--   * at most 2 KB;
--   * an object of one or more keys; each key (a message attribute name) maps to a non-empty array
--     of conditions: a string (exact match) or {"anything-but": string or non-empty array of
--     strings} (exclusion) -- Chime supports exact string matching only;
--   * "$or": an array of 1 to 5 such objects (Chime: at most five constraints inside an OR),
--     not nested;
--   * complexity (the number of keys plus the number of values) at most 20.
-- Anything else is a BadRequest.
create or replace function carillon.membership_filter_complexity(p_rule jsonb, p_top boolean) returns int
language plpgsql immutable as $$
declare
    v_key text;
    v_val jsonb;
    v_cond jsonb;
    v_alt jsonb;
    v_but jsonb;
    v_n int := 0;
begin
    if jsonb_typeof(p_rule) <> 'object' or p_rule = '{}' then
        perform carillon.fail('CH400', 'FilterRule must be a non-empty JSON object');
    end if;
    for v_key, v_val in select key, value from jsonb_each(p_rule) loop
        if v_key = '$or' then
            if not p_top then
                perform carillon.fail('CH400', 'FilterRule: "$or" cannot be nested');
            end if;
            if jsonb_typeof(v_val) <> 'array' or jsonb_array_length(v_val) not between 1 and 5 then
                perform carillon.fail('CH400', 'FilterRule: "$or" takes an array of 1 to 5 rules');
            end if;
            for v_alt in select value from jsonb_array_elements(v_val) loop
                v_n := v_n + carillon.membership_filter_complexity(v_alt, false);
            end loop;
            continue;
        end if;
        v_n := v_n + 1;
        if jsonb_typeof(v_val) <> 'array' or jsonb_array_length(v_val) = 0 then
            perform carillon.fail('CH400', format('FilterRule: the value of "%s" must be a non-empty array of conditions', v_key));
        end if;
        for v_cond in select value from jsonb_array_elements(v_val) loop
            if jsonb_typeof(v_cond) = 'string' then
                v_n := v_n + 1;
            elsif jsonb_typeof(v_cond) = 'object' and (select count(*) from jsonb_object_keys(v_cond)) = 1
                  and v_cond ? 'anything-but' then
                v_but := v_cond->'anything-but';
                if jsonb_typeof(v_but) = 'string' then
                    v_n := v_n + 1;
                elsif jsonb_typeof(v_but) = 'array' and jsonb_array_length(v_but) > 0
                      and not exists (select 1 from jsonb_array_elements(v_but) e where jsonb_typeof(e) <> 'string') then
                    v_n := v_n + jsonb_array_length(v_but);
                else
                    perform carillon.fail('CH400', format('FilterRule: "anything-but" of "%s" takes a string or a non-empty array of strings', v_key));
                end if;
            else
                perform carillon.fail('CH400', format('FilterRule: the conditions of "%s" must be strings (exact match) or {"anything-but": ...}', v_key));
            end if;
        end loop;
    end loop;
    return v_n;
end $$;

-- Preferences: PushNotifications.AllowNotifications FILTERED requires a FilterRule; a FilterRule
-- with ALL or NONE is a BadRequest too (it would be silently ignored, which hides client mistakes).
create or replace function carillon.membership_check_preferences(p jsonb) returns void
language plpgsql immutable as $$
declare
    v_allow text := p #>> '{PushNotifications,AllowNotifications}';
    v_rule text := p #>> '{PushNotifications,FilterRule}';
    v_json jsonb;
begin
    if v_allow is null then
        return;
    end if;
    if v_allow = 'FILTERED' and v_rule is null then
        perform carillon.fail('CH400', 'AllowNotifications FILTERED requires a FilterRule');
    end if;
    if v_allow <> 'FILTERED' and v_rule is not null then
        perform carillon.fail('CH400', 'A FilterRule is allowed only with AllowNotifications FILTERED');
    end if;
    if v_rule is null then
        return;
    end if;
    if octet_length(v_rule) > 2048 then
        perform carillon.fail('CH400', 'FilterRule is larger than 2 KB');
    end if;
    begin
        v_json := v_rule::jsonb;
    exception when others then
        perform carillon.fail('CH400', 'FilterRule is not valid JSON');
    end;
    if carillon.membership_filter_complexity(v_json, true) > 20 then
        perform carillon.fail('CH400', 'FilterRule is too complex (more than 20 keys and values)');
    end if;
end $$;

-- The membership whose preferences are read or written: only the member itself (bearer = MemberArn;
-- moderators and admins can't, the root key and admin keys may act as that bearer). Not on elastic
-- channels (BadRequest). Banned: Forbidden. Not a member: NotFound.
create or replace function carillon.membership_own(ctx jsonb, input jsonb) returns carillon.channel_memberships
language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_member text := input->>'MemberArn';
    m carillon.channel_memberships%rowtype;
begin
    if carillon.bearer(ctx, input) <> v_member then
        perform carillon.fail('CH403', 'Only the member itself may read or set its membership preferences');
    end if;
    if c.elastic is not null then
        perform carillon.fail('CH400', 'Elastic channels do not support membership preferences');
    end if;
    if exists (select 1 from carillon.channel_bans where channel_arn = c.arn and member_arn = v_member) then
        perform carillon.fail('CH403', format('%s is banned from this channel', v_member));
    end if;
    return carillon.membership_row(c, v_member);
end $$;

-- PutChannelMembershipPreferences: replaces the preferences. No event (none is documented).
create or replace function carillon_api.put_channel_membership_preferences(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    m carillon.channel_memberships := carillon.membership_own(ctx, input);
    v_prefs jsonb := input->'Preferences';
begin
    perform carillon.membership_check_preferences(v_prefs);
    perform carillon.membership_lock_channel(carillon.channel_row(m.channel_arn));
    update carillon.channel_memberships set preferences = v_prefs
     where channel_arn = m.channel_arn and member_arn = m.member_arn;
    if not found then    -- left meanwhile
        perform carillon.fail('CH404', format('%s is not a member of this channel', m.member_arn));
    end if;
    return jsonb_build_object('ChannelArn', m.channel_arn, 'Member', carillon.identity_of(m.member_arn),
                              'Preferences', v_prefs);
end $$;

-- GetChannelMembershipPreferences: the stored preferences; {} when none were ever set.
create or replace function carillon_api.get_channel_membership_preferences(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare m carillon.channel_memberships := carillon.membership_own(ctx, input);
begin
    return jsonb_build_object('ChannelArn', m.channel_arn, 'Member', carillon.identity_of(m.member_arn),
                              'Preferences', coalesce(m.preferences, '{}'));
end $$;

-- ListSubChannels: moderators and admins of an elastic channel (BadRequest for a non-elastic one);
-- the sub-channels (derived from the memberships) with their membership counts, by SubChannelId.
create or replace function carillon_api.list_sub_channels(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
begin
    perform carillon.require_manager(c, carillon.bearer(ctx, input));
    if c.elastic is null then
        perform carillon.fail('CH400', 'ListSubChannels is only for elastic channels');
    end if;
    return carillon.keyset_page(ctx, input, 'SubChannels',
        $q$select sub_channel_id as k, count(*) as n from carillon.channel_memberships
            where channel_arn = $3->>'channel' and sub_channel_id is not null
            group by sub_channel_id$q$,
        $i$jsonb_build_object('SubChannelId', r.k, 'MembershipCount', r.n)$i$,
        jsonb_build_object('channel', c.arn), jsonb_build_object('ChannelArn', c.arn));
end $$;
