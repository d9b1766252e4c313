// The web chat (examples/web-chat) in a real browser: headless Chromium (Debian's `chromium`,
// driven by puppeteer-core) opens the page twice as two users; one sends, the other shows the
// message within a second. The page is served from https://127.0.0.1:<port> and Carillon from
// https://localhost:<port> with its own TLS: every REST call is cross-origin (CORS preflights),
// Chromium offers h2 in ALPN (Carillon answers http/1.1) and the messaging session is a wss://
// websocket from amazon-chime-sdk-js's DefaultMessagingSession. A screenshot goes to the test
// output directory (CARILLON_TEST_OUTPUT_DIR, default build-test-output/ in the checkout).
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
import { freePort } from './lib/server.mjs';
import { startTlsCarillon, testCert } from './lib/realtime.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const EXAMPLE = path.join(REPO, 'examples/web-chat');
const OUTPUT = process.env.CARILLON_TEST_OUTPUT_DIR || path.join(REPO, 'build-test-output');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

let srv;
let chat; // the example's backend process
let chatUrl;
let browser;
let profile;
const chatLog = [];

function spkiHash(pem) {
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (scripts/install-deps.sh installs Debian's chromium)`);
  assert.ok(existsSync(path.join(EXAMPLE, 'node_modules')), 'examples/web-chat/node_modules is missing (scripts/install-deps.sh runs npm ci there)');
  const cert = testCert();
  const apiPort = await freePort();
  srv = await startTlsCarillon({ port: apiPort, env: { CARILLON_PUBLIC_ENDPOINT: `localhost:${apiPort}` } });
  const api = `https://localhost:${apiPort}`;

  const pagePort = await freePort();
  chatUrl = `https://127.0.0.1:${pagePort}/`;
  chat = spawn(process.execPath, [path.join(EXAMPLE, 'server.mjs')], {
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: srv.rootKey.accessKeyId,
      AWS_SECRET_ACCESS_KEY: srv.rootKey.secretAccessKey,
      AWS_REGION: srv.region,
      CARILLON_ENDPOINT: api,
      NODE_EXTRA_CA_CERTS: cert.certFile,
      WEB_CHAT_LISTEN: `127.0.0.1:${pagePort}`,
      WEB_CHAT_TLS_CERT: cert.certFile,
      WEB_CHAT_TLS_KEY: cert.keyFile,
      WEB_CHAT_APP_NAME: `web-chat-${randomUUID().slice(0, 8)}`,
      NODE_NO_WARNINGS: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
  if (chat && chat.exitCode === null) {
    chat.kill('SIGTERM');
    await new Promise((r) => chat.once('exit', r));
  }
  if (srv) await srv.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** A page in its own browser context (no shared storage), recording the network protocol used. */
async function openAs(name) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 900, height: 560 });
  const seen = { responses: [], sockets: [], errors: [] };
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', (e) => seen.responses.push({ url: e.response.url, protocol: e.response.protocol, status: e.response.status, type: e.type }));
  cdp.on('Network.webSocketCreated', (e) => seen.sockets.push(e.url));
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

test('two users in two pages: one sends, the other shows the message within a second (cross-origin, Carillon TLS, wss)', async () => {
  const alice = await openAs('Alice');
  const bob = await openAs('Bob');

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

  const apiOrigin = `https://localhost:${srv.port}`;
  for (const [who, p] of [['alice', alice], ['bob', bob]]) {
    const api = p.seen.responses.filter((r) => r.url.startsWith(apiOrigin + '/'));
    assert.ok(api.length >= 3, `${who}: ${api.length} API responses seen`);
    for (const r of api) assert.equal(r.protocol, 'http/1.1', `${who}: ${r.url} over ${r.protocol}`);
    assert.ok(p.seen.sockets.some((u) => u.startsWith(`wss://localhost:${srv.port}/connect?`)), `${who}: sockets ${p.seen.sockets}`);
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
  const shot = path.join(OUTPUT, 'web-chat.png');
  await bob.page.screenshot({ path: shot });
  console.log(`# screenshot: ${shot}`);
  for (const p of [alice, bob]) await p.context.close();
});
