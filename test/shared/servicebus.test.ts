/**
 * The JobQueue and the Service Bus mechanics the runner relies on, with the REAL @azure/service-bus client
 * against the AMQP test broker (dev/servicebus-broker.ts).
 *
 * Delivery counts are as the JS SDK reports them from Azure: 0 on the first delivery, +1 per earlier delivery
 * that was not completed (the .NET SDK shows one more).
 */
import { randomUUID } from 'node:crypto';
import {
  ServiceBusClient,
  isServiceBusError,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from '@azure/service-bus';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackupJobMessage, JOB_MESSAGE_SUBJECT } from '../../shared/contracts/messages.js';
import { isAppError } from '../../shared/errors.js';
import type { JobQueue } from '../../shared/messaging.js';
import { createDeadLetterInbox, createJobQueue, serviceBusClientFrom } from '../../shared/servicebus.js';
import { ServiceBusBroker, type SubscriptionOptions } from '../../dev/servicebus-broker.js';

const SERVER_A = randomUUID();
const SERVER_B = randomUUID();
/** Short locks so expiry and renewal happen within a test; long enough that auto-renewal waits between renewals. */
const LOCK_MS = 1_500;

function jobFor(serverId: string, overrides: Partial<BackupJobMessage> = {}): BackupJobMessage {
  const jobId = randomUUID();
  return {
    schemaVersion: 1,
    jobId,
    serverId,
    server: { name: 'sql-01', host: 'sql-01.corp.local' },
    databaseId: randomUUID(),
    databaseName: 'Sales',
    engine: 'sqlserver',
    options: { compression: 'gzip', encryption: 'none' },
    blobPath: `backups/${serverId}/${jobId}.bak.gz`,
    requestedAt: new Date().toISOString(),
    runDeadline: new Date(Date.now() + 3_600_000).toISOString(),
    ...overrides,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function receiveOne(receiver: ServiceBusReceiver, maxWaitTimeInMs = 3_000): Promise<ServiceBusReceivedMessage> {
  const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs });
  if (!message) throw new Error('no message arrived');
  return message;
}

async function receiveNone(receiver: ServiceBusReceiver, maxWaitTimeInMs: number): Promise<void> {
  const messages = await receiver.receiveMessages(1, { maxWaitTimeInMs });
  expect(messages.map((m) => m.body)).toEqual([]);
}

describe('Service Bus job queue and consumer mechanics (real SDK, test broker)', () => {
  let broker: ServiceBusBroker;
  let client: ServiceBusClient;
  let topic: string;

  /** A topic per test with one subscription per runner, each filtered on its server id. */
  function newTopic(subscriptionOptions: SubscriptionOptions = {}): string {
    const name = `backup-jobs-${randomUUID().slice(0, 8)}`;
    broker.createTopic(name);
    broker.createSubscription(name, 'runner-a', { ...subscriptionOptions, filter: `serverId = '${SERVER_A}'` });
    broker.createSubscription(name, 'runner-b', { ...subscriptionOptions, filter: `serverId = '${SERVER_B}'` });
    return name;
  }

  beforeAll(async () => {
    broker = await ServiceBusBroker.start({ lockDurationMs: LOCK_MS });
  });

  afterAll(async () => {
    await broker?.close();
  });

  beforeEach(() => {
    client = serviceBusClientFrom({ connectionString: broker.connectionString });
    topic = newTopic();
  });

  async function enqueueFor(serverId: string): Promise<BackupJobMessage> {
    const job = jobFor(serverId);
    const queue = createJobQueue({ client, topic, ownsClient: false });
    await queue.enqueue(job);
    await queue.close();
    return job;
  }

  afterEach(async () => {
    await client.close();
  });

  describe('createJobQueue', () => {
    let queue: JobQueue;

    beforeEach(() => {
      queue = createJobQueue({ client, topic, ownsClient: false });
    });

    afterEach(async () => {
      await queue.close();
    });

    it('sends the job with messageId = job id, subject, JSON content type and the serverId property', async () => {
      const job = jobFor(SERVER_A);
      await queue.enqueue(job);

      const receiver = client.createReceiver(topic, 'runner-a');
      const received = await receiveOne(receiver);
      expect(received.messageId).toBe(job.jobId);
      expect(received.subject).toBe(JOB_MESSAGE_SUBJECT);
      expect(received.contentType).toBe('application/json');
      expect(received.applicationProperties).toEqual({ serverId: SERVER_A });
      expect(BackupJobMessage.parse(received.body)).toEqual(job);
      await receiver.completeMessage(received);
      expect(broker.counts(topic, 'runner-a')).toEqual({ active: 0, locked: 0, deadLettered: 0 });
    });

    it("runner A's subscription gets A's jobs and never B's", async () => {
      const jobsForA = [jobFor(SERVER_A), jobFor(SERVER_A)];
      const jobForB = jobFor(SERVER_B);
      await queue.enqueue(jobsForA[0]!);
      await queue.enqueue(jobForB);
      await queue.enqueue(jobsForA[1]!);

      const receiver = client.createReceiver(topic, 'runner-a');
      const received = await receiver.receiveMessages(10, { maxWaitTimeInMs: 1_000 });
      expect(received.map((m) => m.messageId)).toEqual(jobsForA.map((job) => job.jobId));
      expect(broker.messages(topic, 'runner-b').map((m) => m.messageId)).toEqual([jobForB.jobId]);
    });

    it('a re-sent job (same messageId) within the duplicate detection window is dropped', async () => {
      const job = jobFor(SERVER_A);
      await queue.enqueue(job);
      await queue.enqueue(job);
      const other = jobFor(SERVER_A);
      await queue.enqueue(other);

      expect(broker.messages(topic, 'runner-a').map((m) => m.messageId)).toEqual([job.jobId, other.jobId]);
    });

    it('refuses a message that breaks the contract and sends nothing', async () => {
      const bad = { ...jobFor(SERVER_A), schemaVersion: 2 } as unknown as BackupJobMessage;
      const error = await queue.enqueue(bad).catch((e: unknown) => e);
      expect(isAppError(error) && error.code).toBe('validation_failed');
      expect(isAppError(error) && error.fieldErrors.map((f) => f.field)).toContain('message.schemaVersion');
      expect(broker.counts(topic, 'runner-a').active).toBe(0);
    });

    it('ping attaches to the topic; a missing topic is dependency_unavailable', async () => {
      await expect(queue.ping()).resolves.toBeUndefined();

      const missing = createJobQueue({ client, topic: 'no-such-topic', ownsClient: false });
      const error = await missing.ping().catch((e: unknown) => e);
      expect(isAppError(error) && error.code).toBe('dependency_unavailable');
      expect(isAppError(error) && error.details?.serviceBusCode).toBe('MessagingEntityNotFound');
      await missing.close();
    });

    it('close closes the client when the queue owns it', async () => {
      const ownClient = serviceBusClientFrom({ connectionString: broker.connectionString });
      const owning = createJobQueue({ client: ownClient, topic });
      await owning.enqueue(jobFor(SERVER_A));
      await owning.close();
      expect(() => ownClient.createSender(topic)).toThrow(/closed/i);
    });
  });

  describe('serviceBusClientFrom', () => {
    it('builds an Entra client for a namespace without connecting', async () => {
      const credential = { getToken: vi.fn(async () => ({ token: 'unused', expiresOnTimestamp: Date.now() + 60_000 })) };
      const entraClient = serviceBusClientFrom({ fullyQualifiedNamespace: 'sb-dbdist.servicebus.windows.net', credential });
      expect(entraClient.fullyQualifiedNamespace).toBe('sb-dbdist.servicebus.windows.net');
      expect(credential.getToken).not.toHaveBeenCalled();
      await entraClient.close();
    });
  });

  describe('peek-lock settlement as the runner uses it', () => {
    it('abandon makes the message available again with its delivery count + 1', async () => {
      const job = await enqueueFor(SERVER_A);
      const receiver = client.createReceiver(topic, 'runner-a');
      const first = await receiveOne(receiver);
      expect(first.deliveryCount).toBe(0);
      await receiver.abandonMessage(first);

      const again = await receiveOne(receiver);
      expect(again.messageId).toBe(job.jobId);
      expect(again.deliveryCount).toBe(1);
      expect(again.lockToken).not.toBe(first.lockToken);
    });

    it('a lock that expires without settlement releases the message, and the old lock can no longer settle', async () => {
      const job = await enqueueFor(SERVER_A);
      // The SDK renews locks on its own for 5 minutes by default, even for receiveMessages: turn that off.
      const receiver = client.createReceiver(topic, 'runner-a', { maxAutoLockRenewalDurationInMs: 0 });
      const first = await receiveOne(receiver);

      const again = await receiveOne(receiver, LOCK_MS * 4);
      expect(again.messageId).toBe(job.jobId);
      expect(again.deliveryCount).toBe(1);

      const error = await receiver.completeMessage(first).catch((e: unknown) => e);
      expect(isServiceBusError(error) && error.code).toBe('MessageLockLost');
      await receiver.completeMessage(again);
      expect(broker.counts(topic, 'runner-a')).toEqual({ active: 0, locked: 0, deadLettered: 0 });
    });

    it('renewMessageLock keeps the message locked past its lock duration', async () => {
      await enqueueFor(SERVER_A);
      const receiver = client.createReceiver(topic, 'runner-a', { maxAutoLockRenewalDurationInMs: 0 });
      const competitor = client.createReceiver(topic, 'runner-a');
      const message = await receiveOne(receiver);

      for (let i = 0; i < 3; i++) {
        await sleep(LOCK_MS / 2);
        const lockedUntil = await receiver.renewMessageLock(message);
        expect(lockedUntil.getTime()).toBeGreaterThan(Date.now());
      }
      // Three half-durations later the original lock would have expired: nobody else got the message.
      expect(broker.counts(topic, 'runner-a')).toEqual({ active: 0, locked: 1, deadLettered: 0 });
      await receiveNone(competitor, LOCK_MS / 2);
      await receiver.completeMessage(message);
      expect(broker.counts(topic, 'runner-a').locked).toBe(0);
    });

    it('subscribe with auto lock renewal keeps a long-running message locked until it is completed', async () => {
      const job = await enqueueFor(SERVER_A);
      const receiver = client.createReceiver(topic, 'runner-a', { maxAutoLockRenewalDurationInMs: 60_000 });
      const deliveries: ServiceBusReceivedMessage[] = [];
      const errors: unknown[] = [];
      let completed!: () => void;
      const done = new Promise<void>((resolve) => (completed = resolve));

      const subscription = receiver.subscribe(
        {
          async processMessage(message) {
            deliveries.push(message);
            await sleep(LOCK_MS * 3); // a "backup" that outlives the lock several times
            await receiver.completeMessage(message);
            completed();
          },
          async processError(args) {
            errors.push(args.error);
          },
        },
        { autoCompleteMessages: false },
      );
      await done;
      await subscription.close();

      expect(deliveries.map((m) => [m.messageId, m.deliveryCount])).toEqual([[job.jobId, 0]]);
      expect(errors).toEqual([]);
      expect(broker.counts(topic, 'runner-a')).toEqual({ active: 0, locked: 0, deadLettered: 0 });
    });

    it('deadLetterMessage moves the message to the dead-letter queue with its reason and description', async () => {
      const job = await enqueueFor(SERVER_A);
      const receiver = client.createReceiver(topic, 'runner-a');
      const message = await receiveOne(receiver);
      await receiver.deadLetterMessage(message, {
        deadLetterReason: 'DatabaseNotFound',
        deadLetterErrorDescription: 'Sales does not exist on sql-01',
      });

      const deadLetters = client.createReceiver(topic, 'runner-a', { subQueueType: 'deadLetter' });
      const dead = await receiveOne(deadLetters);
      expect(dead.messageId).toBe(job.jobId);
      expect(dead.deadLetterReason).toBe('DatabaseNotFound');
      expect(dead.deadLetterErrorDescription).toBe('Sales does not exist on sql-01');
      expect(dead.deadLetterSource).toBe(`${topic}/Subscriptions/runner-a`);
      expect(BackupJobMessage.parse(dead.body)).toEqual(job);
      await deadLetters.completeMessage(dead);
      expect(broker.counts(topic, 'runner-a')).toEqual({ active: 0, locked: 0, deadLettered: 0 });
    });

    it('the dead-letter inbox finds the dead letters of every subscription of a large fleet, and settles them', async () => {
      // More subscriptions than the inbox reads at once, dead letters in a few of them, the rest empty.
      const name = `backup-jobs-${randomUUID().slice(0, 8)}`;
      broker.createTopic(name);
      const servers = Array.from({ length: 40 }, () => randomUUID());
      servers.forEach((server, i) => broker.createSubscription(name, `runner-${i}`, { filter: `serverId = '${server}'` }));
      topic = name;
      const deadIn = [3, 17, 39];
      const jobs = [];
      for (const i of deadIn) {
        const job = await enqueueFor(servers[i]!);
        const receiver = client.createReceiver(topic, `runner-${i}`);
        await receiver.deadLetterMessage(await receiveOne(receiver), { deadLetterReason: 'MaxDeliveryCountExceeded' });
        jobs.push(job);
      }
      const inbox = createDeadLetterInbox({ client, topic, subscriptions: servers.map((_, i) => `runner-${i}`), maxWaitTimeInMs: 200 });
      try {
        const found = await inbox.receive(50);
        expect(found.map((m) => [m.subscription, m.messageId, m.reason]).sort()).toEqual(
          deadIn.map((i, n) => [`runner-${i}`, jobs[n]!.jobId, 'MaxDeliveryCountExceeded']).sort(),
        );
        await found.find((m) => m.subscription === 'runner-3')!.release();
        for (const message of found.filter((m) => m.subscription !== 'runner-3')) await message.complete();
        expect(broker.counts(topic, 'runner-17').deadLettered).toBe(0);
        // Released, not lost: the next sweep finds it again.
        expect((await inbox.receive(50)).map((m) => m.messageId)).toEqual([jobs[0]!.jobId]);
      } finally {
        await inbox.close();
      }
    });

    it('a message abandoned maxDeliveryCount times is dead-lettered with MaxDeliveryCountExceeded', async () => {
      topic = newTopic({ maxDeliveryCount: 3 });
      const job = await enqueueFor(SERVER_A);
      const receiver = client.createReceiver(topic, 'runner-a');
      for (let delivery = 0; delivery < 3; delivery++) {
        const message = await receiveOne(receiver);
        expect(message.deliveryCount).toBe(delivery);
        await receiver.abandonMessage(message);
      }
      await receiveNone(receiver, 300);

      expect(broker.deadLetters(topic, 'runner-a')).toMatchObject([
        { messageId: job.jobId, deliveryCount: 3, deadLetterReason: 'MaxDeliveryCountExceeded' },
      ]);
      const dead = await receiveOne(client.createReceiver(topic, 'runner-a', { subQueueType: 'deadLetter' }));
      expect(dead.deadLetterReason).toBe('MaxDeliveryCountExceeded');
    });

    it('a consumer can dead-letter a message that breaks the contract', async () => {
      const sender = client.createSender(topic);
      await sender.sendMessages({
        messageId: randomUUID(),
        body: { ...jobFor(SERVER_A), schemaVersion: 99 },
        applicationProperties: { serverId: SERVER_A },
      });
      const receiver = client.createReceiver(topic, 'runner-a');
      const message = await receiveOne(receiver);
      const parsed = BackupJobMessage.safeParse(message.body);
      expect(parsed.success).toBe(false);
      await receiver.deadLetterMessage(message, {
        deadLetterReason: 'ContractViolation',
        deadLetterErrorDescription: parsed.error?.issues.map((issue) => issue.path.join('.')).join(', ') ?? '',
      });

      expect(broker.deadLetters(topic, 'runner-a')).toMatchObject([
        { messageId: message.messageId, deadLetterReason: 'ContractViolation', deadLetterErrorDescription: 'schemaVersion' },
      ]);
    });
  });

  describe('lost connections', () => {
    it('a message held by a consumer whose connection drops is redelivered to a new receiver', async () => {
      const job = await enqueueFor(SERVER_A);
      const crashed = serviceBusClientFrom({
        connectionString: broker.connectionString,
        clientOptions: { retryOptions: { maxRetries: 0, timeoutInMs: 2_000 } },
      });
      const crashedReceiver = crashed.createReceiver(topic, 'runner-a', { maxAutoLockRenewalDurationInMs: 0 });
      const held = await receiveOne(crashedReceiver);

      broker.dropConnections();

      const replacement = serviceBusClientFrom({ connectionString: broker.connectionString });
      const receiver = replacement.createReceiver(topic, 'runner-a');
      const redelivered = await receiveOne(receiver);
      expect(redelivered.messageId).toBe(job.jobId);
      expect(redelivered.deliveryCount).toBe(1);
      await receiver.completeMessage(redelivered);

      // The crashed consumer's lock died with its connection (its link is gone: the SDK settles through
      // $management, which answers lock lost).
      const error = await crashedReceiver.completeMessage(held).catch((e: unknown) => e);
      expect(isServiceBusError(error) && error.code).toBe('MessageLockLost');
      expect(broker.counts(topic, 'runner-a')).toEqual({ active: 0, locked: 0, deadLettered: 0 });
      await Promise.all([crashed.close(), replacement.close()]);
    });

    it('a subscribed consumer reconnects by itself and gets the message it was holding again', async () => {
      const job = await enqueueFor(SERVER_A);
      const runner = serviceBusClientFrom({ connectionString: broker.connectionString });
      const receiver = runner.createReceiver(topic, 'runner-a');
      const deliveryCounts: number[] = [];
      let completed!: () => void;
      const done = new Promise<void>((resolve) => (completed = resolve));

      const subscription = receiver.subscribe(
        {
          async processMessage(message) {
            deliveryCounts.push(message.deliveryCount ?? -1);
            if (deliveryCounts.length === 1) {
              broker.dropConnections(); // the first attempt loses its connection mid-processing
              return;
            }
            await receiver.completeMessage(message);
            completed();
          },
          async processError() {
            // Connection errors are expected here; the SDK retries on its own.
          },
        },
        { autoCompleteMessages: false },
      );
      await done;
      await subscription.close();
      await runner.close();

      expect(deliveryCounts).toEqual([0, 1]);
      expect(broker.counts(topic, 'runner-a')).toEqual({ active: 0, locked: 0, deadLettered: 0 });
    });
  });
});
