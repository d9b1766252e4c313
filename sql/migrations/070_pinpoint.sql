-- The Pinpoint-compatible subset (docs/push.md): apps, their push channels and their endpoint
-- registry. Channel secrets are sealed by the gateway (carillon_seal, purpose "pinpoint-channel")
-- before they reach the database; only the senders open them.

create table carillon.pinpoint_apps (
    id          text primary key,          -- 32 lowercase hex chars, like Pinpoint's
    arn         text not null unique,      -- arn:aws:mobiletargeting:REGION:ACCOUNT:apps/ID
    name        text not null,
    tags        jsonb not null default '{}',
    created_at  timestamptz not null
);

create table carillon.pinpoint_channels (
    app_id      text not null references carillon.pinpoint_apps(id) on delete cascade,
    type        text not null,             -- APNS | APNS_SANDBOX | APNS_VOIP | APNS_VOIP_SANDBOX | GCM
    enabled     boolean not null default true,
    settings    jsonb not null,            -- non-secret: {BundleId, TeamId, TokenKeyId, DefaultAuthenticationMethod,
                                           --  HasTokenKey, HasCredential, ProjectId (GCM, from the JSON) ...}
    secret      text,                      -- carillon_seal("pinpoint-channel", JSON of the secret fields):
                                           --  APNs {TokenKey} and/or {Certificate, PrivateKey};
                                           --  GCM {ServiceJson} (the whole service-account JSON)
    version     int not null default 1,
    created_at  timestamptz not null,
    updated_at  timestamptz not null,
    primary key (app_id, type)
);

create table carillon.pinpoint_endpoints (
    app_id      text not null references carillon.pinpoint_apps(id) on delete cascade,
    endpoint_id text not null,
    channel_type text,                     -- APNS | APNS_SANDBOX | APNS_VOIP | APNS_VOIP_SANDBOX | GCM | ...
    address     text,                      -- device token
    status      text not null default 'ACTIVE',   -- EndpointStatus: ACTIVE | INACTIVE
    opt_out     text not null default 'NONE',
    user_id     text,
    body        jsonb not null,            -- the rest of EndpointRequest as given (Attributes, Demographic, ...)
    created_at  timestamptz not null,
    updated_at  timestamptz not null,
    primary key (app_id, endpoint_id)
);
create index on carillon.pinpoint_endpoints (app_id, user_id);
