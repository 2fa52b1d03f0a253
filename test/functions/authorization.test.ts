/**
 * The authorization matrix: every endpoint × every caller kind → expected status, and every kind of bad token
 * against every authenticated endpoint. A refused call must leave no trace: no new server, database or job
 * rows, no new audit rows, no orchestration started or event raised. The one exception is the download link,
 * where a refusal writes exactly one `sas.download_denied` audit row.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// Every function file, as the Function App loads them: the matrix must cover every route the app registers.
import '../../functions/index.js';
import { queryAudit } from '../../functions/audit.js';
import { createDatabase, deleteDatabase, getDatabase, listDatabases, listRequestableDatabases, updateDatabase } from '../../functions/databases.js';
import type { EndpointHandler } from '../../functions/endpoint.js';
import { live, ready } from '../../functions/health.js';
import { corsPreflight } from '../../functions/preflight.js';
import { manifestKeys, verifyJob } from '../../functions/integrity.js';
import { approveJob, cancelJob, createDownloadLink, rejectJob, createJob, deleteJobBackup, getJob, listJobs, rehearseJob } from '../../functions/jobs.js';
import { getMetrics } from '../../functions/metrics.js';
import { getOpenApiDocument } from '../../functions/openapi.js';
import { registeredRoutes } from '../../functions/registry.js';
import { getMyRecipients, listRetiredRecipientCopies, putMyRecipients } from '../../functions/recipients.js';
import {
  issueProbeTarget,
  issueRehearsalSource,
  issueUploadTarget,
  listStagedBlocks,
  listRunners,
  postRehearsalReport,
  postRunnerEvent,
  postRunnerHeartbeat,
} from '../../functions/runner.js';
import { createServer, deleteServer, getServer, listServers, updateServer } from '../../functions/servers.js';
import { type SeededDatabase, type TestDeps, seedDatabase, seedJob, startTestDeps } from '../support/deps.js';
import { type InvokeOptions, invoke } from '../support/http.js';

const callers = ['admin', 'auditor', 'requester', 'runner', 'noRole'] as const;
type CallerKind = (typeof callers)[number];

let t: TestDeps;
let seeded: SeededDatabase;
const requesterOid = randomUUID();
const tokenOf = {} as Record<CallerKind, string>;

beforeAll(async () => {
  t = await startTestDeps();
  seeded = await seedDatabase(t.deps.store);
  tokenOf.admin = t.tokens.admin();
  tokenOf.auditor = t.tokens.auditor();
  tokenOf.requester = t.tokens.requester({ oid: requesterOid, extraGroups: [seeded.requesterGroupId] });
  tokenOf.runner = t.tokens.runner();
  tokenOf.noRole = t.tokens.noRole();
  // Records which handler reached for the Durable client (services ask `scope.orchestrations` lazily).
  const orchestrationsOf = t.deps.orchestrations;
  t.deps.orchestrations = (context) => {
    if (handlerUnderTest) usedDurableClient.add(handlerUnderTest);
    return orchestrationsOf(context);
  };
});

let handlerUnderTest: EndpointHandler | undefined;
const usedDurableClient = new Set<EndpointHandler>();
afterAll(() => t?.close());

/** Builds a fresh request for one call: each call gets its own resources so that successes do not interfere. */
type Prepare = () => Promise<Omit<InvokeOptions, 'token'>>;

interface EndpointCase {
  name: string;
  handler: EndpointHandler;
  prepare: Prepare;
  expected: Record<CallerKind, number>;
  /** The refusal is audited with this action (download link, approve, reject). */
  refusalAudited?: 'sas.download_denied' | 'job.approval_denied';
}

const only = (allowed: Partial<Record<CallerKind, number>>): Record<CallerKind, number> => ({
  admin: 403,
  auditor: 403,
  requester: 403,
  runner: 403,
  noRole: 403,
  ...allowed,
});
const everyone = (status: number) => only({ admin: status, auditor: status, requester: status, runner: status, noRole: status });

/** A job in `status`, with the live orchestration such a job has (cancel/delete then answer 202). */
async function job(status: Parameters<typeof seedJob>[2]['status']) {
  const seededJob = await seedJob(t.deps.store, seeded, { requesterOid, status });
  t.orchestrations.instance(seededJob.id, 'Running');
  return { id: seededJob.id, blobPath: seededJob.blobPath };
}
const newServerId = async () => (await seedDatabase(t.deps.store)).server.id;
async function lonelyServerId() {
  const id = randomUUID();
  await t.deps.store.createServer({ id, name: 'lonely', host: 'h', engine: 'postgres' }, { actorType: 'system', actorId: 'seed', action: 'server.created', target: `server/${id}` });
  return id;
}

const cases: EndpointCase[] = [
  { name: 'OPTIONS {*path}', handler: corsPreflight, prepare: async () => ({ method: 'OPTIONS', path: 'jobs' }), expected: everyone(204) },
  { name: 'GET health/live', handler: live, prepare: async () => ({ path: 'health/live' }), expected: everyone(200) },
  { name: 'GET health/ready', handler: ready, prepare: async () => ({ path: 'health/ready' }), expected: everyone(200) },
  { name: 'GET openapi.json', handler: getOpenApiDocument, prepare: async () => ({ path: 'openapi.json' }), expected: everyone(200) },
  { name: 'GET servers', handler: listServers, prepare: async () => ({ path: 'servers' }), expected: only({ admin: 200 }) },
  {
    name: 'POST servers',
    handler: createServer,
    prepare: async () => ({ method: 'POST', path: 'servers', body: { name: 'sql02', host: 'sql02.corp.example', engine: 'sqlserver' } }),
    expected: only({ admin: 201 }),
  },
  {
    name: 'GET servers/{id}',
    handler: getServer,
    prepare: async () => {
      const id = await newServerId();
      return { path: `servers/${id}`, params: { id } };
    },
    expected: only({ admin: 200 }),
  },
  {
    name: 'PATCH servers/{id}',
    handler: updateServer,
    prepare: async () => {
      const id = await newServerId();
      return { method: 'PATCH', path: `servers/${id}`, params: { id }, body: { description: 'changed' } };
    },
    expected: only({ admin: 200 }),
  },
  {
    name: 'DELETE servers/{id}',
    handler: deleteServer,
    prepare: async () => {
      const id = await lonelyServerId();
      return { method: 'DELETE', path: `servers/${id}`, params: { id } };
    },
    expected: only({ admin: 204 }),
  },
  {
    name: 'GET servers/{serverId}/databases',
    handler: listDatabases,
    prepare: async () => ({ path: `servers/${seeded.server.id}/databases`, params: { serverId: seeded.server.id } }),
    expected: only({ admin: 200 }),
  },
  {
    name: 'POST servers/{serverId}/databases',
    handler: createDatabase,
    prepare: async () => ({
      method: 'POST',
      path: `servers/${seeded.server.id}/databases`,
      params: { serverId: seeded.server.id },
      body: { name: 'Finance', requesterGroupIds: [randomUUID()] },
    }),
    expected: only({ admin: 201 }),
  },
  {
    name: 'GET servers/{serverId}/databases/{id}',
    handler: getDatabase,
    prepare: async () => {
      const { server, database } = await seedDatabase(t.deps.store);
      return { path: `servers/${server.id}/databases/${database.id}`, params: { serverId: server.id, id: database.id } };
    },
    expected: only({ admin: 200 }),
  },
  {
    name: 'PATCH servers/{serverId}/databases/{id}',
    handler: updateDatabase,
    prepare: async () => {
      const { server, database } = await seedDatabase(t.deps.store);
      return { method: 'PATCH', path: `servers/${server.id}/databases/${database.id}`, params: { serverId: server.id, id: database.id }, body: { enabled: false } };
    },
    expected: only({ admin: 200 }),
  },
  {
    name: 'DELETE servers/{serverId}/databases/{id}',
    handler: deleteDatabase,
    prepare: async () => {
      const { server, database } = await seedDatabase(t.deps.store);
      return { method: 'DELETE', path: `servers/${server.id}/databases/${database.id}`, params: { serverId: server.id, id: database.id } };
    },
    expected: only({ admin: 204 }),
  },
  {
    name: 'POST jobs',
    handler: createJob,
    prepare: async () => ({ method: 'POST', path: 'jobs', body: { databaseId: seeded.database.id } }),
    expected: only({ admin: 202, requester: 202 }),
  },
  { name: 'GET jobs', handler: listJobs, prepare: async () => ({ path: 'jobs' }), expected: only({ admin: 200, auditor: 200, requester: 200 }) },
  { name: 'GET metrics', handler: getMetrics, prepare: async () => ({ path: 'metrics' }), expected: only({ admin: 200, auditor: 200 }) },
  { name: 'GET databases', handler: listRequestableDatabases, prepare: async () => ({ path: 'databases' }), expected: only({ admin: 200, requester: 200 }) },
  {
    name: 'GET jobs/{id}',
    handler: getJob,
    prepare: async () => {
      const { id } = await job('Running');
      return { path: `jobs/${id}`, params: { id } };
    },
    expected: only({ admin: 200, auditor: 200, requester: 200 }),
  },
  {
    name: 'POST jobs/{id}/cancel',
    handler: cancelJob,
    prepare: async () => {
      const { id } = await job('Running');
      return { method: 'POST', path: `jobs/${id}/cancel`, params: { id } };
    },
    expected: only({ admin: 202, requester: 202 }),
  },
  {
    name: 'DELETE jobs/{id}/backup',
    handler: deleteJobBackup,
    prepare: async () => {
      const { id } = await job('Available');
      return { method: 'DELETE', path: `jobs/${id}/backup`, params: { id } };
    },
    expected: only({ admin: 202, requester: 202 }),
  },
  {
    name: 'POST jobs/{id}/download-link',
    handler: createDownloadLink,
    prepare: async () => {
      const { id } = await job('Available');
      return { method: 'POST', path: `jobs/${id}/download-link`, params: { id } };
    },
    expected: only({ admin: 200, requester: 200 }),
    refusalAudited: 'sas.download_denied',
  },
  // No caller here holds the Approver role (test/functions/approvals.test.ts covers approvers).
  {
    name: 'POST jobs/{id}/approve',
    handler: approveJob,
    prepare: async () => {
      const { id } = await job('AwaitingApproval');
      return { method: 'POST', path: `jobs/${id}/approve`, params: { id } };
    },
    expected: only({}),
    refusalAudited: 'job.approval_denied',
  },
  {
    name: 'POST jobs/{id}/reject',
    handler: rejectJob,
    prepare: async () => {
      const { id } = await job('AwaitingApproval');
      return { method: 'POST', path: `jobs/${id}/reject`, params: { id }, body: { reason: 'no' } };
    },
    expected: only({}),
    refusalAudited: 'job.approval_denied',
  },
  {
    name: 'POST jobs/{id}/rehearse',
    handler: rehearseJob,
    prepare: async () => {
      const { id } = await job('Available');
      return { method: 'POST', path: `jobs/${id}/rehearse`, params: { id } };
    },
    expected: only({ admin: 202 }),
  },
  {
    name: 'POST jobs/{id}/verify',
    handler: verifyJob,
    prepare: async () => {
      const { id } = await job('Available');
      return { method: 'POST', path: `jobs/${id}/verify`, params: { id } };
    },
    expected: only({ admin: 202, auditor: 202 }),
  },
  { name: 'GET manifest-keys', handler: manifestKeys, prepare: async () => ({ path: 'manifest-keys' }), expected: everyone(200) },
  { name: 'GET me/recipients', handler: getMyRecipients, prepare: async () => ({ path: 'me/recipients' }), expected: only({ admin: 200, requester: 200 }) },
  {
    name: 'PUT me/recipients',
    handler: putMyRecipients,
    prepare: async () => ({ method: 'PUT', path: 'me/recipients', body: { recipients: [] } }),
    expected: only({ admin: 200, requester: 200 }),
  },
  {
    name: 'GET recipients/retired-copies',
    handler: listRetiredRecipientCopies,
    prepare: async () => ({ path: 'recipients/retired-copies' }),
    expected: only({ admin: 200 }),
  },
  { name: 'GET audit', handler: queryAudit, prepare: async () => ({ path: 'audit' }), expected: only({ admin: 200, auditor: 200 }) },
  {
    name: 'POST runner/jobs/{id}/upload-target',
    handler: issueUploadTarget,
    prepare: async () => {
      const { id } = await job('Running');
      return { method: 'POST', path: `runner/jobs/${id}/upload-target`, params: { id } };
    },
    expected: only({ runner: 200 }),
  },
  {
    name: 'POST runner/jobs/{id}/staged-blocks',
    handler: listStagedBlocks,
    prepare: async () => {
      const { id } = await job('Running');
      return { method: 'POST', path: `runner/jobs/${id}/staged-blocks`, params: { id } };
    },
    expected: only({ runner: 200 }),
  },
  {
    name: 'POST runner/jobs/{id}/events',
    handler: postRunnerEvent,
    prepare: async () => {
      const { id } = await job('Running');
      return { method: 'POST', path: `runner/jobs/${id}/events`, params: { id }, body: { type: 'progress', eventId: `evt-${randomUUID()}`, percent: 10, bytes: 1024 } };
    },
    expected: only({ runner: 202 }),
  },
  {
    name: 'POST runner/jobs/{id}/rehearsal-source',
    handler: issueRehearsalSource,
    prepare: async () => {
      const { id } = await job('Available');
      return { method: 'POST', path: `runner/jobs/${id}/rehearsal-source`, params: { id } };
    },
    expected: only({ runner: 200 }),
  },
  {
    name: 'POST runner/jobs/{id}/rehearsal',
    handler: postRehearsalReport,
    prepare: async () => {
      const { id } = await job('Available');
      return { method: 'POST', path: `runner/jobs/${id}/rehearsal`, params: { id }, body: { rehearsalId: randomUUID(), result: 'passed', restoreDurationMs: 1200 } };
    },
    expected: only({ runner: 200 }),
  },
  {
    name: 'POST runner/heartbeat',
    handler: postRunnerHeartbeat,
    prepare: async () => ({ method: 'POST', path: 'runner/heartbeat', body: { runnerId: 'host-01', version: '1.0.0', serverIds: [], inFlightJobs: 0 } }),
    expected: only({ runner: 200 }),
  },
  { name: 'POST runner/probe-target', handler: issueProbeTarget, prepare: async () => ({ method: 'POST', path: 'runner/probe-target' }), expected: only({ runner: 200 }) },
  { name: 'GET runners', handler: listRunners, prepare: async () => ({ path: 'runners' }), expected: only({ admin: 200 }) },
];

async function countAll<T>(page: (cursor?: string) => Promise<{ items: T[]; nextCursor?: string }>): Promise<number> {
  let count = 0;
  let cursor: string | undefined;
  do {
    const result = await page(cursor);
    count += result.items.length;
    cursor = result.nextCursor;
  } while (cursor);
  return count;
}

/**
 * Everything a refused request could have changed: server rows, the databases of the server it names, the
 * job it names, the number of jobs and audit rows, and what was asked of the orchestrations.
 */
async function footprint(request: Omit<InvokeOptions, 'token'>) {
  const { store } = t.deps;
  const serverId = request.params?.serverId ?? seeded.server.id;
  const jobId = request.params?.id;
  const [servers, databases, targetJob, jobs, audit] = await Promise.all([
    store.listServers(),
    store.listDatabases(serverId),
    jobId ? store.getJob(jobId) : undefined,
    countAll((cursor) => store.listJobs({ limit: 200, ...(cursor ? { cursor } : {}) })),
    countAll((cursor) => store.listAudit({ limit: 200, ...(cursor ? { cursor } : {}) })),
  ]);
  return {
    servers: servers.map((s) => `${s.id}:${s.updatedAt.toISOString()}`).sort(),
    databases: databases.map((d) => `${d.id}:${d.updatedAt.toISOString()}`).sort(),
    targetJob,
    jobs,
    audit,
    orchestrations: t.orchestrations.snapshot(),
  };
}

describe('authorization matrix: endpoint × caller', () => {
  it('covers every registered route', () => {
    const covered = new Set(cases.map((c) => c.handler));
    expect(registeredRoutes().filter((route) => !covered.has(route.handler)).map((r) => r.name)).toEqual([]);
  });

  for (const endpointCase of cases) {
    for (const caller of callers) {
      const expected = endpointCase.expected[caller];
      it(`${endpointCase.name} as ${caller} → ${expected}`, async () => {
        const request = await endpointCase.prepare();
        const before = await footprint(request);
        handlerUnderTest = endpointCase.handler;
        const res = await invoke(endpointCase.handler, { ...request, token: tokenOf[caller] }).finally(() => (handlerUnderTest = undefined));
        expect(res.status, res.text).toBe(expected);
        if (expected !== 403) return;
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        expect(res.json).toMatchObject({ status: 403, code: 'forbidden' });
        const after = await footprint(request);
        if (endpointCase.refusalAudited) {
          expect(after).toEqual({ ...before, audit: before.audit + 1 });
          const newest = (await t.deps.store.listAudit({ limit: 1 })).items[0];
          expect(newest).toMatchObject({ action: endpointCase.refusalAudited, jobId: request.params?.id });
        } else {
          expect(after).toEqual(before);
        }
      });
    }
  }
});

describe('Durable client binding', () => {
  // Outside Azure the binding is not needed, so a missing `durableClient: true` would only fail there.
  it('is declared by every route whose handler used the Durable client in the matrix above', () => {
    const needed = registeredRoutes().filter((route) => usedDurableClient.has(route.handler));
    expect(needed.map((route) => route.name)).toEqual(expect.arrayContaining(['jobs-create', 'jobs-cancel', 'jobs-delete-backup']));
    expect(needed.filter((route) => !route.durableClient).map((route) => route.name)).toEqual([]);
  });
});

describe('bad tokens are refused by every authenticated endpoint, writing nothing', () => {
  type BadToken = { name: string; token: () => Promise<string | undefined>; status: number; detail: RegExp };
  const badTokens: BadToken[] = [
    { name: 'no token', token: async () => undefined, status: 401, detail: /no bearer token/i },
    { name: 'expired', token: async () => t.issuer.issueUserToken({ groups: [], expiresIn: -3600 }), status: 401, detail: /expired/i },
    { name: 'wrong audience', token: async () => t.issuer.issueUserToken({ audience: randomUUID() }), status: 401, detail: /audience/i },
    {
      name: 'wrong issuer',
      token: async () => t.issuer.issueUserToken({ issuer: `https://login.example.net/${t.issuer.tenantId}/v2.0` }),
      status: 401,
      detail: /issuer/i,
    },
    { name: 'wrong tenant', token: async () => t.issuer.issueUserToken({ tenantId: randomUUID() }), status: 401, detail: /tenant/i },
    { name: 'alg none', token: async () => t.issuer.forge.algNone(t.issuer.validPayload({ roles: ['Admin'] })), status: 401, detail: /RS256/ },
    {
      name: 'HS256 signed with the public key',
      token: async () => t.issuer.forge.hs256WithPublicKey(t.issuer.validPayload({ roles: ['Admin'] })),
      status: 401,
      detail: /RS256/,
    },
    { name: 'unknown kid', token: () => t.issuer.forge.unknownKid(t.issuer.validPayload({ roles: ['Admin'] })), status: 401, detail: /unknown key/i },
    {
      name: 'tampered payload',
      token: async () => t.issuer.forge.tamper(t.issuer.issueUserToken({ groups: [] }), { roles: ['Admin'] }),
      status: 401,
      detail: /signature/i,
    },
    { name: 'groups overage', token: async () => t.issuer.issueUserToken({ groupsOverage: 'claim_names' }), status: 403, detail: /group/i },
  ];
  // One prepared request per endpoint serves every bad token: none of them may change anything.
  let prepared: Array<{ endpointCase: EndpointCase; request: Omit<InvokeOptions, 'token'> }>;
  beforeAll(async () => {
    const authenticated = cases.filter((c) => c.handler.spec.access !== 'anonymous');
    prepared = [];
    for (const endpointCase of authenticated) prepared.push({ endpointCase, request: await endpointCase.prepare() });
  });

  for (const bad of badTokens) {
    it(`${bad.name} → ${bad.status}`, async () => {
      const token = await bad.token();
      const before = await Promise.all(prepared.map(({ request }) => footprint(request)));
      for (const { endpointCase, request } of prepared) {
        const res = await invoke(endpointCase.handler, { ...request, ...(token ? { token } : {}) });
        expect(res.status, `${endpointCase.name}: ${res.text}`).toBe(bad.status);
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        expect(res.json.detail).toMatch(bad.detail);
        if (bad.status === 401) expect(res.headers.get('www-authenticate')).toBe('Bearer');
      }
      expect(await Promise.all(prepared.map(({ request }) => footprint(request)))).toEqual(before);
    });
  }
});
