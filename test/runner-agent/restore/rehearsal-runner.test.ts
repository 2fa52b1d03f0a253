/**
 * The runner's side of a rehearsal message on real PostgreSQL and Azurite: fetch the source from the API, rehearse
 * into scratch, report the outcome, settle the message. The API is a recording stand-in with the same shapes.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RehearsalJobMessage } from '../../../shared/contracts/messages.js';
import type { RehearsalReport, RehearsalSource } from '../../../shared/contracts/runner.js';
import { AppError } from '../../../shared/errors.js';
import type { BlobGateway } from '../../../shared/storage/gateway.js';
import type { ApiOutcome } from '../../../runner-agent/api/client.js';
import { createPostgresEngine } from '../../../runner-agent/engines/postgres.js';
import { silentLogger } from '../../../runner-agent/logger.js';
import { uploadBackup } from '../../../runner-agent/pipeline/upload.js';
import { runRehearsal, type RehearsalApi } from '../../../runner-agent/rehearsal-runner.js';
import { startAzurite, type Azurite } from '../../../dev/azurite.js';
import { postgresAvailable } from '../../support/postgres.js';
import { gatewayWithContainer, targetProvider } from '../blob-target.js';
import { startPgFixture, type PgFixture } from '../sanitize/pg-fixture.js';

let fx: PgFixture;
let azurite: Azurite;
let gateway: BlobGateway;
let container: string;

beforeAll(async () => {
  if (!postgresAvailable) return;
  [fx, azurite] = await Promise.all([startPgFixture(), startAzurite()]);
  ({ gateway, container } = await gatewayWithContainer(azurite));
});
afterAll(async () => {
  await Promise.all([fx?.postgres.stop(), azurite?.stop()]);
});

async function storedSource(): Promise<{ blobPath: string; source: RehearsalSource }> {
  const database = await fx.seededDatabase();
  const blobPath = `backups/${randomUUID()}.dump.gz`;
  const backup = await createPostgresEngine(fx.settings).backup(
    { jobId: randomUUID(), databaseName: database },
    { signal: new AbortController().signal, onProgress: () => undefined, attemptId: 'a1' },
  );
  const result = await uploadBackup({
    source: backup.stream,
    sourceDone: backup.done,
    compression: 'gzip',
    getTarget: targetProvider(gateway, blobPath),
    metadata: { engine: 'postgres', jobid: 'j', server: 'pg', database },
  });
  const sas = await gateway.issueReadSas(blobPath, { expiresAt: new Date(Date.now() + 600_000), fileName: 'x.dump.gz', correlationId: randomUUID() });
  return { blobPath, source: { url: sas.url, expiresAt: sas.expiresAt.toISOString(), compression: 'gzip', encrypted: false, sha256: result.sha256, tableRowCounts: backup.tableRowCounts! } };
}

function recordingApi(source: () => ApiOutcome<RehearsalSource>) {
  const reports: { jobId: string; report: RehearsalReport }[] = [];
  const api: RehearsalApi = {
    rehearsalSource: async () => source(),
    reportRehearsal: async (jobId, report) => {
      reports.push({ jobId, report });
      return { kind: 'ok', value: {} };
    },
  };
  return { api, reports };
}

const message = (): RehearsalJobMessage => ({
  schemaVersion: 1,
  kind: 'rehearsal',
  rehearsalId: randomUUID(),
  jobId: randomUUID(),
  serverId: randomUUID(),
  engine: 'postgres',
  requestedAt: new Date().toISOString(),
});
const context = () => ({ deliveryCount: 0, signal: new AbortController().signal });

describe.skipIf(!postgresAvailable)('runRehearsal (rehearsal messages on the runner)', () => {
  it('rehearses the stored backup, reports passed with a duration, completes the message, leaves no scratch', async () => {
    const { source } = await storedSource();
    const { api, reports } = recordingApi(() => ({ kind: 'ok', value: source }));
    const m = message();
    const settlement = await runRehearsal(m, context(), { api, scratch: { postgres: fx.driver }, logger: silentLogger() });
    expect(settlement.action).toBe('complete');
    expect(reports).toHaveLength(1);
    expect(reports[0]!.jobId).toBe(m.jobId);
    expect(reports[0]!.report).toMatchObject({ rehearsalId: m.rehearsalId, result: 'passed' });
    expect(reports[0]!.report.restoreDurationMs).toBeGreaterThan(0);
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('reports failed for a backup with a byte flipped in storage', async () => {
    const { blobPath, source } = await storedSource();
    const blob = azurite.serviceClient.getContainerClient(container).getBlockBlobClient(blobPath);
    const bytes = await blob.downloadToBuffer();
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await blob.uploadData(bytes);
    const { api, reports } = recordingApi(() => ({ kind: 'ok', value: source }));
    expect((await runRehearsal(message(), context(), { api, scratch: { postgres: fx.driver }, logger: silentLogger() })).action).toBe('complete');
    expect(reports[0]!.report.result).toBe('failed');
    expect(['backup_damaged', 'restore_failed']).toContain(reports[0]!.report.code);
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('reports scratch_missing when the runner has no scratch target for the engine', async () => {
    const { source } = await storedSource();
    const { api, reports } = recordingApi(() => ({ kind: 'ok', value: source }));
    await runRehearsal(message(), context(), { api, logger: silentLogger() });
    expect(reports[0]!.report).toMatchObject({ result: 'failed', code: 'scratch_missing' });
  });
});

describe('runRehearsal settlement without a backup', () => {
  it('completes without reporting when the backup is no longer Available (409) or the job is unknown (404)', async () => {
    const gone = recordingApi(() => ({ kind: 'not_runnable', status: 'Expired', detail: 'gone' }));
    expect((await runRehearsal(message(), context(), { api: gone.api, logger: silentLogger() })).action).toBe('complete');
    const unknown = recordingApi(() => {
      throw new AppError('not_found', 'no such job');
    });
    expect((await runRehearsal(message(), context(), { api: unknown.api, logger: silentLogger() })).action).toBe('complete');
    expect([...gone.reports, ...unknown.reports]).toEqual([]);
  });

  it('abandons the message when the API is unreachable, so Service Bus redelivers', async () => {
    const down = recordingApi(() => {
      throw new AppError('dependency_unavailable', 'connection refused');
    });
    expect((await runRehearsal(message(), context(), { api: down.api, logger: silentLogger() })).action).toBe('abandon');
  });
});
