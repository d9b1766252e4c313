-- Queries of the websocket side (src/realtime/session.c).

-- CHANNEL_DETAILS payloads for a connecting session (prefetch-on=connect): at most 50 channels of
-- the user, chosen by unread first then latest message (sort 'unread', the default) or by latest
-- message ('last-message-timestamp'); for each, the 20 newest messages the user may see
-- (targeted messages of others skipped), whether there are more, 30 members (HIDDEN ones not
-- listed) and the user's read marker. Timestamps in the websocket (ISO-8601) form.
create or replace function carillon.prefetch(p_user text, p_sort text) returns jsonb
language sql stable as $$
    with mine as (
        select c as ch, c.arn, m.read_marker_at
          from carillon.channel_memberships m
          join carillon.channels c on c.arn = m.channel_arn
         where m.member_arn = p_user
         order by case when coalesce(p_sort, 'unread') = 'unread'
                       then (c.last_message_at is not null
                             and (m.read_marker_at is null or c.last_message_at > m.read_marker_at))
                  end desc nulls last,
                  c.last_message_at desc nulls last, c.arn
         limit 50
    )
    select coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
        'Channel', carillon.channel_summary(mine.ch, true),
        'ChannelMessages', coalesce((
            select jsonb_agg(v.doc order by v.created_at desc, v.seq desc)
              from (select msg.created_at, msg.seq, jsonb_strip_nulls(jsonb_build_object(
                           'MessageId', msg.message_id,
                           'Content', case when msg.redacted then '' else msg.content end,
                           'Metadata', case when msg.redacted then null else msg.metadata end,
                           'Type', msg.type,
                           'CreatedTimestamp', carillon.iso(msg.created_at),
                           'LastUpdatedTimestamp', carillon.iso(msg.updated_at),
                           'LastEditedTimestamp', carillon.iso(msg.edited_at),
                           'Sender', carillon.identity_of(msg.sender_arn),
                           'Redacted', msg.redacted,
                           'Status', jsonb_build_object('Value', msg.status),
                           'MessageAttributes', msg.attributes,
                           'ContentType', msg.content_type,
                           'Target', msg.target)) as doc
                      from carillon.channel_messages msg
                     where msg.channel_arn = mine.arn
                       and (msg.target is null or msg.sender_arn = p_user
                            or msg.target @> jsonb_build_array(jsonb_build_object('MemberArn', p_user)))
                     order by msg.created_at desc, msg.seq desc
                     limit 20) v), '[]'),
        'ChannelMessagesHasMore', (
            select count(*) > 20 from (select 1 from carillon.channel_messages msg
                                        where msg.channel_arn = mine.arn
                                          and (msg.target is null or msg.sender_arn = p_user
                                               or msg.target @> jsonb_build_array(jsonb_build_object('MemberArn', p_user)))
                                        limit 21) x),
        'ChannelMemberships', coalesce((
            select jsonb_agg(jsonb_build_object('Member', carillon.identity_of(cm.member_arn)) order by cm.created_at)
              from (select member_arn, created_at from carillon.channel_memberships
                     where channel_arn = mine.arn and type = 'DEFAULT'
                     order by created_at limit 30) cm), '[]'),
        'ReadMarkerTimestamp', carillon.iso(mine.read_marker_at)))), '[]')
      from mine
$$;

-- Reading the event log. Every reader (each node's listener, a resuming session's gap, the channel
-- list of a snapshot) reads rows through the two functions below, and routes them by the facts the
-- rows carry (audience, arns, joins, leaves, closes: migration 060, carillon.event): no reader
-- looks at event types or payloads to decide who hears what.

-- The last position of the log (0 when empty): where a listener starts, the position P of a
-- session's snapshot.
create or replace function carillon.log_position() returns bigint
language sql stable as $$
    select coalesce(max(position), 0) from carillon.events
$$;

-- The first membership move of p_user in each channel in (p_after, p_until] (p_until null: to the
-- end of the log): joined = its sessions joined the channel there, else they left it. A channel
-- whose first move is a join was not the user's at p_after; one whose first move is a leave was.
create or replace function carillon.user_moves(p_user text, p_after bigint, p_until bigint default null)
returns table (channel_arn text, joined boolean)
language sql stable as $$
    select distinct on (e.channel_arn) e.channel_arn, p_user = any (e.joins)
      from carillon.events e
     where e.position > p_after and (p_until is null or e.position <= p_until)
       and (p_user = any (e.joins) or p_user = any (e.leaves))
     order by e.channel_arn, e.position
$$;

-- The events after position p_after, in position order, at most p_limit, as the one row shape the
-- realtime side decodes (carillon_event_decode in src/realtime/event.c): position, channel,
-- types, the payload as text, the audience, the routing facts (arrays as JSON text), and last the
-- event's created_at in epoch seconds (the listener's commit-to-delivery metric; the decoder reads
-- only the columns before it).
--
-- Without p_user: every event (the listener). With p_user: one page of a resume gap, the events in
-- (p_after, p_until] that can matter to p_user — those naming it in arns, and those of a channel
-- it was in at some point of the gap. Those channels are all among: its memberships now, the
-- channels in p_moved (its membership moves in the gap, from resume_moved) and the channels it
-- moved in after p_until (while the session was connecting). The session's routing (the same facts
-- as live delivery, from the channels as of the gap's start) then picks exactly what it would have
-- received; this filter only keeps other users' traffic out. With p_moves_only, just the events
-- that move sessions (once the gap is over its bounds and will not be delivered).
drop function if exists carillon.resume_page(text, text[], bigint, bigint, int, boolean);
drop function if exists carillon.resume_channels(text, bigint, bigint);
-- The row gained r_created_at (a new result type: the old function goes first, once).
do $$
begin
    if not exists (select 1 from pg_proc
                    where oid = to_regprocedure('carillon.events_after(bigint, int, bigint, text, text[], boolean)')
                      and 'r_created_at' = any (proargnames)) then
        drop function if exists carillon.events_after(bigint, int, bigint, text, text[], boolean);
    end if;
end $$;
create or replace function carillon.events_after(p_after bigint, p_limit int, p_until bigint default null,
                                                 p_user text default null, p_moved text[] default null,
                                                 p_moves_only boolean default false)
returns table (r_position bigint, r_channel_arn text, r_event_type text, r_message_type text, r_payload text,
               r_audience text, r_arns text, r_joins text, r_leaves text, r_closes boolean, r_created_at float8)
language sql stable as $$
    select e.position, e.channel_arn, e.event_type, e.message_type, coalesce(e.payload_text, e.payload::text), e.audience,
           array_to_json(e.arns)::text, array_to_json(e.joins)::text, array_to_json(e.leaves)::text, e.closes,
           extract(epoch from e.created_at)::float8
      from carillon.events e
     where e.position > p_after and (p_until is null or e.position <= p_until)
       and (not p_moves_only or cardinality(e.joins) > 0 or cardinality(e.leaves) > 0 or e.closes)
       and (p_user is null
            or p_user = any (e.arns)
            or (e.audience <> 'only'
                and (e.channel_arn in (select unnest(p_moved))   -- hashed, whatever its size
                     or exists (select 1 from carillon.channel_memberships m
                                 where m.member_arn = p_user and m.channel_arn = e.channel_arn)
                     or e.channel_arn in (select l.channel_arn from carillon.user_moves(p_user, p_until) l))))
     order by e.position
     limit p_limit
$$;

-- The bound on a gap is now the user's own events (resume_max_events / resume_max_bytes, counted
-- as the session reads the gap); p_max bounds the log positions a gap may span (what the database
-- scans for one connect).
drop function if exists carillon.resume_window(bigint, bigint, int);
-- Nothing of (p_since, p_until] may have been trimmed: p_since at or above the log's trim horizon
-- (carillon.log_horizon, migration 096).
create or replace function carillon.resume_window(p_since bigint, p_until bigint, p_max bigint) returns boolean
language sql stable as $$
    select p_since <= p_until
       and p_since >= (select h.position from carillon.log_horizon h)
       and p_until - p_since <= p_max
$$;

-- The channels where p_user moved (joined or left) in (p_since, p_until]: each such move is an
-- event for the user, so a gap with more of them than the resume bound is not resumed.
create or replace function carillon.resume_moved(p_user text, p_since bigint, p_until bigint) returns text[]
language sql stable as $$
    select coalesce(array_agg(m.channel_arn), '{}') from carillon.user_moves(p_user, p_since, p_until) m
$$;

-- The channels p_user was in at log position p_at, in ARN order, after p_after (keyset paging),
-- at most p_limit: its memberships in this snapshot, corrected by its moves after p_at (a channel
-- it first joined later was not its own; one it first left later was) — by pages, so that a
-- session joins tens of thousands of channels a page per loop turn. Any later snapshot gives the
-- same answer (a write and its event commit together), except for a channel deleted since p_at
-- (its members' rows go with it, without moves of their own): it is not listed.
create or replace function carillon.channels_at(p_user text, p_at bigint, p_after text, p_limit int)
returns setof text
language sql stable as $$
    with firsts as (select f.channel_arn, f.joined from carillon.user_moves(p_user, p_at) f)
    select arn from (
        (select m.channel_arn as arn
           from carillon.channel_memberships m
          where m.member_arn = p_user and m.channel_arn > p_after
            and m.channel_arn not in (select f.channel_arn from firsts f where f.joined)
          order by m.channel_arn
          limit p_limit)
        union
        (select f.channel_arn from firsts f
          where not f.joined and f.channel_arn > p_after)
    ) s
    order by arn
    limit p_limit
$$;

-- Where a resume starts, from one scan of p_user's membership moves after p_since: the first page
-- (p_limit) of the channels p_user was in at p_since (what channels_at(p_user, p_since, '', p_limit)
-- answers) and the channels it moved in within (p_since, p_until] (what resume_moved answers: a
-- channel moved in the gap exactly when its first move after p_since is at or before p_until).
create or replace function carillon.resume_start(p_user text, p_since bigint, p_until bigint, p_limit int)
returns table (channels text, moved text[])
language sql stable as $$
    with firsts as materialized (
        select distinct on (e.channel_arn) e.channel_arn, p_user = any (e.joins) as joined, e.position
          from carillon.events e
         where e.position > p_since and (p_user = any (e.joins) or p_user = any (e.leaves))
         order by e.channel_arn, e.position)
    select (select coalesce(string_agg(s.arn, E'\n' order by s.arn), '') from (
                (select m.channel_arn as arn
                   from carillon.channel_memberships m
                  where m.member_arn = p_user
                    and m.channel_arn not in (select f.channel_arn from firsts f where f.joined)
                  order by m.channel_arn
                  limit p_limit)
                union
                (select f.channel_arn from firsts f where not f.joined)
                order by arn
                limit p_limit) s),
           (select coalesce(array_agg(f.channel_arn), '{}') from firsts f where f.position <= p_until)
$$;

-- The session registry (migration 052): a session counts against its user's quota from its
-- registration to its close, on live nodes only (seen within p_alive_s seconds).
-- Registration: under a per-user transaction lock, count the user's live sessions and insert the
-- new one only below p_max; false: refused (the session is closed with 4003).
-- The registry is soft state (a node's rows go when it stops, or when it is silent for the forget
-- time), so its transactions do not wait for their WAL flush: a crash of PostgreSQL may lose the
-- last few registrations, which only lets a user's quota count short for the sessions that were
-- open then (they are gone with the crash anyway). Every connect writes here: a durable commit
-- each was what limited the rate of new sessions.
create or replace function carillon.ws_register(p_node uuid, p_id bigint, p_user text, p_max int, p_alive_s int)
returns boolean
language plpgsql as $$
begin
    perform set_config('synchronous_commit', 'off', true);
    perform pg_advisory_xact_lock(7264, hashtext(p_user));
    if (select count(*) from carillon.ws_sessions s join carillon.ws_nodes n on n.node = s.node
         where s.user_arn = p_user and n.seen_at > now() - make_interval(secs => p_alive_s)) >= p_max then
        return false;
    end if;
    insert into carillon.ws_nodes (node) values (p_node) on conflict (node) do nothing;
    insert into carillon.ws_sessions (node, id, user_arn) values (p_node, p_id, p_user);
    perform carillon.ws_node_listens(p_node);
    return true;
end $$;

-- The registrations of the sessions that connected in one loop turn of a node, in one transaction:
-- each as ws_register (its user's lock, the count, the insert), in the order of their users' lock
-- keys so that concurrent batches (of this node or others) never wait on each other in a cycle; a
-- user's second session in the batch counts the first. Returns (r_i: the item's 1-based index in
-- the arrays, r_ok: registered) per item.
create or replace function carillon.ws_register_many(p_node uuid, p_ids bigint[], p_users text[], p_max int,
                                                     p_alive_s int)
returns table (r_i int, r_ok boolean)
language plpgsql as $$
declare
    it record;
    v_any boolean := false;
begin
    perform set_config('synchronous_commit', 'off', true); -- soft state, see ws_register
    insert into carillon.ws_nodes (node) values (p_node) on conflict (node) do nothing;
    for it in select u.i::int as i, u.id, u.usr
                from unnest(p_ids, p_users) with ordinality as u(id, usr, i)
               order by hashtext(u.usr), u.i loop
        perform pg_advisory_xact_lock(7264, hashtext(it.usr));
        r_i := it.i;
        r_ok := (select count(*) from carillon.ws_sessions s join carillon.ws_nodes n on n.node = s.node
                  where s.user_arn = it.usr and n.seen_at > now() - make_interval(secs => p_alive_s)) < p_max;
        if r_ok then
            insert into carillon.ws_sessions (node, id, user_arn) values (p_node, it.id, it.usr);
            v_any := true;
        end if;
        return next;
    end loop;
    -- The sessions take their snapshots once this commits: from then on every write must wake the
    -- node (last: the event lock, when taken, is the last lock of the transaction).
    if v_any then
        perform carillon.ws_node_listens(p_node);
    end if;
end $$;

-- A node's heartbeat: it is alive (and its closed sessions, p_closed, are gone); nodes silent for
-- p_forget_s seconds are forgotten with their sessions. p_listen: the node has sessions (true: its
-- flag is raised if it is down -- after a crash of PostgreSQL lost it, say) or has none and no
-- registration under way (false: lowered); NULL leaves it. The node sends false only when no
-- registration of its own is in flight, and holds its registrations until the answer
-- (src/realtime/session.c), so a lowering never races a raising of the same node. The flag's step
-- is last: the event lock, when taken, is the last lock of the transaction.
-- (The form without p_listen goes first, once: a call with three arguments now means NULL.)
drop function if exists carillon.ws_heartbeat(uuid, bigint[], int);
create or replace function carillon.ws_heartbeat(p_node uuid, p_closed bigint[], p_forget_s int,
                                                 p_listen boolean default null) returns void
language plpgsql as $$
begin
    perform set_config('synchronous_commit', 'off', true); -- soft state, see ws_register
    insert into carillon.ws_nodes (node) values (p_node)
        on conflict (node) do update set seen_at = now();
    delete from carillon.ws_sessions where node = p_node and id = any (p_closed);
    delete from carillon.ws_nodes where seen_at < now() - make_interval(secs => p_forget_s);
    if p_listen then
        perform carillon.ws_node_listens(p_node);
    elsif not p_listen then
        update carillon.ws_nodes set listening = false where node = p_node and listening;
    end if;
end $$;

-- Node p_node takes snapshots of the log for its sessions from now on: every write that commits
-- after this transaction must wake it (carillon.events_heard). When its flag was down, the event
-- lock is taken after raising it (and held to commit, as every writer holds it): a writer holding
-- the lock now commits first, so its events are at or below the log position of any snapshot taken
-- after this commit; a writer taking it later sees the flag. Callers take it last.
create or replace function carillon.ws_node_listens(p_node uuid) returns void
language plpgsql as $$
begin
    if exists (select 1 from carillon.ws_nodes where node = p_node and listening) then
        return;
    end if;
    insert into carillon.ws_nodes (node, listening) values (p_node, true)
        on conflict (node) do update set listening = true;
    perform pg_advisory_xact_lock(7263, 1);
end $$;
