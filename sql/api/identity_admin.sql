-- AppInstanceAdmin: an AppInstanceUser or AppInstanceBot of the AppInstance granted admin rights.

-- The Identity {Arn, Name} of a user or bot of the given AppInstance, or NotFound.
create or replace function carillon.member_identity(p_app_id text, p_arn text) returns jsonb
language plpgsql stable as $$
declare v_name text;
begin
    select name into v_name from carillon.app_instance_users where arn = p_arn and app_instance_id = p_app_id;
    if not found then
        select name into v_name from carillon.app_instance_bots where arn = p_arn and app_instance_id = p_app_id;
        if not found then
            perform carillon.fail('CH404', format('No AppInstanceUser or AppInstanceBot %s in this AppInstance', p_arn));
        end if;
    end if;
    return jsonb_strip_nulls(jsonb_build_object('Arn', p_arn, 'Name', v_name));
end $$;

create or replace function carillon.identity_of(p_arn text) returns jsonb
language sql stable as $$
    select jsonb_strip_nulls(jsonb_build_object('Arn', p_arn, 'Name',
        coalesce((select name from carillon.app_instance_users where arn = p_arn),
                 (select name from carillon.app_instance_bots where arn = p_arn))))
$$;

-- CreateAppInstanceAdmin: at most carillon.quota('max_app_instance_admins') admins per AppInstance
-- (Chime: 100); one more is ResourceLimitExceeded (an existing admin stays a Conflict). The
-- AppInstance row is locked (FOR NO KEY UPDATE, to commit) before counting, so concurrent additions
-- are counted one after the other.
create or replace function carillon_api.create_app_instance_admin(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_app_id text := carillon.app_instance_id(input->>'AppInstanceArn');
    v_admin jsonb := carillon.member_identity(v_app_id, input->>'AppInstanceAdminArn');
begin
    perform 1 from carillon.app_instances where id = v_app_id for no key update;
    if not found then    -- deleted meanwhile
        perform carillon.fail('CH404', format('AppInstance %s not found', input->>'AppInstanceArn'));
    end if;
    insert into carillon.app_instance_admins (app_instance_id, admin_arn, created_at)
    values (v_app_id, input->>'AppInstanceAdminArn', carillon.req_time(ctx))
    on conflict do nothing;
    if not found then
        perform carillon.fail('CH409', format('%s is already an admin of this AppInstance', input->>'AppInstanceAdminArn'));
    end if;
    -- Counted with the new row; failing here rolls it back.
    perform carillon.require_quota(
        (select count(*) from carillon.app_instance_admins where app_instance_id = v_app_id),
        'max_app_instance_admins', 100, format('Too many AppInstanceAdmins in AppInstance %s', input->>'AppInstanceArn'));
    return jsonb_build_object('AppInstanceAdmin', v_admin, 'AppInstanceArn', input->>'AppInstanceArn');
end $$;

create or replace function carillon_api.describe_app_instance_admin(ctx jsonb, input jsonb) returns jsonb
language plpgsql stable as $$
declare
    v_app_id text := carillon.app_instance_id(input->>'AppInstanceArn');
    v_created timestamptz := carillon.must_exist(
        (select created_at from carillon.app_instance_admins
          where app_instance_id = v_app_id and admin_arn = input->>'AppInstanceAdminArn'),
        format('AppInstanceAdmin %s not found', input->>'AppInstanceAdminArn'));
begin
    return jsonb_build_object('AppInstanceAdmin', jsonb_build_object(
        'Admin', carillon.identity_of(input->>'AppInstanceAdminArn'),
        'AppInstanceArn', input->>'AppInstanceArn', 'CreatedTimestamp', carillon.ts(v_created)));
end $$;

create or replace function carillon_api.list_app_instance_admins(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select carillon.identity_page(ctx, input, 'app_instance_admins', 'app_instance_id',
                                  carillon.app_instance_id(input->>'AppInstanceArn'), 'admin_arn', 'Admin',
                                  'AppInstanceAdmins', jsonb_build_object('AppInstanceArn', input->>'AppInstanceArn'))
$$;

create or replace function carillon_api.delete_app_instance_admin(ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
begin
    delete from carillon.app_instance_admins
     where app_instance_id = carillon.app_instance_id(input->>'AppInstanceArn')
       and admin_arn = input->>'AppInstanceAdminArn';
    if not found then
        perform carillon.fail('CH404', format('AppInstanceAdmin %s not found', input->>'AppInstanceAdminArn'));
    end if;
    return null;
end $$;
