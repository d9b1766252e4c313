// Debian's own Python clients against Carillon: boto3 (python3-boto3 1.26.27 / python3-botocore
// 1.29.27) and the AWS CLI (awscli 2.9.19), changed only by the endpoint override.
//
// Both are Debian packages that scripts/install-deps.sh installs. They are run from /usr/bin on purpose
// (a pyenv or pip `python3`/`aws` earlier in PATH would be a different, newer botocore). If they are
// missing, these tests fail; they are never skipped.
//
// Debian's identity model is older than the npm one (shared/api/ROUTES.md section 0): no bots, no user
// expiration settings, and no NotFoundException shape, so a 404 reaches boto3 as a plain ClientError
// whose Error.Code is "NotFoundException" (taken from the x-amzn-ErrorType header).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { describeRun, runProcess } from './lib/cli.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { APP_INSTANCE_ARN_RE, missingAppInstanceArn, suffix } from './lib/util.mjs';

const PYTHON = '/usr/bin/python3';
const AWS = '/usr/bin/aws';
const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'py', 'identity_boto3.py');
const INSTALL_HINT = 'scripts/install-deps.sh installs it (apt-get install --no-install-recommends python3-boto3 awscli)';

const ctx = useCarillon();
const t0 = Date.now();

function requireFile(file, what) {
  assert.ok(existsSync(file), `${file} is missing: ${what} is not installed. ${INSTALL_HINT}`);
}

/** A clean environment: nothing of the caller's AWS settings, no pyenv, no ~/.aws. */
function cleanEnv(home, extra) {
  return {
    PATH: '/usr/bin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_PAGER: '',
    AWS_EC2_METADATA_DISABLED: 'true',
    ...extra,
  };
}

function withHome(fn) {
  return async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'carillon-py-home-'));
    try {
      await fn(home);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  };
}

/** A timestamp as boto3 handed it back (see ts() in the script): a UTC datetime near the test time. */
function assertPyTimestamp(v, what) {
  assert.equal(v?.type, 'datetime', `${what}: boto3 must parse the timestamp into a datetime, got ${JSON.stringify(v)}`);
  assert.equal(v.tz, true, `${what}: a UTC (tz-aware) datetime, got ${v.iso}`);
  const ms = v.epoch * 1000;
  assert.ok(ms >= t0 - 5 * 60e3 && ms <= Date.now() + 5 * 60e3, `${what} ${v.iso} is not near the time of the test (seconds vs milliseconds?)`);
}

/** ISO-8601 text as the AWS CLI v2 prints timestamps (e.g. 2026-01-02T03:04:05.678000+00:00), near now. */
function assertCliTimestamp(v, what) {
  assert.equal(typeof v, 'string', `${what}: the CLI prints parsed timestamps as ISO strings, got ${JSON.stringify(v)}`);
  assert.match(v, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?\+00:00$/, `${what}`);
  const ms = Date.parse(v);
  assert.ok(ms >= t0 - 5 * 60e3 && ms <= Date.now() + 5 * 60e3, `${what} ${v} is not near the time of the test`);
}

test("Debian's boto3: users, admins, tags, errors and deletes on chime-sdk-identity", { timeout: 120000 }, withHome(async (home) => {
  requireFile(PYTHON, 'python3 (Debian)');
  const sfx = suffix();
  const r = await runProcess(PYTHON, [SCRIPT], {
    env: cleanEnv(home, {
      CARILLON_ENDPOINT: ctx.srv.endpoint,
      CARILLON_REGION: ctx.srv.region,
      CARILLON_ACCESS_KEY_ID: ctx.srv.rootKey.accessKeyId,
      CARILLON_SECRET_ACCESS_KEY: ctx.srv.rootKey.secretAccessKey,
      CARILLON_SUFFIX: sfx,
      PYTHONDONTWRITEBYTECODE: '1',
    }),
    timeoutMs: 90000,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let res;
  try {
    res = JSON.parse(line);
  } catch {
    assert.fail(`${SCRIPT} printed no JSON result line: ${describeRun(r)}`);
  }
  if (r.code === 3) assert.fail(`Debian's python3-boto3 is not installed: ${res.error}. ${INSTALL_HINT}`);
  assert.equal(res.ok, true, `the boto3 script stopped at step "${res.step}": ${res.error}\n${res.traceback ?? ''}\n${JSON.stringify(res.clientError ?? {})}`);
  assert.equal(r.code, 0, describeRun(r));

  // It really is Debian's old model (otherwise this test would not test what it says).
  assert.match(res.versions.botocore, /^1\.29\./, `expected Debian's botocore 1.29.x, got ${JSON.stringify(res.versions)}`);
  assert.deepEqual(res.model, { operations: 24, hasBots: false, hasNotFoundClass: false }, 'Debian identity model');

  const ai = res.createAppInstance.arn;
  assert.equal(res.createAppInstance.status, 201, 'CreateAppInstance HTTPStatusCode');
  assert.match(ai, APP_INSTANCE_ARN_RE);

  const userId = `py.user@example.com-${sfx}`;
  const user = `${ai}/user/${userId}`;
  assert.deepEqual(res.createUser, { status: 201, arn: user, id: userId }, 'CreateAppInstanceUser');
  assert.deepEqual(res.otherUsers, [`${ai}/user/py2.${sfx}`, `${ai}/user/py3.${sfx}`]);

  const d = res.describeUser;
  assert.equal(d.status, 200);
  assert.equal(d.arn, user, 'DescribeAppInstanceUser AppInstanceUserArn');
  assert.equal(d.name, 'Py User');
  assert.equal(d.metadata, 'm1');
  assert.deepEqual(d.keys, ['AppInstanceUserArn', 'CreatedTimestamp', 'LastUpdatedTimestamp', 'Metadata', 'Name']);
  assertPyTimestamp(d.created, 'AppInstanceUser.CreatedTimestamp');
  assertPyTimestamp(d.updated, 'AppInstanceUser.LastUpdatedTimestamp');

  // MaxResults=1 over three users: three pages of one, NextToken on all but the last.
  assert.deepEqual(
    res.listUsers.pages,
    [
      { status: 200, count: 1, hasToken: true, appInstanceArn: ai },
      { status: 200, count: 1, hasToken: true, appInstanceArn: ai },
      { status: 200, count: 1, hasToken: false, appInstanceArn: ai },
    ],
    'ListAppInstanceUsers pages with MaxResults=1',
  );
  assert.deepEqual([...res.listUsers.arns].sort(), [user, ...res.otherUsers].sort(), 'every user exactly once');

  assert.deepEqual(res.updateUser, { status: 200, arn: user }, 'UpdateAppInstanceUser');
  assert.equal(res.describeAfterUpdate.name, 'Py User Renamed');
  assert.equal(res.describeAfterUpdate.metadata, 'm2');
  assert.equal(res.describeAfterUpdate.created.iso, d.created.iso, 'CreatedTimestamp must not change on update');
  assert.ok(res.describeAfterUpdate.updated.epoch >= d.updated.epoch, 'LastUpdatedTimestamp must not go back');

  assert.deepEqual(
    res.createAdmin,
    { status: 201, admin: { Arn: user, Name: 'Py User Renamed' }, appInstanceArn: ai },
    'CreateAppInstanceAdmin',
  );
  assert.deepEqual(res.listAdmins, { status: 200, admins: [{ Admin: { Arn: user, Name: 'Py User Renamed' } }], appInstanceArn: ai });
  assert.equal(res.describeAdmin.status, 200);
  assert.deepEqual(res.describeAdmin.admin, { Arn: user, Name: 'Py User Renamed' });
  assert.equal(res.describeAdmin.appInstanceArn, ai);
  assertPyTimestamp(res.describeAdmin.created, 'AppInstanceAdmin.CreatedTimestamp');

  assert.deepEqual(res.tagsOfAppInstance, { status: 200, tags: [{ Key: 'origin', Value: 'boto3' }] }, 'tags given to CreateAppInstance');
  assert.deepEqual(res.tagsBefore, { status: 200, tags: [] }, 'a new user has no tags');
  assert.deepEqual(res.tagResource, { status: 204, keys: ['ResponseMetadata'] }, 'TagResource');
  assert.deepEqual(
    res.tagsAfter,
    { status: 200, tags: [{ Key: 'a:b', Value: 'x=y' }, { Key: 'team', Value: 'blue' }] },
    'ListTagsForResource after TagResource (sorted by key)',
  );

  // Not in Debian's identity model: a plain ClientError with the code from x-amzn-ErrorType.
  assert.equal(res.notFound.class, 'ClientError', `missing user: ${JSON.stringify(res.notFound)}`);
  assert.equal(res.notFound.code, 'NotFoundException', 'e.response["Error"]["Code"]');
  assert.equal(res.notFound.status, 404);
  // (e.response['Code'] stays unset here: botocore copies body members only for modeled errors.)
  assert.equal(typeof res.notFound.message, 'string');
  assert.ok(res.notFound.message.length > 0, 'NotFound message');

  // botocore checks no maximum length, so the 257-character Name reaches the server.
  assert.equal(res.tooLongName.class, 'BadRequestException', `Name of 257: ${JSON.stringify(res.tooLongName)}`);
  assert.equal(res.tooLongName.code, 'BadRequestException');
  assert.equal(res.tooLongName.status, 400);
  assert.equal(res.tooLongName.bodyCode, 'BadRequest');

  assert.deepEqual(res.deleteUser, { status: 204, keys: ['ResponseMetadata'] }, 'DeleteAppInstanceUser');
  assert.equal(res.afterDeleteUser.code, 'NotFoundException', `describe after delete: ${JSON.stringify(res.afterDeleteUser)}`);
  assert.equal(res.afterDeleteUser.status, 404);
  assert.deepEqual(res.deleteAppInstance, { status: 204 }, 'DeleteAppInstance');
  assert.equal(res.afterDeleteAppInstance.code, 'NotFoundException', `describe AppInstance after delete: ${JSON.stringify(res.afterDeleteAppInstance)}`);
  assert.equal(res.afterDeleteAppInstance.status, 404);
}));

test("Debian's AWS CLI: create/describe/list/delete-app-instance, errors on stderr", { timeout: 180000 }, withHome(async (home) => {
  requireFile(AWS, "the AWS CLI (Debian's awscli)");
  const env = cleanEnv(home, {
    AWS_ACCESS_KEY_ID: ctx.srv.rootKey.accessKeyId,
    AWS_SECRET_ACCESS_KEY: ctx.srv.rootKey.secretAccessKey,
  });
  const aws = (args, extraEnv = {}) =>
    runProcess(AWS, ['chime-sdk-identity', ...args, '--endpoint-url', ctx.srv.endpoint, '--region', ctx.srv.region, '--output', 'json'], {
      env: { ...env, ...extraEnv },
      timeoutMs: 60000,
    });
  const json = (r, what) => {
    assert.equal(r.code, 0, `${what}: ${describeRun(r)}`);
    try {
      return JSON.parse(r.stdout);
    } catch {
      assert.fail(`${what}: stdout is not JSON: ${describeRun(r)}`);
    }
  };

  const version = await runProcess(AWS, ['--version'], { env });
  assert.equal(version.code, 0, `aws --version: ${describeRun(version)}`);
  assert.match(version.stdout, /^aws-cli\/2\.9\.\d+ /, `expected Debian's aws-cli 2.9.x: ${version.stdout}`);

  const name = `cli-ai-${suffix()}`;
  const created = json(await aws(['create-app-instance', '--name', name, '--metadata', 'from the CLI']), 'create-app-instance');
  const ai = created.AppInstanceArn;
  ctx.appInstances.add(ai); // deleted in `after` if this test fails halfway
  assert.deepEqual(Object.keys(created), ['AppInstanceArn']);
  assert.match(ai, APP_INSTANCE_ARN_RE);

  const described = json(await aws(['describe-app-instance', '--app-instance-arn', ai]), 'describe-app-instance');
  const a = described.AppInstance;
  assert.deepEqual(Object.keys(described), ['AppInstance']);
  assert.equal(a.AppInstanceArn, ai);
  assert.equal(a.Name, name);
  assert.equal(a.Metadata, 'from the CLI');
  assertCliTimestamp(a.CreatedTimestamp, 'AppInstance.CreatedTimestamp');
  assertCliTimestamp(a.LastUpdatedTimestamp, 'AppInstance.LastUpdatedTimestamp');

  // list-app-instances has no paginator in the model: follow NextToken by hand until ours shows up.
  let found = null;
  let token;
  for (let page = 0; page < 50 && !found; page++) {
    const args = ['list-app-instances', '--max-results', '50'];
    if (token) args.push('--next-token', token);
    const out = json(await aws(args), `list-app-instances page ${page + 1}`);
    assert.ok(Array.isArray(out.AppInstances), `AppInstances must be a list: ${JSON.stringify(out)}`);
    found = out.AppInstances.find((s) => s.AppInstanceArn === ai) ?? null;
    token = out.NextToken;
    if (!token) break;
  }
  assert.deepEqual(found, { AppInstanceArn: ai, Name: name, Metadata: 'from the CLI' }, 'list-app-instances entry');

  // Errors: a non-zero exit (254: the service answered with an error) and the code on stderr.
  const missing = missingAppInstanceArn();
  const nf = await aws(['describe-app-instance', '--app-instance-arn', missing]);
  assert.equal(nf.code, 254, `describe-app-instance of a missing ARN must exit 254: ${describeRun(nf)}`);
  assert.equal(nf.stdout, '', 'nothing on stdout for an error');
  assert.match(nf.stderr, /An error occurred \(NotFoundException\) when calling the DescribeAppInstance operation: \S/, describeRun(nf));

  const badSecret = await aws(['describe-app-instance', '--app-instance-arn', ai], { AWS_SECRET_ACCESS_KEY: 'x'.repeat(40) });
  assert.equal(badSecret.code, 254, `a wrong secret must be a service error: ${describeRun(badSecret)}`);
  assert.match(badSecret.stderr, /An error occurred \(UnauthorizedClientException\) when calling the DescribeAppInstance operation/, describeRun(badSecret));

  const tooLong = await aws(['create-app-instance', '--name', 'n'.repeat(257)]);
  assert.equal(tooLong.code, 254, `a Name of 257 characters: ${describeRun(tooLong)}`);
  assert.match(tooLong.stderr, /An error occurred \(BadRequestException\) when calling the CreateAppInstance operation/, describeRun(tooLong));

  const del = await aws(['delete-app-instance', '--app-instance-arn', ai]);
  assert.equal(del.code, 0, `delete-app-instance: ${describeRun(del)}`);
  assert.equal(del.stdout.trim(), '', 'delete-app-instance prints nothing (204, no output shape)');
  ctx.appInstances.delete(ai);
  const gone = await aws(['describe-app-instance', '--app-instance-arn', ai]);
  assert.equal(gone.code, 254, `describe after delete: ${describeRun(gone)}`);
  assert.match(gone.stderr, /\(NotFoundException\)/);
}));
