// Channel resources: CreateChannel (member order, conflicts, unknown identities, elastic),
// DescribeChannel, UpdateChannel / DeleteChannel (with their UPDATE_CHANNEL / DELETE_CHANNEL events),
// ListChannels (privacy, keyset pagination under concurrent inserts), SearchChannels,
// List/DescribeChannel(s)ModeratedByAppInstanceUser, PutChannelExpirationSettings, the janitor's
// channel expiry, UpdateChannelReadMarker, and tags on channels and channel flows.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { CreateAppInstanceAdminCommand, CreateAppInstanceBotCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  CreateChannelCommand,
  CreateChannelFlowCommand,
  CreateChannelMembershipCommand,
  DeleteChannelCommand,
  DescribeChannelCommand,
  DescribeChannelModeratedByAppInstanceUserCommand,
  ListChannelModeratorsCommand,
  ListChannelsCommand,
  ListChannelsModeratedByAppInstanceUserCommand,
  ListTagsForResourceCommand,
  PutChannelExpirationSettingsCommand,
  SearchChannelsCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateChannelCommand,
  UpdateChannelReadMarkerCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { messagingClient, mintUserCredentials } from './lib/clients.mjs';
import {
  backdateChannel,
  channelEvents,
  channelRows,
  eventsAfter,
  expireChannels,
  logPosition,
  memberArns,
  readMarkerMs,
  sql,
} from './lib/events-chan.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { ACCOUNT_ID, REGION } from './lib/server.mjs';
import { assertRecentDate, assertRejects, collectPages, escapeRe, uniq } from './lib/util.mjs';

const ctx = useCarillon();
const t0 = Date.now();
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function plain(x) {
  return JSON.parse(JSON.stringify(x));
}

function send(cmd, client = ctx.msg) {
  return client.send(cmd);
}

// An AppInstance with: mod (creates the channel: moderator and member), member, admin (an
// AppInstanceAdmin, neither member nor moderator), outsider (a user of the AppInstance, not in the
// channel), foreign (a user of another AppInstance), and one channel.
async function world(channelInput = {}) {
  const ai = await ctx.newAppInstance();
  const mod = await ctx.newUser(ai);
  const member = await ctx.newUser(ai);
  const admin = await ctx.newUser(ai);
  const outsider = await ctx.newUser(ai);
  await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: admin.arn }));
  const ai2 = await ctx.newAppInstance();
  const foreign = await ctx.newUser(ai2);
  const channel = await createChannel(ai, mod.arn, { MemberArns: [member.arn], ...channelInput });
  return { ai, ai2, mod, member, admin, outsider, foreign, channel };
}

async function createChannel(ai, bearer, input = {}) {
  const out = await send(
    new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('chan'), ChimeBearer: bearer, Mode: 'RESTRICTED', Privacy: 'PRIVATE', ...input }),
  );
  assert.equal(out.$metadata.httpStatusCode, 201, 'CreateChannel status');
  return out.ChannelArn;
}

async function describe(channelArn, bearer) {
  const out = await send(new DescribeChannelCommand({ ChannelArn: channelArn, ChimeBearer: bearer }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  return out.Channel;
}

// The websocket form of a REST Channel document: the same members, timestamps as ISO-8601 text.
function wsDoc(restChannel) {
  const out = {};
  for (const [k, v] of Object.entries(restChannel)) out[k] = v instanceof Date ? v.toISOString() : plain(v);
  return out;
}

function assertSystemEvent(e, type, { audience = 'members', arns = [] } = {}) {
  assert.equal(e.event_type, type);
  assert.equal(e.message_type, 'SYSTEM');
  assert.equal(e.audience, audience);
  assert.deepEqual(e.arns, arns);
}

const sortArns = (xs) => [...xs].sort();

// ---------------------------------------------------------------- CreateChannel

test('CreateChannel: the creator first, then ModeratorArns, then MemberArns, each once; one CREATE_CHANNEL_MEMBERSHIP each, in that order', async () => {
  const ai = await ctx.newAppInstance();
  const creator = await ctx.newUser(ai, { Name: 'Creator' });
  const mod2 = await ctx.newUser(ai);
  const m1 = await ctx.newUser(ai);
  const botOut = await ctx.id.send(new CreateAppInstanceBotCommand({
    AppInstanceArn: ai, Name: 'helper bot',
    Configuration: { Lex: { LexBotAliasArn: 'arn:aws:lex:us-east-1:123456789012:bot-alias/ABCDEFGHIJ/KLMNOPQRST', LocaleId: 'en_US', RespondsTo: 'STANDARD_MESSAGES' } },
  }));
  const bot = botOut.AppInstanceBotArn;
  const id = uniq('cid');
  const arn = await createChannel(ai, creator.arn, {
    ChannelId: id,
    Name: 'general',
    Metadata: '{"topic":"x"}',
    ModeratorArns: [mod2.arn, creator.arn],
    MemberArns: [bot, m1.arn, creator.arn, m1.arn],
    Tags: [{ Key: 'team', Value: 'chat' }],
  });
  assert.equal(arn, `${ai}/channel/${id}`);

  const evs = channelEvents(arn);
  assert.deepEqual(evs.map((e) => e.payload.Member.Arn), [creator.arn, mod2.arn, bot, m1.arn], 'member order: creator, moderators, members');
  for (const e of evs) {
    assertSystemEvent(e, 'CREATE_CHANNEL_MEMBERSHIP', { arns: [e.payload.Member.Arn] });
    assert.equal(e.payload.ChannelArn, arn);
    assert.equal(e.payload.Type, 'DEFAULT');
    assert.deepEqual(e.payload.InvitedBy, { Arn: creator.arn, Name: 'Creator' });
    assert.match(e.payload.CreatedTimestamp, ISO_MS);
  }
  assert.deepEqual(evs[2].payload.Member, { Arn: bot, Name: 'helper bot' });
  assert.deepEqual(memberArns(arn).sort(), sortArns([creator.arn, mod2.arn, bot, m1.arn]));

  const mods = await send(new ListChannelModeratorsCommand({ ChannelArn: arn, ChimeBearer: m1.arn }));
  assert.deepEqual(mods.ChannelModerators.map((m) => m.Moderator.Arn), sortArns([creator.arn, mod2.arn]));

  const d = await describe(arn, m1.arn);
  assert.equal(d.Name, 'general');
  assert.equal(d.Mode, 'RESTRICTED');
  assert.equal(d.Privacy, 'PRIVATE');
  assert.equal(d.Metadata, '{"topic":"x"}');
  assert.deepEqual(plain(d.CreatedBy), { Arn: creator.arn, Name: 'Creator' });
  assertRecentDate(d.CreatedTimestamp, t0, 'CreatedTimestamp');
  assert.equal(d.LastMessageTimestamp, undefined);

  const tags = await send(new ListTagsForResourceCommand({ ResourceARN: arn }));
  assert.deepEqual(plain(tags.Tags), [{ Key: 'team', Value: 'chat' }]);
});

test('CreateChannel: defaults RESTRICTED/PRIVATE, a generated UUID id; a ClientRequestToken retry answers the same ARN and emits nothing more', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const token = uniq('tok');
  const first = await send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'n', ChimeBearer: u.arn, ClientRequestToken: token }));
  assert.match(first.ChannelArn, new RegExp(`^${escapeRe(ai)}/channel/${UUID}$`));
  const again = await send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'n', ChimeBearer: u.arn, ClientRequestToken: token }));
  assert.equal(again.ChannelArn, first.ChannelArn);
  assert.equal(channelEvents(first.ChannelArn).length, 1, 'one CREATE_CHANNEL_MEMBERSHIP (the creator), not two');
  const d = await describe(first.ChannelArn, u.arn);
  assert.equal(d.Mode, 'RESTRICTED');
  assert.equal(d.Privacy, 'PRIVATE');
});

test('CreateChannel: a taken ChannelId is ConflictException (the same id in another AppInstance is fine)', async () => {
  const w = await world();
  const id = uniq('dup');
  await createChannel(w.ai, w.mod.arn, { ChannelId: id });
  const before = logPosition();
  await assertRejects(createChannel(w.ai, w.member.arn, { ChannelId: id }), 'ConflictException');
  assert.equal(sql(`select to_json(count(*)) from carillon.events where position > :'p'`, { p: before }), 0, 'no event');
  const other = await createChannel(w.ai2, w.foreign.arn, { ChannelId: id });
  assert.equal(other, `${w.ai2}/channel/${id}`);
});

test('CreateChannel: MemberArns/ModeratorArns that are not users or bots of the AppInstance are NotFoundException; nothing is created', async () => {
  const w = await world();
  const ghost = `${w.ai}/user/${uniq('ghost')}`;
  for (const [what, input] of [
    ['unknown member', { MemberArns: [w.member.arn, ghost] }],
    ['member of another AppInstance', { MemberArns: [w.foreign.arn] }],
    ['unknown moderator', { ModeratorArns: [ghost] }],
    ['moderator of another AppInstance', { ModeratorArns: [w.foreign.arn] }],
  ]) {
    const id = uniq('nf');
    await assertRejects(createChannel(w.ai, w.mod.arn, { ChannelId: id, ...input }), 'NotFoundException', what);
    assert.deepEqual(channelRows(`${w.ai}/channel/${id}`), { channel: 0, memberships: 0, moderators: 0, bans: 0, messages: 0, tags: 0 }, what);
    assert.deepEqual(channelEvents(`${w.ai}/channel/${id}`), [], `${what}: no event`);
  }
  // The bearer itself must belong to the AppInstance: Forbidden.
  await assertRejects(createChannel(w.ai, w.foreign.arn), 'ForbiddenException', 'bearer of another AppInstance');
});

test('CreateChannel elastic: the creator and ModeratorArns are moderators only (no membership, no event); MemberArns and UNRESTRICTED are BadRequest', async () => {
  const w = await world();
  const elastic = { MaximumSubChannels: 3, TargetMembershipsPerSubChannel: 2, MinimumMembershipPercentage: 10 };
  const arn = await createChannel(w.ai, w.mod.arn, { MemberArns: undefined, ModeratorArns: [w.member.arn], ElasticChannelConfiguration: elastic });
  assert.deepEqual(channelEvents(arn), []);
  assert.deepEqual(memberArns(arn), []);
  const mods = await send(new ListChannelModeratorsCommand({ ChannelArn: arn, ChimeBearer: w.mod.arn }));
  assert.deepEqual(mods.ChannelModerators.map((m) => m.Moderator.Arn), sortArns([w.mod.arn, w.member.arn]));
  assert.deepEqual(plain((await describe(arn, w.mod.arn)).ElasticChannelConfiguration), elastic);
  await assertRejects(createChannel(w.ai, w.mod.arn, { ElasticChannelConfiguration: elastic, MemberArns: [w.member.arn] }), 'BadRequestException');
  await assertRejects(createChannel(w.ai, w.mod.arn, { ElasticChannelConfiguration: elastic, Mode: 'UNRESTRICTED', MemberArns: undefined }), 'BadRequestException');
});

// ---------------------------------------------------------------- UpdateChannel

test('UpdateChannel: a moderator updates Name/Mode/Metadata; UPDATE_CHANNEL (SYSTEM, to the members) carries the new Channel document', async () => {
  const w = await world();
  const created = await describe(w.channel, w.mod.arn);
  const p = logPosition();
  const out = await send(new UpdateChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.mod.arn, Name: 'renamed', Mode: 'UNRESTRICTED', Metadata: 'meta' }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.equal(out.ChannelArn, w.channel);
  const d = await describe(w.channel, w.member.arn);
  assert.equal(d.Name, 'renamed');
  assert.equal(d.Mode, 'UNRESTRICTED');
  assert.equal(d.Privacy, 'PRIVATE', 'privacy cannot change');
  assert.equal(d.Metadata, 'meta');
  assert.ok(d.LastUpdatedTimestamp >= created.LastUpdatedTimestamp);
  assert.deepEqual(d.CreatedTimestamp, created.CreatedTimestamp);
  const evs = eventsAfter(w.channel, p);
  assert.equal(evs.length, 1, `exactly one event, got ${evs.map((e) => e.event_type)}`);
  assertSystemEvent(evs[0], 'UPDATE_CHANNEL');
  assert.deepEqual(evs[0].payload, wsDoc(d), 'payload = DescribeChannel with ISO-8601 timestamps');
  assert.match(evs[0].payload.LastUpdatedTimestamp, ISO_MS);
});

test('UpdateChannel: an AppInstanceAdmin may; absent members keep their values, Metadata "" clears it', async () => {
  const w = await world({ Metadata: 'keep me' });
  await send(new UpdateChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.admin.arn, Name: 'by admin' }));
  let d = await describe(w.channel, w.admin.arn);
  assert.equal(d.Name, 'by admin');
  assert.equal(d.Mode, 'RESTRICTED');
  assert.equal(d.Metadata, 'keep me');
  await send(new UpdateChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.admin.arn, Metadata: '' }));
  d = await describe(w.channel, w.admin.arn);
  assert.equal(d.Name, 'by admin');
  assert.equal(d.Metadata, undefined);
});

test('UpdateChannel: a plain member, an outsider and an identity of another AppInstance are refused (Forbidden) and no event is recorded; unknown channel NotFound', async () => {
  const w = await world({ Privacy: 'PUBLIC' });
  const p = logPosition();
  for (const who of [w.member, w.outsider, w.foreign]) {
    await assertRejects(send(new UpdateChannelCommand({ ChannelArn: w.channel, ChimeBearer: who.arn, Name: 'nope' })), 'ForbiddenException');
  }
  assert.deepEqual(eventsAfter(w.channel, p), []);
  assert.notEqual((await describe(w.channel, w.mod.arn)).Name, 'nope');
  await assertRejects(
    send(new UpdateChannelCommand({ ChannelArn: `${w.ai}/channel/${uniq('none')}`, ChimeBearer: w.mod.arn, Name: 'x' })),
    'NotFoundException',
  );
});

test('UpdateChannel: an elastic channel cannot become UNRESTRICTED (BadRequest)', async () => {
  const w = await world();
  const arn = await createChannel(w.ai, w.mod.arn, { ElasticChannelConfiguration: { MaximumSubChannels: 2, TargetMembershipsPerSubChannel: 2, MinimumMembershipPercentage: 10 } });
  await assertRejects(send(new UpdateChannelCommand({ ChannelArn: arn, ChimeBearer: w.mod.arn, Mode: 'UNRESTRICTED' })), 'BadRequestException');
});

// ---------------------------------------------------------------- DeleteChannel

test('DeleteChannel: a moderator deletes; DELETE_CHANNEL carries the Channel as it was; memberships, moderators, bans, messages and tags go with it', async () => {
  const w = await world({ Tags: [{ Key: 'a', Value: 'b' }], ModeratorArns: undefined });
  const extra = await ctx.newUser(w.ai);
  await send(new CreateChannelMembershipCommand({ ChannelArn: w.channel, ChimeBearer: w.mod.arn, MemberArn: extra.arn, Type: 'DEFAULT' }));
  sql(`insert into carillon.channel_bans (channel_arn, member_arn, created_by, created_at) values (:'c', :'m', :'b', now())`,
    { c: w.channel, m: w.outsider.arn, b: w.mod.arn });
  sql(`insert into carillon.channel_messages (channel_arn, message_id, seq, sender_arn, type, content, created_at, updated_at)
       values (:'c', 'm1', nextval('carillon.message_seq'), :'s', 'STANDARD', 'hi', now(), now())`, { c: w.channel, s: w.mod.arn });
  const before = await describe(w.channel, w.mod.arn);
  assert.deepEqual(channelRows(w.channel), { channel: 1, memberships: 3, moderators: 1, bans: 1, messages: 1, tags: 1 });

  const p = logPosition();
  const out = await send(new DeleteChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.mod.arn }));
  assert.equal(out.$metadata.httpStatusCode, 204);
  const evs = eventsAfter(w.channel, p);
  assert.equal(evs.length, 1, `exactly one event, got ${evs.map((e) => e.event_type)}`);
  assertSystemEvent(evs[0], 'DELETE_CHANNEL');
  assert.deepEqual(evs[0].payload, wsDoc(before));
  assert.deepEqual(channelRows(w.channel), { channel: 0, memberships: 0, moderators: 0, bans: 0, messages: 0, tags: 0 });
  await assertRejects(describe(w.channel, w.mod.arn), 'NotFoundException');
  await assertRejects(send(new DeleteChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.mod.arn })), 'NotFoundException', 'deleted twice');
  await assertRejects(send(new ListTagsForResourceCommand({ ResourceARN: w.channel })), 'NotFoundException');
});

test('DeleteChannel: a member is refused (Forbidden, no event, channel intact); an AppInstanceAdmin may', async () => {
  const w = await world();
  const p = logPosition();
  await assertRejects(send(new DeleteChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.member.arn })), 'ForbiddenException');
  await assertRejects(send(new DeleteChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.foreign.arn })), 'ForbiddenException');
  assert.deepEqual(eventsAfter(w.channel, p), []);
  assert.equal(channelRows(w.channel).channel, 1);
  await send(new DeleteChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.admin.arn }));
  const evs = eventsAfter(w.channel, p);
  assert.deepEqual(evs.map((e) => e.event_type), ['DELETE_CHANNEL']);
  assert.equal(channelRows(w.channel).channel, 0);
});

// ---------------------------------------------------------------- ListChannels

test('ListChannels: PUBLIC by default for anyone in the AppInstance; PRIVATE only for an AppInstanceAdmin', async () => {
  const w = await world({ Privacy: 'PRIVATE' });
  const pub = await createChannel(w.ai, w.mod.arn, { Privacy: 'PUBLIC', Metadata: 'm' });
  const list = async (bearer, privacy) =>
    (await send(new ListChannelsCommand({ AppInstanceArn: w.ai, ChimeBearer: bearer, Privacy: privacy }))).Channels;

  const ch = await list(w.outsider.arn);
  assert.equal(ch.length, 1);
  assert.deepEqual(plain(ch[0]), { ChannelArn: pub, Name: ch[0].Name, Mode: 'RESTRICTED', Privacy: 'PUBLIC', Metadata: 'm' });
  assert.deepEqual((await list(w.outsider.arn, 'PUBLIC')).map((c) => c.ChannelArn), [pub]);
  assert.deepEqual((await list(w.admin.arn, 'PRIVATE')).map((c) => c.ChannelArn), [w.channel]);
  await assertRejects(list(w.mod.arn, 'PRIVATE'), 'ForbiddenException', 'a moderator that is not an admin');
  await assertRejects(list(w.foreign.arn), 'ForbiddenException', 'bearer of another AppInstance');
  await assertRejects(list(`${w.ai}/user/${uniq('ghost')}`), 'ForbiddenException', 'unknown bearer');
});

test('ListChannels: keyset pages never skip or repeat while channels are created between pages', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const originals = new Set();
  for (let i = 0; i < 7; i++) originals.add(await createChannel(ai, u.arn, { Privacy: 'PUBLIC' }));
  await createChannel(ai, u.arn, { Privacy: 'PRIVATE' });
  const added = new Set();
  let page = 0;
  const { items, pages } = await collectPages(
    async (token) => {
      if (page++ === 1) for (let i = 0; i < 4; i++) added.add(await createChannel(ai, u.arn, { Privacy: 'PUBLIC' }));
      return send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: u.arn, MaxResults: 3, NextToken: token }));
    },
    (o) => o.Channels,
    3,
  );
  const arns = items.map((c) => c.ChannelArn);
  assert.equal(new Set(arns).size, arns.length, 'no channel twice');
  for (const a of originals) assert.ok(arns.includes(a), `channel ${a} that existed throughout was skipped`);
  for (const a of arns) assert.ok(originals.has(a) || added.has(a), `unexpected ${a}`);
  assert.deepEqual(arns, [...arns].sort(), 'ordered by ChannelArn');
  assert.ok(pages.length >= 3);
});

// ---------------------------------------------------------------- SearchChannels

test('SearchChannels: INCLUDES / EQUALS on MEMBERS, scoped to the bearer (members see their channels, admins all; HIDDEN members count only for admins and themselves)', async () => {
  const ai = await ctx.newAppInstance();
  const [a, b, c, d, admin] = [await ctx.newUser(ai), await ctx.newUser(ai), await ctx.newUser(ai), await ctx.newUser(ai), await ctx.newUser(ai)];
  await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: admin.arn }));
  const ch1 = await createChannel(ai, a.arn, { MemberArns: [b.arn] });
  const ch2 = await createChannel(ai, a.arn, { MemberArns: [b.arn, c.arn], Privacy: 'PUBLIC' });
  const ch3 = await createChannel(ai, b.arn, { MemberArns: [c.arn] });
  const ch4 = await createChannel(ai, a.arn, { MemberArns: [b.arn] });
  await send(new CreateChannelMembershipCommand({ ChannelArn: ch4, ChimeBearer: a.arn, MemberArn: d.arn, Type: 'HIDDEN' }));

  const search = async (bearer, fields, client = ctx.msg) => {
    const out = await send(new SearchChannelsCommand({ ChimeBearer: bearer, Fields: fields }), client);
    assert.equal(out.$metadata.httpStatusCode, 200);
    assert.equal(out.NextToken, undefined);
    return out.Channels.map((x) => x.ChannelArn);
  };
  const inc = (...u) => ({ Key: 'MEMBERS', Operator: 'INCLUDES', Values: u.map((x) => x.arn) });
  const eq = (...u) => ({ Key: 'MEMBERS', Operator: 'EQUALS', Values: u.map((x) => x.arn) });

  assert.deepEqual(await search(a.arn, [inc(a, b)]), sortArns([ch1, ch2, ch4]));
  assert.deepEqual(await search(a.arn, [eq(b, a)]), sortArns([ch1, ch4]), 'for a plain member the HIDDEN d does not count');
  assert.deepEqual(await search(a.arn, [inc(c)]), [ch2], 'not ch3: a is not a member of it');
  assert.deepEqual(await search(a.arn, [inc(d)]), [], 'a HIDDEN member is not found by others');
  assert.deepEqual(await search(d.arn, [eq(a, b, d)]), [ch4], 'the hidden member counts for itself');
  assert.deepEqual(await search(admin.arn, [eq(a, b)]), [ch1], 'for an admin every member counts');
  assert.deepEqual(await search(admin.arn, [inc(c)]), sortArns([ch2, ch3]), 'an admin searches every channel');
  assert.deepEqual(await search(a.arn, [inc(a), eq(a, b, c)]), [ch2], 'all fields must hold');
  assert.deepEqual(await search(a.arn, [inc(a, b, b)]), sortArns([ch1, ch2, ch4]), 'duplicate values count once');
  // Without a bearer (root key): every channel.
  assert.deepEqual(await search(undefined, [inc(c)]), sortArns([ch2, ch3]));
  // User credentials without a bearer act as their user.
  const bClient = messagingClient(ctx.srv, await mintUserCredentials(ctx.srv, b.arn));
  try {
    assert.deepEqual(await search(undefined, [inc(b)], bClient), sortArns([ch1, ch2, ch3, ch4]));
    assert.deepEqual(await search(undefined, [inc(d)], bClient), []);
  } finally {
    bClient.destroy();
  }
  await assertRejects(search(`${ai}/user/${uniq('ghost')}`, [inc(a)]), 'ForbiddenException', 'a bearer that is no user or bot');
});

test('SearchChannels: pagination', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const v = await ctx.newUser(ai);
  const all = [];
  for (let i = 0; i < 5; i++) all.push(await createChannel(ai, u.arn, { MemberArns: [v.arn] }));
  await createChannel(ai, u.arn);
  const { items, pages } = await collectPages(
    (token) => send(new SearchChannelsCommand({ ChimeBearer: v.arn, Fields: [{ Key: 'MEMBERS', Operator: 'EQUALS', Values: [u.arn, v.arn] }], MaxResults: 2, NextToken: token })),
    (o) => o.Channels,
    2,
  );
  assert.deepEqual(items.map((c) => c.ChannelArn), sortArns(all));
  assert.deepEqual(pages.map((p) => p.count), [2, 2, 1]);
});

// ---------------------------------------------------------------- moderated by user

test('ListChannelsModeratedByAppInstanceUser: one\'s own by default; another\'s only for an AppInstanceAdmin; pagination', async () => {
  const w = await world();
  const pub = await createChannel(w.ai, w.mod.arn, { Privacy: 'PUBLIC', Metadata: 'x' });
  const byOther = await createChannel(w.ai, w.outsider.arn, { ModeratorArns: [w.mod.arn] });
  await createChannel(w.ai, w.outsider.arn);
  const expected = sortArns([w.channel, pub, byOther]);

  const own = await send(new ListChannelsModeratedByAppInstanceUserCommand({ ChimeBearer: w.mod.arn }));
  assert.deepEqual(own.Channels.map((c) => c.ChannelSummary.ChannelArn), expected);
  const p = own.Channels.find((c) => c.ChannelSummary.ChannelArn === pub);
  assert.deepEqual(plain(p), { ChannelSummary: { ChannelArn: pub, Name: p.ChannelSummary.Name, Mode: 'RESTRICTED', Privacy: 'PUBLIC', Metadata: 'x' } });

  const byAdmin = await send(new ListChannelsModeratedByAppInstanceUserCommand({ ChimeBearer: w.admin.arn, AppInstanceUserArn: w.mod.arn }));
  assert.deepEqual(byAdmin.Channels.map((c) => c.ChannelSummary.ChannelArn), expected);
  const explicitSelf = await send(new ListChannelsModeratedByAppInstanceUserCommand({ ChimeBearer: w.mod.arn, AppInstanceUserArn: w.mod.arn }));
  assert.equal(explicitSelf.Channels.length, 3);
  await assertRejects(
    send(new ListChannelsModeratedByAppInstanceUserCommand({ ChimeBearer: w.member.arn, AppInstanceUserArn: w.mod.arn })),
    'ForbiddenException',
  );
  await assertRejects(send(new ListChannelsModeratedByAppInstanceUserCommand({ ChimeBearer: w.foreign.arn.replace(/\/user\/.*/, '/user/nobody') })), 'ForbiddenException');
  await assertRejects(
    send(new ListChannelsModeratedByAppInstanceUserCommand({ ChimeBearer: w.admin.arn, AppInstanceUserArn: w.foreign.arn })),
    'NotFoundException',
    'a user of another AppInstance',
  );
  assert.deepEqual((await send(new ListChannelsModeratedByAppInstanceUserCommand({ ChimeBearer: w.member.arn }))).Channels, []);

  const { items } = await collectPages(
    (token) => send(new ListChannelsModeratedByAppInstanceUserCommand({ ChimeBearer: w.mod.arn, MaxResults: 2, NextToken: token })),
    (o) => o.Channels,
    2,
  );
  assert.deepEqual(items.map((c) => c.ChannelSummary.ChannelArn), expected);
});

test('DescribeChannelModeratedByAppInstanceUser: {Channel: {ChannelSummary}} for a moderator; NotFound otherwise; only the user itself or a manager may ask', async () => {
  const w = await world({ Metadata: 'md' });
  const ask = (bearer, user, channel = w.channel) =>
    send(new DescribeChannelModeratedByAppInstanceUserCommand({ ChannelArn: channel, ChimeBearer: bearer, AppInstanceUserArn: user }));
  const out = await ask(w.mod.arn, w.mod.arn);
  assert.equal(out.$metadata.httpStatusCode, 200);
  const d = await describe(w.channel, w.mod.arn);
  assert.deepEqual(plain(out.Channel), { ChannelSummary: { ChannelArn: w.channel, Name: d.Name, Mode: 'RESTRICTED', Privacy: 'PRIVATE', Metadata: 'md' } });
  assert.deepEqual(plain((await ask(w.admin.arn, w.mod.arn)).Channel), plain(out.Channel), 'an admin may ask');
  await assertRejects(ask(w.member.arn, w.member.arn), 'NotFoundException', 'the member does not moderate it');
  await assertRejects(ask(w.mod.arn, w.member.arn), 'NotFoundException', 'asked by a moderator about a member');
  await assertRejects(ask(w.member.arn, w.mod.arn), 'ForbiddenException', 'a member asking about someone else');
  await assertRejects(ask(w.foreign.arn, w.foreign.arn), 'ForbiddenException', 'bearer of another AppInstance');
});

// ---------------------------------------------------------------- expiration settings and expiry

test('PutChannelExpirationSettings: a moderator sets, the root key without a bearer removes; a change emits UPDATE_CHANNEL, the same settings nothing; members are refused', async () => {
  const w = await world();
  const put = (input, client = ctx.msg) => send(new PutChannelExpirationSettingsCommand({ ChannelArn: w.channel, ...input }), client);
  const settings = { ExpirationDays: 7, ExpirationCriterion: 'LAST_MESSAGE_TIMESTAMP' };

  let p = logPosition();
  await assertRejects(put({ ChimeBearer: w.member.arn, ExpirationSettings: settings }), 'ForbiddenException');
  const memberClient = messagingClient(ctx.srv, await mintUserCredentials(ctx.srv, w.member.arn));
  const modClient = messagingClient(ctx.srv, await mintUserCredentials(ctx.srv, w.mod.arn));
  try {
    await assertRejects(put({ ExpirationSettings: settings }, memberClient), 'ForbiddenException', 'user credentials act as their user');
    assert.deepEqual(eventsAfter(w.channel, p), [], 'refused: no event');

    const out = await put({ ChimeBearer: w.mod.arn, ExpirationSettings: settings });
    assert.equal(out.$metadata.httpStatusCode, 200);
    assert.equal(out.ChannelArn, w.channel);
    assert.deepEqual(plain(out.ExpirationSettings), settings);
    const d = await describe(w.channel, w.member.arn);
    assert.deepEqual(plain(d.ExpirationSettings), settings);
    let evs = eventsAfter(w.channel, p);
    assert.equal(evs.length, 1);
    assertSystemEvent(evs[0], 'UPDATE_CHANNEL');
    assert.deepEqual(evs[0].payload, wsDoc(d));

    p = logPosition();
    const same = await put({ ExpirationSettings: settings }, modClient);
    assert.deepEqual(plain(same.ExpirationSettings), settings);
    assert.deepEqual(eventsAfter(w.channel, p), [], 'unchanged settings: no event');

    const removed = await put({});
    assert.equal(removed.ChannelArn, w.channel);
    assert.equal(removed.ExpirationSettings, undefined);
    assert.equal((await describe(w.channel, w.mod.arn)).ExpirationSettings, undefined);
    evs = eventsAfter(w.channel, p);
    assert.equal(evs.length, 1);
    assert.equal('ExpirationSettings' in evs[0].payload, false);

    await put({ ChimeBearer: w.admin.arn, ExpirationSettings: { ExpirationDays: 1, ExpirationCriterion: 'CREATED_TIMESTAMP' } });
    assert.equal((await describe(w.channel, w.mod.arn)).ExpirationSettings.ExpirationDays, 1, 'an admin may');
  } finally {
    memberClient.destroy();
    modClient.destroy();
  }
  await assertRejects(
    send(new PutChannelExpirationSettingsCommand({ ChannelArn: `${w.ai}/channel/${uniq('none')}` })),
    'NotFoundException',
  );
});

test('carillon.expire_channels: CREATED_TIMESTAMP counts from creation, LAST_MESSAGE_TIMESTAMP from the last message (else creation); an expired channel vanishes with one DELETE_CHANNEL event', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const v = await ctx.newUser(ai);
  const created = await createChannel(ai, u.arn, { MemberArns: [v.arn], ExpirationSettings: { ExpirationDays: 1, ExpirationCriterion: 'CREATED_TIMESTAMP' }, Tags: [{ Key: 'k', Value: 'v' }] });
  const recentMsg = await createChannel(ai, u.arn, { ExpirationSettings: { ExpirationDays: 2, ExpirationCriterion: 'LAST_MESSAGE_TIMESTAMP' } });
  const noMsg = await createChannel(ai, u.arn, { ExpirationSettings: { ExpirationDays: 2, ExpirationCriterion: 'LAST_MESSAGE_TIMESTAMP' } });
  const notYet = await createChannel(ai, u.arn, { ExpirationSettings: { ExpirationDays: 3, ExpirationCriterion: 'CREATED_TIMESTAMP' } });
  const none = await createChannel(ai, u.arn);
  backdateChannel(created, 2);
  backdateChannel(recentMsg, 10, 1);
  backdateChannel(noMsg, 3);
  backdateChannel(notYet, 2);
  backdateChannel(none, 1000);
  const p = logPosition();
  assert.ok(expireChannels() >= 2);
  for (const gone of [created, noMsg]) {
    assert.deepEqual(channelRows(gone), { channel: 0, memberships: 0, moderators: 0, bans: 0, messages: 0, tags: 0 });
    // Connected members learn of it, and every node drops the channel from its index (so a channel
    // re-created later with the same ChannelId does not reach the old members).
    const evs = eventsAfter(gone, p);
    assert.equal(evs.length, 1, `one event for ${gone}`);
    assert.equal(evs[0].event_type, 'DELETE_CHANNEL');
    assert.equal(evs[0].message_type, 'SYSTEM');
    assert.equal(evs[0].audience, 'members');
    assert.equal(evs[0].payload.ChannelArn, gone);
    assert.match(evs[0].payload.CreatedTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    await assertRejects(describe(gone, u.arn), 'NotFoundException');
  }
  for (const kept of [recentMsg, notYet, none]) {
    assert.equal(channelRows(kept).channel, 1, kept);
    assert.deepEqual(eventsAfter(kept, p), [], `no event for ${kept}`);
  }
});

// ---------------------------------------------------------------- read marker

test('UpdateChannelReadMarker: a member moves its read marker to now (never backwards, no event); a non-member is refused', async () => {
  const w = await world({ Privacy: 'PUBLIC' });
  assert.equal(readMarkerMs(w.channel, w.member.arn), null);
  const p = logPosition();
  const from = Date.now();
  const out = await send(new UpdateChannelReadMarkerCommand({ ChannelArn: w.channel, ChimeBearer: w.member.arn }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.equal(out.ChannelArn, w.channel);
  const first = readMarkerMs(w.channel, w.member.arn);
  assert.ok(first >= from - 2000 && first <= Date.now() + 2000, `read marker ${first} is now`);
  await send(new UpdateChannelReadMarkerCommand({ ChannelArn: w.channel, ChimeBearer: w.member.arn }));
  assert.ok(readMarkerMs(w.channel, w.member.arn) >= first);
  assert.equal(readMarkerMs(w.channel, w.mod.arn), null, 'only the bearer\'s marker moves');
  assert.deepEqual(eventsAfter(w.channel, p), []);
  await assertRejects(send(new UpdateChannelReadMarkerCommand({ ChannelArn: w.channel, ChimeBearer: w.outsider.arn })), 'ForbiddenException', 'not a member of the public channel');
  await assertRejects(send(new UpdateChannelReadMarkerCommand({ ChannelArn: w.channel, ChimeBearer: w.admin.arn })), 'ForbiddenException', 'an admin is not a member');
  await assertRejects(send(new UpdateChannelReadMarkerCommand({ ChannelArn: w.channel, ChimeBearer: w.foreign.arn })), 'ForbiddenException');
});

// ---------------------------------------------------------------- tags

test('Tags: TagResource / ListTagsForResource / UntagResource work on channel and channel-flow ARNs; unknown ones are NotFound', async () => {
  const w = await world({ Tags: [{ Key: 'one', Value: '1' }] });
  await send(new TagResourceCommand({ ResourceARN: w.channel, Tags: [{ Key: 'two', Value: '2' }, { Key: 'one', Value: 'uno' }] }));
  let tags = await send(new ListTagsForResourceCommand({ ResourceARN: w.channel }));
  assert.deepEqual(plain(tags.Tags), [{ Key: 'one', Value: 'uno' }, { Key: 'two', Value: '2' }]);
  await send(new UntagResourceCommand({ ResourceARN: w.channel, TagKeys: ['one'] }));
  tags = await send(new ListTagsForResourceCommand({ ResourceARN: w.channel }));
  assert.deepEqual(plain(tags.Tags), [{ Key: 'two', Value: '2' }]);

  const flow = (await send(new CreateChannelFlowCommand({
    AppInstanceArn: w.ai, Name: 'f',
    Processors: [{ Name: 'p', ExecutionOrder: 1, FallbackAction: 'CONTINUE', Configuration: { Lambda: { ResourceArn: `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:fn`, InvocationType: 'ASYNC' } } }],
  }))).ChannelFlowArn;
  await send(new TagResourceCommand({ ResourceARN: flow, Tags: [{ Key: 'f', Value: 'x' }] }));
  assert.deepEqual(plain((await send(new ListTagsForResourceCommand({ ResourceARN: flow }))).Tags), [{ Key: 'f', Value: 'x' }]);
  await send(new UntagResourceCommand({ ResourceARN: flow, TagKeys: ['f'] }));
  assert.deepEqual(plain((await send(new ListTagsForResourceCommand({ ResourceARN: flow }))).Tags), []);

  const missing = `${w.ai}/channel/${randomUUID()}`;
  await assertRejects(send(new TagResourceCommand({ ResourceARN: missing, Tags: [{ Key: 'k', Value: 'v' }] })), 'NotFoundException');
  await assertRejects(send(new ListTagsForResourceCommand({ ResourceARN: missing })), 'NotFoundException');
  await assertRejects(send(new UntagResourceCommand({ ResourceARN: `${w.ai}/channel-flow/${randomUUID()}`, TagKeys: ['k'] })), 'NotFoundException');
});
