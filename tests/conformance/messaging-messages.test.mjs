// ChannelMessage: SendChannelMessage, GetChannelMessage, ListChannelMessages, UpdateChannelMessage,
// RedactChannelMessage, DeleteChannelMessage, GetChannelMessageStatus -- access rules, limits,
// NON_PERSISTENT and targeted messages, idempotency, keyset pagination under concurrent writes,
// ordering, and the exact events every write records (none for a refused one).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateAppInstanceAdminCommand, CreateAppInstanceBotCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  CreateChannelCommand,
  CreateChannelMembershipCommand,
  DeleteChannelMessageCommand,
  DescribeChannelCommand,
  GetChannelMessageCommand,
  GetChannelMessageStatusCommand,
  ListChannelMessagesCommand,
  RedactChannelMessageCommand,
  SendChannelMessageCommand,
  UpdateChannelMessageCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { messagingClient, mintUserCredentials, rfc3986, signedFetch } from './lib/clients.mjs';
import {
  addModeratorRow,
  eventsAfter,
  lastPosition,
  placeInSubChannel,
  pushChannelClock,
  sql,
  storedMessages,
} from './lib/events-msg.mjs';
import { holdingSession, psqlTextAsync } from './lib/eventlog.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { assertRecentDate, assertRejects, lexConfig, uniq } from './lib/util.mjs';

const ctx = useCarillon();
const t0 = Date.now();
const MESSAGE_ID_RE = /^[0-9a-f]{32}$/;
const ISO_MS_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function plain(x) {
  return JSON.parse(JSON.stringify(x));
}

const iso = (d) => d.toISOString();

// An AppInstance with: mod (creator: moderator and member), alice and bob (members), carol (member,
// the "third party"), hidden (HIDDEN member), outsider (user of the AppInstance, no membership),
// admin (AppInstanceAdmin, not a member), xmod (moderator, not a member), and one channel.
async function world(channelInput = {}, { withHidden = true, withMembers = true } = {}) {
  const ai = await ctx.newAppInstance();
  const mod = await ctx.newUser(ai);
  const alice = await ctx.newUser(ai, { Name: 'Alice' });
  const bob = await ctx.newUser(ai, { Name: 'Bob' });
  const carol = await ctx.newUser(ai, { Name: 'Carol' });
  const hidden = await ctx.newUser(ai);
  const outsider = await ctx.newUser(ai);
  const admin = await ctx.newUser(ai);
  const xmod = await ctx.newUser(ai);
  await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: admin.arn }));
  const ch = await ctx.msg.send(
    new CreateChannelCommand({
      AppInstanceArn: ai,
      Name: uniq('chan'),
      ChimeBearer: mod.arn,
      ...(withMembers ? { MemberArns: [alice.arn, bob.arn, carol.arn] } : {}),
      Mode: 'RESTRICTED',
      Privacy: 'PRIVATE',
      ...channelInput,
    }),
  );
  const channel = ch.ChannelArn;
  if (withHidden) {
    await ctx.msg.send(
      new CreateChannelMembershipCommand({ ChannelArn: channel, MemberArn: hidden.arn, Type: 'HIDDEN', ChimeBearer: mod.arn }),
    );
  }
  addModeratorRow(channel, xmod.arn);
  return { ai, mod, alice, bob, carol, hidden, outsider, admin, xmod, channel };
}

function send(channel, bearer, input = {}, client = ctx.msg) {
  return client.send(
    new SendChannelMessageCommand({
      ChannelArn: channel,
      ChimeBearer: bearer,
      Content: 'hello',
      Type: 'STANDARD',
      Persistence: 'PERSISTENT',
      ...input,
    }),
  );
}

function get(channel, id, bearer, input = {}) {
  return ctx.msg.send(new GetChannelMessageCommand({ ChannelArn: channel, MessageId: id, ChimeBearer: bearer, ...input }));
}

function list(channel, bearer, input = {}) {
  return ctx.msg.send(new ListChannelMessagesCommand({ ChannelArn: channel, ChimeBearer: bearer, ...input }));
}

async function listAll(channel, bearer, input = {}) {
  const all = [];
  let token;
  for (let i = 0; i < 1000; i++) {
    const out = await list(channel, bearer, { ...input, NextToken: token });
    all.push(...out.ChannelMessages);
    if (!out.NextToken) return all;
    token = out.NextToken;
  }
  assert.fail('listing did not end');
}

function update(channel, id, bearer, input = {}) {
  return ctx.msg.send(
    new UpdateChannelMessageCommand({ ChannelArn: channel, MessageId: id, ChimeBearer: bearer, Content: 'edited', ...input }),
  );
}

function redact(channel, id, bearer, input = {}) {
  return ctx.msg.send(new RedactChannelMessageCommand({ ChannelArn: channel, MessageId: id, ChimeBearer: bearer, ...input }));
}

function del(channel, id, bearer, input = {}) {
  return ctx.msg.send(new DeleteChannelMessageCommand({ ChannelArn: channel, MessageId: id, ChimeBearer: bearer, ...input }));
}

function status(channel, id, bearer) {
  return ctx.msg.send(new GetChannelMessageStatusCommand({ ChannelArn: channel, MessageId: id, ChimeBearer: bearer }));
}

// A refused write: the named error, and neither an event nor a change of the stored messages.
async function refusedWrite(w, promise, name, what) {
  const pos = lastPosition(w.channel);
  const before = storedMessages(w.channel);
  await assertRejects(promise, name, what);
  assert.deepEqual(eventsAfter(w.channel, pos), [], `${what}: a refused write records no event`);
  assert.deepEqual(storedMessages(w.channel), before, `${what}: a refused write changes no message`);
}

// The one event a write must have recorded after `pos`.
function oneEvent(channel, pos, what = '') {
  const evs = eventsAfter(channel, pos);
  assert.equal(evs.length, 1, `${what}exactly one event, got ${JSON.stringify(evs.map((e) => e.event_type))}`);
  return evs[0];
}

// The websocket form of a REST ChannelMessage (GetChannelMessage): ISO-8601 timestamps.
function wsForm(restMessage) {
  const d = plain(restMessage);
  for (const k of ['CreatedTimestamp', 'LastUpdatedTimestamp', 'LastEditedTimestamp']) {
    if (restMessage[k] !== undefined) d[k] = iso(restMessage[k]);
  }
  return d;
}

test('SendChannelMessage: 201, an opaque MessageId, the stored message, its CREATE_CHANNEL_MESSAGE event, LastMessageTimestamp', async () => {
  const w = await world();
  const pos = lastPosition(w.channel);
  const out = await send(w.channel, w.alice.arn, {
    Content: 'Hello, "world" \u00e9 \ud83d\udd14',
    Metadata: '{"attachment":"x.png"}',
    ContentType: 'text/markdown',
    MessageAttributes: { topic: { StringValues: ['news', 'sport'] } },
    PushNotification: { Title: 'T', Body: 'B', Type: 'DEFAULT' },
  });
  assert.equal(out.$metadata.httpStatusCode, 201);
  assert.equal(out.ChannelArn, w.channel);
  assert.match(out.MessageId, MESSAGE_ID_RE);
  assert.deepEqual(out.Status, { Value: 'SENT' });
  assert.equal(out.SubChannelId, undefined);

  const got = (await get(w.channel, out.MessageId, w.bob.arn)).ChannelMessage;
  assertRecentDate(got.CreatedTimestamp, t0, 'CreatedTimestamp');
  assert.deepEqual(plain(got), {
    ChannelArn: w.channel,
    MessageId: out.MessageId,
    Content: 'Hello, "world" \u00e9 \ud83d\udd14',
    Metadata: '{"attachment":"x.png"}',
    Type: 'STANDARD',
    CreatedTimestamp: got.CreatedTimestamp.toISOString(),
    LastUpdatedTimestamp: got.CreatedTimestamp.toISOString(),
    Sender: { Arn: w.alice.arn, Name: 'Alice' },
    Redacted: false,
    Persistence: 'PERSISTENT',
    Status: { Value: 'SENT' },
    MessageAttributes: { topic: { StringValues: ['news', 'sport'] } },
    ContentType: 'text/markdown',
  });

  const e = oneEvent(w.channel, pos);
  assert.equal(e.event_type, 'CREATE_CHANNEL_MESSAGE');
  assert.equal(e.message_type, 'STANDARD');
  assert.equal(e.audience, 'members');
  assert.deepEqual(e.arns, []);
  assert.equal(e.app_instance_id, w.ai.split('/').pop());
  assert.match(e.payload.CreatedTimestamp, ISO_MS_RE);
  assert.deepEqual(e.payload, wsForm(got));

  const [row] = storedMessages(w.channel);
  assert.deepEqual(row.push_notification, { Title: 'T', Body: 'B', Type: 'DEFAULT' });
  assert.equal(row.sender_arn, w.alice.arn);

  const chan = (await ctx.msg.send(new DescribeChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.mod.arn }))).Channel;
  assert.equal(chan.LastMessageTimestamp.getTime(), got.CreatedTimestamp.getTime(), 'LastMessageTimestamp follows the message');
});

test('SendChannelMessage: members send (DEFAULT user, moderator-member, a bot, user credentials); everyone else is refused', async () => {
  const w = await world();
  // Allowed.
  for (const who of [w.alice, w.mod]) {
    const out = await send(w.channel, who.arn);
    assert.equal(out.$metadata.httpStatusCode, 201);
  }
  const bot = await ctx.id.send(
    new CreateAppInstanceBotCommand({ AppInstanceArn: w.ai, Name: 'Helper Bot', Configuration: lexConfig() }),
  );
  await ctx.msg.send(
    new CreateChannelMembershipCommand({ ChannelArn: w.channel, MemberArn: bot.AppInstanceBotArn, Type: 'DEFAULT', ChimeBearer: w.mod.arn }),
  );
  const pos = lastPosition(w.channel);
  const byBot = await send(w.channel, bot.AppInstanceBotArn, { Content: 'beep' });
  assert.deepEqual(oneEvent(w.channel, pos).payload.Sender, { Arn: bot.AppInstanceBotArn, Name: 'Helper Bot' });
  assert.deepEqual(plain((await get(w.channel, byBot.MessageId, w.alice.arn)).ChannelMessage.Sender), {
    Arn: bot.AppInstanceBotArn,
    Name: 'Helper Bot',
  });
  const bobClient = messagingClient(ctx.srv, await mintUserCredentials(ctx.srv, w.bob.arn));
  try {
    const out = await send(w.channel, w.bob.arn, { Content: 'as myself' }, bobClient);
    assert.equal(out.$metadata.httpStatusCode, 201);
    // User credentials act only as their own user.
    await refusedWrite(w, send(w.channel, w.alice.arn, {}, bobClient), 'ForbiddenException', 'user credentials as another bearer');
  } finally {
    bobClient.destroy();
  }

  // Refused: not members (a plain user, an AppInstanceAdmin, a moderator), HIDDEN members, identities
  // of another AppInstance.
  await refusedWrite(w, send(w.channel, w.outsider.arn), 'ForbiddenException', 'non-member');
  await refusedWrite(w, send(w.channel, w.admin.arn), 'ForbiddenException', 'AppInstanceAdmin that is not a member');
  await refusedWrite(w, send(w.channel, w.xmod.arn), 'ForbiddenException', 'moderator that is not a member');
  await refusedWrite(w, send(w.channel, w.hidden.arn), 'ForbiddenException', 'HIDDEN member');
  await refusedWrite(w, send(w.channel, w.hidden.arn, { Persistence: 'NON_PERSISTENT' }), 'ForbiddenException', 'HIDDEN member, NON_PERSISTENT');
  const otherAi = await ctx.newAppInstance();
  const stranger = await ctx.newUser(otherAi);
  await refusedWrite(w, send(w.channel, stranger.arn), 'ForbiddenException', 'user of another AppInstance');
  await assertRejects(send(`${w.ai}/channel/${randomUUID()}`, w.alice.arn), 'NotFoundException', 'unknown channel');
  assert.equal(storedMessages(w.channel).length, 4);
});

test('SendChannelMessage limits: STANDARD 4096 bytes, Metadata 1024, CONTROL 30 bytes and no Metadata', async () => {
  const w = await world();
  // 4096 bytes in 2048 characters is fine; one more byte is not, though far below 4096 characters.
  const ok = await send(w.channel, w.alice.arn, { Content: '\u00e9'.repeat(2048), Metadata: 'm'.repeat(1024) });
  assert.equal((await get(w.channel, ok.MessageId, w.alice.arn)).ChannelMessage.Content.length, 2048);
  await refusedWrite(w, send(w.channel, w.alice.arn, { Content: '\u00e9'.repeat(2048) + 'a' }), 'BadRequestException', '4097-byte content');
  await refusedWrite(w, send(w.channel, w.alice.arn, { Content: 'x'.repeat(4097) }), 'BadRequestException', '4097-character content');
  await refusedWrite(w, send(w.channel, w.alice.arn, { Metadata: 'm'.repeat(1025) }), 'BadRequestException', '1025-character metadata');

  const pos = lastPosition(w.channel);
  const ctl = await send(w.channel, w.alice.arn, { Type: 'CONTROL', Content: 'c'.repeat(30) });
  const e = oneEvent(w.channel, pos);
  assert.equal(e.event_type, 'CREATE_CHANNEL_MESSAGE');
  assert.equal(e.message_type, 'CONTROL', 'the message-type header of a CONTROL message');
  assert.equal(e.payload.Type, 'CONTROL');
  assert.equal(e.payload.MessageId, ctl.MessageId);
  await refusedWrite(w, send(w.channel, w.alice.arn, { Type: 'CONTROL', Content: 'c'.repeat(31) }), 'BadRequestException', 'CONTROL 31 bytes');
  await refusedWrite(w, send(w.channel, w.alice.arn, { Type: 'CONTROL', Content: '\u00e9'.repeat(16) }), 'BadRequestException', 'CONTROL 16 characters, 32 bytes');
  await refusedWrite(w, send(w.channel, w.alice.arn, { Type: 'CONTROL', Content: 'c', Metadata: 'm' }), 'BadRequestException', 'CONTROL with Metadata');
  await refusedWrite(w, send(w.channel, w.alice.arn, { Type: 'CONTROL', Content: 'c', Metadata: '' }), 'BadRequestException', 'CONTROL with empty Metadata');
  await refusedWrite(w, send(w.channel, w.alice.arn, { Content: '' }), 'BadRequestException', 'empty content');
  await refusedWrite(w, send(w.channel, w.alice.arn, { SubChannelId: 'sub1' }), 'BadRequestException', 'SubChannelId on a channel that is not elastic');
});

test('NON_PERSISTENT: an event, but never stored, never found, never listed, no LastMessageTimestamp', async () => {
  const w = await world();
  const before = (await ctx.msg.send(new DescribeChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.mod.arn }))).Channel;
  assert.equal(before.LastMessageTimestamp, undefined);
  const pos = lastPosition(w.channel);
  const out = await send(w.channel, w.alice.arn, { Persistence: 'NON_PERSISTENT', Type: 'CONTROL', Content: 'typing' });
  assert.equal(out.$metadata.httpStatusCode, 201);
  assert.match(out.MessageId, MESSAGE_ID_RE);
  assert.deepEqual(out.Status, { Value: 'SENT' });
  const e = oneEvent(w.channel, pos);
  assert.equal(e.event_type, 'CREATE_CHANNEL_MESSAGE');
  assert.equal(e.message_type, 'CONTROL');
  assert.equal(e.audience, 'members');
  assert.deepEqual(e.arns, []);
  assert.equal(e.payload.MessageId, out.MessageId);
  assert.equal(e.payload.Persistence, 'NON_PERSISTENT');
  assert.equal(e.payload.Content, 'typing');
  assert.equal(e.payload.Redacted, false);
  assert.deepEqual(e.payload.Sender, { Arn: w.alice.arn, Name: 'Alice' });
  assert.match(e.payload.CreatedTimestamp, ISO_MS_RE);
  assert.ok(Math.abs(Date.parse(e.payload.CreatedTimestamp) - Date.now()) < 60000);

  assert.deepEqual(storedMessages(w.channel), []);
  await assertRejects(get(w.channel, out.MessageId, w.alice.arn), 'NotFoundException', 'Get of a NON_PERSISTENT message');
  assert.deepEqual((await list(w.channel, w.alice.arn)).ChannelMessages, []);
  await assertRejects(update(w.channel, out.MessageId, w.alice.arn), 'NotFoundException', 'Update of a NON_PERSISTENT message');
  const after = (await ctx.msg.send(new DescribeChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.mod.arn }))).Channel;
  assert.equal(after.LastMessageTimestamp, undefined, 'a NON_PERSISTENT message does not set LastMessageTimestamp');
});

test('targeted messages: only sender and target hear and see them; the target must be a member', async () => {
  const w = await world();
  const pos = lastPosition(w.channel);
  const out = await send(w.channel, w.alice.arn, { Content: 'psst', Target: [{ MemberArn: w.bob.arn }] });
  const e = oneEvent(w.channel, pos);
  assert.equal(e.event_type, 'CREATE_CHANNEL_MESSAGE');
  assert.equal(e.audience, 'only');
  assert.deepEqual(e.arns, [w.alice.arn, w.bob.arn]);
  assert.deepEqual(e.payload.Target, [{ MemberArn: w.bob.arn }]);

  for (const who of [w.alice, w.bob]) {
    const got = (await get(w.channel, out.MessageId, who.arn)).ChannelMessage;
    assert.deepEqual(plain(got.Target), [{ MemberArn: w.bob.arn }]);
    assert.deepEqual((await list(w.channel, who.arn)).ChannelMessages.map((m) => m.MessageId), [out.MessageId]);
  }
  for (const who of [w.carol, w.mod, w.admin, w.hidden]) {
    await assertRejects(get(w.channel, out.MessageId, who.arn), 'NotFoundException', 'Get of a targeted message by a third party');
    assert.deepEqual((await list(w.channel, who.arn)).ChannelMessages, [], 'List by a third party');
  }
  await assertRejects(status(w.channel, out.MessageId, w.carol.arn), 'NotFoundException', 'status of a targeted message by a third party');
  // Moderators cannot act on what they cannot see.
  await refusedWrite(w, redact(w.channel, out.MessageId, w.mod.arn), 'NotFoundException', 'moderator redacts a targeted message of others');
  await refusedWrite(w, update(w.channel, out.MessageId, w.carol.arn), 'NotFoundException', 'third party updates a targeted message');

  // Sender updates it: the event keeps the audience.
  let p = lastPosition(w.channel);
  await update(w.channel, out.MessageId, w.alice.arn, { Content: 'psst!' });
  let ev = oneEvent(w.channel, p);
  assert.equal(ev.event_type, 'UPDATE_CHANNEL_MESSAGE');
  assert.equal(ev.audience, 'only');
  assert.deepEqual(ev.arns, [w.alice.arn, w.bob.arn]);

  // Self-targeted: the audience is the sender alone.
  p = lastPosition(w.channel);
  await send(w.channel, w.carol.arn, { Content: 'note to self', Target: [{ MemberArn: w.carol.arn }] });
  ev = oneEvent(w.channel, p);
  assert.equal(ev.audience, 'only');
  assert.deepEqual(ev.arns, [w.carol.arn]);

  // A HIDDEN member may be a target; a non-member may not; Target needs a MemberArn.
  await send(w.channel, w.alice.arn, { Content: 'to the observer', Target: [{ MemberArn: w.hidden.arn }] });
  await refusedWrite(w, send(w.channel, w.alice.arn, { Target: [{ MemberArn: w.outsider.arn }] }), 'BadRequestException', 'target not a member');
  await refusedWrite(w, send(w.channel, w.alice.arn, { Target: [{}] }), 'BadRequestException', 'target without MemberArn');

  // An AppInstanceAdmin deletes a targeted message it cannot see; the event goes to sender and target only.
  p = lastPosition(w.channel);
  await del(w.channel, out.MessageId, w.admin.arn);
  ev = oneEvent(w.channel, p);
  assert.equal(ev.event_type, 'DELETE_CHANNEL_MESSAGE');
  assert.equal(ev.audience, 'only');
  assert.deepEqual(ev.arns, [w.alice.arn, w.bob.arn]);
  await assertRejects(get(w.channel, out.MessageId, w.bob.arn), 'NotFoundException', 'deleted');
});

test('ClientRequestToken: a retry returns the same MessageId, stores one message and records one event', async () => {
  const w = await world();
  const token = uniq('tok').replace(/-/g, '_');
  const pos = lastPosition(w.channel);
  const a = await send(w.channel, w.alice.arn, { Content: 'once', ClientRequestToken: token });
  await sleep(5); // a retry comes later: a message id that took the retry's time would differ
  const b = await send(w.channel, w.alice.arn, { Content: 'once', ClientRequestToken: token });
  assert.equal(b.$metadata.httpStatusCode, 201);
  assert.equal(b.MessageId, a.MessageId);
  assert.deepEqual(plain({ ...b, $metadata: undefined }), plain({ ...a, $metadata: undefined }));
  assert.equal(storedMessages(w.channel).length, 1);
  assert.equal(oneEvent(w.channel, pos).payload.MessageId, a.MessageId);

  // The same as a raw signed request, byte for byte what a retrying SDK sends.
  const body = { Content: 'raw once', Type: 'STANDARD', Persistence: 'PERSISTENT', ClientRequestToken: `${token}_raw` };
  const req = {
    method: 'POST',
    path: `/channels/${rfc3986(w.channel)}/messages`,
    headers: { 'x-amz-chime-bearer': w.alice.arn },
    body,
  };
  const p2 = lastPosition(w.channel);
  const r1 = await signedFetch(ctx.srv, req);
  await sleep(5);
  const r2 = await signedFetch(ctx.srv, req);
  assert.equal(r1.status, 201, r1.body);
  assert.equal(r2.status, 201, r2.body);
  assert.equal(r2.json.MessageId, r1.json.MessageId);
  assert.equal(storedMessages(w.channel).length, 2);
  assert.equal(oneEvent(w.channel, p2).payload.MessageId, r1.json.MessageId);

  // The same token with other content is a conflict, and records nothing.
  await refusedWrite(w, send(w.channel, w.alice.arn, { Content: 'twice', ClientRequestToken: token }), 'ConflictException', 'token reused');
  // Without a token of its own the SDK generates one per call: two sends, two messages.
  await send(w.channel, w.alice.arn);
  await send(w.channel, w.alice.arn);
  assert.equal(storedMessages(w.channel).length, 4);
});

test('MessageIds grow with the send time within a channel, and stay unique within one millisecond', async () => {
  // Time-ordered ids keep a busy channel's inserts at the right edge of the primary key instead of
  // on random pages (sql/migrations/095_message_ids.sql).
  const w = await world();
  const ids = [];
  for (let i = 0; i < 6; i++) {
    ids.push((await send(w.channel, w.alice.arn, { Content: `t${i}` })).MessageId);
    await sleep(3);
  }
  assert.deepEqual([...ids].sort(), ids, 'ids sort in send order');
  // Sends at the same time (concurrent: several land in one millisecond) still get distinct ids.
  const burst = await Promise.all(Array.from({ length: 16 }, (_, i) => send(w.channel, w.bob.arn, { Content: `b${i}` })));
  assert.equal(new Set(burst.map((m) => m.MessageId)).size, 16);
  const stored = storedMessages(w.channel).map((m) => m.message_id);
  assert.equal(stored.length, 22);
  assert.ok(stored.every((id) => id >= ids[0]), 'every later message sorts after the first');
});

test('GetChannelMessage: members, moderators and admins read; non-members only on PUBLIC channels', async () => {
  const w = await world();
  const m = await send(w.channel, w.alice.arn, { Content: 'readable' });
  for (const who of [w.alice, w.bob, w.hidden, w.mod, w.xmod, w.admin]) {
    const out = await get(w.channel, m.MessageId, who.arn);
    assert.equal(out.$metadata.httpStatusCode, 200);
    assert.equal(out.ChannelMessage.Content, 'readable');
  }
  await assertRejects(get(w.channel, m.MessageId, w.outsider.arn), 'ForbiddenException', 'non-member of a PRIVATE channel');
  await assertRejects(get(w.channel, 'nosuchmessage', w.alice.arn), 'NotFoundException', 'unknown message');
  await assertRejects(get(w.channel, m.MessageId, w.alice.arn, { SubChannelId: 's1' }), 'BadRequestException', 'SubChannelId on a plain channel');

  const pub = await world({ Privacy: 'PUBLIC' });
  const pm = await send(pub.channel, pub.alice.arn, { Content: 'public' });
  assert.equal((await get(pub.channel, pm.MessageId, pub.outsider.arn)).ChannelMessage.Content, 'public');
  assert.deepEqual((await list(pub.channel, pub.outsider.arn)).ChannelMessages.map((x) => x.MessageId), [pm.MessageId]);
  // Reading is not sending.
  await refusedWrite(pub, send(pub.channel, pub.outsider.arn), 'ForbiddenException', 'non-member sends to a PUBLIC channel');
});

test('ListChannelMessages: DESCENDING by default, ASCENDING, summaries without ChannelArn/Persistence, paging, access', async () => {
  const w = await world();
  const ids = [];
  for (let i = 0; i < 7; i++) {
    ids.push((await send(w.channel, i % 2 ? w.bob.arn : w.alice.arn, { Content: `m${i}` })).MessageId);
  }
  const desc = await list(w.channel, w.carol.arn);
  assert.equal(desc.$metadata.httpStatusCode, 200);
  assert.equal(desc.ChannelArn, w.channel);
  assert.equal(desc.NextToken, undefined);
  assert.equal(desc.SubChannelId, undefined);
  assert.deepEqual(desc.ChannelMessages.map((m) => m.MessageId), [...ids].reverse(), 'default order: newest first');
  assert.deepEqual((await list(w.channel, w.carol.arn, { SortOrder: 'DESCENDING' })).ChannelMessages.map((m) => m.MessageId), [...ids].reverse());
  const asc = await list(w.channel, w.carol.arn, { SortOrder: 'ASCENDING' });
  assert.deepEqual(asc.ChannelMessages.map((m) => m.MessageId), ids);
  const first = asc.ChannelMessages[0];
  const full = (await get(w.channel, ids[0], w.carol.arn)).ChannelMessage;
  const expected = plain(full);
  delete expected.ChannelArn;
  delete expected.Persistence;
  assert.deepEqual(plain(first), expected, 'the summary is the message without ChannelArn and Persistence');

  // On the wire: exactly the ChannelMessageSummary members.
  const raw = await signedFetch(ctx.srv, {
    method: 'GET',
    path: `/channels/${rfc3986(w.channel)}/messages`,
    query: { 'sort-order': 'ASCENDING', 'max-results': '1' },
    headers: { 'x-amz-chime-bearer': w.carol.arn },
  });
  assert.equal(raw.status, 200, raw.body);
  assert.deepEqual(Object.keys(raw.json).sort(), ['ChannelArn', 'ChannelMessages', 'NextToken']);
  assert.deepEqual(Object.keys(raw.json.ChannelMessages[0]).sort(), [
    'Content',
    'CreatedTimestamp',
    'LastUpdatedTimestamp',
    'MessageId',
    'Redacted',
    'Sender',
    'Status',
    'Type',
  ]);
  assert.equal(typeof raw.json.ChannelMessages[0].CreatedTimestamp, 'number');

  // Paging both ways with MaxResults 3.
  for (const [order, want] of [
    ['ASCENDING', ids],
    ['DESCENDING', [...ids].reverse()],
  ]) {
    const pages = [];
    let token;
    do {
      const out = await list(w.channel, w.carol.arn, { SortOrder: order, MaxResults: 3, NextToken: token });
      pages.push(out.ChannelMessages.map((m) => m.MessageId));
      token = out.NextToken;
    } while (token);
    assert.deepEqual(pages.map((p) => p.length), [3, 3, 1], `${order} page sizes`);
    assert.deepEqual(pages.flat(), want, `${order} pages`);
  }
  // A NextToken belongs to its listing.
  const p1 = await list(w.channel, w.carol.arn, { SortOrder: 'ASCENDING', MaxResults: 3 });
  await assertRejects(list(w.channel, w.carol.arn, { SortOrder: 'DESCENDING', MaxResults: 3, NextToken: p1.NextToken }), 'BadRequestException', 'token of another listing');

  // Access: members (HIDDEN too), moderators and admins that are not members; not outsiders.
  for (const who of [w.hidden, w.xmod, w.admin]) {
    assert.equal((await list(w.channel, who.arn)).ChannelMessages.length, 7);
  }
  await assertRejects(list(w.channel, w.outsider.arn), 'ForbiddenException', 'non-member lists a PRIVATE channel');
  await assertRejects(list(`${w.ai}/channel/${randomUUID()}`, w.alice.arn), 'NotFoundException', 'unknown channel');
  await assertRejects(list(w.channel, w.alice.arn, { SubChannelId: 's1' }), 'BadRequestException', 'SubChannelId on a plain channel');
});

test('ListChannelMessages: NotBefore and NotAfter are inclusive bounds on CreatedTimestamp', async () => {
  const w = await world();
  const msgs = [];
  for (let i = 0; i < 4; i++) {
    const { MessageId } = await send(w.channel, w.alice.arn, { Content: `t${i}` });
    msgs.push((await get(w.channel, MessageId, w.alice.arn)).ChannelMessage);
    await sleep(15); // distinct milliseconds
  }
  const at = (i) => msgs[i].CreatedTimestamp;
  const plus = (d, ms) => new Date(d.getTime() + ms);
  const ids = (out) => out.ChannelMessages.map((m) => m.MessageId);
  const want = (...is) => is.map((i) => msgs[i].MessageId);
  for (let i = 1; i < 4; i++) assert.ok(at(i) > at(i - 1), 'timestamps are distinct');

  assert.deepEqual(ids(await list(w.channel, w.bob.arn, { SortOrder: 'ASCENDING', NotBefore: at(1) })), want(1, 2, 3));
  assert.deepEqual(ids(await list(w.channel, w.bob.arn, { SortOrder: 'ASCENDING', NotBefore: plus(at(1), 1) })), want(2, 3));
  assert.deepEqual(ids(await list(w.channel, w.bob.arn, { SortOrder: 'ASCENDING', NotAfter: at(2) })), want(0, 1, 2));
  assert.deepEqual(ids(await list(w.channel, w.bob.arn, { SortOrder: 'ASCENDING', NotAfter: plus(at(2), -1) })), want(0, 1));
  assert.deepEqual(ids(await list(w.channel, w.bob.arn, { NotBefore: at(1), NotAfter: at(2) })), want(2, 1));
  assert.deepEqual(ids(await list(w.channel, w.bob.arn, { NotBefore: at(2), NotAfter: at(2) })), want(2));
  assert.deepEqual(ids(await list(w.channel, w.bob.arn, { NotBefore: at(3), NotAfter: at(0) })), []);
  // Paging inside a window.
  const page1 = await list(w.channel, w.bob.arn, { SortOrder: 'ASCENDING', NotBefore: at(1), MaxResults: 2 });
  assert.deepEqual(ids(page1), want(1, 2));
  const page2 = await list(w.channel, w.bob.arn, { SortOrder: 'ASCENDING', NotBefore: at(1), MaxResults: 2, NextToken: page1.NextToken });
  assert.deepEqual(ids(page2), want(3));
  assert.equal(page2.NextToken, undefined);

  // The query form botocore sends (microseconds) and a raw one on a whole second.
  const raw = await signedFetch(ctx.srv, {
    method: 'GET',
    path: `/channels/${rfc3986(w.channel)}/messages`,
    query: { 'sort-order': 'ASCENDING', 'not-before': at(1).toISOString().replace('Z', '000Z') },
    headers: { 'x-amz-chime-bearer': w.bob.arn },
  });
  assert.equal(raw.status, 200, raw.body);
  assert.deepEqual(raw.json.ChannelMessages.map((m) => m.MessageId), want(1, 2, 3));
});

test('same-millisecond messages keep their send order (ties broken by commit order)', async () => {
  const w = await world();
  // The channel's clock ahead of the request time: every message takes the channel's
  // last-message time, i.e. all of them share one CreatedTimestamp.
  const when = pushChannelClock(w.channel, 60000);
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push((await send(w.channel, w.alice.arn, { Content: `same ${i}` })).MessageId);
  const asc = await listAll(w.channel, w.bob.arn, { SortOrder: 'ASCENDING', MaxResults: 2 });
  assert.deepEqual(asc.map((m) => m.MessageId), ids, 'ascending = send order, across pages');
  assert.ok(asc.every((m) => m.CreatedTimestamp.toISOString() === when), `all share ${when}`);
  const desc = await listAll(w.channel, w.bob.arn, { MaxResults: 4 });
  assert.deepEqual(desc.map((m) => m.MessageId), [...ids].reverse());
  // NotBefore/NotAfter at exactly that millisecond include all of them.
  assert.equal((await list(w.channel, w.bob.arn, { NotBefore: new Date(when), NotAfter: new Date(when) })).ChannelMessages.length, 6);

  // Messages sent concurrently: one (CreatedTimestamp, commit order) sequence, never earlier than
  // the message before it.
  await Promise.all(Array.from({ length: 20 }, (_, i) => send(w.channel, i % 2 ? w.alice.arn : w.bob.arn, { Content: `c${i}` })));
  const rows = storedMessages(w.channel);
  const all = await listAll(w.channel, w.carol.arn, { SortOrder: 'ASCENDING', MaxResults: 7 });
  assert.deepEqual(all.map((m) => m.MessageId), rows.map((r) => r.message_id));
  for (let i = 1; i < rows.length; i++) {
    assert.ok(rows[i].seq > rows[i - 1].seq, 'seq grows with created_at');
    assert.ok(all[i].CreatedTimestamp >= all[i - 1].CreatedTimestamp);
  }
});

test('ListChannelMessages pagination under concurrent sends: no duplicates, ordered, nothing pre-existing skipped', async () => {
  const w = await world();
  const pre = [];
  for (let i = 0; i < 12; i++) pre.push((await send(w.channel, w.alice.arn, { Content: `pre ${i}` })).MessageId);

  let writing = true;
  const written = [];
  const writer = (async () => {
    let i = 0;
    while (writing && i < 200) {
      const batch = await Promise.all(
        [0, 1, 2].map((k) => send(w.channel, k === 1 ? w.bob.arn : w.carol.arn, { Content: `during ${i}-${k}` })),
      );
      written.push(...batch.map((b) => b.MessageId));
      i++;
    }
  })();

  const walked = [];
  let token;
  let pages = 0;
  try {
    // The walk starts once the writer's first batch is committed (it goes on writing meanwhile):
    // otherwise, on a fast read path, the 4 pages of pre-existing messages could all be walked
    // before any concurrent write committed, and the walk would see no concurrent write at all.
    for (let t = 0; written.length === 0 && t < 1000; t++) await sleep(5);
    do {
      const out = await list(w.channel, w.mod.arn, { SortOrder: 'ASCENDING', MaxResults: 3, NextToken: token });
      assert.ok(out.ChannelMessages.length <= 3);
      walked.push(...out.ChannelMessages);
      token = out.NextToken;
      pages++;
      // Stop writing after a while so the walk can catch up and end.
      if (pages === 15) writing = false;
    } while (token);
  } finally {
    writing = false;
    await writer;
  }
  const walkedIds = walked.map((m) => m.MessageId);
  assert.equal(new Set(walkedIds).size, walkedIds.length, 'no message twice');
  for (let i = 1; i < walked.length; i++) {
    assert.ok(walked[i].CreatedTimestamp >= walked[i - 1].CreatedTimestamp, 'in CreatedTimestamp order');
  }
  for (const id of pre) assert.ok(walkedIds.includes(id), `pre-existing message ${id} is in the walk`);
  assert.ok(written.length > 0, 'the writer ran concurrently');
  // The walk is exactly a prefix of the final ascending listing: nothing inside it was skipped.
  const final = (await listAll(w.channel, w.mod.arn, { SortOrder: 'ASCENDING', MaxResults: 50 })).map((m) => m.MessageId);
  assert.equal(final.length, pre.length + written.length);
  assert.deepEqual(walkedIds, final.slice(0, walkedIds.length));
  assert.ok(walkedIds.length > pre.length, 'the walk also picked up messages sent during it');
});

test('UpdateChannelMessage: only the sender edits; LastEditedTimestamp; UPDATE_CHANNEL_MESSAGE; limits; redacted is a conflict', async () => {
  const w = await world();
  const m = await send(w.channel, w.alice.arn, { Content: 'first', Metadata: 'meta', ContentType: 'text/plain' });
  const created = (await get(w.channel, m.MessageId, w.alice.arn)).ChannelMessage.CreatedTimestamp;
  await sleep(5);
  const pos = lastPosition(w.channel);
  const out = await update(w.channel, m.MessageId, w.alice.arn, { Content: 'second' });
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.deepEqual(plain({ ...out, $metadata: undefined }), { ChannelArn: w.channel, MessageId: m.MessageId, Status: { Value: 'SENT' } });
  const got = (await get(w.channel, m.MessageId, w.bob.arn)).ChannelMessage;
  assert.equal(got.Content, 'second');
  assert.equal(got.Metadata, 'meta', 'Metadata left out: kept');
  assert.equal(got.ContentType, 'text/plain', 'ContentType left out: kept');
  assert.equal(got.CreatedTimestamp.getTime(), created.getTime());
  assert.ok(got.LastEditedTimestamp > created, 'LastEditedTimestamp set');
  assert.equal(got.LastUpdatedTimestamp.getTime(), got.LastEditedTimestamp.getTime());
  const e = oneEvent(w.channel, pos);
  assert.equal(e.event_type, 'UPDATE_CHANNEL_MESSAGE');
  assert.equal(e.message_type, 'STANDARD');
  assert.equal(e.audience, 'members');
  assert.deepEqual(e.arns, []);
  assert.deepEqual(e.payload, wsForm(got));
  assert.match(e.payload.LastEditedTimestamp, ISO_MS_RE);

  // Metadata and ContentType replaced when given, cleared by "".
  await update(w.channel, m.MessageId, w.alice.arn, { Content: 'third', Metadata: 'meta2', ContentType: '' });
  const g2 = (await get(w.channel, m.MessageId, w.alice.arn)).ChannelMessage;
  assert.equal(g2.Metadata, 'meta2');
  assert.equal(g2.ContentType, undefined);

  // Refused: everyone but the sender (moderators and admins included), limits, unknown messages.
  for (const who of [w.bob, w.mod, w.admin, w.outsider]) {
    await refusedWrite(w, update(w.channel, m.MessageId, who.arn), 'ForbiddenException', 'update of another sender\'s message');
  }
  await refusedWrite(w, update(w.channel, m.MessageId, w.alice.arn, { Content: 'x'.repeat(4097) }), 'BadRequestException', '4097 bytes');
  await refusedWrite(w, update(w.channel, 'nosuchmessage', w.alice.arn), 'NotFoundException', 'unknown message');
  const ctl = await send(w.channel, w.alice.arn, { Type: 'CONTROL', Content: 'ctl' });
  await refusedWrite(w, update(w.channel, ctl.MessageId, w.alice.arn, { Content: 'c'.repeat(31) }), 'BadRequestException', 'CONTROL 31 bytes');
  await refusedWrite(w, update(w.channel, ctl.MessageId, w.alice.arn, { Content: 'c', Metadata: 'm' }), 'BadRequestException', 'CONTROL with Metadata');
  const p2 = lastPosition(w.channel);
  await update(w.channel, ctl.MessageId, w.alice.arn, { Content: 'ctl2' });
  assert.equal(oneEvent(w.channel, p2).message_type, 'CONTROL');

  // A sender that has left the channel can no longer edit.
  sql(`delete from carillon.channel_memberships where channel_arn = :'ch' and member_arn = :'m'`, { ch: w.channel, m: w.alice.arn });
  await refusedWrite(w, update(w.channel, m.MessageId, w.alice.arn), 'ForbiddenException', 'former member');

  // Redacted messages cannot be edited.
  const r = await send(w.channel, w.bob.arn, { Content: 'to redact' });
  await redact(w.channel, r.MessageId, w.bob.arn);
  await refusedWrite(w, update(w.channel, r.MessageId, w.bob.arn), 'ConflictException', 'update of a redacted message');
});

test('RedactChannelMessage: sender or moderator/admin; Content and Metadata erased; REDACT_CHANNEL_MESSAGE', async () => {
  const w = await world();
  const m1 = await send(w.channel, w.alice.arn, { Content: 'oops', Metadata: 'secret' });
  const pos = lastPosition(w.channel);
  const out = await redact(w.channel, m1.MessageId, w.alice.arn);
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.deepEqual(plain({ ...out, $metadata: undefined }), { ChannelArn: w.channel, MessageId: m1.MessageId });
  const got = (await get(w.channel, m1.MessageId, w.bob.arn)).ChannelMessage;
  assert.equal(got.Redacted, true);
  assert.equal(got.Content, '');
  assert.equal(got.Metadata, undefined);
  const e = oneEvent(w.channel, pos);
  assert.equal(e.event_type, 'REDACT_CHANNEL_MESSAGE');
  assert.equal(e.message_type, 'STANDARD');
  assert.equal(e.audience, 'members');
  assert.deepEqual(e.arns, []);
  assert.equal(e.payload.Redacted, true);
  assert.equal(e.payload.Content, '');
  assert.equal(e.payload.Metadata, undefined);
  assert.deepEqual(e.payload, wsForm(got));
  const [row] = storedMessages(w.channel);
  assert.equal(row.content, '', 'the content is erased, not only hidden');
  assert.equal(row.metadata, null);
  const summary = (await list(w.channel, w.bob.arn)).ChannelMessages[0];
  assert.equal(summary.Redacted, true);
  assert.equal(summary.Content, '');

  // Redacting again: success, no new event.
  const p1 = lastPosition(w.channel);
  await redact(w.channel, m1.MessageId, w.alice.arn);
  assert.deepEqual(eventsAfter(w.channel, p1), []);

  // Moderators (member or not) and admins redact others' messages.
  for (const who of [w.mod, w.xmod, w.admin]) {
    const m = await send(w.channel, w.bob.arn, { Content: 'bad' });
    const p = lastPosition(w.channel);
    await redact(w.channel, m.MessageId, who.arn);
    assert.equal(oneEvent(w.channel, p).event_type, 'REDACT_CHANNEL_MESSAGE');
  }
  // Members (HIDDEN or not) and outsiders do not.
  const m2 = await send(w.channel, w.bob.arn, { Content: 'mine' });
  for (const who of [w.alice, w.hidden, w.outsider]) {
    await refusedWrite(w, redact(w.channel, m2.MessageId, who.arn), 'ForbiddenException', 'redact of another member\'s message');
  }
  await refusedWrite(w, redact(w.channel, 'nosuchmessage', w.mod.arn), 'NotFoundException', 'unknown message');
  await refusedWrite(w, redact(w.channel, m2.MessageId, w.bob.arn, { SubChannelId: 's1' }), 'BadRequestException', 'SubChannelId on a plain channel');
});

test('DeleteChannelMessage: AppInstanceAdmins only; 204; DELETE_CHANNEL_MESSAGE; gone from Get and List', async () => {
  const w = await world();
  const m = await send(w.channel, w.alice.arn, { Content: 'to delete', Metadata: 'meta' });
  const keep = await send(w.channel, w.alice.arn, { Content: 'to keep' });
  const got = (await get(w.channel, m.MessageId, w.alice.arn)).ChannelMessage;
  for (const who of [w.alice, w.mod, w.xmod, w.bob, w.outsider]) {
    await refusedWrite(w, del(w.channel, m.MessageId, who.arn), 'ForbiddenException', 'delete by a non-admin');
  }
  const pos = lastPosition(w.channel);
  const out = await del(w.channel, m.MessageId, w.admin.arn);
  assert.equal(out.$metadata.httpStatusCode, 204);
  const e = oneEvent(w.channel, pos);
  assert.equal(e.event_type, 'DELETE_CHANNEL_MESSAGE');
  assert.equal(e.message_type, 'STANDARD');
  assert.equal(e.audience, 'members');
  assert.deepEqual(e.arns, []);
  const want = wsForm(got);
  want.Content = '';
  delete want.Metadata;
  assert.deepEqual(e.payload, want);
  await assertRejects(get(w.channel, m.MessageId, w.alice.arn), 'NotFoundException', 'Get after delete');
  assert.deepEqual((await list(w.channel, w.alice.arn)).ChannelMessages.map((x) => x.MessageId), [keep.MessageId]);
  await refusedWrite(w, del(w.channel, m.MessageId, w.admin.arn), 'NotFoundException', 'delete twice');
});

test('GetChannelMessageStatus: SENT for the sender only', async () => {
  const w = await world();
  const m = await send(w.channel, w.alice.arn);
  const out = await status(w.channel, m.MessageId, w.alice.arn);
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.deepEqual(plain(out.Status), { Value: 'SENT' });
  for (const who of [w.bob, w.mod, w.admin]) {
    await assertRejects(status(w.channel, m.MessageId, who.arn), 'ForbiddenException', 'status of another sender\'s message');
  }
  await assertRejects(status(w.channel, 'nosuchmessage', w.alice.arn), 'NotFoundException', 'unknown message');
  await assertRejects(status(w.channel, m.MessageId, w.outsider.arn), 'ForbiddenException', 'outsider');
});

test('elastic channels: messages live in sub-channels; events reach the sub-channel only', async () => {
  const w = await world(
    { ElasticChannelConfiguration: { MaximumSubChannels: 5, TargetMembershipsPerSubChannel: 10, MinimumMembershipPercentage: 10 } },
    { withHidden: false, withMembers: false },
  );
  // Known placements, written straight into the table (the balancing is the membership resource's business).
  placeInSubChannel(w.channel, w.alice.arn, 'subA');
  placeInSubChannel(w.channel, w.bob.arn, 'subA');
  placeInSubChannel(w.channel, w.carol.arn, 'subB');
  sql(`delete from carillon.channel_memberships where channel_arn = :'ch' and member_arn in (:'h', :'m')`, {
    ch: w.channel,
    h: w.hidden.arn,
    m: w.mod.arn,
  });

  await refusedWrite(w, send(w.channel, w.alice.arn), 'BadRequestException', 'no SubChannelId on an elastic channel');
  await refusedWrite(w, send(w.channel, w.alice.arn, { SubChannelId: 'subB' }), 'ForbiddenException', 'another sub-channel');
  await refusedWrite(w, send(w.channel, w.alice.arn, { SubChannelId: 'subA', Target: [{ MemberArn: w.carol.arn }] }), 'BadRequestException', 'target in another sub-channel');

  const pos = lastPosition(w.channel);
  const out = await send(w.channel, w.alice.arn, { SubChannelId: 'subA', Content: 'in A' });
  assert.equal(out.SubChannelId, 'subA');
  const e = oneEvent(w.channel, pos);
  assert.equal(e.audience, 'only');
  assert.deepEqual([...e.arns].sort(), [w.alice.arn, w.bob.arn].sort());
  assert.equal(e.payload.SubChannelId, 'subA');
  await send(w.channel, w.carol.arn, { SubChannelId: 'subB', Content: 'in B' });

  const listed = await list(w.channel, w.bob.arn, { SubChannelId: 'subA' });
  assert.equal(listed.SubChannelId, 'subA');
  assert.deepEqual(listed.ChannelMessages.map((m) => m.Content), ['in A']);
  await assertRejects(list(w.channel, w.bob.arn), 'BadRequestException', 'member lists without SubChannelId');
  await assertRejects(list(w.channel, w.carol.arn, { SubChannelId: 'subA' }), 'ForbiddenException', 'member lists another sub-channel');
  await assertRejects(get(w.channel, out.MessageId, w.carol.arn), 'ForbiddenException', 'member gets from another sub-channel');
  await assertRejects(get(w.channel, out.MessageId, w.bob.arn, { SubChannelId: 'subB' }), 'NotFoundException', 'wrong SubChannelId');
  assert.equal((await get(w.channel, out.MessageId, w.bob.arn, { SubChannelId: 'subA' })).ChannelMessage.SubChannelId, 'subA');
  // Moderators see every sub-channel.
  assert.deepEqual((await list(w.channel, w.xmod.arn, { SortOrder: 'ASCENDING' })).ChannelMessages.map((m) => m.Content), ['in A', 'in B']);
  assert.deepEqual((await list(w.channel, w.xmod.arn, { SubChannelId: 'subB' })).ChannelMessages.map((m) => m.Content), ['in B']);
  // Edits keep the sub-channel audience; after a move to another sub-channel the sender may no longer edit.
  const p2 = lastPosition(w.channel);
  const u = await update(w.channel, out.MessageId, w.alice.arn, { Content: 'in A, edited', SubChannelId: 'subA' });
  assert.equal(u.SubChannelId, 'subA');
  const ue = oneEvent(w.channel, p2);
  assert.equal(ue.audience, 'only');
  assert.deepEqual([...ue.arns].sort(), [w.alice.arn, w.bob.arn].sort());
  placeInSubChannel(w.channel, w.alice.arn, 'subB');
  await refusedWrite(w, update(w.channel, out.MessageId, w.alice.arn), 'ForbiddenException', 'sender moved to another sub-channel');
});

// The set path of group commit (carillon.send_batch) locks the batch's channels in a statement of its
// own and checks the batch in the next one, so the check sees what a writer holding a channel's row
// committed meanwhile -- here the removal of the sender's membership, in a transaction that holds the
// channel as every write batch does (lock_batch_channels). A check that took the lock itself would
// read the membership in the snapshot it had before it waited, and store messages from a member
// already removed.
test('a batch of sends waits for a write holding its channel and then sees what that write committed', async () => {
  const w = await world();
  const q = (s) => `'${s.replace(/'/g, "''")}'`;
  const holder = await holdingSession(
    `begin; select 1 from carillon.channels where arn = ${q(w.channel)} for no key update;\n` +
      `delete from carillon.channel_memberships where channel_arn = ${q(w.channel)} and member_arn = ${q(w.alice.arn)};`,
  );
  assert.ok(holder.held, 'the holder has the channel row');
  const items = [1, 2].map((i) => ({
    fn: 'send_channel_message',
    ctx: { region: 'us-east-1', account: '123456789012', principal: 'root', now_ms: Date.now() },
    input: {
      ChannelArn: w.channel,
      ChimeBearer: w.alice.arn,
      Content: `held ${i}`,
      Type: 'STANDARD',
      Persistence: 'PERSISTENT',
      ClientRequestToken: uniq('held'),
    },
  }));
  let settled = false;
  const batch = psqlTextAsync(`select carillon.send_batch(${q(JSON.stringify(items))}::jsonb) is null`).finally(
    () => (settled = true),
  );
  try {
    await sleep(1000);
    assert.equal(settled, false, 'the batch did not wait for the write holding its channel');
  } finally {
    await holder.end('commit;');
  }
  assert.equal((await batch).out, 't', 'the batch was not declined: its check missed the committed removal');
  assert.deepEqual(
    storedMessages(w.channel).filter((m) => m.content?.startsWith('held ')),
    [],
    'messages of a removed member were stored',
  );
});
