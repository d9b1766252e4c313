// The web chat (examples/web-chat) in a real browser: headless Chromium (Debian's `chromium`,
// driven by puppeteer-core) opens the page twice as two users; one sends, the other shows the
// message within a second. The page is served from https://127.0.0.1:<port> and Carillon from
// https://localhost:<port> with its own TLS: every REST call is cross-origin (CORS preflights),
// Chromium offers h2 in ALPN (Carillon answers http/1.1) and the messaging session is a wss://
// websocket from amazon-chime-sdk-js's DefaultMessagingSession. A screenshot goes to the test
// output directory (CARILLON_TEST_OUTPUT_DIR, default build-test-output/ in the checkout).
//
// The second test runs the same chat with the API behind the HAProxy of deploy/haproxy.cfg
// (TLS there, h2 offered; plain HTTP/1.1 to the node): the API responses must arrive over h2 and
// the websocket session work (Chromium opens it as an RFC 8441 stream on the h2 connection).
//
// Certificates: the test certificate (IP:127.0.0.1, DNS:localhost) serves both origins, and
// Chromium trusts exactly its public key (--ignore-certificate-errors-spki-list), not any
// certificate: every other certificate check stays on.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { freePort, startCarillon } from './lib/server.mjs';
import { startHaproxy, startTlsCarillon, testCert } from './lib/realtime.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const EXAMPLE = path.join(REPO, 'examples/web-chat');
const OUTPUT = process.env.CARILLON_TEST_OUTPUT_DIR || path.join(REPO, 'build-test-output');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

let browser;
let profile;
const stacks = [];

function spkiHash(pem) {
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/**
 * Carillon and the example's backend, the page on https://127.0.0.1:<port>, the API on
 * https://localhost:<port>: Carillon's own TLS (`via: 'carillon'`) or HAProxy's frontend in front
 * of a plain node (`via: 'haproxy'`). Returns {api (its origin), apiPort, chatUrl}.
 */
async function startStack(via) {
  const cert = testCert();
  const apiPort = await freePort();
  const stack = { apiPort, api: `https://localhost:${apiPort}`, chatLog: [] };
  stacks.push(stack);
  const env = { CARILLON_PUBLIC_ENDPOINT: `localhost:${apiPort}` };
  let rootKey;
  let region;
  if (via === 'haproxy') {
    stack.node = await startCarillon({ env });
    stack.lb = await startHaproxy({ servers: [{ name: 'node1', port: stack.node.port }], rootKey: stack.node.rootKey, port: apiPort });
    ({ rootKey, region } = stack.node);
  } else {
    stack.node = await startTlsCarillon({ port: apiPort, env });
    ({ rootKey, region } = stack.node);
  }

  const pagePort = await freePort();
  stack.chatUrl = `https://127.0.0.1:${pagePort}/`;
  const chat = spawn(process.execPath, [path.join(EXAMPLE, 'server.mjs')], {
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: rootKey.accessKeyId,
      AWS_SECRET_ACCESS_KEY: rootKey.secretAccessKey,
      AWS_REGION: region,
      CARILLON_ENDPOINT: stack.api,
      NODE_EXTRA_CA_CERTS: cert.certFile,
      WEB_CHAT_LISTEN: `127.0.0.1:${pagePort}`,
      WEB_CHAT_TLS_CERT: cert.certFile,
      WEB_CHAT_TLS_KEY: cert.keyFile,
      WEB_CHAT_APP_NAME: `web-chat-${randomUUID().slice(0, 8)}`,
      NODE_NO_WARNINGS: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  stack.chat = chat;
  const chatLog = stack.chatLog;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the web chat backend did not start:\n${chatLog.join('')}`)), 60000);
    const onData = (d) => {
      chatLog.push(d.toString());
      if (chatLog.join('').includes('web-chat: open ')) {
        clearTimeout(timer);
        resolve();
      }
    };
    chat.stdout.on('data', onData);
    chat.stderr.on('data', onData);
    chat.on('exit', (code) => reject(new Error(`the web chat backend exited (${code}):\n${chatLog.join('')}`)));
  });
  return stack;
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (scripts/install-deps.sh installs Debian's chromium)`);
  assert.ok(existsSync(path.join(EXAMPLE, 'node_modules')), 'examples/web-chat/node_modules is missing (scripts/install-deps.sh runs npm ci there)');
  const cert = testCert();
  profile = mkdtempSync(path.join(os.tmpdir(), 'carillon-chromium-'));
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: [
      `--ignore-certificate-errors-spki-list=${spkiHash(cert.ca)}`,
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
      '--disable-gpu',
      '--no-first-run',
    ],
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  for (const { chat, lb, node } of stacks) {
    if (chat && chat.exitCode === null) {
      chat.kill('SIGTERM');
      await new Promise((r) => chat.once('exit', r));
    }
    if (lb) await lb.stop();
    if (node) await node.stop();
  }
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** A page in its own browser context (no shared storage), recording the network protocol used. */
async function openAs(name, chatUrl) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 900, height: 560 });
  const seen = { responses: [], sockets: [], handshakes: [], errors: [] };
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', (e) => seen.responses.push({ url: e.response.url, protocol: e.response.protocol, status: e.response.status, type: e.type }));
  cdp.on('Network.webSocketCreated', (e) => seen.sockets.push(e.url));
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => seen.handshakes.push(e.response.status));
  cdp.on('Network.loadingFailed', (e) => seen.errors.push(`${e.errorText} ${e.corsErrorStatus?.corsError ?? ''}`));
  page.on('pageerror', (e) => seen.errors.push(String(e)));
  await page.goto(chatUrl, { waitUntil: 'load' });
  await page.type('#name', name);
  await page.click('#sign-in button');
  const ok = await page
    .waitForSelector('#ws-state[data-state="open"]', { timeout: 20000 })
    .then(() => true, () => false);
  if (!ok) {
    const text = await page.$eval('#error', (e) => e.textContent).catch(() => '');
    const ws = await page.$eval('#ws-state', (e) => e.textContent).catch(() => '');
    assert.fail(`${name}: the messaging session did not open (${ws}); page error: ${text}; network: ${seen.errors.join(' | ')}`);
  }
  // Join the lobby, then it is open.
  const join = await page.waitForSelector('li[data-channel="lobby"] button', { timeout: 15000 });
  await join.click();
  await page.waitForSelector('#send:not([hidden])', { timeout: 15000 });
  await page.waitForFunction(() => document.querySelector('#channels li.current')?.dataset.channel === 'lobby', { timeout: 15000 });
  return { page, seen, context };
}

/** Two users chat through `stack`; every API response must have come over `protocol`. */
async function chatThrough(stack, protocol, shotName) {
  const alice = await openAs('Alice', stack.chatUrl);
  const bob = await openAs('Bob', stack.chatUrl);

  const text = `hello from Alice ${randomUUID().slice(0, 8)}`;
  const shown = bob.page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages .content')].some((e) => e.textContent === t),
    { polling: 'mutation', timeout: 10000 },
    text,
  );
  await alice.page.type('#text', text);
  const sentAt = Date.now();
  await alice.page.keyboard.press('Enter');
  await shown;
  const ms = Date.now() - sentAt;
  assert.ok(ms < 1000, `Bob saw the message ${ms} ms after Alice sent it`);
  // Alice sees her own message too (from the websocket or the send's answer).
  await alice.page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages .content')].some((e) => e.textContent === t),
    { timeout: 5000 },
    text,
  );
  const sender = await bob.page.$eval('#messages li:last-child .sender', (e) => e.textContent);
  assert.equal(sender, 'Alice');

  const apiOrigin = stack.api;
  for (const [who, p] of [['alice', alice], ['bob', bob]]) {
    const api = p.seen.responses.filter((r) => r.url.startsWith(apiOrigin + '/'));
    assert.ok(api.length >= 3, `${who}: ${api.length} API responses seen`);
    for (const r of api) assert.equal(r.protocol, protocol, `${who}: ${r.url} over ${r.protocol}`);
    assert.ok(p.seen.sockets.some((u) => u.startsWith(`wss://localhost:${stack.apiPort}/connect?`)), `${who}: sockets ${p.seen.sockets}`);
    assert.deepEqual(p.seen.errors, [], `${who}: network or page errors`);
  }
  // And back: Bob answers, Alice sees it.
  const answer = `hi Alice, Bob here ${randomUUID().slice(0, 4)}`;
  const back = alice.page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages .content')].some((e) => e.textContent === t),
    { polling: 'mutation', timeout: 10000 },
    answer,
  );
  await bob.page.type('#text', answer);
  await bob.page.keyboard.press('Enter');
  await back;

  const state = await bob.page.$eval('#ws-state', (e) => e.dataset.state);
  assert.equal(state, 'open');

  mkdirSync(OUTPUT, { recursive: true });
  const shot = path.join(OUTPUT, shotName);
  await bob.page.screenshot({ path: shot });
  console.log(`# screenshot: ${shot}`);
  for (const p of [alice, bob]) await p.context.close();
  return { alice, bob };
}

test('two users in two pages: one sends, the other shows the message within a second (cross-origin, Carillon TLS, wss)', async () => {
  await chatThrough(await startStack('carillon'), 'http/1.1', 'web-chat.png');
});

test('the same chat with the API behind deploy/haproxy.cfg: API responses over h2, the websocket session works', async () => {
  const stack = await startStack('haproxy');
  const { alice, bob } = await chatThrough(stack, 'h2', 'web-chat-haproxy-h2.png');
  for (const [who, p] of [['alice', alice], ['bob', bob]]) {
    // The websocket handshake answered: 101 (its own HTTP/1.1 connection) or 200 (RFC 8441 on h2).
    assert.ok(p.seen.handshakes.some((s) => s === 101 || s === 200), `${who}: handshakes ${p.seen.handshakes}`);
    console.log(`# ${who}: websocket handshake status ${p.seen.handshakes.join(',')}`);
  }
});
