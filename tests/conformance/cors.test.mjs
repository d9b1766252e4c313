// CORS: pages of other origins call the REST API from a browser (the AWS SDK for JavaScript and
// amazon-chime-sdk-js with user-scoped SigV4 credentials). Preflights (OPTIONS with Origin and
// Access-Control-Request-Method) are answered on every API path, unauthenticated, and every answer
// to a request with an allowed Origin carries Access-Control-Allow-Origin and exposes the headers
// the SDK reads (x-amzn-RequestId, x-amzn-ErrorType), errors included. CARILLON_CORS_ORIGINS
// restricts the origins to a list, or turns CORS off. Hostile preflights get a bounded answer.

import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { rawFetch, signedFetch } from './lib/clients.mjs';
import { rawExchange } from './lib/rawsocket.mjs';
import { startCarillon } from './lib/server.mjs';
import { startPrivatePostgres } from './lib/realtime.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PAGE = 'https://chat.example:8443';

// The request headers the browser builds of the SDKs send (a preflight lists them, lower-case).
const SDK_HEADERS = [
  'authorization', 'content-type', 'x-amz-date', 'x-amz-security-token', 'x-amz-chime-bearer',
  'x-amz-user-agent', 'amz-sdk-invocation-id', 'amz-sdk-request', 'x-amz-content-sha256',
];

let any; // CORS for any origin (the default)
let listed; // CARILLON_CORS_ORIGINS = a list
let off; // CARILLON_CORS_ORIGINS = none

before(async () => {
  any = await startCarillon();
  listed = await startCarillon({ env: { CARILLON_CORS_ORIGINS: `${PAGE}, http://127.0.0.1:3000` } });
  off = await startCarillon({ env: { CARILLON_CORS_ORIGINS: 'none' } });
});

after(async () => {
  for (const s of [any, listed, off]) if (s) await s.stop();
});

/** Every operation's method and path (labels filled in) of both Chime services' models. */
function everyApiPath() {
  const out = [];
  for (const m of ['identity', 'messaging']) {
    const model = JSON.parse(readFileSync(path.join(HERE, `../../model/chime-sdk-${m}.json`), 'utf8'));
    for (const [name, op] of Object.entries(model.operations)) {
      const uri = op.http.requestUri
        .replace(/\{[^}]+\}/g, encodeURIComponent('arn:aws:chime:us-east-1:111122223333:app-instance/x/channel/y'))
        .replace(/\?.*$/, '');
      out.push({ op: name, method: op.http.method, path: uri });
    }
  }
  return out;
}

function preflight(srv, p, { origin = PAGE, method = 'POST', headers = SDK_HEADERS.join(',') } = {}) {
  return rawFetch(srv, {
    method: 'OPTIONS',
    path: p,
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
  });
}

function headerSet(v) {
  return new Set((v ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
}

test('a preflight on every API path of both services answers 204 with the CORS headers, unauthenticated', async () => {
  const paths = everyApiPath();
  assert.ok(paths.length > 70, `the models list ${paths.length} operations`);
  for (const { op, method, path: p } of paths) {
    const r = await preflight(any, p, { method });
    assert.equal(r.status, 204, `${op}: OPTIONS ${p} -> ${r.status} ${r.body}`);
    assert.equal(r.body, '', op);
    assert.equal(r.headers['access-control-allow-origin'], '*', op);
    assert.ok(headerSet(r.headers['access-control-allow-methods']).has(method.toLowerCase()), `${op}: ${r.headers['access-control-allow-methods']}`);
    const allowed = headerSet(r.headers['access-control-allow-headers']);
    for (const h of SDK_HEADERS) assert.ok(allowed.has(h), `${op}: ${h} not in ${r.headers['access-control-allow-headers']}`);
    assert.ok(Number(r.headers['access-control-max-age']) > 0, op);
    assert.equal(r.headers['access-control-allow-credentials'], undefined, 'no credentials mode');
  }
  // Paths outside the models, and the Carillon routes, too.
  for (const p of ['/carillon/credentials', '/no/such/path', '/']) {
    const r = await preflight(any, p);
    assert.equal(r.status, 204, `OPTIONS ${p}`);
    assert.equal(r.headers['access-control-allow-origin'], '*');
  }
});

test('an OPTIONS that is not a preflight is routed as before (UnknownOperationException)', async () => {
  const r = await rawFetch(any, { method: 'OPTIONS', path: '/channels', headers: { origin: PAGE } });
  assert.equal(r.status, 404);
  assert.equal(r.headers['x-amzn-errortype'], 'UnknownOperationException');
  assert.equal(r.headers['access-control-allow-origin'], '*', 'the error carries CORS headers too');
});

test('signed calls from a page get Access-Control-Allow-Origin and Expose-Headers, on success and on errors', async () => {
  const ok = await signedFetch(any, { method: 'GET', path: '/app-instances', sendHeaders: { origin: PAGE } });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.headers['access-control-allow-origin'], '*');
  const exposed = headerSet(ok.headers['access-control-expose-headers']);
  assert.ok(exposed.has('x-amzn-requestid') && exposed.has('x-amzn-errortype'), ok.headers['access-control-expose-headers']);
  assert.ok(ok.headers['x-amzn-requestid']);

  const errors = [
    // not found (the handler's error)
    await signedFetch(any, {
      method: 'GET',
      path: '/app-instances/' + encodeURIComponent('arn:aws:chime:us-east-1:111122223333:app-instance/nope'),
      sendHeaders: { origin: PAGE },
    }),
    // unauthenticated (refused before any handler)
    await rawFetch(any, { method: 'GET', path: '/app-instances', headers: { origin: PAGE } }),
    // a bad signature
    await signedFetch(any, { method: 'GET', path: '/app-instances', sendHeaders: { origin: PAGE, 'x-amz-date': '20000101T000000Z' } }),
    // a bad body (validation)
    await signedFetch(any, { method: 'POST', path: '/app-instances', body: { Name: 5 }, sendHeaders: { origin: PAGE } }),
  ];
  for (const e of errors) {
    assert.ok(e.status >= 400, `${e.status} ${e.body}`);
    assert.ok(e.headers['x-amzn-errortype'], e.body);
    assert.equal(e.headers['access-control-allow-origin'], '*', `${e.status} ${e.headers['x-amzn-errortype']}`);
    assert.ok(headerSet(e.headers['access-control-expose-headers']).has('x-amzn-errortype'));
  }
  // No Origin (the Node SDKs, the CLI): no CORS headers to pay for.
  const plain = await signedFetch(any, { method: 'GET', path: '/app-instances' });
  assert.equal(plain.headers['access-control-allow-origin'], undefined);
});

test('CARILLON_CORS_ORIGINS: a listed origin is echoed (Vary: Origin), others are refused and get no CORS headers', async () => {
  const yes = await preflight(listed, '/channels');
  assert.equal(yes.status, 204);
  assert.equal(yes.headers['access-control-allow-origin'], PAGE);
  assert.match(yes.headers.vary ?? '', /origin/i);
  const second = await preflight(listed, '/channels', { origin: 'http://127.0.0.1:3000' });
  assert.equal(second.headers['access-control-allow-origin'], 'http://127.0.0.1:3000');

  for (const origin of ['https://evil.example', 'https://chat.example', 'https://chat.example:8443.evil', 'null']) {
    const no = await preflight(listed, '/channels', { origin });
    assert.equal(no.status, 403, `${origin}: ${no.status}`);
    assert.equal(no.headers['access-control-allow-origin'], undefined, origin);
    const call = await signedFetch(listed, { method: 'GET', path: '/app-instances', sendHeaders: { origin } });
    assert.equal(call.status, 200, 'the call itself is not refused: the browser withholds the answer');
    assert.equal(call.headers['access-control-allow-origin'], undefined, origin);
  }
  const call = await signedFetch(listed, { method: 'GET', path: '/app-instances', sendHeaders: { origin: PAGE } });
  assert.equal(call.headers['access-control-allow-origin'], PAGE);
});

test('CARILLON_CORS_ORIGINS=none: no preflight answer and no CORS headers', async () => {
  const r = await preflight(off, '/channels');
  assert.equal(r.status, 404, r.body);
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  const call = await signedFetch(off, { method: 'GET', path: '/app-instances', sendHeaders: { origin: PAGE } });
  assert.equal(call.status, 200);
  assert.equal(call.headers['access-control-allow-origin'], undefined);
});

test('hostile preflights get a clean, bounded answer and the server keeps serving', async () => {
  // ~12 KiB of requested header names: allowed, unknown, repeated, odd bytes.
  const names = [];
  for (let i = 0; i < 400; i++) names.push(i % 4 === 0 ? `x-amz-custom-${i}` : i % 4 === 1 ? `evil-${i}` : i % 4 === 2 ? 'authorization' : `x-amz-\u00e9${i}`);
  const head = Buffer.concat([
    Buffer.from('OPTIONS /channels HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: POST\r\n', 'latin1'),
    Buffer.from(`Access-Control-Request-Headers: ${names.join(', ')}, \x7f\x01bad, ${'a'.repeat(300)}, AUTHORIZATION,,, \r\n\r\n`, 'latin1'),
  ]);
  const r = await rawExchange(any, [head]);
  assert.equal(r.response?.status, 204, r.raw.toString('latin1').slice(0, 300));
  const allowed = r.response.headers['access-control-allow-headers'].split(',');
  assert.ok(allowed.length <= 32, `${allowed.length} names listed`);
  assert.ok(r.raw.length < 4096, `the answer is ${r.raw.length} bytes`);
  assert.equal(allowed.filter((h) => h === 'authorization').length, 1, 'a repeated name is listed once');
  for (const h of allowed) assert.match(h, /^(authorization|x-amz-custom-\d+)$/, h);

  // Odd bytes in the Origin of a restricted server: refused, never echoed.
  const odd = await rawExchange(listed, [Buffer.from(
    `OPTIONS /channels HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${PAGE}\x7f\r\nAccess-Control-Request-Method: GET\r\n\r\n`, 'latin1')]);
  assert.equal(odd.response?.status, 403);
  assert.equal(odd.response.headers['access-control-allow-origin'], undefined);

  // A preflight with a body: answered, and the connection is closed rather than the body parsed as a request.
  const withBody = await rawExchange(any, [
    'OPTIONS /channels HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: POST\r\nContent-Length: 40\r\n\r\n',
    'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\r\n\r\n\r\n',
  ]);
  assert.equal(withBody.response?.status, 204);
  assert.match(withBody.response.headers.connection ?? '', /close/i);

  for (const s of [any, listed]) {
    const h = await rawFetch(s, { method: 'GET', path: '/healthz' });
    assert.equal(h.status, 200);
    assert.ok(s.alive());
  }
});

test('preflights never touch the database: answered at once while it is down and signed calls cannot complete', async () => {
  const pg = await startPrivatePostgres();
  let s;
  try {
    // A short grace: the request left waiting for the database must not hold the shutdown.
    s = await startCarillon({ databaseUrl: pg.url, env: { CARILLON_SHUTDOWN_GRACE_SECONDS: '1' } });
    pg.stop();
    // A signed call that needs the database does not complete now (it waits for a connection)...
    const call = await signedFetch(s, { method: 'GET', path: '/app-instances', sendHeaders: { origin: PAGE }, timeoutMs: 1500 })
      .then((r) => r, (e) => ({ status: 0, body: e.message }));
    assert.ok(call.status === 0 || call.status >= 500, `a signed call with the database down: ${call.status} ${call.body}`);
    // ... and preflights are still answered at once.
    for (const p of ['/channels', '/app-instances', '/carillon/credentials']) {
      const started = Date.now();
      const r = await preflight(s, p);
      assert.equal(r.status, 204, `${p}: ${r.status} ${r.body}`);
      assert.ok(Date.now() - started < 1000, `${p}: ${Date.now() - started} ms`);
    }
  } finally {
    if (s) await s.stop();
    pg.stop();
    rmSync(pg.dir, { recursive: true, force: true });
  }
});
