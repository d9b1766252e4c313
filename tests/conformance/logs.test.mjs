// Structured logs: CARILLON_LOG_FORMAT=json into CARILLON_LOG_FILE at CARILLON_LOG_LEVEL=info.
// Every line is one JSON object; each REST request has one access line whose fields match the
// request the AWS SDK made (found by the x-amzn-RequestId it got back); a websocket session of the
// real amazon-chime-sdk-js has an open and a close line; no secret ever reaches the log (secret
// keys, session tokens, signatures, message content); SIGHUP reopens the file after a rename.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  CreateAppInstanceCommand,
  CreateAppInstanceUserCommand,
  DeleteAppInstanceCommand,
  DescribeAppInstanceCommand,
  DescribeAppInstanceUserCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import { CreateChannelCommand, CreateChannelMembershipCommand, SendChannelMessageCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { identity, messaging, rawSession, session, startTlsCarillon, userCreds } from './lib/realtime.mjs';
import { carillonCli, describeRun } from './lib/cli.mjs';

const ctx = { secrets: [] };

before(async () => {
  ctx.dir = mkdtempSync(path.join(os.tmpdir(), 'carillon-logs-'));
  ctx.file = path.join(ctx.dir, 'carillon.log');
  // Started as root, carillon runs as CARILLON_USER once its port is bound: the directory of the
  // log file must let that user create the new file SIGHUP opens after a rotation.
  if (process.getuid?.() === 0) chmodSync(ctx.dir, 0o777);
  ctx.srv = await startTlsCarillon({
    logFile: ctx.file,
    env: { CARILLON_LOG_FORMAT: 'json', CARILLON_LOG_FILE: ctx.file, CARILLON_LOG_LEVEL: 'info' },
  });
  ctx.id = identity(ctx.srv);
  ctx.msg = messaging(ctx.srv);
  ctx.secrets.push(ctx.srv.rootKey.secretAccessKey, ctx.srv.masterKey);
});

after(async () => {
  if (ctx.app) await ctx.id.send(new DeleteAppInstanceCommand({ AppInstanceArn: ctx.app })).catch(() => {});
  ctx.id?.destroy();
  ctx.msg?.destroy();
  const alive = ctx.srv.alive();
  const info = await ctx.srv.stop();
  rmSync(ctx.dir, { recursive: true, force: true });
  assert.ok(alive, `carillon died during the tests: ${JSON.stringify(info)}`);
  assert.ok(info.code === 0 || info.signal === 'SIGTERM', `carillon did not exit cleanly: ${JSON.stringify(info)}`);
});

function readLines(file = ctx.file) {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  assert.ok(text === '' || text.endsWith('\n'), 'the file ends with a complete line');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l);
      } catch (e) {
        throw new Error(`line ${i + 1} of ${file} is not JSON: ${l.slice(0, 200)}`);
      }
    });
}

/** Wait until predicate(lines) returns something truthy; return it. */
async function waitForLines(predicate, what, file = ctx.file, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = predicate(readLines(file));
    if (found) return found;
    if (Date.now() > deadline)
      assert.fail(`no ${what} in ${file} within ${ms} ms:\n${existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-15).join('\n') : '(no such file)'}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const accessLine = (rid) => (lines) => lines.find((l) => l.event === 'access' && l.request_id === rid);

test('every line is one JSON object with time, level and pid; the access line of each request matches it', async () => {
  const t0 = Date.now();
  const app = await ctx.id.send(new CreateAppInstanceCommand({ Name: `logs-${randomUUID()}`, ClientRequestToken: randomUUID() }));
  ctx.app = app.AppInstanceArn;
  const created = await waitForLines(accessLine(app.$metadata.requestId), 'access line of CreateAppInstance');
  assert.deepEqual(
    { ...created, time: undefined, latency_ms: undefined, bytes_in: undefined, bytes_out: undefined },
    {
      time: undefined,
      level: 'info',
      pid: ctx.srv.proc.pid,
      event: 'access',
      request_id: app.$metadata.requestId,
      method: 'POST',
      service: 'identity',
      operation: 'CreateAppInstance',
      status: app.$metadata.httpStatusCode,
      error: null,
      latency_ms: undefined,
      access_key_id: ctx.srv.rootKey.accessKeyId,
      bearer: null,
      bytes_in: undefined,
      bytes_out: undefined,
      peer: '127.0.0.1',
    },
  );
  assert.match(created.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Math.abs(Date.parse(created.time) - Date.now()) < 60000);
  assert.ok(created.latency_ms >= 0 && created.latency_ms <= Date.now() - t0, `latency ${created.latency_ms}`);
  assert.ok(created.bytes_in > 20 && created.bytes_out >= JSON.stringify({ AppInstanceArn: ctx.app }).length);

  // an error: its status and error code
  const missing = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: `${ctx.app}/user/nobody` })).catch((e) => e);
  assert.equal(missing.name, 'NotFoundException');
  const err = await waitForLines(accessLine(missing.$metadata.requestId), 'access line of the error');
  assert.equal(err.status, 404);
  assert.equal(err.error, 'NotFoundException');
  assert.equal(err.operation, 'DescribeAppInstanceUser');
  assert.equal(err.method, 'GET');
  assert.equal(err.bytes_in, 0);

  // a user's own call: its access key id (not the token) and the bearer
  const alice = await ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ctx.app, AppInstanceUserId: 'alice', Name: 'alice', ClientRequestToken: randomUUID() }));
  const creds = await userCreds(ctx.srv, alice.AppInstanceUserArn);
  ctx.secrets.push(creds.secretAccessKey, creds.sessionToken);
  const asAlice = messaging(ctx.srv, creds);
  const ch = await asAlice.send(new CreateChannelCommand({ AppInstanceArn: ctx.app, Name: 'logs', ChimeBearer: alice.AppInstanceUserArn, ClientRequestToken: randomUUID() }));
  asAlice.destroy();
  const own = await waitForLines(accessLine(ch.$metadata.requestId), 'access line of CreateChannel');
  assert.equal(own.service, 'messaging');
  assert.equal(own.operation, 'CreateChannel');
  assert.equal(own.status, ch.$metadata.httpStatusCode);
  assert.equal(own.access_key_id, creds.accessKeyId);
  assert.equal(own.bearer, alice.AppInstanceUserArn);
  ctx.channel = ch.ChannelArn;
  ctx.alice = alice.AppInstanceUserArn;

  // every line so far parses, and each has the common members
  for (const l of readLines()) {
    assert.equal(typeof l.time, 'string');
    assert.ok(['error', 'warn', 'notice', 'info', 'debug'].includes(l.level), JSON.stringify(l));
    assert.equal(l.pid, ctx.srv.proc.pid);
    assert.ok(typeof l.msg === 'string' || typeof l.event === 'string', JSON.stringify(l));
  }
  // one access line per request: the request ids are unique
  const ids = readLines().filter((l) => l.event === 'access').map((l) => l.request_id);
  assert.equal(new Set(ids).size, ids.length);
});

test('a websocket session has an open and a close line; no secret or message content is ever logged', async () => {
  const bob = await ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ctx.app, AppInstanceUserId: 'bob', Name: 'bob', ClientRequestToken: randomUUID() }));
  await ctx.msg.send(new CreateChannelMembershipCommand({ ChannelArn: ctx.channel, MemberArn: bob.AppInstanceUserArn, Type: 'DEFAULT', ChimeBearer: ctx.alice }));
  const creds = await userCreds(ctx.srv, bob.AppInstanceUserArn);
  ctx.secrets.push(creds.secretAccessKey, creds.sessionToken);
  const sessionId = randomUUID();
  const t0 = Date.now();
  const rec = session(ctx.srv, bob.AppInstanceUserArn, creds, { sessionId, label: 'bob' });
  await rec.ready(20000);
  const content = `secret content ${randomUUID()}`;
  ctx.secrets.push(content);
  await ctx.msg.send(new SendChannelMessageCommand({ ChannelArn: ctx.channel, Content: content, Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: ctx.alice, ClientRequestToken: randomUUID() }));
  await rec.waitFor((r) => r.messages.some((m) => m.payload?.Content === content), 15000, 'the message');
  await rec.stop();
  const close = await waitForLines((lines) => lines.find((l) => l.event === 'session_close' && l.session_id === sessionId), 'session_close line');
  const open = readLines().find((l) => l.event === 'session_open' && l.session_id === sessionId);
  assert.ok(open, 'a session_open line with the client session id');
  assert.equal(open.user, bob.AppInstanceUserArn);
  assert.equal(open.level, 'info');
  assert.equal(close.user, bob.AppInstanceUserArn);
  assert.ok(close.duration_s >= 0 && close.duration_s * 1000 <= Date.now() - t0 + 50, `duration ${close.duration_s}`);
  assert.equal(typeof close.close_code, 'number');
  const stop = rec.stops[rec.stops.length - 1];
  assert.equal(close.close_code, stop?.code === 1000 ? 1000 : 1005, `the code the client closed with (${stop?.code})`);
  assert.equal(close.close_reason, 'closed by the client');
  assert.equal(close.frames_sent, rec.messages.filter((m) => m.type !== 'SESSION_ESTABLISHED').length + 1);

  // a refused session: its close line says why
  const badId = randomUUID();
  const bad = await rawSession(new URL(ctx.srv.endpoint).host, bob.AppInstanceUserArn, { ...creds, secretAccessKey: 'x'.repeat(40) }, { sessionId: badId, label: 'bad' });
  assert.equal((await bad.closed).code, 4401);
  const refused = await waitForLines((lines) => lines.find((l) => l.event === 'session_close' && l.session_id === badId), '4401 close line');
  assert.equal(refused.close_code, 4401);
  assert.equal(refused.close_reason, 'Unauthorized');
  assert.equal(refused.user, null, 'no user: it was never verified');
  assert.equal(refused.frames_sent, 0);

  // no secret anywhere: the log file, stdout and stderr
  const everything = readFileSync(ctx.file, 'utf8') + ctx.srv.log();
  for (const s of ctx.secrets) assert.ok(!everything.includes(s), `a secret (${s.slice(0, 6)}...) is in the log`);
  for (const marker of ['Signature=', 'X-Amz-Signature', 'X-Amz-Security-Token', 'Authorization']) assert.ok(!everything.includes(marker), `${marker} is in the log`);
});

test('SIGHUP reopens the log file: after a rename, new lines go to a new file', async () => {
  const rotated = ctx.file + '.1';
  renameSync(ctx.file, rotated);
  const before = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: ctx.app }));
  await waitForLines(accessLine(before.$metadata.requestId), 'line written before SIGHUP (still the old file)', rotated);
  assert.ok(!existsSync(ctx.file), 'nothing recreated the file before SIGHUP');
  ctx.srv.proc.kill('SIGHUP');
  await waitForLines((lines) => lines.find((l) => l.msg === 'SIGHUP: log file reopened'), 'reopen notice', ctx.file);
  const later = await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: ctx.app }));
  await waitForLines(accessLine(later.$metadata.requestId), 'access line after SIGHUP', ctx.file);
  assert.ok(!readLines(rotated).some((l) => l.request_id === later.$metadata.requestId), 'the rotated file has no new line');
  assert.ok(ctx.srv.alive(), 'SIGHUP does not stop the server');
});

test('a log setting that cannot be honoured refuses to start', async () => {
  for (const [env, why] of [
    [{ CARILLON_LOG_FORMAT: 'xml' }, /CARILLON_LOG_FORMAT must be text or json, not 'xml'/],
    [{ CARILLON_LOG_LEVEL: 'verbose' }, /CARILLON_LOG_LEVEL must be error, warn, notice, info or debug/],
    [{ CARILLON_LOG_FILE: path.join(ctx.dir, 'no', 'such', 'dir', 'x.log') }, /cannot open the log file .*x\.log/],
  ]) {
    const r = await carillonCli(ctx.srv, ['serve'], { env, timeoutMs: 30000 });
    assert.equal(r.code, 2, describeRun(r));
    assert.match(r.stderr, why, describeRun(r));
  }
});
