/**
 * Encrypted copies: who a copy is encrypted to, requesters' own public keys, and which copies still depend on a
 * retired recovery key. A copy's recipients are fixed when it is requested and kept on the job record (public
 * keys and fingerprints only); the runner gets the public keys in the job message and encrypts with age.
 */
import { createHash } from 'node:crypto';
import type { CopyRecipient, MyRecipients, PutRecipientsRequest, RetiredRecipientCopy } from '../shared/contracts/encryption.js';
import { type DatabasePolicy, defaultDatabasePolicy } from '../shared/contracts/servers.js';
import { AppError } from '../shared/errors.js';
import type { Deps } from './deps.js';
import { type RequestScope, auditActor } from './scope.js';

const FIELD = 'body.options.encryption';

/**
 * Short, stable name of a recipient for job records, audit rows and manifests: the first 8 bytes of SHA-256 over
 * the recipient string, in hex. Public keys are not secret; this only keeps lists readable.
 */
export function recipientFingerprint(recipient: string): string {
  return createHash('sha256').update(recipient.trim()).digest().subarray(0, 8).toString('hex');
}

const HOW_TO_REGISTER_A_KEY =
  'Create a key pair with `age-keygen -o key.txt` (keep key.txt private), then register the public key it prints: ' +
  'PUT /api/me/recipients with {"recipients":["age1…"]}.';

function refuse(message: string): never {
  throw new AppError('validation_failed', message, { fieldErrors: [{ field: FIELD, message }] });
}

/**
 * The recipients of a new copy, or null for an unencrypted one. Refuses (400 naming options.encryption) what the
 * database's policy forbids, and an `age` request from someone with no registered key: nothing is recorded then.
 * `requesterOid` is null for scheduled copies, which go to the organisation's and the policy's keys only.
 */
export async function copyRecipientsFor(
  deps: Pick<Deps, 'store' | 'recoveryRecipients'>,
  request: { encryption: 'none' | 'age'; policy: Partial<DatabasePolicy>; databaseName: string; requesterOid: string | null },
): Promise<CopyRecipient[] | null> {
  const policy = { ...defaultDatabasePolicy, ...request.policy };
  if (request.encryption === 'none') {
    if (policy.encryption === 'required') {
      refuse(`Database ${request.databaseName} requires encrypted copies: ask with "encryption": "age". ${HOW_TO_REGISTER_A_KEY}`);
    }
    return null;
  }
  if (policy.encryption === 'none') refuse(`Database ${request.databaseName} does not allow encrypted copies (its policy says encryption "none").`);
  const own = request.requesterOid === null ? [] : await deps.store.listRequesterRecipients(request.requesterOid);
  if (request.requesterOid !== null && own.length === 0) refuse(`You have no age public key registered. ${HOW_TO_REGISTER_A_KEY}`);
  const recipients: CopyRecipient[] = [];
  const add = (recipient: string, role: CopyRecipient['role']) => {
    if (!recipients.some((r) => r.recipient === recipient)) recipients.push({ recipient, fingerprint: recipientFingerprint(recipient), role });
  };
  for (const { recipient } of own) add(recipient, 'requester');
  for (const recipient of deps.recoveryRecipients) add(recipient, 'recovery');
  for (const recipient of policy.encryptionRecipients) add(recipient, 'policy');
  if (recipients.length === 0) refuse(`No recipient is configured for encrypted copies of ${request.databaseName} (no recovery or policy key).`);
  return recipients;
}

function myRecipientsView(records: { recipient: string; fingerprint: string; createdAt: Date }[]): MyRecipients {
  return { recipients: records.map((r) => ({ recipient: r.recipient, fingerprint: r.fingerprint, addedAt: r.createdAt.toISOString() })) };
}

export async function listMyRecipients(scope: RequestScope): Promise<MyRecipients> {
  return myRecipientsView(await scope.deps.store.listRequesterRecipients(scope.principal.oid));
}

/** Replaces the caller's registered public keys (audited with the fingerprints before and after). */
export async function replaceMyRecipients(scope: RequestScope, body: PutRecipientsRequest): Promise<MyRecipients> {
  const { deps, principal } = scope;
  if (principal.isApplication) throw new AppError('forbidden', 'Applications do not request copies and cannot register recipients.');
  const before = await deps.store.listRequesterRecipients(principal.oid);
  const recipients = body.recipients.map((recipient) => ({ recipient, fingerprint: recipientFingerprint(recipient) }));
  const saved = await deps.store.replaceRequesterRecipients(principal.oid, recipients, {
    ...auditActor(scope),
    action: 'recipients.updated',
    target: `user/${principal.oid}`,
    detail: { before: before.map((r) => r.fingerprint), after: recipients.map((r) => r.fingerprint) },
    at: deps.now(),
  });
  return myRecipientsView(saved);
}

/**
 * Available copies whose recovery recipients are all retired (none is in ENCRYPTION_RECOVERY_RECIPIENTS any more):
 * the organisation can no longer open them with a current key. Re-request them, or keep the old key until they expire.
 */
export async function listRetiredRecipientCopies(scope: RequestScope): Promise<{ items: RetiredRecipientCopy[] }> {
  const { store, recoveryRecipients } = scope.deps;
  const current = new Set(recoveryRecipients.map(recipientFingerprint));
  const items: RetiredRecipientCopy[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.listJobs({ status: 'Available', limit: 200, ...(cursor ? { cursor } : {}) });
    for (const job of page.items) {
      const recovery = (job.encryptionRecipients ?? []).filter((r) => r.role === 'recovery');
      if (recovery.length === 0 || recovery.some((r) => current.has(r.fingerprint))) continue;
      items.push({
        jobId: job.id,
        databaseId: job.databaseId,
        databaseName: job.databaseName,
        expiresAt: job.expiresAt?.toISOString() ?? null,
        recipients: job.encryptionRecipients!.map(({ fingerprint, role }) => ({ fingerprint, role })),
        retiredFingerprints: recovery.map((r) => r.fingerprint),
      });
    }
    cursor = page.nextCursor;
  } while (cursor);
  return { items };
}
