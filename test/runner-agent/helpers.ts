/**
 * Test helpers for the runner agent: deterministic pseudo-random streams (generated, never held in memory)
 * and small stream utilities.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

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

/** SHA-256 (hex) and length of everything a stream yields. */
export async function digestOf(stream: NodeJS.ReadableStream): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        bytes += chunk.length;
        callback();
      },
    }),
  );
  return { sha256: hash.digest('hex'), bytes };
}

export async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(parts);
}

/** Runs `pieces` (one buffer or several writes) through a Transform and returns its output. */
export async function through(pieces: Buffer | Buffer[], transform: NodeJS.ReadWriteStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(
    Readable.from(Array.isArray(pieces) ? pieces : [pieces]),
    transform,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        parts.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(parts);
}
