/**
 * Child process of the PostgreSQL benchmark: ONE way of taking a `pg_dump --format=custom` of the generated
 * database, timed from spawning pg_dump to the last byte stored.
 *   pg_dump-to-file   pg_dump alone, writing the dump to a local file (`--file`) with `pgDumpArgs`
 *   before-upload     the path before issue 16: pg_dump's default zlib (level 6), its ~4 KiB writes straight
 *                     into the upload pipeline (no coalescing), no runner compression
 *   dbdist-to-file    the runner's engine (runner-agent/engines/postgres.ts) through writeBackup (hashing) to a file
 *   dbdist-upload     the runner's engine straight into the upload pipeline to Azurite: what a job does
 */
import { spawn } from 'node:child_process';
import { createWriteStream, statSync } from 'node:fs';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { Compression } from '../shared/contracts/common.js';
import { createPostgresEngine, findPgDump, pgEnvironment } from '../runner-agent/engines/postgres.js';
import type { PostgresSettings } from '../runner-agent/config.js';
import { uploadBackup, writeBackup } from '../runner-agent/pipeline/upload.js';
import { benchMetadata, benchTarget, cpuSecondsSince, type BlobLocation } from './lib/blob-target.js';
import { serveChild } from './lib/child.js';
import { elapsedMs } from './lib/stats.js';

export type PgVariant = 'pg_dump-to-file' | 'before-upload' | 'dbdist-to-file' | 'dbdist-upload';

export interface PgVariantInput {
  variant: PgVariant;
  /** The runner's compression (dbdist variants). */
  compression: Compression;
  /** pg_dump's format arguments (pg_dump-to-file). */
  pgDumpArgs?: string[];
  settings: PostgresSettings;
  database: string;
  /** Where the file variants write. */
  file: string;
  blob?: BlobLocation;
}

export interface PgVariantResult {
  /** Bytes stored (after the runner's compression, if any). */
  storedBytes: number;
  seconds: number;
  /** CPU of this process (pg_dump's own CPU is in its process). */
  cpuSeconds: number;
}

serveChild<PgVariantInput, PgVariantResult>(async ({ variant, compression, pgDumpArgs, settings, database, file, blob }) => {
  const uploads = variant === 'dbdist-upload' || variant === 'before-upload';
  const target = uploads ? await benchTarget(blob!, variant) : undefined;
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  let storedBytes: number;
  if (variant === 'pg_dump-to-file') {
    // The same executable and environment the engine uses, with pg_dump writing the file itself.
    const child = spawn(findPgDump(settings.binDir), [...(pgDumpArgs ?? ['--format=custom']), '--no-password', `--file=${file}`], {
      env: pgEnvironment(settings, database),
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const [code] = (await once(child, 'close')) as [number | null];
    if (code !== 0) throw new Error(`pg_dump exited with ${code}`);
    storedBytes = statSync(file).size;
  } else if (variant === 'before-upload') {
    const child = spawn(findPgDump(settings.binDir), ['--format=custom', '--no-password'], {
      env: pgEnvironment(settings, database),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const stream = new PassThrough();
    child.stdout!.pipe(stream);
    const exited = once(child, 'close').then(([code]) => {
      if (code !== 0) throw new Error(`pg_dump exited with ${code}`);
    });
    const result = await uploadBackup({ source: stream, sourceDone: exited, compression: 'none', getTarget: async () => target!, metadata: benchMetadata });
    storedBytes = result.sizeBytes;
  } else {
    const engine = createPostgresEngine(settings);
    const backup = await engine.backup(
      { jobId: 'bench', databaseName: database, compression },
      { signal: new AbortController().signal, onProgress: () => undefined, attemptId: 'bench' },
    );
    try {
      if (variant === 'dbdist-to-file') {
        const facts = await writeBackup({ source: backup.stream, sourceDone: backup.done, compression, destination: createWriteStream(file) });
        storedBytes = facts.sizeBytes;
      } else {
        const result = await uploadBackup({
          source: backup.stream,
          sourceDone: backup.done,
          compression,
          getTarget: async () => target!,
          metadata: benchMetadata,
        });
        storedBytes = result.sizeBytes;
      }
    } finally {
      await backup.cleanup();
    }
  }
  const seconds = elapsedMs(start) / 1000;
  const cpuSeconds = cpuSecondsSince(cpuStart);
  if (target && (await target.storedBytes()) !== storedBytes) throw new Error('the stored blob does not have the reported size');
  return { storedBytes, seconds, cpuSeconds };
});
