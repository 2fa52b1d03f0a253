/**
 * Builds the portal into portal/dist: one ES module bundle and its CSS (esbuild, already the project's
 * bundler), index.html next to them. `config.json` is not part of the build: each deployment writes its own.
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const portalDir = fileURLToPath(new URL('.', import.meta.url));
export const portalDist = fileURLToPath(new URL('./dist/', import.meta.url));

export async function buildPortal(options: { minify?: boolean } = {}): Promise<string> {
  rmSync(portalDist, { recursive: true, force: true });
  mkdirSync(`${portalDist}assets`, { recursive: true });
  await build({
    entryPoints: { main: `${portalDir}src/main.tsx` },
    outdir: `${portalDist}assets`,
    bundle: true,
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    minify: options.minify ?? true,
    sourcemap: true,
    legalComments: 'linked',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'warning',
  });
  copyFileSync(`${portalDir}index.html`, `${portalDist}index.html`);
  copyFileSync(`${portalDir}staticwebapp.config.json`, `${portalDist}staticwebapp.config.json`);
  return portalDist;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = await buildPortal();
  console.log(`portal built into ${out}`);
}
