/**
 * JobQueue on Azure Service Bus: publishes backup job messages on the jobs topic. Each runner's subscription
 * filters on the `serverId` application property; the topic's duplicate detection drops a re-send of the same
 * job (messageId = job id), so the enqueue activity may safely retry.
 */
import { ServiceBusClient, isServiceBusError } from '@azure/service-bus';
import type { ServiceBusClientOptions, ServiceBusReceiver, ServiceBusSender, TokenCredential } from '@azure/service-bus';
import { JOB_MESSAGE_SUBJECT, type JobMessage, REHEARSAL_MESSAGE_SUBJECT, SERVER_ID_PROPERTY, isRehearsalMessage, jobMessageId, jobMessageSchemaOf } from './contracts/messages.js';
import { AppError, errorMessage } from './errors.js';
import type { DeadLetterInbox, DeadLetteredMessage, JobQueue } from './messaging.js';
import { traceparentField } from './telemetry.js';
import { parseOrThrow } from './validation.js';

export type ServiceBusConnectionOptions =
  /** Production: Entra ID (a managed identity in Azure, the runner's app registration on-prem). */
  | { fullyQualifiedNamespace: string; credential: TokenCredential; clientOptions?: ServiceBusClientOptions }
  /** Development only: a local broker or the emulator (`UseDevelopmentEmulator=true`). */
  | { connectionString: string; clientOptions?: ServiceBusClientOptions };

export function serviceBusClientFrom(options: ServiceBusConnectionOptions): ServiceBusClient {
  if ('connectionString' in options) return new ServiceBusClient(options.connectionString, options.clientOptions);
  return new ServiceBusClient(options.fullyQualifiedNamespace, options.credential, options.clientOptions);
}

export interface JobQueueOptions {
  client: ServiceBusClient;
  /** The jobs topic (setting SERVICEBUS_JOBS_TOPIC). */
  topic: string;
  /** Close the client with the queue. Default true: the queue is usually the client's only user. */
  ownsClient?: boolean;
}

export function createJobQueue({ client, topic, ownsClient = true }: JobQueueOptions): JobQueue {
  // One sender for the process: the SDK keeps its link open and re-attaches it after a lost connection.
  let sender: ServiceBusSender | undefined;
  const topicSender = (): ServiceBusSender => (sender ??= client.createSender(topic));

  return {
    async enqueue(message) {
      // A malformed message would be dead-lettered by the runner; refuse it here, where the bug is.
      const job: JobMessage = parseOrThrow(jobMessageSchemaOf(message), message, 'message');
      const messageId = jobMessageId(job);
      await asDependencyError(`send message ${messageId} (job ${job.jobId}) to topic ${topic}`, () =>
        topicSender().sendMessages({
          messageId,
          subject: isRehearsalMessage(job) ? REHEARSAL_MESSAGE_SUBJECT : JOB_MESSAGE_SUBJECT,
          contentType: 'application/json',
          // The enqueue activity's trace context: the runner's job span continues it.
          applicationProperties: { [SERVER_ID_PROPERTY]: job.serverId, ...traceparentField() },
          body: job,
        }),
      );
    },

    async ping() {
      // Nothing can be sent to test a topic, but a batch needs the link's max message size: creating one
      // attaches the sender link, which checks the connection, our identity and that the topic exists.
      await asDependencyError(`reach topic ${topic}`, () => topicSender().createMessageBatch());
    },

    async close() {
      const open = sender;
      sender = undefined;
      await open?.close();
      if (ownsClient) await client.close();
    },
  };
}

export interface DeadLetterInboxOptions {
  client: ServiceBusClient;
  topic: string;
  /** The runners' subscriptions (setting SERVICEBUS_RUNNER_SUBSCRIPTIONS), or where to read them each time. */
  subscriptions: readonly string[] | (() => readonly string[]);
  /** Wait for the first message of each subscription's DLQ; short: this runs on a timer. */
  maxWaitTimeInMs?: number;
}

/** Dead-letter queues read at once by one sweep: 500 subscriptions take ~32 waits, not 500. */
const DEAD_LETTER_READS_AT_ONCE = 16;

/**
 * Peek-lock receivers on each subscription's dead-letter queue (the Data Receiver role on the subscription). One
 * `receive(max)` returns about `max` messages (reads running at once may bring a few more).
 */
export function createDeadLetterInbox({ client, topic, subscriptions, maxWaitTimeInMs = 1_000 }: DeadLetterInboxOptions): DeadLetterInbox {
  const receivers = new Map<string, ServiceBusReceiver>();
  const receiverFor = (subscription: string) => {
    let receiver = receivers.get(subscription);
    if (!receiver) {
      receiver = client.createReceiver(topic, subscription, { subQueueType: 'deadLetter', receiveMode: 'peekLock' });
      receivers.set(subscription, receiver);
    }
    return receiver;
  };
  return {
    async receive(max) {
      const found: DeadLetteredMessage[] = [];
      const pending = [...(typeof subscriptions === 'function' ? subscriptions() : subscriptions)];
      // Several queues at once: each empty one costs a whole `maxWaitTimeInMs`, and a runner fleet has hundreds.
      const readNext = async (): Promise<void> => {
        for (let subscription = pending.shift(); subscription !== undefined && found.length < max; subscription = pending.shift()) {
          const receiver = receiverFor(subscription);
          const messages = await asDependencyError(`read the dead-letter queue of ${topic}/${subscription}`, () =>
            receiver.receiveMessages(Math.max(1, max - found.length), { maxWaitTimeInMs }),
          );
          for (const message of messages) {
            found.push({
              subscription,
              messageId: typeof message.messageId === 'string' ? message.messageId : message.messageId?.toString(),
              body: message.body,
              reason: message.deadLetterReason,
              description: message.deadLetterErrorDescription,
              deliveryCount: message.deliveryCount,
              complete: () => receiver.completeMessage(message),
              release: () => receiver.abandonMessage(message),
            });
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(DEAD_LETTER_READS_AT_ONCE, pending.length) }, readNext));
      return found;
    },
    async close() {
      await Promise.allSettled([...receivers.values()].map((receiver) => receiver.close()));
      receivers.clear();
    },
  };
}

/** Service Bus failures become `dependency_unavailable`, keeping the SDK's code and whether a retry may help. */
async function asDependencyError<T>(what: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    const details = isServiceBusError(error) ? { serviceBusCode: error.code, retryable: error.retryable } : undefined;
    throw new AppError('dependency_unavailable', `Service Bus: could not ${what}: ${errorMessage(error)}`, {
      cause: error,
      details,
    });
  }
}
