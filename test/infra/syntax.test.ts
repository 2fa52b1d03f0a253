import { describe, expect, it } from 'vitest';
import { bicepPaths, parseAllBicep, parseBicepSource, syntaxProblems } from './bicep.js';

describe('infra Bicep syntax', () => {
  it('finds the main template and its modules', () => {
    const names = bicepPaths().map((path) => path.replace(/\\/g, '/'));
    expect(names.some((name) => name.endsWith('infra/main.bicep'))).toBe(true);
    expect(names.filter((name) => name.includes('infra/modules/')).length).toBeGreaterThan(3);
  });

  it('parses every .bicep file with no ERROR or MISSING node', async () => {
    const files = await parseAllBicep();
    expect(files.flatMap(syntaxProblems)).toEqual([]);
  });

  it('reports the position of a syntax error (the check above can fail)', async () => {
    const broken = await parseBicepSource("param name string\nresource x 'A/b@1' = {\n  name: \n", 'broken.bicep');
    const problems = syntaxProblems(broken);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]).toMatch(/^broken\.bicep:\d+:\d+ (ERROR|MISSING)/);
  });
});
