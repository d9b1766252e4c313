// Hostile uses of valid credentials: a presigned URL replayed on REST, headers added after signing, a
// user token that outlives the admin key that minted it, a user token that outlives its user.
//
// - Presigned (query-string) SigV4 is for GET /connect only: its payload hash is that of an empty
//   body and only `host` is signed, so on REST it would let whoever holds the URL send any body.
// - x-amz-chime-bearer, content-type and every x-amz-* header must be in SignedHeaders: otherwise
//   anyone who sees one signed request could change who it acts as.
// - A user token names the key that minted it: revoking an admin key ends its tokens (the keys cache
//   refreshes every 5 s). Root-minted tokens are bound to the root key, which is not revoked.
// - A user token carries its user's generation: deleting the user and creating it again under the
//   same ARN does not bring old tokens back (REST 401, /connect close 4401).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@smithy/core/checksum';
import {
  CreateAppInstanceUserCommand,
  DeleteAppInstanceUserCommand,
  ListAppInstancesCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import { CreateChannelCommand, ListChannelsCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { carillonCli, describeRun } from './lib/cli.mjs';
import { messagingClient, mintUserCredentials, rawFetch, requestCredentials, rfc3986, signedFetch } from './lib/clients.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { deadline, rawSession } from './lib/realtime.mjs';
import { assertRawError, assertRejects, uniq } from './lib/util.mjs';

const ctx = useCarillon();
const REVOKE_LIMIT_MS = 10000; // the keys cache refreshes every 5 s; allow one missed tick on a loaded machine

/** A presigned (query-string) SigV4 request line for `method path`, like the JS SDK presigns /connect. */
async function presignedPathAndQuery(srv, { method, path, query = {}, creds = srv.rootKey }) {
  const signer = new SignatureV4({
    credentials: { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
    region: srv.region,
    service: 'chime',
    sha256: Sha256,
    uriEscapePath: true,
  });
  const req = await signer.presign(
    { method, protocol: 'http:', hostname: '127.0.0.1', port: srv.port, path, query, headers: { host: `127.0.0.1:${srv.port}` } },
    { expiresIn: 300 },
  );
  return '?' + Object.entries(req.query).map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`).join('&');
}

async function waitFor(fn, limitMs, what) {
  const start = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - start;
    if (Date.now() - start > limitMs) assert.fail(`${what} within ${limitMs / 1000} s`);
    await sleep(250);
  }
}

/** GET /channels?app-instance-arn=… as `bearer` with `creds` (a user token): the raw response. */
function listChannelsAs(creds, ai, bearer) {
  return signedFetch(ctx.srv, {
    path: '/channels',
    query: { 'app-instance-arn': ai },
    headers: { 'x-amz-chime-bearer': bearer },
    creds,
  });
}

// ------------------------------------------------------------------------ finding 2: query auth

test('a presigned URL (query auth) for a REST GET is UnauthorizedClientException', async () => {
  const ai = await ctx.newAppInstance();
  // GET: the presigned form of ListAppInstances.
  const q = await presignedPathAndQuery(ctx.srv, { method: 'GET', path: '/app-instances', query: { 'max-results': '1' } });
  const get = await rawFetch(ctx.srv, { path: '/app-instances', query: q });
  assertRawError(get, 'UnauthorizedClientException', 'presigned GET /app-instances');
  assert.match(get.json?.Message ?? '', /GET \/connect/, 'the message says where query auth is accepted');
  const ok = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'max-results': '1' } });
  assert.equal(ok.status, 200, ok.body);
});

test('a presigned POST with a body the signer never saw is UnauthorizedClientException', async () => {
  const ai = await ctx.newAppInstance();
  // A presigned URL signs the empty payload: any body would do.
  const user = await ctx.newUser(ai);
  const pq = await presignedPathAndQuery(ctx.srv, { method: 'POST', path: '/app-instance-users' });
  const post = await rawFetch(ctx.srv, {
    method: 'POST',
    path: '/app-instance-users',
    query: pq,
    body: { AppInstanceArn: ai, AppInstanceUserId: uniq('forged'), Name: 'forged', ClientRequestToken: uniq('t') },
  });
  assertRawError(post, 'UnauthorizedClientException', 'presigned POST /app-instance-users with a body');

  // ...and a presigned POST /carillon/credentials does not mint anything.
  const cq = await presignedPathAndQuery(ctx.srv, { method: 'POST', path: '/carillon/credentials' });
  const mint = await rawFetch(ctx.srv, { method: 'POST', path: '/carillon/credentials', query: cq, body: { AppInstanceUserArn: user.arn } });
  assertRawError(mint, 'UnauthorizedClientException', 'presigned POST /carillon/credentials');
});

test('GET /connect presigned still opens a session', async (t) => {
  const ai = await ctx.newAppInstance();
  const user = await ctx.newUser(ai);
  const creds = await mintUserCredentials(ctx.srv, user.arn, 900);
  const raw = await rawSession(`127.0.0.1:${ctx.srv.port}`, user.arn, creds, { scheme: 'ws' });
  t.after(() => raw.close());
  await raw.waitFor((r) => r.ofType('SESSION_ESTABLISHED').length === 1, 10000, 'SESSION_ESTABLISHED');
});

// ------------------------------------------------------------------- finding 3: unsigned headers

test('x-amz-chime-bearer added after signing is UnauthorizedClientException, not that bearer', async () => {
  const ai = await ctx.newAppInstance();
  const user = await ctx.newUser(ai);
  // Signed by the root key without a bearer; the bearer is put on the wire afterwards.
  const res = await signedFetch(ctx.srv, {
    path: '/channels',
    query: { 'app-instance-arn': ai },
    sendHeaders: { 'x-amz-chime-bearer': user.arn },
  });
  assertRawError(res, 'UnauthorizedClientException', 'unsigned x-amz-chime-bearer');
  assert.match(res.json?.Message ?? '', /x-amz-chime-bearer/, 'the message names the header');
  // Signed with the bearer: the same call works.
  const ok = await signedFetch(ctx.srv, { path: '/channels', query: { 'app-instance-arn': ai }, headers: { 'x-amz-chime-bearer': user.arn } });
  assert.equal(ok.status, 200, ok.body);
});

test('an unsigned content-type is UnauthorizedClientException', async () => {
  const ai = await ctx.newAppInstance();
  const body = JSON.stringify({ AppInstanceArn: ai, AppInstanceUserId: uniq('ct'), Name: 'ct', ClientRequestToken: uniq('t') });
  // A string body: the signer adds no content-type; it is added on the wire after signing.
  const res = await signedFetch(ctx.srv, { method: 'POST', path: '/app-instance-users', body, sendHeaders: { 'content-type': 'application/json' } });
  assertRawError(res, 'UnauthorizedClientException', 'unsigned content-type');
  assert.match(res.json?.Message ?? '', /content-type/);
  const ok = await signedFetch(ctx.srv, { method: 'POST', path: '/app-instance-users', body, headers: { 'content-type': 'application/json' } });
  assert.equal(ok.status, 201, ok.body);
});

test('an unsigned x-amz-* header is UnauthorizedClientException; signed, it is fine', async () => {
  const unsigned = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'max-results': '1' }, sendHeaders: { 'x-amz-user-agent': 'added/1.0' } });
  assertRawError(unsigned, 'UnauthorizedClientException', 'unsigned x-amz-user-agent');
  const token = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'max-results': '1' }, sendHeaders: { 'x-amz-security-token': 'added' } });
  assertRawError(token, 'UnauthorizedClientException', 'unsigned x-amz-security-token');
  const signed = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'max-results': '1' }, headers: { 'x-amz-user-agent': 'signed/1.0' } });
  assert.equal(signed.status, 200, signed.body);
  // The stock SDK signs what it sends.
  const out = await ctx.id.send(new ListAppInstancesCommand({ MaxResults: 1 }));
  assert.equal(out.$metadata.httpStatusCode, 200);
});

// ------------------------------------------------------------ finding 9: credentials are bound

test('a user token minted by an admin key stops working once the key is revoked; a root-minted one keeps working', { timeout: 90000 }, async () => {
  const ai = await ctx.newAppInstance();
  const user = await ctx.newUser(ai);
  const r = await carillonCli(ctx.srv, ['keys', 'create', uniq('minter')]);
  assert.equal(r.code, 0, describeRun(r));
  const key = {
    accessKeyId: /^AccessKeyId: +(\S+)$/m.exec(r.stdout)?.[1],
    secretAccessKey: /^SecretAccessKey: +(\S+)$/m.exec(r.stdout)?.[1],
  };
  assert.ok(key.accessKeyId && key.secretAccessKey, r.stdout);
  // The new key is picked up by the keys cache within a refresh.
  let minted;
  await waitFor(async () => {
    minted = await requestCredentials(ctx.srv, { AppInstanceUserArn: user.arn, DurationSeconds: 900 }, { creds: key });
    return minted.status === 200;
  }, REVOKE_LIMIT_MS, 'the new admin key mints credentials');
  const c = minted.json.Credentials;
  const adminMinted = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
  const rootMinted = await mintUserCredentials(ctx.srv, user.arn, 900);
  assert.equal((await listChannelsAs(adminMinted, ai, user.arn)).status, 200, 'admin-minted token before the revocation');
  assert.equal((await listChannelsAs(rootMinted, ai, user.arn)).status, 200, 'root-minted token before the revocation');

  const rv = await carillonCli(ctx.srv, ['keys', 'revoke', key.accessKeyId]);
  assert.equal(rv.code, 0, describeRun(rv));
  let last;
  const elapsed = await waitFor(async () => {
    last = await listChannelsAs(adminMinted, ai, user.arn);
    return last.status !== 200;
  }, REVOKE_LIMIT_MS, 'the token minted by the revoked key is refused');
  assertRawError(last, 'UnauthorizedClientException', `admin-minted token after the revocation (${elapsed} ms)`);
  // Through the SDK too.
  const sdk = messagingClient(ctx.srv, adminMinted);
  try {
    await assertRejects(sdk.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: user.arn })), 'UnauthorizedClientException', 'SDK with the revoked key\'s token');
  } finally {
    sdk.destroy();
  }
  assert.equal((await listChannelsAs(rootMinted, ai, user.arn)).status, 200, 'root-minted token after the revocation');
});

/** A user with a token, then the user deleted and created again under the same ARN. */
async function recreatedUser() {
  const ai = await ctx.newAppInstance();
  const userId = uniq('reborn');
  const user = await ctx.newUser(ai, { AppInstanceUserId: userId });
  const old = await mintUserCredentials(ctx.srv, user.arn, 900);
  assert.equal((await listChannelsAs(old, ai, user.arn)).status, 200, 'the token works before the deletion');
  await ctx.id.send(new DeleteAppInstanceUserCommand({ AppInstanceUserArn: user.arn }));
  const again = await ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: userId, Name: 'again' }));
  assert.equal(again.AppInstanceUserArn, user.arn, 'same ARN');
  return { ai, user, old };
}

test('a user deleted and created again (same ARN) does not inherit old tokens on REST; new tokens work', { timeout: 60000 }, async () => {
  const { ai, user, old } = await recreatedUser();
  // A read (called directly) and a write (through the batch) are both refused.
  assertRawError(await listChannelsAs(old, ai, user.arn), 'UnauthorizedClientException', 'old token, read');
  const oldMsg = messagingClient(ctx.srv, old);
  try {
    await assertRejects(
      oldMsg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'by a ghost', ChimeBearer: user.arn, ClientRequestToken: uniq('t') })),
      'UnauthorizedClientException',
      'old token, write',
    );
  } finally {
    oldMsg.destroy();
  }
  const fresh = await mintUserCredentials(ctx.srv, user.arn, 900);
  assert.equal((await listChannelsAs(fresh, ai, user.arn)).status, 200, 'new token, read');
  const freshMsg = messagingClient(ctx.srv, fresh);
  try {
    const created = await freshMsg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'by the new user', ChimeBearer: user.arn, ClientRequestToken: uniq('t') }));
    assert.equal(created.$metadata.httpStatusCode, 201);
  } finally {
    freshMsg.destroy();
  }
});

test('a user deleted and created again (same ARN): the old token on /connect is closed 4401; a new one connects', { timeout: 60000 }, async (t) => {
  const { user, old } = await recreatedUser();
  // Upgraded, then closed 4401 before anything is sent.
  const endpoint = `127.0.0.1:${ctx.srv.port}`;
  const ghost = await rawSession(endpoint, user.arn, old, { scheme: 'ws' });
  t.after(() => ghost.close());
  const closed = await Promise.race([ghost.closed, deadline(10000, { code: 'none' })]);
  assert.equal(closed.code, 4401, 'old token on /connect');
  assert.equal(ghost.ofType('SESSION_ESTABLISHED').length, 0, 'no SESSION_ESTABLISHED for the old token');
  const fresh = await mintUserCredentials(ctx.srv, user.arn, 900);
  const live = await rawSession(endpoint, user.arn, fresh, { scheme: 'ws' });
  t.after(() => live.close());
  await live.waitFor((r) => r.ofType('SESSION_ESTABLISHED').length === 1, 10000, 'SESSION_ESTABLISHED with the new token');
});

test('a user that was deleted (not recreated) cannot use its token either', async () => {
  const ai = await ctx.newAppInstance();
  const user = await ctx.newUser(ai);
  const creds = await mintUserCredentials(ctx.srv, user.arn, 900);
  await ctx.id.send(new DeleteAppInstanceUserCommand({ AppInstanceUserArn: user.arn }));
  assertRawError(await listChannelsAs(creds, ai, user.arn), 'UnauthorizedClientException', 'token of a deleted user');
});
