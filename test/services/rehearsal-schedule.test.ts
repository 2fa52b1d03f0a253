/** The rehearseEveryDays timer (issue 11): scheduled restore rehearsal requests, on the PGlite store. */
import { randomUUID } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rehearsalTick } from '../../functions/timers.js';
import { requestDueRehearsals } from '../../services/rehearsals.js';
import type { RehearsalJobMessage } from '../../shared/contracts/messages.js';
import { seedDatabase, seedJob, startTestDeps, type SeededDatabase, type TestDeps } from '../support/deps.js';

let t: TestDeps;
const DAY = 24 * 3_600_000;

beforeAll(async () => {
  t = await startTestDeps();
});
afterAll(() => t?.close());

const at = (offsetMs: number) => {
  const when = new Date(Date.now() + offsetMs);
  t.deps.now = () => when;
  return when;
};

const rehearsalsSentFor = (jobId: string) =>
  t.queue.enqueued.filter((message): message is RehearsalJobMessage => 'kind' in message && message.kind === 'rehearsal' && message.jobId === jobId);

const requestsAuditedFor = async (jobId: string) => (await t.deps.store.listAudit({ action: 'restore.rehearsal_requested', jobId, limit: 100 })).items;

async function runTimer(): Promise<string[]> {
  const lines: string[] = [];
  const context = new InvocationContext({ functionName: 'rehearsal-tick', logHandler: (_level, ...args) => lines.push(args.map(String).join(' ')) });
  await rehearsalTick({ isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } }, context);
  return lines;
}

const available = (seeded: SeededDatabase) => seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available' });

describe('scheduled restore rehearsals (rehearsal-tick)', () => {
  it("requests one rehearsal of the newest Available backup when due, audited as the scheduler's, and not again within the period", async () => {
    const seeded = await seedDatabase(t.deps.store, { policy: { rehearseEveryDays: 7 } });
    const older = await available(seeded);
    const newest = await available(seeded);

    at(0);
    const lines = await runTimer();
    expect(lines.join('\n')).toMatch(/Rehearsals: \d+ databases checked, \d+ requested/);
    expect(rehearsalsSentFor(newest.id)).toHaveLength(1);
    expect(rehearsalsSentFor(newest.id)[0]).toMatchObject({ serverId: seeded.server.id, engine: seeded.server.engine });
    expect(rehearsalsSentFor(older.id)).toEqual([]);
    const audited = await requestsAuditedFor(newest.id);
    expect(audited).toHaveLength(1);
    expect(audited[0]).toMatchObject({ actorType: 'system', actorId: 'rehearsal-scheduler', detail: { trigger: 'schedule', rehearsalId: rehearsalsSentFor(newest.id)[0]!.rehearsalId } });

    // A retried tick, and one six days later: the request is still within the period.
    await runTimer();
    at(6 * DAY);
    await requestDueRehearsals(t.deps);
    expect(rehearsalsSentFor(newest.id)).toHaveLength(1);
    expect(await requestsAuditedFor(newest.id)).toHaveLength(1);

    // No outcome came back within the period: requested again once it has passed.
    at(7 * DAY + 60_000);
    const report = await requestDueRehearsals(t.deps);
    expect(report.requested.map((r) => r.jobId)).toContain(newest.id);
    expect(rehearsalsSentFor(newest.id)).toHaveLength(2);
  });

  it('requests nothing while the last rehearsal is within the period, and once it is older', async () => {
    const seeded = await seedDatabase(t.deps.store, { policy: { rehearseEveryDays: 3 } });
    const job = await available(seeded);
    const rehearsedAt = at(0);
    await t.deps.store.recordRestoreRehearsal(
      job.id,
      { at: rehearsedAt, durationMs: 1000, result: 'passed', error: null },
      { actorType: 'app', actorId: 'runner-1', action: 'restore.rehearsed', target: `job/${job.id}`, jobId: job.id, at: rehearsedAt },
    );

    at(2 * DAY);
    expect((await requestDueRehearsals(t.deps)).requested.map((r) => r.jobId)).not.toContain(job.id);
    expect(rehearsalsSentFor(job.id)).toEqual([]);

    at(3 * DAY + 60_000);
    expect((await requestDueRehearsals(t.deps)).requested.map((r) => r.jobId)).toContain(job.id);
    expect(rehearsalsSentFor(job.id)).toHaveLength(1);
  });

  it('skips an age-encrypted newest backup with a log line, and ignores databases without rehearseEveryDays', async () => {
    const ageDatabase = await seedDatabase(t.deps.store, { policy: { rehearseEveryDays: 1 } });
    const ageCopy = await seedJob(t.deps.store, ageDatabase, {
      requesterOid: randomUUID(),
      status: 'Available',
      encryptionRecipients: [{ recipient: `age1${'q'.repeat(58)}`, fingerprint: 'f'.repeat(64), role: 'requester' }],
    });
    const onRequestOnly = await seedDatabase(t.deps.store);
    const plain = await available(onRequestOnly);

    at(0);
    const lines: string[] = [];
    const report = await requestDueRehearsals(t.deps, { log: (line) => lines.push(line) });
    expect(report.skippedAge).toContain(ageCopy.id);
    expect(lines.join('\n')).toContain(`newest backup ${ageCopy.id} is age-encrypted`);
    expect(rehearsalsSentFor(ageCopy.id)).toEqual([]);
    expect(await requestsAuditedFor(ageCopy.id)).toEqual([]);
    expect(rehearsalsSentFor(plain.id)).toEqual([]);
    expect(await requestsAuditedFor(plain.id)).toEqual([]);
  });
});
