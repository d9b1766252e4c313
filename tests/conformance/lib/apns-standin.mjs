// An APNs stand-in: HTTP/2 over TLS on loopback (node:http2) with the test CA's server certificate
// (lib/test-ca.mjs), speaking Apple's provider API closely enough to check what Carillon sends:
//
//   POST /3/device/<hex token>
//   authorization: bearer <ES256 JWT {alg: ES256, kid}.{iss, iat}>   (token auth), or a TLS client
//                  certificate signed by the test CA (certificate auth; then no authorization)
//   apns-topic, apns-push-type (alert | voip | background), apns-priority (10 | 5),
//   apns-expiration (epoch seconds), apns-id (a UUID)
//   body: JSON {"aps": {...}, ...data keys}
//
// Every request is checked against that shape: the JWT's signature against the public half of the
// key registered for its kid, its claims (iss = that key's team, iat within the last hour and not in
// the future), the headers' formats, the body's JSON. A request that fails a check is answered 400
// with reason "StandinRejected" and its problems recorded (tests assert there are none). Otherwise
// the answer is 200 with the apns-id echoed, unless the test scripted something else for that token:
//
//   standin.script(token, [{status: 503}, {status: 200}])   answers in order (the last one repeats)
//   standin.script(token, [{status: 410, reason: 'Unregistered'}])
//   standin.script(token, [{status: 429, reason: 'TooManyRequests', retryAfter: '2'}])
//   standin.stall = true                                     hold every request unanswered
//   await standin.down(); await standin.up()                 close / listen again on the same port

import { createPublicKey, verify as cryptoVerify } from 'node:crypto';
import http2 from 'node:http2';

import { testCa } from './test-ca.mjs';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

export class ApnsStandin {
  constructor() {
    this.keys = new Map();     // kid -> {teamId, publicKey}
    this.verified = new Map(); // kid|JWT -> its signature verified
    this.requests = [];        // every request received (checked or not)
    this.problems = [];        // {path, problems[]} of requests that failed a check
    this.aborted = 0;          // requests the client reset before their body was complete (not checked)
    this.scripts = new Map();  // token -> [answer...]
    this.stall = false;
    this.held = new Set();
    this.sessions = 0;
    this.open = new Set();     // live HTTP/2 sessions
    this.server = null;
    this.port = 0;
  }

  /** Trust ES256 provider tokens with this kid, from this team, verified with this public key. */
  addKey(kid, teamId, publicKeyPem) {
    this.keys.set(kid, { teamId, publicKey: createPublicKey(publicKeyPem) });
    this.verified.clear();
  }

  script(token, answers) {
    this.scripts.set(token, [...answers]);
  }

  get url() {
    return `https://127.0.0.1:${this.port}`;
  }

  /** The requests for one device token. */
  to(token) {
    return this.requests.filter((r) => r.token === token);
  }

  /** Accepted (200) deliveries for one token. */
  delivered(token) {
    return this.to(token).filter((r) => r.status === 200);
  }

  async up() {
    const ca = testCa();
    this.server = http2.createSecureServer({
      key: ca.serverKey, cert: ca.serverCert, ca: ca.caCert, requestCert: true, rejectUnauthorized: false,
    });
    this.server.on('session', (s) => {
      this.sessions++;
      this.open.add(s);
      s.on('close', () => this.open.delete(s));
      s.on('error', () => {});
    });
    this.server.on('stream', (stream, headers) => this.#onStream(stream, headers));
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = this.server.address().port;
    return this;
  }

  /** Stop listening and drop every connection (requests held are reset). */
  async down() {
    if (!this.server) return;
    this.held.clear();
    const srv = this.server;
    this.server = null;
    await new Promise((resolve) => {
      srv.close(resolve);
      for (const s of this.open) s.destroy(); // close() waits for the sessions to end
    });
  }

  /** Answer the held requests now (after stall = false). */
  release() {
    const held = [...this.held];
    this.held.clear();
    for (const { stream, rec } of held) this.#answer(stream, rec);
  }

  #check(headers, body, session) {
    const p = [];
    const path = headers[':path'] ?? '';
    const m = /^\/3\/device\/([0-9a-fA-F]+)$/.exec(path);
    if (headers[':method'] !== 'POST') p.push(`method ${headers[':method']}`);
    if (!m) p.push(`path ${path}`);
    if (!headers['apns-topic']) p.push('no apns-topic');
    if (!['alert', 'voip', 'background'].includes(headers['apns-push-type'])) p.push(`apns-push-type ${headers['apns-push-type']}`);
    if (!['10', '5'].includes(headers['apns-priority'])) p.push(`apns-priority ${headers['apns-priority']}`);
    if (headers['apns-expiration'] !== undefined &&
        !(/^\d+$/.test(headers['apns-expiration']) && Number(headers['apns-expiration']) > Date.now() / 1000)) {
      p.push(`apns-expiration ${headers['apns-expiration']}`);
    }
    if (!UUID.test(headers['apns-id'] ?? '')) p.push(`apns-id ${headers['apns-id']}`);
    let jwt = null;
    const auth = headers.authorization;
    if (auth !== undefined) {
      jwt = this.#checkJwt(auth, p);
    } else {
      const sock = session.socket;
      if (!sock.authorized) p.push(`no authorization and no trusted client certificate (${sock.authorizationError})`);
    }
    let json = null;
    try {
      json = JSON.parse(body);
      if (typeof json !== 'object' || json === null || typeof json.aps !== 'object') p.push('body without aps');
    } catch {
      p.push('body is not JSON');
    }
    const limit = headers['apns-push-type'] === 'voip' ? 5120 : 4096;
    if (Buffer.byteLength(body) > limit) p.push(`body of ${Buffer.byteLength(body)} bytes`);
    return { problems: p, token: m?.[1], jwt, json };
  }

  #checkJwt(auth, p) {
    const mm = /^bearer ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(auth);
    if (!mm) {
      p.push(`authorization ${auth.slice(0, 40)}`);
      return null;
    }
    let header, claims;
    try {
      header = b64urlJson(mm[1]);
      claims = b64urlJson(mm[2]);
    } catch {
      p.push('JWT parts are not JSON');
      return null;
    }
    const key = this.keys.get(header.kid);
    if (header.alg !== 'ES256') p.push(`JWT alg ${header.alg}`);
    if (!key) {
      p.push(`JWT kid ${header.kid} unknown`);
      return { header, claims };
    }
    // A provider token is reused for many requests: its signature is verified once (per key).
    const raw = `${header.kid}|${mm[1]}.${mm[2]}.${mm[3]}`;
    let ok = this.verified.get(raw);
    if (ok === undefined) {
      const sig = Buffer.from(mm[3], 'base64url');
      ok = sig.length === 64 &&
        cryptoVerify('sha256', Buffer.from(`${mm[1]}.${mm[2]}`), { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
      this.verified.set(raw, ok);
    }
    if (!ok) p.push('JWT signature does not verify');
    if (claims.iss !== key.teamId) p.push(`JWT iss ${claims.iss}`);
    const now = Date.now() / 1000;
    if (!Number.isInteger(claims.iat) || claims.iat > now + 5 || claims.iat < now - 3600) p.push(`JWT iat ${claims.iat}`);
    const extra = Object.keys(claims).filter((k) => k !== 'iss' && k !== 'iat');
    if (extra.length) p.push(`JWT claims ${extra}`);
    const extraH = Object.keys(header).filter((k) => k !== 'alg' && k !== 'kid');
    if (extraH.length) p.push(`JWT header ${extraH}`);
    return { header, claims, raw: `${mm[1]}.${mm[2]}.${mm[3]}` };
  }

  #onStream(stream, headers) {
    stream.on('error', () => {});
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => (body += d));
    stream.on('end', () => {
      if (stream.aborted || stream.rstCode) { // reset by the client: nothing to check or answer
        this.aborted++;
        return;
      }
      const { problems, token, jwt, json } = this.#check(headers, body, stream.session);
      const rec = {
        at: Date.now(), path: headers[':path'], token, headers: { ...headers }, body, json, jwt, problems,
        clientCert: stream.session.socket.getPeerCertificate?.()?.subject?.CN ?? null,
        session: stream.session, status: null,
      };
      this.requests.push(rec);
      if (problems.length) {
        this.problems.push({ path: rec.path, problems });
        rec.status = 400;
        stream.respond({ ':status': 400, 'apns-id': headers['apns-id'] ?? '', 'content-type': 'application/json' });
        stream.end(JSON.stringify({ reason: 'StandinRejected', problems }));
        return;
      }
      if (this.stall) {
        this.held.add({ stream, rec });
        return;
      }
      this.#answer(stream, rec);
    });
  }

  #answer(stream, rec) {
    if (stream.destroyed || stream.closed) return;
    const queue = this.scripts.get(rec.token);
    const a = queue?.length ? (queue.length > 1 ? queue.shift() : queue[0]) : { status: 200 };
    rec.status = a.status;
    const h = { ':status': a.status, 'apns-id': rec.headers['apns-id'] };
    if (a.retryAfter !== undefined) h['retry-after'] = a.retryAfter;
    if (a.status === 200) {
      stream.respond(h, { endStream: true });
      return;
    }
    h['content-type'] = 'application/json';
    stream.respond(h);
    const reason = a.reason ?? (a.status === 410 ? 'Unregistered' : a.status === 429 ? 'TooManyRequests' : 'ServiceUnavailable');
    stream.end(JSON.stringify(a.status === 410 ? { reason, timestamp: Date.now() } : { reason }));
  }
}

export async function startApnsStandin() {
  return await new ApnsStandin().up();
}
