/**
 * Strict requests, through the real handlers: bodies must be declared JSON (415), are refused over the size
 * limit before being parsed (413), every response carries the security headers, ids are read in any case and
 * names refuse bidirectional control characters with a message that says so.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { live } from '../../functions/health.js';
import { httpPolicyFromSettings, setHttpPolicy } from '../../functions/http-policy.js';
import { createJob, getJob } from '../../functions/jobs.js';
import { createServer } from '../../functions/servers.js';
import { httpSettingsSchema, parseSettings } from '../../shared/config.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';
import { invoke } from '../support/http.js';

let t: TestDeps;
let seeded: SeededDatabase;

beforeAll(async () => {
  t = await startTestDeps();
});
afterAll(async () => {
  setHttpPolicy(undefined);
  await t?.close();
});
beforeEach(async () => {
  setHttpPolicy(httpPolicyFromSettings(parseSettings(httpSettingsSchema, {})));
  seeded = await seedDatabase(t.deps.store);
});

const jobsOfDatabase = async (databaseId: string) =>
  (await t.deps.store.listJobs({ limit: 200 })).items.filter((job) => job.databaseId === databaseId);

describe('request bodies', () => {
  it('refuses a JSON body not declared application/json with 415 problem+json, writing nothing', async () => {
    const body = JSON.stringify({ databaseId: seeded.database.id });
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', undefined]) {
      const res = await invoke(createJob, {
        method: 'POST',
        path: 'jobs',
        token: t.tokens.admin(),
        body,
        headers: contentType ? { 'content-type': contentType } : { 'content-type': '' },
      });
      expect(res.status, String(contentType)).toBe(415);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.json).toMatchObject({ code: 'unsupported_media_type', errors: [{ field: 'content-type' }] });
    }
    expect(await jobsOfDatabase(seeded.database.id)).toEqual([]);
  });

  it('accepts application/json with parameters, and an empty optional body with no content type', async () => {
    const res = await invoke(createJob, {
      method: 'POST',
      path: 'jobs',
      token: t.tokens.admin(),
      body: JSON.stringify({ databaseId: seeded.database.id }),
      headers: { 'content-type': 'Application/JSON; charset=utf-8' },
    });
    expect(res.status).toBe(202);
  });

  it('refuses a body over 64 KiB with 413, by its declared length and by its real length', async () => {
    const big = JSON.stringify({ databaseId: seeded.database.id, reason: 'x'.repeat(70 * 1024) });
    const declared = await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body: '{}', headers: { 'content-length': String(big.length) } });
    expect(declared.status).toBe(413);
    const real = await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body: big });
    expect(real.status).toBe(413);
    expect(real.json).toMatchObject({ code: 'payload_too_large', detail: 'The body is larger than 65536 bytes.' });
    // Malformed JSON over the limit is still a 413: the size is decided before parsing.
    const malformed = await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body: `{${'x'.repeat(70 * 1024)}` });
    expect(malformed.status).toBe(413);
    expect(await jobsOfDatabase(seeded.database.id)).toEqual([]);
  });

  it('takes its limit from MAX_REQUEST_BODY_BYTES', async () => {
    setHttpPolicy(httpPolicyFromSettings(parseSettings(httpSettingsSchema, { MAX_REQUEST_BODY_BYTES: '2048' })));
    const body = { databaseId: seeded.database.id, reason: 'x'.repeat(3000) };
    expect((await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body })).status).toBe(413);
    expect(() => parseSettings(httpSettingsSchema, { MAX_REQUEST_BODY_BYTES: '10' })).toThrow(/MAX_REQUEST_BODY_BYTES/);
  });
});

describe('security headers', () => {
  it('are on every response: success, refusal and anonymous probe', async () => {
    const responses = [
      await invoke(live, { path: 'health/live' }),
      await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body: { databaseId: seeded.database.id } }),
      await invoke(getJob, { path: 'jobs/x', params: { id: 'not-a-uuid' }, token: t.tokens.admin() }),
      await invoke(getJob, { path: 'jobs/x', params: { id: randomUUID() } }),
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 202, 400, 401]);
    for (const res of responses) {
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    }
  });
});

describe('a malformed HTTP setting', () => {
  it('answers 500 problem+json naming nothing, with the security headers, and logs the setting', async () => {
    setHttpPolicy(undefined);
    const saved = process.env.CORS_ORIGINS;
    process.env.CORS_ORIGINS = 'https://portal.example.com/';
    try {
      const res = await invoke(createJob, { method: 'POST', path: 'jobs', token: t.tokens.admin(), body: { databaseId: seeded.database.id } });
      expect(res.status).toBe(500);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.text).not.toContain('CORS_ORIGINS');
      expect(res.logs.find((l) => l.level === 'error')?.message).toContain('CORS_ORIGINS');
    } finally {
      if (saved === undefined) delete process.env.CORS_ORIGINS;
      else process.env.CORS_ORIGINS = saved;
    }
  });
});

describe('ids', () => {
  it('are read in any case: an upper-case job id finds the job', async () => {
    const oid = randomUUID();
    const job = await seedJob(t.deps.store, seeded, { requesterOid: oid });
    const res = await invoke(getJob, { path: `jobs/${job.id.toUpperCase()}`, params: { id: job.id.toUpperCase() }, token: t.tokens.requester({ oid }) });
    expect(res.status).toBe(200);
    expect(res.json.id).toBe(job.id);
  });
});

describe('names', () => {
  const register = (name: string) =>
    invoke(createServer, { method: 'POST', path: 'servers', token: t.tokens.admin(), body: { name, host: 'sql01.corp.example', engine: 'sqlserver' } });

  it('refuse bidirectional control characters with a message that says so', async () => {
    for (const char of ['\u202a', '\u202e', '\u2066', '\u2069']) {
      const res = await register(`Sales${char}gpj.exe`);
      expect(res.status).toBe(400);
      expect(res.json.errors).toEqual([{ field: 'body.name', message: expect.stringMatching(/bidirectional control characters/) }]);
    }
    expect((await register('Sales\u200dEU')).status).toBe(201); // a joiner is not an override
  });

  it('say an empty name is empty, not that it holds control characters', async () => {
    const res = await register('   ');
    expect(res.status).toBe(400);
    expect(res.json.errors).toEqual([{ field: 'body.name', message: 'must not be empty' }]);
  });
});
