// docs/compatibility.md is generated (scripts/gen-compatibility.mjs from src/api/ops.def, the models,
// sql/api/ and a grep of the tests): the committed file must be what the generator makes of this tree,
// and the generator's status column must follow the operation table.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const generator = path.join(root, 'scripts/gen-compatibility.mjs');
const generate = (dir) => execFileSync(process.execPath, [generator, ...(dir ? [dir] : [])], { encoding: 'utf8' });

test('docs/compatibility.md is up to date (node scripts/gen-compatibility.mjs > docs/compatibility.md)', () => {
  const committed = fs.readFileSync(path.join(root, 'docs/compatibility.md'), 'utf8');
  assert.equal(committed, generate(), 'docs/compatibility.md is stale: regenerate it');
});

test('every model operation has a row, and the status follows ops.def and sql/api', () => {
  const doc = generate();
  for (const [file, n] of [['chime-sdk-identity.json', 0], ['chime-sdk-messaging.json', 0]]) {
    const ops = Object.keys(JSON.parse(fs.readFileSync(path.join(root, 'model', file), 'utf8')).operations);
    for (const op of ops) assert.match(doc, new RegExp(`^\\| ${op} \\| (implemented|stored only|not implemented) \\|`, 'm'), `${file}: ${op}`);
    assert.ok(ops.length > n);
  }
  assert.match(doc, /^\| SendChannelMessage \| implemented \| JS SDK v3/m);

  // A copy of the tree without SendChannelMessage's row, and without one SQL function: both must
  // turn "not implemented"; nothing else changes.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'carillon-compat-'));
  try {
    for (const d of ['model', 'sql/api', 'src/api']) fs.cpSync(path.join(root, d), path.join(tmp, d), { recursive: true });
    fs.copyFileSync(path.join(root, 'README.md'), path.join(tmp, 'README.md'));
    const opsDef = path.join(tmp, 'src/api/ops.def');
    fs.writeFileSync(opsDef, fs.readFileSync(opsDef, 'utf8').replace(/^CARILLON_OP\("messaging", "SendChannelMessage".*\n/m, ''));
    const sqlFile = path.join(tmp, 'sql/api/messaging_moderator.sql');
    fs.writeFileSync(sqlFile, fs.readFileSync(sqlFile, 'utf8').replace(/carillon_api\.list_channel_moderators\b/g, 'carillon_api.gone'));
    const changed = generate(tmp);
    assert.match(changed, /^\| SendChannelMessage \| not implemented \| — \| no row in src\/api\/ops\.def \|/m);
    assert.match(changed, /^\| ListChannelModerators \| not implemented \| — \| carillon_api\.list_channel_moderators is not written yet \|/m);
    assert.match(changed, /^\| CreateChannel \| implemented \| — \|/m, 'no tests in the copy: no client');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
