// Starts a real Carillon server for a test file.
//
// Needs CARILLON_BIN (the server binary) and CARILLON_TEST_DATABASE_URL (a libpq conninfo of a
// PostgreSQL the test may use). Missing either is an error, never a skip: a conformance run that
// silently tests nothing is worse than a red one.

import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const REGION = 'us-east-1';
export const ACCOUNT_ID = '111122223333';

const ALNUM_UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const SECRET_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function randomString(n, alphabet) {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

export function randomRootKey() {
  return {
    accessKeyId: 'AKIA' + randomString(16, ALNUM_UPPER),
    secretAccessKey: randomString(40, SECRET_CHARS),
  };
}

export function randomMasterKey() {
  return randomBytes(32).toString('hex');
}

export async function freePort() {
  return await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function tail(text, n) {
  const lines = text.split('\n');
  return lines.length > n ? [`[... ${lines.length - n} earlier lines]`, ...lines.slice(-n)].join('\n') : text;
}

function requireEnv(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(
      `${name} is not set. The conformance suite needs CARILLON_BIN (path to the carillon binary) ` +
        `and CARILLON_TEST_DATABASE_URL (libpq conninfo of a test PostgreSQL); see tests/conformance/README.md.`,
    );
  }
  return v;
}

// `carillon serve` defaults to one worker process per core; every test here was written for one
// process (pids, signals, a node's own sessions), including the tests that run the binary
// themselves with this process's environment. workers.test.mjs asks for several (opts.env).
process.env.CARILLON_WORKERS ??= '1';

// Every server started by this process, so their logs can be shown when the file fails.
const everyServer = [];

process.on('exit', (code) => {
  const failed = (code || process.exitCode || 0) !== 0;
  if (!failed && !process.env.CARILLON_TEST_SHOW_LOG) return;
  for (const srv of everyServer) {
    process.stderr.write(
      `\n----- carillon log (${srv.endpoint}, pid ${srv.proc.pid}, exit ${JSON.stringify(srv.exitInfo)}) -----\n${tail(srv.log(), 400)}\n----- end of carillon log -----\n`,
    );
  }
});

/**
 * Start Carillon and wait until GET /healthz answers 200.
 * opts.masterKey: fixed CARILLON_MASTER_KEY (to share one between servers);
 * opts.rootKey: fixed {accessKeyId, secretAccessKey};
 * opts.env: extra environment, merged last;
 * opts.databaseUrl: override CARILLON_TEST_DATABASE_URL;
 * opts.logFile: the CARILLON_LOG_FILE the server logs to (read for its "serving on" line).
 */
/**
 * The environment of a `carillon serve` for the tests: this process's, plus the database, the
 * loopback port, region and account, the root key, the master key, the data directory and the log
 * level, then `env`'s own settings over them.
 */
export function serverEnv({ databaseUrl, port, rootKey, masterKey, dataDir, env = {} }) {
  return {
    ...process.env,
    CARILLON_DATABASE_URL: databaseUrl,
    CARILLON_LISTEN: `127.0.0.1:${port}`,
    CARILLON_REGION: REGION,
    CARILLON_ACCOUNT_ID: ACCOUNT_ID,
    CARILLON_ROOT_ACCESS_KEY_ID: rootKey.accessKeyId,
    CARILLON_ROOT_SECRET_ACCESS_KEY: rootKey.secretAccessKey,
    CARILLON_MASTER_KEY: masterKey,
    CARILLON_DATA_DIR: dataDir,
    CARILLON_LOG_LEVEL: process.env.CARILLON_LOG_LEVEL || 'info',
    ...(env ?? {}),
  };
}

export async function startCarillon(opts = {}) {
  const bin = requireEnv('CARILLON_BIN');
  const databaseUrl = opts.databaseUrl ?? requireEnv('CARILLON_TEST_DATABASE_URL');
  const port = opts.port ?? (await freePort());
  const rootKey = opts.rootKey ?? randomRootKey();
  const masterKey = opts.masterKey ?? randomMasterKey();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'carillon-conf-'));
  const endpoint = `http://127.0.0.1:${port}`;

  const env = serverEnv({ databaseUrl, port, rootKey, masterKey, dataDir, env: opts.env });

  const chunks = [];
  let logBytes = 0;
  const LOG_CAP = 8 * 1024 * 1024;
  const collect = (buf) => {
    if (logBytes < LOG_CAP) {
      chunks.push(buf);
      logBytes += buf.length;
    }
  };
  const log = () => Buffer.concat(chunks).toString('utf8');

  const proc = spawn(bin, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);

  let stopping = false;
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    proc.on('error', (err) => {
      exitInfo = { code: null, signal: null, error: err };
      resolve(exitInfo);
    });
  });
  exited.then((info) => {
    if (!stopping) {
      process.stderr.write(
        `\ncarillon (${endpoint}) exited unexpectedly: ${JSON.stringify({ code: info.code, signal: info.signal, error: info.error?.message })}\n` +
          `----- end of the carillon log -----\n${tail(log(), 60)}\n-----\n`,
      );
    }
  });

  const srv = {
    endpoint,
    port,
    region: REGION,
    accountId: ACCOUNT_ID,
    rootKey,
    masterKey,
    dataDir,
    proc,
    log,
    get exitInfo() {
      return exitInfo;
    },
    alive() {
      return exitInfo === null;
    },
    async stop() {
      if (exitInfo === null) {
        stopping = true;
        proc.kill('SIGTERM');
        const killer = setTimeout(() => {
          process.stderr.write(`carillon (${endpoint}) ignored SIGTERM for 5 s; sending SIGKILL\n`);
          proc.kill('SIGKILL');
        }, 5000);
        await exited;
        clearTimeout(killer);
        // Show the end of the log of a server that did not shut down cleanly.
        if (exitInfo.signal !== 'SIGTERM' && exitInfo.code !== 0) {
          process.stderr.write(
            `\ncarillon (${endpoint}) did not exit cleanly on SIGTERM: ${JSON.stringify({ code: exitInfo.code, signal: exitInfo.signal })}\n` +
              `----- end of the carillon log -----\n${tail(log(), 60)}\n-----\n`,
          );
        }
      }
      try {
        rmSync(dataDir, { recursive: true, force: true });
      } catch {}
      return exitInfo;
    },
  };
  everyServer.push(srv);

  const deadline = Date.now() + (opts.startTimeoutMs ?? 20000);
  let lastErr = null;
  for (;;) {
    if (exitInfo !== null) {
      everyServer.splice(everyServer.indexOf(srv), 1);
      rmSync(dataDir, { recursive: true, force: true });
      throw new Error(
        `carillon exited before becoming healthy (${JSON.stringify({ code: exitInfo.code, signal: exitInfo.signal, error: exitInfo.error?.message })}).\n` +
          `----- carillon log -----\n${log()}\n----- end of carillon log -----`,
      );
    }
    try {
      const res = await fetch(`${endpoint}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      // Ready means this process serves: with SO_REUSEPORT another process on the same port may
      // have answered /healthz while this one is still starting, so its own log must say so too.
      // (opts.logFile: the server logs into that file, CARILLON_LOG_FILE, instead of stderr)
      const logged = log() + (opts.logFile ? (() => { try { return readFileSync(opts.logFile, 'utf8'); } catch { return ''; } })() : '');
      if (res.status === 200 && logged.includes('serving on ')) break;
      lastErr = new Error(res.status === 200 ? 'GET /healthz answered 200, but this process has not logged "serving on" yet'
        : `GET /healthz answered ${res.status}`);
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      stopping = true;
      proc.kill('SIGKILL');
      await exited;
      everyServer.splice(everyServer.indexOf(srv), 1);
      rmSync(dataDir, { recursive: true, force: true });
      throw new Error(
        `carillon did not answer GET /healthz with 200 within ${(opts.startTimeoutMs ?? 20000) / 1000} s (last: ${lastErr?.message}).\n` +
          `----- carillon log -----\n${log()}\n----- end of carillon log -----`,
      );
    }
    await sleep(100);
  }
  return srv;
}
