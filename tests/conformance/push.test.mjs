// Push delivery of channel messages (docs/push.md): SendChannelMessage with a PushNotification
// reaches exactly the devices Chime would push to, over real HTTP/2 requests to an APNs stand-in
// (lib/apns-standin.mjs, TLS with the per-run test CA) that verifies each one: path, every header,
// the ES256 provider token's signature and claims (or the TLS client certificate), the body's keys.
// Set-up goes through the stock clients: Pinpoint (apps, channels), Chime SDK Identity (endpoints),
// Chime SDK Messaging (channels, preferences, messages). Also: VoIP pushes, dead tokens deactivate
// endpoints, transient failures are retried (Retry-After honoured) and delivered once, nothing is
// lost across a restart between commit and delivery, and two nodes never both deliver an intent.

import assert from 'node:assert/strict';
import { createServer as createNetServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateAppCommand,
  GetEndpointCommand,
  PinpointClient,
  UpdateApnsChannelCommand,
  UpdateApnsSandboxChannelCommand,
  UpdateApnsVoipChannelCommand,
  UpdateEndpointCommand,
} from '@aws-sdk/client-pinpoint';
import {
  DescribeAppInstanceUserEndpointCommand,
  RegisterAppInstanceUserEndpointCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import {
  BatchCreateChannelMembershipCommand,
  CreateChannelCommand,
  PutChannelMembershipPreferencesCommand,
  SendChannelMessageCommand,
} from '@aws-sdk/client-chime-sdk-messaging';

import { ApnsStandin } from './lib/apns-standin.mjs';
import { psql } from './lib/cli.mjs';
import { identityClient, messagingClient } from './lib/clients.mjs';
import { asOneBatch } from './lib/eventlog.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { ACCOUNT_ID, REGION, startCarillon } from './lib/server.mjs';
import { clientCert, ecKeyPair, testCa } from './lib/test-ca.mjs';
import { scrapeMetric, uniq } from './lib/util.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const BUNDLE = 'com.example.carillon.chat';
const TEAM = 'TEAM4PUSH1';
const KID = 'KEYPROD001';
const VOIP_KID = 'KEYVOIP001';
const LEASE_SECONDS = 4;

// Started at load time: node:test does not order the file's `before` hooks one after the other,
// and the server's environment must name the stand-ins' ports.
const prod = await new ApnsStandin().up();
const sandbox = await new ApnsStandin().up();
const env = {
  CARILLON_OUTBOUND_CA_FILE: testCa().caFile,
  CARILLON_APNS_URL: prod.url,
  CARILLON_APNS_SANDBOX_URL: sandbox.url,
  CARILLON_OUTBOX_POLL_MS: '200',
  CARILLON_OUTBOX_RETRY_BASE_MS: '300',
  CARILLON_OUTBOX_LEASE_SECONDS: String(LEASE_SECONDS),
  CARILLON_OUTBOUND_TIMEOUT_MS: '3000',
};
after(async () => {
  await prod.down();
  await sandbox.down();
});

// The first server also serves its metrics (the outbox families are checked after real pushes).
const metricsPort = await new Promise((resolve) => {
  const s = createNetServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});
const ctx = useCarillon({ env: { ...env, CARILLON_METRICS_LISTEN: `127.0.0.1:${metricsPort}` } });

/** The value of one metric series of the first server (0 when absent). */
const metric = (name, labels = {}) => scrapeMetric(metricsPort, name, labels);

function pinpoint(srv = ctx.srv) {
  return new PinpointClient({
    endpoint: srv.endpoint, region: srv.region,
    credentials: { accessKeyId: srv.rootKey.accessKeyId, secretAccessKey: srv.rootKey.secretAccessKey },
    maxAttempts: 1,
  });
}

const hexToken = () => randomBytes(32).toString('hex');

// ------------------------------------------------------------------------------------ set-up

let setup = null;

/** One Pinpoint app with APNs (token auth), APNs VoIP (another token key) and APNs sandbox
 * (certificate auth) channels, and one AppInstance; made once. */
async function world() {
  if (setup) return setup;
  const keys = ecKeyPair();
  const voipKeys = ecKeyPair();
  prod.addKey(KID, TEAM, keys.publicKeyPem);
  prod.addKey(VOIP_KID, TEAM, voipKeys.publicKeyPem);
  const pp = pinpoint();
  const app = await pp.send(new CreateAppCommand({ CreateApplicationRequest: { Name: uniq('push-app') } }));
  const appId = app.ApplicationResponse.Id;
  const appArn = app.ApplicationResponse.Arn;
  assert.equal(appArn, `arn:aws:mobiletargeting:${REGION}:${ACCOUNT_ID}:apps/${appId}`);
  await pp.send(new UpdateApnsChannelCommand({
    ApplicationId: appId,
    APNSChannelRequest: { BundleId: BUNDLE, TeamId: TEAM, TokenKeyId: KID, TokenKey: keys.privateKeyPem,
      DefaultAuthenticationMethod: 'TOKEN', Enabled: true },
  }));
  await pp.send(new UpdateApnsVoipChannelCommand({
    ApplicationId: appId,
    APNSVoipChannelRequest: { BundleId: BUNDLE, TeamId: TEAM, TokenKeyId: VOIP_KID, TokenKey: voipKeys.privateKeyPem,
      DefaultAuthenticationMethod: 'TOKEN', Enabled: true },
  }));
  const cc = clientCert(`Apple Development IOS Push Services: ${BUNDLE}`);
  await pp.send(new UpdateApnsSandboxChannelCommand({
    ApplicationId: appId,
    APNSSandboxChannelRequest: { BundleId: BUNDLE, Certificate: cc.cert, PrivateKey: cc.key,
      DefaultAuthenticationMethod: 'CERTIFICATE', Enabled: true },
  }));
  const ai = await ctx.newAppInstance();
  setup = { appId, appArn, ai };
  return setup;
}

/** A user with endpoints: [{type, token, voipToken, allow, resourceArn}] -> {arn, endpoints: [{id, token, ...}]}. */
async function userWith(endpoints, srv = ctx.srv) {
  const { ai, appArn } = await world();
  const u = await ctx.newUser(ai);
  const id = identityClient(srv);
  const out = [];
  for (const e of endpoints) {
    const token = e.token ?? hexToken();
    const attrs = { DeviceToken: token, ...(e.voipToken ? { VoipDeviceToken: e.voipToken } : {}) };
    const r = await id.send(new RegisterAppInstanceUserEndpointCommand({
      AppInstanceUserArn: u.arn, Type: e.type ?? 'APNS', ResourceArn: e.resourceArn ?? appArn,
      EndpointAttributes: attrs, AllowMessages: e.allow ?? 'ALL', ClientRequestToken: uniq('crt'),
    }));
    out.push({ ...e, id: r.EndpointId, token });
  }
  id.destroy();
  return { ...u, endpoints: out };
}

async function channelOf(owner, members) {
  const { ai } = await world();
  const ch = await ctx.msg.send(new CreateChannelCommand({
    AppInstanceArn: ai, Name: uniq('push-chan'), ChimeBearer: owner.arn, Mode: 'UNRESTRICTED', Privacy: 'PRIVATE',
    ClientRequestToken: uniq('crt'),
  }));
  const others = members.filter((m) => m.arn !== owner.arn).map((m) => m.arn);
  for (let i = 0; i < others.length; i += 100) {
    await ctx.msg.send(new BatchCreateChannelMembershipCommand({
      ChannelArn: ch.ChannelArn, ChimeBearer: owner.arn, MemberArns: others.slice(i, i + 100), Type: 'DEFAULT',
    }));
  }
  return ch.ChannelArn;
}

async function prefs(channel, user, pushPrefs) {
  await ctx.msg.send(new PutChannelMembershipPreferencesCommand({
    ChannelArn: channel, MemberArn: user.arn, ChimeBearer: user.arn, Preferences: { PushNotifications: pushPrefs },
  }));
}

async function send(channel, sender, extra = {}, msg = ctx.msg) {
  const r = await msg.send(new SendChannelMessageCommand({
    ChannelArn: channel, ChimeBearer: sender.arn, Content: 'hello there', Type: 'STANDARD', Persistence: 'PERSISTENT',
    ClientRequestToken: uniq('crt'), ...extra,
  }));
  return r.MessageId;
}

/** Wait until `cond()` holds (polling), or fail with `what`. */
async function until(cond, what, ms = 20000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await sleep(50);
  }
}

function pushesFor(standin, messageId) {
  return standin.requests.filter((r) => r.json?.['pinpoint.jsonBody'] &&
    JSON.parse(r.json['pinpoint.jsonBody'])['chime.message_id'] === messageId);
}

/** Every detail of one delivered APNs request. */
function assertApnsRequest(rec, { token, channel, messageId, title, body, voip = false, cert = false, kid = KID }) {
  assert.deepEqual(rec.problems, [], `stand-in problems: ${rec.problems}`);
  assert.equal(rec.path, `/3/device/${token}`);
  const h = rec.headers;
  const expected = [':authority', ':method', ':path', ':scheme', 'accept', 'apns-expiration', 'apns-id', 'apns-priority',
    'apns-push-type', 'apns-topic', 'content-length', 'content-type', 'user-agent', ...(cert ? [] : ['authorization'])].sort();
  assert.deepEqual(Object.keys(h).sort(), expected, 'the header set');
  assert.equal(h[':method'], 'POST');
  assert.equal(h[':scheme'], 'https');
  assert.equal(h['apns-topic'], voip ? `${BUNDLE}.voip` : BUNDLE);
  assert.equal(h['apns-push-type'], voip ? 'voip' : 'alert');
  assert.equal(h['apns-priority'], '10');
  const ttl = Number(h['apns-expiration']) - Math.floor(rec.at / 1000);
  assert.ok(voip ? ttl > 0 && ttl <= 61 : ttl > 86000 && ttl <= 86401, `apns-expiration ${ttl} s ahead`);
  assert.equal(h['content-type'], 'application/json');
  assert.equal(Number(h['content-length']), Buffer.byteLength(rec.body));
  if (cert) {
    assert.equal(rec.clientCert, `Apple Development IOS Push Services: ${BUNDLE}`);
  } else {
    assert.deepEqual(rec.jwt.header, { alg: 'ES256', kid });
    assert.deepEqual(Object.keys(rec.jwt.claims).sort(), ['iat', 'iss']);
    assert.equal(rec.jwt.claims.iss, TEAM);
  }
  assert.deepEqual(Object.keys(rec.json).sort(), ['aps', 'pinpoint.campaign.campaign_id', 'pinpoint.jsonBody',
    'pinpoint.notification.body', 'pinpoint.notification.silentPush', 'pinpoint.notification.title', 'pinpoint.openApp']);
  assert.deepEqual(rec.json.aps, { alert: { title, body } });
  assert.equal(rec.json['pinpoint.openApp'], 'true');
  assert.equal(rec.json['pinpoint.notification.title'], title);
  assert.equal(rec.json['pinpoint.notification.body'], body);
  assert.equal(rec.json['pinpoint.campaign.campaign_id'], '_DIRECT');
  assert.equal(rec.json['pinpoint.notification.silentPush'], '0');
  assert.deepEqual(JSON.parse(rec.json['pinpoint.jsonBody']), { 'chime.message_id': messageId, 'chime.channel_arn': channel });
}

async function endpointState(user, endpoint) {
  const r = await ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: user.arn, EndpointId: endpoint.id }));
  return r.AppInstanceUserEndpoint.EndpointState;
}

// ------------------------------------------------------------------------------------ tests

test('a message with a PushNotification reaches exactly the devices Chime pushes to, each request verified', async () => {
  const { appArn } = await world();
  const missingApp = appArn.replace(/apps\/.*/, 'apps/00000000000000000000000000000000');
  const U = {};
  U.alice = await userWith([{}]);                                            // the sender, no preferences
  U.bob = await userWith([{}]);                                              // ALL
  U.carol = await userWith([{}]);                                            // NONE
  U.dave = await userWith([{}]);                                             // FILTERED, matching
  U.erin = await userWith([{}]);                                             // FILTERED, not matching
  U.frank = await userWith([{ allow: 'NONE' }]);                             // AllowMessages NONE
  U.grace = await userWith([{}]);                                            // anything-but, matching
  U.heidi = await userWith([{}]);                                            // $or, one branch matching
  U.ivan = await userWith([{}]);                                             // anything-but, not matching
  U.judy = await userWith([{}, { type: 'APNS_SANDBOX' }]);                   // two devices, prod + sandbox
  U.kim = await userWith([{ resourceArn: missingApp }]);                     // INVALID_PINPOINT_ARN
  U.lena = await userWith([{}]);                                             // FILTERED, key ANDed, one fails
  const mallory = await userWith([{}]);                                      // not a member
  const members = Object.values(U);
  const channel = await channelOf(U.alice, members);
  await prefs(channel, U.bob, { AllowNotifications: 'ALL' });
  await prefs(channel, U.carol, { AllowNotifications: 'NONE' });
  await prefs(channel, U.dave, { AllowNotifications: 'FILTERED', FilterRule: JSON.stringify({ mention: ['dave'] }) });
  await prefs(channel, U.erin, { AllowNotifications: 'FILTERED', FilterRule: JSON.stringify({ mention: ['erin'] }) });
  await prefs(channel, U.grace, { AllowNotifications: 'FILTERED', FilterRule: JSON.stringify({ kind: [{ 'anything-but': ['bot'] }] }) });
  await prefs(channel, U.heidi, { AllowNotifications: 'FILTERED',
    FilterRule: JSON.stringify({ $or: [{ mention: ['heidi'] }, { kind: ['human'] }] }) });
  await prefs(channel, U.ivan, { AllowNotifications: 'FILTERED', FilterRule: JSON.stringify({ kind: [{ 'anything-but': 'human' }] }) });
  await prefs(channel, U.lena, { AllowNotifications: 'FILTERED', FilterRule: JSON.stringify({ kind: ['human'], mention: ['lena'] }) });

  // First a message without a PushNotification: no push at all (checked below, after the second
  // message's pushes have arrived, so the wait is not a guess).
  const silentId = await send(channel, U.alice, {
    MessageAttributes: { mention: { StringValues: ['dave'] }, kind: { StringValues: ['human'] } },
  });
  const title = 'Room 7';
  const body = 'alice: the build is green';
  const messageId = await send(channel, U.alice, {
    PushNotification: { Title: title, Body: body, Type: 'DEFAULT' },
    MessageAttributes: { mention: { StringValues: ['dave', 'someone'] }, kind: { StringValues: ['human'] } },
  });
  const receivers = { alice: 1, bob: 1, dave: 1, grace: 1, heidi: 1, judy: 2 };
  const expected = Object.entries(receivers).flatMap(([n]) => U[n].endpoints);
  const prodTokens = expected.filter((e) => (e.type ?? 'APNS') === 'APNS').map((e) => e.token);
  const sandboxTokens = expected.filter((e) => e.type === 'APNS_SANDBOX').map((e) => e.token);
  await until(() => prodTokens.every((t) => prod.delivered(t).length) && sandboxTokens.every((t) => sandbox.delivered(t).length),
    'the pushes of every expected device');
  await sleep(1500); // anything else would have been sent with them
  for (const t of prodTokens) {
    assert.equal(prod.to(t).length, 1, `one request for ${t}`);
    assertApnsRequest(prod.to(t)[0], { token: t, channel, messageId, title, body });
  }
  for (const t of sandboxTokens) {
    assert.equal(sandbox.to(t).length, 1, `one sandbox request for ${t}`);
    assertApnsRequest(sandbox.to(t)[0], { token: t, channel, messageId, title, body, cert: true });
  }
  for (const n of ['carol', 'erin', 'frank', 'ivan', 'kim', 'lena']) {
    for (const e of U[n].endpoints) {
      assert.equal(prod.to(e.token).length + sandbox.to(e.token).length, 0, `${n} must get no push`);
    }
  }
  assert.equal(prod.to(mallory.endpoints[0].token).length, 0, 'a non-member gets no push');
  assert.equal(pushesFor(prod, silentId).length + pushesFor(sandbox, silentId).length, 0, 'no PushNotification, no push');
  assert.equal(pushesFor(prod, messageId).length, prodTokens.length);
  // The prod requests shared one HTTP/2 connection, under one provider token.
  const recs = prodTokens.map((t) => prod.to(t)[0]);
  assert.equal(new Set(recs.map((r) => r.session)).size, 1, 'one connection to APNs');
  assert.equal(new Set(recs.map((r) => r.jwt.raw)).size, 1, 'one provider token, reused');
  // apns-id: one per (message, device), different across devices
  assert.equal(new Set(recs.map((r) => r.headers['apns-id'])).size, recs.length);
  assert.equal(prod.problems.length + sandbox.problems.length, 0, JSON.stringify([...prod.problems, ...sandbox.problems]));
});

test('a batch of sends written from columns enqueues the pushes of exactly the messages that ask for one', async () => {
  const alice = await userWith([]);
  const bob = await userWith([{}]);
  const channel = await channelOf(alice, [alice, bob]);
  const columnsBefore = await metric('carillon_write_batches_columns_total');
  // Twelve sends arrive while a second session holds the channel's row: the first waits for it,
  // the other eleven leave as one batch, written from columns (src/api/send_batch.c).
  const withPush = new Set([3, 7]);
  const extra = (i) => (withPush.has(i) ? { PushNotification: { Title: `t${i}`, Body: `b${i}`, Type: 'DEFAULT' } } : {});
  const results = await asOneBatch(channel, Array.from({ length: 12 }, (_, i) => () => send(channel, alice, extra(i))));
  const ids = results.map((r, i) => r.ok ?? assert.fail(`send ${i} failed: ${r.err?.name} ${r.err?.message}`));
  assert.ok((await metric('carillon_write_batches_columns_total')) > columnsBefore, 'no batch was written from columns');
  const token = bob.endpoints[0].token;
  await until(() => prod.delivered(token).length >= withPush.size, "bob's pushes");
  await sleep(1500); // anything else would have been sent with them
  for (const [i, id] of ids.entries()) {
    assert.equal(pushesFor(prod, id).length, withPush.has(i) ? 1 : 0, `message ${i}: pushes`);
  }
});

test('a VOIP PushNotification goes to the VoipDeviceToken through the APNs VoIP channel', async () => {
  const voipToken = hexToken();
  const caller = await userWith([{}]);
  const callee = await userWith([{ voipToken }]);
  const noVoip = await userWith([{}]); // no VoipDeviceToken: no VoIP push
  const channel = await channelOf(caller, [caller, callee, noVoip]);
  const messageId = await send(channel, caller, { PushNotification: { Title: 'Call', Body: 'caller is calling', Type: 'VOIP' } });
  await until(() => prod.delivered(voipToken).length === 1, 'the VoIP push');
  await sleep(1000);
  assert.equal(prod.to(voipToken).length, 1);
  assertApnsRequest(prod.to(voipToken)[0], {
    token: voipToken, channel, messageId, title: 'Call', body: 'caller is calling', voip: true, kid: VOIP_KID,
  });
  for (const u of [caller, callee, noVoip]) assert.equal(prod.to(u.endpoints[0].token).length, 0, 'no alert push for VOIP');
});

test('a dead token (410, 400 BadDeviceToken) makes the endpoint INACTIVE / INVALID_DEVICE_TOKEN; a new registration receives', async () => {
  const sender = await userWith([{}]);
  const gone = await userWith([{}]);
  const bad = await userWith([{}]);
  prod.script(gone.endpoints[0].token, [{ status: 410, reason: 'Unregistered' }]);
  prod.script(bad.endpoints[0].token, [{ status: 400, reason: 'BadDeviceToken' }]);
  const channel = await channelOf(sender, [sender, gone, bad]);
  assert.deepEqual(await endpointState(gone, gone.endpoints[0]), { Status: 'ACTIVE' });
  // The same device in Pinpoint's own endpoint registry (an app's other pushes use it).
  const { appId } = await world();
  const ppEndpoint = uniq('pp-ep');
  await pinpoint().send(new UpdateEndpointCommand({
    ApplicationId: appId, EndpointId: ppEndpoint,
    EndpointRequest: { ChannelType: 'APNS', Address: gone.endpoints[0].token, User: { UserId: gone.arn } },
  }));
  const ppStatus = async () => (await pinpoint().send(new GetEndpointCommand({ ApplicationId: appId, EndpointId: ppEndpoint })))
    .EndpointResponse.EndpointStatus;
  assert.equal(await ppStatus(), 'ACTIVE');
  await send(channel, sender, { PushNotification: { Title: 't', Body: 'b', Type: 'DEFAULT' } });
  const states = async () => [await endpointState(gone, gone.endpoints[0]), await endpointState(bad, bad.endpoints[0])];
  const deadline = Date.now() + 20000;
  let s;
  while (JSON.stringify(s = await states()) !== JSON.stringify(Array(2).fill({ Status: 'INACTIVE', StatusReason: 'INVALID_DEVICE_TOKEN' }))) {
    if (Date.now() > deadline) assert.fail(`endpoints not deactivated: ${JSON.stringify(s)}`);
    await sleep(100);
  }
  assert.equal(await ppStatus(), 'INACTIVE', "the Pinpoint endpoint with that address too");
  assert.equal(prod.to(gone.endpoints[0].token).length, 1, 'a 410 is not retried');
  assert.equal(prod.to(bad.endpoints[0].token).length, 1, 'a BadDeviceToken is not retried');

  // The next message skips the dead endpoints; a device registering a new token receives it.
  const fresh = hexToken();
  const id = identityClient(ctx.srv);
  const reg = await id.send(new RegisterAppInstanceUserEndpointCommand({
    AppInstanceUserArn: gone.arn, Type: 'APNS', ResourceArn: (await world()).appArn,
    EndpointAttributes: { DeviceToken: fresh }, AllowMessages: 'ALL', ClientRequestToken: uniq('crt'),
  }));
  id.destroy();
  assert.deepEqual(await endpointState(gone, { id: reg.EndpointId }), { Status: 'ACTIVE' });
  const second = await send(channel, sender, { PushNotification: { Title: 't2', Body: 'b2', Type: 'DEFAULT' } });
  await until(() => prod.delivered(fresh).length === 1, 'the push to the new token');
  await sleep(1000);
  assert.equal(pushesFor(prod, second).filter((r) => r.token === gone.endpoints[0].token || r.token === bad.endpoints[0].token).length, 0,
    'inactive endpoints get nothing');
  assertApnsRequest(prod.to(fresh)[0], { token: fresh, channel, messageId: second, title: 't2', body: 'b2' });
});

test('transient failures are retried: 503 then 200 delivers once with the same apns-id; 429 waits for Retry-After', async () => {
  const sender = await userWith([{}]);
  const flaky = await userWith([{}]);
  const throttled = await userWith([{}]);
  const ft = flaky.endpoints[0].token;
  const tt = throttled.endpoints[0].token;
  prod.script(ft, [{ status: 503, reason: 'ServiceUnavailable' }, { status: 200 }]);
  prod.script(tt, [{ status: 429, reason: 'TooManyRequests', retryAfter: '3' }, { status: 200 }]);
  const channel = await channelOf(sender, [sender, flaky, throttled]);
  const delivered0 = await metric('carillon_outbox_outcomes_total', { kind: 'push', outcome: 'delivered' });
  const retried0 = await metric('carillon_outbox_outcomes_total', { kind: 'push', outcome: 'retry' });
  const messageId = await send(channel, sender, { PushNotification: { Title: 'r', Body: 'retry me', Type: 'DEFAULT' } });
  await until(() => prod.delivered(ft).length === 1 && prod.delivered(tt).length === 1, 'both delivered after a retry');
  await sleep(1500);
  for (const t of [ft, tt]) {
    const reqs = prod.to(t);
    assert.equal(reqs.length, 2, `two attempts for ${t}`);
    assert.deepEqual(reqs.map((r) => r.status), [t === ft ? 503 : 429, 200]);
    assert.equal(reqs[0].headers['apns-id'], reqs[1].headers['apns-id'], 'a retry carries the same apns-id');
    assertApnsRequest(reqs[1], { token: t, channel, messageId, title: 'r', body: 'retry me' });
  }
  const flakyGap = prod.to(ft)[1].at - prod.to(ft)[0].at;
  const throttledGap = prod.to(tt)[1].at - prod.to(tt)[0].at;
  // backoff of a first retry: 150-300 ms (base 300 ms, jittered) plus the poll; Retry-After: 3 s
  assert.ok(throttledGap >= 2900, `the 429 was retried after ${throttledGap} ms, before its Retry-After`);
  assert.ok(flakyGap < 2900, `the 503 retry waited ${flakyGap} ms`);
  assert.equal(Number(await psql(`select count(*) from carillon.outbox where payload->>'message_id' = '${messageId}'`)), 0,
    'delivered rows leave the outbox');
  // The outbox metrics saw it: three pushes delivered (sender, flaky, throttled), two retries, and
  // nothing waiting.
  assert.equal(await metric('carillon_outbox_outcomes_total', { kind: 'push', outcome: 'delivered' }) - delivered0, 3, 'delivered count');
  assert.equal(await metric('carillon_outbox_outcomes_total', { kind: 'push', outcome: 'retry' }) - retried0, 2, 'retry count');
  assert.equal(await metric('carillon_outbox_depth', { kind: 'push' }), 0, 'outbox depth after delivery');
});

test('a targeted message pushes only to its sender and its target', async () => {
  const sender = await userWith([{}]);
  const target = await userWith([{}]);
  const other = await userWith([{}]);
  const channel = await channelOf(sender, [sender, target, other]);
  const messageId = await send(channel, sender, {
    Target: [{ MemberArn: target.arn }], PushNotification: { Title: 'psst', Body: 'just you', Type: 'DEFAULT' },
  });
  const st = sender.endpoints[0].token;
  const tt = target.endpoints[0].token;
  await until(() => prod.delivered(st).length === 1 && prod.delivered(tt).length === 1, 'the pushes to sender and target');
  await sleep(1000);
  assert.equal(prod.to(other.endpoints[0].token).length, 0, 'another member gets no push of a targeted message');
  assertApnsRequest(prod.to(tt)[0], { token: tt, channel, messageId, title: 'psst', body: 'just you' });
});

test('APNs 403 ExpiredProviderToken: the provider token is made again and the push retried', async () => {
  const sender = await userWith([{}]);
  const rcpt = await userWith([{}]);
  const t = rcpt.endpoints[0].token;
  prod.script(t, [{ status: 403, reason: 'ExpiredProviderToken' }, { status: 200 }]);
  const channel = await channelOf(sender, [sender, rcpt]);
  await send(channel, sender, { PushNotification: { Title: 'e', Body: 'expired', Type: 'DEFAULT' } });
  await until(() => prod.delivered(t).length === 1, 'delivered after a fresh token');
  const [first, second] = prod.to(t);
  assert.equal(first.status, 403);
  assert.notEqual(second.jwt.raw, first.jwt.raw, 'a new provider token after ExpiredProviderToken');
  assert.deepEqual(second.problems, []);
});

test('nothing is lost across a restart between commit and delivery', async () => {
  const sender = await userWith([{}]);
  const rcpt = await userWith([{}]);
  const token = rcpt.endpoints[0].token;
  const channel = await channelOf(sender, [sender, rcpt]);
  prod.stall = true; // APNs takes the requests and never answers
  const messageId = await send(channel, sender, { PushNotification: { Title: 'x', Body: 'survives', Type: 'DEFAULT' } });
  await until(() => prod.to(token).length === 1, 'the first attempt reaches the stand-in');
  const old = ctx.srv;
  await old.stop(); // the held request is cancelled: nothing was delivered
  assert.equal(old.exitInfo.code ?? 0, 0, 'clean stop');
  assert.equal(prod.delivered(token).length, 0);
  assert.equal(Number(await psql(`select count(*) from carillon.outbox where payload->>'message_id' = '${messageId}'`)), 2,
    'the intents survive the stop');
  prod.stall = false;
  prod.held.clear();
  ctx.srv = await startCarillon({ env, masterKey: old.masterKey, rootKey: old.rootKey });
  ctx.id = identityClient(ctx.srv);
  ctx.msg = messagingClient(ctx.srv);
  await until(() => prod.delivered(token).length === 1 && prod.delivered(sender.endpoints[0].token).length === 1,
    'delivered by the restarted server (after the lease)', 30000);
  await sleep(1000);
  assert.equal(prod.delivered(token).length, 1, 'delivered once');
  assertApnsRequest(prod.delivered(token)[0], { token, channel, messageId, title: 'x', body: 'survives' });
});

test('two nodes on one database deliver every intent exactly once', async () => {
  const second = await ctx.startAnother({ env, masterKey: ctx.srv.masterKey, rootKey: ctx.srv.rootKey });
  const users = [];
  for (let i = 0; i < 40; i++) users.push(await userWith([{}]));
  const channel = await channelOf(users[0], users);
  const msg2 = messagingClient(second);
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push(await send(channel, users[i], { PushNotification: { Title: `m${i}`, Body: 'b', Type: 'DEFAULT' } }, i % 2 ? msg2 : ctx.msg));
  msg2.destroy();
  const tokens = users.map((u) => u.endpoints[0].token);
  await until(() => ids.every((id) => pushesFor(prod, id).length >= tokens.length), 'every push of six messages', 60000);
  await sleep(2000);
  for (const id of ids) {
    const recs = pushesFor(prod, id);
    assert.equal(recs.length, tokens.length, `message ${id}: ${recs.length} requests for ${tokens.length} devices`);
    assert.deepEqual(recs.map((r) => r.token).sort(), [...tokens].sort());
    assert.ok(recs.every((r) => r.status === 200 && r.problems.length === 0));
  }
  ctx.extraServers.splice(ctx.extraServers.indexOf(second), 1);
  const info = await second.stop();
  assert.ok(info.code === 0 || info.signal === 'SIGTERM', `the second node's exit: ${JSON.stringify(info)}`);
});

test('an intent is dropped after CARILLON_OUTBOX_MAX_ATTEMPTS attempts, or when older than CARILLON_OUTBOX_MAX_AGE_SECONDS', async () => {
  // A server with small limits (the last test: the file's server stays this one).
  const old = ctx.srv;
  await old.stop();
  ctx.srv = await startCarillon({
    env: { ...env, CARILLON_OUTBOX_MAX_ATTEMPTS: '3', CARILLON_OUTBOX_MAX_AGE_SECONDS: '3' },
    masterKey: old.masterKey, rootKey: old.rootKey,
  });
  ctx.id = identityClient(ctx.srv);
  ctx.msg = messagingClient(ctx.srv);
  const sender = await userWith([{}]);
  const failing = await userWith([{}]);
  const late = await userWith([{}]);
  const ft = failing.endpoints[0].token;
  const lt = late.endpoints[0].token;
  prod.script(ft, [{ status: 503, reason: 'ServiceUnavailable' }]);                  // always
  prod.script(lt, [{ status: 503, reason: 'ServiceUnavailable', retryAfter: '5' }, { status: 200 }]);
  const channel = await channelOf(sender, [sender, failing, late]);
  const messageId = await send(channel, sender, { PushNotification: { Title: 'd', Body: 'dropped', Type: 'DEFAULT' } });
  const left = async (t) => Number(await psql(
    `select count(*) from carillon.outbox where payload->>'message_id' = '${messageId}' and payload->>'token' = '${t}'`));
  const deadline = Date.now() + 30000;
  while ((await left(ft)) + (await left(lt)) > 0) {
    if (Date.now() > deadline) assert.fail('the rows were not dropped');
    await sleep(200);
  }
  await sleep(1500);
  assert.deepEqual(prod.to(ft).map((r) => r.status), [503, 503, 503], 'three attempts, then dropped');
  // Retry-After put its next attempt past the age limit: dropped without a second request.
  assert.deepEqual(prod.to(lt).map((r) => r.status), [503], 'dropped when it came up too old');
  assert.equal(prod.delivered(sender.endpoints[0].token).length, 1, 'the healthy device got its push');
});

test("a commit's NOTIFY wakes the outbox: the push goes out without waiting for the poll", async () => {
  const old = ctx.srv;
  await old.stop();
  ctx.srv = await startCarillon({ env: { ...env, CARILLON_OUTBOX_POLL_MS: '600000' }, masterKey: old.masterKey, rootKey: old.rootKey });
  ctx.id = identityClient(ctx.srv);
  ctx.msg = messagingClient(ctx.srv);
  const sender = await userWith([{}]);
  const rcpt = await userWith([{}]);
  const channel = await channelOf(sender, [sender, rcpt]);
  await sleep(1000); // the start-up catch-up claim is over
  const t0 = Date.now();
  await send(channel, sender, { PushNotification: { Title: 'n', Body: 'notified', Type: 'DEFAULT' } });
  await until(() => prod.delivered(rcpt.endpoints[0].token).length === 1, 'the push, with a ten-minute poll', 15000);
  assert.ok(Date.now() - t0 < 15000);
});
