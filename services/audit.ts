/** The audit trail for Auditors and Admins (the endpoint gates the roles): filtered, paged, JSON or CSV. */
import type { AuditEventView, AuditQuery } from '../shared/contracts/audit.js';
import type { Page } from '../shared/contracts/common.js';
import type { AuditFilter } from '../shared/db/store.js';
import { toCsv } from './csv.js';
import type { RequestScope } from './scope.js';
import { auditEventView } from './views.js';

export async function queryAudit(scope: RequestScope, query: AuditQuery): Promise<Page<AuditEventView>> {
  const filter: AuditFilter = {
    limit: query.limit,
    ...(query.from ? { from: new Date(query.from) } : {}),
    ...(query.to ? { to: new Date(query.to) } : {}),
    ...(query.actor ? { actor: query.actor } : {}),
    ...(query.action ? { action: query.action } : {}),
    ...(query.jobId ? { jobId: query.jobId } : {}),
    ...(query.cursor ? { cursor: query.cursor } : {}),
  };
  const page = await scope.deps.store.listAudit(filter);
  return { items: page.items.map(auditEventView), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
}

const auditColumns: ReadonlyArray<readonly [string, (event: AuditEventView) => unknown]> = [
  ['id', (e) => e.id],
  ['at', (e) => e.at],
  ['actorType', (e) => e.actorType],
  ['actorId', (e) => e.actorId],
  ['actorName', (e) => e.actorName],
  ['action', (e) => e.action],
  ['target', (e) => e.target],
  ['jobId', (e) => e.jobId],
  ['ip', (e) => e.ip],
  ['userAgent', (e) => e.userAgent],
  ['detail', (e) => e.detail],
];

/** One page of audit events as CSV, one column per AuditEvent field; `detail` as JSON text. */
export function auditCsv(events: readonly AuditEventView[]): string {
  return toCsv(events, auditColumns);
}
