/**
 * A counting semaphore per key (the database server): at most `limit` backups run at once against one server,
 * however many messages the receiver hands over. Waiters are served in arrival order; a waiter whose signal
 * aborts (shutdown) leaves the queue.
 */
export class KeyedSemaphore {
  private readonly running = new Map<string, number>();
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
  }

  /** Resolves with a release function once a slot for `key` is free. */
  async acquire(key: string, signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if ((this.running.get(key) ?? 0) < this.limit) {
      this.running.set(key, (this.running.get(key) ?? 0) + 1);
      return this.releaser(key);
    }
    await new Promise<void>((resolve, reject) => {
      const queue = this.waiting.get(key) ?? [];
      this.waiting.set(key, queue);
      const onAbort = () => {
        const at = queue.indexOf(grant);
        if (at !== -1) queue.splice(at, 1);
        reject(signal!.reason);
      };
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      queue.push(grant);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    return this.releaser(key);
  }

  /** Slots in use for `key` (for logs and tests). */
  inUse(key: string): number {
    return this.running.get(key) ?? 0;
  }

  private releaser(key: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.get(key)?.shift();
      // The slot passes straight to the next waiter, so the running count stays as it is.
      if (next) next();
      else {
        const count = (this.running.get(key) ?? 1) - 1;
        if (count === 0) this.running.delete(key);
        else this.running.set(key, count);
      }
    };
  }
}
