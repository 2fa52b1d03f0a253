/**
 * The Function App's trace export (issue 14): with host.json `telemetryMode: "OpenTelemetry"` the host sends its
 * own telemetry as OpenTelemetry, and the worker's spans (shared/telemetry.ts) go to Application Insights through
 * the Azure Monitor exporter, only when APPLICATIONINSIGHTS_CONNECTION_STRING is set (Bicep sets it). Local auth
 * is off on the Application Insights resource, so the exporter authenticates with the app's managed identity.
 */
import { DefaultAzureCredential } from '@azure/identity';
import { AzureMonitorTraceExporter } from '@azure/monitor-opentelemetry-exporter';
import { setupTracing } from '../shared/telemetry.js';

const connectionString = process.env.APPLICATIONINSIGHTS_CONNECTION_STRING;
if (connectionString) {
  const entraAuth = /Authorization=AAD/i.test(process.env.APPLICATIONINSIGHTS_AUTHENTICATION_STRING ?? '');
  setupTracing({ exporter: new AzureMonitorTraceExporter({ connectionString, ...(entraAuth ? { credential: new DefaultAzureCredential() } : {}) }) });
}
