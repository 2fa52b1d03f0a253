/**
 * Issue 14: one request is one trace. A job runs through the sandbox stack (dev/stack.ts) with an in-memory
 * exporter; the API request span, the activities, the runner's job span and its API calls (and the API's spans
 * for those calls) all share the request's trace id, linked parent to child as designed.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startLocalStack, type LocalStack } from '../../dev/stack.js';
import { startEmbeddedSource, type EmbeddedSource } from '../../dev/embedded-source.js';
import { setupTracing } from '../../shared/telemetry.js';

type Json = Record<string, any>;

const exporter = new InMemorySpanExporter();
const stopTracing = setupTracing({ processor: new SimpleSpanProcessor(exporter) });
let stack: LocalStack;
let source: EmbeddedSource;

beforeAll(async () => {
  [stack, source] = await Promise.all([startLocalStack({ lockDurationMs: 5_000 }), startEmbeddedSource({ customers: 50 })]);
});

afterAll(async () => {
  await stack?.stop();
  await source?.close();
  await stopTracing();
});

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

it('carries one trace from the job request through the orchestration and Service Bus to the runner and back', async () => {
  const server = await stack.api<Json>('POST', '/api/servers', { token: stack.tokens.admin, body: { name: 'traced', host: 'embedded', engine: 'postgres' } });
  const database = await stack.api<Json>('POST', `/api/servers/${server.body.id}/databases`, {
    token: stack.tokens.admin,
    body: { name: source.databaseName, requesterGroupIds: [stack.requesterGroupId] },
  });
  expect(database.status).toBe(201);
  const runner = await stack.startRunner({ serverId: server.body.id, engine: source.engine });
  exporter.reset();

  const created = await stack.api<Json>('POST', '/api/jobs', { token: stack.tokens.alice, body: { databaseId: database.body.id } });
  expect(created.status).toBe(202);
  const jobId = created.body.id as string;
  const deadline = Date.now() + 60_000;
  while ((await stack.store.getJob(jobId))?.status !== 'Available') {
    if (Date.now() > deadline) throw new Error(`job ${jobId} is ${(await stack.store.getJob(jobId))?.status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  await runner.stop();
  const spans = exporter.getFinishedSpans();
  const request = spans.find((span) => span.attributes['job.id'] === jobId && span.name.startsWith('POST'));
  expect(request, spans.map((span) => span.name).join(', ')).toBeDefined();
  const traceId = request!.spanContext().traceId;
  const inTrace = spans.filter((span) => span.spanContext().traceId === traceId);
  const named = (prefix: string) => inTrace.filter((span) => span.name.startsWith(prefix));

  // The request starts the trace; each activity is its child (the orchestrator itself makes no spans).
  expect(parentOf(request!)).toBeUndefined();
  const activityNames = named('activity ').map((span) => span.name);
  expect(activityNames).toEqual(expect.arrayContaining(['activity prepareJob', 'activity enqueueJob', 'activity markRunning', 'activity markAvailable']));
  for (const activity of named('activity ')) {
    expect(parentOf(activity)).toBe(request!.spanContext().spanId);
    expect(activity.attributes['job.id']).toBe(jobId);
  }

  // The message carried the enqueue activity's context: the runner's job span is its child.
  const enqueue = named('activity enqueueJob')[0]!;
  const [runnerJob] = named('runner job');
  expect(runnerJob).toBeDefined();
  expect(parentOf(runnerJob!)).toBe(enqueue.spanContext().spanId);
  expect(runnerJob!.attributes).toMatchObject({ 'job.id': jobId, 'database.id': database.body.id, 'db.engine': 'postgres', outcome: 'complete' });

  // Backup and upload, and every call back to the API, are children of the job span; the API continues each call.
  expect(named('runner backup and upload').map(parentOf)).toEqual([runnerJob!.spanContext().spanId]);
  const apiCalls = named('runner api POST');
  expect(apiCalls.length).toBeGreaterThanOrEqual(3);
  const runnerSpanIds = new Set(inTrace.filter((span) => span.name.startsWith('runner ')).map((span) => span.spanContext().spanId));
  for (const call of apiCalls) expect(runnerSpanIds.has(parentOf(call)!)).toBe(true);
  const served = inTrace.filter((span) => span.name.startsWith('POST') && span !== request);
  expect(served.length).toBeGreaterThanOrEqual(apiCalls.length);
  const callIds = new Set(apiCalls.map((span) => span.spanContext().spanId));
  for (const span of served) expect(callIds.has(parentOf(span)!)).toBe(true);

  // Nothing secret: no attribute anywhere holds a SAS signature.
  for (const span of spans) for (const value of Object.values(span.attributes)) expect(String(value)).not.toContain('sig=');
}, 120_000);
