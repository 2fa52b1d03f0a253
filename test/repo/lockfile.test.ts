import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

interface LockEntry {
  optionalDependencies?: Record<string, string>;
}

/**
 * `npm ci` (the README's first command, and CI's) refuses a lockfile that lacks an entry for any optional
 * dependency, even one for another platform. npm leaves such entries out when the registry cannot serve that
 * version, so a routine `npm install` can break `npm ci` for everyone. (Why rollup is pinned in `overrides`.)
 */
describe('package-lock.json', () => {
  it('has an entry for every optional dependency, so npm ci accepts it', () => {
    const lock = JSON.parse(readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8')) as {
      packages: Record<string, LockEntry>;
    };
    const missing: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const dependency of Object.keys(entry.optionalDependencies ?? {})) {
        const nested = `${path ? `${path}/` : ''}node_modules/${dependency}`;
        if (!lock.packages[nested] && !lock.packages[`node_modules/${dependency}`]) missing.push(`${path || '(root)'} → ${dependency}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
