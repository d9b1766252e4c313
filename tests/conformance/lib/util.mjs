// Assertions and small helpers shared by the conformance tests.

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { ACCOUNT_ID, REGION } from './server.mjs';

// The modeled HTTP status and body `Code` of every Chime error shape (ROUTES.md 6.6).
export const ERRORS = {
  BadRequestException: { status: 400, code: 'BadRequest' },
  ResourceLimitExceededException: { status: 400, code: 'ResourceLimitExceeded' },
  UnauthorizedClientException: { status: 401, code: 'Unauthorized' },
  ForbiddenException: { status: 403, code: 'Forbidden' },
  NotFoundException: { status: 404, code: 'NotFound' },
  ConflictException: { status: 409, code: 'Conflict' },
  ThrottledClientException: { status: 429, code: 'Throttled' },
  ServiceFailureException: { status: 500, code: 'ServiceFailure' },
  ServiceUnavailableException: { status: 503, code: 'ServiceUnavailable' },
};

function describeErr(err) {
  if (!err) return String(err);
  return `${err.name}${err.$metadata ? ` (HTTP ${err.$metadata.httpStatusCode})` : ''}: ${err.message}`;
}

/**
 * Await `promise` and require that it rejects with an SDK error named `name` (e.g.
 * 'NotFoundException'), carrying the modeled HTTP status and body Code. Returns the error.
 */
export async function assertRejects(promise, name, what = '') {
  let result;
  try {
    result = await promise;
  } catch (err) {
    const label = what ? `${what}: ` : '';
    assert.equal(err?.name, name, `${label}expected ${name}, got ${describeErr(err)}`);
    const spec = ERRORS[name];
    if (spec) {
      assert.equal(
        err.$metadata?.httpStatusCode,
        spec.status,
        `${label}${name} must come with HTTP ${spec.status}, got ${err.$metadata?.httpStatusCode}`,
      );
      assert.equal(err.Code, spec.code, `${label}${name} body must carry "Code": "${spec.code}", got ${JSON.stringify(err.Code)}`);
      assert.equal(err.$fault, spec.status >= 500 ? 'server' : 'client', `${label}$fault`);
    }
    return err;
  }
  const shown = result && typeof result === 'object' ? JSON.stringify({ ...result, $metadata: undefined }) : String(result);
  assert.fail(`${what ? what + ': ' : ''}expected ${name}, but the call succeeded: ${shown}`);
}

/** Require that a raw response (from signedFetch/rawFetch) is the AWS-shaped error `name`. */
export function assertRawError(res, name, what = '') {
  const label = what ? `${what}: ` : '';
  const spec = ERRORS[name];
  assert.equal(res.status, spec.status, `${label}expected HTTP ${spec.status} ${name}, got ${res.status} ${res.body.slice(0, 500)}`);
  const hdr = String(res.headers['x-amzn-errortype'] ?? '').split(':')[0].split('#').pop();
  assert.equal(hdr, name, `${label}x-amzn-ErrorType header`);
  assert.ok(res.json && typeof res.json === 'object', `${label}error body must be a JSON object, got ${JSON.stringify(res.body.slice(0, 200))}`);
  assert.equal(res.json.Code, spec.code, `${label}error body Code`);
  assert.equal(typeof (res.json.Message ?? res.json.message), 'string', `${label}error body Message`);
}

/** Await a call that must NOT fail with any of `names`; other errors and success are fine. */
export async function assertNotRejectedWith(promise, names, what = '') {
  try {
    return await promise;
  } catch (err) {
    assert.ok(!names.includes(err?.name), `${what ? what + ': ' : ''}must not fail with ${names.join('/')}, got ${describeErr(err)}`);
    return err;
  }
}

export function suffix() {
  return randomBytes(6).toString('hex');
}

/** A name unique to this run, e.g. uniq('ai') -> 'ai-3f2a1b9c0d4e'. */
export function uniq(prefix = 'x') {
  return `${prefix}-${suffix()}`;
}

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
export const APP_INSTANCE_ARN_RE = new RegExp(`^arn:aws:chime:${REGION}:${ACCOUNT_ID}:app-instance/${UUID}$`);

export function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function botArnRe(appInstanceArn) {
  return new RegExp(`^${escapeRe(appInstanceArn)}/bot/${UUID}$`);
}

/** A well-formed AppInstance ARN that does not exist. */
export function missingAppInstanceArn() {
  return `arn:aws:chime:${REGION}:${ACCOUNT_ID}:app-instance/${randomUUID()}`;
}

/** Assert `d` is a valid Date within [from - slack, now + slack]. */
export function assertRecentDate(d, from, what = 'timestamp', slackMs = 5 * 60 * 1000) {
  assert.ok(d instanceof Date, `${what} must be deserialized to a Date (epoch-seconds number on the wire), got ${JSON.stringify(d)}`);
  assert.ok(!Number.isNaN(d.getTime()), `${what} is an invalid Date`);
  const now = Date.now();
  assert.ok(
    d.getTime() >= from - slackMs && d.getTime() <= now + slackMs,
    `${what} ${d.toISOString()} is not close to the time of the test (${new Date(from).toISOString()}..${new Date(now).toISOString()}); seconds vs milliseconds?`,
  );
}

/** Sort tags by key for order-insensitive comparison. */
export function sortTags(tags) {
  return [...(tags ?? [])].sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : 0));
}

/**
 * Walk a List* operation by hand with MaxResults = pageSize.
 * call(nextToken) -> Promise<output>; itemsOf(output) -> array.
 * Checks page sizes, that every non-final page has a NextToken, and that the last page has none.
 * Returns {items, pages}.
 */
export async function collectPages(call, itemsOf, pageSize, maxPages = 10000) {
  const items = [];
  const pages = [];
  let token;
  for (let i = 0; i < maxPages; i++) {
    const out = await call(token);
    assert.equal(out.$metadata.httpStatusCode, 200, 'List status');
    const page = itemsOf(out) ?? [];
    assert.ok(Array.isArray(page), 'list member must be an array');
    assert.ok(page.length <= pageSize, `page has ${page.length} items, more than MaxResults=${pageSize}`);
    pages.push({ count: page.length, nextToken: out.NextToken });
    items.push(...page);
    if (out.NextToken === undefined) return { items, pages };
    assert.equal(typeof out.NextToken, 'string', 'NextToken must be a string');
    assert.notEqual(out.NextToken, '', 'NextToken must be left out on the last page, not sent empty');
    assert.notEqual(out.NextToken, token, 'the server returned the same NextToken again (the SDK paginator would loop forever)');
    token = out.NextToken;
  }
  assert.fail(`pagination did not end after ${maxPages} pages`);
}

export const LEX_ALIAS_ARN = 'arn:aws:lex:us-east-1:123456789012:bot-alias/ABCDEFGHIJ/KLMNOPQRST';

export function lexConfig(overrides = {}) {
  return {
    Lex: {
      LexBotAliasArn: LEX_ALIAS_ARN,
      LocaleId: 'en_US',
      RespondsTo: 'STANDARD_MESSAGES',
      ...overrides,
    },
  };
}

export const PINPOINT_APP_ARN = `arn:aws:mobiletargeting:${REGION}:${ACCOUNT_ID}:apps/abc`;

/** Strings that tend to break SQL, LIKE patterns, escaping and UTF-8 handling. */
export const NASTY_STRINGS = [
  `'; DROP TABLE x; --`,
  `Robert'); DROP TABLE app_instances;--`,
  `back\\slash \\\\ and \\' \\"`,
  `100% _under_ score %_% LIKE '%'`,
  `"double" 'single' \`back\``,
  `unicode: Ωμέγα 日本語 Ünïcödé ñ`,
  `emoji: 🔔🎉👩‍💻 ✓`,
  `tab\tnewline\nreturn\r end`,
  `$1 $$ :name ? @p0 {0} %s %d`,
  `<script>alert(1)</script> &amp; &lt;`,
];

/** The value of one metric series (labels {} for an unlabelled one) on a /metrics port; 0 when absent. */
export async function scrapeMetric(port, name, labels = {}) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] ?? '').split(',').sort().join(',') === want) return Number(m[3]);
  }
  return 0;
}
