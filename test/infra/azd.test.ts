/**
 * How the pieces of infra/ fit together and with azd: module references and parameters, the azd conventions
 * of main.bicep, main.parameters.json, azure.yaml and .funcignore.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  type BicepFile,
  declarationBody,
  declarations,
  descendants,
  infraDir,
  literal,
  objectProperties,
  parameterDefault,
  parseAllBicep,
  parseBicep,
  property,
  referencedPath,
  repoRoot,
  resources,
} from './bicep.js';

let files: BicepFile[];
let main: BicepFile;
beforeAll(async () => {
  files = await parseAllBicep();
  main = files.find((f) => f.path === join(infraDir, 'main.bicep'))!;
});

const normalize = (text: string | undefined): string => (text ?? '').replace(/\s+/g, '');

describe('module wiring', () => {
  it('every module and import path exists', () => {
    const references = files.flatMap((file) =>
      [...descendants(file.root, 'module_declaration'), ...descendants(file.root, 'import_functionality')].map((node) => ({
        from: file.name,
        path: resolve(dirname(file.path), referencedPath(node)),
      })),
    );
    expect(references.length).toBeGreaterThanOrEqual(7);
    expect(references.filter((r) => !existsSync(r.path)).map((r) => `${r.from} → ${r.path}`)).toEqual([]);
  });

  it('main.bicep passes each module every parameter it requires, and no unknown one', async () => {
    const problems: string[] = [];
    for (const moduleNode of descendants(main.root, 'module_declaration')) {
      const moduleFile = await parseBicep(resolve(infraDir, referencedPath(moduleNode)));
      const declared = declarations(moduleFile, 'parameter_declaration');
      const passed = objectProperties(property(declarationBody(moduleNode), 'params')).map((p) => p.key);
      for (const name of passed) {
        if (!declared.some((p) => p.name === name)) problems.push(`${moduleFile.name}: unknown parameter ${name}`);
      }
      for (const p of declared) {
        if (parameterDefault(p.node) === null && !passed.includes(p.name)) problems.push(`${moduleFile.name}: ${p.name} not passed`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('main.bicep azd conventions', () => {
  it('deploys at subscription scope into a resource group tagged azd-env-name', () => {
    const target = descendants(main.root, 'target_scope_assignment')[0];
    expect(literal(target?.namedChildren.at(-1))).toBe('subscription');
    const rg = resources(main).find((r) => r.type === 'Microsoft.Resources/resourceGroups');
    expect(rg).toBeDefined();
    const tagsVariable = declarations(main, 'variable_declaration').find((v) => v.name === property(rg!.body, 'tags')?.text);
    const tags = objectProperties(tagsVariable?.node.namedChildren.at(-1) ?? null);
    expect(tags.find((t) => t.key === 'azd-env-name')?.value?.text).toBe('environmentName');
  });

  it('derives resource names from the azd resource token', () => {
    const token = declarations(main, 'variable_declaration').find((v) => v.name === 'resourceToken');
    expect(normalize(token?.node.namedChildren.at(-1)?.text)).toBe('toLower(uniqueString(subscription().id,environmentName,location))');
  });

  it('outputs UPPER_SNAKE names, including what the runner agent and clients need', () => {
    const outputs = declarations(main, 'output_declaration').map((o) => o.name);
    expect(outputs.filter((name) => !/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/.test(name))).toEqual([]);
    expect(outputs).toEqual(
      expect.arrayContaining([
        'API_BASE_URL',
        'API_AUDIENCE',
        'API_CLIENT_ID',
        'RUNNER_API_SCOPE',
        'SERVICEBUS_FULLY_QUALIFIED_NAMESPACE',
        'SERVICEBUS_JOBS_TOPIC',
        'SERVICEBUS_RUNNER_SUBSCRIPTIONS',
        'BACKUP_BLOB_ENDPOINT',
        'BACKUP_CONTAINER',
        'SQL_SERVER',
        'SQL_DATABASE',
      ]),
    );
  });
});

describe('main.parameters.json', () => {
  const parameters = (): Record<string, { value: unknown }> =>
    (JSON.parse(readFileSync(join(infraDir, 'main.parameters.json'), 'utf8')) as { parameters: Record<string, { value: unknown }> })
      .parameters;

  it('is valid JSON fed by the azd environment name and location', () => {
    expect(parameters().environmentName?.value).toBe('${AZURE_ENV_NAME}');
    expect(parameters().location?.value).toBe('${AZURE_LOCATION}');
  });

  it('names only parameters main.bicep declares, and every one main.bicep requires', () => {
    const declared = declarations(main, 'parameter_declaration');
    const given = Object.keys(parameters());
    expect(given.filter((name) => !declared.some((p) => p.name === name))).toEqual([]);
    const required = declared.filter((p) => parameterDefault(p.node) === null).map((p) => p.name);
    expect(required.filter((name) => !given.includes(name))).toEqual([]);
  });
});

describe('azure.yaml', () => {
  it('declares the api service: the repository root, deployed to Azure Functions', () => {
    const config = parseYaml(readFileSync(join(repoRoot, 'azure.yaml'), 'utf8')) as {
      name: string;
      infra?: { path?: string };
      services: Record<string, { project: string; language: string; host: string }>;
    };
    expect(config.name).toBe('dbdist');
    expect(Object.keys(config.services)).toEqual(['api', 'portal']);
    expect(config.services.api).toMatchObject({ project: '.', host: 'function' });
    expect(['js', 'ts']).toContain(config.services.api!.language);
    expect(existsSync(join(repoRoot, config.infra?.path ?? 'infra', 'main.bicep'))).toBe(true);
  });
});

describe('azure.yaml: the portal', () => {
  it('deploys the built portal with its config to the Static Web App that main.bicep tags for it', () => {
    const config = parseYaml(readFileSync(join(repoRoot, 'azure.yaml'), 'utf8')) as {
      services: Record<string, { host: string; dist?: string; hooks?: Record<string, { run: string }> }>;
    };
    const portal = config.services.portal!;
    expect(portal).toMatchObject({ host: 'staticwebapp', dist: 'portal/dist' });
    const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const script of portal.hooks!.prepackage!.run.match(/npm run ([\w:-]+)/g)!) expect(scripts).toHaveProperty(script.replace('npm run ', ''));
    const swa = files.find((file) => file.name.endsWith('staticwebapp.bicep'))!;
    expect(normalize(swa.source)).toContain(normalize(`'azd-service-name': 'portal'`));
    // The portal's origin reaches the API's CORS_ORIGINS.
    expect(normalize(main.source)).toContain(normalize('union(corsOrigins, [portal!.outputs.origin])'));
  });
});

describe('.funcignore', () => {
  it('keeps the runner, infra, tests and tooling out of the Function App package', () => {
    const entries = readFileSync(join(repoRoot, '.funcignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim().replace(/\/$/, ''))
      .filter((line) => line && !line.startsWith('#'));
    expect(entries).toEqual(expect.arrayContaining(['runner-agent', 'infra', 'test', 'dev', 'bench', 'docs', '.ci', '.tmp']));
  });
});
