// One Carillon per test file: started in `before`, stopped in `after`.

import assert from 'node:assert/strict';
import { after, before, beforeEach } from 'node:test';
import {
  CreateAppInstanceCommand,
  CreateAppInstanceUserCommand,
  DeleteAppInstanceCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import { identityClient, messagingClient } from './clients.mjs';
import { startCarillon } from './server.mjs';
import { uniq } from './util.mjs';

export function useCarillon(opts = {}) {
  const ctx = {
    srv: null,
    id: null, // ChimeSDKIdentityClient with the root key
    msg: null, // ChimeSDKMessagingClient with the root key
    appInstances: new Set(),
    extraServers: [],
    crashes: [],

    /** Create an AppInstance (root key), remember it for cleanup, return its ARN. */
    async newAppInstance(input = {}) {
      const out = await ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('conf-ai'), ...input }));
      assert.equal(out.$metadata.httpStatusCode, 201, 'CreateAppInstance status');
      ctx.appInstances.add(out.AppInstanceArn);
      return out.AppInstanceArn;
    },

    /** Create an AppInstanceUser, return {arn, id, name}. */
    async newUser(appInstanceArn, input = {}) {
      const id = input.AppInstanceUserId ?? uniq('u');
      const name = input.Name ?? `User ${id}`;
      const out = await ctx.id.send(
        new CreateAppInstanceUserCommand({ AppInstanceArn: appInstanceArn, AppInstanceUserId: id, Name: name, ...input }),
      );
      assert.equal(out.$metadata.httpStatusCode, 201, 'CreateAppInstanceUser status');
      return { arn: out.AppInstanceUserArn, id, name };
    },

    /** Start another server (stopped in `after`). */
    async startAnother(o) {
      const s = await startCarillon(o);
      ctx.extraServers.push(s);
      return s;
    },
  };

  before(async () => {
    ctx.srv = await startCarillon(opts);
    ctx.id = identityClient(ctx.srv);
    ctx.msg = messagingClient(ctx.srv);
  });

  // With restartOnCrash, a server that died during a test is replaced before the next one, so one
  // crash does not hide the results of the remaining tests. The crash still fails the file (after).
  if (opts.restartOnCrash) {
    beforeEach(async () => {
      if (!ctx.srv || ctx.srv.alive()) return;
      ctx.crashes.push(`carillon died during the tests: ${JSON.stringify(ctx.srv.exitInfo)}`);
      await ctx.srv.stop();
      ctx.id?.destroy();
      ctx.msg?.destroy();
      ctx.srv = await startCarillon({ ...opts, masterKey: ctx.srv.masterKey, rootKey: ctx.srv.rootKey });
      ctx.id = identityClient(ctx.srv);
      ctx.msg = messagingClient(ctx.srv);
    });
  }

  after(async () => {
    const problems = [...ctx.crashes];
    for (const s of ctx.extraServers) {
      const wasAlive = s.alive();
      const info = await s.stop();
      if (!wasAlive) problems.push(`extra server ${s.endpoint} died during the tests: ${JSON.stringify(info)}`);
    }
    if (!ctx.srv) return;
    const wasAlive = ctx.srv.alive();
    if (wasAlive && ctx.id) {
      for (const arn of ctx.appInstances) {
        try {
          await ctx.id.send(new DeleteAppInstanceCommand({ AppInstanceArn: arn }));
        } catch {}
      }
    }
    ctx.id?.destroy();
    ctx.msg?.destroy();
    const info = await ctx.srv.stop();
    if (!wasAlive) problems.push(`carillon died during the tests: ${JSON.stringify(info)}`);
    else if (!(info.code === 0 || info.signal === 'SIGTERM'))
      problems.push(`carillon did not exit cleanly on SIGTERM: ${JSON.stringify(info)}`);
    if (problems.length) throw new Error(problems.join('\n'));
  });

  return ctx;
}
