// Talk to the server over a bare TCP socket, for requests no HTTP client will send.

import net from 'node:net';

/** Try to parse one HTTP/1.x response from `buf`. Returns null when incomplete. */
export function parseResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1');
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) return { status: NaN, headers: {}, body: '', statusLine: lines[0], complete: true };
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const status = Number(m[1]);
  const rest = buf.subarray(end + 4);
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { status, headers, body: '', complete: true, extra: rest.length };
  }
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (rest.length < n) return null;
    return { status, headers, body: rest.subarray(0, n).toString('utf8'), complete: true, extra: rest.length - n };
  }
  // no length: the body ends when the connection closes
  return { status, headers, body: rest.toString('utf8'), complete: false };
}

/**
 * Open a socket, write `chunks` (strings/Buffers, in order), and wait for the first response,
 * the connection closing, or `timeoutMs`. Resolves
 * {response, closed, reset, timedOut, ms, raw} — never rejects for network errors.
 * With keepOpen: true the socket is returned (in .socket) instead of being destroyed.
 */
export function rawExchange(srv, chunks, { timeoutMs = 5000, keepOpen = false } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = net.connect(srv.port, '127.0.0.1');
    const parts = [];
    let done = false;
    let reset = false;
    let closed = false;
    const finish = (timedOut) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const raw = Buffer.concat(parts);
      const response = raw.length ? parseResponse(raw) : null;
      if (!keepOpen) sock.destroy();
      resolve({ response, closed, reset, timedOut, ms: Date.now() - started, raw, socket: keepOpen ? sock : undefined });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    sock.on('data', (d) => {
      parts.push(d);
      const r = parseResponse(Buffer.concat(parts));
      if (r && r.complete) finish(false);
    });
    sock.on('error', (e) => {
      if (['ECONNRESET', 'EPIPE'].includes(e.code)) reset = true;
    });
    sock.on('close', () => {
      closed = true;
      finish(false);
    });
    sock.on('connect', async () => {
      for (const c of chunks) {
        if (done) break;
        if (typeof c === 'function') await c(sock);
        else
          await new Promise((r) =>
            sock.write(c, () => r()),
          );
      }
    });
  });
}

/** Serialise a request (signed headers from signRequest) into raw HTTP/1.1 bytes. */
export function serializeRequest({ method, path, query, headers, body }, { omit = [] } = {}) {
  const qs = query && Object.keys(query).length
    ? '?' + Object.entries(query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')
    : '';
  let head = `${method} ${path}${qs} HTTP/1.1\r\n`;
  const omitted = new Set(omit.map((h) => h.toLowerCase()));
  for (const [k, v] of Object.entries(headers)) if (!omitted.has(k.toLowerCase())) head += `${k}: ${v}\r\n`;
  head += '\r\n';
  return body === undefined || body === null ? [head] : [head, Buffer.isBuffer(body) ? body : Buffer.from(body)];
}
