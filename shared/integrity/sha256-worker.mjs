// The thread behind shared/integrity/resumable-sha256.ts: hashes the chunks it is sent, in order, so the thread
// that sent them can keep reading the next ones. Plain JavaScript so Node runs it as it is (tsx, vitest) and
// `npm run package` can bundle it as a second entry beside index.js.
import { parentPort, workerData } from 'node:worker_threads';
import { createSHA256 } from 'hash-wasm';

const hasher = await createSHA256();
if (workerData.state === null) hasher.init();
else hasher.load(Buffer.from(workerData.state, 'base64'));

parentPort.on('message', (message) => {
  if (message.type === 'update') {
    hasher.update(new Uint8Array(message.data));
    // Hand the bytes back: this thread allocates nothing, so its GC would be slow to free them.
    parentPort.postMessage({ type: 'hashed', data: message.data }, [message.data]);
  } else {
    parentPort.postMessage({ type: 'saved', state: Buffer.from(hasher.save()).toString('base64') });
  }
});
