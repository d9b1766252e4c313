// ChannelMembership resources: Create/BatchCreate/Describe/List/DeleteChannelMembership,
// DescribeChannelMembershipForAppInstanceUser, ListChannelMembershipsForAppInstanceUser,
// Put/GetChannelMembershipPreferences, ListSubChannels and the sub-channels of elastic channels,
// with the events they record (CREATE_/BATCH_CREATE_/DELETE_/UPDATE_CHANNEL_MEMBERSHIP).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CreateAppInstanceAdminCommand, CreateAppInstanceBotCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  BatchCreateChannelMembershipCommand,
  CreateChannelCommand,
  CreateChannelMembershipCommand,
  DeleteChannelMembershipCommand,
  DescribeChannelMembershipCommand,
  DescribeChannelMembershipForAppInstanceUserCommand,
  GetChannelMembershipPreferencesCommand,
  ListChannelMembershipsCommand,
  ListChannelMembershipsForAppInstanceUserCommand,
  ListSubChannelsCommand,
  PutChannelMembershipPreferencesCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { messagingClient, mintUserCredentials } from './lib/clients.mjs';
import { eventsAfter, insertBan, lastPosition, membershipRow, setReadMarker } from './lib/events-memb.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { assertRecentDate, assertRejects, collectPages, lexConfig, uniq } from './lib/util.mjs';

const ctx = useCarillon();
const t0 = Date.now();
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// JSON round trip: Dates become ISO-8601 strings with milliseconds (the websocket form).
function plain(x) {
  return JSON.parse(JSON.stringify(x));
}

function ident(u) {
  return { Arn: u.arn, Name: u.name };
}

function byArn(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

// An AppInstance with the channel's creator (moderator and member), a plain member, an
// AppInstanceAdmin who is not a member, two users who are not members, and one channel.
async function world({ mode = 'RESTRICTED', privacy = 'PRIVATE', elastic } = {}) {
  const ai = await ctx.newAppInstance();
  const mod = await ctx.newUser(ai);
  const member = await ctx.newUser(ai);
  const admin = await ctx.newUser(ai);
  const outsider = await ctx.newUser(ai);
  const other = await ctx.newUser(ai);
  await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: admin.arn }));
  const input = { AppInstanceArn: ai, Name: uniq('chan'), ChimeBearer: mod.arn, Mode: mode, Privacy: privacy };
  if (elastic) input.ElasticChannelConfiguration = elastic;
  else input.MemberArns = [member.arn];
  const ch = await ctx.msg.send(new CreateChannelCommand(input));
  return { ai, mod, member, admin, outsider, other, channel: ch.ChannelArn };
}

async function userClient(user) {
  return messagingClient(ctx.srv, await mintUserCredentials(ctx.srv, user.arn));
}

function create(w, bearer, memberArn, extra = {}, client = ctx.msg) {
  return client.send(
    new CreateChannelMembershipCommand({ ChannelArn: w.channel, ChimeBearer: bearer, MemberArn: memberArn, Type: 'DEFAULT', ...extra }),
  );
}

function batch(w, bearer, memberArns, extra = {}, client = ctx.msg) {
  return client.send(
    new BatchCreateChannelMembershipCommand({ ChannelArn: w.channel, ChimeBearer: bearer, MemberArns: memberArns, ...extra }),
  );
}

async function describe(w, bearer, memberArn, extra = {}, client = ctx.msg) {
  const out = await client.send(
    new DescribeChannelMembershipCommand({ ChannelArn: w.channel, ChimeBearer: bearer, MemberArn: memberArn, ...extra }),
  );
  assert.equal(out.$metadata.httpStatusCode, 200);
  return out.ChannelMembership;
}

function del(w, bearer, memberArn, extra = {}, client = ctx.msg) {
  return client.send(
    new DeleteChannelMembershipCommand({ ChannelArn: w.channel, ChimeBearer: bearer, MemberArn: memberArn, ...extra }),
  );
}

function list(w, bearer, extra = {}, client = ctx.msg) {
  return client.send(new ListChannelMembershipsCommand({ ChannelArn: w.channel, ChimeBearer: bearer, ...extra }));
}

async function listAll(w, bearer, extra = {}) {
  const { items } = await collectPages(
    (NextToken) => list(w, bearer, { ...extra, NextToken, MaxResults: 50 }),
    (o) => o.ChannelMemberships,
    50,
  );
  return items.map((i) => i.Member.Arn);
}

function listSubs(w, bearer, extra = {}) {
  return ctx.msg.send(new ListSubChannelsCommand({ ChannelArn: w.channel, ChimeBearer: bearer, ...extra }));
}

function putPrefs(w, bearer, memberArn, prefs, client = ctx.msg) {
  return client.send(
    new PutChannelMembershipPreferencesCommand({ ChannelArn: w.channel, ChimeBearer: bearer, MemberArn: memberArn, Preferences: prefs }),
  );
}

function getPrefs(w, bearer, memberArn, client = ctx.msg) {
  return client.send(new GetChannelMembershipPreferencesCommand({ ChannelArn: w.channel, ChimeBearer: bearer, MemberArn: memberArn }));
}

// Exactly one membership event after `pos`: its type, SYSTEM, audience and arns, and a payload equal
// to the membership document (ISO-8601 timestamps) `doc` (a DescribeChannelMembership result).
function assertOneMembershipEvent(w, pos, type, doc, audience, arns) {
  const evs = eventsAfter(w.channel, pos);
  assert.equal(evs.length, 1, `exactly one event, got ${JSON.stringify(evs.map((e) => e.event_type))}`);
  const [e] = evs;
  assert.equal(e.event_type, type);
  assert.equal(e.message_type, 'SYSTEM');
  assert.equal(e.audience, audience);
  assert.deepEqual(e.arns, arns);
  assert.match(e.payload.CreatedTimestamp, ISO);
  assert.match(e.payload.LastUpdatedTimestamp, ISO);
  assert.deepEqual(e.payload, plain(doc));
  return e;
}

function assertNoEvents(w, pos, what) {
  const evs = eventsAfter(w.channel, pos);
  assert.deepEqual(evs.map((e) => e.event_type), [], `${what}: no event expected`);
}

// ---------------------------------------------------------------------------------------------
// CreateChannelMembership

test('CreateChannelMembership: a moderator adds a user; response, stored membership and CREATE_CHANNEL_MEMBERSHIP event', async () => {
  const w = await world();
  const pos = lastPosition(w.channel);
  const out = await create(w, w.mod.arn, w.outsider.arn);
  assert.equal(out.$metadata.httpStatusCode, 201);
  assert.deepEqual(plain({ ...out, $metadata: undefined }), { ChannelArn: w.channel, Member: ident(w.outsider) });
  const m = await describe(w, w.mod.arn, w.outsider.arn);
  assert.deepEqual(plain({ ...m, CreatedTimestamp: undefined, LastUpdatedTimestamp: undefined }), {
    ChannelArn: w.channel,
    Member: ident(w.outsider),
    InvitedBy: ident(w.mod),
    Type: 'DEFAULT',
  });
  assertRecentDate(m.CreatedTimestamp, t0, 'CreatedTimestamp');
  assert.equal(m.LastUpdatedTimestamp.getTime(), m.CreatedTimestamp.getTime());
  assertOneMembershipEvent(w, pos, 'CREATE_CHANNEL_MEMBERSHIP', m, 'members', [w.outsider.arn]);
});

test('CreateChannelMembership: RESTRICTED channel: a member may not add (Forbidden, no event); an AppInstanceAdmin who is not a member may', async () => {
  const w = await world({ mode: 'RESTRICTED' });
  const pos = lastPosition(w.channel);
  await assertRejects(create(w, w.member.arn, w.outsider.arn), 'ForbiddenException', 'member adds in RESTRICTED');
  assertNoEvents(w, pos, 'refused add');
  assert.equal(membershipRow(w.channel, w.outsider.arn), null);
  const out = await create(w, w.admin.arn, w.outsider.arn);
  assert.equal(out.Member.Arn, w.outsider.arn);
  const m = await describe(w, w.admin.arn, w.outsider.arn);
  assert.deepEqual(m.InvitedBy, ident(w.admin));
  assertOneMembershipEvent(w, pos, 'CREATE_CHANNEL_MEMBERSHIP', m, 'members', [w.outsider.arn]);
});

test('CreateChannelMembership: UNRESTRICTED channel: a member may add others; a non-member may not add others', async () => {
  const w = await world({ mode: 'UNRESTRICTED' });
  const pos = lastPosition(w.channel);
  const memberClient = await userClient(w.member);
  const out = await create(w, w.member.arn, w.outsider.arn, {}, memberClient);
  assert.equal(out.$metadata.httpStatusCode, 201);
  assert.deepEqual(out.Member, ident(w.outsider));
  const m = await describe(w, w.member.arn, w.outsider.arn);
  assert.deepEqual(m.InvitedBy, ident(w.member));
  assertOneMembershipEvent(w, pos, 'CREATE_CHANNEL_MEMBERSHIP', m, 'members', [w.outsider.arn]);
  const pos2 = lastPosition(w.channel);
  // `other` is no member of this PRIVATE channel: adding a third user is refused.
  const third = await ctx.newUser(w.ai);
  await assertRejects(create(w, w.other.arn, third.arn), 'ForbiddenException', 'non-member adds in UNRESTRICTED');
  assertNoEvents(w, pos2, 'refused add');
  memberClient.destroy();
});

test('CreateChannelMembership: PUBLIC channel: anyone of the AppInstance joins itself, but may not add someone else; PRIVATE: no self-join', async () => {
  const w = await world({ privacy: 'PUBLIC' });
  const pos = lastPosition(w.channel);
  const outsiderClient = await userClient(w.outsider);
  await assertRejects(create(w, w.outsider.arn, w.other.arn, {}, outsiderClient), 'ForbiddenException', 'add another to PUBLIC');
  assertNoEvents(w, pos, 'refused add');
  const out = await create(w, w.outsider.arn, w.outsider.arn, {}, outsiderClient);
  assert.equal(out.$metadata.httpStatusCode, 201);
  const m = await describe(w, w.outsider.arn, w.outsider.arn);
  assert.deepEqual(m.InvitedBy, ident(w.outsider));
  assertOneMembershipEvent(w, pos, 'CREATE_CHANNEL_MEMBERSHIP', m, 'members', [w.outsider.arn]);
  outsiderClient.destroy();

  const p = await world({ privacy: 'PRIVATE' });
  const ppos = lastPosition(p.channel);
  await assertRejects(create(p, p.outsider.arn, p.outsider.arn), 'ForbiddenException', 'self-join PRIVATE');
  assertNoEvents(p, ppos, 'refused self-join');
});

test('CreateChannelMembership: Conflict for a member, NotFound for a user of another AppInstance, Forbidden for a banned user; no events', async () => {
  const w = await world();
  const foreign = await ctx.newUser(await ctx.newAppInstance());
  insertBan(w.channel, w.other.arn, w.mod.arn);
  const pos = lastPosition(w.channel);
  await assertRejects(create(w, w.mod.arn, w.member.arn), 'ConflictException', 'already a member');
  await assertRejects(create(w, w.mod.arn, foreign.arn), 'NotFoundException', 'user of another AppInstance');
  await assertRejects(create(w, w.mod.arn, `${w.ai}/user/${uniq('nobody')}`), 'NotFoundException', 'no such user');
  await assertRejects(create(w, w.mod.arn, w.other.arn), 'ForbiddenException', 'banned');
  await assertRejects(create(w, foreign.arn, w.outsider.arn), 'ForbiddenException', 'bearer of another AppInstance');
  await assertRejects(create(w, w.mod.arn, w.outsider.arn, { SubChannelId: 'sub-1' }), 'BadRequestException', 'SubChannelId on a non-elastic channel');
  await assertRejects(
    create({ channel: `${w.ai}/channel/${uniq('none')}` }, w.mod.arn, w.outsider.arn),
    'NotFoundException',
    'no such channel',
  );
  assertNoEvents(w, pos, 'refused adds');
  assert.equal(membershipRow(w.channel, w.other.arn), null);
});

// ---------------------------------------------------------------------------------------------
// HIDDEN memberships

test('HIDDEN memberships: only moderators/admins create them; announced only to the hidden member; listed only with the HIDDEN filter', async () => {
  const w = await world({ mode: 'UNRESTRICTED' });
  const pos = lastPosition(w.channel);
  await assertRejects(create(w, w.member.arn, w.outsider.arn, { Type: 'HIDDEN' }), 'ForbiddenException', 'member creates HIDDEN');
  assertNoEvents(w, pos, 'refused HIDDEN');
  const out = await create(w, w.mod.arn, w.outsider.arn, { Type: 'HIDDEN' });
  assert.equal(out.$metadata.httpStatusCode, 201);
  const m = await describe(w, w.mod.arn, w.outsider.arn);
  assert.equal(m.Type, 'HIDDEN');
  assertOneMembershipEvent(w, pos, 'CREATE_CHANNEL_MEMBERSHIP', m, 'only', [w.outsider.arn]);

  // Listings: DEFAULT (the default) leaves the hidden member out; HIDDEN lists only it.
  assert.deepEqual(await listAll(w, w.mod.arn), [w.mod.arn, w.member.arn].sort(byArn));
  assert.deepEqual(await listAll(w, w.mod.arn, { Type: 'DEFAULT' }), [w.mod.arn, w.member.arn].sort(byArn));
  assert.deepEqual(await listAll(w, w.mod.arn, { Type: 'HIDDEN' }), [w.outsider.arn]);
  assert.deepEqual(await listAll(w, w.admin.arn, { Type: 'HIDDEN' }), [w.outsider.arn]);
  await assertRejects(list(w, w.member.arn, { Type: 'HIDDEN' }), 'ForbiddenException', 'member lists HIDDEN');

  // A plain member does not see the hidden membership; the hidden member sees its own.
  await assertRejects(describe(w, w.member.arn, w.outsider.arn), 'NotFoundException', 'member describes a hidden member');
  assert.equal((await describe(w, w.outsider.arn, w.outsider.arn)).Type, 'HIDDEN');

  // Leaving: the DELETE event goes only to the hidden member too.
  const pos2 = lastPosition(w.channel);
  await del(w, w.outsider.arn, w.outsider.arn);
  assertOneMembershipEvent(w, pos2, 'DELETE_CHANNEL_MEMBERSHIP', m, 'only', [w.outsider.arn]);
});

// ---------------------------------------------------------------------------------------------
// BatchCreateChannelMembership

test('BatchCreateChannelMembership: partial success; Errors with codes; one BATCH_CREATE_CHANNEL_MEMBERSHIP event to the members', async () => {
  const w = await world();
  const a = await ctx.newUser(w.ai);
  const bot = await ctx.id.send(
    new CreateAppInstanceBotCommand({ AppInstanceArn: w.ai, Name: 'Batch Bot', Configuration: lexConfig() }),
  );
  const botIdent = { Arn: bot.AppInstanceBotArn, Name: 'Batch Bot' };
  const foreign = await ctx.newUser(await ctx.newAppInstance());
  insertBan(w.channel, w.other.arn, w.mod.arn);
  const pos = lastPosition(w.channel);
  const out = await batch(w, w.mod.arn, [a.arn, w.member.arn, w.other.arn, foreign.arn, bot.AppInstanceBotArn, a.arn]);
  assert.equal(out.$metadata.httpStatusCode, 200);
  const doc = { InvitedBy: ident(w.mod), Type: 'DEFAULT', Members: [ident(a), botIdent], ChannelArn: w.channel };
  assert.deepEqual(plain(out.BatchChannelMemberships), doc);
  assert.deepEqual(
    out.Errors.map((e) => [e.MemberArn, e.ErrorCode]),
    [
      [w.member.arn, 'Conflict'],
      [w.other.arn, 'Forbidden'],
      [foreign.arn, 'NotFound'],
      [a.arn, 'Conflict'],
    ],
  );
  for (const e of out.Errors) assert.equal(typeof e.ErrorMessage, 'string');

  const evs = eventsAfter(w.channel, pos);
  assert.equal(evs.length, 1, JSON.stringify(evs.map((e) => e.event_type)));
  assert.equal(evs[0].event_type, 'BATCH_CREATE_CHANNEL_MEMBERSHIP');
  assert.equal(evs[0].message_type, 'SYSTEM');
  assert.equal(evs[0].audience, 'members');
  assert.deepEqual(evs[0].arns, [a.arn, bot.AppInstanceBotArn]);
  assert.deepEqual(evs[0].payload, doc);

  assert.deepEqual(await listAll(w, w.mod.arn), [w.mod.arn, w.member.arn, a.arn, bot.AppInstanceBotArn].sort(byArn));
  const m = await describe(w, w.mod.arn, bot.AppInstanceBotArn);
  assert.deepEqual(m.Member, botIdent);
  assert.deepEqual(m.InvitedBy, ident(w.mod));
});

test('BatchCreateChannelMembership: rights as for CreateChannelMembership; HIDDEN batch announced only to the new members; nothing added, no event', async () => {
  const w = await world({ privacy: 'PUBLIC' });
  const pos = lastPosition(w.channel);
  // RESTRICTED: a member may not add.
  await assertRejects(batch(w, w.member.arn, [w.outsider.arn]), 'ForbiddenException', 'member batch-adds in RESTRICTED');
  // PUBLIC: a non-member may add only itself.
  await assertRejects(batch(w, w.outsider.arn, [w.outsider.arn, w.other.arn]), 'ForbiddenException', 'self and another');
  assertNoEvents(w, pos, 'refused batches');
  assert.equal(membershipRow(w.channel, w.outsider.arn), null);
  const self = await batch(w, w.outsider.arn, [w.outsider.arn]);
  assert.deepEqual(plain(self.BatchChannelMemberships), {
    InvitedBy: ident(w.outsider),
    Type: 'DEFAULT',
    Members: [ident(w.outsider)],
    ChannelArn: w.channel,
  });
  assert.deepEqual(self.Errors, []);
  const evs = eventsAfter(w.channel, pos);
  assert.deepEqual(evs.map((e) => [e.event_type, e.audience, e.arns]), [['BATCH_CREATE_CHANNEL_MEMBERSHIP', 'members', [w.outsider.arn]]]);

  // HIDDEN by the moderator: the event goes only to the hidden members.
  const h1 = await ctx.newUser(w.ai);
  const h2 = await ctx.newUser(w.ai);
  await assertRejects(batch(w, w.outsider.arn, [w.outsider.arn], { Type: 'HIDDEN' }), 'ForbiddenException', 'HIDDEN by a non-moderator');
  const pos2 = lastPosition(w.channel);
  const hid = await batch(w, w.mod.arn, [h1.arn, h2.arn], { Type: 'HIDDEN' });
  const hdoc = { InvitedBy: ident(w.mod), Type: 'HIDDEN', Members: [ident(h1), ident(h2)], ChannelArn: w.channel };
  assert.deepEqual(plain(hid.BatchChannelMemberships), hdoc);
  const hev = eventsAfter(w.channel, pos2);
  assert.equal(hev.length, 1);
  assert.deepEqual([hev[0].event_type, hev[0].message_type, hev[0].audience, hev[0].arns], [
    'BATCH_CREATE_CHANNEL_MEMBERSHIP',
    'SYSTEM',
    'only',
    [h1.arn, h2.arn],
  ]);
  assert.deepEqual(hev[0].payload, hdoc);
  assert.equal(membershipRow(w.channel, h2.arn).type, 'HIDDEN');

  // Everyone fails: 200 with the errors, no member, no event.
  const pos3 = lastPosition(w.channel);
  const none = await batch(w, w.mod.arn, [h1.arn, w.member.arn]);
  assert.deepEqual(plain(none.BatchChannelMemberships), { InvitedBy: ident(w.mod), Type: 'DEFAULT', Members: [], ChannelArn: w.channel });
  assert.deepEqual(none.Errors.map((e) => e.ErrorCode), ['Conflict', 'Conflict']);
  assertNoEvents(w, pos3, 'batch that added nobody');
});

// ---------------------------------------------------------------------------------------------
// DescribeChannelMembership / ListChannelMemberships

test('DescribeChannelMembership: members, moderators and admins of a PRIVATE channel; the whole AppInstance for PUBLIC; NotFound for a non-member', async () => {
  const w = await world();
  const byMember = await describe(w, w.member.arn, w.mod.arn);
  assert.deepEqual(plain({ ...byMember, CreatedTimestamp: undefined, LastUpdatedTimestamp: undefined }), {
    ChannelArn: w.channel,
    Member: ident(w.mod),
    InvitedBy: ident(w.mod),
    Type: 'DEFAULT',
  });
  assertRecentDate(byMember.CreatedTimestamp, t0);
  assert.deepEqual(await describe(w, w.admin.arn, w.member.arn), await describe(w, w.mod.arn, w.member.arn));
  await assertRejects(describe(w, w.outsider.arn, w.member.arn), 'ForbiddenException', 'outsider on PRIVATE');
  await assertRejects(describe(w, w.mod.arn, w.outsider.arn), 'NotFoundException', 'not a member');
  // Asking about oneself after leaving: NotFound rather than Forbidden.
  await assertRejects(describe(w, w.outsider.arn, w.outsider.arn), 'NotFoundException', 'oneself, not a member');
  await assertRejects(describe(w, w.mod.arn, w.member.arn, { SubChannelId: 'x' }), 'BadRequestException', 'SubChannelId on non-elastic');

  const p = await world({ privacy: 'PUBLIC' });
  assert.equal((await describe(p, p.outsider.arn, p.member.arn)).Member.Arn, p.member.arn);
});

test('ListChannelMemberships: pages across MaxResults with NextToken, ordered by member ARN; PRIVATE only for members/moderators/admins', async () => {
  const w = await world();
  const users = [];
  for (let i = 0; i < 7; i++) users.push(await ctx.newUser(w.ai));
  const out = await batch(w, w.mod.arn, users.map((u) => u.arn));
  assert.deepEqual(out.Errors, []);
  const expected = [w.mod, w.member, ...users].map((u) => u.arn).sort(byArn);
  const { items, pages } = await collectPages(
    (NextToken) => list(w, w.member.arn, { MaxResults: 4, NextToken }),
    (o) => o.ChannelMemberships,
    4,
  );
  assert.deepEqual(pages.map((p) => p.count), [4, 4, 1]);
  assert.deepEqual(items.map((i) => i.Member.Arn), expected);
  const names = new Map([w.mod, w.member, ...users].map((u) => [u.arn, u.name]));
  for (const i of items) assert.deepEqual(plain(i), { Member: { Arn: i.Member.Arn, Name: names.get(i.Member.Arn) } });
  const first = await list(w, w.admin.arn, { MaxResults: 50 });
  assert.equal(first.ChannelArn, w.channel);
  assert.equal(first.NextToken, undefined);
  assert.equal(first.ChannelMemberships.length, 9);
  await assertRejects(list(w, w.outsider.arn), 'ForbiddenException', 'outsider lists PRIVATE');
  await assertRejects(list(w, w.mod.arn, { SubChannelId: 'x' }), 'BadRequestException', 'SubChannelId on non-elastic');

  const p = await world({ privacy: 'PUBLIC' });
  assert.deepEqual(await listAll(p, p.outsider.arn), [p.mod.arn, p.member.arn].sort(byArn));
});

// ---------------------------------------------------------------------------------------------
// DeleteChannelMembership

test('DeleteChannelMembership: a member leaves; DELETE_CHANNEL_MEMBERSHIP to the members and the removed member', async () => {
  const w = await world();
  const before = await describe(w, w.member.arn, w.member.arn);
  const pos = lastPosition(w.channel);
  const memberClient = await userClient(w.member);
  const out = await del(w, w.member.arn, w.member.arn, {}, memberClient);
  assert.equal(out.$metadata.httpStatusCode, 204);
  memberClient.destroy();
  assertOneMembershipEvent(w, pos, 'DELETE_CHANNEL_MEMBERSHIP', before, 'members', [w.member.arn]);
  assert.equal(membershipRow(w.channel, w.member.arn), null);
  const pos2 = lastPosition(w.channel);
  await assertRejects(del(w, w.member.arn, w.member.arn), 'NotFoundException', 'leaving twice');
  await assertRejects(del(w, w.mod.arn, w.outsider.arn), 'NotFoundException', 'removing a non-member');
  assertNoEvents(w, pos2, 'refused deletes');
});

test('DeleteChannelMembership: a member may not remove another (Forbidden, no event); a moderator and an admin may', async () => {
  const w = await world({ mode: 'UNRESTRICTED' });
  await create(w, w.mod.arn, w.outsider.arn);
  await create(w, w.mod.arn, w.other.arn);
  const pos = lastPosition(w.channel);
  await assertRejects(del(w, w.member.arn, w.outsider.arn), 'ForbiddenException', 'member kicks');
  await assertRejects(del(w, w.member.arn, w.mod.arn), 'ForbiddenException', 'member kicks the moderator');
  assertNoEvents(w, pos, 'refused kicks');
  assert.notEqual(membershipRow(w.channel, w.outsider.arn), null);

  const d1 = await describe(w, w.mod.arn, w.outsider.arn);
  await del(w, w.mod.arn, w.outsider.arn);
  assertOneMembershipEvent(w, pos, 'DELETE_CHANNEL_MEMBERSHIP', d1, 'members', [w.outsider.arn]);
  const pos2 = lastPosition(w.channel);
  const d2 = await describe(w, w.mod.arn, w.other.arn);
  await del(w, w.admin.arn, w.other.arn);
  assertOneMembershipEvent(w, pos2, 'DELETE_CHANNEL_MEMBERSHIP', d2, 'members', [w.other.arn]);
  assert.deepEqual(await listAll(w, w.mod.arn), [w.mod.arn, w.member.arn].sort(byArn));
  await assertRejects(del(w, w.mod.arn, w.member.arn, { SubChannelId: 'x' }), 'BadRequestException', 'SubChannelId on non-elastic');
});

// ---------------------------------------------------------------------------------------------
// The per-user views

test('DescribeChannelMembershipForAppInstanceUser: oneself, an admin about anyone; Forbidden for others; NotFound for a non-member', async () => {
  const w = await world({ privacy: 'PUBLIC', mode: 'UNRESTRICTED' });
  const marker = '2024-05-06T07:08:09.123Z';
  setReadMarker(w.channel, w.member.arn, marker);
  const memberClient = await userClient(w.member);
  const mine = await memberClient.send(
    new DescribeChannelMembershipForAppInstanceUserCommand({ ChannelArn: w.channel, ChimeBearer: w.member.arn, AppInstanceUserArn: w.member.arn }),
  );
  assert.equal(mine.$metadata.httpStatusCode, 200);
  const cm = plain(mine.ChannelMembership);
  assert.deepEqual(Object.keys(cm.ChannelSummary).sort(), ['ChannelArn', 'Mode', 'Name', 'Privacy']);
  assert.equal(cm.ChannelSummary.ChannelArn, w.channel);
  assert.equal(cm.ChannelSummary.Mode, 'UNRESTRICTED');
  assert.equal(cm.ChannelSummary.Privacy, 'PUBLIC');
  assert.deepEqual(cm.AppInstanceUserMembershipSummary, { Type: 'DEFAULT', ReadMarkerTimestamp: marker });
  assert.ok(mine.ChannelMembership.AppInstanceUserMembershipSummary.ReadMarkerTimestamp instanceof Date);

  // Another user's membership: refused for a plain user (even the moderator), allowed for an admin.
  await assertRejects(
    memberClient.send(
      new DescribeChannelMembershipForAppInstanceUserCommand({ ChannelArn: w.channel, ChimeBearer: w.member.arn, AppInstanceUserArn: w.mod.arn }),
    ),
    'ForbiddenException',
    'member about the moderator',
  );
  memberClient.destroy();
  const modClient = await userClient(w.mod);
  await assertRejects(
    modClient.send(
      new DescribeChannelMembershipForAppInstanceUserCommand({ ChannelArn: w.channel, ChimeBearer: w.mod.arn, AppInstanceUserArn: w.member.arn }),
    ),
    'ForbiddenException',
    'moderator about a member',
  );
  modClient.destroy();
  const adminClient = await userClient(w.admin);
  const byAdmin = await adminClient.send(
    new DescribeChannelMembershipForAppInstanceUserCommand({ ChannelArn: w.channel, ChimeBearer: w.admin.arn, AppInstanceUserArn: w.member.arn }),
  );
  assert.deepEqual(plain(byAdmin.ChannelMembership), cm);
  await assertRejects(
    adminClient.send(
      new DescribeChannelMembershipForAppInstanceUserCommand({ ChannelArn: w.channel, ChimeBearer: w.admin.arn, AppInstanceUserArn: w.outsider.arn }),
    ),
    'NotFoundException',
    'not a member',
  );
  adminClient.destroy();
});

test('ListChannelMembershipsForAppInstanceUser: the bearer by default, pages by channel ARN, HIDDEN included; others only for admins', async () => {
  const w = await world();
  const channels = [w.channel];
  for (let i = 0; i < 4; i++) {
    const ch = await ctx.msg.send(
      new CreateChannelCommand({ AppInstanceArn: w.ai, Name: uniq('chan'), ChimeBearer: w.mod.arn, Privacy: i % 2 ? 'PUBLIC' : 'PRIVATE' }),
    );
    channels.push(ch.ChannelArn);
    await create({ channel: ch.ChannelArn }, w.mod.arn, w.member.arn, { Type: i === 3 ? 'HIDDEN' : 'DEFAULT' });
  }
  channels.sort(byArn);
  const memberClient = await userClient(w.member);
  const { items, pages } = await collectPages(
    (NextToken) =>
      memberClient.send(new ListChannelMembershipsForAppInstanceUserCommand({ ChimeBearer: w.member.arn, MaxResults: 2, NextToken })),
    (o) => o.ChannelMemberships,
    2,
  );
  assert.deepEqual(pages.map((p) => p.count), [2, 2, 1]);
  assert.deepEqual(items.map((i) => i.ChannelSummary.ChannelArn), channels);
  const hidden = items.filter((i) => i.AppInstanceUserMembershipSummary.Type === 'HIDDEN');
  assert.equal(hidden.length, 1);
  for (const i of items) {
    assert.deepEqual(Object.keys(i).sort(), ['AppInstanceUserMembershipSummary', 'ChannelSummary']);
    assert.ok(['DEFAULT', 'HIDDEN'].includes(i.AppInstanceUserMembershipSummary.Type));
    assert.equal(i.AppInstanceUserMembershipSummary.SubChannelId, undefined);
  }
  // Explicitly oneself: the same list.
  const self = await memberClient.send(
    new ListChannelMembershipsForAppInstanceUserCommand({ ChimeBearer: w.member.arn, AppInstanceUserArn: w.member.arn, MaxResults: 50 }),
  );
  assert.deepEqual(plain(self.ChannelMemberships), plain(items));
  // Another user's list: a plain user is refused, an admin may.
  await assertRejects(
    memberClient.send(new ListChannelMembershipsForAppInstanceUserCommand({ ChimeBearer: w.member.arn, AppInstanceUserArn: w.mod.arn })),
    'ForbiddenException',
    'member lists the moderator',
  );
  memberClient.destroy();
  const adminClient = await userClient(w.admin);
  const byAdmin = await adminClient.send(
    new ListChannelMembershipsForAppInstanceUserCommand({ ChimeBearer: w.admin.arn, AppInstanceUserArn: w.member.arn, MaxResults: 50 }),
  );
  assert.deepEqual(plain(byAdmin.ChannelMemberships), plain(items));
  const foreign = await ctx.newUser(await ctx.newAppInstance());
  await assertRejects(
    adminClient.send(new ListChannelMembershipsForAppInstanceUserCommand({ ChimeBearer: w.admin.arn, AppInstanceUserArn: foreign.arn })),
    'NotFoundException',
    'user of another AppInstance',
  );
  const mine = await adminClient.send(new ListChannelMembershipsForAppInstanceUserCommand({ ChimeBearer: w.admin.arn }));
  assert.deepEqual(mine.ChannelMemberships, []);
  assert.equal(mine.NextToken, undefined);
  adminClient.destroy();
});

// ---------------------------------------------------------------------------------------------
// Preferences

test('Put/GetChannelMembershipPreferences: only the member itself; FILTERED needs a valid JSON FilterRule; no event', async () => {
  const w = await world();
  const pos = lastPosition(w.channel);
  const empty = await getPrefs(w, w.member.arn, w.member.arn);
  assert.deepEqual(plain({ ...empty, $metadata: undefined }), { ChannelArn: w.channel, Member: ident(w.member), Preferences: {} });

  const memberClient = await userClient(w.member);
  const all = { PushNotifications: { AllowNotifications: 'ALL' } };
  const put = await putPrefs(w, w.member.arn, w.member.arn, all, memberClient);
  assert.equal(put.$metadata.httpStatusCode, 200);
  assert.deepEqual(plain({ ...put, $metadata: undefined }), { ChannelArn: w.channel, Member: ident(w.member), Preferences: all });
  assert.deepEqual((await getPrefs(w, w.member.arn, w.member.arn, memberClient)).Preferences, all);

  const rule = JSON.stringify({ type: [{ 'anything-but': [w.member.arn] }], mention: ['Bob'] });
  const filtered = { PushNotifications: { AllowNotifications: 'FILTERED', FilterRule: rule } };
  assert.deepEqual((await putPrefs(w, w.member.arn, w.member.arn, filtered, memberClient)).Preferences, filtered);
  assert.deepEqual((await getPrefs(w, w.member.arn, w.member.arn)).Preferences, filtered);
  const orRule = JSON.stringify({ $or: [{ mention: ['Bob'] }, { priority: ['high', 'urgent'] }] });
  const orPrefs = { PushNotifications: { AllowNotifications: 'FILTERED', FilterRule: orRule } };
  assert.deepEqual((await putPrefs(w, w.member.arn, w.member.arn, orPrefs)).Preferences, orPrefs);
  const none = { PushNotifications: { AllowNotifications: 'NONE' } };
  assert.deepEqual((await putPrefs(w, w.member.arn, w.member.arn, none)).Preferences, none);

  // Someone else's preferences: not even a moderator or an admin.
  await assertRejects(putPrefs(w, w.mod.arn, w.member.arn, all), 'ForbiddenException', 'moderator sets a member');
  await assertRejects(putPrefs(w, w.admin.arn, w.member.arn, all), 'ForbiddenException', 'admin sets a member');
  await assertRejects(getPrefs(w, w.mod.arn, w.member.arn), 'ForbiddenException', 'moderator reads a member');
  await assertRejects(getPrefs(w, w.outsider.arn, w.outsider.arn), 'NotFoundException', 'not a member');
  await assertRejects(putPrefs(w, w.outsider.arn, w.outsider.arn, all), 'NotFoundException', 'not a member sets');
  assert.deepEqual((await getPrefs(w, w.member.arn, w.member.arn)).Preferences, none, 'refused writes changed nothing');
  memberClient.destroy();

  const bad = [
    ['FILTERED without a FilterRule', { AllowNotifications: 'FILTERED' }],
    ['FilterRule with ALL', { AllowNotifications: 'ALL', FilterRule: '{"mention":["Bob"]}' }],
    ['not JSON', { AllowNotifications: 'FILTERED', FilterRule: '{mention: Bob' }],
    ['a JSON array', { AllowNotifications: 'FILTERED', FilterRule: '["Bob"]' }],
    ['a JSON string', { AllowNotifications: 'FILTERED', FilterRule: '"Bob"' }],
    ['an empty object', { AllowNotifications: 'FILTERED', FilterRule: '{}' }],
    ['a value that is not an array', { AllowNotifications: 'FILTERED', FilterRule: '{"mention":"Bob"}' }],
    ['an empty array', { AllowNotifications: 'FILTERED', FilterRule: '{"mention":[]}' }],
    ['a number (exact string matching only)', { AllowNotifications: 'FILTERED', FilterRule: '{"count":[5]}' }],
    ['an unsupported operator', { AllowNotifications: 'FILTERED', FilterRule: '{"mention":[{"prefix":"Bo"}]}' }],
    ['six alternatives in $or', { AllowNotifications: 'FILTERED', FilterRule: JSON.stringify({ $or: [1, 2, 3, 4, 5, 6].map((i) => ({ k: [`v${i}`] })) }) }],
    ['complexity above 20', { AllowNotifications: 'FILTERED', FilterRule: JSON.stringify({ a: Array.from({ length: 20 }, (_, i) => `v${i}`) }) }],
    ['larger than 2 KB', { AllowNotifications: 'FILTERED', FilterRule: JSON.stringify({ a: ['x'.repeat(2100)] }) }],
  ];
  for (const [what, pn] of bad) {
    await assertRejects(putPrefs(w, w.member.arn, w.member.arn, { PushNotifications: pn }), 'BadRequestException', what);
  }
  assert.deepEqual(membershipRow(w.channel, w.member.arn).preferences, none);
  assertNoEvents(w, pos, 'preferences');

  // A banned member (ban row present) can neither read nor set them.
  insertBan(w.channel, w.member.arn, w.mod.arn);
  await assertRejects(getPrefs(w, w.member.arn, w.member.arn), 'ForbiddenException', 'banned reads');
  await assertRejects(putPrefs(w, w.member.arn, w.member.arn, all), 'ForbiddenException', 'banned sets');
});

// ---------------------------------------------------------------------------------------------
// Elastic channels

const ELASTIC = { MaximumSubChannels: 3, TargetMembershipsPerSubChannel: 2, MinimumMembershipPercentage: 40 };

// An elastic channel without members (the creator's own membership, if CreateChannel made one,
// is removed) and `n` further users of its AppInstance.
async function elasticWorld(config, n) {
  const w = await world({ elastic: config });
  if (membershipRow(w.channel, w.mod.arn)) await del(w, w.mod.arn, w.mod.arn);
  w.users = [];
  for (let i = 0; i < n; i++) w.users.push(await ctx.newUser(w.ai));
  return w;
}

async function subChannels(w) {
  const { items } = await collectPages(
    (NextToken) => listSubs(w, w.mod.arn, { MaxResults: 50, NextToken }),
    (o) => o.SubChannels,
    50,
  );
  return items;
}

test('Elastic channels: members fill a sub-channel up to the target, then new ones up to the maximum, then ResourceLimitExceeded', async () => {
  const w = await elasticWorld(ELASTIC, 7);
  const [u1, u2, u3, u4, u5, u6, u7] = w.users;
  const subs = [];
  for (const u of [u1, u2, u3, u4, u5, u6]) {
    const pos = lastPosition(w.channel);
    const out = await create(w, w.mod.arn, u.arn);
    assert.match(out.SubChannelId, UUID);
    subs.push(out.SubChannelId);
    const m = await describe(w, w.mod.arn, u.arn);
    assert.equal(m.SubChannelId, out.SubChannelId);
    const e = assertOneMembershipEvent(w, pos, 'CREATE_CHANNEL_MEMBERSHIP', m, 'members', [u.arn]);
    assert.equal(e.payload.SubChannelId, out.SubChannelId);
  }
  // Pairs: u1,u2 in A; u3,u4 in B; u5,u6 in C.
  assert.equal(subs[0], subs[1]);
  assert.equal(subs[2], subs[3]);
  assert.equal(subs[4], subs[5]);
  assert.equal(new Set(subs).size, 3);
  const pos = lastPosition(w.channel);
  await assertRejects(create(w, w.mod.arn, u7.arn), 'ResourceLimitExceededException', 'every sub-channel full');
  await assertRejects(create(w, w.mod.arn, u1.arn), 'ConflictException', 'already a member of a full channel');
  assertNoEvents(w, pos, 'refused elastic adds');

  const expected = [...new Set(subs)].sort(byArn).map((id) => ({ SubChannelId: id, MembershipCount: 2 }));
  assert.deepEqual(plain(await subChannels(w)), expected);
  const { items, pages } = await collectPages(
    (NextToken) => listSubs(w, w.admin.arn, { MaxResults: 2, NextToken }),
    (o) => o.SubChannels,
    2,
  );
  assert.deepEqual(pages.map((p) => p.count), [2, 1]);
  assert.deepEqual(plain(items), expected);
  const first = await listSubs(w, w.mod.arn);
  assert.equal(first.ChannelArn, w.channel);

  // Memberships of one sub-channel; SubChannelId must match the membership's.
  assert.deepEqual(await listAll(w, w.mod.arn, { SubChannelId: subs[2] }), [u3.arn, u4.arn].sort(byArn));
  assert.equal((await describe(w, w.mod.arn, u3.arn, { SubChannelId: subs[2] })).SubChannelId, subs[2]);
  await assertRejects(describe(w, w.mod.arn, u3.arn, { SubChannelId: subs[0] }), 'NotFoundException', 'wrong sub-channel');
  await assertRejects(del(w, w.mod.arn, u3.arn, { SubChannelId: subs[0] }), 'NotFoundException', 'delete in the wrong sub-channel');

  // Leaving frees a place in that sub-channel, which the next member takes.
  await del(w, w.mod.arn, u3.arn, { SubChannelId: subs[2] });
  const again = await create(w, w.mod.arn, u7.arn);
  assert.equal(again.SubChannelId, subs[2]);
});

test('Elastic channels: no HIDDEN memberships, no preferences, SubChannelId only for moderators; ListSubChannels for moderators/admins of elastic channels', async () => {
  const w = await elasticWorld(ELASTIC, 2);
  const [u1, u2] = w.users;
  const pos = lastPosition(w.channel);
  await assertRejects(create(w, w.mod.arn, u1.arn, { Type: 'HIDDEN' }), 'BadRequestException', 'HIDDEN on elastic');
  await assertRejects(create(w, w.mod.arn, u1.arn, { SubChannelId: 'any' }), 'BadRequestException', 'SubChannelId for a regular member');
  assertNoEvents(w, pos, 'refused elastic adds');
  const a = (await create(w, w.mod.arn, u1.arn)).SubChannelId;
  await create(w, w.mod.arn, u2.arn);
  // The moderator joins the (full) sub-channel it names; an unknown sub-channel is NotFound.
  await assertRejects(create(w, w.mod.arn, w.mod.arn, { SubChannelId: 'no-such-sub' }), 'NotFoundException', 'unknown sub-channel');
  const modIn = await create(w, w.mod.arn, w.mod.arn, { SubChannelId: a });
  assert.equal(modIn.SubChannelId, a);
  assert.deepEqual(plain(await subChannels(w)), [{ SubChannelId: a, MembershipCount: 3 }]);

  await assertRejects(putPrefs(w, u1.arn, u1.arn, { PushNotifications: { AllowNotifications: 'ALL' } }), 'BadRequestException', 'preferences on elastic');
  await assertRejects(getPrefs(w, u1.arn, u1.arn), 'BadRequestException', 'preferences on elastic');
  await assertRejects(listSubs(w, u1.arn), 'ForbiddenException', 'member lists sub-channels');
  const plainChannel = await world();
  await assertRejects(listSubs(plainChannel, plainChannel.mod.arn), 'BadRequestException', 'non-elastic channel');
});

test('Elastic channels: BatchCreateChannelMembership places members like single adds and records one CREATE_CHANNEL_MEMBERSHIP each', async () => {
  const w = await elasticWorld(ELASTIC, 3);
  const [u1, u2, u3] = w.users;
  const pos = lastPosition(w.channel);
  const out = await batch(w, w.mod.arn, [u1.arn, u2.arn, u3.arn, u1.arn]);
  assert.deepEqual(plain(out.BatchChannelMemberships), {
    InvitedBy: ident(w.mod),
    Type: 'DEFAULT',
    Members: [ident(u1), ident(u2), ident(u3)],
    ChannelArn: w.channel,
  });
  assert.deepEqual(out.Errors.map((e) => [e.MemberArn, e.ErrorCode]), [[u1.arn, 'Conflict']]);
  const evs = eventsAfter(w.channel, pos);
  assert.deepEqual(evs.map((e) => [e.event_type, e.audience, e.arns]), [u1, u2, u3].map((u) => ['CREATE_CHANNEL_MEMBERSHIP', 'members', [u.arn]]));
  for (const [i, u] of [u1, u2, u3].entries()) assert.deepEqual(evs[i].payload, plain(await describe(w, w.mod.arn, u.arn)));
  const [s1, s2, s3] = evs.map((e) => e.payload.SubChannelId);
  assert.equal(s1, s2);
  assert.notEqual(s1, s3);

  // All into one sub-channel: the response names it.
  const w2 = await elasticWorld(ELASTIC, 2);
  const one = await batch(w2, w2.mod.arn, w2.users.map((u) => u.arn));
  assert.match(one.BatchChannelMemberships.SubChannelId, UUID);
  assert.equal(membershipRow(w2.channel, w2.users[1].arn).sub_channel_id, one.BatchChannelMemberships.SubChannelId);
});

test('Elastic channels: a sub-channel left below the minimum is dissolved into the others; UPDATE_CHANNEL_MEMBERSHIP to each moved member', async () => {
  // Target 4, minimum 40 % -> a sub-channel needs ceil(1.6) = 2 members.
  const w = await elasticWorld({ MaximumSubChannels: 3, TargetMembershipsPerSubChannel: 4, MinimumMembershipPercentage: 40 }, 6);
  const [u1, u2, u3, u4, u5, u6] = w.users;
  const out = await batch(w, w.mod.arn, w.users.map((u) => u.arn));
  assert.deepEqual(out.Errors, []);
  const a = membershipRow(w.channel, u1.arn).sub_channel_id;
  const b = membershipRow(w.channel, u5.arn).sub_channel_id;
  assert.notEqual(a, b);
  for (const u of [u2, u3, u4]) assert.equal(membershipRow(w.channel, u.arn).sub_channel_id, a);
  assert.equal(membershipRow(w.channel, u6.arn).sub_channel_id, b);

  // u1 leaves A (3 left, enough); u6 leaves B (1 left, below 2; A has room): u5 moves to A.
  let pos = lastPosition(w.channel);
  await del(w, u1.arn, u1.arn);
  assert.deepEqual(eventsAfter(w.channel, pos).map((e) => e.event_type), ['DELETE_CHANNEL_MEMBERSHIP']);
  pos = lastPosition(w.channel);
  const d6 = await describe(w, w.mod.arn, u6.arn);
  await del(w, u6.arn, u6.arn);
  const evs = eventsAfter(w.channel, pos);
  assert.deepEqual(evs.map((e) => [e.event_type, e.message_type, e.audience, e.arns]), [
    ['DELETE_CHANNEL_MEMBERSHIP', 'SYSTEM', 'members', [u6.arn]],
    ['UPDATE_CHANNEL_MEMBERSHIP', 'SYSTEM', 'only', [u5.arn]],
  ]);
  assert.deepEqual(evs[0].payload, plain(d6));
  const m5 = await describe(w, w.mod.arn, u5.arn);
  assert.equal(m5.SubChannelId, a);
  assert.deepEqual(evs[1].payload, plain(m5));
  assert.ok(m5.LastUpdatedTimestamp.getTime() >= m5.CreatedTimestamp.getTime());
  assert.deepEqual(plain(await subChannels(w)), [{ SubChannelId: a, MembershipCount: 4 }]);
});

test('Elastic channels: concurrent adds are placed one after the other (no sub-channel over its target, none beyond the maximum)', async () => {
  const w = await elasticWorld(ELASTIC, 8);
  const pos = lastPosition(w.channel);
  const results = await Promise.allSettled(w.users.map((u) => create(w, w.mod.arn, u.arn)));
  const ok = results.filter((r) => r.status === 'fulfilled');
  const failed = results.filter((r) => r.status === 'rejected');
  assert.equal(ok.length, 6, JSON.stringify(failed.map((r) => r.reason?.name)));
  assert.deepEqual(failed.map((r) => r.reason.name), ['ResourceLimitExceededException', 'ResourceLimitExceededException']);
  const subs = await subChannels(w);
  assert.deepEqual(subs.map((s) => s.MembershipCount), [2, 2, 2]);
  assert.deepEqual(
    subs.map((s) => s.SubChannelId).sort(byArn),
    [...new Set(ok.map((r) => r.value.SubChannelId))].sort(byArn),
  );
  assert.deepEqual(eventsAfter(w.channel, pos).map((e) => e.event_type), Array(6).fill('CREATE_CHANNEL_MEMBERSHIP'));
});
