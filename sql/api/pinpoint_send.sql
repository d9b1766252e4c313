-- Pinpoint direct sends, SendMessages and SendUsersMessages (src/api/pinpoint/send.c, docs/push.md):
-- the C handler reads what it needs to deliver with one call, sends through the push senders itself
-- (the answer carries the providers' results), then records the device tokens the providers called
-- dead. Not rows of the operation table: helpers of a C handler.

-- What a direct send to app p_app_id needs: its channels (secrets still sealed: the gateway opens
-- them) and the endpoints named by id (p_endpoint_ids) or owned by the users p_user_ids. NULL when
-- the app does not exist.
create or replace function carillon_api.pinpoint_send_targets(p_app_id text, p_endpoint_ids jsonb, p_user_ids jsonb)
returns jsonb language sql stable as $$
    select case when not exists (select 1 from carillon.pinpoint_apps where id = p_app_id) then null else
    jsonb_build_object(
        'channels', coalesce((
            select jsonb_agg(jsonb_build_object('type', c.type, 'enabled', c.enabled, 'settings', c.settings,
                                                'secret', c.secret, 'version', c.version))
              from carillon.pinpoint_channels c where c.app_id = p_app_id), '[]'),
        -- Users' endpoints in a stable order (a user's endpoints answer in this order). Bounded: at
        -- most 100 ids and 100 users reach here, and a user has at most the endpoint quota.
        'endpoints', coalesce((
            select jsonb_agg(jsonb_build_object('id', e.endpoint_id, 'type', e.channel_type, 'address', e.address,
                                                'status', e.status, 'opt_out', e.opt_out, 'user_id', e.user_id)
                             order by e.user_id, e.endpoint_id)
              from carillon.pinpoint_endpoints e
             where e.app_id = p_app_id
               and (e.endpoint_id in (select jsonb_array_elements_text(p_endpoint_ids))
                    or e.user_id in (select jsonb_array_elements_text(p_user_ids)))), '[]'))
    end
$$;

-- The providers said these device tokens are dead (FCM UNREGISTERED, APNs 410 / BadDeviceToken):
-- the same invalidation as a channel message's push (carillon.push_invalidate_token, sql/api/push.sql):
-- the app's Pinpoint endpoints and AppInstanceUserEndpoints still holding the token become INACTIVE;
-- a device that registered a new token meanwhile is untouched. p_dead: [{"type", "address"}].
create or replace function carillon_api.pinpoint_send_dead_tokens(p_app_id text, p_dead jsonb)
returns void language plpgsql as $$
declare d jsonb;
begin
    for d in select * from jsonb_array_elements(p_dead) loop
        perform carillon.push_invalidate_token(p_app_id, d->>'address');
    end loop;
end $$;
