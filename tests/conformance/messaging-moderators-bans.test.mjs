// ChannelModerator (Create/Describe/List/DeleteChannelModerator) and ChannelBan
// (Create/Describe/List/DeleteChannelBan): access rules, errors, the DELETE_CHANNEL_MEMBERSHIP a ban
// of a member emits, and that a ban keeps an identity out (no re-adding, no rejoining, no
// promotion) until it is deleted.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CreateAppInstanceAdminCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  CreateChannelBanCommand,
  CreateChannelCommand,
  CreateChannelMembershipCommand,
  CreateChannelModeratorCommand,
  DeleteChannelBanCommand,
  DeleteChannelCommand,
  DeleteChannelModeratorCommand,
  DescribeChannelBanCommand,
  DescribeChannelCommand,
  DescribeChannelModeratorCommand,
  ListChannelBansCommand,
  ListChannelModeratorsCommand,
  UpdateChannelCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { channelRows, eventsAfter, insertMembership, logPosition, memberArns, sql } from './lib/events-chan.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { assertRecentDate, assertRejects, collectPages, uniq } from './lib/util.mjs';

const ctx = useCarillon();
const t0 = Date.now();
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function plain(x) {
  return JSON.parse(JSON.stringify(x));
}

function send(cmd) {
  return ctx.msg.send(cmd);
}

const sortArns = (xs) => [...xs].sort();

// An AppInstance with: mod (creates the channel), member, admin (AppInstanceAdmin, not in the
// channel), outsider (user of the AppInstance, not in the channel), foreign (user of another
// AppInstance), and one channel.
async function world(channelInput = {}) {
  const ai = await ctx.newAppInstance();
  const mod = await ctx.newUser(ai, { Name: 'Moderator' });
  const member = await ctx.newUser(ai, { Name: 'Member' });
  const admin = await ctx.newUser(ai);
  const outsider = await ctx.newUser(ai, { Name: 'Outsider' });
  await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: admin.arn }));
  const ai2 = await ctx.newAppInstance();
  const foreign = await ctx.newUser(ai2);
  const out = await send(
    new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('chan'), ChimeBearer: mod.arn, MemberArns: [member.arn], Privacy: 'PRIVATE', ...channelInput }),
  );
  return { ai, ai2, mod, member, admin, outsider, foreign, channel: out.ChannelArn };
}

const createMod = (w, bearer, arn, channel = w.channel) =>
  send(new CreateChannelModeratorCommand({ ChannelArn: channel, ChimeBearer: bearer, ChannelModeratorArn: arn }));
const deleteMod = (w, bearer, arn, channel = w.channel) =>
  send(new DeleteChannelModeratorCommand({ ChannelArn: channel, ChimeBearer: bearer, ChannelModeratorArn: arn }));
const describeMod = (w, bearer, arn, channel = w.channel) =>
  send(new DescribeChannelModeratorCommand({ ChannelArn: channel, ChimeBearer: bearer, ChannelModeratorArn: arn }));
const listMods = async (w, bearer, channel = w.channel) =>
  (await send(new ListChannelModeratorsCommand({ ChannelArn: channel, ChimeBearer: bearer }))).ChannelModerators.map((m) => m.Moderator.Arn);
const ban = (w, bearer, arn, channel = w.channel) => send(new CreateChannelBanCommand({ ChannelArn: channel, ChimeBearer: bearer, MemberArn: arn }));
const unban = (w, bearer, arn, channel = w.channel) => send(new DeleteChannelBanCommand({ ChannelArn: channel, ChimeBearer: bearer, MemberArn: arn }));
const describeBan = (w, bearer, arn, channel = w.channel) => send(new DescribeChannelBanCommand({ ChannelArn: channel, ChimeBearer: bearer, MemberArn: arn }));
const listBans = async (w, bearer, channel = w.channel) =>
  (await send(new ListChannelBansCommand({ ChannelArn: channel, ChimeBearer: bearer }))).ChannelBans.map((b) => b.Member.Arn);
const addMember = (w, bearer, arn, type = 'DEFAULT', channel = w.channel) =>
  send(new CreateChannelMembershipCommand({ ChannelArn: channel, ChimeBearer: bearer, MemberArn: arn, Type: type }));

// ---------------------------------------------------------------- moderators

test('CreateChannelModerator: 201 {ChannelArn, ChannelModerator}; Describe returns {Moderator, ChannelArn, CreatedTimestamp, CreatedBy}; no event, no membership', async () => {
  const w = await world();
  const p = logPosition();
  const out = await createMod(w, w.mod.arn, w.outsider.arn);
  assert.equal(out.$metadata.httpStatusCode, 201);
  assert.equal(out.ChannelArn, w.channel);
  assert.deepEqual(plain(out.ChannelModerator), { Arn: w.outsider.arn, Name: 'Outsider' });

  const d = await describeMod(w, w.member.arn, w.outsider.arn);
  assert.equal(d.$metadata.httpStatusCode, 200);
  assert.equal(d.ChannelModerator.ChannelArn, w.channel);
  assert.deepEqual(plain(d.ChannelModerator.Moderator), { Arn: w.outsider.arn, Name: 'Outsider' });
  assert.deepEqual(plain(d.ChannelModerator.CreatedBy), { Arn: w.mod.arn, Name: 'Moderator' });
  assertRecentDate(d.ChannelModerator.CreatedTimestamp, t0, 'CreatedTimestamp');

  assert.deepEqual(await listMods(w, w.member.arn), sortArns([w.mod.arn, w.outsider.arn]));
  assert.deepEqual(eventsAfter(w.channel, p), [], 'moderator changes are not websocket events');
  assert.ok(!memberArns(w.channel).includes(w.outsider.arn), 'a moderator is not made a member');

  // The new moderator manages the channel now...
  await send(new UpdateChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.outsider.arn, Name: 'by new mod' }));
  // ...and no longer once removed.
  const del = await deleteMod(w, w.mod.arn, w.outsider.arn);
  assert.equal(del.$metadata.httpStatusCode, 204);
  await assertRejects(send(new UpdateChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.outsider.arn, Name: 'x' })), 'ForbiddenException');
  await assertRejects(describeMod(w, w.mod.arn, w.outsider.arn), 'NotFoundException');
  assert.deepEqual(await listMods(w, w.mod.arn), [w.mod.arn]);
});

test('CreateChannelModerator / DeleteChannelModerator: moderators and admins may, members may not (Forbidden); Conflict, NotFound', async () => {
  const w = await world();
  await assertRejects(createMod(w, w.member.arn, w.member.arn), 'ForbiddenException', 'a member promoting itself');
  await assertRejects(createMod(w, w.outsider.arn, w.outsider.arn), 'ForbiddenException', 'an outsider');
  await assertRejects(createMod(w, w.foreign.arn, w.foreign.arn), 'ForbiddenException', 'an identity of another AppInstance');
  assert.deepEqual(await listMods(w, w.mod.arn), [w.mod.arn]);

  await createMod(w, w.admin.arn, w.member.arn);
  await assertRejects(createMod(w, w.mod.arn, w.member.arn), 'ConflictException', 'already a moderator');
  await assertRejects(createMod(w, w.mod.arn, `${w.ai}/user/${uniq('ghost')}`), 'NotFoundException', 'unknown identity');
  await assertRejects(createMod(w, w.mod.arn, w.foreign.arn), 'NotFoundException', 'identity of another AppInstance');

  await assertRejects(deleteMod(w, w.outsider.arn, w.member.arn), 'ForbiddenException');
  assert.deepEqual(await listMods(w, w.mod.arn), sortArns([w.mod.arn, w.member.arn]));
  await deleteMod(w, w.member.arn, w.mod.arn); // a moderator removes another
  await deleteMod(w, w.admin.arn, w.member.arn); // an admin removes the last one
  assert.deepEqual(await listMods(w, w.admin.arn), []);
  await assertRejects(deleteMod(w, w.admin.arn, w.member.arn), 'NotFoundException', 'not a moderator any more');
  assert.equal(memberArns(w.channel).length, 2, 'memberships untouched');
});

test('DescribeChannelModerator / ListChannelModerators: whoever sees the channel (PRIVATE: members, moderators, admins; PUBLIC: the AppInstance); pagination', async () => {
  const w = await world();
  await assertRejects(describeMod(w, w.outsider.arn, w.mod.arn), 'ForbiddenException', 'outsider, private channel');
  await assertRejects(listMods(w, w.outsider.arn), 'ForbiddenException', 'outsider, private channel');
  await assertRejects(listMods(w, w.foreign.arn), 'ForbiddenException', 'identity of another AppInstance');
  assert.deepEqual(await listMods(w, w.admin.arn), [w.mod.arn]);

  const pub = (await send(new CreateChannelCommand({ AppInstanceArn: w.ai, Name: 'pub', ChimeBearer: w.mod.arn, Privacy: 'PUBLIC' }))).ChannelArn;
  const extra = [];
  for (let i = 0; i < 4; i++) extra.push((await ctx.newUser(w.ai)).arn);
  for (const a of extra) await createMod(w, w.mod.arn, a, pub);
  assert.equal((await describeMod(w, w.outsider.arn, w.mod.arn, pub)).ChannelModerator.Moderator.Arn, w.mod.arn);
  const { items, pages } = await collectPages(
    (token) => send(new ListChannelModeratorsCommand({ ChannelArn: pub, ChimeBearer: w.outsider.arn, MaxResults: 2, NextToken: token })),
    (o) => {
      assert.equal(o.ChannelArn, pub);
      return o.ChannelModerators;
    },
    2,
  );
  assert.deepEqual(items.map((m) => m.Moderator.Arn), sortArns([w.mod.arn, ...extra]));
  assert.deepEqual(pages.map((p) => p.count), [2, 2, 1]);
  await assertRejects(describeMod(w, w.outsider.arn, w.outsider.arn, pub), 'NotFoundException');
});

test('Elastic channels: promoting a member to moderator, and demoting a moderator, removes its membership (DELETE_CHANNEL_MEMBERSHIP)', async () => {
  const w = await world({
    MemberArns: undefined,
    ElasticChannelConfiguration: { MaximumSubChannels: 2, TargetMembershipsPerSubChannel: 2, MinimumMembershipPercentage: 10 },
  });
  insertMembership(w.channel, w.member.arn, w.mod.arn, 'sub1');
  const p = logPosition();
  await createMod(w, w.mod.arn, w.member.arn);
  const evs = eventsAfter(w.channel, p);
  assert.equal(evs.length, 1);
  assert.equal(evs[0].event_type, 'DELETE_CHANNEL_MEMBERSHIP');
  assert.equal(evs[0].message_type, 'SYSTEM');
  assert.equal(evs[0].audience, 'members');
  assert.deepEqual(evs[0].arns, [w.member.arn]);
  assert.deepEqual(evs[0].payload.Member, { Arn: w.member.arn, Name: 'Member' });
  assert.equal(evs[0].payload.SubChannelId, 'sub1');
  assert.deepEqual(memberArns(w.channel), []);

  insertMembership(w.channel, w.member.arn, w.mod.arn, 'sub2');
  const p2 = logPosition();
  await deleteMod(w, w.mod.arn, w.member.arn);
  assert.deepEqual(eventsAfter(w.channel, p2).map((e) => [e.event_type, e.payload.SubChannelId]), [['DELETE_CHANNEL_MEMBERSHIP', 'sub2']]);
  assert.deepEqual(memberArns(w.channel), []);
});

// ---------------------------------------------------------------- bans

test('CreateChannelBan of a member: 201 {ChannelArn, Member}; the membership goes and DELETE_CHANNEL_MEMBERSHIP reaches the members and the banned member', async () => {
  const w = await world();
  const p = logPosition();
  const out = await ban(w, w.mod.arn, w.member.arn);
  assert.equal(out.$metadata.httpStatusCode, 201);
  assert.equal(out.ChannelArn, w.channel);
  assert.deepEqual(plain(out.Member), { Arn: w.member.arn, Name: 'Member' });
  assert.deepEqual(memberArns(w.channel), [w.mod.arn]);

  const evs = eventsAfter(w.channel, p);
  assert.equal(evs.length, 1, `exactly one event, got ${evs.map((e) => e.event_type)}`);
  const [e] = evs;
  assert.equal(e.event_type, 'DELETE_CHANNEL_MEMBERSHIP');
  assert.equal(e.message_type, 'SYSTEM');
  assert.equal(e.audience, 'members');
  assert.deepEqual(e.arns, [w.member.arn]);
  assert.equal(e.payload.ChannelArn, w.channel);
  assert.deepEqual(e.payload.Member, { Arn: w.member.arn, Name: 'Member' });
  assert.deepEqual(e.payload.InvitedBy, { Arn: w.mod.arn, Name: 'Moderator' });
  assert.equal(e.payload.Type, 'DEFAULT');
  assert.match(e.payload.CreatedTimestamp, ISO_MS);
  assert.match(e.payload.LastUpdatedTimestamp, ISO_MS);

  const d = await describeBan(w, w.admin.arn, w.member.arn);
  assert.equal(d.$metadata.httpStatusCode, 200);
  assert.equal(d.ChannelBan.ChannelArn, w.channel);
  assert.deepEqual(plain(d.ChannelBan.Member), { Arn: w.member.arn, Name: 'Member' });
  assert.deepEqual(plain(d.ChannelBan.CreatedBy), { Arn: w.mod.arn, Name: 'Moderator' });
  assertRecentDate(d.ChannelBan.CreatedTimestamp, t0, 'CreatedTimestamp');
  assert.deepEqual(await listBans(w, w.mod.arn), [w.member.arn]);
});

test('CreateChannelBan of a HIDDEN member: its DELETE_CHANNEL_MEMBERSHIP goes to itself only', async () => {
  const w = await world();
  await addMember(w, w.mod.arn, w.outsider.arn, 'HIDDEN');
  const p = logPosition();
  await ban(w, w.admin.arn, w.outsider.arn);
  const evs = eventsAfter(w.channel, p);
  assert.equal(evs.length, 1);
  assert.equal(evs[0].event_type, 'DELETE_CHANNEL_MEMBERSHIP');
  assert.equal(evs[0].audience, 'only');
  assert.deepEqual(evs[0].arns, [w.outsider.arn]);
  assert.equal(evs[0].payload.Type, 'HIDDEN');
});

test('CreateChannelBan of a non-member is allowed and emits nothing; a member, an outsider and a foreign identity may not ban (Forbidden, no event, no ban)', async () => {
  const w = await world();
  const p = logPosition();
  await assertRejects(ban(w, w.member.arn, w.outsider.arn), 'ForbiddenException', 'a member');
  await assertRejects(ban(w, w.outsider.arn, w.member.arn), 'ForbiddenException', 'an outsider');
  await assertRejects(ban(w, w.foreign.arn, w.member.arn), 'ForbiddenException', 'an identity of another AppInstance');
  assert.deepEqual(eventsAfter(w.channel, p), []);
  assert.equal(channelRows(w.channel).bans, 0);
  assert.deepEqual(memberArns(w.channel).sort(), sortArns([w.mod.arn, w.member.arn]));

  const out = await ban(w, w.mod.arn, w.outsider.arn);
  assert.equal(out.$metadata.httpStatusCode, 201);
  assert.deepEqual(eventsAfter(w.channel, p), [], 'banning a non-member emits nothing');
  assert.deepEqual(await listBans(w, w.admin.arn), [w.outsider.arn]);
});

test('CreateChannelBan: already banned Conflict; a moderator Conflict; an AppInstanceAdmin Forbidden; unknown or foreign identities NotFound', async () => {
  const w = await world();
  await ban(w, w.mod.arn, w.outsider.arn);
  await assertRejects(ban(w, w.mod.arn, w.outsider.arn), 'ConflictException', 'banned twice');
  await createMod(w, w.mod.arn, w.member.arn);
  const p = logPosition();
  await assertRejects(ban(w, w.mod.arn, w.member.arn), 'ConflictException', 'a moderator');
  await assertRejects(ban(w, w.member.arn, w.mod.arn), 'ConflictException', 'a moderator (by another moderator)');
  await assertRejects(ban(w, w.mod.arn, w.admin.arn), 'ForbiddenException', 'an AppInstanceAdmin');
  await assertRejects(ban(w, w.mod.arn, `${w.ai}/user/${uniq('ghost')}`), 'NotFoundException', 'unknown identity');
  await assertRejects(ban(w, w.mod.arn, w.foreign.arn), 'NotFoundException', 'identity of another AppInstance');
  assert.deepEqual(eventsAfter(w.channel, p), []);
  assert.ok(memberArns(w.channel).includes(w.member.arn), 'the moderator is still a member');
});

test('A ban keeps the identity out: no re-adding, no rejoining a PUBLIC channel, no promotion; DeleteChannelBan lets it back in', async () => {
  const w = await world({ Privacy: 'PUBLIC', Mode: 'UNRESTRICTED' });
  await ban(w, w.mod.arn, w.member.arn);
  const p = logPosition();
  await assertRejects(addMember(w, w.mod.arn, w.member.arn), 'ForbiddenException', 'a moderator re-adding');
  await assertRejects(addMember(w, w.admin.arn, w.member.arn), 'ForbiddenException', 'an admin re-adding');
  await assertRejects(addMember(w, w.member.arn, w.member.arn), 'ForbiddenException', 'rejoining the public channel');
  await assertRejects(createMod(w, w.mod.arn, w.member.arn), 'ForbiddenException', 'promoting a banned identity');
  assert.deepEqual(eventsAfter(w.channel, p), []);
  assert.deepEqual(memberArns(w.channel), [w.mod.arn]);

  await assertRejects(unban(w, w.member.arn, w.member.arn), 'ForbiddenException', 'the banned one itself');
  await assertRejects(unban(w, w.outsider.arn, w.member.arn), 'ForbiddenException', 'an outsider');
  const del = await unban(w, w.mod.arn, w.member.arn);
  assert.equal(del.$metadata.httpStatusCode, 204);
  assert.deepEqual(memberArns(w.channel), [w.mod.arn], 'deleting the ban does not re-add');
  await assertRejects(describeBan(w, w.mod.arn, w.member.arn), 'NotFoundException');
  await assertRejects(unban(w, w.mod.arn, w.member.arn), 'NotFoundException', 'not banned any more');

  const joined = await addMember(w, w.member.arn, w.member.arn);
  assert.equal(joined.$metadata.httpStatusCode, 201, 'rejoining works again');
  const evs = eventsAfter(w.channel, p);
  assert.deepEqual(evs.map((e) => e.event_type), ['CREATE_CHANNEL_MEMBERSHIP']);

  await ban(w, w.admin.arn, w.outsider.arn);
  await unban(w, w.admin.arn, w.outsider.arn);
  await addMember(w, w.mod.arn, w.outsider.arn);
  assert.deepEqual(memberArns(w.channel).sort(), sortArns([w.mod.arn, w.member.arn, w.outsider.arn]));
});

test('DescribeChannelBan / ListChannelBans: moderators and admins only; pagination by member ARN', async () => {
  const w = await world();
  const banned = [];
  for (let i = 0; i < 5; i++) {
    const u = await ctx.newUser(w.ai);
    await ban(w, w.mod.arn, u.arn);
    banned.push(u.arn);
  }
  await assertRejects(listBans(w, w.member.arn), 'ForbiddenException', 'a member listing');
  await assertRejects(describeBan(w, w.member.arn, banned[0]), 'ForbiddenException', 'a member describing');
  await assertRejects(listBans(w, w.foreign.arn), 'ForbiddenException', 'identity of another AppInstance');
  await assertRejects(describeBan(w, w.mod.arn, w.member.arn), 'NotFoundException', 'not banned');
  const { items, pages } = await collectPages(
    (token) => send(new ListChannelBansCommand({ ChannelArn: w.channel, ChimeBearer: w.admin.arn, MaxResults: 2, NextToken: token })),
    (o) => {
      assert.equal(o.ChannelArn, w.channel);
      return o.ChannelBans;
    },
    2,
  );
  assert.deepEqual(items.map((b) => b.Member.Arn), sortArns(banned));
  assert.deepEqual(pages.map((p) => p.count), [2, 2, 1]);
  for (const b of items) assert.deepEqual(Object.keys(b), ['Member']);
});

test('Bans on a missing channel are NotFound; deleting a channel deletes its bans', async () => {
  const w = await world();
  const missing = `${w.ai}/channel/${uniq('none')}`;
  await assertRejects(ban(w, w.mod.arn, w.member.arn, missing), 'NotFoundException');
  await assertRejects(listBans(w, w.mod.arn, missing), 'NotFoundException');
  await ban(w, w.mod.arn, w.outsider.arn);
  assert.equal(channelRows(w.channel).bans, 1);
  await send(new DeleteChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.mod.arn }));
  assert.equal(sql(`select to_json(count(*)) from carillon.channel_bans where channel_arn = :'c'`, { c: w.channel }), 0);
  await assertRejects(send(new DescribeChannelCommand({ ChannelArn: w.channel, ChimeBearer: w.mod.arn })), 'NotFoundException');
});
