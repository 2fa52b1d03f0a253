/** RPO breach and recovery through the timer function, on the PGlite store. */
import { randomUUID } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rpoCheck } from '../../functions/timers.js';
import { getDatabase } from '../../functions/databases.js';
import { invoke } from '../support/http.js';
import { seedDatabase, seedJob, startTestDeps, type TestDeps } from '../support/deps.js';

let t: TestDeps;
const HOUR = 3_600_000;

beforeAll(async () => {
  t = await startTestDeps();
});
afterAll(() => t?.close());

async function runTimer(at: Date): Promise<string[]> {
  t.deps.now = () => at;
  const lines: string[] = [];
  const context = new InvocationContext({ functionName: 'rpo-check', logHandler: (_level, ...args) => lines.push(args.map(String).join(' ')) });
  await rpoCheck({ isPastDue: false, schedule: { adjustForDST: false }, scheduleStatus: { last: '', next: '', lastUpdated: '' } }, context);
  return lines;
}

const actionsFor = async (databaseId: string) =>
  (await t.deps.store.listAudit({ limit: 100 })).items.filter((row) => row.target === `database/${databaseId}` && row.action.startsWith('rpo.')).map((row) => row.action);

describe('RPO check (timer)', () => {
  it('records a breach once when the last good backup gets too old, and the recovery once a new one is Available', async () => {
    const seeded = await seedDatabase(t.deps.store, { policy: { rpoHours: 6 } });
    const job = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available' });
    const lastGood = job.completedAt!;

    await runTimer(new Date(lastGood.getTime() + 5 * HOUR));
    expect(await actionsFor(seeded.database.id)).toEqual([]);

    const lines = await runTimer(new Date(lastGood.getTime() + 7 * HOUR));
    expect(lines.join('\n')).toMatch(/RPO breached for database .* RPO 6 h/);
    await runTimer(new Date(lastGood.getTime() + 8 * HOUR));
    expect(await actionsFor(seeded.database.id)).toEqual(['rpo.breached']);
    const breached = await t.deps.store.getDatabase(seeded.database.id);
    expect(breached?.rpoBreachedAt).toEqual(new Date(lastGood.getTime() + 6 * HOUR));

    // The single-database read shows it.
    const view = await invoke(getDatabase, { path: `servers/${seeded.server.id}/databases/${seeded.database.id}`, params: { serverId: seeded.server.id, id: seeded.database.id }, token: t.tokens.admin() });
    expect(view.json.recovery).toEqual({ lastGoodBackupAt: lastGood.toISOString(), rpoHours: 6, rpoBreachedSince: breached?.rpoBreachedAt?.toISOString() });

    const fresh = await seedJob(t.deps.store, seeded, { requesterOid: randomUUID(), status: 'Available' });
    await runTimer(new Date(fresh.completedAt!.getTime() + HOUR));
    await runTimer(new Date(fresh.completedAt!.getTime() + 2 * HOUR));
    // (The test's clock went back for the fresh job, so compare as sets.)
    expect((await actionsFor(seeded.database.id)).sort()).toEqual(['rpo.breached', 'rpo.recovered']);
    expect((await t.deps.store.getDatabase(seeded.database.id))?.rpoBreachedAt).toBeNull();
    // Both steps wait in the outbox for the notifier.
    const outbox = await t.deps.store.listPendingNotifications(new Date(Date.now() + 30 * 24 * HOUR), 500);
    expect(outbox.filter((item) => item.event.target === `database/${seeded.database.id}`).map((item) => item.event.action).sort()).toEqual(['rpo.breached', 'rpo.recovered']);
  });

  it('counts a database never backed up from its registration, and ignores databases without an RPO', async () => {
    const withRpo = await seedDatabase(t.deps.store, { policy: { rpoHours: 1 } });
    const without = await seedDatabase(t.deps.store);
    await runTimer(new Date(withRpo.database.createdAt.getTime() + 2 * HOUR));
    expect(await actionsFor(withRpo.database.id)).toEqual(['rpo.breached']);
    expect(await actionsFor(without.database.id)).toEqual([]);
  });
});
