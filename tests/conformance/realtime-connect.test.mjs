// Session establishment: the per-user session quota is decided by the deployment's registry, not by
// the node's own count of sessions that may be on their way out, and a connect verified before the
// upgrade (connect rate on) is served with the same verdict. Real server, real PostgreSQL, raw
// websocket clients (the `ws` package) presigned like amazon-chime-sdk-js.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CreateAppInstanceCommand, CreateAppInstanceUserCommand, DeleteAppInstanceCommand, DeleteAppInstanceUserCommand } from '@aws-sdk/client-chime-sdk-identity';
import { CreateChannelCommand, CreateChannelMembershipCommand, SendChannelMessageCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { deadline, identity, messaging, rawSession } from './lib/realtime.mjs';
import { startCarillon } from './lib/server.mjs';
import { uniq } from './lib/util.mjs';

// Two sessions per user; the connect rate on (so the filter verifies before the upgrade).
const srv = await startCarillon({ env: { CARILLON_MAX_SESSIONS_PER_USER: '2', CARILLON_CONNECT_RATE_PER_USER: '100', CARILLON_CONNECT_BURST_PER_USER: '100' } });
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

async function user(name) {
  const ai = (await id.send(new CreateAppInstanceCommand({ Name: uniq('connect') }))).AppInstanceArn;
  apps.push(ai);
  const arn = (await id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq(name), Name: name }))).AppInstanceUserArn;
  return { ai, arn };
}

const open = (arn, label) => rawSession(`127.0.0.1:${srv.port}`, arn, srv.rootKey, { scheme: 'ws', label });
const established = (r, ms = 10000) => r.waitFor((x) => x.ofType('SESSION_ESTABLISHED').length === 1, ms, 'SESSION_ESTABLISHED');

test('a reconnect made while the old session is still closing is let in once the old one is gone (the registry asks again), not refused for good with 4003', async () => {
  const u = await user('quick');
  const a = await open(u.arn, 'a');
  const b = await open(u.arn, 'b');
  await Promise.all([established(a), established(b)]);
  // The third session is upgraded while both others are open on this node...
  const c = await open(u.arn, 'c');
  await new Promise((resolve, reject) => {
    c.ws.once('upgrade', resolve);
    c.ws.once('error', reject);
  });
  // ...and one of them goes right after, as a client replacing its session does.
  await a.close();
  await established(c, 15000);
  assert.deepEqual(c.closes, [], 'the new session was not closed');
  // The quota itself still holds: with b and c open, a fourth is refused with 4003.
  const d = await open(u.arn, 'd');
  const closed = await Promise.race([d.closed, deadline(15000, null)]);
  assert.equal(closed?.code, 4003, `the session over the quota is refused: ${JSON.stringify(closed)}`);
  await Promise.all([b.close(), c.close()]);
});

test('with the connect rate on, a verified connect is served as the user it was verified for, with its query options', async () => {
  const u = await user('rate');
  const other = await user('other');
  const ch = (await msg.send(new CreateChannelCommand({ AppInstanceArn: u.ai, Name: 'c', Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: u.arn, ClientRequestToken: uniq('c') }))).ChannelArn;
  await msg.send(new SendChannelMessageCommand({ ChannelArn: ch, Content: 'earlier', Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: u.arn, ClientRequestToken: uniq('m') }));
  // prefetch-on=connect: the options parsed before the upgrade reach the session
  const s = await rawSession(`127.0.0.1:${srv.port}`, u.arn, srv.rootKey, { scheme: 'ws', label: 'p', params: { 'prefetch-on': 'connect' } });
  await established(s);
  await s.waitFor((x) => x.ofType('CHANNEL_DETAILS').some((m) => m.payload.Channel.ChannelArn === ch), 10000, 'CHANNEL_DETAILS of its channel');
  // and a session of another user opened right after is that user's (it hears nothing of u's channel)
  const o = await open(other.arn, 'o');
  await established(o);
  await msg.send(new SendChannelMessageCommand({ ChannelArn: ch, Content: 'later', Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: u.arn, ClientRequestToken: uniq('m') }));
  await s.waitFor((x) => x.ofType('CREATE_CHANNEL_MESSAGE').some((m) => m.payload.Content === 'later'), 10000, 'the later message');
  assert.equal(o.ofType('CREATE_CHANNEL_MESSAGE').length, 0, 'the other user hears nothing of a channel it is not in');
  assert.equal(o.ofType('CHANNEL_DETAILS').length, 0, 'the other session did not ask for a prefetch');
  await Promise.all([s.close(), o.close()]);
});

test('sessions of several users connecting at once (their registrations and snapshots batched together) each get their own user\'s channels; a deleted user\'s session among them is refused with 4401', async () => {
  const ai = (await id.send(new CreateAppInstanceCommand({ Name: uniq('batch') }))).AppInstanceArn;
  apps.push(ai);
  const mk = async (name) => (await id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq(name), Name: name }))).AppInstanceUserArn;
  const users = [await mk('b0'), await mk('b1'), await mk('b2')];
  const gone = await mk('gone');
  // channel k has users[k] only (created by users[0], who leaves the others' to their members)
  const chans = [];
  for (let k = 0; k < 3; k++) {
    const ch = (await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: `b${k}`, Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: users[k], ClientRequestToken: uniq('c') }))).ChannelArn;
    chans.push(ch);
  }
  await msg.send(new CreateChannelMembershipCommand({ ChannelArn: chans[2], MemberArn: users[1], Type: 'DEFAULT', ChimeBearer: users[2] }));
  await id.send(new DeleteAppInstanceUserCommand({ AppInstanceUserArn: gone }));
  // two sessions per user (the quota here), all opened at once
  const sessions = await Promise.all([0, 1, 2, 0, 1, 2].map((k, i) => open(users[k], `u${k}.${i}`).then((r) => Object.assign(r, { k }))));
  const ghost = await open(gone, 'gone');
  await Promise.all(sessions.map((r) => established(r)));
  const closed = await Promise.race([ghost.closed, deadline(15000, null)]);
  assert.equal(closed?.code, 4401, `the deleted user's session is refused: ${JSON.stringify(closed)}`);
  for (let k = 0; k < 3; k++) {
    await msg.send(new SendChannelMessageCommand({ ChannelArn: chans[k], Content: `to${k}`, Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: users[k], ClientRequestToken: uniq('m') }));
  }
  // what each user may hear: its own channel, and user 1 also channel 2
  const expect = { 0: ['to0'], 1: ['to1', 'to2'], 2: ['to2'] };
  await Promise.all(sessions.map((r) => r.waitFor((x) => expect[r.k].every((c) => x.ofType('CREATE_CHANNEL_MESSAGE').some((m) => m.payload.Content === c)), 15000, `${expect[r.k]}`)));
  // a barrier after the three messages: everything each session got is in now
  await msg.send(new SendChannelMessageCommand({ ChannelArn: chans[2], Content: 'end', Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: users[2], ClientRequestToken: uniq('m') }));
  for (const r of sessions) {
    if (r.k === 0) await msg.send(new SendChannelMessageCommand({ ChannelArn: chans[0], Content: `end0${r.label}`, Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: users[0], ClientRequestToken: uniq('m') }));
  }
  await Promise.all(sessions.map((r) => r.waitFor((x) => x.ofType('CREATE_CHANNEL_MESSAGE').some((m) => m.payload.Content.startsWith(r.k === 0 ? 'end0' : 'end')), 15000, 'the barrier')));
  for (const r of sessions) {
    const got = r.ofType('CREATE_CHANNEL_MESSAGE').map((m) => m.payload.Content).filter((c) => /^to\d$/.test(c)).sort();
    assert.deepEqual(got, expect[r.k], `${r.label} heard exactly its user's channels`);
  }
  await Promise.all(sessions.map((r) => r.close()));
});
