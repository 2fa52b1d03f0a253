/**
 * The runner's Prometheus metrics (issue 14): an optional `/metrics` endpoint on `metrics.port`. Its own
 * prom-client Registry, so two runners in one process (tests) never share counters.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Settlement } from './job-runner.js';

/** What became of one backup attempt, from its settlement. */
export function jobOutcome(settlement: Settlement): string {
  if (settlement.action === 'abandon') return 'abandoned';
  if (settlement.action === 'deadLetter') return 'dead_lettered';
  if (settlement.reason.startsWith('uploaded')) return 'uploaded';
  if (settlement.reason.startsWith('failed')) return 'failed';
  return 'stopped';
}

export class RunnerMetrics {
  readonly registry = new Registry();
  readonly inFlightJobs = new Gauge({ name: 'dbdist_runner_jobs_in_flight', help: 'Backup jobs running now', registers: [this.registry] });
  readonly bytesRead = new Counter({ name: 'dbdist_runner_engine_read_bytes_total', help: 'Bytes read from the database engines', registers: [this.registry] });
  readonly bytesUploaded = new Counter({ name: 'dbdist_runner_uploaded_bytes_total', help: 'Bytes committed to Blob Storage', registers: [this.registry] });
  readonly lastSuccess = new Gauge({
    name: 'dbdist_runner_last_success_timestamp_seconds',
    help: 'When the last backup of a server was uploaded (Unix seconds)',
    labelNames: ['server'] as const,
    registers: [this.registry],
  });
  readonly engineErrors = new Counter({
    name: 'dbdist_runner_engine_errors_total',
    help: 'Failed backup attempts reported to the API, by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly jobs = new Counter({ name: 'dbdist_runner_jobs_total', help: 'Backup attempts by outcome', labelNames: ['outcome'] as const, registers: [this.registry] });

  settled(settlement: Settlement): void {
    this.jobs.inc({ outcome: jobOutcome(settlement) });
  }
}

export interface MetricsServer {
  /** The bound port (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

/** Serves `GET /metrics` in Prometheus text format; anything else is 404. */
export async function startMetricsServer(metrics: RunnerMetrics, { host, port }: { host: string; port: number }): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => response.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
