// Read the event log (carillon.events) and other rows straight from PostgreSQL, for the channel-flow
// and streaming tests. psql gets the conninfo as one argv element and the SQL on stdin, so that
// values are passed as psql variables (:'name'), never spliced into the text.

import { sql as sqlJson, channelEvents, lastPosition, eventsAfter } from './eventlog.mjs';

export { sqlJson, channelEvents, lastPosition, eventsAfter };

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
