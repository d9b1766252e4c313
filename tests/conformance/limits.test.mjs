// Limits of the REST path are settings, and a request past one gets an AWS-shaped answer.
//
// Every queue of the REST path is bounded: past CARILLON_WRITE_QUEUE_MAX writes waiting for a
// group-commit batch, or CARILLON_DB_QUEUE_MAX statements waiting for a database connection, a
// request is answered ServiceUnavailableException (503, the AWS error shape) at once instead of
// waiting in an unbounded queue; the server keeps serving and the queue drains.
//
// Raw signed requests (the SDKs retry 503 by themselves, which would hide the answer).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { signedFetch } from './lib/clients.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { assertRawError, uniq } from './lib/util.mjs';

const ctx = useCarillon();
const BURST = 80;

function createAppInstance(srv) {
  return signedFetch(srv, {
    method: 'POST',
    path: '/app-instances',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ Name: uniq('queued'), ClientRequestToken: randomUUID() }),
    timeoutMs: 60000,
  });
}

function listAppInstances(srv) {
  return signedFetch(srv, { path: '/app-instances', query: { 'max-results': '1' }, timeoutMs: 60000 });
}

/** Fire `n` requests at once; every answer is `ok` or a well-formed 503. Returns the counts. */
async function burst(n, call, okStatus, what) {
  const answers = await Promise.all(Array.from({ length: n }, () => call()));
  let ok = 0;
  let unavailable = 0;
  for (const res of answers) {
    if (res.status === okStatus) {
      ok++;
    } else {
      assertRawError(res, 'ServiceUnavailableException', what);
      unavailable++;
    }
  }
  return { ok, unavailable };
}

test('writes beyond CARILLON_WRITE_QUEUE_MAX are ServiceUnavailableException (503); the others succeed and the server keeps serving', async () => {
  // One connection: one batch in flight; batches of one write, at most two waiting.
  const srv = await ctx.startAnother({
    env: { CARILLON_DB_POOL_SIZE: '1', CARILLON_WRITE_BATCH_MAX: '1', CARILLON_WRITE_QUEUE_MAX: '2' },
  });
  const { ok, unavailable } = await burst(BURST, () => createAppInstance(srv), 201, 'a write over the queue bound');
  assert.ok(unavailable >= 1, `some of ${BURST} concurrent writes are refused with 503 (${ok} succeeded)`);
  assert.ok(ok >= 1, 'the writes the queue holds succeed');
  // The queue drained: writes and reads work again.
  const after = await createAppInstance(srv);
  assert.equal(after.status, 201, after.body);
  const read = await listAppInstances(srv);
  assert.equal(read.status, 200, read.body);
});

test('statements beyond CARILLON_DB_QUEUE_MAX are ServiceUnavailableException (503); the server keeps serving', async () => {
  const srv = await ctx.startAnother({ env: { CARILLON_DB_POOL_SIZE: '1', CARILLON_DB_QUEUE_MAX: '1' } });
  const { ok, unavailable } = await burst(BURST, () => listAppInstances(srv), 200, 'a read over the database queue bound');
  assert.ok(unavailable >= 1, `some of ${BURST} concurrent reads are refused with 503 (${ok} succeeded)`);
  assert.ok(ok >= 1, 'the reads the queue holds succeed');
  const read = await listAppInstances(srv);
  assert.equal(read.status, 200, read.body);
});

test('more query arguments than CARILLON_MAX_QUERY_ARGS are BadRequestException (400), never served with some left out', async () => {
  const srv = await ctx.startAnother({ env: { CARILLON_MAX_QUERY_ARGS: '16' } });
  // At the limit: served (unknown arguments are ignored by the operation).
  const at = {};
  for (let i = 0; i < 15; i++) at[`x${i}`] = String(i);
  const ok = await signedFetch(srv, { path: '/app-instances', query: { 'max-results': '1', ...at } });
  assert.equal(ok.status, 200, ok.body);
  // One over: refused, not answered as if the last arguments had not been sent.
  const over = { ...at, x15: '15' };
  const res = await signedFetch(srv, { path: '/app-instances', query: { 'max-results': '1', ...over } });
  assertRawError(res, 'BadRequestException', 'one query argument over the limit');
  assert.match(res.json.Message, /query arguments/);
  // The default bound (64): 80 arguments (fewer than lws's own cap) are refused the same way, and
  // the server keeps serving.
  const many = {};
  for (let i = 0; i < 80; i++) many[`a${i}`] = '1';
  const res2 = await signedFetch(ctx.srv, { path: '/app-instances', query: many });
  assertRawError(res2, 'BadRequestException', '80 query arguments');
  const after = await signedFetch(ctx.srv, { path: '/app-instances', query: { 'max-results': '1' } });
  assert.equal(after.status, 200, after.body);
});
