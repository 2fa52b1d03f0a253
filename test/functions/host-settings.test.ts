import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { routePrefix } from '../../functions/registry.js';
import { controlPlaneSettingNames, controlPlaneSettingsSchema, parseSettings } from '../../shared/config.js';

const readJson = (path: string) => JSON.parse(readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8'));

/** Settings the Functions host itself reads; everything else in the sample is ours. */
const hostSettingNames = ['FUNCTIONS_WORKER_RUNTIME', 'AzureWebJobsStorage'];

describe('local.settings.sample.json', () => {
  const sample = readJson('local.settings.sample.json') as { IsEncrypted: boolean; Values: Record<string, string> };

  it('lists exactly the control-plane settings (plus the host’s own)', () => {
    const ours = Object.keys(sample.Values).filter((name) => !hostSettingNames.includes(name));
    expect(ours.sort()).toEqual([...controlPlaneSettingNames].sort());
  });

  it('holds values that parse, all as strings (as app settings are)', () => {
    expect(Object.values(sample.Values).every((value) => typeof value === 'string')).toBe(true);
    const settings = parseSettings(controlPlaneSettingsSchema, sample.Values);
    expect(settings.ENTRA_AUDIENCES.length).toBeGreaterThan(0);
    expect(settings.SAS_TTL_DEFAULT_MINUTES).toBeLessThanOrEqual(settings.SAS_TTL_MAX_MINUTES);
  });
});

describe('host.json', () => {
  const host = readJson('host.json');

  it('uses extension bundle v4 (Durable Functions for Node v3 needs it) and names the task hub', () => {
    expect(host.version).toBe('2.0');
    expect(host.extensionBundle.id).toBe('Microsoft.Azure.Functions.ExtensionBundle');
    expect(host.extensionBundle.version).toMatch(/^\[4\./);
    expect(host.extensions.durableTask.hubName).toMatch(/^[A-Za-z][A-Za-z0-9]{2,49}$/);
  });

  it('sends the host telemetry as OpenTelemetry (the worker exports its spans, functions/tracing.ts)', () => {
    expect(host.telemetryMode).toBe('OpenTelemetry');
  });

  it('serves routes under the prefix the registry documents, with a bounded function timeout', () => {
    expect(host.extensions.http.routePrefix).toBe(routePrefix);
    expect(host.functionTimeout).toMatch(/^\d{2}:\d{2}:\d{2}$/);
  });
});
