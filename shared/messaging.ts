import type { JobMessage } from './contracts/messages.js';

/**
 * Sends job messages to the runners. The implementation (shared/servicebus.ts) publishes on the jobs topic with
 * messageId = job id and the `serverId` application property.
 */
export interface JobQueue {
  enqueue(message: JobMessage): Promise<void>;
  /** Readiness: the topic accepts a sender link with our identity. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A job message Service Bus gave up on (max delivery count, or a runner dead-lettered it), as read from a DLQ. */
export interface DeadLetteredMessage {
  /** The runner subscription whose dead-letter queue held it. */
  subscription: string;
  messageId: string | undefined;
  body: unknown;
  reason: string | undefined;
  description: string | undefined;
  deliveryCount: number | undefined;
  /** Removes it from the dead-letter queue once handled. */
  complete(): Promise<void>;
  /** Leaves it in the dead-letter queue (for a person to look at). */
  release(): Promise<void>;
}

/** Reads the dead-letter queues of the runners' subscriptions on the jobs topic. */
export interface DeadLetterInbox {
  /** Up to `max` messages, waiting at most briefly when none are there. */
  receive(max: number): Promise<DeadLetteredMessage[]>;
  close(): Promise<void>;
}
