-- Push intents of channel messages (delivery: src/push/push.c through the outbox).
--
-- carillon.push_enqueue_message(channel, message) enqueues, in the caller's transaction, one 'push'
-- outbox row per (message, endpoint) for every endpoint Chime would push the stored SENT message to:
--   * the message has a PushNotification;
--   * the endpoint's user is a member of the channel (the sender included), of the message's
--     sub-channel for an elastic channel, and the sender or the target for a targeted message;
--   * the membership's push preferences allow it: none set or ALL; FILTERED with a FilterRule that
--     matches the message's MessageAttributes (carillon.push_filter_matches); NONE never;
--   * the endpoint is ACTIVE with AllowMessages ALL, and its ResourceArn names an existing Pinpoint
--     app with an enabled channel of its type: APNS, APNS_SANDBOX or GCM; a VOIP PushNotification
--     goes to the app's APNS_VOIP / APNS_VOIP_SANDBOX channel and the endpoint's VoipDeviceToken
--     (an FCM endpoint gets a VOIP notification as an ordinary one: FCM has no VoIP pushes).
-- The row's payload carries what the sender needs (token, channel, title, body), so delivery reads
-- nothing else per push. The dedupe key message_id:endpoint_id is stable: enqueuing the same message
-- again (a retried send, a flow's callback) adds nothing. Returns the number of rows enqueued.

-- The keys of a FilterRule other than "$or", ANDed. A key's conditions are ORed: an exact string
-- matches when the attribute has that value; {"anything-but": v | [v...]} when the attribute has a
-- value outside the list. A key the message does not carry matches nothing (as in SNS filter
-- policies, whose syntax Chime's follows).
create or replace function carillon.push_filter_keys_match(p_rule jsonb, p_attrs jsonb) returns boolean
language sql immutable as $$
    select coalesce(bool_and(exists (
               select 1
                 from jsonb_array_elements(r.value) c,
                      jsonb_array_elements_text(case when jsonb_typeof(p_attrs #> array[r.key, 'StringValues']) = 'array'
                                                     then p_attrs #> array[r.key, 'StringValues'] else '[]' end) v
                where case jsonb_typeof(c)
                      when 'string' then c #>> '{}' = v
                      when 'object' then not (case jsonb_typeof(c->'anything-but')
                                              when 'array' then c->'anything-but'
                                              else jsonb_build_array(c->'anything-but') end) ? v
                      else false end)), true)
      from jsonb_each(p_rule) r
     where r.key <> '$or'
$$;

-- A whole FilterRule: its keys ANDed, and, with "$or", at least one of its rules (one level: the
-- membership check refuses nested "$or").
create or replace function carillon.push_filter_matches(p_rule jsonb, p_attrs jsonb) returns boolean
language sql immutable as $$
    select jsonb_typeof(p_rule) = 'object'
       and carillon.push_filter_keys_match(p_rule, coalesce(p_attrs, '{}'))
       and (not p_rule ? '$or'
            or exists (select 1 from jsonb_array_elements(case when jsonb_typeof(p_rule->'$or') = 'array'
                                                              then p_rule->'$or' else '[]' end) alt
                        where jsonb_typeof(alt) = 'object'
                          and carillon.push_filter_keys_match(alt, coalesce(p_attrs, '{}'))))
$$;

-- Whether a membership's preferences (ChannelMembershipPreferences) let a message with these
-- MessageAttributes push.
create or replace function carillon.push_allowed(p_prefs jsonb, p_attrs jsonb) returns boolean
language sql immutable as $$
    select case coalesce(p_prefs #>> '{PushNotifications,AllowNotifications}', 'ALL')
           when 'NONE' then false
           when 'FILTERED' then carillon.push_filter_matches((p_prefs #>> '{PushNotifications,FilterRule}')::jsonb, p_attrs)
           else true end
$$;

create or replace function carillon.push_enqueue_message(p_channel_arn text, p_message_id text) returns int
language plpgsql as $$
declare
    m carillon.channel_messages;
    v_voip boolean;
    v_n int;
begin
    if to_regclass('carillon.pinpoint_channels') is null then
        return 0;    -- no Pinpoint apps yet: nothing can be pushed
    end if;
    select * into m from carillon.channel_messages where channel_arn = p_channel_arn and message_id = p_message_id;
    if not found or m.push_notification is null or jsonb_typeof(m.push_notification) <> 'object'
       or m.status <> 'SENT' then
        return 0;
    end if;
    v_voip := m.push_notification->>'Type' = 'VOIP';
    insert into carillon.outbox (kind, dedupe_key, payload)
    select 'push', m.message_id || ':' || e.endpoint_id,
           jsonb_strip_nulls(jsonb_build_object(
               'channel_arn', m.channel_arn, 'message_id', m.message_id,
               'user_arn', e.user_arn, 'endpoint_id', e.endpoint_id,
               'app_id', a.id, 'channel_type', pc.type, 'channel_version', pc.version,
               'token', x.token, 'voip', v_voip and pc.type like 'APNS_VOIP%',
               'title', m.push_notification->>'Title', 'body', m.push_notification->>'Body'))
      from carillon.channel_memberships cm
      join carillon.app_instance_user_endpoints e on e.user_arn = cm.member_arn
      cross join lateral (select case when v_voip and e.type <> 'GCM'
                                      then e.endpoint_attributes->>'VoipDeviceToken'
                                      else e.endpoint_attributes->>'DeviceToken' end as token,
                                 case when v_voip and e.type = 'APNS' then 'APNS_VOIP'
                                      when v_voip and e.type = 'APNS_SANDBOX' then 'APNS_VOIP_SANDBOX'
                                      else e.type end as channel_type) x
      join carillon.pinpoint_apps a on a.arn = e.resource_arn
      join carillon.pinpoint_channels pc on pc.app_id = a.id and pc.type = x.channel_type and pc.enabled
     where cm.channel_arn = p_channel_arn
       and (m.sub_channel_id is null or cm.sub_channel_id = m.sub_channel_id)
       and (m.target is null or cm.member_arn = m.sender_arn or cm.member_arn = m.target->0->>'MemberArn')
       and carillon.push_allowed(cm.preferences, m.attributes)
       and e.type in ('APNS', 'APNS_SANDBOX', 'GCM')
       and e.allow_messages = 'ALL' and e.status = 'ACTIVE'
       and coalesce(x.token, '') <> ''
    on conflict (kind, dedupe_key) do nothing;
    get diagnostics v_n = row_count;
    if v_n > 0 then
        perform pg_notify('carillon_outbox', '');
    end if;
    return v_n;
end $$;

-- A token the push service called dead (APNs 410 / 400 BadDeviceToken, FCM 404 UNREGISTERED):
-- every AppInstanceUserEndpoint still registered with it for that app and type becomes INACTIVE /
-- INVALID_DEVICE_TOKEN, and the Pinpoint endpoints of that app with that address INACTIVE. A device
-- that registered a new token meanwhile is untouched (the token must still match).
create or replace function carillon.push_invalidate_token(p_app_id text, p_token text)
returns int language plpgsql as $$
declare
    v_n int;
    v_arn text := (select arn from carillon.pinpoint_apps where id = p_app_id);
begin
    update carillon.app_instance_user_endpoints e
       set status = 'INACTIVE', status_reason = 'INVALID_DEVICE_TOKEN', updated_at = now()
     where e.resource_arn = v_arn and e.status = 'ACTIVE'
       and (e.endpoint_attributes->>'DeviceToken' = p_token or e.endpoint_attributes->>'VoipDeviceToken' = p_token);
    get diagnostics v_n = row_count;
    update carillon.pinpoint_endpoints p
       set status = 'INACTIVE', updated_at = now()
     where p.app_id = p_app_id and p.address = p_token and p.status <> 'INACTIVE';
    return v_n;
end $$;
