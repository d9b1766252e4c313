// Straight-to-PostgreSQL helpers shared by the messaging tests: run SQL through psql, and read the
// event log. psql gets the conninfo as one argv element and the SQL on stdin; values travel as psql
// variables (:'name'), never spliced into the text.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

function databaseUrl() {
  const url = process.env.CARILLON_TEST_DATABASE_URL;
  if (!url) throw new Error('CARILLON_TEST_DATABASE_URL is not set');
  return url;
}

/** Run `text` (its last statement returns one value, or nothing) with psql variables; return its raw text. */
export function psqlText(text, vars = {}) {
  const args = [databaseUrl(), '-AtXq', '-v', 'ON_ERROR_STOP=1'];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  return execFileSync('psql', args, { input: text, encoding: 'utf8' }).trim();
}

/** psqlText without blocking this process: resolves to {out: the raw text, err: psql's stderr (notices)}. */
export function psqlTextAsync(text, vars = {}) {
  const args = [databaseUrl(), '-AtXq', '-v', 'ON_ERROR_STOP=1'];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  return new Promise((resolve, reject) => {
    const child = execFile('psql', args, { encoding: 'utf8', maxBuffer: 64 << 20 }, (e, out, err) => (e ? reject(e) : resolve({ out: out.trim(), err })));
    child.stdin.end(text);
  });
}

/**
 * A second session that runs `text` (the start of a transaction that takes locks) and stays open:
 * resolves, once psql has run it (or after 10 s), to {held: whether it had, end(text): run `text`
 * (its commit or rollback) and close}. The caller asserts `held`.
 */
export async function holdingSession(text) {
  const child = spawn('psql', [databaseUrl(), '-AtXq', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise((r) => child.on('exit', r));
  child.stdin.on('error', () => {}); // a session that ended early (its text failed): held is false
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stdin.write(`${text}\n\\echo held-by-session\n`);
  const deadline = Date.now() + 10000;
  while (!out.includes('held-by-session') && Date.now() < deadline) await sleep(50);
  return {
    held: out.includes('held-by-session'),
    end: async (last) => {
      if (child.stdin.writable) child.stdin.end(`${last}\n`);
      await exited;
    },
  };
}

/**
 * Make one large write batch of `sends` (functions that start a send into `channel`): while a
 * second session holds the channel's row, the first is sent alone and waits for it; the rest,
 * sent 300 ms later, queue behind it and leave as one batch when the row is released. Resolves to
 * each send's {ok: result} or {err: error}, in order.
 */
export async function asOneBatch(channel, sends) {
  const q = (s) => `'${s.replace(/'/g, "''")}'`;
  const holder = await holdingSession(`begin; select 1 from carillon.channels where arn = ${q(channel)} for no key update;`);
  if (!holder.held) throw new Error('the holding session did not get the channel row');
  const settle = (p) => p.then((v) => ({ ok: v }), (e) => ({ err: e }));
  const first = settle(sends[0]());
  await sleep(300);
  const rest = sends.slice(1).map((f) => settle(f()));
  await sleep(500);
  await holder.end('commit;');
  return Promise.all([first, ...rest]);
}

/** Like psqlText, parsing the value as JSON (null when there is none). */
export function sql(text, vars = {}) {
  const out = psqlText(text, vars);
  return out === '' ? null : JSON.parse(out);
}

/** Every event of a channel, in position order: [{position, event_type, message_type, audience, arns, payload, app_instance_id}]. */
export function channelEvents(channelArn) {
  return (
    sql(
      `select coalesce(json_agg(json_build_object('position', position, 'event_type', event_type,
                 'message_type', message_type, 'audience', audience, 'arns', arns,
                 'payload', coalesce(payload_text::jsonb, payload),
                 'app_instance_id', app_instance_id) order by position), '[]')
         from carillon.events where channel_arn = :'arn'`,
      { arn: channelArn },
    ) ?? []
  );
}

/** The highest event position of a channel (0 when none). */
export function lastPosition(channelArn) {
  return sql(`select coalesce(max(position), 0) from carillon.events where channel_arn = :'arn'`, { arn: channelArn });
}

/** The highest event position of the whole log (0 when empty). */
export function logPosition() {
  return sql(`select to_json(coalesce(max(position), 0)) from carillon.events`);
}

/** Events of a channel after position `after`. */
export function eventsAfter(channelArn, after) {
  return channelEvents(channelArn).filter((e) => e.position > after);
}
