// AppInstanceUser operations: Create / Describe / List / Update / Delete,
// PutAppInstanceUserExpirationSettings, validation, idempotency and pagination.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateAppInstanceUserCommand,
  DeleteAppInstanceUserCommand,
  DescribeAppInstanceUserCommand,
  ListAppInstanceUsersCommand,
  PutAppInstanceUserExpirationSettingsCommand,
  UpdateAppInstanceUserCommand,
  paginateListAppInstanceUsers,
} from '@aws-sdk/client-chime-sdk-identity';
import { useCarillon } from './lib/fixture.mjs';
import {
  NASTY_STRINGS,
  assertRecentDate,
  assertRejects,
  collectPages,
  missingAppInstanceArn,
  uniq,
} from './lib/util.mjs';

const ctx = useCarillon();
const t0 = Date.now();

async function listAllUsers(appInstanceArn) {
  const all = [];
  for await (const page of paginateListAppInstanceUsers({ client: ctx.id, pageSize: 50 }, { AppInstanceArn: appInstanceArn })) {
    assert.equal(page.AppInstanceArn, appInstanceArn, 'ListAppInstanceUsers must echo AppInstanceArn');
    all.push(...(page.AppInstanceUsers ?? []));
  }
  return all;
}

function create(appInstanceArn, input) {
  return ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: appInstanceArn, ...input }));
}

test('CreateAppInstanceUser returns 201 and <AppInstanceArn>/user/<AppInstanceUserId>; Describe returns it', async () => {
  const ai = await ctx.newAppInstance();
  const userId = uniq('alice');
  const out = await create(ai, { AppInstanceUserId: userId, Name: 'Alice Example', Metadata: 'role=tester' });
  assert.equal(out.$metadata.httpStatusCode, 201);
  assert.equal(out.AppInstanceUserArn, `${ai}/user/${userId}`);

  const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: out.AppInstanceUserArn }));
  assert.equal(d.$metadata.httpStatusCode, 200);
  const u = d.AppInstanceUser;
  assert.equal(u.AppInstanceUserArn, out.AppInstanceUserArn);
  assert.equal(u.Name, 'Alice Example');
  assert.equal(u.Metadata, 'role=tester');
  assert.equal(u.ExpirationSettings, undefined, 'no ExpirationSettings were given');
  assertRecentDate(u.CreatedTimestamp, t0, 'CreatedTimestamp');
  assertRecentDate(u.LastUpdatedTimestamp, t0, 'LastUpdatedTimestamp');
  assert.ok(u.LastUpdatedTimestamp.getTime() >= u.CreatedTimestamp.getTime());
});

test('AppInstanceUserId may use every allowed character; the ARN label round-trips through the path', async () => {
  const ai = await ctx.newAppInstance();
  const userId = `a:b-c_d.e@f${uniq('').slice(1)}`;
  const out = await create(ai, { AppInstanceUserId: userId, Name: 'punctuated' });
  assert.equal(out.AppInstanceUserArn, `${ai}/user/${userId}`);
  const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: out.AppInstanceUserArn }));
  assert.equal(d.AppInstanceUser.AppInstanceUserArn, out.AppInstanceUserArn);
  assert.equal(d.AppInstanceUser.Name, 'punctuated');
  // 1 and 64 characters are the bounds
  const one = await create(ai, { AppInstanceUserId: 'z', Name: 'one char' });
  assert.equal(one.AppInstanceUserArn, `${ai}/user/z`);
  const id64 = ('u' + uniq('').slice(1)).padEnd(64, 'x');
  assert.equal(id64.length, 64);
  const long = await create(ai, { AppInstanceUserId: id64, Name: 'sixty-four' });
  assert.equal(long.AppInstanceUserArn, `${ai}/user/${id64}`);
});

test('CreateAppInstanceUser: bad AppInstanceUserId values are BadRequest', async () => {
  const ai = await ctx.newAppInstance();
  const bad = {
    'with a space': 'has space',
    'with a slash': 'a/b',
    'empty': '',
    '65 characters': 'u'.repeat(65),
    'leading dash': '-abc',
    'trailing dot': 'abc.',
    'percent': 'a%b',
    'non-ASCII': 'usér',
  };
  for (const [what, id] of Object.entries(bad)) {
    await assertRejects(create(ai, { AppInstanceUserId: id, Name: 'x' }), 'BadRequestException', `AppInstanceUserId ${what}`);
  }
  await assertRejects(create(ai, { Name: 'no id' }), 'BadRequestException', 'missing AppInstanceUserId');
  const users = await listAllUsers(ai);
  assert.equal(users.length, 0, 'no user may have been created by the rejected calls');
});

test('CreateAppInstanceUser: Name and Metadata validation', async () => {
  const ai = await ctx.newAppInstance();
  await assertRejects(create(ai, { AppInstanceUserId: uniq('u') }), 'BadRequestException', 'missing Name');
  await assertRejects(create(ai, { AppInstanceUserId: uniq('u'), Name: '' }), 'BadRequestException', 'empty Name');
  await assertRejects(create(ai, { AppInstanceUserId: uniq('u'), Name: '   ' }), 'BadRequestException', 'whitespace-only Name');
  await assertRejects(create(ai, { AppInstanceUserId: uniq('u'), Name: 'n'.repeat(101) }), 'BadRequestException', 'Name of 101');
  await assertRejects(
    create(ai, { AppInstanceUserId: uniq('u'), Name: 'ok', Metadata: 'm'.repeat(1025) }),
    'BadRequestException',
    'Metadata of 1025',
  );
  const ok = await ctx.newUser(ai, { Name: 'n'.repeat(100), Metadata: 'm'.repeat(1024) });
  const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: ok.arn }));
  assert.equal(d.AppInstanceUser.Name, 'n'.repeat(100));
  assert.equal(d.AppInstanceUser.Metadata, 'm'.repeat(1024));
});

test('CreateAppInstanceUser: AppInstanceArn missing, malformed or unknown', async () => {
  await assertRejects(
    ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceUserId: uniq('u'), Name: 'x' })),
    'BadRequestException',
    'missing AppInstanceArn',
  );
  await assertRejects(create('not-an-arn', { AppInstanceUserId: uniq('u'), Name: 'x' }), 'BadRequestException', 'malformed AppInstanceArn');
  await assertRejects(create(missingAppInstanceArn(), { AppInstanceUserId: uniq('u'), Name: 'x' }), 'NotFoundException', 'unknown AppInstance');
});

test('duplicate AppInstanceUserId in one AppInstance is Conflict; the same id in another AppInstance is fine', async () => {
  const a = await ctx.newAppInstance();
  const b = await ctx.newAppInstance();
  const id = uniq('dup');
  await create(a, { AppInstanceUserId: id, Name: 'first' });
  await assertRejects(create(a, { AppInstanceUserId: id, Name: 'second' }), 'ConflictException');
  const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: `${a}/user/${id}` }));
  assert.equal(d.AppInstanceUser.Name, 'first', 'the conflicting create must not overwrite the user');
  const other = await create(b, { AppInstanceUserId: id, Name: 'in b' });
  assert.equal(other.AppInstanceUserArn, `${b}/user/${id}`);
  const inB = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: other.AppInstanceUserArn }));
  assert.equal(inB.AppInstanceUser.Name, 'in b');
});

test('DescribeAppInstanceUser: unknown user NotFound, malformed ARN BadRequest', async () => {
  const ai = await ctx.newAppInstance();
  await assertRejects(ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: `${ai}/user/nobody-${uniq('')}` })), 'NotFoundException');
  await assertRejects(
    ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: `${missingAppInstanceArn()}/user/x` })),
    'NotFoundException',
    'user of an unknown AppInstance',
  );
  await assertRejects(ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: 'not-an-arn' })), 'BadRequestException');
});

test('UpdateAppInstanceUser changes Name, Metadata and LastUpdatedTimestamp', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai, { Name: 'Before', Metadata: 'before' });
  const d0 = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  await sleep(1100);
  const out = await ctx.id.send(new UpdateAppInstanceUserCommand({ AppInstanceUserArn: u.arn, Name: 'After', Metadata: 'after' }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.equal(out.AppInstanceUserArn, u.arn);
  const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  assert.equal(d.AppInstanceUser.Name, 'After');
  assert.equal(d.AppInstanceUser.Metadata, 'after');
  assert.equal(d.AppInstanceUser.CreatedTimestamp.getTime(), d0.AppInstanceUser.CreatedTimestamp.getTime());
  assert.ok(
    d.AppInstanceUser.LastUpdatedTimestamp.getTime() > d0.AppInstanceUser.LastUpdatedTimestamp.getTime(),
    'LastUpdatedTimestamp must advance on update',
  );
  assert.ok(d.AppInstanceUser.LastUpdatedTimestamp.getTime() >= d.AppInstanceUser.CreatedTimestamp.getTime());
  const listed = (await listAllUsers(ai)).find((s) => s.AppInstanceUserArn === u.arn);
  assert.deepEqual({ ...listed }, { AppInstanceUserArn: u.arn, Name: 'After', Metadata: 'after' });
});

test('UpdateAppInstanceUser validation and NotFound', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai, { Name: 'Keep', Metadata: 'keep' });
  await assertRejects(ctx.id.send(new UpdateAppInstanceUserCommand({ AppInstanceUserArn: u.arn, Name: 'x' })), 'BadRequestException', 'Metadata required');
  await assertRejects(ctx.id.send(new UpdateAppInstanceUserCommand({ AppInstanceUserArn: u.arn, Metadata: 'x' })), 'BadRequestException', 'Name required');
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceUserCommand({ AppInstanceUserArn: u.arn, Name: 'n'.repeat(101), Metadata: '' })),
    'BadRequestException',
    'Name of 101',
  );
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceUserCommand({ AppInstanceUserArn: u.arn, Name: 'ok', Metadata: 'm'.repeat(1025) })),
    'BadRequestException',
    'Metadata of 1025',
  );
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceUserCommand({ AppInstanceUserArn: `${ai}/user/ghost-${uniq('')}`, Name: 'x', Metadata: 'y' })),
    'NotFoundException',
  );
  const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  assert.equal(d.AppInstanceUser.Name, 'Keep');
  assert.equal(d.AppInstanceUser.Metadata, 'keep');
});

test('user Name/Metadata with SQL metacharacters and unicode round-trip unchanged', async () => {
  const ai = await ctx.newAppInstance();
  for (const s of NASTY_STRINGS) {
    const u = await ctx.newUser(ai, { Name: s, Metadata: `${s}${s}` });
    const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
    assert.equal(d.AppInstanceUser.Name, s);
    assert.equal(d.AppInstanceUser.Metadata, `${s}${s}`);
  }
  const all = await listAllUsers(ai);
  assert.deepEqual(all.map((x) => x.Name).sort(), [...NASTY_STRINGS].sort());
});

test('DeleteAppInstanceUser returns 204; the user is then NotFound, unlisted, and its id reusable', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai, { Name: 'Doomed' });
  const keep = await ctx.newUser(ai, { Name: 'Stays' });
  const del = await ctx.id.send(new DeleteAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  assert.equal(del.$metadata.httpStatusCode, 204);
  await assertRejects(ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn })), 'NotFoundException');
  await assertRejects(
    ctx.id.send(new UpdateAppInstanceUserCommand({ AppInstanceUserArn: u.arn, Name: 'x', Metadata: 'y' })),
    'NotFoundException',
    'update after delete',
  );
  const arns = (await listAllUsers(ai)).map((s) => s.AppInstanceUserArn);
  assert.deepEqual(arns, [keep.arn]);
  const again = await create(ai, { AppInstanceUserId: u.id, Name: 'Reborn' });
  assert.equal(again.AppInstanceUserArn, u.arn);
  const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  assert.equal(d.AppInstanceUser.Name, 'Reborn');
});

test('ExpirationSettings: set on create, changed by Put, removed by Put without settings', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai, { ExpirationSettings: { ExpirationDays: 1, ExpirationCriterion: 'CREATED_TIMESTAMP' } });
  let d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  assert.deepEqual({ ...d.AppInstanceUser.ExpirationSettings }, { ExpirationDays: 1, ExpirationCriterion: 'CREATED_TIMESTAMP' });

  const put = await ctx.id.send(
    new PutAppInstanceUserExpirationSettingsCommand({
      AppInstanceUserArn: u.arn,
      ExpirationSettings: { ExpirationDays: 30, ExpirationCriterion: 'CREATED_TIMESTAMP' },
    }),
  );
  assert.equal(put.$metadata.httpStatusCode, 200);
  assert.equal(put.AppInstanceUserArn, u.arn);
  assert.deepEqual({ ...put.ExpirationSettings }, { ExpirationDays: 30, ExpirationCriterion: 'CREATED_TIMESTAMP' });
  d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  assert.deepEqual({ ...d.AppInstanceUser.ExpirationSettings }, { ExpirationDays: 30, ExpirationCriterion: 'CREATED_TIMESTAMP' });

  const removed = await ctx.id.send(new PutAppInstanceUserExpirationSettingsCommand({ AppInstanceUserArn: u.arn }));
  assert.equal(removed.$metadata.httpStatusCode, 200);
  assert.equal(removed.AppInstanceUserArn, u.arn);
  assert.equal(removed.ExpirationSettings, undefined);
  d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  assert.equal(d.AppInstanceUser.ExpirationSettings, undefined, 'Put without ExpirationSettings must remove them');

  // and set again on a user created without them
  const v = await ctx.newUser(ai);
  await ctx.id.send(
    new PutAppInstanceUserExpirationSettingsCommand({
      AppInstanceUserArn: v.arn,
      ExpirationSettings: { ExpirationDays: 5475, ExpirationCriterion: 'CREATED_TIMESTAMP' },
    }),
  );
  d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: v.arn }));
  assert.deepEqual({ ...d.AppInstanceUser.ExpirationSettings }, { ExpirationDays: 5475, ExpirationCriterion: 'CREATED_TIMESTAMP' });
});

test('ExpirationSettings validation', async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai);
  const bad = {
    'ExpirationDays 0': { ExpirationDays: 0, ExpirationCriterion: 'CREATED_TIMESTAMP' },
    'ExpirationDays 5476': { ExpirationDays: 5476, ExpirationCriterion: 'CREATED_TIMESTAMP' },
    'messaging-only criterion': { ExpirationDays: 1, ExpirationCriterion: 'LAST_MESSAGE_TIMESTAMP' },
    'unknown criterion': { ExpirationDays: 1, ExpirationCriterion: 'BOGUS' },
    'missing criterion': { ExpirationDays: 1 },
    'missing days': { ExpirationCriterion: 'CREATED_TIMESTAMP' },
  };
  for (const [what, es] of Object.entries(bad)) {
    await assertRejects(
      ctx.id.send(new PutAppInstanceUserExpirationSettingsCommand({ AppInstanceUserArn: u.arn, ExpirationSettings: es })),
      'BadRequestException',
      `Put ${what}`,
    );
    await assertRejects(create(ai, { AppInstanceUserId: uniq('u'), Name: 'x', ExpirationSettings: es }), 'BadRequestException', `Create ${what}`);
  }
  await assertRejects(
    ctx.id.send(
      new PutAppInstanceUserExpirationSettingsCommand({
        AppInstanceUserArn: `${ai}/user/ghost-${uniq('')}`,
        ExpirationSettings: { ExpirationDays: 1, ExpirationCriterion: 'CREATED_TIMESTAMP' },
      }),
    ),
    'NotFoundException',
  );
  const d = await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn }));
  assert.equal(d.AppInstanceUser.ExpirationSettings, undefined);
});

test('ClientRequestToken: same token + same input returns the same user, created once; different input is Conflict', async () => {
  const ai = await ctx.newAppInstance();
  const token = randomUUID();
  const id = uniq('idem');
  const input = { AppInstanceUserId: id, Name: 'Idem', Metadata: 'm', ClientRequestToken: token };
  const a = await create(ai, input);
  const b = await create(ai, input);
  assert.equal(b.AppInstanceUserArn, a.AppInstanceUserArn);
  assert.ok([200, 201].includes(b.$metadata.httpStatusCode));
  const users = await listAllUsers(ai);
  assert.equal(users.length, 1);
  await assertRejects(create(ai, { ...input, Name: 'Different' }), 'ConflictException', 'same token, different Name');
  await assertRejects(create(ai, { ...input, AppInstanceUserId: uniq('other') }), 'ConflictException', 'same token, different id');
  assert.equal((await listAllUsers(ai)).length, 1);
});

test('ListAppInstanceUsers pagination: 5 users, MaxResults=2', async () => {
  const ai = await ctx.newAppInstance();
  const mine = [];
  for (let i = 0; i < 5; i++) mine.push((await ctx.newUser(ai, { Name: `Pager ${i}`, Metadata: `m${i}` })).arn);
  const { items, pages } = await collectPages(
    (tok) => ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: ai, MaxResults: 2, NextToken: tok })),
    (o) => o.AppInstanceUsers,
    2,
  );
  assert.deepEqual(pages.map((p) => p.count), [2, 2, 1]);
  assert.equal(pages[2].nextToken, undefined);
  const arns = items.map((s) => s.AppInstanceUserArn);
  assert.equal(new Set(arns).size, 5);
  assert.deepEqual([...arns].sort(), [...mine].sort());
  for (const s of items) {
    const i = mine.indexOf(s.AppInstanceUserArn);
    assert.equal(s.Name, `Pager ${i}`);
    assert.equal(s.Metadata, `m${i}`);
  }
  // SDK paginator
  const seen = [];
  let n = 0;
  for await (const page of paginateListAppInstanceUsers({ client: ctx.id, pageSize: 2 }, { AppInstanceArn: ai })) {
    n++;
    seen.push(...page.AppInstanceUsers.map((s) => s.AppInstanceUserArn));
  }
  assert.equal(n, 3);
  assert.deepEqual([...seen].sort(), [...mine].sort());
  // exactly MaxResults items: one page, no NextToken
  const five = await ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: ai, MaxResults: 5 }));
  assert.equal(five.AppInstanceUsers.length, 5);
  assert.equal(five.NextToken, undefined, 'no NextToken when everything fits');
});

test('ListAppInstanceUsers: empty AppInstance, users of other AppInstances not listed', async () => {
  const a = await ctx.newAppInstance();
  const b = await ctx.newAppInstance();
  await ctx.newUser(a);
  const out = await ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: b }));
  assert.equal(out.$metadata.httpStatusCode, 200);
  assert.equal(out.AppInstanceArn, b);
  assert.deepEqual(out.AppInstanceUsers ?? [], []);
  assert.equal(out.NextToken, undefined);
});

test('ListAppInstanceUsers: bad parameters are BadRequest, unknown AppInstance is NotFound', async () => {
  const a = await ctx.newAppInstance();
  const b = await ctx.newAppInstance();
  for (let i = 0; i < 3; i++) {
    await ctx.newUser(a);
    await ctx.newUser(b);
  }
  await assertRejects(ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: a, MaxResults: 0 })), 'BadRequestException', 'MaxResults 0');
  await assertRejects(ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: a, MaxResults: 51 })), 'BadRequestException', 'MaxResults 51');
  await assertRejects(ctx.id.send(new ListAppInstanceUsersCommand({})), 'BadRequestException', 'missing app-instance-arn');
  await assertRejects(ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: 'not-an-arn' })), 'BadRequestException', 'malformed ARN');
  await assertRejects(ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: missingAppInstanceArn() })), 'NotFoundException', 'unknown AppInstance');
  await assertRejects(
    ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: a, NextToken: 'not-a-real-token' })),
    'BadRequestException',
    'garbage NextToken',
  );
  await assertRejects(
    ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: a, NextToken: 'x'.repeat(3000) })),
    'BadRequestException',
    '3000-char NextToken',
  );
  const first = await ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: a, MaxResults: 1 }));
  assert.equal(typeof first.NextToken, 'string');
  await assertRejects(
    ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: b, MaxResults: 1, NextToken: first.NextToken })),
    'BadRequestException',
    "NextToken of AppInstance A used for B",
  );
  // the token still works where it belongs
  const second = await ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: a, MaxResults: 1, NextToken: first.NextToken }));
  assert.equal(second.AppInstanceUsers.length, 1);
  assert.notEqual(second.AppInstanceUsers[0].AppInstanceUserArn, first.AppInstanceUsers[0].AppInstanceUserArn);
});
