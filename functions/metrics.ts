/**
 * Prometheus metrics of the control plane (Auditor or Admin: a scraper uses an app registration granted the
 * Auditor app role, with client credentials). See services/metrics.ts for what is measured.
 */
import { renderMetrics } from '../services/metrics.js';
import { endpoint } from './endpoint.js';
import { httpRoute } from './registry.js';

export const getMetrics = endpoint({
  summary: 'Control-plane metrics in Prometheus text format (jobs by status, bytes stored, last good backup per database, RPO, SAS and integrity counters, durations)',
  access: { anyOf: ['Auditor', 'Admin'] },
  responses: [{ status: 200, description: 'Prometheus text exposition format 0.0.4', contentType: 'text/plain' }],
  async handle({ scope }) {
    const metrics = await renderMetrics(scope.deps);
    return { status: 200, body: metrics.body, headers: { 'content-type': metrics.contentType } };
  },
});

httpRoute({ name: 'metrics', route: 'metrics', methods: ['GET'], handler: getMetrics });
