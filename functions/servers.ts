/** The server registry (Admin only). */
import { ServerInput, ServerUpdate, ServerView } from '../shared/contracts/servers.js';
import { ServerList } from '../shared/openapi.js';
import * as servers from '../services/servers.js';
import { endpoint } from './endpoint.js';
import { IdParams } from './params.js';
import { httpRoute } from './registry.js';
import { created, noContent, ok } from './responses.js';

const adminOnly = { anyOf: ['Admin'] } as const;

export const listServers = endpoint({
  summary: 'Registered servers',
  access: adminOnly,
  responses: [{ status: 200, description: 'All servers', schema: ServerList }],
  async handle({ scope }) {
    return ok({ items: await servers.listServers(scope) });
  },
});

export const createServer = endpoint({
  summary: 'Register a server',
  access: adminOnly,
  body: ServerInput,
  responses: [{ status: 201, description: 'The server; Location names it', schema: ServerView }],
  async handle({ scope, body }) {
    const server = await servers.createServer(scope, body);
    return created(`servers/${server.id}`, server);
  },
});

export const getServer = endpoint({
  summary: 'One server',
  access: adminOnly,
  params: IdParams,
  responses: [{ status: 200, description: 'The server', schema: ServerView }],
  async handle({ scope, params }) {
    return ok(await servers.getServer(scope, params.id));
  },
});

export const updateServer = endpoint({
  summary: 'Change a server',
  access: adminOnly,
  params: IdParams,
  body: ServerUpdate,
  responses: [{ status: 200, description: 'The server as changed', schema: ServerView }],
  async handle({ scope, params, body }) {
    return ok(await servers.updateServer(scope, params.id, body));
  },
});

export const deleteServer = endpoint({
  summary: 'Remove a server that has no databases registered',
  access: adminOnly,
  params: IdParams,
  responses: [{ status: 204, description: 'Removed' }],
  async handle({ scope, params }) {
    await servers.deleteServer(scope, params.id);
    return noContent();
  },
});

httpRoute({ name: 'servers-list', route: 'servers', methods: ['GET'], handler: listServers });
httpRoute({ name: 'servers-create', route: 'servers', methods: ['POST'], handler: createServer });
httpRoute({ name: 'servers-get', route: 'servers/{id}', methods: ['GET'], handler: getServer });
httpRoute({ name: 'servers-update', route: 'servers/{id}', methods: ['PATCH'], handler: updateServer });
httpRoute({ name: 'servers-delete', route: 'servers/{id}', methods: ['DELETE'], handler: deleteServer });
