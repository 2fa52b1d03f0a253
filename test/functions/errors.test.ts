/** The error wrapper and the probes: what callers see when things go wrong, and what the log keeps. */
import { HttpRequest } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestOrigin } from '../../functions/endpoint.js';
import { live, ready } from '../../functions/health.js';
import { createJob } from '../../functions/jobs.js';
import { listServers } from '../../functions/servers.js';
import { setDeps, setDepsFactory } from '../../services/deps.js';
import { checkReadiness } from '../../services/health.js';
import { AppError } from '../../shared/errors.js';
import { type TestDeps, startTestDeps } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
beforeAll(async () => {
  t = await startTestDeps();
});
afterAll(() => t?.close());

/** Runs `body` with one store method replaced, restoring it afterwards. */
async function withStoreMethod<K extends keyof TestDeps['deps']['store']>(name: K, replacement: TestDeps['deps']['store'][K], body: () => Promise<void>) {
  const original = t.deps.store[name];
  (t.deps.store as unknown as Record<string, unknown>)[name] = replacement;
  try {
    await body();
  } finally {
    (t.deps.store as unknown as Record<string, unknown>)[name] = original;
  }
}

describe('request bodies', () => {
  it('answers 400 naming `body` for malformed JSON', async () => {
    const res = await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body: '{"databaseId": ' });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.json).toMatchObject({ code: 'validation_failed', errors: [{ field: 'body' }] });
  });

  it('answers 400 naming the field for a missing, mistyped or unknown field', async () => {
    const token = t.tokens.admin();
    const missing = await invoke(createJob, { method: 'POST', path: 'jobs', token, body: {} });
    expect(missing.json.errors.map((e: { field: string }) => e.field)).toEqual(['body.databaseId']);
    const mistyped = await invoke(createJob, { method: 'POST', path: 'jobs', token, body: { databaseId: 42 } });
    expect(mistyped.json.errors.map((e: { field: string }) => e.field)).toEqual(['body.databaseId']);
    const nested = await invoke(createJob, { method: 'POST', path: 'jobs', token, body: { databaseId: crypto.randomUUID(), options: { compression: 'rar' } } });
    expect(nested.json.errors.map((e: { field: string }) => e.field)).toEqual(['body.options.compression']);
    const unknown = await invoke(createJob, { method: 'POST', path: 'jobs', token, body: { databaseId: crypto.randomUUID(), priority: 'high' } });
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(unknown.json.errors)).toContain('priority');
  });
});

describe('unexpected failures', () => {
  it('answer 500 with only the invocation id, and log the whole error with it', async () => {
    const secret = 'Server=sql;Password=hunter2';
    await withStoreMethod('listServers', async () => {
      throw new Error(`login failed for ${secret}`);
    }, async () => {
      const res = await invoke(listServers, { path: 'servers', token: t.tokens.admin() });
      expect(res.status).toBe(500);
      expect(res.json).toMatchObject({ code: 'internal', status: 500, instance: res.invocationId });
      expect(res.json.detail).toContain(res.invocationId);
      expect(res.text).not.toContain('hunter2');
      expect(res.text).not.toMatch(/\bat .+\.ts:\d+/);
      const logged = res.logs.find((line) => line.level === 'error');
      expect(logged?.message).toContain(res.invocationId);
      expect(logged?.message).toContain('hunter2');
    });
  });

  it('answer 503 with the explanation when a dependency is unavailable', async () => {
    await withStoreMethod('listServers', async () => {
      throw new AppError('dependency_unavailable', 'The database did not answer; try again.');
    }, async () => {
      const res = await invoke(listServers, { path: 'servers', token: t.tokens.admin() });
      expect(res.status).toBe(503);
      expect(res.json.detail).toBe('The database did not answer; try again.');
    });
  });

  it('log refusals as warnings, briefly', async () => {
    const res = await invoke(listServers, { path: 'servers', token: t.tokens.auditor() });
    expect(res.status).toBe(403);
    expect(res.logs.filter((l) => l.level === 'error')).toEqual([]);
    expect(res.logs.find((l) => l.level === 'warning')?.message).toMatch(/GET \/api\/servers from 203\.0\.113\.7 refused with 403 forbidden/);
  });
});

describe('health probes', () => {
  it('live answers 200 without a token', async () => {
    const res = await invoke(live, { path: 'health/live' });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ status: 'ok' });
  });

  it('ready answers 200 when store, blobs and queue answer', async () => {
    const res = await invoke(ready, { path: 'health/ready' });
    expect(res.status).toBe(200);
    expect(res.json.checks).toEqual([
      { name: 'store', ok: true },
      { name: 'blobs', ok: true },
      { name: 'queue', ok: true },
    ]);
  });

  it('ready answers 503 naming what failed, without the reason (that goes to the log)', async () => {
    const original = t.deps.blobs.ping;
    t.deps.blobs.ping = async () => {
      throw new Error('AuthorizationPermissionMismatch for account stsecret');
    };
    try {
      const res = await invoke(ready, { path: 'health/ready' });
      expect(res.status).toBe(503);
      expect(res.json.failedChecks).toEqual(['blobs']);
      expect(res.json.detail).toContain('blobs');
      expect(res.text).not.toContain('stsecret');
      expect(res.logs.some((l) => l.message.includes('stsecret'))).toBe(true);
    } finally {
      t.deps.blobs.ping = original;
    }
  });

  it('ready reports a dependency that hangs as failed once its time is up', async () => {
    const hung = { ...t.deps, queue: { ...t.deps.queue, ping: () => new Promise<void>(() => {}) } };
    const readiness = await checkReadiness(async () => hung, 50);
    expect(readiness.ready).toBe(false);
    expect(readiness.checks.find((c) => c.name === 'queue')).toMatchObject({ ok: false, error: expect.stringMatching(/50 ms/) });
    expect(readiness.checks.filter((c) => c.ok).map((c) => c.name)).toEqual(['store', 'blobs']);
  });

  it('ready answers 503 naming the configuration when the dependencies cannot be built', async () => {
    // As the entry point does: getDeps now builds production deps from process.env, which has no settings here.
    setDepsFactory(() => import('../../functions/production.js').then(({ productionDeps }) => productionDeps()));
    setDeps(undefined);
    try {
      const res = await invoke(ready, { path: 'health/ready' });
      expect(res.status).toBe(503);
      expect(res.json.failedChecks).toEqual(['configuration']);
      expect((await invoke(live, { path: 'health/live' })).status).toBe(200);
      const authenticated = await invoke(listServers, { path: 'servers', token: t.tokens.admin() });
      expect(authenticated.status).toBe(500);
      expect(authenticated.text).not.toContain('ENTRA_TENANT_ID');
      expect(authenticated.logs.find((l) => l.level === 'error')?.message).toContain('ENTRA_TENANT_ID');
    } finally {
      setDeps(t.deps);
    }
  });
});

describe('requestOrigin', () => {
  const origin = (headers: Record<string, string>) => requestOrigin(new HttpRequest({ method: 'GET', url: 'http://localhost/api/x', headers }));
  it('takes the first forwarded address without its port, and the user agent', () => {
    expect(origin({ 'x-forwarded-for': '203.0.113.9:1234, 10.0.0.1', 'user-agent': 'ua' })).toEqual({ ip: '203.0.113.9', userAgent: 'ua' });
    expect(origin({ 'x-forwarded-for': '[2001:db8::1]:443' })).toEqual({ ip: '2001:db8::1' });
    expect(origin({ 'x-forwarded-for': '2001:db8::2' })).toEqual({ ip: '2001:db8::2' });
    expect(origin({})).toEqual({});
  });
});
