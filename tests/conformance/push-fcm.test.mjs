// The FCM HTTP v1 sender (src/push/fcm.c, carillon_fcm_send of include/carillon/push.h) against the
// FCM stand-in (lib/fcm-standin.mjs: HTTP/2 over TLS with the test CA, serving the OAuth2 token
// endpoint too).
//
// A small test-only C program drives the sender: push-driver (tests/unit/push_driver.c), built next
// to the server binary and found as dirname(CARILLON_BIN)/push-driver. It runs a libuv loop with the
// outbound module, makes the sends of a plan round by round (a round's sends at once; the next round
// when all have answered) and prints one JSON line per outcome. The push path through the server
// (SendChannelMessage, Pinpoint SendMessages) is tested in the push and pinpoint-send files.
// Under a sanitizer build the driver is sanitized too: any leak or memory error fails its exit.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, test } from 'node:test';

import { FCM_SCOPE, JWT_BEARER, startFcm } from './lib/fcm-standin.mjs';

function driverPath() {
  const bin = process.env.CARILLON_BIN;
  if (!bin) throw new Error('CARILLON_BIN is not set; see tests/conformance/README.md');
  const p = path.join(path.dirname(bin), 'push-driver');
  if (!existsSync(p)) throw new Error(`${p} is missing: it is built with the server (cmake --build)`);
  return p;
}

let fcm;

/** Run the driver; resolves {lines (sorted by round, i), summary, code, signal, stderr}. */
function runDriver(plan, env = {}) {
  const e = { ...process.env, CARILLON_OUTBOUND_CA_FILE: fcm.caFile, CARILLON_FCM_URL: fcm.url, ...env };
  return new Promise((resolve, reject) => {
    const p = spawn(driverPath(), [JSON.stringify(plan)], { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const kill = setTimeout(() => p.kill('SIGKILL'), 90_000);
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(kill);
      const all = out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const summary = all.find((l) => l.done);
      const lines = all.filter((l) => !l.done).sort((a, b) => a.round - b.round || a.i - b.i);
      resolve({ lines, summary, code, signal, stderr: err });
    });
  });
}

function assertCleanExit(r) {
  assert.equal(r.signal, null, `driver killed by ${r.signal}; stderr: ${r.stderr}`);
  assert.equal(r.code, 0, `driver exit ${r.code}; stderr: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /LeakSanitizer|AddressSanitizer|runtime error/, r.stderr);
  assert.ok(r.summary, 'no summary line');
}

let sa;          // the service account the stand-in accepts
let appSeq = 0;

function creds({ app = `app${++appSeq}`, version = 1, secret, settings = { ProjectId: fcm.projectId } } = {}) {
  return { app_id: app, channel_type: 'GCM', version, settings, secret: secret ?? { ServiceJson: sa.text } };
}

function send(token, msg = {}, c = creds()) {
  return { provider: 'fcm', creds: c, token, msg: { title: 'Hello', body: 'World', ...msg } };
}

before(async () => {
  fcm = await startFcm();
  sa = fcm.account();
});

after(async () => {
  await fcm?.stop();
});

beforeEach(() => {
  fcm.reset();
  fcm.tokenDelayMs = 0;
  fcm.expiresIn = 3599;
});

test('one send: an RS256 assertion verified by the token endpoint, then the exact message over HTTP/2', async () => {
  const c = creds();
  const data = {
    'pinpoint.openApp': 'true',
    'pinpoint.notification.title': 'Hello',
    'pinpoint.notification.body': 'World',
    'pinpoint.campaign.campaign_id': '_DIRECT',
    'pinpoint.notification.silentPush': '0',
    'pinpoint.jsonBody': JSON.stringify({ 'chime.message_id': 'm1', 'chime.channel_arn': 'arn:x' }),
  };
  const r = await runDriver({ rounds: [[send('dev-token-1', { data, dedupe_key: 'm1/ep1', ttl_seconds: 600 }, c)]] });
  assertCleanExit(r);
  assert.deepEqual(r.lines.map((l) => [l.outcome, l.status]), [['ok', 200]]);
  assert.deepEqual(fcm.problems, []);

  assert.equal(fcm.tokenRequests.length, 1);
  const t = fcm.tokenRequests[0];
  assert.equal(t.ok, true, t.why);
  assert.equal(t.form.grant_type, JWT_BEARER);
  assert.equal(t.claims.iss, sa.json.client_email);
  assert.equal(t.claims.scope, FCM_SCOPE);
  assert.equal(t.claims.aud, fcm.tokenUri);

  assert.equal(fcm.sends.length, 1);
  const s = fcm.sends[0];
  assert.equal(s.httpVersion, '2.0');
  assert.equal(s.path, `/v1/projects/${fcm.projectId}/messages:send`);
  assert.equal(s.headers.authorization, `Bearer ${t.token}`);
  assert.equal(s.headers['content-type'], 'application/json; charset=UTF-8');
  assert.deepEqual(Object.keys(s.headers).sort(),
    [':authority', ':method', ':path', ':scheme', 'accept', 'authorization', 'content-length', 'content-type', 'user-agent'], 'the header set');
  assert.equal(s.headers[':method'], 'POST');
  assert.equal(s.headers[':scheme'], 'https');
  assert.equal(Number(s.headers['content-length']), Buffer.byteLength(s.raw));
  assert.deepEqual(Object.keys(t.headers).sort(),
    [':authority', ':method', ':path', ':scheme', 'accept', 'content-length', 'content-type', 'user-agent'], 'the token request\'s header set');
  assert.equal(t.headers['content-type'], 'application/x-www-form-urlencoded');
  assert.equal(t.headers.accept, 'application/json');
  assert.equal(t.headers[':path'], '/token');
  assert.deepEqual(s.body, {
    message: {
      token: 'dev-token-1',
      data: { ...data, 'carillon.message_key': 'm1/ep1' },
      notification: { title: 'Hello', body: 'World' },
      android: { ttl: '600s', priority: 'high' },
    },
  });
});

test('a silent push has no notification; non-string data values travel as JSON text; the project id comes from the JSON without ProjectId', async () => {
  const c = creds({ settings: {} });
  const r = await runDriver({
    rounds: [[send('dev-silent', { silent: true, data: { n: 3, o: { a: 1 }, s: 'x', z: null } }, c)]],
  });
  assertCleanExit(r);
  assert.equal(r.lines[0].outcome, 'ok');
  assert.deepEqual(fcm.problems, []);
  assert.deepEqual(fcm.sends[0].body, {
    message: { token: 'dev-silent', data: { n: '3', o: '{"a":1}', s: 'x' }, android: { priority: 'high' } },
  });
});

test('concurrent sends wait on ONE token request; the next round reuses the cached token; a new channel version fetches a new one', async () => {
  fcm.tokenDelayMs = 300;   // every send of round 0 arrives while the token request is in flight
  const c1 = creds({ app: 'shared', version: 1 });
  const c2 = creds({ app: 'shared', version: 2 });
  const round0 = Array.from({ length: 20 }, (_, i) => send(`dev-${i}`, {}, c1));
  const round1 = Array.from({ length: 5 }, (_, i) => send(`dev-b${i}`, {}, c1));
  const round2 = [send('dev-v2', {}, c2)];
  const r = await runDriver({ rounds: [round0, round1, round2] });
  assertCleanExit(r);
  assert.equal(r.lines.length, 26);
  assert.ok(r.lines.every((l) => l.outcome === 'ok'), JSON.stringify(r.lines.filter((l) => l.outcome !== 'ok')));
  assert.deepEqual(fcm.problems, []);
  assert.equal(fcm.tokenRequests.length, 2, 'one token for version 1 (26 sends), one for version 2');
  const [t1, t2] = fcm.tokenRequests.map((t) => t.token);
  assert.notEqual(t1, t2);
  const bearers = fcm.sends.map((s) => `${s.deviceToken}:${s.bearer === t1 ? 't1' : s.bearer === t2 ? 't2' : '?'}`);
  assert.equal(bearers.filter((b) => b.endsWith(':t1')).length, 25, bearers.join(' '));
  assert.ok(bearers.includes('dev-v2:t2'));
  // The token requests and all 26 sends over ONE HTTP/2 connection (one origin here).
  assert.equal(fcm.sessions, 1);
});

test('answers map to outcomes: UNREGISTERED and an invalid token deactivate, 503/429 retry with Retry-After, 403 fails, 401 refreshes once', async () => {
  fcm.program('dead', ['unregistered']);
  fcm.program('malformed', ['invalid']);
  fcm.program('busy', ['unavailable']);
  fcm.program('throttled', ['throttled']);
  fcm.program('other-project', ['mismatch']);
  fcm.program('revoked', ['unauthorized']);
  fcm.program('revoked-twice', ['unauthorized', 'unauthorized']);
  const c = creds();
  const names = ['dead', 'malformed', 'busy', 'throttled', 'other-project'];
  const r = await runDriver({
    rounds: [names.map((n) => send(n, {}, c)), [send('revoked', {}, c)], [send('revoked-twice', {}, c)]],
  });
  assertCleanExit(r);
  const got = Object.fromEntries(r.lines.map((l) => [l.round === 0 ? names[l.i] : l.round === 1 ? 'revoked' : 'revoked-twice',
    [l.outcome, l.status, l.retry_after_ms, l.detail]]));
  assert.deepEqual(got, {
    dead: ['invalid_token', 404, 0, 'UNREGISTERED'],
    malformed: ['invalid_token', 400, 0, 'INVALID_ARGUMENT'],
    busy: ['retry', 503, 7000, 'UNAVAILABLE'],
    throttled: ['retry', 429, 3000, 'QUOTA_EXCEEDED'],
    'other-project': ['failed', 403, 0, 'SENDER_ID_MISMATCH'],
    revoked: ['ok', 200, 0, ''],
    'revoked-twice': ['failed', 401, 0, 'UNAUTHENTICATED'],
  });
  assert.deepEqual(fcm.problems, []);
  // 1 token at first, a new one after each 401 (revoked: 1; revoked-twice: 1, then no second retry).
  assert.equal(fcm.tokenRequests.length, 3);
  const revoked = fcm.sends.filter((s) => s.deviceToken === 'revoked');
  assert.equal(revoked.length, 2);
  assert.notEqual(revoked[0].bearer, revoked[1].bearer, 'the retry carries the new token');
  assert.equal(fcm.sends.filter((s) => s.deviceToken === 'revoked-twice').length, 2, 'one retry only');
});

test('a 503 then 200: the first send says retry, the same send again succeeds with the cached token', async () => {
  fcm.program('flaky', [{ status: 503 }]);
  const c = creds();
  const r = await runDriver({ rounds: [[send('flaky', { dedupe_key: 'k1' }, c)], [send('flaky', { dedupe_key: 'k1' }, c)]] });
  assertCleanExit(r);
  assert.deepEqual(r.lines.map((l) => [l.outcome, l.status, l.retry_after_ms]), [['retry', 503, 0], ['ok', 200, 0]]);
  assert.equal(fcm.tokenRequests.length, 1);
  const keys = fcm.sends.map((s) => s.body.message.data['carillon.message_key']);
  assert.deepEqual(keys, ['k1', 'k1'], 'the retry carries the same message key');
});

test('a token endpoint refusing the assertion fails the waiting sends; one answering 503 makes them retry', async () => {
  let c1;
  const stranger = { ...sa.json, client_email: 'nobody@elsewhere.iam.gserviceaccount.com' };
  const c = creds({ secret: { ServiceJson: JSON.stringify(stranger) } });
  const r = await runDriver({ rounds: [[send('a', {}, c), send('b', {}, c)]] });
  assertCleanExit(r);
  assert.deepEqual(r.lines.map((l) => [l.outcome, l.status, l.detail]), [
    ['failed', 400, 'token request: HTTP 400 invalid_grant'],
    ['failed', 400, 'token request: HTTP 400 invalid_grant'],
  ]);
  assert.equal(fcm.tokenRequests.length, 1);
  assert.equal(fcm.sends.length, 0);

  fcm.reset();
  fcm.tokenFailures.push({ status: 503, retryAfter: '5' });
  const r2 = await runDriver({ rounds: [[send('a', {}, c1 = creds())], [send('a', {}, c1)]] });
  assertCleanExit(r2);
  assert.deepEqual(r2.lines.map((l) => [l.outcome, l.status, l.retry_after_ms]), [['retry', 503, 5000], ['ok', 200, 0]],
    'a 503 from the token endpoint is transient and not cached: the next send asks again');
  assert.equal(fcm.tokenRequests.length, 2);

  fcm.reset();
  const down = { ...sa.json, token_uri: `${fcm.url}/token-down` };
  const r3 = await runDriver({ rounds: [[send('a', {}, creds({ secret: { ServiceJson: down } }))]] });
  assertCleanExit(r3);
  assert.deepEqual([r3.lines[0].outcome, r3.lines[0].status], ['failed', 404], 'a 404 from the token endpoint is not transient');
});

test('unusable credentials are refused at once, before any request: no key, an EC key, a non-http token_uri, a bad project', async () => {
  const { ecKeyPair } = await import('./lib/test-ca.mjs');
  const variants = [
    { ServiceJson: '{not json' },
    {},
    { ServiceJson: { ...sa.json, private_key: undefined } },
    { ServiceJson: { ...sa.json, private_key: ecKeyPair().privateKeyPem } },
    { ServiceJson: { ...sa.json, token_uri: 'file:///etc/passwd' } },
    { ServiceJson: { ...sa.json, client_email: undefined } },
  ];
  const plan = variants.map((secret) => send('x', {}, creds({ secret })));
  plan.push(send('x', {}, creds({ settings: { ProjectId: '../../evil' } })));
  plan.push(send('', {}, creds()));
  const r = await runDriver({ rounds: [plan] });
  assertCleanExit(r);
  assert.equal(r.lines.length, plan.length);
  assert.ok(r.lines.every((l) => l.refused === true), JSON.stringify(r.lines));
  assert.equal(fcm.tokenRequests.length + fcm.sends.length, 0);
});

test('a short-lived token is refreshed before it expires, not used until FCM refuses it', async () => {
  fcm.expiresIn = 2;   // used for half its life: a new one after 1 s
  const c = creds();
  fcm.sendDelayMs = 1200;
  const r = await runDriver({ rounds: [[send('a', {}, c)], [send('b', {}, c)]] });
  fcm.sendDelayMs = 0;
  assertCleanExit(r);
  assert.deepEqual(r.lines.map((l) => l.outcome), ['ok', 'ok']);
  assert.equal(fcm.tokenRequests.length, 2);
  assert.notEqual(fcm.sends[0].bearer, fcm.sends[1].bearer);
});

test('shutdown with sends waiting on the token request: each callback comes once (retry) and nothing leaks', async () => {
  fcm.tokenDelayMs = 5000;
  const c = creds();
  const r = await runDriver({ rounds: [[send('a', {}, c), send('b', {}, c), send('c', {}, c)]], shutdown_after_ms: 300 });
  assertCleanExit(r);
  assert.deepEqual(r.lines.map((l) => [l.i, l.outcome]), [[0, 'retry'], [1, 'retry'], [2, 'retry']]);
  assert.equal(r.summary.pending, 0);
});
