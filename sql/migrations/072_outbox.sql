-- The transactional outbox (include/carillon/outbox.h, src/outbox/outbox.c): work for another
-- service (a push, a channel-flow processor call) written in the same transaction as the write that
-- causes it. A row is ready when not_before has passed; claiming it moves not_before to the end of
-- the claim's lease (claimed_until), so a row whose node died becomes ready again by itself when
-- the lease ends, and "ready" stays one indexed range condition. (kind, dedupe_key) is unique: an
-- intent enqueued twice is one row.
create table carillon.outbox (
    id            bigserial primary key,
    kind          text not null,
    dedupe_key    text not null,
    payload       jsonb not null,
    created_at    timestamptz not null default now(),
    not_before    timestamptz not null default now(),
    attempts      int not null default 0,
    claimed_by    text,
    claimed_until timestamptz,
    unique (kind, dedupe_key)
);
create index outbox_ready_idx on carillon.outbox (kind, not_before, id);
