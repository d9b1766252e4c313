// GET /metrics (Prometheus text format) on CARILLON_METRICS_LISTEN, scraped after real traffic:
// REST calls of several operations through the AWS SDK (one of them an error), a websocket session
// of the real amazon-chime-sdk-js opened, receiving a message, and closed. The values are checked
// against what the test did (as differences between a scrape before and one after), and the whole
// exposition must pass a strict parser of the text format written here.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import http from 'node:http';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import {
  CreateAppInstanceCommand,
  CreateAppInstanceUserCommand,
  DeleteAppInstanceCommand,
  DescribeAppInstanceCommand,
  DescribeAppInstanceUserCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import { CreateChannelCommand, CreateChannelMembershipCommand, SendChannelMessageCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { identity, messaging, rawSession, session, signedJson, startTlsCarillon, userCreds } from './lib/realtime.mjs';
import { freePort } from './lib/server.mjs';
import { carillonCli, describeRun, psql } from './lib/cli.mjs';

// ------------------------------------------------------------------ a strict text-format parser

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s, where) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`${where}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

// {a="x",b="y"} -> Map; label values may escape only \\ \" \n.
function parseLabels(s, where) {
  const labels = new Map();
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = s.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (labels.has(name)) throw new Error(`${where}: label ${name} twice`);
    if (s[eq + 1] !== '"') throw new Error(`${where}: label value not quoted`);
    let j = eq + 2;
    let value = '';
    for (;;) {
      if (j >= s.length) throw new Error(`${where}: unterminated label value`);
      const c = s[j];
      if (c === '"') break;
      if (c === '\\') {
        const n = s[j + 1];
        if (n === '\\') value += '\\';
        else if (n === '"') value += '"';
        else if (n === 'n') value += '\n';
        else throw new Error(`${where}: bad escape \\${n}`);
        j += 2;
        continue;
      }
      if (c === '\n') throw new Error(`${where}: raw newline in a label value`);
      value += c;
      j++;
    }
    labels.set(name, value);
    i = j + 1;
    if (i < s.length) {
      if (s[i] !== ',') throw new Error(`${where}: expected ',' between labels`);
      i++;
    }
  }
  return labels;
}

function seriesKey(name, labels, skip) {
  return name + '{' + [...labels].filter(([k]) => k !== skip).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',') + '}';
}

/**
 * Parse a whole exposition; throws on anything the format does not allow. Returns {families:
 * Map(name -> {type, help, samples: [{name, labels, value}]}), get(name, labels) -> value|undefined,
 * sum(name, filter) -> sum of the samples of that name whose labels match filter}.
 */
export function parseExposition(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map();
  const seen = new Set();
  let current = null;
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, idx) => {
    const where = `line ${idx + 1} (${JSON.stringify(line.slice(0, 80))})`;
    if (line === '') throw new Error(`${where}: empty line`);
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) {
        if (/^# (HELP|TYPE)/.test(line)) throw new Error(`${where}: malformed ${line.slice(2, 6)}`);
        return; // a comment
      }
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name`);
      let fam = families.get(name);
      if (!fam) {
        fam = { name, type: 'untyped', help: null, samples: [], typed: false };
        families.set(name, fam);
      } else if (current !== fam) throw new Error(`${where}: family ${name} is not contiguous`);
      current = fam;
      if (kind === 'TYPE') {
        if (fam.typed) throw new Error(`${where}: TYPE twice`);
        if (fam.samples.length) throw new Error(`${where}: TYPE after samples`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        fam.type = rest;
        fam.typed = true;
      } else {
        if (fam.help !== null) throw new Error(`${where}: HELP twice`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new Error(`${where}: bad escape in HELP`);
        fam.help = rest;
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample line`);
    const [, name, labelText, valueText] = m;
    const labels = parseLabels(labelText ?? '', where);
    const value = parseValue(valueText, where);
    if (!current) throw new Error(`${where}: sample before any TYPE`);
    const base = current.name;
    const allowed =
      current.type === 'histogram'
        ? [base + '_bucket', base + '_sum', base + '_count']
        : current.type === 'summary'
          ? [base, base + '_sum', base + '_count']
          : [base];
    if (!allowed.includes(name)) throw new Error(`${where}: sample ${name} outside its family ${base}`);
    if (current.type === 'counter' && (!base.endsWith('_total') || value < 0 || Number.isNaN(value))) throw new Error(`${where}: counter ${base}`);
    if (name.endsWith('_bucket') && current.type === 'histogram' && !labels.has('le')) throw new Error(`${where}: bucket without le`);
    const key = seriesKey(name, labels);
    if (seen.has(key)) throw new Error(`${where}: duplicate series ${key}`);
    seen.add(key);
    current.samples.push({ name, labels, value });
  });
  // histograms: cumulative buckets ending with +Inf equal to _count, per series
  for (const fam of families.values()) {
    if (fam.type !== 'histogram') continue;
    const groups = new Map();
    for (const s of fam.samples) {
      const k = seriesKey('', s.labels, 'le');
      if (!groups.has(k)) groups.set(k, { buckets: [], count: undefined, sum: undefined });
      const g = groups.get(k);
      if (s.name.endsWith('_bucket')) g.buckets.push([parseValue(s.labels.get('le'), fam.name), s.value]);
      else if (s.name.endsWith('_count')) g.count = s.value;
      else g.sum = s.value;
    }
    for (const [k, g] of groups) {
      assert.ok(g.buckets.length >= 1 && g.count !== undefined && g.sum !== undefined, `${fam.name}${k}: buckets, _sum and _count`);
      for (let i = 1; i < g.buckets.length; i++) {
        assert.ok(g.buckets[i][0] > g.buckets[i - 1][0], `${fam.name}${k}: le increasing`);
        assert.ok(g.buckets[i][1] >= g.buckets[i - 1][1], `${fam.name}${k}: buckets cumulative`);
      }
      const last = g.buckets[g.buckets.length - 1];
      assert.equal(last[0], Infinity, `${fam.name}${k}: the last bucket is +Inf`);
      assert.equal(last[1], g.count, `${fam.name}${k}: +Inf bucket equals _count`);
    }
  }
  const matches = (labels, filter) => Object.entries(filter).every(([k, v]) => labels.get(k) === v);
  return {
    families,
    get(name, filter = {}) {
      for (const fam of families.values())
        for (const s of fam.samples) if (s.name === name && matches(s.labels, filter) && s.labels.size === Object.keys(filter).length) return s.value;
      return undefined;
    },
    sum(name, filter = {}) {
      let total = 0;
      for (const fam of families.values()) for (const s of fam.samples) if (s.name === name && matches(s.labels, filter)) total += s.value;
      return total;
    },
  };
}

// ---------------------------------------------------------------------------------- helpers

function httpGet(port, path, { method = 'GET' } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(15000, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function rawExchange(port, bytes) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', () => {});
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    sock.on('connect', () => sock.write(bytes));
    setTimeout(() => sock.destroy(), 15000).unref();
  });
}

const ctx = {};

async function scrape() {
  const r = await httpGet(ctx.metricsPort, '/metrics');
  assert.equal(r.status, 200, r.body);
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  return { text: r.body, m: parseExposition(r.body) };
}

before(async () => {
  ctx.metricsPort = await freePort();
  ctx.srv = await startTlsCarillon({ env: { CARILLON_METRICS_LISTEN: `127.0.0.1:${ctx.metricsPort}` } });
  ctx.id = identity(ctx.srv);
  ctx.msg = messaging(ctx.srv);
});

after(async () => {
  if (ctx.app) await ctx.id.send(new DeleteAppInstanceCommand({ AppInstanceArn: ctx.app })).catch(() => {});
  ctx.id?.destroy();
  ctx.msg?.destroy();
  const alive = ctx.srv.alive();
  const info = await ctx.srv.stop();
  assert.ok(alive, `carillon died during the tests: ${JSON.stringify(info)}`);
  assert.ok(info.code === 0 || info.signal === 'SIGTERM', `carillon did not exit cleanly: ${JSON.stringify(info)}`);
});

const statusOf = (out) => out.$metadata.httpStatusCode;

// ------------------------------------------------------------------------------------ tests

test('the public port does not serve /metrics; the metrics port serves only /metrics and survives garbage', async () => {
  // even signed with the root key, GET /metrics on the public port is no operation
  const tls = await signedJson(ctx.srv, { method: 'GET', path: '/metrics' });
  assert.equal(tls.status, 404);
  assert.doesNotMatch(tls.body, /carillon_/);

  assert.equal((await httpGet(ctx.metricsPort, '/')).status, 404);
  assert.equal((await httpGet(ctx.metricsPort, '/metrics', { method: 'POST' })).status, 405);
  assert.equal((await httpGet(ctx.metricsPort, '/metrics?x=1')).status, 200);
  const garbage = await rawExchange(ctx.metricsPort, Buffer.from('\x00\xff\x16\x03\x01 nonsense\r\n\r\n', 'latin1'));
  assert.match(garbage, /^HTTP\/1\.1 400 /);
  const tooLong = await rawExchange(ctx.metricsPort, 'GET /metrics HTTP/1.1\r\nX: ' + 'a'.repeat(20000));
  assert.match(tooLong, /^HTTP\/1\.1 431 /);
  const noVersion = await rawExchange(ctx.metricsPort, 'GET /metrics\r\n\r\n');
  assert.match(noVersion, /^HTTP\/1\.1 400 /);
  const head = await rawExchange(ctx.metricsPort, 'HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(head, /^HTTP\/1\.1 200 [^]*\r\n\r\n$/);
  // many connections at once: every one is answered or closed, and the endpoint still serves
  await Promise.all(Array.from({ length: 40 }, () => rawExchange(ctx.metricsPort, 'GET /metrics HTTP/1.1\r\n\r\n')));
  await scrape();
});

test('values after real traffic: requests, group commit, pool, sessions, event pipeline, process', async () => {
  const before0 = await scrape();
  const b = before0.m;
  const t0 = Date.now();

  // --- REST: writes, reads and one error, through the AWS SDK
  const calls = new Map(); // "service/op/status" -> count
  const count = (service, op, status) => calls.set(`${service}/${op}/${status}`, (calls.get(`${service}/${op}/${status}`) ?? 0) + 1);
  const app = await ctx.id.send(new CreateAppInstanceCommand({ Name: `metrics-${randomUUID()}`, ClientRequestToken: randomUUID() }));
  ctx.app = app.AppInstanceArn;
  count('identity', 'CreateAppInstance', statusOf(app));
  const users = [];
  for (const u of ['alice', 'bob']) {
    const out = await ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ctx.app, AppInstanceUserId: u, Name: u, ClientRequestToken: randomUUID() }));
    count('identity', 'CreateAppInstanceUser', statusOf(out));
    users.push(out.AppInstanceUserArn);
  }
  for (let i = 0; i < 3; i++) count('identity', 'DescribeAppInstance', statusOf(await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: ctx.app }))));
  const missing = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: `${ctx.app}/user/nobody` })).then(
    () => assert.fail('DescribeAppInstanceUser of a missing user succeeded'),
    (e) => e,
  );
  assert.equal(missing.name, 'NotFoundException');
  count('identity', 'DescribeAppInstanceUser', missing.$metadata.httpStatusCode);
  const ch = await ctx.msg.send(new CreateChannelCommand({ AppInstanceArn: ctx.app, Name: 'metrics', Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: users[0], ClientRequestToken: randomUUID() }));
  count('messaging', 'CreateChannel', statusOf(ch));
  const mem = await ctx.msg.send(new CreateChannelMembershipCommand({ ChannelArn: ch.ChannelArn, MemberArn: users[1], Type: 'DEFAULT', ChimeBearer: users[0] }));
  count('messaging', 'CreateChannelMembership', statusOf(mem));
  const writes = 1 + 2 + 1 + 1; // CreateAppInstance, 2 users, channel, membership (+ the message below)

  // --- a websocket session of the real SDK: opened, a message delivered, closed
  const creds = await userCreds(ctx.srv, users[1]);
  count('carillon', 'CreateCredentials', 200);
  const rec = session(ctx.srv, users[1], creds, { label: 'bob' });
  await rec.ready(20000);
  const content = `hello ${randomUUID()}`;
  const sent = await ctx.msg.send(new SendChannelMessageCommand({ ChannelArn: ch.ChannelArn, Content: content, Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: users[0], ClientRequestToken: randomUUID() }));
  count('messaging', 'SendChannelMessage', statusOf(sent));
  await rec.waitFor((r) => r.messages.some((m) => m.type === 'CREATE_CHANNEL_MESSAGE' && m.payload?.Content === content), 15000, 'the message');
  await rec.stop();
  // a resume from the log position of the first scrape: the gap holds the message again
  const resumed = await rawSession(new URL(ctx.srv.endpoint).host, users[1], creds, { params: { 'since-position': String(b.get('carillon_event_log_head_position')) }, label: 'resume' });
  await resumed.waitFor((r) => r.messages.some((m) => m.type === 'CREATE_CHANNEL_MESSAGE' && m.payload?.Content === content), 15000, 'the message, resumed');
  await resumed.close();

  // the close reaches the server asynchronously: wait for the gauge to come back
  let after0;
  for (const deadline = Date.now() + 15000; ; ) {
    after0 = await scrape();
    if (after0.m.get('carillon_sessions_open') === b.get('carillon_sessions_open')) break;
    if (Date.now() > deadline) assert.fail(`carillon_sessions_open stayed at ${after0.m.get('carillon_sessions_open')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const a = after0.m;
  const d = (name, filter = {}) => a.sum(name, filter) - b.sum(name, filter);

  // requests: exactly what was sent, by service, operation and status; latency counts agree
  for (const [key, n] of calls) {
    const [service, operation, status] = key.split('/');
    assert.equal(d('carillon_http_requests_total', { service, operation, status }), n, `requests ${key}`);
  }
  const gmse = d('carillon_http_requests_total', { service: 'messaging', operation: 'GetMessagingSessionEndpoint', status: '200' });
  assert.ok(gmse >= 1, 'the SDK asked GetMessagingSessionEndpoint');
  const expectedTotal = [...calls.values()].reduce((x, y) => x + y, 0) + gmse;
  assert.equal(d('carillon_http_requests_total'), expectedTotal, 'no request uncounted or counted twice');
  for (const op of ['CreateAppInstance', 'CreateAppInstanceUser', 'DescribeAppInstance', 'DescribeAppInstanceUser', 'CreateChannel', 'SendChannelMessage']) {
    assert.equal(
      a.sum('carillon_http_request_duration_seconds_count', { operation: op }),
      a.sum('carillon_http_requests_total', { operation: op }),
      `latency histogram _count of ${op} equals its requests`,
    );
  }
  assert.equal(d('carillon_http_request_duration_seconds_count'), expectedTotal);
  const elapsed = (Date.now() - t0) / 1000;
  assert.ok(d('carillon_http_request_duration_seconds_sum') > 0 && d('carillon_http_request_duration_seconds_sum') < elapsed * 2, 'latency sum is plausible');

  // group commit: every write went through a batch
  assert.ok(d('carillon_write_batches_total') >= 1 && d('carillon_write_batches_total') <= writes + 1);
  assert.equal(d('carillon_write_batch_size_count'), d('carillon_write_batches_total'), 'one batch size per batch');
  assert.equal(d('carillon_write_batch_size_sum'), writes + 1, 'batch sizes add up to the writes sent');
  assert.equal(d('carillon_write_batch_duration_seconds_count'), d('carillon_write_batches_total'));
  // the pool: the NotFound is a CH error; connections up
  assert.equal(d('carillon_db_errors_total', { class: 'CH' }), 1, 'one CH404');
  assert.ok(a.get('carillon_db_connections') >= 1);
  assert.ok(a.get('carillon_db_queue_length') >= 0);

  // sessions
  assert.equal(d('carillon_sessions_opened_total'), 2);
  assert.equal(d('carillon_sessions_closed_total'), 2, 'every session opened was closed');
  assert.equal(d('carillon_sessions_closed_total', { code: '1005' }), 2, 'both clients closed without a code');
  assert.equal(a.get('carillon_sessions_open'), 0);
  assert.equal(d('carillon_session_establish_duration_seconds_count'), 2);
  assert.equal(d('carillon_session_resumes_total'), 1);
  assert.equal(d('carillon_session_resync_required_total'), 0);
  const sdkFrames = rec.messages.filter((m) => m.type !== 'SESSION_ESTABLISHED').length + 1;
  assert.equal(d('carillon_session_frames_sent_total'), sdkFrames + resumed.messages.length,
    `frames sent = what both clients received (SESSION_ESTABLISHED included): ${rec.describe()}\n${resumed.describe()}`);
  assert.ok(d('carillon_session_bytes_sent_total') > content.length);
  assert.equal(a.get('carillon_session_queued_bytes'), 0);
  assert.equal(d('carillon_session_slow_consumer_closes_total'), 0);

  // event pipeline: the head is at least our message's event, the listener caught up (lag >= 0)
  const head = a.get('carillon_event_log_head_position');
  const pos = a.get('carillon_event_listener_position');
  assert.ok(head > 0 && pos > 0, `head ${head}, listener ${pos}`);
  assert.ok(head - pos >= 0, `lag ${head - pos} >= 0`);
  assert.ok(head > b.get('carillon_event_log_head_position'), 'the log grew');
  assert.ok(d('carillon_event_listener_notifies_total') >= 1, 'NOTIFY woke the listener');
  assert.ok(a.get('carillon_event_listener_polls_total') >= 0);
  assert.ok(d('carillon_event_deliveries_total') >= 1);
  assert.ok(d('carillon_event_delivery_delay_seconds_count') >= 1, 'the message had a first delivery');
  assert.ok(d('carillon_event_delivery_delay_seconds_sum') < elapsed + 1);

  // process
  const now = Date.now() / 1000;
  assert.ok(a.get('process_resident_memory_bytes') > 1e6);
  assert.ok(a.get('process_open_fds') >= 5);
  assert.ok(a.get('process_cpu_seconds_total') > 0);
  // the executable's uv_poll_start (src/util/uv_poll_filter.c) is the one libwebsockets calls: its
  // keep-alive requests re-arm read interest they already have, and those restarts are skipped
  assert.ok(d('carillon_poll_restarts_skipped_total') >= 1, 'restarts of unchanged polls skipped');
  // and a response's write interest, set and cleared again, changes the poll's events in place
  assert.ok(d('carillon_poll_changes_in_place_total') >= 1, 'changes of events made in place');
  const start = a.get('process_start_time_seconds');
  assert.ok(start <= now && start > now - 600, `start time ${start}`);
  assert.equal(a.get('carillon_build_info', { version: a.families.get('carillon_build_info').samples[0].labels.get('version') }), 1);
  assert.match(a.families.get('carillon_build_info').samples[0].labels.get('version'), /^\d+\.\d+\.\d+/);
  // every family has HELP and TYPE; the outbox families exist for later writers
  for (const fam of a.families.values()) assert.ok(fam.typed && fam.help !== null, `${fam.name} has HELP and TYPE`);
  for (const name of ['carillon_outbox_depth', 'carillon_outbox_oldest_age_seconds', 'carillon_outbox_outcomes_total', 'carillon_outbound_requests_total'])
    assert.ok(a.families.has(name), name);
});

test('a node with no session passes notifications over, and a session connecting afterwards misses nothing', async () => {
  // The previous test's sessions are closed (it waits for the gauge); this node has none now.
  const b = (await scrape()).m;
  assert.equal(b.get('carillon_sessions_open'), 0);
  const users = [];
  for (const u of ['carol', 'dave']) {
    const out = await ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ctx.app, AppInstanceUserId: u, Name: u, ClientRequestToken: randomUUID() }));
    users.push(out.AppInstanceUserArn);
  }
  const ch = await ctx.msg.send(new CreateChannelCommand({ AppInstanceArn: ctx.app, Name: 'passed', Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: users[0], ClientRequestToken: randomUUID() }));
  await ctx.msg.send(new CreateChannelMembershipCommand({ ChannelArn: ch.ChannelArn, MemberArn: users[1], Type: 'DEFAULT', ChimeBearer: users[0] }));
  // The listener's position reaches the head, and notifications were passed over.
  let a;
  for (const deadline = Date.now() + 15000; ; ) {
    a = (await scrape()).m;
    if (a.get('carillon_event_listener_position') >= a.get('carillon_event_log_head_position')) break;
    if (Date.now() > deadline) assert.fail(`listener at ${a.get('carillon_event_listener_position')}, head ${a.get('carillon_event_log_head_position')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(a.sum('carillon_event_listener_reads_passed_total') - b.sum('carillon_event_listener_reads_passed_total') >= 1,
    'notifications passed over on a node without sessions');
  // A session that connects afterwards gets what is sent from then on (the reads are back), and a
  // resume from before the passed events finds them in the log.
  const creds = await userCreds(ctx.srv, users[1]);
  const rec = session(ctx.srv, users[1], creds, { label: 'dave' });
  await rec.ready(20000);
  const content = `after the passes ${randomUUID()}`;
  await ctx.msg.send(new SendChannelMessageCommand({ ChannelArn: ch.ChannelArn, Content: content, Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: users[0], ClientRequestToken: randomUUID() }));
  await rec.waitFor((r) => r.messages.some((m) => m.type === 'CREATE_CHANNEL_MESSAGE' && m.payload?.Content === content), 15000, 'the message');
  await rec.stop();
  const resumed = await rawSession(new URL(ctx.srv.endpoint).host, users[1], creds, { params: { 'since-position': String(b.get('carillon_event_log_head_position')) }, label: 'resume' });
  await resumed.waitFor((r) => r.messages.some((m) => m.type === 'CREATE_CHANNEL_MEMBERSHIP' && m.payload?.Member?.Arn === users[1])
    && r.messages.some((m) => m.type === 'CREATE_CHANNEL_MESSAGE' && m.payload?.Content === content), 15000, 'the passed membership event and the message, resumed');
  await resumed.close();
  for (const deadline = Date.now() + 15000; (await scrape()).m.get('carillon_sessions_open') !== 0; ) {
    if (Date.now() > deadline) assert.fail('sessions did not close');
    await new Promise((r) => setTimeout(r, 100));
  }
});

test('the loop lag histogram takes a sample every 100 ms', async () => {
  const b = (await scrape()).m;
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, 1500));
  const a = (await scrape()).m;
  const secs = (Date.now() - t0) / 1000;
  assert.equal(a.families.get('carillon_loop_lag_seconds')?.type, 'histogram');
  const n = a.get('carillon_loop_lag_seconds_count') - b.get('carillon_loop_lag_seconds_count');
  assert.ok(n >= Math.floor(secs * 10) - 3 && n <= Math.ceil(secs * 10) + 2, `${n} samples in ${secs.toFixed(2)} s`);
  const late = a.get('carillon_loop_lag_seconds_sum') - b.get('carillon_loop_lag_seconds_sum');
  assert.ok(late >= 0 && late < 0.05 * n, `an idle loop is late by ${late} s over ${n} samples`);
});

test('the parser is strict (it would catch a malformed exposition)', () => {
  const ok = '# HELP x_total h\n# TYPE x_total counter\nx_total{a="1"} 2\n';
  assert.equal(parseExposition(ok).get('x_total', { a: '1' }), 2);
  for (const bad of [
    '# TYPE x_total counter\nx_total{a="1"} 2', // no final newline
    '# TYPE x_total counter\nx_total{a="1"} 2\nx_total{a="1"} 3\n', // duplicate
    '# TYPE x counter\nx 1\n', // counter without _total
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', // not cumulative
    '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n', // +Inf != count
    '# TYPE g gauge\ng{a="x\\q"} 1\n', // bad escape
    '# TYPE g gauge\ng{a=x} 1\n',
    '# TYPE g gauge\ng 1,5\n',
    'g 1\n', // no TYPE
    '# TYPE g gauge\ny 1\n', // outside its family
  ])
    assert.throws(() => parseExposition(bad), undefined, JSON.stringify(bad));
});

test('a metrics address that cannot be used refuses to start, the public port included', async () => {
  const port = await freePort();
  for (const [env, why] of [
    [{ CARILLON_LISTEN: `127.0.0.1:${port}`, CARILLON_METRICS_LISTEN: `127.0.0.1:${port}` }, /cannot serve metrics on 127\.0\.0\.1:\d+: address already in use/],
    [{ CARILLON_LISTEN: `127.0.0.1:${port}`, CARILLON_METRICS_LISTEN: `127.0.0.1:${ctx.metricsPort}` }, /cannot serve metrics on .*address already in use/],
    [{ CARILLON_LISTEN: `127.0.0.1:${port}`, CARILLON_METRICS_LISTEN: 'localhost' }, /CARILLON_METRICS_LISTEN must be ip:port/],
  ]) {
    const r = await carillonCli(ctx.srv, ['serve'], { env, timeoutMs: 60000 });
    assert.ok(r.code !== 0 && r.code !== null, describeRun(r));
    assert.match(r.stderr, why, describeRun(r));
  }
  await scrape(); // the running server is unaffected
});

test('cut database connections are counted as reconnects and come back in the connection gauge', async () => {
  const b = (await scrape()).m;
  const poolSize = b.get('carillon_db_connections');
  assert.equal(poolSize, 4, 'CARILLON_DB_POOL_SIZE connections up');
  // Every backend of this server (the test database is this file's alone while it runs).
  const cut = Number(
    await psql(`select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`),
  );
  assert.ok(cut >= poolSize + 1, `pool and LISTEN connections cut (${cut})`);
  let a;
  for (const deadline = Date.now() + 20000; ; ) {
    a = (await scrape()).m;
    if (a.get('carillon_db_connections') === poolSize && a.sum('carillon_db_reconnects_total') - b.sum('carillon_db_reconnects_total') >= cut) break;
    if (Date.now() > deadline) assert.fail(`connections ${a.get('carillon_db_connections')}, reconnects +${a.sum('carillon_db_reconnects_total') - b.sum('carillon_db_reconnects_total')} of ${cut} cut`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // the server still answers (a read through the pool)
  assert.equal((await ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: ctx.app }))).$metadata.httpStatusCode, 200);
});
