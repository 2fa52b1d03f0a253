/**
 * Job rules shared by the HTTP paths (services/jobs.ts) and the background work (orchestrations/, schedules):
 * how a job for a database is built, and how long a download link may live. One place each, so a user request,
 * a schedule and the orchestration cannot drift apart.
 */
import type { BackupOptions } from '../shared/contracts/jobs.js';
import type { DatabasePolicy } from '../shared/contracts/servers.js';
import type { DatabaseRecord, NewJob, ServerRecord } from '../shared/db/store.js';
import { backupBlobPath } from '../shared/storage/paths.js';
import type { Limits } from './deps.js';

const MINUTE_MS = 60_000;

export interface JobRequester {
  oid: string;
  upn: string | null;
}

/** The row for a new Pending job of `database` on `server`; the blob path is fixed here, for good. */
export function buildNewJob(
  database: Pick<DatabaseRecord, 'id' | 'name'>,
  server: Pick<ServerRecord, 'id' | 'engine'>,
  job: {
    id: string;
    options: BackupOptions;
    /** Who an age-encrypted copy is encrypted to (services/encryption.ts); null or absent when not encrypted. */
    encryptionRecipients?: NewJob['encryptionRecipients'];
    requester: JobRequester;
    trigger: NewJob['trigger'];
    scheduleSlot?: string | null;
    createdAt: Date;
  },
): NewJob {
  return {
    id: job.id,
    databaseId: database.id,
    serverId: server.id,
    databaseName: database.name,
    engine: server.engine,
    options: job.options,
    requesterOid: job.requester.oid,
    requesterUpn: job.requester.upn,
    trigger: job.trigger,
    scheduleSlot: job.scheduleSlot ?? null,
    blobPath: backupBlobPath({
      jobId: job.id,
      serverId: server.id,
      databaseId: database.id,
      engine: server.engine,
      compression: job.options.compression,
      encryption: job.options.encryption,
    }),
    encryptionRecipients: job.encryptionRecipients ?? null,
    createdAt: job.createdAt,
  };
}

/**
 * Lifetime of a download link: the requested minutes (or the service default), capped by the database's policy
 * and the service maximum, and never past the backup's own expiry. `expiresAt <= now` means no link can be issued.
 */
export function downloadLinkExpiry(input: {
  now: Date;
  requestedTtlMinutes?: number;
  policy: Pick<DatabasePolicy, 'maxSasTtlMinutes'>;
  limits: Pick<Limits, 'sasTtlDefaultMinutes' | 'sasTtlMaxMinutes'>;
  backupExpiresAt: Date | null;
}): { expiresAt: Date; ttlMinutes: number } {
  const { now, policy, limits } = input;
  const ttlMinutes = Math.min(input.requestedTtlMinutes ?? limits.sasTtlDefaultMinutes, policy.maxSasTtlMinutes, limits.sasTtlMaxMinutes);
  const wanted = new Date(now.getTime() + ttlMinutes * MINUTE_MS);
  const expiresAt = input.backupExpiresAt && input.backupExpiresAt < wanted ? input.backupExpiresAt : wanted;
  return { expiresAt, ttlMinutes };
}
