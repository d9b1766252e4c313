// Admin access keys: `carillon keys create NAME | list | revoke ACCESS_KEY_ID`, run against the same
// database and master key as the test server. An active admin key has the root key's rights
// (identity operations, any x-amz-chime-bearer on messaging, minting user credentials); every node
// reloads the active keys every 5 s, so a new key works, and a revoked key stops working, within a
// few seconds.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateAppInstanceUserCommand,
  DescribeAppInstanceCommand,
  DescribeAppInstanceUserCommand,
  ListAppInstanceUsersCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import { DescribeChannelCommand, ListChannelsCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { carillonCli, describeRun } from './lib/cli.mjs';
import { identityClient, messagingClient, requestCredentials } from './lib/clients.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { assertNotRejectedWith, assertRawError, assertRejects, uniq } from './lib/util.mjs';

const ctx = useCarillon();

const AUTH_ERRORS = ['UnauthorizedClientException', 'ForbiddenException'];
const PICKUP_LIMIT_MS = 10000; // the cache refreshes every 5 s; allow for one missed tick

/** `carillon keys create NAME`: returns {accessKeyId, secretAccessKey, stdout}. */
async function createKey(name) {
  const r = await carillonCli(ctx.srv, ['keys', 'create', name]);
  assert.equal(r.code, 0, `carillon keys create: ${describeRun(r)}`);
  const id = /^AccessKeyId: +(\S+)$/m.exec(r.stdout)?.[1];
  const secret = /^SecretAccessKey: +(\S+)$/m.exec(r.stdout)?.[1];
  assert.ok(id && secret, `carillon keys create must print AccessKeyId and SecretAccessKey lines: ${describeRun(r)}`);
  assert.match(id, /^AKIA[A-Z2-7]{16}$/, 'access key id');
  assert.match(secret, /^[A-Za-z0-9+/]{40}$/, 'secret access key');
  return { accessKeyId: id, secretAccessKey: secret, stdout: r.stdout };
}

/** `carillon keys list` as {id: {name, created, status}}. */
async function listKeys() {
  const r = await carillonCli(ctx.srv, ['keys', 'list']);
  assert.equal(r.code, 0, `carillon keys list: ${describeRun(r)}`);
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  assert.match(lines[0] ?? '', /^ACCESS KEY ID +NAME +CREATED +STATUS$/, `keys list header: ${r.stdout}`);
  const keys = {};
  for (const l of lines.slice(1)) {
    const [id, name, created, status, ...rest] = l.trim().split(/\s+/);
    keys[id] = { name, created, status, rest };
  }
  return keys;
}

/** Poll `fn` until it returns true or `limitMs` passes; returns the elapsed ms or fails with `what`. */
async function waitFor(fn, limitMs, what) {
  const start = Date.now();
  let last;
  for (;;) {
    try {
      if (await fn()) return Date.now() - start;
    } catch (e) {
      last = e;
    }
    if (Date.now() - start > limitMs) assert.fail(`${what} within ${limitMs / 1000} s${last ? ` (last error: ${last.name}: ${last.message})` : ''}`);
    await sleep(250);
  }
}

test('keys create -> the key works within seconds with the root key\'s rights; keys list shows it; keys revoke ends it', { timeout: 60000 }, async () => {
  const ai = await ctx.newAppInstance();
  const name = uniq('conf-key');
  const key = await createKey(name);
  assert.notEqual(key.accessKeyId, ctx.srv.rootKey.accessKeyId);

  // A new key is picked up by the running server within a few seconds (cache refresh every 5 s).
  const adminId = identityClient(ctx.srv, key);
  const adminMsg = messagingClient(ctx.srv, key);
  try {
    const describe = () => adminId.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai }));
    const elapsed = await waitFor(async () => (await describe()).AppInstance.AppInstanceArn === ai, PICKUP_LIMIT_MS, 'the new admin key was not accepted');
    assert.ok(elapsed <= PICKUP_LIMIT_MS);

    // identity operations: create, describe, list
    const userId = uniq('adm-made');
    const created = await adminId.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: userId, Name: 'made by admin key' }));
    assert.equal(created.$metadata.httpStatusCode, 201);
    assert.equal(created.AppInstanceUserArn, `${ai}/user/${userId}`);
    const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: created.AppInstanceUserArn }));
    assert.equal(d.AppInstanceUser.Name, 'made by admin key', 'the root key sees what the admin key created');
    const other = await ctx.newUser(ai, { Name: 'made by root' });
    const listed = await adminId.send(new ListAppInstanceUsersCommand({ AppInstanceArn: ai }));
    assert.deepEqual(
      listed.AppInstanceUsers.map((u) => u.AppInstanceUserArn).sort(),
      [created.AppInstanceUserArn, other.arn].sort(),
      'ListAppInstanceUsers with the admin key',
    );

    // messaging: the admin key may act as any AppInstanceUser (x-amz-chime-bearer)
    const channel = `${ai}/channel/${uniq('ch')}`;
    for (const bearer of [created.AppInstanceUserArn, other.arn]) {
      await assertNotRejectedWith(adminMsg.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: bearer })), AUTH_ERRORS, `ListChannels as ${bearer}`);
      await assertNotRejectedWith(adminMsg.send(new DescribeChannelCommand({ ChannelArn: channel, ChimeBearer: bearer })), AUTH_ERRORS, `DescribeChannel as ${bearer}`);
    }

    // POST /carillon/credentials signed by the admin key mints a user credential that works
    const res = await requestCredentials(ctx.srv, { AppInstanceUserArn: other.arn, DurationSeconds: 900 }, { creds: key });
    assert.equal(res.status, 200, `POST /carillon/credentials with the admin key: ${res.status} ${res.body}`);
    const c = res.json?.Credentials;
    assert.ok(c && typeof c.AccessKeyId === 'string' && typeof c.SecretAccessKey === 'string' && typeof c.SessionToken === 'string', res.body);
    assert.equal(typeof c.Expiration, 'number', 'Expiration in epoch seconds');
    assert.ok(Math.abs(c.Expiration - (Date.now() / 1000 + 900)) < 120, `Expiration ${c.Expiration} is not about 900 s from now`);
    const userCreds = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
    const userMsg = messagingClient(ctx.srv, userCreds);
    const userId2 = identityClient(ctx.srv, userCreds);
    try {
      await assertNotRejectedWith(userMsg.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: other.arn })), AUTH_ERRORS, 'minted credential as itself');
      // ...and it is a user credential, not an admin one: another bearer and identity calls are Forbidden
      await assertRejects(userMsg.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: created.AppInstanceUserArn })), 'ForbiddenException', 'minted credential as another user');
      await assertRejects(userId2.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai })), 'ForbiddenException', 'minted credential on identity');
    } finally {
      userMsg.destroy();
      userId2.destroy();
    }

    // a wrong secret for the admin key id
    const wrong = identityClient(ctx.srv, { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey.replace(/^./, (ch) => (ch === 'A' ? 'B' : 'A')) });
    try {
      await assertRejects(wrong.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai })), 'UnauthorizedClientException', 'admin key id with a wrong secret');
    } finally {
      wrong.destroy();
    }
    const wrongMint = await requestCredentials(ctx.srv, { AppInstanceUserArn: other.arn }, { creds: { ...key, secretAccessKey: 'x'.repeat(40) } });
    assertRawError(wrongMint, 'UnauthorizedClientException', 'minting with a wrong admin secret');

    // keys list: the key, its name, active
    const before = await listKeys();
    assert.ok(before[key.accessKeyId], `keys list must show ${key.accessKeyId}: ${JSON.stringify(before)}`);
    assert.equal(before[key.accessKeyId].name, name);
    assert.match(before[key.accessKeyId].created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d(:?\d\d)?|Z)$/, 'CREATED column');
    assert.ok(Math.abs(Date.parse(before[key.accessKeyId].created.replace(/([+-]\d\d)$/, '$1:00')) - Date.now()) < 5 * 60e3, 'CREATED is about now');
    assert.equal(before[key.accessKeyId].status, 'active');
    assert.deepEqual(before[key.accessKeyId].rest, []);
    assert.equal(before[ctx.srv.rootKey.accessKeyId], undefined, 'the root key is configuration, not a managed key');

    // keys revoke: the key stops working within seconds
    const rv = await carillonCli(ctx.srv, ['keys', 'revoke', key.accessKeyId]);
    assert.equal(rv.code, 0, `carillon keys revoke: ${describeRun(rv)}`);
    assert.equal(rv.stdout.trim(), `revoked ${key.accessKeyId}`);
    await waitFor(
      async () => {
        try {
          await adminId.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai }));
          return false;
        } catch (e) {
          if (e.name !== 'UnauthorizedClientException') throw e;
          return true;
        }
      },
      PICKUP_LIMIT_MS,
      'the revoked admin key was still accepted',
    );
    await assertRejects(adminId.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai })), 'UnauthorizedClientException', 'revoked key, identity');
    await assertRejects(adminMsg.send(new ListChannelsCommand({ AppInstanceArn: ai, ChimeBearer: other.arn })), 'UnauthorizedClientException', 'revoked key, messaging');
    const revokedMint = await requestCredentials(ctx.srv, { AppInstanceUserArn: other.arn }, { creds: key });
    assertRawError(revokedMint, 'UnauthorizedClientException', 'minting with a revoked admin key');

    const after = await listKeys();
    assert.equal(after[key.accessKeyId]?.name, name, 'a revoked key stays listed');
    assert.notEqual(after[key.accessKeyId].status, 'active', 'a revoked key is not active');
    assert.match(after[key.accessKeyId].status, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/, 'STATUS of a revoked key is the revocation time');

    // revoking it again: nothing to revoke
    const again = await carillonCli(ctx.srv, ['keys', 'revoke', key.accessKeyId]);
    assert.notEqual(again.code, 0, `revoking a revoked key must fail: ${describeRun(again)}`);
    assert.match(again.stderr, new RegExp(`no active key ${key.accessKeyId}`));
  } finally {
    adminId.destroy();
    adminMsg.destroy();
  }
});

test('keys revoke of an unknown access key id exits non-zero and changes nothing', async () => {
  const unknown = 'AKIA' + 'Z'.repeat(16);
  const before = await listKeys();
  const r = await carillonCli(ctx.srv, ['keys', 'revoke', unknown]);
  assert.equal(r.code, 1, `carillon keys revoke ${unknown}: ${describeRun(r)}`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`no active key ${unknown}`));
  assert.deepEqual(await listKeys(), before, 'keys list unchanged');
});

test('keys revoke without an id, and an unknown keys subcommand, are usage errors (exit 2)', async () => {
  const noId = await carillonCli(ctx.srv, ['keys', 'revoke']);
  assert.equal(noId.code, 2, describeRun(noId));
  assert.match(noId.stderr, /usage: carillon keys revoke/);
  const bad = await carillonCli(ctx.srv, ['keys', 'frobnicate']);
  assert.equal(bad.code, 2, describeRun(bad));
  assert.match(bad.stderr, /usage: carillon keys/);
});

test('two keys are independent: revoking one leaves the other working', { timeout: 60000 }, async () => {
  const ai = await ctx.newAppInstance();
  const k1 = await createKey(uniq('conf-key-a'));
  const k2 = await createKey(uniq('conf-key-b'));
  assert.notEqual(k1.accessKeyId, k2.accessKeyId);
  const c1 = identityClient(ctx.srv, k1);
  const c2 = identityClient(ctx.srv, k2);
  try {
    const ok = (c) => async () => (await c.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai }))).AppInstance.AppInstanceArn === ai;
    await waitFor(ok(c1), PICKUP_LIMIT_MS, 'key 1 was not accepted');
    await waitFor(ok(c2), PICKUP_LIMIT_MS, 'key 2 was not accepted');
    // each key signs only with its own secret
    const crossed = identityClient(ctx.srv, { accessKeyId: k1.accessKeyId, secretAccessKey: k2.secretAccessKey });
    try {
      await assertRejects(crossed.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai })), 'UnauthorizedClientException', "key 1's id with key 2's secret");
    } finally {
      crossed.destroy();
    }
    const rv = await carillonCli(ctx.srv, ['keys', 'revoke', k1.accessKeyId]);
    assert.equal(rv.code, 0, describeRun(rv));
    await waitFor(
      async () => {
        try {
          await c1.send(new DescribeAppInstanceCommand({ AppInstanceArn: ai }));
          return false;
        } catch (e) {
          if (e.name !== 'UnauthorizedClientException') throw e;
          return true;
        }
      },
      PICKUP_LIMIT_MS,
      'revoked key 1 was still accepted',
    );
    assert.ok(await ok(c2)(), 'key 2 must keep working');
    const keys = await listKeys();
    assert.equal(keys[k2.accessKeyId].status, 'active');
    assert.notEqual(keys[k1.accessKeyId].status, 'active');
    const rv2 = await carillonCli(ctx.srv, ['keys', 'revoke', k2.accessKeyId]);
    assert.equal(rv2.code, 0, describeRun(rv2));
  } finally {
    c1.destroy();
    c2.destroy();
  }
});
