// Real-time (websocket) helpers: a test certificate, Carillon serving https + wss with it, the REAL
// amazon-chime-sdk-js DefaultMessagingSession running in this process, and a raw `ws` client for
// protocol-level checks.
//
// How the JS SDK is made to run in Node 20 (see shared/spec/chime-js-in-node.md):
//   * globalThis.WebSocket = a `ws` subclass that trusts the test certificate (the SDK calls
//     `new WebSocket(url, [])` with no options), and a CloseEvent polyfill (Node 20 has none; the
//     SDK builds one with code 4999 when GetMessagingSessionEndpoint fails);
//   * the SDK's ChimeSDKMessagingClient gets an https agent with `ca` = the test certificate;
//   * a test waits for didStart / didStop, never for start() alone: start() does not settle in
//     some reconnect paths;
//   * when a reconnect finally gives up, the SDK rejects a promise nobody awaits (the recipe
//     installs process.on('unhandledRejection') for it). node:test would fail whatever test runs
//     at that moment, so each session wraps the SDK's startConnecting for reconnects and records
//     that rejection instead (rec.reconnectRejections; lifecycle 'reconnect-rejected').
//
// One certificate per test process (CN and IP SAN 127.0.0.1), made with the openssl CLI.

import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WS from 'ws';
import { ChimeSDKIdentityClient } from '@aws-sdk/client-chime-sdk-identity';
import { ChimeSDKMessagingClient } from '@aws-sdk/client-chime-sdk-messaging';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@smithy/core/checksum';
import chime from 'amazon-chime-sdk-js';
import { rfc3986, signRequest } from './clients.mjs';
import { freePort, startCarillon } from './server.mjs';

const { DefaultMessagingSession, MessagingSessionConfiguration, LogLevel } = chime;

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// ------------------------------------------------------------------------------------ certificate

let cert = null;

/**
 * The process's test certificate (made on first use): {dir, certFile, keyFile, pemFile (cert then
 * key, the form HAProxy's `crt` wants), ca (the certificate, a Buffer)}. Self-signed, CN and
 * subjectAltName IP:127.0.0.1 (an IP SAN is required: clients connect to the literal address).
 */
export function testCert() {
  if (cert) return cert;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'carillon-tls-'));
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const pemFile = path.join(dir, 'haproxy.pem');
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (e) {
    throw new Error(`openssl could not make the test certificate (scripts/install-deps.sh installs openssl): ${e.stderr ?? e.message}`);
  }
  const ca = readFileSync(certFile);
  writeFileSync(pemFile, Buffer.concat([ca, readFileSync(keyFile)]));
  cert = { dir, certFile, keyFile, pemFile, ca };
  process.on('exit', () => {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {}
  });
  return cert;
}

// ------------------------------------------------------------------------------- Node 20 globals

class TrustingWebSocket extends WS {
  constructor(url, protocols, options) {
    super(url, protocols, { ca: testCert().ca, ...(options ?? {}) });
    // The upgrade response's headers (behind HAProxy, the test config names the node that answered).
    this.on('upgrade', (res) => {
      this.upgradeHeaders = res.headers;
    });
  }
}

class CloseEventPolyfill extends Event {
  constructor(type, init = {}) {
    super(type, init);
    this.code = init.code ?? 0;
    this.reason = init.reason ?? '';
    this.wasClean = init.wasClean ?? false;
  }
}

function installGlobals() {
  globalThis.WebSocket = TrustingWebSocket;
  if (typeof globalThis.CloseEvent !== 'function') globalThis.CloseEvent = CloseEventPolyfill;
}
installGlobals();

// lib/server.mjs waits for `GET http://127.0.0.1:<port>/healthz` with the global fetch. A server
// started with CARILLON_TLS_CERT speaks only TLS on its port, so for the ports registered here that
// one probe goes out as https (trusting the test certificate); every other fetch is untouched.
const tlsPorts = new Set();
const plainFetch = globalThis.fetch;
globalThis.fetch = async function fetchWithTlsHealthz(input, init) {
  let u = null;
  try {
    u = new URL(typeof input === 'string' || input instanceof URL ? String(input) : input.url);
  } catch {}
  if (u && u.protocol === 'http:' && u.hostname === '127.0.0.1' && tlsPorts.has(Number(u.port)) && u.pathname === '/healthz') {
    const r = await httpsRequest({ port: Number(u.port), method: 'GET', path: '/healthz', signal: init?.signal });
    return new Response(r.body, { status: r.status });
  }
  return plainFetch(input, init);
};

function httpsRequest({ host = '127.0.0.1', port, method, path: p, headers = {}, body, signal, timeoutMs = 15000 }) {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host, port, method, path: p, headers, ca: testCert().ca, agent: false, signal },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {}
          resolve({ status: res.statusCode, headers: res.headers, body: text, json });
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`https ${method} ${p} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

// ----------------------------------------------------------------------------------- servers

/**
 * Start Carillon serving https + wss (CARILLON_TLS_CERT/KEY = the test certificate) through
 * lib/server.mjs's startCarillon. opts as for startCarillon; CARILLON_PUBLIC_ENDPOINT defaults to
 * this server's own 127.0.0.1:<port>. The returned server's `endpoint` is its https URL and `ca`
 * the certificate to trust.
 */
export async function startTlsCarillon(opts = {}) {
  const c = testCert();
  const port = opts.port ?? (await freePort());
  tlsPorts.add(port);
  const srv = await startCarillon({
    ...opts,
    port,
    env: {
      CARILLON_TLS_CERT: c.certFile,
      CARILLON_TLS_KEY: c.keyFile,
      CARILLON_PUBLIC_ENDPOINT: `127.0.0.1:${port}`,
      ...(opts.env ?? {}),
    },
  });
  srv.endpoint = `https://127.0.0.1:${port}`;
  srv.ca = c.ca;
  return srv;
}

/**
 * SDK client configuration for `target` ({endpoint, region[, ca]}: a server from startCarillon /
 * startTlsCarillon, or a load balancer described the same way) and `creds`.
 */
export function sdkConfig(target, creds) {
  const https_ = target.endpoint.startsWith('https:');
  return {
    endpoint: target.endpoint,
    region: target.region ?? 'us-east-1',
    credentials: {
      accessKeyId: creds.accessKeyId,
      secretAccessKey: creds.secretAccessKey,
      ...(creds.sessionToken ? { sessionToken: creds.sessionToken } : {}),
    },
    maxAttempts: 1,
    ...(https_ ? { requestHandler: { httpsAgent: new https.Agent({ ca: target.ca ?? testCert().ca, keepAlive: true }) } } : {}),
  };
}

export function messaging(target, creds = target.rootKey) {
  return new ChimeSDKMessagingClient(sdkConfig(target, creds));
}

export function identity(target, creds = target.rootKey) {
  return new ChimeSDKIdentityClient(sdkConfig(target, creds));
}

/** A SigV4-signed request (root key by default) to a plain or TLS server; {status, json, body}. */
export async function signedJson(srv, { method = 'GET', path: p = '/', body, creds = srv.rootKey } = {}) {
  const port = Number(new URL(srv.endpoint).port);
  const signed = await signRequest({ ...srv, port }, { method, path: p, body, creds });
  const payload = signed.body === undefined ? undefined : signed.body;
  if (srv.endpoint.startsWith('https:')) {
    return httpsRequest({ port, method, path: p, headers: signed.headers, body: payload });
  }
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: signed.headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, body: text, json });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** POST /carillon/credentials (root) for a user: {accessKeyId, secretAccessKey, sessionToken}. */
export async function userCreds(srv, userArn) {
  const r = await signedJson(srv, { method: 'POST', path: '/carillon/credentials', body: { AppInstanceUserArn: userArn } });
  if (r.status !== 200 || !r.json?.Credentials) throw new Error(`POST /carillon/credentials answered ${r.status}: ${r.body}`);
  const c = r.json.Credentials;
  return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
}

/** GET /healthz over http or https; the status, or 0 when nothing answers. */
export async function healthz(srv) {
  const port = Number(new URL(srv.endpoint).port);
  try {
    if (srv.endpoint.startsWith('https:')) return (await httpsRequest({ port, method: 'GET', path: '/healthz', timeoutMs: 2000 })).status;
    const res = await plainFetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** Resident set size of a process in kB (VmRSS from /proc/<pid>/status). */
export function rssKb(pid) {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

// ------------------------------------------------------------------------------ recorded sessions

/** The response header the test HAProxy configuration adds: the name of the node that answered. */
export const BACKEND_HEADER = 'x-carillon-backend';

function parseFrame(text) {
  const frame = JSON.parse(text);
  let payload = null;
  if (typeof frame.Payload === 'string' && frame.Payload !== '') payload = JSON.parse(frame.Payload);
  return { type: frame.Headers?.['x-amz-chime-event-type'], headers: frame.Headers, payload, rawPayload: frame.Payload };
}

/** The channel an event is about (payload ChannelArn, or Channel.ChannelArn for CHANNEL_DETAILS). */
export function channelOf(m) {
  return m.payload?.ChannelArn ?? m.payload?.Channel?.ChannelArn;
}

function summarize(messages, max = 40) {
  const lines = messages.slice(-max).map((m) => {
    const ch = channelOf(m);
    const extra = m.payload?.Content !== undefined ? ` content=${JSON.stringify(m.payload.Content).slice(0, 40)}` : m.payload?.Member ? ` member=${m.payload.Member.Arn}` : '';
    return `  #${m.conn} ${m.type} (${m.headers?.['x-amz-chime-message-type']})${ch ? ' ' + ch.split('/').pop() : ''}${extra}`;
  });
  return `${messages.length} messages${messages.length > max ? ` (last ${max})` : ''}:\n${lines.join('\n')}`;
}

class Recorder {
  constructor(label) {
    this.label = label;
    this.messages = []; // {type, headers, payload, rawPayload, conn, at}
    // {what, at, ...}: SDK sessions 'connecting' (reconnecting), 'start' (backend), 'stop' (code,
    // reason), 'start-rejected' / 'reconnect-rejected' (code); raw sessions 'close' (code, reason), 'error'
    this.lifecycle = [];
    this.closes = []; // {code, reason} of every socket close seen
    this.conn = 0;
    this.waiters = new Set();
    this.logs = [];
  }
  note() {
    for (const w of [...this.waiters]) w();
  }
  addMessage(m) {
    this.messages.push({ ...m, conn: this.conn, at: Date.now() });
    this.note();
  }
  addLife(e) {
    this.lifecycle.push({ ...e, at: Date.now() });
    this.note();
  }
  get starts() {
    return this.lifecycle.filter((e) => e.what === 'start').length;
  }
  get stops() {
    return this.lifecycle.filter((e) => e.what === 'stop');
  }
  /** Messages of a type (and, optionally, about one channel). */
  ofType(type, channelArn) {
    return this.messages.filter((m) => m.type === type && (channelArn === undefined || channelOf(m) === channelArn));
  }
  /** Every message about a channel, in arrival order. */
  about(channelArn) {
    return this.messages.filter((m) => channelOf(m) === channelArn);
  }
  describe() {
    const life = this.lifecycle.map((e) => `${e.what}${e.code !== undefined ? ':' + e.code : ''}`).join(' ');
    const logs = this.logs.filter((l) => !l.startsWith('DEBUG')).slice(-8);
    return `[${this.label}] lifecycle: ${life || '(none)'}; ${summarize(this.messages)}${logs.length ? `\n  client log (last ${logs.length}):\n  ${logs.map((l) => l.slice(0, 300)).join('\n  ')}` : ''}`;
  }
  /** Resolve once predicate(this) is true; fail after timeoutMs with what was received. */
  waitFor(predicate, timeoutMs = 5000, what = 'condition') {
    return new Promise((resolve, reject) => {
      let done = false;
      const check = () => {
        if (done) return;
        let ok = false;
        try {
          ok = predicate(this);
        } catch (e) {
          done = true;
          this.waiters.delete(check);
          clearTimeout(timer);
          reject(e);
          return;
        }
        if (ok) {
          done = true;
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve(this);
        }
      };
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.describe()}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }
}

function capturingLogger(rec) {
  let level = LogLevel.INFO;
  const push = (lvl, msg) => {
    rec.logs.push(`${lvl} ${typeof msg === 'function' ? msg() : msg}`);
    if (rec.logs.length > 200) rec.logs.shift();
  };
  return {
    debug: (m) => level <= LogLevel.DEBUG && push('DEBUG', m),
    info: (m) => push('INFO', m),
    warn: (m) => push('WARN', m),
    error: (m) => push('ERROR', m),
    setLogLevel: (l) => {
      level = l;
    },
    getLogLevel: () => level,
  };
}

/**
 * Run the real DefaultMessagingSession for `userArn` with `creds` against `target` (the REST
 * endpoint it asks GetMessagingSessionEndpoint: a TLS Carillon, or HAProxy). Returns a recorder
 * (messages, lifecycle, waitFor, ofType, about, ...) with:
 *   rec.session       the DefaultMessagingSession
 *   rec.startOutcome  promise of {ok: true} | {ok: false, error} (start() itself)
 *   rec.ready(ms)     wait for didStart (rejects with the recorder's summary on failure)
 *   rec.stop()        stop the session (and any reconnect in progress), close the REST client
 * opts: prefetch (true → prefetchOn Connect), sortBy ('unread' | 'last-message-timestamp'),
 *       reconnectTimeoutMs, sessionId, label, endpointUrl (the deprecated configuration field: the
 *       first connect then skips GetMessagingSessionEndpoint; reconnects still call it).
 */
export function session(target, userArn, creds, opts = {}) {
  const rec = new Recorder(opts.label ?? userArn.split('/').pop());
  rec.userArn = userArn;
  const client = messaging(target, creds);
  const conf = new MessagingSessionConfiguration(userArn, opts.sessionId ?? null, opts.endpointUrl, client);
  if (opts.prefetch) conf.prefetchOn = 'connect';
  if (opts.sortBy) conf.prefetchSortBy = opts.sortBy;
  if (opts.reconnectTimeoutMs) conf.reconnectTimeoutMs = opts.reconnectTimeoutMs;
  const s = new DefaultMessagingSession(conf, capturingLogger(rec));
  rec.session = s;
  rec.reconnectRejections = [];
  // See the header: a reconnect that finally fails rejects a promise nobody awaits.
  const startConnecting = s.startConnecting.bind(s);
  s.startConnecting = (reconnecting) => {
    const p = startConnecting(reconnecting);
    return reconnecting
      ? p.catch((e) => {
          rec.reconnectRejections.push(e);
          rec.addLife({ what: 'reconnect-rejected', code: e?.code, reason: e?.reason });
        })
      : p;
  };
  s.addObserver({
    messagingSessionDidStartConnecting(reconnecting) {
      rec.conn++;
      // The SDK logs only "WebSocket error": keep the reason too.
      s.webSocket?.connection?.on?.('error', (e) => rec.logs.push(`ERROR websocket #${rec.conn}: ${e.message}`));
      rec.addLife({ what: 'connecting', reconnecting });
    },
    messagingSessionDidStart() {
      rec.addLife({ what: 'start', backend: s.webSocket?.connection?.upgradeHeaders?.[BACKEND_HEADER] });
    },
    messagingSessionDidStop(event) {
      rec.addLife({ what: 'stop', code: event?.code, reason: event?.reason });
    },
    messagingSessionDidReceiveMessage(message) {
      let payload = null;
      try {
        payload = message.payload ? JSON.parse(message.payload) : null;
      } catch (e) {
        payload = { __unparseable: message.payload };
      }
      rec.addMessage({ type: message.type, headers: message.headers, payload, rawPayload: message.payload });
    },
  });
  rec.startOutcome = s.start().then(
    () => ({ ok: true }),
    (error) => {
      rec.addLife({ what: 'start-rejected', code: error?.code, reason: error?.reason });
      return { ok: false, error };
    },
  );
  rec.ready = (ms = 10000) =>
    rec.waitFor((r) => {
      if (r.starts > 0) return true;
      const rej = r.lifecycle.find((e) => e.what === 'start-rejected' || e.what === 'stop');
      if (rej) throw new Error(`[${r.label}] session did not start: ${rej.what} code ${rej.code} ${rej.reason ?? ''}\n${r.logs.slice(-10).join('\n')}`);
      return false;
    }, ms, 'didStart');
  rec.stop = async () => {
    try {
      s.reconnectController.cancel();
    } catch {}
    s.stop();
    // didStop (1005) when it was open; nothing to wait for otherwise.
    const stopsBefore = rec.stops.length;
    await rec.waitFor((r) => r.stops.length > stopsBefore || s.isClosed(), 3000, 'didStop after stop()').catch(() => {});
    client.destroy();
  };
  return rec;
}

// ------------------------------------------------------------------------------------ raw client

/**
 * The wss:// URL a client opens: `wss://<endpointUrl>/connect?<query>`, presigned with SigV4
 * (service chime, X-Amz-Expires 10, host signed) like the SDK, with @smithy/signature-v4.
 * params: extra query pairs (e.g. {'prefetch-on': 'connect'}); sign: overrides
 * ({signingDate, region, service, host}) for negative tests.
 */
export async function presignConnectUrl(endpointUrl, userArn, creds, { params = {}, sessionId = randomUUID(), sign = {}, scheme = 'wss' } = {}) {
  const [hostname, port] = endpointUrl.split(':');
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: creds.accessKeyId,
      secretAccessKey: creds.secretAccessKey,
      ...(creds.sessionToken ? { sessionToken: creds.sessionToken } : {}),
    },
    region: sign.region ?? 'us-east-1',
    service: sign.service ?? 'chime',
    sha256: Sha256,
  });
  const req = await signer.presign(
    {
      method: 'GET',
      protocol: 'wss:',
      hostname,
      port: port ? Number(port) : undefined,
      path: '/connect',
      query: { userArn, sessionId, ...params },
      headers: { host: sign.host ?? endpointUrl },
    },
    { expiresIn: 10, signingDate: sign.signingDate ?? new Date() },
  );
  const query = Object.entries(req.query)
    .map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`)
    .join('&');
  return `${scheme}://${endpointUrl}/connect?${query}`;
}

/**
 * A raw websocket session (the `ws` package): opens the presigned URL and records every text frame
 * (parsed) and the close. Returns a recorder with ws, closed (promise of {code, reason}), and
 * close(). opts: params, sessionId, sign (see presignConnectUrl), label, scheme ('wss', or 'ws'
 * for a node serving plain HTTP).
 */
export async function rawSession(endpointUrl, userArn, creds, opts = {}) {
  const rec = new Recorder(opts.label ?? `raw:${userArn.split('/').pop()}`);
  rec.userArn = userArn;
  rec.conn = 1;
  rec.binaryFrames = 0;
  const url = await presignConnectUrl(endpointUrl, userArn, creds, opts);
  const ws = new WS(url, { ca: testCert().ca, perMessageDeflate: opts.pmd ?? false });
  rec.ws = ws;
  rec.bytes = 0;
  ws.on('upgrade', (res) => {
    rec.backend = res.headers[BACKEND_HEADER];
  });
  ws.on('message', (data, isBinary) => {
    rec.bytes += data.length;
    if (isBinary) {
      rec.binaryFrames++;
      return;
    }
    rec.addMessage(parseFrame(data.toString('utf8')));
  });
  ws.on('error', (e) => rec.addLife({ what: 'error', reason: e.message }));
  rec.closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      const c = { code, reason: reason.toString('utf8') };
      rec.closes.push(c);
      rec.addLife({ what: 'close', ...c });
      resolve(c);
    });
  });
  rec.close = async () => {
    if (ws.readyState === WS.OPEN || ws.readyState === WS.CONNECTING) ws.close();
    await Promise.race([rec.closed, deadline(2000)]);
    if (ws.readyState !== WS.CLOSED) ws.terminate();
  };
  return rec;
}

// ------------------------------------------------------------------------ HAProxy, PostgreSQL

const HERE = path.dirname(new URL(import.meta.url).pathname);
export const DEPLOY_HAPROXY_CFG = path.resolve(HERE, '../../../deploy/haproxy.cfg');

function replaceOnce(text, re, replacement, what) {
  const n = (text.match(new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g')) ?? []).length;
  if (n !== 1) throw new Error(`deploy/haproxy.cfg: expected exactly one ${what} (${re}), found ${n}: the test and the file are out of step`);
  return text.replace(re, replacement);
}

/**
 * deploy/haproxy.cfg made runnable here: the same file, with
 *   - the process-level lines left out (log target, chroot, user, group, daemon, stats socket);
 *   - `bind :8443 ssl crt /etc/carillon/tls.pem` → `bind 127.0.0.1:<port> ssl crt <pem>`;
 *   - the `server` lines → one per node ({name, port}: plain HTTP on 127.0.0.1);
 *   - health checks every 200 ms instead of 2 s (so a killed node is out within a second);
 *   - one test-only line: `http-response set-header X-Carillon-Backend %s` (which node answered).
 * Everything else (balance leastconn, httpchk GET /healthz, timeouts, retries) is the file's.
 */
export function haproxyConfig({ port, pem, servers, source = readFileSync(DEPLOY_HAPROXY_CFG, 'utf8') }) {
  let cfg = source;
  cfg = cfg.replace(/^\s*(log \/dev\/log.*|chroot .*|user .*|group .*|daemon|stats socket .*)$\n/gm, '');
  cfg = replaceOnce(cfg, /^(\s*)bind :8443 ssl crt \/etc\/carillon\/tls\.pem(.*)$/m, `$1bind 127.0.0.1:${port} ssl crt ${pem}$2`, 'TLS bind line');
  cfg = replaceOnce(cfg, /^(\s*)default_backend carillon$/m, '$1http-response set-header X-Carillon-Backend %s\n$1default_backend carillon', 'default_backend line');
  cfg = replaceOnce(cfg, /^(\s*default-server check) inter 2s fastinter 500ms downinter 1s fall 2 rise 2(.*)$/m, '$1 inter 200ms fastinter 200ms downinter 200ms fall 2 rise 1$2', 'default-server line');
  const serverLines = /^(\s*)server node\d+ 127\.0\.0\.1:\d+\n/gm;
  const indent = (cfg.match(serverLines) ?? [])[0]?.match(/^\s*/)[0];
  if (!indent) throw new Error('deploy/haproxy.cfg: no `server nodeN 127.0.0.1:PORT` lines');
  let first = true;
  cfg = cfg.replace(serverLines, () => {
    if (!first) return '';
    first = false;
    return servers.map((s) => `${indent}server ${s.name} 127.0.0.1:${s.port}\n`).join('');
  });
  return cfg;
}

/**
 * Run `haproxy -db -f <cfg>` on 127.0.0.1:<port> (TLS with the test certificate) in front of
 * `servers`; resolves once GET /healthz through it answers 200. Returns {endpoint, port, region,
 * ca, rootKey (opts.rootKey), proc, log(), stop()}: usable as a target of session()/messaging().
 */
export async function startHaproxy({ servers, rootKey, region = 'us-east-1', port }) {
  const c = testCert();
  port ??= await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'carillon-haproxy-'));
  const cfgFile = path.join(dir, 'haproxy.cfg');
  writeFileSync(cfgFile, haproxyConfig({ port, pem: c.pemFile, servers }));
  const chunks = [];
  const proc = spawn('haproxy', ['-db', '-f', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (b) => chunks.push(b));
  proc.stderr.on('data', (b) => chunks.push(b));
  let exit = null;
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve((exit = { code, signal }))));
  proc.on('error', (e) => {
    exit = { error: e.message };
  });
  const lb = {
    endpoint: `https://127.0.0.1:${port}`,
    port,
    region,
    ca: c.ca,
    rootKey,
    proc,
    cfgFile,
    log: () => Buffer.concat(chunks).toString('utf8'),
    async stop() {
      if (exit === null) {
        proc.kill('SIGTERM');
        await Promise.race([exited, deadline(5000)]);
        if (exit === null) proc.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const until = Date.now() + 15000;
  for (;;) {
    if (exit !== null) throw new Error(`haproxy exited: ${JSON.stringify(exit)}\n${lb.log()}\n--- config ---\n${readFileSync(cfgFile, 'utf8')}`);
    if ((await healthz(lb)) === 200) return lb;
    if (Date.now() > until) {
      await lb.stop();
      throw new Error(`haproxy on ${port} did not answer /healthz with 200 within 15 s\n${lb.log()}`);
    }
    await sleep(100);
  }
}

const PG_SH = path.resolve(HERE, '../../lib/pg.sh');

/**
 * A private PostgreSQL cluster (tests/lib/pg.sh: unix socket only, trust auth) that a test may
 * restart without disturbing other files: {dir, url, restart(), stop()}.
 */
export async function startPrivatePostgres() {
  let out;
  try {
    out = execFileSync('bash', [PG_SH, 'start', os.tmpdir()], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`tests/lib/pg.sh start failed: ${e.stderr ?? e.message}`);
  }
  const dir = /^PG_TEST_DIR=(.*)$/m.exec(out)?.[1];
  if (!dir || /[\\'" ]/.test(dir)) throw new Error(`tests/lib/pg.sh start printed no usable PG_TEST_DIR:\n${out}`);
  const pg = {
    dir,
    url: `host=${dir}/run port=5432 dbname=carillon user=carillon`,
    /** pg_ctl restart -m fast (as the cluster's user), waiting until it accepts connections. */
    restart() {
      execFileSync(
        'bash',
        ['-c', '. "$1"; pg_as_user "$(pg_bindir)/pg_ctl" -D "$2/data" -l "$2/postgres.log" -m fast -w -t 60 restart >/dev/null', 'bash', PG_SH, dir],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
    },
    stop() {
      try {
        execFileSync('bash', [PG_SH, 'stop', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      } catch {}
    },
  };
  return pg;
}

/** A promise that resolves to `value` after `ms`, on a timer that does not keep the process alive
 * (for Promise.race deadlines: a plain sleep would hold the test file open until it fires). */
export function deadline(ms, value) {
  return new Promise((resolve) => setTimeout(resolve, ms, value).unref());
}

export { sleep };
