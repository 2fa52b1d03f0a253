/**
 * The one place HTTP functions are registered. Each call registers with the Functions host (`app.http`) and
 * records the route, so an in-process host (the local sandbox) serves exactly the same routes and the OpenAPI
 * document lists exactly what is registered.
 */
import { app, type HttpMethod } from '@azure/functions';
import * as df from 'durable-functions';
import type { EndpointHandler } from './endpoint.js';

export interface RouteRegistration {
  /** Function name, unique in the app, e.g. `jobs-create`. */
  name: string;
  /** Route template under the `api/` prefix, e.g. `jobs/{id}/cancel`. */
  route: string;
  methods: [HttpMethod, ...HttpMethod[]];
  handler: EndpointHandler;
  /** The handler starts orchestrations or raises events: it needs the Durable client binding. */
  durableClient?: boolean;
  /** Plumbing rather than an operation (the CORS preflight): served, but not in the API document. */
  undocumented?: boolean;
}

/** Host route prefix (host.json `extensions.http.routePrefix`). */
export const routePrefix = 'api';

const routes: RouteRegistration[] = [];

/** Every route registered so far, in registration order. */
export function registeredRoutes(): readonly RouteRegistration[] {
  return routes;
}

export function httpRoute(registration: RouteRegistration): void {
  if (routes.some((r) => r.name === registration.name)) {
    throw new Error(`HTTP function ${registration.name} is registered twice`);
  }
  routes.push(registration);
  app.http(registration.name, {
    route: registration.route,
    methods: registration.methods,
    // Entra tokens are validated by our own code (functions/endpoint.ts); function keys are not used.
    authLevel: 'anonymous',
    handler: registration.handler,
    ...(registration.durableClient ? { extraInputs: [df.input.durableClient()] } : {}),
  });
}
