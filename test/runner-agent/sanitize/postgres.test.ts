import { execFile } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MaskingRuleSet } from '../../../shared/contracts/masking.js';
import { findPgDump } from '../../../runner-agent/engines/postgres.js';
import { createLogger } from '../../../runner-agent/logger.js';
import { sanitizedBackup } from '../../../runner-agent/sanitize/sanitized-backup.js';
import { postgresAvailable } from '../../support/postgres.js';
import { AUDIT_ROWS, ORDERS, USERS, startPgFixture, type PgFixture } from './pg-fixture.js';

const run = promisify(execFile);
const logger = createLogger({ level: 'silent' });
let fx: PgFixture;
let workDir: string;

beforeAll(async () => {
  if (!postgresAvailable) return;
  fx = await startPgFixture();
  workDir = mkdtempSync(join(tmpdir(), 'dbdist-sanitize-'));
});
afterAll(async () => {
  await fx?.postgres.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

const rules = (extra: Partial<MaskingRuleSet> = {}) =>
  MaskingRuleSet.parse({
    version: 3,
    rules: [
      { table: 'users', column: 'email', strategy: 'email' },
      { table: 'users', column: 'password_hash', strategy: 'hash' },
      { table: 'users', column: 'name', strategy: 'name' },
      { table: 'users', column: 'phone', strategy: 'null' },
      { table: 'audit_log', strategy: 'excludeData' },
    ],
    ...extra,
  });

let attempt = 0;
const options = () => ({ signal: new AbortController().signal, attemptId: `a${(attempt += 1)}`, logger });

async function originals(database: string) {
  return fx.withClient(database, async (db) => {
    const { rows } = await db.query<{ email: string; password_hash: string; phone: string; name: string }>('SELECT * FROM users');
    return rows;
  });
}

describe.skipIf(!postgresAvailable)('sanitized copy on real PostgreSQL', () => {
  it('masks by value, keeps row counts and foreign keys, empties audit_log, and drops the scratch database', async () => {
    const source = await fx.seededDatabase();
    const before = await originals(source);
    const backup = await sanitizedBackup({ jobId: crypto.randomUUID(), databaseName: source, masking: rules() }, fx.driver, options());
    const dumpFile = join(workDir, `${source}.dump`);
    await Promise.all([pipeline(backup.stream, createWriteStream(dumpFile)), backup.done]);
    expect(await fx.scratchDatabases()).toHaveLength(1); // alive until the upload is done…
    await backup.cleanup();
    expect(await fx.scratchDatabases()).toEqual([]); // …and gone after
    expect(backup.tableRowCounts).toEqual({ 'public.users': USERS, 'public.orders': ORDERS, 'public.audit_log': 0 });

    // Restored elsewhere, as a developer would.
    const restoredUrl = await fx.postgres.createDatabase();
    const restored = decodeURIComponent(new URL(restoredUrl).pathname.slice(1));
    await run(join(dirname(findPgDump(fx.settings.binDir)), 'pg_restore'), ['--no-owner', '--exit-on-error', '--dbname', restored, dumpFile], {
      env: { ...process.env, PGHOST: fx.settings.host, PGPORT: String(fx.settings.port), PGUSER: fx.settings.user, PGPASSWORD: fx.settings.password ?? '' },
    });
    await fx.withClient(restored, async (db) => {
      const { rows: users } = await db.query<{ id: number; email: string; password_hash: string; phone: string | null; name: string }>(
        'SELECT * FROM users ORDER BY id',
      );
      expect(users).toHaveLength(USERS);
      const originalEmails = new Set(before.map((u) => u.email));
      const originalHashes = new Set(before.map((u) => u.password_hash));
      const originalNames = new Set(before.map((u) => u.name));
      for (const user of users) {
        expect(originalEmails.has(user.email)).toBe(false);
        expect(originalHashes.has(user.password_hash)).toBe(false);
        expect(originalNames.has(user.name)).toBe(false);
        expect(user.phone).toBeNull();
        expect(user.email).toMatch(/^user_[0-9a-f]{12}@example\.invalid$/);
        expect(user.password_hash).toMatch(/^[0-9a-f]{64}$/);
        expect(user.name).toMatch(/^[A-Z][a-z]+ [A-Z][a-z]+$/);
      }
      // Still unique: the fakes are deterministic per input and distinct inputs stay distinct.
      expect(new Set(users.map((u) => u.email)).size).toBe(USERS);
      const { rows: counts } = await db.query<{ orders: string; audit: string; orphans: string; fks: string }>(`
        SELECT (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM audit_log) AS audit,
               (SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL) AS orphans,
               (SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated) AS fks`);
      expect(counts[0]).toEqual({ orders: String(ORDERS), audit: '0', orphans: '0', fks: '2' });
    });
    expect(AUDIT_ROWS).toBeGreaterThan(0);
  });

  it('fails naming an uncovered sensitive column (api_token) before any byte is produced, and drops the scratch', async () => {
    const source = await fx.seededDatabase('ALTER TABLE users ADD COLUMN api_token text; UPDATE users SET api_token = md5(id::text);');
    await expect(
      sanitizedBackup({ jobId: crypto.randomUUID(), databaseName: source, masking: rules() }, fx.driver, options()),
    ).rejects.toMatchObject({ code: 'sensitive_column_uncovered', message: expect.stringContaining('"public"."users"."api_token"') });
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('fails when a rule names a column that does not exist', async () => {
    const source = await fx.seededDatabase();
    const masking = rules({ rules: [...rules().rules, { table: 'users', column: 'ssn_number', strategy: 'null' }] });
    await expect(sanitizedBackup({ jobId: crypto.randomUUID(), databaseName: source, masking }, fx.driver, options())).rejects.toMatchObject({
      code: 'masking_rule_invalid',
      message: expect.stringContaining('"users"."ssn_number": no such column'),
    });
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('fails closed when a custom SQL statement fails: nothing applied, scratch gone', async () => {
    const source = await fx.seededDatabase();
    const masking = rules({ sql: ['UPDATE orders SET amount = 0', 'UPDATE no_such_table SET x = 1'] });
    await expect(sanitizedBackup({ jobId: crypto.randomUUID(), databaseName: source, masking }, fx.driver, options())).rejects.toMatchObject({
      code: 'masking_failed',
      message: expect.stringContaining('custom SQL statement 2'),
    });
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('fails verification when a fixed value equals an original value', async () => {
    const source = await fx.seededDatabase();
    const masking = rules({
      rules: [...rules().rules.filter((r) => !('column' in r) || r.column !== 'phone'), { table: 'users', column: 'phone', strategy: 'fixed', value: '+41 79 1000001' }],
    });
    await expect(sanitizedBackup({ jobId: crypto.randomUUID(), databaseName: source, masking }, fx.driver, options())).rejects.toMatchObject({
      code: 'sanitize_verify_failed',
      message: expect.stringContaining('"phone" still holds 1 original value'),
    });
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('uses pg_dump --exclude-table-data when the rules only exclude data: no scratch database, empty audit_log', async () => {
    const source = await fx.seededDatabase();
    const masking = MaskingRuleSet.parse({ version: 1, rules: [{ table: 'audit_log', strategy: 'excludeData' }], sensitivePatterns: ['action'] });
    const backup = await sanitizedBackup({ jobId: crypto.randomUUID(), databaseName: source, masking }, fx.driver, options());
    expect(backup.method).toBe('exclude-table-data');
    expect(await fx.scratchDatabases()).toEqual([]);
    const dumpFile = join(workDir, `${source}-excl.dump`);
    await Promise.all([pipeline(backup.stream, createWriteStream(dumpFile)), backup.done]);
    await backup.cleanup();
    expect(backup.tableRowCounts).toEqual({ 'public.users': USERS, 'public.orders': ORDERS, 'public.audit_log': 0 });
    const restored = decodeURIComponent(new URL(await fx.postgres.createDatabase()).pathname.slice(1));
    await run(join(dirname(findPgDump(fx.settings.binDir)), 'pg_restore'), ['--no-owner', '--exit-on-error', '--dbname', restored, dumpFile], {
      env: { ...process.env, PGHOST: fx.settings.host, PGPORT: String(fx.settings.port), PGUSER: fx.settings.user, PGPASSWORD: fx.settings.password ?? '' },
    });
    const counts = await fx.withClient(restored, async (db) => (await db.query('SELECT (SELECT count(*) FROM audit_log) AS audit, (SELECT count(*) FROM users) AS users')).rows[0]);
    expect(counts).toEqual({ audit: '0', users: String(USERS) });
  });

  it('still refuses uncovered sensitive columns on the exclude-table-data path', async () => {
    const source = await fx.seededDatabase();
    const masking = MaskingRuleSet.parse({ version: 1, rules: [{ table: 'audit_log', strategy: 'excludeData' }] });
    await expect(sanitizedBackup({ jobId: crypto.randomUUID(), databaseName: source, masking }, fx.driver, options())).rejects.toMatchObject({
      code: 'sensitive_column_uncovered',
      message: expect.stringContaining('"public"."users"."email"'),
    });
  });

  it('drops the scratch database when the job is cancelled midway', async () => {
    const source = await fx.seededDatabase();
    const stop = new AbortController();
    const scratchSeen = new Promise<void>((resolve) => {
      const poll = setInterval(async () => {
        if ((await fx.scratchDatabases()).length > 0) {
          clearInterval(poll);
          resolve();
        }
      }, 5);
    });
    const running = sanitizedBackup({ jobId: crypto.randomUUID(), databaseName: source, masking: rules() }, fx.driver, { ...options(), signal: stop.signal });
    await scratchSeen;
    stop.abort(new Error('cancelled'));
    const outcome = await running.then(async (backup) => {
      // Aborted after the copy was ready: the engine's stream fails, and cleanup (the job runner's finally) drops it.
      await Promise.all([backup.done.catch(() => undefined), backup.stream.resume()]);
      await backup.cleanup();
      return 'returned';
    }, () => 'rejected');
    expect(['returned', 'rejected']).toContain(outcome);
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('drops leftovers of a crashed run at start-up, and only those', async () => {
    const leftover = `${fx.prefix}crashed_run`;
    await fx.withClient('postgres', (db) => db.query(`CREATE DATABASE ${leftover}`));
    const source = await fx.seededDatabase(); // not a scratch database: must survive
    expect(await fx.driver.dropLeftovers()).toEqual([leftover]);
    expect(await fx.scratchDatabases()).toEqual([]);
    expect(await originals(source)).toHaveLength(USERS);
  });
});
