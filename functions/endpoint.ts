/**
 * The one wrapper every HTTP handler goes through. An endpoint declares who may call it and the zod schemas of
 * its route parameters, query and body; the wrapper authenticates, applies the coarse role gate, parses, runs
 * the handler and turns any thrown error into problem+json (shared/http.ts). The same declaration feeds the
 * OpenAPI document (shared/openapi.ts), so what is documented is what is enforced.
 */
import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import type { z } from 'zod';
import type { RequestOrigin, Role } from '../shared/auth/principal.js';
import { requireRole } from '../shared/auth/rbac.js';
import { AppError, errorMessage, isAppError } from '../shared/errors.js';
import { problemFromError, statusByCode } from '../shared/http.js';
import { parseOrThrow } from '../shared/validation.js';
import { getDeps } from '../services/deps.js';
import { httpPolicy, withPolicyHeaders } from './http-policy.js';
import type { JobOrchestrations } from '../services/orchestrations.js';
import type { RequestScope } from '../services/scope.js';

/**
 * Who may call: nobody needs a token (`anonymous`), any valid token (`authenticated`, the service decides
 * the rest), or a token holding at least one of the roles.
 */
export type Access = 'anonymous' | 'authenticated' | { anyOf: readonly Role[] };

/** One documented response; `schema` is a zod schema (with `.meta({ id })` it becomes an OpenAPI component). */
export interface ResponseDoc {
  status: number;
  description: string;
  schema?: z.ZodType;
  /** Defaults to application/json when a schema is given. */
  contentType?: string;
  headers?: Record<string, string>;
}

type ZodObjectLike = z.ZodType<Record<string, unknown>> & { shape: Record<string, z.ZodType> };

export interface EndpointSpec<
  A extends Access,
  P extends ZodObjectLike | undefined,
  Q extends ZodObjectLike | undefined,
  B extends z.ZodType | undefined,
> {
  summary: string;
  access: A;
  params?: P;
  query?: Q;
  body?: B;
  /** Success responses; error responses (problem+json) are documented for every endpoint. */
  responses: ResponseDoc[];
  handle(call: Call<A, Parsed<P>, Parsed<Q>, Parsed<B>>): Promise<HttpResponseInit>;
}

type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface Call<A extends Access, P, Q, B> {
  request: HttpRequest;
  context: InvocationContext;
  origin: RequestOrigin;
  params: P;
  query: Q;
  body: B;
  /** The authenticated caller with the process's dependencies; anonymous endpoints get none. */
  scope: A extends 'anonymous' ? undefined : RequestScope;
}

type AnySpec = EndpointSpec<Access, ZodObjectLike | undefined, ZodObjectLike | undefined, z.ZodType | undefined>;

export type EndpointHandler = ((request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>) & {
  readonly spec: AnySpec;
};

/** Builds the handler for one endpoint: the exported function tests call and the registry registers. */
export function endpoint<
  A extends Access,
  P extends ZodObjectLike | undefined = undefined,
  Q extends ZodObjectLike | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
>(spec: EndpointSpec<A, P, Q, B>): EndpointHandler {
  const handler = async (request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> => {
    const origin = requestOrigin(request);
    try {
      // Anonymous endpoints (probes, the API document) answer without dependencies or a token.
      const scope = spec.access === 'anonymous' ? undefined : await authenticate(spec.access, request, context, origin);
      // Parsed after authentication: an anonymous caller learns nothing about the shape of a request.
      const params = (spec.params ? parseOrThrow(spec.params, request.params, 'params') : undefined) as Parsed<P>;
      const query = (spec.query ? parseOrThrow(spec.query, Object.fromEntries(request.query), 'query') : undefined) as Parsed<Q>;
      const body = (spec.body ? parseOrThrow(spec.body, await readJsonBody(request, httpPolicy().maxBodyBytes), 'body') : undefined) as Parsed<B>;
      const call = { request, context, origin, params, query, body, scope } as Call<A, Parsed<P>, Parsed<Q>, Parsed<B>>;
      return withPolicyHeaders(await spec.handle(call), request);
    } catch (error) {
      return withPolicyHeaders(failureResponse(error, request, context, origin), request);
    }
  };
  return Object.assign(handler, { spec: spec as unknown as AnySpec });
}

async function authenticate(
  access: Exclude<Access, 'anonymous'>,
  request: HttpRequest,
  context: InvocationContext,
  origin: RequestOrigin,
): Promise<RequestScope> {
  const deps = await getDeps();
  const principal = await deps.tokens.authenticate(request.headers.get('authorization'));
  if (access !== 'authenticated') requireRole(principal, ...access.anyOf);
  let orchestrations: JobOrchestrations | undefined;
  return {
    deps,
    principal,
    origin,
    // The durable client binding exists only on functions that declared it, so it is made on first use.
    get orchestrations() {
      orchestrations ??= deps.orchestrations(context);
      return orchestrations;
    },
  };
}

/**
 * An empty body reads as `{}` so optional bodies need no special case; anything else must be declared
 * `application/json` (415) and be at most `maxBytes` long (413, decided before parsing and without reading
 * more than the limit).
 */
async function readJsonBody(request: HttpRequest, maxBytes: number): Promise<unknown> {
  const declaredLength = Number(request.headers.get('content-length') ?? 0);
  if (declaredLength > maxBytes) throw bodyTooLarge(maxBytes);
  const text = new TextDecoder().decode(await readAtMost(request, maxBytes));
  if (text.trim() === '') return {};
  const mediaType = request.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase();
  if (mediaType !== 'application/json') {
    throw new AppError('unsupported_media_type', `The body must be sent as content-type: application/json (got ${mediaType ? mediaType.slice(0, 100) : 'none'}).`, {
      fieldErrors: [{ field: 'content-type', message: 'must be application/json' }],
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AppError('validation_failed', 'The request body is not valid JSON.', {
      fieldErrors: [{ field: 'body', message: 'must be valid JSON' }],
    });
  }
}

function bodyTooLarge(maxBytes: number): AppError {
  return new AppError('payload_too_large', `The body is larger than ${maxBytes} bytes.`, {
    fieldErrors: [{ field: 'body', message: `must be at most ${maxBytes} bytes` }],
  });
}

/** The body's bytes, refusing (and no longer reading) once past `maxBytes`: a chunked body has no length to check. */
async function readAtMost(request: HttpRequest, maxBytes: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (let next = await reader.read(); !next.done; next = await reader.read()) {
    total += next.value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw bodyTooLarge(maxBytes);
    }
    chunks.push(next.value);
  }
  return Buffer.concat(chunks);
}

/** Client address as the Functions front end reports it (first `x-forwarded-for` hop, port removed). */
export function requestOrigin(request: HttpRequest): RequestOrigin {
  const forwarded = request.headers.get('x-forwarded-for')?.split(',')[0]?.trim();
  const ip = forwarded ? stripPort(forwarded) : undefined;
  const userAgent = request.headers.get('user-agent')?.slice(0, 512) || undefined;
  return { ...(ip ? { ip } : {}), ...(userAgent ? { userAgent } : {}) };
}

function stripPort(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address); // [v6]:port
  if (bracketed) return bracketed[1]!;
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(address);
  return v4WithPort ? v4WithPort[1]! : address;
}

function failureResponse(error: unknown, request: HttpRequest, context: InvocationContext, origin: RequestOrigin): HttpResponseInit {
  const response = problemFromError(error, context.invocationId);
  // problemFromError keeps `errors` on server-side failures (e.g. the names of bad settings); a caller of a
  // failed request gets only the invocation id to quote.
  if (response.status >= 500 && response.jsonBody.code !== 'dependency_unavailable') delete response.jsonBody.errors;
  const where = `${request.method} ${new URL(request.url).pathname} from ${origin.ip ?? 'unknown address'}`;
  if (response.status >= 500) {
    // The caller sees only the invocation id; the log keeps the whole error to find it by.
    context.error(`${where} failed with ${response.status} (invocation ${context.invocationId}): ${describeForLog(error)}`);
  } else {
    const code = isAppError(error) ? error.code : 'internal';
    context.warn(`${where} refused with ${statusByCode[code] ?? response.status} ${code}: ${errorMessage(error)}`);
  }
  return response;
}

/** Stack of the error and of each `cause` under it: what an operator needs to find the real failure. */
function describeForLog(error: unknown): string {
  const parts: string[] = [];
  for (let current: unknown = error, depth = 0; current !== undefined && depth < 5; depth++) {
    parts.push(current instanceof Error ? (current.stack ?? current.message) : errorMessage(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join('\ncaused by: ');
}
