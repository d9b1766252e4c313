// Retention: PutAppInstanceRetentionSettings (ChannelRetentionSettings.RetentionDays) is enforced by
// the janitor: messages older than the period are deleted from every channel of the AppInstance —
// ListChannelMessages and GetChannelMessage no longer return them and their rows are gone — while
// newer messages, the channels, their memberships and other AppInstances' messages stay.
//
// A "day" is CARILLON_RETENTION_DAY_SECONDS = 60 s here (86400 in production), and messages are made
// old by moving their created_at back in the test database: 90 s old is past a one-day period, 30 s
// is not. With the production day (86400 s) nothing here would be deleted, so the test also proves
// the period is counted in that unit. The janitor runs every 300 ms, deleting at most 3 messages per
// statement, so a channel's backlog takes several statements (the bounded batches).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PutAppInstanceRetentionSettingsCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  CreateChannelCommand,
  DescribeChannelCommand,
  GetChannelMessageCommand,
  ListChannelMembershipsCommand,
  ListChannelMessagesCommand,
  SendChannelMessageCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { holdingSession, sql } from './lib/eventlog.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { assertRejects, uniq } from './lib/util.mjs';

const DAY_SECONDS = 60;
const ctx = useCarillon({
  env: {
    CARILLON_RETENTION_DAY_SECONDS: String(DAY_SECONDS),
    CARILLON_JANITOR_INTERVAL_MS: '300',
    CARILLON_RETENTION_BATCH: '3',
  },
});

async function channelWithMembers(ai, n = 2) {
  const owner = await ctx.newUser(ai);
  const others = [];
  for (let i = 1; i < n; i++) others.push(await ctx.newUser(ai));
  const out = await ctx.msg.send(
    new CreateChannelCommand({
      AppInstanceArn: ai,
      Name: uniq('ret'),
      ChimeBearer: owner.arn,
      MemberArns: others.map((u) => u.arn),
      Mode: 'RESTRICTED',
      Privacy: 'PRIVATE',
    }),
  );
  return { arn: out.ChannelArn, owner, others };
}

async function send(ch, content) {
  const out = await ctx.msg.send(
    new SendChannelMessageCommand({
      ChannelArn: ch.arn,
      Content: content,
      Type: 'STANDARD',
      Persistence: 'PERSISTENT',
      ChimeBearer: ch.owner.arn,
      ClientRequestToken: uniq('tok'),
    }),
  );
  return out.MessageId;
}

// Moves the messages' creation `seconds` into the past, as if they had been sent then.
function age(channelArn, messageIds, seconds) {
  sql(
    `update carillon.channel_messages set created_at = created_at - make_interval(secs => :'s'::int),
            updated_at = updated_at - make_interval(secs => :'s'::int)
      where channel_arn = :'arn' and message_id = any (string_to_array(:'ids', ','))`,
    { arn: channelArn, ids: messageIds.join(','), s: String(seconds) },
  );
}

async function listedIds(ch) {
  const ids = [];
  let token;
  do {
    const out = await ctx.msg.send(
      new ListChannelMessagesCommand({ ChannelArn: ch.arn, ChimeBearer: ch.owner.arn, MaxResults: 50, NextToken: token }),
    );
    for (const m of out.ChannelMessages ?? []) ids.push(m.MessageId);
    token = out.NextToken;
  } while (token);
  return ids.sort();
}

function storedIds(channelArn) {
  return (
    sql(`select coalesce(json_agg(message_id order by message_id), '[]') from carillon.channel_messages where channel_arn = :'arn'`, {
      arn: channelArn,
    }) ?? []
  );
}

async function sendMany(ch, n, label) {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await send(ch, `${label} ${i}`));
  return ids;
}

test('messages past the AppInstance retention period are deleted in every channel; newer ones, other AppInstances and everything else stay', async () => {
  // AppInstance A: RetentionDays 1, two channels. B: no retention. C: RetentionDays 5.
  const a = await ctx.newAppInstance();
  const b = await ctx.newAppInstance();
  const c = await ctx.newAppInstance();
  const a1 = await channelWithMembers(a, 3);
  const a2 = await channelWithMembers(a, 2);
  const bch = await channelWithMembers(b, 2);
  const cch = await channelWithMembers(c, 2);

  const a1Old = await sendMany(a1, 7, 'a1 old');
  const a1Young = await sendMany(a1, 2, 'a1 young');
  const a1New = await sendMany(a1, 2, 'a1 new');
  const a2Old = await sendMany(a2, 4, 'a2 old');
  const a2New = await sendMany(a2, 1, 'a2 new');
  const bOld = await sendMany(bch, 3, 'b old');
  const cOld = await sendMany(cch, 3, 'c old');

  age(a1.arn, a1Old, Math.round(DAY_SECONDS * 1.5));
  age(a1.arn, a1Young, Math.round(DAY_SECONDS * 0.5));
  age(a2.arn, a2Old, Math.round(DAY_SECONDS * 1.5));
  age(bch.arn, bOld, DAY_SECONDS * 3);
  age(cch.arn, cOld, DAY_SECONDS * 3);

  for (const [arn, days] of [[a, 1], [c, 5]]) {
    await ctx.id.send(
      new PutAppInstanceRetentionSettingsCommand({
        AppInstanceArn: arn,
        AppInstanceRetentionSettings: { ChannelRetentionSettings: { RetentionDays: days } },
      }),
    );
  }

  // The janitor gets to it within a few of its 300 ms rounds (generous for a loaded machine).
  const deadline = Date.now() + 30000;
  const keptA1 = [...a1Young, ...a1New].sort();
  while (Date.now() < deadline) {
    if (JSON.stringify(storedIds(a1.arn)) === JSON.stringify(keptA1) && storedIds(a2.arn).length === a2New.length) break;
    await sleep(200);
  }

  // Through the stock SDK: the old messages are gone, the newer ones are there.
  assert.deepEqual(await listedIds(a1), keptA1, 'a1: ListChannelMessages shows only messages within the period');
  assert.deepEqual(await listedIds(a2), [...a2New].sort(), 'a2: ListChannelMessages shows only messages within the period');
  for (const id of [...a1Old.slice(0, 2), a2Old[0]]) {
    const ch = a1Old.includes(id) ? a1 : a2;
    await assertRejects(
      ctx.msg.send(new GetChannelMessageCommand({ ChannelArn: ch.arn, MessageId: id, ChimeBearer: ch.owner.arn })),
      'NotFoundException',
      `GetChannelMessage of a message past the period (${id})`,
    );
  }
  const young = await ctx.msg.send(
    new GetChannelMessageCommand({ ChannelArn: a1.arn, MessageId: a1Young[0], ChimeBearer: a1.owner.arn }),
  );
  assert.equal(young.ChannelMessage.Content, 'a1 young 0', 'a message half a period old is kept');

  // The rows are deleted, not hidden.
  assert.deepEqual(storedIds(a1.arn), keptA1, 'a1 rows');
  assert.deepEqual(storedIds(a2.arn), [...a2New].sort(), 'a2 rows');

  // Other AppInstances: B has no retention, C's period (5 days) is longer than the messages' age.
  assert.deepEqual(await listedIds(bch), [...bOld].sort(), 'AppInstance without retention untouched');
  assert.deepEqual(await listedIds(cch), [...cOld].sort(), 'AppInstance with a longer period untouched');

  // Nothing else of A went: the channels and their memberships.
  for (const ch of [a1, a2]) {
    const d = await ctx.msg.send(new DescribeChannelCommand({ ChannelArn: ch.arn, ChimeBearer: ch.owner.arn }));
    assert.equal(d.Channel.ChannelArn, ch.arn);
    const m = await ctx.msg.send(new ListChannelMembershipsCommand({ ChannelArn: ch.arn, ChimeBearer: ch.owner.arn }));
    assert.equal(m.ChannelMemberships.length, ch.others.length + 1, 'memberships kept');
  }

  // A message sent now is kept, and once it is past the period it goes too.
  const fresh = await send(a2, 'fresh');
  await sleep(1000);
  assert.ok((await listedIds(a2)).includes(fresh), 'a new message is kept');
  age(a2.arn, [fresh], DAY_SECONDS * 2);
  const until = Date.now() + 30000;
  while (storedIds(a2.arn).includes(fresh) && Date.now() < until) await sleep(200);
  assert.ok(!(await listedIds(a2)).includes(fresh), 'the message is deleted once past the period');
});

test('a retention sweep never waits for a message row a writer holds, and deletes it afterwards', async () => {
  const a = await ctx.newAppInstance();
  const ch = await channelWithMembers(a, 2);
  const ids = await sendMany(ch, 5, 'held');
  age(ch.arn, ids, DAY_SECONDS * 2);
  // Another session holds one old message row (as an UpdateChannelMessage in progress would)
  // while the period is set; the sweep skips that row instead of queueing behind it.
  const held = ids[2];
  const holder = await holdingSession(
    `begin; select message_id from carillon.channel_messages where channel_arn = '${ch.arn.replace(/'/g, "''")}' and message_id = '${held}' for update;`,
  );
  assert.ok(holder.held, 'the holder has the row');
  try {
    await ctx.id.send(
      new PutAppInstanceRetentionSettingsCommand({
        AppInstanceArn: a,
        AppInstanceRetentionSettings: { ChannelRetentionSettings: { RetentionDays: 1 } },
      }),
    );
    const deadline = Date.now() + 30000;
    while (storedIds(ch.arn).length > 1 && Date.now() < deadline) await sleep(200);
    assert.deepEqual(storedIds(ch.arn), [held], 'every old message but the held one is deleted while it is held');
  } finally {
    await holder.end('rollback;');
  }
  const deadline = Date.now() + 30000;
  while (storedIds(ch.arn).length > 0 && Date.now() < deadline) await sleep(200);
  assert.deepEqual(storedIds(ch.arn), [], 'the held message goes at a later sweep');
});
