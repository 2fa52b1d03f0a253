/**
 * The pre-commit restore check of a PostgreSQL backup: `pg_restore --list` reads the archive pg_dump is writing,
 * fed from the same chunks that go to the upload (a tee: no second pass over the bytes, no temp file). A custom
 * format archive written to a pipe starts with its table of contents, so pg_restore lists it, exits, and is fed no
 * more; the check proves the archive is one pg_restore can read and says how many entries it holds.
 */
import { spawn } from 'node:child_process';
import { basename, dirname, join } from 'node:path';
import type { RestoreCheck } from '../../shared/contracts/runner.js';
import { BoundedText } from '../errors.js';

/** At most this much is buffered for pg_restore; past it the feed stops (pg_restore has what a listing needs). */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** pg_restore beside the pg_dump in use (same version), or from PATH like it. */
export function pgRestoreBeside(pgDumpPath: string): string {
  const name = process.platform === 'win32' ? 'pg_restore.exe' : 'pg_restore';
  return basename(pgDumpPath) === pgDumpPath ? name : join(dirname(pgDumpPath), name);
}

export interface ArchiveListing {
  feed(chunk: Buffer): void;
  /** The archive is complete: waits for pg_restore's verdict. */
  finish(): Promise<RestoreCheck>;
  /** The backup failed or was aborted: stops pg_restore. */
  abort(): void;
}

export function startArchiveListing(pgRestorePath: string): ArchiveListing {
  const child = spawn(pgRestorePath, ['--list'], { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
  const stderr = new BoundedText(2000);
  let entries = 0;
  let partial = '';
  let feeding = true;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    entries += lines.filter((line) => line.trim() !== '' && !line.startsWith(';')).length;
  });
  child.stderr.on('data', (chunk: Buffer) => stderr.append(chunk));
  // Once pg_restore has what it needs it exits: later writes fail with EPIPE, which is expected.
  child.stdin.on('error', () => {
    feeding = false;
  });
  const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.on('error', (error) => resolve({ code: null, error }));
    child.on('close', (code) => {
      feeding = false;
      resolve({ code });
    });
  });

  return {
    feed(chunk) {
      if (!feeding) return;
      if (child.stdin.writableLength > MAX_PENDING_BYTES) {
        feeding = false;
        child.stdin.end();
        return;
      }
      child.stdin.write(chunk);
    },
    async finish() {
      if (feeding) child.stdin.end();
      const { code, error } = await exited;
      if (partial.trim() !== '' && !partial.startsWith(';')) entries += 1;
      if (error) return { tool: 'pg_restore --list', ok: false, detail: `pg_restore could not be started: ${error.message}`.slice(0, 500) };
      if (code !== 0 || entries === 0) {
        const why = stderr.toString().trim() || (code === 0 ? 'it listed no entries' : `exit ${code}`);
        return { tool: 'pg_restore --list', ok: false, detail: why.slice(0, 500) };
      }
      return { tool: 'pg_restore --list', ok: true, detail: `${entries} archive entries` };
    },
    abort() {
      feeding = false;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}
