/**
 * SHA-256 that can stop and resume in another process: hash-wasm's hasher saves its internal state (about 100
 * bytes) and loads it again. The control plane's re-hash of a stored backup uses it to split one digest over many
 * short activities (orchestrations/rehash.ts).
 *
 * A large stream is hashed on a worker thread (sha256-worker.mjs): hash-wasm is about as costly per byte as
 * reading the bytes over HTTPS, so on one thread the two take turns; on two, reading the next chunk overlaps hashing
 * this one. Starting a worker costs ~80 ms of CPU and ~0.5 s (bench/RESULTS.md, scale), so a small stream (most
 * backups by count) is hashed on the calling thread.
 */
import { Worker } from 'node:worker_threads';
import { createSHA256, type IHasher } from 'hash-wasm';

/** A saved hash state, as it travels through orchestration history (base64 text). */
export type Sha256State = string;

/** Streams expected to be shorter than this are hashed on the calling thread: a worker would cost more than it saves. */
export const WORKER_MIN_BYTES = 64 * 1024 * 1024;
/** The stream's bytes go to the hashing thread in batches of this size: few messages, little memory. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Batches handed to the hashing thread and not yet hashed: memory stays at about this many batches. */
const BATCHES_QUEUED = 2;

/**
 * Feeds a stream into the hash that `state` left off (null: a fresh one) and returns the new state and how many
 * bytes went in. Memory stays at a few batches, whatever the stream's length; the stream's chunks are copied, not
 * taken. `expectedBytes` (when known) chooses the thread: see WORKER_MIN_BYTES.
 */
export async function continueSha256(
  state: Sha256State | null,
  chunks: AsyncIterable<Uint8Array | string>,
  { expectedBytes }: { expectedBytes?: number } = {},
): Promise<{ state: Sha256State; bytes: number }> {
  return expectedBytes !== undefined && expectedBytes < WORKER_MIN_BYTES ? hashHere(state, chunks) : hashOnWorker(state, chunks);
}

async function hashHere(state: Sha256State | null, chunks: AsyncIterable<Uint8Array | string>): Promise<{ state: Sha256State; bytes: number }> {
  const hasher = await hasherFrom(state);
  let bytes = 0;
  for await (const chunk of chunks) {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    hasher.update(data);
    bytes += data.byteLength;
  }
  return { state: Buffer.from(hasher.save()).toString('base64'), bytes };
}

async function hashOnWorker(state: Sha256State | null, chunks: AsyncIterable<Uint8Array | string>): Promise<{ state: Sha256State; bytes: number }> {
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
  const queued: Promise<WorkerReply>[] = [];
  /** Batches the hashing thread handed back, filled again instead of allocating (and zeroing) new ones. */
  const spare: ArrayBuffer[] = [];
  const newBatch = () => new Uint8Array(spare.pop() ?? new ArrayBuffer(BATCH_BYTES));
  /** Moves a batch's ArrayBuffer to the hashing thread (no copy) and waits while too many are queued there. */
  const send = async (batch: ArrayBuffer) => {
    const pending = ask({ type: 'update', data: batch }, [batch]);
    pending.catch(() => undefined); // awaited in order, here or below
    queued.push(pending);
    if (queued.length < BATCHES_QUEUED) return;
    const hashed = (await queued.shift()) as { data: ArrayBuffer };
    if (hashed.data.byteLength === BATCH_BYTES) spare.push(hashed.data);
  };
  try {
    let bytes = 0;
    let batch = newBatch();
    let filled = 0;
    for await (const chunk of chunks) {
      let data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      bytes += data.byteLength;
      while (data.byteLength > 0) {
        const taken = Math.min(data.byteLength, BATCH_BYTES - filled);
        batch.set(data.subarray(0, taken), filled);
        filled += taken;
        data = data.subarray(taken);
        if (filled === BATCH_BYTES) {
          await send(batch.buffer as ArrayBuffer);
          batch = newBatch();
          filled = 0;
        }
      }
    }
    if (filled > 0) await send(batch.slice(0, filled).buffer as ArrayBuffer);
    await Promise.all(queued);
    const saved = await ask({ type: 'save' });
    return { state: (saved as { state: string }).state, bytes };
  } finally {
    worker.removeAllListeners('exit');
    await worker.terminate();
  }
}

type WorkerMessage = { type: 'update'; data: ArrayBuffer } | { type: 'save' };
// A batch has an ArrayBuffer of its own (unlike a Buffer from Node's shared pool), so it can be transferred both ways.
type WorkerReply = { type: 'hashed'; data: ArrayBuffer } | { type: 'saved'; state: string } | { type: 'failed'; error: Error };

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
