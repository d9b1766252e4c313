// The Pinpoint-compatible subset (docs/push.md) through the stock @aws-sdk/client-pinpoint: apps,
// push channels with their secrets validated, sealed at rest and never returned, the endpoint
// registry, Pinpoint-shaped errors ({"Message", "RequestID"} + x-amzn-ErrorType), the
// "not implemented" answer for the rest of Pinpoint, the `mobiletargeting` signing scope, admin-only
// access, and the INVALID_PINPOINT_ARN state of Chime AppInstanceUserEndpoints.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  CreateAppCommand,
  DeleteApnsChannelCommand,
  DeleteApnsSandboxChannelCommand,
  DeleteApnsVoipChannelCommand,
  DeleteApnsVoipSandboxChannelCommand,
  DeleteAppCommand,
  DeleteEndpointCommand,
  DeleteGcmChannelCommand,
  DeleteUserEndpointsCommand,
  GetApnsChannelCommand,
  GetApnsSandboxChannelCommand,
  GetApnsVoipChannelCommand,
  GetApnsVoipSandboxChannelCommand,
  GetAppCommand,
  GetAppsCommand,
  GetCampaignsCommand,
  GetChannelsCommand,
  GetEndpointCommand,
  GetGcmChannelCommand,
  GetUserEndpointsCommand,
  PinpointClient,
  UpdateApnsChannelCommand,
  UpdateApnsSandboxChannelCommand,
  UpdateApnsVoipChannelCommand,
  UpdateApnsVoipSandboxChannelCommand,
  UpdateEndpointCommand,
  UpdateEndpointsBatchCommand,
  UpdateGcmChannelCommand,
} from '@aws-sdk/client-pinpoint';
import {
  DescribeAppInstanceUserEndpointCommand,
  ListAppInstanceUserEndpointsCommand,
  RegisterAppInstanceUserEndpointCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import { psql } from './lib/cli.mjs';
import { mintUserCredentials, signedFetch } from './lib/clients.mjs';
import { useCarillon } from './lib/fixture.mjs';
import { ACCOUNT_ID, REGION } from './lib/server.mjs';
import { assertRejects, uniq } from './lib/util.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const ctx = useCarillon();

function pinpoint(creds = ctx.srv.rootKey) {
  return new PinpointClient({
    endpoint: ctx.srv.endpoint,
    region: ctx.srv.region,
    credentials: {
      accessKeyId: creds.accessKeyId,
      secretAccessKey: creds.secretAccessKey,
      ...(creds.sessionToken !== undefined ? { sessionToken: creds.sessionToken } : {}),
    },
    maxAttempts: 1,
  });
}

// Pinpoint's error shapes: each a modeled status, the body {"Message", "RequestID"}.
const PINPOINT_ERRORS = {
  BadRequestException: 400,
  ForbiddenException: 403,
  NotFoundException: 404,
  MethodNotAllowedException: 405,
  PayloadTooLargeException: 413,
  TooManyRequestsException: 429,
  InternalServerErrorException: 500,
};

/** The call must fail with Pinpoint error `name`, its status, Message and RequestID. Returns it. */
async function rejectsPinpoint(promise, name, what = '', messageRe = null) {
  let result;
  try {
    result = await promise;
  } catch (err) {
    const label = what ? `${what}: ` : '';
    assert.equal(err?.name, name, `${label}expected ${name}, got ${err?.name}: ${err?.message}`);
    assert.equal(err.$metadata?.httpStatusCode, PINPOINT_ERRORS[name], `${label}HTTP status of ${name}`);
    assert.equal(typeof err.message, 'string', `${label}Message`);
    assert.ok(err.message.length > 0, `${label}Message must say why`);
    assert.match(err.RequestID ?? '', /^[0-9a-f-]{36}$/, `${label}RequestID in the body`);
    assert.equal(err.RequestID, err.$metadata.requestId, `${label}RequestID is the x-amzn-RequestId`);
    if (messageRe) assert.match(err.message, messageRe, `${label}Message`);
    return err;
  }
  assert.fail(`${what ? what + ': ' : ''}expected ${name}, but the call succeeded: ${JSON.stringify({ ...result, $metadata: undefined })}`);
}

// Keys and certificates made for this run.
const tmp = mkdtempSync(join(tmpdir(), 'carillon-pinpoint-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const pem = (k) => k.export({ type: 'pkcs8', format: 'pem' });
const P256 = pem(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
const P384 = pem(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey);
const RSA = pem(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
const BUNDLE = 'com.example.carillon';
function selfSigned(name, subject) {
  const key = join(tmp, `${name}.key`);
  const crt = join(tmp, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '2', '-subj', subject, '-keyout', key, '-out', crt], { stdio: 'pipe' });
  return { cert: readFileSync(crt, 'utf8'), key: readFileSync(key, 'utf8') };
}
const CERT = selfSigned('apns', `/UID=${BUNDLE}/CN=Apple Push Services: ${BUNDLE}`);
const OTHER = selfSigned('other', '/CN=other');
const serviceJson = (over = {}) =>
  JSON.stringify({
    type: 'service_account',
    project_id: 'carillon-test-project',
    private_key_id: 'abc123',
    private_key: RSA,
    client_email: 'push@carillon-test-project.iam.gserviceaccount.com',
    token_uri: 'https://oauth2.googleapis.com/token',
    ...over,
  });
const SECRET_MARKERS = ['PRIVATE KEY', 'BEGIN CERTIFICATE', 'client_email', 'private_key'];

const APNS_KINDS = [
  { platform: 'APNS', req: 'APNSChannelRequest', resp: 'APNSChannelResponse', Update: UpdateApnsChannelCommand, Get: GetApnsChannelCommand, Delete: DeleteApnsChannelCommand, path: 'apns' },
  { platform: 'APNS_SANDBOX', req: 'APNSSandboxChannelRequest', resp: 'APNSSandboxChannelResponse', Update: UpdateApnsSandboxChannelCommand, Get: GetApnsSandboxChannelCommand, Delete: DeleteApnsSandboxChannelCommand, path: 'apns_sandbox' },
  { platform: 'APNS_VOIP', req: 'APNSVoipChannelRequest', resp: 'APNSVoipChannelResponse', Update: UpdateApnsVoipChannelCommand, Get: GetApnsVoipChannelCommand, Delete: DeleteApnsVoipChannelCommand, path: 'apns_voip' },
  { platform: 'APNS_VOIP_SANDBOX', req: 'APNSVoipSandboxChannelRequest', resp: 'APNSVoipSandboxChannelResponse', Update: UpdateApnsVoipSandboxChannelCommand, Get: GetApnsVoipSandboxChannelCommand, Delete: DeleteApnsVoipSandboxChannelCommand, path: 'apns_voip_sandbox' },
];

async function newApp(name = uniq('pp-app'), tags) {
  const out = await pinpoint().send(new CreateAppCommand({ CreateApplicationRequest: { Name: name, ...(tags ? { tags } : {}) } }));
  assert.equal(out.$metadata.httpStatusCode, 201, 'CreateApp status');
  return out.ApplicationResponse;
}

/** The raw answer of a signed Pinpoint GET (mobiletargeting scope), to see exactly what goes out. */
function rawPinpoint(path, opts = {}) {
  return signedFetch(ctx.srv, { method: 'GET', path, service: 'mobiletargeting', ...opts });
}

/** What the database holds for a channel: {settings, secret}. */
async function storedChannel(appId, type) {
  const row = await psql(`select json_build_object('settings', settings, 'secret', secret)
                            from carillon.pinpoint_channels where app_id = '${appId}' and type = '${type}'`);
  return row ? JSON.parse(row) : null;
}

function assertNoSecrets(text, what) {
  for (const m of SECRET_MARKERS) assert.ok(!text.includes(m), `${what} must not carry ${m}: ${text.slice(0, 400)}`);
  for (const s of [P256, RSA, CERT.key, CERT.cert]) {
    const line = s.split('\n')[1];
    assert.ok(!text.includes(line), `${what} must not carry key or certificate material`);
  }
}

test('CreateApp, GetApp and DeleteApp: the payload is the whole body, the app an ARN under mobiletargeting', async () => {
  const name = uniq('pp-app');
  const app = await newApp(name, { team: 'mobile', env: 'test' });
  assert.match(app.Id, /^[0-9a-f]{32}$/, 'Id: 32 lowercase hex digits');
  assert.equal(app.Arn, `arn:aws:mobiletargeting:${REGION}:${ACCOUNT_ID}:apps/${app.Id}`);
  assert.equal(app.Name, name);
  assert.deepEqual(app.tags, { team: 'mobile', env: 'test' });
  assert.ok(Math.abs(Date.parse(app.CreationDate) - Date.now()) < 5 * 60 * 1000, `CreationDate ${app.CreationDate}`);

  const got = await pinpoint().send(new GetAppCommand({ ApplicationId: app.Id }));
  assert.equal(got.$metadata.httpStatusCode, 200);
  assert.deepEqual(got.ApplicationResponse, app);
  // The body on the wire is the ApplicationResponse itself (the payload trait), not {ApplicationResponse: ...}.
  const raw = await rawPinpoint(`/v1/apps/${app.Id}`);
  assert.equal(raw.status, 200, raw.body);
  assert.equal(raw.json.Id, app.Id);
  assert.equal(raw.json.ApplicationResponse, undefined);

  const deleted = await pinpoint().send(new DeleteAppCommand({ ApplicationId: app.Id }));
  assert.equal(deleted.$metadata.httpStatusCode, 200);
  assert.equal(deleted.ApplicationResponse.Id, app.Id);
  await rejectsPinpoint(pinpoint().send(new GetAppCommand({ ApplicationId: app.Id })), 'NotFoundException', 'GetApp after DeleteApp', new RegExp(app.Id));
  await rejectsPinpoint(pinpoint().send(new DeleteAppCommand({ ApplicationId: app.Id })), 'NotFoundException', 'DeleteApp twice');
  await rejectsPinpoint(pinpoint().send(new CreateAppCommand({ CreateApplicationRequest: { Name: '  ' } })), 'BadRequestException', 'blank Name');
  await rejectsPinpoint(pinpoint().send(new CreateAppCommand({ CreateApplicationRequest: {} })), 'BadRequestException', 'no Name', /Name/);
});

test('GetApps pages with PageSize and Token: every app once, a forged Token refused', async () => {
  const mine = new Set();
  for (let i = 0; i < 5; i++) mine.add((await newApp()).Id);
  const seen = new Set();
  let token;
  let pages = 0;
  do {
    const out = await pinpoint().send(new GetAppsCommand({ PageSize: '2', Token: token }));
    const items = out.ApplicationsResponse.Item;
    assert.ok(items.length <= 2, `a page holds at most PageSize items, got ${items.length}`);
    for (const a of items) {
      assert.ok(!seen.has(a.Id), `app ${a.Id} listed twice`);
      seen.add(a.Id);
    }
    token = out.ApplicationsResponse.NextToken;
    pages++;
  } while (token && pages < 1000);
  for (const id of mine) assert.ok(seen.has(id), `app ${id} must be listed`);
  assert.ok(pages >= 3, `5 apps at 2 a page take at least 3 pages, took ${pages}`);
  await rejectsPinpoint(pinpoint().send(new GetAppsCommand({ Token: 'forged' })), 'BadRequestException', 'forged Token');
  await rejectsPinpoint(pinpoint().send(new GetAppsCommand({ PageSize: '0' })), 'BadRequestException', 'PageSize 0', /PageSize/);
  await rejectsPinpoint(pinpoint().send(new GetAppsCommand({ PageSize: 'ten' })), 'BadRequestException', 'PageSize ten', /PageSize/);
});

test('APNs channels (all four): token key, certificate, disable, delete; the secrets are sealed at rest and never returned', async () => {
  const app = await newApp();
  for (const k of APNS_KINDS) {
    const what = k.platform;
    const up = await pinpoint().send(new k.Update({
      ApplicationId: app.Id,
      [k.req]: { TokenKey: P256, TokenKeyId: 'ABC123DEFG', TeamId: 'TEAM123456', BundleId: BUNDLE, Enabled: true },
    }));
    const c = up[k.resp];
    assert.equal(up.$metadata.httpStatusCode, 200, what);
    assert.equal(c.Platform, k.platform, `${what} Platform`);
    assert.equal(c.ApplicationId, app.Id, `${what} ApplicationId`);
    assert.equal(c.Enabled, true, `${what} Enabled`);
    assert.equal(c.HasTokenKey, true, `${what} HasTokenKey`);
    assert.equal(c.HasCredential, true, `${what} HasCredential`);
    assert.equal(c.DefaultAuthenticationMethod, 'TOKEN', `${what} DefaultAuthenticationMethod`);
    assert.equal(c.Version, 1, `${what} Version`);
    assert.ok(c.CreationDate && c.LastModifiedDate, `${what} dates`);
    assert.equal(c.TokenKey, undefined);

    const raw = await rawPinpoint(`/v1/apps/${app.Id}/channels/${k.path}`);
    assert.equal(raw.status, 200, `${what}: ${raw.body}`);
    assertNoSecrets(raw.body, `Get${what} body`);
    assert.deepEqual((await pinpoint().send(new k.Get({ ApplicationId: app.Id })))[k.resp], c, `${what} Get = Update`);

    let stored = await storedChannel(app.Id, k.platform);
    assert.ok(stored.secret && stored.secret.length > 40, `${what}: a sealed secret is stored`);
    assertNoSecrets(stored.secret + JSON.stringify(stored.settings), `${what} stored row`);
    assert.deepEqual(
      { BundleId: stored.settings.BundleId, TeamId: stored.settings.TeamId, TokenKeyId: stored.settings.TokenKeyId },
      { BundleId: BUNDLE, TeamId: 'TEAM123456', TokenKeyId: 'ABC123DEFG' },
      `${what} settings`,
    );

    // Disabling needs no credentials and keeps them.
    const off = (await pinpoint().send(new k.Update({ ApplicationId: app.Id, [k.req]: { Enabled: false } })))[k.resp];
    assert.equal(off.Enabled, false, `${what} disabled`);
    assert.equal(off.HasTokenKey, true, `${what} keeps its token key`);
    assert.equal(off.Version, 2, `${what} Version after an update`);
    assert.equal((await storedChannel(app.Id, k.platform)).secret, stored.secret, `${what}: the secret is kept`);

    // Certificate + key replace the token key; the BundleId defaults to the certificate's UID.
    const cert = (await pinpoint().send(new k.Update({
      ApplicationId: app.Id,
      [k.req]: { Certificate: CERT.cert, PrivateKey: CERT.key, Enabled: true },
    })))[k.resp];
    assert.equal(cert.HasTokenKey, false, `${what} certificate only`);
    assert.equal(cert.HasCredential, true, `${what} HasCredential`);
    assert.equal(cert.DefaultAuthenticationMethod, 'CERTIFICATE', `${what} method`);
    assert.equal(cert.Version, 3);
    stored = await storedChannel(app.Id, k.platform);
    assert.equal(stored.settings.BundleId, BUNDLE, `${what}: BundleId from the certificate UID`);
    assertNoSecrets(stored.secret + JSON.stringify(stored.settings), `${what} stored row`);
    await rejectsPinpoint(
      pinpoint().send(new k.Update({ ApplicationId: app.Id, [k.req]: { DefaultAuthenticationMethod: 'TOKEN' } })),
      'BadRequestException', `${what} TOKEN without a token key`, /TokenKey/);

    const del = (await pinpoint().send(new k.Delete({ ApplicationId: app.Id })))[k.resp];
    assert.equal(del.Platform, k.platform);
    assertNoSecrets(JSON.stringify(del), `Delete${what}`);
    await rejectsPinpoint(pinpoint().send(new k.Get({ ApplicationId: app.Id })), 'NotFoundException', `Get${what} after delete`);
    await rejectsPinpoint(pinpoint().send(new k.Delete({ ApplicationId: app.Id })), 'NotFoundException', `Delete${what} twice`);
    assert.equal(await storedChannel(app.Id, k.platform), null, `${what}: the row is gone`);
  }
});

test('GCM channel: an FCM v1 service-account JSON, ProjectId kept, the JSON never returned; ApiKey refused', async () => {
  const app = await newApp();
  const up = await pinpoint().send(new UpdateGcmChannelCommand({
    ApplicationId: app.Id,
    GCMChannelRequest: { ServiceJson: serviceJson(), DefaultAuthenticationMethod: 'TOKEN', Enabled: true },
  }));
  const c = up.GCMChannelResponse;
  assert.equal(c.Platform, 'GCM');
  assert.equal(c.HasCredential, true);
  assert.equal(c.HasFcmServiceCredentials, true);
  assert.equal(c.DefaultAuthenticationMethod, 'TOKEN');
  assert.equal(c.Enabled, true);
  assert.equal(c.Credential, undefined);
  const raw = await rawPinpoint(`/v1/apps/${app.Id}/channels/gcm`);
  assert.equal(raw.status, 200, raw.body);
  assertNoSecrets(raw.body, 'GetGcmChannel body');
  const stored = await storedChannel(app.Id, 'GCM');
  assert.equal(stored.settings.ProjectId, 'carillon-test-project');
  assertNoSecrets(stored.secret + JSON.stringify(stored.settings), 'GCM stored row');
  assert.deepEqual((await pinpoint().send(new GetGcmChannelCommand({ ApplicationId: app.Id }))).GCMChannelResponse, c);

  await rejectsPinpoint(
    pinpoint().send(new UpdateGcmChannelCommand({ ApplicationId: app.Id, GCMChannelRequest: { ApiKey: 'AAAA-legacy' } })),
    'BadRequestException', 'legacy ApiKey', /ServiceJson/);
  await rejectsPinpoint(
    pinpoint().send(new UpdateGcmChannelCommand({ ApplicationId: app.Id, GCMChannelRequest: { DefaultAuthenticationMethod: 'KEY' } })),
    'BadRequestException', 'method KEY');
  // The refused updates changed nothing.
  assert.equal((await pinpoint().send(new GetGcmChannelCommand({ ApplicationId: app.Id }))).GCMChannelResponse.Version, 1);
  await pinpoint().send(new DeleteGcmChannelCommand({ ApplicationId: app.Id }));
  await rejectsPinpoint(pinpoint().send(new GetGcmChannelCommand({ ApplicationId: app.Id })), 'NotFoundException', 'GCM after delete');
});

test('Bad channel credentials are refused with BadRequestException and store nothing', async () => {
  const app = await newApp();
  const apns = (req) => pinpoint().send(new UpdateApnsChannelCommand({ ApplicationId: app.Id, APNSChannelRequest: req }));
  const gcm = (req) => pinpoint().send(new UpdateGcmChannelCommand({ ApplicationId: app.Id, GCMChannelRequest: req }));
  const ids = { TokenKeyId: 'ABC123DEFG', TeamId: 'TEAM123456', BundleId: BUNDLE };
  await rejectsPinpoint(apns({ TokenKey: 'not a key', ...ids }), 'BadRequestException', 'TokenKey not PEM', /TokenKey/);
  const cut = P256.split('\n');
  cut[1] = cut[1].slice(0, 20); // truncated DER
  await rejectsPinpoint(apns({ TokenKey: cut.join('\n'), ...ids }), 'BadRequestException', 'corrupt TokenKey', /TokenKey/);
  await rejectsPinpoint(apns({ TokenKey: P384, ...ids }), 'BadRequestException', 'P-384 TokenKey', /P-256/);
  await rejectsPinpoint(apns({ TokenKey: RSA, ...ids }), 'BadRequestException', 'RSA TokenKey', /P-256/);
  await rejectsPinpoint(apns({ TokenKey: P256, TokenKeyId: 'ABC123DEFG', BundleId: BUNDLE }), 'BadRequestException', 'no TeamId', /TeamId/);
  await rejectsPinpoint(apns({ Certificate: CERT.cert }), 'BadRequestException', 'certificate without key', /PrivateKey/);
  await rejectsPinpoint(apns({ Certificate: CERT.cert, PrivateKey: OTHER.key }), 'BadRequestException', 'key of another certificate', /not the key/);
  await rejectsPinpoint(apns({ Certificate: 'garbage', PrivateKey: CERT.key }), 'BadRequestException', 'certificate not PEM', /Certificate/);
  await rejectsPinpoint(apns({ Enabled: true }), 'BadRequestException', 'a new channel without credentials', /credentials/);
  await rejectsPinpoint(apns({ TokenKey: P256, ...ids, DefaultAuthenticationMethod: 'PASSWORD' }), 'BadRequestException', 'unknown method');
  await rejectsPinpoint(gcm({ ServiceJson: '{"project_id": ' }), 'BadRequestException', 'ServiceJson not JSON', /JSON/);
  await rejectsPinpoint(gcm({ ServiceJson: '[1,2]' }), 'BadRequestException', 'ServiceJson an array', /JSON object/);
  for (const field of ['project_id', 'client_email', 'private_key', 'token_uri']) {
    await rejectsPinpoint(gcm({ ServiceJson: serviceJson({ [field]: undefined }) }), 'BadRequestException', `ServiceJson without ${field}`, new RegExp(field));
  }
  await rejectsPinpoint(gcm({ ServiceJson: serviceJson({ private_key: P256 }) }), 'BadRequestException', 'EC private_key', /RSA/);
  await rejectsPinpoint(gcm({ ServiceJson: serviceJson({ private_key: 'nope' }) }), 'BadRequestException', 'private_key not PEM', /private_key/);
  await rejectsPinpoint(gcm({}), 'BadRequestException', 'a new GCM channel without credentials', /ServiceJson/);
  const count = await psql(`select count(*) from carillon.pinpoint_channels where app_id = '${app.Id}'`);
  assert.equal(count, '0', 'no channel stored by a refused update');
  const channels = (await pinpoint().send(new GetChannelsCommand({ ApplicationId: app.Id }))).ChannelsResponse.Channels;
  assert.deepEqual(channels, {});
});

test('GetChannels lists the configured channels by type; unknown apps and channels are NotFound', async () => {
  const app = await newApp();
  await pinpoint().send(new UpdateApnsSandboxChannelCommand({
    ApplicationId: app.Id, APNSSandboxChannelRequest: { TokenKey: P256, TokenKeyId: 'K1', TeamId: 'T1', BundleId: BUNDLE },
  }));
  await pinpoint().send(new UpdateGcmChannelCommand({ ApplicationId: app.Id, GCMChannelRequest: { ServiceJson: serviceJson() } }));
  const out = await pinpoint().send(new GetChannelsCommand({ ApplicationId: app.Id }));
  const channels = out.ChannelsResponse.Channels;
  assert.deepEqual(Object.keys(channels).sort(), ['APNS_SANDBOX', 'GCM']);
  assert.equal(channels.GCM.Enabled, true);
  assert.equal(channels.APNS_SANDBOX.HasCredential, true);
  assertNoSecrets(JSON.stringify(channels), 'GetChannels');

  const missing = 'f'.repeat(32);
  await rejectsPinpoint(pinpoint().send(new GetChannelsCommand({ ApplicationId: missing })), 'NotFoundException', 'GetChannels of no app');
  await rejectsPinpoint(pinpoint().send(new GetApnsChannelCommand({ ApplicationId: missing })), 'NotFoundException', 'channel of no app');
  await rejectsPinpoint(pinpoint().send(new GetApnsChannelCommand({ ApplicationId: app.Id })), 'NotFoundException', 'unconfigured channel', /APNS/);
  await rejectsPinpoint(pinpoint().send(new DeleteApnsVoipChannelCommand({ ApplicationId: app.Id })), 'NotFoundException', 'delete unconfigured channel');
  await rejectsPinpoint(
    pinpoint().send(new UpdateApnsChannelCommand({ ApplicationId: missing, APNSChannelRequest: { TokenKey: P256, TokenKeyId: 'K', TeamId: 'T', BundleId: BUNDLE } })),
    'NotFoundException', 'update a channel of no app');
  // Deleting the app takes its channels with it.
  await pinpoint().send(new DeleteAppCommand({ ApplicationId: app.Id }));
  assert.equal(await psql(`select count(*) from carillon.pinpoint_channels where app_id = '${app.Id}'`), '0');
});

test('Only the root credential or an admin key may call Pinpoint; a user credential is refused', async () => {
  const ai = await ctx.newAppInstance();
  const user = await ctx.newUser(ai);
  const creds = await mintUserCredentials(ctx.srv, user.arn);
  const app = await newApp();
  await rejectsPinpoint(pinpoint(creds).send(new GetAppCommand({ ApplicationId: app.Id })), 'ForbiddenException', 'user GetApp', /root credential or an admin key/);
  await rejectsPinpoint(pinpoint(creds).send(new CreateAppCommand({ CreateApplicationRequest: { Name: 'x' } })), 'ForbiddenException', 'user CreateApp');
  await rejectsPinpoint(pinpoint(creds).send(new GetCampaignsCommand({ ApplicationId: app.Id })), 'ForbiddenException', 'user, unimplemented operation');
  await rejectsPinpoint(
    pinpoint({ accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: 'x'.repeat(40) }).send(new GetAppsCommand({})),
    'ForbiddenException', 'unknown key');
});

test('The credential scope must be mobiletargeting on Pinpoint routes and chime on Chime routes', async () => {
  const app = await newApp();
  const chimeScoped = await signedFetch(ctx.srv, { method: 'GET', path: `/v1/apps/${app.Id}`, service: 'chime' });
  assert.equal(chimeScoped.status, 403, chimeScoped.body);
  assert.equal(chimeScoped.headers['x-amzn-errortype'], 'ForbiddenException');
  assert.match(chimeScoped.json.Message, /mobiletargeting/);
  assert.match(chimeScoped.json.RequestID, /^[0-9a-f-]{36}$/);
  const ok = await signedFetch(ctx.srv, { method: 'GET', path: `/v1/apps/${app.Id}`, service: 'mobiletargeting' });
  assert.equal(ok.status, 200, ok.body);
  const wrongOnChime = await signedFetch(ctx.srv, { method: 'GET', path: '/app-instances', service: 'mobiletargeting' });
  assert.equal(wrongOnChime.status, 401, wrongOnChime.body);
  assert.equal(wrongOnChime.json.Code, 'Unauthorized', 'Chime routes keep Chime-shaped errors');
});

test('Pinpoint operations outside the subset answer MethodNotAllowedException naming the operation', async () => {
  const app = await newApp();
  const err = await rejectsPinpoint(pinpoint().send(new GetCampaignsCommand({ ApplicationId: app.Id })), 'MethodNotAllowedException',
    'GetCampaigns', /Carillon does not implement the Pinpoint operation GetCampaigns/);
  assert.equal(err.$fault, 'client');
  const raw = await rawPinpoint(`/v1/apps/${app.Id}/segments`);
  assert.equal(raw.status, 405, raw.body);
  assert.equal(raw.headers['x-amzn-errortype'], 'MethodNotAllowedException');
  assert.deepEqual(Object.keys(raw.json).sort(), ['Message', 'RequestID']);
  assert.match(raw.json.Message, /GetSegments/);
  // Unsigned: refused before anything is said about the operation.
  const unsigned = await fetch(`${ctx.srv.endpoint}/v1/apps/${app.Id}/segments`);
  assert.equal(unsigned.status, 403);
});
