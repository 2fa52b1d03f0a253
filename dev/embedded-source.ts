/**
 * The sandbox's source database: an embedded PostgreSQL (PGlite) seeded with demo data, and a backup engine
 * for it built on pglite-tools' pg_dump (WebAssembly), so the sandbox needs nothing installed. A dev fixture:
 * the runner agent's production engines are in runner-agent/engines/.
 *
 * pglite-tools' pg_dump writes plain SQL (its custom format is not usable), so the demo's backup is a SQL
 * script; a real PostgreSQL source (`--source postgres://…`) goes through the real `pg_dump -Fc` engine.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { PGlite } from '@electric-sql/pglite';
import { pgDump } from '@electric-sql/pglite-tools/pg_dump';
import { JobFailure } from '../runner-agent/errors.js';
import { emptyPgliteDataDir } from './stores.js';
import type { BackupEngineDriver, EngineBackup } from '../runner-agent/engines/types.js';

export interface EmbeddedSource {
  databaseName: string;
  /** Row counts and a digest of the seeded data, to compare with a restore. */
  fingerprint(): Promise<DataFingerprint>;
  engine: BackupEngineDriver;
  close(): Promise<void>;
}

export interface DataFingerprint {
  rows: Record<string, number>;
  digest: string;
}

const demoTables = ['customers', 'orders'] as const;

export async function startEmbeddedSource(options: { databaseName?: string; customers?: number } = {}): Promise<EmbeddedSource> {
  const databaseName = options.databaseName ?? 'sales';
  const customers = options.customers ?? 2000;
  // From the empty cluster every PGlite of this process starts from: no second initdb (dev/stores.ts).
  const pg = new PGlite({ loadDataDir: await emptyPgliteDataDir() });
  await pg.exec(`
    CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL, created_at timestamptz NOT NULL);
    CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES customers(id), total numeric(10,2) NOT NULL, note bytea);
    INSERT INTO customers SELECT g, 'Customer ' || g, 'customer' || g || '@example.com', timestamptz '2026-01-01' + g * interval '1 hour'
      FROM generate_series(1, ${customers}) g;
    INSERT INTO orders SELECT g, 1 + (g % ${customers}), (g % 997) * 1.25, decode(md5(g::text), 'hex')
      FROM generate_series(1, ${customers * 3}) g;
  `);

  const engine: BackupEngineDriver = {
    name: 'postgres',
    async backup(job, { signal, onProgress }): Promise<EngineBackup> {
      if (job.databaseName !== databaseName) {
        throw new JobFailure('database_not_found', `The embedded source has no database ${JSON.stringify(job.databaseName)}`);
      }
      if (signal.aborted) throw new JobFailure('cancelled', 'Backup cancelled before it started');
      onProgress(0);
      // INSERTs rather than COPY, so the restore check can replay the script through PGlite's exec().
      const file = await pgDump({ pg, args: ['--no-owner', '--inserts', '--rows-per-insert=500'] });
      const bytes = Buffer.from(await file.arrayBuffer());
      return {
        stream: Readable.from(chunks(bytes, 64 * 1024)),
        done: Promise.resolve(),
        sizeHint: bytes.length,
        percentAfter: (bytesRead) => Math.min(100, (100 * bytesRead) / bytes.length),
        cleanup: async () => undefined,
      };
    },
    async check() {
      const { rows } = await pg.query<{ n: number }>('SELECT count(*)::int AS n FROM customers');
      return `embedded PostgreSQL database ${databaseName} answers (${rows[0]?.n ?? 0} customers)`;
    },
  };

  return {
    databaseName,
    engine,
    fingerprint: () => fingerprintOf(pg),
    close: () => pg.close(),
  };
}

/** Restores a backup of the embedded source into a fresh embedded database and fingerprints it. */
export async function restoreAndFingerprint(backup: Buffer): Promise<DataFingerprint> {
  const pg = new PGlite({ loadDataDir: await emptyPgliteDataDir() });
  try {
    await pg.exec(backup.toString('utf8'));
    return await fingerprintOf(pg);
  } finally {
    await pg.close();
  }
}

async function fingerprintOf(pg: PGlite): Promise<DataFingerprint> {
  const counts: Record<string, number> = {};
  const digest = createHash('sha256');
  for (const table of demoTables) {
    const { rows } = await pg.query<Record<string, unknown>>(`SELECT * FROM public.${table} ORDER BY id`);
    counts[table] = rows.length;
    digest.update(JSON.stringify(rows, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v)));
  }
  return { rows: counts, digest: digest.digest('hex') };
}

function* chunks(bytes: Buffer, size: number): Generator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size);
}
