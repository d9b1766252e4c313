// AppInstance operations: Create / Describe / List / Update / Delete, validation, idempotency,
// pagination, and values that like to break SQL or UTF-8 handling.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateAppInstanceCommand,
  CreateAppInstanceUserCommand,
  DeleteAppInstanceCommand,
  DescribeAppInstanceCommand,
  ListAppInstancesCommand,
  UpdateAppInstanceCommand,
  paginateListAppInstances,
} from '@aws-sdk/client-chime-sdk-identity';
import { signedFetch } from './lib/clients.mjs';
import { useCarillon } from './lib/fixture.mjs';
import {
  APP_INSTANCE_ARN_RE,
  NASTY_STRINGS,
  assertRecentDate,
  assertRejects,
  collectPages,
  missingAppInstanceArn,
  uniq,
} from './lib/util.mjs';

const ctx = useCarillon();
const t0 = Date.now();

async function listAllAppInstances() {
  const all = [];
  for await (const page of paginateListAppInstances({ client: ctx.id, pageSize: 50 }, {})) all.push(...(page.AppInstances ?? []));
  return all;
}

test('CreateAppInstance returns 201 and a well-formed ARN; DescribeAppInstance returns what was stored', async () => {
  const name = uniq('conf-ai');
  const metadata = `meta for ${name}`;
  const created = await ctx.id.send(new CreateAppInstanceCommand({ Name: name, Metadata: metadata }));
  assert.equal(created.$metadata.httpStatusCode, 201);
  assert.match(created.AppInstanceArn, APP_INSTANCE_ARN_RE);
  assert.ok(created.$metadata.requestId, 'x-amzn-RequestId must be sent (shows up as $metadata.requestId)');
  ctx.appInstances.add(created.AppInstanceArn);

  const d = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: created.AppInstanceArn }));
  assert.equal(d.$metadata.httpStatusCode, 200);
  assert.equal(d.AppInstance.AppInstanceArn, created.AppInstanceArn);
  assert.equal(d.AppInstance.Name, name);
  assert.equal(d.AppInstance.Metadata, metadata);
  assertRecentDate(d.AppInstance.CreatedTimestamp, t0, 'CreatedTimestamp');
  assertRecentDate(d.AppInstance.LastUpdatedTimestamp, t0, 'LastUpdatedTimestamp');
  assert.ok(d.AppInstance.LastUpdatedTimestamp.getTime() >= d.AppInstance.CreatedTimestamp.getTime());
});

test('two CreateAppInstance calls give two different ARNs', async () => {
  const a = await ctx.newAppInstance();
  const b = await ctx.newAppInstance();
  assert.notEqual(a, b);
});

test('CreateAppInstance without Metadata: Describe leaves Metadata out', async () => {
  const name = uniq('conf-ai-nometa');
  const arn = await ctx.newAppInstance({ Name: name });
  const d = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }));
  assert.equal(d.AppInstance.Name, name);
  assert.equal(d.AppInstance.Metadata, undefined, 'absent members must be left out, not sent as null/""');
});

test('ListAppInstances includes a new AppInstance with Name and Metadata', async () => {
  const name = uniq('conf-ai-list');
  const arn = await ctx.newAppInstance({ Name: name, Metadata: 'listed' });
  const all = await listAllAppInstances();
  const mine = all.filter((s) => s.AppInstanceArn === arn);
  assert.equal(mine.length, 1, 'the AppInstance must be listed exactly once');
  assert.deepEqual({ ...mine[0] }, { AppInstanceArn: arn, Name: name, Metadata: 'listed' });
});

test('Name and Metadata at the maximum lengths are accepted, one over is BadRequest', async () => {
  const name256 = 'n'.repeat(250) + uniq('').slice(1, 7);
  assert.equal(name256.length, 256);
  const arn = await ctx.newAppInstance({ Name: name256, Metadata: 'm'.repeat(1024) });
  const d = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }));
  assert.equal(d.AppInstance.Name, name256);
  assert.equal(d.AppInstance.Metadata.length, 1024);

  await assertRejects(ctx.id.send(new CreateAppInstanceCommand({ Name: 'n'.repeat(257) })), 'BadRequestException', 'Name of 257');
  await assertRejects(
    ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('ok'), Metadata: 'm'.repeat(1025) })),
    'BadRequestException',
    'Metadata of 1025',
  );
});

test('lengths are counted in characters, not UTF-8 bytes', async () => {
  // 256 characters, 512 UTF-8 bytes: valid.
  const name = 'é'.repeat(256);
  const meta = 'ü'.repeat(1024);
  const arn = await ctx.newAppInstance({ Name: name, Metadata: meta });
  const d = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }));
  assert.equal(d.AppInstance.Name, name);
  assert.equal(d.AppInstance.Metadata, meta);
  await assertRejects(ctx.id.send(new CreateAppInstanceCommand({ Name: 'é'.repeat(257) })), 'BadRequestException', '257 x é');
});

test('CreateAppInstance: missing or empty Name is BadRequest', async () => {
  await assertRejects(ctx.id.send(new CreateAppInstanceCommand({})), 'BadRequestException', 'no Name');
  await assertRejects(ctx.id.send(new CreateAppInstanceCommand({ Name: '' })), 'BadRequestException', 'empty Name');
});

test('CreateAppInstance: an invalid ClientRequestToken is BadRequest', async () => {
  await assertRejects(
    ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('x'), ClientRequestToken: 'has spaces and !' })),
    'BadRequestException',
    'token with bad characters',
  );
  await assertRejects(
    ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('x'), ClientRequestToken: 'a' })),
    'BadRequestException',
    'token of 1 char',
  );
  await assertRejects(
    ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('x'), ClientRequestToken: 't'.repeat(65) })),
    'BadRequestException',
    'token of 65 chars',
  );
});

test('SQL metacharacters, quotes, backslashes, unicode and emoji round-trip unchanged', async () => {
  for (const s of NASTY_STRINGS) {
    const name = `${s} ${uniq('')}`;
    const metadata = `${s}|${s}`;
    const arn = await ctx.newAppInstance({ Name: name, Metadata: metadata });
    const d = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }));
    assert.equal(d.AppInstance.Name, name, `Name ${JSON.stringify(s)}`);
    assert.equal(d.AppInstance.Metadata, metadata, `Metadata ${JSON.stringify(s)}`);
    // Update with the same kind of values
    const name2 = `${name} (upd) '`;
    await ctx.id.send(new UpdateAppInstanceCommand({ AppInstanceArn: arn, Name: name2, Metadata: s }));
    const d2 = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }));
    assert.equal(d2.AppInstance.Name, name2, `updated Name ${JSON.stringify(s)}`);
    assert.equal(d2.AppInstance.Metadata, s, `updated Metadata ${JSON.stringify(s)}`);
  }
});

test('DescribeAppInstance of a well-formed but unknown ARN is NotFound', async () => {
  await assertRejects(ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: missingAppInstanceArn() })), 'NotFoundException');
});

test('DescribeAppInstance of a malformed ARN is BadRequest', async () => {
  await assertRejects(ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: 'not-an-arn' })), 'BadRequestException');
});

test('UpdateAppInstance changes Name and Metadata and LastUpdatedTimestamp', async () => {
  const arn = await ctx.newAppInstance({ Name: uniq('before'), Metadata: 'before' });
  const d0 = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }));
  await sleep(1100);
  const newName = uniq('after');
  const up = await ctx.id.send(new UpdateAppInstanceCommand({ AppInstanceArn: arn, Name: newName, Metadata: 'after' }));
  assert.equal(up.$metadata.httpStatusCode, 200);
  assert.equal(up.AppInstanceArn, arn);
  const d = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }));
  assert.equal(d.AppInstance.Name, newName);
  assert.equal(d.AppInstance.Metadata, 'after');
  assert.equal(d.AppInstance.CreatedTimestamp.getTime(), d0.AppInstance.CreatedTimestamp.getTime(), 'CreatedTimestamp must not change');
  assert.ok(
    d.AppInstance.LastUpdatedTimestamp.getTime() > d0.AppInstance.LastUpdatedTimestamp.getTime(),
    `LastUpdatedTimestamp must advance on update (${d0.AppInstance.LastUpdatedTimestamp.toISOString()} -> ${d.AppInstance.LastUpdatedTimestamp.toISOString()})`,
  );
  assert.ok(d.AppInstance.LastUpdatedTimestamp.getTime() >= d.AppInstance.CreatedTimestamp.getTime());
  // Metadata may be set to the empty string
  await ctx.id.send(new UpdateAppInstanceCommand({ AppInstanceArn: arn, Name: newName, Metadata: '' }));
  const d2 = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }));
  assert.equal(d2.AppInstance.Metadata ?? '', '');
});

test('UpdateAppInstance validation and NotFound', async () => {
  const arn = await ctx.newAppInstance();
  await assertRejects(ctx.id.send(new UpdateAppInstanceCommand({ AppInstanceArn: arn, Name: uniq('x') })), 'BadRequestException', 'Metadata is required');
  await assertRejects(ctx.id.send(new UpdateAppInstanceCommand({ AppInstanceArn: arn, Metadata: 'm' })), 'BadRequestException', 'Name is required');
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceCommand({ AppInstanceArn: arn, Name: 'n'.repeat(257), Metadata: '' })),
    'BadRequestException',
    'Name of 257',
  );
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceCommand({ AppInstanceArn: arn, Name: 'ok', Metadata: 'm'.repeat(1025) })),
    'BadRequestException',
    'Metadata of 1025',
  );
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceCommand({ AppInstanceArn: missingAppInstanceArn(), Name: 'x', Metadata: 'y' })),
    'NotFoundException',
  );
  // nothing changed after the rejected updates
  const d = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }));
  assert.notEqual(d.AppInstance.Name, 'n'.repeat(257));
  assert.notEqual(d.AppInstance.Metadata, 'm');
});

test('DeleteAppInstance returns 204; the AppInstance is then NotFound and no longer listed', async () => {
  const arn = await ctx.newAppInstance();
  const del = await ctx.id.send(new DeleteAppInstanceCommand({ AppInstanceArn: arn }));
  assert.equal(del.$metadata.httpStatusCode, 204);
  await assertRejects(ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn })), 'NotFoundException');
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceCommand({ AppInstanceArn: arn, Name: 'x', Metadata: 'y' })),
    'NotFoundException',
    'update after delete',
  );
  const all = await listAllAppInstances();
  assert.equal(all.filter((s) => s.AppInstanceArn === arn).length, 0);
  ctx.appInstances.delete(arn);
});

test('ClientRequestToken: same token + same input returns the same AppInstance, created once', async () => {
  const token = randomUUID();
  const name = uniq('conf-ai-idem');
  const a = await ctx.id.send(new CreateAppInstanceCommand({ Name: name, Metadata: 'i', ClientRequestToken: token }));
  ctx.appInstances.add(a.AppInstanceArn);
  const b = await ctx.id.send(new CreateAppInstanceCommand({ Name: name, Metadata: 'i', ClientRequestToken: token }));
  ctx.appInstances.add(b.AppInstanceArn);
  assert.equal(b.AppInstanceArn, a.AppInstanceArn);
  assert.ok([200, 201].includes(b.$metadata.httpStatusCode));
  const all = await listAllAppInstances();
  assert.equal(all.filter((s) => s.Name === name).length, 1, 'only one AppInstance may exist for the token');
});

test('ClientRequestToken: same token + different input is Conflict', async () => {
  const token = randomUUID();
  const name = uniq('conf-ai-idem2');
  const a = await ctx.id.send(new CreateAppInstanceCommand({ Name: name, ClientRequestToken: token }));
  ctx.appInstances.add(a.AppInstanceArn);
  await assertRejects(
    ctx.id.send(new CreateAppInstanceCommand({ Name: name + '-other', ClientRequestToken: token })),
    'ConflictException',
  );
  const all = await listAllAppInstances();
  assert.equal(all.filter((s) => s.Name === name + '-other').length, 0);
});

test('ListAppInstances pagination: MaxResults=2, NextToken only on non-final pages, no duplicates', async () => {
  const tag = uniq('conf-ai-page');
  const mine = [];
  for (let i = 0; i < 5; i++) mine.push(await ctx.newAppInstance({ Name: `${tag}-${i}` }));
  const { items, pages } = await collectPages(
    (tok) => ctx.id.send(new ListAppInstancesCommand({ MaxResults: 2, NextToken: tok })),
    (o) => o.AppInstances,
    2,
  );
  const arns = items.map((s) => s.AppInstanceArn);
  assert.equal(new Set(arns).size, arns.length, 'an AppInstance appeared on two pages');
  for (const arn of mine) assert.ok(arns.includes(arn), `${arn} missing from the pages`);
  assert.ok(pages.length >= 3, '5+ items with MaxResults=2 need at least 3 pages');
  for (const p of pages.slice(0, -1)) assert.equal(p.count, 2, 'non-final pages must be full');
  // SDK paginator
  const seen = [];
  for await (const page of paginateListAppInstances({ client: ctx.id, pageSize: 2 }, {})) {
    assert.ok((page.AppInstances ?? []).length <= 2);
    seen.push(...(page.AppInstances ?? []).map((s) => s.AppInstanceArn));
  }
  assert.equal(new Set(seen).size, seen.length);
  for (const arn of mine) assert.ok(seen.includes(arn));
});

test('ListAppInstances: MaxResults out of range and bad NextTokens are BadRequest', async () => {
  await assertRejects(ctx.id.send(new ListAppInstancesCommand({ MaxResults: 0 })), 'BadRequestException', 'MaxResults 0');
  await assertRejects(ctx.id.send(new ListAppInstancesCommand({ MaxResults: 51 })), 'BadRequestException', 'MaxResults 51');
  const ok = await ctx.id.send(new ListAppInstancesCommand({ MaxResults: 50 }));
  assert.equal(ok.$metadata.httpStatusCode, 200);
  await assertRejects(
    ctx.id.send(new ListAppInstancesCommand({ NextToken: 'garbage-token-that-was-never-issued' })),
    'BadRequestException',
    'garbage NextToken',
  );
  await assertRejects(ctx.id.send(new ListAppInstancesCommand({ NextToken: 'A'.repeat(3000) })), 'BadRequestException', '3000-char NextToken');
});

test('unknown body members, query parameters and headers are ignored', async () => {
  const name = uniq('conf-ai-unknown');
  const res = await signedFetch(ctx.srv, {
    method: 'POST',
    path: '/app-instances',
    query: { 'sub-channel-id': 'legacy', bogus: '1' },
    headers: { 'x-carillon-test-unknown': 'yes' },
    body: { Name: name, ClientRequestToken: randomUUID(), SubChannelId: 'old-client', Bogus: { nested: [1, 2] } },
  });
  assert.equal(res.status, 201, res.body);
  ctx.appInstances.add(res.json.AppInstanceArn);
  const d = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: res.json.AppInstanceArn }));
  assert.equal(d.AppInstance.Name, name);
  const list = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'max-results': '1', whatever: 'x' } });
  assert.equal(list.status, 200, list.body);
});

test('ClientRequestToken is scoped to the operation: the same token on CreateAppInstanceUser is a new request', async () => {
  const token = randomUUID();
  const a = await ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('conf-ai-tok'), ClientRequestToken: token }));
  ctx.appInstances.add(a.AppInstanceArn);
  const u = await ctx.id.send(
    new CreateAppInstanceUserCommand({ AppInstanceArn: a.AppInstanceArn, AppInstanceUserId: 'tok-user', Name: 'Tok', ClientRequestToken: token }),
  );
  assert.equal(u.$metadata.httpStatusCode, 201);
  assert.equal(u.AppInstanceUserArn, `${a.AppInstanceArn}/user/tok-user`);
});
