/**
 * Waiting out a dependency's outage (the API or Blob Storage unreachable) instead of giving the message back.
 *
 * Abandoning a message because a dependency is down burns its delivery count: about ten abandons and Service
 * Bus dead-letters it, although nothing was wrong with the job. So a call that must succeed is retried with
 * capped, jittered back-off for a bounded time (`boundMs`, default 15 minutes) while the consumer keeps the
 * message locked (the SDK renews the lock); only after the bound does the error go up and the message get
 * abandoned. Errors that are not transient (the runner's own: database offline, disk full, a 4xx) go up at once.
 */
import { errorMessage, isAppError } from '../shared/errors.js';
import { backoffDelayMs, type RetryPolicy } from '../shared/retry.js';
import { isJobFailure } from './errors.js';

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** True when the same call may succeed later without anyone changing anything (network, 5xx, service busy). */
export function isTransient(error: unknown): boolean {
  if (isJobFailure(error)) return error.transient;
  return isAppError(error) && error.code === 'dependency_unavailable';
}

export const DEFAULT_OUTAGE_BOUND_MS = 15 * 60_000;

export interface OutagePolicy {
  /** How long one call may keep failing transiently before the attempt gives up. */
  boundMs: number;
  /** Told each time the call failed and a retry is planned. */
  onWait?: (wait: { waitingFor: string; waitedMs: number; retryInMs: number; problem: string }) => void;
  now?: () => number;
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Back-off ceiling: 30 s, but at most a sixth of the bound, so a short bound (tests, impatient operators) still
 * gets several tries and notices the dependency's return soon after it happens.
 */
function backoffFor(boundMs: number): RetryPolicy {
  // The bound, not a count, ends the attempts.
  return { maxAttempts: Number.POSITIVE_INFINITY, baseDelayMs: 500, maxDelayMs: Math.max(1000, Math.min(30_000, Math.floor(boundMs / 6))) };
}

/**
 * Runs `call` until it succeeds, fails for a non-transient reason, `signal` aborts, or it has failed
 * transiently for longer than the bound (then the last error is thrown).
 */
export async function waitThroughOutage<T>(
  waitingFor: string,
  call: () => Promise<T>,
  policy: OutagePolicy,
  signal?: AbortSignal,
): Promise<T> {
  const now = policy.now ?? Date.now;
  const sleep = policy.sleep ?? abortableSleep;
  const backoff = backoffFor(policy.boundMs);
  let firstFailureAt: number | undefined;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await call();
    } catch (error) {
      if (!isTransient(error) || signal?.aborted) throw error;
      firstFailureAt ??= now();
      const waitedMs = now() - firstFailureAt;
      const leftMs = policy.boundMs - waitedMs;
      if (leftMs <= 0) throw error;
      const retryInMs = Math.max(50, Math.min(backoffDelayMs(attempt, backoff, policy.random), leftMs));
      policy.onWait?.({ waitingFor, waitedMs, retryInMs, problem: errorMessage(error) });
      await sleep(retryInMs, signal);
    }
  }
}
