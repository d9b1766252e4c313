// SigV4 authentication, POST /carillon/credentials, and what a user-scoped credential may do.

import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { test } from 'node:test';
import {
  DescribeAppInstanceCommand,
  DescribeAppInstanceUserCommand,
  CreateAppInstanceUserCommand,
  ListAppInstancesCommand,
  ListAppInstanceUsersCommand,
  DeleteAppInstanceUserCommand,
  UpdateAppInstanceUserCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import { DescribeChannelCommand, ListChannelsCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { identityClient, messagingClient, mintUserCredentials, rawFetch, requestCredentials, signedFetch } from './lib/clients.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { randomMasterKey, randomRootKey } from './lib/server.mjs';
import { assertNotRejectedWith, assertRawError, assertRejects, missingAppInstanceArn, uniq } from './lib/util.mjs';

const ctx = useCarillon();
const AUTH_ERRORS = ['ForbiddenException', 'UnauthorizedClientException'];

function channelArn(ai) {
  return `${ai}/channel/${randomUUID()}`;
}

function tamperChar(s, index) {
  const i = index < 0 ? s.length + index : index;
  const c = s[i];
  const repl = c === 'A' ? 'B' : 'A';
  return s.slice(0, i) + repl + s.slice(i + 1);
}

// ---------------------------------------------------------------- SigV4 on the API

test('GET /healthz answers 200 without authentication', async () => {
  const res = await rawFetch(ctx.srv, { path: '/healthz' });
  assert.equal(res.status, 200);
});

test('unsigned API requests are UnauthorizedClientException (401)', async () => {
  assertRawError(await rawFetch(ctx.srv, { path: '/app-instances' }), 'UnauthorizedClientException', 'GET /app-instances');
  assertRawError(
    await rawFetch(ctx.srv, { method: 'POST', path: '/app-instances', body: { Name: uniq('unsigned'), ClientRequestToken: randomUUID() } }),
    'UnauthorizedClientException',
    'POST /app-instances',
  );
  assertRawError(
    await rawFetch(ctx.srv, { method: 'POST', path: '/carillon/credentials', body: { AppInstanceUserArn: `${missingAppInstanceArn()}/user/x` } }),
    'UnauthorizedClientException',
    'POST /carillon/credentials',
  );
  // A garbage Authorization header is not a signature either.
  assertRawError(
    await rawFetch(ctx.srv, { path: '/app-instances', headers: { authorization: 'AWS4-HMAC-SHA256 garbage' } }),
    'UnauthorizedClientException',
    'garbage Authorization',
  );
  assertRawError(
    await rawFetch(ctx.srv, { path: '/app-instances', headers: { authorization: 'Bearer abc' } }),
    'UnauthorizedClientException',
    'Bearer Authorization',
  );
});

test('the root key is accepted (signed raw request and SDK)', async () => {
  const res = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'max-results': 1 } });
  assert.equal(res.status, 200, res.body);
  assert.ok(Array.isArray(res.json.AppInstances));
  const out = await ctx.id.send(new ListAppInstancesCommand({ MaxResults: 1 }));
  assert.equal(out.$metadata.httpStatusCode, 200);
});

test('wrong secret or unknown access key is UnauthorizedClientException', async () => {
  const wrongSecret = identityClient(ctx.srv, { accessKeyId: ctx.srv.rootKey.accessKeyId, secretAccessKey: tamperChar(ctx.srv.rootKey.secretAccessKey, 5) });
  await assertRejects(wrongSecret.send(new ListAppInstancesCommand({})), 'UnauthorizedClientException', 'wrong secret');
  const unknown = identityClient(ctx.srv, randomRootKey());
  await assertRejects(unknown.send(new ListAppInstancesCommand({})), 'UnauthorizedClientException', 'unknown access key');
  const unknownAsia = identityClient(ctx.srv, { accessKeyId: 'ASIA' + 'Q'.repeat(16), secretAccessKey: 'x'.repeat(40), sessionToken: 'bogus' });
  await assertRejects(unknownAsia.send(new ListAppInstancesCommand({})), 'UnauthorizedClientException', 'made-up ASIA key');
});

test('X-Amz-Date outside +-5 minutes is UnauthorizedClientException; inside is fine', async () => {
  const now = Date.now();
  for (const [what, offsetMin] of [['10 minutes old', -10], ['10 minutes ahead', 10], ['a day old', -24 * 60]]) {
    const res = await signedFetch(ctx.srv, { path: '/app-instances', date: new Date(now + offsetMin * 60000) });
    assertRawError(res, 'UnauthorizedClientException', what);
  }
  for (const [what, offsetMin] of [['2 minutes old', -2], ['2 minutes ahead', 2]]) {
    const res = await signedFetch(ctx.srv, { path: '/app-instances', date: new Date(now + offsetMin * 60000) });
    assert.equal(res.status, 200, `${what}: ${res.body}`);
  }
});

test('a signature for another service scope is rejected', async () => {
  const res = await signedFetch(ctx.srv, { path: '/app-instances', service: 'sts' });
  assertRawError(res, 'UnauthorizedClientException', 'scope service sts');
});

test('requests altered after signing are rejected', async () => {
  // body replaced (same length) after signing
  const body = JSON.stringify({ Name: uniq('signed-name'), ClientRequestToken: randomUUID() });
  const swapped = body.replace('signed-name', 'evil0-name0');
  assert.equal(swapped.length, body.length);
  const res = await signedFetch(ctx.srv, {
    method: 'POST',
    path: '/app-instances',
    headers: { 'content-type': 'application/json' },
    body,
    sendBody: swapped,
  });
  assertRawError(res, 'UnauthorizedClientException', 'body swapped after signing');

  // claimed payload hash does not match the body actually sent
  const claimed = createHash('sha256').update('{}').digest('hex');
  const res2 = await signedFetch(ctx.srv, {
    method: 'POST',
    path: '/app-instances',
    headers: { 'content-type': 'application/json', 'x-amz-content-sha256': claimed },
    body: JSON.stringify({ Name: uniq('hash-mismatch'), ClientRequestToken: randomUUID() }),
  });
  assertRawError(res2, 'UnauthorizedClientException', 'x-amz-content-sha256 of another body');

  // query changed after signing
  const res3 = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'max-results': '1' }, sendQuery: '?max-results=2' });
  assertRawError(res3, 'UnauthorizedClientException', 'query changed after signing');

  // path changed after signing: sign one ARN, send another
  const ai = await ctx.newAppInstance();
  const other = await ctx.newAppInstance();
  const res4 = await signedFetch(ctx.srv, {
    path: `/app-instances/${encodeURIComponent(ai)}`,
    sendPath: `/app-instances/${encodeURIComponent(other)}`,
  });
  assertRawError(res4, 'UnauthorizedClientException', 'path changed after signing');
  // a signed header changed afterwards: X-Amz-Date moved by one second
  const d = new Date(Math.floor(Date.now() / 1000) * 1000);
  const moved = new Date(d.getTime() + 1000).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const res5 = await signedFetch(ctx.srv, { path: `/app-instances/${encodeURIComponent(ai)}`, date: d, sendHeaders: { 'x-amz-date': moved } });
  assertRawError(res5, 'UnauthorizedClientException', 'X-Amz-Date changed after signing');
  // the same request untouched is fine
  const res6 = await signedFetch(ctx.srv, { path: `/app-instances/${encodeURIComponent(ai)}`, date: d });
  assert.equal(res6.status, 200, res6.body);
});

test('hand-signed raw request: the wire format of a Describe response', async () => {
  const ai = await ctx.newAppInstance({ Metadata: 'wire' });
  const res = await signedFetch(ctx.srv, { path: `/app-instances/${encodeURIComponent(ai)}` });
  assert.equal(res.status, 200, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.ok(res.headers['x-amzn-requestid'], 'x-amzn-RequestId header');
  assert.equal(res.json.AppInstance.AppInstanceArn, ai);
  assert.equal(res.json.AppInstance.Metadata, 'wire');
  assert.equal(typeof res.json.AppInstance.CreatedTimestamp, 'number', 'timestamps are epoch-second numbers on the wire');
  assert.equal(typeof res.json.AppInstance.LastUpdatedTimestamp, 'number');
  assert.ok(Math.abs(res.json.AppInstance.CreatedTimestamp - Date.now() / 1000) < 300, 'CreatedTimestamp must be epoch seconds, not milliseconds');
  assert.ok(!Object.values(res.json.AppInstance).includes(null), 'absent members must be left out, not null');
});

// ---------------------------------------------------------------- /carillon/credentials

test('POST /carillon/credentials mints a credential (default 3600 s)', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const before = Date.now() / 1000;
  const res = await requestCredentials(ctx.srv, { AppInstanceUserArn: u.arn });
  assert.equal(res.status, 200, res.body);
  const c = res.json?.Credentials;
  assert.ok(c, `body must be {"Credentials": {...}}, got ${res.body}`);
  assert.match(c.AccessKeyId, /^ASIA[A-Z0-9]+$/);
  assert.ok(c.AccessKeyId.length >= 16 && c.AccessKeyId.length <= 128, `AccessKeyId length ${c.AccessKeyId.length}`);
  assert.equal(typeof c.SecretAccessKey, 'string');
  assert.ok(c.SecretAccessKey.length >= 16, 'SecretAccessKey too short');
  assert.equal(typeof c.SessionToken, 'string');
  assert.ok(c.SessionToken.length >= 16, 'SessionToken too short');
  assert.equal(typeof c.Expiration, 'number', 'Expiration must be a JSON number of epoch seconds');
  const after = Date.now() / 1000;
  assert.ok(c.Expiration >= before + 3600 - 5 && c.Expiration <= after + 3600 + 5, `Expiration ${c.Expiration} is not now+3600`);

  const again = await requestCredentials(ctx.srv, { AppInstanceUserArn: u.arn });
  assert.equal(again.status, 200);
  assert.notEqual(again.json.Credentials.AccessKeyId, c.AccessKeyId, 'each mint must give a new access key id');
  assert.notEqual(again.json.Credentials.SessionToken, c.SessionToken);
  assert.notEqual(again.json.Credentials.SecretAccessKey, c.SecretAccessKey);
});

test('DurationSeconds bounds 900 and 43200 are honoured', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  for (const d of [900, 43200]) {
    const before = Date.now() / 1000;
    const res = await requestCredentials(ctx.srv, { AppInstanceUserArn: u.arn, DurationSeconds: d });
    assert.equal(res.status, 200, `DurationSeconds ${d}: ${res.body}`);
    const exp = res.json.Credentials.Expiration;
    assert.ok(exp >= before + d - 5 && exp <= Date.now() / 1000 + d + 5, `DurationSeconds ${d}: Expiration ${exp}`);
  }
});

test('POST /carillon/credentials rejects bad input', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  for (const d of [899, 43201, 0, -1]) {
    assertRawError(await requestCredentials(ctx.srv, { AppInstanceUserArn: u.arn, DurationSeconds: d }), 'BadRequestException', `DurationSeconds ${d}`);
  }
  assertRawError(await requestCredentials(ctx.srv, {}), 'BadRequestException', 'missing AppInstanceUserArn');
  assertRawError(await requestCredentials(ctx.srv, { AppInstanceUserArn: 'not-an-arn' }), 'BadRequestException', 'malformed ARN');
  assertRawError(await requestCredentials(ctx.srv, { AppInstanceUserArn: 42 }), 'BadRequestException', 'ARN of the wrong type');
  assertRawError(
    await signedFetch(ctx.srv, { method: 'POST', path: '/carillon/credentials', headers: { 'content-type': 'application/json' }, body: '{"AppInstanceUserArn": ' }),
    'BadRequestException',
    'malformed JSON',
  );
  assertRawError(
    await requestCredentials(ctx.srv, { AppInstanceUserArn: `${ai}/user/ghost-${uniq('')}` }),
    'NotFoundException',
    'unknown user',
  );
  assertRawError(
    await requestCredentials(ctx.srv, { AppInstanceUserArn: `${missingAppInstanceArn()}/user/${u.id}` }),
    'NotFoundException',
    'user of an unknown AppInstance',
  );
});

test('a user credential cannot call /carillon/credentials (ForbiddenException)', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const v = await ctx.newUser(ai);
  const creds = await mintUserCredentials(ctx.srv, u.arn);
  assertRawError(await requestCredentials(ctx.srv, { AppInstanceUserArn: u.arn }, { creds }), 'ForbiddenException', 'mint for itself');
  assertRawError(await requestCredentials(ctx.srv, { AppInstanceUserArn: v.arn }, { creds }), 'ForbiddenException', 'mint for another user');
});

// ---------------------------------------------------------------- user credentials

test('a user credential may not call any identity operation (ForbiddenException)', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai, { Name: 'Restricted' });
  const creds = await mintUserCredentials(ctx.srv, u.arn);
  const c = identityClient(ctx.srv, creds);
  await assertRejects(c.send(new ListAppInstancesCommand({})), 'ForbiddenException', 'ListAppInstances');
  await assertRejects(c.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai })), 'ForbiddenException', 'DescribeAppInstance');
  await assertRejects(c.send(new ListAppInstanceUsersCommand({ AppInstanceArn: ai })), 'ForbiddenException', 'ListAppInstanceUsers');
  await assertRejects(c.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn })), 'ForbiddenException', 'DescribeAppInstanceUser (itself)');
  await assertRejects(
    c.send(new UpdateAppInstanceUserCommand({ AppInstanceUserArn: u.arn, Name: 'Hacked', Metadata: 'x' })),
    'ForbiddenException',
    'UpdateAppInstanceUser (itself)',
  );
  await assertRejects(
    c.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq('sneaky'), Name: 'x' })),
    'ForbiddenException',
    'CreateAppInstanceUser',
  );
  await assertRejects(c.send(new DeleteAppInstanceUserCommand({ AppInstanceUserArn: u.arn })), 'ForbiddenException', 'DeleteAppInstanceUser');
  c.destroy();
  // nothing happened
  const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  assert.equal(d.AppInstanceUser.Name, 'Restricted');
  const users = await ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: ai }));
  assert.equal(users.AppInstanceUsers.length, 1);
});

test('on messaging, a user credential may act only as itself (x-amz-chime-bearer)', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const v = await ctx.newUser(ai);
  const otherAi = await ctx.newAppInstance();
  const w = await ctx.newUser(otherAi);
  const creds = await mintUserCredentials(ctx.srv, u.arn);
  const m = messagingClient(ctx.srv, creds);
  const ch = channelArn(ai);
  for (const [who, bearer] of [
    ['another user', v.arn],
    ['a user of another AppInstance', w.arn],
    ['an unknown user', `${ai}/user/ghost-${uniq('')}`],
  ]) {
    await assertRejects(m.send(new DescribeChannelCommand({ ChannelArn: ch, ChimeBearer: bearer })), 'ForbiddenException', `DescribeChannel as ${who}`);
    await assertRejects(m.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: bearer })), 'ForbiddenException', `ListChannels as ${who}`);
  }
  await assertNotRejectedWith(m.send(new DescribeChannelCommand({ ChannelArn: ch, ChimeBearer: u.arn })), AUTH_ERRORS, 'DescribeChannel as itself');
  await assertNotRejectedWith(m.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: u.arn })), AUTH_ERRORS, 'ListChannels as itself');
  m.destroy();
});

test('a tampered, forged or mismatched session credential is UnauthorizedClientException', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const v = await ctx.newUser(ai);
  const creds = await mintUserCredentials(ctx.srv, u.arn);
  const credsV = await mintUserCredentials(ctx.srv, v.arn);
  const ch = channelArn(ai);
  const variants = {
    'one character of SessionToken changed (middle)': { ...creds, sessionToken: tamperChar(creds.sessionToken, Math.floor(creds.sessionToken.length / 2)) },
    'one character of SessionToken changed (end)': { ...creds, sessionToken: tamperChar(creds.sessionToken, -1) },
    'SessionToken truncated': { ...creds, sessionToken: creds.sessionToken.slice(0, -4) },
    'SessionToken forged': { ...creds, sessionToken: Buffer.from('{"user":"' + v.arn + '"}').toString('base64') },
    'SessionToken of another user': { ...creds, sessionToken: credsV.sessionToken },
    'secret modified': { ...creds, secretAccessKey: tamperChar(creds.secretAccessKey, 3) },
    'no SessionToken': { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
    'root key with a user SessionToken': { ...ctx.srv.rootKey, sessionToken: creds.sessionToken },
  };
  for (const [what, c] of Object.entries(variants)) {
    const m = messagingClient(ctx.srv, c);
    await assertRejects(m.send(new DescribeChannelCommand({ ChannelArn: ch, ChimeBearer: u.arn })), 'UnauthorizedClientException', `${what} (messaging)`);
    m.destroy();
    const i = identityClient(ctx.srv, c);
    await assertRejects(i.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai })), 'UnauthorizedClientException', `${what} (identity)`);
    i.destroy();
  }
  // the untouched credential still authenticates
  const i = identityClient(ctx.srv, creds);
  await assertRejects(i.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai })), 'ForbiddenException', 'untouched credential');
  i.destroy();
});

test('tokens are accepted by another server with the same master key, rejected with a different one', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const v = await ctx.newUser(ai);
  const creds = await mintUserCredentials(ctx.srv, u.arn);
  const twin = await ctx.startAnother({ masterKey: ctx.srv.masterKey, rootKey: ctx.srv.rootKey });
  const stranger = await ctx.startAnother({ masterKey: randomMasterKey(), rootKey: ctx.srv.rootKey });
  assert.notEqual(stranger.masterKey, ctx.srv.masterKey);

  // the twin shares the database: the root key sees the same AppInstance
  const rootTwin = identityClient(twin);
  const d = await rootTwin.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai }));
  assert.equal(d.AppInstance.AppInstanceArn, ai);
  rootTwin.destroy();

  // the twin authenticates the user credential (so authorization decides: Forbidden on identity)
  const idTwin = identityClient(twin, creds);
  await assertRejects(idTwin.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai })), 'ForbiddenException', 'twin, identity');
  idTwin.destroy();
  const mTwin = messagingClient(twin, creds);
  await assertRejects(mTwin.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: v.arn })), 'ForbiddenException', 'twin, other bearer');
  await assertNotRejectedWith(mTwin.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: u.arn })), AUTH_ERRORS, 'twin, own bearer');
  mTwin.destroy();

  // the stranger cannot read the token
  const idStranger = identityClient(stranger, creds);
  await assertRejects(idStranger.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai })), 'UnauthorizedClientException', 'stranger, identity');
  idStranger.destroy();
  const mStranger = messagingClient(stranger, creds);
  await assertRejects(
    mStranger.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: u.arn })),
    'UnauthorizedClientException',
    'stranger, own bearer',
  );
  mStranger.destroy();

  // and a credential minted by the twin works on the first server
  const fromTwin = await mintUserCredentials(twin, v.arn);
  const m = messagingClient(ctx.srv, fromTwin);
  await assertNotRejectedWith(m.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: v.arn })), AUTH_ERRORS, 'minted by twin, used on first');
  await assertRejects(m.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: u.arn })), 'ForbiddenException', 'minted by twin, other bearer');
  m.destroy();
});
