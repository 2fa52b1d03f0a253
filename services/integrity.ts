/**
 * Integrity the control plane can prove: the signed manifest and sidecars written beside each backup, the public
 * keys that verify them (JWKS), re-verification on a schedule and on request, and what a re-verification decides.
 * The re-hash itself runs in activities (orchestrations/integrity.activities.ts) driven by orchestrations/rehash.ts.
 */
import type { AuditActor } from './retention.js';
import type { FileLink, JobView } from '../shared/contracts/jobs.js';
import { defaultDatabasePolicy } from '../shared/contracts/servers.js';
import type { JobRecord } from '../shared/db/store.js';
import { AppError, errorMessage } from '../shared/errors.js';
import {
  type BackupManifest,
  MANIFEST_SCHEMA,
  type ManifestPublicKey,
  type RestoreCheck,
  sha256SidecarText,
  signManifest,
} from '../shared/integrity/manifest.js';
import { sidecarFileNames, sidecarPaths } from '../shared/storage/paths.js';
import type { ReadSasIdentity } from '../shared/storage/gateway.js';
import type { Deps } from './deps.js';
import type { JobOrchestrations } from './orchestrations.js';
import { loadJob } from './jobs.js';
import { type RequestScope, auditActor } from './scope.js';
import { jobFileName, jobView } from './views.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** When the next scheduled re-verification of a backup verified at `verifiedAt` is due; null = never (policy 0). */
export function nextReverifyDue(verifiedAt: Date, reverifyEveryDays: number): Date | null {
  return reverifyEveryDays > 0 ? new Date(verifiedAt.getTime() + reverifyEveryDays * DAY_MS) : null;
}

/** What the orchestration knows about a verified upload beyond the job row. */
export interface ManifestFacts {
  sizeBytes: number;
  sha256: string;
  verifiedAt: Date;
  expiresAt: Date;
  runner: { id: string | null; attempt: number | null };
  restoreCheck: RestoreCheck | null;
  encryptionKeyId: string | null;
}

export async function buildManifest(deps: Pick<Deps, 'store'>, job: JobRecord, facts: ManifestFacts): Promise<BackupManifest> {
  const server = await deps.store.getServer(job.serverId);
  return {
    schema: MANIFEST_SCHEMA,
    jobId: job.id,
    database: { id: job.databaseId, name: job.databaseName },
    server: { id: job.serverId, name: server?.name ?? job.serverId },
    engine: job.engine,
    options: { compression: job.options.compression, encrypted: job.options.encryption !== 'none', encryptionKeyId: facts.encryptionKeyId },
    file: { name: jobFileName(job), sizeBytes: facts.sizeBytes, sha256: facts.sha256 },
    runner: facts.runner,
    restoreCheck: facts.restoreCheck,
    requestedAt: job.createdAt.toISOString(),
    verifiedAt: facts.verifiedAt.toISOString(),
    expiresAt: facts.expiresAt.toISOString(),
  };
}

/**
 * Signs the manifest and writes both sidecars beside the backup. The `.sha256` goes first and the signed manifest
 * last: a failure at any point throws (the activity is retried, then the job fails and its files are deleted), so a
 * backup never becomes Available without both. Returns the key id that signed.
 */
export async function publishManifest(deps: Pick<Deps, 'store' | 'blobs' | 'integrity'>, job: JobRecord, facts: ManifestFacts): Promise<{ manifestKeyId: string }> {
  const manifest = await buildManifest(deps, job, facts);
  const signed = await signManifest(deps.integrity.signer, manifest);
  const paths = sidecarPaths(job.blobPath);
  const encoder = new TextEncoder();
  await deps.blobs.writeBlob(paths.sha256, encoder.encode(sha256SidecarText(facts.sha256, manifest.file.name)), { contentType: 'text/plain; charset=utf-8' });
  await deps.blobs.writeBlob(paths.manifest, encoder.encode(`${JSON.stringify(signed, null, 2)}\n`), { contentType: 'application/json' });
  return { manifestKeyId: signed.signature.kid };
}

/**
 * Read links to both sidecars, as long-lived as the backup's own link and with its identity: the same correlation
 * id (so their downloads join the same `sas.download_issued` row) and, when links are bound, the same user.
 */
export async function sidecarLinks(
  deps: Pick<Deps, 'blobs'>,
  job: JobRecord,
  expiresAt: Date,
  identity: ReadSasIdentity,
): Promise<{ sha256: FileLink; manifest: FileLink }> {
  const paths = sidecarPaths(job.blobPath);
  const names = sidecarFileNames(jobFileName(job));
  const [sha256, manifest] = await Promise.all([
    deps.blobs.issueReadSas(paths.sha256, { expiresAt, fileName: names.sha256, ...identity }),
    deps.blobs.issueReadSas(paths.manifest, { expiresAt, fileName: names.manifest, ...identity }),
  ]);
  return { sha256: { url: sha256.url, fileName: names.sha256 }, manifest: { url: manifest.url, fileName: names.manifest } };
}

/**
 * The JWKS: the current signing key and every older one that signed the manifest of a backup that still exists.
 * A key whose manifests have all expired is retired: it drops out here and verifiers stop trusting it.
 */
export async function publishedManifestKeys(deps: Pick<Deps, 'store' | 'integrity' | 'now'>): Promise<{ keys: ManifestPublicKey[] }> {
  const [current, ...older] = await deps.integrity.signer.publicKeys();
  if (!current) throw new AppError('internal', 'The manifest signer has no key.');
  const now = deps.now();
  const inUse = await Promise.all(older.map((key) => deps.store.isManifestKeyInUse(key.kid, now)));
  return { keys: [current, ...older.filter((_, index) => inUse[index])] };
}

/** Instance id of a re-verification: one per job and due time, so a timer that fires twice starts it once. */
export function reverifyInstanceId(jobId: string, dueAt: Date): string {
  return `reverify-${jobId}-${dueAt.getTime()}`;
}

export interface ReverifyTickReport {
  started: string[];
  failed: { jobId: string; error: string }[];
}

/** Starts the re-verification of Available backups that are due, at most `reverifyBatchSize` per tick. */
export async function startDueReverifications(
  deps: Pick<Deps, 'store' | 'integrity' | 'now'>,
  orchestrations: JobOrchestrations,
  options: { log?: (line: string) => void } = {},
): Promise<ReverifyTickReport> {
  const now = deps.now();
  const due = await deps.store.listReverifyDue(now, deps.integrity.reverifyBatchSize);
  const report: ReverifyTickReport = { started: [], failed: [] };
  for (const job of due) {
    try {
      await orchestrations.startReverification(reverifyInstanceId(job.id, job.reverifyDueAt ?? now), { jobId: job.id });
      report.started.push(job.id);
    } catch (error) {
      report.failed.push({ jobId: job.id, error: errorMessage(error) });
      options.log?.(`re-verification of job ${job.id} could not be started: ${errorMessage(error)}`);
    }
  }
  return report;
}

/** The input of a `reverifyBackup` instance. */
export interface ReverifyInput {
  jobId: string;
  /** Who asked, for an on-demand re-verification; the schedule otherwise. */
  requestedBy?: AuditActor;
}

/** Database policy in force for a job (its database may be gone: the defaults then). */
export async function reverifyEveryDaysFor(deps: Pick<Deps, 'store'>, job: JobRecord): Promise<number> {
  const database = await deps.store.getDatabase(job.databaseId);
  return (database?.policy ?? defaultDatabasePolicy).reverifyEveryDays ?? defaultDatabasePolicy.reverifyEveryDays;
}

/**
 * `POST /api/jobs/{id}/verify` (Admin, Auditor): re-verifies an Available backup now. The request is audited
 * (`integrity.verify_requested`); the outcome is audited by the re-verification itself.
 */
export async function requestVerification(scope: RequestScope, jobId: string): Promise<JobView> {
  const { deps, principal } = scope;
  const job = await loadJob(deps, jobId);
  if (job.status !== 'Available') {
    throw new AppError('conflict', `Job ${job.id} is ${job.status}; only an Available backup can be re-verified.`, { details: { jobStatus: job.status } });
  }
  const now = deps.now();
  const actor = auditActor(scope);
  await deps.store.appendAudit({ ...actor, action: 'integrity.verify_requested', target: `job/${job.id}`, jobId: job.id, detail: { databaseId: job.databaseId }, at: now });
  await scope.orchestrations.startReverification(reverifyInstanceId(job.id, now), {
    jobId: job.id,
    requestedBy: { actorType: actor.actorType, actorId: actor.actorId, actorName: actor.actorName ?? null },
  });
  return jobView(job);
}
