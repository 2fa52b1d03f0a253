/**
 * Input files for the upload benchmarks, generated once per run in a temp directory: pseudo-random bytes
 * (AES-CTR keystream: incompressible, like an already compressed or encrypted backup) and a compressible
 * text variant shaped like a SQL dump.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream, existsSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { MiB } from './report.js';

export type Content = 'random' | 'text';

/** Path of the file of `sizeMiB` MiB of `content` in `dir`, written unless a file of that size is there already. */
export async function ensureInputFile(dir: string, sizeMiB: number, content: Content): Promise<string> {
  const path = join(dir, `${content}-${sizeMiB}MiB.bin`);
  const bytes = sizeMiB * MiB;
  if (existsSync(path) && statSync(path).size === bytes) return path;
  await pipeline(content === 'random' ? randomChunks(bytes) : textChunks(bytes), createWriteStream(path));
  return path;
}

function randomChunks(totalBytes: number): Readable {
  const cipher = createCipheriv('aes-128-ctr', createHash('sha256').update('dbdist bench').digest().subarray(0, 16), Buffer.alloc(16));
  const zeros = Buffer.alloc(MiB);
  let produced = 0;
  return new Readable({
    read() {
      const size = Math.min(MiB, totalBytes - produced);
      if (size <= 0) return void this.push(null);
      produced += size;
      this.push(cipher.update(zeros.subarray(0, size)));
    },
  });
}

/** Rows of a made-up orders table in COPY text format: repetitive, as real dumps are (gzip gets ~4-6x). */
function textChunks(totalBytes: number): Readable {
  const customers = Array.from({ length: 5000 }, (_, i) => `customer-${i.toString(36)}@contoso.example`);
  const statuses = ['shipped', 'pending', 'cancelled', 'returned', 'delivered'];
  // Math.random, not crypto.randomInt: tens of millions of draws, and nothing here needs to be unpredictable.
  const pick = (n: number) => Math.floor(Math.random() * n);
  let produced = 0;
  let id = 0;
  return new Readable({
    read() {
      if (produced >= totalBytes) return void this.push(null);
      let text = '';
      while (text.length < MiB) {
        id++;
        text += `${id}\t${customers[pick(customers.length)]}\t${statuses[pick(statuses.length)]}\t${pick(100_000) / 100}\t2026-0${1 + pick(9)}-1${pick(10)} 1${pick(10)}:${10 + pick(50)}:00\n`;
      }
      const chunk = Buffer.from(text, 'utf8').subarray(0, Math.min(MiB, totalBytes - produced));
      produced += chunk.length;
      this.push(chunk);
    },
  });
}
