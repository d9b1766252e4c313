-- The outbox's functions (the table: migrations/072_outbox.sql; the worker: src/outbox/outbox.c).

-- Enqueue one intent in the caller's transaction; a duplicate (kind, dedupe_key) is ignored. The
-- notification wakes every node's outbox worker when the transaction commits (PostgreSQL sends
-- identical notifications of one transaction once).
create or replace function carillon.outbox_enqueue(p_kind text, p_dedupe_key text, p_payload jsonb) returns void
language plpgsql as $$
begin
    insert into carillon.outbox (kind, dedupe_key, payload) values (p_kind, p_dedupe_key, p_payload)
    on conflict (kind, dedupe_key) do nothing;
    perform pg_notify('carillon_outbox', '');
end $$;

-- Claim up to p_limits[i] ready rows of kind p_kinds[i] for node p_node, for p_lease_seconds
-- (SKIP LOCKED: rows another node is claiming right now are not waited for, and never claimed
-- twice). Ready rows created more than p_max_age_seconds ago are deleted instead, and returned with
-- expired = true so that the caller logs them.
create or replace function carillon.outbox_claim(p_node text, p_kinds text[], p_limits int[],
                                                 p_lease_seconds int, p_max_age_seconds int)
returns table (id bigint, kind text, dedupe_key text, payload jsonb, attempts int, created_ms bigint, expired boolean)
language sql as $$
    with picked as (
        select o.id, o.created_at < now() - make_interval(secs => p_max_age_seconds) as expired
          from unnest(p_kinds, p_limits) as k(kind, lim)
          cross join lateral (
              select r.id, r.created_at from carillon.outbox r
               where r.kind = k.kind and r.not_before <= now()
               order by r.not_before, r.id
               limit k.lim
               for update skip locked) o
    ), dropped as (
        delete from carillon.outbox r using picked p
         where r.id = p.id and p.expired
        returning r.id, r.kind, r.dedupe_key, null::jsonb as payload, r.attempts,
                  (extract(epoch from r.created_at) * 1000)::bigint, true
    ), claimed as (
        update carillon.outbox r
           set claimed_by = p_node, claimed_until = now() + make_interval(secs => p_lease_seconds),
               not_before = now() + make_interval(secs => p_lease_seconds)
          from picked p
         where r.id = p.id and not p.expired
        returning r.id, r.kind, r.dedupe_key, r.payload, r.attempts,
                  (extract(epoch from r.created_at) * 1000)::bigint, false
    )
    select * from claimed union all select * from dropped
$$;

-- Record outcomes, many at once: p_results[i] is 'done' or 'drop' (the row is deleted) or 'retry'
-- (attempts + 1, ready again after p_delays_ms[i], unclaimed; deleted instead once attempts reaches
-- p_max_attempts). A retry applies only while p_node still holds the claim: after a lease ended and
-- another node claimed the row, that node's outcome counts. Returns what was done to each row:
-- 'done', 'dropped', 'exhausted' (a retry, but out of attempts: deleted) or 'retry'; rows no longer
-- ours or already deleted are not listed.
create or replace function carillon.outbox_complete(p_node text, p_ids bigint[], p_results text[],
                                                    p_delays_ms bigint[], p_max_attempts int)
returns table (id bigint, outcome text)
language plpgsql as $$
begin
    -- Set-based: one batch is a few statements whatever its size.
    return query
    with r as (
        select * from unnest(p_ids, p_results, p_delays_ms) as r(rid, res, delay_ms)
    ), del as (
        delete from carillon.outbox o using r
         where o.id = r.rid and r.res in ('done', 'drop')
        returning o.id, case when r.res = 'done' then 'done' else 'dropped' end
    ), upd as (
        update carillon.outbox o
           set attempts = o.attempts + 1, claimed_by = null, claimed_until = null,
               not_before = now() + make_interval(secs => greatest(r.delay_ms, 0) / 1000.0)
          from r
         where o.id = r.rid and r.res = 'retry' and o.claimed_by = p_node
        returning o.id, case when o.attempts >= p_max_attempts then 'exhausted' else 'retry' end
    )
    select * from del union all select * from upd;
    -- Out of attempts: deleted (this transaction still holds their rows).
    delete from carillon.outbox o
     where o.id = any(p_ids) and o.claimed_by is null and o.attempts >= p_max_attempts;
end $$;
