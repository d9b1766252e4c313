// Hostile HTTP: request bytes that are not UTF-8 never crash the server and always get an
// AWS-shaped JSON error; headers are read completely (or refused with 431 past the limit); and
// clients trickling their request heads cannot stall everyone else.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DescribeAppInstanceCommand, ListAppInstancesCommand } from '@aws-sdk/client-chime-sdk-identity';
import { DescribeChannelCommand, SendChannelMessageCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { messagingClient, mintUserCredentials, rawFetch, signRequest, signedFetch } from './lib/clients.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { rawExchange, serializeRequest } from './lib/rawsocket.mjs';
import { assertRawError, assertRejects, uniq } from './lib/util.mjs';

// The loop-stall bound. CARILLON_TEST_STALL_MS may raise it only for a sanitizer build (ASan/UBSan
// make every loop turn 2-3 times slower): the point of that run is memory errors.
const STALL_MS = Number(process.env.CARILLON_TEST_STALL_MS || 100);

// A short header timeout, so that the slow-client test sees the server close trickling clients.
const HEADER_TIMEOUT_SECONDS = 3;
const MAX_HEADERS = 64; // the documented default of CARILLON_MAX_HEADERS

const ctx = useCarillon({ restartOnCrash: true, env: { CARILLON_HEADER_TIMEOUT_SECONDS: String(HEADER_TIMEOUT_SECONDS) } });

async function assertHealthy(what) {
  await sleep(50);
  assert.ok(ctx.srv.alive(), `${what}: the carillon process exited (${JSON.stringify(ctx.srv.exitInfo)})`);
  const res = await rawFetch(ctx.srv, { path: '/healthz', timeoutMs: 5000 });
  assert.equal(res.status, 200, `${what}: /healthz answered ${res.status}`);
}

/** An answer with an AWS-shaped error: 4xx, x-amzn-ErrorType, a JSON body {Code, Message}. */
function assertJsonError(response, what) {
  assert.ok(response, `${what}: no HTTP answer`);
  assert.ok(response.status >= 400 && response.status < 500, `${what}: expected a 4xx, got ${response.status} ${String(response.body).slice(0, 200)}`);
  assert.ok(response.headers['x-amzn-errortype'], `${what}: x-amzn-ErrorType header missing`);
  let body;
  assert.doesNotThrow(() => (body = JSON.parse(response.body)), `${what}: the body is not JSON: ${JSON.stringify(String(response.body).slice(0, 200))}`);
  assert.equal(typeof body.Code, 'string', `${what}: Code`);
  assert.equal(typeof body.Message, 'string', `${what}: Message`);
  assert.ok(!body.Message.includes('\u0000'), `${what}: Message carries a NUL`);
  return body;
}

/** A request line with raw bytes in the path, sent on a bare socket. */
function rawGet(pathBytes) {
  return Buffer.concat([Buffer.from('GET '), Buffer.from(pathBytes), Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]);
}

// ---------------------------------------------------------------- finding 1: the crash class

const PATHS = {
  '/%FF': rawGet('/%FF'),
  '/%C3 (a cut two-byte sequence)': rawGet('/%C3'),
  '/%ED%A0%80 (an encoded surrogate)': rawGet('/%ED%A0%80'),
  '/%C0%80 (an overlong NUL)': rawGet('/%C0%80'),
  'raw 0xFF 0xFE bytes in the path': rawGet(Buffer.from([0x2f, 0xff, 0xfe, 0x61])),
  'a path of 8 KiB of raw multibyte characters': rawGet(Buffer.from('/' + 'é'.repeat(4096))),
  'a path of 8 KiB of raw multibyte characters, odd offset': rawGet(Buffer.from('/x' + 'é'.repeat(4096))),
  'a path of percent-encoded three-byte characters': rawGet('/' + encodeURIComponent('€'.repeat(850))),
  'control characters in the path': rawGet('/%0D%0Ax-injected:%201%1B[31m'),
};

for (const [what, request] of Object.entries(PATHS)) {
  test(`GET ${what}: a JSON error, and the server lives`, async () => {
    const r = await rawExchange(ctx.srv, [request], { timeoutMs: 5000 });
    assertJsonError(r.response, what);
    await assertHealthy(`after ${what}`);
  });
}

test('a signed request to an unknown path of multibyte characters: JSON error, message quotes it cut on a character boundary', async () => {
  // Signed, so that the "No operation matches" message is reached with a long decoded path; with
  // "No operation matches GET /" before it, a 1024-byte buffer ends inside a character.
  const path = '/' + encodeURIComponent('é'.repeat(1200));
  const res = await signedFetch(ctx.srv, { path });
  assert.equal(res.status, 404, res.body.slice(0, 200));
  const body = assertJsonError({ status: res.status, headers: res.headers, body: res.body }, 'long multibyte path');
  assert.ok(!body.Message.includes('\ufffd'), `the quoted path must be cut on a character boundary: ${body.Message.slice(-40)}`);
  assert.ok(Buffer.byteLength(body.Message) < 1024, `the message must not echo kilobytes of path (${Buffer.byteLength(body.Message)} bytes)`);
  await assertHealthy('after a long multibyte path');
});

test('MessageAttributes key "a"+"é"x300 from a user credential (real SDK): BadRequestException, server alive', async () => {
  const ai = await ctx.newAppInstance();
  const user = await ctx.newUser(ai);
  const creds = await mintUserCredentials(ctx.srv, user.arn);
  const msg = messagingClient(ctx.srv, creds);
  try {
    for (const key of ['a' + 'é'.repeat(300), 'é'.repeat(300), 'ab' + '€'.repeat(200), 'a' + '😀'.repeat(150)]) {
      const err = await assertRejects(
        msg.send(
          new SendChannelMessageCommand({
            ChannelArn: `${ai}/channel/${randomUUID()}`,
            Content: 'hello',
            Type: 'STANDARD',
            Persistence: 'PERSISTENT',
            ChimeBearer: user.arn,
            ClientRequestToken: randomUUID(),
            MessageAttributes: { [key]: { StringValues: ['v'] } },
          }),
        ),
        'BadRequestException',
        `key of ${Buffer.byteLength(key)} bytes`,
      );
      assert.ok(!err.message.includes('\ufffd'), `the message must quote the key cut on a character boundary: ${err.message}`);
      await assertHealthy(`after a MessageAttributes key of ${Buffer.byteLength(key)} bytes`);
    }
  } finally {
    msg.destroy();
  }
});

test('a database error message quoting a long multibyte ARN: NotFoundException, server alive', async () => {
  // "AppInstance <arn> not found" is longer than the 1024-byte message buffer; one ASCII
  // character more or less moves the cut inside a two-byte character.
  for (const pad of ['', 'x']) {
    const arn = `arn:aws:chime:us-east-1:111122223333:app-instance/${pad}${'é'.repeat(505)}`;
    const err = await assertRejects(ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn })), 'NotFoundException', `pad ${JSON.stringify(pad)}`);
    assert.ok(!err.message.includes('\ufffd'), `cut inside a character: ${err.message.slice(-20)}`);
    await assertHealthy(`after a long multibyte ARN (pad ${JSON.stringify(pad)})`);
  }
});

const BAD_BODIES = {
  'raw 0xFF in a string': Buffer.concat([Buffer.from('{"Name": "x'), Buffer.from([0xff]), Buffer.from('", "ClientRequestToken": "t"}')]),
  'a cut two-byte sequence': Buffer.concat([Buffer.from('{"Name": "x'), Buffer.from([0xc3]), Buffer.from('"}')]),
  'a raw UTF-8 surrogate': Buffer.concat([Buffer.from('{"Name": "'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
  'an overlong encoding': Buffer.concat([Buffer.from('{"Name": "'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]),
  'invalid bytes in a member name': Buffer.concat([Buffer.from('{"'), Buffer.from([0xff, 0xfe]), Buffer.from('": "x", "Name": "ok"}')]),
  'a lone high surrogate escape': '{"Name": "\\ud800"}',
  'a lone low surrogate escape': '{"Name": "\\udc00"}',
  'a high surrogate escape followed by a letter': '{"Name": "\\ud800\\u0041"}',
  'a lone surrogate escape in a member name': '{"\\ud800": "x", "Name": "ok"}',
  'an escaped NUL': '{"Name": "a\\u0000b"}',
};

test('JSON bodies with invalid UTF-8 or lone surrogate escapes (signed): BadRequestException', async () => {
  for (const [what, body] of Object.entries(BAD_BODIES)) {
    const res = await signedFetch(ctx.srv, { method: 'POST', path: '/app-instances', headers: { 'content-type': 'application/json' }, body });
    assertRawError(res, 'BadRequestException', what);
    assertJsonError({ status: res.status, headers: res.headers, body: res.body }, what);
  }
  await assertHealthy('after invalid UTF-8 bodies');
});

test('invalid UTF-8 in the body of a messaging call with a user credential: BadRequestException', async () => {
  const ai = await ctx.newAppInstance();
  const user = await ctx.newUser(ai);
  const creds = await mintUserCredentials(ctx.srv, user.arn);
  const body = Buffer.concat([
    Buffer.from(`{"Content": "hi`),
    Buffer.from([0xe2, 0x82]),
    Buffer.from(`", "Type": "STANDARD", "Persistence": "PERSISTENT", "ClientRequestToken": "${randomUUID()}", "MessageAttributes": {"k\\udfff": {"StringValues": ["v"]}}}`),
  ]);
  const res = await signedFetch(ctx.srv, {
    method: 'POST',
    path: `/channels/${encodeURIComponent(`${ai}/channel/${randomUUID()}`)}/messages`,
    headers: { 'content-type': 'application/json', 'x-amz-chime-bearer': user.arn },
    body,
    creds,
  });
  assertRawError(res, 'BadRequestException', 'SendChannelMessage with invalid UTF-8');
  await assertHealthy('after a messaging body with invalid UTF-8');
});

test('a query argument over 8 KiB is read whole, not dropped with the arguments after it', async () => {
  // ListAppInstances: NextToken is at most 2048 characters, so the validation answers; a query
  // read only in part would fail the signature instead (UnauthorizedClientException).
  const res = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'next-token': 'x'.repeat(9000), 'max-results': 1 } });
  assertRawError(res, 'BadRequestException', 'a 9 KB NextToken');
  assert.match(res.json.Message, /NextToken/);
});

// ---------------------------------------------------------------- finding 4: headers

function extraHeaders(n, prefix = 'x-extra') {
  const h = {};
  for (let i = 0; i < n; i++) h[`${prefix}-${String(i).padStart(2, '0')}`] = `value ${i}`;
  return h;
}

test('a correctly signed request with 40 extra signed headers is served (200)', async () => {
  const res = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'max-results': 1 }, headers: extraHeaders(40) });
  assert.equal(res.status, 200, res.body);
  assert.ok(Array.isArray(res.json.AppInstances));
});

test('the bearer of a request with 40 extra signed headers before it is honoured', async () => {
  const ai = await ctx.newAppInstance();
  const creator = await ctx.newUser(ai, { Name: 'Creator' });
  // "x-a-.." names sort before "x-amz-chime-bearer": the bearer is looked up after all of them.
  const res = await signedFetch(ctx.srv, {
    method: 'POST',
    path: '/channels',
    headers: { 'content-type': 'application/json', 'x-amz-chime-bearer': creator.arn, ...extraHeaders(40, 'x-a') },
    body: { AppInstanceArn: ai, Name: uniq('many-headers'), ClientRequestToken: randomUUID() },
  });
  assert.equal(res.status, 201, res.body);
  const d = await ctx.msg.send(new DescribeChannelCommand({ ChannelArn: res.json.ChannelArn, ChimeBearer: creator.arn }));
  assert.equal(d.Channel.CreatedBy.Arn, creator.arn, 'the channel must be created by the bearer');
});

test(`more than CARILLON_MAX_HEADERS (${MAX_HEADERS}) header lines: 431 with an AWS-shaped body`, async () => {
  for (const [what, headers] of [
    ['signed custom headers', extraHeaders(MAX_HEADERS + 6)],
    ['a repeated known header', { accept: Array.from({ length: MAX_HEADERS + 2 }, () => '*/*').join(',') }],
  ]) {
    const signed = await signRequest(ctx.srv, { path: '/app-instances', query: { 'max-results': 1 }, headers });
    const r = await rawExchange(ctx.srv, serializeRequest(signed).map((c) => expandArrays(c)), { timeoutMs: 5000 });
    assert.ok(r.response, `${what}: no answer`);
    assert.equal(r.response.status, 431, `${what}: ${r.response.status} ${r.response.body}`);
    assert.equal(r.response.headers['x-amzn-errortype'], 'BadRequestException', what);
    const body = JSON.parse(r.response.body);
    assert.equal(body.Code, 'BadRequest', what);
    assert.match(body.Message, /Header Fields Too Large/, what);
  }
  await assertHealthy('after 431');
  // Exactly at the limit is fine: host, x-amz-date, x-amz-content-sha256, authorization and
  // Node's "connection: close", plus the extra ones.
  const res = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'max-results': 1 }, headers: extraHeaders(MAX_HEADERS - 5) });
  assert.equal(res.status, 200, res.body);
});

// The repeated header is signed as one value "a,b,..." (what SigV4 signs for repeated lines) and sent as one line each.
function expandArrays(chunk) {
  if (typeof chunk !== 'string') return chunk;
  return chunk.replace(/^accept: (.*)$/m, (_, v) => v.split(',').map((x) => `accept: ${x}`).join('\r\n'));
}

test('repeated headers: a known one is joined with ",", an unknown one never lets an unsigned second value in', async () => {
  // Two "accept" lines are one header "a,b" (RFC 9110), which is what SigV4 signs for them.
  const signed = await signRequest(ctx.srv, { path: '/app-instances', query: { 'max-results': 1 }, headers: { accept: 'text/a,text/b' } });
  const [head] = serializeRequest(signed);
  const twoLines = head.replace(/^accept: .*$/m, 'accept: text/a\r\naccept: text/b');
  assert.notEqual(twoLines, head);
  const r = await rawExchange(ctx.srv, [twoLines], { timeoutMs: 5000 });
  assert.equal(r.response?.status, 200, r.response?.body);

  // x-amz-chime-bearer twice: the signed value first, another user's second, and the reverse.
  const ai = await ctx.newAppInstance();
  const alice = await ctx.newUser(ai, { Name: 'Alice' });
  const mallory = await ctx.newUser(ai, { Name: 'Mallory' });
  for (const order of ['signed first', 'signed second']) {
    const req = await signRequest(ctx.srv, {
      method: 'POST',
      path: '/channels',
      headers: { 'content-type': 'application/json', 'x-amz-chime-bearer': alice.arn },
      body: JSON.stringify({ AppInstanceArn: ai, Name: uniq('dup'), ClientRequestToken: randomUUID() }),
    });
    const [h, b] = serializeRequest(req);
    const line = (arn) => `x-amz-chime-bearer: ${arn}`;
    const both = order === 'signed first' ? `${line(alice.arn)}\r\n${line(mallory.arn)}` : `${line(mallory.arn)}\r\n${line(alice.arn)}`;
    const sent = h.replace(/^x-amz-chime-bearer: .*$/m, both);
    const res = await rawExchange(ctx.srv, [sent, b], { timeoutMs: 5000 });
    assert.ok(res.response, `${order}: no answer`);
    if (res.response.status === 201) {
      const arn = JSON.parse(res.response.body).ChannelArn;
      const d = await ctx.msg.send(new DescribeChannelCommand({ ChannelArn: arn, ChimeBearer: alice.arn }));
      assert.equal(d.Channel.CreatedBy.Arn, alice.arn, `${order}: the unsigned bearer value was used`);
    } else {
      assert.equal(res.response.status, 401, `${order}: ${res.response.status} ${res.response.body}`);
    }
  }
});

// ---------------------------------------------------------------- finding 7: slow clients

/** Open `n` connections that send one byte of a request head every `everyMs`, never finishing. */
async function trickle(n, everyMs) {
  const head = Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(4096));
  const conns = await Promise.all(
    Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const c = { sock: net.connect(ctx.srv.port, '127.0.0.1'), sent: 0, firstByteAt: 0, closedAt: 0 };
      c.sock.setNoDelay(true);
      c.sock.on('error', () => {});
      c.sock.on('close', () => (c.closedAt = Date.now()));
      c.sock.once('connect', () => resolve(c));
      c.sock.once('error', reject);
    })),
  );
  const step = () => {
    for (const c of conns) {
      if (c.closedAt || c.sent >= head.length) continue;
      c.sock.write(head.subarray(c.sent, c.sent + 1));
      if (!c.sent) c.firstByteAt = Date.now();
      c.sent++;
    }
  };
  step();
  const timer = setInterval(step, everyMs);
  return {
    conns,
    stop() {
      clearInterval(timer);
      for (const c of conns) c.sock.destroy();
    },
  };
}

test('300 clients trickling header bytes: /healthz and a signed REST call answer within 100 ms; the trickling clients are closed after the header timeout', async () => {
  const signedList = () => signRequest(ctx.srv, { path: '/app-instances', query: { 'max-results': 1 } });
  // Warm up (connection setup, first database round trip) before measuring.
  assert.equal((await rawFetch(ctx.srv, { path: '/healthz' })).status, 200);
  const warm = await signedList();
  assert.equal((await rawFetch(ctx.srv, { ...warm, headers: warm.headers })).status, 200);

  // Connections that send nothing at all are bounded by the same timeout.
  const idle = await Promise.all(
    Array.from({ length: 20 }, () => new Promise((resolve) => {
      const c = { sock: net.connect(ctx.srv.port, '127.0.0.1'), closedAt: 0, openedAt: Date.now() };
      c.sock.on('error', () => {});
      c.sock.on('close', () => (c.closedAt = Date.now()));
      c.sock.once('connect', () => resolve(c));
    })),
  );
  const slow = await trickle(300, 500);
  try {
    await sleep(300); // every trickling connection has sent its first byte and holds a header table
    const started = Date.now();
    const samples = [];
    for (let i = 0; i < 5; i++) {
      let t = Date.now();
      const h = await rawFetch(ctx.srv, { path: '/healthz', timeoutMs: 15000 });
      const healthMs = Date.now() - t;
      assert.equal(h.status, 200);
      const req = await signedList();
      t = Date.now();
      const res = await rawFetch(ctx.srv, { ...req, headers: req.headers, timeoutMs: 15000 });
      const restMs = Date.now() - t;
      assert.equal(res.status, 200, res.body);
      samples.push({ healthMs, restMs });
      await sleep(50);
    }
    for (const [i, s] of samples.entries()) {
      assert.ok(s.healthMs < STALL_MS, `sample ${i}: /healthz took ${s.healthMs} ms with 300 slow clients (${JSON.stringify(samples)})`);
      assert.ok(s.restMs < STALL_MS, `sample ${i}: the signed REST call took ${s.restMs} ms with 300 slow clients (${JSON.stringify(samples)})`);
    }
    const open = slow.conns.filter((c) => !c.closedAt).length;
    assert.ok(Date.now() - started < HEADER_TIMEOUT_SECONDS * 1000, 'the samples were not all taken while the slow clients were connected');
    assert.equal(open, 300, 'the trickling clients must still be connected while sampling');

    // The server closes every trickling client once its head has taken longer than the timeout
    // (lws checks its timeouts once a second: allow that, plus a loaded machine).
    const deadline = Date.now() + (HEADER_TIMEOUT_SECONDS + 5) * 1000;
    while (Date.now() < deadline && (slow.conns.some((c) => !c.closedAt) || idle.some((c) => !c.closedAt))) await sleep(100);
    const stillOpen = slow.conns.filter((c) => !c.closedAt).length;
    assert.equal(stillOpen, 0, `${stillOpen} trickling clients were still connected ${HEADER_TIMEOUT_SECONDS + 5} s after their first byte`);
    assert.equal(idle.filter((c) => !c.closedAt).length, 0, 'connections that never sent a byte were not closed');
    for (const c of slow.conns) {
      const held = c.closedAt - c.firstByteAt;
      assert.ok(held >= (HEADER_TIMEOUT_SECONDS - 1) * 1000, `a trickling client was closed after ${held} ms, before the header timeout`);
    }
  } finally {
    slow.stop();
    for (const c of idle) c.sock.destroy();
  }
  await assertHealthy('after 300 slow clients');
  const out = await ctx.id.send(new ListAppInstancesCommand({ MaxResults: 1 }));
  assert.equal(out.$metadata.httpStatusCode, 200);
});
