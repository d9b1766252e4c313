-- A per-user generation, random and fixed at creation: user credentials minted by
-- POST /carillon/credentials carry it, and carillon.check_token refuses them once the user is gone,
-- even when the same ARN (same AppInstance, same AppInstanceUserId) is created again. It need not be
-- secret (the token is sealed), only different from one creation to the next.
alter table carillon.app_instance_users
    add column generation bigint not null
        default ('x' || substr(md5(random()::text || clock_timestamp()::text), 1, 16))::bit(64)::bigint;
