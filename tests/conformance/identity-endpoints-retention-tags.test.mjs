// AppInstanceUserEndpoint operations, AppInstance retention settings, and the tag operations.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateAppInstanceBotCommand,
  CreateAppInstanceCommand,
  CreateAppInstanceUserCommand,
  DeleteAppInstanceCommand,
  DeleteAppInstanceUserCommand,
  DeregisterAppInstanceUserEndpointCommand,
  DescribeAppInstanceUserEndpointCommand,
  GetAppInstanceRetentionSettingsCommand,
  ListAppInstanceUserEndpointsCommand,
  ListTagsForResourceCommand,
  PutAppInstanceRetentionSettingsCommand,
  RegisterAppInstanceUserEndpointCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateAppInstanceUserEndpointCommand,
  paginateListAppInstanceUserEndpoints,
} from '@aws-sdk/client-chime-sdk-identity';
import { useCarillon } from './lib/fixture.mjs';
import {
  PINPOINT_APP_ARN,
  assertRecentDate,
  assertRejects,
  collectPages,
  lexConfig,
  missingAppInstanceArn,
  sortTags,
  uniq,
} from './lib/util.mjs';

const ctx = useCarillon();
const t0 = Date.now();

function plain(x) {
  return JSON.parse(JSON.stringify(x));
}

function register(userArn, input = {}) {
  return ctx.id.send(
    new RegisterAppInstanceUserEndpointCommand({
      AppInstanceUserArn: userArn,
      Type: 'GCM',
      ResourceArn: PINPOINT_APP_ARN,
      EndpointAttributes: { DeviceToken: `tok-${uniq('')}` },
      ...input,
    }),
  );
}

async function listAllEndpoints(userArn) {
  const all = [];
  for await (const page of paginateListAppInstanceUserEndpoints({ client: ctx.id, pageSize: 50 }, { AppInstanceUserArn: userArn })) {
    all.push(...(page.AppInstanceUserEndpoints ?? []));
  }
  return all;
}

async function tagsOf(arn) {
  const out = await ctx.id.send(new ListTagsForResourceCommand({ ResourceARN: arn }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  return sortTags(plain(out.Tags ?? []));
}

// ---------------------------------------------------------------- endpoints

test('RegisterAppInstanceUserEndpoint: 201 {AppInstanceUserArn, EndpointId}; Describe returns every field', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const out = await register(u.arn, {
    Name: 'Phone',
    Type: 'APNS',
    EndpointAttributes: { DeviceToken: 'device-token-1', VoipDeviceToken: 'voip-token-1' },
    AllowMessages: 'ALL',
  });
  assert.equal(out.$metadata.httpStatusCode, 201);
  assert.equal(out.AppInstanceUserArn, u.arn);
  assert.equal(typeof out.EndpointId, 'string');
  assert.ok(out.EndpointId.length >= 1 && out.EndpointId.length <= 64, `EndpointId length ${out.EndpointId.length}`);

  const d = await ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: out.EndpointId }));
  assert.equal(d.$metadata.httpStatusCode, 200);
  const e = d.AppInstanceUserEndpoint;
  assert.equal(e.AppInstanceUserArn, u.arn);
  assert.equal(e.EndpointId, out.EndpointId);
  assert.equal(e.Name, 'Phone');
  assert.equal(e.Type, 'APNS');
  assert.equal(e.ResourceArn, PINPOINT_APP_ARN);
  assert.deepEqual(plain(e.EndpointAttributes), { DeviceToken: 'device-token-1', VoipDeviceToken: 'voip-token-1' });
  assert.equal(e.AllowMessages, 'ALL');
  // PINPOINT_APP_ARN names no Pinpoint app of this server (pinpoint.test.mjs covers the ACTIVE case).
  assert.deepEqual(e.EndpointState, { Status: 'INACTIVE', StatusReason: 'INVALID_PINPOINT_ARN' });
  assertRecentDate(e.CreatedTimestamp, t0, 'CreatedTimestamp');
  assertRecentDate(e.LastUpdatedTimestamp, t0, 'LastUpdatedTimestamp');
});

test('all three endpoint Types are accepted and two registrations get different EndpointIds', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const ids = [];
  for (const type of ['GCM', 'APNS', 'APNS_SANDBOX']) {
    const out = await register(u.arn, { Type: type, Name: `ep-${type}` });
    ids.push(out.EndpointId);
    const d = await ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: out.EndpointId }));
    assert.equal(d.AppInstanceUserEndpoint.Type, type);
  }
  assert.equal(new Set(ids).size, 3);
});

test('ListAppInstanceUserEndpoints returns summaries', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const other = await ctx.newUser(ai);
  const a = await register(u.arn, { Name: 'A', Type: 'GCM', AllowMessages: 'ALL' });
  const b = await register(u.arn, { Name: 'B', Type: 'APNS_SANDBOX', AllowMessages: 'NONE' });
  await register(other.arn, { Name: 'not mine' });
  const l = await ctx.id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: u.arn }));
  assert.equal(l.$metadata.httpStatusCode, 200);
  assert.equal(l.NextToken, undefined);
  const byId = Object.fromEntries(l.AppInstanceUserEndpoints.map((s) => [s.EndpointId, plain(s)]));
  assert.deepEqual(byId, {
    [a.EndpointId]: { AppInstanceUserArn: u.arn, EndpointId: a.EndpointId, Name: 'A', Type: 'GCM', AllowMessages: 'ALL', EndpointState: { Status: 'INACTIVE', StatusReason: 'INVALID_PINPOINT_ARN' } },
    [b.EndpointId]: { AppInstanceUserArn: u.arn, EndpointId: b.EndpointId, Name: 'B', Type: 'APNS_SANDBOX', AllowMessages: 'NONE', EndpointState: { Status: 'INACTIVE', StatusReason: 'INVALID_PINPOINT_ARN' } },
  });
  const none = await ctx.id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: (await ctx.newUser(ai)).arn }));
  assert.deepEqual(none.AppInstanceUserEndpoints ?? [], []);
});

test('UpdateAppInstanceUserEndpoint changes Name and AllowMessages', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const r = await register(u.arn, { Name: 'Old', AllowMessages: 'ALL', EndpointAttributes: { DeviceToken: 'keep-me' } });
  const d0 = await ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r.EndpointId }));
  await sleep(1100);
  const up = await ctx.id.send(
    new UpdateAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r.EndpointId, Name: 'New', AllowMessages: 'NONE' }),
  );
  assert.equal(up.$metadata.httpStatusCode, 200);
  assert.equal(up.AppInstanceUserArn, u.arn);
  assert.equal(up.EndpointId, r.EndpointId);
  const d = await ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r.EndpointId }));
  const e = d.AppInstanceUserEndpoint;
  assert.equal(e.Name, 'New');
  assert.equal(e.AllowMessages, 'NONE');
  assert.equal(e.Type, 'GCM');
  assert.equal(e.ResourceArn, PINPOINT_APP_ARN);
  assert.deepEqual(plain(e.EndpointAttributes), { DeviceToken: 'keep-me' });
  assert.equal(e.CreatedTimestamp.getTime(), d0.AppInstanceUserEndpoint.CreatedTimestamp.getTime());
  assert.ok(e.LastUpdatedTimestamp.getTime() > d0.AppInstanceUserEndpoint.LastUpdatedTimestamp.getTime(), 'LastUpdatedTimestamp must advance');

  await assertRejects(
    ctx.id.send(new UpdateAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r.EndpointId, AllowMessages: 'SOME' })),
    'BadRequestException',
    'bad AllowMessages',
  );
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r.EndpointId, Name: 'n'.repeat(1601) })),
    'BadRequestException',
    'Name of 1601',
  );
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: 'no-such-endpoint', Name: 'x' })),
    'NotFoundException',
    'unknown endpoint',
  );
  const again = await ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r.EndpointId }));
  assert.equal(again.AppInstanceUserEndpoint.Name, 'New');
  assert.equal(again.AppInstanceUserEndpoint.AllowMessages, 'NONE');
});

test('DeregisterAppInstanceUserEndpoint returns 204; the endpoint is then NotFound and unlisted', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const r = await register(u.arn);
  const keep = await register(u.arn);
  const del = await ctx.id.send(new DeregisterAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r.EndpointId }));
  assert.equal(del.$metadata.httpStatusCode, 204);
  await assertRejects(
    ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r.EndpointId })),
    'NotFoundException',
  );
  assert.deepEqual((await listAllEndpoints(u.arn)).map((s) => s.EndpointId), [keep.EndpointId]);
});

test('an endpoint is only reachable through its own user', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const v = await ctx.newUser(ai);
  const r = await register(u.arn);
  await assertRejects(
    ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: v.arn, EndpointId: r.EndpointId })),
    'NotFoundException',
    "Describe via another user's ARN",
  );
  await assertRejects(
    ctx.id.send(new DeregisterAppInstanceUserEndpointCommand({ AppInstanceUserArn: v.arn, EndpointId: r.EndpointId })),
    'NotFoundException',
    "Deregister via another user's ARN",
  );
  const d = await ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r.EndpointId }));
  assert.equal(d.AppInstanceUserEndpoint.EndpointId, r.EndpointId);
});

test('RegisterAppInstanceUserEndpoint validation', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const bad = {
    'bad Type': { Type: 'SMS' },
    'missing Type': { Type: undefined },
    'missing ResourceArn': { ResourceArn: undefined },
    'malformed ResourceArn': { ResourceArn: 'not-an-arn' },
    'missing EndpointAttributes': { EndpointAttributes: undefined },
    'missing DeviceToken': { EndpointAttributes: { VoipDeviceToken: 'v' } },
    'empty DeviceToken': { EndpointAttributes: { DeviceToken: '' } },
    'DeviceToken of 1601': { EndpointAttributes: { DeviceToken: 'd'.repeat(1601) } },
    'bad AllowMessages': { AllowMessages: 'SOME' },
    'Name of 1601': { Name: 'n'.repeat(1601) },
  };
  for (const [what, over] of Object.entries(bad)) {
    await assertRejects(register(u.arn, over), 'BadRequestException', what);
  }
  await assertRejects(register(`${ai}/user/ghost-${uniq('')}`), 'NotFoundException', 'unknown user');
  await assertRejects(register('not-an-arn'), 'BadRequestException', 'malformed user ARN');
  assert.deepEqual(await listAllEndpoints(u.arn), [], 'rejected calls must not register anything');
});

test('RegisterAppInstanceUserEndpoint ClientRequestToken: same input -> same EndpointId once; different -> Conflict', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const token = randomUUID();
  const input = { Name: 'idem', EndpointAttributes: { DeviceToken: 'idem-token' }, ClientRequestToken: token };
  const a = await register(u.arn, input);
  const b = await register(u.arn, input);
  assert.equal(b.EndpointId, a.EndpointId);
  assert.ok([200, 201].includes(b.$metadata.httpStatusCode));
  assert.equal((await listAllEndpoints(u.arn)).length, 1);
  await assertRejects(register(u.arn, { ...input, Name: 'different' }), 'ConflictException');
  assert.equal((await listAllEndpoints(u.arn)).length, 1);
});

test('ListAppInstanceUserEndpoints pagination: 5 endpoints, MaxResults=2; bad parameters', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push((await register(u.arn, { Name: `ep${i}` })).EndpointId);
  const { items, pages } = await collectPages(
    (tok) => ctx.id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: u.arn, MaxResults: 2, NextToken: tok })),
    (o) => o.AppInstanceUserEndpoints,
    2,
  );
  assert.deepEqual(pages.map((p) => p.count), [2, 2, 1]);
  assert.deepEqual(items.map((s) => s.EndpointId).sort(), [...ids].sort());
  assert.deepEqual((await listAllEndpoints(u.arn)).map((s) => s.EndpointId).sort(), [...ids].sort());
  await assertRejects(ctx.id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: u.arn, MaxResults: 0 })), 'BadRequestException', 'MaxResults 0');
  await assertRejects(ctx.id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: u.arn, MaxResults: 51 })), 'BadRequestException', 'MaxResults 51');
  await assertRejects(
    ctx.id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: u.arn, NextToken: 'garbage' })),
    'BadRequestException',
    'garbage NextToken',
  );
  await assertRejects(
    ctx.id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: `${ai}/user/ghost-${uniq('')}` })),
    'NotFoundException',
    'unknown user',
  );
});

test('DeleteAppInstanceUser removes its endpoints (a re-created user with the same id has none)', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const r1 = await register(u.arn);
  await register(u.arn);
  await ctx.id.send(new DeleteAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  await assertRejects(
    ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r1.EndpointId })),
    'NotFoundException',
    'endpoint of a deleted user',
  );
  await assertRejects(ctx.id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: u.arn })), 'NotFoundException', 'List of a deleted user');
  await ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: u.id, Name: 'again' }));
  assert.deepEqual(await listAllEndpoints(u.arn), [], 'the old endpoints must be gone, not resurrected');
  await assertRejects(
    ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: r1.EndpointId })),
    'NotFoundException',
    'old endpoint under the re-created user',
  );
});

// ---------------------------------------------------------------- retention

test('Put/GetAppInstanceRetentionSettings', async () => {
  const ai = await ctx.newAppInstance();
  const put = await ctx.id.send(
    new PutAppInstanceRetentionSettingsCommand({
      AppInstanceArn: ai,
      AppInstanceRetentionSettings: { ChannelRetentionSettings: { RetentionDays: 30 } },
    }),
  );
  assert.equal(put.$metadata.httpStatusCode, 200);
  assert.deepEqual(plain(put.AppInstanceRetentionSettings), { ChannelRetentionSettings: { RetentionDays: 30 } });
  assertRecentDate(put.InitiateDeletionTimestamp, t0, 'InitiateDeletionTimestamp');

  const get = await ctx.id.send(new GetAppInstanceRetentionSettingsCommand({ AppInstanceArn: ai }));
  assert.equal(get.$metadata.httpStatusCode, 200);
  assert.deepEqual(plain(get.AppInstanceRetentionSettings), { ChannelRetentionSettings: { RetentionDays: 30 } });
  assert.ok(get.InitiateDeletionTimestamp instanceof Date, 'Get returns InitiateDeletionTimestamp');
  assert.equal(get.InitiateDeletionTimestamp.getTime(), put.InitiateDeletionTimestamp.getTime());

  await ctx.id.send(
    new PutAppInstanceRetentionSettingsCommand({
      AppInstanceArn: ai,
      AppInstanceRetentionSettings: { ChannelRetentionSettings: { RetentionDays: 5475 } },
    }),
  );
  const get2 = await ctx.id.send(new GetAppInstanceRetentionSettingsCommand({ AppInstanceArn: ai }));
  assert.deepEqual(plain(get2.AppInstanceRetentionSettings), { ChannelRetentionSettings: { RetentionDays: 5475 } });
  // settings are per AppInstance
  const other = await ctx.newAppInstance();
  const get3 = await ctx.id.send(new GetAppInstanceRetentionSettingsCommand({ AppInstanceArn: other }));
  assert.notEqual(get3.AppInstanceRetentionSettings?.ChannelRetentionSettings?.RetentionDays, 5475);
});

test('retention settings validation and NotFound', async () => {
  const ai = await ctx.newAppInstance();
  for (const days of [0, 5476, -1]) {
    await assertRejects(
      ctx.id.send(
        new PutAppInstanceRetentionSettingsCommand({
          AppInstanceArn: ai,
          AppInstanceRetentionSettings: { ChannelRetentionSettings: { RetentionDays: days } },
        }),
      ),
      'BadRequestException',
      `RetentionDays ${days}`,
    );
  }
  await assertRejects(
    ctx.id.send(new PutAppInstanceRetentionSettingsCommand({ AppInstanceArn: ai })),
    'BadRequestException',
    'missing AppInstanceRetentionSettings',
  );
  await assertRejects(
    ctx.id.send(
      new PutAppInstanceRetentionSettingsCommand({
        AppInstanceArn: missingAppInstanceArn(),
        AppInstanceRetentionSettings: { ChannelRetentionSettings: { RetentionDays: 1 } },
      }),
    ),
    'NotFoundException',
    'Put on unknown AppInstance',
  );
  await assertRejects(ctx.id.send(new GetAppInstanceRetentionSettingsCommand({ AppInstanceArn: missingAppInstanceArn() })), 'NotFoundException', 'Get on unknown AppInstance');
  await assertRejects(ctx.id.send(new GetAppInstanceRetentionSettingsCommand({ AppInstanceArn: 'not-an-arn' })), 'BadRequestException', 'malformed ARN');
});

// ---------------------------------------------------------------- tags

test('TagResource / ListTagsForResource / UntagResource on an AppInstance, a user and a bot', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const bot = (await ctx.id.send(new CreateAppInstanceBotCommand({ AppInstanceArn: ai, Name: 'tagged', Configuration: lexConfig() }))).AppInstanceBotArn;
  for (const arn of [ai, u.arn, bot]) {
    assert.deepEqual(await tagsOf(arn), [], `a new resource has no tags (${arn})`);
    const tag = await ctx.id.send(
      new TagResourceCommand({
        ResourceARN: arn,
        Tags: [
          { Key: 'env', Value: 'test' },
          { Key: 'team', Value: "o'brien; DROP TABLE tags; --" },
          { Key: 'ünï', Value: '🔔' },
        ],
      }),
    );
    assert.equal(tag.$metadata.httpStatusCode, 204);
    assert.deepEqual(
      await tagsOf(arn),
      sortTags([
        { Key: 'env', Value: 'test' },
        { Key: 'team', Value: "o'brien; DROP TABLE tags; --" },
        { Key: 'ünï', Value: '🔔' },
      ]),
    );
    // same key again overwrites the value
    await ctx.id.send(new TagResourceCommand({ ResourceARN: arn, Tags: [{ Key: 'env', Value: 'prod' }] }));
    const after = await tagsOf(arn);
    assert.deepEqual(after.find((t) => t.Key === 'env'), { Key: 'env', Value: 'prod' });
    assert.equal(after.length, 3);

    const untag = await ctx.id.send(new UntagResourceCommand({ ResourceARN: arn, TagKeys: ['env', 'ünï', 'not-there'] }));
    assert.equal(untag.$metadata.httpStatusCode, 204);
    assert.deepEqual(await tagsOf(arn), [{ Key: 'team', Value: "o'brien; DROP TABLE tags; --" }]);
  }
});

test('tags are per resource', async () => {
  const a = await ctx.newAppInstance();
  const b = await ctx.newAppInstance();
  await ctx.id.send(new TagResourceCommand({ ResourceARN: a, Tags: [{ Key: 'only', Value: 'a' }] }));
  assert.deepEqual(await tagsOf(b), []);
  assert.deepEqual(await tagsOf(a), [{ Key: 'only', Value: 'a' }]);
});

test('Create* with Tags: ListTagsForResource shows them', async () => {
  const tags = [
    { Key: 'k1', Value: 'v1' },
    { Key: 'k2', Value: 'v2' },
  ];
  const ai = (await ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('tagged-ai'), Tags: tags }))).AppInstanceArn;
  ctx.appInstances.add(ai);
  assert.deepEqual(await tagsOf(ai), sortTags(tags));
  const u = await ctx.newUser(ai, { Tags: [{ Key: 'user', Value: 'yes' }] });
  assert.deepEqual(await tagsOf(u.arn), [{ Key: 'user', Value: 'yes' }]);
  const bot = (
    await ctx.id.send(new CreateAppInstanceBotCommand({ AppInstanceArn: ai, Name: 'b', Configuration: lexConfig(), Tags: [{ Key: 'bot', Value: 'yes' }] }))
  ).AppInstanceBotArn;
  assert.deepEqual(await tagsOf(bot), [{ Key: 'bot', Value: 'yes' }]);
});

test('tag validation: unknown ARN NotFound; too many, empty or oversized tags BadRequest', async () => {
  const ai = await ctx.newAppInstance();
  await assertRejects(
    ctx.id.send(new TagResourceCommand({ ResourceARN: missingAppInstanceArn(), Tags: [{ Key: 'k', Value: 'v' }] })),
    'NotFoundException',
    'TagResource on unknown AppInstance',
  );
  await assertRejects(
    ctx.id.send(new TagResourceCommand({ ResourceARN: `${ai}/user/ghost-${uniq('')}`, Tags: [{ Key: 'k', Value: 'v' }] })),
    'NotFoundException',
    'TagResource on unknown user',
  );
  await assertRejects(ctx.id.send(new ListTagsForResourceCommand({ ResourceARN: missingAppInstanceArn() })), 'NotFoundException', 'List on unknown');
  await assertRejects(
    ctx.id.send(new UntagResourceCommand({ ResourceARN: missingAppInstanceArn(), TagKeys: ['k'] })),
    'NotFoundException',
    'Untag on unknown',
  );
  await assertRejects(ctx.id.send(new ListTagsForResourceCommand({ ResourceARN: 'not-an-arn' })), 'BadRequestException', 'malformed ARN');
  const fiftyOne = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: `v${i}` }));
  await assertRejects(ctx.id.send(new TagResourceCommand({ ResourceARN: ai, Tags: fiftyOne })), 'BadRequestException', '51 tags');
  await assertRejects(
    ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('too-many-tags'), Tags: fiftyOne })),
    'BadRequestException',
    'CreateAppInstance with 51 tags',
  );
  await assertRejects(ctx.id.send(new TagResourceCommand({ ResourceARN: ai, Tags: [] })), 'BadRequestException', 'empty Tags');
  await assertRejects(ctx.id.send(new TagResourceCommand({ ResourceARN: ai })), 'BadRequestException', 'missing Tags');
  await assertRejects(ctx.id.send(new TagResourceCommand({ ResourceARN: ai, Tags: [{ Key: '', Value: 'v' }] })), 'BadRequestException', 'empty key');
  await assertRejects(ctx.id.send(new TagResourceCommand({ ResourceARN: ai, Tags: [{ Key: 'k'.repeat(129), Value: 'v' }] })), 'BadRequestException', 'key of 129');
  await assertRejects(ctx.id.send(new TagResourceCommand({ ResourceARN: ai, Tags: [{ Key: 'k', Value: 'v'.repeat(257) }] })), 'BadRequestException', 'value of 257');
  await assertRejects(ctx.id.send(new TagResourceCommand({ ResourceARN: ai, Tags: [{ Key: 'k' }] })), 'BadRequestException', 'missing Value');
  await assertRejects(
    ctx.id.send(new UntagResourceCommand({ ResourceARN: ai, TagKeys: Array.from({ length: 51 }, (_, i) => `k${i}`) })),
    'BadRequestException',
    'untag 51 keys',
  );
  await assertRejects(ctx.id.send(new UntagResourceCommand({ ResourceARN: ai, TagKeys: [] })), 'BadRequestException', 'untag no keys');
  assert.deepEqual(await tagsOf(ai), [], 'rejected calls must not have tagged anything');
  // 50 is allowed
  const fifty = fiftyOne.slice(0, 50);
  await ctx.id.send(new TagResourceCommand({ ResourceARN: ai, Tags: fifty }));
  assert.deepEqual(await tagsOf(ai), sortTags(fifty));
});

test('tags of a deleted AppInstance are gone (NotFound)', async () => {
  const ai = (await ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('tag-del'), Tags: [{ Key: 'a', Value: 'b' }] }))).AppInstanceArn;
  await ctx.id.send(new DeleteAppInstanceCommand({ AppInstanceArn: ai }));
  await assertRejects(ctx.id.send(new ListTagsForResourceCommand({ ResourceARN: ai })), 'NotFoundException');
});
