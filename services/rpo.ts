/**
 * RPO tracking. A database whose policy sets `rpoHours` must always have a good backup (Available, not
 * Corrupt) no older than that. A timer runs `checkRpo`; each breach and each recovery is recorded once
 * (compare-and-set on the database row) with its audit row, which is also the notification (`rpo.breached`,
 * `rpo.recovered`). A database never backed up counts from its registration.
 */
import type { AuditEntry, DatabaseRecord } from '../shared/db/store.js';
import { errorMessage } from '../shared/errors.js';
import type { Deps } from './deps.js';
import { lastGoodBackups } from './metrics.js';

export const RPO_CHECKER: Pick<AuditEntry, 'actorType' | 'actorId' | 'actorName'> = {
  actorType: 'system',
  actorId: 'rpo-check',
  actorName: null,
};

export interface RpoReport {
  checked: number;
  breached: string[];
  recovered: string[];
  failed: Array<{ databaseId: string; error: string }>;
}

/** When the database's RPO is (or would be) breached: the last good backup (or registration) plus the RPO. */
export function rpoDeadline(database: DatabaseRecord, lastGoodAt: Date | undefined): Date | undefined {
  if (database.policy.rpoHours === undefined) return undefined;
  const reference = lastGoodAt ?? database.createdAt;
  return new Date(reference.getTime() + database.policy.rpoHours * 3_600_000);
}

export async function checkRpo(deps: Pick<Deps, 'store' | 'now'>, options: { log?: (line: string) => void } = {}): Promise<RpoReport> {
  const now = deps.now();
  const [databases, tallies] = await Promise.all([deps.store.listAllDatabases(), deps.store.tallyJobs()]);
  const lastGood = lastGoodBackups(tallies);
  const report: RpoReport = { checked: 0, breached: [], recovered: [], failed: [] };
  for (const database of databases) {
    const lastGoodAt = lastGood.get(database.id);
    const deadline = database.enabled ? rpoDeadline(database, lastGoodAt) : undefined;
    const breachedNow = deadline !== undefined && deadline < now;
    if (deadline !== undefined) report.checked += 1;
    if (breachedNow === (database.rpoBreachedAt !== null)) continue;
    const detail = {
      databaseName: database.name,
      rpoHours: database.policy.rpoHours ?? null,
      lastGoodBackupAt: lastGoodAt?.toISOString() ?? null,
    };
    const audit = (action: 'rpo.breached' | 'rpo.recovered'): AuditEntry => ({
      ...RPO_CHECKER,
      action,
      target: `database/${database.id}`,
      detail,
      at: now,
    });
    try {
      if (breachedNow) {
        if (await deps.store.setRpoBreach(database.id, deadline, audit('rpo.breached'))) report.breached.push(database.id);
        options.log?.(`RPO breached for database ${database.id} (${database.name}): last good backup ${detail.lastGoodBackupAt ?? 'never'}, RPO ${detail.rpoHours} h`);
      } else {
        if (await deps.store.setRpoBreach(database.id, null, audit('rpo.recovered'))) report.recovered.push(database.id);
        options.log?.(`RPO met again for database ${database.id} (${database.name})`);
      }
    } catch (error) {
      report.failed.push({ databaseId: database.id, error: errorMessage(error) });
    }
  }
  return report;
}
