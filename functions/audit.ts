/** The audit trail (Auditor or Admin), as JSON pages or CSV. */
import { AuditQuery } from '../shared/contracts/audit.js';
import { AuditPage } from '../shared/openapi.js';
import * as audit from '../services/audit.js';
import { endpoint } from './endpoint.js';
import { httpRoute } from './registry.js';
import { NEXT_CURSOR_HEADER, ok } from './responses.js';

export { NEXT_CURSOR_HEADER };

export const queryAudit = endpoint({
  summary: 'Audit events, newest first, filtered by time, actor, action or job; `format=csv` for a spreadsheet',
  access: { anyOf: ['Auditor', 'Admin'] },
  query: AuditQuery,
  responses: [
    { status: 200, description: 'One page of audit events', schema: AuditPage },
    {
      status: 200,
      description: `With format=csv: one page as RFC 4180 CSV with a header row; the next page's cursor is in ${NEXT_CURSOR_HEADER}`,
      contentType: 'text/csv',
    },
  ],
  async handle({ scope, query }) {
    const page = await audit.queryAudit(scope, query);
    if (query.format === 'json') return ok(page);
    return {
      status: 200,
      body: audit.auditCsv(page.items),
      headers: {
        'content-type': 'text/csv; charset=utf-8; header=present',
        'content-disposition': 'attachment; filename="audit.csv"',
        ...(page.nextCursor ? { [NEXT_CURSOR_HEADER]: page.nextCursor } : {}),
      },
    };
  },
});

httpRoute({ name: 'audit-query', route: 'audit', methods: ['GET'], handler: queryAudit });
