/** Probes for the platform: liveness (the process answers) and readiness (dependencies answer). No token. */
import { HealthStatus } from '../shared/openapi.js';
import { getDeps } from '../services/deps.js';
import { checkReadiness } from '../services/health.js';
import { AppError } from '../shared/errors.js';
import { endpoint } from './endpoint.js';
import { httpRoute } from './registry.js';
import { ok } from './responses.js';

export const live = endpoint({
  summary: 'Liveness: the process answers',
  access: 'anonymous',
  responses: [{ status: 200, description: 'Alive', schema: HealthStatus }],
  async handle() {
    return ok({ status: 'ok' });
  },
});

export const ready = endpoint({
  summary: 'Readiness: store, Blob Storage and Service Bus answer (503 names what did not)',
  access: 'anonymous',
  responses: [{ status: 200, description: 'Ready', schema: HealthStatus }],
  async handle({ context }) {
    const readiness = await checkReadiness(getDeps);
    const failed = readiness.checks.filter((check) => !check.ok);
    if (failed.length === 0) return ok({ status: 'ok', checks: readiness.checks.map(({ name }) => ({ name, ok: true })) });
    // The reasons go to the log only: this endpoint answers anyone.
    for (const check of failed) context.warn(`Readiness check ${check.name} failed: ${check.error ?? 'unknown error'}`);
    const names = failed.map((check) => check.name);
    throw new AppError('dependency_unavailable', `Not ready: ${names.join(', ')} did not answer.`, {
      details: { failedChecks: names, checks: readiness.checks.map(({ name, ok }) => ({ name, ok })) },
    });
  },
});

httpRoute({ name: 'health-live', route: 'health/live', methods: ['GET'], handler: live });
httpRoute({ name: 'health-ready', route: 'health/ready', methods: ['GET'], handler: ready });
