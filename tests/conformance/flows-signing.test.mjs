// A Lambda invocation that cannot be signed is never sent unsigned (docs/flows.md, "Answers"): with an
// access key id but no secret (a half-configured or half-rotated credential), Carillon treats the
// invocation as a transient failure, retries it through the outbox CARILLON_FLOW_MAX_ATTEMPTS times
// without sending anything, then applies the processor's FallbackAction.
//
// Real parts: Carillon (https) on the real PostgreSQL, its own server in this file (a server with
// complete credentials on the same database would take the outbox row), and the Lambda Invoke
// stand-in (lib/lambda-standin.mjs), which records every request it receives, signed or not.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CreateAppInstanceCommand, CreateAppInstanceUserCommand, DeleteAppInstanceCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  AssociateChannelFlowCommand,
  CreateChannelCommand,
  CreateChannelFlowCommand,
  GetChannelMessageStatusCommand,
  SendChannelMessageCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { startLambdaStandIn } from './lib/lambda-standin.mjs';
import { identity, messaging, sleep, startTlsCarillon } from './lib/realtime.mjs';
import { ACCOUNT_ID, REGION } from './lib/server.mjs';
import { uniq } from './lib/util.mjs';

const AWS = { accessKeyId: 'AKIAFLOWSIGN0000001', secretAccessKey: 'flow/sign+secret/key0123456789abcdefghij' };
const MAX_ATTEMPTS = 3;
const fnArn = (name) => `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:${name}`;

let invoked = 0;
const lambda = await startLambdaStandIn({
  region: REGION,
  credentials: AWS,
  functions: {
    async passthrough() {
      invoked++;
    },
  },
});
const srv = await startTlsCarillon({
  env: {
    CARILLON_LAMBDA_URL: lambda.url,
    CARILLON_FLOW_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
    CARILLON_FLOW_RETRY_MS: '100',
    CARILLON_OUTBOX_POLL_MS: '200',
    AWS_ACCESS_KEY_ID: AWS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: '', // empty is unset: the key id without its secret
    AWS_SESSION_TOKEN: '',
  },
});
const id = identity(srv);
const msg = messaging(srv);
const apps = [];

after(async () => {
  for (const ai of apps) await id.send(new DeleteAppInstanceCommand({ AppInstanceArn: ai })).catch(() => {});
  id.destroy();
  msg.destroy();
  const alive = srv.alive();
  const info = await srv.stop();
  await lambda.close();
  assert.ok(alive, 'carillon died during the tests');
  assert.ok(info.code === 0 || info.signal === 'SIGTERM', `carillon did not exit cleanly: ${JSON.stringify(info)}`);
});

test('an invocation that cannot be signed is never sent: retried, then the FallbackAction (ABORT: FAILED)', async () => {
  const ai = (await id.send(new CreateAppInstanceCommand({ Name: uniq('flowsign') }))).AppInstanceArn;
  apps.push(ai);
  const alice = (await id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq('alice'), Name: 'alice' })))
    .AppInstanceUserArn;
  const ch = (await msg.send(new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('ch'), Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: alice })))
    .ChannelArn;
  const flow = (
    await msg.send(
      new CreateChannelFlowCommand({
        AppInstanceArn: ai,
        Name: uniq('flow'),
        Processors: [
          { Name: 'passthrough', Configuration: { Lambda: { ResourceArn: fnArn('passthrough'), InvocationType: 'ASYNC' } }, ExecutionOrder: 1, FallbackAction: 'ABORT' },
        ],
      }),
    )
  ).ChannelFlowArn;
  await msg.send(new AssociateChannelFlowCommand({ ChannelArn: ch, ChannelFlowArn: flow, ChimeBearer: alice }));

  const out = await msg.send(
    new SendChannelMessageCommand({ ChannelArn: ch, ChimeBearer: alice, Content: 'unsignable', Type: 'STANDARD', Persistence: 'PERSISTENT' }),
  );
  assert.equal(out.Status?.Value, 'PENDING');
  let status;
  const until = Date.now() + 30000;
  do {
    await sleep(200);
    status = (await msg.send(new GetChannelMessageStatusCommand({ ChannelArn: ch, MessageId: out.MessageId, ChimeBearer: alice }))).Status;
  } while (status?.Value === 'PENDING' && Date.now() < until);
  assert.equal(status?.Value, 'FAILED', `the fallback applied: ${JSON.stringify(status)}`);
  assert.match(status.Detail, new RegExp(`request not signed \\(${MAX_ATTEMPTS} attempts\\)`), 'each attempt was a transient failure');
  // Nothing reached Lambda: no unsigned request (the stand-in records every one), no invocation.
  assert.deepEqual(
    lambda.invocations.map((c) => [c.kind, c.status, c.headers.authorization ? 'signed' : 'unsigned']),
    [],
    'no request reached the Lambda stand-in',
  );
  assert.equal(invoked, 0);
  assert.deepEqual(lambda.problems, []);
});
