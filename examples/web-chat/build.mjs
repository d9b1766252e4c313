// Bundles the page (src/app.js with amazon-chime-sdk-js and the AWS SDK) into dist/app.js with esbuild.
// `node build.mjs` on its own, or called by server.mjs at start.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/*
 * amazon-chime-sdk-js is CommonJS: its require() of the AWS SDK would pick the SDK's Node build
 * (the "require" export condition), which reaches for node:fs and node:http. Resolved as imports,
 * the SDK packages give their ES builds, whose "browser" fields select the fetch-based runtime.
 */
const sdkAsEsm = {
  name: 'aws-sdk-as-esm',
  setup(b) {
    b.onResolve({ filter: /^@(aws-sdk|smithy|aws-crypto)\// }, (args) =>
      args.kind === 'require-call' ? b.resolve(args.path, { kind: 'import-statement', resolveDir: args.resolveDir }) : undefined,
    );
  },
};

export async function build() {
  await esbuild.build({
    entryPoints: [path.join(HERE, 'src/app.js')],
    outfile: path.join(HERE, 'dist/app.js'),
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2020',
    minify: true,
    sourcemap: false,
    logLevel: 'warning',
    plugins: [sdkAsEsm],
    define: { global: 'globalThis', 'process.env.NODE_ENV': '"production"' },
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await build();
