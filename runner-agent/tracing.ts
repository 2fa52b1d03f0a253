/** The runner's trace export: OTLP/HTTP when `telemetry.otlpEndpoint` is set, otherwise no tracing at all. */
import { setupTracing } from '../shared/telemetry.js';
import type { RunnerConfig } from './config.js';

export async function startRunnerTracing(telemetry: RunnerConfig['telemetry']): Promise<() => Promise<void>> {
  if (!telemetry.otlpEndpoint) return async () => undefined;
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  return setupTracing({ exporter: new OTLPTraceExporter({ url: telemetry.otlpEndpoint }) });
}
