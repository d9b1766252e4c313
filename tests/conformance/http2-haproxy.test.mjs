// HTTP/2 through the HAProxy of deploy/: the frontend of deploy/haproxy.cfg offers `h2,http/1.1`
// and speaks HTTP/1.1 to Carillon. These tests run that very file (lib/realtime.mjs haproxyConfig)
// in front of one plain node and check, over a connection whose ALPN is h2: both services'
// representative operations and errors with the SDK's own HTTP/2 handler (every signed header —
// host from :authority, x-amz-date, x-amz-security-token, x-amz-chime-bearer — reaching Carillon
// intact), a CORS preflight, a messaging session opened as an RFC 8441 websocket on the h2
// connection (what Firefox does when offered it; HAProxy turns it into an HTTP/1.1 upgrade to the
// node), and `curl --http2 --aws-sigv4`.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { NodeHttp2Handler } from '@smithy/node-http-handler';
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
import { freePort, startCarillon } from './lib/server.mjs';
import { presignConnectUrl, startHaproxy, testCert, userCreds } from './lib/realtime.mjs';

let node;
let lb;

before(async () => {
  const lbPort = await freePort();
  node = await startCarillon({ env: { CARILLON_PUBLIC_ENDPOINT: `127.0.0.1:${lbPort}` } });
  lb = await startHaproxy({ servers: [{ name: 'node1', port: node.port }], rootKey: node.rootKey, port: lbPort });
});

after(async () => {
  if (lb) await lb.stop();
  if (node) await node.stop();
});

/** SDK clients using NodeHttp2Handler against HAProxy; `negotiated` collects each TLS connection's ALPN. */
function h2Clients(creds, negotiated) {
  const { hostname, port } = new URL(lb.endpoint);
  const requestHandler = new NodeHttp2Handler({
    requestTimeout: 20000,
    nodeHttp2ConnectOptions: {
      createConnection: () => {
        const s = tls.connect({ host: hostname, port: Number(port), ca: testCert().ca, ALPNProtocols: ['h2', 'http/1.1'] });
        s.once('secureConnect', () => negotiated.push(s.alpnProtocol));
        return s;
      },
    },
  });
  const cfg = { endpoint: lb.endpoint, region: 'us-east-1', credentials: creds, maxAttempts: 1, requestHandler };
  return { id: new ChimeSDKIdentityClient(cfg), msg: new ChimeSDKMessagingClient(cfg), handler: requestHandler };
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

test('HAProxy negotiates h2; both services over it with the SDK\'s NodeHttp2Handler: operations and errors, root and user credentials', async () => {
  const negotiated = [];
  const root = h2Clients(node.rootKey, negotiated);

  const { AppInstanceArn } = await root.id.send(new CreateAppInstanceCommand({ Name: 'h2-lb-' + randomUUID(), ClientRequestToken: randomUUID() }));
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

  // User-scoped credentials: x-amz-security-token and x-amz-chime-bearer are signed and must arrive.
  const alice = h2Clients(await userCreds(node, users[0]), negotiated);
  const { ChannelArn } = await alice.msg.send(new CreateChannelCommand({
    AppInstanceArn, Name: 'h2 room', Mode: 'UNRESTRICTED', Privacy: 'PUBLIC', ClientRequestToken: randomUUID(), ChimeBearer: users[0],
  }));
  await alice.msg.send(new CreateChannelMembershipCommand({ ChannelArn, MemberArn: users[1], Type: 'DEFAULT', ChimeBearer: users[0] }));
  const sent = await alice.msg.send(new SendChannelMessageCommand({
    ChannelArn, Content: 'héllo over h2 ✓', Type: 'STANDARD', Persistence: 'PERSISTENT', ClientRequestToken: randomUUID(), ChimeBearer: users[0],
  }));
  await alice.msg.send(new UpdateChannelMessageCommand({ ChannelArn, MessageId: sent.MessageId, Content: 'edited ✓', Type: 'STANDARD', ChimeBearer: users[0] }));
  const msgs = await alice.msg.send(new ListChannelMessagesCommand({ ChannelArn, ChimeBearer: users[0] }));
  assert.deepEqual(msgs.ChannelMessages.map((m) => m.Content), ['edited ✓']);
  const ep = await alice.msg.send(new GetMessagingSessionEndpointCommand({}));
  assert.equal(ep.Endpoint.Url, `127.0.0.1:${lb.port}`);
  await rejects(alice.msg.send(new SendChannelMessageCommand({
    ChannelArn, Content: 'x', Type: 'STANDARD', Persistence: 'PERSISTENT', ClientRequestToken: randomUUID(), ChimeBearer: users[1],
  })), 'ForbiddenException', 403);
  await rejects(alice.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn })), 'ForbiddenException', 403);
  await rejects(alice.msg.send(new DescribeChannelCommand({ ChannelArn: ChannelArn + 'nope', ChimeBearer: users[0] })), 'NotFoundException', 404);
  await alice.msg.send(new DeleteChannelCommand({ ChannelArn, ChimeBearer: users[0] }));

  // A wrong secret is still refused (the signature is checked, not waved through).
  const forged = h2Clients({ ...node.rootKey, secretAccessKey: 'wrong' + node.rootKey.secretAccessKey }, negotiated);
  await rejects(forged.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn })), 'UnauthorizedClientException', 401);

  assert.ok(negotiated.length >= 1);
  assert.deepEqual([...new Set(negotiated)], ['h2'], `negotiated: ${negotiated}`);
  for (const c of [root, alice, forged]) c.handler.destroy();
});

test('a CORS preflight over h2 through HAProxy reaches Carillon with its Access-Control-Request-* headers', async () => {
  const session = http2.connect(lb.endpoint, { ca: testCert().ca });
  try {
    const res = await new Promise((resolve, reject) => {
      const req = session.request({
        ':method': 'OPTIONS',
        ':path': '/channels',
        origin: 'https://page.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,x-amz-date,x-amz-security-token,x-amz-chime-bearer,x-amz-user-agent',
      });
      req.on('response', (h) => {
        req.resume();
        req.on('end', () => resolve(h));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(session.alpnProtocol, 'h2');
    assert.equal(res[':status'], 204);
    assert.equal(res['access-control-allow-origin'], '*');
    assert.match(res['access-control-allow-methods'], /POST/);
    const allowed = res['access-control-allow-headers'].split(/,\s*/).map((h) => h.toLowerCase());
    for (const h of ['authorization', 'content-type', 'x-amz-date', 'x-amz-security-token', 'x-amz-chime-bearer', 'x-amz-user-agent']) {
      assert.ok(allowed.includes(h), `${h} not allowed: ${allowed}`);
    }
  } finally {
    session.close();
  }
});

/** Text frames from the server (unmasked, unfragmented: what Carillon sends) in `buf`. */
function textFrames(buf) {
  const out = [];
  for (let i = 0; i + 2 <= buf.length;) {
    let len = buf[i + 1] & 0x7f;
    let at = i + 2;
    if (len === 126) {
      len = buf.readUInt16BE(at);
      at += 2;
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(at));
      at += 8;
    }
    if (at + len > buf.length) break;
    if ((buf[i] & 0x0f) === 1) out.push(buf.subarray(at, at + len).toString('utf8'));
    i = at + len;
  }
  return out;
}

test('a messaging session as an RFC 8441 websocket over h2 (extended CONNECT) through HAProxy: presigned URL accepted, SESSION_ESTABLISHED arrives', async () => {
  const root = h2Clients(node.rootKey, []);
  const { AppInstanceArn } = await root.id.send(new CreateAppInstanceCommand({ Name: 'h2-ws-' + randomUUID(), ClientRequestToken: randomUUID() }));
  const { AppInstanceUserArn } = await root.id.send(new CreateAppInstanceUserCommand({
    AppInstanceArn, AppInstanceUserId: `carol-${randomUUID().slice(0, 8)}`, Name: 'carol', ClientRequestToken: randomUUID(),
  }));
  root.handler.destroy();
  const authority = `127.0.0.1:${lb.port}`;
  const url = new URL(await presignConnectUrl(authority, AppInstanceUserArn, await userCreds(node, AppInstanceUserArn)));

  const session = http2.connect(lb.endpoint, { ca: testCert().ca });
  try {
    const settings = await new Promise((resolve, reject) => {
      session.once('remoteSettings', resolve);
      session.once('error', reject);
    });
    assert.equal(session.alpnProtocol, 'h2', 'h2 selected by ALPN, as for a browser');
    assert.equal(settings.enableConnectProtocol, true, 'HAProxy announces SETTINGS_ENABLE_CONNECT_PROTOCOL');
    const stream = session.request({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'https',
      ':authority': authority,
      ':path': url.pathname + url.search,
      'sec-websocket-version': '13',
    }, { endStream: false });
    const status = await new Promise((resolve, reject) => {
      stream.once('response', (h) => resolve(h[':status']));
      stream.once('error', reject);
    });
    assert.equal(status, 200, 'extended CONNECT accepted (the node answered the upgrade with 101)');
    let buf = Buffer.alloc(0);
    const first = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no text frame within 10 s (${buf.length} bytes)`)), 10000);
      stream.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        const frames = textFrames(buf);
        if (frames.length) {
          clearTimeout(timer);
          resolve(JSON.parse(frames[0]));
        }
      });
      stream.once('error', reject);
    });
    assert.equal(first.Headers?.['x-amz-chime-event-type'], 'SESSION_ESTABLISHED', JSON.stringify(first));
    stream.close();
  } finally {
    session.destroy();
  }
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

test('curl --http2 --aws-sigv4 through HAProxy: served over HTTP/2, GET, POST and a wrong secret', async (t) => {
  const have = await new Promise((r) => execFile('curl', ['--version'], (e, out) => r(!e && /HTTP2/.test(out))));
  if (!have) {
    t.skip('curl with HTTP/2 is not installed');
    return;
  }
  const base = lb.endpoint;
  const tlsArgs = ['--http2', '--cacert', testCert().certFile];
  const sig = ['--aws-sigv4', 'aws:amz:us-east-1:chime', '--user', `${node.rootKey.accessKeyId}:${node.rootKey.secretAccessKey}`];
  const get = await curl([...tlsArgs, ...sig, `${base}/app-instances`]);
  assert.equal(get.code, 200, `${get.code} ${get.body} ${get.stderr}`);
  assert.equal(get.version, '2');
  assert.ok(Array.isArray(JSON.parse(get.body).AppInstances));
  const post = await curl([...tlsArgs, ...sig, '-H', 'content-type: application/json',
    '--data', JSON.stringify({ Name: 'curl h2', ClientRequestToken: randomUUID() }), `${base}/app-instances`]);
  assert.equal(post.code, 201, `POST: ${post.body}`);
  assert.equal(post.version, '2');
  assert.match(JSON.parse(post.body).AppInstanceArn, /^arn:aws:chime:/);
  const bad = await curl([...tlsArgs, '--aws-sigv4', 'aws:amz:us-east-1:chime', '--user', `${node.rootKey.accessKeyId}:wrong`, `${base}/app-instances`]);
  assert.equal(bad.code, 401);
  assert.equal(bad.version, '2');
  assert.equal(JSON.parse(bad.body).Code, 'Unauthorized');
});
