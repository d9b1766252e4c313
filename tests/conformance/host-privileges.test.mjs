// Least privilege on the host and in the database.
//
// Started as root, `carillon serve` binds its port, reads its key files and prepares its data
// directory, then becomes CARILLON_USER ("carillon") for good: real, effective and saved ids. The
// files of its data directory belong to that user; key files others could read are refused;
// secrets never travel on the command line (ps) and never reach the log: the generated root secret
// is printed once, when it is created, and only on a terminal (`carillon root-key` prints it on
// demand). The database role it serves with is no superuser: the embedded cluster's serving role
// owns the database and nothing more, and a role that merely owns the schemas an administrator
// made for it can migrate and serve.
//
// Needs root (CI runs as root): it checks what a root start turns into.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateAppInstanceCommand, DescribeAppInstanceCommand, ListAppInstancesCommand } from '@aws-sdk/client-chime-sdk-identity';
import { describeRun, psql, runProcess } from './lib/cli.mjs';
import { identityClient } from './lib/clients.mjs';
import { ACCOUNT_ID, freePort, randomMasterKey, randomRootKey, REGION, startCarillon } from './lib/server.mjs';
import { uniq } from './lib/util.mjs';

const RUN_AS = 'carillon';
const EMBEDDED_START_MS = 180000; // the first start runs initdb; the machine may be loaded

if (process.getuid() !== 0) {
  throw new Error('host-privileges.test.mjs must run as root: it checks what `carillon serve` started as root becomes');
}

function bin() {
  const b = process.env.CARILLON_BIN;
  if (!b) throw new Error('CARILLON_BIN is not set; see tests/conformance/README.md');
  return b;
}

async function osUser(name) {
  const r = await runProcess('getent', ['passwd', name]);
  assert.equal(r.code, 0, `user ${name} must exist once carillon served as root: ${describeRun(r)}`);
  const [, , uid, gid] = r.stdout.trim().split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Real, effective, saved and filesystem ids and the groups of a process, from /proc. */
function procIds(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const ids = (key) => (new RegExp(`^${key}:(.*)$`, 'm').exec(status)?.[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
  const cap = (key) => new RegExp(`^${key}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1];
  return { uid: ids('Uid'), gid: ids('Gid'), groups: ids('Groups'), capPrm: cap('CapPrm'), capEff: cap('CapEff') };
}

/** The command lines of every process, as ps shows them. */
function allCmdlines() {
  let out = '';
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      out += readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ') + '\n';
    } catch {} // gone meanwhile
  }
  return out;
}

/** Every path under dir (dir included), with its lstat. */
function walk(dir) {
  const out = [{ p: dir, st: lstatSync(dir) }];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) out.push(...walk(p));
    else out.push({ p, st });
  }
  return out;
}

/** A directory under /tmp the unprivileged user can get through (mode 0711), for data dirs. */
function reachableTmp(prefix) {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(d, 0o711);
  return d;
}

/** `carillon root-key` with these settings: {accessKeyId, secretAccessKey}. */
async function rootKeyOf(env) {
  const r = await runProcess(bin(), ['root-key'], { env: { ...process.env, ...env }, timeoutMs: 30000 });
  assert.equal(r.code, 0, `carillon root-key: ${describeRun(r)}`);
  const accessKeyId = /^AccessKeyId: +(\S+)$/m.exec(r.stdout)?.[1];
  const secretAccessKey = /^SecretAccessKey: +(\S+)$/m.exec(r.stdout)?.[1];
  assert.ok(accessKeyId && secretAccessKey, `carillon root-key must print AccessKeyId and SecretAccessKey: ${describeRun(r)}`);
  return { accessKeyId, secretAccessKey };
}

/** The test PostgreSQL's conninfo with another database and user (keyword form). */
function testDbAs(dbname, user) {
  const base = process.env.CARILLON_TEST_DATABASE_URL;
  if (!base) throw new Error('CARILLON_TEST_DATABASE_URL is not set; see tests/conformance/README.md');
  assert.ok(!/^\w+:\/\//.test(base), 'this test needs CARILLON_TEST_DATABASE_URL in keyword form (host=... dbname=... user=...)');
  const kept = base.replace(/\b(dbname|user)=('([^'\\]|\\.)*'|\S+)/g, '').trim();
  return `${kept} dbname=${dbname} user=${user}`;
}

/** Serving backends of the database `dbname` and whether their role is a superuser. */
async function servingRoles(superuserUrl, dbname) {
  const out = await psql(
    `select a.usename || ':' || r.rolsuper from pg_stat_activity a join pg_roles r on r.rolname = a.usename ` +
      `where a.datname = '${dbname}' and a.backend_type = 'client backend' and a.pid <> pg_backend_pid()`,
    { databaseUrl: superuserUrl },
  );
  return out.split('\n').filter(Boolean).map((l) => {
    const [role, sup] = l.split(':');
    return { role, superuser: sup === 'true' };
  });
}

/** Run `carillon serve` expecting a refusal: exit status and output, killed after timeoutMs. */
async function serveExpectingRefusal(args, env, timeoutMs = 20000) {
  return await runProcess(bin(), ['serve', ...args], { env: { ...process.env, ...env }, timeoutMs });
}

async function serverEnv(extra = {}) {
  const port = await freePort();
  const rootKey = randomRootKey();
  return {
    CARILLON_DATABASE_URL: process.env.CARILLON_TEST_DATABASE_URL,
    CARILLON_LISTEN: `127.0.0.1:${port}`,
    CARILLON_REGION: REGION,
    CARILLON_ACCOUNT_ID: ACCOUNT_ID,
    CARILLON_ROOT_ACCESS_KEY_ID: rootKey.accessKeyId,
    CARILLON_ROOT_SECRET_ACCESS_KEY: rootKey.secretAccessKey,
    CARILLON_MASTER_KEY: randomMasterKey(),
    ...extra,
  };
}

describe('embedded quickstart started as root', () => {
  let srv;
  let dataDir;
  let masterKeyHex;
  let rootKey;
  const root = async () => (rootKey ??= await rootKeyOf({ CARILLON_DATA_DIR: dataDir, CARILLON_DATABASE_URL: '' }));

  before(async () => {
    // No CARILLON_DATABASE_URL, no master key, no root key: the first start of a quickstart.
    srv = await startCarillon({
      databaseUrl: '',
      startTimeoutMs: EMBEDDED_START_MS,
      env: { CARILLON_MASTER_KEY: '', CARILLON_ROOT_ACCESS_KEY_ID: '', CARILLON_ROOT_SECRET_ACCESS_KEY: '' },
    });
    dataDir = srv.dataDir;
    masterKeyHex = readFileSync(path.join(dataDir, 'master.key'), 'utf8').trim();
  });

  after(async () => {
    if (!srv) return;
    const info = await srv.stop();
    assert.equal(info.code, 0, `carillon serve must exit 0 on SIGTERM: ${JSON.stringify(info)}`);
  });

  test('the serving process runs as CARILLON_USER: real, effective, saved and fs uid and gid; no root group', async () => {
    const want = await osUser(RUN_AS);
    const ids = procIds(srv.proc.pid);
    assert.deepEqual(ids.uid, [want.uid, want.uid, want.uid, want.uid], `Uid line of /proc/${srv.proc.pid}/status`);
    assert.deepEqual(ids.gid, [want.gid, want.gid, want.gid, want.gid], `Gid line of /proc/${srv.proc.pid}/status`);
    assert.ok(!ids.groups.includes(0), `supplementary groups must not include root's: ${ids.groups}`);
    assert.match(ids.capPrm ?? '', /^0+$/, 'no permitted capability left');
    assert.match(ids.capEff ?? '', /^0+$/, 'no effective capability left');
    assert.match(srv.log(), /running as user carillon/);
    // It still serves, as that user, with the root credential of the deployment.
    const id = identityClient(srv, await root());
    const arn = (await id.send(new CreateAppInstanceCommand({ Name: uniq('hp'), ClientRequestToken: uniq('t') }))).AppInstanceArn;
    assert.equal((await id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }))).AppInstance.AppInstanceArn, arn);
  });

  test('the data directory and every file in it belong to CARILLON_USER; master.key is 0600', async () => {
    const want = await osUser(RUN_AS);
    const wrong = walk(dataDir)
      .filter(({ st }) => st.uid !== want.uid || st.gid !== want.gid)
      .map(({ p, st }) => `${p} (${st.uid}:${st.gid})`);
    assert.deepEqual(wrong, [], 'files of the data directory owned by someone else than the carillon user');
    const key = lstatSync(path.join(dataDir, 'master.key'));
    assert.ok(key.isFile(), 'master.key is a regular file');
    assert.equal(key.mode & 0o777, 0o600, 'master.key mode');
    assert.equal(lstatSync(dataDir).mode & 0o077, 0, 'the data directory is private to its owner');
  });

  test('no secret in ps or /proc/<pid>/cmdline, nor in the environment of the PostgreSQL it started', async () => {
    const cmdline = readFileSync(`/proc/${srv.proc.pid}/cmdline`, 'utf8');
    // What ps shows: every process's command line (its own and the PostgreSQL processes').
    const everyCmdline = allCmdlines();
    assert.ok(!cmdline.includes(masterKeyHex), `master key in /proc/${srv.proc.pid}/cmdline`);
    assert.ok(!everyCmdline.includes(masterKeyHex), 'master key in a command line (ps)');
    const postmasterPid = Number(readFileSync(path.join(dataDir, 'postgres/data/postmaster.pid'), 'utf8').split('\n')[0]);
    const env = readFileSync(`/proc/${postmasterPid}/environ`, 'utf8');
    assert.ok(!/(^|\0)CARILLON_/.test(env), 'the embedded PostgreSQL inherited Carillon\'s settings');
    const { secretAccessKey } = await root();
    assert.ok(!cmdline.includes(secretAccessKey), `root secret in /proc/${srv.proc.pid}/cmdline`);
    assert.ok(!everyCmdline.includes(secretAccessKey), 'root secret in a command line (ps)');
  });

  test('the log shows neither the root secret nor the master key (stdout is no terminal: not even at creation)', async () => {
    const log = srv.log();
    assert.match(log, /root access key: +AKIA/, 'the banner still names the root access key id');
    assert.doesNotMatch(log, /root secret key: +[A-Za-z0-9+/]{40}/, 'a root secret in the log');
    assert.ok(!log.includes(masterKeyHex), 'master key in the log');
    assert.match(log, /root secret key: +not shown \(stdout is not a terminal\); `carillon root-key`/);
    const { accessKeyId, secretAccessKey } = await root();
    assert.ok(log.includes(accessKeyId));
    assert.ok(!log.includes(secretAccessKey), 'root secret in the log');
  });

  test('the embedded cluster serves through a role that is not a superuser; the superuser is kept for maintenance', async () => {
    const superuserUrl = `host=${path.join(dataDir, 'postgres/run')} dbname=carillon user=carillon`;
    const roles = await servingRoles(superuserUrl, 'carillon');
    assert.ok(roles.length > 0, 'carillon serve has connections open to the embedded database');
    assert.deepEqual(roles.filter((r) => r.superuser), [], `serving roles: ${JSON.stringify(roles)}`);
    const owner = await psql("select pg_get_userbyid(datdba) from pg_database where datname = 'carillon'", { databaseUrl: superuserUrl });
    assert.equal(owner, roles[0].role, 'the serving role owns the database');
    const attrs = await psql(
      `select rolsuper || ',' || rolcreatedb || ',' || rolcreaterole || ',' || rolreplication || ',' || rolbypassrls from pg_roles where rolname = '${owner}'`,
      { databaseUrl: superuserUrl },
    );
    assert.equal(attrs, 'false,false,false,false,false', `attributes of ${owner}`);
  });
});

describe('the generated root secret is shown once, at creation, on a terminal', () => {
  /** `carillon serve` on a pseudo-terminal (script(1)); returns {output, stop}. */
  async function serveOnTerminal(dataDir, port) {
    const env = { ...process.env, CARILLON_DATA_DIR: dataDir, CARILLON_LISTEN: `127.0.0.1:${port}` };
    for (const k of ['CARILLON_DATABASE_URL', 'CARILLON_MASTER_KEY', 'CARILLON_ROOT_ACCESS_KEY_ID', 'CARILLON_ROOT_SECRET_ACCESS_KEY']) delete env[k];
    const cmd = `exec ${JSON.stringify(bin())} serve`;
    const proc = spawn('script', ['-qfec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks = [];
    proc.stdout.on('data', (b) => chunks.push(b));
    proc.stderr.on('data', (b) => chunks.push(b));
    const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    let done = false;
    exited.then(() => (done = true));
    const output = () => Buffer.concat(chunks).toString('utf8');
    const deadline = Date.now() + EMBEDDED_START_MS;
    for (;;) {
      assert.ok(!done, `carillon serve (on a terminal) exited before serving:\n${output()}`);
      assert.ok(Date.now() < deadline, `carillon serve (on a terminal) not healthy in time:\n${output()}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200 && /serving on/.test(output())) break;
      } catch {}
      await sleep(200);
    }
    // The server's pid is in its log lines ("... [pid] notice: ...").
    const pid = Number(/\[(\d+)\] notice: serving on/.exec(output())?.[1]);
    assert.ok(pid > 0, `no pid in the log:\n${output()}`);
    return {
      output,
      async stop() {
        process.kill(pid, 'SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 60000);
        const info = await exited;
        clearTimeout(t);
        return info;
      },
    };
  }

  test('first start: printed with the banner; next start: only the key id; `carillon root-key` prints it', { timeout: 2 * EMBEDDED_START_MS + 60000 }, async () => {
    const parent = reachableTmp('carillon-hp-tty-');
    const dataDir = path.join(parent, 'data');
    try {
      const first = await serveOnTerminal(dataDir, await freePort());
      const firstOut = first.output();
      await first.stop();
      const shown = /root secret key: +([A-Za-z0-9+/]{40})\s/.exec(firstOut)?.[1];
      assert.ok(shown, `the first start prints the new root secret on the terminal:\n${firstOut}`);
      assert.equal(firstOut.split(shown).length - 1, 1, 'printed exactly once');

      const second = await serveOnTerminal(dataDir, await freePort());
      const secondOut = second.output();
      await second.stop();
      assert.ok(!secondOut.includes(shown), `the second start must not print the secret again:\n${secondOut}`);
      assert.match(secondOut, /root secret key: +not shown; `carillon root-key`/);

      const root = await rootKeyOf({ CARILLON_DATA_DIR: dataDir, CARILLON_DATABASE_URL: '' });
      assert.equal(root.secretAccessKey, shown, 'carillon root-key prints the secret shown at creation');
      assert.ok(secondOut.includes(root.accessKeyId), `the second start names the key id:\n${secondOut}`);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe('key files and secret flags', () => {
  test('CARILLON_MASTER_KEY_FILE readable by group or others is refused (clear message, non-zero exit); 0600 is used', async () => {
    const dir = reachableTmp('carillon-hp-key-');
    try {
      const keyFile = path.join(dir, 'master.key');
      const masterKey = randomMasterKey();
      writeFileSync(keyFile, masterKey + '\n');
      for (const mode of [0o644, 0o640, 0o604]) {
        chmodSync(keyFile, mode);
        const env = await serverEnv({ CARILLON_MASTER_KEY: '', CARILLON_MASTER_KEY_FILE: keyFile });
        const r = await serveExpectingRefusal([], env);
        assert.ok(r.code !== null && r.code !== 0, `mode ${mode.toString(8)} must be refused with a non-zero exit: ${describeRun(r)}`);
        assert.ok(r.stderr.includes(keyFile), `the message names the file: ${describeRun(r)}`);
        assert.match(r.stderr, /accessible to group or others .*chmod 600/, describeRun(r));
        assert.doesNotMatch(r.stdout + r.stderr, /serving on/);
        assert.ok(!(r.stdout + r.stderr).includes(masterKey), 'the refused key is not echoed');
      }
      chmodSync(keyFile, 0o600);
      const srv = await startCarillon({ masterKey, env: { CARILLON_MASTER_KEY: '', CARILLON_MASTER_KEY_FILE: keyFile } });
      try {
        await identityClient(srv).send(new ListAppInstancesCommand({}));
      } finally {
        await srv.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a generated <data_dir>/master.key readable by others is refused too', { timeout: EMBEDDED_START_MS + 60000 }, async () => {
    const parent = reachableTmp('carillon-hp-gen-');
    try {
      const dataDir = path.join(parent, 'data');
      // A first run makes the data directory and its key; then someone loosens the key's mode.
      const first = await runProcess(bin(), ['migrate'], {
        env: { ...process.env, CARILLON_DATA_DIR: dataDir, CARILLON_DATABASE_URL: '', CARILLON_MASTER_KEY: '', CARILLON_ROOT_ACCESS_KEY_ID: '', CARILLON_ROOT_SECRET_ACCESS_KEY: '' },
        timeoutMs: EMBEDDED_START_MS,
      });
      assert.equal(first.code, 0, `carillon migrate (embedded): ${describeRun(first)}`);
      const keyFile = path.join(dataDir, 'master.key');
      chmodSync(keyFile, 0o644);
      const env = { CARILLON_DATA_DIR: dataDir, CARILLON_DATABASE_URL: '', CARILLON_MASTER_KEY: '', CARILLON_ROOT_ACCESS_KEY_ID: '', CARILLON_ROOT_SECRET_ACCESS_KEY: '', CARILLON_LISTEN: `127.0.0.1:${await freePort()}` };
      const r = await serveExpectingRefusal([], env, 60000);
      assert.ok(r.code !== null && r.code !== 0, `must be refused with a non-zero exit: ${describeRun(r)}`);
      assert.ok(r.stderr.includes(keyFile), describeRun(r));
      assert.match(r.stderr, /accessible to group or others/, describeRun(r));
      assert.doesNotMatch(r.stdout + r.stderr, /serving on/);
      assert.ok(!existsSync(path.join(dataDir, 'postgres/data/postmaster.pid')), 'the embedded PostgreSQL was stopped again');
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  test('secrets on the command line are refused: --root-secret-access-key, --master-key, --database-url with a password', async () => {
    const env = await serverEnv();
    const cases = [
      ['--root-secret-access-key', env.CARILLON_ROOT_SECRET_ACCESS_KEY],
      [`--root-secret-access-key=${env.CARILLON_ROOT_SECRET_ACCESS_KEY}`],
      ['--master-key', env.CARILLON_MASTER_KEY],
      ['--database-url', 'postgresql://carillon:hunter2@127.0.0.1/carillon'],
      ['--database-url', `${process.env.CARILLON_TEST_DATABASE_URL} password=hunter2`],
    ];
    for (const args of cases) {
      const r = await serveExpectingRefusal(args, env);
      assert.equal(r.code, 2, `${args[0]}: must be refused before anything starts (exit 2): ${describeRun(r)}`);
      assert.match(r.stderr, /refused.*visible to every local user \(ps\)/, describeRun(r));
      assert.doesNotMatch(r.stdout + r.stderr, /serving on/);
    }
    // The same secrets from the environment are fine (every other test file starts servers so).
    const ok = await startCarillon();
    await ok.stop();
  });
});

test('a config file holding a secret must be private to its owner', async () => {
  const env = await serverEnv();
  const dir = reachableTmp('carillon-hp-cfg-');
  try {
    const cfg = path.join(dir, 'carillon.conf');
    writeFileSync(cfg, `# test\nCARILLON_MASTER_KEY=${env.CARILLON_MASTER_KEY}\n`);
    chmodSync(cfg, 0o644);
    const { CARILLON_MASTER_KEY, ...rest } = env;
    const r = await serveExpectingRefusal(['--config', cfg], { ...rest, CARILLON_MASTER_KEY: undefined });
    assert.equal(r.code, 2, `a secret in a group/world-readable config file must be refused: ${describeRun(r)}`);
    assert.match(r.stderr, /CARILLON_MASTER_KEY is a secret, and .* is accessible to group or others \(mode 0644\)/, describeRun(r));
    assert.ok(!(r.stdout + r.stderr).includes(CARILLON_MASTER_KEY), 'the secret is not echoed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('a database role that is not a superuser', () => {
  const superuserUrl = () => testDbAs('postgres', 'carillon');
  const created = [];

  after(async () => {
    for (const { db, role } of created.reverse()) {
      await psql(`drop database if exists ${db} with (force)`, { databaseUrl: superuserUrl() });
      await psql(`drop role if exists ${role}`, { databaseUrl: superuserUrl() });
    }
  });

  async function serveAndUse(databaseUrl, db) {
    const srv = await startCarillon({ databaseUrl, startTimeoutMs: 60000 });
    try {
      const id = identityClient(srv);
      const arn = (await id.send(new CreateAppInstanceCommand({ Name: uniq('np'), ClientRequestToken: uniq('t') }))).AppInstanceArn;
      assert.equal((await id.send(new DescribeAppInstanceCommand({ AppInstanceArn: arn }))).AppInstance.AppInstanceArn, arn);
      const roles = await servingRoles(superuserUrl(), db);
      assert.ok(roles.length > 0, 'the server is connected');
      assert.deepEqual(roles.filter((r) => r.superuser), [], `serving roles: ${JSON.stringify(roles)}`);
      assert.ok(!srv.log().includes(srv.rootKey.secretAccessKey), 'root secret in the log');
      assert.ok(!srv.log().includes(srv.masterKey), 'master key in the log');
    } finally {
      const info = await srv.stop();
      assert.equal(info.code, 0, `exit on SIGTERM: ${JSON.stringify(info)}`);
    }
  }

  test('a role owning only the schemas carillon and carillon_api (no CREATE on the database) migrates and serves', async () => {
    const role = uniq('np_schema').replace(/-/g, '_').toLowerCase();
    const db = `${role}_db`;
    created.push({ db, role });
    await psql(`create role ${role} login nosuperuser nocreatedb nocreaterole`, { databaseUrl: superuserUrl() });
    await psql(`create database ${db}`, { databaseUrl: superuserUrl() });
    const dbAdmin = testDbAs(db, 'carillon');
    await psql(`revoke create, temporary on database ${db} from public`, { databaseUrl: dbAdmin });
    await psql(`create schema carillon authorization ${role}`, { databaseUrl: dbAdmin });
    await psql(`create schema carillon_api authorization ${role}`, { databaseUrl: dbAdmin });
    assert.equal(await psql(`select has_database_privilege('${role}', '${db}', 'create')`, { databaseUrl: dbAdmin }), 'f');
    await serveAndUse(testDbAs(db, role), db);
    assert.equal(await psql(`select count(*) > 0 from carillon.migrations`, { databaseUrl: dbAdmin }), 't');
  });

  test('a role owning its database migrates and serves', async () => {
    const role = uniq('np_owner').replace(/-/g, '_').toLowerCase();
    const db = `${role}_db`;
    created.push({ db, role });
    await psql(`create role ${role} login nosuperuser nocreatedb nocreaterole`, { databaseUrl: superuserUrl() });
    await psql(`create database ${db} owner ${role}`, { databaseUrl: superuserUrl() });
    await serveAndUse(testDbAs(db, role), db);
  });
});
