/** The stalled-request sweep on the PGlite store (test/support/deps.ts). */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrchestrationState } from '../../services/orchestrations.js';
import { STALLED_PENDING_GRACE_MINUTES, resumeStalledJobs } from '../../services/recovery.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';

let t: TestDeps;
let seeded: SeededDatabase;

beforeAll(async () => {
  t = await startTestDeps();
  seeded = await seedDatabase(t.deps.store);
});
afterAll(() => t?.close());

const MINUTE = 60_000;
const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * MINUTE);

/** Orchestrations as the test decides them; unknown ids are NotFound. Records starts. */
function orchestrationsIn(states: Record<string, OrchestrationState>, failStart: string[] = []) {
  const started: string[] = [];
  return {
    started,
    getState: async (jobId: string): Promise<OrchestrationState> => states[jobId] ?? 'NotFound',
    startBackupJob: async (jobId: string) => {
      if (failStart.includes(jobId)) throw new Error('task hub unavailable');
      started.push(jobId);
    },
  };
}

describe('resumeStalledJobs', () => {
  it('starts the orchestration of a Pending job left behind by a crash, and leaves everything else alone', async () => {
    const requesterOid = randomUUID();
    const stalled = await seedJob(t.deps.store, seeded, { requesterOid, createdAt: minutesAgo(STALLED_PENDING_GRACE_MINUTES + 5) });
    const justWritten = await seedJob(t.deps.store, seeded, { requesterOid, createdAt: minutesAgo(1) });
    const racing = await seedJob(t.deps.store, seeded, { requesterOid, createdAt: minutesAgo(60) });
    const orphaned = await seedJob(t.deps.store, seeded, { requesterOid, createdAt: minutesAgo(60) });
    const queued = await seedJob(t.deps.store, seeded, { requesterOid, status: 'Queued', createdAt: minutesAgo(60) });
    const unreachable = await seedJob(t.deps.store, seeded, { requesterOid, createdAt: minutesAgo(30) });
    const orchestrations = orchestrationsIn({ [racing.id]: 'Running', [orphaned.id]: 'Completed' }, [unreachable.id]);

    const report = await resumeStalledJobs(t.deps, orchestrations);

    expect(orchestrations.started).toEqual([stalled.id]);
    expect(report.started).toEqual([stalled.id]);
    expect(report.orphaned).toEqual([orphaned.id]);
    expect(report.failed).toEqual([{ jobId: unreachable.id, error: 'task hub unavailable' }]);
    expect(report.examined).toBe(4);
    for (const untouched of [justWritten, queued]) expect(orchestrations.started).not.toContain(untouched.id);
  });
});
