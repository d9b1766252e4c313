// GetMessagingSessionEndpoint and the AppInstance streaming configurations
// (Put/Get/DeleteMessagingStreamingConfigurations).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeleteAppInstanceCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  DeleteMessagingStreamingConfigurationsCommand,
  GetMessagingSessionEndpointCommand,
  GetMessagingStreamingConfigurationsCommand,
  PutMessagingStreamingConfigurationsCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { messagingClient, mintUserCredentials, rfc3986, signedFetch } from './lib/clients.mjs';
import { sqlJson } from './lib/events-flow.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { ACCOUNT_ID, REGION } from './lib/server.mjs';
import { assertRawError, assertRejects, missingAppInstanceArn, uniq } from './lib/util.mjs';

const PUBLIC_ENDPOINT = 'chat.example.test:8443';
const ctx = useCarillon({ env: { CARILLON_PUBLIC_ENDPOINT: PUBLIC_ENDPOINT } });

function plain(x) {
  return JSON.parse(JSON.stringify(x));
}

function stream(name = uniq('chime-messaging')) {
  return `arn:aws:kinesis:${REGION}:${ACCOUNT_ID}:stream/${name}`;
}

function put(appInstanceArn, confs, client = ctx.msg) {
  return client.send(new PutMessagingStreamingConfigurationsCommand({ AppInstanceArn: appInstanceArn, StreamingConfigurations: confs }));
}

function get(appInstanceArn, client = ctx.msg) {
  return client.send(new GetMessagingStreamingConfigurationsCommand({ AppInstanceArn: appInstanceArn }));
}

function del(appInstanceArn, client = ctx.msg) {
  return client.send(new DeleteMessagingStreamingConfigurationsCommand({ AppInstanceArn: appInstanceArn }));
}

// ---------------------------------------------------------------- session endpoint

test('GetMessagingSessionEndpoint answers the configured CARILLON_PUBLIC_ENDPOINT, exactly', async () => {
  const out = await ctx.msg.send(new GetMessagingSessionEndpointCommand({}));
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.deepEqual(plain(out.Endpoint), { Url: PUBLIC_ENDPOINT });
  const dual = await ctx.msg.send(new GetMessagingSessionEndpointCommand({ NetworkType: 'DUAL_STACK' }));
  assert.deepEqual(plain(dual.Endpoint), { Url: PUBLIC_ENDPOINT });
  const raw = await signedFetch(ctx.srv, { method: 'GET', path: '/endpoints/messaging-session', query: { 'network-type': 'IPV4_ONLY' } });
  assert.equal(raw.status, 200);
  assert.deepEqual(raw.json, { Endpoint: { Url: PUBLIC_ENDPOINT } }, 'a bare host:port, no scheme, no other keys');
  const bad = await signedFetch(ctx.srv, { method: 'GET', path: '/endpoints/messaging-session', query: { 'network-type': 'IPV6_ONLY' } });
  assertRawError(bad, 'BadRequestException', 'unknown NetworkType');
});

test('GetMessagingSessionEndpoint works with a user credential (a chat client calls it before connecting)', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const client = messagingClient(ctx.srv, await mintUserCredentials(ctx.srv, u.arn));
  try {
    const out = await client.send(new GetMessagingSessionEndpointCommand({}));
    assert.equal(out.$metadata.httpStatusCode, 200);
    assert.deepEqual(plain(out.Endpoint), { Url: PUBLIC_ENDPOINT });
  } finally {
    client.destroy();
  }
});

test('GetMessagingSessionEndpoint without CARILLON_PUBLIC_ENDPOINT answers the listen address', async () => {
  const other = await ctx.startAnother({ env: { CARILLON_PUBLIC_ENDPOINT: '' } });
  const client = messagingClient(other);
  try {
    const out = await client.send(new GetMessagingSessionEndpointCommand({}));
    assert.deepEqual(plain(out.Endpoint), { Url: `127.0.0.1:${other.port}` });
  } finally {
    client.destroy();
  }
});

// ---------------------------------------------------------------- streaming configurations

test('PutMessagingStreamingConfigurations stores and echoes; Get returns them; Put replaces the whole set', async () => {
  const ai = await ctx.newAppInstance();
  const confs = [
    { DataType: 'ChannelMessage', ResourceArn: stream() },
    { DataType: 'Channel', ResourceArn: stream() },
  ];
  const out = await put(ai, confs);
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.deepEqual(plain(out.StreamingConfigurations), confs);
  const g = await get(ai);
  assert.equal(g.$metadata.httpStatusCode, 200);
  assert.deepEqual(plain(g.StreamingConfigurations), confs);

  // both data types may share one stream
  const shared = stream();
  const both = [
    { DataType: 'Channel', ResourceArn: shared },
    { DataType: 'ChannelMessage', ResourceArn: shared },
  ];
  assert.deepEqual(plain((await put(ai, both)).StreamingConfigurations), both);
  assert.deepEqual(plain((await get(ai)).StreamingConfigurations), both);

  const one = [{ DataType: 'Channel', ResourceArn: stream('chime-messaging-only.channel_1') }];
  assert.deepEqual(plain((await put(ai, one)).StreamingConfigurations), one);
  assert.deepEqual(plain((await get(ai)).StreamingConfigurations), one, 'Put replaces, it does not merge');

  // other AppInstances are unaffected
  await assertRejects(get(await ctx.newAppInstance()), 'NotFoundException', 'an AppInstance without configurations');
});

test('PutMessagingStreamingConfigurations refuses bad input with BadRequest and keeps what was stored', async () => {
  const ai = await ctx.newAppInstance();
  const stored = [{ DataType: 'ChannelMessage', ResourceArn: stream() }];
  await put(ai, stored);
  const e = await assertRejects(
    put(ai, [
      { DataType: 'Channel', ResourceArn: stream() },
      { DataType: 'Channel', ResourceArn: stream() },
    ]),
    'BadRequestException',
    'DataType twice',
  );
  assert.match(e.message, /DataType Channel/);
  await assertRejects(put(ai, [{ DataType: 'Channel', ResourceArn: `arn:aws:sqs:${REGION}:${ACCOUNT_ID}:chime-messaging-q` }]), 'BadRequestException', 'not Kinesis');
  await assertRejects(put(ai, [{ DataType: 'Channel', ResourceArn: stream('my-stream') }]), 'BadRequestException', 'no chime-messaging- prefix');
  await assertRejects(put(ai, [{ DataType: 'Channel', ResourceArn: `arn:aws:kinesis:${REGION}:${ACCOUNT_ID}:stream/chime-messaging-` }]), 'BadRequestException', 'empty name after the prefix');
  await assertRejects(put(ai, [{ DataType: 'Channel', ResourceArn: 'not-an-arn' }]), 'BadRequestException', 'not an ARN (model)');
  await assertRejects(put(ai, [{ DataType: 'ChannelMembership', ResourceArn: stream() }]), 'BadRequestException', 'unknown DataType (model)');
  await assertRejects(put(ai, []), 'BadRequestException', 'empty list (model)');
  await assertRejects(
    put(ai, [
      { DataType: 'Channel', ResourceArn: stream() },
      { DataType: 'ChannelMessage', ResourceArn: stream() },
      { DataType: 'Channel', ResourceArn: stream() },
    ]),
    'BadRequestException',
    'three entries (model)',
  );
  assert.deepEqual(plain((await get(ai)).StreamingConfigurations), stored);
});

test('DeleteMessagingStreamingConfigurations: 204, then Get NotFound; deleting again is 204', async () => {
  const ai = await ctx.newAppInstance();
  await put(ai, [{ DataType: 'Channel', ResourceArn: stream() }]);
  const out = await del(ai);
  assert.equal(out.$metadata.httpStatusCode, 204);
  await assertRejects(get(ai), 'NotFoundException');
  const again = await del(ai);
  assert.equal(again.$metadata.httpStatusCode, 204);
});

test('streaming configurations of an unknown AppInstance: NotFound for Put, Get and Delete', async () => {
  const missing = missingAppInstanceArn();
  await assertRejects(put(missing, [{ DataType: 'Channel', ResourceArn: stream() }]), 'NotFoundException', 'Put');
  await assertRejects(get(missing), 'NotFoundException', 'Get');
  await assertRejects(del(missing), 'NotFoundException', 'Delete');
});

test('DeleteAppInstance removes its streaming configurations', async () => {
  const ai = await ctx.newAppInstance();
  await put(ai, [{ DataType: 'Channel', ResourceArn: stream() }]);
  const id = ai.split('/').pop();
  const count = () => sqlJson(`select count(*) from carillon.streaming_configurations where app_instance_id = :'id'`, { id });
  assert.equal(count(), 1);
  await ctx.id.send(new DeleteAppInstanceCommand({ AppInstanceArn: ai }));
  ctx.appInstances.delete(ai);
  assert.equal(count(), 0);
});

test('user credentials may not call the streaming-configuration operations (ForbiddenException)', async () => {
  const ai = await ctx.newAppInstance();
  const stored = [{ DataType: 'Channel', ResourceArn: stream() }];
  await put(ai, stored);
  const u = await ctx.newUser(ai);
  const client = messagingClient(ctx.srv, await mintUserCredentials(ctx.srv, u.arn));
  try {
    await assertRejects(put(ai, [{ DataType: 'ChannelMessage', ResourceArn: stream() }], client), 'ForbiddenException', 'Put');
    await assertRejects(get(ai, client), 'ForbiddenException', 'Get');
    await assertRejects(del(ai, client), 'ForbiddenException', 'Delete');
  } finally {
    client.destroy();
  }
  assert.deepEqual(plain((await get(ai)).StreamingConfigurations), stored, 'unchanged');
  // the raw route, percent-encoded ARN label, with the root key
  const raw = await signedFetch(ctx.srv, { method: 'GET', path: `/app-instances/${rfc3986(ai)}/streaming-configurations` });
  assert.equal(raw.status, 200);
  assert.deepEqual(raw.json, { StreamingConfigurations: stored });
});
