/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the same zod schemas the handlers parse with
 * (zod 4's `z.toJSONSchema`). Every schema carrying `.meta({ id })` is a component; request bodies are rendered
 * as the API accepts them (defaults optional), responses as it returns them (defaults filled in).
 * Framework-free: the caller (functions/openapi.ts) passes the registered routes.
 */
import { z } from 'zod';
import { AuditEventView } from './contracts/audit.js';
import { RetiredRecipientCopy } from './contracts/encryption.js';
import { JobView } from './contracts/jobs.js';
import { DatabaseView, RequestableDatabaseView, ServerView } from './contracts/servers.js';
import { statusByCode } from './http.js';

// ---- Schemas that exist only to describe responses ------------------------------------------------------

function pageOf(item: z.ZodType, id: string) {
  return z
    .object({
      items: z.array(item),
      nextCursor: z.string().optional().describe('Pass as `cursor` to get the next page; absent on the last page'),
    })
    .meta({ id });
}

export const JobPage = pageOf(JobView, 'JobPage');
export const AuditPage = pageOf(AuditEventView, 'AuditPage');
export const ServerList = z.object({ items: z.array(ServerView) }).meta({ id: 'ServerList' });
export const DatabaseList = z.object({ items: z.array(DatabaseView) }).meta({ id: 'DatabaseList' });
export const RetiredRecipientCopyList = z.object({ items: z.array(RetiredRecipientCopy) }).meta({ id: 'RetiredRecipientCopyList' });
export const RequestableDatabaseList = z.object({ items: z.array(RequestableDatabaseView) }).meta({ id: 'RequestableDatabaseList' });

export const HealthStatus = z
  .object({
    status: z.literal('ok'),
    checks: z.array(z.object({ name: z.string(), ok: z.boolean() })).optional(),
  })
  .meta({ id: 'HealthStatus' });

const errorCodes = Object.keys(statusByCode) as [string, ...string[]];

/** RFC 9457 problem details as shared/http.ts writes them; extension members (e.g. a job's `status`) allowed. */
export const ProblemDetailsSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(errorCodes),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    instance: z.string().optional(),
  })
  .meta({ id: 'Problem' });

// ---- Route descriptions ---------------------------------------------------------------------------------

export type RouteAccess = 'anonymous' | 'authenticated' | { anyOf: readonly string[] };

export interface DocumentedResponse {
  status: number;
  description: string;
  schema?: z.ZodType;
  contentType?: string;
  headers?: Record<string, string>;
}

export interface DocumentedRoute {
  /** Function name; becomes the operationId. */
  name: string;
  /** Route template under the prefix, e.g. `jobs/{id}`. */
  route: string;
  methods: readonly string[];
  summary: string;
  access: RouteAccess;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  responses: readonly DocumentedResponse[];
}

type JsonSchema = Record<string, unknown>;

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  jsonSchemaDialect: string;
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, JsonSchema>; securitySchemes: Record<string, unknown> };
}

const COMPONENT_PREFIX = '#/components/schemas/';
const BEARER = 'bearerAuth';

type Io = 'input' | 'output';

// ---- Generation -----------------------------------------------------------------------------------------

/** Renders every schema with an id in one io mode, refs pointing at components. */
function renderComponents(io: Io): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(z.globalRegistry, {
    io,
    uri: (id) => `${COMPONENT_PREFIX}${id}`,
    // Unrelated schemas elsewhere in the process may carry ids; only referenced components are kept below.
    unrepresentable: 'any',
  });
  const components: Record<string, JsonSchema> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    const { $schema: _dialect, $id: _id, ...rest } = schema as JsonSchema;
    components[id] = rest;
  }
  return components;
}

/** A schema without an id, inline (any nested id'd schema is inlined too, so no dangling $defs). */
function inlineSchema(schema: z.ZodType, io: Io): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, metadata: z.registry(), unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

function schemaRef(schema: z.ZodType, io: Io, used: Map<string, Io[]>): JsonSchema {
  const id = (z.globalRegistry.get(schema) as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string') return inlineSchema(schema, io);
  used.set(id, [...(used.get(id) ?? []), io]);
  return { $ref: `${COMPONENT_PREFIX}${id}` };
}

function parameters(schema: z.ZodType | undefined, location: 'path' | 'query'): unknown[] {
  if (!schema) return [];
  const rendered = inlineSchema(schema, 'input');
  const properties = (rendered.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((rendered.required ?? []) as string[]);
  return Object.entries(properties).map(([name, propertySchema]) => {
    const { description, ...rest } = propertySchema;
    return {
      name,
      in: location,
      required: location === 'path' || required.has(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}

function problemResponse(description: string) {
  return { description, content: { 'application/problem+json': { schema: { $ref: `${COMPONENT_PREFIX}Problem` } } } };
}

function errorResponses(route: DocumentedRoute, method: string): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  const takesInput = Boolean(route.params || route.query || route.body);
  if (takesInput) responses['400'] = problemResponse('The request is not valid; `errors` names the fields');
  if (route.body) {
    responses['413'] = problemResponse('The body is larger than the limit (MAX_REQUEST_BODY_BYTES, 64 KiB by default)');
    responses['415'] = problemResponse('The body is not declared `content-type: application/json`');
  }
  if (route.access !== 'anonymous') {
    responses['401'] = problemResponse('No valid bearer token');
    responses['403'] = problemResponse('The caller lacks the role or ownership needed, or the token has a groups overage');
  }
  if (route.params) responses['404'] = problemResponse('No such resource');
  if (route.access !== 'anonymous' && method !== 'get') {
    responses['409'] = problemResponse('The resource is in a state that does not allow this (a job\'s current status is in `jobStatus`)');
  }
  responses['500'] = problemResponse('Unexpected failure; `instance` is the invocation id to quote');
  responses['503'] = problemResponse('A dependency is unavailable; worth retrying');
  return responses;
}

function accessText(access: RouteAccess): string {
  if (access === 'anonymous') return 'No token needed.';
  if (access === 'authenticated') return 'Any valid token; the operation decides who may act.';
  return `Roles: ${access.anyOf.join(', ')}.`;
}

function operation(route: DocumentedRoute, method: string, used: Map<string, Io[]>): Record<string, unknown> {
  const responses: Record<string, { description: string; content?: Record<string, unknown>; headers?: Record<string, unknown> }> = {};
  for (const documented of route.responses) {
    const key = String(documented.status);
    const entry = (responses[key] ??= { description: documented.description });
    if (entry.description !== documented.description) entry.description = `${entry.description}. ${documented.description}`;
    if (documented.schema || documented.contentType) {
      const contentType = documented.contentType ?? 'application/json';
      entry.content = {
        ...entry.content,
        [contentType]: documented.schema ? { schema: schemaRef(documented.schema, 'output', used) } : { schema: { type: 'string' } },
      };
    }
    if (documented.headers) {
      entry.headers = Object.fromEntries(
        Object.entries(documented.headers).map(([name, description]) => [name, { description, schema: { type: 'string' } }]),
      );
    }
  }
  return {
    operationId: route.name,
    summary: route.summary,
    description: accessText(route.access),
    'x-dbdist-access': route.access,
    security: route.access === 'anonymous' ? [] : [{ [BEARER]: [] }],
    parameters: [...parameters(route.params, 'path'), ...parameters(route.query, 'query')],
    ...(route.body
      ? {
          requestBody: {
            // An empty body reads as `{}` (functions/endpoint.ts): a body whose fields are all optional may be left out.
            required: !route.body.safeParse({}).success,
            content: { 'application/json': { schema: schemaRef(route.body, 'input', used) } },
          },
        }
      : {}),
    responses: { ...responses, ...errorResponses(route, method) },
  };
}

function refsIn(value: unknown, found: Set<string>): Set<string> {
  if (Array.isArray(value)) value.forEach((item) => refsIn(item, found));
  else if (value && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (key === '$ref' && typeof inner === 'string' && inner.startsWith(COMPONENT_PREFIX)) found.add(inner.slice(COMPONENT_PREFIX.length));
      else refsIn(inner, found);
    }
  }
  return found;
}

/**
 * Picks each referenced component in the io mode it is used in, following refs between components. A
 * component used both ways must render the same both ways, or the document would lie about one of them.
 */
function selectComponents(used: Map<string, Io[]>): Record<string, JsonSchema> {
  const rendered: Record<Io, Record<string, JsonSchema>> = { input: renderComponents('input'), output: renderComponents('output') };
  const chosen = new Map<string, { io: Io; schema: JsonSchema }>();
  const pending: Array<[string, Io]> = [...used].flatMap(([id, modes]) => modes.map((io) => [id, io] as [string, Io]));
  pending.push(['Problem', 'output']);
  while (pending.length > 0) {
    const [id, io] = pending.pop()!;
    const schema = rendered[io][id];
    if (!schema) throw new Error(`OpenAPI: component ${id} is referenced but no schema carries that id`);
    const previous = chosen.get(id);
    if (previous) {
      if (previous.io !== io && JSON.stringify(previous.schema) !== JSON.stringify(schema)) {
        throw new Error(`OpenAPI: component ${id} is used as request and response and renders differently; give each its own id`);
      }
      continue;
    }
    chosen.set(id, { io, schema });
    for (const ref of refsIn(schema, new Set())) pending.push([ref, io]);
  }
  return Object.fromEntries([...chosen].sort(([a], [b]) => a.localeCompare(b)).map(([id, { schema }]) => [id, schema]));
}

export function buildOpenApiDocument(
  routes: readonly DocumentedRoute[],
  options: { prefix: string; version: string },
): OpenApiDocument {
  const used = new Map<string, Io[]>();
  const paths: OpenApiDocument['paths'] = {};
  for (const route of routes) {
    const path = `/${options.prefix}/${route.route}`;
    for (const method of route.methods) {
      const lower = method.toLowerCase();
      (paths[path] ??= {})[lower] = operation(route, lower, used);
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'dbdist API',
      version: options.version,
      description:
        'Request copies of registered SQL databases, follow their jobs and fetch short-lived download links. ' +
        'Authenticate with an Entra ID bearer token for this API; errors are RFC 9457 problem+json.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: {
      schemas: selectComponents(used),
      securitySchemes: { [BEARER]: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Entra ID access token' } },
    },
  };
}
