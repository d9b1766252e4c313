-- ChannelMembership: create (more operations of this resource follow in this file).

-- CreateChannelMembership: moderators and admins add anyone; in UNRESTRICTED channels members may
-- add others; anyone in the AppInstance may join a PUBLIC channel themselves. A banned member cannot
-- be added. Event: CREATE_CHANNEL_MEMBERSHIP to the members, including the new one (a HIDDEN member
-- is announced only to itself).
create or replace function carillon_api.create_channel_membership(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    c carillon.channels := carillon.channel_for(ctx, input);
    v_bearer text := carillon.bearer(ctx, input);
    v_member text := input->>'MemberArn';
    m carillon.channel_memberships%rowtype;
begin
    if not (carillon.can_manage(c, v_bearer)
            or (c.mode = 'UNRESTRICTED' and carillon.is_member(c.arn, v_bearer))
            or (c.privacy = 'PUBLIC' and v_member = v_bearer)) then
        perform carillon.fail('CH403', 'Not allowed to add members to this channel');
    end if;
    m := carillon.add_member(c, v_member, input->>'Type', v_bearer, carillon.req_time(ctx), input->>'SubChannelId');
    return jsonb_strip_nulls(jsonb_build_object(
        'ChannelArn', c.arn, 'Member', carillon.identity_of(v_member), 'SubChannelId', m.sub_channel_id,
        '__events', jsonb_build_array(carillon.membership_event(c, m, 'CREATE_CHANNEL_MEMBERSHIP'))));
end $$;
