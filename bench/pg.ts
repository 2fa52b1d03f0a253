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
import { withFreshNullTarget } from './lib/fresh-null-target.js';
import { fixed, metOrNot, MiB, printTable, ratio } from './lib/report.js';
import type { PgVariantInput, PgVariantResult } from './pg-variant.js';
import { findPgDump, pgDumpFormatArguments } from '../runner-agent/engines/postgres.js';
import { spawnSync } from 'node:child_process';

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
  type Run = { label: string; input: Omit<PgVariantInput, 'settings' | 'database' | 'file'>; nullTarget?: boolean };
  const runs: Run[] = [
    { label: 'pg_dump -Fc (zlib 6) to file', input: { variant: 'pg_dump-to-file', compression: 'none', pgDumpArgs: ['--format=custom'] } },
    { label: 'before: -Fc (zlib 6) to blob', input: { variant: 'before-upload', compression: 'none' } },
    { label: `pg_dump ${pgDumpFormatArguments('none').join(' ')} to file`, input: { variant: 'pg_dump-to-file', compression: 'none', pgDumpArgs: pgDumpFormatArguments('none') } },
    { label: 'pg_dump -Fc -Z0 to file', input: { variant: 'pg_dump-to-file', compression: 'none', pgDumpArgs: ['--format=custom', '--compress=0'] } },
  ];
  for (const compression of ['none', 'zstd', 'gzip'] as const) {
    runs.push({ label: `dbdist ${compression} to file`, input: { variant: 'dbdist-to-file', compression } });
    runs.push({ label: `dbdist ${compression} to blob`, input: { variant: 'dbdist-upload', compression } });
    // The same upload into the null target: the runner's own limit, without Azurite's CPU on the same cores.
    if (compression !== 'gzip') runs.push({ label: `dbdist ${compression} to null target`, input: { variant: 'dbdist-upload', compression }, nullTarget: true });
  }
  const rows: Array<{ label: string; outcome: ChildOutcome<PgVariantResult>; targetCpuSeconds?: number; load: number }> = [];
  for (const { label, input: partial, nullTarget } of runs) {
    process.stdout.write(`  ${label.padEnd(34)} … `);
    const input: PgVariantInput = { ...partial, settings, database, file };
    const uploads = input.variant === 'dbdist-upload' || input.variant === 'before-upload';
    const measured = !uploads
      ? { value: await runInChild<PgVariantResult>(variantEntry, input) }
      : nullTarget
        ? await withFreshNullTarget((blob) => runInChild<PgVariantResult>(variantEntry, { ...input, blob }))
        : await withFreshAzurite((blob) => runInChild<PgVariantResult>(variantEntry, { ...input, blob }));
    rmSync(file, { force: true });
    const outcome = measured.value;
    console.log(outcome.ok ? `${fixed(outcome.result.seconds, 1)} s` : `FAILED: ${outcome.error}`);
    const targetCpuSeconds = 'azuriteCpuSeconds' in measured ? measured.azuriteCpuSeconds : 'serverCpuSeconds' in measured ? measured.serverCpuSeconds : undefined;
    rows.push({ label, outcome, ...(targetCpuSeconds !== undefined ? { targetCpuSeconds } : {}), load: loadavg()[0]! });
  }

  const seconds = (label: string) => {
    const row = rows.find((r) => r.label === label);
    return row?.outcome.ok ? row.outcome.result.seconds : undefined;
  };
  const databaseMiB = generated.bytes / MiB;
  const before = seconds('before: -Fc (zlib 6) to blob');
  printTable(
    `pg_dump --format=custom of a ${fixed(databaseMiB, 0)} MiB database (throughput in MiB of database per second; ratios from this run)`,
    ['variant', 'seconds', 'stored MiB', 'database MiB/s', 'node CPU s', 'node CPU s/GiB of db', 'target CPU s (Azurite or null)', 'peak RSS MiB', 'throughput vs before', 'load'],
    rows.map(({ label, outcome, targetCpuSeconds, load }) =>
      outcome.ok
        ? [
            label,
            fixed(outcome.result.seconds, 2),
            fixed(outcome.result.storedBytes / MiB),
            fixed(databaseMiB / outcome.result.seconds),
            fixed(outcome.result.cpuSeconds, 2),
            fixed(outcome.result.cpuSeconds / (databaseMiB / 1024), 2),
            fixed(targetCpuSeconds, 2),
            fixed(outcome.peakRssMiB),
            ratio(before, outcome.result.seconds),
            fixed(load),
          ]
        : [label, 'FAILED', '-', '-', '-', '-', '-', fixed(outcome.peakRssMiB), '-', fixed(load)],
    ),
  );
  for (const row of rows) if (!row.outcome.ok) console.log(`  ${row.label} failed: ${row.outcome.error}`);
  console.log(`pg_dump --compress=zstd|lz4: ${pgDumpCompressionMethods(settings)}`);
  console.log('Targets:');
  const defaultPath = seconds('dbdist none to blob');
  console.log(
    `  default path (no runner compression: pg_dump ${pgDumpFormatArguments('none').join(' ')}, coalesced) throughput >= 3 x before: ` +
      `${ratio(before, defaultPath)} -> ${metOrNot(before && defaultPath ? before / defaultPath >= 3 : undefined)}`,
  );
  const zstdPath = seconds('dbdist zstd to blob');
  console.log(`  zstd path (pg_dump -Z0, runner zstd) throughput vs before: ${ratio(before, zstdPath)} -> ${metOrNot(before && zstdPath ? before / zstdPath >= 3 : undefined)}`);
  for (const compression of ['none', 'zstd', 'gzip']) {
    const toFile = seconds(`dbdist ${compression} to file`);
    for (const target of ['blob', 'null target']) {
      const toBlob = seconds(`dbdist ${compression} to ${target}`);
      if (toBlob === undefined) continue;
      console.log(
        `  ${compression}: dump-to-${target === 'blob' ? 'blob (Azurite)' : 'blob (null target)'} >= 0.9 x dump-to-file throughput: ${ratio(toFile, toBlob)} -> ${metOrNot(toFile ? toFile / toBlob >= 0.9 : undefined)}`,
      );
    }
  }
}

/** Whether this pg_dump offers --compress=zstd/lz4 (PostgreSQL 16+), from its --help. */
function pgDumpCompressionMethods(settings: PostgresSettings): string {
  const help = spawnSync(findPgDump(settings.binDir), ['--help'], { encoding: 'utf8' }).stdout ?? '';
  const line = help.split('\n').find((l) => l.includes('--compress')) ?? '(no --compress line)';
  return /zstd|lz4|METHOD/i.test(line) ? `offered (${line.trim()})` : `not offered by this pg_dump (${line.trim()}): not measured`;
}

/** Fills one table to about `sizeMiB` MiB on disk with generate_series; returns what it made. */
export async function generate(url: string, sizeMiB: number): Promise<{ rows: number; bytes: number; seconds: number }> {
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
