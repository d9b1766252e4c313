// Read the event log (carillon.events) and other rows straight from PostgreSQL, for the channel-flow
// and streaming tests. psql gets the conninfo as one argv element and the SQL on stdin, so that
// values are passed as psql variables (:'name'), never spliced into the text.

import { execFileSync } from 'node:child_process';

function databaseUrl() {
  const url = process.env.CARILLON_TEST_DATABASE_URL;
  if (!url) throw new Error('CARILLON_TEST_DATABASE_URL is not set');
  return url;
}

/** Run `sql` (one statement returning one JSON value) with psql variables `vars`; return the parsed JSON. */
export function sqlJson(sql, vars = {}) {
  const args = [databaseUrl(), '-AtXq', '-v', 'ON_ERROR_STOP=1'];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  const out = execFileSync('psql', args, { input: sql, encoding: 'utf8' }).trim();
  return out === '' ? null : JSON.parse(out);
}

/** Every event of a channel, in position order: [{position, event_type, message_type, audience, arns, payload}]. */
export function channelEvents(channelArn) {
  return (
    sqlJson(
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
  const evs = channelEvents(channelArn);
  return evs.length ? evs[evs.length - 1].position : 0;
}

/** Events of a channel after position `after`. */
export function eventsAfter(channelArn, after) {
  return channelEvents(channelArn).filter((e) => e.position > after);
}

/** Tags stored for an ARN, sorted by key: [{Key, Value}]. */
export function storedTags(arn) {
  return (
    sqlJson(
      `select coalesce(json_agg(json_build_object('Key', key, 'Value', value) order by key), '[]')
         from carillon.tags where resource_arn = :'arn'`,
      { arn },
    ) ?? []
  );
}
