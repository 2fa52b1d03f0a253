/**
 * What a service function gets for one request: the process's dependencies, who is calling and from where,
 * and the job orchestrations (the Durable client of this invocation).
 */
import type { Principal, RequestOrigin } from '../shared/auth/principal.js';
import type { AuditEntry } from '../shared/db/store.js';
import type { Deps } from './deps.js';
import type { JobOrchestrations } from './orchestrations.js';

export interface RequestScope {
  deps: Deps;
  principal: Principal;
  origin: RequestOrigin;
  readonly orchestrations: JobOrchestrations;
}

/** The actor half of an audit row: who (user or application), by which name, from which address. */
export function auditActor(scope: Pick<RequestScope, 'principal' | 'origin'>): Omit<AuditEntry, 'action' | 'target'> {
  const { principal, origin } = scope;
  return {
    actorType: principal.isApplication ? 'app' : 'user',
    actorId: principal.oid,
    actorName: principal.upn ?? principal.displayName ?? principal.clientId ?? null,
    ip: origin.ip ?? null,
    userAgent: origin.userAgent ?? null,
  };
}
