/**
 * The committed migrations are what the schemas say: `drizzle-kit generate` (offline) over a copy of each
 * migrations folder must find nothing to add. When this fails, run `npm run db:generate` and commit the result.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const drizzleKit = join(createRequire(import.meta.url).resolve('drizzle-kit'), '..', 'bin.cjs');
const workDir = mkdtempSync(join(tmpdir(), 'dbdist-migrations-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

describe.each([
  { dialect: 'postgresql', schema: 'shared/db/schema.pg.ts', folder: 'shared/db/migrations/pg' },
  { dialect: 'mssql', schema: 'shared/db/schema.mssql.ts', folder: 'shared/db/migrations/mssql' },
])('$dialect migrations', ({ dialect, schema, folder }) => {
  it('match the schema', async () => {
    const out = join(workDir, dialect);
    cpSync(folder, out, { recursive: true });
    const before = readdirSync(out).sort();
    expect(before.length).toBeGreaterThan(0);
    await run(process.execPath, [drizzleKit, 'generate', '--dialect', dialect, '--schema', schema, '--out', out]);
    expect(readdirSync(out).sort()).toEqual(before);
  });
});
