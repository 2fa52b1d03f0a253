/**
 * The OpenAPI document: every registered route is in it with its parameters, security and problem+json
 * errors; every component is a valid JSON Schema 2020-12 whose refs resolve; and values the API really
 * produces or accepts (checked by the zod schemas the handlers use) validate against the components.
 */
import { randomUUID } from 'node:crypto';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { beforeAll, describe, expect, it } from 'vitest';
import '../../functions/index.js';
import { getOpenApiDocument, openApiDocument } from '../../functions/openapi.js';
import { registeredRoutes, routePrefix } from '../../functions/registry.js';
import { AuditEventView } from '../../shared/contracts/audit.js';
import { CreateJobRequest, JobView } from '../../shared/contracts/jobs.js';
import { RunnerEvent } from '../../shared/contracts/runner.js';
import { DatabaseInput, DatabaseView, ServerView } from '../../shared/contracts/servers.js';
import { problem } from '../../shared/http.js';
import type { OpenApiDocument } from '../../shared/openapi.js';
import { invoke } from '../support/http.js';

const DOC_ID = 'https://dbdist.dev/openapi.json';
let doc: OpenApiDocument;
let ajv: Ajv2020;

beforeAll(async () => {
  const res = await invoke(getOpenApiDocument, { path: 'openapi.json' });
  expect(res.status).toBe(200);
  doc = res.json;
  ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats.default(ajv);
  // Component refs are `#/components/schemas/X`, relative to the document: register the document's schemas
  // under its id so each component can be compiled by reference.
  // under its id so each component can be compiled by reference (`components` declared as a plain container).
  ajv.addKeyword({ keyword: 'components' });
  ajv.addSchema({ $id: DOC_ID, components: doc.components });
});

function validator(component: string) {
  return ajv.compile({ $ref: `${DOC_ID}#/components/schemas/${component}` });
}

function operation(path: string, method: string): any {
  return (doc.paths[path] as Record<string, any> | undefined)?.[method];
}

describe('GET /api/openapi.json', () => {
  it('is OpenAPI 3.1 with a bearer scheme, and JSON all the way through', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
    expect(openApiDocument()).toEqual(doc);
  });

  it('describes every registered route with its path parameters, security and problem responses', () => {
    // The CORS preflight is plumbing, not an operation (test/functions/cors.test.ts covers it).
    const documented = registeredRoutes().filter((route) => !route.undocumented);
    expect(documented.map((r) => r.name)).not.toContain('cors-preflight');
    expect(documented.length).toBeGreaterThanOrEqual(21);
    for (const route of documented) {
      const path = `/${routePrefix}/${route.route}`;
      for (const method of route.methods) {
        const op = operation(path, method.toLowerCase());
        expect(op, `${method} ${path}`).toBeDefined();
        expect(op.operationId).toBe(route.name);
        const pathParams = [...route.route.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
        expect(op.parameters.filter((p: any) => p.in === 'path').map((p: any) => p.name).sort()).toEqual(pathParams.sort());
        const anonymous = route.handler.spec.access === 'anonymous';
        expect(op.security).toEqual(anonymous ? [] : [{ bearerAuth: [] }]);
        if (!anonymous) {
          expect(op.responses['401'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
          expect(op.responses['403']).toBeDefined();
        }
        expect(op.responses['500']).toBeDefined();
      }
    }
    const operations = Object.values(doc.paths).flatMap((methods) => Object.keys(methods));
    expect(operations).toHaveLength(documented.reduce((n, r) => n + r.methods.length, 0));
  });

  it('documents query parameters from the same schemas the handlers parse', () => {
    const listJobs = operation('/api/jobs', 'get');
    expect(listJobs.parameters.map((p: any) => p.name).sort()).toEqual(['cursor', 'limit', 'status']);
    expect(listJobs.parameters.find((p: any) => p.name === 'limit').schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 200 });
    const audit = operation('/api/audit', 'get');
    expect(audit.parameters.map((p: any) => p.name).sort()).toEqual(['action', 'actor', 'cursor', 'format', 'from', 'jobId', 'limit', 'to']);
    expect(Object.keys(audit.responses['200'].content).sort()).toEqual(['application/json', 'text/csv']);
    expect(operation('/api/jobs', 'post').requestBody).toMatchObject({ required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/CreateJobRequest' } } } });
    expect(operation('/api/jobs/{id}/download-link', 'post').requestBody.required).toBe(false);
  });

  it('documents 413 and 415 wherever a body is read, and nowhere else', () => {
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods as Record<string, any>)) {
        const takesBody = op.requestBody !== undefined;
        expect(Boolean(op.responses['413']), `${method} ${path}`).toBe(takesBody);
        expect(Boolean(op.responses['415']), `${method} ${path}`).toBe(takesBody);
      }
    }
    expect(operation('/api/jobs', 'post').responses['415'].content['application/problem+json']).toBeDefined();
  });

  it('has only components that are valid JSON Schema 2020-12 and whose refs all resolve', () => {
    const names = Object.keys(doc.components.schemas);
    expect(names).toEqual(expect.arrayContaining(['Job', 'CreateJobRequest', 'DownloadLink', 'RunnerEvent', 'AuditEvent', 'Problem', 'Server', 'Database']));
    for (const name of names) {
      expect(ajv.validateSchema(doc.components.schemas[name]!), `${name}: ${ajv.errorsText()}`).toBe(true);
      expect(() => validator(name), name).not.toThrow();
    }
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
    for (const ref of refs) expect(names).toContain(ref.slice('"$ref":"#/components/schemas/'.length, -1));
  });

  it('accepts what the API returns and accepts, and rejects what it refuses', () => {
    const now = new Date().toISOString();
    const jobId = randomUUID();
    const job = JobView.parse({
      id: jobId,
      databaseId: randomUUID(),
      serverId: randomUUID(),
      databaseName: 'Sales',
      engine: 'sqlserver',
      status: 'Available',
      options: { compression: 'gzip', encryption: 'none' },
      requestedBy: { oid: randomUUID(), upn: 'a@contoso.example' },
      trigger: 'user',
      progress: null,
      sizeBytes: 10,
      sha256: 'b'.repeat(64),
      error: null,
      createdAt: now,
      updatedAt: now,
      acceptedAt: now,
      completedAt: now,
      expiresAt: now,
      approval: { decision: 'approved', by: { oid: randomUUID(), upn: 'amir@contoso.example' }, at: now, reason: 'OPS-7' },
      maskingVersion: 3,
      restoreRehearsal: { verifiedAt: now, durationMs: 1234, result: 'passed', error: null },
      recipients: null,
      integrity: { verifiedAt: now, reverifyDueAt: now, corruptAt: null },
    });
    expect(validator('Job')(job)).toBe(true);
    expect(validator('JobPage')({ items: [job], nextCursor: 'abc' })).toBe(true);
    expect(validator('Job')({ ...job, status: 'Exploded' })).toBe(false);
    const link = { url: 'https://st.blob.core.windows.net/c/b?sig=x', expiresAt: now, fileName: 'Sales.bak.gz', sizeBytes: 10, sha256: 'b'.repeat(64) };
    expect(validator('DownloadLink')({ ...link, correlationId: randomUUID(), boundToObjectId: randomUUID() })).toBe(true);
    expect(validator('DownloadLink')(link)).toBe(false); // every link carries its correlation id
    expect(validator('Job')({ ...job, status: 'Corrupt', error: { code: 'integrity_failed', message: 'changed' } })).toBe(true);

    const server = ServerView.parse({ id: randomUUID(), name: 'sql01', host: 'sql01', engine: 'postgres', description: null, runners: [{ clientId: randomUUID(), servicePrincipalId: randomUUID() }], createdAt: now, updatedAt: now });
    expect(validator('Server')(server)).toBe(true);
    const database = DatabaseView.parse({ ...DatabaseInput.parse({ name: 'Sales' }), id: randomUUID(), serverId: server.id, createdAt: now, updatedAt: now });
    expect(validator('Database')(database)).toBe(true);
    const auditEvent = AuditEventView.parse({ id: randomUUID(), at: now, actorType: 'user', actorId: 'x', actorName: null, action: 'job.requested', target: `job/${jobId}`, jobId, ip: null, userAgent: null, detail: {} });
    expect(validator('AuditEvent')(auditEvent)).toBe(true);

    // Request bodies are documented as accepted: defaults may be left out, unknown fields may not.
    const minimal = { databaseId: randomUUID() };
    expect(CreateJobRequest.safeParse(minimal).success).toBe(true);
    expect(validator('CreateJobRequest')(minimal)).toBe(true);
    expect(validator('CreateJobRequest')({ ...minimal, priority: 'high' })).toBe(false);
    const progress = { type: 'progress', eventId: 'evt-00000001', percent: 50, bytes: 100 };
    expect(RunnerEvent.safeParse(progress).success).toBe(true);
    expect(validator('RunnerEvent')(progress)).toBe(true);
    expect(validator('RunnerEvent')({ ...progress, type: 'exploded' })).toBe(false);

    expect(validator('Problem')(problem('conflict', 'Job is Available', { status: 409, instance: 'inv' }).jsonBody)).toBe(true);
    expect(validator('Problem')({ ...problem('validation_failed', 'bad', { errors: [{ field: 'body.x', message: 'm' }] }).jsonBody })).toBe(true);
  });
});
