/**
 * Scheduled backups. A database with a cron schedule (five fields, UTC) gets one job per slot: on each tick the
 * latest slot at or before now, if it is no older than the look-back window (so a tick that ran late, or a host
 * that was down for a while, still fills the slot; an older missed slot is skipped, not replayed).
 *
 * Never twice for one slot: the store refuses a second job for the same database and slot
 * (`createScheduledJob` → undefined), and the job id is derived from database and slot, so a tick that crashed
 * between writing the job and starting its orchestration is finished by the next tick, which finds the same job
 * still Pending and starts it (starting an existing instance is a no-op).
 */
import { createHash } from 'node:crypto';
import { CronExpressionParser } from 'cron-parser';
import { errorMessage } from '../shared/errors.js';
import type { Deps } from './deps.js';
import { copyRecipientsFor } from './encryption.js';
import { buildNewJob } from './job-rules.js';
import type { JobOrchestrations } from './orchestrations.js';
import type { AuditActor } from './retention.js';

/** How far back a slot is still filled. */
export const SCHEDULE_LOOK_BACK_MINUTES = 120;

export const SCHEDULER_ACTOR: AuditActor = { actorType: 'system', actorId: 'scheduler', actorName: null };


/**
 * The latest slot of `cron` at or before `now`, when it lies within `lookBackMinutes`; undefined otherwise.
 * Throws on an expression that is not a valid five-field cron.
 */
export function latestDueSlot(cron: string, now: Date, lookBackMinutes = SCHEDULE_LOOK_BACK_MINUTES): Date | undefined {
  const fields = cron.trim().split(/\s+/);
  if (fields.length !== 5) throw new Error(`Schedule "${cron}" is not a five-field cron expression`);
  // prev() is strictly before currentDate: one millisecond later makes a slot at exactly `now` count.
  const slot = CronExpressionParser.parse(cron, { currentDate: new Date(now.getTime() + 1), tz: 'UTC' }).prev().toDate();
  return now.getTime() - slot.getTime() <= lookBackMinutes * 60_000 ? slot : undefined;
}

/** Any fixed UUID: the namespace of scheduled job ids. */
const SCHEDULED_JOB_NAMESPACE = Buffer.from('5c1e0f7a8b9d4c2e9f3a6b7c8d9e0f1a', 'hex');

/** A name-based (version 5, SHA-1) UUID for the job filling `slot` of `databaseId`: the same on every tick. */
export function scheduledJobId(databaseId: string, slot: string): string {
  const bytes = createHash('sha1').update(SCHEDULED_JOB_NAMESPACE).update(`${databaseId.toLowerCase()}/${slot}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface ScheduleTickReport {
  created: { databaseId: string; jobId: string; slot: string }[];
  /** The slot had its job already (started again if it was still Pending). */
  existing: { databaseId: string; jobId: string; slot: string }[];
  skipped: { databaseId: string; reason: string }[];
  failed: { databaseId: string; error: string }[];
}

/** Creates and starts the job of every due slot. One database's failure does not stop the others. */
export async function runDueSchedules(
  deps: Pick<Deps, 'store' | 'now' | 'recoveryRecipients'>,
  orchestrations: Pick<JobOrchestrations, 'startBackupJob'>,
  options: { lookBackMinutes?: number; log?: (message: string) => void } = {},
): Promise<ScheduleTickReport> {
  const now = deps.now();
  const log = options.log ?? (() => undefined);
  const report: ScheduleTickReport = { created: [], existing: [], skipped: [], failed: [] };

  for (const database of await deps.store.listScheduledDatabases()) {
    try {
      if (!database.schedule || !database.enabled) continue;
      const slotDate = latestDueSlot(database.schedule.cron, now, options.lookBackMinutes);
      if (!slotDate) continue;
      const slot = slotDate.toISOString();
      const server = await deps.store.getServer(database.serverId);
      if (!server) {
        report.skipped.push({ databaseId: database.id, reason: 'server_not_found' });
        continue;
      }
      if (!database.policy.allowedEngines.includes(server.engine)) {
        report.skipped.push({ databaseId: database.id, reason: 'engine_not_allowed' });
        continue;
      }

      // A policy that requires encryption gets it on schedule too: to the recovery and policy keys (no requester).
      const scheduled = database.schedule.options;
      const jobOptions: typeof scheduled = database.policy.encryption === 'required' ? { ...scheduled, encryption: 'age' } : scheduled;
      const encryptionRecipients = await copyRecipientsFor(deps, {
        encryption: jobOptions.encryption === 'age' ? 'age' : 'none',
        policy: database.policy,
        databaseName: database.name,
        requesterOid: null,
      });
      const jobId = scheduledJobId(database.id, slot);
      const newJob = buildNewJob(database, server, {
        id: jobId,
        options: jobOptions,
        encryptionRecipients,
        requester: { oid: SCHEDULER_ACTOR.actorId, upn: null },
        trigger: 'schedule',
        scheduleSlot: slot,
        createdAt: now,
      });
      const job = await deps.store.createScheduledJob(
        { ...newJob, scheduleSlot: slot },
        {
          ...SCHEDULER_ACTOR,
          action: 'job.requested',
          target: `job/${jobId}`,
          jobId,
          detail: { trigger: 'schedule', slot, cron: database.schedule.cron, databaseId: database.id, serverId: server.id },
          at: now,
        },
      );
      if (job) {
        await orchestrations.startBackupJob(jobId);
        report.created.push({ databaseId: database.id, jobId, slot });
        log(`Scheduled job ${jobId} created for database ${database.id}, slot ${slot}`);
        continue;
      }
      const existing = await deps.store.getJob(jobId);
      if (existing?.status === 'Pending') await orchestrations.startBackupJob(jobId);
      report.existing.push({ databaseId: database.id, jobId, slot });
    } catch (error) {
      report.failed.push({ databaseId: database.id, error: errorMessage(error) });
      log(`Schedule of database ${database.id} failed: ${errorMessage(error)}`);
    }
  }
  return report;
}
