/**
 * CORS exactly as CORS_ORIGINS says: a configured origin gets its preflight answered and may read responses
 * (Location and x-next-cursor included); any other origin gets no CORS header at all. Through the real
 * handlers, then through the dev HTTP host the sandbox serves (a browser portal on another loopback origin).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../functions/index.js';
import { queryAudit } from '../../functions/audit.js';
import { live } from '../../functions/health.js';
import { httpPolicyFromSettings, setHttpPolicy } from '../../functions/http-policy.js';
import { createJob, listJobs } from '../../functions/jobs.js';
import { corsPreflight } from '../../functions/preflight.js';
import { registeredRoutes, routePrefix } from '../../functions/registry.js';
import { type RunningHttpHost, startHttpHost } from '../../dev/http-host.js';
import { httpSettingsSchema, parseSettings } from '../../shared/config.js';
import { type SeededDatabase, type TestDeps, seedDatabase, startTestDeps } from '../support/deps.js';
import { invoke } from '../support/http.js';

const PORTAL = 'http://127.0.0.1:5173';
const OTHER = 'http://127.0.0.1:6666';
const corsHeaderNames = (headers: Headers) => [...headers.keys()].filter((name) => name.startsWith('access-control-'));

let t: TestDeps;
let seeded: SeededDatabase;

beforeAll(async () => {
  t = await startTestDeps();
  seeded = await seedDatabase(t.deps.store);
  setHttpPolicy(httpPolicyFromSettings(parseSettings(httpSettingsSchema, { CORS_ORIGINS: `${PORTAL}, https://portal.example.com` })));
});
afterAll(async () => {
  setHttpPolicy(undefined);
  await t?.close();
});

const preflight = (origin: string, method = 'POST') =>
  invoke(corsPreflight, {
    method: 'OPTIONS',
    path: 'jobs',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
  });

describe('CORS preflight (OPTIONS)', () => {
  it('answers a configured origin with every method the API uses and the headers it reads', async () => {
    const res = await preflight(PORTAL);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(PORTAL);
    const methods = res.headers.get('access-control-allow-methods')!.split(', ');
    const registered = new Set(registeredRoutes().flatMap((r) => r.methods).filter((m) => m !== 'OPTIONS'));
    expect(methods.sort()).toEqual([...registered].sort());
    expect(methods).toEqual(expect.arrayContaining(['GET', 'POST', 'PATCH', 'DELETE']));
    expect(res.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    expect(Number(res.headers.get('access-control-max-age'))).toBeGreaterThan(0);
    expect(res.headers.get('vary')).toBe('Origin');
    // Bearer tokens, not cookies: credentials mode is never allowed.
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('gives any other origin (or a near miss of a configured one) no CORS header', async () => {
    for (const origin of [OTHER, `${PORTAL}/`, 'http://localhost:5173', 'null', 'https://portal.example.com.evil.example']) {
      const res = await preflight(origin);
      expect(corsHeaderNames(res.headers), origin).toEqual([]);
      expect(res.headers.get('vary')).toBe('Origin');
    }
  });
});

describe('CORS on actual responses', () => {
  it('lets a configured origin read a 202 and its Location', async () => {
    const res = await invoke(createJob, {
      method: 'POST',
      path: 'jobs',
      token: t.tokens.admin(),
      body: { databaseId: seeded.database.id },
      headers: { origin: PORTAL },
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('access-control-allow-origin')).toBe(PORTAL);
    expect(res.headers.get('access-control-expose-headers')).toBe('location, x-next-cursor');
    expect(res.headers.get('location')).toMatch(/^\/api\/jobs\//);
    expect(res.headers.get('vary')).toBe('Origin');
  });

  it('lets a configured origin read errors too (a 401 a portal must show), and CSV pages', async () => {
    const refused = await invoke(listJobs, { path: 'jobs', headers: { origin: PORTAL } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe(PORTAL);
    const csv = await invoke(queryAudit, { path: 'audit', query: { format: 'csv' }, token: t.tokens.auditor(), headers: { origin: PORTAL } });
    expect(csv.status).toBe(200);
    expect(csv.headers.get('access-control-allow-origin')).toBe(PORTAL);
  });

  it('adds nothing for another origin, nor without an Origin header', async () => {
    for (const headers of [{ origin: OTHER }, {}] as Record<string, string>[]) {
      const res = await invoke(live, { path: 'health/live', headers });
      expect(res.status).toBe(200);
      expect(corsHeaderNames(res.headers)).toEqual([]);
    }
  });

  it('sends no Vary and no CORS header when no origin is configured', async () => {
    setHttpPolicy(httpPolicyFromSettings(parseSettings(httpSettingsSchema, {})));
    try {
      const res = await invoke(live, { path: 'health/live', headers: { origin: PORTAL } });
      expect(corsHeaderNames(res.headers)).toEqual([]);
      expect(res.headers.get('vary')).toBeNull();
      expect((await preflight(PORTAL)).headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      setHttpPolicy(httpPolicyFromSettings(parseSettings(httpSettingsSchema, { CORS_ORIGINS: PORTAL })));
    }
  });
});

describe('CORS_ORIGINS setting', () => {
  it('takes serialized origins only, naming the setting otherwise', () => {
    for (const bad of ['https://portal.example.com/', 'https://portal.example.com/app', 'portal.example.com', '*']) {
      expect(() => parseSettings(httpSettingsSchema, { CORS_ORIGINS: bad }), bad).toThrow(/CORS_ORIGINS/);
    }
    expect(parseSettings(httpSettingsSchema, { CORS_ORIGINS: 'https://a.example, http://127.0.0.1:5173,' }).CORS_ORIGINS).toEqual([
      'https://a.example',
      'http://127.0.0.1:5173',
    ]);
  });
});

describe('CORS through the dev HTTP host (what a browser portal on another loopback origin meets)', () => {
  let host: RunningHttpHost;
  beforeAll(async () => {
    host = await startHttpHost({ routes: registeredRoutes(), routePrefix });
  });
  afterAll(() => host?.close());

  it('routes OPTIONS on any API path to the preflight, and answers the actual request with CORS headers', async () => {
    for (const path of ['jobs', `jobs/${seeded.database.id}/download-link`, 'servers/x/databases/y']) {
      const res = await fetch(`${host.baseUrl}/api/${path}`, {
        method: 'OPTIONS',
        headers: { origin: PORTAL, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
      });
      expect(res.status, path).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe(PORTAL);
      expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    }
    const res = await fetch(`${host.baseUrl}/api/jobs`, { headers: { origin: PORTAL, authorization: `Bearer ${t.tokens.admin()}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(PORTAL);
    const other = await fetch(`${host.baseUrl}/api/jobs`, { method: 'OPTIONS', headers: { origin: OTHER, 'access-control-request-method': 'GET' } });
    expect(corsHeaderNames(other.headers)).toEqual([]);
  });
});
