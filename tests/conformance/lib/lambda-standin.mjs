// A local stand-in for the AWS Lambda Invoke API (plain HTTP on loopback), for the channel-flow tests.
//
// POST /2015-03-31/functions/{FunctionName or ARN, percent-encoded}/invocations is checked the way
// Lambda would: the path, X-Amz-Invocation-Type: Event, the JSON payload, and the SigV4 signature
// (service lambda), recomputed with @smithy/signature-v4 from the headers the request says it signed
// and compared with the one it carries (also the payload hash, the credential scope, the key id and
// the session token). A valid asynchronous invocation is answered 202 at once, as Lambda does, and
// the function then runs on its own: it is plain JS (a processor written with the stock
// @aws-sdk/client-chime-sdk-messaging, calling ChannelFlowCallback).
//
// POST /hooks/{name} is a plain webhook (CARILLON_FLOW_WEBHOOKS): the same payload, no signature.
//
// Every call is recorded (invocations), every deviation too (problems: a test asserts it is empty).
// A function may be set to answer an HTTP status instead (answers[name] = 503 / 404 ...), or never
// to answer (answers[name] = 'hang'), to test retries and restarts.

import { createHash } from 'node:crypto';
import http from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '@smithy/core/checksum';

const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;
const AUTH = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** 20240102T030405Z -> Date */
function amzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s ?? '');
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : null;
}

/**
 * Verify a request's SigV4 signature against `credentials`; returns a list of problems (empty: valid).
 * rawPath: the request path exactly as received (Lambda canonicalises it by encoding each segment
 * once more, as @smithy/signature-v4 does by default).
 */
export async function verifySigV4({ method, rawPath, headers, body, credentials, region, service }) {
  const problems = [];
  const auth = headers.authorization;
  const m = AUTH.exec(auth ?? '');
  if (!m) return [`Authorization header missing or malformed: ${auth}`];
  const [, akid, day, scopeRegion, scopeService, signedList, signature] = m;
  if (akid !== credentials.accessKeyId) problems.push(`access key id ${akid}, expected ${credentials.accessKeyId}`);
  if (scopeRegion !== region) problems.push(`scope region ${scopeRegion}, expected ${region}`);
  if (scopeService !== service) problems.push(`scope service ${scopeService}, expected ${service}`);
  const date = amzDate(headers['x-amz-date']);
  if (!date) return [...problems, `X-Amz-Date missing or malformed: ${headers['x-amz-date']}`];
  if (headers['x-amz-date'].slice(0, 8) !== day) problems.push(`scope date ${day} is not the X-Amz-Date's day`);
  if (Math.abs(Date.now() - date.getTime()) > 5 * 60 * 1000) problems.push(`X-Amz-Date ${headers['x-amz-date']} is not now`);
  const bodyHash = createHash('sha256').update(body).digest('hex');
  if (headers['x-amz-content-sha256'] !== undefined && headers['x-amz-content-sha256'] !== bodyHash)
    problems.push(`X-Amz-Content-Sha256 ${headers['x-amz-content-sha256']} is not the body's hash ${bodyHash}`);
  if ((headers['x-amz-security-token'] ?? null) !== (credentials.sessionToken ?? null))
    problems.push(`X-Amz-Security-Token ${headers['x-amz-security-token']}, expected ${credentials.sessionToken}`);
  const signed = signedList.split(';');
  for (const h of ['host', 'x-amz-date']) if (!signed.includes(h)) problems.push(`${h} is not signed (SignedHeaders=${signedList})`);
  if (credentials.sessionToken && !signed.includes('x-amz-security-token')) problems.push('the session token is not signed');
  const toSign = {};
  for (const h of signed) {
    if (headers[h] === undefined) problems.push(`signed header ${h} is not in the request`);
    else toSign[h] = headers[h];
  }
  const [hostname, port] = (headers.host ?? '').split(':');
  const signer = new SignatureV4({ credentials, region, service, sha256: Sha256 });
  const again = await signer.sign(
    { method, protocol: 'http:', hostname, port: port ? Number(port) : undefined, path: rawPath, query: {}, headers: toSign, body },
    { signingDate: date },
  );
  const want = again.headers.authorization ?? again.headers.Authorization;
  if (want !== auth) problems.push(`signature mismatch:\n  got  ${auth}\n  want ${want}`);
  return problems;
}

/**
 * Start the stand-in. opts: region, credentials ({accessKeyId, secretAccessKey, sessionToken}, the
 * ones Carillon is given through AWS_*; null: requests must be unsigned), functions: {name: fn}
 * where fn(event, call) runs after the 202 (call = the recorded invocation).
 * Returns {url, port, invocations, problems, functions, answers, waitFor, close}.
 */
export async function startLambdaStandIn({ region = 'us-east-1', credentials = null, functions = {} } = {}) {
  const invocations = [];
  const problems = [];
  const answers = {}; // function name -> HTTP status to answer instead of running it
  const waiters = new Set();
  const note = () => {
    for (const w of [...waiters]) w();
  };

  const server = http.createServer(async (req, res) => {
    const body = await readBody(req);
    const [rawPath] = req.url.split('?');
    const call = { at: Date.now(), method: req.method, rawPath, headers: req.headers, body, kind: null, name: null, event: null };
    const problem = (p) => problems.push(`${req.method} ${req.url}: ${p}`);
    let name;
    const invoke = INVOKE_PATH.exec(rawPath);
    const hook = /^\/hooks\/([A-Za-z0-9_-]+)$/.exec(rawPath);
    if (req.method === 'POST' && invoke) {
      call.kind = 'lambda';
      const fn = decodeURIComponent(invoke[1]);
      call.function = fn;
      name = fn.startsWith('arn:') ? fn.split(':')[6] : fn;
      if (req.headers['x-amz-invocation-type'] !== 'Event') problem(`X-Amz-Invocation-Type is ${req.headers['x-amz-invocation-type']}, not Event`);
      if (credentials) {
        const p = await verifySigV4({ method: 'POST', rawPath, headers: req.headers, body, credentials, region, service: 'lambda' });
        for (const x of p) problem(x);
        if (p.length) {
          call.status = 403;
          invocations.push(call);
          note();
          res.writeHead(403, { 'content-type': 'application/json', 'x-amzn-errortype': 'InvalidSignatureException' });
          res.end(JSON.stringify({ message: 'The request signature we calculated does not match the signature you provided.' }));
          return;
        }
      } else if (req.headers.authorization) {
        problem('signed although no credentials were given');
      }
    } else if (req.method === 'POST' && hook) {
      call.kind = 'webhook';
      name = hook[1];
      if (req.headers.authorization) problem('a webhook call carries an Authorization header');
    } else {
      problem('unexpected request');
      res.writeHead(404).end();
      return;
    }
    call.name = name;
    if (!/^application\/json/.test(req.headers['content-type'] ?? '')) problem(`Content-Type ${req.headers['content-type']}`);
    try {
      call.event = JSON.parse(body);
    } catch {
      problem(`the body is not JSON: ${body.slice(0, 200)}`);
    }
    const e = call.event;
    if (e) {
      if (e.EventType !== 'CHANNEL_MESSAGE_EVENT') problem(`EventType ${e.EventType}`);
      if (!/^[0-9a-f]{32}$/.test(e.CallbackId ?? '')) problem(`CallbackId ${e.CallbackId}`);
      const cm = e.ChannelMessage ?? {};
      for (const k of ['MessageId', 'ChannelArn', 'Content', 'Persistence', 'Type', 'CreatedTimestamp'])
        if (typeof cm[k] !== 'string') problem(`ChannelMessage.${k} missing: ${JSON.stringify(cm)}`);
      if (typeof cm.Sender?.Arn !== 'string' || typeof cm.Sender?.Name !== 'string') problem(`ChannelMessage.Sender ${JSON.stringify(cm.Sender)}`);
      if (cm.Type !== 'STANDARD') problem(`a ${cm.Type} message reached a processor`);
    }
    const fn = functions[name];
    if (answers[name] === 'hang') {
      // Never answers (until the caller gives up or the stand-in closes).
      call.status = 'hang';
      invocations.push(call);
      note();
      return;
    }
    const status = answers[name] ?? (fn ? (call.kind === 'lambda' ? 202 : 200) : 404);
    call.status = status;
    invocations.push(call);
    note();
    if (status === 404 && call.kind === 'lambda') {
      res.writeHead(404, { 'content-type': 'application/json', 'x-amzn-errortype': 'ResourceNotFoundException' });
      res.end(JSON.stringify({ Type: 'User', message: `Function not found: ${call.function}` }));
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(status < 300 ? '' : JSON.stringify({ message: 'stand-in failure' }));
    if (status < 300 && fn && e) {
      // Asynchronous invocation: the function runs after the answer, on its own.
      setImmediate(async () => {
        try {
          call.result = await fn(e, call);
        } catch (err) {
          call.error = err;
        }
        call.done = true;
        note();
      });
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    invocations,
    problems,
    functions,
    answers,
    /** The calls for a message (its MessageId). */
    callsFor(messageId) {
      return invocations.filter((c) => c.event?.ChannelMessage?.MessageId === messageId);
    },
    note,
    /** Resolve once predicate() is true; reject after ms with the calls seen. */
    waitFor(predicate, ms = 10000, what = 'condition') {
      return new Promise((resolve, reject) => {
        const check = () => {
          let ok = false;
          try {
            ok = predicate();
          } catch (e) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(e);
            return;
          }
          if (ok) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out after ${ms} ms waiting for ${what}; calls: ${JSON.stringify(invocations.map((c) => [c.kind, c.name, c.status, c.event?.ChannelMessage?.MessageId]))}; problems: ${problems.join('\n')}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    close() {
      return new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      });
    },
  };
}
