// Pinpoint's direct sends, SendMessages and SendUsersMessages (src/api/pinpoint/send.c, docs/push.md),
// through the stock @aws-sdk/client-pinpoint against the APNs and FCM stand-ins (HTTP/2 over TLS
// with the test CA): per-address and per-endpoint results with Pinpoint's DeliveryStatus and the
// provider's StatusCode, messages built from MessageConfiguration as the stand-ins verify them, dead
// tokens deactivating endpoints, and bad requests refused with Pinpoint's errors.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import {
  CreateAppCommand,
  GetEndpointCommand,
  PinpointClient,
  SendMessagesCommand,
  SendUsersMessagesCommand,
  UpdateApnsChannelCommand,
  UpdateApnsSandboxChannelCommand,
  UpdateEndpointCommand,
  UpdateGcmChannelCommand,
} from '@aws-sdk/client-pinpoint';
import { DescribeAppInstanceUserEndpointCommand, RegisterAppInstanceUserEndpointCommand } from '@aws-sdk/client-chime-sdk-identity';

import { startApnsStandin } from './lib/apns-standin.mjs';
import { startFcm } from './lib/fcm-standin.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { ACCOUNT_ID, REGION } from './lib/server.mjs';
import { ecKeyPair, testCa } from './lib/test-ca.mjs';
import { uniq } from './lib/util.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const OUTBOUND_TIMEOUT_MS = 3000;
// Started at load time: the server's environment names the stand-ins' ports, and node:test does not
// run this file's `before` hooks ahead of the fixture's.
const fcm = await startFcm();
const apns = await startApnsStandin();
const ctx = useCarillon({
  env: {
    CARILLON_OUTBOUND_TIMEOUT_MS: String(OUTBOUND_TIMEOUT_MS),
    CARILLON_OUTBOUND_CA_FILE: testCa().caFile,
    CARILLON_FCM_URL: fcm.url,
    CARILLON_APNS_URL: apns.url,
    CARILLON_APNS_SANDBOX_URL: apns.url,
  },
});
after(async () => {
  await fcm.stop();
  await apns.down();
});

function pinpoint() {
  return new PinpointClient({ endpoint: ctx.srv.endpoint, region: ctx.srv.region, credentials: ctx.srv.rootKey, maxAttempts: 1 });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BUNDLE = 'com.example.carillon';
const TEAM = 'TEAM123456';
const hexToken = () => Buffer.from(uniq('t').padEnd(32, 'x')).toString('hex').slice(0, 64);

/** An app with an enabled GCM channel (a service account the FCM stand-in trusts) and APNs + APNs
 * sandbox channels (an ES256 token key the APNs stand-in trusts). */
async function newApp({ gcm = true, apnsChannel = true } = {}) {
  const out = await pinpoint().send(new CreateAppCommand({ CreateApplicationRequest: { Name: uniq('send-app') } }));
  const app = out.ApplicationResponse;
  if (gcm) {
    const sa = fcm.account();
    await pinpoint().send(new UpdateGcmChannelCommand({
      ApplicationId: app.Id, GCMChannelRequest: { ServiceJson: sa.text, DefaultAuthenticationMethod: 'TOKEN', Enabled: true },
    }));
  }
  if (apnsChannel) {
    const kid = uniq('K').slice(0, 10).toUpperCase();
    const key = ecKeyPair();
    apns.addKey(kid, TEAM, key.publicKeyPem);
    const req = { TokenKey: key.privateKeyPem, TokenKeyId: kid, TeamId: TEAM, BundleId: BUNDLE, DefaultAuthenticationMethod: 'TOKEN', Enabled: true };
    await pinpoint().send(new UpdateApnsChannelCommand({ ApplicationId: app.Id, APNSChannelRequest: req }));
    await pinpoint().send(new UpdateApnsSandboxChannelCommand({ ApplicationId: app.Id, APNSSandboxChannelRequest: req }));
  }
  return app;
}

async function endpoint(appId, id, req) {
  await pinpoint().send(new UpdateEndpointCommand({ ApplicationId: appId, EndpointId: id, EndpointRequest: req }));
}

function send(appId, messageRequest) {
  return pinpoint().send(new SendMessagesCommand({ ApplicationId: appId, MessageRequest: messageRequest }));
}

async function rejects(promise, name, re) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.name, name, `${e.name}: ${e.message}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

test('SendMessages to an FCM and an APNs address: both delivered as the stand-ins verify, each answered SUCCESSFUL 200 with a MessageId', async () => {
  fcm.reset();
  const app = await newApp();
  const fcmTok = uniq('fcm-token');
  const apnsTok = hexToken();
  const out = await send(app.Id, {
    Addresses: {
      [fcmTok]: { ChannelType: 'GCM', TitleOverride: 'Hi Ann' },
      [apnsTok]: { ChannelType: 'APNS' },
    },
    MessageConfiguration: {
      GCMMessage: { Title: 'Hello', Body: 'From Carillon', Data: { room: 'r1' }, TimeToLive: 120 },
      APNSMessage: { Title: 'Hello iOS', Body: 'From Carillon', Data: { room: 'r1' } },
    },
  });
  assert.equal(out.$metadata.httpStatusCode, 200);
  const r = out.MessageResponse;
  assert.equal(r.ApplicationId, app.Id);
  assert.ok(r.RequestId);
  assert.deepEqual(Object.keys(r.Result).sort(), [apnsTok, fcmTok].sort());
  for (const [addr, res] of Object.entries(r.Result)) {
    assert.equal(res.DeliveryStatus, 'SUCCESSFUL', `${addr}: ${res.StatusMessage}`);
    assert.equal(res.StatusCode, 200);
    assert.match(res.MessageId, UUID);
  }
  assert.notEqual(r.Result[fcmTok].MessageId, r.Result[apnsTok].MessageId);
  assert.deepEqual(r.EndpointResult ?? {}, {});

  // FCM: the exact message, with Pinpoint's keys beside Data and the MessageId as the message key.
  assert.deepEqual(fcm.problems, []);
  const s = fcm.sends.find((x) => x.deviceToken === fcmTok);
  assert.ok(s, 'FCM got the message');
  assert.deepEqual(s.body.message, {
    token: fcmTok,
    notification: { title: 'Hi Ann', body: 'From Carillon' },
    data: {
      room: 'r1',
      'pinpoint.openApp': 'true',
      'pinpoint.notification.title': 'Hi Ann',
      'pinpoint.notification.body': 'From Carillon',
      'pinpoint.campaign.campaign_id': '_DIRECT',
      'pinpoint.notification.silentPush': '0',
      'pinpoint.jsonBody': '{"room":"r1"}',
      'carillon.message_key': r.Result[fcmTok].MessageId,
    },
    android: { ttl: '120s', priority: 'high' },
  });

  // APNs: token auth verified by the stand-in, the alert from APNSMessage.
  assert.deepEqual(apns.problems, []);
  const a = apns.delivered(apnsTok);
  assert.equal(a.length, 1);
  assert.equal(a[0].headers['apns-topic'], BUNDLE);
  assert.equal(a[0].headers['apns-push-type'], 'alert');
  assert.deepEqual(a[0].json.aps.alert, { title: 'Hello iOS', body: 'From Carillon' });
});

test('SendMessages to endpoints: each resolved to its address and channel; unknown, inactive, opted-out, duplicate and non-push targets answered without a send', async () => {
  fcm.reset();
  const app = await newApp();
  const tok = uniq('ep-token');
  const sandboxTok = hexToken();
  await endpoint(app.Id, 'ep-ok', { ChannelType: 'GCM', Address: tok });
  await endpoint(app.Id, 'ep-same', { ChannelType: 'GCM', Address: tok });
  await endpoint(app.Id, 'ep-sandbox', { ChannelType: 'APNS_SANDBOX', Address: sandboxTok });
  await endpoint(app.Id, 'ep-off', { ChannelType: 'GCM', Address: uniq('off'), EndpointStatus: 'INACTIVE' });
  await endpoint(app.Id, 'ep-optout', { ChannelType: 'GCM', Address: uniq('oo'), OptOut: 'ALL' });
  await endpoint(app.Id, 'ep-sms', { ChannelType: 'SMS', Address: '+15555550100' });
  const out = await send(app.Id, {
    Endpoints: { 'ep-ok': {}, 'ep-same': {}, 'ep-sandbox': { BodyOverride: 'just for you' }, 'ep-off': {}, 'ep-optout': {}, 'ep-sms': {}, 'ep-none': {} },
    Addresses: { 'voip-token': { ChannelType: 'APNS_VOIP' } },
    MessageConfiguration: { DefaultPushNotificationMessage: { Title: 'T', Body: 'B' } },
  });
  const er = out.MessageResponse.EndpointResult;
  const brief = Object.fromEntries(Object.entries(er).map(([k, v]) => [k, [v.DeliveryStatus, v.StatusCode]]));
  assert.deepEqual(brief, {
    'ep-ok': ['SUCCESSFUL', 200],
    'ep-same': ['DUPLICATE', 200],
    'ep-sandbox': ['SUCCESSFUL', 200],
    'ep-off': ['PERMANENT_FAILURE', 400],
    'ep-optout': ['OPT_OUT', 400],
    'ep-sms': ['PERMANENT_FAILURE', 400],
    'ep-none': ['PERMANENT_FAILURE', 404],
  });
  assert.equal(er['ep-ok'].Address, tok);
  assert.equal(er['ep-sandbox'].Address, sandboxTok);
  assert.match(er['ep-same'].StatusMessage, /ep-ok/);
  assert.match(er['ep-sms'].StatusMessage, /push notifications only/);
  const voip = out.MessageResponse.Result['voip-token'];
  assert.deepEqual([voip.DeliveryStatus, voip.StatusCode], ['PERMANENT_FAILURE', 400]);
  assert.match(voip.StatusMessage, /APNS_VOIP channel of this app is not set up/);

  // One FCM send for the two endpoints sharing a token; the sandbox endpoint's override went to APNs.
  assert.equal(fcm.sends.filter((x) => x.deviceToken === tok).length, 1);
  assert.equal(fcm.sends.length, 1, 'nothing sent for the inactive or opted-out endpoints');
  const a = apns.delivered(sandboxTok);
  assert.equal(a.length, 1);
  assert.deepEqual(a[0].json.aps.alert, { title: 'T', body: 'just for you' });
});

test('provider answers map to DeliveryStatus; dead tokens (FCM UNREGISTERED, APNs 410) deactivate the Pinpoint endpoints and the AppInstanceUserEndpoints holding them', async () => {
  fcm.reset();
  const app = await newApp();
  const dead = uniq('dead');
  const busy = uniq('busy');
  const slow = uniq('throttled');
  const deadApns = hexToken();
  fcm.program(dead, ['unregistered']);
  fcm.program(busy, ['unavailable']);
  fcm.program(slow, ['throttled']);
  apns.script(deadApns, [{ status: 410, reason: 'Unregistered' }]);
  await endpoint(app.Id, 'ep-dead', { ChannelType: 'GCM', Address: dead });
  await endpoint(app.Id, 'ep-dead-apns', { ChannelType: 'APNS', Address: deadApns });
  await endpoint(app.Id, 'ep-busy', { ChannelType: 'GCM', Address: busy });
  // A Chime AppInstanceUserEndpoint registered with the same dead FCM token.
  const ai = await ctx.newAppInstance();
  const user = await ctx.newUser(ai);
  const appArn = `arn:aws:mobiletargeting:${REGION}:${ACCOUNT_ID}:apps/${app.Id}`;
  const reg = await ctx.id.send(new RegisterAppInstanceUserEndpointCommand({
    AppInstanceUserArn: user.arn, Type: 'GCM', ResourceArn: appArn, EndpointAttributes: { DeviceToken: dead }, Name: 'phone',
  }));

  const out = await send(app.Id, {
    Endpoints: { 'ep-dead': {}, 'ep-dead-apns': {}, 'ep-busy': {} },
    Addresses: { [slow]: { ChannelType: 'GCM' } },
    MessageConfiguration: { DefaultPushNotificationMessage: { Title: 'T', Body: 'B' } },
  });
  const er = out.MessageResponse.EndpointResult;
  assert.deepEqual([er['ep-dead'].DeliveryStatus, er['ep-dead'].StatusCode], ['PERMANENT_FAILURE', 404]);
  assert.match(er['ep-dead'].StatusMessage, /UNREGISTERED/);
  assert.deepEqual([er['ep-dead-apns'].DeliveryStatus, er['ep-dead-apns'].StatusCode], ['PERMANENT_FAILURE', 410]);
  assert.deepEqual([er['ep-busy'].DeliveryStatus, er['ep-busy'].StatusCode], ['TEMPORARY_FAILURE', 503]);
  const th = out.MessageResponse.Result[slow];
  assert.deepEqual([th.DeliveryStatus, th.StatusCode], ['THROTTLED', 429]);

  const status = async (id) => (await pinpoint().send(new GetEndpointCommand({ ApplicationId: app.Id, EndpointId: id }))).EndpointResponse.EndpointStatus;
  assert.equal(await status('ep-dead'), 'INACTIVE');
  assert.equal(await status('ep-dead-apns'), 'INACTIVE');
  assert.equal(await status('ep-busy'), 'ACTIVE', 'a transient failure deactivates nothing');
  const chime = await ctx.id.send(new DescribeAppInstanceUserEndpointCommand({ AppInstanceUserArn: user.arn, EndpointId: reg.EndpointId }));
  assert.deepEqual(chime.AppInstanceUserEndpoint.EndpointState, { Status: 'INACTIVE', StatusReason: 'INVALID_DEVICE_TOKEN' });

  // Sending again: the inactive endpoint is not sent to.
  const before = fcm.sends.length;
  const again = await send(app.Id, { Endpoints: { 'ep-dead': {} }, MessageConfiguration: { GCMMessage: { Body: 'x' } } });
  assert.equal(again.MessageResponse.EndpointResult['ep-dead'].DeliveryStatus, 'PERMANENT_FAILURE');
  assert.equal(fcm.sends.length, before);
});

test('SendUsersMessages: every endpoint of each user, answered per user and endpoint; a user without endpoints gets an empty map', async () => {
  fcm.reset();
  const app = await newApp();
  const a1 = uniq('ann-phone');
  const a2 = hexToken();
  const b1 = uniq('bob-phone');
  await endpoint(app.Id, 'ann-1', { ChannelType: 'GCM', Address: a1, User: { UserId: 'ann' } });
  await endpoint(app.Id, 'ann-2', { ChannelType: 'APNS', Address: a2, User: { UserId: 'ann' } });
  await endpoint(app.Id, 'bob-1', { ChannelType: 'GCM', Address: b1, User: { UserId: 'bob' } });
  const out = await pinpoint().send(new SendUsersMessagesCommand({
    ApplicationId: app.Id,
    SendUsersMessageRequest: {
      Users: { ann: { TitleOverride: 'Ann!' }, carl: {} },
      MessageConfiguration: { DefaultPushNotificationMessage: { Title: 'Hi', Body: 'News', SilentPush: false } },
    },
  }));
  const r = out.SendUsersMessageResponse;
  assert.equal(r.ApplicationId, app.Id);
  assert.deepEqual(Object.keys(r.Result).sort(), ['ann', 'carl']);
  assert.deepEqual(r.Result.carl, {});
  assert.deepEqual(Object.keys(r.Result.ann).sort(), ['ann-1', 'ann-2']);
  assert.equal(r.Result.ann['ann-1'].DeliveryStatus, 'SUCCESSFUL');
  assert.equal(r.Result.ann['ann-1'].Address, a1);
  assert.equal(r.Result.ann['ann-2'].DeliveryStatus, 'SUCCESSFUL');
  assert.deepEqual(fcm.sends.map((x) => x.deviceToken), [a1], 'bob was not sent to');
  assert.deepEqual(fcm.sends[0].body.message.notification, { title: 'Ann!', body: 'News' });
  assert.deepEqual(apns.delivered(a2)[0].json.aps.alert, { title: 'Ann!', body: 'News' });
});

test('a stalled provider: the answer waits for it without blocking the server, then says TEMPORARY_FAILURE', async () => {
  const app = await newApp({ gcm: false });
  const tok = hexToken();
  apns.stall = true;
  try {
    const t0 = Date.now();
    const pending = send(app.Id, { Addresses: { [tok]: { ChannelType: 'APNS' } }, MessageConfiguration: { APNSMessage: { Body: 'b' } } });
    // Meanwhile the server answers other requests at once.
    await new Promise((r) => setTimeout(r, 300));
    const t1 = Date.now();
    await pinpoint().send(new GetEndpointCommand({ ApplicationId: app.Id, EndpointId: 'none' })).catch((e) => e);
    assert.ok(Date.now() - t1 < 2000, 'the loop is not blocked while the send waits');
    const out = await pending;
    const res = out.MessageResponse.Result[tok];
    assert.equal(res.DeliveryStatus, 'TEMPORARY_FAILURE', res.StatusMessage);
    const took = Date.now() - t0;
    assert.ok(took >= OUTBOUND_TIMEOUT_MS - 200, `answered after the outbound timeout (${took} ms)`);
    assert.ok(took < 2 * OUTBOUND_TIMEOUT_MS + 1000 + 5000, `bounded (${took} ms)`);
  } finally {
    apns.stall = false;
    apns.release();
  }
});

test('bad requests: no targets, too many, an address without ChannelType, templates, raw content, substitutions, no push message, an unknown app', async () => {
  const app = await newApp({ apnsChannel: false });
  const cfg = { GCMMessage: { Body: 'b' } };
  await rejects(send(app.Id, { MessageConfiguration: cfg }), 'BadRequestException', /1 to 100/);
  const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`t${i}`, { ChannelType: 'GCM' }]));
  await rejects(send(app.Id, { Addresses: many, MessageConfiguration: cfg }), 'BadRequestException', /1 to 100/);
  await rejects(send(app.Id, { Addresses: { t: {} }, MessageConfiguration: cfg }), 'BadRequestException', /ChannelType/);
  await rejects(send(app.Id, { Addresses: { t: { ChannelType: 'GCM' } }, MessageConfiguration: cfg, TemplateConfiguration: { PushTemplate: { Name: 'x' } } }),
    'BadRequestException', /TemplateConfiguration/);
  await rejects(send(app.Id, { Addresses: { t: { ChannelType: 'GCM' } }, MessageConfiguration: { GCMMessage: { RawContent: '{}' } } }),
    'BadRequestException', /RawContent/);
  await rejects(send(app.Id, { Addresses: { t: { ChannelType: 'GCM', Substitutions: { a: ['b'] } } }, MessageConfiguration: cfg }),
    'BadRequestException', /Substitutions/);
  await rejects(send(app.Id, { Addresses: { t: { ChannelType: 'SMS' } }, MessageConfiguration: { SMSMessage: { Body: 'b' } } }),
    'BadRequestException', /push notifications only/);
  await rejects(send('f'.repeat(32), { Addresses: { t: { ChannelType: 'GCM' } }, MessageConfiguration: cfg }), 'NotFoundException');
  await rejects(pinpoint().send(new SendUsersMessagesCommand({
    ApplicationId: app.Id, SendUsersMessageRequest: { Users: {}, MessageConfiguration: cfg },
  })), 'BadRequestException', /1 to 100/);
});
