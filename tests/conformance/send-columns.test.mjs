// A batch of more than eight plain persistent sends goes to the database as typed columns
// (src/api/send_batch.c, carillon_api.send_messages) instead of a JSON document of requests: every
// member a client sends must come back from GetChannelMessage as it was sent, each answer must be
// its own request's, and a batch the database declines (an item it must refuse) must still answer
// every request on its own. The batches are made large by holding the channel's row from a second
// session while the sends arrive: the first send waits for it, the others queue behind it and leave
// as one batch when it is released.

import assert from 'node:assert/strict';
import { createServer as createNetServer } from 'node:net';
import { test } from 'node:test';
import { CreateAppInstanceBotCommand } from '@aws-sdk/client-chime-sdk-identity';
import {
  CreateChannelCommand,
  CreateChannelMembershipCommand,
  GetChannelMessageCommand,
  SendChannelMessageCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { messagingClient, mintUserCredentials } from './lib/clients.mjs';
import { asOneBatch, channelEvents, sql } from './lib/eventlog.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { rawSession } from './lib/realtime.mjs';
import { assertRejects, lexConfig, scrapeMetric, uniq } from './lib/util.mjs';

const metricsPort = await new Promise((resolve) => {
  const s = createNetServer().listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});
// The listener's poll is a minute apart: a session gets a batch's events in the seconds a test
// waits only if the batch's notification was sent.
const ctx = useCarillon({
  env: { CARILLON_METRICS_LISTEN: `127.0.0.1:${metricsPort}`, CARILLON_WRITE_IN_FLIGHT: '1', CARILLON_LISTENER_POLL_MS: '60000' },
});

const metric = (name) => scrapeMetric(metricsPort, name);

async function world() {
  const ai = await ctx.newAppInstance();
  const alice = await ctx.newUser(ai, { Name: 'Alice é' });
  const bob = await ctx.newUser(ai, { Name: 'Bob "the builder"' });
  const outsider = await ctx.newUser(ai);
  const bot = await ctx.id.send(new CreateAppInstanceBotCommand({ AppInstanceArn: ai, Name: 'Helper', Configuration: lexConfig() }));
  const ch = await ctx.msg.send(
    new CreateChannelCommand({ AppInstanceArn: ai, Name: uniq('cols'), ChimeBearer: alice.arn, MemberArns: [bob.arn], Mode: 'RESTRICTED', Privacy: 'PRIVATE' }),
  );
  await ctx.msg.send(
    new CreateChannelMembershipCommand({ ChannelArn: ch.ChannelArn, MemberArn: bot.AppInstanceBotArn, Type: 'DEFAULT', ChimeBearer: alice.arn }),
  );
  const bobClient = messagingClient(ctx.srv, await mintUserCredentials(ctx.srv, bob.arn));
  return { ai, alice, bob, outsider, bot: bot.AppInstanceBotArn, channel: ch.ChannelArn, bobClient };
}

// The variety of members a send may carry, by item: senders of every kind (the root key naming a
// user or a bot, a user's own credentials), STANDARD and CONTROL, optional members or none, text
// JSON must escape, non-ASCII.
function inputs(w, n, tag) {
  return Array.from({ length: n }, (_, i) => {
    const base = { ChannelArn: w.channel, Persistence: 'PERSISTENT', ClientRequestToken: uniq(`${tag}${i}`) };
    switch (i % 5) {
      case 0:
        return { client: ctx.msg, input: { ...base, ChimeBearer: w.alice.arn, Type: 'STANDARD', Content: `plain ${tag} ${i}` } };
      case 1:
        return {
          client: ctx.msg,
          input: {
            ...base, ChimeBearer: w.alice.arn, Type: 'STANDARD', Content: `with members ${i} é 😀`,
            Metadata: `meta\t"${i}"\\`, ContentType: 'text/markdown',
            MessageAttributes: { color: { StringValues: ['red', 'ü'] } },
          },
        };
      case 2:
        return { client: w.bobClient, input: { ...base, ChimeBearer: w.bob.arn, Type: 'STANDARD', Content: `own key\n${i}\u2028` } };
      case 3:
        return { client: ctx.msg, input: { ...base, ChimeBearer: w.bot, Type: 'STANDARD', Content: `bot ${i}` } };
      default:
        return { client: ctx.msg, input: { ...base, ChimeBearer: w.bob.arn, Type: 'CONTROL', Content: `ctl ${i}` } };
    }
  });
}

test('a batch of plain sends written from columns stores every member as sent and answers each request with its own message', async () => {
  const w = await world();
  const items = inputs(w, 24, 'c');
  const columns = await metric('carillon_write_batches_columns_total');
  const declined = await metric('carillon_write_batches_columns_declined_total');
  const results = await asOneBatch(w.channel, items.map(({ client, input }) => () => client.send(new SendChannelMessageCommand(input))));
  assert.ok((await metric('carillon_write_batches_columns_total')) > columns, 'no batch was written from columns');
  assert.equal(await metric('carillon_write_batches_columns_declined_total'), declined, 'a batch of good sends was declined');
  const ids = new Set();
  for (const [i, r] of results.entries()) {
    assert.ok(r.ok, `send ${i} failed: ${r.err?.name} ${r.err?.message}`);
    assert.equal(r.ok.ChannelArn, w.channel);
    assert.equal(r.ok.Status?.Value, 'SENT');
    ids.add(r.ok.MessageId);
    const sent = items[i].input;
    const m = (await ctx.msg.send(new GetChannelMessageCommand({ ChannelArn: w.channel, MessageId: r.ok.MessageId, ChimeBearer: w.alice.arn }))).ChannelMessage;
    assert.equal(m.Content, sent.Content, `send ${i}: Content`);
    assert.equal(m.Type, sent.Type, `send ${i}: Type`);
    assert.equal(m.Metadata, sent.Metadata, `send ${i}: Metadata`);
    assert.equal(m.ContentType, sent.ContentType, `send ${i}: ContentType`);
    assert.deepEqual(m.MessageAttributes, sent.MessageAttributes, `send ${i}: MessageAttributes`);
    assert.equal(m.Sender.Arn, sent.ChimeBearer, `send ${i}: Sender`);
    assert.equal(m.Persistence, 'PERSISTENT');
  }
  assert.equal(ids.size, items.length, 'two requests were answered with one message');
  // one event each, in the order the messages were stored, carrying what GetChannelMessage returns
  const events = channelEvents(w.channel).filter((e) => e.event_type === 'CREATE_CHANNEL_MESSAGE');
  assert.equal(events.length, items.length, 'one event a message');
  const byId = new Map(events.map((e) => [e.payload.MessageId, e.payload]));
  for (const [i, r] of results.entries()) {
    const p = byId.get(r.ok.MessageId);
    assert.ok(p, `send ${i}: no event`);
    assert.equal(p.Content, items[i].input.Content, `send ${i}: the event's Content`);
    assert.equal(p.Sender.Arn, items[i].input.ChimeBearer, `send ${i}: the event's Sender`);
  }
  // the gateway computed each request key and message id: the database's formulas give the same
  // (carillon.request_key_of; carillon.message_id_at: the time's 12 hex digits, then the key's)
  const sent = results.map((r, i) => ({ id: r.ok.MessageId, token: items[i].input.ClientRequestToken, bearer: items[i].input.ChimeBearer }));
  const agreeing = sql(
    `select count(*) from jsonb_to_recordset(:'sent'::jsonb) as x(id text, token text, bearer text)
       join carillon.channel_messages m on m.channel_arn = :'ch' and m.message_id = x.id
      where m.request_key = carillon.request_key_of(:'ch', x.bearer, x.token)
        and m.message_id = left(x.id, 12) || left(replace(m.request_key::text, '-', ''), 20)`,
    { sent: JSON.stringify(sent), ch: w.channel },
  );
  assert.equal(agreeing, items.length, "a request key or message id is not the database's formula");
  // the gateway wrote each event document around its time and sender (src/api/send_batch.c), one
  // with MessageAttributes excepted: byte for byte what the database writes for the stored message
  const documents = sql(
    `select count(*) from carillon.events e
       join carillon.channel_messages m on m.channel_arn = e.channel_arn and m.message_id = e.payload_text::jsonb->>'MessageId'
       left join carillon.app_instance_users u on u.arn = m.sender_arn
       left join carillon.app_instance_bots b on b.arn = m.sender_arn
      where e.channel_arn = :'ch' and e.event_type = 'CREATE_CHANNEL_MESSAGE'
        and e.payload_text = carillon.sent_message_payload_of(m.channel_arn, m.message_id, m.content, m.metadata, m.type,
              to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
              case when u.arn is not null then jsonb_build_object('Arn', u.arn, 'Name', u.name)
                   else jsonb_build_object('Arn', b.arn, 'Name', b.name) end,
              m.attributes, m.content_type)`,
    { ch: w.channel },
  );
  assert.equal(documents, items.length, 'an event document is not the text the database writes for its message');
  // a retry of one of them (the item path) finds the message the batch stored
  const again = await items[1].client.send(new SendChannelMessageCommand(items[1].input));
  assert.equal(again.MessageId, results[1].ok.MessageId, 'a retry of a send from columns made another message');
});

// A batch sent as columns carries no events back in its answer (send_few's do): its session gets
// them only from the log, read when the batch's notification (the NOTIFY in its write statement,
// carillon_api.send_messages) wakes the listener. Moving that notification out of the transaction
// was measured and not kept (BENCHMARKS.md, issue 11 session 21); this holds whatever sends it.
test('a batch written from columns wakes the listeners: a session on the node gets every message of it, in order, without the poll', async () => {
  const w = await world();
  const rec = await rawSession(`127.0.0.1:${ctx.srv.port}`, w.bob.arn, ctx.srv.rootKey, { scheme: 'ws', label: 'cols-wake' });
  try {
    await rec.waitFor((x) => x.ofType('SESSION_ESTABLISHED').length === 1, 10000, 'SESSION_ESTABLISHED');
    const columns = await metric('carillon_write_batches_columns_total');
    const items = Array.from({ length: 20 }, (_, i) => ({
      ChannelArn: w.channel, ChimeBearer: w.alice.arn, Persistence: 'PERSISTENT', Type: 'STANDARD',
      Content: `woken ${i}`, ClientRequestToken: uniq(`wake${i}`),
    }));
    const results = await asOneBatch(w.channel, items.map((input) => () => ctx.msg.send(new SendChannelMessageCommand(input))));
    assert.ok((await metric('carillon_write_batches_columns_total')) > columns, 'no batch was written from columns');
    const ids = results.map((r, i) => {
      assert.ok(r.ok, `send ${i} failed: ${r.err?.name} ${r.err?.message}`);
      return r.ok.MessageId;
    });
    const got = () => rec.ofType('CREATE_CHANNEL_MESSAGE', w.channel).map((m) => m.payload?.MessageId);
    await rec.waitFor(() => ids.every((id) => got().includes(id)), 10000, 'every message of the batch');
    // in the log's order, each once
    const logged = channelEvents(w.channel).filter((e) => e.event_type === 'CREATE_CHANNEL_MESSAGE').map((e) => e.payload.MessageId);
    assert.deepEqual(got(), logged.filter((id) => got().includes(id)), 'not in the order of the log');
    assert.equal(new Set(got()).size, got().length, 'a message delivered twice');
  } finally {
    await rec.close();
  }
});

test('a batch of plain sends the database declines is answered request by request: the refused one refused, the others stored', async () => {
  const w = await world();
  const items = inputs(w, 14, 'd');
  // the seventh is a sender with no membership: the database declines the columns, and the batch
  // goes item by item
  items[6] = { client: ctx.msg, input: { ...items[6].input, ChimeBearer: w.outsider.arn, Type: 'STANDARD', Content: 'not a member' } };
  const declined = await metric('carillon_write_batches_columns_declined_total');
  const results = await asOneBatch(w.channel, items.map(({ client, input }) => () => client.send(new SendChannelMessageCommand(input))));
  assert.ok((await metric('carillon_write_batches_columns_declined_total')) > declined, 'the batch was not declined');
  for (const [i, r] of results.entries()) {
    if (i === 6) {
      await assertRejects(Promise.reject(r.err ?? new Error('stored')), 'ForbiddenException', 'the outsider');
      continue;
    }
    assert.ok(r.ok, `send ${i} failed: ${r.err?.name} ${r.err?.message}`);
    const m = (await ctx.msg.send(new GetChannelMessageCommand({ ChannelArn: w.channel, MessageId: r.ok.MessageId, ChimeBearer: w.alice.arn }))).ChannelMessage;
    assert.equal(m.Content, items[i].input.Content, `send ${i}: Content`);
  }
  assert.equal(channelEvents(w.channel).filter((e) => e.event_type === 'CREATE_CHANNEL_MESSAGE').length, items.length - 1);
});

test('a batch of plain sends with a retry and a token twice in it is answered as the item path answers: the retry with its stored message, the doubled token with one message, the others stored', async () => {
  const w = await world();
  const first = { ChannelArn: w.channel, ChimeBearer: w.alice.arn, Type: 'STANDARD', Content: 'stored before', Persistence: 'PERSISTENT', ClientRequestToken: uniq('r-first') };
  const stored = await ctx.msg.send(new SendChannelMessageCommand(first));
  const items = inputs(w, 14, 'r');
  // the batch is items 1-13 (asOneBatch sends item 0 first, alone): item 3 retries the stored
  // send, item 9 repeats item 8's request
  items[3] = { client: ctx.msg, input: first };
  items[9] = { ...items[8] };
  const declined = await metric('carillon_write_batches_columns_declined_total');
  const results = await asOneBatch(w.channel, items.map(({ client, input }) => () => client.send(new SendChannelMessageCommand(input))));
  assert.ok((await metric('carillon_write_batches_columns_declined_total')) > declined, 'the columns of a batch with a retry were not declined');
  for (const [i, r] of results.entries()) assert.ok(r.ok, `send ${i} failed: ${r.err?.name} ${r.err?.message}`);
  assert.equal(results[3].ok.MessageId, stored.MessageId, 'the retry made another message');
  assert.equal(results[9].ok.MessageId, results[8].ok.MessageId, 'a token twice in a batch made two messages');
  assert.equal(new Set(results.map((r) => r.ok.MessageId)).size, items.length - 1);
  // one message and one event each: the stored one, and 14 sends less the retry and the repeat
  const events = channelEvents(w.channel).filter((e) => e.event_type === 'CREATE_CHANNEL_MESSAGE');
  assert.equal(events.length, 1 + items.length - 2, 'events of the batch');
  assert.equal(sql(`select count(*) from carillon.channel_messages where channel_arn = :'ch'`, { ch: w.channel }), 1 + items.length - 2);
});
