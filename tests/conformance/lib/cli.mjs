// Running programs next to a test server: the `carillon` CLI with the server's own settings, psql
// against the test database, and any other child process with a bounded run time.

import { spawn } from 'node:child_process';
import { ACCOUNT_ID, REGION } from './server.mjs';

/**
 * Run a program and collect its output. Never rejects for a non-zero exit: returns
 * {code, signal, stdout, stderr, error}. `error` is set when it could not be started (ENOENT, ...).
 * opts: env (the whole environment), cwd, input (written to stdin), timeoutMs (SIGKILL after it).
 */
export function runProcess(cmd, args = [], opts = {}) {
  const { env = process.env, cwd, input, timeoutMs = 60000 } = opts;
  return new Promise((resolve) => {
    let proc;
    try {
      proc = spawn(cmd, args, { env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (error) {
      resolve({ code: null, signal: null, stdout: '', stderr: '', error });
      return;
    }
    const out = [];
    const err = [];
    let timedOut = false;
    let startError = null;
    proc.stdout.on('data', (b) => out.push(b));
    proc.stderr.on('data', (b) => err.push(b));
    proc.stdin.on('error', () => {});
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.on('error', (e) => {
      startError = e;
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        error: startError ?? (timedOut ? new Error(`${cmd} ${args.join(' ')}: killed after ${timeoutMs} ms`) : null),
      });
    });
    if (input !== undefined) proc.stdin.end(input);
    else proc.stdin.end();
  });
}

/** A one-line description of a finished process, for assertion messages. */
export function describeRun(r) {
  return `exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}${r.error ? ` [${r.error.message}]` : ''}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

function testDatabaseUrl(srv) {
  const url = srv?.databaseUrl ?? process.env.CARILLON_TEST_DATABASE_URL;
  if (!url) throw new Error('CARILLON_TEST_DATABASE_URL is not set; see tests/conformance/README.md');
  return url;
}

/**
 * The environment `carillon serve` got in lib/server.mjs (the same database, master key, region,
 * account and root key as `srv`), for running other `carillon` commands against the same deployment.
 */
export function carillonEnv(srv, extra = {}) {
  return {
    ...process.env,
    CARILLON_DATABASE_URL: testDatabaseUrl(srv),
    CARILLON_REGION: srv.region ?? REGION,
    CARILLON_ACCOUNT_ID: srv.accountId ?? ACCOUNT_ID,
    CARILLON_ROOT_ACCESS_KEY_ID: srv.rootKey.accessKeyId,
    CARILLON_ROOT_SECRET_ACCESS_KEY: srv.rootKey.secretAccessKey,
    CARILLON_MASTER_KEY: srv.masterKey,
    CARILLON_DATA_DIR: srv.dataDir,
    CARILLON_LOG_LEVEL: process.env.CARILLON_LOG_LEVEL || 'info',
    ...extra,
  };
}

/** Run `$CARILLON_BIN <args...>` with the settings of `srv`. Returns runProcess's result. */
export function carillonCli(srv, args, { env = {}, timeoutMs = 30000 } = {}) {
  const bin = process.env.CARILLON_BIN;
  if (!bin) throw new Error('CARILLON_BIN is not set; see tests/conformance/README.md');
  return runProcess(bin, args, { env: carillonEnv(srv, env), timeoutMs });
}

/**
 * Run one SQL command with psql against the test database (the conninfo is passed as one argument)
 * and return its output in unaligned, tuples-only form, trimmed. Throws if psql fails.
 */
export async function psql(sql, { databaseUrl, timeoutMs = 30000 } = {}) {
  const url = databaseUrl ?? testDatabaseUrl();
  const r = await runProcess('psql', [url, '-X', '-v', 'ON_ERROR_STOP=1', '-At', '-c', sql], { timeoutMs });
  if (r.error || r.code !== 0) throw new Error(`psql -c ${JSON.stringify(sql)} failed: ${describeRun(r)}`);
  return r.stdout.trim();
}
