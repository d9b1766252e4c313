// HTTP/2 and browsers. Carillon's TLS offers only http/1.1 in ALPN and declines cleartext h2c
// upgrades: Debian's libwebsockets 4.1 drops, when it decodes an HTTP/2 request, every header it
// has no token for — x-amz-date, x-amz-security-token, x-amz-content-sha256, x-amz-chime-bearer —
// so every SigV4-signed call over h2 failed with 401 (docs/web-chat.md). These tests pin what
// clients that prefer HTTP/2 (browsers, curl --http2) get: every REST path of both services
// answered correctly over HTTP/1.1, errors included, and an h2-only client refused at once.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import {
  ChimeSDKIdentityClient,
  CreateAppInstanceCommand,
  CreateAppInstanceUserCommand,
  DescribeAppInstanceCommand,
  DescribeAppInstanceUserCommand,
  ListAppInstanceUsersCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import {
  ChimeSDKMessagingClient,
  CreateChannelCommand,
  CreateChannelMembershipCommand,
  DeleteChannelCommand,
  DescribeChannelCommand,
  GetMessagingSessionEndpointCommand,
  ListChannelMessagesCommand,
  SendChannelMessageCommand,
  UpdateChannelMessageCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { startCarillon } from './lib/server.mjs';
import { startTlsCarillon, testCert, userCreds } from './lib/realtime.mjs';

let tlsSrv;
let plainSrv;

before(async () => {
  tlsSrv = await startTlsCarillon();
  plainSrv = await startCarillon();
});

after(async () => {
  for (const s of [tlsSrv, plainSrv]) if (s) await s.stop();
});

/** An https agent that offers h2 first, as browsers do, and records what each connection got. */
class BrowserLikeAgent extends https.Agent {
  constructor() {
    super({ ca: testCert().ca, keepAlive: true, ALPNProtocols: ['h2', 'http/1.1'] });
    this.negotiated = [];
  }
  createConnection(options, cb) {
    const socket = super.createConnection(options, cb);
    socket.once('secureConnect', () => this.negotiated.push(socket.alpnProtocol));
    return socket;
  }
}

function clients(srv, creds, agent) {
  const cfg = {
    endpoint: srv.endpoint,
    region: 'us-east-1',
    credentials: creds,
    maxAttempts: 1,
    requestHandler: { httpsAgent: agent },
  };
  return { id: new ChimeSDKIdentityClient(cfg), msg: new ChimeSDKMessagingClient(cfg) };
}

async function rejects(promise, name, status) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.name, name, `${e.name}: ${e.message}`);
    assert.equal(e.$metadata?.httpStatusCode, status, e.name);
    return e;
  }
  assert.fail(`expected ${name}`);
}

test('ALPN: a client offering h2 and http/1.1 gets http/1.1; an h2-only client is refused at once, not left hanging', async () => {
  const ca = testCert().ca;
  const port = tlsSrv.port;
  const alpn = (protocols) =>
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca, ALPNProtocols: protocols }, () => {
        resolve(s.alpnProtocol);
        s.end();
      });
      s.on('error', reject);
    });
  assert.equal(await alpn(['h2', 'http/1.1']), 'http/1.1');
  assert.equal(await alpn(['h2']), false, 'h2 is never selected');

  const started = Date.now();
  const err = await new Promise((resolve) => {
    const c = http2.connect(tlsSrv.endpoint, { ca });
    c.on('error', (e) => {
      c.destroy();
      resolve(e);
    });
    const req = c.request({ ':path': '/healthz' });
    req.on('error', () => {});
    req.on('response', () => resolve(new Error('an h2 response')));
    req.end();
  });
  assert.equal(err.code, 'ERR_HTTP2_ERROR', err.message);
  assert.ok(Date.now() - started < 5000, `refused after ${Date.now() - started} ms`);
});

test('both services over TLS with a client that prefers h2: representative operations and errors, root and user credentials', async () => {
  const agent = new BrowserLikeAgent();
  const root = clients(tlsSrv, tlsSrv.rootKey, agent);

  const { AppInstanceArn } = await root.id.send(new CreateAppInstanceCommand({ Name: 'h2-' + randomUUID(), ClientRequestToken: randomUUID() }));
  const users = [];
  for (const u of ['alice', 'bob']) {
    const out = await root.id.send(new CreateAppInstanceUserCommand({
      AppInstanceArn, AppInstanceUserId: `${u}-${randomUUID().slice(0, 8)}`, Name: u, ClientRequestToken: randomUUID(),
    }));
    users.push(out.AppInstanceUserArn);
  }
  const described = await root.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: users[0] }));
  assert.equal(described.AppInstanceUser.Name, 'alice');
  const listed = await root.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn }));
  assert.equal(listed.AppInstanceUsers.length, 2);
  await rejects(root.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: AppInstanceArn + 'x' })), 'NotFoundException', 404);

  // The messaging side with a user-scoped credential: x-amz-security-token and x-amz-chime-bearer signed.
  const alice = clients(tlsSrv, await userCreds(tlsSrv, users[0]), agent);
  const { ChannelArn } = await alice.msg.send(new CreateChannelCommand({
    AppInstanceArn, Name: 'h2 room', Mode: 'UNRESTRICTED', Privacy: 'PUBLIC', ClientRequestToken: randomUUID(), ChimeBearer: users[0],
  }));
  await alice.msg.send(new CreateChannelMembershipCommand({ ChannelArn, MemberArn: users[1], Type: 'DEFAULT', ChimeBearer: users[0] }));
  const sent = await alice.msg.send(new SendChannelMessageCommand({
    ChannelArn, Content: 'héllo over http/1.1 ✓', Type: 'STANDARD', Persistence: 'PERSISTENT', ClientRequestToken: randomUUID(), ChimeBearer: users[0],
  }));
  await alice.msg.send(new UpdateChannelMessageCommand({ ChannelArn, MessageId: sent.MessageId, Content: 'edited', Type: 'STANDARD', ChimeBearer: users[0] }));
  const msgs = await alice.msg.send(new ListChannelMessagesCommand({ ChannelArn, ChimeBearer: users[0] }));
  assert.deepEqual(msgs.ChannelMessages.map((m) => m.Content), ['edited']);
  const ep = await alice.msg.send(new GetMessagingSessionEndpointCommand({}));
  assert.equal(ep.Endpoint.Url, `127.0.0.1:${tlsSrv.port}`);
  await rejects(alice.msg.send(new SendChannelMessageCommand({
    ChannelArn, Content: 'x', Type: 'STANDARD', Persistence: 'PERSISTENT', ClientRequestToken: randomUUID(), ChimeBearer: users[1],
  })), 'ForbiddenException', 403);
  await rejects(alice.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn })), 'ForbiddenException', 403);
  await rejects(alice.msg.send(new DescribeChannelCommand({ ChannelArn: ChannelArn + 'nope', ChimeBearer: users[0] })), 'NotFoundException', 404);
  await alice.msg.send(new DeleteChannelCommand({ ChannelArn, ChimeBearer: users[0] }));

  assert.ok(agent.negotiated.length >= 1);
  assert.deepEqual([...new Set(agent.negotiated)], ['http/1.1'], `negotiated: ${agent.negotiated}`);
  agent.destroy();
});

function curl(args) {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '-m', '20', ...args, '-w', '\n%{http_code} %{http_version}'], (err, stdout, stderr) => {
      const lines = stdout.split('\n');
      const [code, version] = lines.pop().split(' ');
      resolve({ err, stderr, body: lines.join('\n'), code: Number(code), version });
    });
  });
}

test('curl --http2 --aws-sigv4: TLS (ALPN) and cleartext (h2c upgrade declined) are both served over HTTP/1.1', async (t) => {
  const have = await new Promise((r) => execFile('curl', ['--version'], (e) => r(!e)));
  if (!have) {
    t.skip('curl is not installed');
    return;
  }
  for (const srv of [tlsSrv, plainSrv]) {
    const base = srv.endpoint.startsWith('https') ? srv.endpoint : `http://127.0.0.1:${srv.port}`;
    const sig = ['--aws-sigv4', 'aws:amz:us-east-1:chime', '--user', `${srv.rootKey.accessKeyId}:${srv.rootKey.secretAccessKey}`];
    const tlsArgs = base.startsWith('https') ? ['--cacert', testCert().certFile] : [];
    for (const v of ['--http1.1', '--http2']) {
      const get = await curl([v, ...tlsArgs, ...sig, `${base}/app-instances`]);
      assert.equal(get.code, 200, `${base} ${v}: ${get.code} ${get.body} ${get.stderr}`);
      assert.equal(get.version, '1.1', `${base} ${v}`);
      assert.ok(Array.isArray(JSON.parse(get.body).AppInstances));
      const post = await curl([v, ...tlsArgs, ...sig, '-H', 'content-type: application/json',
        '--data', JSON.stringify({ Name: `curl ${v}`, ClientRequestToken: randomUUID() }), `${base}/app-instances`]);
      assert.equal(post.code, 201, `${base} ${v} POST: ${post.body}`);
      assert.match(JSON.parse(post.body).AppInstanceArn, /^arn:aws:chime:/);
      const bad = await curl([v, ...tlsArgs, '--aws-sigv4', 'aws:amz:us-east-1:chime', '--user', `${srv.rootKey.accessKeyId}:wrong`, `${base}/app-instances`]);
      assert.equal(bad.code, 401, `${base} ${v}`);
      assert.equal(JSON.parse(bad.body).Code, 'Unauthorized');
    }
  }
});
