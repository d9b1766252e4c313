// Who a write wakes (carillon.events_heard, docs/events.md "Who is woken"): a write sends its
// NOTIFY only when some node has websocket sessions, whose registration raised that node's flag
// before their snapshots; the node's heartbeat lowers it once its last session has gone. Two nodes
// on a private PostgreSQL (no other file's nodes in its ws_nodes), their listeners' polls a minute
// apart: a session gets a write in the seconds a test waits only if the write notified its node.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CreateAppInstanceCommand, CreateAppInstanceUserCommand } from '@aws-sdk/client-chime-sdk-identity';
import { CreateChannelCommand, SendChannelMessageCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { psql } from './lib/cli.mjs';
import { identityClient, messagingClient } from './lib/clients.mjs';
import { rawSession, sleep, startPrivatePostgres } from './lib/realtime.mjs';
import { freePort, randomMasterKey, randomRootKey, startCarillon } from './lib/server.mjs';
import { scrapeMetric, uniq } from './lib/util.mjs';

const pg = await startPrivatePostgres();
const masterKey = randomMasterKey();
const rootKey = randomRootKey();
const nodes = [];
process.on('exit', () => {
  for (const n of nodes) if (n.srv.alive()) n.srv.proc.kill('SIGKILL');
  pg.stop();
});

async function startNode(name) {
  const metricsPort = await freePort();
  const srv = await startCarillon({
    databaseUrl: pg.url,
    masterKey,
    rootKey,
    env: {
      CARILLON_METRICS_LISTEN: `127.0.0.1:${metricsPort}`,
      CARILLON_LISTENER_POLL_MS: '60000',
      CARILLON_NODE_HEARTBEAT_SECONDS: '1',
    },
  });
  return { name, srv, metricsPort, msg: messagingClient(srv), id: identityClient(srv) };
}

after(async () => {
  const problems = [];
  for (const n of nodes) {
    n.msg.destroy();
    n.id.destroy();
    if (!n.srv.alive()) problems.push(`${n.name} died: ${JSON.stringify(n.srv.exitInfo)}`);
    await n.srv.stop();
  }
  pg.stop();
  if (problems.length) throw new Error(problems.join('\n'));
});

for (const name of ['writer', 'reader']) nodes.push(await startNode(name));
const [writer, reader] = nodes;
const notifies = (node) => scrapeMetric(node.metricsPort, 'carillon_event_listener_notifies_total');
const listening = async () => (await psql('select count(*) from carillon.ws_nodes where listening', { databaseUrl: pg.url })) | 0;

async function world() {
  const ai = (await writer.id.send(new CreateAppInstanceCommand({ Name: uniq('wake') }))).AppInstanceArn;
  const user = async (n) =>
    (await writer.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq(n), Name: n }))).AppInstanceUserArn;
  const alice = await user('alice');
  const bob = await user('bob');
  const channel = (
    await writer.msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('ch'), Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: alice, MemberArns: [bob] }))
  ).ChannelArn;
  return { alice, bob, channel };
}

async function send(w, i) {
  const out = await writer.msg.send(
    new SendChannelMessageCommand({ ChannelArn: w.channel, ChimeBearer: w.alice, Content: `m${i}`, Type: 'STANDARD', Persistence: 'PERSISTENT', ClientRequestToken: uniq(`t${i}`) }),
  );
  return out.MessageId;
}

async function connectBob(w, label) {
  const rec = await rawSession(`127.0.0.1:${reader.srv.port}`, w.bob, rootKey, { scheme: 'ws', label });
  await rec.waitFor((x) => x.ofType('SESSION_ESTABLISHED').length === 1, 10000, 'SESSION_ESTABLISHED');
  return rec;
}

async function untilNoneListens() {
  for (let i = 0; i < 100 && (await listening()) > 0; i++) await sleep(100);
  assert.equal(await listening(), 0, 'a node still listens ten seconds after its last session closed');
}

/** Sends n messages through the writer node; the reader's session must get them, in order, once. */
async function heardByReader(w, rec, n, tag) {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await send(w, `${tag}${i}`));
  const got = () => rec.ofType('CREATE_CHANNEL_MESSAGE', w.channel).map((m) => m.payload?.MessageId).filter((id) => ids.includes(id));
  await rec.waitFor(() => got().length >= ids.length, 10000, `the ${n} messages sent through the other node`);
  await sleep(200);
  assert.deepEqual(got(), ids, 'every message once, in the order sent');
}

test('a write nobody would hear wakes no node; a session registered on another node is woken by the next one', async () => {
  const w = await world();
  await untilNoneListens();
  const before = [await notifies(writer), await notifies(reader)];
  for (let i = 0; i < 5; i++) await send(w, `quiet${i}`);
  await sleep(300);
  assert.deepEqual([await notifies(writer), await notifies(reader)], before, 'a write with no session anywhere sent a notification');

  const rec = await connectBob(w, 'first');
  try {
    assert.equal(await listening(), 1, "the session's node listens once the session is established");
    const reads = await notifies(reader);
    await heardByReader(w, rec, 5, 'live');
    assert.ok((await notifies(reader)) > reads, 'the reader node was not notified');
  } finally {
    await rec.close();
  }
});

test("a node's flag goes with its last session and comes back with its next", async () => {
  const w = await world();
  const first = await connectBob(w, 'before');
  await first.close();
  await untilNoneListens();
  const before = await notifies(reader);
  await send(w, 'gone');
  await sleep(300);
  assert.equal(await notifies(reader), before, 'a node without sessions was notified');

  const rec = await connectBob(w, 'again');
  try {
    await heardByReader(w, rec, 3, 'again');
  } finally {
    await rec.close();
  }
});
