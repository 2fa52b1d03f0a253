/**
 * The runner host's heartbeat (`POST /api/runner/heartbeat`, every minute): who it is, its version, the servers
 * it is configured for, jobs in flight and free space in its work directory. The answer says which of those
 * servers the registry binds it to; an unbound one is logged, since its jobs will be refused (403).
 * A failed heartbeat is logged and retried at the next beat; it never stops the service.
 */
import { readFileSync, statfsSync } from 'node:fs';
import type { RunnerHeartbeat, RunnerHeartbeatAck } from '../shared/contracts/runner.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from './logger.js';

export const runnerVersion: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();

/** Free bytes in `dir`, or undefined when it cannot be read. */
export function freeBytes(dir: string): number | undefined {
  try {
    const fs = statfsSync(dir);
    return fs.bavail * fs.bsize;
  } catch {
    return undefined;
  }
}

export interface HeartbeatOptions {
  send(heartbeat: RunnerHeartbeat): Promise<RunnerHeartbeatAck>;
  runnerId: string;
  serverIds: readonly string[];
  workDir: string;
  inFlightJobs(): number;
  intervalMs: number;
  logger: Logger;
}

/** Sends one heartbeat now and then every `intervalMs`; returns a function that stops it. */
export function startHeartbeat(options: HeartbeatOptions): () => void {
  let lastUnbound = '';
  const beat = async () => {
    const free = freeBytes(options.workDir);
    try {
      const ack = await options.send({
        runnerId: options.runnerId,
        version: runnerVersion,
        serverIds: [...options.serverIds],
        inFlightJobs: options.inFlightJobs(),
        ...(free !== undefined ? { freeScratchBytes: free } : {}),
      });
      const unbound = ack.unboundServerIds.join(',');
      if (unbound && unbound !== lastUnbound) {
        options.logger.warn({ unboundServerIds: ack.unboundServerIds }, 'the registry does not bind this runner to these servers: their jobs will be refused');
      }
      lastUnbound = unbound;
    } catch (error) {
      options.logger.warn({ error: errorMessage(error) }, 'heartbeat not delivered; next try at the next beat');
    }
  };
  void beat();
  const timer = setInterval(() => void beat(), options.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
