import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BackupJobMessage } from '../../shared/contracts/messages.js';
import type { UploadedEvent } from '../../shared/contracts/runner.js';
import type { BlobGateway } from '../../shared/storage/gateway.js';
import type { JobConsumer } from '../../runner-agent/consumer.js';
import { ServiceBusBroker } from '../../dev/servicebus-broker.js';
import { startAzurite, type Azurite } from '../../dev/azurite.js';
import { startApiStandIn, type ApiStandIn } from './api-stand-in.js';
import { gatewayWithContainer } from './blob-target.js';
import { jobMessageFor, startTestConsumer, SUBSCRIPTION, TOPIC, type HarnessOptions } from './consumer-harness.js';
import { fakeEngine } from '../../dev/fake-engine.js';
import { collect, digestOf, pseudoRandomStream, through } from './helpers.js';
import { createAgeDecryptStream, generateAgeIdentity } from '../../runner-agent/pipeline/age.js';

const serverId = randomUUID();
const LOCK_MS = 1500;

let azurite: Azurite;
let gateway: BlobGateway;
let containerName: string;
let broker: ServiceBusBroker;
let api: ApiStandIn;
let sender: ServiceBusClient;
const running: Array<{ consumer: JobConsumer; client: ServiceBusClient }> = [];

beforeAll(async () => {
  [azurite, broker] = await Promise.all([
    startAzurite(),
    ServiceBusBroker.start({
      topics: [{ name: TOPIC, subscriptions: [{ name: SUBSCRIPTION, filter: `serverId = '${serverId}'`, lockDurationMs: LOCK_MS }] }],
    }),
  ]);
  ({ gateway, container: containerName } = await gatewayWithContainer(azurite));
  api = await startApiStandIn(gateway);
  sender = new ServiceBusClient(broker.connectionString);
});

afterAll(async () => {
  await sender?.close();
  await api?.close();
  await broker?.close();
  await azurite?.stop();
});

beforeEach(() => {
  api.events.length = 0;
  api.uploadTargetCalls.length = 0;
  api.answerEvent = undefined;
});

afterEach(async () => {
  for (const { consumer, client } of running.splice(0)) {
    await consumer.stop();
    await client.close();
  }
});

function consumerWith(options: Omit<HarnessOptions, 'connectionString' | 'apiBaseUrl'>) {
  const started = startTestConsumer({ connectionString: broker.connectionString, apiBaseUrl: api.baseUrl, ...options });
  running.push(started);
  return started;
}

function jobMessage(overrides: Partial<BackupJobMessage> = {}): BackupJobMessage {
  return jobMessageFor(api, serverId, overrides);
}

async function send(body: unknown, messageId: string = randomUUID()): Promise<void> {
  const topicSender = sender.createSender(TOPIC);
  await topicSender.sendMessages({ body, messageId, applicationProperties: { serverId } });
  await topicSender.close();
}

async function eventually<T>(probe: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The subscription is empty: every message settled (completed or dead-lettered), none waiting or locked. */
function subscriptionDrained(): boolean {
  const counts = broker.counts(TOPIC, SUBSCRIPTION);
  return counts.active === 0 && counts.locked === 0;
}

function eventsOf(jobId: string, type?: string) {
  return api.events.filter((e) => e.jobId === jobId && (!type || e.event.type === type)).map((e) => e.event);
}

async function committedBlobs(prefix: string): Promise<string[]> {
  const names: string[] = [];
  for await (const blob of azurite.serviceClient.getContainerClient(containerName).listBlobsFlat({ prefix })) names.push(blob.name);
  return names;
}

describe('job consumer with the real Service Bus client', () => {
  it('backs up, reports accepted → progress → uploaded, and completes the message', async () => {
    const engine = fakeEngine({ bytes: 3 * 1024 * 1024, seed: 'happy' });
    consumerWith({ engine });
    const job = jobMessage();
    await send(job, job.jobId);

    const uploaded = (await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'uploaded')).event as UploadedEvent;
    await eventually(subscriptionDrained);
    const expected = await digestOf(pseudoRandomStream(3 * 1024 * 1024, 'happy'));
    expect(uploaded).toMatchObject({ blobPath: job.blobPath, sizeBytes: expected.bytes, sha256: expected.sha256, compression: 'none', encrypted: false });
    // Who took it, for the signed manifest.
    expect(uploaded).toMatchObject({ runnerId: expect.any(String), attempt: 1 });
    const types = eventsOf(job.jobId).map((e) => e.type);
    expect(types[0]).toBe('accepted');
    expect(types.at(-1)).toBe('uploaded');
    expect(eventsOf(job.jobId, 'progress').at(-1)).toMatchObject({ percent: 100 });
    expect(eventsOf(job.jobId, 'accepted')[0]).toMatchObject({ runnerId: 'test-runner', attempt: 1 });
    expect(api.events[0]?.authorization).toBe('Bearer test-token');
    expect((await gateway.getBlobFacts(job.blobPath))?.metadata).toMatchObject({ sha256: expected.sha256, jobid: job.jobId });
    expect(broker.deadLetters(TOPIC, SUBSCRIPTION)).toHaveLength(0);
  });

  it('dead-letters messages that break the contract, with the reason visible', async () => {
    const engine = fakeEngine();
    consumerWith({ engine });
    const before = broker.deadLetters(TOPIC, SUBSCRIPTION).length;
    await send({ hello: 'world' });
    await send({ ...jobMessage(), schemaVersion: 2 });
    await send('this is not json {');
    const deadLetters = await eventually(() => {
      const found = broker.deadLetters(TOPIC, SUBSCRIPTION);
      return found.length >= before + 3 && found.slice(before);
    });
    const reasons = deadLetters.map((m) => m.deadLetterReason).sort();
    expect(reasons).toEqual(['InvalidJobMessage', 'InvalidMessageBody', 'UnsupportedSchemaVersion']);
    expect(deadLetters.find((m) => m.deadLetterReason === 'InvalidJobMessage')?.deadLetterErrorDescription).toMatch(/jobId/);
    expect(deadLetters.find((m) => m.deadLetterReason === 'UnsupportedSchemaVersion')?.deadLetterErrorDescription).toMatch(/schemaVersion 2/);
    expect(engine.backups).toBe(0);
    expect(api.events).toHaveLength(0);
  });

  it('dead-letters a job for a server it does not serve, without attempting it', async () => {
    const engine = fakeEngine();
    consumerWith({ engine, serverIds: [randomUUID()] });
    const job = jobMessage();
    await send(job);
    const deadLetter = await eventually(() =>
      broker.deadLetters(TOPIC, SUBSCRIPTION).find((m) => (m.body as { jobId?: string })?.jobId === job.jobId),
    );
    expect(deadLetter.deadLetterReason).toBe('ServerNotServedHere');
    expect(deadLetter.deadLetterErrorDescription).toContain(serverId);
    expect(engine.backups).toBe(0);
    expect(eventsOf(job.jobId)).toHaveLength(0);
  });

  it('completes without work when the API says the job is no longer runnable (409)', async () => {
    const engine = fakeEngine();
    consumerWith({ engine });
    const job = jobMessage();
    api.answerEvent = (jobId) =>
      jobId === job.jobId ? { status: 409, body: { status: 'Cancelled', code: 'conflict', title: 'Conflict', detail: 'cancelled' } } : undefined;
    await send(job, job.jobId);
    await eventually(() => subscriptionDrained() && api.events.length === 0 && broker.messages(TOPIC, SUBSCRIPTION).length === 0);
    expect(engine.backups).toBe(0);
    expect(api.uploadTargetCalls).not.toContain(job.jobId);
    expect(broker.deadLetters(TOPIC, SUBSCRIPTION).filter((m) => (m.body as { jobId?: string })?.jobId === job.jobId)).toHaveLength(0);
  });

  it('stops a running backup when a progress report answers 409, committing nothing', async () => {
    const engine = fakeEngine({ endless: true, chunkDelayMs: 20 });
    consumerWith({ engine });
    const job = jobMessage();
    api.answerEvent = (jobId, event) =>
      jobId === job.jobId && event.type === 'progress' ? { status: 409, body: { status: 'Cancelled' } } : undefined;
    await send(job, job.jobId);
    await eventually(() => engine.aborted > 0);
    await eventually(subscriptionDrained);
    expect(eventsOf(job.jobId, 'uploaded')).toHaveLength(0);
    expect(eventsOf(job.jobId, 'failed')).toHaveLength(0);
    expect(await gateway.getBlobFacts(job.blobPath)).toBeUndefined();
  });

  it('reports an engine failure as a failed event with its code, then completes', async () => {
    consumerWith({ engine: fakeEngine({ failWith: 'permission_denied' }) });
    const job = jobMessage();
    await send(job, job.jobId);
    const failed = await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'failed');
    expect(failed.event).toMatchObject({ code: 'permission_denied', message: expect.stringContaining('permission_denied') });
    await eventually(subscriptionDrained);
    expect(await gateway.getBlobFacts(job.blobPath)).toBeUndefined();
  });

  it('encrypts with age to the recipients the job names; a job for the retired DBDE format fails clearly', async () => {
    consumerWith({ engine: fakeEngine({ bytes: 200_000, seed: 'age' }) });
    const { identity, recipient } = generateAgeIdentity();
    const job = jobMessage({ options: { compression: 'gzip', encryption: 'age' }, ageRecipients: [recipient] });
    await send(job, job.jobId);
    const uploaded = (await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'uploaded')).event as UploadedEvent;
    expect(uploaded).toMatchObject({ compression: 'gzip', encrypted: true });
    const stored = await azurite.serviceClient.getContainerClient(containerName).getBlobClient(job.blobPath).downloadToBuffer();
    const plain = gunzipSync(await through(stored, createAgeDecryptStream([identity])));
    expect(plain.equals(await collect(pseudoRandomStream(200_000, 'age')))).toBe(true);

    const retired = jobMessage({ options: { compression: 'none', encryption: 'dbde' } });
    await send(retired, retired.jobId);
    const failed = await api.waitForEvent((e) => e.jobId === retired.jobId && e.event.type === 'failed');
    expect(failed.event).toMatchObject({ code: 'encryption_format_retired' });
    await eventually(subscriptionDrained);
    expect(await gateway.getBlobFacts(retired.blobPath)).toBeUndefined();
  });


  it('keeps the message locked through an API outage longer than its own retries, within the bound', async () => {
    const engine = fakeEngine({ bytes: 2 * 1024 * 1024 });
    consumerWith({ engine, apiMaxAttempts: 2, outageBoundMs: 20_000 });
    const job = jobMessage();
    // Down for 3 s (over 2 lock durations and many client retries): accepted and uploaded both hit the outage.
    let downUntil = 0;
    api.answerEvent = (jobId, event) => {
      if (jobId !== job.jobId || (event.type !== 'accepted' && event.type !== 'uploaded')) return undefined;
      if (downUntil === 0) downUntil = Date.now() + 3_000;
      return Date.now() < downUntil ? { status: 503, body: { status: 503, detail: 'down for maintenance' } } : undefined;
    };
    await send(job, job.jobId);
    await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'uploaded');
    await eventually(subscriptionDrained);
    expect(engine.backups).toBe(1);
    expect(eventsOf(job.jobId, 'accepted')).toEqual([expect.objectContaining({ attempt: 1 })]);
    expect(broker.deadLetters(TOPIC, SUBSCRIPTION).filter((m) => (m.body as { jobId?: string })?.jobId === job.jobId)).toHaveLength(0);
  });

  it('completes a message for a job the API does not know (404), whatever the engine', async () => {
    const engine = fakeEngine();
    consumerWith({ engine, alsoSqlServer: true, outageBoundMs: 10_000 });
    const jobs = [jobMessage({ engine: 'postgres' }), jobMessage({ engine: 'sqlserver' }), jobMessage({ engine: 'postgres', runDeadline: new Date(Date.now() - 1000).toISOString() })];
    const unknown = new Set(jobs.map((job) => job.jobId));
    api.answerEvent = (jobId) => (unknown.has(jobId) ? { status: 404, body: { status: 404, detail: 'no such job' } } : undefined);
    for (const job of jobs) await send(job, job.jobId);
    await eventually(() => subscriptionDrained() && broker.messages(TOPIC, SUBSCRIPTION).every((m) => !unknown.has(m.messageId ?? '')));
    for (const job of jobs) {
      expect(broker.messages(TOPIC, SUBSCRIPTION).find((m) => m.messageId === job.jobId)).toBeUndefined();
      expect(broker.deadLetters(TOPIC, SUBSCRIPTION).find((m) => m.messageId === job.jobId)).toBeUndefined();
    }
    expect(engine.backups).toBe(0);
  });

  it('abandons once the outage bound has passed, and the redelivery succeeds', async () => {
    consumerWith({ engine: fakeEngine(), apiMaxAttempts: 2 });
    const job = jobMessage();
    let refused = 0;
    api.answerEvent = (jobId, event) => {
      if (jobId !== job.jobId || event.type !== 'accepted' || refused >= 2) return undefined;
      refused += 1;
      return { status: 503, body: { status: 503, detail: 'down for maintenance' } };
    };
    await send(job, job.jobId);
    await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'uploaded');
    expect(refused).toBe(2);
    expect(eventsOf(job.jobId, 'accepted')).toEqual([expect.objectContaining({ attempt: 2 })]);
    await eventually(subscriptionDrained);
  });

  it('renews the lock: a backup longer than the lock duration is not redelivered', async () => {
    const engine = fakeEngine({ bytes: 8 * 1024 * 1024, chunkDelayMs: (3 * LOCK_MS) / 8 });
    consumerWith({ engine });
    const job = jobMessage();
    await send(job, job.jobId);
    await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'uploaded');
    await eventually(subscriptionDrained);
    expect(engine.backups).toBe(1);
    expect(eventsOf(job.jobId, 'accepted')).toEqual([expect.objectContaining({ attempt: 1 })]);
  });

  it('on shutdown past the grace period aborts the backup and abandons its message', async () => {
    const engine = fakeEngine({ endless: true, chunkDelayMs: 20 });
    const { consumer } = consumerWith({ engine, shutdownGraceMs: 200 });
    const job = jobMessage();
    await send(job, job.jobId);
    await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'progress');
    await consumer.stop();
    expect(await consumer.exited).toEqual({ kind: 'stopped' });
    expect(engine.aborted).toBe(1);
    const [message] = broker.messages(TOPIC, SUBSCRIPTION).filter((m) => m.messageId === job.jobId);
    expect(message).toMatchObject({ locked: false, deliveryCount: 1 });
    expect(await gateway.getBlobFacts(job.blobPath)).toBeUndefined();

    // Leave the subscription clean for the next test: a normal runner finishes the job.
    consumerWith({ engine: fakeEngine() });
    await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'uploaded');
    await eventually(subscriptionDrained);
  });

  it('after a crash mid-backup the redelivered attempt starts clean and commits exactly one blob', { timeout: 150_000 }, async () => {
    const job = jobMessage();
    const worker = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('./crash-worker.ts', import.meta.url)), JSON.stringify({ connectionString: broker.connectionString, apiBaseUrl: api.baseUrl })],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      // Its consumer is subscribed before the job is sent (starting tsx can take a while on a loaded machine).
      await new Promise<void>((resolve, reject) => {
        worker.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
        worker.once('exit', (code) => reject(new Error(`the crash worker exited (${code}) before it was ready`)));
      });
      await send(job, job.jobId);
      // The first attempt is well under way: accepted, and blocks staged (progress follows each staged block).
      await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'progress');
    } finally {
      worker.kill('SIGKILL');
    }
    await new Promise((resolve) => worker.once('exit', resolve));

    consumerWith({ engine: fakeEngine({ bytes: 2 * 1024 * 1024, seed: 'second attempt' }) });
    const uploaded = (await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'uploaded')).event as UploadedEvent;
    await eventually(subscriptionDrained);

    // Two accepted attempts: the crashed one and the one that finished. (The second is delivery 2, or a later one
    // if a lock lapsed before acceptance on a starved machine: at-least-once delivery, still one backup committed.)
    const [crashed, finished, ...more] = eventsOf(job.jobId, 'accepted').map((e) => (e as { attempt: number }).attempt);
    expect({ crashed, more }).toEqual({ crashed: 1, more: [] });
    expect(finished).toBeGreaterThan(1);
    const prefix = job.blobPath.slice(0, job.blobPath.lastIndexOf('/'));
    expect(await committedBlobs(prefix)).toEqual([job.blobPath]);
    const blob = azurite.serviceClient.getContainerClient(containerName).getBlockBlobClient(job.blobPath);
    const { committedBlocks } = await blob.getBlockList('committed');
    expect(committedBlocks).toHaveLength(2); // the second attempt's 2 MiB in 1 MiB blocks, nothing of the first
    const expected = await digestOf(pseudoRandomStream(2 * 1024 * 1024, 'second attempt'));
    expect(uploaded).toMatchObject({ sha256: expected.sha256, sizeBytes: expected.bytes });
    expect(await digestOf((await blob.download()).readableStreamBody!)).toEqual(expected);
  });

  it('stops with a fatal exit when its subscription does not exist', async () => {
    const { consumer } = consumerWith({ engine: fakeEngine(), subscription: 'no-such-subscription' });
    const exit = await consumer.exited;
    expect(exit.kind).toBe('fatal');
    expect((exit as { error: { code?: string } }).error.code).toBe('MessagingEntityNotFound');
  });
});
