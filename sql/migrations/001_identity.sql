-- Chime SDK Identity resources and the shared tables (tags, idempotency).
-- Made only if missing: a role that owns schemas an administrator made for it, without CREATE on
-- the database, may apply the migrations (CREATE SCHEMA IF NOT EXISTS would need that privilege).
do $$ begin
    if to_regnamespace('carillon') is null then create schema carillon; end if;
    if to_regnamespace('carillon_api') is null then create schema carillon_api; end if;
end $$;

create table carillon.app_instances (
    id            text primary key,
    arn           text not null unique,
    name          text not null,
    metadata      text,
    retention_days int,
    retention_set_at timestamptz,
    created_at    timestamptz not null,
    updated_at    timestamptz not null
);

create table carillon.app_instance_users (
    arn              text primary key,
    app_instance_id  text not null references carillon.app_instances(id) on delete cascade,
    user_id          text not null,
    name             text not null,
    metadata         text,
    expiration_days  int,
    expiration_criterion text,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    unique (app_instance_id, user_id)
);

create table carillon.app_instance_bots (
    arn              text primary key,
    app_instance_id  text not null references carillon.app_instances(id) on delete cascade,
    name             text,
    metadata         text,
    configuration    jsonb not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null
);
create index on carillon.app_instance_bots (app_instance_id);

create table carillon.app_instance_admins (
    app_instance_id  text not null references carillon.app_instances(id) on delete cascade,
    admin_arn        text not null,
    created_at       timestamptz not null,
    primary key (app_instance_id, admin_arn)
);
create index on carillon.app_instance_admins (admin_arn);

create table carillon.app_instance_user_endpoints (
    user_arn         text not null references carillon.app_instance_users(arn) on delete cascade,
    endpoint_id      text not null,
    name             text,
    type             text not null,
    resource_arn     text not null,
    endpoint_attributes jsonb not null,
    allow_messages   text not null,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    primary key (user_arn, endpoint_id)
);

-- Tags of any Chime resource, keyed by ARN (shared by both services).
create table carillon.tags (
    resource_arn text not null,
    key          text not null,
    value        text not null,
    primary key (resource_arn, key)
);

-- ClientRequestToken idempotency: (operation, principal, token) -> the input it came with and the result.
create table carillon.idempotency (
    operation  text not null,
    principal  text not null,
    token      text not null,
    input_hash text not null,
    result     jsonb,
    created_at timestamptz not null default now(),
    primary key (operation, principal, token)
);
