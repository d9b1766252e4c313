// Straight-to-PostgreSQL helpers for the channel-membership tests: the event log, and the few rows
// the membership operations read but other resources write (bans, read markers). psql gets the
// conninfo as one argv element and the SQL on stdin; values travel as psql variables (:'name').

import { execFileSync } from 'node:child_process';

function databaseUrl() {
  const url = process.env.CARILLON_TEST_DATABASE_URL;
  if (!url) throw new Error('CARILLON_TEST_DATABASE_URL is not set');
  return url;
}

function psql(sql, vars = {}) {
  const args = [databaseUrl(), '-AtXq', '-v', 'ON_ERROR_STOP=1'];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  return execFileSync('psql', args, { input: sql, encoding: 'utf8' }).trim();
}

/** Every event of a channel, in position order: [{position, event_type, message_type, audience, arns, payload}]. */
export function channelEvents(channelArn) {
  const out = psql(
    `select coalesce(json_agg(json_build_object('position', position, 'event_type', event_type,
               'message_type', message_type, 'audience', audience, 'arns', arns, 'payload', payload,
               'app_instance_id', app_instance_id) order by position), '[]')
       from carillon.events where channel_arn = :'arn'`,
    { arn: channelArn },
  );
  return JSON.parse(out || '[]');
}

/** The highest event position of a channel (0 when none). */
export function lastPosition(channelArn) {
  const evs = channelEvents(channelArn);
  return evs.length ? evs[evs.length - 1].position : 0;
}

/** Events of a channel after position `after`. */
export function eventsAfter(channelArn, after) {
  return channelEvents(channelArn).filter((e) => e.position > after);
}

/** Ban a member the way CreateChannelBan stores it (row only; the membership is left alone). */
export function insertBan(channelArn, memberArn, createdBy) {
  psql(
    `insert into carillon.channel_bans (channel_arn, member_arn, created_by, created_at)
     values (:'ch', :'m', :'by', now())`,
    { ch: channelArn, m: memberArn, by: createdBy },
  );
}

/** Set a membership's read marker (as UpdateChannelReadMarker would) to the ISO time `iso`. */
export function setReadMarker(channelArn, memberArn, iso) {
  psql(
    `update carillon.channel_memberships set read_marker_at = :'t'::timestamptz
      where channel_arn = :'ch' and member_arn = :'m'`,
    { ch: channelArn, m: memberArn, t: iso },
  );
}

/** The stored membership row, or null: {type, sub_channel_id, preferences, invited_by}. */
export function membershipRow(channelArn, memberArn) {
  const out = psql(
    `select json_build_object('type', type, 'sub_channel_id', sub_channel_id, 'preferences', preferences,
                              'invited_by', invited_by)
       from carillon.channel_memberships where channel_arn = :'ch' and member_arn = :'m'`,
    { ch: channelArn, m: memberArn },
  );
  return out === '' ? null : JSON.parse(out);
}
