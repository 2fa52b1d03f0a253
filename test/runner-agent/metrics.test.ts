/**
 * The runner's `/metrics` endpoint after real jobs: the consumer harness (real Service Bus client against the broker,
 * Azurite behind real SAS URLs) with metrics on, scraped over loopback HTTP and read with a Prometheus text parser.
 */
import { randomUUID } from 'node:crypto';
import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BackupJobMessage } from '../../shared/contracts/messages.js';
import type { UploadedEvent } from '../../shared/contracts/runner.js';
import type { BlobGateway } from '../../shared/storage/gateway.js';
import type { JobConsumer } from '../../runner-agent/consumer.js';
import { RunnerMetrics, startMetricsServer, type MetricsServer } from '../../runner-agent/metrics.js';
import { ServiceBusBroker } from '../../dev/servicebus-broker.js';
import { startAzurite, type Azurite } from '../../dev/azurite.js';
import { parsePrometheus, sample } from '../support/prometheus.js';
import { startApiStandIn, type ApiStandIn } from './api-stand-in.js';
import { gatewayWithContainer } from './blob-target.js';
import { jobMessageFor, startTestConsumer, SUBSCRIPTION, TOPIC } from './consumer-harness.js';
import { fakeEngine } from '../../dev/fake-engine.js';

const serverId = randomUUID();

let azurite: Azurite;
let gateway: BlobGateway;
let broker: ServiceBusBroker;
let api: ApiStandIn;
let sender: ServiceBusClient;
const running: Array<{ consumer: JobConsumer; client: ServiceBusClient; metricsServer: MetricsServer }> = [];

beforeAll(async () => {
  [azurite, broker] = await Promise.all([
    startAzurite(),
    ServiceBusBroker.start({ topics: [{ name: TOPIC, subscriptions: [{ name: SUBSCRIPTION, filter: `serverId = '${serverId}'` }] }] }),
  ]);
  ({ gateway } = await gatewayWithContainer(azurite));
  api = await startApiStandIn(gateway);
  sender = new ServiceBusClient(broker.connectionString);
});

afterAll(async () => {
  await sender?.close();
  await api?.close();
  await broker?.close();
  await azurite?.stop();
});

afterEach(async () => {
  for (const { consumer, client, metricsServer } of running.splice(0)) {
    await consumer.stop();
    await client.close();
    await metricsServer.close();
  }
});

async function consumerWithMetrics(engine: ReturnType<typeof fakeEngine>) {
  const metrics = new RunnerMetrics();
  const metricsServer = await startMetricsServer(metrics, { host: '127.0.0.1', port: 0 });
  const started = startTestConsumer({ connectionString: broker.connectionString, apiBaseUrl: api.baseUrl, engine, metrics });
  running.push({ ...started, metricsServer });
  return metricsServer;
}

async function scrape(server: MetricsServer) {
  const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain');
  return parsePrometheus(await response.text());
}

function jobMessage(): BackupJobMessage {
  return jobMessageFor(api, serverId);
}

async function send(job: BackupJobMessage): Promise<void> {
  const topicSender = sender.createSender(TOPIC);
  await topicSender.sendMessages({ body: job, messageId: job.jobId, applicationProperties: { serverId } });
  await topicSender.close();
}

async function eventually<T>(probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('runner metrics', () => {
  it('counts an uploaded job: bytes read and uploaded, last success for its server, outcome, nothing left in flight', async () => {
    const bytes = 2 * 1024 * 1024 + 123;
    const server = await consumerWithMetrics(fakeEngine({ bytes, seed: 'metrics' }));
    const before = await scrape(server);
    expect(sample(before, 'dbdist_runner_uploaded_bytes_total')).toBe(0);
    expect(sample(before, 'dbdist_runner_last_success_timestamp_seconds', { server: serverId })).toBeUndefined();

    const job = jobMessage();
    const startedAt = Math.floor(Date.now() / 1000);
    await send(job);
    const uploaded = (await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'uploaded')).event as UploadedEvent;
    expect(uploaded.sizeBytes).toBe(bytes);

    const after = await eventually(async () => {
      const families = await scrape(server);
      return sample(families, 'dbdist_runner_jobs_total', { outcome: 'uploaded' }) === 1 && families;
    });
    expect(after.get('dbdist_runner_uploaded_bytes_total')?.type).toBe('COUNTER');
    expect(sample(after, 'dbdist_runner_uploaded_bytes_total')).toBe(bytes);
    expect(sample(after, 'dbdist_runner_engine_read_bytes_total')).toBe(bytes);
    expect(sample(after, 'dbdist_runner_jobs_in_flight')).toBe(0);
    const lastSuccess = sample(after, 'dbdist_runner_last_success_timestamp_seconds', { server: serverId });
    expect(lastSuccess).toBeGreaterThanOrEqual(startedAt);
    expect(lastSuccess).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    expect(sample(after, 'dbdist_runner_jobs_total', { outcome: 'failed' })).toBeUndefined();
  });

  it('counts a failed job under its engine error code and the failed outcome', async () => {
    const server = await consumerWithMetrics(fakeEngine({ bytes: 100_000, failWith: 'permission_denied' }));
    const job = jobMessage();
    await send(job);
    await api.waitForEvent((e) => e.jobId === job.jobId && e.event.type === 'failed');
    const families = await eventually(async () => {
      const scraped = await scrape(server);
      return sample(scraped, 'dbdist_runner_jobs_total', { outcome: 'failed' }) === 1 && scraped;
    });
    expect(sample(families, 'dbdist_runner_engine_errors_total', { code: 'permission_denied' })).toBe(1);
    expect(sample(families, 'dbdist_runner_jobs_in_flight')).toBe(0);
    expect(sample(families, 'dbdist_runner_uploaded_bytes_total')).toBe(0);
    expect(sample(families, 'dbdist_runner_last_success_timestamp_seconds', { server: serverId })).toBeUndefined();
  });

  it('answers only GET /metrics', async () => {
    const server = await startMetricsServer(new RunnerMetrics(), { host: '127.0.0.1', port: 0 });
    try {
      expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: 'POST' })).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
