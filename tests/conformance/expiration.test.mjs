// AppInstanceUser expiration (ExpirationSettings {ExpirationDays, ExpirationCriterion: CREATED_TIMESTAMP})
// is carried out by the janitor: the SQL function carillon.janitor(p_now timestamptz), which every
// server calls once a minute with now(). Here it is called through psql with a time in the future, so
// that days pass in an instant.
//
// The database is shared with the other test files (run one at a time): calling the janitor with a
// future time also expires other files' leftover users and forgets old idempotency records. Only this
// file's own AppInstances and users are asserted on.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CreateAppInstanceAdminCommand,
  CreateAppInstanceUserCommand,
  DescribeAppInstanceUserCommand,
  ListAppInstanceAdminsCommand,
  ListAppInstanceUserEndpointsCommand,
  ListAppInstanceUsersCommand,
  ListTagsForResourceCommand,
  PutAppInstanceUserExpirationSettingsCommand,
  RegisterAppInstanceUserEndpointCommand,
  TagResourceCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import { psql } from './lib/cli.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { PINPOINT_APP_ARN, assertRejects, uniq } from './lib/util.mjs';

const ctx = useCarillon();

const CREATED = 'CREATED_TIMESTAMP';

/** Run the janitor as of now() + `interval` (SQL interval text); returns how many users it deleted. */
async function janitorIn(interval) {
  const out = await psql(`select carillon.janitor(now() + interval '${interval}')`);
  assert.match(out, /^\d+$/, `carillon.janitor must return a count, got ${JSON.stringify(out)}`);
  return Number(out);
}

async function describeUser(arn) {
  return (await ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: arn }))).AppInstanceUser;
}

async function userArns(ai) {
  const out = await ctx.id.send(new ListAppInstanceUsersCommand({ AppInstanceArn: ai, MaxResults: 50 }));
  assert.equal(out.NextToken, undefined);
  return (out.AppInstanceUsers ?? []).map((u) => u.AppInstanceUserArn).sort();
}

async function adminArns(ai) {
  const out = await ctx.id.send(new ListAppInstanceAdminsCommand({ AppInstanceArn: ai, MaxResults: 50 }));
  assert.equal(out.NextToken, undefined);
  return (out.AppInstanceAdmins ?? []).map((a) => a.Admin.Arn).sort();
}

async function tagsOf(arn) {
  return (await ctx.id.send(new ListTagsForResourceCommand({ ResourceARN: arn }))).Tags ?? [];
}

async function endpointsOf(arn) {
  return (await ctx.id.send(new ListAppInstanceUserEndpointsCommand({ AppInstanceUserArn: arn }))).AppInstanceUserEndpoints ?? [];
}

async function makeAdmin(ai, userArn) {
  const out = await ctx.id.send(new CreateAppInstanceAdminCommand({ AppInstanceArn: ai, AppInstanceAdminArn: userArn }));
  assert.equal(out.$metadata.httpStatusCode, 201);
}

test('the janitor deletes users past ExpirationDays with their admin grants, tags and endpoints, and nobody else', { timeout: 60000 }, async () => {
  const ai = await ctx.newAppInstance();

  // u1: 1 day, given at creation, with tags, an endpoint and an admin grant
  const u1Id = uniq('exp1');
  const u1 = await ctx.newUser(ai, {
    AppInstanceUserId: u1Id,
    Name: 'one day',
    ExpirationSettings: { ExpirationDays: 1, ExpirationCriterion: CREATED },
    Tags: [{ Key: 'created-with', Value: 'tag' }],
  });
  await ctx.id.send(new TagResourceCommand({ ResourceARN: u1.arn, Tags: [{ Key: 'added', Value: 'later' }] }));
  const ep = await ctx.id.send(
    new RegisterAppInstanceUserEndpointCommand({
      AppInstanceUserArn: u1.arn,
      Type: 'GCM',
      ResourceArn: PINPOINT_APP_ARN,
      EndpointAttributes: { DeviceToken: `tok-${uniq('')}` },
    }),
  );
  assert.equal(ep.$metadata.httpStatusCode, 201);
  await makeAdmin(ai, u1.arn);

  // u1p: 1 day, set afterwards with PutAppInstanceUserExpirationSettings
  const u1p = await ctx.newUser(ai, { Name: 'one day, put' });
  const put = await ctx.id.send(
    new PutAppInstanceUserExpirationSettingsCommand({ AppInstanceUserArn: u1p.arn, ExpirationSettings: { ExpirationDays: 1, ExpirationCriterion: CREATED } }),
  );
  assert.deepEqual(put.ExpirationSettings, { ExpirationDays: 1, ExpirationCriterion: CREATED });

  // u5: 5 days, an admin, tagged
  const u5 = await ctx.newUser(ai, { Name: 'five days', ExpirationSettings: { ExpirationDays: 5, ExpirationCriterion: CREATED } });
  await ctx.id.send(new TagResourceCommand({ ResourceARN: u5.arn, Tags: [{ Key: 'keep', Value: 'me' }] }));
  await makeAdmin(ai, u5.arn);

  // u0: no settings; u0x: had 1 day, then the settings were removed (Put without ExpirationSettings)
  const u0 = await ctx.newUser(ai, { Name: 'forever' });
  const u0x = await ctx.newUser(ai, { Name: 'reprieved', ExpirationSettings: { ExpirationDays: 1, ExpirationCriterion: CREATED } });
  const cleared = await ctx.id.send(new PutAppInstanceUserExpirationSettingsCommand({ AppInstanceUserArn: u0x.arn }));
  assert.equal(cleared.ExpirationSettings, undefined, 'Put without ExpirationSettings removes them');

  const everyone = [u1.arn, u1p.arn, u5.arn, u0.arn, u0x.arn].sort();
  assert.deepEqual(await userArns(ai), everyone);
  assert.deepEqual(await adminArns(ai), [u1.arn, u5.arn].sort());

  // 23 hours on: nobody of ours has been around for a day yet
  await janitorIn('23 hours');
  assert.deepEqual(await userArns(ai), everyone, 'after 23 hours every user is still there');
  assert.deepEqual(await adminArns(ai), [u1.arn, u5.arn].sort());

  // 2 days on: the two 1-day users are gone
  const n2 = await janitorIn('2 days');
  assert.ok(n2 >= 2, `the janitor must report at least our 2 expired users, reported ${n2}`);
  await assertRejects(ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u1.arn })), 'NotFoundException', 'u1 (1 day) after 2 days');
  await assertRejects(ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u1p.arn })), 'NotFoundException', 'u1p (1 day, put) after 2 days');
  assert.deepEqual(await userArns(ai), [u5.arn, u0.arn, u0x.arn].sort(), 'ListAppInstanceUsers after 2 days');

  const d5 = await describeUser(u5.arn);
  assert.equal(d5.Name, 'five days');
  assert.deepEqual(d5.ExpirationSettings, { ExpirationDays: 5, ExpirationCriterion: CREATED });
  assert.deepEqual(await tagsOf(u5.arn), [{ Key: 'keep', Value: 'me' }], "u5's tags stay");
  const d0 = await describeUser(u0.arn);
  assert.equal(d0.Name, 'forever');
  assert.equal(d0.ExpirationSettings, undefined);
  assert.equal((await describeUser(u0x.arn)).ExpirationSettings, undefined);

  // the expired user's admin grant is gone; u5's stays
  assert.deepEqual(await adminArns(ai), [u5.arn], 'ListAppInstanceAdmins after 2 days');

  // a new user with u1's id starts clean: no tags, no endpoints, not an admin
  const again = await ctx.id.send(new CreateAppInstanceUserCommand({ AppInstanceArn: ai, AppInstanceUserId: u1Id, Name: 'one day, again' }));
  assert.equal(again.AppInstanceUserArn, u1.arn);
  assert.deepEqual(await tagsOf(u1.arn), [], "the expired user's tags must be gone");
  assert.deepEqual(await endpointsOf(u1.arn), [], "the expired user's endpoints must be gone");
  assert.deepEqual(await adminArns(ai), [u5.arn], 'the re-created user is not an admin');
  const re = await describeUser(u1.arn);
  assert.equal(re.Name, 'one day, again');
  assert.equal(re.ExpirationSettings, undefined);

  // 6 days on: the 5-day user goes too; users without settings stay
  const n6 = await janitorIn('6 days');
  assert.ok(n6 >= 1, `the janitor must report at least our 5-day user, reported ${n6}`);
  await assertRejects(ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u5.arn })), 'NotFoundException', 'u5 (5 days) after 6 days');
  assert.deepEqual(await userArns(ai), [u1.arn, u0.arn, u0x.arn].sort(), 'ListAppInstanceUsers after 6 days');
  assert.deepEqual(await adminArns(ai), [], 'no admins left');

  // and the janitor is idempotent: nothing of ours left to expire
  await janitorIn('6 days');
  assert.deepEqual(await userArns(ai), [u1.arn, u0.arn, u0x.arn].sort(), 'a second run changes nothing');
});

test('ExpirationDays counts from the creation time, not from when the settings were put', { timeout: 60000 }, async () => {
  const ai = await ctx.newAppInstance();
  const u = await ctx.newUser(ai, { Name: 'late settings' });
  // backdate the creation by 3 days, as if the user had been created then
  await psql(`update carillon.app_instance_users set created_at = created_at - interval '3 days' where arn = '${u.arn.replace(/'/g, "''")}'`);
  await ctx.id.send(
    new PutAppInstanceUserExpirationSettingsCommand({ AppInstanceUserArn: u.arn, ExpirationSettings: { ExpirationDays: 2, ExpirationCriterion: CREATED } }),
  );
  const stay = await ctx.newUser(ai, { Name: 'recent', ExpirationSettings: { ExpirationDays: 2, ExpirationCriterion: CREATED } });
  await janitorIn('1 second');
  await assertRejects(ctx.id.send(new DescribeAppInstanceUserCommand({ AppInstanceUserArn: u.arn })), 'NotFoundException', 'created 3 days ago, 2 days to live');
  assert.deepEqual(await userArns(ai), [stay.arn], 'the recent user stays');
});
