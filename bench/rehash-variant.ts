/**
 * Child process of the re-hash benchmark: ONE variant over one stored blob (or its source file), reporting bytes,
 * seconds and the digest; its peak RSS is reported by bench/lib/child.ts.
 *
 *   hash-only      the limit: read the source file and SHA-256 it with the same hasher (hash-wasm on its worker
 *                  thread, as the re-hash uses it), no network
 *   hash-wasm-here hash-wasm alone on the calling thread, no worker, no state saved (context: the bare hasher)
 *   node-sha256    the same with Node's OpenSSL SHA-256 (context: what a non-resumable hash would reach)
 *   download-only  ranged reads of the stored blob from Azurite, bytes discarded (the storage side's limit here)
 *   rehash         the production rehashBlob activity, slice after slice as orchestrations/rehash.ts drives it
 */
import { createHash } from 'node:crypto';
import { createSHA256 } from 'hash-wasm';
import { createReadStream } from 'node:fs';
import { createBlobGateway } from '../shared/storage/blob-gateway.js';
import { continueSha256, finishSha256 } from '../shared/integrity/resumable-sha256.js';
import { rehashBlob, type RehashBlobInput, type RehashBlobResult } from '../orchestrations/integrity.activities.js';
import { setDeps, type Deps } from '../services/deps.js';
import { TestTokenCredential } from '../dev/azurite.js';
import type { BlobLocation } from './lib/blob-target.js';
import { cpuSecondsSince } from './lib/blob-target.js';
import { serveChild } from './lib/child.js';
import { elapsedMs } from './lib/stats.js';

export type RehashVariant = 'idle' | 'hash-only' | 'hash-wasm-here' | 'node-sha256' | 'download-only' | 'rehash';

export interface RehashVariantInput {
  variant: RehashVariant;
  file: string;
  blob: BlobLocation & { path: string };
  budgetBytes: number;
}

export interface RehashVariantResult {
  bytes: number;
  seconds: number;
  cpuSeconds: number;
  sha256?: string;
  slices?: number;
}

const readChunkBytes = 1024 * 1024;

serveChild<RehashVariantInput, RehashVariantResult | undefined>(async ({ variant, file, blob, budgetBytes }) => {
  if (variant === 'idle') return undefined;
  const blobs = createBlobGateway({ blobEndpoint: blob.endpoint, container: blob.container, credential: new TestTokenCredential() });
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  const done = (result: Omit<RehashVariantResult, 'seconds' | 'cpuSeconds'>): RehashVariantResult => ({
    ...result,
    seconds: elapsedMs(start) / 1000,
    cpuSeconds: cpuSecondsSince(cpuStart),
  });
  switch (variant) {
    case 'hash-only': {
      const { state, bytes } = await continueSha256(null, createReadStream(file, { highWaterMark: readChunkBytes }));
      return done({ bytes, sha256: await finishSha256(state) });
    }
    case 'hash-wasm-here': {
      const hasher = await createSHA256();
      let bytes = 0;
      for await (const chunk of createReadStream(file, { highWaterMark: readChunkBytes })) {
        hasher.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      return done({ bytes, sha256: hasher.digest('hex') });
    }
    case 'node-sha256': {
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of createReadStream(file, { highWaterMark: readChunkBytes })) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      return done({ bytes, sha256: hash.digest('hex') });
    }
    case 'download-only': {
      const facts = await blobs.getBlobFacts(blob.path);
      let bytes = 0;
      for (let offset = 0; offset < facts!.sizeBytes; offset += budgetBytes) {
        const stream = await blobs.readRange(blob.path, { offset, count: Math.min(budgetBytes, facts!.sizeBytes - offset), etag: facts!.etag });
        for await (const chunk of stream as AsyncIterable<Buffer>) bytes += chunk.length;
      }
      return done({ bytes });
    }
    case 'rehash': {
      // Only what rehashBlob reads from its dependencies.
      setDeps({ blobs, integrity: { rehashBudgetBytes: budgetBytes } } as unknown as Deps);
      let input: RehashBlobInput = { blobPath: blob.path, offset: 0, state: null, etag: null };
      for (let slices = 1; ; slices++) {
        // Through JSON, as activity inputs and results travel through orchestration history.
        const result = JSON.parse(JSON.stringify(await rehashBlob(input))) as RehashBlobResult;
        if (!result.ok) throw new Error(`rehash: ${result.code}: ${result.message}`);
        if (result.done) return done({ bytes: result.sizeBytes, sha256: result.sha256, slices });
        input = { blobPath: blob.path, offset: result.offset, state: result.state, etag: result.etag };
      }
    }
  }
});
