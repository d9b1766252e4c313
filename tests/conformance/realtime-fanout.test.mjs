// Fan-out in slices (CARILLON_FANOUT_SLICE): an event for many sessions is delivered a slice of
// sessions per loop turn, so other work interleaves, while every session still gets every event
// once and in log order. Real server, real PostgreSQL, real websocket clients (the `ws` package),
// REST writes through @aws-sdk/client-chime-sdk-messaging.
//
// The server runs with CARILLON_FANOUT_SLICE=1: every delivery is its own loop turn, so a fan-out
// to a few hundred sessions spans hundreds of turns, and a bug in the slicing (an event overtaking
// an earlier one still being sliced, a session closed mid-fan-out still written to, a joiner given
// an event twice) shows up with a handful of sessions.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CreateAppInstanceCommand, CreateAppInstanceUserCommand, DeleteAppInstanceCommand } from '@aws-sdk/client-chime-sdk-identity';
import { BatchCreateChannelMembershipCommand, CreateChannelCommand, SendChannelMessageCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { startChildScript } from './lib/child-script.mjs';
import { identity, messaging, rawSession } from './lib/realtime.mjs';
import { startCarillon } from './lib/server.mjs';
import { uniq } from './lib/util.mjs';

const srv = await startCarillon({
  env: { CARILLON_FANOUT_SLICE: process.env.FANOUT_TEST_SLICE ?? '1', CARILLON_MAX_SESSIONS_PER_USER: '1000', CARILLON_CONNECT_RATE_PER_USER: '0', CARILLON_LOG_LEVEL: 'debug' },
});
const id = identity(srv);
const msg = messaging(srv);
const apps = [];

after(async () => {
  for (const ai of apps) {
    try {
      await id.send(new DeleteAppInstanceCommand({ AppInstanceArn: ai }));
    } catch {}
  }
  id.destroy();
  msg.destroy();
  const alive = srv.alive();
  const info = await srv.stop();
  assert.ok(alive, `carillon died during the tests: ${JSON.stringify(info)}`);
  assert.ok(info.code === 0 || info.signal === 'SIGTERM', `carillon did not exit cleanly: ${JSON.stringify(info)}`);
});

/** An app instance, `n` users, and one channel they are all members of. */
async function population(n) {
  const ai = (await id.send(new CreateAppInstanceCommand({ Name: uniq('fanout') }))).AppInstanceArn;
  apps.push(ai);
  const users = [];
  for (let i = 0; i < n; i++) {
    users.push((await id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq(`u${i}`), Name: `u${i}` }))).AppInstanceUserArn);
  }
  const ch = (await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'fan', Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: users[0], ClientRequestToken: uniq('c') }))).ChannelArn;
  await msg.send(new BatchCreateChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: users[0], MemberArns: users.slice(1), Type: 'DEFAULT' }));
  return { ai, users, ch };
}

/** `count` raw sessions (root-signed, spread over the users), established. */
async function openSessions(users, count, label) {
  const out = [];
  for (let i = 0; i < count; i += 25) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 25); j++) {
      batch.push(rawSession(`127.0.0.1:${srv.port}`, users[j % users.length], srv.rootKey, { scheme: 'ws', label: `${label}${j}` }));
    }
    out.push(...(await Promise.all(batch)));
  }
  await Promise.all(out.map((r) => r.waitFor((x) => x.ofType('SESSION_ESTABLISHED').length === 1, 60000, 'SESSION_ESTABLISHED')));
  return out;
}

const contents = (r, ch, prefix) =>
  r.ofType('CREATE_CHANNEL_MESSAGE', ch).map((m) => m.payload.Content).filter((c) => c.startsWith(prefix));

test('sliced fan-out: every session gets every message once and in the same (log) order, with sessions closing and joining while events are being sliced', async () => {
  const { users, ch } = await population(4);
  const stay = await openSessions(users, 40, 'stay');
  const leave = await openSessions(users, 12, 'leave');
  const N = 24;
  const sends = [];
  const joined = [];
  for (let i = 0; i < N; i++) {
    // several sends in flight at once: the listener reads several events per query, which queue
    // behind one another in the hub while each is sliced over 52+ loop turns
    sends.push(msg.send(new SendChannelMessageCommand({ ChannelArn: ch, Content: `m${i}`, Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: users[i % users.length], ClientRequestToken: uniq('s') })));
    if (i % 6 === 2) {
      // close some sessions mid-stream, abruptly (no close handshake) and politely
      const a = leave.pop(), b = leave.pop();
      a.ws.terminate();
      b.ws.close();
    }
    if (i % 8 === 3) joined.push(openSessions(users, 4, `late${i}`));
  }
  await Promise.all(sends);
  const late = (await Promise.all(joined)).flat();
  const all = Array.from({ length: N }, (_, i) => `m${i}`).sort();
  await Promise.all(stay.map((r) => r.waitFor((x) => contents(x, ch, 'm').length >= N, 60000, `${N} messages`)));
  const reference = contents(stay[0], ch, 'm');
  assert.deepEqual([...reference].sort(), all, 'the first session got each message exactly once');
  for (const r of stay) assert.deepEqual(contents(r, ch, 'm'), reference, `${r.label} got the messages in another order (or twice)`);
  // one more message after everything: a barrier for the late joiners
  await msg.send(new SendChannelMessageCommand({ ChannelArn: ch, Content: 'zbarrier', Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: users[0], ClientRequestToken: uniq('s') }));
  await Promise.all([...stay, ...late].map((r) => r.waitFor((x) => contents(x, ch, 'zbarrier').length === 1, 60000, 'the barrier')));
  for (const r of late) {
    const got = contents(r, ch, 'm');
    // a session that connected mid-stream hears exactly what was committed after its snapshot:
    // a suffix of the log order, without gaps or repeats
    assert.deepEqual(got, reference.slice(reference.length - got.length), `${r.label}: ${got.join(',')} is not a suffix of ${reference.join(',')}`);
    assert.equal(contents(r, ch, 'zbarrier').length, 1);
  }
  for (const r of stay) assert.equal(contents(r, ch, 'zbarrier').length, 1);
  assert.ok(srv.alive(), 'the server survived sessions closing in the middle of fan-outs');
  await Promise.all([...stay, ...leave, ...late].map((r) => r.close()));
});

// Eight loops of signed DescribeAppInstanceUser, back to back, in a child process; stop() resolves
// to the request ids of the answered ones.
const POLLER = `
import { DescribeAppInstanceUserCommand } from '@aws-sdk/client-chime-sdk-identity';
import { identityClient } from './lib/clients.mjs';
const cfg = JSON.parse(process.env.POLLER_CFG);
const id = identityClient(cfg.srv);
let stop = false;
process.stdin.on('data', () => { stop = true; });
const ids = [];
await id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: cfg.user }));
process.stdout.write('ready\\n');
await Promise.all(Array.from({ length: 8 }, async () => {
  while (!stop) ids.push((await id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: cfg.user }))).$metadata.requestId);
}));
process.stdout.write(JSON.stringify(ids) + '\\n');
id.destroy();
process.exit(0);
`;

function startPoller(user) {
  const cfg = { srv: { endpoint: srv.endpoint, port: srv.port, region: srv.region, rootKey: srv.rootKey }, user };
  return startChildScript(POLLER, 'POLLER_CFG', cfg, 'the REST poller');
}

test('a REST request made while one event fans out to 300 sessions is handled before the fan-out ends', async () => {
  const { users, ch } = await population(3);
  const sessions = await openSessions(users, 300, 'f');
  // Signed REST reads back to back while the message fans out. The server's own
  // log is the clock (one process, lines in the order things happened): each read is logged when
  // it is dispatched (debug), the fan-out when it starts and ends. The reads come from another
  // process: this one is busy taking the 300 sessions' frames while the fan-out goes on, and would
  // send nothing in that time itself.
  const poller = await startPoller(users[1]);
  let stopped;
  try {
    await new Promise((r) => setTimeout(r, 50));
    await msg.send(new SendChannelMessageCommand({ ChannelArn: ch, Content: 'fan', Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: users[0], ClientRequestToken: uniq('s') }));
    await Promise.all(sessions.map((r) => r.waitFor((x) => contents(x, ch, 'fan').length === 1, 60000, 'the message')));
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    stopped = poller.stop();
    stopped.catch(() => {}); // when the fan-out failed, its error is the one to report
  }
  const ids = await stopped;
  const lines = srv.log().split('\n');
  // The message's fan-out is the last one started: it is the last event written, and events written
  // before the sessions registered (the population's) may be fanned out too, to sessions whose
  // snapshots already hold them (a node without sessions reads them only once its first session is
  // there), in a few milliseconds, with no REST request in between.
  const start = lines.findLastIndex((l) => /fan-out of event \d+ to (\d{3,}) sessions: started/.test(l) && Number(l.match(/to (\d+) sessions/)[1]) >= 300);
  assert.ok(start >= 0, 'the server logged the start of a 300-session fan-out (CARILLON_LOG_LEVEL=debug)');
  const pos = lines[start].match(/event (\d+)/)[1];
  const end = lines.findIndex((l, i) => i > start && l.includes(`fan-out of event ${pos} `) && l.includes('done in'));
  assert.ok(end > start, 'the server logged the end of that fan-out');
  const turns = Number(lines[end].match(/done in (\d+) loop turns/)[1]);
  assert.ok(turns >= 300, `one session per loop turn (CARILLON_FANOUT_SLICE=1): ${lines[end]}`);
  const handled = ids.filter((rid) => lines.slice(start + 1, end).some((l) => l.includes(`${rid} identity.DescribeAppInstanceUser`)));
  // The ordering fact: a REST request was read, verified and dispatched between the first and the
  // last delivery of one event. Delivered all in one loop turn, nothing could fall in between.
  assert.ok(handled.length > 0, `no REST request was handled during the fan-out (${ids.length} made; fan-out lines ${start}..${end}: ${lines.slice(start, end + 1).length} lines)`);
  await Promise.all(sessions.map((r) => r.close()));
});
