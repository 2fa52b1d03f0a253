import type { BackupJobMessage } from './contracts/messages.js';

/**
 * Sends job messages to the runners. The implementation (shared/servicebus.ts) publishes on the jobs topic with
 * messageId = job id and the `serverId` application property.
 */
export interface JobQueue {
  enqueue(message: BackupJobMessage): Promise<void>;
  /** Readiness: the topic accepts a sender link with our identity. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
