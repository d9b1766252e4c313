-- ChannelModerator: create, describe, list, delete.
--
-- Access: moderators of the channel and AppInstanceAdmins add and remove moderators (Chime: "A
-- channel moderator can add and remove other moderators of the channel"); whoever may see the
-- channel (its members, moderators and admins; everyone in the AppInstance for a PUBLIC channel)
-- may describe and list them.
--
-- Decisions where Chime's documentation is silent:
--   * The moderator must be a user or bot of the channel's AppInstance: NotFound otherwise (as
--     CreateChannel's ModeratorArns). Already a moderator: Conflict. A user banned from the channel
--     cannot be made a moderator (Forbidden, as it cannot be added as a member; delete the ban
--     first).
--   * Becoming a moderator does not make one a member (CreateChannel's ModeratorArns do become
--     members, that is CreateChannel's rule), and losing the role does not remove a membership --
--     except in elastic channels, where Chime's developer guide says that promoting a member to
--     moderator, and demoting a moderator, removes that identity's existing memberships: the
--     removed membership emits DELETE_CHANNEL_MEMBERSHIP as DeleteChannelMembership does.
--   * Moderator changes emit no websocket event (CREATE/DELETE_CHANNEL_MODERATOR are not in Chime's
--     websocket event list).
--   * DeleteChannelModerator of an identity that is not a moderator: NotFound. A moderator may
--     remove itself, and the last moderator may be removed (AppInstanceAdmins still manage the
--     channel).
--
--   * At most carillon.quota('max_channel_moderators') moderators per channel (Chime: 1,000), elastic
--     channels included; one more (CreateChannelModerator, or CreateChannel's ModeratorArns) is
--     ResourceLimitExceeded. An identity that already moderates the channel stays a Conflict.
--
-- Locking: the channel row first (FOR KEY SHARE; FOR NO KEY UPDATE when adding, so that concurrent
-- additions are counted one after the other), then moderators and memberships.

create or replace function carillon.moderator_lock_channel(c carillon.channels) returns void
language plpgsql as $$
begin
    perform carillon.channel_lock_row(c.arn, false);
end $$;

-- The moderator quota of a channel, counted with the moderators just inserted (failing rolls them
-- back). The caller holds the channel row FOR NO KEY UPDATE (or created it in this transaction).
create or replace function carillon.moderator_require_quota(p_channel text) returns void
language plpgsql stable as $$
begin
    perform carillon.require_quota(
        (select count(*) from carillon.channel_moderators where channel_arn = p_channel),
        'max_channel_moderators', 1000, format('Too many moderators in channel %s', p_channel));
end $$;

-- Elastic channels: drop the identity's membership (if any) and return its event, or an empty array.
create or replace function carillon.moderator_drop_elastic_membership(c carillon.channels, p_arn text) returns jsonb
language plpgsql as $$
declare m carillon.channel_memberships%rowtype;
begin
    if c.elastic is null then
        return '[]';
    end if;
    delete from carillon.channel_memberships where channel_arn = c.arn and member_arn = p_arn returning * into m;
    if not found then
        return '[]';
    end if;
    return jsonb_build_array(carillon.membership_event(c, m, 'DELETE_CHANNEL_MEMBERSHIP'));
end $$;

-- CreateChannelModerator: 201 {ChannelArn, ChannelModerator: Identity}.
create or replace function carillon_api.create_channel_moderator(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_mod text := input->>'ChannelModeratorArn';
begin
    perform carillon.require_manager(c, v_bearer);
    perform carillon.channel_require_identity(c.app_instance_id, v_mod, 'ChannelModerator');
    perform carillon.channel_lock_row(c.arn, true);
    if exists (select 1 from carillon.channel_bans where channel_arn = c.arn and member_arn = v_mod) then
        perform carillon.fail('CH403', format('%s is banned from this channel; delete the ban first', v_mod));
    end if;
    insert into carillon.channel_moderators (channel_arn, moderator_arn, created_by, created_at)
    values (c.arn, v_mod, v_bearer, carillon.req_time(ctx))
    on conflict do nothing;
    if not found then
        perform carillon.fail('CH409', format('%s is already a moderator of this channel', v_mod));
    end if;
    perform carillon.moderator_require_quota(c.arn);
    -- CREATE_CHANNEL_MODERATOR is streamed (docs/streaming.md), not pushed to websocket sessions.
    return jsonb_build_object('ChannelArn', c.arn, 'ChannelModerator', carillon.identity_of(v_mod),
                              '__events', jsonb_build_array(carillon.stream_event(c.arn, c.app_instance_id,
                                  'CREATE_CHANNEL_MODERATOR',
                                  carillon.channel_grant_doc('Moderator', v_mod, c.arn, carillon.req_time(ctx), v_bearer)))
                                  || carillon.moderator_drop_elastic_membership(c, v_mod));
end $$;

-- DescribeChannelModerator: {ChannelModerator: {Moderator, ChannelArn, CreatedTimestamp, CreatedBy}}.
create or replace function carillon_api.describe_channel_moderator(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    mo carillon.channel_moderators%rowtype;
begin
    perform carillon.require_visible(c, carillon.bearer(ctx, input));
    mo := carillon.must_exist((select t from carillon.channel_moderators t
                                where t.channel_arn = c.arn and t.moderator_arn = input->>'ChannelModeratorArn'),
                              format('%s is not a moderator of channel %s', input->>'ChannelModeratorArn', c.arn));
    return jsonb_build_object('ChannelModerator',
        carillon.channel_grant_doc('Moderator', mo.moderator_arn, c.arn, mo.created_at, mo.created_by));
end $$;

-- ListChannelModerators: {ChannelArn, ChannelModerators: [{Moderator}], NextToken}, by moderator ARN.
create or replace function carillon_api.list_channel_moderators(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare c carillon.channels := carillon.channel_for(ctx, input);
begin
    perform carillon.require_visible(c, carillon.bearer(ctx, input));
    return carillon.identity_page(ctx, input, 'channel_moderators', 'channel_arn', c.arn, 'moderator_arn',
                                  'Moderator', 'ChannelModerators', jsonb_build_object('ChannelArn', c.arn));
end $$;

-- DeleteChannelModerator: DELETE, 204.
create or replace function carillon_api.delete_channel_moderator(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_mod text := input->>'ChannelModeratorArn';
    mo carillon.channel_moderators%rowtype;
begin
    perform carillon.require_manager(c, carillon.bearer(ctx, input));
    perform carillon.moderator_lock_channel(c);
    delete from carillon.channel_moderators where channel_arn = c.arn and moderator_arn = v_mod
    returning * into mo;
    if not found then
        perform carillon.fail('CH404', format('%s is not a moderator of channel %s', v_mod, c.arn));
    end if;
    return jsonb_build_object('__events', jsonb_build_array(carillon.stream_event(c.arn, c.app_instance_id,
        'DELETE_CHANNEL_MODERATOR', carillon.channel_grant_doc('Moderator', mo.moderator_arn, c.arn, mo.created_at,
                                                               mo.created_by)))
        || carillon.moderator_drop_elastic_membership(c, v_mod));
end $$;
