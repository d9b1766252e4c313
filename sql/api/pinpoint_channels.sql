-- Pinpoint push channels of an app: Update/Get/Delete of the APNs, APNs sandbox, APNs VoIP, APNs
-- VoIP sandbox and GCM (FCM v1) channels, and GetChannels (docs/push.md).
--
-- The secrets never come here in the clear: the gateway (src/api/pinpoint/channels.c) validates them,
-- seals them (carillon_seal, purpose "pinpoint-channel") and replaces them in the input with
--   SealedSecret  the sealed JSON of the secret fields ({TokenKey}, {Certificate, PrivateKey}, or
--                 {ServiceJson}); absent when the request carries no credentials
--   SecretInfo    what may be said about them: HasTokenKey, HasCertificate, HasCredential, and
--                 ProjectId (GCM) or BundleId (read from an APNs certificate's UID)
-- An update with credentials replaces every stored credential of the channel; one without keeps
-- them (e.g. to disable a channel), but a channel's first update must carry them. Responses carry
-- metadata only: the secret column is never read here.

create or replace function carillon.pinpoint_channel_json(c carillon.pinpoint_channels) returns jsonb
language sql immutable as $$
    select jsonb_strip_nulls(jsonb_build_object(
        'ApplicationId', c.app_id, 'Id', lower(c.type), 'Platform', c.type, 'Enabled', c.enabled,
        'IsArchived', false, 'Version', c.version,
        'CreationDate', carillon.pinpoint_date(c.created_at),
        'LastModifiedDate', carillon.pinpoint_date(c.updated_at),
        'DefaultAuthenticationMethod', c.settings->>'DefaultAuthenticationMethod',
        'HasCredential', coalesce((c.settings->>'HasCredential')::boolean, false),
        'HasTokenKey', case when c.type <> 'GCM' then coalesce((c.settings->>'HasTokenKey')::boolean, false) end,
        'HasFcmServiceCredentials', case when c.type = 'GCM' then c.settings ? 'ProjectId' end))
$$;

-- The authentication method a channel uses: the one asked for, which its credentials must allow,
-- else the one it had (if still allowed), else what its credentials allow (APNs: TOKEN over
-- CERTIFICATE). GCM knows only TOKEN (FCM v1 with a service account).
create or replace function carillon.pinpoint_auth_method(p_type text, p_asked text, p_old text, p_settings jsonb)
returns text language plpgsql immutable as $$
declare
    v_token boolean := coalesce((p_settings->>'HasTokenKey')::boolean, false);
    v_cert boolean := coalesce((p_settings->>'HasCertificate')::boolean, false);
begin
    if p_type = 'GCM' then
        if p_asked is not null and p_asked <> 'TOKEN' then
            perform carillon.fail('CH400', 'DefaultAuthenticationMethod must be TOKEN: Carillon supports FCM v1 '
                                           'with a service-account ServiceJson only');
        end if;
        return 'TOKEN';
    end if;
    if p_asked is not null then
        if p_asked not in ('TOKEN', 'CERTIFICATE') then
            perform carillon.fail('CH400', 'DefaultAuthenticationMethod must be TOKEN or CERTIFICATE');
        end if;
        if (p_asked = 'TOKEN' and not v_token) or (p_asked = 'CERTIFICATE' and not v_cert) then
            perform carillon.fail('CH400', format('DefaultAuthenticationMethod %s needs its credentials: %s', p_asked,
                case p_asked when 'TOKEN' then 'TokenKey, TokenKeyId, TeamId and BundleId'
                             else 'Certificate and PrivateKey' end));
        end if;
        return p_asked;
    end if;
    if (p_old = 'TOKEN' and v_token) or (p_old = 'CERTIFICATE' and v_cert) then
        return p_old;
    end if;
    return case when v_token then 'TOKEN' else 'CERTIFICATE' end;
end $$;

-- Update<Type>Channel: create or update the channel p_type from input->p_req, answering {p_resp: it}.
create or replace function carillon.pinpoint_update_channel(ctx jsonb, input jsonb, p_type text, p_req text,
                                                            p_resp text)
returns jsonb language plpgsql as $$
declare
    v_req jsonb := input->p_req;
    v_app carillon.pinpoint_apps := carillon.pinpoint_app_lock(input->>'ApplicationId');
    v_old carillon.pinpoint_channels;
    v_secret text := input->>'SealedSecret';
    v_settings jsonb;
    v_now timestamptz := carillon.req_time(ctx);
    v_row carillon.pinpoint_channels;
begin
    select * into v_old from carillon.pinpoint_channels where app_id = v_app.id and type = p_type for update;
    if v_secret is null then
        if v_old.app_id is null then
            perform carillon.fail('CH400', format('The %s channel needs credentials: %s', p_type,
                case when p_type = 'GCM' then 'ServiceJson (a service-account JSON for FCM v1)'
                     else 'TokenKey with TokenKeyId, TeamId and BundleId, or Certificate and PrivateKey' end));
        end if;
        v_secret := v_old.secret;
        v_settings := v_old.settings;
    else
        -- New credentials replace the old, and with them what was said about the old.
        v_settings := coalesce(input->'SecretInfo', '{}');
    end if;
    -- The non-secret settings given (an APNs certificate's own UID is the fallback BundleId).
    v_settings := v_settings || jsonb_strip_nulls(jsonb_build_object(
        'BundleId', v_req->>'BundleId', 'TeamId', v_req->>'TeamId', 'TokenKeyId', v_req->>'TokenKeyId'));
    v_settings := v_settings || jsonb_build_object('DefaultAuthenticationMethod',
        carillon.pinpoint_auth_method(p_type, v_req->>'DefaultAuthenticationMethod',
                                      v_old.settings->>'DefaultAuthenticationMethod', v_settings));
    insert into carillon.pinpoint_channels as c
           (app_id, type, enabled, settings, secret, version, created_at, updated_at)
    values (v_app.id, p_type, coalesce((v_req->>'Enabled')::boolean, true), v_settings, v_secret, 1, v_now, v_now)
    on conflict (app_id, type) do update
       set enabled = coalesce((v_req->>'Enabled')::boolean, c.enabled), settings = excluded.settings,
           secret = excluded.secret, version = c.version + 1, updated_at = excluded.updated_at
    returning * into v_row;
    return jsonb_build_object(p_resp, carillon.pinpoint_channel_json(v_row));
end $$;

create or replace function carillon.pinpoint_channel_row(p_app text, p_type text) returns carillon.pinpoint_channels
language plpgsql stable as $$
declare v carillon.pinpoint_channels;
begin
    perform carillon.pinpoint_app_row(p_app);
    select * into v from carillon.pinpoint_channels where app_id = p_app and type = p_type;
    if not found then
        perform carillon.fail('CH404', format('The %s channel of application %s is not configured', p_type, p_app));
    end if;
    return v;
end $$;

create or replace function carillon.pinpoint_get_channel(input jsonb, p_type text, p_resp text) returns jsonb
language sql stable as $$
    select jsonb_build_object(p_resp,
        carillon.pinpoint_channel_json(carillon.pinpoint_channel_row(input->>'ApplicationId', p_type)))
$$;

create or replace function carillon.pinpoint_delete_channel(input jsonb, p_type text, p_resp text) returns jsonb
language plpgsql as $$
declare v carillon.pinpoint_channels;
begin
    perform carillon.pinpoint_app_row(input->>'ApplicationId');
    delete from carillon.pinpoint_channels where app_id = input->>'ApplicationId' and type = p_type returning * into v;
    if not found then
        perform carillon.fail('CH404', format('The %s channel of application %s is not configured', p_type,
                                              input->>'ApplicationId'));
    end if;
    return jsonb_build_object(p_resp, carillon.pinpoint_channel_json(v));
end $$;

-- GetChannels: every configured channel of the app, keyed by its type.
create or replace function carillon_api.pinpoint_get_channels(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$
    select jsonb_build_object('ChannelsResponse', jsonb_build_object('Channels',
        coalesce((select jsonb_object_agg(c.type, carillon.pinpoint_channel_json(c))
                    from carillon.pinpoint_channels c
                   where c.app_id = (carillon.pinpoint_app_row(input->>'ApplicationId')).id), '{}')))
$$;

-- One function per operation (the operation table names them); the channel type and the payload
-- members are the operation's.
create or replace function carillon_api.pinpoint_update_apns_channel(ctx jsonb, input jsonb) returns jsonb
language sql as $$ select carillon.pinpoint_update_channel(ctx, input, 'APNS', 'APNSChannelRequest', 'APNSChannelResponse') $$;
create or replace function carillon_api.pinpoint_get_apns_channel(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$ select carillon.pinpoint_get_channel(input, 'APNS', 'APNSChannelResponse') $$;
create or replace function carillon_api.pinpoint_delete_apns_channel(ctx jsonb, input jsonb) returns jsonb
language sql as $$ select carillon.pinpoint_delete_channel(input, 'APNS', 'APNSChannelResponse') $$;

create or replace function carillon_api.pinpoint_update_apns_sandbox_channel(ctx jsonb, input jsonb) returns jsonb
language sql as $$ select carillon.pinpoint_update_channel(ctx, input, 'APNS_SANDBOX', 'APNSSandboxChannelRequest', 'APNSSandboxChannelResponse') $$;
create or replace function carillon_api.pinpoint_get_apns_sandbox_channel(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$ select carillon.pinpoint_get_channel(input, 'APNS_SANDBOX', 'APNSSandboxChannelResponse') $$;
create or replace function carillon_api.pinpoint_delete_apns_sandbox_channel(ctx jsonb, input jsonb) returns jsonb
language sql as $$ select carillon.pinpoint_delete_channel(input, 'APNS_SANDBOX', 'APNSSandboxChannelResponse') $$;

create or replace function carillon_api.pinpoint_update_apns_voip_channel(ctx jsonb, input jsonb) returns jsonb
language sql as $$ select carillon.pinpoint_update_channel(ctx, input, 'APNS_VOIP', 'APNSVoipChannelRequest', 'APNSVoipChannelResponse') $$;
create or replace function carillon_api.pinpoint_get_apns_voip_channel(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$ select carillon.pinpoint_get_channel(input, 'APNS_VOIP', 'APNSVoipChannelResponse') $$;
create or replace function carillon_api.pinpoint_delete_apns_voip_channel(ctx jsonb, input jsonb) returns jsonb
language sql as $$ select carillon.pinpoint_delete_channel(input, 'APNS_VOIP', 'APNSVoipChannelResponse') $$;

create or replace function carillon_api.pinpoint_update_apns_voip_sandbox_channel(ctx jsonb, input jsonb) returns jsonb
language sql as $$ select carillon.pinpoint_update_channel(ctx, input, 'APNS_VOIP_SANDBOX', 'APNSVoipSandboxChannelRequest', 'APNSVoipSandboxChannelResponse') $$;
create or replace function carillon_api.pinpoint_get_apns_voip_sandbox_channel(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$ select carillon.pinpoint_get_channel(input, 'APNS_VOIP_SANDBOX', 'APNSVoipSandboxChannelResponse') $$;
create or replace function carillon_api.pinpoint_delete_apns_voip_sandbox_channel(ctx jsonb, input jsonb) returns jsonb
language sql as $$ select carillon.pinpoint_delete_channel(input, 'APNS_VOIP_SANDBOX', 'APNSVoipSandboxChannelResponse') $$;

create or replace function carillon_api.pinpoint_update_gcm_channel(ctx jsonb, input jsonb) returns jsonb
language sql as $$ select carillon.pinpoint_update_channel(ctx, input, 'GCM', 'GCMChannelRequest', 'GCMChannelResponse') $$;
create or replace function carillon_api.pinpoint_get_gcm_channel(ctx jsonb, input jsonb) returns jsonb
language sql stable as $$ select carillon.pinpoint_get_channel(input, 'GCM', 'GCMChannelResponse') $$;
create or replace function carillon_api.pinpoint_delete_gcm_channel(ctx jsonb, input jsonb) returns jsonb
language sql as $$ select carillon.pinpoint_delete_channel(input, 'GCM', 'GCMChannelResponse') $$;
