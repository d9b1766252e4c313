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
-- another node claimed the row, that node's outcome counts. Returns, per row, what was done:
-- 'done', 'dropped' (dropped or out of attempts), 'retry', or 'gone' (no longer ours or deleted).
create or replace function carillon.outbox_complete(p_node text, p_ids bigint[], p_results text[],
                                                    p_delays_ms bigint[], p_max_attempts int)
returns table (id bigint, outcome text)
language plpgsql as $$
declare
    v_id bigint;
    v_res text;
    v_delay bigint;
    v_attempts int;
begin
    for v_id, v_res, v_delay in select * from unnest(p_ids, p_results, p_delays_ms) loop
        id := v_id;
        if v_res in ('done', 'drop') then
            delete from carillon.outbox o where o.id = v_id;
            outcome := case when not found then 'gone' when v_res = 'done' then 'done' else 'dropped' end;
        else
            update carillon.outbox o
               set attempts = o.attempts + 1, claimed_by = null, claimed_until = null,
                   not_before = now() + make_interval(secs => greatest(v_delay, 0) / 1000.0)
             where o.id = v_id and o.claimed_by = p_node
            returning o.attempts into v_attempts;
            if not found then
                outcome := 'gone';
            elsif v_attempts >= p_max_attempts then
                delete from carillon.outbox o where o.id = v_id;
                outcome := 'dropped';
            else
                outcome := 'retry';
            end if;
        end if;
        return next;
    end loop;
end $$;
