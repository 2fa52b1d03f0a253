/**
 * SHA-256 that can stop and resume in another process: hash-wasm's hasher saves its internal state (about 100
 * bytes) and loads it again. The control plane's re-hash of a stored backup uses it to split one digest over many
 * short activities (orchestrations/rehash.ts).
 */
import { createSHA256, type IHasher } from 'hash-wasm';

/** A saved hash state, as it travels through orchestration history (base64 text). */
export type Sha256State = string;

async function hasherFrom(state: Sha256State | null): Promise<IHasher> {
  const hasher = await createSHA256();
  if (state === null) hasher.init();
  else hasher.load(Buffer.from(state, 'base64'));
  return hasher;
}

/**
 * Feeds a stream into the hash that `state` left off (null: a fresh one) and returns the new state and how many
 * bytes went in. Memory stays at one chunk of the stream, whatever its length.
 */
export async function continueSha256(state: Sha256State | null, chunks: AsyncIterable<Uint8Array | string>): Promise<{ state: Sha256State; bytes: number }> {
  const hasher = await hasherFrom(state);
  let bytes = 0;
  for await (const chunk of chunks) {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    hasher.update(data);
    bytes += data.byteLength;
  }
  return { state: Buffer.from(hasher.save()).toString('base64'), bytes };
}

/** The lowercase hex digest of everything fed into `state`. */
export async function finishSha256(state: Sha256State | null): Promise<string> {
  return (await hasherFrom(state)).digest('hex');
}
