import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, getDatabase, updateDatabase } from '../../functions/databases.js';
import { createServer } from '../../functions/servers.js';
import { type TestDeps, startTestDeps } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
let token: string;
let serverId: string;
beforeAll(async () => {
  t = await startTestDeps();
  token = t.tokens.admin();
  const res = await invoke(createServer, { method: 'POST', path: 'servers', token, body: { name: 'pg01', host: 'pg01', engine: 'postgres' } });
  serverId = (res.json as { id: string }).id;
});
afterAll(() => t?.close());

const create = (policy: unknown) =>
  invoke(createDatabase, { method: 'POST', path: `servers/${serverId}/databases`, params: { serverId }, token, body: { name: 'crm', policy } });
const fields = (res: { json: { errors: Array<{ field: string }> } }) => res.json.errors.map((e) => e.field);

const masking = {
  version: 2,
  rules: [
    { table: 'us]ers"; DROP TABLE x--', column: 'email', strategy: 'email' },
    { schema: 'app', table: 'audit_log', strategy: 'excludeData' },
    { table: 'users', column: 'pin', strategy: 'fixed', value: '0000' },
  ],
  sql: ["UPDATE users SET notes = ''"],
};

describe('distribution policy and masking rules in the registry', () => {
  it('stores a sanitized policy with its rules, filling in the default sensitive patterns', async () => {
    const res = await create({ distribution: 'sanitized', masking, rehearseEveryDays: 90 });
    expect(res.status, res.text).toBe(201);
    const id = (res.json as { id: string }).id;
    const read = await invoke(getDatabase, { path: `servers/${serverId}/databases/${id}`, params: { serverId, id }, token });
    expect(read.json.policy).toMatchObject({
      distribution: 'sanitized',
      rehearseEveryDays: 90,
      masking: { version: 2, rules: masking.rules, sql: masking.sql, sensitivePatterns: expect.arrayContaining(['password', 'token', 'email', 'phone']) },
    });
  });

  it("refuses 'sanitized' without rules, on create and on a partial update, naming policy.masking", async () => {
    const res = await create({ distribution: 'sanitized' });
    expect(res.status).toBe(400);
    expect(fields(res)).toContain('body.policy.masking');

    const raw = await create({});
    expect(raw.json.policy).toMatchObject({ distribution: 'raw', masking: null, rehearseEveryDays: null });
    const id = (raw.json as { id: string }).id;
    const patch = await invoke(updateDatabase, {
      method: 'PATCH',
      path: `servers/${serverId}/databases/${id}`,
      params: { serverId, id },
      token,
      body: { policy: { distribution: 'sanitized' } },
    });
    expect(patch.status).toBe(400);
    expect(fields(patch)).toContain('body.policy.masking');
  });

  it('names the bad rule field and refuses duplicate rules', async () => {
    const bad = await create({ masking: { version: 1, rules: [{ table: 't', column: 'c', strategy: 'scramble' }] } });
    expect(bad.status).toBe(400);
    expect(fields(bad).some((f) => f.startsWith('body.policy.masking.rules.0'))).toBe(true);
    const twice = await create({
      masking: { version: 1, rules: [{ table: 't', column: 'c', strategy: 'null' }, { table: 't', column: 'c', strategy: 'hash' }] },
    });
    expect(twice.status).toBe(400);
    expect(fields(twice)).toContain('body.policy.masking.rules.1');
  });

  it("accepts 'raw-needs-approval' (its approval flow is separate)", async () => {
    const res = await create({ distribution: 'raw-needs-approval' });
    expect(res.status, res.text).toBe(201);
    expect(res.json.policy.distribution).toBe('raw-needs-approval');
  });
});
