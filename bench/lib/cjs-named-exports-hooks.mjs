/** Module hooks for ./cjs-named-exports.mjs (they run on Node's loader thread). */
import { createRequire } from 'node:module';

const facadePackages = new Set(['@azure/functions']);
const facadePrefix = 'bench-facade:';

export async function resolve(specifier, context, nextResolve) {
  if (facadePackages.has(specifier) && !context.parentURL?.startsWith(facadePrefix)) {
    // Resolve the real package from the importer, so the facade re-exports the very module the importer would get.
    const real = await nextResolve(specifier, context);
    return { url: `${facadePrefix}${real.url}`, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith(facadePrefix)) return nextLoad(url, context);
  const realUrl = url.slice(facadePrefix.length);
  const names = Object.keys(createRequire(import.meta.url)(new URL(realUrl).pathname)).filter(
    (name) => /^[A-Za-z_$][\w$]*$/.test(name) && name !== 'default',
  );
  const source = [
    `import real from ${JSON.stringify(realUrl)};`,
    'export default real;',
    ...names.map((name) => `export const ${name} = real.${name};`),
  ].join('\n');
  return { format: 'module', source, shortCircuit: true };
}
