/**
 * SHA-256 that can stop and resume in another process: hash-wasm's hasher saves its internal state (about 100
 * bytes) and loads it again. The control plane's re-hash of a stored backup uses it to split one digest over many
 * short activities (orchestrations/rehash.ts).
 *
 * The hashing runs on a worker thread (sha256-worker.mjs): hash-wasm is about as costly per byte as reading the
 * bytes over HTTPS, so on one thread the two take turns; on two, reading the next chunk overlaps hashing this one.
 */
import { Worker } from 'node:worker_threads';
import { createSHA256, type IHasher } from 'hash-wasm';

/** A saved hash state, as it travels through orchestration history (base64 text). */
export type Sha256State = string;

/** Chunks handed to the hashing thread and not yet hashed: bounds memory at this many chunks. */
const CHUNKS_QUEUED = 2;

/**
 * Feeds a stream into the hash that `state` left off (null: a fresh one) and returns the new state and how many
 * bytes went in. Memory stays at a few chunks of the stream, whatever its length. A chunk that owns its whole
 * ArrayBuffer moves to the hashing thread and is empty afterwards.
 */
export async function continueSha256(state: Sha256State | null, chunks: AsyncIterable<Uint8Array | string>): Promise<{ state: Sha256State; bytes: number }> {
  const worker = new Worker(new URL('./sha256-worker.mjs', import.meta.url), { workerData: { state } });
  const replies: Array<(reply: WorkerReply) => void> = [];
  let failure: Error | undefined;
  const failAll = (error: Error) => {
    failure ??= error;
    for (const reply of replies.splice(0)) reply({ type: 'failed', error: failure });
  };
  worker.on('message', (reply: WorkerReply) => replies.shift()?.(reply));
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`The SHA-256 worker exited (code ${code}) before it was done.`)));
  const ask = (message: WorkerMessage, transfer: ArrayBuffer[] = []): Promise<WorkerReply> =>
    new Promise((resolve, reject) => {
      if (failure) return reject(failure);
      replies.push((reply) => (reply.type === 'failed' ? reject(reply.error) : resolve(reply)));
      worker.postMessage(message, transfer);
    });
  try {
    let bytes = 0;
    const queued: Promise<WorkerReply>[] = [];
    for await (const chunk of chunks) {
      const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      bytes += data.byteLength;
      const own = ownedBuffer(data);
      const pending = ask({ type: 'update', data: own }, [own]);
      pending.catch(() => undefined); // awaited below, in order
      queued.push(pending);
      if (queued.length >= CHUNKS_QUEUED) await queued.shift();
    }
    await Promise.all(queued);
    const saved = await ask({ type: 'save' });
    return { state: (saved as { state: string }).state, bytes };
  } finally {
    worker.removeAllListeners('exit');
    await worker.terminate();
  }
}

type WorkerMessage = { type: 'update'; data: ArrayBuffer } | { type: 'save' };
type WorkerReply = { type: 'hashed'; data: ArrayBuffer } | { type: 'saved'; state: string } | { type: 'failed'; error: Error };

/**
 * The chunk's bytes in an ArrayBuffer of their own, to move to the hashing thread: the chunk's own when it spans
 * all of it (no copy; the chunk is consumed), otherwise a copy (a view must not take its neighbours along).
 */
function ownedBuffer(data: Uint8Array): ArrayBuffer {
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
  return whole ? (data.buffer as ArrayBuffer) : (new Uint8Array(data).buffer as ArrayBuffer);
}

async function hasherFrom(state: Sha256State | null): Promise<IHasher> {
  const hasher = await createSHA256();
  if (state === null) hasher.init();
  else hasher.load(Buffer.from(state, 'base64'));
  return hasher;
}

/** The lowercase hex digest of everything fed into `state`. */
export async function finishSha256(state: Sha256State | null): Promise<string> {
  return (await hasherFrom(state)).digest('hex');
}
