/** Databases registered under a server (Admin only). */
import { DatabaseInput, DatabaseUpdate, DatabaseView } from '../shared/contracts/servers.js';
import { DatabaseList, RequestableDatabaseList } from '../shared/openapi.js';
import * as servers from '../services/servers.js';
import { endpoint } from './endpoint.js';
import { ServerDatabaseParams, ServerIdParams } from './params.js';
import { httpRoute } from './registry.js';
import { created, noContent, ok } from './responses.js';

const adminOnly = { anyOf: ['Admin'] } as const;

export const listRequestableDatabases = endpoint({
  summary: 'The databases the caller may request a backup of (their requester groups; an Admin gets all enabled ones)',
  access: { anyOf: ['Requester', 'Admin'] },
  responses: [{ status: 200, description: 'Requestable databases with the policy fields a request needs', schema: RequestableDatabaseList }],
  async handle({ scope }) {
    return ok({ items: await servers.listRequestableDatabases(scope) });
  },
});

export const listDatabases = endpoint({
  summary: "A server's registered databases",
  access: adminOnly,
  params: ServerIdParams,
  responses: [{ status: 200, description: 'All databases of the server', schema: DatabaseList }],
  async handle({ scope, params }) {
    return ok({ items: await servers.listDatabases(scope, params.serverId) });
  },
});

export const createDatabase = endpoint({
  summary: 'Register a database under a server',
  access: adminOnly,
  params: ServerIdParams,
  body: DatabaseInput,
  responses: [{ status: 201, description: 'The database; Location names it', schema: DatabaseView }],
  async handle({ scope, params, body }) {
    const database = await servers.createDatabase(scope, params.serverId, body);
    return created(`servers/${params.serverId}/databases/${database.id}`, database);
  },
});

export const getDatabase = endpoint({
  summary: 'One database',
  access: adminOnly,
  params: ServerDatabaseParams,
  responses: [{ status: 200, description: 'The database', schema: DatabaseView }],
  async handle({ scope, params }) {
    return ok(await servers.getDatabase(scope, params.serverId, params.id));
  },
});

export const updateDatabase = endpoint({
  summary: 'Change a database (a partial policy is merged into the current one)',
  access: adminOnly,
  params: ServerDatabaseParams,
  body: DatabaseUpdate,
  responses: [{ status: 200, description: 'The database as changed', schema: DatabaseView }],
  async handle({ scope, params, body }) {
    return ok(await servers.updateDatabase(scope, params.serverId, params.id, body));
  },
});

export const deleteDatabase = endpoint({
  summary: 'Remove a database from the registry (its jobs stay readable)',
  access: adminOnly,
  params: ServerDatabaseParams,
  responses: [{ status: 204, description: 'Removed' }],
  async handle({ scope, params }) {
    await servers.deleteDatabase(scope, params.serverId, params.id);
    return noContent();
  },
});

httpRoute({ name: 'databases-requestable', route: 'databases', methods: ['GET'], handler: listRequestableDatabases });
httpRoute({ name: 'databases-list', route: 'servers/{serverId}/databases', methods: ['GET'], handler: listDatabases });
httpRoute({ name: 'databases-create', route: 'servers/{serverId}/databases', methods: ['POST'], handler: createDatabase });
httpRoute({ name: 'databases-get', route: 'servers/{serverId}/databases/{id}', methods: ['GET'], handler: getDatabase });
httpRoute({ name: 'databases-update', route: 'servers/{serverId}/databases/{id}', methods: ['PATCH'], handler: updateDatabase });
httpRoute({ name: 'databases-delete', route: 'servers/{serverId}/databases/{id}', methods: ['DELETE'], handler: deleteDatabase });
