import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, deleteDatabase, getDatabase, listDatabases, updateDatabase } from '../../functions/databases.js';
import { createServer, deleteServer, getServer, listServers, updateServer } from '../../functions/servers.js';
import { type TestDeps, startTestDeps } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
let token: string;
const adminOid = randomUUID();
beforeAll(async () => {
  t = await startTestDeps();
  token = t.tokens.admin({ oid: adminOid });
});
afterAll(() => t?.close());

const auditFor = async (target: string) => (await t.deps.store.listAudit({ limit: 200 })).items.filter((a) => a.target === target);

async function newServer(body: Record<string, unknown> = {}) {
  const res = await invoke(createServer, { method: 'POST', path: 'servers', token, body: { name: 'sql01', host: 'sql01.corp.example', engine: 'sqlserver', ...body } });
  expect(res.status, res.text).toBe(201);
  return res.json as { id: string; name: string };
}

describe('servers', () => {
  it('creates, reads, lists, updates and deletes a server, auditing each change as the admin', async () => {
    const server = await newServer({ description: 'primary' });
    expect((await invoke(getServer, { path: `servers/${server.id}`, params: { id: server.id }, token })).json).toMatchObject({ id: server.id, description: 'primary' });
    expect((await invoke(listServers, { path: 'servers', token })).json.items.map((s: { id: string }) => s.id)).toContain(server.id);

    const updated = await invoke(updateServer, { method: 'PATCH', path: `servers/${server.id}`, params: { id: server.id }, token, body: { host: 'sql01b.corp.example' } });
    expect(updated.status).toBe(200);
    expect(updated.json).toMatchObject({ host: 'sql01b.corp.example', name: 'sql01' });

    const deleted = await invoke(deleteServer, { method: 'DELETE', path: `servers/${server.id}`, params: { id: server.id }, token });
    expect(deleted.status).toBe(204);
    expect((await invoke(getServer, { path: `servers/${server.id}`, params: { id: server.id }, token })).status).toBe(404);

    const audit = await auditFor(`server/${server.id}`);
    expect(audit.map((a) => a.action).sort()).toEqual(['server.created', 'server.deleted', 'server.updated']);
    expect(audit.every((a) => a.actorId === adminOid && a.actorType === 'user')).toBe(true);
  });

  it('refuses to delete a server that still has databases (409)', async () => {
    const server = await newServer();
    await invoke(createDatabase, { method: 'POST', path: `servers/${server.id}/databases`, params: { serverId: server.id }, token, body: { name: 'Sales' } });
    const res = await invoke(deleteServer, { method: 'DELETE', path: `servers/${server.id}`, params: { id: server.id }, token });
    expect(res.status).toBe(409);
  });

  it('validates bodies, naming the fields, and refuses unknown fields', async () => {
    const bad = await invoke(createServer, { method: 'POST', path: 'servers', token, body: { name: '', host: 'h', engine: 'oracle' } });
    expect(bad.status).toBe(400);
    expect([...new Set(bad.json.errors.map((e: { field: string }) => e.field))].sort()).toEqual(['body.engine', 'body.name']);
    const extra = await invoke(createServer, { method: 'POST', path: 'servers', token, body: { name: 'a', host: 'h', engine: 'postgres', password: 'x' } });
    expect(extra.status).toBe(400);
    expect(JSON.stringify(extra.json.errors)).toContain('password');
  });

  it('answers 404 for unknown servers', async () => {
    const id = randomUUID();
    expect((await invoke(updateServer, { method: 'PATCH', path: `servers/${id}`, params: { id }, token, body: { name: 'x' } })).status).toBe(404);
    expect((await invoke(deleteServer, { method: 'DELETE', path: `servers/${id}`, params: { id }, token })).status).toBe(404);
    expect((await invoke(listDatabases, { path: `servers/${id}/databases`, params: { serverId: id }, token })).status).toBe(404);
  });
});

describe('databases', () => {
  it('registers a database with policy defaults, merges a partial policy update, and deletes it', async () => {
    const server = await newServer();
    const group = randomUUID();
    const created = await invoke(createDatabase, {
      method: 'POST',
      path: `servers/${server.id}/databases`,
      params: { serverId: server.id },
      token,
      body: { name: 'Sales', requesterGroupIds: [group], policy: { retentionDays: 3 } },
    });
    expect(created.status).toBe(201);
    const db = created.json;
    expect(created.headers.get('location')).toBe(`/api/servers/${server.id}/databases/${db.id}`);
    expect(db).toMatchObject({ serverId: server.id, requesterGroupIds: [group], enabled: true, schedule: null });
    expect(db.policy).toMatchObject({ retentionDays: 3, maxSasTtlMinutes: 60 });

    const params = { serverId: server.id, id: db.id };
    const updated = await invoke(updateDatabase, { method: 'PATCH', path: `servers/${server.id}/databases/${db.id}`, params, token, body: { policy: { maxSasTtlMinutes: 15 }, enabled: false } });
    expect(updated.status).toBe(200);
    expect(updated.json.policy).toMatchObject({ retentionDays: 3, maxSasTtlMinutes: 15 });
    expect(updated.json.enabled).toBe(false);

    const list = await invoke(listDatabases, { path: `servers/${server.id}/databases`, params: { serverId: server.id }, token });
    expect(list.json.items.map((d: { id: string }) => d.id)).toEqual([db.id]);
    expect((await invoke(deleteDatabase, { method: 'DELETE', path: `servers/${server.id}/databases/${db.id}`, params, token })).status).toBe(204);
    expect((await invoke(getDatabase, { path: `servers/${server.id}/databases/${db.id}`, params, token })).status).toBe(404);
    expect((await auditFor(`database/${db.id}`)).map((a) => a.action).sort()).toEqual(['database.created', 'database.deleted', 'database.updated']);
  });

  it('does not find a database under another server', async () => {
    const [one, other] = [await newServer(), await newServer()];
    const db = (await invoke(createDatabase, { method: 'POST', path: `servers/${one.id}/databases`, params: { serverId: one.id }, token, body: { name: 'Sales' } })).json;
    const res = await invoke(getDatabase, { path: `servers/${other.id}/databases/${db.id}`, params: { serverId: other.id, id: db.id }, token });
    expect(res.status).toBe(404);
    const del = await invoke(deleteDatabase, { method: 'DELETE', path: `servers/${other.id}/databases/${db.id}`, params: { serverId: other.id, id: db.id }, token });
    expect(del.status).toBe(404);
    expect((await t.deps.store.getDatabase(db.id))?.serverId).toBe(one.id);
  });

  it('names the bad policy field of an update', async () => {
    const server = await newServer();
    const db = (await invoke(createDatabase, { method: 'POST', path: `servers/${server.id}/databases`, params: { serverId: server.id }, token, body: { name: 'Sales' } })).json;
    const res = await invoke(updateDatabase, {
      method: 'PATCH',
      path: `servers/${server.id}/databases/${db.id}`,
      params: { serverId: server.id, id: db.id },
      token,
      body: { policy: { maxSasTtlMinutes: 0 } },
    });
    expect(res.status).toBe(400);
    expect(res.json.errors[0].field).toBe('body.policy.maxSasTtlMinutes');
  });
  it('refuses a retention the storage lifecycle rule would cut short, naming both numbers, writing nothing', async () => {
    expect(t.deps.limits.lifecycleDeleteDays).toBe(30);
    const server = await newServer();
    const path = `servers/${server.id}/databases`;
    const tooLong = await invoke(createDatabase, { method: 'POST', path, params: { serverId: server.id }, token, body: { name: 'Sales', policy: { retentionDays: 45 } } });
    expect(tooLong.status).toBe(400);
    expect(tooLong.json.detail).toMatch(/retentionDays 45 .*30 days/);
    expect(tooLong.json.errors).toEqual([{ field: 'body.policy.retentionDays', message: expect.stringMatching(/45.*30/) }]);
    // Equal is refused too: the rule runs once a day and may delete the blob before the job expires it.
    expect((await invoke(createDatabase, { method: 'POST', path, params: { serverId: server.id }, token, body: { name: 'Sales', policy: { retentionDays: 30 } } })).status).toBe(400);
    expect(await t.deps.store.listDatabases(server.id)).toEqual([]);

    const db = (await invoke(createDatabase, { method: 'POST', path, params: { serverId: server.id }, token, body: { name: 'Sales', policy: { retentionDays: 29 } } })).json;
    expect(db.policy.retentionDays).toBe(29);
    const update = await invoke(updateDatabase, { method: 'PATCH', path: `${path}/${db.id}`, params: { serverId: server.id, id: db.id }, token, body: { policy: { retentionDays: 31 } } });
    expect(update.status).toBe(400);
    expect(update.json.detail).toMatch(/retentionDays 31 .*30 days/);
    expect((await t.deps.store.getDatabase(db.id))?.policy.retentionDays).toBe(29);
  });
});
