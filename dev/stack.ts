/**
 * The whole of dbdist on one machine, on local stand-ins: what `npm run sandbox` runs and what the full-flow
 * tests run. Production code runs unchanged; only its dependencies are the stand-ins:
 *
 *   Blob Storage  → Azurite (HTTPS, OAuth; user-delegation SAS works)
 *   Entra ID      → a local OIDC issuer (real JWKS, real RS256 tokens) checked by the production validator
 *   Azure SQL     → PGlite (or a given PostgreSQL store) through the PostgreSQL repository (same contract suite as SQL Server)
 *   Service Bus   → a local AMQP 1.0 broker spoken to by the real @azure/service-bus client
 *   Functions     → the registered HTTP functions served on loopback HTTPS (dev/http-host.ts)
 *   Durable       → the real orchestrator and activities replayed in-process (dev/durable-host.ts)
 *   Runner host   → the real runner agent (consumer, API client, upload pipeline) in this process
 */
import type { ScratchDriver } from '../runner-agent/sanitize/types.js';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createBlobGateway } from '../shared/storage/blob-gateway.js';
import { createDeadLetterInbox, createJobQueue, serviceBusClientFrom } from '../shared/servicebus.js';
import { failDeadLetteredJobs } from '../services/dead-letters.js';
import type { Store } from '../shared/db/store.js';
import type { Deps, Limits } from '../services/deps.js';
import { setDeps } from '../services/deps.js';
import { registeredRoutes, routePrefix } from '../functions/registry.js';
import { httpPolicyFromSettings, setHttpPolicy } from '../functions/http-policy.js';
import { httpSettingsSchema, parseSettings } from '../shared/config.js';
import type { JobConsumer } from '../runner-agent/consumer.js';
import { createLogger, type Logger } from '../runner-agent/logger.js';
import type { BackupEngineDriver } from '../runner-agent/engines/types.js';
import { azuriteGatewayOptions, startAzurite, type Azurite } from './azurite.js';
import { ensureLoopbackCert } from './tls.js';
import { allRows, createInspectablePgliteStore, type RowsClient } from './stores.js';
import { startOidcIssuer, testGroupIds, testRbacPolicy, validatorFor, type OidcIssuer } from './oidc-issuer.js';
import type { DemoUser } from './oidc-sign-in.js';
import { ServiceBusBroker } from './servicebus-broker.js';
import { startInProcessRunner } from './in-process-runner.js';
import { InProcessDurableHost } from './durable-host.js';
import { inProcessJobOrchestrations } from './durable-orchestrations.js';
import { startHttpHost, type HttpHostOptions, type RunningHttpHost } from './http-host.js';
import { LocalManifestSigner } from './manifest-signer.js';
import { startPortalHost, type RunningPortalHost } from './portal-host.js';

/** Link and upload-SAS lifetimes of the local stack (the production defaults). */
export const sandboxLimits: Limits = { sasTtlDefaultMinutes: 60, sasTtlMaxMinutes: 24 * 60, uploadSasTtlMinutes: 30, lifecycleDeleteDays: 30 };

export const JOBS_TOPIC = 'backup-jobs';

/**
 * The demo's people, the same in the tokens the stack hands out and on the local sign-in page (the portal).
 * alice may request the demo database; mallory is a requester outside its group.
 */
export function demoPeople(requesterGroupId: string): DemoUser[] {
  const person = (key: string, description: string, groups: string[], roles?: string[]): DemoUser => ({
    key,
    name: key,
    upn: `${key}@contoso.example`,
    oid: randomUUID(),
    groups,
    ...(roles ? { roles } : {}),
    description,
  });
  return [
    person('alice', 'Requester, may request the demo database', [testGroupIds.requester, requesterGroupId]),
    person('approver', 'Approver of raw copies', [], ['Approver']),
    person('auditor', 'Auditor, reads the audit trail', [testGroupIds.auditor]),
    person('admin', 'Admin, registers servers and databases', [testGroupIds.admin]),
    person('mallory', 'Requester outside the demo database’s group', [testGroupIds.requester, randomUUID()]),
  ];
}

/** The demo's people. Each token is a real RS256 token from the local issuer. */
export interface DemoTokens {
  /** Platform admin (Admin group). */
  admin: string;
  /** A requester in the database's own requester group. */
  alice: string;
  /** Another requester, not allowed on the demo database nor on alice's jobs. */
  mallory: string;
  auditor: string;
  /** Holds the `Approver` app role (approval of raw copies). */
  approver: string;
  /** The runner agent's client-credentials token (app role Runner). */
  runner: string;
}

export interface ApiResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface LocalStack {
  apiBaseUrl: string;
  issuer: OidcIssuer;
  azurite: Azurite;
  broker: ServiceBusBroker;
  store: Store;
  /** Every row of every table of the store, as stored (for scans such as "no secret anywhere"). */
  storeRows(): Promise<Record<string, unknown[]>>;
  /** The control plane's dependencies as installed; tests may move `deps.now` to play with time. */
  deps: Deps;
  durable: InProcessDurableHost;
  container: string;
  /** Group object id of the demo database's requesters (alice is in it). */
  requesterGroupId: string;
  /** The portal's origin, when `portal` was asked for (different from the API's, so CORS applies). */
  portalOrigin?: string;
  /** Who can sign in on the local issuer's page (and whose tokens `tokens` holds). */
  demoUsers: DemoUser[];
  tokens: DemoTokens;
  /** Calls the API over loopback HTTPS, as the portal would. */
  api<T = unknown>(method: string, path: string, options?: { token?: string; body?: unknown }): Promise<ApiResponse<T>>;
  /** Binds a runner identity to a server in the registry, as an Admin would (`PATCH /api/servers/{id}`). */
  bindRunner(serverId: string, binding: { clientId: string; servicePrincipalId: string }): Promise<void>;
  /** Sees every API request before its handler; `'drop'` resets the connection unanswered (outage tests). */
  interceptApi(intercept: HttpHostOptions['intercept'] | undefined): void;
  /** Starts a runner agent for `serverId`'s subscription; stop it to simulate a shutdown or a crash. */
  startRunner(options: RunnerOptions): Promise<RunningRunner>;
  stop(): Promise<void>;
}

export interface RunnerOptions {
  serverId: string;
  engine: BackupEngineDriver;
  runnerId?: string;
  logger?: Logger;
  /** Block size of the upload pipeline (tests make it small to get many blocks). */
  blockBytes?: number;
  /** Scratch target for sanitized copies. */
  scratch?: ScratchDriver;
}

export interface RunningRunner {
  runnerId: string;
  consumer: JobConsumer;
  /** Graceful stop: finishes running jobs within the grace period. */
  stop(): Promise<void>;
  /** Simulates a crash: the connection drops without settling anything. */
  crash(): Promise<void>;
}

export interface StackOptions {
  log?: (line: string) => void;
  /** Told what is starting and when each part is ready (the sandbox prints it). */
  progress?: (line: string) => void;
  /** Serve the built portal (portal/dist) on its own loopback origin, signed in through the local issuer. */
  portal?: { dist: string };
  /** Service Bus lock duration; short in tests so a crashed runner's message comes back quickly. */
  lockDurationMs?: number;
  /** Deliveries before Service Bus dead-letters a message (default 10, as Service Bus). */
  maxDeliveryCount?: number;
  /** How often the dead-letter watch runs (the Function App's timer runs every minute); default 1 s. */
  deadLetterSweepMs?: number;
  /** Signs the backups' manifests; a fresh local key by default. */
  manifestSigner?: LocalManifestSigner;
  /** Bytes per re-hash activity (small in tests, to run several slices). */
  rehashBudgetBytes?: number;
  /** Browser origins allowed by CORS (a portal on another loopback port); default: the CORS_ORIGINS setting. */
  corsOrigins?: string[];
  /**
   * The SQL store and a raw client on the same database (for `storeRows`); default a fresh in-memory PGlite. A
   * store passed here stays the caller's: `stop()` does not close it.
   */
  store?: { store: Store; client: RowsClient };
}

/** The subscription a runner for `serverId` receives from (filtered on the serverId property), created once. */
export function ensureRunnerSubscription(broker: ServiceBusBroker, serverId: string): string {
  const subscription = `runner-${serverId}`;
  if (!broker.exists(JOBS_TOPIC, subscription)) {
    broker.createSubscription(JOBS_TOPIC, subscription, { filter: `serverId = '${serverId}'` });
  }
  return subscription;
}

/**
 * Loads every function file, as the Functions host does. Outside the host @azure/functions switches to its
 * test mode ("Failed to detect the Azure Functions runtime") and warns once per registration; that is expected
 * here (dev/http-host.ts serves the handlers), so those lines are not shown.
 */
async function loadFunctionRegistrations() {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    const text = String(args[0]);
    if (!/Failed to detect the Azure Functions runtime|because the "@azure\/functions" package is in test mode/.test(text)) warn(...args);
  };
  try {
    await import('../functions/index.js');
    return { ...(await import('../orchestrations/backupJob.js')), ...(await import('../orchestrations/backupJob2.js')) };
  } finally {
    console.warn = warn;
  }
}

export async function startLocalStack(options: StackOptions = {}): Promise<LocalStack> {
  const log = options.log ?? (() => undefined);
  const progress = options.progress ?? (() => undefined);
  const ready = <T>(what: string, work: Promise<T>): Promise<T> => {
    const t0 = Date.now();
    return work.then((value) => {
      progress(`${what} ready (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      return value;
    });
  };
  const { BACKUP_JOB_ORCHESTRATOR, backupJobOrchestrator, BACKUP_JOB2_ORCHESTRATOR, backupJob2Orchestrator } = await ready('HTTP functions and orchestrator code', loadFunctionRegistrations());
  const { activities } = await import('../orchestrations/backupJob.activities.js');
  const { REVERIFY_BACKUP_ORCHESTRATOR, reverifyBackupOrchestrator } = await import('../orchestrations/reverifyBackup.js');
  const { integrityActivities } = await import('../orchestrations/integrity.activities.js');
  const cert = ensureLoopbackCert();
  progress(`Azurite (Blob Storage), the OIDC issuer (Entra ID), ${options.store ? '' : 'PGlite (the SQL store) '}and the AMQP broker (Service Bus), in parallel`);
  const [issuer, azurite, { store, client: storeClient, close: closeStore }, broker] = await Promise.all([
    ready('OIDC issuer', startOidcIssuer({ tls: cert })),
    ready('Azurite', startAzurite()),
    options.store
      ? { ...options.store, close: async () => undefined }
      : ready(
          'PGlite store (migrations applied)',
          createInspectablePgliteStore().then(({ store: lite, client }) => ({ store: lite, client, close: () => lite.close().finally(() => client.close()) })),
        ),
    ready(
      'AMQP broker',
      ServiceBusBroker.start({
        lockDurationMs: options.lockDurationMs ?? 30_000,
        ...(options.maxDeliveryCount ? { maxDeliveryCount: options.maxDeliveryCount } : {}),
        topics: [{ name: JOBS_TOPIC }],
      }),
    ),
  ]);
  const container = await azurite.createContainer('backups');
  const queue = createJobQueue({ client: serviceBusClientFrom({ connectionString: broker.connectionString }), topic: JOBS_TOPIC });
  const durable = new InProcessDurableHost({
    orchestrators: {
      [BACKUP_JOB_ORCHESTRATOR]: backupJobOrchestrator,
      [BACKUP_JOB2_ORCHESTRATOR]: backupJob2Orchestrator,
      [REVERIFY_BACKUP_ORCHESTRATOR]: reverifyBackupOrchestrator,
    },
    activities: { ...activities, ...integrityActivities },
    log,
  });
  const orchestrations = inProcessJobOrchestrations(durable, BACKUP_JOB2_ORCHESTRATOR);
  const deadLetterClient = serviceBusClientFrom({ connectionString: broker.connectionString });
  const deadLetters = createDeadLetterInbox({
    client: deadLetterClient,
    topic: JOBS_TOPIC,
    subscriptions: () => broker.subscriptionsOf(JOBS_TOPIC),
    maxWaitTimeInMs: 200,
  });
  const deps: Deps = {
    store,
    deadLetters,
    blobs: createBlobGateway({ blobEndpoint: azurite.blobEndpoint, container: container.containerName, credential: azurite.credential, ...azuriteGatewayOptions }),
    queue,
    tokens: validatorFor(issuer),
    rbac: testRbacPolicy,
    limits: sandboxLimits,
    recoveryRecipients: [],
    integrity: { signer: options.manifestSigner ?? new LocalManifestSigner(), rehashBudgetBytes: options.rehashBudgetBytes ?? 8 * 1024 * 1024, reverifyBatchSize: 20 },
    now: () => new Date(),
    notifications: [],
    orchestrations: () => orchestrations,
  };
  setDeps(deps);
  // The dead-letter timer, as the Functions host would run it (one run at a time).
  let sweeping = false;
  const deadLetterTimer = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    failDeadLetteredJobs(deps, orchestrations, { log: (line) => log(`[dead-letters] ${line}`) })
      .catch((error: unknown) => log(`[dead-letters] sweep failed: ${String(error)}`))
      .finally(() => (sweeping = false));
  }, options.deadLetterSweepMs ?? 1_000);
  let intercept: HttpHostOptions['intercept'];
  const http: RunningHttpHost = await startHttpHost({
    routes: registeredRoutes(),
    routePrefix,
    tls: cert,
    log,
    intercept: (request) => intercept?.(request) ?? 'pass',
  });
  // The portal needs the API's URL for its config and the API needs the portal's origin for CORS: the policy is
  // read per request, so it is set once both are known, before any request.
  const portal = options.portal ? await startPortal(options.portal.dist, issuer, http.baseUrl) : undefined;
  const corsOrigins = [...(options.corsOrigins ?? []), ...(portal ? [portal.origin] : [])];
  // Checked like the app setting, so a wrong origin (a trailing slash) fails here rather than in a browser.
  if (corsOrigins.length > 0) setHttpPolicy(httpPolicyFromSettings(parseSettings(httpSettingsSchema, { CORS_ORIGINS: corsOrigins.join(',') })));

  const requesterGroupId = randomUUID();
  /** The identity of the in-process runners (`startRunner`), bound to each server they are started for. */
  const inProcessRunner = { clientId: randomUUID(), servicePrincipalId: randomUUID() };
  async function bindRunner(serverId: string, binding: { clientId: string; servicePrincipalId: string }): Promise<void> {
    const server = await store.getServer(serverId);
    if (!server) throw new Error(`server ${serverId} is not registered`);
    if (server.runners.some((b) => b.clientId === binding.clientId)) return;
    await store.updateServer(
      serverId,
      { runners: [...server.runners, binding] },
      { actorType: 'system', actorId: 'sandbox', action: 'server.updated', target: `server/${serverId}`, detail: { runnerBound: binding } },
    );
  }
  const demoUsers = demoPeople(requesterGroupId);
  issuer.signIn.setUsers(demoUsers);
  const user = (key: DemoUser['key']) => {
    const { oid, upn, name, groups, roles } = demoUsers.find((candidate) => candidate.key === key)!;
    return issuer.issueUserToken({ oid, upn, name, groups, ...(roles ? { roles } : {}), expiresIn: 8 * 3600 });
  };
  const tokens: DemoTokens = {
    admin: user('admin'),
    alice: user('alice'),
    mallory: user('mallory'),
    auditor: user('auditor'),
    approver: user('approver'),
    runner: issuer.issueAppToken({ roles: ['Runner'], appId: inProcessRunner.clientId, oid: inProcessRunner.servicePrincipalId, expiresIn: 8 * 3600 }),
  };

  async function api<T>(method: string, path: string, request: { token?: string; body?: unknown } = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = {};
    if (request.token) headers.authorization = `Bearer ${request.token}`;
    if (request.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${http.baseUrl}${path}`, {
      method,
      headers,
      ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
    });
    const text = await response.text();
    let body: unknown = text;
    if ((response.headers.get('content-type') ?? '').includes('json') && text.length > 0) body = JSON.parse(text);
    return { status: response.status, headers: response.headers, body: body as T, text };
  }

  const runners = new Set<RunningRunner>();
  async function startRunner(runner: RunnerOptions): Promise<RunningRunner> {
    const subscription = ensureRunnerSubscription(broker, runner.serverId);
    await bindRunner(runner.serverId, inProcessRunner);
    const started = startInProcessRunner({
      connectionString: broker.connectionString,
      topic: JOBS_TOPIC,
      subscription,
      serverId: runner.serverId,
      apiBaseUrl: http.baseUrl,
      token: async () => tokens.runner,
      engine: runner.engine,
      runnerId: runner.runnerId ?? `runner-${randomUUID().slice(0, 8)}`,
      ...(runner.logger ? { logger: runner.logger } : {}),
      ...(runner.blockBytes ? { blockBytes: runner.blockBytes } : {}),
      ...(runner.scratch ? { scratch: runner.scratch } : {}),
      progress: { minIntervalMs: 200, heartbeatMs: 1_000 },
    });
    const handle: RunningRunner = {
      runnerId: started.runnerId,
      consumer: started.consumer,
      stop: async () => {
        runners.delete(handle);
        await started.stop();
      },
      crash: async () => {
        runners.delete(handle);
        // Drop the AMQP connections first: nothing gets settled, the lock lapses, the broker redelivers. The
        // client is closed without waiting: a dead process does not wait for its stuck handler either.
        broker.dropConnections();
        started.abandon();
      },
    };
    runners.add(handle);
    return handle;
  }

  return {
    apiBaseUrl: http.baseUrl,
    issuer,
    azurite,
    broker,
    store,
    deps,
    durable,
    container: container.containerName,
    requesterGroupId,
    ...(portal ? { portalOrigin: portal.origin } : {}),
    demoUsers,
    tokens,
    api,
    interceptApi: (next) => (intercept = next),
    bindRunner,
    startRunner,
    storeRows: () => allRows(storeClient),
    async stop() {
      for (const runner of [...runners]) await runner.stop().catch(() => undefined);
      clearInterval(deadLetterTimer);
      await deadLetters.close().catch(() => undefined);
      await deadLetterClient.close().catch(() => undefined);
      durable.close();
      setDeps(undefined);
      setHttpPolicy(undefined);
      await http.close().catch(() => undefined);
      await portal?.close().catch(() => undefined);
      const timed = (name: string, work: Promise<unknown>) => {
        const t0 = Date.now();
        return work.finally(() => log(`[stack] ${name} stopped in ${Date.now() - t0} ms`));
      };
      // The sender first: closing it while the broker goes away makes the SDK reconnect just to detach.
      await timed('queue', queue.close()).catch(() => undefined);
      await Promise.allSettled([
        timed('store', closeStore()),
        timed('issuer', issuer.close()),
        timed('azurite', azurite.stop()),
        timed('broker', broker.close()),
      ]);
    },
  };
}

/**
 * The portal on its own origin, registered with the local issuer as a SPA (redirect URI: its origin), with the
 * config it reads at start-up: the issuer's metadata is handed over as a string, so MSAL needs no discovery.
 */
async function startPortal(dist: string, issuer: OidcIssuer, apiBaseUrl: string): Promise<RunningPortalHost> {
  const metadata = await (await fetch(`${issuer.v2Issuer}/.well-known/openid-configuration`)).text();
  const config: Record<string, unknown> = {
    apiBaseUrl,
    clientId: issuer.clientAppId,
    authority: issuer.v2Issuer,
    apiScope: issuer.signIn.apiScope,
    knownAuthorities: [new URL(issuer.baseUrl).host],
    authorityMetadata: metadata,
    protocolMode: 'OIDC',
    environmentName: 'Local sandbox',
  };
  const host = await startPortalHost({ dist, config });
  issuer.signIn.registerSpa({ clientId: issuer.clientAppId, redirectUris: [`${host.origin}/`] });
  return host;
}

/** Reads a whole stream (downloads in the sandbox and tests are small). */
export async function readAll(stream: Readable | ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

export { createLogger };
