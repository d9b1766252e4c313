// The database pool's prepared statements and pipeline mode (src/db/pool.c, docs/db-pipeline.md):
// each statement text is prepared once per connection and executed by name; a new connection
// starts with an empty cache; several statements are in flight on one connection, each in its own
// Sync segment, so one failing statement answers with its own error and the others with theirs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateAppInstanceUserCommand,
  DescribeAppInstanceCommand,
  DescribeAppInstanceUserCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import { CreateChannelCommand, SendChannelMessageCommand } from '@aws-sdk/client-chime-sdk-messaging';
import { psql } from './lib/cli.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { uniq } from './lib/util.mjs';

// One pool connection, up to 8 statements in flight on it: every concurrent request below shares it.
const ctx = useCarillon({ env: { CARILLON_DB_POOL_SIZE: '1', CARILLON_DB_PIPELINE_DEPTH: '8' } });

const status = (p) =>
  p.then(
    (out) => ({ code: out.$metadata.httpStatusCode, out }),
    (err) => ({ code: err.$metadata?.httpStatusCode ?? 0, name: err.name, message: err.message }),
  );

/** A mix of reads and writes (the write batch, a read, a read of a user), all expected to succeed. */
async function roundOfRequests(app, channel, user, n) {
  const calls = [];
  for (let i = 0; i < n; i++) {
    calls.push(status(ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: app }))));
    calls.push(status(ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: user.arn }))));
    calls.push(
      status(
        ctx.msg.send(
          new SendChannelMessageCommand({
            ChannelArn: channel,
            ChimeBearer: user.arn,
            Content: `m${i}`,
            Type: 'STANDARD',
            Persistence: 'PERSISTENT',
            ClientRequestToken: uniq('t'),
          }),
        ),
      ),
    );
  }
  return Promise.all(calls);
}

async function setup() {
  const app = await ctx.newAppInstance();
  const user = await ctx.newUser(app);
  const ch = await ctx.msg.send(
    new CreateChannelCommand({ AppInstanceArn: app, Name: 'pipeline', ChimeBearer: user.arn, ClientRequestToken: uniq('c') }),
  );
  return { app, user, channel: ch.ChannelArn };
}

test('cut database connections: statements are prepared again on the new connection, requests keep succeeding', async () => {
  const { app, user, channel } = await setup();
  // Every text the requests use is now prepared on the pool connection.
  for (const r of await roundOfRequests(app, channel, user, 3)) assert.ok(r.code === 200 || r.code === 201, JSON.stringify(r));
  for (let cut = 0; cut < 2; cut++) {
    // Requests keep coming while the backends are terminated.
    const during = roundOfRequests(app, channel, user, 10);
    const n = Number(
      await psql(
        `select count(pg_terminate_backend(pid)) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`,
      ),
    );
    assert.ok(n >= 1, 'the pool connection was cut');
    // Those in flight at the cut may be answered 503 (the connection was lost); nothing else.
    for (const r of await during) assert.ok([200, 201, 503].includes(r.code), `during the cut: ${JSON.stringify(r)}`);
    // Once the pool is back, every request succeeds: a statement name remembered from the old
    // session would fail here (prepared statement does not exist: 500).
    let last;
    for (const deadline = Date.now() + 30000; ; ) {
      last = await roundOfRequests(app, channel, user, 8);
      if (last.every((r) => r.code !== 503)) break;
      if (Date.now() > deadline) assert.fail(`the pool did not come back: ${JSON.stringify(last.filter((r) => r.code === 503)[0])}`);
      await sleep(200);
    }
    for (const r of last) assert.ok(r.code === 200 || r.code === 201, `after reconnecting: ${JSON.stringify(r)}`);
    for (const r of await roundOfRequests(app, channel, user, 8)) assert.ok(r.code === 200 || r.code === 201, `after reconnecting: ${JSON.stringify(r)}`);
  }
});

test('pipelined statements on one connection, some failing: each request gets its own answer', async () => {
  const { app, user, channel } = await setup();
  const other = await ctx.newAppInstance();
  const calls = [];
  for (let i = 0; i < 40; i++) {
    if (i % 3 === 0)
      // fails inside PostgreSQL (CH404) in the middle of the pipeline
      calls.push(['missing', status(ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: `${app}/user/${uniq('nobody')}` })))]);
    else if (i % 3 === 1) {
      const a = i % 2 ? app : other;
      calls.push([a, status(ctx.id.send(new DescribeAppInstanceCommand({ AppInstanceArn: a })))]);
    } else
      calls.push([
        'write',
        status(ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: app, AppInstanceUserId: uniq('pu'), Name: `p${i}` }))),
      ]);
  }
  calls.push(['send', status(ctx.msg.send(new SendChannelMessageCommand({ ChannelArn: channel, ChimeBearer: user.arn, Content: 'x', Type: 'STANDARD', Persistence: 'PERSISTENT', ClientRequestToken: uniq('t') })))]);
  for (const [what, p] of calls) {
    const r = await p;
    if (what === 'missing') assert.equal(r.name, 'NotFoundException', JSON.stringify(r));
    else if (what === 'write') assert.equal(r.code, 201, JSON.stringify(r));
    else if (what === 'send') assert.equal(r.code, 201, JSON.stringify(r));
    else {
      assert.equal(r.code, 200, JSON.stringify(r));
      assert.equal(r.out.AppInstance.AppInstanceArn, what, 'each read answered with its own result');
    }
  }
});
