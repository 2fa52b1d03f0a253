/**
 * A sanitized copy, as a backup the upload pipeline can take like any other:
 *
 *   restore the source into scratch → plan (fail on unknown or uncovered columns) → remember keyed digests of
 *   the originals → mask in one transaction → verify (no original left, emptied tables empty) → count rows →
 *   back up the scratch database
 *
 * The scratch database is dropped on every path: here when a step fails, by the returned backup's cleanup
 * otherwise (the job runner calls it whatever the upload did). Nothing reaches the upload before verification
 * passed.
 */
import { randomBytes } from 'node:crypto';
import { type MaskingRuleSet, onlyExcludesData } from '../../shared/contracts/masking.js';
import { errorMessage } from '../../shared/errors.js';
import type { EngineBackup } from '../engines/types.js';
import { JobFailure } from '../errors.js';
import type { Logger } from '../logger.js';
import { type MaskingPlan, planMasking, qualified } from './plan.js';
import { keyedDigest, newMaskingKey, scratchName } from './scratch.js';
import type { ScratchDriver } from './types.js';

export interface SanitizedBackup extends EngineBackup {
  /** `scratch`: restored, masked and verified; `exclude-table-data`: dumped from the source without those rows. */
  method: 'scratch' | 'exclude-table-data';
}

export interface SanitizeJob {
  jobId: string;
  databaseName: string;
  masking: MaskingRuleSet;
}

const defaultSchema = { postgres: 'public', sqlserver: 'dbo' } as const;

/** Fails unless every masked column lost every original value and every emptied table is empty. */
export async function verifyMasked(driver: ScratchDriver, scratch: string, plan: MaskingPlan, originals: Map<string, Set<string>>, digestKey: Buffer) {
  const problems: string[] = [];
  for (const { column } of plan.columns) {
    const name = qualified(column.schema, column.table, column.column);
    const before = originals.get(name)!;
    const leaked = (await driver.distinctValues(scratch, column)).filter((value) => before.has(keyedDigest(digestKey, value))).length;
    if (leaked > 0) problems.push(`${name} still holds ${leaked} original value(s)`);
  }
  const counts = await driver.countRows(scratch);
  for (const t of plan.tables) {
    const rows = counts[`${t.schema}.${t.table}`];
    if (rows !== 0) problems.push(`${qualified(t.schema, t.table)} (${t.strategy}) has ${rows ?? 'unknown'} rows`);
  }
  if (problems.length > 0) throw new JobFailure('sanitize_verify_failed', `The sanitized copy failed verification: ${problems.join('; ')}`);
  return counts;
}

export async function sanitizedBackup(
  job: SanitizeJob,
  driver: ScratchDriver,
  options: { signal: AbortSignal; attemptId: string; logger: Logger },
): Promise<SanitizedBackup> {
  if (onlyExcludesData(job.masking) && driver.sourceColumns && driver.backupSourceExcludingData) {
    // Nothing to rewrite, only rows to leave out: no scratch copy needed. The sensitive-column check still runs.
    const plan = planMasking(job.masking, await driver.sourceColumns(job.databaseName), defaultSchema[driver.engine]);
    const backup = await driver.backupSourceExcludingData(job.databaseName, plan.tables, { ...options, jobId: job.jobId });
    options.logger.info({ maskingVersion: job.masking.version, tables: plan.tables.length }, 'dumping without the excluded tables\' data');
    return { ...backup, method: 'exclude-table-data' };
  }
  const scratch = scratchName(driver.prefix, job.jobId, options.attemptId);
  const log = options.logger.child({ scratch, maskingVersion: job.masking.version });
  const drop = () =>
    driver.drop(scratch).then(
      () => log.info('scratch database dropped'),
      (error: unknown) => log.error({ error: errorMessage(error) }, 'could not drop the scratch database; it is dropped at the next start-up'),
    );
  try {
    await driver.restoreFromSource(job.databaseName, scratch, options.signal);
    log.info('source restored into scratch');
    const plan = planMasking(job.masking, await driver.columns(scratch), defaultSchema[driver.engine]);
    // The verifier keeps keyed digests of the originals, never the values, under a key of its own.
    const digestKey = randomBytes(32);
    const originals = new Map<string, Set<string>>();
    for (const { column } of plan.columns) {
      const values = await driver.distinctValues(scratch, column);
      originals.set(qualified(column.schema, column.table, column.column), new Set(values.map((v) => keyedDigest(digestKey, v))));
    }
    await driver.applyMasking(scratch, plan, newMaskingKey(), options.signal);
    const tableRowCounts = await verifyMasked(driver, scratch, plan, originals, digestKey);
    log.info({ columns: plan.columns.length, tables: plan.tables.length, statements: plan.sql.length }, 'masking applied and verified');
    const backup = await driver.backup(scratch, { signal: options.signal, attemptId: options.attemptId, jobId: job.jobId });
    return {
      ...backup,
      method: 'scratch',
      tableRowCounts,
      cleanup: async () => {
        await backup.cleanup().finally(drop);
      },
    };
  } catch (error) {
    await drop();
    throw error;
  }
}
