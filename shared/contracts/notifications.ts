/**
 * Notifications: which audited steps people hear about, and the event they get. The audit row is the event;
 * the store writes an outbox row for each notifiable action in the audit row's transaction, and the notifier
 * (services/notifications.ts) delivers it as a CloudEvent to Event Grid and as JSON to webhooks.
 */
import { z } from 'zod';
import { isoDateTime, uuid } from './common.js';

/**
 * Audit actions that become notifications. Strings rather than `AuditAction`s so that an action another part
 * adds later (approval, rehearsal, integrity) is listed here once and takes effect when it exists.
 */
export const notifiableActions: ReadonlySet<string> = new Set([
  'job.available',
  'job.failed',
  'job.awaiting_approval',
  'integrity.failed',
  'restore.rehearsed',
  'rpo.breached',
  'rpo.recovered',
]);

/** Who a notification is for: the person who asked (`requester`) or the operators' channel. */
export const NotificationAudience = z.enum(['requester', 'operators']);
export type NotificationAudience = z.infer<typeof NotificationAudience>;

/** The CloudEvents 1.0 envelope's data, also the body of a webhook call (with `text` for chat tools). */
export const NotificationEvent = z.object({
  /** CloudEvents `type`, e.g. `dbdist.job.available`. */
  type: z.string(),
  /** The audit event's id: receivers deduplicate on it (delivery is at least once). */
  id: uuid,
  at: isoDateTime,
  audience: NotificationAudience,
  /** One line a person can read (Teams Workflows and Slack show `text`). */
  text: z.string(),
  jobId: uuid.nullable(),
  databaseId: z.string().nullable(),
  databaseName: z.string().nullable(),
  requester: z.object({ oid: z.string(), upn: z.string().nullable() }).nullable(),
  detail: z.record(z.string(), z.unknown()),
});
export type NotificationEvent = z.infer<typeof NotificationEvent>;
