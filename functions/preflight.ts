/**
 * CORS preflight (OPTIONS) for every route: one catch-all function, because the other functions each own one
 * method of a route and the host routes by method. The allowed origin and the other CORS headers are added to
 * this answer like to any other (functions/http-policy.ts); an origin not configured gets no CORS header.
 */
import { endpoint } from './endpoint.js';
import { CORS_ALLOWED_HEADERS, CORS_MAX_AGE_SECONDS, allowedOrigin } from './http-policy.js';
import { httpRoute, registeredRoutes } from './registry.js';
import { noContent } from './responses.js';

/** The methods the API serves, from what is registered. */
function apiMethods(): string[] {
  const methods = new Set(registeredRoutes().flatMap((route) => route.methods).filter((method) => method !== 'OPTIONS'));
  return [...methods].sort();
}

export const corsPreflight = endpoint({
  summary: 'CORS preflight',
  access: 'anonymous',
  responses: [{ status: 204, description: 'For a configured origin: the methods and headers a browser may use' }],
  async handle({ request }) {
    if (!allowedOrigin(request)) return noContent();
    return {
      status: 204,
      headers: {
        'access-control-allow-methods': apiMethods().join(', '),
        'access-control-allow-headers': CORS_ALLOWED_HEADERS.join(', '),
        'access-control-max-age': String(CORS_MAX_AGE_SECONDS),
      },
    };
  },
});

httpRoute({ name: 'cors-preflight', route: '{*path}', methods: ['OPTIONS'], handler: corsPreflight, undocumented: true });
