// README.md's "Five minutes with Carillon", run as written: the sh blocks between
// <!-- walkthrough:start --> and <!-- walkthrough:end -->, in order, in one bash session, with
// Debian's AWS CLI (/usr/bin/aws, a clean environment: no ~/.aws, no pyenv) and the real
// amazon-chime-sdk-js session of examples/watch/watch.cjs. What the test changes, and only this:
//   - the port: 127.0.0.1:8080 becomes a free port (CARILLON_LISTEN is set for the server);
//   - scripts/quickstart.sh becomes CARILLON_BIN serve and build/carillon becomes CARILLON_BIN
//     (quickstart builds the same binary), with the embedded PostgreSQL in a temporary data dir;
//   - `scripts/install-deps.sh --node` is skipped (scripts/test.sh has run it), and
//     `npm ci --prefix examples/watch` too: the test resolves the same packages, at the same
//     versions (checked below), from tests/conformance/node_modules (NODE_PATH);
//   - after the block that starts the watcher it waits for "watch: session started", and after the
//     send for the message line, as the reader does.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from './lib/server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function walkthroughBlocks() {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('<!-- walkthrough:start -->');
  const end = readme.indexOf('<!-- walkthrough:end -->');
  assert.ok(start >= 0 && end > start, 'README.md has the walkthrough markers');
  return [...readme.slice(start, end).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
}

function healthz(port, ca) {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/healthz', ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}

test('the examples/watch package pins the versions the test resolves from tests/conformance', () => {
  const watch = JSON.parse(fs.readFileSync(path.join(root, 'examples/watch/package.json'), 'utf8')).dependencies;
  const conf = JSON.parse(fs.readFileSync(path.join(root, 'tests/conformance/package.json'), 'utf8')).devDependencies;
  for (const [name, version] of Object.entries(watch)) assert.equal(conf[name], version, name);
  const lock = JSON.parse(fs.readFileSync(path.join(root, 'examples/watch/package-lock.json'), 'utf8'));
  for (const [name, version] of Object.entries(watch)) assert.equal(lock.packages[`node_modules/${name}`]?.version, version, `lock: ${name}`);
});

test("README's five-minute walk-through works as written", { timeout: 240000 }, async (t) => {
  const bin = process.env.CARILLON_BIN;
  assert.ok(bin, 'CARILLON_BIN must be set (tests/conformance/README.md)');
  const blocks = walkthroughBlocks();
  assert.ok(blocks.length >= 5, `expected the walk-through's sh blocks, found ${blocks.length}`);
  assert.match(blocks[0], /scripts\/quickstart\.sh/);

  const port = await freePort();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'carillon-readme-'));
  fs.chmodSync(work, 0o711); // as root, the embedded PostgreSQL's user must reach the data dir
  fs.mkdirSync(path.join(work, 'bin'));
  fs.symlinkSync(process.execPath, path.join(work, 'bin', 'node'));
  const env = {
    PATH: `${work}/bin:/usr/bin:/bin`, HOME: work, LANG: 'C.UTF-8', CARILLON_BIN: bin,
    CARILLON_DATA_DIR: path.join(work, 'data'), CARILLON_LISTEN: `127.0.0.1:${port}`,
    NODE_PATH: path.join(root, 'tests/conformance/node_modules'), NODE_NO_WARNINGS: '1',
  };
  const subst = (s) => s
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)
    .replaceAll('scripts/quickstart.sh', 'exec "$CARILLON_BIN" serve')
    .replaceAll('build/carillon', '"$CARILLON_BIN"')
    .replace(/^scripts\/install-deps\.sh --node.*$/m, ': install-deps skipped by the test, scripts/test.sh ran it')
    .replace(/^npm ci --prefix examples\/watch.*$/m, ': npm ci skipped by the test')
    .replaceAll('examples/watch/', `${root}/examples/watch/`);

  // 1. the server, as terminal 1 runs it
  const serverLog = path.join(work, 'server.log');
  const server = spawn('bash', ['-euo', 'pipefail', '-c', subst(blocks[0])], {
    cwd: work, env, stdio: ['ignore', fs.openSync(serverLog, 'w'), fs.openSync(serverLog, 'a')],
  });
  let serverExit = null;
  const serverExited = new Promise((resolve) => server.on('exit', (code, signal) => resolve((serverExit = { code, signal }))));
  let script = null;
  t.after(async () => {
    if (script && script.exitCode === null) try { process.kill(-script.pid, 'SIGKILL'); } catch {}
    if (serverExit === null) {
      server.kill('SIGTERM');
      await Promise.race([serverExited, sleep(30000)]);
      if (serverExit === null) server.kill('SIGKILL');
    }
    fs.rmSync(work, { recursive: true, force: true });
  });
  let status = 0;
  for (let i = 0; i < 600 && serverExit === null && status !== 200; i++) { // initdb on the first start
    await sleep(200);
    if (fs.existsSync(path.join(work, 'carillon-cert.pem'))) status = await healthz(port, fs.readFileSync(path.join(work, 'carillon-cert.pem')));
  }
  assert.equal(status, 200, `the server never answered /healthz over TLS:\n${fs.readFileSync(serverLog, 'utf8')}`);

  // 2. the rest, as terminal 2 runs it
  const out = path.join(work, 'walkthrough.out');
  const waitFor = (s) => `__wait_for ${JSON.stringify(s).replaceAll('$', '\\$')}\n`;
  let text = 'set -euo pipefail\n' +
    '__wait_for() { for _ in $(seq 1 900); do grep -qF -- "$1" "$__OUT" && return 0; sleep 0.1; done; ' +
    'echo "walkthrough test: timed out waiting for: $1" >&2; return 1; }\n';
  for (const b of blocks.slice(1)) {
    text += subst(b);
    if (b.includes('watch.cjs') && b.includes('&')) text += waitFor('watch: session started');
    if (b.includes('send-channel-message')) text += waitFor('watch: CREATE_CHANNEL_MESSAGE: Hello Bob! (from Alice)');
  }
  const fd = fs.openSync(out, 'w');
  script = spawn('bash', ['-c', text], { cwd: work, env: { ...env, __OUT: out }, stdio: ['ignore', fd, fd], detached: true });
  const code = await new Promise((resolve) => script.on('exit', (c, s) => resolve(c ?? s)));
  const output = fs.readFileSync(out, 'utf8');
  assert.equal(code, 0, `the walk-through failed (exit ${code}):\n${output}\n--- server log ---\n${fs.readFileSync(serverLog, 'utf8').slice(-4000)}`);
  assert.match(output, /^watch: session started$/m);
  assert.match(output, /^watch: CREATE_CHANNEL_MESSAGE: Hello Bob! \(from Alice\)$/m);
  assert.match(output, /^Alice\tHello Bob!$/m, `list-channel-messages as Bob:\n${output}`);

  server.kill('SIGTERM');
  await serverExited;
  assert.deepEqual(serverExit, { code: 0, signal: null }, fs.readFileSync(serverLog, 'utf8').slice(-4000));
});
