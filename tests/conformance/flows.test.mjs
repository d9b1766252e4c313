// Channel flows run their processors (docs/flows.md): a STANDARD message (or update) in a channel with
// a flow is PENDING until the processor answers through ChannelFlowCallback, then SENT with the
// processed values, or DENIED; a processor that cannot be invoked gets its FallbackAction (ABORT:
// FAILED, CONTINUE: SENT unchanged).
//
// Real parts: Carillon (https + wss) on the real PostgreSQL; a local Lambda Invoke stand-in
// (lib/lambda-standin.mjs) that checks the path, X-Amz-Invocation-Type and the SigV4 signature with
// @smithy/signature-v4, and runs processors written with the stock @aws-sdk/client-chime-sdk-messaging;
// websocket sessions of the real amazon-chime-sdk-js. "X gets nothing" is never a bare sleep: after
// the write under test, the sender posts a CONTROL message (CONTROL bypasses the flow: it goes to
// every member at once), and since a session receives events in commit order, what X got before
// that barrier is exactly what the write produced for X.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CreateAppInstanceCommand, CreateAppInstanceUserCommand, DeleteAppInstanceCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  AssociateChannelFlowCommand,
  ChannelFlowCallbackCommand,
  CreateChannelCommand,
  CreateChannelFlowCommand,
  GetChannelMessageCommand,
  GetChannelMessageStatusCommand,
  ListChannelMessagesCommand,
  SendChannelMessageCommand,
  UpdateChannelMessageCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { CreateAppCommand, PinpointClient, UpdateApnsChannelCommand } from '@aws-sdk/client-pinpoint';
import { RegisterAppInstanceUserEndpointCommand } from '@aws-sdk/client-chime-sdk-identity';
import { ApnsStandin } from './lib/apns-standin.mjs';
import { sql } from './lib/eventlog.mjs';
import { ecKeyPair, testCa } from './lib/test-ca.mjs';
import { startLambdaStandIn } from './lib/lambda-standin.mjs';
import { identity, messaging, sdkConfig, session, sleep, startTlsCarillon, userCreds } from './lib/realtime.mjs';
import { ACCOUNT_ID, REGION, freePort } from './lib/server.mjs';
import { assertRejects, uniq } from './lib/util.mjs';

// The credentials Carillon signs invocations with (AWS_*), and the stand-in verifies.
const AWS = { accessKeyId: 'AKIAFLOWTEST0000001', secretAccessKey: 'flow/test+secret/key0123456789abcdefghij', sessionToken: 'FwoGZXIvYXdzEFlowTestToken//+=' };
const DEADLINE_S = 8; // CARILLON_FLOW_CALLBACK_DEADLINE_SECONDS, short for the "never answers" test
const MAX_ATTEMPTS = 3;

const fnArn = (name) => `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:${name}`;

const ctx = { srv: null, id: null, msg: null, apps: [], lambda: null, others: [] };
// ---------------------------------------------------------------- processors (stock SDK)

let cb; // the processors' ChimeSDKMessagingClient (root key), made once the server runs

function callback(event, message, extra = {}) {
  return cb.send(
    new ChannelFlowCallbackCommand({
      ChannelArn: event.ChannelMessage.ChannelArn,
      CallbackId: event.CallbackId,
      ChannelMessage: { MessageId: event.ChannelMessage.MessageId, ...message },
      ...extra,
    }),
  );
}

const processors = {
  // A moderation processor: masks "darn", denies anything with "spam", tags what it checked.
  async moderator(event) {
    const m = event.ChannelMessage;
    if (m.Content.includes('spam')) return callback(event, {}, { DeleteResource: true });
    return callback(event, {
      Content: m.Content.replaceAll('darn', '****'),
      Metadata: 'moderated',
      MessageAttributes: { checked: { StringValues: ['yes'] } },
      ContentType: 'text/plain',
    });
  },
  // Lets everything through unchanged (a callback with the MessageId alone).
  async passthrough(event) {
    return callback(event, {});
  },
  // Never answers.
  async silent() {},
  // The webhook-mapped processor: appends a mark.
  async hooked(event) {
    return callback(event, { Content: `${event.ChannelMessage.Content} [hooked]` });
  },
};

// ---------------------------------------------------------------- server

const deadPort = await freePort(); // nothing listens there: connection refused
const apns = await new ApnsStandin().up(); // pushes of processed messages (lib/apns-standin.mjs)
ctx.lambda = await startLambdaStandIn({ region: REGION, credentials: AWS, functions: processors });
const serverEnv = {
  CARILLON_LAMBDA_URL: ctx.lambda.url,
  CARILLON_FLOW_WEBHOOKS: `${fnArn('hooked')}=${ctx.lambda.url}/hooks/hooked, ${fnArn('unreachable')}=http://127.0.0.1:${deadPort}/flow`,
  CARILLON_FLOW_CALLBACK_DEADLINE_SECONDS: String(DEADLINE_S),
  CARILLON_FLOW_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
  CARILLON_FLOW_RETRY_MS: '100',
  CARILLON_OUTBOX_POLL_MS: '200',
  CARILLON_OUTBOUND_TIMEOUT_MS: '3000', // a hung processor is a failed attempt after this
  CARILLON_OUTBOX_LEASE_SECONDS: '6', // above the outbound timeout: no second node takes a row in flight
  CARILLON_MAX_SESSIONS_PER_USER: '20',
  CARILLON_OUTBOUND_CA_FILE: testCa().caFile,
  CARILLON_APNS_URL: apns.url,
  AWS_ACCESS_KEY_ID: AWS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: AWS.secretAccessKey,
  AWS_SESSION_TOKEN: AWS.sessionToken,
};
ctx.srv = await startTlsCarillon({ env: serverEnv });
ctx.id = identity(ctx.srv);
ctx.msg = messaging(ctx.srv);
cb = messaging(ctx.srv);

after(async () => {
  for (const ai of ctx.apps) {
    try {
      await ctx.id.send(new DeleteAppInstanceCommand({ AppInstanceArn: ai }));
    } catch {}
  }
  ctx.id.destroy();
  ctx.msg.destroy();
  cb.destroy();
  const problems = [];
  for (const s of [...ctx.others, ctx.srv]) {
    const alive = s.alive();
    const info = await s.stop();
    if (!alive) problems.push(`carillon ${s.endpoint} died during the tests: ${JSON.stringify(info)}`);
    else if (!(info.code === 0 || info.signal === 'SIGTERM')) problems.push(`carillon did not exit cleanly: ${JSON.stringify(info)}`);
  }
  await ctx.lambda.close();
  await apns.down();
  assert.deepEqual(problems, []);
});

// ---------------------------------------------------------------- fixtures

/** An AppInstance with alice (the sender, channel creator) and bob (a member), their websocket
 * sessions, and a channel whose flow's processor is function `fn` with `fallback`. */
async function world(t, fn, fallback = 'ABORT', { sessions = true } = {}) {
  const ai = (await ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('flows') }))).AppInstanceArn;
  ctx.apps.push(ai);
  const user = async (name) => {
    const arn = (await ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq(name), Name: name })))
      .AppInstanceUserArn;
    return { name, arn, creds: await userCreds(ctx.srv, arn) };
  };
  const [alice, bob] = await Promise.all([user('alice'), user('bob')]);
  const ch = (
    await ctx.msg.send(
      new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('ch'), Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: alice.arn, MemberArns: [bob.arn] }),
    )
  ).ChannelArn;
  const flow = (
    await ctx.msg.send(
      new CreateChannelFlowCommand({
        AppInstanceArn: ai,
        Name: uniq('flow'),
        Processors: [{ Name: fn, Configuration: { Lambda: { ResourceArn: fnArn(fn), InvocationType: 'ASYNC' } }, ExecutionOrder: 1, FallbackAction: fallback }],
      }),
    )
  ).ChannelFlowArn;
  await ctx.msg.send(new AssociateChannelFlowCommand({ ChannelArn: ch, ChannelFlowArn: flow, ChimeBearer: alice.arn }));
  const w = { ai, alice, bob, ch, flow };
  if (!sessions) return w;
  for (const u of [alice, bob]) {
    u.rec = session(ctx.srv, u.arn, u.creds, { label: u.name });
    t.after(() => u.rec.stop());
  }
  for (const u of [alice, bob]) {
    await u.rec.ready();
    await u.rec.waitFor((r) => r.ofType('SESSION_ESTABLISHED').length >= 1, 5000, 'SESSION_ESTABLISHED');
  }
  return w;
}

function send(w, content, extra = {}) {
  return ctx.msg.send(
    new SendChannelMessageCommand({ ChannelArn: w.ch, ChimeBearer: w.alice.arn, Content: content, Type: 'STANDARD', Persistence: 'PERSISTENT', ...extra }),
  );
}

const status = (w, id, bearer = w.alice.arn) =>
  ctx.msg.send(new GetChannelMessageStatusCommand({ ChannelArn: w.ch, MessageId: id, ChimeBearer: bearer })).then((o) => JSON.parse(JSON.stringify(o.Status)));
const getMsg = (w, id, bearer) => ctx.msg.send(new GetChannelMessageCommand({ ChannelArn: w.ch, MessageId: id, ChimeBearer: bearer })).then((o) => o.ChannelMessage);
const listIds = async (w, bearer) =>
  ((await ctx.msg.send(new ListChannelMessagesCommand({ ChannelArn: w.ch, ChimeBearer: bearer, MaxResults: 50 }))).ChannelMessages ?? []).map((m) => ({
    id: m.MessageId,
    status: m.Status?.Value,
    content: m.Content,
  }));

function storedRow(w, id) {
  return sql(
    `select to_json(r) from (select content, metadata, content_type, attributes, status, status_detail
       from carillon.channel_messages where channel_arn = :'c' and message_id = :'m') r`,
    { c: w.ch, m: id },
  );
}

/** The barrier: alice posts a (non-persistent) CONTROL message; both sessions receive it, after
 * everything committed before it. */
async function barrier(w) {
  const out = await send(w, uniq('ctl').slice(0, 20), { Type: 'CONTROL', Persistence: 'NON_PERSISTENT' });
  assert.equal(out.Status?.Value, 'SENT', 'a CONTROL message bypasses the flow');
  for (const u of [w.alice, w.bob])
    await u.rec.waitFor((r) => r.messages.some((m) => m.payload?.MessageId === out.MessageId), 10000, `${u.name}: the barrier`);
  return out.MessageId;
}

/** The message events a user's session got for the channel, up to the barrier: "TYPE:Content". */
function seen(u, w, barrierId) {
  const out = [];
  for (const m of u.rec.about(w.ch)) {
    if (m.payload?.MessageId === barrierId) return out;
    if (m.type.endsWith('CHANNEL_MESSAGE')) out.push(`${m.type}:${m.payload.Content}`);
  }
  assert.fail(`${u.name} never got the barrier`);
}

const eventOf = (u, type, id) => u.rec.messages.find((m) => m.type === type && m.payload?.MessageId === id);
const waitEvent = (u, type, id, ms = 10000) => u.rec.waitFor(() => eventOf(u, type, id), ms, `${u.name}: ${type} of ${id}`).then(() => eventOf(u, type, id));

test('a processor that edits: PENDING for the sender alone, the signed Lambda invocation, then SENT with the processed values for everyone', async (t) => {
  const w = await world(t, 'moderator');
  // The processor waits until the test has seen the PENDING state.
  const origHeld = processors.moderator;
  let release;
  const hold = new Promise((r) => (release = r));
  processors.moderator = async (event) => {
    await hold;
    return origHeld(event);
  };
  t.after(() => {
    processors.moderator = origHeld;
    release();
  });

  const out = await send(w, 'well darn it', { Metadata: 'orig-meta', MessageAttributes: { lang: { StringValues: ['en'] } } });
  assert.deepEqual(JSON.parse(JSON.stringify(out.Status)), { Value: 'PENDING' });
  const id = out.MessageId;

  // The invocation: the Lambda Invoke API, asynchronous, signed (the stand-in verified it), with the
  // message as sent.
  await ctx.lambda.waitFor(() => ctx.lambda.callsFor(id).length === 1, 10000, 'the invocation');
  const call = ctx.lambda.callsFor(id)[0];
  assert.equal(call.kind, 'lambda');
  assert.equal(call.rawPath, `/2015-03-31/functions/${encodeURIComponent(fnArn('moderator'))}/invocations`);
  assert.equal(call.headers['x-amz-invocation-type'], 'Event');
  assert.equal(call.status, 202);
  assert.deepEqual(ctx.lambda.problems, []);
  const e = call.event;
  assert.equal(e.EventType, 'CHANNEL_MESSAGE_EVENT');
  assert.match(e.CallbackId, /^[0-9a-f]{32}$/);
  assert.deepEqual(
    { ...e.ChannelMessage, CreatedTimestamp: undefined },
    {
      MessageId: id,
      ChannelArn: w.ch,
      Content: 'well darn it',
      Metadata: 'orig-meta',
      Sender: { Arn: w.alice.arn, Name: 'alice' },
      Persistence: 'PERSISTENT',
      Type: 'STANDARD',
      CreatedTimestamp: undefined,
      MessageAttributes: { lang: { StringValues: ['en'] } },
    },
  );
  assert.match(e.ChannelMessage.CreatedTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

  // While pending: the sender sees it as PENDING, nobody else sees it at all.
  assert.deepEqual(await status(w, id), { Value: 'PENDING' });
  await assertRejects(status(w, id, w.bob.arn), 'NotFoundException', 'another member asking for the status');
  await assertRejects(getMsg(w, id, w.bob.arn), 'NotFoundException', 'another member getting the pending message');
  assert.deepEqual(await listIds(w, w.bob.arn), [], 'ListChannelMessages hides it from the others');
  assert.deepEqual(await listIds(w, w.alice.arn), [{ id, status: 'PENDING', content: 'well darn it' }]);
  const pending = await waitEvent(w.alice, 'PENDING_CREATE_CHANNEL_MESSAGE', id);
  assert.deepEqual(pending.payload.Status, { Value: 'PENDING' });
  assert.equal(pending.payload.Content, 'well darn it');

  release();
  const created = await waitEvent(w.bob, 'CREATE_CHANNEL_MESSAGE', id);
  assert.equal(created.payload.Content, 'well **** it');
  assert.equal(created.payload.Metadata, 'moderated');
  assert.deepEqual(created.payload.MessageAttributes, { checked: { StringValues: ['yes'] } });
  assert.equal(created.payload.ContentType, 'text/plain');
  assert.deepEqual(created.payload.Status, { Value: 'SENT' });
  await ctx.lambda.waitFor(() => call.done, 10000, 'the processor finished');
  assert.equal(call.error, undefined, `the callback failed: ${call.error}`);
  assert.equal(call.result.CallbackId, e.CallbackId);
  assert.equal(call.result.ChannelArn, w.ch);

  assert.deepEqual(await status(w, id), { Value: 'SENT' });
  const got = await getMsg(w, id, w.bob.arn);
  assert.equal(got.Content, 'well **** it');
  assert.equal(got.Metadata, 'moderated');
  assert.deepEqual(storedRow(w, id), {
    content: 'well **** it',
    metadata: 'moderated',
    content_type: 'text/plain',
    attributes: { checked: { StringValues: ['yes'] } },
    status: 'SENT',
    status_detail: null,
  });

  const b = await barrier(w);
  assert.deepEqual(seen(w.alice, w, b), ['PENDING_CREATE_CHANNEL_MESSAGE:well darn it', 'CREATE_CHANNEL_MESSAGE:well **** it']);
  assert.deepEqual(seen(w.bob, w, b), ['CREATE_CHANNEL_MESSAGE:well **** it']);

  // A second callback for the same CallbackId: Conflict, identical or not; nothing changes.
  const same = { Content: 'well **** it', Metadata: 'moderated', MessageAttributes: { checked: { StringValues: ['yes'] } }, ContentType: 'text/plain' };
  await assertRejects(callback(e, same), 'ConflictException', 'the very same callback again');
  await assertRejects(callback(e, {}, { DeleteResource: true }), 'ConflictException', 'a different second callback');
  assert.equal((await getMsg(w, id, w.bob.arn)).Content, 'well **** it');
  assert.equal(ctx.lambda.callsFor(id).length, 1, 'invoked once');
});

test('a processor that denies: DENIED_CREATE_CHANNEL_MESSAGE to the sender alone, nothing stored', async (t) => {
  const w = await world(t, 'moderator');
  const out = await send(w, 'buy spam now');
  assert.equal(out.Status.Value, 'PENDING');
  const denied = await waitEvent(w.alice, 'DENIED_CREATE_CHANNEL_MESSAGE', out.MessageId);
  assert.deepEqual(denied.payload.Status, { Value: 'DENIED' });
  assert.equal(denied.payload.Content, 'buy spam now');
  await assertRejects(status(w, out.MessageId), 'NotFoundException', 'GetChannelMessageStatus of a denied message (not stored)');
  await assertRejects(getMsg(w, out.MessageId, w.alice.arn), 'NotFoundException', 'the sender getting a denied message');
  assert.equal(storedRow(w, out.MessageId), null, 'nothing stored');
  assert.deepEqual(await listIds(w, w.alice.arn), []);
  const b = await barrier(w);
  assert.deepEqual(seen(w.alice, w, b), ['PENDING_CREATE_CHANNEL_MESSAGE:buy spam now', 'DENIED_CREATE_CHANNEL_MESSAGE:buy spam now']);
  assert.deepEqual(seen(w.bob, w, b), []);
  assert.deepEqual(ctx.lambda.problems, []);
});

test('a non-persistent message goes through the flow too, and is delivered once processed, never stored', async (t) => {
  const w = await world(t, 'moderator');
  const out = await send(w, 'typing darn', { Persistence: 'NON_PERSISTENT' });
  assert.equal(out.Status.Value, 'PENDING');
  const created = await waitEvent(w.bob, 'CREATE_CHANNEL_MESSAGE', out.MessageId);
  assert.equal(created.payload.Content, 'typing ****');
  assert.equal(created.payload.Persistence, 'NON_PERSISTENT');
  assert.equal(ctx.lambda.callsFor(out.MessageId)[0].event.ChannelMessage.Persistence, 'NON_PERSISTENT');
  assert.equal(storedRow(w, out.MessageId), null);
  const b = await barrier(w);
  assert.deepEqual(seen(w.alice, w, b), ['PENDING_CREATE_CHANNEL_MESSAGE:typing darn', 'CREATE_CHANNEL_MESSAGE:typing ****']);
  assert.deepEqual(seen(w.bob, w, b), ['CREATE_CHANNEL_MESSAGE:typing ****']);
});

test('a processor that never answers: the message stays PENDING; a callback after the deadline is Forbidden', async (t) => {
  const w = await world(t, 'silent');
  const sentAt = Date.now();
  const out = await send(w, 'anyone there?');
  await ctx.lambda.waitFor(() => ctx.lambda.callsFor(out.MessageId).length === 1, 10000, 'the invocation');
  const event = ctx.lambda.callsFor(out.MessageId)[0].event;
  const b = await barrier(w);
  assert.deepEqual(seen(w.alice, w, b), ['PENDING_CREATE_CHANNEL_MESSAGE:anyone there?']);
  assert.deepEqual(seen(w.bob, w, b), []);
  await sleep(Math.max(0, sentAt + DEADLINE_S * 1000 + 1000 - Date.now()));
  assert.deepEqual(await status(w, out.MessageId), { Value: 'PENDING' }, 'still pending after the deadline');
  const err = await assertRejects(callback(event, { Content: 'too late' }), 'ForbiddenException', 'a callback after the deadline');
  assert.match(err.message, /deadline/);
  assert.deepEqual(await status(w, out.MessageId), { Value: 'PENDING' });
  assert.deepEqual(await listIds(w, w.bob.arn), []);
  assert.equal(ctx.lambda.callsFor(out.MessageId).length, 1, 'an accepted invocation is not repeated');
});

test('a processor that cannot be invoked, FallbackAction ABORT: bounded retries, then FAILED for the sender alone', async (t) => {
  const w = await world(t, 'overloaded', 'ABORT');
  ctx.lambda.answers.overloaded = 503; // Lambda answering 5xx every time: transient, retried
  const out = await send(w, 'will it fail?');
  const failed = await waitEvent(w.alice, 'FAILED_CREATE_CHANNEL_MESSAGE', out.MessageId, 20000);
  assert.equal(failed.payload.Status.Value, 'FAILED');
  assert.match(failed.payload.Status.Detail, /HTTP 503/);
  assert.equal(ctx.lambda.callsFor(out.MessageId).length, MAX_ATTEMPTS, `CARILLON_FLOW_MAX_ATTEMPTS=${MAX_ATTEMPTS} invocations`);
  const st = await status(w, out.MessageId);
  assert.equal(st.Value, 'FAILED');
  assert.match(st.Detail, /HTTP 503/);
  assert.ok(st.Detail.length <= 256);
  await assertRejects(getMsg(w, out.MessageId, w.bob.arn), 'NotFoundException', 'the others never see a failed message');
  assert.deepEqual(await listIds(w, w.alice.arn), [{ id: out.MessageId, status: 'FAILED', content: 'will it fail?' }]);
  const b = await barrier(w);
  assert.deepEqual(seen(w.alice, w, b), ['PENDING_CREATE_CHANNEL_MESSAGE:will it fail?', 'FAILED_CREATE_CHANNEL_MESSAGE:will it fail?']);
  assert.deepEqual(seen(w.bob, w, b), []);
  await sleep(1000);
  assert.equal(ctx.lambda.callsFor(out.MessageId).length, MAX_ATTEMPTS, 'no invocation after the fallback');

  // A permanent refusal (the function does not exist: 404) is not retried.
  const w2 = await world(t, 'no-such-function', 'ABORT');
  const out2 = await send(w2, 'to nowhere');
  await waitEvent(w2.alice, 'FAILED_CREATE_CHANNEL_MESSAGE', out2.MessageId, 20000);
  assert.equal(ctx.lambda.callsFor(out2.MessageId).length, 1, 'a 404 is not retried');
  assert.match((await status(w2, out2.MessageId)).Detail, /HTTP 404/);
});

test('a processor that cannot be invoked, FallbackAction CONTINUE: the message is SENT unchanged to everyone', async (t) => {
  const w = await world(t, 'unreachable', 'CONTINUE'); // mapped to a webhook nobody listens on
  const out = await send(w, 'through anyway darn');
  const created = await waitEvent(w.bob, 'CREATE_CHANNEL_MESSAGE', out.MessageId, 20000);
  assert.equal(created.payload.Content, 'through anyway darn');
  assert.deepEqual(created.payload.Status, { Value: 'SENT' });
  assert.deepEqual(await status(w, out.MessageId), { Value: 'SENT' });
  assert.equal((await getMsg(w, out.MessageId, w.bob.arn)).Content, 'through anyway darn');
  const b = await barrier(w);
  assert.deepEqual(seen(w.alice, w, b), ['PENDING_CREATE_CHANNEL_MESSAGE:through anyway darn', 'CREATE_CHANNEL_MESSAGE:through anyway darn']);
  assert.deepEqual(seen(w.bob, w, b), ['CREATE_CHANNEL_MESSAGE:through anyway darn']);
});

test('message updates go through the flow: PENDING_UPDATE for the sender while everyone keeps the old content; then UPDATE or DENIED_UPDATE', async (t) => {
  const w = await world(t, 'moderator');
  const out = await send(w, 'first version');
  const id = out.MessageId;
  await waitEvent(w.bob, 'CREATE_CHANNEL_MESSAGE', id);

  let release;
  const hold = new Promise((r) => (release = r));
  const orig = processors.moderator;
  processors.moderator = async (event) => {
    if (event.ChannelMessage.MessageId === id) await hold;
    return orig(event);
  };
  t.after(() => {
    processors.moderator = orig;
    release();
  });
  const up = await ctx.msg.send(new UpdateChannelMessageCommand({ ChannelArn: w.ch, MessageId: id, ChimeBearer: w.alice.arn, Content: 'second darn version' }));
  assert.equal(up.Status.Value, 'PENDING');
  await ctx.lambda.waitFor(() => ctx.lambda.callsFor(id).length === 2, 10000, 'the update invocation');
  const call = ctx.lambda.callsFor(id)[1];
  assert.equal(call.event.ChannelMessage.Content, 'second darn version');
  assert.match(call.event.ChannelMessage.LastEditedTimestamp, /Z$/);
  assert.notEqual(call.event.CallbackId, ctx.lambda.callsFor(id)[0].event.CallbackId, 'a new CallbackId per processing');
  const pend = await waitEvent(w.alice, 'PENDING_UPDATE_CHANNEL_MESSAGE', id);
  assert.equal(pend.payload.Content, 'second darn version');
  assert.deepEqual(await status(w, id), { Value: 'PENDING' });
  assert.equal((await getMsg(w, id, w.bob.arn)).Content, 'first version', 'the others keep the visible content');
  assert.equal(storedRow(w, id).content, 'first version');
  await assertRejects(
    ctx.msg.send(new UpdateChannelMessageCommand({ ChannelArn: w.ch, MessageId: id, ChimeBearer: w.alice.arn, Content: 'third' })),
    'ConflictException',
    'a second update while one is processed',
  );
  release();
  const upd = await waitEvent(w.bob, 'UPDATE_CHANNEL_MESSAGE', id);
  assert.equal(upd.payload.Content, 'second **** version');
  assert.deepEqual(await status(w, id), { Value: 'SENT' });
  assert.equal((await getMsg(w, id, w.bob.arn)).Content, 'second **** version');

  // A denied update: the previous content stays.
  await ctx.msg.send(new UpdateChannelMessageCommand({ ChannelArn: w.ch, MessageId: id, ChimeBearer: w.alice.arn, Content: 'now with spam' }));
  const denied = await waitEvent(w.alice, 'DENIED_UPDATE_CHANNEL_MESSAGE', id);
  assert.equal(denied.payload.Status.Value, 'DENIED');
  assert.deepEqual(await status(w, id), { Value: 'SENT' });
  assert.equal((await getMsg(w, id, w.bob.arn)).Content, 'second **** version');
  const b = await barrier(w);
  assert.deepEqual(seen(w.alice, w, b), [
    'PENDING_CREATE_CHANNEL_MESSAGE:first version',
    'CREATE_CHANNEL_MESSAGE:first version',
    'PENDING_UPDATE_CHANNEL_MESSAGE:second darn version',
    'UPDATE_CHANNEL_MESSAGE:second **** version',
    'PENDING_UPDATE_CHANNEL_MESSAGE:now with spam',
    'DENIED_UPDATE_CHANNEL_MESSAGE:now with spam',
  ]);
  assert.deepEqual(seen(w.bob, w, b), ['CREATE_CHANNEL_MESSAGE:first version', 'UPDATE_CHANNEL_MESSAGE:second **** version']);
});

test('CONTROL messages bypass the flow: SENT at once to everyone, the processor never sees them', async (t) => {
  const w = await world(t, 'silent');
  const out = await send(w, 'ctl-1', { Type: 'CONTROL' });
  assert.equal(out.Status.Value, 'SENT');
  await waitEvent(w.bob, 'CREATE_CHANNEL_MESSAGE', out.MessageId);
  const b = await barrier(w);
  assert.deepEqual(seen(w.alice, w, b), ['CREATE_CHANNEL_MESSAGE:ctl-1']);
  assert.deepEqual(seen(w.bob, w, b), ['CREATE_CHANNEL_MESSAGE:ctl-1']);
  assert.deepEqual(await status(w, out.MessageId), { Value: 'SENT' });
  assert.equal(ctx.lambda.callsFor(out.MessageId).length, 0);
  assert.equal(ctx.lambda.callsFor(b).length, 0);
});

test('CARILLON_FLOW_WEBHOOKS: a mapped function gets the same payload POSTed to its webhook, unsigned', async (t) => {
  const w = await world(t, 'hooked');
  const out = await send(w, 'via the hook');
  const created = await waitEvent(w.bob, 'CREATE_CHANNEL_MESSAGE', out.MessageId);
  assert.equal(created.payload.Content, 'via the hook [hooked]');
  const calls = ctx.lambda.callsFor(out.MessageId);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].kind, 'webhook');
  assert.equal(calls[0].rawPath, '/hooks/hooked');
  assert.equal(calls[0].headers.authorization, undefined);
  assert.equal(calls[0].event.EventType, 'CHANNEL_MESSAGE_EVENT');
  assert.equal(calls[0].event.ChannelMessage.Content, 'via the hook');
  assert.deepEqual(ctx.lambda.problems, []);
});

test('an elastic channel: the processor gets the SubChannelId; each event reaches exactly the audience it has without a flow', async () => {
  const ai = (await ctx.id.send(new CreateAppInstanceCommand({ Name: uniq('flows-elastic') }))).AppInstanceArn;
  ctx.apps.push(ai);
  const user = async (name) =>
    (await ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: uniq(name), Name: name }))).AppInstanceUserArn;
  const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map(user));
  const ch = (
    await ctx.msg.send(
      new CreateChannelCommand({
        AppInstanceArn: ai, Name: uniq('elastic'), Mode: 'RESTRICTED', Privacy: 'PRIVATE', ChimeBearer: alice,
        ElasticChannelConfiguration: { MaximumSubChannels: 5, TargetMembershipsPerSubChannel: 10, MinimumMembershipPercentage: 10 },
      }),
    )
  ).ChannelArn;
  // Known placements, written straight into the table (as messaging-messages does).
  for (const [arn, sub] of [[alice, 'subA'], [bob, 'subA'], [carol, 'subB']])
    sql(
      `insert into carillon.channel_memberships (channel_arn, member_arn, type, invited_by, sub_channel_id, created_at, updated_at)
       values (:'ch', :'arn', 'DEFAULT', :'arn', :'sub', now(), now())
       on conflict (channel_arn, member_arn) do update set sub_channel_id = excluded.sub_channel_id`,
      { ch, arn, sub },
    );
  const flow = (
    await ctx.msg.send(
      new CreateChannelFlowCommand({
        AppInstanceArn: ai, Name: uniq('flow'),
        Processors: [{ Name: 'm', Configuration: { Lambda: { ResourceArn: fnArn('moderator'), InvocationType: 'ASYNC' } }, ExecutionOrder: 1, FallbackAction: 'ABORT' }],
      }),
    )
  ).ChannelFlowArn;
  await ctx.msg.send(new AssociateChannelFlowCommand({ ChannelArn: ch, ChannelFlowArn: flow, ChimeBearer: alice }));
  const out = await ctx.msg.send(
    new SendChannelMessageCommand({ ChannelArn: ch, ChimeBearer: alice, SubChannelId: 'subA', Content: 'in A darn', Type: 'STANDARD', Persistence: 'PERSISTENT' }),
  );
  assert.equal(out.Status.Value, 'PENDING');
  assert.equal(out.SubChannelId, 'subA');
  const rows = () =>
    sql(
      `select coalesce(json_agg(json_build_object('type', event_type, 'audience', audience, 'arns', arns, 'sub', p->>'SubChannelId',
                                                 'content', p->>'Content') order by position), '[]')
         from carillon.events, coalesce(payload_text::jsonb, payload) p where channel_arn = :'c' and p->>'MessageId' = :'m'`,
      { c: ch, m: out.MessageId },
    );
  const until = Date.now() + 15000;
  while (rows().length < 2 && Date.now() < until) await sleep(100);
  const sorted = (a) => [...a].sort();
  assert.deepEqual(rows(), [
    { type: 'PENDING_CREATE_CHANNEL_MESSAGE', audience: 'only', arns: [alice], sub: 'subA', content: 'in A darn' },
    { type: 'CREATE_CHANNEL_MESSAGE', audience: 'only', arns: sorted([alice, bob]), sub: 'subA', content: 'in A ****' },
  ]);
  assert.equal(ctx.lambda.callsFor(out.MessageId)[0].event.ChannelMessage.SubChannelId, 'subA');
  assert.deepEqual(
    await ctx.msg.send(new GetChannelMessageStatusCommand({ ChannelArn: ch, MessageId: out.MessageId, ChimeBearer: alice, SubChannelId: 'subA' })).then((o) => o.Status.Value),
    'SENT',
  );
});

test('a restart between the send and the invocation still invokes: the intent is committed with the message', async (t) => {
  const w = await world(t, 'passthrough', 'ABORT', { sessions: false });
  ctx.lambda.answers.passthrough = 'hang';
  t.after(() => delete ctx.lambda.answers.passthrough);
  const out = await send(w, 'across a restart');
  assert.equal(out.Status.Value, 'PENDING');
  await ctx.lambda.waitFor(() => ctx.lambda.callsFor(out.MessageId).length === 1, 10000, 'the first invocation (left unanswered)');
  // Stop the only node while its invocation is unanswered; the next process must do it.
  const old = ctx.srv;
  const info = await old.stop();
  assert.ok(info.code === 0 || info.signal === 'SIGTERM', `clean stop: ${JSON.stringify(info)}`);
  delete ctx.lambda.answers.passthrough;
  assert.deepEqual(sql(`select to_json(state) from carillon.flow_messages where message_id = :'m'`, { m: out.MessageId }), 'PENDING');
  ctx.srv = await startTlsCarillon({ port: old.port, masterKey: old.masterKey, rootKey: old.rootKey, env: serverEnv });
  // Fresh clients: a kept-alive connection to the stopped process must not fail a call.
  for (const k of ['id', 'msg']) ctx[k].destroy();
  ctx.id = identity(ctx.srv);
  ctx.msg = messaging(ctx.srv);
  cb.destroy();
  cb = messaging(ctx.srv);
  const until = Date.now() + 30000;
  let st;
  while ((st = await status(w, out.MessageId)).Value === 'PENDING' && Date.now() < until) await sleep(200);
  const calls = ctx.lambda.callsFor(out.MessageId);
  assert.deepEqual(st, { Value: 'SENT' }, `processed after the restart (processor: ${calls.map((c) => c.error ?? c.status)})`);
  assert.equal(calls.length, 2, 'invoked again by the new process');
  assert.equal(calls[1].status, 202);
  assert.equal((await getMsg(w, out.MessageId, w.bob.arn)).Content, 'across a restart');
});

test('pushes go out once the processor has answered: a processed message pushes, a pending or denied one never', async (t) => {
  const w = await world(t, 'moderator', 'ABORT', { sessions: false });
  // bob has an iOS device: a Pinpoint app with an APNs channel (token auth) and his endpoint in it.
  const keys = ecKeyPair();
  apns.addKey('KEYFLOWS01', 'TEAMFLOWS1', keys.publicKeyPem);
  const pp = new PinpointClient(sdkConfig(ctx.srv, ctx.srv.rootKey));
  t.after(() => pp.destroy());
  const app = (await pp.send(new CreateAppCommand({ CreateApplicationRequest: { Name: uniq('flows-push') } }))).ApplicationResponse;
  await pp.send(
    new UpdateApnsChannelCommand({
      ApplicationId: app.Id,
      APNSChannelRequest: { BundleId: 'com.example.flows', TeamId: 'TEAMFLOWS1', TokenKeyId: 'KEYFLOWS01', TokenKey: keys.privateKeyPem, DefaultAuthenticationMethod: 'TOKEN', Enabled: true },
    }),
  );
  const token = Buffer.from(uniq('tok').padEnd(32, 'x')).toString('hex');
  await ctx.id.send(
    new RegisterAppInstanceUserEndpointCommand({
      AppInstanceUserArn: w.bob.arn, Type: 'APNS', ResourceArn: app.Arn, EndpointAttributes: { DeviceToken: token }, AllowMessages: 'ALL', ClientRequestToken: uniq('crt'),
    }),
  );
  const pushesOf = (id) => apns.requests.filter((r) => r.json?.['pinpoint.jsonBody'] && JSON.parse(r.json['pinpoint.jsonBody'])['chime.message_id'] === id);
  const pushRows = (id) => sql(`select count(*) from carillon.outbox where kind = 'push' and payload->>'message_id' = :'m'`, { m: id });
  const state = (id) => sql(`select to_json(state) from carillon.flow_messages where message_id = :'m'`, { m: id });

  let release;
  const hold = new Promise((r) => (release = r));
  const orig = processors.moderator;
  processors.moderator = async (event) => {
    await hold;
    return orig(event);
  };
  t.after(() => {
    processors.moderator = orig;
    release();
  });
  const push = { Title: 'New message', Body: 'you have mail', Type: 'DEFAULT' };
  const out = await send(w, 'push me darn', { PushNotification: push });
  await ctx.lambda.waitFor(() => ctx.lambda.callsFor(out.MessageId).length === 1, 10000, 'the invocation');
  assert.equal(pushRows(out.MessageId), 0, 'no push intent while the message is pending (the send committed none)');
  assert.deepEqual(pushesOf(out.MessageId), []);
  release();
  const deadline = Date.now() + 20000;
  while (pushesOf(out.MessageId).length === 0 && Date.now() < deadline) await sleep(100);
  const got = pushesOf(out.MessageId);
  assert.equal(got.length, 1, 'one push once the message is SENT');
  assert.equal(got[0].path, `/3/device/${token}`);
  assert.deepEqual(got[0].json.aps, { alert: { title: push.Title, body: push.Body } });
  assert.deepEqual(apns.problems, []);

  // Denied: never pushed.
  const denied = await send(w, 'spam with a push', { PushNotification: push });
  const until = Date.now() + 20000;
  while (state(denied.MessageId) !== 'DENIED' && Date.now() < until) await sleep(100);
  assert.equal(state(denied.MessageId), 'DENIED');
  assert.equal(pushRows(denied.MessageId), 0, 'no push intent for a denied message');
  assert.deepEqual(pushesOf(denied.MessageId), []);
});

test('two nodes on one database: every message is invoked exactly once', async (t) => {
  const other = await startTlsCarillon({ masterKey: ctx.srv.masterKey, rootKey: ctx.srv.rootKey, env: serverEnv });
  ctx.others.push(other);
  const otherMsg = messaging(other);
  t.after(() => otherMsg.destroy());
  const w = await world(t, 'passthrough');
  const ids = [];
  for (let i = 0; i < 20; i++) {
    const client = i % 2 ? ctx.msg : otherMsg;
    const out = await client.send(
      new SendChannelMessageCommand({ ChannelArn: w.ch, ChimeBearer: w.alice.arn, Content: `m${i}`, Type: 'STANDARD', Persistence: 'PERSISTENT' }),
    );
    ids.push(out.MessageId);
  }
  await w.bob.rec.waitFor((r) => ids.every((id) => r.messages.some((m) => m.type === 'CREATE_CHANNEL_MESSAGE' && m.payload?.MessageId === id)), 30000, 'all 20 SENT');
  await sleep(1500); // a duplicate would be a second claim of a row; give it time to show
  const counts = ids.map((id) => ctx.lambda.callsFor(id).length);
  assert.deepEqual(counts, ids.map(() => 1), 'one invocation per message');
  for (const id of ids) assert.deepEqual(await status(w, id), { Value: 'SENT' });
  assert.deepEqual(ctx.lambda.problems, []);
});
