// A stand-in for Firebase Cloud Messaging HTTP v1 and Google's OAuth2 token endpoint: HTTP/2 over
// TLS on loopback, with the server certificate of the per-run test CA (lib/test-ca.mjs; the sender
// trusts it through CARILLON_OUTBOUND_CA_FILE).
//
//   POST /token                                   the service account's token_uri: verifies the
//        form (grant_type, assertion), the RS256 assertion's signature against the test service
//        account's public key, its header and claims; answers {access_token, expires_in, token_type}
//   POST /v1/projects/<project>/messages:send     verifies the path, the bearer (an issued, unrevoked
//        token), every header and the body's keys; answers {name} or the programmed failure
//
// Everything received is recorded (tokenRequests, sends), including what was wrong with it
// (`problems`: a test asserts it stays empty). Failures are programmed per device token:
//   fcm.program(deviceToken, ['unregistered', {status: 503, retryAfter: '7'}, 'unauthorized', ...])
// consumes one entry per send to that token, then answers 200.

import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID, verify } from 'node:crypto';
import http2 from 'node:http2';

import { testCa } from './test-ca.mjs';

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

// Headers libcurl sends on its own besides ours; anything else is a problem.
const PSEUDO = new Set([':method', ':path', ':scheme', ':authority']);
const SEND_HEADERS = new Set(['authorization', 'content-type', 'content-length', 'accept']);
const TOKEN_HEADERS = new Set(['content-type', 'content-length', 'accept']);

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function googleError(code, status, message, details = []) {
  return { error: { code, message, status, details } };
}

const PRESETS = {
  unregistered: () => ({
    status: 404,
    body: googleError(404, 'NOT_FOUND', 'Requested entity was not found.', [
      { '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' },
    ]),
  }),
  invalid: () => ({
    status: 400,
    body: googleError(400, 'INVALID_ARGUMENT', 'The registration token is not a valid FCM registration token', [
      { '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'INVALID_ARGUMENT' },
    ]),
  }),
  mismatch: () => ({
    status: 403,
    body: googleError(403, 'PERMISSION_DENIED', 'SenderId mismatch', [
      { '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'SENDER_ID_MISMATCH' },
    ]),
  }),
  // Revokes every token issued so far (as a revoked or early-expired token would be), then 401.
  unauthorized: (fcm) => {
    for (const t of fcm.issued.keys()) fcm.issued.set(t, false);
    return { status: 401, body: googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.') };
  },
  unavailable: () => ({ status: 503, retryAfter: '7', body: googleError(503, 'UNAVAILABLE', 'The service is unavailable.') }),
  throttled: () => ({
    status: 429,
    retryAfter: '3',
    body: googleError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded', [
      { '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'QUOTA_EXCEEDED' },
    ]),
  }),
};

/** A test service account: its JSON (as Google's console downloads it) and its public key. */
export function serviceAccount(tokenUri, { projectId = 'carillon-test', email } = {}) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const json = {
    type: 'service_account',
    project_id: projectId,
    private_key_id: randomUUID().replace(/-/g, ''),
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: email ?? `carillon-push@${projectId}.iam.gserviceaccount.com`,
    client_id: '1' + String(Date.now()).padStart(20, '0'),
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: tokenUri,
    auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
    client_x509_cert_url: 'https://www.googleapis.com/robot/v1/metadata/x509/x',
  };
  return { json, text: JSON.stringify(json), publicKey };
}

export class FcmStandin {
  constructor({ projectId = 'carillon-test', expiresIn = 3599, tokenDelayMs = 0, sendDelayMs = 0 } = {}) {
    this.projectId = projectId;
    this.expiresIn = expiresIn;
    this.tokenDelayMs = tokenDelayMs;
    this.sendDelayMs = sendDelayMs;
    this.tokenRequests = [];   // {headers, form, header, claims, ok, answer}
    this.sends = [];           // {path, headers, httpVersion, body, bearer, deviceToken, status}
    this.problems = [];        // what was wrong with a request, in words
    this.aborted = 0;          // requests the client reset before their body was complete (not checked)
    this.issued = new Map();   // access token -> valid
    this.programs = new Map(); // device token -> [responses]
    this.accounts = new Map(); // client_email -> public key
    this.sessions = 0;
    this.onSend = null;        // (record) => void, after each answered send
    this.tokenFailures = [];   // programmed token-endpoint answers {status, retryAfter?, body?}, consumed in order
  }

  async start() {
    const ca = testCa();
    this.server = http2.createSecureServer({ key: ca.serverKey, cert: ca.serverCert }, (req, res) => this.#handle(req, res));
    this.server.on('session', () => this.sessions++);
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `https://127.0.0.1:${this.server.address().port}`;
    this.tokenUri = `${this.url}/token`;
    this.caFile = ca.caFile;
    return this;
  }

  async stop() {
    await new Promise((r) => this.server.close(r));
  }

  /** A new service account this stand-in accepts: {json, text, publicKey}. */
  account(opts = {}) {
    const sa = serviceAccount(this.tokenUri, { projectId: this.projectId, ...opts });
    this.accounts.set(sa.json.client_email, sa);
    return sa;
  }

  program(deviceToken, responses) {
    this.programs.set(deviceToken, [...responses]);
  }

  reset() {
    this.tokenRequests.length = 0;
    this.sends.length = 0;
    this.problems.length = 0;
    this.programs.clear();
    this.tokenFailures.length = 0;
    this.sessions = 0;
  }

  #read(req) {
    return new Promise((resolve) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d) => (body += d));
      req.on('end', () => resolve(body));
    });
  }

  #checkHeaders(req, allowed, what) {
    for (const h of Object.keys(req.headers)) {
      if (!PSEUDO.has(h) && !allowed.has(h) && h !== 'user-agent') this.problems.push(`${what}: unexpected header ${h}`);
    }
    if (req.headers[':method'] !== 'POST') this.problems.push(`${what}: method ${req.headers[':method']}`);
    if (req.httpVersion !== '2.0') this.problems.push(`${what}: HTTP/${req.httpVersion}`);
  }

  async #handle(req, res) {
    const body = await this.#read(req);
    // Reset by the client mid-request (its connection failed, or it gave up): nothing to check and
    // nobody to answer; the sender sees a transport error and retries.
    if (req.aborted || req.stream?.rstCode) {
      this.aborted++;
      return;
    }
    const url = new URL(req.url, this.url);
    const json = (status, obj, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
      res.end(JSON.stringify(obj));
    };
    if (url.pathname === '/token') return this.#token(req, res, body, json);
    const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(url.pathname);
    if (m) {
      const answer = () => this.#send(req, body, m[1], json);
      if (this.sendDelayMs) setTimeout(answer, this.sendDelayMs);
      else answer();
      return;
    }
    this.problems.push(`unexpected path ${req.url}`);
    json(404, googleError(404, 'NOT_FOUND', 'no such path'));
  }

  /** Checks the assertion; returns what is wrong with it, or null. */
  #checkAssertion(assertion, rec) {
    const parts = String(assertion ?? '').split('.');
    if (parts.length !== 3) return 'assertion is not a compact JWS';
    try {
      rec.header = b64urlJson(parts[0]);
      rec.claims = b64urlJson(parts[1]);
    } catch {
      return 'assertion parts are not base64url JSON';
    }
    const sa = this.accounts.get(rec.claims.iss);
    if (!sa) return `unknown iss ${rec.claims.iss}`;
    const okSig = verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), sa.publicKey, Buffer.from(parts[2], 'base64url'));
    if (!okSig) return 'signature does not verify';
    try {
      assert.deepEqual(rec.header, { alg: 'RS256', typ: 'JWT', kid: sa.json.private_key_id });
      assert.deepEqual(Object.keys(rec.claims).sort(), ['aud', 'exp', 'iat', 'iss', 'scope']);
      assert.equal(rec.claims.scope, FCM_SCOPE);
      assert.equal(rec.claims.aud, this.tokenUri);
      assert.ok(Number.isInteger(rec.claims.iat) && Math.abs(rec.claims.iat - Date.now() / 1000) < 120, 'iat is now');
      assert.equal(rec.claims.exp, rec.claims.iat + 3600, 'exp = iat + 3600');
    } catch (e) {
      return `claims: ${e.message.split('\n')[0]}`;
    }
    return null;
  }

  #token(req, res, body, json) {
    this.#checkHeaders(req, TOKEN_HEADERS, 'token');
    const rec = { headers: { ...req.headers }, body };
    this.tokenRequests.push(rec);
    let why = null;
    if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') why = `content-type ${req.headers['content-type']}`;
    const form = new URLSearchParams(body);
    rec.form = Object.fromEntries(form);
    if (!why && [...form.keys()].sort().join() !== 'assertion,grant_type') why = `form keys ${[...form.keys()]}`;
    if (!why && form.get('grant_type') !== JWT_BEARER) why = `grant_type ${form.get('grant_type')}`;
    if (!why) why = this.#checkAssertion(form.get('assertion'), rec);
    const answer = () => {
      const fail = this.tokenFailures.shift();
      if (fail) {
        rec.ok = false;
        rec.why = `programmed ${fail.status}`;
        res.writeHead(fail.status, { 'content-type': 'application/json', ...(fail.retryAfter ? { 'retry-after': fail.retryAfter } : {}) });
        return res.end(JSON.stringify(fail.body ?? { error: 'temporarily_unavailable' }));
      }
      if (why) {
        rec.ok = false;
        rec.why = why;
        return json(400, { error: 'invalid_grant', error_description: why });
      }
      rec.ok = true;
      const token = `ya29.test-${randomUUID()}`;
      this.issued.set(token, true);
      rec.token = token;
      json(200, { access_token: token, expires_in: this.expiresIn, token_type: 'Bearer' });
    };
    if (this.tokenDelayMs) setTimeout(answer, this.tokenDelayMs);
    else answer();
  }

  #checkMessage(doc) {
    const problems = [];
    const keys = (o) => Object.keys(o ?? {});
    if (keys(doc).join() !== 'message') problems.push(`body keys ${keys(doc)}`);
    const msg = doc?.message ?? {};
    for (const k of keys(msg)) if (!['token', 'data', 'notification', 'android'].includes(k)) problems.push(`message.${k}`);
    if (typeof msg.token !== 'string' || !msg.token) problems.push('message.token');
    for (const [k, v] of Object.entries(msg.data ?? {})) if (typeof v !== 'string') problems.push(`data.${k} not a string`);
    for (const k of keys(msg.notification)) if (!['title', 'body'].includes(k)) problems.push(`notification.${k}`);
    for (const k of keys(msg.android)) if (!['ttl', 'priority', 'collapse_key'].includes(k)) problems.push(`android.${k}`);
    if (msg.android?.ttl !== undefined && !/^\d+s$/.test(msg.android.ttl)) problems.push(`android.ttl ${msg.android.ttl}`);
    if (msg.android?.priority !== undefined && !['high', 'normal'].includes(msg.android.priority)) problems.push('android.priority');
    return problems;
  }

  #send(req, body, project, json) {
    this.#checkHeaders(req, SEND_HEADERS, 'send');
    const rec = { at: Date.now(), path: req.url, headers: { ...req.headers }, httpVersion: req.httpVersion, raw: body };
    this.sends.push(rec);
    const finish = (status, obj, headers) => {
      rec.status = status;
      rec.answeredAt = Date.now();
      json(status, obj, headers);
      this.onSend?.(rec);
    };
    const auth = req.headers.authorization ?? '';
    rec.bearer = auth.startsWith('Bearer ') ? auth.slice(7) : null;
    if (project !== this.projectId) {
      this.problems.push(`project ${project}`);
      return finish(404, googleError(404, 'NOT_FOUND', 'Requested entity was not found.'));
    }
    if (!rec.bearer || this.issued.get(rec.bearer) !== true) {
      return finish(401, googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'));
    }
    if (!/^application\/json(; ?charset=utf-8)?$/i.test(req.headers['content-type'] ?? '')) this.problems.push(`send content-type ${req.headers['content-type']}`);
    try {
      rec.body = JSON.parse(body);
    } catch {
      // With what arrived: a cut body (its length against content-length) tells a transport fault
      // from a malformed one.
      this.problems.push(`send body is not JSON (${Buffer.byteLength(body)} bytes, content-length ${req.headers['content-length']}, ` +
        `stream ${req.stream?.id}, aborted ${req.aborted}): ${JSON.stringify(body.slice(0, 60))}…${JSON.stringify(body.slice(-30))}`);
      return finish(400, googleError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.'));
    }
    const bad = this.#checkMessage(rec.body);
    if (bad.length) {
      this.problems.push(...bad.map((b) => `send: ${b}`));
      return finish(400, googleError(400, 'INVALID_ARGUMENT', `Invalid JSON payload received. ${bad.join(', ')}`));
    }
    rec.deviceToken = rec.body.message.token;
    const queue = this.programs.get(rec.deviceToken);
    const next = queue?.shift();
    if (next) {
      const a = typeof next === 'string' ? PRESETS[next](this) : next;
      const headers = a.retryAfter !== undefined ? { 'retry-after': a.retryAfter } : {};
      return finish(a.status, a.body ?? googleError(a.status, 'UNKNOWN', 'programmed'), headers);
    }
    finish(200, { name: `projects/${this.projectId}/messages/${randomUUID()}` });
  }
}

/** Starts a stand-in: `await startFcm()`. */
export async function startFcm(opts) {
  return await new FcmStandin(opts).start();
}
