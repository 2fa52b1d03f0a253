/** GET /api/openapi.json: the API described from the registered routes and their zod schemas. */
import { type OpenApiDocument, buildOpenApiDocument } from '../shared/openapi.js';
import { endpoint } from './endpoint.js';
import { httpRoute, registeredRoutes, routePrefix } from './registry.js';
import { ok } from './responses.js';

/** Version of the HTTP contract (not of the package): bump on any change a client can notice. */
export const API_VERSION = '1.0.0';

/** Built from whatever is registered at call time; functions/index.ts registers every route before serving. */
export function openApiDocument(): OpenApiDocument {
  return buildOpenApiDocument(
    registeredRoutes()
      .filter((route) => !route.undocumented)
      .map(({ name, route, methods, handler: { spec } }) => ({ name, route, methods, ...spec })),
    { prefix: routePrefix, version: API_VERSION },
  );
}

let cached: OpenApiDocument | undefined;

export const getOpenApiDocument = endpoint({
  summary: 'This document',
  access: 'anonymous',
  responses: [{ status: 200, description: 'OpenAPI 3.1 document', contentType: 'application/json' }],
  async handle() {
    cached ??= openApiDocument();
    return ok(cached);
  },
});

httpRoute({ name: 'openapi', route: 'openapi.json', methods: ['GET'], handler: getOpenApiDocument });
