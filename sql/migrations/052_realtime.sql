-- The messaging sessions open on every node, so that the per-user session quota
-- (CARILLON_MAX_SESSIONS_PER_USER, Chime: 10) holds across the deployment, not per process.
-- Each process registers under a random node id and refreshes ws_nodes.seen_at every few
-- seconds; the sessions of a node not seen for a while (killed, partitioned) are not counted, and
-- are deleted with it later (see carillon.ws_heartbeat).
create table carillon.ws_nodes (
    node     uuid primary key,
    seen_at  timestamptz not null default now()
);

create table carillon.ws_sessions (
    node       uuid not null references carillon.ws_nodes(node) on delete cascade,
    id         bigint not null,
    user_arn   text not null,
    created_at timestamptz not null default now(),
    primary key (node, id)
);
create index ws_sessions_user_idx on carillon.ws_sessions (user_arn);
