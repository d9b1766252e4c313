// The event log and a few rows read (or, for the janitor's expiry, changed) straight in PostgreSQL,
// for the channel, moderator and ban tests. psql gets the conninfo as one argv element and the SQL
// on stdin; values go in as psql variables (:'name'), never spliced into the text.

import { execFileSync } from 'node:child_process';

function databaseUrl() {
  const url = process.env.CARILLON_TEST_DATABASE_URL;
  if (!url) throw new Error('CARILLON_TEST_DATABASE_URL is not set');
  return url;
}

/** Run `sql` (its last statement returns one JSON value, or nothing) with psql variables; return the parsed JSON. */
export function sql(text, vars = {}) {
  const args = [databaseUrl(), '-AtXq', '-v', 'ON_ERROR_STOP=1'];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  const out = execFileSync('psql', args, { input: text, encoding: 'utf8' }).trim();
  return out === '' ? null : JSON.parse(out);
}

/** Every event of a channel, in position order: [{position, event_type, message_type, audience, arns, payload}]. */
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

/** The highest event position of the whole log (0 when empty). */
export function logPosition() {
  return sql(`select to_json(coalesce(max(position), 0)) from carillon.events`);
}

/** Events of a channel after position `after`. */
export function eventsAfter(channelArn, after) {
  return channelEvents(channelArn).filter((e) => e.position > after);
}

/** Row counts that hang off a channel: {channel, memberships, moderators, bans, messages, tags}. */
export function channelRows(channelArn) {
  return sql(
    `select json_build_object(
        'channel', (select count(*) from carillon.channels where arn = :'arn'),
        'memberships', (select count(*) from carillon.channel_memberships where channel_arn = :'arn'),
        'moderators', (select count(*) from carillon.channel_moderators where channel_arn = :'arn'),
        'bans', (select count(*) from carillon.channel_bans where channel_arn = :'arn'),
        'messages', (select count(*) from carillon.channel_messages where channel_arn = :'arn'),
        'tags', (select count(*) from carillon.tags where resource_arn = :'arn'))`,
    { arn: channelArn },
  );
}

/** The member ARNs of a channel in membership order (created_at, then ARN). */
export function memberArns(channelArn) {
  return sql(
    `select coalesce(json_agg(member_arn order by created_at, member_arn), '[]')
       from carillon.channel_memberships where channel_arn = :'arn'`,
    { arn: channelArn },
  );
}

/** A membership's read marker as epoch milliseconds, or null. */
export function readMarkerMs(channelArn, memberArn) {
  return sql(
    `select to_json((extract(epoch from read_marker_at) * 1000)::bigint)
       from carillon.channel_memberships where channel_arn = :'arn' and member_arn = :'member'`,
    { arn: channelArn, member: memberArn },
  );
}

/** Move a channel's creation (and, when given, last message) time `days` days into the past. */
export function backdateChannel(channelArn, createdDaysAgo, lastMessageDaysAgo) {
  sql(
    `update carillon.channels
        set created_at = now() - make_interval(days => :'created'::int),
            last_message_at = case when :'last' = '' then last_message_at
                                   else now() - make_interval(days => nullif(:'last', '')::int) end
      where arn = :'arn'`,
    { arn: channelArn, created: String(createdDaysAgo), last: lastMessageDaysAgo === undefined ? '' : String(lastMessageDaysAgo) },
  );
}

/** Run the janitor's channel expiry as of now; returns how many channels it deleted. */
export function expireChannels() {
  return sql(`select to_json(carillon.expire_channels(now()))`);
}

/** Insert a membership row directly (for elastic-channel set-ups that another resource owns). */
export function insertMembership(channelArn, memberArn, invitedBy, subChannelId) {
  sql(
    `insert into carillon.channel_memberships (channel_arn, member_arn, type, invited_by, sub_channel_id, created_at, updated_at)
     values (:'arn', :'member', 'DEFAULT', :'by', nullif(:'sub', ''), now(), now())`,
    { arn: channelArn, member: memberArn, by: invitedBy, sub: subChannelId ?? '' },
  );
}
