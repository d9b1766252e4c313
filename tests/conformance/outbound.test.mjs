// The outbound HTTP module (src/outbound/outbound.c): libcurl's multi interface driven by a libuv
// loop, speaking HTTP/2 to a local stand-in (node:http2 over TLS with a test certificate).
//
// The module has no caller inside the server yet, so a small test-only C program drives it:
// outbound-driver (tests/unit/outbound_driver.c), built by CMake next to the server binary and found
// as dirname(CARILLON_BIN)/outbound-driver. It runs its own libuv loop, fires the requests of a JSON
// plan through carillon_outbound_request() at once, prints one JSON line per answer and a summary
// with the largest gap between the ticks of its own 10 ms uv timer (how long the loop was blocked).
// Under a sanitizer build the driver is sanitized too: any leak or memory error fails its exit.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import http2 from 'node:http2';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { testCert } from './lib/realtime.mjs';
import { freePort } from './lib/server.mjs';

// The loop-stall bound (scripts/test.sh raises it only for sanitizer builds, as elsewhere).
const STALL_MS = Number(process.env.CARILLON_TEST_STALL_MS || 100);

function driverPath() {
  const bin = process.env.CARILLON_BIN;
  if (!bin) throw new Error('CARILLON_BIN is not set; see tests/conformance/README.md');
  const p = path.join(path.dirname(bin), 'outbound-driver');
  if (!existsSync(p)) throw new Error(`${p} is missing: it is built with the server (cmake --build)`);
  return p;
}

/** Run the driver with `plan`; resolves {lines, summary, code, stderr}. */
function runDriver(plan, { caFile, env: extraEnv } = {}) {
  const env = { ...process.env, ...extraEnv };
  delete env.CARILLON_OUTBOUND_CA_FILE;
  if (caFile) env.CARILLON_OUTBOUND_CA_FILE = caFile;
  return new Promise((resolve, reject) => {
    const p = spawn(driverPath(), [JSON.stringify(plan)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const kill = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code, signal) => {
      clearTimeout(kill);
      const all = out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const summary = all.find((l) => l.done);
      const lines = all.filter((l) => !l.done).sort((a, b) => a.i - b.i);
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

// ------------------------------------------------------------------------------------ stand-in

const recorded = [];       // {path, httpVersion, headers, body, session}
let sessions = 0;          // TLS sessions (HTTP/2 connections) accepted
let inFlight = 0;
let maxInFlight = 0;
const openStreams = new Set();

function handler(req, res) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    const rec = {
      path: req.url, method: req.method, httpVersion: req.httpVersion, headers: { ...req.headers }, body,
      session: req.stream?.session,
    };
    recorded.push(rec);
    const url = new URL(req.url, 'https://x');
    if (url.pathname === '/echo') {
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-echo-id', req.headers['x-id'] ?? '');
      res.end(JSON.stringify({ got: body, id: req.headers['x-id'] }));
    } else if (url.pathname === '/busy') {
      res.writeHead(503, { 'retry-after': '7', 'content-type': 'application/json' });
      res.end('{"reason":"busy"}');
    } else if (url.pathname === '/big') {
      res.end('x'.repeat(Number(url.searchParams.get('n'))));
    } else if (url.pathname === '/hold') {
      // Answers after ms (or never while the test runs): counts the requests held at once.
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      openStreams.add(res);
      const done = () => {
        if (!openStreams.delete(res)) return;
        inFlight--;
      };
      res.on('close', done);
      const ms = Number(url.searchParams.get('ms') ?? 0);
      if (ms > 0) {
        setTimeout(() => {
          done();
          if (!res.closed && !res.destroyed) res.end('held');
        }, ms);
      }
    } else {
      res.writeHead(404);
      res.end();
    }
  });
}

let tlsServer;
let h2cServer;
let base;      // https://127.0.0.1:port
let h2cBase;   // http://127.0.0.1:port (HTTP/2 without TLS, prior knowledge)
let cert;

before(async () => {
  cert = testCert();
  tlsServer = http2.createSecureServer({ key: readFileSync(cert.keyFile), cert: cert.ca, allowHTTP1: true }, handler);
  tlsServer.on('session', () => sessions++);
  await new Promise((r) => tlsServer.listen(0, '127.0.0.1', r));
  base = `https://127.0.0.1:${tlsServer.address().port}`;
  h2cServer = http2.createServer({}, handler);
  h2cServer.on('session', () => sessions++);
  await new Promise((r) => h2cServer.listen(0, '127.0.0.1', r));
  h2cBase = `http://127.0.0.1:${h2cServer.address().port}`;
});

after(async () => {
  for (const res of openStreams) res.destroy?.();
  for (const s of [tlsServer, h2cServer]) await new Promise((r) => s.close(r));
});

function reset() {
  recorded.length = 0;
  sessions = 0;
  maxInFlight = 0;
}

// ------------------------------------------------------------------------------------ tests

test('50 requests to one origin go over HTTP/2 on ONE connection, headers and bodies exact', async () => {
  reset();
  const N = 50;
  const requests = [];
  for (let i = 0; i < N; i++) {
    requests.push({
      url: `${base}/echo?n=${i}`,
      method: 'POST',
      headers: ['content-type: application/json', `x-id: req-${i}`, `authorization: bearer tok-${i}`],
      body: JSON.stringify({ n: i, text: `héllo ${i}` }),
    });
  }
  const r = await runDriver({ requests, capture: ['x-echo-id', 'content-type'] }, { caFile: cert.certFile });
  assertCleanExit(r);
  assert.equal(r.lines.length, N);
  for (const [i, l] of r.lines.entries()) {
    assert.equal(l.error, 'ok', JSON.stringify(l));
    assert.equal(l.status, 200);
    assert.equal(l.http_version, 2);
    assert.deepEqual(JSON.parse(l.body), { got: JSON.stringify({ n: i, text: `héllo ${i}` }), id: `req-${i}` });
    assert.equal(l.headers['x-echo-id'], `req-${i}`);
    assert.equal(l.headers['content-type'], 'application/json');
  }
  assert.equal(recorded.length, N);
  for (const rec of recorded) {
    assert.equal(rec.httpVersion, '2.0', `${rec.path} arrived over HTTP/${rec.httpVersion}`);
    const i = Number(new URL(rec.path, base).searchParams.get('n'));
    assert.equal(rec.method, 'POST');
    assert.equal(rec.body, JSON.stringify({ n: i, text: `héllo ${i}` }));
    assert.equal(rec.headers['content-type'], 'application/json');
    assert.equal(rec.headers['x-id'], `req-${i}`);
    assert.equal(rec.headers.authorization, `bearer tok-${i}`);
    assert.equal(rec.headers['content-length'], String(Buffer.byteLength(rec.body)));
    // nothing libcurl would add on its own for a POST body (form content type, Expect)
    assert.equal(rec.headers.expect, undefined);
    assert.match(rec.headers['user-agent'], /^carillon\//);
  }
  assert.equal(new Set(recorded.map((x) => x.session)).size, 1, 'requests spread over several HTTP/2 sessions');
  assert.equal(sessions, 1, `${sessions} connections were opened for one origin`);
  assert.ok(r.summary.max_gap_ms < STALL_MS, `the driver's loop stalled ${r.summary.max_gap_ms} ms`);
});

test('a request without a body is a GET, and no Content-Type is invented', async () => {
  reset();
  const r = await runDriver({ requests: [{ url: `${base}/echo?get=1`, headers: ['x-id: g'] }] }, { caFile: cert.certFile });
  assertCleanExit(r);
  assert.equal(r.lines[0].status, 200);
  assert.equal(recorded[0].method, 'GET');
  assert.equal(recorded[0].headers['content-type'], undefined);
});

test('http:// with prior knowledge speaks HTTP/2 without TLS (h2c)', async () => {
  reset();
  // Requests fired together before the connection is up each open one (libcurl 7.88 breaks the
  // ones that wait on an h2c connection: see easy_new); once up, later requests multiplex on it.
  const requests = [0, 1, 2].map((i) => ({ url: `${h2cBase}/echo?n=${i}`, http: 'prior', body: `b${i}`, headers: ['content-type: text/plain', `x-id: ${i}`] }));
  const r = await runDriver({ requests });
  assertCleanExit(r);
  for (const [i, l] of r.lines.entries()) {
    assert.equal(l.error, 'ok', JSON.stringify(l));
    assert.equal(l.http_version, 2, JSON.stringify(l));
    assert.equal(JSON.parse(l.body).got, `b${i}`);
  }
  assert.deepEqual(recorded.map((x) => x.httpVersion), ['2.0', '2.0', '2.0']);
  assert.ok(sessions <= 3, `${sessions} sessions`);
});

test('a 503 with Retry-After is an answer: status, header and body reported', async () => {
  reset();
  const r = await runDriver({ requests: [{ url: `${base}/busy`, body: '{}' }], capture: ['retry-after'] }, { caFile: cert.certFile });
  assertCleanExit(r);
  const l = r.lines[0];
  assert.equal(l.error, 'ok');
  assert.equal(l.status, 503);
  assert.equal(l.headers['retry-after'], '7');
  assert.equal(l.body, '{"reason":"busy"}');
});

test('a callback may make the next request (a retry after 503): it reuses the connection', async () => {
  reset();
  const r = await runDriver({
    requests: [{ url: `${base}/busy`, body: 'first', then: { url: `${base}/echo?retry=1`, body: 'again', headers: ['x-id: retry'] } }],
    capture: ['retry-after', 'x-echo-id'],
  }, { caFile: cert.certFile });
  assertCleanExit(r);
  assert.deepEqual(r.lines.map((l) => [l.i, l.status]), [[0, 503], [1000, 200]]);
  assert.equal(r.lines[1].headers['x-echo-id'], 'retry');
  assert.deepEqual(recorded.map((x) => x.body), ['first', 'again']);
  assert.equal(sessions, 1, 'the follow-up opened a new connection');
});

test('an answer slower than the timeout is a timeout, and the loop keeps ticking meanwhile', async () => {
  reset();
  const TIMEOUT = 800;
  const r = await runDriver({ requests: [{ url: `${base}/hold?ms=5000`, body: 'x', timeout_ms: TIMEOUT }] }, { caFile: cert.certFile });
  assertCleanExit(r);
  const l = r.lines[0];
  assert.equal(l.error, 'timeout', JSON.stringify(l));
  assert.equal(l.transient, true);
  assert.equal(l.status, 0);
  assert.ok(l.at_ms >= TIMEOUT - 50 && l.at_ms < 4000, `timed out after ${l.at_ms} ms`);
  assert.equal(recorded.length, 1, 'the request did reach the stand-in');
  // 10 ms ticks during the wait: the loop was never blocked by the pending request
  assert.ok(r.summary.ticks >= TIMEOUT / 10 / 2, `only ${r.summary.ticks} ticks in ${r.summary.elapsed_ms} ms`);
  assert.ok(r.summary.max_gap_ms < STALL_MS, `the driver's loop stalled ${r.summary.max_gap_ms} ms`);
});

test('connection refused is a transient connect error', async () => {
  const port = await freePort();
  const r = await runDriver({ requests: [{ url: `https://127.0.0.1:${port}/x`, body: 'x' }] }, { caFile: cert.certFile });
  assertCleanExit(r);
  assert.equal(r.lines[0].error, 'connect', JSON.stringify(r.lines[0]));
  assert.equal(r.lines[0].transient, true);
});

test('a certificate no trusted CA signed fails with a TLS error (no CA file); with the CA file it passes', async () => {
  reset();
  const bad = await runDriver({ requests: [{ url: `${base}/echo`, body: 'x' }] });
  assertCleanExit(bad);
  assert.equal(bad.lines[0].error, 'tls', JSON.stringify(bad.lines[0]));
  assert.equal(bad.lines[0].transient, false);
  assert.equal(recorded.length, 0, 'a request went out over an untrusted connection');
  const good = await runDriver({ requests: [{ url: `${base}/echo`, body: 'x' }] }, { caFile: cert.certFile });
  assertCleanExit(good);
  assert.equal(good.lines[0].error, 'ok');
});

test('CARILLON_OUTBOUND_CA_FILE adds to the system store, which stays trusted', async () => {
  // A second server whose certificate plays a public CA's: OpenSSL's default store (the system
  // store) is pointed at it with SSL_CERT_FILE, as the system bundle would hold a real one.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'carillon-sys-'));
  const other = { key: path.join(dir, 'key.pem'), cert: path.join(dir, 'cert.pem') };
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', other.key, '-out', other.cert, '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const sys = http2.createSecureServer({ key: readFileSync(other.key), cert: readFileSync(other.cert) }, (q, r) => r.end('system'));
  await new Promise((r) => sys.listen(0, '127.0.0.1', r));
  try {
    const env = { SSL_CERT_FILE: other.cert, SSL_CERT_DIR: dir };
    const requests = [{ url: `https://127.0.0.1:${sys.address().port}/` }, { url: `${base}/echo` }];
    const both = await runDriver({ requests }, { caFile: cert.certFile, env });
    assertCleanExit(both);
    assert.deepEqual(both.lines.map((l) => [l.error, l.status]), [['ok', 200], ['ok', 200]], JSON.stringify(both.lines));
    assert.equal(both.lines[0].body, 'system');
    const sysOnly = await runDriver({ requests }, { env });
    assertCleanExit(sysOnly);
    assert.deepEqual(sysOnly.lines.map((l) => l.error), ['ok', 'tls'], JSON.stringify(sysOnly.lines));
  } finally {
    await new Promise((r) => sys.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unreadable CARILLON_OUTBOUND_CA_FILE stops the module from starting', async () => {
  const r = await runDriver({ requests: [] }, { caFile: '/nonexistent/ca.pem' });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /CARILLON_OUTBOUND_CA_FILE \/nonexistent\/ca.pem cannot be read/);
  // a file without a PEM certificate (here: the private key) is refused too
  const k = await runDriver({ requests: [] }, { caFile: cert.keyFile });
  assert.equal(k.code, 2, k.stderr);
  assert.match(k.stderr, /holds no PEM certificate/);
  assert.doesNotMatch(r.stderr + k.stderr, /LeakSanitizer|AddressSanitizer|runtime error/);
});

test('a response body over the cap fails the request (too_large); under the cap it arrives whole', async () => {
  const r = await runDriver({
    max_response_bytes: 4096,
    requests: [{ url: `${base}/big?n=100000` }, { url: `${base}/big?n=4096` }],
  }, { caFile: cert.certFile });
  assertCleanExit(r);
  assert.equal(r.lines[0].error, 'too_large', JSON.stringify(r.lines[0]).slice(0, 300));
  assert.equal(r.lines[0].body, '');
  assert.equal(r.lines[1].error, 'ok');
  assert.equal(r.lines[1].body.length, 4096);
});

test('bounded: at most max_in_flight run at once, max_queued wait, the rest are refused at once', async () => {
  reset();
  const requests = Array.from({ length: 10 }, (_, i) => ({ url: `${base}/hold?ms=300&n=${i}`, body: 'x' }));
  const r = await runDriver({ max_in_flight: 2, max_queued: 3, requests }, { caFile: cert.certFile });
  assertCleanExit(r);
  assert.deepEqual(r.lines.filter((l) => l.refused).map((l) => l.i), [5, 6, 7, 8, 9]);
  const answered = r.lines.filter((l) => !l.refused);
  assert.equal(answered.length, 5);
  for (const l of answered) assert.equal(l.status, 200, JSON.stringify(l));
  assert.equal(maxInFlight, 2, `the stand-in saw ${maxInFlight} requests at once`);
  assert.equal(recorded.length, 5);
});

test('malformed requests are refused at once: other schemes, header lines with CR/LF or no name', async () => {
  reset();
  const r = await runDriver({
    requests: [
      { url: `ftp://127.0.0.1/x` },
      { url: `file:///etc/passwd` },
      { url: `${base}/echo`, headers: ['x-a: 1\r\nx-injected: 1'] },
      { url: `${base}/echo`, headers: [': no-name'] },
      { url: `${base}/echo`, headers: ['no-colon'] },
      { url: `${base}/echo?ok=1`, headers: ['x-id: fine'] },
    ],
  }, { caFile: cert.certFile });
  assertCleanExit(r);
  assert.deepEqual(r.lines.filter((l) => l.refused).map((l) => l.i), [0, 1, 2, 3, 4]);
  assert.equal(r.lines.find((l) => l.i === 5).status, 200);
  assert.equal(recorded.length, 1);
  assert.equal(recorded[0].headers['x-injected'], undefined);
});

test('a TLS client certificate (APNs certificate auth) is presented when given, and required by the server', async () => {
  // A client certificate of its own (self-signed) that the mutual-TLS stand-in trusts.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'carillon-client-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1',
      '-subj', '/CN=carillon-test-client'], { stdio: 'ignore' });
    const clientCert = readFileSync(path.join(dir, 'cert.pem'), 'utf8');
    const clientKey = readFileSync(path.join(dir, 'key.pem'), 'utf8');
    const seen = [];
    let mtlsSessions = 0;
    const mtls = http2.createSecureServer({
      key: readFileSync(cert.keyFile), cert: cert.ca, requestCert: true, rejectUnauthorized: true, ca: [clientCert],
    }, (req, res) => {
      seen.push(req.stream.session.socket.getPeerCertificate().subject?.CN);
      res.end('hello client');
    });
    mtls.on('session', () => mtlsSessions++);
    await new Promise((r) => mtls.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${mtls.address().port}/apns`;
    try {
      const withCert = { url, body: 'x', client_cert_pem: clientCert, client_key_pem: clientKey };
      const r = await runDriver({ requests: [withCert, withCert, withCert] }, { caFile: cert.certFile });
      assertCleanExit(r);
      for (const l of r.lines) {
        assert.equal(l.status, 200, JSON.stringify(l));
        assert.equal(l.http_version, 2);
      }
      assert.deepEqual(seen, ['carillon-test-client', 'carillon-test-client', 'carillon-test-client']);
      assert.equal(mtlsSessions, 1);
      // Without one the server refuses it, and nothing is served. In TLS 1.3 the refusal comes
      // after the client's side of the handshake: an alert on the first read (reported as 'tls',
      // not transient), or, when the server's reset wins the race, a dropped connection: 'protocol'
      // after the handshake, 'tls' during it.
      for (let attempt = 0; attempt < 3; attempt++) {
        const bare = await runDriver({ requests: [{ url, body: 'x' }] }, { caFile: cert.certFile });
        assertCleanExit(bare);
        const l = bare.lines[0];
        assert.equal(l.status, 0, JSON.stringify(l));
        if (/alert/.test(l.detail)) {
          assert.equal(l.error, 'tls', JSON.stringify(l));
          assert.equal(l.transient, false);
        } else {
          assert.ok(['protocol', 'tls'].includes(l.error), JSON.stringify(l));
        }
      }
      assert.equal(seen.length, 3);
      // a certificate without its key (or the reverse) is refused at once
      const half = await runDriver({ requests: [{ url, client_cert_pem: clientCert }, { url, client_key_pem: clientKey }] }, { caFile: cert.certFile });
      assertCleanExit(half);
      assert.deepEqual(half.lines.map((l) => l.refused), [true, true]);
    } finally {
      await new Promise((r) => mtls.close(r));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shutdown cancels pending requests with an error callback and frees everything', async () => {
  reset();
  const requests = Array.from({ length: 6 }, (_, i) => ({ url: `${base}/hold?n=${i}`, body: 'x', timeout_ms: 30000 }));
  const r = await runDriver({ max_in_flight: 4, cancel_after_ms: 1000, requests }, { caFile: cert.certFile });
  assertCleanExit(r);
  assert.equal(r.lines.length, 6);
  for (const l of r.lines) assert.equal(l.error, 'cancelled', JSON.stringify(l));
  assert.equal(recorded.length, 4, 'the four running requests reached the stand-in, the queued two never started');
  assert.ok(r.summary.elapsed_ms < 10000, `shutdown took until ${r.summary.elapsed_ms} ms`);
});
