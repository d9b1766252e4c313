// A channel message's push to GCM (FCM) endpoints, end to end through the server: SendChannelMessage
// with PushNotification -> the outbox -> the 'push' handler -> carillon_fcm_send -> the FCM stand-in
// (lib/fcm-standin.mjs: HTTP/2 over TLS with the test CA, verifying the OAuth2 assertion, the bearer,
// the headers and the body). The APNs side of the same path is push.test.mjs.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateAppCommand, PinpointClient, UpdateGcmChannelCommand } from '@aws-sdk/client-pinpoint';
import { DescribeAppInstanceUserEndpointCommand, RegisterAppInstanceUserEndpointCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  BatchCreateChannelMembershipCommand,
  CreateChannelCommand,
  SendChannelMessageCommand,
} from '@aws-sdk/client-chime-sdk-messaging';

import { startFcm } from './lib/fcm-standin.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { testCa } from './lib/test-ca.mjs';
import { uniq } from './lib/util.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// Started at load time: the server's environment names the stand-in's port.
const fcm = await startFcm({ tokenDelayMs: 200 });
const ctx = useCarillon({
  env: {
    CARILLON_OUTBOUND_CA_FILE: testCa().caFile,
    CARILLON_FCM_URL: fcm.url,
    CARILLON_OUTBOX_POLL_MS: '200',
    CARILLON_OUTBOX_RETRY_BASE_MS: '300',
    CARILLON_OUTBOUND_TIMEOUT_MS: '3000',
  },
});
after(async () => {
  await fcm.stop();
});

let world = null;
async function setup() {
  if (world) return world;
  const pp = new PinpointClient({ endpoint: ctx.srv.endpoint, region: ctx.srv.region, credentials: ctx.srv.rootKey, maxAttempts: 1 });
  const app = (await pp.send(new CreateAppCommand({ CreateApplicationRequest: { Name: uniq('gcm-app') } }))).ApplicationResponse;
  const sa = fcm.account();
  await pp.send(new UpdateGcmChannelCommand({
    ApplicationId: app.Id, GCMChannelRequest: { ServiceJson: sa.text, DefaultAuthenticationMethod: 'TOKEN', Enabled: true },
  }));
  world = { app, sa, ai: await ctx.newAppInstance() };
  return world;
}

async function userWithGcm(token = uniq('fcm-tok')) {
  const { app, ai } = await setup();
  const u = await ctx.newUser(ai);
  const r = await ctx.id.send(new RegisterAppInstanceUserEndpointCommand({
    AppInstanceUserArn: u.arn, Type: 'GCM', ResourceArn: app.Arn, EndpointAttributes: { DeviceToken: token },
    AllowMessages: 'ALL', ClientRequestToken: uniq('crt'),
  }));
  return { ...u, token, endpointId: r.EndpointId };
}

async function channelOf(owner, members) {
  const { ai } = await setup();
  const ch = await ctx.msg.send(new CreateChannelCommand({
    AppInstanceArn: ai, Name: uniq('gcm-chan'), ChimeBearer: owner.arn, Mode: 'UNRESTRICTED', Privacy: 'PRIVATE',
    ClientRequestToken: uniq('crt'),
  }));
  const others = members.filter((m) => m.arn !== owner.arn).map((m) => m.arn);
  if (others.length) {
    await ctx.msg.send(new BatchCreateChannelMembershipCommand({ ChannelArn: ch.ChannelArn, ChimeBearer: owner.arn, MemberArns: others, Type: 'DEFAULT' }));
  }
  return ch.ChannelArn;
}

async function sendPush(channel, sender, push = { Title: 'Room', Body: 'Ann: hi', Type: 'DEFAULT' }) {
  const r = await ctx.msg.send(new SendChannelMessageCommand({
    ChannelArn: channel, ChimeBearer: sender.arn, Content: 'hi', Type: 'STANDARD', Persistence: 'PERSISTENT',
    ClientRequestToken: uniq('crt'), PushNotification: push,
  }));
  return r.MessageId;
}

async function until(cond, what, ms = 20000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await sleep(50);
  }
}

const forMessage = (id) => fcm.sends.filter((s) => s.status === 200 &&
  JSON.parse(s.body?.message?.data?.['pinpoint.jsonBody'] ?? '{}')['chime.message_id'] === id);

test('a channel message with PushNotification reaches every GCM member through FCM v1, with Chime\'s data keys, one OAuth token for all', async () => {
  fcm.reset();
  const users = [];
  for (let i = 0; i < 4; i++) users.push(await userWithGcm());
  const channel = await channelOf(users[0], users);
  const id = await sendPush(channel, users[0]);
  await until(() => forMessage(id).length === 4, 'four FCM pushes');
  await sleep(300);
  assert.equal(forMessage(id).length, 4, 'exactly one push per device');
  assert.deepEqual(fcm.problems, []);
  assert.deepEqual(forMessage(id).map((s) => s.deviceToken).sort(), users.map((u) => u.token).sort(), 'the sender included');
  assert.equal(fcm.tokenRequests.filter((t) => t.ok).length, 1, 'the four sends shared one token request');
  const s = forMessage(id)[0];
  assert.equal(s.httpVersion, '2.0');
  assert.equal(s.path, `/v1/projects/${fcm.projectId}/messages:send`);
  const m = s.body.message;
  assert.deepEqual(m.notification, { title: 'Room', body: 'Ann: hi' });
  const d = m.data;
  assert.equal(d['pinpoint.openApp'], 'true');
  assert.equal(d['pinpoint.notification.title'], 'Room');
  assert.equal(d['pinpoint.notification.body'], 'Ann: hi');
  assert.equal(d['pinpoint.campaign.campaign_id'], '_DIRECT');
  assert.equal(d['pinpoint.notification.silentPush'], '0');
  assert.deepEqual(JSON.parse(d['pinpoint.jsonBody']), { 'chime.message_id': id, 'chime.channel_arn': channel });
  assert.ok(d['carillon.message_key'], 'a stable message key');
  const keys = new Set(forMessage(id).map((x) => x.body.message.data['carillon.message_key']));
  assert.equal(keys.size, 4, 'one key per (message, device)');
});

test('FCM 503 then 200: the push is retried and delivered once, with the same message key', async () => {
  fcm.reset();
  const a = await userWithGcm();
  const channel = await channelOf(a, [a]);
  fcm.program(a.token, [{ status: 503, retryAfter: '1' }]);
  const id = await sendPush(channel, a);
  await until(() => forMessage(id).length === 1, 'delivered after the retry');
  const tries = fcm.sends.filter((s) => s.deviceToken === a.token);
  assert.deepEqual(tries.map((s) => s.status), [503, 200]);
  assert.equal(tries[0].body.message.data['carillon.message_key'], tries[1].body.message.data['carillon.message_key']);
});

test('FCM UNREGISTERED: the AppInstanceUserEndpoint becomes INACTIVE / INVALID_DEVICE_TOKEN and is not pushed to again', async () => {
  fcm.reset();
  const a = await userWithGcm();
  const channel = await channelOf(a, [a]);
  fcm.program(a.token, ['unregistered']);
  await sendPush(channel, a);
  let state;
  for (let i = 0; i < 200 && state?.Status !== 'INACTIVE'; i++) {
    const d = await ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: a.arn, EndpointId: a.endpointId }));
    state = d.AppInstanceUserEndpoint.EndpointState;
    if (state.Status !== 'INACTIVE') await sleep(100);
  }
  assert.deepEqual(state, { Status: 'INACTIVE', StatusReason: 'INVALID_DEVICE_TOKEN' });
  const n = fcm.sends.length;
  await sendPush(channel, a);
  await sleep(1000);
  assert.equal(fcm.sends.length, n, 'no push to a dead token');
});
