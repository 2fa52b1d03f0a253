/**
 * The Function App module against the code's contract: every setting shared/config.ts requires is set, and the
 * app is a Flex Consumption Node app that reaches everything with its managed identity.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { controlPlaneSettingNames, controlPlaneSettingsSchema } from '../../shared/config.js';
import {
  type BicepFile,
  type BicepResource,
  declarations,
  descendants,
  infraDir,
  literal,
  objectProperties,
  parameterDefault,
  parseBicep,
  property,
  resources,
} from './bicep.js';

let file: BicepFile;
let site: BicepResource;
let appSettings: Map<string, ReturnType<typeof objectProperties>[number]['value']>;

beforeAll(async () => {
  file = await parseBicep(join(infraDir, 'modules', 'functionapp.bicep'));
  const all = resources(file);
  site = all.find((r) => r.type === 'Microsoft.Web/sites')!;
  const config = all.find((r) => r.type === 'Microsoft.Web/sites/config' && literal(property(r.body, 'name')) === 'appsettings');
  appSettings = new Map(objectProperties(property(config?.body ?? null, 'properties')).map((p) => [p.key, p.value]));
});

/** Settings the schema cannot do without: parse nothing and collect the keys it reports missing. */
function requiredSettingNames(): string[] {
  const result = controlPlaneSettingsSchema.safeParse({});
  if (result.success) return [];
  return result.error.issues.filter((issue) => issue.path.length === 1).map((issue) => String(issue.path[0]));
}

describe('Function App settings', () => {
  it('set every control-plane setting without a default, to a non-empty value', () => {
    const required = requiredSettingNames();
    // Guard against a vacuous pass: the schema does have required settings, all of them known names.
    expect(required.length).toBeGreaterThan(0);
    expect(controlPlaneSettingNames).toEqual(expect.arrayContaining(required));

    const missing = required.filter((name) => !appSettings.has(name));
    expect(missing).toEqual([]);
    const blank = required.filter((name) => literal(appSettings.get(name)) === '');
    expect(blank).toEqual([]);
  });

  it('set every control-plane setting, defaults included, so operators see them all in one place', () => {
    expect(controlPlaneSettingNames.filter((name) => !appSettings.has(name))).toEqual([]);
  });

  it('write booleans in the lower case the config schema accepts (ARM string(bool) gives "True")', () => {
    const stringified = [...appSettings].filter(([, value]) => {
      const fn = value?.type === 'call_expression' ? value.childForFieldName('function')?.text : undefined;
      const arg = value?.childForFieldName('arguments')?.namedChildren[0]?.text ?? '';
      const boolParams = declarations(file, 'parameter_declaration')
        .filter((p) => p.type === 'bool')
        .map((p) => p.name);
      return fn === 'string' && boolParams.includes(arg);
    });
    expect(stringified.map(([name]) => name)).toEqual([]);
  });

  it('connect the host and Durable to storage by identity, with no connection string', () => {
    expect(literal(appSettings.get('AzureWebJobsStorage__accountName'))).toBeUndefined(); // a parameter, not a literal
    expect(appSettings.has('AzureWebJobsStorage__accountName')).toBe(true);
    expect(literal(appSettings.get('AzureWebJobsStorage__credential'))).toBe('managedidentity');
    expect(appSettings.has('AzureWebJobsStorage')).toBe(false);
    expect(literal(appSettings.get('APPLICATIONINSIGHTS_AUTHENTICATION_STRING'))).toBe('Authorization=AAD');
  });

  it('leave out what Flex Consumption sets itself (it rejects these settings)', () => {
    const platformOwned = ['FUNCTIONS_WORKER_RUNTIME', 'FUNCTIONS_EXTENSION_VERSION', 'WEBSITE_NODE_DEFAULT_VERSION', 'WEBSITE_RUN_FROM_PACKAGE', 'WEBSITE_CONTENTSHARE'];
    expect(platformOwned.filter((name) => appSettings.has(name))).toEqual([]);
  });
});

describe('Function App', () => {
  it('runs Node 20+ on the Flex Consumption plan', () => {
    const plan = resources(file).find((r) => r.type === 'Microsoft.Web/serverfarms');
    expect(literal(property(plan!.body, 'sku.tier'))).toBe('FlexConsumption');
    expect(literal(property(plan!.body, 'sku.name'))).toBe('FC1');
    expect(literal(property(site.body, 'kind'))).toBe('functionapp,linux');
    expect(literal(property(site.body, 'properties.functionAppConfig.runtime.name'))).toBe('node');

    const versionParam = declarations(file, 'parameter_declaration').find(
      (p) => p.name === property(site.body, 'properties.functionAppConfig.runtime.version')?.text,
    );
    const allowed = versionParam!.argumentsOf('allowed').flatMap((list) => descendants(list, 'string')).map((s) => Number(literal(s)));
    expect(allowed.length).toBeGreaterThan(0);
    expect(Math.min(...allowed)).toBeGreaterThanOrEqual(20);
    expect(allowed).toContain(Number(literal(parameterDefault(versionParam!.node))));
  });

  it('has a system-assigned identity, used for the deployment package too', () => {
    expect(literal(property(site.body, 'identity.type'))).toBe('SystemAssigned');
    expect(literal(property(site.body, 'properties.functionAppConfig.deployment.storage.authentication.type'))).toBe(
      'SystemAssignedIdentity',
    );
    expect(literal(property(site.body, 'properties.httpsOnly'))).toBe(true);
  });

  it('leaves platform CORS off, so the app answers CORS from CORS_ORIGINS (platform CORS would override it)', () => {
    const cors = property(site.body, 'properties.siteConfig.cors');
    expect(cors).not.toBeNull();
    const origins = property(cors, 'allowedOrigins');
    expect(origins?.type).toBe('array');
    expect(origins?.namedChildren.filter((n) => n?.type !== 'comment')).toEqual([]);
    expect(literal(property(cors, 'supportCredentials'))).toBe(false);
    expect(appSettings.get('CORS_ORIGINS')?.text).toBe("join(corsOrigins, ',')");
  });

  it('is the azd service "api"', () => {
    const tags = property(site.body, 'tags');
    const serviceTag = descendants(tags!, 'object_property').find((p) => literal(p.namedChildren[0]) === 'azd-service-name');
    expect(literal(serviceTag?.namedChildren[1])).toBe('api');
  });
});
