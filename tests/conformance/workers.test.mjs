// `carillon serve --workers N` (CARILLON_WORKERS): one parent supervising N worker processes that
// share the port. Real server, real PostgreSQL, REST through the AWS SDK, websocket sessions through
// the `ws` package; processes are looked at through their pids (the parent's log names each worker
// it starts) and /proc.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CreateAppInstanceCommand, CreateAppInstanceUserCommand, DeleteAppInstanceCommand, DescribeAppInstanceUserCommand } from '@aws-sdk/client-chime-sdk-identity';
import { BatchCreateChannelMembershipCommand, CreateChannelCommand, SendChannelMessageCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { identity, messaging, rawSession, sleep } from './lib/realtime.mjs';
import { freePort, randomMasterKey, randomRootKey, serverEnv, startCarillon } from './lib/server.mjs';
import { uniq } from './lib/util.mjs';

/** A loopback port p with p + 1 free too (the metrics ports of two workers). */
async function freePortPair() {
  const { createServer } = await import('node:net');
  const tryListen = (port) => new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(null));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
  for (let i = 0; i < 50; i++) {
    const a = await tryListen(0);
    const p = a.address().port;
    const b = p < 65535 ? await tryListen(p + 1) : null;
    a.close();
    if (b) { b.close(); return p; }
  }
  throw new Error('no free pair of ports');
}
const metricsPort = await freePortPair();

const srv = await startCarillon({ env: { CARILLON_WORKERS: '2', CARILLON_CONNECT_RATE_PER_USER: '0', CARILLON_MAX_SESSIONS_PER_USER: '100', CARILLON_METRICS_LISTEN: `127.0.0.1:${metricsPort}` } });
const id = identity(srv);
const msg = messaging(srv);
let stopped = false;

after(async () => {
  id.destroy();
  msg.destroy();
  if (!stopped) await srv.stop();
});

/** Worker pids the parent has logged as started, by worker index (the latest start of each). */
function workers() {
  const out = new Map();
  for (const m of srv.log().matchAll(/supervisor: worker (\d+) started \(pid (\d+)\)/g)) out.set(Number(m[1]), Number(m[2]));
  return out;
}

const alive = (pid) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
const parentOf = (pid) => Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

async function until(what, fn, ms = 30000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${srv.log().split('\n').slice(-30).join('\n')}`);
    await sleep(50);
  }
}

async function population() {
  const ai = (await id.send(new CreateAppInstanceCommand({ Name: uniq('workers') }))).AppInstanceArn;
  const users = [];
  for (let i = 0; i < 3; i++) users.push((await id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq(`w${i}`), Name: `w${i}` }))).AppInstanceUserArn);
  const ch = (await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'w', Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: users[0], ClientRequestToken: uniq('c') }))).ChannelArn;
  await msg.send(new BatchCreateChannelMembershipCommand({ ChannelArn: ch, ChimeBearer: users[0], MemberArns: users.slice(1), Type: 'DEFAULT' }));
  return { ai, users, ch };
}

async function sessionsHear(users, ch, n, content) {
  const sessions = [];
  for (let i = 0; i < n; i++) sessions.push(await rawSession(`127.0.0.1:${srv.port}`, users[i % users.length], srv.rootKey, { scheme: 'ws', label: `s${i}` }));
  await Promise.all(sessions.map((r) => r.waitFor((x) => x.ofType('SESSION_ESTABLISHED').length === 1, 20000, 'SESSION_ESTABLISHED')));
  await msg.send(new SendChannelMessageCommand({ ChannelArn: ch, Content: content, Type: 'STANDARD', Persistence: 'PERSISTENT', ChimeBearer: users[0], ClientRequestToken: uniq('m') }));
  await Promise.all(sessions.map((r) => r.waitFor((x) => x.ofType('CREATE_CHANNEL_MESSAGE').some((m) => m.payload.Content === content), 20000, content)));
  return sessions;
}

test('serve --workers 2: two worker processes under one parent serve REST and sessions; a killed worker is replaced; SIGHUP is forwarded; SIGTERM stops everything with exit 0', async () => {
  const first = await until('two workers', () => (workers().size === 2 ? workers() : null));
  const pids = [...first.values()];
  assert.equal(new Set(pids).size, 2, 'two distinct worker processes');
  for (const pid of pids) {
    assert.ok(alive(pid), `worker ${pid} runs`);
    assert.equal(parentOf(pid), srv.proc.pid, `worker ${pid} is a child of the parent`);
  }
  // Each worker logs that it serves, under its own pid.
  await until('both workers serving', () => pids.every((pid) => srv.log().includes(`[${pid}] notice: serving on`)));

  // Each worker serves its own metrics: worker i on the configured port + i.
  for (const port of [metricsPort, metricsPort + 1]) {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(res.status, 200, `metrics on port ${port}`);
    assert.match(await res.text(), /^carillon_build_info\{/m, `build_info on port ${port}`);
  }

  const { ai, users, ch } = await population();
  // Sessions land on either worker (the kernel spreads connections over the two sockets); a write
  // made through one reaches sessions on both (each worker has its own listener and hub).
  const before = await sessionsHear(users, ch, 8, 'before');
  for (let i = 0; i < 10; i++) await id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: users[1] }));

  // SIGKILL one worker: the parent notices, starts another in its slot, and the service answers.
  const victim = first.get(0);
  process.kill(victim, 'SIGKILL');
  const replaced = await until('worker 0 replaced', () => {
    const w = workers().get(0);
    return w && w !== victim && alive(w) ? w : null;
  });
  assert.ok(!alive(victim), 'the killed worker is gone (reaped)');
  assert.equal(parentOf(replaced), srv.proc.pid);
  assert.ok(alive(first.get(1)), 'the other worker kept running');
  assert.match(srv.log(), new RegExp(`worker 0 \\(pid ${victim}\\) killed by signal 9`));
  await until('the new worker serving', () => srv.log().includes(`[${replaced}] notice: serving on`));
  for (let i = 0; i < 20; i++) {
    const out = await id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: users[2] }));
    assert.equal(out.AppInstanceUser.AppInstanceUserArn, users[2]);
  }
  const afterKill = await sessionsHear(users, ch, 8, 'after');
  await Promise.all([...before, ...afterKill].map((r) => r.close()));
  await id.send(new DeleteAppInstanceCommand({ AppInstanceArn: ai }));

  // SIGHUP to the parent reaches every worker, which keeps serving.
  const live = [...workers().values()];
  process.kill(srv.proc.pid, 'SIGHUP');
  await until('SIGHUP forwarded to both workers', () => live.every((pid) => srv.log().includes(`[${pid}] notice: received SIGHUP`)));
  for (const pid of live) assert.ok(alive(pid), `worker ${pid} survives SIGHUP`);
  assert.deepEqual([...workers().values()], live, 'no worker was restarted');

  // SIGTERM to the parent: every worker drains and exits, then the parent, with status 0.
  stopped = true;
  const info = await srv.stop();
  assert.deepEqual(info, { code: 0, signal: null }, `the parent exits 0 after SIGTERM: ${JSON.stringify(info)}`);
  for (const pid of live) assert.ok(!alive(pid), `worker ${pid} stopped with the parent`);
  assert.match(srv.log(), /supervisor: every worker has stopped/);
  for (const pid of live) assert.ok(srv.log().includes(`[${pid}] notice: stopped`), `worker ${pid} stopped gracefully`);
});

test('a supervisor killed outright (SIGKILL) takes its workers with it: none keeps serving on its own', async () => {
  const s = await startCarillon({ env: { CARILLON_WORKERS: '2' } });
  const pids = () => [...s.log().matchAll(/supervisor: worker \d+ started \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  const end = Date.now() + 30000;
  while (!(pids().length === 2 && pids().every((pid) => s.log().includes(`[${pid}] notice: serving on`)))) {
    if (Date.now() > end) throw new Error(`two workers did not start\n${s.log()}`);
    await sleep(50);
  }
  const workerPids = pids();
  s.proc.kill('SIGKILL');
  await until('the orphaned workers to stop', () => workerPids.every((pid) => !alive(pid)), 15000);
  await s.stop();
});

// A worker gets SIGTERM while it is still starting (the supervisor forwards a stop that comes right
// after it forked the worker): the worker must stop as asked, not die of the signal's default
// action before its loop handles it -- the supervisor then reports the stop as unclean (exit 1).
// Seen once in CI's smoke test, which stops `carillon serve` as soon as it answers.
test('SIGTERM while the workers are still starting: every worker stops cleanly, exit 0', async () => {
  for (let round = 0; round < 3; round++) {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'carillon-early-stop-'));
    const env = serverEnv({
      databaseUrl: process.env.CARILLON_TEST_DATABASE_URL,
      port: await freePort(),
      rootKey: randomRootKey(),
      masterKey: randomMasterKey(),
      dataDir,
      env: { CARILLON_WORKERS: '3' },
    });
    const proc = spawn(process.env.CARILLON_BIN, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    let sent = false;
    const onData = (b) => {
      log += b.toString('utf8');
      // the last worker has just been forked: it cannot have reached its loop yet
      if (!sent && /supervisor: worker 2 started/.test(log)) {
        sent = true;
        proc.kill('SIGTERM');
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    const killer = setTimeout(() => proc.kill('SIGKILL'), 30000);
    const [code, signal] = await new Promise((resolve) => proc.on('exit', (c, s) => resolve([c, s])));
    clearTimeout(killer);
    rmSync(dataDir, { recursive: true, force: true });
    assert.ok(sent, `the supervisor started its third worker\n${log}`);
    assert.doesNotMatch(log, /killed by signal/, `no worker died of the signal (round ${round})\n${log}`);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `a clean stop (round ${round})\n${log}`);
  }
});
