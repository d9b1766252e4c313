-- The access-rule helpers of sql/api/messaging_common.sql: an allowed and a refused case each.
select pg_temp.make_fixture();

-- test: is_admin: an AppInstanceAdmin is one, a moderator is not, nor is the admin in another AppInstance
do $$ begin
    assert carillon.is_admin(pg_temp.fx('app_id'), pg_temp.fx('admin')), 'admin is an admin';
    assert not carillon.is_admin(pg_temp.fx('app_id'), pg_temp.fx('mod')), 'a moderator is not an admin';
    assert not carillon.is_admin(pg_temp.fx('app_id2'), pg_temp.fx('admin')), 'admin of app only';
end $$;

-- test: is_moderator: the channel's creator moderates it, a member does not, nor an admin
do $$ begin
    assert carillon.is_moderator(pg_temp.fx('priv'), pg_temp.fx('mod')), 'the creator moderates';
    assert not carillon.is_moderator(pg_temp.fx('priv'), pg_temp.fx('member')), 'a member does not moderate';
    assert not carillon.is_moderator(pg_temp.fx('priv'), pg_temp.fx('admin')), 'an admin is not a moderator';
end $$;

-- test: is_member: a member is one, an outsider and a moderator of another channel are not
do $$ begin
    assert carillon.is_member(pg_temp.fx('priv'), pg_temp.fx('member')), 'member';
    assert not carillon.is_member(pg_temp.fx('priv'), pg_temp.fx('outsider')), 'outsider';
    assert not carillon.is_member(pg_temp.fx('pub'), pg_temp.fx('member')), 'member of priv only';
end $$;

-- test: can_manage: moderators and admins manage a channel, members and outsiders do not
do $$ begin
    assert carillon.can_manage(pg_temp.ch('priv'), pg_temp.fx('mod')), 'moderator';
    assert carillon.can_manage(pg_temp.ch('priv'), pg_temp.fx('admin')), 'admin';
    assert not carillon.can_manage(pg_temp.ch('priv'), pg_temp.fx('member')), 'member';
    assert not carillon.can_manage(pg_temp.ch('priv'), pg_temp.fx('outsider')), 'outsider';
    assert not carillon.can_manage(pg_temp.ch('priv'), pg_temp.fx('other')), 'user of another AppInstance';
end $$;

-- test: require_manager: passes for a moderator and an admin, Forbidden (CH403) for a member
do $$ begin
    perform carillon.require_manager(pg_temp.ch('priv'), pg_temp.fx('mod'));
    perform carillon.require_manager(pg_temp.ch('priv'), pg_temp.fx('admin'));
    perform pg_temp.raises(format('select carillon.require_manager(carillon.channel_row(%L), %L)',
                                  pg_temp.fx('priv'), pg_temp.fx('member')), 'CH403');
end $$;

-- test: require_visible: a PRIVATE channel for members, moderators and admins only; a PUBLIC one for all
do $$ begin
    perform carillon.require_visible(pg_temp.ch('priv'), pg_temp.fx('member'));
    perform carillon.require_visible(pg_temp.ch('priv'), pg_temp.fx('admin'));
    perform carillon.require_visible(pg_temp.ch('pub'), pg_temp.fx('outsider'));
    perform pg_temp.raises(format('select carillon.require_visible(carillon.channel_row(%L), %L)',
                                  pg_temp.fx('priv'), pg_temp.fx('outsider')), 'CH403');
end $$;

-- test: require_app_identity: users and bots of the AppInstance pass; another's user is Forbidden, no bearer a BadRequest
do $$ begin
    perform carillon.require_app_identity(pg_temp.fx('app_id'), pg_temp.fx('outsider'));
    perform carillon.require_app_identity(pg_temp.fx('app_id'), pg_temp.fx('bot'));
    perform pg_temp.raises(format('select carillon.require_app_identity(%L, %L)',
                                  pg_temp.fx('app_id'), pg_temp.fx('other')), 'CH403');
    perform pg_temp.raises(format('select carillon.require_app_identity(%L, null)', pg_temp.fx('app_id')), 'CH400');
end $$;

-- test: channel_for: the bearer must belong to the channel's AppInstance (CH403), the channel must exist (CH404)
do $$ begin
    assert (carillon.channel_for(pg_temp.ctx(), jsonb_build_object('ChannelArn', pg_temp.fx('priv'),
                                 'ChimeBearer', pg_temp.fx('outsider')))).arn = pg_temp.fx('priv');
    perform pg_temp.raises(format('select carillon.channel_for(%L, %L)', pg_temp.ctx(),
        jsonb_build_object('ChannelArn', pg_temp.fx('priv'), 'ChimeBearer', pg_temp.fx('other'))), 'CH403');
    perform pg_temp.raises(format('select carillon.channel_for(%L, %L)', pg_temp.ctx(),
        jsonb_build_object('ChannelArn', pg_temp.fx('priv') || 'x', 'ChimeBearer', pg_temp.fx('member'))), 'CH404');
end $$;

-- test: lookups and row locks: the row when it exists, NotFound (CH404) when it does not
do $$ begin
    assert (carillon.channel_row(pg_temp.fx('priv'))).name = 'priv';
    assert (carillon.membership_row(pg_temp.ch('priv'), pg_temp.fx('member'))).type = 'DEFAULT';
    assert carillon.app_instance_id(pg_temp.fx('app')) = pg_temp.fx('app_id');
    perform carillon.channel_lock_row(pg_temp.fx('priv'), true);
    perform carillon.channel_lock_row(pg_temp.fx('pub'), false);
    perform pg_temp.raises(format('select carillon.channel_row(%L)', pg_temp.fx('priv') || 'x'), 'CH404');
    perform pg_temp.raises(format('select carillon.channel_lock_row(%L, true)', pg_temp.fx('priv') || 'x'), 'CH404');
    perform pg_temp.raises(format('select carillon.channel_lock(%L)', pg_temp.fx('priv') || 'x'), 'CH404');
    perform pg_temp.raises(format('select carillon.membership_row(carillon.channel_row(%L), %L)',
                                  pg_temp.fx('priv'), pg_temp.fx('outsider')), 'CH404');
    perform pg_temp.raises(format('select carillon.app_instance_id(%L)', pg_temp.fx('app') || 'x'), 'CH404');
    perform pg_temp.raises(format('select carillon.user_row(%L)', pg_temp.fx('member') || 'x'), 'CH404');
end $$;
