// Straight-from-PostgreSQL helpers for the channel-message tests: the event log (carillon.events),
// stored message rows, and a few fixture shortcuts for states no finished API reaches yet (a
// moderator who is not a member, a sub-channel placement, a channel clock in the future).
// psql gets the conninfo as one argv element and the SQL on stdin; values travel as psql variables
// (:'name'), never spliced into the SQL text.

import { sql, channelEvents, lastPosition, eventsAfter } from './eventlog.mjs';

export { sql, channelEvents, lastPosition, eventsAfter };

/** Stored message rows of a channel, in (created_at, seq) order, as JSON objects of the table's columns. */
export function storedMessages(channelArn) {
  return (
    sql(
      `select coalesce(json_agg(row_to_json(m) order by m.created_at, m.seq), '[]')
         from carillon.channel_messages m where channel_arn = :'arn'`,
      { arn: channelArn },
    ) ?? []
  );
}

/** Make `arn` a moderator of the channel without a membership (CreateChannelModerator requires one). */
export function addModeratorRow(channelArn, arn) {
  sql(
    `insert into carillon.channel_moderators (channel_arn, moderator_arn, created_by, created_at)
     values (:'ch', :'arn', :'arn', now()) on conflict do nothing`,
    { ch: channelArn, arn },
  );
}

/** Put the membership of `arn` in sub-channel `sub`, creating it if needed. */
export function placeInSubChannel(channelArn, arn, sub) {
  sql(
    `insert into carillon.channel_memberships (channel_arn, member_arn, type, invited_by, sub_channel_id, created_at, updated_at)
     values (:'ch', :'arn', 'DEFAULT', :'arn', :'sub', now(), now())
     on conflict (channel_arn, member_arn) do update set sub_channel_id = excluded.sub_channel_id`,
    { ch: channelArn, arn, sub },
  );
}

/** Set the channel's last_message_at `ms` milliseconds ahead of the database clock; returns that time as an ISO string. */
export function pushChannelClock(channelArn, ms) {
  return sql(
    `update carillon.channels set last_message_at = date_trunc('milliseconds', now()) + make_interval(secs => :'ms'::numeric / 1000)
      where arn = :'ch'
     returning to_json(to_char(last_message_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))`,
    { ch: channelArn, ms: String(ms) },
  );
}
