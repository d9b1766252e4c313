-- Helpers shared by every operation function, and the single entry point carillon_api.invoke().
-- Errors: raise with SQLSTATE CH400/CH403/CH404/CH409/CH410; the gateway maps them to
-- BadRequest/Forbidden/NotFound/Conflict/ResourceLimitExceeded exceptions.

create or replace function carillon.fail(code text, msg text) returns void
language plpgsql as $$
begin
    raise exception using errcode = code, message = msg;
end $$;

-- p_found, or NotFound (p_what) when it is null. p_found is a row or a value looked up by key with a
-- scalar subquery, (select t from carillon.<table> t where <key> = ...), which is null when there is
-- no such row.
create or replace function carillon.must_exist(p_found anyelement, p_what text) returns anyelement
language plpgsql stable as $$
begin
    if p_found is null then
        perform carillon.fail('CH404', p_what);
    end if;
    return p_found;
end $$;

-- REST timestamps are epoch seconds with milliseconds.
create or replace function carillon.ts(t timestamptz) returns numeric
language sql immutable as $$ select round(extract(epoch from t)::numeric, 3) $$;

create or replace function carillon.req_time(ctx jsonb) returns timestamptz
language sql immutable as $$ select to_timestamp((ctx->>'now_ms')::bigint / 1000.0) $$;

create or replace function carillon.arn_prefix(ctx jsonb) returns text
language sql immutable as $$ select 'arn:aws:chime:' || (ctx->>'region') || ':' || (ctx->>'account') || ':' $$;

create or replace function carillon.page_size(input jsonb) returns int
language sql immutable as $$ select coalesce((input->>'MaxResults')::int, 50) $$;

-- rows: an ordered array of {"k": cursor key, "v": item}, at most lim + 1 long.
-- Returns extra || {key: the first lim items} || {"__next": the lim-th key} when there are more;
-- the gateway seals "__next" into an opaque NextToken bound to the listing.
create or replace function carillon.page(rows jsonb, lim int, key text, extra jsonb default '{}')
returns jsonb language plpgsql immutable as $$
declare
    items jsonb := '[]';
    n int := coalesce(jsonb_array_length(rows), 0);
begin
    for i in 0 .. least(n, lim) - 1 loop
        items := items || jsonb_build_array(rows->i->'v');
    end loop;
    extra := extra || jsonb_build_object(key, items);
    if n > lim then
        extra := extra || jsonb_build_object('__next', rows->(lim - 1)->'k');
    end if;
    return extra;
end $$;

-- Every keyset listing goes through here: the rows after the cursor ctx.after (the gateway sets it
-- from the NextToken), in cursor order, at most MaxResults (default 50), made into a page by
-- carillon.page.
--   p_rows: the text of a query with one row per listed thing: a text column k, the cursor key
--           (unique within the listing), and whatever p_item reads. It names the listing's
--           parameters as $3, the jsonb object p_args ($3->>'channel'). No ORDER BY, no LIMIT.
--   p_item: the item's expression over a row r of p_rows.
-- EXECUTE plans the query with the cursor and the arguments as constants: the cursor bound and the
-- scope become index conditions, and the limit stops an index scan in key order (PostgreSQL pulls
-- a simple p_rows up into the paging query). p_item is computed for the rows of the page only.
-- p_rows and p_item are SQL text written in these files, never built from input (input goes in
-- p_args).
create or replace function carillon.keyset_page(ctx jsonb, input jsonb, p_list text, p_rows text, p_item text,
                                                p_args jsonb default '{}', p_extra jsonb default '{}')
returns jsonb language plpgsql stable as $$
declare
    v_lim int := carillon.page_size(input);
    v_rows jsonb;
begin
    execute format('select jsonb_agg(jsonb_build_object(''k'', r.k, ''v'', %s) order by r.k)
                      from (select * from (%s) q where $1::text is null or q.k > $1 order by q.k limit $2) r',
                   p_item, p_rows)
       into v_rows
      using ctx->>'after', v_lim + 1, p_args;
    return carillon.page(v_rows, v_lim, p_list, p_extra);
end $$;

-- The admin, moderator and ban listings: the identities in column p_arn_col of p_table (a table of
-- the carillon schema) whose p_scope_col is p_scope, by ARN, each as {p_item: {Arn, Name}} under
-- p_list.
drop function if exists carillon.identity_page(text[], int, text, text, jsonb);
create or replace function carillon.identity_page(ctx jsonb, input jsonb, p_table text, p_scope_col text,
                                                  p_scope text, p_arn_col text, p_item text, p_list text,
                                                  p_extra jsonb default '{}')
returns jsonb language sql stable as $$
    select carillon.keyset_page(ctx, input, p_list,
        format('select %I as k from carillon.%I where %I = $3->>''scope''', p_arn_col, p_table, p_scope_col),
        format('jsonb_build_object(%L, carillon.identity_of(r.k))', p_item),
        jsonb_build_object('scope', p_scope), p_extra)
$$;

create or replace function carillon.app_instance_id(p_arn text) returns text
language plpgsql stable as $$
begin
    return carillon.must_exist((select id from carillon.app_instances where arn = p_arn),
                               format('AppInstance %s not found', p_arn));
end $$;

-- The id of AppInstance p_arn with its row locked until commit, or NotFound. p_exclusive: FOR NO KEY
-- UPDATE, which also serialises what is counted per AppInstance (quotas); else FOR KEY SHARE, which
-- only its deletion waits for.
create or replace function carillon.app_instance_lock(p_arn text, p_exclusive boolean) returns text
language plpgsql as $$
declare v_id text;
begin
    if p_exclusive then
        select id into v_id from carillon.app_instances where arn = p_arn for no key update;
    else
        select id into v_id from carillon.app_instances where arn = p_arn for key share;
    end if;
    if v_id is null then
        perform carillon.fail('CH404', format('AppInstance %s not found', p_arn));
    end if;
    return v_id;
end $$;

create or replace function carillon.put_tags(p_arn text, p_tags jsonb) returns void
language plpgsql as $$
begin
    if p_tags is null then
        return;
    end if;
    insert into carillon.tags (resource_arn, key, value)
    select p_arn, t->>'Key', t->>'Value' from jsonb_array_elements(p_tags) t
    on conflict (resource_arn, key) do update set value = excluded.value;
    if (select count(*) from carillon.tags where resource_arn = p_arn) > 50 then
        perform carillon.fail('CH410', 'A resource can have at most 50 tags');
    end if;
end $$;

-- Tags of a resource and of everything below it (an AppInstance's users, bots, channels...).
create or replace function carillon.drop_tags(p_arn text) returns void
language sql as $$
    delete from carillon.tags where resource_arn = p_arn or left(resource_arn, length(p_arn) + 1) = p_arn || '/'
$$;

-- Events. An operation function returns its output document and may add "__events": an array of
-- {"channel_arn", "app_instance_id", "event_type", "message_type", "payload", "audience", "arns",
--  "joins", "leaves", "closes"} built by carillon.event. Besides who hears it (audience 'members':
-- the channel's sessions plus the users in arns; 'only': just the users in arns), an event states
-- its routing facts (docs/events.md): the users whose sessions join the channel before it is
-- delivered (joins), leave it after (leaves), or whether every session leaves it (closes). Readers
-- apply those facts; none of them looks at event types or payloads.
-- carillon.flush_events() stores them at the end of the transaction, under the event lock, so that
-- positions follow commit order, and wakes every gateway with one NOTIFY.
drop function if exists carillon.event(text, text, text, text, jsonb, text, text[]);
create or replace function carillon.event(p_channel_arn text, p_app_instance_id text, p_type text,
                                          p_message_type text, p_payload jsonb,
                                          p_audience text default 'members', p_arns text[] default '{}',
                                          p_joins text[] default '{}', p_leaves text[] default '{}',
                                          p_closes boolean default false)
returns jsonb language sql immutable as $$
    select jsonb_build_object('channel_arn', p_channel_arn, 'app_instance_id', p_app_instance_id,
                              'event_type', p_type, 'message_type', p_message_type, 'payload', p_payload,
                              'audience', p_audience, 'arns', to_jsonb(p_arns),
                              'joins', to_jsonb(p_joins), 'leaves', to_jsonb(p_leaves), 'closes', p_closes)
$$;

-- Whether anyone would hear a notification of the log's new end: a node with websocket sessions
-- (ws_nodes.listening, raised before their snapshots: carillon.ws_node_listens, migration 100) or
-- the streaming exporter (some AppInstance streams). A write that nobody would hear sends no
-- NOTIFY: a node without sessions has nobody to hand an event to, and each NOTIFY costs PostgreSQL
-- a queue entry at commit under a lock of its own and wakes every listening backend and its client
-- (the persisted send rate of a node without sessions ×1.29 without them: BENCHMARKS.md, issue 11
-- session 22). Asked under the event lock, in a statement after the one that took it (its snapshot
-- then sees every flag raised before the lock was granted: docs/events.md, "Who is woken").
-- (PL/pgSQL, not SQL: a SQL function with subqueries is not inlined, and its statement was parsed
-- and planned again at every call -- once a batch; PL/pgSQL keeps its plans for the connection.
-- Being STABLE, it reads with its caller's snapshot.)
create or replace function carillon.events_heard() returns boolean
language plpgsql stable as $$
begin
    return exists (select 1 from carillon.ws_nodes where listening)
        or exists (select 1 from carillon.streaming_cursors);
end $$;

-- The notification of the log's new end p_position, when anyone would hear it (events_heard).
create or replace function carillon.notify_events(p_position bigint) returns void
language plpgsql as $$
begin
    if carillon.events_heard() then
        perform pg_notify('carillon_events', p_position::text);
    end if;
end $$;

-- An event without routing facts may leave out "joins", "leaves" and "closes". An event marked
-- "stream_only" (carillon.stream_event) goes to carillon.stream_events instead, and only when its
-- AppInstance streams (docs/streaming.md); "stream_type" renames (or, '-', hides) an event for
-- streaming; "stream_before" / "stream_after" hold stream-only events that go just before / after
-- it (a sub-channel appearing with its first member, going with its last). Positions are taken for
-- the whole list at once and given out in its order.
create or replace function carillon.flush_events(p_events jsonb) returns void
language plpgsql as $$
declare v_last bigint;
begin
    if p_events is null or jsonb_array_length(p_events) = 0 then
        return;
    end if;
    -- Held until commit: transactions that write events commit one after the other, and the
    -- positions they take are therefore in commit order.
    perform pg_advisory_xact_lock(7263, 1);
    with flat as (select x.e, row_number() over (order by t.n, x.k) as n
                    from jsonb_array_elements(p_events) with ordinality as t(e, n)
                    cross join lateral (
                        select b.e, b.k - 1000000 as k
                          from jsonb_array_elements(coalesce(t.e->'stream_before', '[]')) with ordinality as b(e, k)
                        union all
                        select t.e - 'stream_before' - 'stream_after', 0
                        union all
                        select a.e, a.k
                          from jsonb_array_elements(coalesce(t.e->'stream_after', '[]')) with ordinality as a(e, k)) x),
         pos as (select p, row_number() over (order by p) as n
                   from (select nextval('carillon.event_position') as p
                           from generate_series(1, (select count(*) from flat))) s),
         ev as (select flat.e, pos.p from flat join pos using (n)),
         streamed as (
             insert into carillon.stream_events (position, app_instance_id, channel_arn, event_type, payload)
             select ev.p, ev.e->>'app_instance_id', ev.e->>'channel_arn', ev.e->>'event_type', ev.e->'payload'
               from ev
              where coalesce((ev.e->>'stream_only')::boolean, false)
                and exists (select 1 from carillon.streaming_cursors sc
                             where sc.app_instance_id = ev.e->>'app_instance_id'))
    insert into carillon.events (position, app_instance_id, channel_arn, event_type, message_type, payload_text,
                                 audience, arns, joins, leaves, closes, stream_type)
    select ev.p, e->>'app_instance_id', e->>'channel_arn', e->>'event_type',
           e->>'message_type', (e->'payload')::text, e->>'audience',
           array(select jsonb_array_elements_text(e->'arns')),
           array(select jsonb_array_elements_text(coalesce(e->'joins', '[]'))),
           array(select jsonb_array_elements_text(coalesce(e->'leaves', '[]'))),
           coalesce((e->>'closes')::boolean, false),
           e->>'stream_type'
      from ev
     where not coalesce((e->>'stream_only')::boolean, false)
     order by ev.p;
    v_last := currval('carillon.event_position');
    perform carillon.notify_events(v_last);
end $$;

-- An event that is streamed (docs/streaming.md) but never pushed to websocket sessions.
create or replace function carillon.stream_event(p_channel_arn text, p_app_instance_id text, p_type text,
                                                 p_payload jsonb) returns jsonb
language sql immutable as $$
    select jsonb_build_object('channel_arn', p_channel_arn, 'app_instance_id', p_app_instance_id,
                              'event_type', p_type, 'payload', p_payload, 'stream_only', true)
$$;

-- A user credential is bound to its user's generation (ctx.user_gen, from the sealed token): once
-- the user is deleted, and perhaps created again under the same ARN, its old credentials are refused
-- with CH401 (UnauthorizedClientException). Returns ctx, so a read can wrap its argument with it.
create or replace function carillon.check_token(ctx jsonb) returns jsonb
language plpgsql stable as $$
begin
    if ctx->>'principal' = 'user' and not exists (
           select 1 from carillon.app_instance_users
            where arn = ctx->>'user_arn' and generation = (ctx->>'user_gen')::bigint) then
        raise exception using errcode = 'CH401',
            message = 'The security token included in the request is invalid: its AppInstanceUser no longer exists';
    end if;
    return ctx;
end $$;

-- One operation: ClientRequestToken idempotency, then the operation's function. Returns the output
-- with "__events" (never stored with the idempotency record, so a retry emits nothing twice).
create or replace function carillon.run_op(fn text, ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare
    v_token text := ctx->>'idempotency_token';
    v_principal text := coalesce(ctx->>'user_arn', ctx->>'principal');
    v_hash text;
    v_prev carillon.idempotency%rowtype;
    v_result jsonb;
begin
    if fn in ('invoke', 'invoke_batch') then
        perform carillon.fail('CH400', format('The operation (%s) is not implemented by this server', fn));
    end if;
    perform carillon.check_token(ctx);
    -- Persistent sends are idempotent by their own key (see send_channel_message); a channel flow
    -- callback's token is its CallbackId, answered once: a second callback is a Conflict
    -- (channel_flow_callback), not a replay.
    if (fn = 'send_channel_message' and input->>'Persistence' = 'PERSISTENT') or fn = 'channel_flow_callback' then
        v_token := null;
    end if;
    if v_token is not null then
        v_hash := md5((input - (ctx->>'idempotency_member'))::text);
        insert into carillon.idempotency (operation, principal, token, input_hash)
        values (fn, v_principal, v_token, v_hash)
        on conflict do nothing;
        if not found then
            select * into v_prev from carillon.idempotency
             where operation = fn and principal = v_principal and token = v_token;
            if v_prev.input_hash <> v_hash then
                perform carillon.fail('CH409', 'The ClientRequestToken was already used with different parameters');
            end if;
            return v_prev.result;
        end if;
    end if;
    -- The hot path is a static call (a cached plan); the others go through EXECUTE. An operation
    -- without a function raises undefined_function (42883): "not implemented".
    if fn = 'send_channel_message' then
        v_result := carillon_api.send_channel_message(ctx, input);
    else
        execute format('select carillon_api.%I($1, $2)', fn) into v_result using ctx, input;
    end if;
    if v_token is not null then
        update carillon.idempotency set result = v_result - '__events'
         where operation = fn and principal = v_principal and token = v_token;
    end if;
    return v_result;
end $$;

-- The entry point for one request: one operation, one transaction.
create or replace function carillon_api.invoke(fn text, ctx jsonb, input jsonb) returns jsonb
language plpgsql as $$
declare v_result jsonb := carillon.run_op(fn, ctx, input);
begin
    perform carillon.flush_events(v_result->'__events');
    return v_result - '__events';
end $$;

-- Group commit: many requests in one transaction, one event-lock acquisition and one NOTIFY.
-- p_items: [{"fn", "ctx", "input"}, ...]. Each item runs in its own subtransaction, so one item's
-- error rolls back only that item. Returns [{"ok": output} | {"error": {"state", "message"}}, ...]
-- in item order.
create or replace function carillon_api.invoke_batch(p_items jsonb) returns jsonb
language plpgsql as $$
declare
    v_sent text[];
begin
    -- A batch of plain persistent sends that all pass their checks: a few set-based statements
    -- (carillon.send_batch, which locks their channels itself); anything else, item by item.
    v_sent := carillon.send_batch(p_items);
    if v_sent is not null then
        return (select jsonb_agg(jsonb_build_object('ok', t::jsonb) order by n)
                  from unnest(v_sent) with ordinality as u(t, n));
    end if;
    -- Lock the batch's channels up front, in ARN order: two batches in flight that touch the same
    -- channels in different orders would otherwise deadlock (each holds its rows until commit).
    perform carillon.lock_batch_channels(p_items);
    return carillon.invoke_items(p_items);
end $$;

-- The batch item by item, its channels locked (lock_batch_channels): each item in its own
-- subtransaction, its events logged at the end in one flush_events.
create or replace function carillon.invoke_items(p_items jsonb) returns jsonb
language plpgsql as $$
declare
    v_item jsonb;
    v_result jsonb;
    v_out jsonb := '[]';
    v_events jsonb := '[]';
begin
    for v_item in select value from jsonb_array_elements(p_items) loop
        begin
            v_result := carillon.run_op(v_item->>'fn', v_item->'ctx', v_item->'input');
            v_events := v_events || coalesce(v_result->'__events', '[]');
            v_out := v_out || jsonb_build_array(jsonb_build_object('ok', v_result - '__events'));
        exception when others then
            v_out := v_out || jsonb_build_array(jsonb_build_object('error',
                         jsonb_build_object('state', SQLSTATE, 'message', SQLERRM)));
        end;
    end loop;
    perform carillon.flush_events(v_events);
    return v_out;
end $$;

-- The same batch, one row per item in item order: ok = the output document as JSON text (what the
-- gateway sends as the response body), or state/message of the item's error. The gateway reads the
-- rows as they are instead of parsing one array and encoding each output again. PL/pgSQL, not SQL:
-- a SQL function's statement is planned again on every call (0.03 ms of planning and 0.1 ms of
-- call overhead a batch, measured), a PL/pgSQL one keeps its plan for the session.
-- Then the event the item logged, when its answer carries it (carillon.send_few's sends),
-- as the columns of a row of carillon.events_after (ev_position .. ev_created_at; all NULL for an
-- item without one): the writing node hands its own batch's events to its sessions from the answer
-- instead of reading them back from the log (src/realtime/listener.c, docs/events.md).
do $$
begin
    if not exists (select 1 from pg_proc
                    where oid = to_regprocedure('carillon_api.invoke_batch_rows(jsonb)')
                      and 'ev_position' = any (proargnames)) then
        drop function if exists carillon_api.invoke_batch_rows(jsonb);
    end if;
end $$;
create or replace function carillon_api.invoke_batch_rows(p_items jsonb)
returns table(ok text, state text, message text,
              ev_position bigint, ev_channel_arn text, ev_event_type text, ev_message_type text, ev_payload text,
              ev_audience text, ev_arns text, ev_joins text, ev_leaves text, ev_closes boolean, ev_created_at float8)
language plpgsql as $$
declare
    v_sent text[];
begin
    -- A batch of up to eight plain sends: carillon.send_few's rows (none when it declines the batch).
    if jsonb_array_length(p_items) between 1 and 8 then
        return query select * from carillon.send_few(p_items);
        if found then
            return;
        end if;
    end if;
    -- invoke_batch's steps, the set path's answers taken as the text it built.
    v_sent := carillon.send_batch(p_items);
    if v_sent is not null then
        return query
        select u.t, null::text, null::text, null::bigint, null::text, null::text, null::text, null::text,
               null::text, null::text, null::text, null::text, null::boolean, null::float8
          from unnest(v_sent) with ordinality as u(t, n)
         order by u.n;
        return;
    end if;
    perform carillon.lock_batch_channels(p_items);
    return query
    select (r.e->'ok')::text, r.e->'error'->>'state', r.e->'error'->>'message',
           null::bigint, null::text, null::text, null::text, null::text,
           null::text, null::text, null::text, null::text, null::boolean, null::float8
      from jsonb_array_elements(carillon.invoke_items(p_items)) with ordinality as r(e, n)
     order by r.n;
end $$;

-- Quotas (Chime's, adjustable by the operator): the gateway passes its settings (CARILLON_MAX_*) to
-- every pool connection as the custom settings carillon.<name> (src/db/pool.c); where they are not
-- set (psql, the migrations, tests calling a function directly), Chime's default applies.
create or replace function carillon.quota(p_name text, p_default int) returns int
language sql stable as $$
    select coalesce(nullif(current_setting('carillon.' || p_name, true), '')::int, p_default)
$$;

-- ResourceLimitExceeded when p_count (the number there would be with the one being added) is over
-- the quota. The caller serialises the adds it counts (a row or advisory lock held to commit).
create or replace function carillon.require_quota(p_count bigint, p_name text, p_default int, p_what text)
returns void language plpgsql stable as $$
declare v_max int := carillon.quota(p_name, p_default);
begin
    if p_count > v_max then
        perform carillon.fail('CH410', format('%s: the limit is %s', p_what, v_max));
    end if;
end $$;
