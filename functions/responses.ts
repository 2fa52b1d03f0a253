/** Success responses in one shape for every handler (errors are problem+json, see functions/endpoint.ts). */
import type { HttpResponseInit } from '@azure/functions';
import { routePrefix } from './registry.js';

/** Where a paged non-JSON answer (CSV) puts the next page's cursor. */
export const NEXT_CURSOR_HEADER = 'x-next-cursor';

export function ok(body: unknown): HttpResponseInit {
  return { status: 200, jsonBody: body };
}

/** 201 with the new resource and where it lives (`path` under the API prefix, e.g. `servers/<id>`). */
export function created(path: string, body: unknown): HttpResponseInit {
  return { status: 201, jsonBody: body, headers: { location: `/${routePrefix}/${path}` } };
}

/** 202: accepted, the work goes on elsewhere; `path` is where to watch it. */
export function accepted(body: unknown, path?: string): HttpResponseInit {
  return { status: 202, jsonBody: body, ...(path ? { headers: { location: `/${routePrefix}/${path}` } } : {}) };
}

export function noContent(): HttpResponseInit {
  return { status: 204 };
}
