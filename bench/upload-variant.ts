/**
 * Child process of the upload benchmark: runs ONE variant over one file and reports bytes, seconds and what
 * was stored; its peak RSS is reported by bench/lib/child.ts. Every upload goes through a real write-only
 * user-delegation SAS from the production blob gateway, issued before the clock starts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { BlockBlobClient } from '@azure/storage-blob';
import type { Compression } from '../shared/contracts/common.js';
import { uploadBackup, DEFAULT_BLOCK_BYTES } from '../runner-agent/pipeline/upload.js';
import { generateAgeIdentity } from '../runner-agent/pipeline/age.js';
import { benchMetadata, benchTarget, cpuSecondsSince, type BlobLocation } from './lib/blob-target.js';
import { digestOf } from '../test/runner-agent/helpers.js';
import { serveChild } from './lib/child.js';
import { elapsedMs } from './lib/stats.js';

export type UploadVariant =
  | 'idle'
  | 'hash-only'
  | 'azurite-ceiling'
  | 'azurite-ceiling-crc64'
  | 'uploadFile'
  | 'uploadFile-null'
  | 'naive'
  | 'dbdist'
  | 'dbdist-null'
  | 'dbdist+gzip'
  | 'dbdist+zstd'
  | 'dbdist+age';

export interface VariantInput {
  variant: UploadVariant;
  file: string;
  blob?: BlobLocation;
  /** Bytes the ceiling variants stage (they read no file); default the file's size. */
  ceilingBytes?: number;
}

export interface VariantResult {
  /** Bytes read from the source file. */
  sourceBytes: number;
  /** Bytes stored in the blob (after compression/encryption); absent for hash-only. */
  storedBytes?: number;
  seconds: number;
  /** CPU time (user + system) this process spent during the timed part. */
  cpuSeconds: number;
  /** SHA-256 of the source file, when the variant computed it (hash-only, plain dbdist). */
  sourceSha256?: string;
}

/** Read size of every file stream here: the same source for the limit and for dbdist. */
const readChunkBytes = 1024 * 1024;
/** Staged at once by the ceiling variant: what dbdist's pipeline uses by default. */
const ceilingParallelism = 4;

const compressionOf: Partial<Record<UploadVariant, Compression>> = { 'dbdist+gzip': 'gzip', 'dbdist+zstd': 'zstd' };

serveChild<VariantInput, VariantResult | undefined>(async ({ variant, file, blob, ceilingBytes }) => {
  if (variant === 'idle') return undefined; // the floor: this process with every module loaded, doing nothing
  const size = variant.startsWith('azurite-ceiling') && ceilingBytes ? ceilingBytes : (await stat(file)).size;
  if (variant === 'hash-only') return hashOnly(file);
  if (!blob) throw new Error(`${variant} needs an Azurite endpoint`);

  const target = await benchTarget(blob, variant);
  const client = new BlockBlobClient(target.url);

  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  let sourceSha256: string | undefined;
  // A "-null" variant does the same work as its base against the null target (the parent chose the endpoint).
  switch (variant.replace(/-null$/, '') as UploadVariant) {
    case 'azurite-ceiling':
      await stageSameBlock(client, size, { withMd5: true });
      break;
    case 'azurite-ceiling-crc64':
      await stageSameBlock(client, size, { withMd5: false });
      break;
    case 'uploadFile':
      await client.uploadFile(file);
      break;
    case 'naive': {
      // The seed's approach: the whole backup in memory, then one call.
      const data = await readFile(file);
      await client.uploadData(data);
      break;
    }
    default: {
      const result = await uploadBackup({
        source: createReadStream(file, { highWaterMark: readChunkBytes }),
        sourceSizeHint: size,
        compression: compressionOf[variant] ?? 'none',
        ...(variant === 'dbdist+age' ? { ageRecipients: [generateAgeIdentity().recipient] } : {}),
        getTarget: async () => target,
        metadata: benchMetadata,
      });
      if (variant === 'dbdist' || variant === 'dbdist-null') sourceSha256 = result.sha256;
    }
  }
  const seconds = elapsedMs(start) / 1000;
  const cpuSeconds = cpuSecondsSince(cpuStart);

  const storedBytes = await target.storedBytes();
  return { sourceBytes: size, storedBytes, seconds, cpuSeconds, ...(sourceSha256 ? { sourceSha256 } : {}) };
});

/** The limit: one pass reading the file and hashing it with SHA-256, nothing else. */
async function hashOnly(file: string): Promise<VariantResult> {
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  const { sha256, bytes } = await digestOf(createReadStream(file, { highWaterMark: readChunkBytes }));
  return { sourceBytes: bytes, seconds: elapsedMs(start) / 1000, cpuSeconds: cpuSecondsSince(cpuStart), sourceSha256: sha256 };
}

/**
 * Azurite's own ceiling for dbdist's block pattern: one random 8 MiB buffer staged again and again (no file
 * read, no hashing), `ceilingParallelism` at once, as many blocks as the file needs, then committed.
 * `withMd5` sends the block's (precomputed) transactional MD5 as dbdist does; without it Azurite computes a
 * CRC64 of every block in JavaScript instead (what a plain uploadFile makes it do), which costs it far more.
 */
async function stageSameBlock(client: BlockBlobClient, totalBytes: number, { withMd5 }: { withMd5: boolean }): Promise<void> {
  const block = randomBytes(DEFAULT_BLOCK_BYTES);
  const md5 = createHash('md5').update(block).digest();
  const count = Math.ceil(totalBytes / block.length);
  const ids = Array.from({ length: count }, (_, i) => Buffer.from(`block-${String(i).padStart(6, '0')}`).toString('base64'));
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      const length = index === count - 1 ? totalBytes - index * block.length : block.length;
      const body = block.subarray(0, length);
      const checksum = withMd5 ? { transactionalContentMD5: length === block.length ? md5 : createHash('md5').update(body).digest() } : {};
      await client.stageBlock(ids[index]!, body, length, checksum);
    }
  };
  await Promise.all(Array.from({ length: ceilingParallelism }, worker));
  await client.commitBlockList(ids);
}
