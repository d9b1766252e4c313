// Several Carillon nodes on one PostgreSQL, HAProxy in front (deploy/haproxy.cfg, made runnable
// here by lib/realtime.mjs haproxyConfig), and faults: database connections cut, PostgreSQL
// restarted, a node killed, a consumer that stops reading.
//
// This file runs its own PostgreSQL cluster (tests/lib/pg.sh, in a temporary directory) so that
// restarting it and cutting its connections disturbs no other test file; CARILLON_TEST_DATABASE_URL
// is not used here. Nodes serve plain HTTP on loopback ports; HAProxy terminates TLS with the test
// certificate; JS SDK sessions go through HAProxy, REST writes go straight to chosen nodes.
//
// Writes: SendChannelMessage when the server has it, else CreateChannelMembership (one new member
// per write): both put one event per committed write in the log. Tests that only make sense with
// messages are marked `todo: 'needs SendChannelMessage'` while the server lacks it.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { CreateAppInstanceCommand, CreateAppInstanceUserCommand } from '@aws-sdk/client-chime-sdk-identity';
import { CreateChannelCommand, CreateChannelMembershipCommand, SendChannelMessageCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { psql } from './lib/cli.mjs';
import { identityClient, messagingClient, signedFetch } from './lib/clients.mjs';
import {
  deadline,
  healthz,
  rawSession,
  rssKb,
  session,
  sleep,
  startHaproxy,
  startPrivatePostgres,
  userCreds,
} from './lib/realtime.mjs';
import { freePort, randomMasterKey, randomRootKey, startCarillon } from './lib/server.mjs';
import { uniq } from './lib/util.mjs';

const pg = await startPrivatePostgres();
const masterKey = randomMasterKey();
const rootKey = randomRootKey();
const lbPort = await freePort();
const nodes = []; // {name, port, srv, msg, id}
let lb = null;
// Whatever happens (a failed start below, an interrupted run), leave no PostgreSQL, node or
// HAProxy behind. after() does the orderly version.
process.on('exit', () => {
  for (const n of nodes) if (n.srv.alive()) n.srv.proc.kill('SIGKILL');
  if (lb && lb.proc.exitCode === null) lb.proc.kill('SIGKILL');
  pg.stop();
});

async function startNode(name, port) {
  const metricsPort = await freePort();
  const srv = await startCarillon({
    databaseUrl: pg.url,
    masterKey,
    rootKey,
    port,
    env: { CARILLON_PUBLIC_ENDPOINT: `127.0.0.1:${lbPort}`, CARILLON_METRICS_LISTEN: `127.0.0.1:${metricsPort}` },
  });
  return { name, port: srv.port, metricsPort, srv, msg: messagingClient(srv), id: identityClient(srv) };
}

/** A counter of a node's /metrics (CARILLON_METRICS_LISTEN). */
async function counterOf(node, name) {
  const r = await fetch(`http://127.0.0.1:${node.metricsPort}/metrics`);
  assert.equal(r.status, 200);
  const line = (await r.text()).split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${node.name} exports ${name}`);
  return Number(line.split(' ')[1]);
}

after(async () => {
  const problems = [];
  await lb?.stop();
  for (const n of nodes) {
    n.msg.destroy();
    n.id.destroy();
    if (!n.srv.alive()) problems.push(`${n.name} died: ${JSON.stringify(n.srv.exitInfo)}`);
    const info = await n.srv.stop();
    if (!(info.code === 0 || info.signal === 'SIGTERM')) problems.push(`${n.name} did not exit cleanly on SIGTERM: ${JSON.stringify(info)}`);
  }
  pg.stop();
  if (problems.length) throw new Error(problems.join('\n'));
});

// Three nodes, started one after another (each applies the migrations under the advisory lock).
for (const name of ['node1', 'node2', 'node3']) nodes.push(await startNode(name));
lb = await startHaproxy({ servers: nodes.map((n) => ({ name: n.name, port: n.port })), rootKey, port: lbPort });
const nodeByName = (name) => nodes.find((n) => n.name === name);

// Which messaging operations exist (the others answer BadRequest "... not implemented ...").
let hasSend = true;
try {
  await nodes[0].msg.send(
    new SendChannelMessageCommand({
      ChannelArn: `arn:aws:chime:us-east-1:111122223333:app-instance/${randomUUID()}/channel/${randomUUID()}`,
      Content: 'x',
      Type: 'STANDARD',
      Persistence: 'PERSISTENT',
      ChimeBearer: `arn:aws:chime:us-east-1:111122223333:app-instance/${randomUUID()}/user/probe`,
    }),
  );
} catch (e) {
  if (e.name === 'BadRequestException' && /not implemented/i.test(e.message)) hasSend = false;
}
const NEEDS_SEND = hasSend ? undefined : 'needs SendChannelMessage';

// ---------------------------------------------------------------- fixtures

async function newWorld(names, via = nodes[0]) {
  const ai = (await via.id.send(new CreateAppInstanceCommand({ Name: uniq('rtc') }))).AppInstanceArn;
  const w = { ai };
  const all = [...names];
  for (let i = 0; i < all.length; i += 16) {
    await Promise.all(
      all.slice(i, i + 16).map(async (n) => {
        const arn = (await via.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq(n), Name: n }))).AppInstanceUserArn;
        w[n] = { name: n, arn };
      }),
    );
  }
  return w;
}

async function newChannel(creator, members = [], via = nodes[0]) {
  const ch = (
    await via.msg.send(
      new CreateChannelCommand({ AppInstanceArn: creator.arn.split('/user/')[0], Name: uniq('ch'), Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: creator.arn }),
    )
  ).ChannelArn;
  for (const m of members) await via.msg.send(new CreateChannelMembershipCommand({ ChannelArn: ch, MemberArn: m.arn, Type: 'DEFAULT', ChimeBearer: creator.arn }));
  return ch;
}

/** A JS SDK session through HAProxy with the user's own credentials; waits for SESSION_ESTABLISHED. */
async function connect(t, user, opts = {}) {
  const creds = await userCreds(nodes.find((n) => n.srv.alive()).srv, user.arn);
  const rec = session(lb, user.arn, creds, { label: user.name, reconnectTimeoutMs: 20000, ...opts });
  t.after(() => rec.stop());
  await rec.ready();
  await rec.waitFor((r) => r.ofType('SESSION_ESTABLISHED').length >= 1, 3000, 'SESSION_ESTABLISHED');
  return rec;
}

function backendOf(rec, nth = 0) {
  return rec.lifecycle.filter((e) => e.what === 'start')[nth]?.backend;
}

/**
 * Writes into channel `ch` by `sender`, each producing one event: a message (SendChannelMessage,
 * one ClientRequestToken per write, reused by its retries) or, without SendChannelMessage, a new
 * member (w.pool[i]; a retry answered ConflictException means the earlier attempt committed).
 * write(i, node) retries failures (up to ~12 s) and returns the write's key; received(rec) lists
 * the keys of the write events a session got, in arrival order.
 */
function writer(w, ch, sender) {
  const failures = [];
  const mode = hasSend ? 'message' : 'membership';
  const keys = new Set();
  return {
    mode,
    failures,
    async write(i, node) {
      const token = randomUUID();
      for (let attempt = 0; ; attempt++) {
        try {
          if (mode === 'message') {
            const out = await node.msg.send(
              new SendChannelMessageCommand({ ChannelArn: ch, Content: `w-${i}`, Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: sender.arn, ClientRequestToken: token }),
            );
            keys.add(out.MessageId);
            return out.MessageId;
          }
          const member = w.pool[i];
          await node.msg.send(new CreateChannelMembershipCommand({ ChannelArn: ch, MemberArn: member.arn, Type: 'DEFAULT', ChimeBearer: sender.arn }));
          keys.add(member.arn);
          return member.arn;
        } catch (e) {
          if (mode === 'membership' && attempt > 0 && e.name === 'ConflictException') {
            keys.add(w.pool[i].arn);
            return w.pool[i].arn;
          }
          failures.push(`write ${i} via ${node.name}, attempt ${attempt}: ${e.name} ${e.message}`.slice(0, 200));
          if (attempt >= 120) throw new Error(`write ${i} via ${node.name} still failing after ${attempt + 1} attempts: ${e.name}: ${e.message}`);
          await sleep(100);
        }
      }
    },
    received(rec) {
      if (mode === 'message') return rec.ofType('CREATE_CHANNEL_MESSAGE', ch).map((m) => m.payload.MessageId);
      return rec
        .ofType('CREATE_CHANNEL_MEMBERSHIP', ch)
        .map((m) => m.payload.Member.Arn)
        .filter((a) => w.poolArns.has(a));
    },
  };
}

async function worldWithPool(names, poolSize) {
  const pool = Array.from({ length: hasSend ? 0 : poolSize }, (_, i) => `w${i}`);
  const w = await newWorld([...names, ...pool]);
  w.pool = pool.map((n) => w[n]);
  w.poolArns = new Set(w.pool.map((u) => u.arn));
  return w;
}

// ---------------------------------------------------------------- tests

test('HAProxy runs deploy/haproxy.cfg: REST and sessions through it, GetMessagingSessionEndpoint names it, sessions spread by leastconn', async (t) => {
  const w = await newWorld(['a0', 'a1', 'a2']);
  const recs = [];
  for (const u of [w.a0, w.a1, w.a2]) recs.push(await connect(t, u));
  for (const r of recs) assert.ok(nodes.some((n) => n.name === backendOf(r)), `${r.label} landed on a node (${backendOf(r)})`);
  assert.equal(new Set(recs.map((r) => backendOf(r))).size, 3, `leastconn spreads three idle sessions over three nodes: ${recs.map((r) => backendOf(r))}`);
  const r = await signedFetch({ port: nodes[1].port, rootKey, region: 'us-east-1' }, { method: 'GET', path: '/endpoints/messaging-session' });
  assert.deepEqual(r.json, { Endpoint: { Url: `127.0.0.1:${lbPort}` } }, 'every node names the load balancer');
});

test('a session through HAProxy receives the writes made through every node, in commit order, each once', async (t) => {
  const w = await worldWithPool(['alice', 'bob'], 30);
  const ch = await newChannel(w.alice, [w.bob]);
  const rec = await connect(t, w.bob);
  const home = backendOf(rec);
  const wr = writer(w, ch, w.alice);
  const expected = [];
  for (let i = 0; i < 30; i++) expected.push(await wr.write(i, nodes[i % nodes.length]));
  const foreign = expected.filter((_, i) => nodes[i % nodes.length].name !== home).length;
  assert.ok(foreign >= 20, `at least 20 of the writes went through nodes other than ${home} (${foreign})`);
  await rec.waitFor((r) => wr.received(r).length >= expected.length, 10000, `${expected.length} events`);
  await sleep(300);
  assert.deepEqual(wr.received(rec), expected, `the session on ${home} got every write, in order, once`);
  assert.deepEqual(wr.failures, []);
});

test("a node's own write batches reach its sessions from their answers, the other nodes' from the log: concurrent writes through every node arrive each once, in commit order", { todo: NEEDS_SEND }, async (t) => {
  const w = await worldWithPool(['alice', 'bob'], 0);
  const ch = await newChannel(w.alice, [w.bob]);
  const rec = await connect(t, w.bob);
  const home = nodeByName(backendOf(rec));
  const taken0 = await counterOf(home, 'carillon_event_listener_from_answers_total');
  const wr = writer(w, ch, w.alice);
  let n = 0;
  // Rounds of one write through every node at once (the home node's answers then often are not the
  // next positions: another node's events are between, and the log has to be read), then writes
  // through the home node alone (its answers are the next positions).
  for (let round = 0; round < 10; round++) await Promise.all(nodes.map((node) => wr.write(n++, node)));
  for (let i = 0; i < 10; i++) await wr.write(n++, home);
  const committed = (
    await psql(`select coalesce(payload_text::jsonb, payload)->>'MessageId' from carillon.events where channel_arn = '${ch}' and event_type = 'CREATE_CHANNEL_MESSAGE' order by position`, {
      databaseUrl: pg.url,
    })
  ).split('\n');
  assert.equal(committed.length, n);
  await rec.waitFor((r) => wr.received(r).length >= n, 10000, `${n} events`);
  await sleep(300);
  assert.deepEqual(wr.received(rec), committed, `the session on ${home.name} got every write, in commit order, once`);
  const taken = (await counterOf(home, 'carillon_event_listener_from_answers_total')) - taken0;
  assert.ok(taken >= 5, `${home.name} handed at least 5 of its own writes' events over from their answers (${taken})`);
  assert.deepEqual(wr.failures, []);
});

test('SO_REUSEPORT: two processes on one port both serve; with one stopped the port still answers every request', async () => {
  const port = await freePort();
  const mk = (tag) => startCarillon({ databaseUrl: pg.url, masterKey, rootKey, port, env: { CARILLON_PUBLIC_ENDPOINT: `${tag}.invalid:1` } });
  const a = await mk('a');
  let b;
  try {
    b = await mk('b');
    // Which process answered: each names its own CARILLON_PUBLIC_ENDPOINT. A new connection per
    // request (agent false): the kernel picks a listener per connection.
    const ask = async () => (await signedFetch({ port, rootKey, region: 'us-east-1' }, { method: 'GET', path: '/endpoints/messaging-session' })).json?.Endpoint?.Url;
    const seen = {};
    for (let i = 0; i < 40; i++) {
      const url = await ask();
      seen[url] = (seen[url] ?? 0) + 1;
    }
    assert.deepEqual(Object.keys(seen).sort(), ['a.invalid:1', 'b.invalid:1'], `both processes answered: ${JSON.stringify(seen)}`);
    const info = await a.stop();
    assert.ok(info.code === 0 || info.signal === 'SIGTERM', `a exits cleanly: ${JSON.stringify(info)}`);
    const after = {};
    for (let i = 0; i < 20; i++) {
      const url = await ask();
      after[url] = (after[url] ?? 0) + 1;
    }
    assert.deepEqual(after, { 'b.invalid:1': 20 }, 'every request answered by the remaining process');
  } finally {
    await a.stop();
    await b?.stop();
  }
});

test('database connections cut while writes go on: every committed write reaches the live session, in order, once', async (t) => {
  // Two kinds of cut, each while writes continue: every connection of every node (pools and
  // LISTEN), twice; and, for about a second, each node's LISTEN connection again and again, so
  // that writes commit while a node hears no notification and must catch up from the log when
  // its listener is back.
  const N = 90;
  const w = await worldWithPool(['alice', 'bob'], N);
  const ch = await newChannel(w.alice, [w.bob]);
  const rec = await connect(t, w.bob);
  const wr = writer(w, ch, w.alice);
  const cuts = [];
  const cut = async (listenersOnly) => {
    // A full cut waits until every node's LISTEN connection is back from the previous one (the
    // nodes reconnect with backoff): it must find them all to show that it terminates them all.
    for (let t0 = Date.now(); !listenersOnly && Date.now() - t0 < 10000; await sleep(20)) {
      const up = Number(await psql(`select count(*) from pg_stat_activity where datname = current_database() and query like 'LISTEN%'`, { databaseUrl: pg.url }));
      if (up >= nodes.length) break;
    }
    const out = await psql(
      `select count(*) filter (where query like 'LISTEN%') || ' ' || count(*) from
         (select query, pg_terminate_backend(pid) from pg_stat_activity
           where datname = current_database() and pid <> pg_backend_pid()
             ${listenersOnly ? "and query like 'LISTEN%'" : ''}) x`,
      { databaseUrl: pg.url },
    );
    const [listeners, total] = out.split(' ').map(Number);
    cuts.push({ listenersOnly, listeners, total });
  };
  let cutting = Promise.resolve();
  let listenerCuts = null;
  const expected = [];
  for (let i = 0; i < N; i++) {
    if (i === 15 || i === 35) cutting = cutting.then(() => cut(false)); // concurrently with the writes that follow
    if (i === 55) {
      // For at least a second, and until every node's listener was cut at least twice (each
      // reconnects with backoff, so on a loaded machine a second may find too few of them; at
      // most 10 s). Only once the full cuts are over: overlapping one, they would take the LISTEN
      // connections it must find. The writes that follow go on during them.
      await cutting;
      listenerCuts = (async () => {
        const t0 = Date.now();
        const cutSoFar = () => cuts.filter((c) => c.listenersOnly).reduce((a, c) => a + c.listeners, 0);
        while (Date.now() - t0 < 1000 || (cutSoFar() < nodes.length * 2 && Date.now() - t0 < 10000)) {
          await cut(true);
          await sleep(20);
        }
      })();
    }
    expected.push(await wr.write(i, nodes[i % nodes.length]));
  }
  await cutting;
  await listenerCuts;
  const full = cuts.filter((c) => !c.listenersOnly);
  const listenerOnly = cuts.filter((c) => c.listenersOnly);
  t.diagnostic(
    `full cuts: ${JSON.stringify(full)}; LISTEN-only cuts: ${listenerOnly.length} (${listenerOnly.reduce((a, c) => a + c.listeners, 0)} connections); REST failures retried: ${wr.failures.length}`,
  );
  for (const c of full) assert.equal(c.listeners, nodes.length, `each full cut terminated every node's LISTEN connection (${JSON.stringify(c)})`);
  assert.ok(listenerOnly.reduce((a, c) => a + c.listeners, 0) >= nodes.length * 2, 'the LISTEN connections were cut again and again');
  await rec.waitFor((r) => wr.received(r).length >= expected.length, 15000, `${expected.length} events`);
  await sleep(500);
  assert.deepEqual(wr.received(rec), expected, 'every committed write, in order, no duplicates');
  for (const n of nodes) assert.equal(await healthz(n.srv), 200, `${n.name} healthy again`);
});

test('PostgreSQL restarted: the nodes recover without restarting (healthz 200), open sessions get new events', async (t) => {
  const w = await worldWithPool(['alice', 'bob', 'carol'], 6);
  const ch = await newChannel(w.alice, [w.bob, w.carol]);
  const recs = [await connect(t, w.bob), await connect(t, w.carol)];
  const pids = nodes.map((n) => n.srv.proc.pid);
  pg.restart();
  const until = Date.now() + 20000;
  for (const n of nodes) {
    while ((await healthz(n.srv)) !== 200) {
      assert.ok(Date.now() < until, `${n.name} answers /healthz 200 within 20 s of the restart`);
      await sleep(100);
    }
  }
  assert.deepEqual(nodes.map((n) => n.srv.proc.pid), pids, 'same processes');
  assert.ok(nodes.every((n) => n.srv.alive()), 'no node exited');
  const wr = writer(w, ch, w.alice);
  const expected = [];
  for (let i = 0; i < 6; i++) expected.push(await wr.write(i, nodes[i % nodes.length]));
  for (const r of recs) {
    await r.waitFor((x) => wr.received(x).length >= expected.length, 10000, 'the writes made after the restart');
    assert.deepEqual(wr.received(r), expected, r.label);
  }
  t.diagnostic(`REST failures retried after the restart: ${wr.failures.length}; session starts: ${recs.map((r) => r.starts)}`);
});

test('a node killed (SIGKILL) behind HAProxy: its clients reconnect through HAProxy to another node, SESSION_ESTABLISHED again, then new events', async (t) => {
  const w = await worldWithPool(['alice', 'k0', 'k1', 'k2', 'k3', 'k4', 'k5'], 3);
  const users = [w.k0, w.k1, w.k2, w.k3, w.k4, w.k5];
  const ch = await newChannel(w.alice, users);
  const recs = [];
  for (const u of users) recs.push(await connect(t, u));
  const victim = nodeByName(backendOf(recs[0]));
  assert.ok(victim, `session 0 landed on a known node (${backendOf(recs[0])})`);
  const onVictim = recs.filter((r) => backendOf(r) === victim.name);
  const elsewhere = recs.filter((r) => backendOf(r) !== victim.name);
  assert.ok(elsewhere.length > 0, `sessions on other nodes too: ${recs.map((r) => backendOf(r))}`);
  // (lib/server.mjs reports this exit as "unexpected": it is the point of the test.)
  victim.srv.proc.kill('SIGKILL');
  for (const r of onVictim) {
    await r.waitFor((x) => x.starts >= 2, 20000, `${r.label} to reconnect`);
    await r.waitFor((x) => x.ofType('SESSION_ESTABLISHED').length >= 2, 3000, 'SESSION_ESTABLISHED again');
    assert.notEqual(backendOf(r, 1), victim.name, `${r.label} reconnected to a live node`);
    assert.ok(nodes.some((n) => n.name === backendOf(r, 1)));
    assert.equal(r.stops.length, 0, 'no didStop');
  }
  const live = nodes.filter((n) => n !== victim);
  const wr = writer(w, ch, w.alice);
  const expected = [];
  for (let i = 0; i < 3; i++) expected.push(await wr.write(i, live[i % live.length]));
  for (const r of recs) {
    await r.waitFor((x) => wr.received(x).length >= expected.length, 10000, 'the writes after the kill');
    assert.deepEqual(wr.received(r), expected, r.label);
  }
  for (const r of elsewhere) assert.equal(r.starts, 1, `${r.label} (on ${backendOf(r)}) kept its session`);
  // Bring the node back for whatever runs next.
  const idx = nodes.indexOf(victim);
  await victim.srv.stop();
  victim.msg.destroy();
  victim.id.destroy();
  nodes[idx] = await startNode(victim.name, victim.port);
});

test('a consumer that stops reading is closed (1013) while another session on the same node gets every event; memory stays bounded', { todo: NEEDS_SEND }, async (t) => {
  const TOTAL = 3000;
  const w = await newWorld(['alice', 'slow', 'fast']);
  const ch = await newChannel(w.alice, [w.slow, w.fast]);
  const node = nodes[0];
  const endpoint = `127.0.0.1:${node.port}`;
  const slow = await rawSession(endpoint, w.slow.arn, await userCreds(node.srv, w.slow.arn), { scheme: 'ws' });
  const fast = await rawSession(endpoint, w.fast.arn, await userCreds(node.srv, w.fast.arn), { scheme: 'ws' });
  t.after(() => slow.close());
  t.after(() => fast.close());
  for (const r of [slow, fast]) await r.waitFor((x) => x.ofType('SESSION_ESTABLISHED').length === 1, 5000, 'SESSION_ESTABLISHED');
  slow.ws.pause(); // stop reading from the socket: TCP backpressure reaches the server
  const rssBefore = rssKb(node.srv.proc.pid);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssKb(node.srv.proc.pid));
  }, 50);
  const body = 'x'.repeat(3000); // ~3.4 kB frames: 3000 of them are far more than socket buffers hold
  const sent = new Set();
  try {
    let next = 0;
    const writers = [nodes[1], nodes[2], nodes[1], nodes[2], nodes[1], nodes[2], nodes[1], nodes[2]].map(async (via) => {
      while (next < TOTAL) {
        const i = next++;
        const out = await via.msg.send(
          new SendChannelMessageCommand({ ChannelArn: ch, Content: `${i} ${body}`, Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: w.alice.arn }),
        );
        sent.add(out.MessageId);
      }
    });
    await Promise.all(writers);
    await fast.waitFor((x) => x.ofType('CREATE_CHANNEL_MESSAGE', ch).length >= TOTAL, 30000, `all ${TOTAL} events at the fast session`);
  } finally {
    clearInterval(sampler);
  }
  const fastIds = fast.ofType('CREATE_CHANNEL_MESSAGE', ch).map((m) => m.payload.MessageId);
  assert.equal(fastIds.length, TOTAL);
  assert.equal(new Set(fastIds).size, TOTAL, 'no duplicates');
  assert.ok(fastIds.every((id) => sent.has(id)), 'only the messages sent');
  assert.equal(fast.ws.readyState, 1, 'the fast session is still open');
  // Now read what is buffered: the slow session must end (1013, or cut) short of the total.
  slow.ws.resume();
  const closed = await Promise.race([slow.closed, deadline(15000, null)]);
  const slowIds = slow.ofType('CREATE_CHANNEL_MESSAGE', ch).map((m) => m.payload.MessageId);
  assert.ok(closed, `the slow session was closed (it got ${slowIds.length} of ${TOTAL} and stayed open)`);
  assert.ok([1013, 1006].includes(closed.code), `closed with 1013 "try again later" (or cut: 1006), got ${closed.code} ${closed.reason}`);
  assert.ok(slowIds.length < TOTAL, `closed before getting everything (${slowIds.length})`);
  assert.deepEqual(slowIds, fastIds.slice(0, slowIds.length), 'what the slow session got is a prefix of the stream, in order');
  const growthMb = (rssPeak - rssBefore) / 1024;
  t.diagnostic(`slow session: ${slowIds.length} events then close ${closed.code}; node RSS ${Math.round(rssBefore / 1024)} MB → peak ${Math.round(rssPeak / 1024)} MB`);
  // Bounds: the slow session may hold at most 1024 frames / 4 MiB; the node idles at ~11 MB and
  // peaked at ~15 MB in this test when it was written. Under AddressSanitizer (scripts/test.sh with
  // CARILLON_SANITIZE) freed memory sits in ASan's quarantine, so RSS says nothing: not checked.
  if (readFileSync(`/proc/${node.srv.proc.pid}/maps`, 'utf8').includes('libasan')) {
    t.diagnostic('AddressSanitizer build: RSS bounds not checked');
  } else {
    assert.ok(rssPeak < 100 * 1024, `the node's RSS stays under 100 MB (peak ${Math.round(rssPeak / 1024)} MB)`);
    assert.ok(growthMb < 32, `the node's RSS grows by less than 32 MB (${growthMb.toFixed(1)} MB)`);
  }
  assert.equal(await healthz(node.srv), 200);
});

test('every node is still up and healthy at the end', async () => {
  for (const n of nodes) {
    assert.ok(n.srv.alive(), `${n.name} alive`);
    assert.equal(await healthz(n.srv), 200, `${n.name} /healthz`);
  }
  assert.equal(await healthz(lb), 200, 'HAProxy /healthz');
});
