/**
 * An engine that produces pseudo-random bytes, optionally slowly or for ever, so consumer tests control how long
 * a "backup" takes without a database, and the scale bench runs small synthetic backups. Counts its backups.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import type { BackupEngineDriver, EngineBackup } from '../runner-agent/engines/types.js';
import { JobFailure } from '../runner-agent/errors.js';

const chunkBytes = 1024 * 1024;
const zeros = Buffer.alloc(chunkBytes);

/**
 * `totalBytes` pseudo-random bytes (AES-CTR keystream of `seed`), produced chunk by chunk. `failAfter` makes
 * the stream error once that many bytes were produced (an engine dying mid-backup).
 */
export function pseudoRandomStream(totalBytes: number, seed = 'seed', options: { failAfter?: number } = {}): Readable {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  let produced = 0;
  return new Readable({
    highWaterMark: chunkBytes,
    read() {
      if (options.failAfter !== undefined && produced >= options.failAfter) {
        this.destroy(new Error('source failed midway'));
        return;
      }
      const size = Math.min(chunkBytes, totalBytes - produced);
      if (size <= 0) {
        this.push(null);
        return;
      }
      produced += size;
      this.push(cipher.update(size === chunkBytes ? zeros : zeros.subarray(0, size)));
    },
  });
}

export interface FakeEngineOptions {
  bytes?: number;
  seed?: string;
  /** Pause between 1 MiB chunks; with `endless`, a backup that only ends when aborted. */
  chunkDelayMs?: number;
  endless?: boolean;
  /** Fail after the stream with this code (an engine exiting non-zero). */
  failWith?: string;
}

export function fakeEngine(options: FakeEngineOptions = {}): BackupEngineDriver & { backups: number; aborted: number } {
  const engine = {
    name: 'postgres' as const,
    backups: 0,
    aborted: 0,
    async backup(_job: unknown, { signal }: { signal: AbortSignal }): Promise<EngineBackup> {
      engine.backups += 1;
      const bytes = options.endless ? Number.MAX_SAFE_INTEGER : (options.bytes ?? 3 * 1024 * 1024);
      const source = pseudoRandomStream(bytes, options.seed ?? 'fake');
      const stream = new PassThrough();
      let failure: JobFailure | undefined;
      // Like a real engine killing its child process: the abort counts when the signal fires, not at the next
      // chunk, which may never come once the consumer has stopped reading.
      const onAbort = () => {
        engine.aborted += 1;
        failure = new JobFailure('aborted', 'aborted');
        stream.destroy(failure);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      const done = (async () => {
        for await (const chunk of source) {
          if (failure) break;
          if (stream.destroyed) break; // the consumer gave up (upload failed)
          if (!stream.write(chunk)) await new Promise((resolve) => (stream.once('drain', resolve), stream.once('close', resolve)));
          if (options.chunkDelayMs) await new Promise((resolve) => setTimeout(resolve, options.chunkDelayMs));
        }
        signal.removeEventListener('abort', onAbort);
        if (!failure && options.failWith) failure = new JobFailure(options.failWith, `engine failed: ${options.failWith}`);
        if (failure) {
          stream.destroy(failure);
          throw failure;
        }
        stream.end();
      })();
      done.catch(() => undefined);
      return { stream, done, cleanup: async () => undefined };
    },
    async check() {
      return 'fake engine';
    },
  };
  return engine;
}
