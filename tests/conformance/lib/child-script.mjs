// A helper script in its own Node process (a load source or a sampler that must not share this
// process's event loop with the clients under test). The script is an ES module run from this
// directory, given its configuration as JSON in the environment variable `cfgVar`; it writes
// "ready" when it has started, and on any line on its stdin it finishes and writes its result as
// one JSON line.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

/** Start `source`; resolves once it is ready to {stop(): its JSON result}. `what` names it in errors. */
export async function startChildScript(source, cfgVar, cfg, what) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
    cwd: here,
    env: { ...process.env, [cfgVar]: JSON.stringify(cfg) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (b) => (out += b));
  child.stderr.on('data', (b) => (err += b));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  for (const until = Date.now() + 30000; !out.includes('ready'); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > until || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`${what} did not start: ${err}`);
    }
  }
  return {
    async stop() {
      child.stdin.write('stop\n');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 30000))]);
      const line = out.split('\n').find((l) => l.startsWith('{') || l.startsWith('['));
      if (!line) {
        child.kill('SIGKILL');
        throw new Error(`${what} gave no result: ${err}`);
      }
      return JSON.parse(line);
    },
  };
}
