/**
 * Security policies of infra/, checked on the Bicep syntax trees: identity-only access (no keys, no local
 * auth, no passwords), least-privilege role assignments, and the data-protection settings dbdist relies on.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type BicepFile,
  type BicepResource,
  declarationBody,
  declarations,
  descendants,
  infraDir,
  literal,
  objectProperties,
  parameterDefault,
  parseAllBicep,
  property,
  repoRoot,
  resolveScope,
  resolveStrings,
  resourcesOfType,
} from './bicep.js';

let files: BicepFile[];
beforeAll(async () => {
  files = await parseAllBicep();
});

const where = (r: BicepResource): string => `${r.file.name} ${r.symbol}`;
const deployed = (type: string): BicepResource[] => resourcesOfType(files, type).filter((r) => !r.existing);

/** `{ 'resource symbol': value of the property }` for every deployed resource of a type. */
function valuesOf(type: string, path: string): Record<string, unknown> {
  return Object.fromEntries(deployed(type).map((r) => [where(r), literal(property(r.body, path))]));
}

/** Built-in roles infra may grant, and the only kinds of resource each may be granted on. */
const allowedRoles: Record<string, { role: string; scopes: string[] }> = {
  'ba92f5b4-2d11-453d-a403-e96b0029c9fe': {
    role: 'Storage Blob Data Contributor',
    scopes: ['Microsoft.Storage/storageAccounts/blobServices/containers'],
  },
  'db58b8e5-c6ad-4a2a-8342-4190687cbf4a': { role: 'Storage Blob Delegator', scopes: ['Microsoft.Storage/storageAccounts'] },
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b': { role: 'Storage Blob Data Owner', scopes: ['Microsoft.Storage/storageAccounts'] },
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88': {
    role: 'Storage Queue Data Contributor',
    scopes: ['Microsoft.Storage/storageAccounts'],
  },
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3': {
    role: 'Storage Table Data Contributor',
    scopes: ['Microsoft.Storage/storageAccounts'],
  },
  'd5a91429-5739-47e2-a06b-3470a27159e7': { role: 'EventGrid Data Sender', scopes: ['Microsoft.EventGrid/topics'] },
  '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39': {
    role: 'Azure Service Bus Data Sender',
    scopes: ['Microsoft.ServiceBus/namespaces/topics'],
  },
  '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0': {
    role: 'Azure Service Bus Data Receiver',
    scopes: ['Microsoft.ServiceBus/namespaces/topics/subscriptions'],
  },
  '3913510d-42f4-4e42-8a64-420c390055eb': { role: 'Monitoring Metrics Publisher', scopes: ['Microsoft.Insights/components'] },
};

/** The role definition GUIDs an assignment grants: the last argument of subscriptionResourceId(…, roleId). */
function grantedRoleIds(assignment: BicepResource): string[] {
  const roleDefinitionId = property(assignment.body, 'properties.roleDefinitionId');
  return resolveStrings(assignment.file, roleDefinitionId?.childForFieldName('arguments')?.namedChildren.at(-1) ?? null);
}

/** The custom role definition (declared in the same file) an assignment grants, if it grants one. */
function customRoleOf(assignment: BicepResource): BicepResource | undefined {
  const id = property(assignment.body, 'properties.roleDefinitionId')?.text ?? '';
  const symbol = /^(\w+)\.id$/.exec(id)?.[1];
  return resourcesOfType(files, 'Microsoft.Authorization/roleDefinitions').find((r) => r.file === assignment.file && r.symbol === symbol);
}

describe('role assignments', () => {
  const assignments = (): BicepResource[] => deployed('Microsoft.Authorization/roleAssignments');

  it('are named guid(scope, principal, role) so redeployments find them again', () => {
    expect(assignments().length).toBeGreaterThanOrEqual(6);
    const badNames = assignments().filter((r) => {
      const name = property(r.body, 'name');
      const args = name?.childForFieldName('arguments')?.namedChildren ?? [];
      return name?.type !== 'call_expression' || name.childForFieldName('function')?.text !== 'guid' || args.length !== 3;
    });
    expect(badNames.map(where)).toEqual([]);
  });

  it('grant only the expected built-in roles, each on the narrowest kind of scope', () => {
    const grants = assignments().filter((r) => !customRoleOf(r)).flatMap((r) => {
      const roleIds = grantedRoleIds(r);
      const scope = resolveScope(r.file, property(r.body, 'scope'));
      if (roleIds.length === 0) return [`${where(r)}: role definition id not resolvable to a GUID`];
      return roleIds.map((roleId) => {
        const allowed = allowedRoles[roleId];
        if (!allowed) return `${where(r)}: role ${roleId} is not on the allowed list`;
        if (!scope || !allowed.scopes.includes(scope.type)) {
          return `${where(r)}: ${allowed.role} on ${scope?.type ?? 'an unresolved scope'}`;
        }
        return 'ok';
      });
    });
    expect(grants.filter((g) => g !== 'ok')).toEqual([]);
    expect(grants.length).toBeGreaterThanOrEqual(8);
  });

  it('grant the one custom role (manifest signing) only sign and read on keys, on the signing key itself', () => {
    const custom = assignments().filter((r) => customRoleOf(r));
    expect(custom.map(where)).toEqual(['infra/modules/keyvault.bicep signerAssignment']);
    const role = customRoleOf(custom[0]!)!;
    const permissions = property(role.body, 'properties.permissions');
    const [permission] = permissions?.namedChildren ?? [];
    const strings = (path: string) => (property(permission ?? null, path)?.namedChildren ?? []).map((node) => literal(node));
    expect(strings('actions')).toEqual([]);
    expect(strings('dataActions').sort()).toEqual(['Microsoft.KeyVault/vaults/keys/read', 'Microsoft.KeyVault/vaults/keys/sign/action']);
    expect(resolveScope(custom[0]!.file, property(custom[0]!.body, 'scope'))?.type).toBe('Microsoft.KeyVault/vaults/keys');
  });

  it('give each runner Data Receiver on its own subscription, for its own principal', () => {
    const receivers = assignments().filter((r) => grantedRoleIds(r).includes('4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'));
    expect(receivers.length).toBe(2);
    // Looped per runner: the scope is the runner's subscription and the principal the runner's own.
    const runner = receivers.find((r) => property(r.body, 'properties.principalId')?.text === 'runner.principalId');
    expect(property(runner!.body, 'scope')?.text).toBe('subscriptions[i]');
  });

  it('give the Function App Data Receiver on the runner subscriptions only (their dead-letter queues), not the topic', () => {
    const receivers = assignments().filter((r) => grantedRoleIds(r).includes('4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'));
    const controlPlane = receivers.find((r) => property(r.body, 'properties.principalId')?.text === 'principalId');
    expect(controlPlane).toBeDefined();
    expect(property(controlPlane!.body, 'scope')?.text).toBe('runnerSubscriptions[i]');
  });
});

describe('storage accounts', () => {
  it('refuse shared keys, plain HTTP, old TLS and anonymous blob access', () => {
    const accounts = deployed('Microsoft.Storage/storageAccounts');
    expect(accounts.length).toBeGreaterThanOrEqual(1);
    for (const account of accounts) {
      const settings = Object.fromEntries(
        ['allowSharedKeyAccess', 'supportsHttpsTrafficOnly', 'minimumTlsVersion', 'allowBlobPublicAccess'].map((key) => [
          key,
          literal(property(account.body, `properties.${key}`)),
        ]),
      );
      expect(settings, where(account)).toEqual({
        allowSharedKeyAccess: false,
        supportsHttpsTrafficOnly: true,
        minimumTlsVersion: 'TLS1_2',
        allowBlobPublicAccess: false,
      });
    }
  });

  it('create containers private', () => {
    const access = Object.values(valuesOf('Microsoft.Storage/storageAccounts/blobServices/containers', 'properties.publicAccess'));
    expect(access.length).toBeGreaterThan(0);
    expect(access.filter((value) => value !== 'None')).toEqual([]);
  });

  it('have a lifecycle rule deleting old blobs and blob soft delete for the backups', () => {
    const [policy] = deployed('Microsoft.Storage/storageAccounts/managementPolicies');
    const rule = property(policy?.body ?? null, 'properties.policy.rules')?.namedChildren[0] ?? null;
    expect(property(rule, 'definition.actions.baseBlob.delete.daysAfterModificationGreaterThan')).not.toBeNull();
    expect(property(rule, 'definition.filters.prefixMatch')).not.toBeNull();
    const [blobService] = deployed('Microsoft.Storage/storageAccounts/blobServices');
    expect(property(blobService?.body ?? null, 'properties.deleteRetentionPolicy.enabled')).not.toBeNull();

    // main.bicep wires them for the backup account: retention and prefix from parameters.
    const main = files.find((f) => f.path === join(infraDir, 'main.bicep'))!;
    const backup = descendants(main.root, 'module_declaration')
      .map(declarationBody)
      .find((body) => literal(property(body, 'name')) === 'backup-storage');
    expect(property(backup ?? null, 'params.deleteBlobsAfterDays')?.text).toBe('backupMaxRetentionDays');
    expect(property(backup ?? null, 'params.blobSoftDeleteDays')?.text).toBe('backupSoftDeleteDays');
  });

  it('send the backup account blob logs (read, write, delete) to Log Analytics, where downloads are joined to the audit', () => {
    const [settings] = deployed('Microsoft.Insights/diagnosticSettings').filter((r) => r.file.name.endsWith('storage.bicep'));
    expect(settings).toBeDefined();
    expect(property(settings!.body, 'scope')?.text).toBe('account::blobService');
    const categories = (property(settings!.body, 'properties.logs')?.namedChildren ?? [])
      .filter((entry) => literal(property(entry, 'enabled')) === true)
      .map((entry) => literal(property(entry, 'category')));
    expect(categories.sort()).toEqual(['StorageDelete', 'StorageRead', 'StorageWrite']);
    const main = files.find((f) => f.path === join(infraDir, 'main.bicep'))!;
    const backup = descendants(main.root, 'module_declaration')
      .map(declarationBody)
      .find((body) => literal(property(body, 'name')) === 'backup-storage');
    expect(property(backup ?? null, 'params.logAnalyticsWorkspaceId')?.text).toBe('monitoring.outputs.logAnalyticsWorkspaceId');
    // The app knows the lifecycle rule's age, to refuse a policy that would outlive it.
    const app = descendants(main.root, 'module_declaration').map(declarationBody).find((body) => property(body, 'params.backupLifecycleDeleteDays'));
    expect(property(app ?? null, 'params.backupLifecycleDeleteDays')?.text).toBe('backupMaxRetentionDays');
  });
});

describe('Service Bus', () => {
  it('has local (SAS key) auth off and TLS 1.2 on every namespace, Standard tier', () => {
    expect(valuesOf('Microsoft.ServiceBus/namespaces', 'properties.disableLocalAuth')).toEqual({
      'infra/modules/servicebus.bicep namespace': true,
    });
    expect(Object.values(valuesOf('Microsoft.ServiceBus/namespaces', 'properties.minimumTlsVersion'))).toEqual(['1.2']);
    expect(Object.values(valuesOf('Microsoft.ServiceBus/namespaces', 'sku.name'))).toEqual(['Standard']);
  });

  it('drops duplicate job messages on the topic and dead-letters on subscriptions', () => {
    expect(Object.values(valuesOf('Microsoft.ServiceBus/namespaces/topics', 'properties.requiresDuplicateDetection'))).toEqual([true]);
    const [subscription] = deployed('Microsoft.ServiceBus/namespaces/topics/subscriptions');
    expect(literal(property(subscription!.body, 'properties.deadLetteringOnMessageExpiration'))).toBe(true);
    expect(property(subscription!.body, 'properties.maxDeliveryCount')).not.toBeNull();
  });

  it('filters each subscription on serverId inside $Default, so no catch-all TrueFilter remains', () => {
    const rules = deployed('Microsoft.ServiceBus/namespaces/topics/subscriptions/rules');
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) {
      expect(literal(property(rule.body, 'name')), where(rule)).toBe('$Default');
      expect(literal(property(rule.body, 'properties.filterType'))).toBe('SqlFilter');
      expect(property(rule.body, 'properties.sqlFilter.sqlExpression')?.text).toMatch(/^'serverId IN \(/);
    }
  });
});

describe('Azure SQL', () => {
  it('accepts Entra authentication only, TLS 1.2 and up', () => {
    expect(Object.values(valuesOf('Microsoft.Sql/servers', 'properties.administrators.azureADOnlyAuthentication'))).toEqual([true]);
    expect(Object.values(valuesOf('Microsoft.Sql/servers', 'properties.administrators.administratorType'))).toEqual(['ActiveDirectory']);
    expect(Object.values(valuesOf('Microsoft.Sql/servers', 'properties.minimalTlsVersion'))).toEqual(['1.2']);
    const [server] = deployed('Microsoft.Sql/servers');
    expect(property(server!.body, 'properties.administratorLoginPassword')).toBeNull();
  });
});

describe('secrets', () => {
  const infraTextFiles = (): { name: string; text: string }[] => [
    ...files.map((f) => ({ name: f.name, text: f.source })),
    { name: 'infra/main.parameters.json', text: readFileSync(join(infraDir, 'main.parameters.json'), 'utf8') },
    { name: 'azure.yaml', text: readFileSync(join(repoRoot, 'azure.yaml'), 'utf8') },
  ];

  it('no key-bearing connection string or SAS in any infra file', () => {
    const keyMaterial = /AccountKey=|SharedAccessKey=|SharedAccessSignature=|[?&]sig=|Password=|Pwd=/i;
    const found = infraTextFiles().filter((file) => keyMaterial.test(file.text)).map((file) => file.name);
    expect(found).toEqual([]);
  });

  it('no listKeys / listConnectionStrings calls (they would copy keys into settings)', () => {
    const calls = files.flatMap((file) =>
      descendants(file.root, 'call_expression')
        .filter((call) => /^list|\.list/.test(call.childForFieldName('function')?.text ?? ''))
        .map((call) => `${file.name}: ${call.text.slice(0, 40)}`),
    );
    expect(calls).toEqual([]);
  });

  it('no property named like a secret is given a literal value', () => {
    const secretish = /password|secret|accountkey|connectionstring|sharedaccesskey/i;
    const offenders = files.flatMap((file) =>
      descendants(file.root, 'object').flatMap((object) =>
        objectProperties(object)
          .filter(({ key, value }) => secretish.test(key) && typeof literal(value) === 'string' && literal(value) !== '')
          .map(({ key }) => `${file.name}: ${key}`),
      ),
    );
    expect(offenders).toEqual([]);
  });

  it('@secure() parameters never have a default, and no parameter is named like a password', () => {
    const params = files.flatMap((file) =>
      declarations(file, 'parameter_declaration').map((p) => ({ ...p, file: file.name })),
    );
    expect(params.length).toBeGreaterThan(0);
    const secureWithDefault = params.filter((p) => p.decorators.includes('secure') && parameterDefault(p.node) !== null);
    expect(secureWithDefault.map((p) => `${p.file} ${p.name}`)).toEqual([]);
    const passwordParams = params.filter((p) => /password|secret|key$/i.test(p.name));
    expect(passwordParams.map((p) => `${p.file} ${p.name}`)).toEqual([]);
  });
});

describe('alerts', () => {
  const actionGroupIdOf = (r: BicepResource): string[] => {
    const actions = property(r.body, 'actions');
    return descendants((actions ?? r.body)!, 'member_expression').map((node) => node.text);
  };

  it('has one action group, and every alert rule points at it', () => {
    const groups = deployed('Microsoft.Insights/actionGroups');
    expect(groups.map(where)).toEqual(['infra/modules/alerts.bicep actionGroup']);
    const rules = [...deployed('Microsoft.Insights/scheduledQueryRules'), ...deployed('Microsoft.Insights/metricAlerts')];
    expect(rules.map(where).sort()).toEqual([
      'infra/modules/alerts.bicep deadLetters',
      'infra/modules/alerts.bicep eventAlertRules',
      'infra/modules/alerts.bicep functionErrors',
    ]);
    for (const rule of rules) expect(actionGroupIdOf(rule), where(rule)).toContain('actionGroup.id');
  });

  it('alerts on failed jobs, dead letters, integrity failures, RPO breaches and Function errors', () => {
    const alerts = readFileSync(join(infraDir, 'modules', 'alerts.bicep'), 'utf8');
    for (const type of ['dbdist.job.failed', 'dbdist.job.dead_lettered', 'dbdist.integrity.failed', 'dbdist.rpo.breached']) {
      expect(alerts).toContain(`type: '${type}'`);
    }
    const deadLetters = deployed('Microsoft.Insights/metricAlerts')[0]!;
    expect(descendants(deadLetters.body!, 'string').map((node) => literal(node))).toContain('DeadletteredMessages');
    const functionErrors = deployed('Microsoft.Insights/scheduledQueryRules').find((r) => r.symbol === 'functionErrors')!;
    expect(String(literal(property(functionErrors.body, 'properties.criteria')) ?? property(functionErrors.body, 'properties.criteria')?.text)).toContain('AppExceptions');
  });

  it('publishes notifications with the managed identity only', () => {
    expect(valuesOf('Microsoft.EventGrid/topics', 'properties.disableLocalAuth')).toEqual({ 'infra/modules/eventgrid.bicep topic': true });
  });
});
