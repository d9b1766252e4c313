// The push benchmark (bench/push.sh runs it against a throwaway PostgreSQL): one SendChannelMessage
// with PushNotification to a channel of MEMBERS members, each with one endpoint (APNs and FCM mixed,
// or all one), delivered to the local stand-ins (tests/conformance/lib: HTTP/2 over TLS, checking
// every request as in the tests). Prints one key=value line per figure:
//   time_to_last_push_ms  from SendChannelMessage's request to the last push answered by a stand-in
//   pushes_per_s          MEMBERS / (last push - first push)
//   cpu_ms_per_push       the server's CPU (utime + stime, /proc/<pid>/stat) over the delivery / MEMBERS
//   rest_p99_ms_idle / rest_p99_ms_pushing   DescribeAppInstanceUser p99 (paced: 50/s on one connection, as
//                         bench/realtime.sh fanout), alone and
//                         while a second such message is delivered
//   ref_requests_per_s    the reference, measured in the same run: the same FCM send request (same
//                         stand-in, same outbound module, HTTP/2 on loopback) fired MEMBERS times by
//                         build/push-driver (raw mode), without the server around it; both rates
//                         from the first answer to the last at the stand-in, the connection set up before
//   ratio                 ref_requests_per_s / pushes_per_s: loopback HTTP/2 requests per push's time
//                         (1: a push costs the server no more than its bare request; as bench/realtime.sh)
//   node bench/push.mjs --members 10000 --mix both|apns|fcm --rest-seconds 5
// Environment: CARILLON_TEST_DATABASE_URL, CARILLON_ROOT_ACCESS_KEY_ID / _SECRET_ACCESS_KEY,
// CARILLON_MASTER_KEY (bench/lib.sh sets them).
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { startApnsStandin } from '../tests/conformance/lib/apns-standin.mjs';
import { startFcm } from '../tests/conformance/lib/fcm-standin.mjs';
import { ecKeyPair, testCa } from '../tests/conformance/lib/test-ca.mjs';

const require = createRequire(new URL('../tests/conformance/package.json', import.meta.url));
const { ChimeSDKIdentityClient, CreateAppInstanceCommand, CreateAppInstanceUserCommand, RegisterAppInstanceUserEndpointCommand } =
  require('@aws-sdk/client-chime-sdk-identity');
const { ChimeSDKMessagingClient, CreateChannelCommand, BatchCreateChannelMembershipCommand, SendChannelMessageCommand } =
  require('@aws-sdk/client-chime-sdk-messaging');
const { PinpointClient, CreateAppCommand, UpdateApnsChannelCommand, UpdateGcmChannelCommand } = require('@aws-sdk/client-pinpoint');

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (i % 2 ? a : [...a, [v.replace(/^--/, ''), all[i + 1]]]), []));
const MEMBERS = Number(args.members ?? 10000);
const MIX = args.mix ?? 'both';
const REST_SECONDS = Number(args['rest-seconds'] ?? 5);
const root = path.resolve(new URL('..', import.meta.url).pathname);
const BUNDLE = 'com.example.bench';
const TEAM = 'BENCHTEAM1';
const KID = 'BENCHKEY01';

const out = (k, v) => console.log(`${k}=${v}`);
const freePort = () => new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => { while (next < items.length) { const i = next++; await fn(items[i], i); } }));
}
const cpuTicks = (pid) => {  // the process's own CPU: utime + stime from /proc/<pid>/stat
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);   // utime, stime (fields 14, 15)
};
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

// ------------------------------------------------------------------------------ stand-ins, server
const fcm = await startFcm();
const apns = await startApnsStandin();
const ca = testCa();
const port = await freePort();
const endpoint = `http://127.0.0.1:${port}`;
const env = {
  ...process.env,
  CARILLON_DATABASE_URL: process.env.CARILLON_TEST_DATABASE_URL,
  CARILLON_LISTEN: `127.0.0.1:${port}`,
  CARILLON_OUTBOUND_CA_FILE: ca.caFile,
  CARILLON_FCM_URL: fcm.url,
  CARILLON_APNS_URL: apns.url,
  CARILLON_APNS_SANDBOX_URL: apns.url,
  CARILLON_LOG_LEVEL: 'warn',
  // One process: the CPU per push is read from its /proc/<pid>/stat (with --workers the pid is the
  // supervisor's, which delivers nothing).
  CARILLON_WORKERS: process.env.CARILLON_WORKERS || '1',
};
const logFile = process.env.BENCH_LOG || '/tmp/carillon-bench.log';
const server = spawn(path.join(root, 'build/carillon'), ['serve'], { env, stdio: ['ignore', openSync(logFile, 'a'), openSync(logFile, 'a')] });
process.on('exit', () => server.exitCode === null && server.kill('SIGKILL'));
for (let i = 0; ; i++) {
  try { if ((await fetch(`${endpoint}/healthz`)).ok) break; } catch {}
  if (i > 300) throw new Error('carillon did not start');
  await sleep(100);
}
const creds = { accessKeyId: process.env.CARILLON_ROOT_ACCESS_KEY_ID, secretAccessKey: process.env.CARILLON_ROOT_SECRET_ACCESS_KEY };
const cfg = { endpoint, region: 'us-east-1', credentials: creds, maxAttempts: 3 };
const id = new ChimeSDKIdentityClient(cfg), msg = new ChimeSDKMessagingClient(cfg), pp = new PinpointClient(cfg);

// ------------------------------------------------------------------------------ population
const app = (await pp.send(new CreateAppCommand({ CreateApplicationRequest: { Name: 'bench-push' } }))).ApplicationResponse;
const sa = fcm.account();
await pp.send(new UpdateGcmChannelCommand({ ApplicationId: app.Id, GCMChannelRequest: { ServiceJson: sa.text, DefaultAuthenticationMethod: 'TOKEN', Enabled: true } }));
const key = ecKeyPair();
apns.addKey(KID, TEAM, key.publicKeyPem);
await pp.send(new UpdateApnsChannelCommand({ ApplicationId: app.Id, APNSChannelRequest: {
  BundleId: BUNDLE, TeamId: TEAM, TokenKeyId: KID, TokenKey: key.privateKeyPem, DefaultAuthenticationMethod: 'TOKEN', Enabled: true } }));
const { AppInstanceArn: ai } = await id.send(new CreateAppInstanceCommand({ Name: `bench-push-${Date.now()}` }));
const users = new Array(MEMBERS);
const t0 = Date.now();
await pool([...Array(MEMBERS).keys()], 32, async (i) => {
  const u = await id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: `m${i}`, Name: `m${i}` }));
  const type = MIX === 'apns' || (MIX === 'both' && i % 2) ? 'APNS' : 'GCM';
  const token = type === 'APNS' ? randomBytes(32).toString('hex') : `fcm-${i}-${randomBytes(8).toString('hex')}`;
  await id.send(new RegisterAppInstanceUserEndpointCommand({
    AppInstanceUserArn: u.AppInstanceUserArn, Type: type, ResourceArn: app.Arn, EndpointAttributes: { DeviceToken: token }, AllowMessages: 'ALL',
  }));
  users[i] = u.AppInstanceUserArn;
});
const sender = users[0];
const { ChannelArn } = await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: 'bench', ChimeBearer: sender, Mode: 'RESTRICTED', Privacy: 'PRIVATE' }));
for (let i = 1; i < MEMBERS; i += 100) {
  await msg.send(new BatchCreateChannelMembershipCommand({ ChannelArn, ChimeBearer: sender, MemberArns: users.slice(i, i + 100), Type: 'DEFAULT' }));
}
out('members', MEMBERS);
out('mix', MIX);
out('setup_s', ((Date.now() - t0) / 1000).toFixed(1));

// ------------------------------------------------------------------------------ measurements
const arrivals = () => [
  ...fcm.sends.filter((s) => s.status === 200).map((s) => s.answeredAt),
  ...apns.requests.filter((r) => r.status === 200).map((r) => r.at),
];
function restBench(seconds) {
  const userPath = `/app-instance-users/${encodeURIComponent(users[1])}`;
  return new Promise((resolve, reject) => {
    const p = spawn(path.join(root, 'build/carillon-rest-bench'), ['--port', String(port), '--akid', creds.accessKeyId,
      '--secret', creds.secretAccessKey, '--path', userPath, '--connections', '1', '--rate', '50', '--seconds', String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    p.stdout.on('data', (d) => (text += d));
    p.on('error', reject);
    p.on('close', () => resolve(Number(/p99_ms=([\d.]+)/.exec(text)?.[1])));
  });
}
/** One message with PushNotification; resolves when every member's push has been answered. */
async function pushRound(n) {
  fcm.sends.length = 0;
  apns.requests.length = 0;
  const cpu0 = cpuTicks(server.pid);
  const start = Date.now();
  await msg.send(new SendChannelMessageCommand({
    ChannelArn, ChimeBearer: sender, Content: `bench ${n}`, Type: 'STANDARD', Persistence: 'PERSISTENT',
    PushNotification: { Title: 'Bench', Body: `message ${n}`, Type: 'DEFAULT' },
  }));
  const deadline = Date.now() + 120_000;
  while (arrivals().length < MEMBERS) {
    if (Date.now() > deadline) throw new Error(`only ${arrivals().length} of ${MEMBERS} pushes arrived`);
    await sleep(5);
  }
  const cpu = cpuTicks(server.pid) - cpu0;
  const at = arrivals().sort((a, b) => a - b);
  return { timeToLast: at[at.length - 1] - start, rate: MEMBERS / (Math.max(1, at[at.length - 1] - at[0]) / 1000), cpuMs: (cpu * 1000) / CLK_TCK };
}

// The reference: the same FCM request, MEMBERS times, through the outbound module alone.
fcm.sends.length = 0;
fcm.issued.set('bench-reference-token', true);
const refBody = JSON.stringify({ message: { token: 'reference', notification: { title: 'Bench', body: 'reference' }, android: { priority: 'high' } } });
function runReference(count) {
  const plan = {
    raw: {
      url: `${fcm.url}/v1/projects/${fcm.projectId}/messages:send`, body: refBody, count,
      headers: ['Authorization: Bearer bench-reference-token', 'Content-Type: application/json; charset=UTF-8'],
    },
  };
  // Spawned, not spawnSync: the stand-in answering it runs on this process's event loop.
  return new Promise((resolve, reject) => {
    const p = spawn(path.join(root, 'build/push-driver'), [JSON.stringify(plan)], {
      env: { ...process.env, CARILLON_OUTBOUND_CA_FILE: ca.caFile }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    p.stdout.on('data', (d) => (text += d));
    p.on('error', reject);
    p.on('close', () => resolve(text));
  });
}
const refOut = await runReference(MEMBERS);
const summary = JSON.parse(refOut.trim().split('\n').pop());
// A failed reference request (libcurl's, not the server's) is reported, not fatal: the rate counts the answered ones.
if (summary.raw_ok !== MEMBERS) out('ref_failed', `${MEMBERS - summary.raw_ok} (${refOut.trim().split('\n').slice(0, -1).join(' | ')})`);
// Measured as the pushes are: from the first answer to the last, at the stand-in.
// The first request set up the connection alone (as the pushes' token request does): not counted.
const refAt = fcm.sends.filter((x) => x.status === 200).map((x) => x.answeredAt).sort((a, b) => a - b).slice(1);
const refRate = (refAt.length - 1) / (Math.max(1, refAt[refAt.length - 1] - refAt[0]) / 1000);

// The floor for REST p99 while pushing: the same paced REST client while the box is as busy with the
// stand-ins and the bare outbound driver (twice the requests, to cover the window as a push round
// does) but Carillon itself pushes nothing.
const refLoadRest = restBench(REST_SECONDS);
await sleep(500);
await runReference(2 * MEMBERS);
const refLoadP99 = await refLoadRest;

// BENCH_PERF=FILE: perf record -g of the server over the first round (the profile of a push).
let perfProc = null;
if (process.env.BENCH_PERF) {
  perfProc = spawn('perf', ['record', '-g', '-F', '999', '-o', process.env.BENCH_PERF, '-p', String(server.pid)], { stdio: 'ignore' });
  await sleep(500);
}
const first = await pushRound(1);
if (perfProc) {
  perfProc.kill('SIGINT');
  await new Promise((r) => perfProc.on('exit', r));
}
out('time_to_last_push_ms', first.timeToLast);
out('pushes_per_s', first.rate.toFixed(0));
out('cpu_ms_per_push', (first.cpuMs / MEMBERS).toFixed(3));
const idleP99 = await restBench(REST_SECONDS);
const during = restBench(REST_SECONDS);
await sleep(500);
const second = await pushRound(2);
const busyP99 = await during;
out('time_to_last_push_ms_under_rest_load', second.timeToLast);
out('rest_p99_ms_idle', idleP99);
out('rest_p99_ms_pushing', busyP99);
out('rest_p99_ms_reference_load', refLoadP99);
out('rest_ratio_pushing', `${(busyP99 / idleP99).toFixed(2)} (p99 pushing / idle), ${(busyP99 / refLoadP99).toFixed(2)} (p99 pushing / p99 while the stand-ins serve the bare driver)`);
out('ref_requests_per_s', refRate.toFixed(0));
out('ratio', `${(refRate / first.rate).toFixed(2)} (loopback HTTP/2 requests per push's time)`);
const problems = fcm.problems.length + apns.problems.length;
out('standin_problems', problems);
// Streams the server's libcurl reset mid-request (a connection-level HTTP/2 error): retried by the outbox.
out('standin_aborted_requests', fcm.aborted + apns.aborted);
// Each with its reason, counted by kind (the FCM stand-in records words, the APNs one {path, problems}).
const byReason = new Map();
for (const p of [...fcm.problems.map((x) => `fcm: ${x}`), ...apns.problems.map((x) => `apns: ${x.problems.join('; ')}`)]) {
  byReason.set(p, (byReason.get(p) ?? 0) + 1);
}
for (const [why, n] of byReason) out('standin_problem', `${n}x ${why}`);

// Bounded: an HTTP/2 stand-in's close waits for sessions the server's libcurl may keep open, which
// held the script until its caller's timeout after the figures were printed.
server.kill('SIGTERM');
await Promise.race([new Promise((r) => server.on('exit', r)), sleep(5000)]);
await Promise.race([Promise.all([fcm.stop(), apns.down()]), sleep(3000)]);
process.exit(problems ? 1 : 0);
