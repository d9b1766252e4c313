// The web chat's backend: serves the page and signs users in. It holds Carillon's root key (or an
// admin key) and never gives it out: on sign-in it creates the AppInstanceUser (or finds it) and
// hands the browser a user-scoped credential from POST /carillon/credentials, which may act only
// as that user. Everything else — listing channels, joining, sending, the websocket — the page does
// itself, straight against Carillon (another origin: CORS).
//
// Settings (environment):
//   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  Carillon's root key (required)
//   CARILLON_ENDPOINT     Carillon's URL as the backend reaches it   (default http://127.0.0.1:8080)
//   CARILLON_PUBLIC_URL   Carillon's URL as browsers reach it         (default CARILLON_ENDPOINT)
//   AWS_REGION            the SigV4 region Carillon is configured with (default us-east-1)
//   WEB_CHAT_LISTEN       host:port of the page                        (default 127.0.0.1:3000)
//   WEB_CHAT_TLS_CERT, WEB_CHAT_TLS_KEY  serve the page over https (PEM files)
//   WEB_CHAT_APP_NAME     the AppInstance's name                       (default web-chat)
//   NODE_EXTRA_CA_CERTS   a CA (or Carillon's self-signed certificate) for an https CARILLON_ENDPOINT

import { createHash, createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ChimeSDKIdentityClient,
  CreateAppInstanceCommand,
  CreateAppInstanceUserCommand,
  ListAppInstancesCommand,
} from '@aws-sdk/client-chime-sdk-identity';
import {
  ChimeSDKMessagingClient,
  CreateChannelCommand,
  ListChannelsCommand,
} from '@aws-sdk/client-chime-sdk-messaging';
import { SignatureV4 } from '@smithy/signature-v4';
import { build } from './build.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const endpoint = (env.CARILLON_ENDPOINT || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const publicUrl = (env.CARILLON_PUBLIC_URL || endpoint).replace(/\/+$/, '');
const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
const listen = env.WEB_CHAT_LISTEN || '127.0.0.1:3000';
const appName = env.WEB_CHAT_APP_NAME || 'web-chat';
if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) {
  console.error('web-chat: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to Carillon\'s root key (`build/carillon root-key` prints it)');
  process.exit(2);
}
const root = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY };
const sdk = { endpoint, region, credentials: root, maxAttempts: 2 };
const identity = new ChimeSDKIdentityClient(sdk);
const messaging = new ChimeSDKMessagingClient(sdk);

/** SigV4's hash for @smithy/signature-v4, on node:crypto. */
class Sha256 {
  constructor(secret) {
    this.h = secret ? createHmac('sha256', secret) : createHash('sha256');
  }
  update(data) {
    this.h.update(typeof data === 'string' ? Buffer.from(data) : data);
  }
  async digest() {
    return new Uint8Array(this.h.digest());
  }
}
const signer = new SignatureV4({ credentials: root, region, service: 'chime', sha256: Sha256 });

/** POST /carillon/credentials (root-signed): a credential that may act only as `userArn`. */
async function userCredentials(userArn) {
  const url = new URL('/carillon/credentials', endpoint);
  const body = JSON.stringify({ AppInstanceUserArn: userArn, DurationSeconds: 3600 });
  const signed = await signer.sign({
    method: 'POST', protocol: url.protocol, hostname: url.hostname, port: url.port ? Number(url.port) : undefined,
    path: url.pathname, headers: { host: url.host, 'content-type': 'application/json' }, body,
  });
  const res = await fetch(url, { method: 'POST', headers: signed.headers, body });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`POST /carillon/credentials: ${res.status} ${JSON.stringify(json)}`);
  return json.Credentials;
}

// The AppInstance, a bot user that owns the public "lobby" channel, found or made at start.
let appInstanceArn;
async function setUp() {
  const list = await identity.send(new ListAppInstancesCommand({ MaxResults: 50 }));
  appInstanceArn = list.AppInstances?.find((a) => a.Name === appName)?.AppInstanceArn;
  if (!appInstanceArn) {
    appInstanceArn = (await identity.send(new CreateAppInstanceCommand({ Name: appName, ClientRequestToken: randomUUID() }))).AppInstanceArn;
  }
  const bot = await ensureUser('web-chat-bot', 'Web chat');
  const channels = await messaging.send(new ListChannelsCommand({ AppInstanceArn: appInstanceArn, ChimeBearer: bot, Privacy: 'PUBLIC', MaxResults: 50 }));
  if (!channels.Channels?.some((c) => c.Name === 'lobby')) {
    await messaging.send(new CreateChannelCommand({
      AppInstanceArn: appInstanceArn, Name: 'lobby', Mode: 'UNRESTRICTED', Privacy: 'PUBLIC', ClientRequestToken: randomUUID(), ChimeBearer: bot,
    }));
  }
}

/** The AppInstanceUser of id `id`, created when missing; its ARN. */
async function ensureUser(id, name) {
  const arn = `${appInstanceArn}/user/${id}`;
  try {
    await identity.send(new CreateAppInstanceUserCommand({ AppInstanceArn: appInstanceArn, AppInstanceUserId: id, Name: name, ClientRequestToken: randomUUID() }));
  } catch (e) {
    if (e.name !== 'ConflictException') throw e; // already there: signing in again
  }
  return arn;
}

async function signIn(req, res) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 4096) return reply(res, 413, { message: 'too large' });
    chunks.push(c);
  }
  let name;
  try {
    name = String(JSON.parse(Buffer.concat(chunks).toString('utf8')).name ?? '').trim();
  } catch {
    return reply(res, 400, { message: 'body must be JSON {"name": ...}' });
  }
  // A user id is the name made safe for an ARN (letters, digits, - and _).
  const id = name.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 50);
  if (!id) return reply(res, 400, { message: 'a name of letters or digits, please' });
  const userArn = await ensureUser(id, name.slice(0, 100));
  const c = await userCredentials(userArn);
  reply(res, 200, {
    userArn, appInstanceArn, endpoint: publicUrl, region,
    credentials: { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration },
  });
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

const files = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['dist/app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
};

async function handle(req, res) {
  const url = new URL(req.url, 'http://x');
  if (req.method === 'POST' && url.pathname === '/api/sign-in') return signIn(req, res);
  const f = req.method === 'GET' && files[url.pathname];
  if (!f) return reply(res, 404, { message: 'not found' });
  res.writeHead(200, { 'content-type': f[1], 'cache-control': 'no-store' });
  res.end(readFileSync(path.join(HERE, f[0])));
}

await build();
await setUp();
const [host, port] = [listen.slice(0, listen.lastIndexOf(':')), Number(listen.slice(listen.lastIndexOf(':') + 1))];
const tlsOpts = env.WEB_CHAT_TLS_CERT ? { cert: readFileSync(env.WEB_CHAT_TLS_CERT), key: readFileSync(env.WEB_CHAT_TLS_KEY) } : null;
const onRequest = (req, res) => handle(req, res).catch((e) => {
  console.error('web-chat:', e);
  if (!res.headersSent) reply(res, 502, { message: String(e.message ?? e) });
});
const server = tlsOpts ? https.createServer(tlsOpts, onRequest) : http.createServer(onRequest);
server.listen(port, host, () => {
  const scheme = tlsOpts ? 'https' : 'http';
  console.log(`web-chat: open ${scheme}://${host}:${server.address().port}/ (Carillon: ${publicUrl}, AppInstance ${appInstanceArn})`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections(); // keep-alive connections would hold close() open
  });
}
