import { z } from 'zod';
import { BackupEngine, isoDateTime, uuid } from './common.js';
import { AgeRecipient } from './encryption.js';
import { BackupOptions } from './jobs.js';
import { MaskingRuleSet } from './masking.js';

/**
 * The Service Bus message that asks a runner for one backup. Sent by the orchestration's enqueue activity
 * on the jobs topic with `messageId` = job id (duplicate detection drops re-sends) and the application
 * property `serverId` (each runner's subscription filters on it). Versioned: a runner refuses (dead-letters)
 * a version it does not know.
 */
export const BackupJobMessage = z
  .object({
    schemaVersion: z.literal(1),
    jobId: uuid,
    serverId: uuid,
    server: z.object({ name: z.string().min(1), host: z.string().min(1) }),
    databaseId: uuid,
    databaseName: z.string().min(1).max(128),
    engine: BackupEngine,
    options: BackupOptions,
    /** For `encryption: age`: the public keys the copy is encrypted to (never a private key). */
    ageRecipients: z.array(AgeRecipient).min(1).max(64).optional(),
    /** Where the runner must write; the write SAS it gets is valid for exactly this path. */
    blobPath: z.string().min(1),
    requestedAt: isoDateTime,
    /** The orchestration gives up on the job after this instant; a runner should not start past it. */
    runDeadline: isoDateTime,
    /** Present for a sanitized copy: the runner masks a scratch restore with these rules (a runner that predates
     * the field refuses the message, as it should: it cannot make the copy safe). */
    masking: MaskingRuleSet.optional(),
  })
  .strict();
export type BackupJobMessage = z.infer<typeof BackupJobMessage>;

/**
 * The message that asks a runner to restore-rehearse an Available backup (issue 11). `messageId` = rehearsal id
 * (the backup's job id was already used by its backup message). A runner that predates this variant fails the
 * strict BackupJobMessage parse on `kind` and dead-letters it, rather than backing anything up.
 */
export const RehearsalJobMessage = z
  .object({
    schemaVersion: z.literal(1),
    kind: z.literal('rehearsal'),
    rehearsalId: uuid,
    /** The Available backup job to rehearse; its facts (digest, row counts) come with the read link. */
    jobId: uuid,
    serverId: uuid,
    engine: BackupEngine,
    requestedAt: isoDateTime,
  })
  .strict();
export type RehearsalJobMessage = z.infer<typeof RehearsalJobMessage>;

/** Anything on the jobs topic: a backup (no `kind`, as runners before rehearsals expect) or a rehearsal. */
export const JobMessage = z.union([RehearsalJobMessage, BackupJobMessage]);
export type JobMessage = z.infer<typeof JobMessage>;

/** The schema a message must meet, chosen by its `kind`, so that a refusal names the field at fault. */
export function jobMessageSchemaOf(value: unknown): typeof RehearsalJobMessage | typeof BackupJobMessage {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'rehearsal' ? RehearsalJobMessage : BackupJobMessage;
}

export const isRehearsalMessage = (message: JobMessage): message is RehearsalJobMessage => 'kind' in message && message.kind === 'rehearsal';

/** Service Bus message id: the job id for a backup, the rehearsal id for a rehearsal. */
export const jobMessageId = (message: JobMessage): string => (isRehearsalMessage(message) ? message.rehearsalId : message.jobId);

export const JOB_MESSAGE_SUBJECT = 'backup-job';
export const REHEARSAL_MESSAGE_SUBJECT = 'restore-rehearsal';
export const SERVER_ID_PROPERTY = 'serverId';
