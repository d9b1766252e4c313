// The event log and a few rows read (or, for the janitor's expiry, changed) straight in PostgreSQL,
// for the channel, moderator and ban tests. psql gets the conninfo as one argv element and the SQL
// on stdin; values go in as psql variables (:'name'), never spliced into the text.

import { sql, channelEvents, logPosition, eventsAfter } from './eventlog.mjs';

export { sql, channelEvents, logPosition, eventsAfter };

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
