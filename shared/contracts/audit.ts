import { z } from 'zod';
import { Cursor, PageLimit, isoDateTime, uuid } from './common.js';

/** Every audited step. Job transitions are `job.<status>`; SAS issuance and refusals have their own. */
export const auditActions = [
  'server.created',
  'server.updated',
  'server.deleted',
  'database.created',
  'database.updated',
  'database.deleted',
  'job.requested',
  'job.queued',
  'job.running',
  'job.verifying',
  'job.available',
  'job.expired',
  'job.failed',
  'job.cancelled',
  'job.awaiting_approval',
  'job.approved',
  'job.rejected',
  'job.approval_denied',
  'job.cancel_requested',
  'job.delete_requested',
  'job.progress',
  'sas.download_issued',
  'sas.download_denied',
  'sas.upload_issued',
  'runner.denied',
  // Re-verification outcomes: the audit row is the event a notifier reads (by cursor over the audit trail).
  'integrity.verify_requested',
  'integrity.verified',
  'integrity.failed',
  'rpo.breached',
  'rpo.recovered',
  'restore.rehearsal_requested',
  'restore.rehearsed',
  'sas.rehearsal_issued',
  'recipients.updated',
] as const;
export const AuditAction = z.enum(auditActions);
export type AuditAction = z.infer<typeof AuditAction>;

export const actorTypes = ['user', 'app', 'system'] as const;
export const ActorType = z.enum(actorTypes);
export type ActorType = z.infer<typeof ActorType>;

export const AuditQuery = z
  .object({
    from: isoDateTime.optional(),
    to: isoDateTime.optional(),
    actor: z.string().min(1).max(256).optional(),
    action: AuditAction.optional(),
    jobId: uuid.optional(),
    cursor: Cursor.optional(),
    limit: PageLimit,
    format: z.enum(['json', 'csv']).default('json'),
  })
  .strict()
  .refine((q) => !q.from || !q.to || q.from <= q.to, { path: ['from'], message: 'must not be after `to`' });
export type AuditQuery = z.infer<typeof AuditQuery>;

export const AuditEventView = z
  .object({
    id: uuid,
    at: isoDateTime,
    actorType: ActorType,
    actorId: z.string(),
    actorName: z.string().nullable(),
    action: AuditAction,
    target: z.string(),
    jobId: uuid.nullable(),
    ip: z.string().nullable(),
    userAgent: z.string().nullable(),
    detail: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'AuditEvent' });
export type AuditEventView = z.infer<typeof AuditEventView>;
