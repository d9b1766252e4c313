-- ChannelBan: create, describe, list, delete.
--
-- Chime: "Permanently bans a member from a channel. Moderators can't add banned members to a
-- channel. To undo a ban, you first have to DeleteChannelBan, and then CreateChannelMembership. [...]
-- If you ban a user who is already part of a channel, that user is automatically kicked from the
-- channel." A banned identity can neither be added nor join (carillon.add_member refuses it,
-- Forbidden) until the ban is deleted.
--
-- Access: moderators of the channel and AppInstanceAdmins only, for every ban operation (the ban
-- list is moderation data; members do not see it).
--
-- Decisions where Chime's documentation is silent:
--   * The banned ARN must be a user or bot of the channel's AppInstance: NotFound otherwise. It need
--     not be a member (a ban keeps it out in advance); no event then.
--   * A channel moderator cannot be banned: Conflict (delete the ChannelModerator first -- a banned
--     moderator would still manage the channel). An AppInstanceAdmin cannot be banned: Forbidden
--     (admin rights are AppInstance-wide; a ban could not keep it out of the channel).
--   * Banning an identity already banned: Conflict. DescribeChannelBan/DeleteChannelBan of an
--     identity that is not banned: NotFound.
--   * Banning a member deletes its membership and emits DELETE_CHANNEL_MEMBERSHIP (SYSTEM, the
--     membership as it was) to the members and the banned member itself (a HIDDEN member's to itself
--     only), as DeleteChannelMembership does. CREATE/DELETE_CHANNEL_BAN are not websocket events.
--
-- Locking: CreateChannelBan locks the channel row FOR UPDATE before it looks at the membership, so it
-- is ordered against any write that locks the channel first; then the membership.

create or replace function carillon.ban_row(c carillon.channels, p_member text) returns carillon.channel_bans
language plpgsql stable as $$
begin
    return carillon.must_exist((select b from carillon.channel_bans b where b.channel_arn = c.arn and b.member_arn = p_member),
                               format('%s is not banned from channel %s', p_member, c.arn));
end $$;

-- CreateChannelBan: 201 {ChannelArn, Member: Identity}.
create or replace function carillon_api.create_channel_ban(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_member text := input->>'MemberArn';
    m carillon.channel_memberships%rowtype;
    v_events jsonb := '[]';
begin
    perform carillon.require_manager(c, v_bearer);
    perform carillon.channel_require_identity(c.app_instance_id, v_member, 'Member');
    c := carillon.channel_lock(c.arn);
    if carillon.is_admin(c.app_instance_id, v_member) then
        perform carillon.fail('CH403', format('%s is an AppInstanceAdmin and cannot be banned', v_member));
    end if;
    if carillon.is_moderator(c.arn, v_member) then
        perform carillon.fail('CH409', format('%s is a moderator of this channel; delete the ChannelModerator before banning it', v_member));
    end if;
    insert into carillon.channel_bans (channel_arn, member_arn, created_by, created_at)
    values (c.arn, v_member, v_bearer, carillon.req_time(ctx))
    on conflict do nothing;
    if not found then
        perform carillon.fail('CH409', format('%s is already banned from this channel', v_member));
    end if;
    v_events := jsonb_build_array(carillon.stream_event(c.arn, c.app_instance_id, 'CREATE_CHANNEL_BAN',
        carillon.channel_grant_doc('Member', v_member, c.arn, carillon.req_time(ctx), v_bearer)));
    delete from carillon.channel_memberships where channel_arn = c.arn and member_arn = v_member
    returning * into m;
    if found then
        v_events := v_events || jsonb_build_array(carillon.membership_event(c, m, 'DELETE_CHANNEL_MEMBERSHIP'));
    end if;
    return jsonb_build_object('ChannelArn', c.arn, 'Member', carillon.identity_of(v_member), '__events', v_events);
end $$;

-- DescribeChannelBan: {ChannelBan: {Member, ChannelArn, CreatedTimestamp, CreatedBy}}.
create or replace function carillon_api.describe_channel_ban(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    b carillon.channel_bans%rowtype;
begin
    perform carillon.require_manager(c, carillon.bearer(ctx, input));
    b := carillon.ban_row(c, input->>'MemberArn');
    return jsonb_build_object('ChannelBan',
        carillon.channel_grant_doc('Member', b.member_arn, c.arn, b.created_at, b.created_by));
end $$;

-- ListChannelBans: {ChannelArn, ChannelBans: [{Member}], NextToken}, by member ARN.
create or replace function carillon_api.list_channel_bans(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare c carillon.channels := carillon.channel_for(ctx, input);
begin
    perform carillon.require_manager(c, carillon.bearer(ctx, input));
    return carillon.identity_page(ctx, input, 'channel_bans', 'channel_arn', c.arn, 'member_arn', 'Member',
                                  'ChannelBans', jsonb_build_object('ChannelArn', c.arn));
end $$;

-- DeleteChannelBan: DELETE, 204. The identity may then be added again (it is not re-added).
create or replace function carillon_api.delete_channel_ban(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    b carillon.channel_bans%rowtype;
begin
    perform carillon.require_manager(c, carillon.bearer(ctx, input));
    delete from carillon.channel_bans where channel_arn = c.arn and member_arn = input->>'MemberArn'
    returning * into b;
    if not found then
        perform carillon.fail('CH404', format('%s is not banned from channel %s', input->>'MemberArn', c.arn));
    end if;
    -- Streamed only (docs/streaming.md): 204 without a body, as before.
    return jsonb_build_object('__events', jsonb_build_array(carillon.stream_event(c.arn, c.app_instance_id,
        'DELETE_CHANNEL_BAN', carillon.channel_grant_doc('Member', b.member_arn, c.arn, b.created_at, b.created_by))));
end $$;
