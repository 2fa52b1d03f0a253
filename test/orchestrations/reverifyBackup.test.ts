/**
 * The re-hash loop (orchestrations/rehash.ts) and the reverifyBackup orchestrator, through durable-functions' own
 * replay engine (dev/durable-history.ts): slices hand their state on, history stays two events per slice, and
 * every outcome reaches recordReverification.
 */
import { describe, expect, it } from 'vitest';
import { OrchestrationDriver, HistoryEventType, ReplaySchema } from '../../dev/durable-history.js';
import { INTEGRITY_ACTIVITY, type RehashBlobInput } from '../../orchestrations/integrity.activities.js';
import { REVERIFY_BACKUP_ORCHESTRATOR, reverifyBackupOrchestrator } from '../../orchestrations/reverifyBackup.js';
import { BLOB_PATH, JOB_ID, T0 } from '../support/backup-job-sample.js';

const SHA = 'cd'.repeat(32);
const GIB = 1024 ** 3;

async function started(requestedBy?: unknown, schemaVersion: number = ReplaySchema.V4): Promise<OrchestrationDriver> {
  const run = await OrchestrationDriver.start(reverifyBackupOrchestrator, {
    instanceId: `reverify-${JOB_ID}-1`,
    input: { jobId: JOB_ID, ...(requestedBy ? { requestedBy } : {}) },
    startAt: T0,
    name: REVERIFY_BACKUP_ORCHESTRATOR,
    schemaVersion,
  });
  expect(run.inputOf(INTEGRITY_ACTIVITY.loadForReverify)).toEqual({ jobId: JOB_ID });
  return run;
}

/** Answers `slices` rehashBlob calls for a blob of `sizeBytes`, checking each slice starts where the last stopped. */
async function rehashInSlices(run: OrchestrationDriver, sizeBytes: number, slices: number, sha256 = SHA): Promise<void> {
  const step = Math.ceil(sizeBytes / slices);
  for (let index = 0; index < slices; index++) {
    const input = run.inputOf<RehashBlobInput>(INTEGRITY_ACTIVITY.rehashBlob);
    expect(input).toEqual({
      blobPath: BLOB_PATH,
      offset: index * step,
      state: index === 0 ? null : `state-${index - 1}`,
      etag: index === 0 ? null : '"etag-1"',
    });
    const offset = Math.min(sizeBytes, (index + 1) * step);
    await run.completeActivity(
      INTEGRITY_ACTIVITY.rehashBlob,
      offset < sizeBytes
        ? { ok: true, done: false, offset, state: `state-${index}`, etag: '"etag-1"', sizeBytes }
        : { ok: true, done: true, sizeBytes, sha256 },
    );
  }
}

describe.each([
  ['replay schema V4 (Azure)', ReplaySchema.V4],
  ['replay schema V1 (in-process host)', ReplaySchema.V1],
])('reverifyBackup, %s', (_label, schemaVersion) => {
  it('re-hashes slice by slice, handing on state, offset and etag, and records the digest it found', async () => {
    const run = await started(undefined, schemaVersion);
    await run.completeActivity(INTEGRITY_ACTIVITY.loadForReverify, { ok: true, blobPath: BLOB_PATH, sizeBytes: 10 * GIB, sha256: SHA });
    await rehashInSlices(run, 10 * GIB, 3);
    expect(run.inputOf(INTEGRITY_ACTIVITY.recordReverification)).toEqual({
      jobId: JOB_ID,
      at: T0.toISOString(),
      expected: { sizeBytes: 10 * GIB, sha256: SHA },
      found: { ok: true, sizeBytes: 10 * GIB, sha256: SHA },
    });
    await run.completeActivity(INTEGRITY_ACTIVITY.recordReverification, { ok: true, status: 'Available' });
    expect(run.isDone).toBe(true);
    expect(run.output).toEqual({ jobId: JOB_ID, result: 'Available' });
  });
});

describe('reverifyBackup outcomes', () => {
  it('passes a different digest on to be recorded as Corrupt, with who asked', async () => {
    const alice = { actorType: 'user', actorId: 'oid-alice', actorName: 'alice@corp.example' };
    const run = await started(alice);
    await run.completeActivity(INTEGRITY_ACTIVITY.loadForReverify, { ok: true, blobPath: BLOB_PATH, sizeBytes: 100, sha256: SHA });
    await rehashInSlices(run, 100, 1, 'ef'.repeat(32));
    expect(run.inputOf(INTEGRITY_ACTIVITY.recordReverification)).toMatchObject({
      found: { ok: true, sizeBytes: 100, sha256: 'ef'.repeat(32) },
      requestedBy: alice,
    });
    await run.completeActivity(INTEGRITY_ACTIVITY.recordReverification, { ok: true, status: 'Corrupt' });
    expect(run.output).toEqual({ jobId: JOB_ID, result: 'Corrupt' });
  });

  it('stops the re-hash at a missing or rewritten blob and records that', async () => {
    const run = await started();
    await run.completeActivity(INTEGRITY_ACTIVITY.loadForReverify, { ok: true, blobPath: BLOB_PATH, sizeBytes: 3 * GIB, sha256: SHA });
    await run.completeActivity(INTEGRITY_ACTIVITY.rehashBlob, { ok: true, done: false, offset: GIB, state: 's', etag: '"e1"', sizeBytes: 3 * GIB });
    const changed = { ok: false, code: 'blob_changed', message: 'rewritten' };
    await run.completeActivity(INTEGRITY_ACTIVITY.rehashBlob, changed);
    expect(run.inputOf(INTEGRITY_ACTIVITY.recordReverification)).toMatchObject({ found: changed });
    expect(run.calls.filter((call) => call.name === INTEGRITY_ACTIVITY.rehashBlob)).toHaveLength(2);
  });

  it('checks nothing when the job is no longer Available', async () => {
    const run = await started();
    await run.completeActivity(INTEGRITY_ACTIVITY.loadForReverify, { ok: false, code: 'conflict', status: 'Expired' });
    expect(run.isDone).toBe(true);
    expect(run.output).toEqual({ jobId: JOB_ID, result: 'not_available' });
    expect(run.calls.map((call) => call.name)).toEqual([INTEGRITY_ACTIVITY.loadForReverify]);
  });

  it('retries a slice that failed (a dropped connection) from the same offset and state', async () => {
    const run = await started();
    await run.completeActivity(INTEGRITY_ACTIVITY.loadForReverify, { ok: true, blobPath: BLOB_PATH, sizeBytes: 2 * GIB, sha256: SHA });
    await run.completeActivity(INTEGRITY_ACTIVITY.rehashBlob, { ok: true, done: false, offset: GIB, state: 's1', etag: '"e"', sizeBytes: 2 * GIB });
    const before = run.inputOf<RehashBlobInput>(INTEGRITY_ACTIVITY.rehashBlob);
    await run.failActivity(INTEGRITY_ACTIVITY.rehashBlob, 'Read 10 of 1073741824 bytes');
    expect(run.inputOf<RehashBlobInput>(INTEGRITY_ACTIVITY.rehashBlob)).toEqual(before);
    await run.completeActivity(INTEGRITY_ACTIVITY.rehashBlob, { ok: true, done: true, sizeBytes: 2 * GIB, sha256: SHA });
    await run.completeActivity(INTEGRITY_ACTIVITY.recordReverification, { ok: true, status: 'Available' });
    expect(run.output).toEqual({ jobId: JOB_ID, result: 'Available' });
  });

  it('keeps history bounded: two events per slice (a 1 TiB backup in 4 GiB slices stays near 520 events)', async () => {
    const run = await started();
    await run.completeActivity(INTEGRITY_ACTIVITY.loadForReverify, { ok: true, blobPath: BLOB_PATH, sizeBytes: 1024 * GIB, sha256: SHA });
    await rehashInSlices(run, 1024 * GIB, 256);
    await run.completeActivity(INTEGRITY_ACTIVITY.recordReverification, { ok: true, status: 'Available' });
    const taskEvents = run.history.filter((event) => event.EventType === HistoryEventType.TaskScheduled || event.EventType === HistoryEventType.TaskCompleted);
    expect(taskEvents).toHaveLength(2 * (256 + 2));
  });
});
