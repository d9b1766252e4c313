// SDK clients and hand-signed raw HTTP requests against a running Carillon.

import http from 'node:http';
import { ChimeSDKIdentityClient } from '@aws-sdk/client-chime-sdk-identity';
import { ChimeSDKMessagingClient } from '@aws-sdk/client-chime-sdk-messaging';
import { SignatureV4 } from '@smithy/signature-v4';
// The SDK clients themselves take their SHA-256 from @smithy/core/checksum.
import { Sha256 } from '@smithy/core/checksum';

// The suite targets Node 20 on purpose; the SDK's "will require node >=22 from 2027" notice is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

function clientConfig(srv, creds) {
  if (!creds || !creds.accessKeyId || !creds.secretAccessKey) throw new Error('clientConfig: creds missing');
  return {
    endpoint: srv.endpoint,
    region: srv.region,
    credentials: {
      accessKeyId: creds.accessKeyId,
      secretAccessKey: creds.secretAccessKey,
      ...(creds.sessionToken !== undefined ? { sessionToken: creds.sessionToken } : {}),
    },
    maxAttempts: 1,
  };
}

export function identityClient(srv, creds = srv.rootKey) {
  return new ChimeSDKIdentityClient(clientConfig(srv, creds));
}

export function messagingClient(srv, creds = srv.rootKey) {
  return new ChimeSDKMessagingClient(clientConfig(srv, creds));
}

// RFC 3986 encoding as the SDKs and the SigV4 signer use it (unreserved = A-Za-z0-9-_.~).
export function rfc3986(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

export function buildQuery(query) {
  if (!query) return '';
  const parts = [];
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) parts.push(`${rfc3986(k)}=${rfc3986(String(one))}`);
  }
  return parts.length ? '?' + parts.join('&') : '';
}

function send(srv, { method, path, query, headers, body, timeoutMs = 15000, agent }) {
  const target = path + (typeof query === 'string' ? query : buildQuery(query));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: srv.port,
        method,
        path: target,
        headers,
        agent: agent ?? false,
        setHost: !Object.keys(headers ?? {}).some((h) => h.toLowerCase() === 'host'),
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          const text = raw.toString('utf8');
          let json;
          if (text.length) {
            try {
              json = JSON.parse(text);
            } catch {}
          }
          resolve({ status: res.statusCode, headers: res.headers, body: text, raw, json });
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`request timed out after ${timeoutMs} ms: ${method} ${target}`)));
    req.on('error', reject);
    if (body !== undefined && body !== null) req.end(body);
    else req.end();
  });
}

/**
 * SigV4-sign a request without sending it. Returns {method, path, query, headers, body}; the
 * headers include host, x-amz-date, x-amz-content-sha256, authorization (and
 * x-amz-security-token with a session token). Options as for signedFetch.
 */
export async function signRequest(srv, opts = {}) {
  const {
    method = 'GET',
    path = '/',
    query,
    headers = {},
    creds = srv.rootKey,
    date,
    service = 'chime',
    region = srv.region,
  } = opts;
  let { body } = opts;
  const hdrs = { ...headers };
  const lower = new Set(Object.keys(hdrs).map((h) => h.toLowerCase()));
  if (body !== undefined && body !== null && typeof body === 'object' && !Buffer.isBuffer(body) && !(body instanceof Uint8Array)) {
    body = JSON.stringify(body);
    if (!lower.has('content-type')) hdrs['content-type'] = 'application/json';
  }
  if (body !== undefined && body !== null && opts.contentLength !== false && !lower.has('content-length')) {
    hdrs['content-length'] = String(Buffer.byteLength(body));
  }
  if (!lower.has('host')) hdrs['host'] = `127.0.0.1:${srv.port}`;
  const sessionToken = opts.sessionToken !== undefined ? opts.sessionToken : creds.sessionToken;
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: creds.accessKeyId,
      secretAccessKey: creds.secretAccessKey,
      ...(sessionToken ? { sessionToken } : {}),
    },
    region,
    service,
    sha256: Sha256,
    uriEscapePath: true,
    applyChecksum: true,
  });
  const q = {};
  if (query && typeof query === 'object') for (const [k, v] of Object.entries(query)) if (v !== undefined) q[k] = Array.isArray(v) ? v.map(String) : String(v);
  const signed = await signer.sign(
    { method, protocol: 'http:', hostname: '127.0.0.1', port: srv.port, path, query: q, headers: hdrs, body },
    { signingDate: date ?? new Date() },
  );
  return { method, path, query: q, headers: { ...signed.headers }, body };
}

/**
 * Send a SigV4-signed (service "chime") request.
 * path: the raw path as it goes on the wire (labels already percent-encoded).
 * query: object of decoded name -> value (or a pre-built string starting with "?"; then it is
 *        not signed correctly unless already canonical — prefer the object form).
 * body: string | Buffer | object (objects are JSON-encoded with content-type application/json).
 * creds: {accessKeyId, secretAccessKey[, sessionToken]} (default: the root key).
 * sessionToken: overrides creds.sessionToken.
 * date: signing Date (default now). service/region: signing scope overrides.
 * contentLength: false to leave Content-Length out (the request is still signed over the body).
 * sendQuery: a raw query string ("?a=b") to put on the wire instead of the signed one (tampering).
 * sendPath: a raw path to put on the wire instead of the signed one (tampering).
 * sendHeaders: headers merged over the signed ones before sending (tampering; lower-case names).
 * sendBody: a body to send instead of the signed one (tampering; Content-Length follows it).
 */
export async function signedFetch(srv, opts = {}) {
  const { timeoutMs, agent } = opts;
  const signed = await signRequest(srv, opts);
  const { method, path, query: q, body } = signed;
  const wireHeaders = { ...signed.headers };
  if (opts.sendHeaders) {
    for (const [k, v] of Object.entries(opts.sendHeaders)) {
      for (const h of Object.keys(wireHeaders)) if (h.toLowerCase() === k.toLowerCase()) delete wireHeaders[h];
      if (v !== undefined) wireHeaders[k] = v;
    }
  }
  let wireBody = body;
  if (opts.sendBody !== undefined) {
    wireBody = opts.sendBody;
    for (const h of Object.keys(wireHeaders)) if (h.toLowerCase() === 'content-length') wireHeaders[h] = String(Buffer.byteLength(wireBody));
  }
  const wireQuery = opts.sendQuery !== undefined ? opts.sendQuery : q;
  const wirePath = opts.sendPath !== undefined ? opts.sendPath : path;
  return send(srv, { method, path: wirePath, query: wireQuery, headers: wireHeaders, body: wireBody, timeoutMs, agent });
}

/** An unsigned request. Same options as signedFetch minus the signing ones. */
export async function rawFetch(srv, opts = {}) {
  const { method = 'GET', path = '/', query, headers = {}, timeoutMs, agent } = opts;
  let { body } = opts;
  const hdrs = { ...headers };
  const lower = new Set(Object.keys(hdrs).map((h) => h.toLowerCase()));
  if (body !== undefined && body !== null && typeof body === 'object' && !Buffer.isBuffer(body) && !(body instanceof Uint8Array)) {
    body = JSON.stringify(body);
    if (!lower.has('content-type')) hdrs['content-type'] = 'application/json';
  }
  if (body !== undefined && body !== null && opts.contentLength !== false && !lower.has('content-length')) {
    hdrs['content-length'] = String(Buffer.byteLength(body));
  }
  return send(srv, { method, path, query, headers: hdrs, body, timeoutMs, agent });
}

/**
 * POST /carillon/credentials, signed by `creds` (default root). Returns the raw response.
 */
export function requestCredentials(srv, body, { creds = srv.rootKey, ...rest } = {}) {
  return signedFetch(srv, { method: 'POST', path: '/carillon/credentials', body, creds, ...rest });
}

/**
 * Mint a user credential and return {accessKeyId, secretAccessKey, sessionToken, expiration}.
 * Throws with the response if the server does not answer 200.
 */
export async function mintUserCredentials(srv, appInstanceUserArn, durationSeconds) {
  const body = { AppInstanceUserArn: appInstanceUserArn };
  if (durationSeconds !== undefined) body.DurationSeconds = durationSeconds;
  const res = await requestCredentials(srv, body);
  if (res.status !== 200 || !res.json?.Credentials) {
    throw new Error(`POST /carillon/credentials for ${appInstanceUserArn} answered ${res.status}: ${res.body}`);
  }
  const c = res.json.Credentials;
  return {
    accessKeyId: c.AccessKeyId,
    secretAccessKey: c.SecretAccessKey,
    sessionToken: c.SessionToken,
    expiration: c.Expiration,
  };
}
