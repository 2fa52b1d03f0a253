/**
 * `npm run package` (azd runs it before zipping the `api` service; azure.yaml `dist: dist/app`): bundles the
 * Function App with esbuild into dist/app — index.js (and the worker-thread script it starts), host.json and a package.json without dependencies — so the
 * deployment package carries no node_modules at all, and no devDependency can reach it.
 *
 * `@azure/functions-core` stays external: the Functions Node.js worker provides it at run time.
 */
import { cpSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// `--out <dir>` for tests; azd uses the default.
const outFlag = process.argv.indexOf('--out');
const out = outFlag > 0 ? process.argv[outFlag + 1] : join(root, 'dist', 'app');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: [join(root, 'functions', 'index.ts')],
  outfile: join(out, 'index.js'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // CommonJS dependencies call require() for Node built-ins; an ES module bundle has no require of its own.
  banner: { js: "import { createRequire as __dbdistCreateRequire } from 'node:module'; const require = __dbdistCreateRequire(import.meta.url);" },
  external: ['@azure/functions-core', 'msnodesqlv8', 'pg-native'],
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
});

// The worker-thread script index.js starts from beside itself (`new URL('./sha256-worker.mjs', import.meta.url)`).
await build({
  entryPoints: [join(root, 'shared', 'integrity', 'sha256-worker.mjs')],
  outfile: join(out, 'sha256-worker.mjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  legalComments: 'linked',
  logLevel: 'warning',
});

cpSync(join(root, 'host.json'), join(out, 'host.json'));
writeFileSync(
  join(out, 'package.json'),
  `${JSON.stringify({ name: 'dbdist-functions', private: true, type: 'module', main: 'index.js' }, null, 2)}\n`,
);

const inputs = Object.keys(result.metafile.inputs).length;
console.log(`${join(out, 'index.js')}: ${(statSync(join(out, 'index.js')).size / 2 ** 20).toFixed(1)} MiB from ${inputs} modules`);
