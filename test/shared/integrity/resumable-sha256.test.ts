/**
 * The resumable SHA-256 behind the control plane's re-hash: a digest split over calls (each possibly in another
 * process, the state through JSON) equals the one-pass digest, whatever the chunks look like, hashed on the
 * calling thread (a small expected size) or on a worker thread; failures reach the caller either way.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { WORKER_MIN_BYTES, continueSha256, finishSha256, type Sha256State } from '../../../shared/integrity/resumable-sha256.js';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function* inChunks(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += size) yield Buffer.from(bytes.subarray(offset, offset + size));
}

const threads = [
  { where: 'on the calling thread', options: { expectedBytes: WORKER_MIN_BYTES - 1 } },
  { where: 'on a worker thread (size unknown)', options: {} },
  { where: 'on a worker thread (large)', options: { expectedBytes: WORKER_MIN_BYTES } },
];

describe.each(threads)('continueSha256 / finishSha256 $where', ({ options }) => {
  it('gives the one-pass digest when the bytes arrive over several calls, the state through JSON', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const slices = [0, 5, 1024 * 1024, 2 * 1024 * 1024 + 3, bytes.length];
    let state: Sha256State | null = null;
    let total = 0;
    for (let i = 1; i < slices.length; i++) {
      const result: { state: Sha256State; bytes: number } = await continueSha256(state, inChunks(bytes.subarray(slices[i - 1], slices[i]), 64 * 1024 + 1), options);
      state = JSON.parse(JSON.stringify(result.state)) as Sha256State;
      total += result.bytes;
    }
    expect(total).toBe(bytes.length);
    expect(await finishSha256(state)).toBe(sha256(bytes));
  });

  it('hashes chunks that are views into a larger buffer without touching that buffer', async () => {
    const backing = randomBytes(4096);
    const views = [backing.subarray(0, 1000), backing.subarray(1000, 1001), backing.subarray(1001)];
    async function* source() {
      yield* views;
      yield 'text too';
    }
    const { state, bytes } = await continueSha256(null, source(), options);
    expect(bytes).toBe(4096 + 8);
    expect(backing.length).toBe(4096); // not moved to the hashing thread
    expect(await finishSha256(state)).toBe(sha256(Buffer.concat([backing, Buffer.from('text too')])));
  });

  it('gives the digest of nothing for an empty stream and for no state', async () => {
    const empty = sha256(Buffer.alloc(0));
    expect(await finishSha256(null)).toBe(empty);
    const { state, bytes } = await continueSha256(null, inChunks(Buffer.alloc(0), 1), options);
    expect(bytes).toBe(0);
    expect(await finishSha256(state)).toBe(empty);
  });

  it('rejects a state that is not a saved SHA-256 state', async () => {
    await expect(continueSha256(Buffer.from('not a hash state').toString('base64'), inChunks(randomBytes(10), 5), options)).rejects.toThrow();
  });

  it('passes on a failure of the source', async () => {
    async function* failing() {
      yield randomBytes(1000);
      throw new Error('connection reset');
    }
    await expect(continueSha256(null, failing(), options)).rejects.toThrow('connection reset');
  });
});
