/**
 * Child process of the PostgreSQL benchmark: ONE way of taking a `pg_dump --format=custom` of the generated
 * database, timed from spawning pg_dump to the last byte stored.
 *   pg_dump-to-file   pg_dump alone, writing the dump to a local file (`--file`): the engine's own speed
 *   dbdist-to-file    the runner's engine (runner-agent/engines/postgres.ts) through writeBackup (hashing) to a file
 *   dbdist-upload     the runner's engine straight into the upload pipeline to Azurite: what a job does
 */
import { spawn } from 'node:child_process';
import { createWriteStream, statSync } from 'node:fs';
import { once } from 'node:events';
import { createPostgresEngine, findPgDump, pgEnvironment } from '../runner-agent/engines/postgres.js';
import type { PostgresSettings } from '../runner-agent/config.js';
import { uploadBackup, writeBackup } from '../runner-agent/pipeline/upload.js';
import { benchMetadata, benchTarget, cpuSecondsSince, type BlobLocation } from './lib/blob-target.js';
import { serveChild } from './lib/child.js';
import { elapsedMs } from './lib/stats.js';

export type PgVariant = 'pg_dump-to-file' | 'dbdist-to-file' | 'dbdist-upload';

export interface PgVariantInput {
  variant: PgVariant;
  settings: PostgresSettings;
  database: string;
  /** Where the file variants write. */
  file: string;
  blob?: BlobLocation;
}

export interface PgVariantResult {
  dumpBytes: number;
  seconds: number;
  /** CPU of this process (pg_dump's own CPU is in its process). */
  cpuSeconds: number;
}

serveChild<PgVariantInput, PgVariantResult>(async ({ variant, settings, database, file, blob }) => {
  const target = variant === 'dbdist-upload' ? await benchTarget(blob!, variant) : undefined;
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  let dumpBytes: number;
  if (variant === 'pg_dump-to-file') {
    // The same executable and environment the engine uses, with pg_dump writing the file itself.
    const child = spawn(findPgDump(settings.binDir), ['--format=custom', '--no-password', `--file=${file}`], {
      env: pgEnvironment(settings, database),
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const [code] = (await once(child, 'close')) as [number | null];
    if (code !== 0) throw new Error(`pg_dump exited with ${code}`);
    dumpBytes = statSync(file).size;
  } else {
    const engine = createPostgresEngine(settings);
    const backup = await engine.backup(
      { jobId: 'bench', databaseName: database },
      { signal: new AbortController().signal, onProgress: () => undefined, attemptId: 'bench' },
    );
    try {
      if (variant === 'dbdist-to-file') {
        const facts = await writeBackup({ source: backup.stream, sourceDone: backup.done, compression: 'none', destination: createWriteStream(file) });
        dumpBytes = facts.sizeBytes;
      } else {
        const result = await uploadBackup({
          source: backup.stream,
          sourceDone: backup.done,
          compression: 'none',
          getTarget: async () => target!,
          metadata: benchMetadata,
        });
        dumpBytes = result.sizeBytes;
      }
    } finally {
      await backup.cleanup();
    }
  }
  const seconds = elapsedMs(start) / 1000;
  const cpuSeconds = cpuSecondsSince(cpuStart);
  if (target && (await target.storedBytes()) !== dumpBytes) throw new Error('the stored blob does not have the dump size');
  return { dumpBytes, seconds, cpuSeconds };
});
