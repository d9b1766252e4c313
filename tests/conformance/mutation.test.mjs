// Mutation test: thousands of byte-level mutations of valid signed requests, sent on raw sockets.
//
// The base requests are real: SigV4-signed REST calls (GET with a query, POST and PUT with JSON
// bodies, a bearer header) and a presigned GET /connect upgrade, as the SDKs put them on the wire.
// Each mutant is one to four stacked operations (flip a bit, overwrite, insert or delete bytes,
// duplicate a range, truncate, splice two requests), drawn from a seeded PRNG so a run can be
// replayed (CARILLON_MUTATION_SEED, CARILLON_MUTATIONS). The client writes the mutant, waits
// GRACE_MS for an answer (a complete request is answered while the connection is fully open), then
// half-closes its side, so the server has all the input there will ever be: it must then answer
// with one well-formed HTTP response (not a partial one) or close the connection, within
// PER_CONNECTION_MS. Afterwards the server still answers /healthz, an SDK call and a websocket
// upgrade, it never died, and its log shows no crash or sanitizer report.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { ListAppInstancesCommand } from '@aws-sdk/client-chime-sdk-identity';
import { CreateChannelCommand, CreateChannelMembershipCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { rawFetch, signRequest } from './lib/clients.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { presignConnectUrl } from './lib/realtime.mjs';
import { parseResponse, serializeRequest } from './lib/rawsocket.mjs';
import { uniq } from './lib/util.mjs';

// Rate limits off whatever their defaults: thousands of requests of one root key in seconds are
// the point here, and a 429 would only hide the paths behind it.
const ctx = useCarillon({ env: { CARILLON_REQUEST_RATE_PER_CREDENTIAL: '0', CARILLON_CONNECT_RATE_PER_USER: '0' } });

const SEED = Number(process.env.CARILLON_MUTATION_SEED ?? 20261127);
const COUNT = Number(process.env.CARILLON_MUTATIONS ?? 6000);
const CONCURRENCY = 16;
const PER_CONNECTION_MS = 5000; // from the half-close to the answer or the close
const GRACE_MS = 250; // a complete request is answered before the client half-closes
// Sanitizer reports and fatal signals, as they start a line of the server's output.
const CRASH_RE = /^(==\d+==\s*ERROR|SUMMARY: \w+Sanitizer|.*: runtime error: |Segmentation fault|.*Assertion .* failed)/m;

/** mulberry32: small, fast, seedable; the same seed gives the same mutants. */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n) => Math.floor(next() * n), pick: (arr) => arr[Math.floor(next() * arr.length)] };
}

// Bytes that tend to matter to parsers: separators, escapes, NUL, invalid and multi-byte UTF-8.
const INTERESTING = [
  '\r\n', '\r\n\r\n', ':', ' ', '%', '%00', '%FF', '%C3', '%2F', '?', '&', '=', '/', '..', '"', '\\', '{', '}', '[', ']', ',',
  '\u0000', '\xff', '\xc3', '\xe2\x82', '\xed\xa0\x80', 'é'.repeat(300), 'A'.repeat(2000), '-1', '99999999999999999999',
  'Content-Length: 5\r\n', 'Transfer-Encoding: chunked\r\n', 'x-amz-chime-bearer: x\r\n',
].map((s) => Buffer.from(s, 'latin1'));

/** One mutant of `base`; `other` is a second request for splicing. Returns {bytes, ops}. */
function mutate(rng, base, other) {
  let b = Buffer.from(base);
  const ops = [];
  const n = 1 + rng.int(4);
  for (let i = 0; i < n; i++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(9)) {
      case 0: { // flip one bit
        if (!b.length) break;
        const p = Math.min(at, b.length - 1);
        b[p] ^= 1 << rng.int(8);
        ops.push(`flip@${p}`);
        break;
      }
      case 1: { // overwrite a byte
        if (!b.length) break;
        const p = Math.min(at, b.length - 1);
        b[p] = rng.int(256);
        ops.push(`set@${p}`);
        break;
      }
      case 2: { // insert random bytes
        const k = 1 + rng.int(16);
        const ins = Buffer.alloc(k);
        for (let j = 0; j < k; j++) ins[j] = rng.int(256);
        b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
        ops.push(`insert${k}@${at}`);
        break;
      }
      case 3: { // insert an interesting token
        const tok = rng.pick(INTERESTING);
        b = Buffer.concat([b.subarray(0, at), tok, b.subarray(at)]);
        ops.push(`token${tok.length}@${at}`);
        break;
      }
      case 4: { // delete a range
        const k = 1 + rng.int(Math.max(1, Math.min(64, b.length - at)));
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + k)]);
        ops.push(`delete${k}@${at}`);
        break;
      }
      case 5: { // duplicate a range (repeated headers, pipelined requests)
        const k = 1 + rng.int(Math.max(1, Math.min(256, b.length - at)));
        const dup = b.subarray(at, at + k);
        b = Buffer.concat([b.subarray(0, at + k), dup, b.subarray(at + k)]);
        ops.push(`dup${k}@${at}`);
        break;
      }
      case 6: // truncate
        b = b.subarray(0, at);
        ops.push(`truncate@${at}`);
        break;
      case 7: { // splice: our prefix, another request's suffix
        const from = rng.int(other.length + 1);
        b = Buffer.concat([b.subarray(0, at), other.subarray(from)]);
        ops.push(`splice@${at}+${from}`);
        break;
      }
      default: { // swap two bytes
        if (b.length < 2) break;
        const p = Math.min(at, b.length - 1), q = rng.int(b.length);
        [b[p], b[q]] = [b[q], b[p]];
        ops.push(`swap@${p},${q}`);
      }
    }
  }
  return { bytes: b, ops };
}

/**
 * Write `bytes`, wait up to `grace` ms, half-close, and wait for the server: one complete
 * response, or the close (a connection that neither answers nor closes by PER_CONNECTION_MS hangs).
 * Resolves {kind: 'response'|'closed'|'reset'|'partial'|'garbage'|'hang'|'refused', status, raw, ms}.
 */
function exchange(port, bytes, { grace = GRACE_MS } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = net.connect(port, '127.0.0.1');
    const parts = [];
    let done = false;
    let reset = false;
    let refused = false;
    const finish = (kind, extra = {}) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(halfClose);
      sock.destroy();
      resolve({ kind, raw: Buffer.concat(parts), ms: Date.now() - started, ...extra });
    };
    const timer = setTimeout(() => finish('hang'), grace + PER_CONNECTION_MS);
    const judge = () => {
      const raw = Buffer.concat(parts);
      const r = parseResponse(raw);
      if (r && Number.isNaN(r.status)) return finish('garbage', { status: r.statusLine });
      if (r && r.complete) return finish('response', { status: r.status, headers: r.headers, body: r.body });
      return null;
    };
    sock.on('data', (d) => {
      parts.push(d);
      judge();
    });
    sock.on('error', (e) => {
      if (e.code === 'ECONNREFUSED') refused = true;
      if (['ECONNRESET', 'EPIPE'].includes(e.code)) reset = true;
    });
    sock.on('close', () => {
      if (done) return;
      if (refused) return finish('refused');
      const raw = Buffer.concat(parts);
      if (!raw.length) return finish(reset ? 'reset' : 'closed');
      const r = parseResponse(raw);
      // A response without Content-Length ends with the connection: complete once closed.
      if (r && !Number.isNaN(r.status) && r.complete === false) return finish('response', { status: r.status, headers: r.headers, body: r.body });
      if (r && Number.isNaN(r.status)) return finish('garbage', { status: r.statusLine });
      finish('partial');
    });
    let halfClose = null;
    sock.on('connect', () => {
      sock.write(bytes);
      // Then all the input there will be: the server cannot wait for more.
      halfClose = setTimeout(() => sock.end(), grace);
    });
  });
}

/** The base requests, as bytes on the wire. */
async function baseRequests(srv) {
  const ai = await ctx.newAppInstance();
  const user = await ctx.newUser(ai);
  const created = await ctx.msg.send(
    new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('mut'), ChimeBearer: user.arn, ClientRequestToken: randomUUID() }),
  );
  const channel = created.ChannelArn;
  const other = await ctx.newUser(ai);
  await ctx.msg.send(new CreateChannelMembershipCommand({ ChannelArn: channel, MemberArn: other.arn, Type: 'DEFAULT', ChimeBearer: user.arn }));
  const ch = encodeURIComponent(channel);
  const bearer = { 'x-amz-chime-bearer': user.arn };
  const specs = {
    'GET DescribeAppInstance': { path: `/app-instances/${encodeURIComponent(ai)}` },
    'GET ListChannelMessages': {
      path: `/channels/${ch}/messages`,
      query: { 'max-results': '10', 'sort-order': 'ASCENDING', 'not-before': '2024-01-02T03:04:05.678Z' },
      headers: bearer,
    },
    'GET ListChannelMemberships': { path: `/channels/${ch}/memberships`, query: { type: 'DEFAULT' }, headers: bearer },
    'POST SendChannelMessage': {
      method: 'POST',
      path: `/channels/${ch}/messages`,
      headers: bearer,
      body: {
        Content: 'hello é ✓', Type: 'STANDARD', Persistence: 'PERSISTENT', ClientRequestToken: randomUUID(),
        MessageAttributes: { colour: { StringValues: ['blue'] } }, Metadata: 'm',
      },
    },
    'POST CreateChannel': {
      method: 'POST',
      path: '/channels',
      headers: bearer,
      body: { AppInstanceArn: ai, Name: 'room', Mode: 'RESTRICTED', Privacy: 'PRIVATE', ClientRequestToken: randomUUID(), Tags: [{ Key: 'k', Value: 'v' }] },
    },
    'POST CreateAppInstanceUser': {
      method: 'POST',
      path: '/app-instance-users',
      body: { AppInstanceArn: ai, AppInstanceUserId: uniq('m'), Name: 'Mutant', ClientRequestToken: randomUUID() },
    },
    'PUT UpdateChannel': { method: 'PUT', path: `/channels/${ch}`, headers: bearer, body: { Name: 'renamed', Mode: 'UNRESTRICTED', Metadata: 'x' } },
  };
  const out = {};
  for (const [name, spec] of Object.entries(specs)) {
    const signed = await signRequest(srv, spec);
    out[name] = Buffer.concat(serializeRequest(signed).map((c) => (Buffer.isBuffer(c) ? c : Buffer.from(c))));
  }
  const url = new URL(await presignConnectUrl(`127.0.0.1:${srv.port}`, user.arn, srv.rootKey, { scheme: 'ws', params: { 'prefetch-on': 'connect' } }));
  out['GET /connect upgrade'] = Buffer.from(
    `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    'latin1',
  );
  return out;
}

test('every mutation of a valid signed request gets one HTTP answer or a clean close, and the server survives', { timeout: 240_000 }, async () => {
  const bases = await baseRequests(ctx.srv);
  const names = Object.keys(bases);

  // The unmutated requests are accepted: the mutants start from something the server takes.
  for (const name of names) {
    const r = await exchange(ctx.srv.port, bases[name], { grace: PER_CONNECTION_MS });
    assert.equal(r.kind, 'response', `${name}: ${r.kind}`);
    assert.ok(r.status < 300, `${name} unmutated answered ${r.status}: ${r.body}`);
  }

  const rng = prng(SEED);
  const mutants = [];
  for (let i = 0; i < COUNT; i++) {
    const name = names[i % names.length];
    const { bytes, ops } = mutate(rng, bases[name], bases[rng.pick(names)]);
    mutants.push({ i, name, bytes, ops });
  }

  const outcomes = {};
  const failures = [];
  const fiveHundreds = [];
  const accepted = []; // with CARILLON_MUTATION_DUMP set: mutants the server accepted, for a look
  let next = 0;
  let died = null;
  const started = Date.now();
  const inFlight = new Set();
  const recent = []; // the last mutants answered: with those in flight, the suspects of a crash
  const worker = async () => {
    while (next < mutants.length && !died) {
      const m = mutants[next++];
      inFlight.add(m);
      const r = await exchange(ctx.srv.port, m.bytes);
      inFlight.delete(m);
      const key = r.kind === 'response' ? String(r.status) : r.kind;
      outcomes[key] = (outcomes[key] ?? 0) + 1;
      if (!ctx.srv.alive() && !died) died = { m, exit: ctx.srv.exitInfo, suspects: [m, ...inFlight, ...recent] };
      recent.unshift(m);
      recent.length = Math.min(recent.length, CONCURRENCY);
      if (['response', 'closed', 'reset'].includes(r.kind)) {
        if (r.kind === 'response' && r.status >= 200 && r.status < 300 && process.env.CARILLON_MUTATION_DUMP) accepted.push(m);
        if (r.kind === 'response' && r.status >= 500) fiveHundreds.push({ m, status: r.status, body: String(r.body).slice(0, 200) });
        if (r.kind === 'response' && r.headers['x-amzn-errortype']) {
          let json = null;
          try {
            json = JSON.parse(r.body);
          } catch {}
          if (!json || typeof json.Message !== 'string')
            failures.push({ m, why: `AWS error ${r.headers['x-amzn-errortype']} with a body that is not {"Code","Message"}: ${JSON.stringify(String(r.body).slice(0, 200))}` });
        }
        continue;
      }
      failures.push({ m, why: `${r.kind} after ${r.ms} ms${r.status ? ` (${r.status})` : ''}; got ${JSON.stringify(r.raw.toString('latin1').slice(0, 200))}` });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`mutation: seed ${SEED}, ${next} of ${COUNT} mutants in ${secs} s: ${JSON.stringify(outcomes)}; 5xx: ${fiveHundreds.length}`);

  // Keep what failed, for replaying by hand.
  const keep = [...accepted.map((m) => ({ m, why: 'accepted' })), ...(died ? died.suspects.map((m) => ({ m, why: 'in flight or just answered when the server died' })) : []), ...failures, ...fiveHundreds.map((f) => ({ m: f.m, why: `${f.status} ${f.body}` }))];
  if (keep.length) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'carillon-mutants-'));
    for (const { m } of keep.slice(0, 50)) writeFileSync(path.join(dir, `mutant-${m.i}.bin`), m.bytes);
    writeFileSync(path.join(dir, 'index.txt'), keep.slice(0, 50).map(({ m, why }) => `mutant-${m.i}.bin ${m.name} [${m.ops.join(' ')}]: ${why}`).join('\n') + '\n');
    console.log(`mutation: ${keep.length} problem mutants; the first 50 are in ${dir}`);
  }

  const log = ctx.srv.log();
  assert.ok(!died, `carillon died (${JSON.stringify(died?.exit)}) around mutant ${died?.m.i} (${died?.m.name}, ${died?.m.ops.join(' ')}):\n` +
    `${JSON.stringify(died?.m.bytes.toString('latin1').slice(0, 600))}\n--- log tail ---\n${log.slice(-3000)}`);
  assert.equal(next, COUNT, 'not every mutant was sent');
  assert.deepEqual(failures.slice(0, 10).map((f) => `#${f.m.i} ${f.m.name} [${f.m.ops.join(' ')}]: ${f.why}`), [],
    `${failures.length} mutants got no clean answer`);
  assert.deepEqual(fiveHundreds.slice(0, 10).map((f) => `#${f.m.i} ${f.m.name} [${f.m.ops.join(' ')}]: ${f.status} ${f.body}`), [],
    `${fiveHundreds.length} mutants were answered with a server error instead of a refusal`);

  // Still serving: health, an SDK call, a websocket upgrade; and no crash report in the log.
  const health = await rawFetch(ctx.srv, { path: '/healthz', timeoutMs: 5000 });
  assert.equal(health.status, 200, '/healthz after the mutants');
  const out = await ctx.id.send(new ListAppInstancesCommand({ MaxResults: 1 }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  const fresh = await baseRequests(ctx.srv);
  const up = await exchange(ctx.srv.port, fresh['GET /connect upgrade'], { grace: PER_CONNECTION_MS });
  assert.equal(up.kind, 'response');
  assert.equal(up.status, 101, 'a valid websocket upgrade after the mutants');
  assert.ok(ctx.srv.alive(), 'carillon is still running');
  assert.doesNotMatch(log, CRASH_RE, 'the server log reports a crash');
});
