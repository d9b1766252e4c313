// Real-time limits are settings (README, configuration table): the keepalive times
// (CARILLON_WS_PING_SECONDS, CARILLON_WS_IDLE_SECONDS) take effect and keep their documented close
// code, and a contradictory pair is refused at start-up; tiny snapshot and resume pages
// (CARILLON_SNAPSHOT_PAGE, CARILLON_RESUME_PAGE) lose nothing at page boundaries. Real server, real PostgreSQL, a real
// websocket client (the `ws` package).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, test } from 'node:test';
import WS from 'ws';
import { CreateAppInstanceCommand, CreateAppInstanceUserCommand, DeleteAppInstanceCommand } from '@aws-sdk/client-chime-sdk-identity';
import { CreateChannelCommand, SendChannelMessageCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { logPosition } from './lib/eventlog.mjs';
import { deadline, identity, messaging, presignConnectUrl, rawSession, userCreds } from './lib/realtime.mjs';
import { randomMasterKey, randomRootKey, startCarillon } from './lib/server.mjs';
import { uniq } from './lib/util.mjs';

const servers = [];
const apps = [];

after(async () => {
  for (const { srv, id, msg } of servers) {
    msg?.destroy();
    for (const ai of apps) {
      try {
        await id.send(new DeleteAppInstanceCommand({ AppInstanceArn: ai }));
      } catch {}
    }
    id.destroy();
    const alive = srv.alive();
    const info = await srv.stop();
    assert.ok(alive, `carillon died during the test: ${JSON.stringify(info)}`);
  }
});

async function user(srv, id, name, ai) {
  if (!ai) {
    ai = (await id.send(new CreateAppInstanceCommand({ Name: uniq('limits') }))).AppInstanceArn;
    apps.push(ai);
  }
  const arn = (await id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq(name), Name: name }))).AppInstanceUserArn;
  return { arn, creds: await userCreds(srv, arn) };
}

// A websocket session; autoPong false: the client answers no ping (a dead peer, as the server sees it).
async function open(srv, u, autoPong) {
  const url = await presignConnectUrl(`127.0.0.1:${srv.port}`, u.arn, u.creds, { scheme: 'ws' });
  const ws = new WS(url, { autoPong, perMessageDeflate: false });
  const pings = [];
  ws.on('ping', () => pings.push(Date.now()));
  const established = new Promise((resolve, reject) => {
    ws.on('message', (d) => {
      if (String(d).includes('SESSION_ESTABLISHED')) resolve(Date.now());
    });
    ws.on('error', reject);
  });
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason), at: Date.now() })));
  return { ws, pings, established, closed };
}

test('CARILLON_WS_PING_SECONDS / CARILLON_WS_IDLE_SECONDS: a client that answers no ping is closed with 1001 "No pong" after the idle time; one that answers stays', async () => {
  const srv = await startCarillon({
    rootKey: randomRootKey(),
    masterKey: randomMasterKey(),
    env: { CARILLON_WS_PING_SECONDS: '1', CARILLON_WS_IDLE_SECONDS: '3' },
  });
  const id = identity(srv);
  servers.push({ srv, id });
  const mute = await open(srv, await user(srv, id, 'mute'), false);
  const live = await open(srv, await user(srv, id, 'live'), true);
  const t0 = await mute.established;
  await live.established;
  // The keepalive tick runs every second: the close comes between 3 s and 3 s + two ticks of the
  // last frame the client sent (the upgrade), with margins for a loaded machine.
  const c = await Promise.race([mute.closed, deadline(12000, null)]);
  assert.ok(c, 'the silent session was still open 12 s after it started (the default idle time is 75 s)');
  assert.equal(c.code, 1001, `closed with 1001: ${JSON.stringify(c)}`);
  assert.equal(c.reason, 'No pong');
  assert.ok(c.at - t0 >= 2000, `not before the idle time (${c.at - t0} ms)`);
  assert.ok(mute.pings.length >= 1, 'it was pinged first (after CARILLON_WS_PING_SECONDS)');
  // the session that answers pings is pinged too, and is still open well past the idle time
  await new Promise((r) => setTimeout(r, Math.max(0, t0 + 6000 - Date.now())));
  assert.equal(live.ws.readyState, WS.OPEN, `the session that answers pings stays open (${JSON.stringify(await Promise.race([live.closed, deadline(10, null)]))}, ${live.pings.length} pings)`);
  assert.ok(live.pings.length >= 2, `pinged every ~CARILLON_WS_PING_SECONDS (${live.pings.length} pings)`);
  live.ws.close();
  await Promise.race([live.closed, deadline(3000)]);
});

test('an idle time not above the ping time is refused at start-up, naming both settings', () => {
  const out = spawnSync(process.env.CARILLON_BIN, ['serve'], {
    env: { ...process.env, CARILLON_WS_PING_SECONDS: '10', CARILLON_WS_IDLE_SECONDS: '10', CARILLON_DATABASE_URL: 'host=/nonexistent' },
    encoding: 'utf8',
    timeout: 10000,
  });
  assert.notEqual(out.status, 0, `refused: ${out.stdout}${out.stderr}`);
  assert.match(out.stderr, /CARILLON_WS_IDLE_SECONDS \(10\) must exceed CARILLON_WS_PING_SECONDS \(10\)/);
});

test('CARILLON_SNAPSHOT_PAGE=2, CARILLON_RESUME_PAGE=2: a user in 4 channels (two full pages) hears all of them; a resume of 5 events (pages of 2) gets all 5 in order, then live events', async () => {
  const srv = await startCarillon({
    rootKey: randomRootKey(),
    masterKey: randomMasterKey(),
    env: { CARILLON_SNAPSHOT_PAGE: '2', CARILLON_RESUME_PAGE: '2' },
  });
  const id = identity(srv);
  const msg = messaging(srv);
  servers.push({ srv, id, msg });
  const ai = (await id.send(new CreateAppInstanceCommand({ Name: uniq('pages') }))).AppInstanceArn;
  apps.push(ai);
  const pat = await user(srv, id, 'pat', ai);
  const sam = await user(srv, id, 'sam', ai);
  const chans = [];
  for (let i = 0; i < 4; i++) {
    const out = await msg.send(
      new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('p'), Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: sam.arn, MemberArns: [pat.arn] }),
    );
    chans.push(out.ChannelArn);
  }
  const say = (ch, text) => msg.send(new SendChannelMessageCommand({ ChannelArn: ch, Content: text, Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: sam.arn }));
  const texts = (r) => r.ofType('CREATE_CHANNEL_MESSAGE').map((m) => m.payload.Content);
  const open = async (params) => {
    const r = await rawSession(`127.0.0.1:${srv.port}`, pat.arn, pat.creds, { scheme: 'ws', params });
    await r.waitFor((x) => x.ofType('SESSION_ESTABLISHED').length === 1, 10000, 'SESSION_ESTABLISHED');
    return r;
  };
  // the snapshot in pages of 2: every channel joined
  const live = await open({});
  for (const [i, ch] of chans.entries()) await say(ch, `live ${i}`);
  await live.waitFor((x) => texts(x).length === 4, 10000, 'a message of each of the 4 channels');
  assert.deepEqual(texts(live), ['live 0', 'live 1', 'live 2', 'live 3']);
  await live.close();
  // the resume gap in pages of 2 (5 events: two full pages and one of 1)
  const since = logPosition();
  for (let i = 0; i < 5; i++) await say(chans[i % 4], `gap ${i}`);
  const resumed = await open({ 'since-position': String(since) });
  await resumed.waitFor((x) => texts(x).length === 5, 10000, 'the 5 events of the gap');
  await say(chans[3], 'after');
  await resumed.waitFor((x) => texts(x).length === 6, 10000, 'the live event after the gap');
  assert.deepEqual(texts(resumed), ['gap 0', 'gap 1', 'gap 2', 'gap 3', 'gap 4', 'after']);
  assert.equal(resumed.ofType('CARILLON_RESYNC_REQUIRED').length, 0);
  await resumed.close();
});
