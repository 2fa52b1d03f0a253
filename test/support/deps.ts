/**
 * A `Deps` for handler and service tests, built from the real pieces: the PGlite store, the production Entra
 * validator pointed at the local OIDC issuer (real JWKS over HTTP, real RS256 tokens) and the production blob
 * gateway on Azurite. The orchestrations are the production port over a Durable client stand-in that answers like
 * the real one, and the job queue is a small recording implementation: enough to see what a handler started or
 * raised (end-to-end tests run the real orchestrator).
 *
 *   let t: TestDeps;
 *   beforeAll(async () => { t = await startTestDeps(); });
 *   afterAll(() => t?.close());
 */
import { randomUUID } from 'node:crypto';
import type { InvocationContext } from '@azure/functions';
import type { AuditAction } from '../../shared/contracts/audit.js';
import type { BackupEngine } from '../../shared/contracts/common.js';
import type { CopyRecipient } from '../../shared/contracts/encryption.js';
import type { JobStatus } from '../../shared/contracts/jobs.js';
import type { JobMessage } from '../../shared/contracts/messages.js';
import { type DatabasePolicy, defaultDatabasePolicy } from '../../shared/contracts/servers.js';
import type { DatabaseRecord, JobRecord, ServerRecord, Store } from '../../shared/db/store.js';
import { backupBlobPath } from '../../shared/storage/paths.js';
import type { JobQueue } from '../../shared/messaging.js';
import { createBlobGateway } from '../../shared/storage/blob-gateway.js';
import type { ContainerClient } from '@azure/storage-blob';
import type { Deps, Limits } from '../../services/deps.js';
import { setDeps } from '../../services/deps.js';
import { jobOrchestrationsOver, type DurableClientCalls } from '../../functions/durable-client.js';
import {
  LIVE_ORCHESTRATION_STATES,
  type EventDelivery,
  type JobOrchestrations,
  type OrchestrationEventName,
  type OrchestrationState,
} from '../../services/orchestrations.js';
import { type Azurite, azuriteGatewayOptions, startAzurite } from '../../dev/azurite.js';
import { type OidcIssuer, startOidcIssuer, testGroupIds, testRbacPolicy, validatorFor } from '../../dev/oidc-issuer.js';
import { createPgliteStore } from '../../dev/stores.js';
import { sandboxLimits } from '../../dev/stack.js';
import { LocalManifestSigner } from '../../dev/manifest-signer.js';

export interface RaisedEvent {
  jobId: string;
  eventName: OrchestrationEventName;
  payload: unknown;
}

/**
 * A Durable client that answers as durable-functions' DurableClient does against the extension's HTTP API
 * (functions/durable-client.ts names the sources): a start on an existing id rejects as HTTP 500, an event for an
 * unknown instance rejects with "No instance with ID '…' found.", an event for an ended instance is dropped
 * silently (410), an unknown instance's status rejects with the client's HTTP 404 text. Tests set instances'
 * states directly.
 */
export class DurableClientStandIn implements DurableClientCalls {
  readonly instances = new Map<string, OrchestrationState>();
  readonly started: string[] = [];
  /** Events an instance took (202). */
  readonly raised: RaisedEvent[] = [];
  /** Events the extension dropped because the instance had ended (410). */
  readonly dropped: RaisedEvent[] = [];
  /** Set to make the next start fail, as a client whose host is down would. */
  failNextStart: Error | undefined;

  async startNew(_name: string, options: { instanceId: string }): Promise<string> {
    if (this.failNextStart) {
      const error = this.failNextStart;
      this.failNextStart = undefined;
      throw error;
    }
    if (this.instances.has(options.instanceId)) {
      throw new Error('The operation failed with an unexpected status code: 500. Details: {"Message":"An error has occurred."}');
    }
    this.instances.set(options.instanceId, 'Pending');
    this.started.push(options.instanceId);
    return options.instanceId;
  }

  async raiseEvent(instanceId: string, eventName: string, payload: unknown): Promise<void> {
    const state = this.instances.get(instanceId);
    if (!state) throw new Error(`No instance with ID '${instanceId}' found.`);
    const event = { jobId: instanceId, eventName: eventName as OrchestrationEventName, payload };
    (LIVE_ORCHESTRATION_STATES.includes(state) ? this.raised : this.dropped).push(event);
  }

  async getStatus(instanceId: string): Promise<{ runtimeStatus: string }> {
    const state = this.instances.get(instanceId);
    if (!state) {
      throw new Error(
        `DurableClient error: Durable Functions extension replied with HTTP 404 response. This usually means we could not find any data associated with the instanceId provided: ${instanceId}.`,
      );
    }
    return { runtimeStatus: state };
  }
}

/** The production JobOrchestrations code over the client stand-in, with what it was asked to do recorded. */
export class RecordingOrchestrations implements JobOrchestrations {
  readonly client = new DurableClientStandIn();
  private readonly port = jobOrchestrationsOver(this.client);

  get started(): string[] {
    return this.client.started;
  }

  get raised(): RaisedEvent[] {
    return this.client.raised;
  }

  set failNextStart(error: Error | undefined) {
    this.client.failNextStart = error;
  }

  /** The job's instance exists and is in `state` (started earlier, by whatever route). */
  instance(jobId: string, state: OrchestrationState): void {
    this.client.instances.set(jobId, state);
  }

  startBackupJob(jobId: string): Promise<void> {
    return this.port.startBackupJob(jobId);
  }

  raiseEvent(jobId: string, eventName: OrchestrationEventName, payload: unknown): Promise<EventDelivery> {
    return this.port.raiseEvent(jobId, eventName, payload);
  }

  getState(jobId: string): Promise<OrchestrationState> {
    return this.port.getState(jobId);
  }

  readonly reverifications: { instanceId: string; input: { jobId: string; requestedBy?: unknown } }[] = [];
  async startReverification(instanceId: string, input: { jobId: string; requestedBy?: unknown }): Promise<void> {
    if (this.reverifications.some((started) => started.instanceId === instanceId)) return;
    this.reverifications.push({ instanceId, input });
  }

  /** What a test can compare before and after a refused request: nothing may have changed. */
  snapshot(): { started: number; raised: number } {
    return { started: this.client.started.length, raised: this.client.raised.length };
  }
}

export class RecordingJobQueue implements JobQueue {
  readonly enqueued: JobMessage[] = [];
  async enqueue(message: JobMessage): Promise<void> {
    this.enqueued.push(message);
  }
  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}

export const testLimits: Limits = sandboxLimits;

export interface TestDeps {
  deps: Deps;
  issuer: OidcIssuer;
  azurite: Azurite;
  container: ContainerClient;
  orchestrations: RecordingOrchestrations;
  queue: RecordingJobQueue;
  /** Bearer tokens for the usual callers (a fresh user each call unless an oid is given). */
  tokens: TestTokens;
  close(): Promise<void>;
}

export interface TestTokens {
  admin(options?: { oid?: string }): string;
  auditor(options?: { oid?: string }): string;
  /** A user in the approver group (also a Requester, as approvers often are). */
  approver(options?: { oid?: string }): string;
  /** A user in the requester group (and `extraGroups`, e.g. a database's own requester group). */
  requester(options?: { oid?: string; extraGroups?: string[] }): string;
  /** The runner agent: an application token with the Runner app role, bound to every seeded server. */
  runner(): string;
  /** Another application with the Runner role, bound to no server. */
  unboundRunner(): string;
  /** A valid user token that carries no dbdist role. */
  noRole(options?: { oid?: string }): string;
}

/** The runner identity `tokens.runner()` carries; `seedDatabase` binds it to the servers it creates. */
export const testRunner = { clientId: '7e57a000-0000-4000-8000-00000000a001', servicePrincipalId: '7e57a000-0000-4000-8000-00000000b001' } as const;

function tokensFor(issuer: OidcIssuer): TestTokens {
  const user = (groups: string[], oid?: string) =>
    issuer.issueUserToken({ groups, ...(oid ? { oid } : {}), upn: `${oid ?? 'user'}@contoso.example` });
  return {
    admin: (o = {}) => user([testGroupIds.admin], o.oid),
    auditor: (o = {}) => user([testGroupIds.auditor], o.oid),
    approver: (o = {}) => user([testGroupIds.approver, testGroupIds.requester], o.oid),
    requester: (o = {}) => user([testGroupIds.requester, ...(o.extraGroups ?? [])], o.oid),
    runner: () => issuer.issueAppToken({ roles: ['Runner'], appId: testRunner.clientId, oid: testRunner.servicePrincipalId }),
    unboundRunner: () => issuer.issueAppToken({ roles: ['Runner'] }),
    noRole: (o = {}) => user([], o.oid),
  };
}

/**
 * Starts the stand-ins (once per test file), builds Deps on them and installs it with `setDeps`, so the
 * handlers' own `getDeps()` finds it. The store is a fresh PGlite unless `store` gives another (closed here too). `now` can be replaced per test through `deps.now`.
 */
export async function startTestDeps(options: { limits?: Partial<Limits>; rehashBudgetBytes?: number; store?: Promise<Store> } = {}): Promise<TestDeps> {
  const [issuer, azurite, store] = await Promise.all([startOidcIssuer(), startAzurite(), options.store ?? createPgliteStore()]);
  const container = await azurite.createContainer(`backups-${randomUUID().slice(0, 8)}`);
  const orchestrations = new RecordingOrchestrations();
  const queue = new RecordingJobQueue();
  const deps: Deps = {
    store,
    deadLetters: { receive: async () => [], close: async () => {} },
    blobs: createBlobGateway({ blobEndpoint: azurite.blobEndpoint, container: container.containerName, credential: azurite.credential, ...azuriteGatewayOptions }),
    queue,
    tokens: validatorFor(issuer),
    rbac: testRbacPolicy,
    limits: { ...testLimits, ...options.limits },
    recoveryRecipients: [],
    integrity: { signer: new LocalManifestSigner(), rehashBudgetBytes: options.rehashBudgetBytes ?? 64 * 1024, reverifyBatchSize: 20 },
    now: () => new Date(),
    notifications: [],
    orchestrations: (_context: InvocationContext) => orchestrations,
  };
  setDeps(deps);
  return {
    deps,
    issuer,
    azurite,
    container,
    orchestrations,
    queue,
    tokens: tokensFor(issuer),
    async close() {
      setDeps(undefined);
      await Promise.allSettled([store.close(), issuer.close(), azurite.stop()]);
    },
  };
}

// ---- Seeding: rows written straight through the store, as a system actor -------------------------------

const systemAudit = { actorType: 'system', actorId: 'test-seed' } as const;

export interface SeededDatabase {
  server: ServerRecord;
  database: DatabaseRecord;
  /** A group only this database's requesters are in. */
  requesterGroupId: string;
}

export async function seedDatabase(
  store: Store,
  options: { engine?: BackupEngine; enabled?: boolean; policy?: Partial<DatabasePolicy>; name?: string } = {},
): Promise<SeededDatabase> {
  const serverId = randomUUID();
  const server = await store.createServer(
    { id: serverId, name: `sql-${serverId.slice(0, 8)}`, host: 'sql01.corp.example', engine: options.engine ?? 'sqlserver', runners: [testRunner] },
    { ...systemAudit, action: 'server.created', target: `server/${serverId}` },
  );
  const requesterGroupId = randomUUID();
  const databaseId = randomUUID();
  const database = await store.createDatabase(
    {
      id: databaseId,
      serverId,
      name: options.name ?? 'Sales',
      requesterGroupIds: [requesterGroupId],
      policy: { ...defaultDatabasePolicy, ...options.policy },
      schedule: null,
      enabled: options.enabled ?? true,
    },
    { ...systemAudit, action: 'database.created', target: `database/${databaseId}` },
  );
  return { server, database, requesterGroupId };
}

/** The path a job takes to reach `status` (the store checks transitions as compare-and-set on `from`). */
const pathTo: Record<JobStatus, JobStatus[]> = {
  Pending: [],
  AwaitingApproval: ['AwaitingApproval'],
  Queued: ['Queued'],
  Running: ['Queued', 'Running'],
  Verifying: ['Queued', 'Running', 'Verifying'],
  Available: ['Queued', 'Running', 'Verifying', 'Available'],
  Expired: ['Queued', 'Running', 'Verifying', 'Available', 'Expired'],
  Failed: ['Failed'],
  Cancelled: ['Cancelled'],
  Corrupt: ['Queued', 'Running', 'Verifying', 'Available', 'Corrupt'],
  Rejected: ['AwaitingApproval', 'Rejected'],
};

/** The audit action of a move to `status` (`job.<status>` in snake case). */
/** The audit action of a move to `status` (a move to Corrupt is recorded as the failed integrity check). */
export const statusAuditAction = (status: JobStatus): AuditAction =>
  status === 'Corrupt' ? 'integrity.failed' : (`job.${status.replace(/(?<=[a-z])(?=[A-Z])/g, '_').toLowerCase()}` as AuditAction);

export const testSha256 = 'a'.repeat(64);

/**
 * A job of `requesterOid` on the seeded database, moved to `status`. Available jobs get a size, a digest and
 * a retention expiry (`expiresAt`, default in 7 days).
 */
export async function seedJob(
  store: Store,
  seeded: SeededDatabase,
  options: {
    requesterOid: string;
    status?: JobStatus;
    expiresAt?: Date;
    createdAt?: Date;
    encryptionRecipients?: CopyRecipient[];
    /** What the job's verification found (a real blob's size and digest), and when it is due again. */
    verified?: { sizeBytes: number; sha256: string; reverifyDueAt?: Date; manifestKeyId?: string };
  },
): Promise<JobRecord> {
  const id = randomUUID();
  const { server, database } = seeded;
  let job = await store.createJob(
    {
      id,
      databaseId: database.id,
      serverId: server.id,
      databaseName: database.name,
      engine: server.engine,
      options: { compression: 'gzip', encryption: options.encryptionRecipients ? 'age' : 'none' },
      ...(options.encryptionRecipients ? { encryptionRecipients: options.encryptionRecipients } : {}),
      requesterOid: options.requesterOid,
      requesterUpn: `${options.requesterOid}@contoso.example`,
      trigger: 'user',
      blobPath: backupBlobPath({ jobId: id, serverId: server.id, databaseId: database.id, engine: server.engine, compression: 'gzip', encryption: 'none' }),
      ...(options.createdAt ? { createdAt: options.createdAt } : {}),
    },
    { ...systemAudit, action: 'job.requested', target: `job/${id}`, jobId: id },
  );
  let from: JobStatus = 'Pending';
  for (const to of pathTo[options.status ?? 'Pending']) {
    const patch =
      to === 'Available'
        ? {
            sizeBytes: options.verified?.sizeBytes ?? 1234,
            sha256: options.verified?.sha256 ?? testSha256,
            completedAt: new Date(),
            expiresAt: options.expiresAt ?? new Date(Date.now() + 7 * 24 * 3600_000),
            ...(options.verified ? { verifiedAt: new Date(), reverifyDueAt: options.verified.reverifyDueAt ?? null, manifestKeyId: options.verified.manifestKeyId ?? null } : {}),
          }
        : {};
    const result = await store.transitionJob(id, { from: [from], to, patch }, { ...systemAudit, action: statusAuditAction(to), target: `job/${id}`, jobId: id });
    if (!result.ok) throw new Error(`seedJob: could not move job ${id} from ${from} to ${to}`);
    job = result.job;
    from = to;
  }
  return job;
}
