/**
 * The registry of servers and their databases (Admin only; the endpoints gate the role). Every change is
 * audited by the store in the same transaction.
 */
import { randomUUID } from 'node:crypto';
import {
  type DatabaseInput,
  DatabasePolicy,
  type DatabaseUpdate,
  type DatabaseView,
  type RequestableDatabaseView,
  type ServerInput,
  type ServerUpdate,
  type ServerView,
} from '../shared/contracts/servers.js';
import type { DatabaseRecord, NewDatabase, ServerRecord } from '../shared/db/store.js';
import { AppError } from '../shared/errors.js';
import { parseOrThrow } from '../shared/validation.js';
import { lastGoodBackups } from './metrics.js';
import { type RequestScope, auditActor } from './scope.js';
import { databaseView, requestableDatabaseView, serverView } from './views.js';
import { hasRole, isInAnyGroup } from '../shared/auth/rbac.js';

async function loadServer(scope: RequestScope, serverId: string): Promise<ServerRecord> {
  const server = await scope.deps.store.getServer(serverId);
  if (!server) throw new AppError('not_found', `Server ${serverId} is not registered.`);
  return server;
}

/** A database addressed under a server: one registered under another server does not exist here. */
async function loadDatabase(scope: RequestScope, serverId: string, databaseId: string): Promise<DatabaseRecord> {
  const database = await scope.deps.store.getDatabase(databaseId);
  if (!database || database.serverId !== serverId) {
    throw new AppError('not_found', `Database ${databaseId} is not registered on server ${serverId}.`);
  }
  return database;
}

export async function listServers(scope: RequestScope): Promise<ServerView[]> {
  return (await scope.deps.store.listServers()).map(serverView);
}

export async function getServer(scope: RequestScope, serverId: string): Promise<ServerView> {
  return serverView(await loadServer(scope, serverId));
}

export async function createServer(scope: RequestScope, input: ServerInput): Promise<ServerView> {
  const id = randomUUID();
  const server = await scope.deps.store.createServer(
    { id, name: input.name, host: input.host, engine: input.engine, description: input.description ?? null, runners: input.runners ?? [] },
    { ...auditActor(scope), action: 'server.created', target: `server/${id}`, detail: { ...input } },
  );
  return serverView(server);
}

export async function updateServer(scope: RequestScope, serverId: string, patch: ServerUpdate): Promise<ServerView> {
  const server = await scope.deps.store.updateServer(serverId, patch, {
    ...auditActor(scope),
    action: 'server.updated',
    target: `server/${serverId}`,
    detail: { changes: patch },
  });
  if (!server) throw new AppError('not_found', `Server ${serverId} is not registered.`);
  return serverView(server);
}

export async function deleteServer(scope: RequestScope, serverId: string): Promise<void> {
  const outcome = await scope.deps.store.deleteServer(serverId, {
    ...auditActor(scope),
    action: 'server.deleted',
    target: `server/${serverId}`,
  });
  if (outcome === 'not_found') throw new AppError('not_found', `Server ${serverId} is not registered.`);
  if (outcome === 'has_databases') {
    throw new AppError('conflict', `Server ${serverId} still has registered databases; delete them first.`);
  }
}

export async function listDatabases(scope: RequestScope, serverId: string): Promise<DatabaseView[]> {
  await loadServer(scope, serverId);
  return (await scope.deps.store.listDatabases(serverId)).map(databaseView);
}

/**
 * The databases the caller may request a backup of: enabled, engine allowed by the policy, and (unless Admin)
 * listing one of the caller's groups among its requesters. Registries are small: one query per server.
 */
export async function listRequestableDatabases(scope: RequestScope): Promise<RequestableDatabaseView[]> {
  const { store } = scope.deps;
  const isAdmin = hasRole(scope.principal, 'Admin');
  const requestable: RequestableDatabaseView[] = [];
  for (const server of await store.listServers()) {
    for (const database of await store.listDatabases(server.id)) {
      if (!database.enabled || !database.policy.allowedEngines.includes(server.engine)) continue;
      if (!isAdmin && !isInAnyGroup(scope.principal, database.requesterGroupIds)) continue;
      requestable.push(requestableDatabaseView(database, server));
    }
  }
  return requestable;
}

/** One database, with how recoverable it is now (last good backup against its RPO). */
export async function getDatabase(scope: RequestScope, serverId: string, databaseId: string): Promise<DatabaseView> {
  const database = await loadDatabase(scope, serverId, databaseId);
  const lastGoodAt = lastGoodBackups(await scope.deps.store.tallyJobs()).get(database.id);
  return {
    ...databaseView(database),
    recovery: {
      lastGoodBackupAt: lastGoodAt?.toISOString() ?? null,
      rpoHours: database.policy.rpoHours ?? null,
      rpoBreachedSince: database.rpoBreachedAt?.toISOString() ?? null,
    },
  };
}

/**
 * The storage lifecycle rule deletes backup blobs by age, whatever their job says: a policy keeping backups as
 * long would have a job call Available a blob that is gone. Strictly below, because the rule runs once a day.
 */
function assertRetentionWithinLifecycle(scope: RequestScope, policy: DatabasePolicy): void {
  const lifecycleDays = scope.deps.limits.lifecycleDeleteDays;
  if (policy.retentionDays < lifecycleDays) return;
  throw new AppError(
    'validation_failed',
    `retentionDays ${policy.retentionDays} is not below the ${lifecycleDays} days after which the storage lifecycle rule deletes backups (BACKUP_LIFECYCLE_DELETE_DAYS).`,
    { fieldErrors: [{ field: 'body.policy.retentionDays', message: `is ${policy.retentionDays}; must be below the storage lifecycle rule's ${lifecycleDays} days` }] },
  );
}

export async function createDatabase(scope: RequestScope, serverId: string, input: DatabaseInput): Promise<DatabaseView> {
  assertRetentionWithinLifecycle(scope, input.policy);
  await loadServer(scope, serverId);
  const id = randomUUID();
  const database = await scope.deps.store.createDatabase(
    { id, serverId, ...input },
    { ...auditActor(scope), action: 'database.created', target: `database/${id}`, detail: { serverId, ...input } },
  );
  return databaseView(database);
}

/** A partial policy is merged into the current one, and the result checked as a whole. */
export async function updateDatabase(scope: RequestScope, serverId: string, databaseId: string, patch: DatabaseUpdate): Promise<DatabaseView> {
  const current = await loadDatabase(scope, serverId, databaseId);
  const { policy, ...rest } = patch;
  const changes: Partial<Omit<NewDatabase, 'id' | 'serverId'>> = { ...rest };
  if (policy) {
    changes.policy = parseOrThrow(DatabasePolicy, { ...current.policy, ...policy }, 'body.policy');
    assertRetentionWithinLifecycle(scope, changes.policy);
  }
  const database = await scope.deps.store.updateDatabase(databaseId, changes, {
    ...auditActor(scope),
    action: 'database.updated',
    target: `database/${databaseId}`,
    detail: { serverId, changes: patch },
  });
  if (!database) throw new AppError('not_found', `Database ${databaseId} is not registered on server ${serverId}.`);
  return databaseView(database);
}

export async function deleteDatabase(scope: RequestScope, serverId: string, databaseId: string): Promise<void> {
  await loadDatabase(scope, serverId, databaseId);
  const outcome = await scope.deps.store.deleteDatabase(databaseId, {
    ...auditActor(scope),
    action: 'database.deleted',
    target: `database/${databaseId}`,
    detail: { serverId },
  });
  if (outcome === 'not_found') throw new AppError('not_found', `Database ${databaseId} is not registered on server ${serverId}.`);
}
