-- Admin access keys: operator credentials with the root key's rights, created and revoked with
-- `carillon keys`. The secret is sealed with the master key; nodes cache the active keys in memory.
create table carillon.access_keys (
    access_key_id  text primary key,
    secret_sealed  text not null,
    name           text not null default '',
    created_at     timestamptz not null default now(),
    revoked_at     timestamptz
);
