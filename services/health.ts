/**
 * Readiness: can this instance reach what it needs? Store, Blob Storage and Service Bus are pinged together,
 * each under a time limit, so one hung dependency cannot hang the probe.
 */
import { errorMessage } from '../shared/errors.js';
import type { Deps } from './deps.js';

export type CheckName = 'configuration' | 'store' | 'blobs' | 'queue';

export interface CheckResult {
  name: CheckName;
  ok: boolean;
  /** Why it failed (for the log; the probe's anonymous caller gets only the names). */
  error?: string;
}

export interface Readiness {
  ready: boolean;
  checks: CheckResult[];
}

export const READINESS_TIMEOUT_MS = 5_000;

async function withinTime(name: CheckName, check: () => Promise<void>, timeoutMs: number): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([check(), timeout]);
    return { name, ok: true };
  } catch (error) {
    return { name, ok: false, error: errorMessage(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** `loadDeps` may itself fail (bad settings): that is reported as the `configuration` check. */
export async function checkReadiness(loadDeps: () => Promise<Deps>, timeoutMs = READINESS_TIMEOUT_MS): Promise<Readiness> {
  let deps: Deps;
  try {
    deps = await loadDeps();
  } catch (error) {
    return { ready: false, checks: [{ name: 'configuration', ok: false, error: errorMessage(error) }] };
  }
  const checks = await Promise.all([
    withinTime('store', () => deps.store.ping(), timeoutMs),
    withinTime('blobs', () => deps.blobs.ping(), timeoutMs),
    withinTime('queue', () => deps.queue.ping(), timeoutMs),
  ]);
  return { ready: checks.every((check) => check.ok), checks };
}
