import type { InvocationContext } from '@azure/functions';
import type { TokenValidator } from '../shared/auth/tokens.js';
import type { RbacPolicy } from '../shared/auth/rbac.js';
import type { Store } from '../shared/db/store.js';
import type { DeadLetterInbox, JobQueue } from '../shared/messaging.js';
import type { BlobGateway } from '../shared/storage/gateway.js';
import type { ManifestSigner } from '../shared/integrity/manifest.js';
import type { NotificationChannel } from './notification-channels.js';
import type { JobOrchestrations } from './orchestrations.js';

export interface Limits {
  sasTtlDefaultMinutes: number;
  sasTtlMaxMinutes: number;
  uploadSasTtlMinutes: number;
  /** Age at which the storage lifecycle rule deletes backup blobs: every policy's retention must stay below it. */
  lifecycleDeleteDays: number;
}

/** How the control plane proves stored backups (services/integrity.ts, orchestrations/rehash.ts). */
export interface Integrity {
  signer: ManifestSigner;
  /** Bytes one re-hash activity reads before it hands its state back to the orchestration. */
  rehashBudgetBytes: number;
  /** Re-verifications the timer starts per tick at most. */
  reverifyBatchSize: number;
}

/** Everything the handlers, services and activities depend on. Built once per process. */
export interface Deps {
  store: Store;
  blobs: BlobGateway;
  queue: JobQueue;
  /** The dead-letter queues of the runners' subscriptions (jobs Service Bus gave up on). */
  deadLetters: DeadLetterInbox;
  tokens: TokenValidator;
  rbac: RbacPolicy;
  limits: Limits;
  /** The organisation's current recovery recipients (age1…), from ENCRYPTION_RECOVERY_RECIPIENTS. */
  recoveryRecipients: readonly string[];
  integrity: Integrity;
  now(): Date;
  /** Where notifications go (Event Grid, webhooks); none configured means the notifier only drains the outbox. */
  notifications: NotificationChannel[];
  /** Durable client for this invocation (the binding is per invocation in Azure). */
  orchestrations(context: InvocationContext): JobOrchestrations;
}

let current: Deps | undefined;
let building: Promise<Deps> | undefined;
let factory: (() => Promise<Deps>) | undefined;

/**
 * How the process builds its dependencies on first use. The entry point (functions/index.ts, the composition
 * root) installs the production factory; lower layers never import upward to find it.
 */
export function setDepsFactory(build: () => Promise<Deps>): void {
  factory = build;
}

/**
 * The process's dependencies, built on first use by the installed factory (in Azure: functions/production.ts);
 * a host that brings its own (the local sandbox, tests) calls `setDeps` before serving.
 */
export async function getDeps(): Promise<Deps> {
  if (current) return current;
  if (!factory) throw new Error('No dependencies: call setDeps() or setDepsFactory() before serving requests.');
  building ??= factory().then(
    (deps) => (current = deps),
    (error: unknown) => {
      // A failed start (SQL briefly unreachable) must not stick: the next request tries again.
      building = undefined;
      throw error;
    },
  );
  return building;
}

export function setDeps(deps: Deps | undefined): void {
  current = deps;
  building = undefined;
}
