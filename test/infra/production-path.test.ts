/**
 * What the first real `azd up` needs that no local run can show (issue 18, items 13-16): Entra-only auth kept on
 * through its own resource, diagnostics and SQL auditing into the workspace, a way for the migration hook to
 * reach Azure SQL, Node 22, a GUID check on the Entra admin id, and a Function App package without node_modules.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { finishSha256 } from '../../shared/integrity/resumable-sha256.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BicepFile,
  type BicepResource,
  declarations,
  infraDir,
  literal,
  parameterDefault,
  parseAllBicep,
  property,
  repoRoot,
  resourcesOfType,
} from './bicep.js';

let files: BicepFile[];
let main: BicepFile;
beforeAll(async () => {
  files = await parseAllBicep();
  main = files.find((f) => f.name === 'infra/main.bicep')!;
});

const deployed = (type: string): BicepResource[] => resourcesOfType(files, type).filter((r) => !r.existing);
const moduleArgument = (module: string, name: string) => {
  const declaration = declarations(main, 'module_declaration').find((d) => d.name === module)!;
  const body = declaration.node.namedChildren.at(-1)!;
  return property(body.type === 'object' ? body : body.namedChildren.at(-1)!, `params.${name}`);
};

describe('Azure SQL Entra-only authentication', () => {
  it('is set through the azureADOnlyAuthentications child resource, the API for changing it after creation', () => {
    const [entraOnly, ...more] = deployed('Microsoft.Sql/servers/azureADOnlyAuthentications');
    expect(more).toEqual([]);
    expect(literal(property(entraOnly!.body, 'name'))).toBe('Default');
    expect(literal(property(entraOnly!.body, 'properties.azureADOnlyAuthentication'))).toBe(true);
  });
});

describe('diagnostics to the Log Analytics workspace', () => {
  it('sends every log and metric of the Service Bus namespace and the SQL database, the SQL audit and the backup blob logs', () => {
    const settings = deployed('Microsoft.Insights/diagnosticSettings');
    const byScope = Object.fromEntries(settings.map((s) => [`${s.file.name} ${property(s.body, 'scope')?.text}`, s]));
    expect(Object.keys(byScope).sort()).toEqual(
      [
        'infra/modules/servicebus.bicep namespace',
        'infra/modules/sql.bicep server::database',
        'infra/modules/sql.bicep server::master',
        // Downloads joined to the audit trail (docs/audit-downloads.md); test/infra/policy.test.ts checks its categories.
        'infra/modules/storage.bicep account::blobService',
      ].sort(),
    );
    for (const setting of settings) expect(property(setting.body, 'properties.workspaceId')?.text).toBe('logAnalyticsWorkspaceId');
    const logs = (s: BicepResource) => property(s.body, 'properties.logs')!.text;
    expect(logs(byScope['infra/modules/servicebus.bicep namespace']!)).toContain("categoryGroup: 'allLogs'");
    expect(logs(byScope['infra/modules/sql.bicep server::database']!)).toContain("categoryGroup: 'allLogs'");
    expect(logs(byScope['infra/modules/sql.bicep server::master']!)).toContain("category: 'SQLSecurityAuditEvents'");
    for (const module of ['serviceBus', 'sql', 'backupStorage']) {
      expect(moduleArgument(module, 'logAnalyticsWorkspaceId')?.text).toBe('monitoring.outputs.logAnalyticsWorkspaceId');
    }
  });

  it('audits the server to Azure Monitor (auditing settings on, Azure Monitor target)', () => {
    const [auditing] = deployed('Microsoft.Sql/servers/auditingSettings');
    expect(literal(property(auditing!.body, 'properties.state'))).toBe('Enabled');
    expect(literal(property(auditing!.body, 'properties.isAzureMonitorTargetEnabled'))).toBe(true);
  });

  it('words the $Default rule as updated in place, without claiming how several rules combine', () => {
    const text = readFileSync(join(infraDir, 'modules', 'servicebus.bicep'), 'utf8');
    expect(text).toContain('updates\n// that rule in place');
    expect(text).not.toMatch(/OR-ed/);
  });
});

describe('the post-provision migration can reach Azure SQL', () => {
  it('admits the deployer’s IP, fed from the azd environment, only when one is given', () => {
    const [rule] = deployed('Microsoft.Sql/servers/firewallRules').filter((r) => literal(property(r.body, 'name')) === 'AllowDeployerClientIp');
    expect(rule!.node.text).toMatch(/= if \(publicNetworkAccess && !empty\(clientIpAddress\)\)/);
    const parameters = JSON.parse(readFileSync(join(infraDir, 'main.parameters.json'), 'utf8')) as { parameters: Record<string, { value: string }> };
    expect(parameters.parameters.sqlClientIpAddress?.value).toBe('${SQL_CLIENT_IP_ADDRESS=}');
    expect(moduleArgument('sql', 'clientIpAddress')?.text).toBe('sqlClientIpAddress');
  });

  it('runs the hook in its non-failing mode', () => {
    const config = parseYaml(readFileSync(join(repoRoot, 'azure.yaml'), 'utf8')) as { hooks: { postprovision: { run: string } } };
    expect(config.hooks.postprovision.run).toBe('npm run db:migrate -- --from-azd-hook');
  });
});

describe('Function App runtime and parameters', () => {
  it('defaults to Node 22', () => {
    for (const file of [main, files.find((f) => f.name === 'infra/modules/functionapp.bicep')!]) {
      const nodeVersion = declarations(file, 'parameter_declaration').find((p) => p.name === 'nodeVersion')!;
      expect(literal(parameterDefault(nodeVersion.node)), file.name).toBe('22');
    }
  });

  it('checks that the Entra admin object id is a GUID before the SQL server gets it', () => {
    const parameter = declarations(main, 'parameter_declaration').find((p) => p.name === 'sqlEntraAdminObjectId')!;
    expect(parameter.argumentsOf('minLength').map((n) => n.text)).toEqual(['36']);
    expect(parameter.argumentsOf('maxLength').map((n) => n.text)).toEqual(['36']);
    expect(moduleArgument('sql', 'entraAdminObjectId')?.text).toBe('sqlEntraAdminObjectIdChecked');
    const checked = declarations(main, 'variable_declaration').find((v) => v.name === 'sqlEntraAdminObjectIdChecked')!;
    expect(checked.node.text).toContain('[sqlEntraAdminObjectId][sqlEntraAdminObjectIdIsGuid ? 0 : 1]');
  });
});

describe('Function App package (npm run package, azure.yaml dist: dist/app)', () => {
  const out = mkdtempSync(join(tmpdir(), 'dbdist-package-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('is azd’s package output', () => {
    const config = parseYaml(readFileSync(join(repoRoot, 'azure.yaml'), 'utf8')) as { services: { api: { dist?: string } } };
    expect(config.services.api.dist).toBe('dist/app');
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.package).toBe('node scripts/package-functions.mjs');
  });

  it('registers every HTTP route from a folder with no node_modules, and declares no dependency', { timeout: 120_000 }, async () => {
    execFileSync(process.execPath, [join(repoRoot, 'scripts', 'package-functions.mjs'), '--out', join(out, 'app')], { stdio: 'pipe' });
    const app = join(out, 'app');
    expect(JSON.parse(readFileSync(join(app, 'package.json'), 'utf8'))).toEqual({ name: 'dbdist-functions', private: true, type: 'module', main: 'index.js' });
    expect(readFileSync(join(app, 'host.json'), 'utf8')).toBe(readFileSync(join(repoRoot, 'host.json'), 'utf8'));
    expect(existsSync(join(app, 'node_modules'))).toBe(false);
    // Copied away from the repository, nothing can be resolved from its node_modules.
    const isolated = join(out, 'isolated');
    cpSync(app, isolated, { recursive: true });
    const routes = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', "const m = await import('./index.js'); console.log(JSON.stringify(m.registeredRoutes().map((r) => r.name).sort()))"],
      { cwd: isolated, stdio: ['ignore', 'pipe', 'ignore'] },
    ).toString();
    const { registeredRoutes } = await import('../../functions/index.js');
    expect(JSON.parse(routes)).toEqual(registeredRoutes().map((r) => r.name).sort());
    // The re-hash's worker thread, started from beside index.js, hashes there with no node_modules either.
    const saved = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { Worker } from 'node:worker_threads'; const w = new Worker(new URL('./sha256-worker.mjs', `file://${process.cwd()}/`), { workerData: { state: null }, execArgv: [] });" +
          " w.on('message', (m) => { if (m.type === 'saved') { console.log(m.state); w.terminate(); } });" +
          " const data = new TextEncoder().encode('abc').buffer; w.postMessage({ type: 'update', data }, [data]); w.postMessage({ type: 'save' });",
      ],
      { cwd: isolated, stdio: ['ignore', 'pipe', 'pipe'] },
    ).toString().trim();
    expect(await finishSha256(saved)).toBe(createHash('sha256').update('abc').digest('hex'));
  });
});
