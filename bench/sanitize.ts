/**
 * What a sanitized copy and row counting cost, measured side by side on one generated database (users with
 * e-mail, password hash, name and phone; orders; an audit_log): a raw `pg_dump` read to the end, the same with
 * per-table row counts in the dump's snapshot, a sanitized copy (scratch restore → masking → verification →
 * dump of the scratch), and the `--exclude-table-data` path. Ratios are against the raw dump.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import type { PostgresSettings } from '../runner-agent/config.js';
import { createPostgresEngine } from '../runner-agent/engines/postgres.js';
import type { EngineBackup } from '../runner-agent/engines/types.js';
import { silentLogger } from '../runner-agent/logger.js';
import { createPostgresScratch } from '../runner-agent/sanitize/postgres.js';
import { sanitizedBackup } from '../runner-agent/sanitize/sanitized-backup.js';
import { MaskingRuleSet } from '../shared/contracts/masking.js';
import { postgresAvailable, startPostgres } from '../test/support/postgres.js';
import { fixed, printTable, ratio } from './lib/report.js';

async function drain(backup: EngineBackup): Promise<number> {
  let bytes = 0;
  await Promise.all([
    pipeline(backup.stream, new Writable({ write: (chunk: Buffer, _e, cb) => ((bytes += chunk.length), cb()) })),
    backup.done,
  ]);
  await backup.cleanup();
  return bytes;
}

export async function runSanitizeBench(options: { users: number }): Promise<void> {
  if (!postgresAvailable) {
    console.log('Skipped: no PostgreSQL server (set PG_URL or install the postgresql server package).');
    return;
  }
  const server = await startPostgres();
  try {
    const url = await server.createDatabase();
    const database = decodeURIComponent(new URL(url).pathname.slice(1));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const generatedAt = Date.now();
    await client.query(`
      CREATE TABLE users (id int PRIMARY KEY, email varchar(200) NOT NULL UNIQUE, password_hash text NOT NULL, name text NOT NULL, phone varchar(40));
      CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), amount numeric(10,2) NOT NULL);
      CREATE TABLE audit_log (id int PRIMARY KEY, user_id int REFERENCES users(id), action text NOT NULL);
      INSERT INTO users SELECT g, 'person' || g || '@corp.example', '$2b$12$' || md5('pw' || g), 'Person ' || g, '+41 79 ' || (1000000 + g) FROM generate_series(1, ${options.users}) g;
      INSERT INTO orders SELECT g, 1 + g % ${options.users}, g * 1.5 FROM generate_series(1, ${options.users * 3}) g;
      INSERT INTO audit_log SELECT g, 1 + g % ${options.users}, 'login from 10.0.0.' || (g % 250) FROM generate_series(1, ${options.users}) g;
      ANALYZE;`);
    await client.end();
    console.log(`Generated ${options.users} users, ${options.users * 3} orders, ${options.users} audit rows in ${fixed((Date.now() - generatedAt) / 1000, 1)} s`);

    const password = decodeURIComponent(new URL(server.url).password);
    const settings: PostgresSettings = {
      host: server.host,
      port: server.port,
      user: server.user,
      ...(password ? { password } : {}),
      maintenanceDatabase: 'postgres',
      ...(server.binDir ? { binDir: server.binDir } : {}),
    };
    const driver = createPostgresScratch({ source: settings, scratch: settings, prefix: `dbdist_b${randomBytes(3).toString('hex')}_` });
    const masking = MaskingRuleSet.parse({
      version: 1,
      rules: [
        { table: 'users', column: 'email', strategy: 'email' },
        { table: 'users', column: 'password_hash', strategy: 'hash' },
        { table: 'users', column: 'name', strategy: 'name' },
        { table: 'users', column: 'phone', strategy: 'null' },
        { table: 'audit_log', strategy: 'excludeData' },
      ],
    });
    const engineOptions = (attemptId: string) => ({ signal: new AbortController().signal, attemptId, onProgress: () => undefined });
    const variants: Array<[string, () => Promise<EngineBackup>]> = [
      ['raw pg_dump', () => createPostgresEngine({ ...settings, recordRowCounts: false }).backup({ jobId: 'b', databaseName: database }, engineOptions('a1'))],
      ['raw + row counts', () => createPostgresEngine(settings).backup({ jobId: 'b', databaseName: database }, engineOptions('a2'))],
      ['excludeData only', () =>
        sanitizedBackup({ jobId: 'b', databaseName: database, masking: MaskingRuleSet.parse({ version: 1, rules: [{ table: 'audit_log', strategy: 'excludeData' }], sensitivePatterns: ['action'] }) }, driver, { ...engineOptions('a3'), logger: silentLogger() })],
      ['sanitized (scratch)', () => sanitizedBackup({ jobId: 'b', databaseName: database, masking }, driver, { ...engineOptions('a4'), logger: silentLogger() })],
    ];
    const results: Array<{ name: string; seconds: number; bytes: number }> = [];
    for (const [name, start] of variants) {
      const began = process.hrtime.bigint();
      const bytes = await drain(await start());
      results.push({ name, seconds: Number(process.hrtime.bigint() - began) / 1e9, bytes });
    }
    const raw = results[0]!.seconds;
    printTable(
      `Sanitized copies and row counts, ${options.users} users (same run, same server)`,
      ['variant', 'seconds', 'dump MiB', 'time vs raw'],
      results.map((r) => [r.name, fixed(r.seconds, 2), fixed(r.bytes / 1048576, 1), ratio(r.seconds, raw)]),
    );
    await driver.dropLeftovers();
  } finally {
    await server.stop();
  }
}
