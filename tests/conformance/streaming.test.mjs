// Streaming export: PutMessagingStreamingConfigurations makes Carillon put every event the
// configuration covers to its Kinesis stream (PutRecords), here a stand-in on loopback
// (lib/kinesis-standin.mjs) that checks the target, the content type and the SigV4 signature
// (recomputed with @smithy/signature-v4 from the AWS_* credentials the server is given, a session
// token included), records every call, and fails chosen records on purpose.
//
// What is checked, against what each test did through the stock SDK:
//   - every event of both DataTypes arrives, exactly once when nothing fails, in per-channel order,
//     partitioned by channel ARN; events of other DataTypes, other AppInstances and from before the
//     configuration do not;
//   - with records failing (ProvisionedThroughputExceededException) or whole calls failing, nothing
//     is lost, only failed records (and the rest of their channel's records in that call) are sent
//     again, and the last copy of every record is in per-channel order;
//   - across a restart, export resumes from the persisted cursor (nothing acknowledged is sent again,
//     nothing is lost);
//   - with several nodes on one database, one exports, and when it is killed another takes over:
//     nothing is lost.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BatchCreateChannelMembershipCommand,
  CreateChannelBanCommand,
  CreateChannelCommand,
  CreateChannelMembershipCommand,
  CreateChannelModeratorCommand,
  DeleteChannelBanCommand,
  DeleteChannelCommand,
  DeleteChannelMembershipCommand,
  DeleteChannelMessageCommand,
  DeleteChannelModeratorCommand,
  DeleteMessagingStreamingConfigurationsCommand,
  PutChannelExpirationSettingsCommand,
  PutMessagingStreamingConfigurationsCommand,
  RedactChannelMessageCommand,
  SendChannelMessageCommand,
  UpdateChannelCommand,
  UpdateChannelMessageCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { CreateAppInstanceAdminCommand } from '@aws-sdk/client-chime-sdk-identity';
import { identityClient, messagingClient } from './lib/clients.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { startKinesisStandin } from './lib/kinesis-standin.mjs';
import { ACCOUNT_ID, REGION, startCarillon } from './lib/server.mjs';
import { uniq } from './lib/util.mjs';

const CREDENTIALS = {
  accessKeyId: 'AKIDSTREAMINGTEST001',
  secretAccessKey: 'streamingTestSecretKey/0000000000000000+',
  sessionToken: 'FwoGZXIvYXdzEStreamingTestSessionToken+/=',
};
const standin = await startKinesisStandin({ credentials: CREDENTIALS, region: REGION });
const ENV = {
  CARILLON_KINESIS_URL: standin.url,
  AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
  AWS_SESSION_TOKEN: CREDENTIALS.sessionToken,
  CARILLON_STREAMING_BATCH: '20',
  CARILLON_STREAMING_POLL_MS: '200',
  CARILLON_STREAMING_RETRY_MS: '50',
  CARILLON_STREAMING_LEASE_SECONDS: '3',
};
const ctx = useCarillon({ env: ENV });
after(() => standin.close());

const streamArn = (name) => `arn:aws:kinesis:${REGION}:${ACCOUNT_ID}:stream/${name}`;

async function configure(ai, confs) {
  await ctx.msg.send(
    new PutMessagingStreamingConfigurationsCommand({
      AppInstanceArn: ai,
      StreamingConfigurations: confs.map(([DataType, name]) => ({ DataType, ResourceArn: streamArn(name) })),
    }),
  );
}

// ------------------------------------------------------------------ what a stream should hold

// The identity of a streamed record, as the test knows it from its own calls.
function keyOf(e) {
  const p = e.Payload ?? {};
  switch (e.EventType) {
    case 'CREATE_CHANNEL_MESSAGE':
    case 'UPDATE_CHANNEL_MESSAGE':
      return `${e.EventType} ${p.MessageId} ${p.Content}`;
    case 'REDACT_CHANNEL_MESSAGE':
    case 'DELETE_CHANNEL_MESSAGE':
      return `${e.EventType} ${p.MessageId}`;
    case 'CREATE_CHANNEL_MEMBERSHIP':
    case 'DELETE_CHANNEL_MEMBERSHIP':
    case 'CREATE_CHANNEL_BAN':
    case 'DELETE_CHANNEL_BAN':
      return `${e.EventType} ${p.Member?.Arn}`;
    case 'CREATE_CHANNEL_MODERATOR':
    case 'DELETE_CHANNEL_MODERATOR':
      return `${e.EventType} ${p.Moderator?.Arn}`;
    case 'CREATE_SUB_CHANNEL':
    case 'DELETE_SUB_CHANNEL':
      return `${e.EventType} ${p.SubChannelId}`;
    default:
      return `${e.EventType} ${p.Name}`;
  }
}

// Expected records: stream name -> channel ARN -> [key] in the order the test caused them.
class Expect {
  constructor() {
    this.streams = new Map();
  }
  add(stream, channel, key) {
    if (!stream) return;
    const s = this.streams.get(stream) ?? new Map();
    this.streams.set(stream, s);
    const c = s.get(channel) ?? [];
    s.set(channel, c);
    c.push(key);
  }
  count(stream) {
    let n = 0;
    for (const c of this.streams.get(stream)?.values() ?? []) n += c.length;
    return n;
  }
}

// Per channel, the keys of the records the stand-in stored for `stream`, in stream order.
function actualByChannel(stream) {
  const by = new Map();
  for (const r of standin.records(stream)) {
    assert.equal(r.partitionKey, r.event.Payload?.ChannelArn, `partition key is the channel ARN (${keyOf(r.event)})`);
    const c = by.get(r.partitionKey) ?? [];
    by.set(r.partitionKey, c);
    c.push(keyOf(r.event));
  }
  return by;
}

function lastCopies(keys) {
  const seen = new Set();
  const out = [];
  for (let i = keys.length - 1; i >= 0; i--) {
    if (!seen.has(keys[i])) out.unshift(keys[i]);
    seen.add(keys[i]);
  }
  return out;
}

function allArrived(expect, stream) {
  const actual = actualByChannel(stream);
  for (const [channel, keys] of expect.streams.get(stream) ?? []) {
    const got = new Set(actual.get(channel) ?? []);
    if (!keys.every((k) => got.has(k))) return false;
  }
  return true;
}

// exactlyOnce: the stream holds exactly the expected records, in order. Otherwise: every expected
// record, nothing else, and the last copy of each in per-channel order.
function checkStream(expect, stream, { exactlyOnce }) {
  const actual = actualByChannel(stream);
  const want = expect.streams.get(stream) ?? new Map();
  for (const channel of actual.keys()) assert.ok(want.has(channel), `${stream}: records of an unexpected channel ${channel}: ${actual.get(channel)}`);
  for (const [channel, keys] of want) {
    const got = actual.get(channel) ?? [];
    if (exactlyOnce) assert.deepEqual(got, keys, `${stream}: the records of ${channel}, once each, in order`);
    else assert.deepEqual(lastCopies(got), keys, `${stream}: every record of ${channel}, the last copies in order`);
  }
}

async function waitArrived(expect, streams, ms = 60000) {
  await standin.waitFor(() => streams.every((s) => allArrived(expect, s)), ms, `every record of ${streams}`);
}

// ------------------------------------------------------------------ the workload

// One channel's life through the stock SDK, each step recorded as the records it should give:
// `msg` is the ChannelMessage stream, `chan` the Channel stream (null: not exported).
async function channelLife(ai, { msg, chan }, expect, { client = ctx.msg, messages = 4, deleteAtEnd = false } = {}) {
  const users = [];
  for (let i = 0; i < 5; i++) users.push(await ctx.newUser(ai));
  const [owner, u1, u2, u3, u4] = users;
  const name = uniq('stream-ch');
  const ch = await client.send(
    new CreateChannelCommand({ AppInstanceArn: ai, Name: name, ChimeBearer: owner.arn, MemberArns: [u1.arn], Mode: 'RESTRICTED', Privacy: 'PRIVATE' }),
  );
  const arn = ch.ChannelArn;
  const C = (key) => expect.add(chan, arn, key);
  const M = (key) => expect.add(msg, arn, key);
  C(`CREATE_CHANNEL ${name}`);
  C(`CREATE_CHANNEL_MEMBERSHIP ${owner.arn}`);
  C(`CREATE_CHANNEL_MEMBERSHIP ${u1.arn}`);
  await client.send(new CreateChannelMembershipCommand({ ChannelArn: arn, MemberArn: u2.arn, Type: 'DEFAULT', ChimeBearer: owner.arn }));
  C(`CREATE_CHANNEL_MEMBERSHIP ${u2.arn}`);
  await client.send(new BatchCreateChannelMembershipCommand({ ChannelArn: arn, MemberArns: [u3.arn, u4.arn], ChimeBearer: owner.arn }));
  C(`CREATE_CHANNEL_MEMBERSHIP ${u3.arn}`);
  C(`CREATE_CHANNEL_MEMBERSHIP ${u4.arn}`);
  const ids = [];
  for (let i = 0; i < messages; i++) {
    const content = i === 1 ? `control ${i}` : `${name} message ${i}`; // CONTROL: at most 30 bytes
    const out = await client.send(
      new SendChannelMessageCommand({
        ChannelArn: arn,
        Content: content,
        Type: i === 1 ? 'CONTROL' : 'STANDARD',
        Persistence: 'PERSISTENT',
        ChimeBearer: (i % 2 ? u1 : owner).arn,
        ClientRequestToken: uniq('t'),
      }),
    );
    ids.push(out.MessageId);
    M(`CREATE_CHANNEL_MESSAGE ${out.MessageId} ${content}`);
  }
  await client.send(new UpdateChannelMessageCommand({ ChannelArn: arn, MessageId: ids[0], Content: `${name} edited`, ChimeBearer: owner.arn }));
  M(`UPDATE_CHANNEL_MESSAGE ${ids[0]} ${name} edited`);
  await client.send(new RedactChannelMessageCommand({ ChannelArn: arn, MessageId: ids[2], ChimeBearer: owner.arn }));
  M(`REDACT_CHANNEL_MESSAGE ${ids[2]}`);
  const admin = await ctx.newUser(ai);
  await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: admin.arn }));
  await client.send(new DeleteChannelMessageCommand({ ChannelArn: arn, MessageId: ids[3], ChimeBearer: admin.arn }));
  M(`DELETE_CHANNEL_MESSAGE ${ids[3]}`);
  await client.send(new CreateChannelModeratorCommand({ ChannelArn: arn, ChannelModeratorArn: u1.arn, ChimeBearer: owner.arn }));
  C(`CREATE_CHANNEL_MODERATOR ${u1.arn}`);
  await client.send(new DeleteChannelModeratorCommand({ ChannelArn: arn, ChannelModeratorArn: u1.arn, ChimeBearer: owner.arn }));
  C(`DELETE_CHANNEL_MODERATOR ${u1.arn}`);
  await client.send(new CreateChannelBanCommand({ ChannelArn: arn, MemberArn: u2.arn, ChimeBearer: owner.arn }));
  C(`CREATE_CHANNEL_BAN ${u2.arn}`);
  C(`DELETE_CHANNEL_MEMBERSHIP ${u2.arn}`);
  await client.send(new DeleteChannelBanCommand({ ChannelArn: arn, MemberArn: u2.arn, ChimeBearer: owner.arn }));
  C(`DELETE_CHANNEL_BAN ${u2.arn}`);
  await client.send(new DeleteChannelMembershipCommand({ ChannelArn: arn, MemberArn: u3.arn, ChimeBearer: owner.arn }));
  C(`DELETE_CHANNEL_MEMBERSHIP ${u3.arn}`);
  await client.send(new UpdateChannelCommand({ ChannelArn: arn, Name: `${name}-renamed`, Mode: 'RESTRICTED', ChimeBearer: owner.arn }));
  C(`UPDATE_CHANNEL ${name}-renamed`);
  await client.send(
    new PutChannelExpirationSettingsCommand({
      ChannelArn: arn,
      ChimeBearer: owner.arn,
      ExpirationSettings: { ExpirationDays: 7, ExpirationCriterion: 'LAST_MESSAGE_TIMESTAMP' },
    }),
  );
  C(`UPDATE_CHANNEL_EXPIRATION_SETTINGS ${name}-renamed`);
  if (deleteAtEnd) {
    await client.send(new DeleteChannelCommand({ ChannelArn: arn, ChimeBearer: owner.arn }));
    C(`DELETE_CHANNEL ${name}-renamed`);
  }
  return { arn, owner, u1, name };
}

async function sendMessages(ch, n, expect, stream, label, client = ctx.msg) {
  for (let i = 0; i < n; i++) {
    const content = `${label} ${i}`;
    const out = await client.send(
      new SendChannelMessageCommand({
        ChannelArn: ch.arn,
        Content: content,
        Type: 'STANDARD',
        Persistence: 'PERSISTENT',
        ChimeBearer: ch.owner.arn,
        ClientRequestToken: uniq('t'),
      }),
    );
    expect.add(stream, ch.arn, `CREATE_CHANNEL_MESSAGE ${out.MessageId} ${content}`);
  }
}

function assertNoRejections() {
  assert.deepEqual(standin.rejected.map((r) => r.reason), [], 'every PutRecords call was well-formed and correctly signed');
}

// ------------------------------------------------------------------ tests

test('every event of both DataTypes is exported once, in per-channel order; DataType, AppInstance and start are respected', async () => {
  const expect = new Expect();
  const a = await ctx.newAppInstance();
  const b = await ctx.newAppInstance();
  const c = await ctx.newAppInstance();
  const sa = { msg: uniq('chime-messaging-a-msg'), chan: uniq('chime-messaging-a-chan') };
  const sb = { msg: null, chan: uniq('chime-messaging-b-chan') };

  // Before the configuration: nothing of this is exported.
  const early = await channelLife(a, { msg: null, chan: null }, new Expect());
  await configure(a, [['ChannelMessage', sa.msg], ['Channel', sa.chan]]);
  await configure(b, [['Channel', sb.chan]]);
  // After it: only new events of the existing channel.
  await sendMessages(early, 2, expect, sa.msg, 'early channel, after the configuration');

  // Channels of A, B (Channel data only) and C (no configuration), concurrently so that their
  // events interleave in the log.
  await Promise.all([
    channelLife(a, sa, expect),
    channelLife(a, sa, expect, { deleteAtEnd: true }),
    channelLife(b, sb, expect),
    channelLife(c, { msg: null, chan: null }, new Expect()),
  ]);
  await waitArrived(expect, [sa.msg, sa.chan, sb.chan]);
  await sleep(1500); // anything extra or duplicated would arrive meanwhile
  assertNoRejections();
  for (const s of [sa.msg, sa.chan, sb.chan]) checkStream(expect, s, { exactlyOnce: true });
  assert.equal(standin.records(sa.msg).length, expect.count(sa.msg));
  assert.equal(standin.records(sa.chan).length, expect.count(sa.chan));
  // Every call to these streams carried Kinesis's shape; the batch bound held.
  for (const call of standin.calls.filter((x) => [sa.msg, sa.chan, sb.chan].includes(x.streamName)))
    assert.ok(call.records.length >= 1 && call.records.length <= 20, `batch of ${call.records.length}`);
  assert.ok(standin.calls.some((x) => x.streamName === sa.chan && x.records.length > 1), 'records are batched');

  // Deleting the configuration stops the export.
  await ctx.msg.send(new DeleteMessagingStreamingConfigurationsCommand({ AppInstanceArn: b }));
  const before = standin.records(sb.chan).length;
  await channelLife(b, { msg: null, chan: null }, new Expect());
  await sleep(1500);
  assert.equal(standin.records(sb.chan).length, before, 'nothing is exported once the configuration is deleted');
});

test('elastic channels: a sub-channel is announced with its first member and its end after its last', async () => {
  const expect = new Expect();
  const g = await ctx.newAppInstance();
  const stream = uniq('chime-messaging-g');
  await configure(g, [['Channel', stream]]);
  const [owner, m1, m2, m3] = [await ctx.newUser(g), await ctx.newUser(g), await ctx.newUser(g), await ctx.newUser(g)];
  const name = uniq('elastic');
  const { ChannelArn: arn } = await ctx.msg.send(
    new CreateChannelCommand({
      AppInstanceArn: g,
      Name: name,
      ChimeBearer: owner.arn,
      Mode: 'RESTRICTED',
      Privacy: 'PRIVATE',
      ElasticChannelConfiguration: { MaximumSubChannels: 2, TargetMembershipsPerSubChannel: 2, MinimumMembershipPercentage: 10 },
    }),
  );
  expect.add(stream, arn, `CREATE_CHANNEL ${name}`);
  const subs = [];
  for (const m of [m1, m2, m3]) {
    const out = await ctx.msg.send(new CreateChannelMembershipCommand({ ChannelArn: arn, MemberArn: m.arn, Type: 'DEFAULT', ChimeBearer: owner.arn }));
    if (!subs.includes(out.SubChannelId)) {
      subs.push(out.SubChannelId);
      expect.add(stream, arn, `CREATE_SUB_CHANNEL ${out.SubChannelId}`);
    }
    expect.add(stream, arn, `CREATE_CHANNEL_MEMBERSHIP ${m.arn}`);
  }
  assert.equal(subs.length, 2, 'two members per sub-channel');
  await ctx.msg.send(new DeleteChannelMembershipCommand({ ChannelArn: arn, MemberArn: m3.arn, ChimeBearer: owner.arn }));
  expect.add(stream, arn, `DELETE_CHANNEL_MEMBERSHIP ${m3.arn}`);
  expect.add(stream, arn, `DELETE_SUB_CHANNEL ${subs[1]}`);
  await ctx.msg.send(new DeleteChannelMembershipCommand({ ChannelArn: arn, MemberArn: m2.arn, ChimeBearer: owner.arn }));
  expect.add(stream, arn, `DELETE_CHANNEL_MEMBERSHIP ${m2.arn}`);
  await waitArrived(expect, [stream]);
  await sleep(1000);
  assertNoRejections();
  checkStream(expect, stream, { exactlyOnce: true });
});

test('partial failures: only failed records (and their channel’s later ones) are retried, nothing is lost, per-channel order holds', async () => {
  const expect = new Expect();
  const d = await ctx.newAppInstance();
  const shared = uniq('chime-messaging-d-both');
  await configure(d, [['ChannelMessage', shared], ['Channel', shared]]);
  // Fail a third of the records once, and some of those twice; and one whole call in five.
  const attempts = new Map();
  const hash = (s) => [...s].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) >>> 0, 7);
  standin.failRecord = (rec, call) => {
    if (call.streamName !== shared) return false;
    const key = keyOf(rec.event);
    const n = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, n);
    const h = hash(key);
    return (h % 3 === 0 && n === 1) || (h % 9 === 0 && n === 2);
  };
  let calls = 0;
  standin.failCall = (call) => (call.streamName === shared && ++calls % 5 === 0 ? { status: 500, type: 'InternalFailure' } : null);
  try {
    await Promise.all([channelLife(d, { msg: shared, chan: shared }, expect), channelLife(d, { msg: shared, chan: shared }, expect, { messages: 6 }), channelLife(d, { msg: shared, chan: shared }, expect)]);
    await waitArrived(expect, [shared], 90000);
    await sleep(1000);
  } finally {
    standin.failRecord = () => false;
    standin.failCall = () => null;
  }
  assertNoRejections();
  checkStream(expect, shared, { exactlyOnce: false });
  const mine = standin.calls.filter((x) => x.streamName === shared);
  assert.ok(mine.some((x) => x.records.some((r) => r.failed)), 'some records failed on purpose');
  assert.ok(mine.some((x) => x.failedWhole), 'some calls failed on purpose');
  // A record Kinesis took is sent again only when an earlier record of its channel failed in the
  // same call (the channel's suffix goes again, in order) — never because of another channel.
  const sentLater = (key, from) => mine.some((x) => x.index > from && x.records.some((r) => keyOf(r.event) === key));
  for (const call of mine) {
    if (call.failedWhole) continue;
    const failedChannels = new Set();
    for (const r of call.records) {
      if (r.failed) failedChannels.add(r.partitionKey);
      else if (!failedChannels.has(r.partitionKey))
        assert.ok(!sentLater(keyOf(r.event), call.index), `${keyOf(r.event)} was taken in call ${call.index} and sent again`);
    }
  }
});

test('a restart resumes from the persisted cursor: nothing acknowledged is sent again, nothing is lost', async () => {
  const expect = new Expect();
  const e = await ctx.newAppInstance();
  const stream = uniq('chime-messaging-e');
  await configure(e, [['ChannelMessage', stream]]);
  const ch = await channelLife(e, { msg: stream, chan: null }, expect);
  await waitArrived(expect, [stream]);
  const acknowledged = standin.records(stream).length;

  // Kinesis refuses everything while more is written, then the server restarts.
  standin.failCall = (call) => (call.streamName === stream ? { status: 503, type: 'ServiceUnavailable' } : null);
  const firstCall = standin.calls.length;
  await sendMessages(ch, 7, expect, stream, 'while Kinesis refuses');
  await standin.waitFor(() => standin.calls.slice(firstCall).some((x) => x.streamName === stream), 30000, 'an attempt');
  const { masterKey, rootKey } = ctx.srv;
  const info = await ctx.srv.stop();
  assert.ok(info.code === 0 || info.signal === 'SIGTERM', `clean stop: ${JSON.stringify(info)}`);
  const afterStop = standin.calls.length;
  ctx.id.destroy();
  ctx.msg.destroy();
  ctx.srv = await startCarillon({ env: ENV, masterKey, rootKey });
  ctx.id = identityClient(ctx.srv);
  ctx.msg = messagingClient(ctx.srv);
  standin.failCall = () => null;

  await sendMessages(ch, 3, expect, stream, 'after the restart');
  await waitArrived(expect, [stream]);
  await sleep(1000);
  assertNoRejections();
  checkStream(expect, stream, { exactlyOnce: true });
  const resent = standin.calls.slice(afterStop).filter((x) => x.streamName === stream);
  assert.ok(resent.length > 0, 'the new process exported');
  assert.equal(standin.records(stream).length, expect.count(stream), `${acknowledged} records before the restart, none twice`);
});

test('several nodes on one database: one exports; killing it hands the export to another, without loss', async () => {
  const expect = new Expect();
  const f = await ctx.newAppInstance();
  const stream = uniq('chime-messaging-f');
  await configure(f, [['ChannelMessage', stream], ['Channel', stream]]);
  const { masterKey, rootKey } = ctx.srv;
  const nodes = [ctx.srv, await startCarillon({ env: ENV, masterKey, rootKey }), await startCarillon({ env: ENV, masterKey, rootKey })];
  const clients = nodes.map((n) => messagingClient(n));
  try {
    // Writes through every node.
    const chans = await Promise.all(clients.map((cl) => channelLife(f, { msg: stream, chan: stream }, expect, { client: cl, messages: 4 })));
    await waitArrived(expect, [stream]);
    const exporters = nodes.filter((n) => n.log().includes('this node exports the streaming configurations'));
    assert.ok(exporters.length >= 1, 'a node exports');

    // Kill the exporting node (no clean shutdown: its lease must run out), keep writing through the others.
    const holder = exporters.at(-1);
    const holderIndex = nodes.indexOf(holder);
    holder.proc.kill('SIGKILL');
    await new Promise((r) => (holder.alive() ? holder.proc.once('exit', r) : r()));
    const rest = nodes.map((n, i) => i).filter((i) => i !== holderIndex);
    await Promise.all(rest.map((i) => sendMessages({ arn: chans[i].arn, owner: chans[i].owner }, 5, expect, stream, `after the kill via ${i}`, clients[i])));
    await waitArrived(expect, [stream], 60000);
    await sleep(1000);
    assertNoRejections();
    checkStream(expect, stream, { exactlyOnce: false });
    assert.ok(rest.some((i) => nodes[i].log().includes('this node exports the streaming configurations')), 'another node took over');
    if (holder === ctx.srv) {
      ctx.id.destroy();
      ctx.msg.destroy();
      ctx.srv = await startCarillon({ env: ENV, masterKey, rootKey });
      ctx.id = identityClient(ctx.srv);
      ctx.msg = messagingClient(ctx.srv);
    }
  } finally {
    clients.forEach((c) => c.destroy());
    for (const n of nodes.slice(1)) if (n.alive()) await n.stop();
    for (const n of nodes.slice(1)) if (!n.alive()) await n.stop();
  }
});
