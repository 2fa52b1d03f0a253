import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { BlobClient, BlockBlobClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobGateway } from '../../../shared/storage/gateway.js';
import { createDecompressStream } from '../../../runner-agent/pipeline/compression.js';
import { createAgeDecryptStream, generateAgeIdentity } from '../../../runner-agent/pipeline/age.js';
import { JobFailure } from '../../../runner-agent/errors.js';
import { chooseBlockBytes, uploadBackup, type UploadOptions } from '../../../runner-agent/pipeline/upload.js';
import { startAzurite, type Azurite } from '../../../dev/azurite.js';
import { gatewayWithContainer, targetProvider, writeTarget } from '../blob-target.js';
import { collect, digestOf, pseudoRandomStream, through } from '../helpers.js';

const MiB = 1024 * 1024;
const metadata = { engine: 'postgres', jobid: 'job-1', server: 'pg01', database: 'Sales Ünïcode' };

let azurite: Azurite;
let gateway: BlobGateway;
let containerName: string;

beforeAll(async () => {
  azurite = await startAzurite();
  ({ gateway, container: containerName } = await gatewayWithContainer(azurite));
});

afterAll(async () => {
  await azurite?.stop();
});

function blobPath(): string {
  return `backups/${randomUUID()}/${randomUUID()}/${randomUUID()}.dump`;
}

/** Reads back through the test's own (OAuth) client: the write SAS cannot read. */
function readClient(path: string): BlobClient {
  return azurite.serviceClient.getContainerClient(containerName).getBlobClient(path);
}

async function download(path: string): Promise<Readable> {
  const response = await readClient(path).download();
  return response.readableStreamBody as Readable;
}

function options(path: string, overrides: Partial<UploadOptions>): UploadOptions {
  return {
    source: Readable.from([]),
    compression: 'none',
    getTarget: targetProvider(gateway, path),
    metadata,
    ...overrides,
  };
}

describe('upload pipeline against Azurite', () => {
  it('streams 300 MiB byte-identical into one blob with sha256/size metadata, memory bounded', async () => {
    const size = 300 * MiB;
    const path = blobPath();
    const expected = await digestOf(pseudoRandomStream(size, 'big'));

    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 10);
    let progressCalls = 0;
    let result;
    try {
      result = await uploadBackup(
        options(path, { source: pseudoRandomStream(size, 'big'), onProgress: () => (progressCalls += 1) }),
      );
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, process.memoryUsage().rss);

    expect(result).toMatchObject({ blobPath: path, sizeBytes: size, sha256: expected.sha256, compression: 'none', encrypted: false });
    expect(result.blockCount).toBe(Math.ceil(size / (8 * MiB)));
    expect(progressCalls).toBe(result.blockCount);
    // A bound on memory, not a timing: blocks in flight plus the one being filled, far below the blob's size.
    expect(peak - baseline).toBeLessThan(200 * MiB);

    const properties = await readClient(path).getProperties();
    expect(properties.contentLength).toBe(size);
    expect(properties.metadata).toEqual({
      sha256: expected.sha256,
      size: String(size),
      engine: 'postgres',
      jobid: 'job-1',
      server: 'pg01',
      database: encodeURIComponent('Sales Ünïcode'),
      compression: 'none',
      encrypted: 'false',
    });
    expect(await digestOf(await download(path))).toEqual(expected);
  });

  it('commits nothing when the source fails midway', async () => {
    const path = blobPath();
    await expect(
      uploadBackup(options(path, { source: pseudoRandomStream(40 * MiB, 'x', { failAfter: 20 * MiB }), blockBytes: 4 * MiB })),
    ).rejects.toThrow('source failed midway');
    expect(await gateway.getBlobFacts(path)).toBeUndefined();
  });

  it('commits nothing when the engine reports failure after its stream ended', async () => {
    const path = blobPath();
    const engineFailure = new JobFailure('engine_exit', 'pg_dump exited with code 1');
    await expect(
      uploadBackup(options(path, { source: pseudoRandomStream(3 * MiB), sourceDone: Promise.reject(engineFailure) })),
    ).rejects.toBe(engineFailure);
    expect(await gateway.getBlobFacts(path)).toBeUndefined();
  });

  it('commits nothing when the last check before the commit says stop (the job was cancelled meanwhile)', async () => {
    const path = blobPath();
    const seen: number[] = [];
    const cancelled = new Error('job Cancelled');
    await expect(
      uploadBackup(
        options(path, {
          source: pseudoRandomStream(3 * MiB),
          beforeCommit: async (facts) => {
            seen.push(facts.sizeBytes);
            throw cancelled;
          },
        }),
      ),
    ).rejects.toBe(cancelled);
    expect(seen).toEqual([3 * MiB]);
    expect(await gateway.getBlobFacts(path)).toBeUndefined();
  });

  it('round-trips through gzip and age encryption; the reported digest is of the stored bytes', async () => {
    const path = blobPath();
    const { identity, recipient } = generateAgeIdentity();
    const plain = Buffer.concat([Buffer.alloc(2 * MiB, 'compressible '), randomBytes(MiB)]);
    const result = await uploadBackup(
      options(path, { source: Readable.from([plain]), compression: 'gzip', ageRecipients: [recipient], blockBytes: MiB }),
    );
    const stored = await collect(await download(path));
    expect(result.sizeBytes).toBe(stored.length);
    expect(result.sha256).toBe((await digestOf(Readable.from([stored]))).sha256);
    expect(stored.length).toBeLessThan(plain.length); // the text part compressed
    expect((await readClient(path).getProperties()).metadata).toMatchObject({ compression: 'gzip', encrypted: 'true' });

    const decrypted = await through(stored, createAgeDecryptStream([identity]));
    expect((await through(decrypted, createGunzip())).equals(plain)).toBe(true);
  });

  it('round-trips through zstd', async () => {
    const path = blobPath();
    const plain = Buffer.alloc(3 * MiB, 'zstd zstd ');
    await uploadBackup(options(path, { source: Readable.from([plain]), compression: 'zstd' }));
    const stored = await collect(await download(path));
    expect((await through(stored, createDecompressStream('zstd')!)).equals(plain)).toBe(true);
  });

  it('asks for a fresh write SAS when the current one nears expiry', async () => {
    const path = blobPath();
    // Every target expires within the refresh margin: each block asks again (single-flight across parallel blocks).
    const getTarget = targetProvider(gateway, path, { ttlMs: 2 * 60_000 });
    await uploadBackup(options(path, { source: pseudoRandomStream(4 * MiB), blockBytes: MiB, getTarget }));
    expect(getTarget.reasons[0]).toBe('initial');
    expect(getTarget.reasons.filter((r) => r === 'expiring').length).toBeGreaterThan(0);
    expect((await gateway.getBlobFacts(path))?.sizeBytes).toBe(4 * MiB);
  });

  it('asks for a fresh write SAS when the service rejects the current one (403)', async () => {
    const path = blobPath();
    const good = await writeTarget(gateway, path);
    const reasons: string[] = [];
    const forged = { ...good, url: good.url.replace(/sig=[^&]+/, 'sig=AAAA') };
    await uploadBackup(
      options(path, {
        source: pseudoRandomStream(2 * MiB),
        blockBytes: MiB,
        parallelism: 1,
        getTarget: async (reason) => {
          reasons.push(reason);
          return reason === 'initial' ? forged : good;
        },
        clientFor: (url) => new BlockBlobClient(url, undefined, { retryOptions: { maxTries: 1 } }),
      }),
    );
    expect(reasons).toEqual(['initial', 'rejected']);
    expect((await gateway.getBlobFacts(path))?.sizeBytes).toBe(2 * MiB);
  });

  it('a second attempt replaces the blob whole: only its own blocks are committed', async () => {
    const path = blobPath();
    await uploadBackup(options(path, { source: pseudoRandomStream(3 * MiB, 'first'), blockBytes: MiB }));
    const second = await uploadBackup(options(path, { source: pseudoRandomStream(2 * MiB, 'second'), blockBytes: MiB }));
    const blocks = await azurite.serviceClient.getContainerClient(containerName).getBlockBlobClient(path).getBlockList('committed');
    expect(blocks.committedBlocks?.length).toBe(2);
    expect(await digestOf(await download(path))).toEqual({ sha256: second.sha256, bytes: 2 * MiB });
  });
});

describe('block size', () => {
  it('stays at the default for unknown or small sizes and grows to fit 50,000 blocks', () => {
    expect(chooseBlockBytes(undefined)).toBe(8 * MiB);
    expect(chooseBlockBytes(100 * 1024 * MiB)).toBe(8 * MiB);
    const oneTiB = 1024 * 1024 * MiB;
    const block = chooseBlockBytes(oneTiB);
    expect(block * 50_000).toBeGreaterThan(oneTiB * 1.02);
    expect(block % MiB).toBe(0);
  });
});

describe('upload pipeline without a target', () => {
  it('releases the source when no upload target can be had', async () => {
    const source = pseudoRandomStream(10 * MiB);
    await expect(
      uploadBackup({
        source,
        compression: 'none',
        metadata,
        getTarget: async () => {
          throw new Error('API unreachable');
        },
      }),
    ).rejects.toThrow('API unreachable');
    expect(source.destroyed).toBe(true);
  });
});
