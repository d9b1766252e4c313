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

-- Resuming a session (Carillon's extension to the protocol; the stock clients don't use it): the
-- events after position p_since that the user would have received, up to p_until (the new
-- session's snapshot position), in order — or null when p_since is older than the retained log or
-- the gap holds more than p_max events (the client must re-sync through REST).
--
-- Which channels the user belonged to at p_since: its current channels, corrected by the membership
-- events about it in the gap (a channel whose first such event is a CREATE was joined later; one
-- whose first is a DELETE was left later). Replaying the gap through the same routing rules as live
-- delivery then reproduces exactly what a continuously connected session received.
create or replace function carillon.resume_channels(p_user text, p_since bigint, p_until bigint) returns text[]
language sql stable as $$
    with firsts as (
        select distinct on (e.channel_arn) e.channel_arn, e.event_type
          from carillon.events e
         where e.position > p_since and e.position <= p_until
           and e.event_type in ('CREATE_CHANNEL_MEMBERSHIP', 'BATCH_CREATE_CHANNEL_MEMBERSHIP', 'DELETE_CHANNEL_MEMBERSHIP')
           and (e.payload #>> '{Member,Arn}' = p_user
                or e.payload->'Members' @> jsonb_build_array(jsonb_build_object('Arn', p_user)))
         order by e.channel_arn, e.position
    )
    select coalesce(array_agg(arn), '{}') from (
        select channel_arn as arn from carillon.channel_memberships
         where member_arn = p_user
           and channel_arn not in (select channel_arn from firsts where event_type <> 'DELETE_CHANNEL_MEMBERSHIP')
        union
        select channel_arn from firsts where event_type = 'DELETE_CHANNEL_MEMBERSHIP'
    ) s
$$;

-- The bound on a gap is now the user's own events (resume_max_events / resume_max_bytes, counted
-- as the session reads the gap); p_max bounds the log positions a gap may span (what the database
-- scans for one connect).
drop function if exists carillon.resume_window(bigint, bigint, int);
create or replace function carillon.resume_window(p_since bigint, p_until bigint, p_max bigint) returns boolean
language sql stable as $$
    select p_since <= p_until
       and p_since >= coalesce((select min(position) from carillon.events), p_until + 1) - 1
       and p_until - p_since <= p_max
$$;

-- The channels whose membership of p_user changed in (p_since, p_until]: each such change is an
-- event for the user, so a gap with more of them than the resume bound is not resumed.
create or replace function carillon.resume_moved(p_user text, p_since bigint, p_until bigint) returns text[]
language sql stable as $$
    select coalesce(array_agg(distinct e.channel_arn), '{}')
      from carillon.events e
     where e.position > p_since and e.position <= p_until
       and e.event_type in ('CREATE_CHANNEL_MEMBERSHIP', 'BATCH_CREATE_CHANNEL_MEMBERSHIP', 'DELETE_CHANNEL_MEMBERSHIP')
       and (e.payload #>> '{Member,Arn}' = p_user
            or e.payload->'Members' @> jsonb_build_array(jsonb_build_object('Arn', p_user)))
$$;

-- One page of a resume gap: the events in (p_after, p_until] (at most p_limit, in position order)
-- that can matter to p_user — those naming it in `arns`, and those of a channel it was in at some
-- point of the gap. Those channels are all among: its memberships now, the channels in p_moved
-- (membership changes in the gap, from resume_moved) and the channels whose membership of the user
-- changed after p_until (while the session was connecting). The session's routing (the same rules
-- as live delivery, from the channels as of the gap's start) then picks exactly what it would have
-- received; this filter only keeps other users' traffic out. With p_moves_only, just the events
-- that change the session's channels (once the gap is over its bounds and will not be delivered).
create or replace function carillon.resume_page(p_user text, p_moved text[], p_after bigint, p_until bigint,
                                                p_limit int, p_moves_only boolean)
returns table (r_position bigint, r_channel_arn text, r_event_type text, r_message_type text, r_payload text,
               r_audience text, r_arns text)
language sql stable as $$
    with later as (
        select distinct x.channel_arn
          from carillon.events x
         where x.position > p_until
           and x.event_type in ('CREATE_CHANNEL_MEMBERSHIP', 'BATCH_CREATE_CHANNEL_MEMBERSHIP', 'DELETE_CHANNEL_MEMBERSHIP')
           and (x.payload #>> '{Member,Arn}' = p_user
                or x.payload->'Members' @> jsonb_build_array(jsonb_build_object('Arn', p_user)))
    )
    select e.position, e.channel_arn, e.event_type, e.message_type, e.payload::text, e.audience,
           array_to_json(e.arns)::text
      from carillon.events e
     where e.position > p_after and e.position <= p_until
       and (not p_moves_only
            or e.event_type in ('CREATE_CHANNEL_MEMBERSHIP', 'BATCH_CREATE_CHANNEL_MEMBERSHIP',
                                'DELETE_CHANNEL_MEMBERSHIP', 'DELETE_CHANNEL'))
       and (p_user = any (e.arns)
            or (e.audience <> 'only'
                and (e.channel_arn in (select unnest(p_moved))   -- hashed, whatever its size
                     or exists (select 1 from carillon.channel_memberships m
                                 where m.member_arn = p_user and m.channel_arn = e.channel_arn)
                     or e.channel_arn in (select l.channel_arn from later l))))
     order by e.position
     limit p_limit
$$;

-- The channels p_user was in at log position p_at, in ARN order, after p_after (keyset paging),
-- at most p_limit: its memberships in this snapshot, corrected by the membership events about it
-- after p_at (a channel whose first such event is a CREATE was joined later; one whose first is a
-- DELETE was left later) — the same correction as resume_channels, by pages, so that a session
-- joins tens of thousands of channels a page per loop turn. Any later snapshot gives the same
-- answer (a write and its event commit together), except for a channel deleted since p_at
-- (DELETE_CHANNEL names no members): it is not listed.
create or replace function carillon.channels_at(p_user text, p_at bigint, p_after text, p_limit int)
returns setof text
language sql stable as $$
    with firsts as (
        select distinct on (e.channel_arn) e.channel_arn, e.event_type
          from carillon.events e
         where e.position > p_at
           and e.event_type in ('CREATE_CHANNEL_MEMBERSHIP', 'BATCH_CREATE_CHANNEL_MEMBERSHIP', 'DELETE_CHANNEL_MEMBERSHIP')
           and (e.payload #>> '{Member,Arn}' = p_user
                or e.payload->'Members' @> jsonb_build_array(jsonb_build_object('Arn', p_user)))
         order by e.channel_arn, e.position
    )
    select arn from (
        (select m.channel_arn as arn
           from carillon.channel_memberships m
          where m.member_arn = p_user and m.channel_arn > p_after
            and m.channel_arn not in (select f.channel_arn from firsts f where f.event_type <> 'DELETE_CHANNEL_MEMBERSHIP')
          order by m.channel_arn
          limit p_limit)
        union
        (select f.channel_arn from firsts f
          where f.event_type = 'DELETE_CHANNEL_MEMBERSHIP' and f.channel_arn > p_after)
    ) s
    order by arn
    limit p_limit
$$;

-- The session registry (migration 052): a session counts against its user's quota from its
-- registration to its close, on live nodes only (seen within p_alive_s seconds).
-- Registration: under a per-user transaction lock, count the user's live sessions and insert the
-- new one only below p_max; false: refused (the session is closed with 4003).
create or replace function carillon.ws_register(p_node uuid, p_id bigint, p_user text, p_max int, p_alive_s int)
returns boolean
language plpgsql as $$
begin
    perform pg_advisory_xact_lock(7264, hashtext(p_user));
    if (select count(*) from carillon.ws_sessions s join carillon.ws_nodes n on n.node = s.node
         where s.user_arn = p_user and n.seen_at > now() - make_interval(secs => p_alive_s)) >= p_max then
        return false;
    end if;
    insert into carillon.ws_nodes (node) values (p_node) on conflict (node) do nothing;
    insert into carillon.ws_sessions (node, id, user_arn) values (p_node, p_id, p_user);
    return true;
end $$;

-- A node's heartbeat: it is alive (and its closed sessions, p_closed, are gone); nodes silent for
-- p_forget_s seconds are forgotten with their sessions.
create or replace function carillon.ws_heartbeat(p_node uuid, p_closed bigint[], p_forget_s int) returns void
language plpgsql as $$
begin
    insert into carillon.ws_nodes (node) values (p_node)
        on conflict (node) do update set seen_at = now();
    delete from carillon.ws_sessions where node = p_node and id = any (p_closed);
    delete from carillon.ws_nodes where seen_at < now() - make_interval(secs => p_forget_s);
end $$;
