// A Kinesis Data Streams stand-in for the streaming export tests: a plain HTTP server on loopback
// that answers PutRecords as Kinesis does, after checking the request the way Kinesis would:
//   - POST /, X-Amz-Target: Kinesis_20131202.PutRecords, Content-Type: application/x-amz-json-1.1;
//   - a SigV4 signature (service kinesis, the test's region and credentials, the session token
//     signed) recomputed with @smithy/signature-v4, the AWS SDK for JavaScript's own signer, over
//     exactly the headers the request lists as signed; X-Amz-Content-Sha256 must be the body's hash;
//   - a body of {StreamName | StreamARN, Records: [{Data: base64, PartitionKey}]}, 1..500 records.
// A request failing any check gets Kinesis's error shape and is kept in `rejected` (tests assert it
// stays empty). Every accepted call is kept in `calls`; the records Kinesis would have stored are
// appended, in order, to `streams[name]` (one shard: a channel's records keep their order).
// `failRecord(record, call)` lets a test fail chosen records with
// ProvisionedThroughputExceededException, `failCall(call)` the whole call with an HTTP error.

import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';

class NodeSha256 {
  constructor(secret) {
    this.h = secret ? createHmac('sha256', secret) : createHash('sha256');
  }
  update(data) {
    this.h.update(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }
  async digest() {
    return new Uint8Array(this.h.digest());
  }
}

function parseAuthorization(h) {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
    h ?? '',
  );
  if (!m) return null;
  return { akid: m[1], date: m[2], region: m[3], service: m[4], signedHeaders: m[5].split(';'), signature: m[6] };
}

function amzDate(s) {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(s ?? '');
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : null;
}

/**
 * opts.credentials: {accessKeyId, secretAccessKey, sessionToken?} the server signs with (null: the
 * requests must be unsigned); opts.region.
 */
export async function startKinesisStandin({ credentials, region = 'us-east-1' } = {}) {
  const standin = {
    url: null,
    calls: [], // accepted calls: {index, streamName, records: [{event, partitionKey, failed}], at}
    rejected: [], // {reason, headers}
    streams: {}, // name -> [{event, partitionKey, call}]
    failRecord: () => false,
    failCall: () => null,
    onCall: null,
    _waiters: [],
  };

  async function verifySignature(req, body) {
    const a = parseAuthorization(req.headers.authorization);
    if (!credentials) return req.headers.authorization ? 'an unsigned request was expected' : null;
    if (!a) return `Authorization header missing or malformed: ${req.headers.authorization}`;
    if (a.akid !== credentials.accessKeyId) return `access key ${a.akid}`;
    if (a.region !== region || a.service !== 'kinesis') return `scope ${a.region}/${a.service}`;
    const date = amzDate(req.headers['x-amz-date']);
    if (!date) return 'X-Amz-Date missing';
    if (Math.abs(date.getTime() - Date.now()) > 5 * 60 * 1000) return 'X-Amz-Date too far from now';
    for (const h of ['host', 'x-amz-date', 'x-amz-target', 'content-type', 'x-amz-content-sha256']) {
      if (!a.signedHeaders.includes(h)) return `${h} is not signed`;
    }
    if (credentials.sessionToken) {
      if (req.headers['x-amz-security-token'] !== credentials.sessionToken) return 'X-Amz-Security-Token';
      if (!a.signedHeaders.includes('x-amz-security-token')) return 'the session token is not signed';
    }
    if (req.headers['x-amz-content-sha256'] !== createHash('sha256').update(body).digest('hex'))
      return 'X-Amz-Content-Sha256 is not the hash of the body';
    const headers = {};
    for (const h of a.signedHeaders) {
      if (req.headers[h] === undefined) return `signed header ${h} absent`;
      headers[h] = req.headers[h];
    }
    const signer = new SignatureV4({ service: 'kinesis', region, sha256: NodeSha256, credentials });
    const [hostname, port] = req.headers.host.split(':');
    const signed = await signer.sign(
      { method: req.method, protocol: 'http:', hostname, port: port ? Number(port) : undefined, path: req.url.split('?')[0], query: {}, headers, body },
      { signingDate: date, signableHeaders: new Set(a.signedHeaders) },
    );
    const ours = parseAuthorization(signed.headers.authorization);
    if (!ours) return 'could not recompute the signature';
    if (ours.signedHeaders.join(';') !== a.signedHeaders.join(';')) return `signed headers ${ours.signedHeaders} vs ${a.signedHeaders}`;
    if (ours.signature !== a.signature) return 'signature mismatch';
    return null;
  }

  function reject(res, status, type, reason, req) {
    standin.rejected.push({ reason, headers: req.headers });
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
    res.end(JSON.stringify({ __type: type, message: reason }));
  }

  async function handle(req, res, body) {
    if (req.method !== 'POST' || req.url !== '/') return reject(res, 404, 'UnknownOperationException', `${req.method} ${req.url}`, req);
    if (req.headers['x-amz-target'] !== 'Kinesis_20131202.PutRecords')
      return reject(res, 400, 'UnknownOperationException', `X-Amz-Target ${req.headers['x-amz-target']}`, req);
    if (req.headers['content-type'] !== 'application/x-amz-json-1.1')
      return reject(res, 400, 'SerializationException', `Content-Type ${req.headers['content-type']}`, req);
    const bad = await verifySignature(req, body);
    if (bad) return reject(res, 403, 'InvalidSignatureException', bad, req);
    let doc;
    try {
      doc = JSON.parse(body);
    } catch {
      return reject(res, 400, 'SerializationException', 'body is not JSON', req);
    }
    const streamName = doc.StreamName ?? doc.StreamARN?.split(':stream/')[1];
    if (!streamName || !Array.isArray(doc.Records) || doc.Records.length < 1 || doc.Records.length > 500)
      return reject(res, 400, 'ValidationException', 'StreamName and 1..500 Records required', req);
    const call = { index: standin.calls.length, streamName, records: [], at: Date.now() };
    for (const r of doc.Records) {
      if (typeof r.Data !== 'string' || typeof r.PartitionKey !== 'string' || r.PartitionKey.length > 256)
        return reject(res, 400, 'ValidationException', 'Records[].Data and PartitionKey', req);
      let event;
      try {
        event = JSON.parse(Buffer.from(r.Data, 'base64').toString('utf8'));
      } catch {
        return reject(res, 400, 'ValidationException', 'record Data is not base64 JSON', req);
      }
      call.records.push({ event, partitionKey: r.PartitionKey, failed: false });
    }
    standin.calls.push(call);
    const callFailure = standin.failCall(call);
    if (callFailure) {
      call.failedWhole = true;
      res.writeHead(callFailure.status ?? 500, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ __type: callFailure.type ?? 'InternalFailure', message: 'injected by the test' }));
      standin._notify();
      return;
    }
    const out = [];
    let failed = 0;
    const stream = (standin.streams[streamName] ??= []);
    for (const rec of call.records) {
      if (standin.failRecord(rec, call)) {
        rec.failed = true;
        failed++;
        out.push({ ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded for shard shardId-000000000000 (injected)' });
      } else {
        stream.push({ event: rec.event, partitionKey: rec.partitionKey, call: call.index });
        out.push({ SequenceNumber: String(49590338271490256608559692538361571095921575989136588898n + BigInt(stream.length)), ShardId: 'shardId-000000000000' });
      }
    }
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
    res.end(JSON.stringify({ FailedRecordCount: failed, Records: out, EncryptionType: 'NONE' }));
    standin._notify();
  }

  standin._notify = () => {
    const w = standin._waiters;
    standin._waiters = [];
    for (const f of w) f();
  };

  /** Resolves when pred() holds (checked after every call), or rejects after timeoutMs. */
  standin.waitFor = async (pred, timeoutMs = 60000, what = 'condition') => {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`kinesis stand-in: timed out waiting for ${what}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        standin._waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  };

  standin.records = (name) => standin.streams[name] ?? [];

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((err) => {
        standin.rejected.push({ reason: `stand-in error: ${err.stack}`, headers: req.headers });
        res.writeHead(500);
        res.end();
      });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  standin.url = `http://127.0.0.1:${server.address().port}`;
  standin.close = () =>
    new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections();
    });
  standin.server = server;
  return standin;
}
