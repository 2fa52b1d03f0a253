import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CoalescingStream } from '../../../runner-agent/pipeline/coalesce.js';

async function collect(pieces: Buffer[], minBytes: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of Readable.from(pieces, { objectMode: false }).pipe(new CoalescingStream(minBytes))) out.push(chunk as Buffer);
  return out;
}

describe('CoalescingStream', () => {
  it('joins small writes into chunks of at least minBytes, bytes unchanged, the tail flushed', async () => {
    const pieces = Array.from({ length: 1000 }, () => randomBytes(4096));
    const out = await collect(pieces, 64 * 1024);
    expect(Buffer.concat(out).equals(Buffer.concat(pieces))).toBe(true);
    expect(out.slice(0, -1).every((chunk) => chunk.length >= 64 * 1024)).toBe(true);
    expect(out.length).toBeLessThanOrEqual(Math.ceil((1000 * 4096) / (64 * 1024)));
  });

  it('passes a large chunk through as is when nothing is pending', async () => {
    const big = randomBytes(256 * 1024);
    const out = await collect([big], 64 * 1024);
    expect(out).toHaveLength(1);
    expect(out[0]).toBe(big);
  });
});
