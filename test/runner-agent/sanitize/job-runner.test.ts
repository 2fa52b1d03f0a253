/**
 * A sanitized job through the real job runner: masking rules in the job message, the PostgreSQL scratch target,
 * the upload pipeline into Azurite behind real write SAS URLs. The fail-closed cases must never ask for a write
 * SAS, so nothing can be uploaded.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupJobMessage } from '../../../shared/contracts/messages.js';
import { MaskingRuleSet } from '../../../shared/contracts/masking.js';
import type { RunnerEvent } from '../../../shared/contracts/runner.js';
import type { BlobGateway } from '../../../shared/storage/gateway.js';
import { createPostgresEngine } from '../../../runner-agent/engines/postgres.js';
import { runJob, type JobRunnerDeps } from '../../../runner-agent/job-runner.js';
import { silentLogger } from '../../../runner-agent/logger.js';
import { KeyedSemaphore } from '../../../runner-agent/semaphore.js';
import { startAzurite, type Azurite } from '../../../dev/azurite.js';
import { postgresAvailable } from '../../support/postgres.js';
import { gatewayWithContainer, writeTarget } from '../blob-target.js';
import { ORDERS, USERS, startPgFixture, type PgFixture } from './pg-fixture.js';

let fx: PgFixture;
let azurite: Azurite;
let gateway: BlobGateway;

beforeAll(async () => {
  if (!postgresAvailable) return;
  [fx, azurite] = await Promise.all([startPgFixture(), startAzurite()]);
  ({ gateway } = await gatewayWithContainer(azurite));
});
afterAll(async () => {
  await Promise.all([fx?.postgres.stop(), azurite?.stop()]);
});

const masking = MaskingRuleSet.parse({
  version: 7,
  rules: [
    { table: 'users', column: 'email', strategy: 'email' },
    { table: 'users', column: 'password_hash', strategy: 'hash' },
    { table: 'users', column: 'name', strategy: 'name' },
    { table: 'users', column: 'phone', strategy: 'null' },
    { table: 'audit_log', strategy: 'excludeData' },
  ],
});

function harness() {
  const events: RunnerEvent[] = [];
  const targets: string[] = [];
  const deps: JobRunnerDeps = {
    runnerId: 'test-runner',
    api: {
      postEvent: async (_jobId, event) => {
        events.push(event);
        return { kind: 'ok', value: { jobId: _jobId, status: 'Running', duplicate: false } };
      },
      uploadTarget: async (jobId) => {
        targets.push(jobId);
        return { kind: 'ok', value: await writeTarget(gateway, `backups/${jobId}.dump`) };
      },
    },
    engines: { postgres: createPostgresEngine(fx.settings) },
    scratch: { postgres: fx.driver },
    semaphore: new KeyedSemaphore(1),
    logger: silentLogger(),
    progress: { minIntervalMs: 0, heartbeatMs: 0 },
  };
  return { deps, events, targets };
}

function message(databaseName: string, rules?: MaskingRuleSet): BackupJobMessage {
  const jobId = randomUUID();
  return {
    schemaVersion: 1,
    jobId,
    serverId: randomUUID(),
    server: { name: 'pg', host: fx.settings.host },
    databaseId: randomUUID(),
    databaseName,
    engine: 'postgres',
    options: { compression: 'gzip', encryption: 'none' },
    blobPath: `backups/${jobId}.dump`,
    requestedAt: new Date().toISOString(),
    runDeadline: new Date(Date.now() + 3_600_000).toISOString(),
    ...(rules ? { masking: rules } : {}),
  };
}

const context = () => ({ deliveryCount: 0, signal: new AbortController().signal });

describe.skipIf(!postgresAvailable)('sanitized jobs through the job runner', () => {
  it('uploads a verified sanitized copy and reports its row counts', async () => {
    const { deps, events } = harness();
    const job = message(await fx.seededDatabase(), masking);
    expect(await runJob(job, context(), deps)).toEqual({ action: 'complete', reason: 'uploaded' });
    const uploaded = events.find((e) => e.type === 'uploaded');
    expect(uploaded).toMatchObject({ tableRowCounts: { 'public.users': USERS, 'public.orders': ORDERS, 'public.audit_log': 0 } });
    expect((await gateway.getBlobFacts(job.blobPath))?.sizeBytes).toBeGreaterThan(0);
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('fails naming api_token, never asks for a write SAS, stores nothing', async () => {
    const { deps, events, targets } = harness();
    const job = message(await fx.seededDatabase('ALTER TABLE users ADD COLUMN api_token text'), masking);
    expect(await runJob(job, context(), deps)).toEqual({ action: 'complete', reason: 'failed: sensitive_column_uncovered' });
    expect(events.find((e) => e.type === 'failed')).toMatchObject({ code: 'sensitive_column_uncovered', message: expect.stringContaining('api_token') });
    expect(targets).toEqual([]);
    expect(await gateway.getBlobFacts(job.blobPath)).toBeUndefined();
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('fails a sanitized job on a runner without a scratch target', async () => {
    const { deps, events, targets } = harness();
    delete deps.scratch;
    const job = message(await fx.seededDatabase(), masking);
    expect(await runJob(job, context(), deps)).toEqual({ action: 'complete', reason: 'failed: scratch_not_configured' });
    expect(events.map((e) => e.type)).toEqual(['failed']);
    expect(targets).toEqual([]);
  });

  it('reports row counts of a raw backup too, counted in the dump snapshot', async () => {
    const { deps, events } = harness();
    const job = message(await fx.seededDatabase());
    expect(await runJob(job, context(), deps)).toEqual({ action: 'complete', reason: 'uploaded' });
    expect(events.find((e) => e.type === 'uploaded')).toMatchObject({ tableRowCounts: { 'public.users': USERS, 'public.audit_log': 30 } });
  });
});
