/**
 * `npm run sandbox -- --sanitized`: a demo database with personal data on a real PostgreSQL server (users with
 * e-mails, password hashes and phones, orders pointing at them, an audit_log), the masking rules that make it
 * safe, and the check an engineer receiving the copy would run: restored elsewhere, it holds none of the
 * original values, the same row counts, intact foreign keys and an empty audit_log.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { PostgresSettings } from '../runner-agent/config.js';
import { findPgDump, pgEnvironment } from '../runner-agent/engines/postgres.js';
import { createPostgresScratch } from '../runner-agent/sanitize/postgres.js';
import type { ScratchDriver } from '../runner-agent/sanitize/types.js';
import type { MaskingRuleSet } from '../shared/contracts/masking.js';

const run = promisify(execFile);
const USERS = 200;

export interface SanitizedDemo {
  databaseName: string;
  settings: PostgresSettings;
  scratch: ScratchDriver;
  masking: MaskingRuleSet;
  /** Restores a downloaded (decrypted, decompressed) copy into a fresh database and checks it; a line of facts. */
  check(plainDump: Buffer): Promise<string>;
  close(): Promise<void>;
}

export async function startSanitizedDemo(serverUrl: string): Promise<SanitizedDemo> {
  const url = new URL(serverUrl);
  const settings: PostgresSettings = {
    host: url.hostname,
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username || 'postgres'),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    maintenanceDatabase: 'postgres',
  };
  const suffix = randomBytes(4).toString('hex');
  const databaseName = `dbdist_sandbox_${suffix}`;
  const restoredName = `dbdist_sandbox_${suffix}_received`;
  const connect = async <T>(database: string, work: (client: pg.Client) => Promise<T>) => {
    const client = new pg.Client({ host: settings.host, port: settings.port, user: settings.user, password: settings.password, database });
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end();
    }
  };
  await connect('postgres', (c) => c.query(`CREATE DATABASE ${databaseName}`));
  await connect(databaseName, (c) =>
    c.query(`
      CREATE TABLE users (id int PRIMARY KEY, email varchar(200) NOT NULL UNIQUE, password_hash text NOT NULL, name text NOT NULL, phone varchar(40));
      CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), amount numeric(10,2) NOT NULL);
      CREATE TABLE audit_log (id int PRIMARY KEY, user_id int REFERENCES users(id), action text NOT NULL);
      INSERT INTO users SELECT g, 'person' || g || '@corp.example', '$2b$12$' || md5('pw' || g), 'Person ' || g, '+41 79 ' || (1000000 + g) FROM generate_series(1, ${USERS}) g;
      INSERT INTO orders SELECT g, 1 + g % ${USERS}, g * 1.5 FROM generate_series(1, ${USERS * 3}) g;
      INSERT INTO audit_log SELECT g, 1 + g % ${USERS}, 'login from 10.0.0.' || (g % 250) FROM generate_series(1, ${USERS}) g;
    `),
  );
  const masking: MaskingRuleSet = {
    version: 1,
    rules: [
      { table: 'users', column: 'email', strategy: 'email' },
      { table: 'users', column: 'password_hash', strategy: 'hash' },
      { table: 'users', column: 'name', strategy: 'name' },
      { table: 'users', column: 'phone', strategy: 'null' },
      { table: 'audit_log', strategy: 'excludeData' },
    ],
    sql: [],
    sensitivePatterns: ['password', 'secret', 'token', 'salt', 'ssn', 'iban', 'card', 'email', 'phone'],
  };
  const scratch = createPostgresScratch({ source: settings, scratch: settings, prefix: `dbdist_sbx${suffix}_` });

  return {
    databaseName,
    settings,
    scratch,
    masking,
    async check(plainDump) {
      const dir = await mkdtemp(join(tmpdir(), 'dbdist-sandbox-'));
      try {
        const file = join(dir, 'copy.dump');
        await writeFile(file, plainDump);
        await connect('postgres', (c) => c.query(`CREATE DATABASE ${restoredName}`));
        await run(join(dirname(findPgDump()), 'pg_restore'), ['--no-owner', '--exit-on-error', '--no-password', `--dbname=${restoredName}`, file], {
          env: pgEnvironment(settings, restoredName),
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
      const [original, copy] = await Promise.all([
        connect(databaseName, async (c) => (await c.query('SELECT email, password_hash, phone, name FROM users')).rows),
        connect(restoredName, async (c) => ({
          users: (await c.query('SELECT email, password_hash, phone, name FROM users')).rows,
          facts: (
            await c.query(`SELECT (SELECT count(*) FROM orders)::int AS orders, (SELECT count(*) FROM audit_log)::int AS audit_log,
                                  (SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL)::int AS orphans`)
          ).rows[0] as { orders: number; audit_log: number; orphans: number },
        })),
      ]);
      for (const column of ['email', 'password_hash', 'phone', 'name'] as const) {
        const originals = new Set(original.map((row) => row[column]));
        const leaked = copy.users.filter((row) => row[column] !== null && originals.has(row[column])).length;
        if (leaked > 0) throw new Error(`the copy still holds ${leaked} original ${column} value(s)`);
      }
      if (copy.users.length !== USERS || copy.facts.orders !== USERS * 3) throw new Error(`row counts differ: ${copy.users.length} users, ${copy.facts.orders} orders`);
      if (copy.facts.audit_log !== 0) throw new Error(`audit_log has ${copy.facts.audit_log} rows`);
      if (copy.facts.orphans !== 0) throw new Error(`${copy.facts.orphans} orders point at no user`);
      return `${copy.users.length} users (no original e-mail, hash, phone or name; e.g. ${copy.users[0]?.email}), ${copy.facts.orders} orders with intact foreign keys, audit_log empty`;
    },
    async close() {
      await connect('postgres', async (c) => {
        for (const name of [databaseName, restoredName]) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      });
      await scratch.dropLeftovers();
    },
  };
}
