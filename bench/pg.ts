/**
 * PostgreSQL engine benchmark: `pg_dump --format=custom` of a generated database (default ~1 GiB on disk;
 * `--pg-size-mib`) straight into the upload, beside pg_dump writing a local file alone. The server is the test
 * fixture's (test/support/postgres.ts: `PG_URL`, or a throwaway cluster from the installed binaries).
 *
 * The data: one table of orders, each row an id, a customer name from a small set, a 128-character hex note
 * (compresses about 2x) and 512 pseudo-random bytes (do not compress): pg_dump's own zlib compression (on by
 * default in the custom format) has real work to do, as with a real database.
 */
import { join } from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import pg from 'pg';
import { startPostgres, postgresAvailable, type PostgresServer } from '../test/support/postgres.js';
import type { PostgresSettings } from '../runner-agent/config.js';
import { runInChild, type ChildOutcome } from './lib/child.js';
import { withFreshAzurite } from './lib/fresh-azurite.js';
import { fixed, MiB, printTable, ratio } from './lib/report.js';
import type { PgVariant, PgVariantInput, PgVariantResult } from './pg-variant.js';

const variantEntry = new URL('./pg-variant.ts', import.meta.url);
/** Bytes a generated row takes on disk, tuple header and TOAST-free storage included (measured, roughly). */
const bytesPerRowOnDisk = 760;
const rowsPerInsert = 100_000;

export interface PgBenchOptions {
  sizeMiB: number;
  workDir: string;
}

export async function runPgBench(options: PgBenchOptions): Promise<void> {
  if (!postgresAvailable) {
    console.log('Skipped: no PostgreSQL server (set PG_URL or install the postgresql server package).');
    return;
  }
  mkdirSync(options.workDir, { recursive: true });
  const server = await startPostgres();
  try {
    await measure(server, options);
  } finally {
    await server.stop();
  }
}

async function measure(server: PostgresServer, options: PgBenchOptions): Promise<void> {
  const url = await server.createDatabase();
  const database = decodeURIComponent(new URL(url).pathname.slice(1));
  const generated = await generate(url, options.sizeMiB);
  console.log(`Generated ${generated.rows} rows: ${fixed(generated.bytes / MiB)} MiB on disk in ${fixed(generated.seconds, 1)} s`);

  const settings: PostgresSettings = {
    host: server.host,
    port: server.port,
    user: server.user,
    maintenanceDatabase: 'postgres',
    ...(server.binDir ? { binDir: server.binDir } : {}),
  };
  const file = join(options.workDir, 'pg-bench.dump');
  const rows: Array<{ variant: PgVariant; outcome: ChildOutcome<PgVariantResult>; azuriteCpuSeconds?: number; load: number }> = [];
  for (const variant of ['pg_dump-to-file', 'dbdist-to-file', 'dbdist-upload'] as const) {
    process.stdout.write(`  ${variant.padEnd(16)} … `);
    const input: PgVariantInput = { variant, settings, database, file };
    const measured =
      variant === 'dbdist-upload'
        ? await withFreshAzurite((blob) => runInChild<PgVariantResult>(variantEntry, { ...input, blob }))
        : { value: await runInChild<PgVariantResult>(variantEntry, input) };
    rmSync(file, { force: true });
    const outcome = measured.value;
    console.log(outcome.ok ? `${fixed(outcome.result.seconds, 1)} s` : `FAILED: ${outcome.error}`);
    rows.push({ variant, outcome, ...(measured.azuriteCpuSeconds !== undefined ? { azuriteCpuSeconds: measured.azuriteCpuSeconds } : {}), load: loadavg()[0]! });
  }

  const seconds = (variant: PgVariant) => {
    const row = rows.find((r) => r.variant === variant);
    return row?.outcome.ok ? row.outcome.result.seconds : undefined;
  };
  const alone = seconds('pg_dump-to-file');
  printTable(
    `pg_dump --format=custom of a ${fixed(generated.bytes / MiB, 0)} MiB database (ratios from this run)`,
    ['variant', 'seconds', 'dump MiB', 'dump MiB/s', 'node CPU s', 'Azurite CPU s', 'peak RSS MiB', 'time vs pg_dump alone', 'load'],
    rows.map(({ variant, outcome, azuriteCpuSeconds, load }) =>
      outcome.ok
        ? [
            variant,
            fixed(outcome.result.seconds, 2),
            fixed(outcome.result.dumpBytes / MiB),
            fixed(outcome.result.dumpBytes / MiB / outcome.result.seconds),
            fixed(outcome.result.cpuSeconds, 2),
            fixed(azuriteCpuSeconds, 2),
            fixed(outcome.peakRssMiB),
            ratio(outcome.result.seconds, alone),
            fixed(load),
          ]
        : [variant, 'FAILED', '-', '-', '-', '-', fixed(outcome.peakRssMiB), '-', fixed(load)],
    ),
  );
  for (const row of rows) if (!row.outcome.ok) console.log(`  ${row.variant} failed: ${row.outcome.error}`);
  const upload = seconds('dbdist-upload');
  console.log(
    `pg_dump straight into the upload took ${ratio(upload, alone)} the time of pg_dump to a local file alone ` +
      `(throughput ratio ${ratio(alone, upload)}).`,
  );
}

/** Fills one table to about `sizeMiB` MiB on disk with generate_series; returns what it made. */
async function generate(url: string, sizeMiB: number): Promise<{ rows: number; bytes: number; seconds: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const started = Date.now();
  try {
    await client.query(`create table orders (id bigint primary key, customer text not null, note text not null, payload bytea not null)`);
    const rows = Math.max(1, Math.round((sizeMiB * MiB) / bytesPerRowOnDisk));
    for (let first = 1; first <= rows; first += rowsPerInsert) {
      const last = Math.min(rows, first + rowsPerInsert - 1);
      // 16 chained SHA-256 digests: 512 pseudo-random bytes per row without any extension.
      await client.query(
        `insert into orders
           select g, 'customer-' || (g % 5000), repeat(md5(g::text), 4),
                  (select string_agg(sha256((g * 16 + i)::text::bytea), ''::bytea) from generate_series(1, 16) i)
           from generate_series($1::bigint, $2::bigint) g`,
        [first, last],
      );
    }
    await client.query('analyze orders');
    const { rows: size } = await client.query<{ bytes: string }>(`select pg_database_size(current_database()) as bytes`);
    return { rows, bytes: Number(size[0]!.bytes), seconds: (Date.now() - started) / 1000 };
  } finally {
    await client.end();
  }
}
