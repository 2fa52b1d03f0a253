/**
 * The API client: bearer token on every call, JSON in and out, and every failure turned into a message a
 * person can act on (problem+json's title, detail and the fields it names).
 */
import type { ProblemDetails } from '../../shared/http';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly problem?: ProblemDetails,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** Field-level messages (`errors[]`), one line each. */
  get fieldErrors(): string[] {
    return (this.problem?.errors ?? []).map((error) => `${error.field}: ${error.message}`);
  }
}

/** What this API offers beyond the basics, read from its OpenAPI document (routes it lacks answer without CORS). */
export interface ApiFeatures {
  /** `GET /api/databases`: the databases the caller may request. */
  requestableDatabases: boolean;
}

export interface Api {
  features(): Promise<ApiFeatures>;
  get<T>(path: string): Promise<T>;
  /** GET returning the body and the response headers (paging cursors). */
  getWithHeaders<T>(path: string): Promise<{ body: T; headers: Headers }>;
  send<T>(method: 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T>;
  /** A non-JSON body (CSV export). */
  getBlob(path: string): Promise<Blob>;
}

export function createApi(baseUrl: string, getToken: () => Promise<string>): Api {
  async function call(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${await getToken()}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${baseUrl}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        cache: 'no-store',
        referrerPolicy: 'no-referrer',
      });
    } catch {
      // A browser tells scripts nothing more about a refused CORS request or an unreachable host.
      throw new ApiError(`Could not reach the API at ${baseUrl}: it is down, or it does not allow this page's origin (CORS).`, 0);
    }
    if (!response.ok) throw await toApiError(response);
    return response;
  }

  async function json<T>(response: Response): Promise<T> {
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  let features: Promise<ApiFeatures> | undefined;
  return {
    features: () =>
      (features ??= (async () => {
        const document = await json<{ paths?: Record<string, Record<string, unknown>> }>(await call('GET', '/api/openapi.json'));
        const paths = document.paths ?? {};
        return { requestableDatabases: Boolean(paths['/api/databases']?.get) };
      })()),
    get: async (path) => json(await call('GET', path)),
    getWithHeaders: async (path) => {
      const response = await call('GET', path);
      return { body: await json(response), headers: response.headers };
    },
    send: async (method, path, body) => json(await call(method, path, body)),
    getBlob: async (path) => (await call('GET', path)).blob(),
  };
}

async function toApiError(response: Response): Promise<ApiError> {
  const type = response.headers.get('content-type') ?? '';
  if (type.includes('json')) {
    const problem = (await response.json().catch(() => undefined)) as ProblemDetails | undefined;
    if (problem?.title) {
      const message = problem.detail ? `${problem.title}: ${problem.detail}` : problem.title;
      return new ApiError(message, response.status, problem);
    }
  }
  return new ApiError(`The API answered ${response.status} ${response.statusText}`.trim(), response.status);
}

export const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
