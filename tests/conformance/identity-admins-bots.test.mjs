// AppInstanceAdmin and AppInstanceBot operations, and the DeleteAppInstance cascade.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateAppInstanceAdminCommand,
  CreateAppInstanceBotCommand,
  DeleteAppInstanceAdminCommand,
  DeleteAppInstanceBotCommand,
  DeleteAppInstanceCommand,
  DescribeAppInstanceAdminCommand,
  DescribeAppInstanceBotCommand,
  DescribeAppInstanceCommand,
  DescribeAppInstanceUserCommand,
  DescribeAppInstanceUserEndpointCommand,
  ListAppInstanceAdminsCommand,
  ListAppInstanceBotsCommand,
  ListAppInstanceUserEndpointsCommand,
  ListAppInstanceUsersCommand,
  RegisterAppInstanceUserEndpointCommand,
  UpdateAppInstanceBotCommand,
  paginateListAppInstanceAdmins,
  paginateListAppInstanceBots,
} from '@aws-sdk/client-chime-sdk-identity';
import { useCarillon } from './lib/fixture.mjs';
import {
  LEX_ALIAS_ARN,
  PINPOINT_APP_ARN,
  assertRecentDate,
  assertRejects,
  botArnRe,
  collectPages,
  lexConfig,
  missingAppInstanceArn,
  uniq,
} from './lib/util.mjs';

const ctx = useCarillon();
const t0 = Date.now();

function plain(x) {
  return JSON.parse(JSON.stringify(x));
}

async function newBot(ai, input = {}) {
  const out = await ctx.id.send(
    new CreateAppInstanceBotCommand({ AppInstanceArn: ai, Name: uniq('bot'), Configuration: lexConfig(), ...input }),
  );
  assert.equal(out.$metadata.httpStatusCode, 201, 'CreateAppInstanceBot status');
  return out.AppInstanceBotArn;
}

async function listAllBots(ai) {
  const all = [];
  for await (const page of paginateListAppInstanceBots({ client: ctx.id, pageSize: 50 }, { AppInstanceArn: ai })) {
    assert.equal(page.AppInstanceArn, ai);
    all.push(...(page.AppInstanceBots ?? []));
  }
  return all;
}

async function listAllAdmins(ai) {
  const all = [];
  for await (const page of paginateListAppInstanceAdmins({ client: ctx.id, pageSize: 50 }, { AppInstanceArn: ai })) {
    assert.equal(page.AppInstanceArn, ai);
    all.push(...(page.AppInstanceAdmins ?? []));
  }
  return all;
}

// ---------------------------------------------------------------- admins

test('CreateAppInstanceAdmin with a user ARN: 201, Describe, List, Delete', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai, { Name: 'Admin Person' });
  const c = await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn }));
  assert.equal(c.$metadata.httpStatusCode, 201);
  assert.equal(c.AppInstanceArn, ai);
  assert.deepEqual(plain(c.AppInstanceAdmin), { Arn: u.arn, Name: 'Admin Person' });

  const d = await ctx.id.send(new DescribeAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn }));
  assert.equal(d.$metadata.httpStatusCode, 200);
  assert.deepEqual(plain(d.AppInstanceAdmin.Admin), { Arn: u.arn, Name: 'Admin Person' });
  assert.equal(d.AppInstanceAdmin.AppInstanceArn, ai);
  assertRecentDate(d.AppInstanceAdmin.CreatedTimestamp, t0, 'AppInstanceAdmin.CreatedTimestamp');

  const l = await ctx.id.send(new ListAppInstanceAdminsCommand({ AppInstanceArn: ai }));
  assert.equal(l.$metadata.httpStatusCode, 200);
  assert.equal(l.AppInstanceArn, ai);
  assert.deepEqual(plain(l.AppInstanceAdmins), [{ Admin: { Arn: u.arn, Name: 'Admin Person' } }]);
  assert.equal(l.NextToken, undefined);

  const del = await ctx.id.send(new DeleteAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn }));
  assert.equal(del.$metadata.httpStatusCode, 204);
  await assertRejects(
    ctx.id.send(new DescribeAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn })),
    'NotFoundException',
    'Describe after Delete',
  );
  assert.deepEqual(await listAllAdmins(ai), []);
  // the user itself is untouched
  const du = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  assert.equal(du.AppInstanceUser.Name, 'Admin Person');
});

test('a bot can be an AppInstanceAdmin', async () => {
  const ai = await ctx.newAppInstance();
  const bot = await newBot(ai, { Name: 'Admin Bot' });
  const c = await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: bot }));
  assert.equal(c.$metadata.httpStatusCode, 201);
  assert.deepEqual(plain(c.AppInstanceAdmin), { Arn: bot, Name: 'Admin Bot' });
  const d = await ctx.id.send(new DescribeAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: bot }));
  assert.deepEqual(plain(d.AppInstanceAdmin.Admin), { Arn: bot, Name: 'Admin Bot' });
});

test('duplicate AppInstanceAdmin is Conflict', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn }));
  await assertRejects(ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn })), 'ConflictException');
  assert.equal((await listAllAdmins(ai)).length, 1);
});

test('AppInstanceAdmin errors: unknown user NotFound, malformed ARNs BadRequest, unknown AppInstance NotFound', async () => {
  const ai = await ctx.newAppInstance();
  await assertRejects(
    ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: `${ai}/user/ghost-${uniq('')}` })),
    'NotFoundException',
    'admin of an unknown user',
  );
  await assertRejects(
    ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: 'not-an-arn' })),
    'BadRequestException',
    'malformed admin ARN',
  );
  await assertRejects(
    ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai })),
    'BadRequestException',
    'missing AppInstanceAdminArn',
  );
  const missing = missingAppInstanceArn();
  await assertRejects(
    ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: missing, AppInstanceAdminArn: `${missing}/user/x` })),
    'NotFoundException',
    'unknown AppInstance',
  );
  const u = await ctx.newUser(ai);
  await assertRejects(
    ctx.id.send(new DescribeAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn })),
    'NotFoundException',
    'Describe of a user that is not an admin',
  );
  await assertRejects(ctx.id.send(new ListAppInstanceAdminsCommand({ AppInstanceArn: missing })), 'NotFoundException', 'List of unknown AppInstance');
  await assertRejects(ctx.id.send(new ListAppInstanceAdminsCommand({ AppInstanceArn: ai, MaxResults: 51 })), 'BadRequestException', 'MaxResults 51');
  await assertRejects(ctx.id.send(new ListAppInstanceAdminsCommand({ AppInstanceArn: ai, MaxResults: 0 })), 'BadRequestException', 'MaxResults 0');
  await assertRejects(
    ctx.id.send(new ListAppInstanceAdminsCommand({ AppInstanceArn: ai, NextToken: 'garbage' })),
    'BadRequestException',
    'garbage NextToken',
  );
  assert.deepEqual(await listAllAdmins(ai), []);
});

test('ListAppInstanceAdmins pagination: 5 admins, MaxResults=2', async () => {
  const ai = await ctx.newAppInstance();
  const arns = [];
  for (let i = 0; i < 5; i++) {
    const u = await ctx.newUser(ai, { Name: `Admin ${i}` });
    await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn }));
    arns.push(u.arn);
  }
  const { items, pages } = await collectPages(
    (tok) => ctx.id.send(new ListAppInstanceAdminsCommand({ AppInstanceArn: ai, MaxResults: 2, NextToken: tok })),
    (o) => o.AppInstanceAdmins,
    2,
  );
  assert.deepEqual(pages.map((p) => p.count), [2, 2, 1]);
  const got = items.map((a) => a.Admin.Arn);
  assert.deepEqual([...got].sort(), [...arns].sort());
  for (const a of items) assert.equal(a.Admin.Name, `Admin ${arns.indexOf(a.Admin.Arn)}`);
  const viaPaginator = (await listAllAdmins(ai)).map((a) => a.Admin.Arn);
  assert.deepEqual([...viaPaginator].sort(), [...arns].sort());
});

// ---------------------------------------------------------------- bots

test('CreateAppInstanceBot: 201 and <AppInstanceArn>/bot/<uuid>; Describe returns the Configuration', async () => {
  const ai = await ctx.newAppInstance();
  const cfg = lexConfig();
  const out = await ctx.id.send(
    new CreateAppInstanceBotCommand({ AppInstanceArn: ai, Name: 'Helper Bot', Metadata: 'bot-meta', Configuration: cfg }),
  );
  assert.equal(out.$metadata.httpStatusCode, 201);
  assert.match(out.AppInstanceBotArn, botArnRe(ai));
  const d = await ctx.id.send(new DescribeAppInstanceBotCommand({ AppInstanceBotArn: out.AppInstanceBotArn }));
  assert.equal(d.$metadata.httpStatusCode, 200);
  const b = d.AppInstanceBot;
  assert.equal(b.AppInstanceBotArn, out.AppInstanceBotArn);
  assert.equal(b.Name, 'Helper Bot');
  assert.equal(b.Metadata, 'bot-meta');
  assert.deepEqual(plain(b.Configuration), cfg);
  assertRecentDate(b.CreatedTimestamp, t0, 'CreatedTimestamp');
  assertRecentDate(b.LastUpdatedTimestamp, t0, 'LastUpdatedTimestamp');
  assert.ok(b.LastUpdatedTimestamp.getTime() >= b.CreatedTimestamp.getTime());
});

test('CreateAppInstanceBot with InvokedBy and WelcomeIntent; without Name', async () => {
  const ai = await ctx.newAppInstance();
  const cfg = {
    Lex: {
      LexBotAliasArn: LEX_ALIAS_ARN,
      LocaleId: 'fr_FR',
      InvokedBy: { StandardMessages: 'MENTIONS', TargetedMessages: 'ALL' },
      WelcomeIntent: 'Welcome_Intent',
    },
  };
  const arn = await newBot(ai, { Name: undefined, Configuration: cfg });
  const d = await ctx.id.send(new DescribeAppInstanceBotCommand({ AppInstanceBotArn: arn }));
  assert.deepEqual(plain(d.AppInstanceBot.Configuration), cfg);
  assert.ok(d.AppInstanceBot.Name === undefined || d.AppInstanceBot.Name === '', 'no Name was given');
});

test('CreateAppInstanceBot validation', async () => {
  const ai = await ctx.newAppInstance();
  const bad = {
    'missing Configuration': { Configuration: undefined },
    'missing Lex': { Configuration: {} },
    'bad LexBotAliasArn': { Configuration: lexConfig({ LexBotAliasArn: 'arn:aws:lex:us-east-1:123456789012:bot/ABCDEFGHIJ' }) },
    'LexBotAliasArn not an ARN': { Configuration: lexConfig({ LexBotAliasArn: 'not-an-arn-at-all' }) },
    'lower-case alias ids': { Configuration: lexConfig({ LexBotAliasArn: 'arn:aws:lex:us-east-1:123456789012:bot-alias/abcdefghij/klmnopqrst' }) },
    'missing LexBotAliasArn': { Configuration: lexConfig({ LexBotAliasArn: undefined }) },
    'missing LocaleId': { Configuration: lexConfig({ LocaleId: undefined }) },
    'bad RespondsTo': { Configuration: lexConfig({ RespondsTo: 'EVERYTHING' }) },
    'bad StandardMessages': { Configuration: lexConfig({ RespondsTo: undefined, InvokedBy: { StandardMessages: 'SOME', TargetedMessages: 'ALL' } }) },
    'bad TargetedMessages': { Configuration: lexConfig({ RespondsTo: undefined, InvokedBy: { StandardMessages: 'ALL', TargetedMessages: 'SOME' } }) },
    'InvokedBy missing TargetedMessages': { Configuration: lexConfig({ RespondsTo: undefined, InvokedBy: { StandardMessages: 'ALL' } }) },
    'bad WelcomeIntent': { Configuration: lexConfig({ WelcomeIntent: '9 bad intent' }) },
    'Name of 257': { Name: 'n'.repeat(257) },
    'Metadata of 1025': { Metadata: 'm'.repeat(1025) },
  };
  for (const [what, over] of Object.entries(bad)) {
    const input = { AppInstanceArn: ai, Name: uniq('bot'), Configuration: lexConfig(), ...over };
    await assertRejects(ctx.id.send(new CreateAppInstanceBotCommand(input)), 'BadRequestException', what);
  }
  await assertRejects(
    ctx.id.send(new CreateAppInstanceBotCommand({ Name: 'x', Configuration: lexConfig() })),
    'BadRequestException',
    'missing AppInstanceArn',
  );
  await assertRejects(
    ctx.id.send(new CreateAppInstanceBotCommand({ AppInstanceArn: missingAppInstanceArn(), Name: 'x', Configuration: lexConfig() })),
    'NotFoundException',
    'unknown AppInstance',
  );
  assert.deepEqual(await listAllBots(ai), [], 'no bot may have been created by the rejected calls');
});

test('UpdateAppInstanceBot changes Name, Metadata, Configuration; keeps Configuration when omitted', async () => {
  const ai = await ctx.newAppInstance();
  const arn = await newBot(ai, { Name: 'Before', Metadata: 'before' });
  const d0 = await ctx.id.send(new DescribeAppInstanceBotCommand({ AppInstanceBotArn: arn }));
  await sleep(1100);
  const cfg2 = lexConfig({ LocaleId: 'de_DE' });
  const up = await ctx.id.send(new UpdateAppInstanceBotCommand({ AppInstanceBotArn: arn, Name: 'After', Metadata: 'after', Configuration: cfg2 }));
  assert.equal(up.$metadata.httpStatusCode, 200);
  assert.equal(up.AppInstanceBotArn, arn);
  let d = await ctx.id.send(new DescribeAppInstanceBotCommand({ AppInstanceBotArn: arn }));
  assert.equal(d.AppInstanceBot.Name, 'After');
  assert.equal(d.AppInstanceBot.Metadata, 'after');
  assert.deepEqual(plain(d.AppInstanceBot.Configuration), cfg2);
  assert.equal(d.AppInstanceBot.CreatedTimestamp.getTime(), d0.AppInstanceBot.CreatedTimestamp.getTime());
  assert.ok(d.AppInstanceBot.LastUpdatedTimestamp.getTime() > d0.AppInstanceBot.LastUpdatedTimestamp.getTime(), 'LastUpdatedTimestamp must advance');

  await ctx.id.send(new UpdateAppInstanceBotCommand({ AppInstanceBotArn: arn, Name: 'Again', Metadata: 'again' }));
  d = await ctx.id.send(new DescribeAppInstanceBotCommand({ AppInstanceBotArn: arn }));
  assert.equal(d.AppInstanceBot.Name, 'Again');
  assert.deepEqual(plain(d.AppInstanceBot.Configuration), cfg2, 'Configuration must be kept when Update omits it');

  await assertRejects(
    ctx.id.send(new UpdateAppInstanceBotCommand({ AppInstanceBotArn: arn, Name: 'x', Metadata: 'y', Configuration: lexConfig({ LexBotAliasArn: 'arn:aws:lex:bad' }) })),
    'BadRequestException',
    'bad LexBotAliasArn on update',
  );
  await assertRejects(ctx.id.send(new UpdateAppInstanceBotCommand({ AppInstanceBotArn: arn, Name: 'x' })), 'BadRequestException', 'Metadata required');
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceBotCommand({ AppInstanceBotArn: `${ai}/bot/${randomUUID()}`, Name: 'x', Metadata: 'y' })),
    'NotFoundException',
    'unknown bot',
  );
  d = await ctx.id.send(new DescribeAppInstanceBotCommand({ AppInstanceBotArn: arn }));
  assert.equal(d.AppInstanceBot.Name, 'Again', 'rejected updates must not change the bot');
  assert.deepEqual(plain(d.AppInstanceBot.Configuration), cfg2);
});

test('ListAppInstanceBots lists summaries; DeleteAppInstanceBot returns 204 and the bot is NotFound', async () => {
  const ai = await ctx.newAppInstance();
  const a = await newBot(ai, { Name: 'Bot A', Metadata: 'ma' });
  const b = await newBot(ai, { Name: 'Bot B', Metadata: 'mb' });
  const l = await ctx.id.send(new ListAppInstanceBotsCommand({ AppInstanceArn: ai }));
  assert.equal(l.$metadata.httpStatusCode, 200);
  assert.equal(l.AppInstanceArn, ai);
  const byArn = Object.fromEntries(l.AppInstanceBots.map((s) => [s.AppInstanceBotArn, plain(s)]));
  assert.deepEqual(byArn, {
    [a]: { AppInstanceBotArn: a, Name: 'Bot A', Metadata: 'ma' },
    [b]: { AppInstanceBotArn: b, Name: 'Bot B', Metadata: 'mb' },
  });
  const del = await ctx.id.send(new DeleteAppInstanceBotCommand({ AppInstanceBotArn: a }));
  assert.equal(del.$metadata.httpStatusCode, 204);
  await assertRejects(ctx.id.send(new DescribeAppInstanceBotCommand({ AppInstanceBotArn: a })), 'NotFoundException');
  assert.deepEqual((await listAllBots(ai)).map((s) => s.AppInstanceBotArn), [b]);
});

test('bot errors: unknown bot NotFound, malformed ARN BadRequest, List validation', async () => {
  const ai = await ctx.newAppInstance();
  await assertRejects(ctx.id.send(new DescribeAppInstanceBotCommand({ AppInstanceBotArn: `${ai}/bot/${randomUUID()}` })), 'NotFoundException');
  await assertRejects(ctx.id.send(new DescribeAppInstanceBotCommand({ AppInstanceBotArn: 'not-an-arn' })), 'BadRequestException');
  await assertRejects(ctx.id.send(new DeleteAppInstanceBotCommand({ AppInstanceBotArn: 'not-an-arn' })), 'BadRequestException');
  await assertRejects(ctx.id.send(new ListAppInstanceBotsCommand({})), 'BadRequestException', 'missing app-instance-arn');
  await assertRejects(ctx.id.send(new ListAppInstanceBotsCommand({ AppInstanceArn: ai, MaxResults: 0 })), 'BadRequestException', 'MaxResults 0');
  await assertRejects(ctx.id.send(new ListAppInstanceBotsCommand({ AppInstanceArn: ai, MaxResults: 51 })), 'BadRequestException', 'MaxResults 51');
  await assertRejects(ctx.id.send(new ListAppInstanceBotsCommand({ AppInstanceArn: ai, NextToken: 'garbage' })), 'BadRequestException', 'garbage NextToken');
  await assertRejects(ctx.id.send(new ListAppInstanceBotsCommand({ AppInstanceArn: missingAppInstanceArn() })), 'NotFoundException', 'unknown AppInstance');
});

test('CreateAppInstanceBot ClientRequestToken: same input -> same bot once; different input -> Conflict', async () => {
  const ai = await ctx.newAppInstance();
  const token = randomUUID();
  const input = { AppInstanceArn: ai, Name: 'Idem Bot', Metadata: 'm', Configuration: lexConfig(), ClientRequestToken: token };
  const a = await ctx.id.send(new CreateAppInstanceBotCommand(input));
  const b = await ctx.id.send(new CreateAppInstanceBotCommand(input));
  assert.equal(b.AppInstanceBotArn, a.AppInstanceBotArn);
  assert.ok([200, 201].includes(b.$metadata.httpStatusCode));
  assert.equal((await listAllBots(ai)).length, 1);
  await assertRejects(ctx.id.send(new CreateAppInstanceBotCommand({ ...input, Name: 'Other Bot' })), 'ConflictException');
  assert.equal((await listAllBots(ai)).length, 1);
});

test('ListAppInstanceBots pagination: 5 bots, MaxResults=2', async () => {
  const ai = await ctx.newAppInstance();
  const arns = [];
  for (let i = 0; i < 5; i++) arns.push(await newBot(ai, { Name: `Pager Bot ${i}` }));
  const { items, pages } = await collectPages(
    (tok) => ctx.id.send(new ListAppInstanceBotsCommand({ AppInstanceArn: ai, MaxResults: 2, NextToken: tok })),
    (o) => o.AppInstanceBots,
    2,
  );
  assert.deepEqual(pages.map((p) => p.count), [2, 2, 1]);
  assert.deepEqual(items.map((s) => s.AppInstanceBotArn).sort(), [...arns].sort());
  const viaPaginator = (await listAllBots(ai)).map((s) => s.AppInstanceBotArn);
  assert.deepEqual([...viaPaginator].sort(), [...arns].sort());
});

// ---------------------------------------------------------------- cascade

test('DeleteAppInstance cascades: its users, bots, admins and endpoints become NotFound', async () => {
  const ai = await ctx.newAppInstance();
  const other = await ctx.newAppInstance();
  const u = await ctx.newUser(ai, { Name: 'Cascade User' });
  const bot = await newBot(ai);
  await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn }));
  const ep = await ctx.id.send(
    new RegisterAppInstanceUserEndpointCommand({
      AppInstanceUserArn: u.arn,
      Type: 'GCM',
      ResourceArn: PINPOINT_APP_ARN,
      EndpointAttributes: { DeviceToken: 'cascade-token' },
    }),
  );
  const survivor = await ctx.newUser(other, { AppInstanceUserId: u.id, Name: 'Survivor' });

  const del = await ctx.id.send(new DeleteAppInstanceCommand({ AppInstanceArn: ai }));
  assert.equal(del.$metadata.httpStatusCode, 204);
  ctx.appInstances.delete(ai);

  await assertRejects(ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai })), 'NotFoundException', 'AppInstance');
  await assertRejects(ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn })), 'NotFoundException', 'user');
  await assertRejects(ctx.id.send(new DescribeAppInstanceBotCommand({ AppInstanceBotArn: bot })), 'NotFoundException', 'bot');
  await assertRejects(
    ctx.id.send(new DescribeAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: u.arn })),
    'NotFoundException',
    'admin',
  );
  await assertRejects(
    ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: u.arn, EndpointId: ep.EndpointId })),
    'NotFoundException',
    'endpoint',
  );
  await assertRejects(ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: ai })), 'NotFoundException', 'ListAppInstanceUsers');
  await assertRejects(ctx.id.send(new ListAppInstanceBotsCommand({ AppInstanceArn: ai })), 'NotFoundException', 'ListAppInstanceBots');
  await assertRejects(ctx.id.send(new ListAppInstanceAdminsCommand({ AppInstanceArn: ai })), 'NotFoundException', 'ListAppInstanceAdmins');
  await assertRejects(
    ctx.id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: u.arn })),
    'NotFoundException',
    'ListAppInstanceUserEndpoints',
  );
  // a user with the same id in another AppInstance is unaffected
  const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: survivor.arn }));
  assert.equal(d.AppInstanceUser.Name, 'Survivor');
});
