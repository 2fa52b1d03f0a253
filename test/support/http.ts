/**
 * Calls a real handler with real @azure/functions `HttpRequest` and `InvocationContext` objects, the way the
 * host would, and reads the answer through a real `HttpResponse`.
 *
 *   const res = await invoke(createJob, { method: 'POST', path: 'jobs', token, body: { databaseId } });
 *   expect(res.status).toBe(202);
 */
import { randomUUID } from 'node:crypto';
import { HttpRequest, HttpResponse, type HttpHandler, InvocationContext } from '@azure/functions';

export interface InvokeOptions {
  method?: string;
  /** Path under /api, e.g. `jobs/123/cancel`. */
  path?: string;
  /** Route parameters as the host would extract them from the path. */
  params?: Record<string, string>;
  query?: Record<string, string>;
  /** Sent as JSON unless it is already a string (send malformed JSON as a string). */
  body?: unknown;
  /** Raw bearer token; sent as `Authorization: Bearer <token>`. */
  token?: string;
  headers?: Record<string, string>;
}

export interface LogLine {
  level: string;
  message: string;
}

export interface Invocation {
  status: number;
  headers: Headers;
  /** Parsed JSON body (undefined when empty or not JSON). */
  json: any;
  text: string;
  invocationId: string;
  logs: LogLine[];
}

export async function invoke(handler: HttpHandler, options: InvokeOptions = {}): Promise<Invocation> {
  const url = new URL(`http://127.0.0.1:7071/api/${options.path ?? ''}`);
  for (const [name, value] of Object.entries(options.query ?? {})) url.searchParams.set(name, value);
  const headers: Record<string, string> = {
    'user-agent': 'dbdist-tests/1.0',
    'x-forwarded-for': '203.0.113.7:50123',
    ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    ...options.headers,
  };
  const request = new HttpRequest({
    method: options.method ?? 'GET',
    url: url.toString(),
    headers,
    params: options.params ?? {},
    ...(options.body !== undefined
      ? { body: { string: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } }
      : {}),
  });
  const logs: LogLine[] = [];
  const invocationId = randomUUID();
  const context = new InvocationContext({
    functionName: 'test',
    invocationId,
    logHandler: (level, ...args) => logs.push({ level, message: args.map(String).join(' ') }),
  });
  const result = await handler(request, context);
  const response = result instanceof HttpResponse ? result : new HttpResponse(result ?? {});
  const text = await response.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, text, invocationId, logs };
}
