// Chime's quotas as settings (CARILLON_MAX_*), and the per-credential request rate limit.
//
// Each quota is tested at its limit (succeeds), one past it (ResourceLimitExceededException, HTTP 400,
// body Code "ResourceLimitExceeded", nothing written), and after removing one (room again), on a
// server started with small limits. Concurrent additions through two servers on the same database
// (each running its own transactions) must never pass a limit. A default server enforces Chime's
// numbers, and the SQL functions called without the gateway (psql) fall back to them too. The rate
// limit: a credential over its budget gets ThrottledClientException (429), another credential does
// not, failed signatures spend nothing, and the budget refills.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateAppInstanceAdminCommand,
  DeleteAppInstanceAdminCommand,
  DeregisterAppInstanceUserEndpointCommand,
  DescribeAppInstanceCommand,
  ListAppInstanceAdminsCommand,
  ListAppInstanceUserEndpointsCommand,
  RegisterAppInstanceUserEndpointCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import {
  BatchCreateChannelMembershipCommand,
  CreateChannelCommand,
  CreateChannelFlowCommand,
  CreateChannelMembershipCommand,
  CreateChannelModeratorCommand,
  DeleteChannelFlowCommand,
  DeleteChannelMembershipCommand,
  DeleteChannelModeratorCommand,
  DescribeChannelCommand,
  ListChannelFlowsCommand,
  ListChannelMembershipsCommand,
  ListChannelMembershipsForAppInstanceUserCommand,
  ListChannelModeratorsCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { identityClient, messagingClient, mintUserCredentials, signedFetch } from './lib/clients.mjs';
import { psqlText } from './lib/eventlog.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { ACCOUNT_ID, REGION } from './lib/server.mjs';
import { PINPOINT_APP_ARN, assertRawError, assertRejects, uniq } from './lib/util.mjs';

// The main server runs with the defaults (Chime's quotas, no rate limit).
const ctx = useCarillon();

const LIMITS = {
  CARILLON_MAX_ENDPOINTS_PER_USER: '3',
  CARILLON_MAX_CHANNEL_MEMBERSHIPS: '5',
  CARILLON_MAX_CHANNEL_MODERATORS: '3',
  CARILLON_MAX_APP_INSTANCE_ADMINS: '3',
  CARILLON_MAX_CHANNEL_FLOWS: '3',
};

// Two servers with the small limits on the same database (started on first use, stopped in `after`).
let limited = null;
async function limitedServers() {
  if (!limited) {
    const a = await ctx.startAnother({ env: LIMITS });
    const b = await ctx.startAnother({ env: LIMITS });
    limited = [a, b].map((srv) => ({ srv, id: identityClient(srv), msg: messagingClient(srv) }));
  }
  return limited;
}

const RLE = 'ResourceLimitExceededException';

// ---------------------------------------------------------------- helpers

function register(id, userArn) {
  return id.send(
    new RegisterAppInstanceUserEndpointCommand({
      AppInstanceUserArn: userArn,
      Type: 'GCM',
      ResourceArn: PINPOINT_APP_ARN,
      EndpointAttributes: { DeviceToken: `tok-${uniq('')}` },
    }),
  );
}

async function endpointIds(id, userArn) {
  const out = await id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: userArn, MaxResults: 50 }));
  return (out.AppInstanceUserEndpoints ?? []).map((e) => e.EndpointId);
}

async function adminArns(id, ai) {
  const out = await id.send(new ListAppInstanceAdminsCommand({ AppInstanceArn: ai, MaxResults: 50 }));
  return (out.AppInstanceAdmins ?? []).map((a) => a.Admin.Arn);
}

function processor() {
  return {
    Name: 'proc',
    Configuration: { Lambda: { ResourceArn: `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:fn`, InvocationType: 'ASYNC' } },
    ExecutionOrder: 1,
    FallbackAction: 'CONTINUE',
  };
}

function createFlow(msg, ai) {
  return msg.send(new CreateChannelFlowCommand({ AppInstanceArn: ai, Name: uniq('flow'), Processors: [processor()] }));
}

async function flowArns(msg, ai) {
  const out = await msg.send(new ListChannelFlowsCommand({ AppInstanceArn: ai, MaxResults: 50 }));
  return (out.ChannelFlows ?? []).map((f) => f.ChannelFlowArn);
}

async function users(ai, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await ctx.newUser(ai));
  return out;
}

async function memberArnsOf(msg, channel, bearer, type = 'DEFAULT') {
  const out = await msg.send(new ListChannelMembershipsCommand({ ChannelArn: channel, ChimeBearer: bearer, Type: type, MaxResults: 50 }));
  return (out.ChannelMemberships ?? []).map((m) => m.Member.Arn).sort();
}

async function moderatorArnsOf(msg, channel, bearer) {
  const out = await msg.send(new ListChannelModeratorsCommand({ ChannelArn: channel, ChimeBearer: bearer, MaxResults: 50 }));
  return (out.ChannelModerators ?? []).map((m) => m.Moderator.Arn).sort();
}

function addMember(msg, channel, bearer, member, type = 'DEFAULT') {
  return msg.send(new CreateChannelMembershipCommand({ ChannelArn: channel, ChimeBearer: bearer, MemberArn: member, Type: type }));
}

// Run `calls` (functions returning promises) all at once; count successes and the names of failures.
async function race(calls) {
  const results = await Promise.allSettled(calls.map((f) => f()));
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  const errors = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
  for (const e of errors) {
    assert.equal(e.name, RLE, `every refused call is ${RLE}, got ${e.name}: ${e.message}`);
    assert.equal(e.$metadata?.httpStatusCode, 400);
    assert.equal(e.Code, 'ResourceLimitExceeded');
  }
  return { ok, refused: errors.length };
}

const sorted = (a) => [...a].sort();

// ---------------------------------------------------------------- endpoints per user

test('endpoints per user (CARILLON_MAX_ENDPOINTS_PER_USER=3): 3 register, the 4th is ResourceLimitExceeded and stores nothing; deregistering one makes room', async () => {
  const [{ id }] = await limitedServers();
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const other = await ctx.newUser(ai);
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const out = await register(id, u.arn);
    assert.equal(out.$metadata.httpStatusCode, 201);
    ids.push(out.EndpointId);
  }
  const err = await assertRejects(register(id, u.arn), RLE, '4th endpoint');
  assert.match(err.message, /endpoints/i);
  assert.deepEqual(sorted(await endpointIds(id, u.arn)), sorted(ids), 'the refused endpoint was not stored');
  // Per user: another user of the same AppInstance still has its own 3.
  await register(id, other.arn);

  await id.send(new DeregisterAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: ids[0] }));
  const again = await register(id, u.arn);
  assert.equal(again.$metadata.httpStatusCode, 201);
  await assertRejects(register(id, u.arn), RLE, 'full again');
  assert.equal((await endpointIds(id, u.arn)).length, 3);
});

test('endpoints per user: 20 concurrent registrations through two servers against a limit of 3: exactly 3 succeed', async () => {
  const servers = await limitedServers();
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const { ok, refused } = await race(Array.from({ length: 20 }, (_, i) => () => register(servers[i % 2].id, u.arn)));
  assert.equal(ok, 3, 'successful registrations');
  assert.equal(refused, 17);
  assert.equal((await endpointIds(servers[0].id, u.arn)).length, 3, 'stored endpoints');
});

// ---------------------------------------------------------------- admins per AppInstance

test('admins per AppInstance (CARILLON_MAX_APP_INSTANCE_ADMINS=3): 3 are created, the 4th is ResourceLimitExceeded, an existing one stays Conflict; deleting one makes room', async () => {
  const [{ id }] = await limitedServers();
  const ai = await ctx.newAppInstance();
  const us = await users(ai, 5);
  for (const u of us.slice(0, 3)) {
    const out = await id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn }));
    assert.equal(out.$metadata.httpStatusCode, 201);
  }
  await assertRejects(id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: us[3].arn })), RLE, '4th admin');
  await assertRejects(
    id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: us[0].arn })),
    'ConflictException',
    'an existing admin at the limit',
  );
  assert.deepEqual(sorted(await adminArns(id, ai)), sorted(us.slice(0, 3).map((u) => u.arn)), 'nothing written by the refusal');

  await id.send(new DeleteAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: us[1].arn }));
  await id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: us[3].arn }));
  await assertRejects(id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: us[4].arn })), RLE, 'full again');
  assert.deepEqual(sorted(await adminArns(id, ai)), sorted([us[0].arn, us[2].arn, us[3].arn]));
});

test('admins per AppInstance: 12 concurrent CreateAppInstanceAdmin through two servers against a limit of 3: exactly 3 succeed', async () => {
  const servers = await limitedServers();
  const ai = await ctx.newAppInstance();
  const us = await users(ai, 12);
  const { ok } = await race(
    us.map((u, i) => () => servers[i % 2].id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn }))),
  );
  assert.equal(ok, 3);
  assert.equal((await adminArns(servers[0].id, ai)).length, 3);
});

// ---------------------------------------------------------------- channel flows per AppInstance

test('channel flows per AppInstance (CARILLON_MAX_CHANNEL_FLOWS=3): 3 are created, the 4th is ResourceLimitExceeded; deleting one makes room; concurrent creations never pass it', async () => {
  const servers = await limitedServers();
  const { msg } = servers[0];
  const ai = await ctx.newAppInstance();
  const flows = [];
  for (let i = 0; i < 3; i++) flows.push((await createFlow(msg, ai)).ChannelFlowArn);
  await assertRejects(createFlow(msg, ai), RLE, '4th flow');
  assert.deepEqual(sorted(await flowArns(msg, ai)), sorted(flows), 'the refused flow was not stored');
  await msg.send(new DeleteChannelFlowCommand({ ChannelFlowArn: flows[0] }));
  await createFlow(msg, ai);
  await assertRejects(createFlow(msg, ai), RLE, 'full again');

  const ai2 = await ctx.newAppInstance();
  const { ok } = await race(Array.from({ length: 12 }, (_, i) => () => createFlow(servers[i % 2].msg, ai2)));
  assert.equal(ok, 3);
  assert.equal((await flowArns(msg, ai2)).length, 3);
});

// ---------------------------------------------------------------- moderators per channel

test('moderators per channel (CARILLON_MAX_CHANNEL_MODERATORS=3): the creator and 2 more, the 4th is ResourceLimitExceeded; deleting one makes room', async () => {
  const [{ msg }] = await limitedServers();
  const ai = await ctx.newAppInstance();
  const [creator, a, b, c, d] = await users(ai, 5);
  const ch = (await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('chan'), ChimeBearer: creator.arn }))).ChannelArn;
  const addMod = (u) => msg.send(new CreateChannelModeratorCommand({ ChannelArn: ch, ChimeBearer: creator.arn, ChannelModeratorArn: u.arn }));
  assert.equal((await addMod(a)).$metadata.httpStatusCode, 201);
  assert.equal((await addMod(b)).$metadata.httpStatusCode, 201);
  await assertRejects(addMod(c), RLE, '4th moderator');
  await assertRejects(addMod(a), 'ConflictException', 'an existing moderator at the limit');
  assert.deepEqual(await moderatorArnsOf(msg, ch, creator.arn), sorted([creator.arn, a.arn, b.arn]));

  await msg.send(new DeleteChannelModeratorCommand({ ChannelArn: ch, ChimeBearer: creator.arn, ChannelModeratorArn: a.arn }));
  await addMod(c);
  await assertRejects(addMod(d), RLE, 'full again');
  assert.deepEqual(await moderatorArnsOf(msg, ch, creator.arn), sorted([creator.arn, b.arn, c.arn]));
});

test('moderators per channel: CreateChannel with more ModeratorArns than the limit is ResourceLimitExceeded and creates nothing; at the limit it succeeds', async () => {
  const [{ msg }] = await limitedServers();
  const ai = await ctx.newAppInstance();
  const [creator, a, b, c] = await users(ai, 4);
  const channelId = uniq('over');
  await assertRejects(
    msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'x', ChimeBearer: creator.arn, ChannelId: channelId, ModeratorArns: [a.arn, b.arn, c.arn] })),
    RLE,
    'creator + 3 moderators',
  );
  const arn = `${ai}/channel/${channelId}`;
  await assertRejects(msg.send(new DescribeChannelCommand({ ChannelArn: arn, ChimeBearer: creator.arn })), 'NotFoundException', 'no channel was created');
  const ok = await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'x', ChimeBearer: creator.arn, ChannelId: channelId, ModeratorArns: [a.arn, b.arn] }));
  assert.equal(ok.ChannelArn, arn);
  assert.deepEqual(await moderatorArnsOf(msg, arn, creator.arn), sorted([creator.arn, a.arn, b.arn]));
});

// ---------------------------------------------------------------- memberships per channel

test('memberships per channel (CARILLON_MAX_CHANNEL_MEMBERSHIPS=5): 5 members, the 6th (DEFAULT or HIDDEN) is ResourceLimitExceeded; leaving makes room', async () => {
  const [{ msg }] = await limitedServers();
  const ai = await ctx.newAppInstance();
  const [creator, m1, ...rest] = await users(ai, 8);
  const ch = (await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('chan'), ChimeBearer: creator.arn, MemberArns: [m1.arn] }))).ChannelArn;
  // creator + m1 = 2; HIDDEN memberships count too.
  await addMember(msg, ch, creator.arn, rest[0].arn);
  await addMember(msg, ch, creator.arn, rest[1].arn);
  await addMember(msg, ch, creator.arn, rest[2].arn, 'HIDDEN');
  const err = await assertRejects(addMember(msg, ch, creator.arn, rest[3].arn), RLE, '6th member');
  assert.match(err.message, /members/i);
  await assertRejects(addMember(msg, ch, creator.arn, rest[3].arn, 'HIDDEN'), RLE, '6th member, HIDDEN');
  await assertRejects(addMember(msg, ch, creator.arn, m1.arn), 'ConflictException', 'an existing member at the limit');
  assert.deepEqual(await memberArnsOf(msg, ch, creator.arn), sorted([creator.arn, m1.arn, rest[0].arn, rest[1].arn]));
  assert.deepEqual(await memberArnsOf(msg, ch, creator.arn, 'HIDDEN'), [rest[2].arn]);

  await msg.send(new DeleteChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: m1.arn, MemberArn: m1.arn }));
  await addMember(msg, ch, creator.arn, rest[3].arn);
  await assertRejects(addMember(msg, ch, creator.arn, rest[4].arn), RLE, 'full again');
});

test('memberships per channel: joining a full PUBLIC channel with a user credential is ResourceLimitExceeded', async () => {
  const [{ msg, srv }] = await limitedServers();
  const ai = await ctx.newAppInstance();
  const [creator, ...us] = await users(ai, 6);
  const ch = (
    await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('pub'), ChimeBearer: creator.arn, Privacy: 'PUBLIC', MemberArns: us.slice(0, 3).map((u) => u.arn) }))
  ).ChannelArn;
  const joiner = us[3];
  const own = messagingClient(srv, await mintUserCredentials(srv, joiner.arn));
  try {
    const out = await own.send(new CreateChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: joiner.arn, MemberArn: joiner.arn, Type: 'DEFAULT' }));
    assert.equal(out.$metadata.httpStatusCode, 201, 'the 5th member joins');
    const late = us[4];
    const lateClient = messagingClient(srv, await mintUserCredentials(srv, late.arn));
    try {
      await assertRejects(
        lateClient.send(new CreateChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: late.arn, MemberArn: late.arn, Type: 'DEFAULT' })),
        RLE,
        'joining as the 6th',
      );
      const mine = await lateClient.send(new ListChannelMembershipsForAppInstanceUserCommand({ ChimeBearer: late.arn }));
      assert.deepEqual(mine.ChannelMemberships ?? [], [], 'the refused joiner is in no channel');
    } finally {
      lateClient.destroy();
    }
  } finally {
    own.destroy();
  }
});

test('memberships per channel: CreateChannel with more members than the limit is ResourceLimitExceeded and creates nothing', async () => {
  const [{ msg }] = await limitedServers();
  const ai = await ctx.newAppInstance();
  const [creator, ...us] = await users(ai, 6);
  const channelId = uniq('big');
  await assertRejects(
    msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'x', ChimeBearer: creator.arn, ChannelId: channelId, MemberArns: us.map((u) => u.arn) })),
    RLE,
    'creator + 5 members',
  );
  const arn = `${ai}/channel/${channelId}`;
  await assertRejects(msg.send(new DescribeChannelCommand({ ChannelArn: arn, ChimeBearer: creator.arn })), 'NotFoundException', 'no channel');
  assert.equal(psqlText(`select count(*) from carillon.channel_memberships where channel_arn = :'arn'`, { arn }), '0', 'no membership rows');
  assert.equal(psqlText(`select count(*) from carillon.events where channel_arn = :'arn'`, { arn }), '0', 'no events');
  // At the limit: creator + 4.
  await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'x', ChimeBearer: creator.arn, ChannelId: channelId, MemberArns: us.slice(0, 4).map((u) => u.arn) }));
  assert.equal((await memberArnsOf(msg, arn, creator.arn)).length, 5);
});

test('memberships per channel: BatchCreateChannelMembership adds the members there is room for, in order, and reports each other one in Errors (ResourceLimitExceeded)', async () => {
  const [{ msg }] = await limitedServers();
  const ai = await ctx.newAppInstance();
  const [creator, m1, ...us] = await users(ai, 7);
  const ch = (await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('chan'), ChimeBearer: creator.arn, MemberArns: [m1.arn] }))).ChannelArn;
  // 2 members; 5 asked (one of them already a member), room for 3.
  const asked = [us[0].arn, m1.arn, us[1].arn, us[2].arn, us[3].arn, us[4].arn];
  const out = await msg.send(new BatchCreateChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: creator.arn, MemberArns: asked }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.deepEqual(
    out.BatchChannelMemberships.Members.map((m) => m.Arn),
    [us[0].arn, us[1].arn, us[2].arn],
    'the first ones with room are added',
  );
  const errors = out.Errors.map((e) => ({ MemberArn: e.MemberArn, ErrorCode: e.ErrorCode }));
  assert.deepEqual(errors, [
    { MemberArn: m1.arn, ErrorCode: 'Conflict' },
    { MemberArn: us[3].arn, ErrorCode: 'ResourceLimitExceeded' },
    { MemberArn: us[4].arn, ErrorCode: 'ResourceLimitExceeded' },
  ]);
  for (const e of out.Errors) assert.equal(typeof e.ErrorMessage, 'string');
  assert.deepEqual(await memberArnsOf(msg, ch, creator.arn), sorted([creator.arn, m1.arn, us[0].arn, us[1].arn, us[2].arn]));

  // Full: a whole batch goes to Errors, and nothing is written.
  const full = await msg.send(new BatchCreateChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: creator.arn, MemberArns: [us[3].arn] }));
  assert.deepEqual(full.BatchChannelMemberships.Members ?? [], []);
  assert.deepEqual(full.Errors.map((e) => e.ErrorCode), ['ResourceLimitExceeded']);
  assert.equal((await memberArnsOf(msg, ch, creator.arn)).length, 5);
});

test('memberships per channel: elastic channels are bounded by their own configuration, not by the quota', async () => {
  const [{ msg }] = await limitedServers();
  const ai = await ctx.newAppInstance();
  const [creator, ...us] = await users(ai, 8);
  const ch = (
    await msg.send(
      new CreateChannelCommand({
        AppInstanceArn: ai,
        Name: uniq('elastic'),
        ChimeBearer: creator.arn,
        ElasticChannelConfiguration: { MaximumSubChannels: 2, TargetMembershipsPerSubChannel: 4, MinimumMembershipPercentage: 40 },
      }),
    )
  ).ChannelArn;
  const out = await msg.send(new BatchCreateChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: creator.arn, MemberArns: us.slice(0, 7).map((u) => u.arn) }));
  assert.deepEqual(out.Errors ?? [], [], '7 members, over the quota of 5, on an elastic channel of 2 x 4');
  assert.equal(psqlText(`select count(*) from carillon.channel_memberships where channel_arn = :'arn'`, { arn: ch }), '7');
});

test('memberships per channel: 20 concurrent CreateChannelMembership through two servers against a limit of 5: exactly 5 succeed', async () => {
  const servers = await limitedServers();
  const ai = await ctx.newAppInstance();
  const [creator, ...us] = await users(ai, 21);
  const ch = (await servers[0].msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('race'), ChimeBearer: creator.arn }))).ChannelArn;
  // The creator leaves (it stays moderator): the channel starts empty.
  await servers[0].msg.send(new DeleteChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: creator.arn, MemberArn: creator.arn }));
  const { ok, refused } = await race(us.slice(0, 20).map((u, i) => () => addMember(servers[i % 2].msg, ch, creator.arn, u.arn)));
  assert.equal(ok, 5, 'successful additions');
  assert.equal(refused, 15);
  assert.equal(psqlText(`select count(*) from carillon.channel_memberships where channel_arn = :'arn'`, { arn: ch }), '5');
});

// ---------------------------------------------------------------- Chime's defaults

test("defaults are Chime's: 10 endpoints per user, 100 admins and 100 channel flows per AppInstance", async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  for (let i = 0; i < 10; i++) await register(ctx.id, u.arn);
  await assertRejects(register(ctx.id, u.arn), RLE, '11th endpoint on a default server');

  const admins = [];
  for (let i = 0; i < 101; i += 10) {
    const batch = await Promise.all(Array.from({ length: Math.min(10, 101 - i) }, () => ctx.newUser(ai)));
    admins.push(...batch);
  }
  for (let i = 0; i < 100; i += 10) {
    await Promise.all(admins.slice(i, i + 10).map((a) => ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: a.arn }))));
  }
  await assertRejects(ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: admins[100].arn })), RLE, '101st admin');

  for (let i = 0; i < 100; i += 10) await Promise.all(Array.from({ length: 10 }, () => createFlow(ctx.msg, ai)));
  await assertRejects(createFlow(ctx.msg, ai), RLE, '101st flow');
});

test("defaults are Chime's: 1,000 moderators and 10,000 members per channel", async () => {
  const ai = await ctx.newAppInstance();
  const [creator, extra] = await users(ai, 2);
  const ch = (await ctx.msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('big'), ChimeBearer: creator.arn }))).ChannelArn;
  // Fill the channel up to the default quotas directly (the creator is moderator and member).
  psqlText(
    `insert into carillon.channel_moderators (channel_arn, moderator_arn, created_by, created_at)
     select :'ch', :'ai' || '/user/seed-mod-' || g, :'by', now() from generate_series(1, 999) g;
     insert into carillon.channel_memberships (channel_arn, member_arn, type, invited_by, created_at, updated_at)
     select :'ch', :'ai' || '/user/seed-' || g, 'DEFAULT', :'by', now(), now() from generate_series(1, 9999) g;`,
    { ch, ai, by: creator.arn },
  );
  await assertRejects(
    ctx.msg.send(new CreateChannelModeratorCommand({ ChannelArn: ch, ChimeBearer: creator.arn, ChannelModeratorArn: extra.arn })),
    RLE,
    '1,001st moderator',
  );
  await assertRejects(addMember(ctx.msg, ch, creator.arn, extra.arn), RLE, '10,001st member');
  psqlText(`delete from carillon.channel_memberships where channel_arn = :'ch' and member_arn = :'ai' || '/user/seed-1';
            delete from carillon.channel_moderators where channel_arn = :'ch' and moderator_arn = :'ai' || '/user/seed-mod-1'`, { ch, ai });
  await addMember(ctx.msg, ch, creator.arn, extra.arn);
  await ctx.msg.send(new CreateChannelModeratorCommand({ ChannelArn: ch, ChimeBearer: creator.arn, ChannelModeratorArn: extra.arn }));
});

test("the SQL functions apply Chime's defaults where the gateway's settings are absent (psql)", async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  for (let i = 0; i < 10; i++) await register(ctx.id, u.arn);
  const call = `select carillon_api.register_app_instance_user_endpoint(
                  '{"now_ms": 0}'::jsonb,
                  jsonb_build_object('AppInstanceUserArn', :'user'::text, 'Type', 'GCM', 'ResourceArn', :'res'::text,
                                     'EndpointAttributes', '{"DeviceToken": "t"}'::jsonb))`;
  const run = spawnSync(
    'psql',
    [process.env.CARILLON_TEST_DATABASE_URL, '-AtXq', '-v', 'ON_ERROR_STOP=1', '-v', `user=${u.arn}`, '-v', `res=${PINPOINT_APP_ARN}`],
    { input: call, encoding: 'utf8' },
  );
  assert.notEqual(run.status, 0, `an 11th endpoint through psql must fail: ${run.stdout}`);
  assert.match(run.stderr, /Too many endpoints.*the limit is 10/, 'refused by the quota, with the default of 10');
  assert.equal(psqlText(`select current_setting('carillon.max_endpoints_per_user', true) is null`), 't', 'psql has no carillon.* setting');
  assert.equal((await endpointIds(ctx.id, u.arn)).length, 10);
});

test('the quota settings reach PostgreSQL alongside the options of a URL-form CARILLON_DATABASE_URL', async () => {
  // The same test database, as a URL with its own startup options: both must reach every connection.
  const kv = Object.fromEntries(
    process.env.CARILLON_TEST_DATABASE_URL.trim().split(/\s+/).map((p) => p.split('=')).map(([k, ...v]) => [k, v.join('=')]),
  );
  assert.ok(kv.dbname && kv.host, 'this test expects CARILLON_TEST_DATABASE_URL in key=value form with host and dbname');
  const appName = uniq('quota-opts').replace(/-/g, '_');
  const url =
    `postgresql:///${encodeURIComponent(kv.dbname)}?host=${encodeURIComponent(kv.host)}` +
    (kv.user ? `&user=${encodeURIComponent(kv.user)}` : '') +
    (kv.port ? `&port=${encodeURIComponent(kv.port)}` : '') +
    (kv.password ? `&password=${encodeURIComponent(kv.password)}` : '') +
    `&options=${encodeURIComponent(`-c application_name=${appName}`)}`;
  const srv = await ctx.startAnother({ databaseUrl: url, env: { CARILLON_MAX_CHANNEL_FLOWS: '1' } });
  const msg = messagingClient(srv);
  try {
    const ai = await ctx.newAppInstance();
    await createFlow(msg, ai);
    await assertRejects(createFlow(msg, ai), RLE, 'the 2nd flow with CARILLON_MAX_CHANNEL_FLOWS=1');
    const n = Number(psqlText(`select count(*) from pg_stat_activity where application_name = :'app'`, { app: appName }));
    assert.ok(n >= 1, `the user's own options (application_name) are kept: ${n} connections`);
  } finally {
    msg.destroy();
  }
});

// ---------------------------------------------------------------- request rate per credential

test('request rate per credential (rate 2/s, burst 3): a burst of 10 is throttled (ThrottledClientException, 429) after the burst; another credential is unaffected; failed signatures spend nothing; the budget refills', async () => {
  const srv = await ctx.startAnother({ env: { CARILLON_REQUEST_RATE_PER_CREDENTIAL: '2', CARILLON_REQUEST_BURST_PER_CREDENTIAL: '3' } });
  const id = identityClient(srv);
  const msg = messagingClient(srv);
  // Set up through the main server: the limited one's budgets stay untouched.
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const userMsg = messagingClient(srv, await mintUserCredentials(srv, u.arn));
  try {
    const describe = () => id.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai }));
    const mine = () => userMsg.send(new ListChannelMembershipsForAppInstanceUserCommand({ ChimeBearer: u.arn }));

    // Requests with the root key id but a wrong secret fail the signature and spend nothing.
    for (let i = 0; i < 10; i++) {
      const res = await signedFetch(srv, {
        method: 'GET',
        path: `/app-instances/${encodeURIComponent(ai)}`,
        creds: { accessKeyId: srv.rootKey.accessKeyId, secretAccessKey: 'not-the-secret' },
      });
      assertRawError(res, 'UnauthorizedClientException', 'forged signature');
    }

    // A burst of 10 at once: the bucket holds 3, and refills at 2 a second.
    const t = Date.now();
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => describe()));
    const elapsed = (Date.now() - t) / 1000;
    const passed = results.filter((r) => r.status === 'fulfilled').length;
    const throttled = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
    for (const e of throttled) {
      assert.equal(e.name, 'ThrottledClientException', `${e.name}: ${e.message}`);
      assert.equal(e.$metadata?.httpStatusCode, 429);
      assert.equal(e.Code, 'Throttled');
    }
    const refill = Math.floor(elapsed * 2);
    assert.ok(passed >= 3, `the burst of 3 passes (the forged requests spent nothing): ${passed} passed`);
    assert.ok(passed <= 3 + refill, `at most 3 + ${refill} pass in ${elapsed} s, got ${passed}`);
    assert.ok(throttled.length >= 1, 'some of the burst are throttled');

    // The raw answer: 429 with the AWS error shape (x-amzn-ErrorType, {"Code","Message"}).
    let raw;
    for (let i = 0; i < 5; i++) {
      raw = await signedFetch(srv, { method: 'GET', path: `/app-instances/${encodeURIComponent(ai)}` });
      if (raw.status !== 200) break;
    }
    assertRawError(raw, 'ThrottledClientException', 'raw request over the budget');

    // Another credential has its own budget.
    for (let i = 0; i < 3; i++) assert.equal((await mine()).$metadata.httpStatusCode, 200, 'the user credential is not throttled');

    // After a second the root key has budget again.
    await sleep(1100);
    assert.equal((await describe()).$metadata.httpStatusCode, 200, 'refilled');

    // The default server has no rate limit.
    for (let i = 0; i < 30; i++) await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai }));
  } finally {
    id.destroy();
    msg.destroy();
    userMsg.destroy();
  }
});
