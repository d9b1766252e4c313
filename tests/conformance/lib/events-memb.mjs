// Straight-to-PostgreSQL helpers for the channel-membership tests: the event log, and the few rows
// the membership operations read but other resources write (bans, read markers). psql gets the
// conninfo as one argv element and the SQL on stdin; values travel as psql variables (:'name').

import { psqlText as psql, channelEvents, lastPosition, eventsAfter } from './eventlog.mjs';

export { channelEvents, lastPosition, eventsAfter };

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
