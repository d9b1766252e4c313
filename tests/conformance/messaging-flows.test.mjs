// ChannelFlow resources: Create/Describe/List/Update/DeleteChannelFlow, Associate/DisassociateChannelFlow
// (with their UPDATE_CHANNEL event), ListChannelsAssociatedWithChannelFlow, ChannelFlowCallback.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateAppInstanceAdminCommand, DeleteAppInstanceCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  AssociateChannelFlowCommand,
  ChannelFlowCallbackCommand,
  CreateChannelCommand,
  CreateChannelFlowCommand,
  DeleteChannelFlowCommand,
  DescribeChannelCommand,
  DescribeChannelFlowCommand,
  DisassociateChannelFlowCommand,
  ListChannelFlowsCommand,
  ListChannelsAssociatedWithChannelFlowCommand,
  UpdateChannelFlowCommand,
  paginateListChannelFlows,
} from '@aws-sdk/client-chime-sdk-messaging';
import { messagingClient, mintUserCredentials } from './lib/clients.mjs';
import { eventsAfter, lastPosition, storedTags } from './lib/events-flow.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { ACCOUNT_ID, REGION } from './lib/server.mjs';
import { assertRecentDate, assertRejects, collectPages, escapeRe, missingAppInstanceArn, uniq } from './lib/util.mjs';

const ctx = useCarillon();
const t0 = Date.now();
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';

function plain(x) {
  return JSON.parse(JSON.stringify(x));
}

function lambdaArn(name = uniq('fn')) {
  return `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:${name}`;
}

function processor(order = 1, overrides = {}) {
  return {
    Name: `proc-${order}`,
    Configuration: { Lambda: { ResourceArn: lambdaArn(`fn-${order}`), InvocationType: 'ASYNC' } },
    ExecutionOrder: order,
    FallbackAction: 'CONTINUE',
    ...overrides,
  };
}

async function createFlow(appInstanceArn, input = {}) {
  const out = await ctx.msg.send(
    new CreateChannelFlowCommand({ AppInstanceArn: appInstanceArn, Name: uniq('flow'), Processors: [processor(1)], ...input }),
  );
  assert.equal(out.$metadata.httpStatusCode, 201, 'CreateChannelFlow status');
  return out.ChannelFlowArn;
}

async function describeFlow(arn) {
  const out = await ctx.msg.send(new DescribeChannelFlowCommand({ ChannelFlowArn: arn }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  return out.ChannelFlow;
}

async function flowsOf(appInstanceArn) {
  const all = [];
  for await (const page of paginateListChannelFlows({ client: ctx.msg, pageSize: 50 }, { AppInstanceArn: appInstanceArn })) {
    all.push(...(page.ChannelFlows ?? []));
  }
  return plain(all);
}

// An AppInstance with a moderator (the channel's creator), a plain member, an AppInstanceAdmin that
// is neither member nor moderator, and one channel.
async function world(channelInput = {}) {
  const ai = await ctx.newAppInstance();
  const mod = await ctx.newUser(ai);
  const member = await ctx.newUser(ai);
  const admin = await ctx.newUser(ai);
  await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: admin.arn }));
  const ch = await ctx.msg.send(
    new CreateChannelCommand({
      AppInstanceArn: ai,
      Name: uniq('chan'),
      ChimeBearer: mod.arn,
      MemberArns: [member.arn],
      Mode: 'RESTRICTED',
      Privacy: 'PRIVATE',
      ...channelInput,
    }),
  );
  return { ai, mod, member, admin, channel: ch.ChannelArn };
}

function associate(channelArn, flowArn, bearer, client = ctx.msg) {
  return client.send(new AssociateChannelFlowCommand({ ChannelArn: channelArn, ChannelFlowArn: flowArn, ChimeBearer: bearer }));
}

function disassociate(channelArn, flowArn, bearer, client = ctx.msg) {
  return client.send(new DisassociateChannelFlowCommand({ ChannelArn: channelArn, ChannelFlowArn: flowArn, ChimeBearer: bearer }));
}

async function describeChannel(channelArn, bearer) {
  const out = await ctx.msg.send(new DescribeChannelCommand({ ChannelArn: channelArn, ChimeBearer: bearer }));
  return out.Channel;
}

// The UPDATE_CHANNEL event a channel-flow (dis)association must have recorded: exactly one event,
// SYSTEM, to the channel's members, its payload the Channel document with ISO-8601 timestamps and
// equal to what DescribeChannel now answers.
async function assertOneUpdateChannelEvent(channelArn, after, bearer, flowArn) {
  const evs = eventsAfter(channelArn, after);
  assert.equal(evs.length, 1, `exactly one event, got ${JSON.stringify(evs.map((e) => e.event_type))}`);
  const [e] = evs;
  assert.equal(e.event_type, 'UPDATE_CHANNEL');
  assert.equal(e.message_type, 'SYSTEM');
  assert.equal(e.audience, 'members');
  assert.deepEqual(e.arns, []);
  const d = await describeChannel(channelArn, bearer);
  const iso = (x) => (x instanceof Date ? x.toISOString() : x);
  const expected = {};
  for (const [k, v] of Object.entries(plain({ ...d, CreatedTimestamp: undefined, LastUpdatedTimestamp: undefined, LastMessageTimestamp: undefined }))) expected[k] = v;
  expected.CreatedTimestamp = iso(d.CreatedTimestamp);
  expected.LastUpdatedTimestamp = iso(d.LastUpdatedTimestamp);
  if (d.LastMessageTimestamp) expected.LastMessageTimestamp = iso(d.LastMessageTimestamp);
  assert.deepEqual(e.payload, expected, 'UPDATE_CHANNEL payload = the Channel document (ISO timestamps)');
  assert.match(e.payload.LastUpdatedTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  if (flowArn) assert.equal(e.payload.ChannelFlowArn, flowArn);
  else assert.equal('ChannelFlowArn' in e.payload, false, 'no ChannelFlowArn after disassociation');
  return e;
}

// ---------------------------------------------------------------- create / describe

test('CreateChannelFlow: 201 {ChannelFlowArn = <app>/channel-flow/<uuid>}; Describe returns every field', async () => {
  const ai = await ctx.newAppInstance();
  const processors = [
    processor(2, { Name: 'second', FallbackAction: 'ABORT', Configuration: { Lambda: { ResourceArn: lambdaArn('b:$LATEST'), InvocationType: 'ASYNC' } } }),
    processor(1, { Name: 'first', Configuration: { Lambda: { ResourceArn: lambdaArn('a.b-c_d:prod'), InvocationType: 'ASYNC' } } }),
    processor(3, { Name: 'third' }),
  ];
  const name = uniq('profanity filter');
  const arn = await createFlow(ai, { Name: name, Processors: processors, Tags: [{ Key: 'team', Value: 'chat' }, { Key: 'env', Value: 'test' }] });
  assert.match(arn, new RegExp(`^${escapeRe(ai)}/channel-flow/${UUID}$`));

  const f = await describeFlow(arn);
  assert.equal(f.ChannelFlowArn, arn);
  assert.equal(f.Name, name);
  assert.deepEqual(plain(f.Processors), processors, 'Processors are stored and returned as given');
  assertRecentDate(f.CreatedTimestamp, t0, 'CreatedTimestamp');
  assertRecentDate(f.LastUpdatedTimestamp, t0, 'LastUpdatedTimestamp');
  assert.equal(f.CreatedTimestamp.getTime(), f.LastUpdatedTimestamp.getTime());
  assert.deepEqual(Object.keys(plain(f)).sort(), ['ChannelFlowArn', 'CreatedTimestamp', 'LastUpdatedTimestamp', 'Name', 'Processors']);
  assert.deepEqual(storedTags(arn), [{ Key: 'env', Value: 'test' }, { Key: 'team', Value: 'chat' }]);
});

test('CreateChannelFlow retried with the same ClientRequestToken creates one flow; other input with it: Conflict', async () => {
  const ai = await ctx.newAppInstance();
  const token = randomUUID();
  const input = { AppInstanceArn: ai, Name: uniq('flow'), Processors: [processor(1)], ClientRequestToken: token };
  const a = await ctx.msg.send(new CreateChannelFlowCommand(input));
  const b = await ctx.msg.send(new CreateChannelFlowCommand(input));
  assert.equal(a.$metadata.httpStatusCode, 201);
  assert.equal(b.$metadata.httpStatusCode, 201);
  assert.equal(b.ChannelFlowArn, a.ChannelFlowArn);
  assert.deepEqual((await flowsOf(ai)).map((f) => f.ChannelFlowArn), [a.ChannelFlowArn]);
  await assertRejects(ctx.msg.send(new CreateChannelFlowCommand({ ...input, Name: uniq('other') })), 'ConflictException');
  assert.equal((await flowsOf(ai)).length, 1);
  // a new token is a new flow
  const c = await ctx.msg.send(new CreateChannelFlowCommand({ ...input, ClientRequestToken: randomUUID() }));
  assert.notEqual(c.ChannelFlowArn, a.ChannelFlowArn);
  assert.equal((await flowsOf(ai)).length, 2);
});

test('CreateChannelFlow refuses bad input with BadRequest and stores nothing', async () => {
  const ai = await ctx.newAppInstance();
  const create = (input) => ctx.msg.send(new CreateChannelFlowCommand({ AppInstanceArn: ai, Name: uniq('flow'), Processors: [processor(1)], ...input }));
  const e = await assertRejects(create({ Processors: [processor(1), processor(1, { Name: 'dup' })] }), 'BadRequestException', 'duplicate ExecutionOrder');
  assert.match(e.message, /ExecutionOrder/);
  await assertRejects(create({ Processors: [processor(2), processor(3), processor(2)] }), 'BadRequestException', 'duplicate ExecutionOrder 2');
  const bad = (arn) => [processor(1, { Configuration: { Lambda: { ResourceArn: arn, InvocationType: 'ASYNC' } } })];
  await assertRejects(create({ Processors: bad('arn:aws:sns:us-east-1:111122223333:topic') }), 'BadRequestException', 'not a Lambda ARN');
  await assertRejects(create({ Processors: bad('arn:aws:lambda:us-east-1:1234:function:short-account') }), 'BadRequestException', 'account id of 4 digits');
  await assertRejects(create({ Processors: bad('arn:aws:lambda:us-east-1:111122223333:function:bad name') }), 'BadRequestException', 'space in function name');
  await assertRejects(
    create({ Processors: [processor(1, { Configuration: { Lambda: { ResourceArn: lambdaArn(), InvocationType: 'SYNC' } } })] }),
    'BadRequestException',
    'InvocationType SYNC',
  );
  await assertRejects(create({ Processors: [processor(4)] }), 'BadRequestException', 'ExecutionOrder 4');
  await assertRejects(create({ Processors: [processor(0)] }), 'BadRequestException', 'ExecutionOrder 0');
  await assertRejects(create({ Processors: [processor(1, { FallbackAction: 'RETRY' })] }), 'BadRequestException', 'FallbackAction');
  await assertRejects(create({ Processors: [] }), 'BadRequestException', 'no processor');
  await assertRejects(create({ Processors: [processor(1), processor(2), processor(3), processor(3, { Name: 'x' })] }), 'BadRequestException', '4 processors');
  await assertRejects(create({ Name: '' }), 'BadRequestException', 'empty Name');
  assert.deepEqual(await flowsOf(ai), []);
  await assertRejects(
    ctx.msg.send(new CreateChannelFlowCommand({ AppInstanceArn: missingAppInstanceArn(), Name: 'x', Processors: [processor(1)] })),
    'NotFoundException',
    'unknown AppInstance',
  );
});

test('DescribeChannelFlow, UpdateChannelFlow and DeleteChannelFlow of an unknown flow: NotFound', async () => {
  const ai = await ctx.newAppInstance();
  const missing = `${ai}/channel-flow/${randomUUID()}`;
  await assertRejects(ctx.msg.send(new DescribeChannelFlowCommand({ ChannelFlowArn: missing })), 'NotFoundException');
  await assertRejects(ctx.msg.send(new UpdateChannelFlowCommand({ ChannelFlowArn: missing, Name: 'n', Processors: [processor(1)] })), 'NotFoundException');
  await assertRejects(ctx.msg.send(new DeleteChannelFlowCommand({ ChannelFlowArn: missing })), 'NotFoundException');
  await assertRejects(ctx.msg.send(new ListChannelsAssociatedWithChannelFlowCommand({ ChannelFlowArn: missing })), 'NotFoundException');
});

// ---------------------------------------------------------------- list

test('ListChannelFlows: summaries of this AppInstance only, paginated; unknown AppInstance: NotFound', async () => {
  const ai = await ctx.newAppInstance();
  const other = await ctx.newAppInstance();
  await createFlow(other);
  const made = [];
  for (let i = 1; i <= 5; i++) {
    const procs = [processor(1, { Name: `p${i}` })];
    const name = `flow-${i}-${uniq('')}`;
    made.push({ ChannelFlowArn: await createFlow(ai, { Name: name, Processors: procs }), Name: name, Processors: procs });
  }
  const { items, pages } = await collectPages(
    (token) => ctx.msg.send(new ListChannelFlowsCommand({ AppInstanceArn: ai, MaxResults: 2, NextToken: token })),
    (out) => out.ChannelFlows,
    2,
  );
  assert.deepEqual(pages.map((p) => p.count), [2, 2, 1]);
  const byArn = (a, b) => (a.ChannelFlowArn < b.ChannelFlowArn ? -1 : 1);
  assert.deepEqual(plain(items).sort(byArn), made.sort(byArn), 'exact ChannelFlowSummary items');
  assert.deepEqual(plain(items), plain(items).sort(byArn), 'listed in ARN order');

  const empty = await ctx.msg.send(new ListChannelFlowsCommand({ AppInstanceArn: await ctx.newAppInstance() }));
  assert.deepEqual(empty.ChannelFlows, []);
  assert.equal(empty.NextToken, undefined);
  await assertRejects(ctx.msg.send(new ListChannelFlowsCommand({ AppInstanceArn: missingAppInstanceArn() })), 'NotFoundException');
  // a NextToken of this listing is refused by another AppInstance's listing
  const first = await ctx.msg.send(new ListChannelFlowsCommand({ AppInstanceArn: ai, MaxResults: 1 }));
  await assertRejects(ctx.msg.send(new ListChannelFlowsCommand({ AppInstanceArn: other, NextToken: first.NextToken })), 'BadRequestException');
});

// ---------------------------------------------------------------- update

test('UpdateChannelFlow replaces Name and Processors and advances LastUpdatedTimestamp only', async () => {
  const ai = await ctx.newAppInstance();
  const arn = await createFlow(ai, { Name: 'before' });
  const before = await describeFlow(arn);
  await sleep(30);
  const procs = [processor(3, { Name: 'late', FallbackAction: 'ABORT' }), processor(1, { Name: 'early' })];
  const out = await ctx.msg.send(new UpdateChannelFlowCommand({ ChannelFlowArn: arn, Name: 'after', Processors: procs }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.deepEqual(Object.keys(plain({ ...out, $metadata: undefined })), ['ChannelFlowArn']);
  assert.equal(out.ChannelFlowArn, arn);
  const f = await describeFlow(arn);
  assert.equal(f.Name, 'after');
  assert.deepEqual(plain(f.Processors), procs);
  assert.equal(f.CreatedTimestamp.getTime(), before.CreatedTimestamp.getTime());
  assert.ok(f.LastUpdatedTimestamp.getTime() > before.LastUpdatedTimestamp.getTime(), 'LastUpdatedTimestamp advanced');

  await assertRejects(
    ctx.msg.send(new UpdateChannelFlowCommand({ ChannelFlowArn: arn, Name: 'dup', Processors: [processor(2), processor(2, { Name: 'again' })] })),
    'BadRequestException',
    'duplicate ExecutionOrder',
  );
  const g = await describeFlow(arn);
  assert.equal(g.Name, 'after', 'a refused update changes nothing');
  assert.deepEqual(plain(g.Processors), procs);
});

// ---------------------------------------------------------------- associate / disassociate

test('AssociateChannelFlow by a moderator: 200 with no body, the Channel shows ChannelFlowArn, one UPDATE_CHANNEL event', async () => {
  const w = await world();
  const flow = await createFlow(w.ai);
  const before = await describeChannel(w.channel, w.mod.arn);
  assert.equal(before.ChannelFlowArn, undefined);
  const p0 = lastPosition(w.channel);
  await sleep(20);
  const out = await associate(w.channel, flow, w.mod.arn);
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.deepEqual(Object.keys(plain({ ...out, $metadata: undefined })), []);
  const after = await describeChannel(w.channel, w.mod.arn);
  assert.equal(after.ChannelFlowArn, flow);
  assert.ok(after.LastUpdatedTimestamp.getTime() > before.LastUpdatedTimestamp.getTime(), 'LastUpdatedTimestamp advanced');
  await assertOneUpdateChannelEvent(w.channel, p0, w.mod.arn, flow);

  // associating the same flow again: success, nothing changes, no event
  const p1 = lastPosition(w.channel);
  const again = await associate(w.channel, flow, w.mod.arn);
  assert.equal(again.$metadata.httpStatusCode, 200);
  assert.deepEqual(eventsAfter(w.channel, p1), []);
  assert.equal((await describeChannel(w.channel, w.mod.arn)).LastUpdatedTimestamp.getTime(), after.LastUpdatedTimestamp.getTime());
});

test('AssociateChannelFlow: an AppInstanceAdmin may, a plain member may not (Forbidden, no event, no change)', async () => {
  const w = await world();
  const flow = await createFlow(w.ai);
  const p0 = lastPosition(w.channel);
  await assertRejects(associate(w.channel, flow, w.member.arn), 'ForbiddenException', 'plain member');
  assert.deepEqual(eventsAfter(w.channel, p0), []);
  assert.equal((await describeChannel(w.channel, w.mod.arn)).ChannelFlowArn, undefined);
  // a user of another AppInstance
  const stranger = await ctx.newUser(await ctx.newAppInstance());
  await assertRejects(associate(w.channel, flow, stranger.arn), 'ForbiddenException', 'user of another AppInstance');
  assert.deepEqual(eventsAfter(w.channel, p0), []);

  const out = await associate(w.channel, flow, w.admin.arn);
  assert.equal(out.$metadata.httpStatusCode, 200);
  await assertOneUpdateChannelEvent(w.channel, p0, w.mod.arn, flow);
});

test('AssociateChannelFlow errors: unknown channel or flow, flow of another AppInstance (NotFound), second flow (Conflict)', async () => {
  const w = await world();
  const flow = await createFlow(w.ai);
  const otherFlow = await createFlow(w.ai);
  const foreign = await createFlow(await ctx.newAppInstance());
  const p0 = lastPosition(w.channel);
  await assertRejects(associate(`${w.ai}/channel/${randomUUID()}`, flow, w.mod.arn), 'NotFoundException', 'unknown channel');
  await assertRejects(associate(w.channel, `${w.ai}/channel-flow/${randomUUID()}`, w.mod.arn), 'NotFoundException', 'unknown flow');
  await assertRejects(associate(w.channel, foreign, w.mod.arn), 'NotFoundException', 'flow of another AppInstance');
  assert.deepEqual(eventsAfter(w.channel, p0), []);
  await associate(w.channel, flow, w.mod.arn);
  const p1 = lastPosition(w.channel);
  const e = await assertRejects(associate(w.channel, otherFlow, w.mod.arn), 'ConflictException', 'already associated with another flow');
  assert.match(e.message, new RegExp(escapeRe(flow)));
  assert.deepEqual(eventsAfter(w.channel, p1), []);
  assert.equal((await describeChannel(w.channel, w.mod.arn)).ChannelFlowArn, flow);
});

test('DisassociateChannelFlow: plain member Forbidden; moderator 204 with one UPDATE_CHANNEL event; then NotFound', async () => {
  const w = await world();
  const flow = await createFlow(w.ai);
  const otherFlow = await createFlow(w.ai);
  await associate(w.channel, flow, w.mod.arn);
  const p0 = lastPosition(w.channel);
  await assertRejects(disassociate(w.channel, flow, w.member.arn), 'ForbiddenException', 'plain member');
  await assertRejects(disassociate(w.channel, otherFlow, w.mod.arn), 'NotFoundException', 'not the associated flow');
  assert.deepEqual(eventsAfter(w.channel, p0), []);
  assert.equal((await describeChannel(w.channel, w.mod.arn)).ChannelFlowArn, flow);

  const out = await disassociate(w.channel, flow, w.mod.arn);
  assert.equal(out.$metadata.httpStatusCode, 204);
  assert.equal((await describeChannel(w.channel, w.mod.arn)).ChannelFlowArn, undefined);
  await assertOneUpdateChannelEvent(w.channel, p0, w.mod.arn, null);

  const p1 = lastPosition(w.channel);
  await assertRejects(disassociate(w.channel, flow, w.mod.arn), 'NotFoundException', 'no longer associated');
  await assertRejects(disassociate(`${w.ai}/channel/${randomUUID()}`, flow, w.mod.arn), 'NotFoundException', 'unknown channel');
  assert.deepEqual(eventsAfter(w.channel, p1), []);
  // an admin may disassociate too
  await associate(w.channel, otherFlow, w.mod.arn);
  const d = await disassociate(w.channel, otherFlow, w.admin.arn);
  assert.equal(d.$metadata.httpStatusCode, 204);
});

test('ListChannelsAssociatedWithChannelFlow: exact summaries, paginated, follows (dis)association', async () => {
  const w = await world({ Metadata: 'meta-1', Mode: 'UNRESTRICTED', Privacy: 'PUBLIC' });
  const flow = await createFlow(w.ai);
  const other = await createFlow(w.ai);
  const expected = [];
  const first = await describeChannel(w.channel, w.mod.arn);
  expected.push({ Name: first.Name, ChannelArn: w.channel, Mode: 'UNRESTRICTED', Privacy: 'PUBLIC', Metadata: 'meta-1' });
  await associate(w.channel, flow, w.mod.arn);
  for (let i = 0; i < 2; i++) {
    const name = uniq('chan');
    const c = await ctx.msg.send(new CreateChannelCommand({ AppInstanceArn: w.ai, Name: name, ChimeBearer: w.mod.arn }));
    await associate(c.ChannelArn, flow, w.mod.arn);
    expected.push({ Name: name, ChannelArn: c.ChannelArn, Mode: 'RESTRICTED', Privacy: 'PRIVATE' });
  }
  const unrelated = await ctx.msg.send(new CreateChannelCommand({ AppInstanceArn: w.ai, Name: uniq('chan'), ChimeBearer: w.mod.arn }));
  await associate(unrelated.ChannelArn, other, w.mod.arn);

  const { items, pages } = await collectPages(
    (token) => ctx.msg.send(new ListChannelsAssociatedWithChannelFlowCommand({ ChannelFlowArn: flow, MaxResults: 2, NextToken: token })),
    (out) => out.Channels,
    2,
  );
  assert.deepEqual(pages.map((p) => p.count), [2, 1]);
  const byArn = (a, b) => (a.ChannelArn < b.ChannelArn ? -1 : 1);
  assert.deepEqual(plain(items), expected.sort(byArn));

  await disassociate(w.channel, flow, w.mod.arn);
  const l = await ctx.msg.send(new ListChannelsAssociatedWithChannelFlowCommand({ ChannelFlowArn: flow }));
  assert.deepEqual(plain(l.Channels).map((c) => c.ChannelArn), expected.filter((c) => c.ChannelArn !== w.channel).map((c) => c.ChannelArn));
  const none = await ctx.msg.send(new ListChannelsAssociatedWithChannelFlowCommand({ ChannelFlowArn: await createFlow(w.ai) }));
  assert.deepEqual(none.Channels, []);
  assert.equal(none.NextToken, undefined);
});

// ---------------------------------------------------------------- delete

test('DeleteChannelFlow: Conflict while associated with a channel; 204 once disassociated; tags go with it', async () => {
  const w = await world();
  const flow = await createFlow(w.ai, { Tags: [{ Key: 'k', Value: 'v' }] });
  await associate(w.channel, flow, w.mod.arn);
  const e = await assertRejects(ctx.msg.send(new DeleteChannelFlowCommand({ ChannelFlowArn: flow })), 'ConflictException');
  assert.match(e.message, new RegExp(escapeRe(w.channel)));
  assert.equal((await describeFlow(flow)).ChannelFlowArn, flow, 'still there');
  assert.deepEqual(storedTags(flow), [{ Key: 'k', Value: 'v' }]);

  await disassociate(w.channel, flow, w.mod.arn);
  const out = await ctx.msg.send(new DeleteChannelFlowCommand({ ChannelFlowArn: flow }));
  assert.equal(out.$metadata.httpStatusCode, 204);
  await assertRejects(ctx.msg.send(new DescribeChannelFlowCommand({ ChannelFlowArn: flow })), 'NotFoundException');
  assert.deepEqual(storedTags(flow), []);
  assert.deepEqual(await flowsOf(w.ai), []);
  await assertRejects(ctx.msg.send(new DeleteChannelFlowCommand({ ChannelFlowArn: flow })), 'NotFoundException', 'twice');
  await assertRejects(associate(w.channel, flow, w.mod.arn), 'NotFoundException', 'associate a deleted flow');
});

test('AssociateChannelFlow racing DeleteChannelFlow: one of them wins cleanly, never a server error', async () => {
  const w = await world();
  for (let i = 0; i < 8; i++) {
    const flow = await createFlow(w.ai);
    const [a, d] = await Promise.allSettled([
      associate(w.channel, flow, w.mod.arn),
      ctx.msg.send(new DeleteChannelFlowCommand({ ChannelFlowArn: flow })),
    ]);
    const outcome = (r) => (r.status === 'fulfilled' ? r.value.$metadata.httpStatusCode : r.reason.name);
    const pair = `${outcome(a)}/${outcome(d)}`;
    assert.ok(['200/ConflictException', 'NotFoundException/204'].includes(pair), `associate/delete outcome ${pair}`);
    const current = (await describeChannel(w.channel, w.mod.arn)).ChannelFlowArn;
    if (pair.startsWith('200')) {
      assert.equal(current, flow);
      await disassociate(w.channel, flow, w.mod.arn);
    } else {
      assert.equal(current, undefined);
    }
  }
});

test('DeleteAppInstance removes its channel flows even while associated', async () => {
  const w = await world();
  const flow = await createFlow(w.ai, { Tags: [{ Key: 'k', Value: 'v' }] });
  await associate(w.channel, flow, w.mod.arn);
  const out = await ctx.id.send(new DeleteAppInstanceCommand({ AppInstanceArn: w.ai }));
  assert.equal(out.$metadata.httpStatusCode, 204);
  ctx.appInstances.delete(w.ai);
  await assertRejects(ctx.msg.send(new DescribeChannelFlowCommand({ ChannelFlowArn: flow })), 'NotFoundException');
  assert.deepEqual(storedTags(flow), []);
});

// ---------------------------------------------------------------- callback

test('ChannelFlowCallback: unknown channel NotFound; channel without a flow BadRequest; no pending message NotFound', async () => {
  const w = await world();
  const flow = await createFlow(w.ai);
  const callback = (channelArn) =>
    ctx.msg.send(
      new ChannelFlowCallbackCommand({
        ChannelArn: channelArn,
        CallbackId: randomUUID().replace(/-/g, ''),
        ChannelMessage: { MessageId: 'msg-1', Content: 'cleaned', Metadata: 'm' },
      }),
    );
  await assertRejects(callback(`${w.ai}/channel/${randomUUID()}`), 'NotFoundException', 'unknown channel');
  const e = await assertRejects(callback(w.channel), 'BadRequestException', 'channel without a flow');
  assert.match(e.message, /not associated with a channel flow/);
  await associate(w.channel, flow, w.mod.arn);
  const p0 = lastPosition(w.channel);
  const n = await assertRejects(callback(w.channel), 'NotFoundException', 'no message awaits this callback');
  assert.match(n.message, /msg-1/);
  assert.deepEqual(eventsAfter(w.channel, p0), []);
  // CallbackId is 32..64 characters (model)
  await assertRejects(
    ctx.msg.send(new ChannelFlowCallbackCommand({ ChannelArn: w.channel, CallbackId: 'short', ChannelMessage: { MessageId: 'm' } })),
    'BadRequestException',
    'short CallbackId',
  );
});

// ---------------------------------------------------------------- credentials

test('user credentials: flow operations are Forbidden; Associate/Disassociate follow the channel rights', async () => {
  const w = await world();
  const flow = await createFlow(w.ai);
  const asMod = messagingClient(ctx.srv, await mintUserCredentials(ctx.srv, w.mod.arn));
  const asMember = messagingClient(ctx.srv, await mintUserCredentials(ctx.srv, w.member.arn));
  try {
    const calls = {
      CreateChannelFlow: () => new CreateChannelFlowCommand({ AppInstanceArn: w.ai, Name: 'x', Processors: [processor(1)] }),
      DescribeChannelFlow: () => new DescribeChannelFlowCommand({ ChannelFlowArn: flow }),
      ListChannelFlows: () => new ListChannelFlowsCommand({ AppInstanceArn: w.ai }),
      UpdateChannelFlow: () => new UpdateChannelFlowCommand({ ChannelFlowArn: flow, Name: 'x', Processors: [processor(1)] }),
      DeleteChannelFlow: () => new DeleteChannelFlowCommand({ ChannelFlowArn: flow }),
      ListChannelsAssociatedWithChannelFlow: () => new ListChannelsAssociatedWithChannelFlowCommand({ ChannelFlowArn: flow }),
      ChannelFlowCallback: () =>
        new ChannelFlowCallbackCommand({ ChannelArn: w.channel, CallbackId: 'c'.repeat(32), ChannelMessage: { MessageId: 'm' } }),
    };
    for (const [name, cmd] of Object.entries(calls)) {
      await assertRejects(asMod.send(cmd()), 'ForbiddenException', `${name} with a user credential`);
    }
    assert.equal((await describeFlow(flow)).Name.startsWith('flow-'), true, 'the flow is untouched');
    assert.equal((await flowsOf(w.ai)).length, 1);

    // Associate/Disassociate have a bearer: a user credential acts as itself, with its own rights.
    await assertRejects(associate(w.channel, flow, w.member.arn, asMember), 'ForbiddenException', 'member credential');
    await assertRejects(associate(w.channel, flow, w.mod.arn, asMember), 'ForbiddenException', 'member credential acting as the moderator');
    const p0 = lastPosition(w.channel);
    const a = await associate(w.channel, flow, w.mod.arn, asMod);
    assert.equal(a.$metadata.httpStatusCode, 200);
    await assertOneUpdateChannelEvent(w.channel, p0, w.mod.arn, flow);
    await assertRejects(disassociate(w.channel, flow, w.member.arn, asMember), 'ForbiddenException', 'member credential');
    const d = await disassociate(w.channel, flow, w.mod.arn, asMod);
    assert.equal(d.$metadata.httpStatusCode, 204);
  } finally {
    asMod.destroy();
    asMember.destroy();
  }
});
