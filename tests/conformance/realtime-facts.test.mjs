// Routing facts as data (docs/events.md, migration 060): every event row states, when it is
// written, whose sessions join the channel (joins), leave it (leaves), or whether every session
// leaves it (closes), besides its audience. The real-time side reads nothing else, so these
// columns are the routing: each write's rows are checked here, and the SQL readers that use them
// (carillon.user_moves, channels_at, events_after with a user's resume filter). Real server,
// real PostgreSQL, the AWS SDK.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeleteAppInstanceUserCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  BatchCreateChannelMembershipCommand,
  CreateChannelBanCommand,
  CreateChannelCommand,
  CreateChannelMembershipCommand,
  DeleteChannelCommand,
  DeleteChannelMembershipCommand,
  SendChannelMessageCommand,
  UpdateChannelCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { logPosition, sql } from './lib/eventlog.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { uniq } from './lib/util.mjs';

const ctx = useCarillon();

// The rows of a channel after position p: type, audience, arns and the routing facts.
function facts(channel, after) {
  return (
    sql(
      `select coalesce(json_agg(json_build_object('type', event_type, 'audience', audience, 'arns', arns,
                 'joins', joins, 'leaves', leaves, 'closes', closes) order by position), '[]')
         from carillon.events where channel_arn = :'c' and position > :'p'`,
      { c: channel, p: after },
    ) ?? []
  );
}

const row = (type, audience, arns, joins = [], leaves = [], closes = false) => ({ type, audience, arns, joins, leaves, closes });

test('each write records its routing facts in its event rows: joins, leaves, closes, audience', async () => {
  const ai = await ctx.newAppInstance();
  const [mod, amy, hid, dan, eve, bob] = await Promise.all(['mod', 'amy', 'hid', 'dan', 'eve', 'bob'].map(() => ctx.newUser(ai)));
  const p0 = logPosition();
  const ch = (
    await ctx.msg.send(
      new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('facts'), Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: mod.arn, MemberArns: [amy.arn] }),
    )
  ).ChannelArn;
  const send = (c) => ctx.msg.send(c);
  await send(new CreateChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: mod.arn, MemberArn: hid.arn, Type: 'HIDDEN' }));
  await send(new BatchCreateChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: mod.arn, MemberArns: [dan.arn, eve.arn], Type: 'DEFAULT' }));
  await send(new CreateChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: mod.arn, MemberArn: bob.arn, Type: 'DEFAULT' }));
  await send(new SendChannelMessageCommand({ ChannelArn: ch, ChimeBearer: amy.arn, Content: 'hi', Type: 'STANDARD', Persistence: 'PERSISTENT' }));
  await send(
    new SendChannelMessageCommand({ ChannelArn: ch, ChimeBearer: amy.arn, Content: 'psst', Type: 'STANDARD', Persistence: 'PERSISTENT', Target: [{ MemberArn: bob.arn }] }),
  );
  await send(new UpdateChannelCommand({ ChannelArn: ch, ChimeBearer: mod.arn, Name: 'renamed', Mode: 'RESTRICTED' }));
  await send(new DeleteChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: amy.arn, MemberArn: amy.arn }));
  await send(new DeleteChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: mod.arn, MemberArn: hid.arn }));
  await send(new CreateChannelBanCommand({ ChannelArn: ch, ChimeBearer: mod.arn, MemberArn: dan.arn }));
  await ctx.id.send(new DeleteAppInstanceUserCommand({ AppInstanceUserArn: eve.arn }));
  const beforeDelete = logPosition();
  await send(new DeleteChannelCommand({ ChannelArn: ch, ChimeBearer: mod.arn }));

  const rows = facts(ch, p0);
  const creates = rows.slice(0, 2).sort((a, b) => (a.arns[0] < b.arns[0] ? -1 : 1));
  const want = [mod.arn, amy.arn].sort().map((m) => row('CREATE_CHANNEL_MEMBERSHIP', 'members', [m], [m]));
  assert.deepEqual(creates, want, 'CreateChannel: one CREATE_CHANNEL_MEMBERSHIP per member, joining it');
  assert.deepEqual(rows.slice(2), [
    row('CREATE_CHANNEL_MEMBERSHIP', 'only', [hid.arn], [hid.arn]),
    row('BATCH_CREATE_CHANNEL_MEMBERSHIP', 'members', [dan.arn, eve.arn], [dan.arn, eve.arn]),
    row('CREATE_CHANNEL_MEMBERSHIP', 'members', [bob.arn], [bob.arn]),
    row('CREATE_CHANNEL_MESSAGE', 'members', []),
    row('CREATE_CHANNEL_MESSAGE', 'only', [amy.arn, bob.arn]),
    row('UPDATE_CHANNEL', 'members', []),
    row('DELETE_CHANNEL_MEMBERSHIP', 'members', [amy.arn], [], [amy.arn]),
    row('DELETE_CHANNEL_MEMBERSHIP', 'only', [hid.arn], [], [hid.arn]),
    row('DELETE_CHANNEL_MEMBERSHIP', 'members', [dan.arn], [], [dan.arn]),
    row('DELETE_CHANNEL_MEMBERSHIP', 'members', [eve.arn], [], [eve.arn]),
    row('DELETE_CHANNEL', 'members', [], [], [], true),
  ]);

  // The readers use the facts. amy's moves after p0: the channel, first joined (so it was not hers
  // at p0); after her join, first left (so it was hers then).
  const moves = (u, after) =>
    sql(`select coalesce(json_agg(json_build_object('c', channel_arn, 'joined', joined)), '[]') from carillon.user_moves(:'u', :'p')`, { u, p: after });
  assert.deepEqual(moves(amy.arn, p0), [{ c: ch, joined: true }]);
  const amyJoined = sql(`select min(position) from carillon.events where channel_arn = :'c' and :'u' = any (joins)`, { c: ch, u: amy.arn });
  assert.deepEqual(moves(amy.arn, amyJoined), [{ c: ch, joined: false }]);
  const at = (u, p) => sql(`select coalesce(json_agg(a), '[]') from carillon.channels_at(:'u', :'p', '', 100) a`, { u, p });
  assert.deepEqual(at(amy.arn, p0), [], 'not amy\'s channel before her join');
  assert.deepEqual(at(amy.arn, amyJoined), [ch], 'amy\'s channel between her join and her leave');
  assert.deepEqual(at(bob.arn, beforeDelete), [], 'a deleted channel is nobody\'s (its rows went with it)');

  // A resume page for hid (the HIDDEN member) over the whole story: its own 'only' events and the
  // channel's 'members' events (the channel is among its moves); not the targeted message of others.
  const page = sql(
    `select coalesce(json_agg(r_event_type order by r_position), '[]')
       from carillon.events_after(:'p', 1000, :'u_', :'h', carillon.resume_moved(:'h', :'p', :'u_'), false)
      where r_channel_arn = :'c'`,
    { p: p0, u_: logPosition(), h: hid.arn, c: ch },
  );
  assert.ok(page.includes('CREATE_CHANNEL_MEMBERSHIP') && page.includes('UPDATE_CHANNEL') && page.includes('DELETE_CHANNEL'), JSON.stringify(page));
  assert.equal(page.filter((t) => t === 'CREATE_CHANNEL_MESSAGE').length, 1, `only the message to the members: ${JSON.stringify(page)}`);
  // With moves_only: just the rows that move sessions.
  const movesOnly = sql(
    `select coalesce(json_agg(r_event_type order by r_position), '[]')
       from carillon.events_after(:'p', 1000, :'u_', :'h', carillon.resume_moved(:'h', :'p', :'u_'), true)
      where r_channel_arn = :'c'`,
    { p: p0, u_: logPosition(), h: hid.arn, c: ch },
  );
  assert.ok(movesOnly.every((t) => t.endsWith('CHANNEL_MEMBERSHIP') || t === 'DELETE_CHANNEL'), JSON.stringify(movesOnly));
  assert.ok(!movesOnly.includes('UPDATE_CHANNEL'));
});
