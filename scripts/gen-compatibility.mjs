#!/usr/bin/env node
// Writes docs/compatibility.md, the API compatibility matrix, to standard output:
//
//   node scripts/gen-compatibility.mjs > docs/compatibility.md
//
// Every operation of every model under model/ (chime-sdk-identity, chime-sdk-messaging, pinpoint
// where present, Carillon's own) is listed with its status and the clients that test it:
//   - status, from src/api/ops.def and sql/api/: a row whose SQL function exists under sql/api/ (or
//     a row served by a C handler, function NULL) is implemented; no row, or a row whose function is
//     not there yet, is not implemented (the gateway answers "not implemented" /
//     MethodNotAllowedException). STORED_ONLY below names the operations whose input is stored and
//     returned but not acted on yet, each until the file of the feature that acts on it exists.
//   - clients, from a grep of tests/ and examples/: the AWS SDK for JavaScript v3 (`<Op>Command` in
//     a file importing that service's client), Debian's boto3 (`.<snake_op>(` in a Python file naming
//     the service), Debian's AWS CLI (`<kebab-op>` in a file that runs `aws`; README.md counts when
//     its walk-through is run by tests/conformance/readme-walkthrough.test.mjs, whose `chime SERVICE OP`
//     wraps `aws chime-sdk-SERVICE OP`).
// tests/conformance/docs-compatibility.test.mjs regenerates it and fails when the committed file
// differs. The output depends only on the tree (no dates, sorted), so it is reproducible.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.argv[2] ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rel = (...p) => path.join(root, ...p);
const exists = (p) => fs.existsSync(rel(p));

const SERVICES = [
	{ key: 'identity', title: 'Amazon Chime SDK Identity', model: 'model/chime-sdk-identity.json',
	  js: 'client-chime-sdk-identity', py: 'chime-sdk-identity', cli: 'chime-sdk-identity' },
	{ key: 'messaging', title: 'Amazon Chime SDK Messaging', model: 'model/chime-sdk-messaging.json',
	  js: 'client-chime-sdk-messaging', py: 'chime-sdk-messaging', cli: 'chime-sdk-messaging' },
	{ key: 'pinpoint', title: 'Amazon Pinpoint (the push subset)', model: 'model/pinpoint.json',
	  js: 'client-pinpoint', py: 'pinpoint', cli: 'pinpoint' },
	{ key: 'carillon', title: "Carillon's own operations", model: 'model/carillon.json',
	  js: null, py: null, cli: null },
];

// Operations whose input is stored and returned but not acted on yet: [service, operation, the
// file whose presence means it is acted on (null: never, in this design), note].
const STORED_ONLY = [
	['identity', 'RegisterAppInstanceUserEndpoint', 'src/push/push.c', 'stored and returned; no push notification is sent to it yet'],
	['identity', 'UpdateAppInstanceUserEndpoint', 'src/push/push.c', 'stored and returned; no push notification is sent to it yet'],
	['identity', 'CreateAppInstanceBot', null, 'the bot and its Lex configuration are stored; no Lex bot is run'],
	['identity', 'UpdateAppInstanceBot', null, 'stored; no Lex bot is run'],
	['identity', 'PutAppInstanceRetentionSettings', 'sql/migrations/086_retention.sql', 'stored and returned; messages are not deleted after the retention period yet'],
	['messaging', 'CreateChannelFlow', 'sql/migrations/080_flows.sql', 'stored; its processors are not invoked yet'],
	['messaging', 'UpdateChannelFlow', 'sql/migrations/080_flows.sql', 'stored; its processors are not invoked yet'],
	['messaging', 'AssociateChannelFlow', 'sql/migrations/080_flows.sql', 'stored; messages of the channel are sent at once, not processed'],
	['messaging', 'PutMessagingStreamingConfigurations', 'sql/migrations/085_streaming.sql', 'stored and returned; nothing is sent to Kinesis yet'],
	['messaging', 'PutChannelMembershipPreferences', 'src/push/push.c', 'stored and returned; push filters take effect with push delivery'],
];
// Implemented operations that answer an error until a feature lands: [service, op, file, note].
const NOT_YET = [
	['messaging', 'ChannelFlowCallback', 'sql/migrations/080_flows.sql', 'answers NotFoundException: no message awaits a callback until processors run'],
];

const read = (p) => fs.readFileSync(rel(p), 'utf8');

// ops.def rows: service, operation, SQL function (null: a C handler).
const rows = new Map();
for (const m of read('src/api/ops.def').matchAll(/^CARILLON_OP\("(\w+)",\s*"(\w+)",\s*(?:NULL|"(\w+)")/gm)) {
	rows.set(`${m[1]}/${m[2]}`, m[3] ?? null);
}
// ops.def CARILLON_SERVICE lines: the services implemented in part (unlisted operations NOT_IMPLEMENTED).
const partial = new Set();
for (const m of read('src/api/ops.def').matchAll(/^CARILLON_SERVICE\("(\w+)",.*CARILLON_OP_NOT_IMPLEMENTED/gm)) partial.add(m[1]);
const functions = new Set();
for (const f of fs.readdirSync(rel('sql/api')).filter((n) => n.endsWith('.sql'))) {
	for (const m of read(`sql/api/${f}`).matchAll(/function\s+carillon_api\.(\w+)\s*\(/gi)) functions.add(m[1].toLowerCase());
}

// Test sources: every .mjs/.js/.py/.sh under tests/ and examples/ (node_modules and builds aside).
function walk(dir, out = []) {
	if (!fs.existsSync(dir)) return out;
	for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
		if (e.name === 'node_modules' || e.name.startsWith('.') || e.name === 'dist') continue;
		const p = path.join(dir, e.name);
		if (e.isDirectory()) walk(p, out);
		else if (/\.(mjs|js|cjs|py|sh)$/.test(e.name)) out.push(p);
	}
	return out;
}
const sources = [...walk(rel('tests')), ...walk(rel('examples'))].map((p) => ({ p, text: fs.readFileSync(p, 'utf8') }));
if (exists('tests/conformance/readme-walkthrough.test.mjs')) sources.push({ p: rel('README.md'), text: read('README.md') });

const snake = (op) => op.replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
const kebab = (op) => snake(op).replace(/_/g, '-');
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function testedBy(svc, op, model) {
	const clients = [];
	if (svc.key === 'carillon') { // no SDK: the tests sign requests to its route themselves
		const uri = model.operations[op].http?.requestUri;
		if (uri && sources.some((s) => s.text.includes(uri))) clients.push('SigV4-signed HTTP (Node)');
	}
	if (svc.js) {
		const re = new RegExp(`\\b${op}Command\\b`);
		if (sources.some((s) => /\.(mjs|js|cjs)$/.test(s.p) && s.text.includes(svc.js) && re.test(s.text))) clients.push('JS SDK v3');
	}
	if (svc.py) {
		const re = new RegExp(`\\.${snake(op)}\\(`);
		if (sources.some((s) => s.p.endsWith('.py') && (s.text.includes(`'${svc.py}'`) || s.text.includes(`"${svc.py}"`)) && re.test(s.text))) clients.push('boto3');
	}
	if (svc.cli) {
		const re = new RegExp(`(?<![\\w-])${esc(kebab(op))}(?![\\w-])`);
		const runsAws = (t) => /\/usr\/bin\/aws\b|(^|\s)aws\s+(--\S+\s+)*chime-sdk-|(^|\s)aws\s+pinpoint/m.test(t);
		// README's walk-through wraps the CLI: `chime messaging send-channel-message ...`
		const wrapped = new RegExp(`\\bchime ${svc.key} ${esc(kebab(op))}(?![\\w-])`);
		if (sources.some((s) => !s.p.endsWith('.py') && runsAws(s.text) &&
			((s.text.includes(svc.cli) && re.test(s.text)) || wrapped.test(s.text)))) clients.push('AWS CLI');
	}
	return clients;
}

function status(svc, op) {
	const key = `${svc.key}/${op}`;
	if (!rows.has(key)) return ['not implemented', partial.has(svc.key) ? 'answers MethodNotAllowedException' : 'no row in src/api/ops.def'];
	const fn = rows.get(key);
	if (fn !== null && !functions.has(fn.toLowerCase())) return ['not implemented', `carillon_api.${fn} is not written yet`];
	const pending = (list) => list.find(([s, o, file]) => s === svc.key && o === op && (file === null || !exists(file)));
	const ns = pending(NOT_YET);
	if (ns) return ['not implemented', ns[3]];
	const so = pending(STORED_ONLY);
	if (so) return ['stored only', so[3]];
	return ['implemented', fn === null ? 'C handler' : ''];
}

const out = [];
out.push('# API compatibility matrix', '',
	'Generated by `node scripts/gen-compatibility.mjs > docs/compatibility.md` from the operation table',
	'(`src/api/ops.def`), the models under `model/`, the SQL functions under `sql/api/` and a grep of',
	"`tests/` and `examples/`; `tests/conformance/docs-compatibility.test.mjs` fails when this file is",
	'stale. Do not edit it by hand.', '',
	'* **implemented**: the operation does what AWS documents, within the limits in the README.',
	'* **stored only**: the input is validated, stored and returned by the read operations, but',
	'  not acted on yet (the note says what is missing).',
	'* **not implemented**: the operation is routed, authenticated and validated, then refused',
	'  (Chime services: `BadRequestException` "not implemented"; Pinpoint: `MethodNotAllowedException`).',
	'* **tested with**: the clients a test in this repository calls it with: the AWS SDK for',
	'  JavaScript v3 (`@aws-sdk/client-*` from npm), Debian\'s boto3 (python3-boto3) and Debian\'s AWS',
	'  CLI 2.9 (awscli). Websocket sessions are tested with amazon-chime-sdk-js (see the README).', '');
const summary = [];
for (const svc of SERVICES) {
	if (!exists(svc.model)) {
		out.push(`## ${svc.title}`, '', `Not in this build (no \`${svc.model}\`).`, '');
		continue;
	}
	const model = JSON.parse(read(svc.model));
	const ops = Object.keys(model.operations).sort();
	const counts = { implemented: 0, 'stored only': 0, 'not implemented': 0 };
	const lines = [];
	for (const op of ops) {
		const [st, note] = status(svc, op);
		counts[st]++;
		const clients = testedBy(svc, op, model);
		lines.push(`| ${op} | ${st} | ${clients.join(', ') || '—'} | ${note} |`);
	}
	out.push(`## ${svc.title}`, '',
		`${ops.length} operations (\`${svc.model}\`): ${counts.implemented} implemented, ${counts['stored only']} stored only, ${counts['not implemented']} not implemented.`, '',
		'| operation | status | tested with | note |', '|---|---|---|---|', ...lines, '');
	summary.push(`| ${svc.title} | ${ops.length} | ${counts.implemented} | ${counts['stored only']} | ${counts['not implemented']} |`);
}
out.splice(out.indexOf('* **implemented**: the operation does what AWS documents, within the limits in the README.'), 0,
	'| service | operations | implemented | stored only | not implemented |', '|---|---|---|---|---|', ...summary, '');
process.stdout.write(out.join('\n'));
