// Straight-from-PostgreSQL helpers for the channel-message tests: the event log (carillon.events),
// stored message rows, and a few fixture shortcuts for states no finished API reaches yet (a
// moderator who is not a member, a sub-channel placement, a channel clock in the future).
// psql gets the conninfo as one argv element and the SQL on stdin; values travel as psql variables
// (:'name'), never spliced into the SQL text.

import { execFileSync } from 'node:child_process';

function databaseUrl() {
  const url = process.env.CARILLON_TEST_DATABASE_URL;
  if (!url) throw new Error('CARILLON_TEST_DATABASE_URL is not set');
  return url;
}

/** Run `sql` (one statement, at most one JSON value out) with psql variables `vars`; return the parsed JSON or null. */
export function sql(text, vars = {}) {
  const args = [databaseUrl(), '-AtXq', '-v', 'ON_ERROR_STOP=1'];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  const out = execFileSync('psql', args, { input: text, encoding: 'utf8' }).trim();
  return out === '' ? null : JSON.parse(out);
}

/** Every event of a channel, in position order: [{position, event_type, message_type, audience, arns, payload, app_instance_id}]. */
export function channelEvents(channelArn) {
  return (
    sql(
      `select coalesce(json_agg(json_build_object('position', position, 'event_type', event_type,
                 'message_type', message_type, 'audience', audience, 'arns', arns, 'payload', payload,
                 'app_instance_id', app_instance_id) order by position), '[]')
         from carillon.events where channel_arn = :'arn'`,
      { arn: channelArn },
    ) ?? []
  );
}

/** The highest event position of a channel (0 when none). */
export function lastPosition(channelArn) {
  return sql(`select coalesce(max(position), 0) from carillon.events where channel_arn = :'arn'`, { arn: channelArn });
}

/** Events of a channel after position `after`. */
export function eventsAfter(channelArn, after) {
  return channelEvents(channelArn).filter((e) => e.position > after);
}

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
