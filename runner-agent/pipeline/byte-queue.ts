/** Pieces shared by the chunked envelopes (legacy DBDE in crypto.ts, age in age.ts). */

/** A file that cannot be opened: wrong key, edited, truncated or not an envelope at all. The message says which. */
export class DecryptionError extends Error {
  override readonly name = 'DecryptionError';
}

/** Collects incoming buffers and hands out exact-size pieces without copying more than once. */
export class ByteQueue {
  private parts: Buffer[] = [];
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.parts.push(chunk);
    this.length += chunk.length;
  }

  /** Removes and returns the first `n` bytes (n ≤ length). */
  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.parts[0]!;
      const needed = n - filled;
      if (head.length <= needed) {
        head.copy(out, filled);
        filled += head.length;
        this.parts.shift();
      } else {
        head.copy(out, filled, 0, needed);
        this.parts[0] = head.subarray(needed);
        filled += needed;
      }
    }
    this.length -= n;
    return out;
  }
}

