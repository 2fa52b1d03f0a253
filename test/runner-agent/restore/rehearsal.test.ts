/**
 * Restore rehearsals on real PostgreSQL from a backup stored in Azurite through the real upload pipeline, read
 * back through a real read-only SAS.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type Readable, pipeline } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Compression } from '../../../shared/contracts/common.js';
import type { BlobGateway } from '../../../shared/storage/gateway.js';
import { createPostgresEngine } from '../../../runner-agent/engines/postgres.js';
import { silentLogger } from '../../../runner-agent/logger.js';
import { uploadBackup } from '../../../runner-agent/pipeline/upload.js';
import { createCompressStream } from '../../../runner-agent/pipeline/compression.js';
import { createEncryptStream } from '../../../runner-agent/pipeline/crypto.js';
import { compareRowCounts, rehearseRestore } from '../../../runner-agent/restore/rehearsal.js';
import { startAzurite, type Azurite } from '../../../dev/azurite.js';
import { postgresAvailable } from '../../support/postgres.js';
import { gatewayWithContainer, targetProvider } from '../blob-target.js';
import { ORDERS, USERS, startPgFixture, type PgFixture } from '../sanitize/pg-fixture.js';

let fx: PgFixture;
let azurite: Azurite;
let gateway: BlobGateway;
let container: string;

beforeAll(async () => {
  if (!postgresAvailable) return;
  [fx, azurite] = await Promise.all([startPgFixture(), startAzurite()]);
  ({ gateway, container } = await gatewayWithContainer(azurite));
});
afterAll(async () => {
  await Promise.all([fx?.postgres.stop(), azurite?.stop()]);
});

/** Backs up a seeded database into Azurite as a job would; returns what the job record holds. */
async function storedBackup(compression: Compression, encryptionKey?: Buffer) {
  const database = await fx.seededDatabase();
  const blobPath = `backups/${randomUUID()}.dump`;
  const backup = await createPostgresEngine(fx.settings).backup(
    { jobId: randomUUID(), databaseName: database },
    { signal: new AbortController().signal, onProgress: () => undefined, attemptId: 'a1' },
  );
  // New backups encrypt with age only; an encrypted rehearsal is of an older runner-key (DBDE) backup, so that
  // format is written here as the runner used to: compress, then DBDE-encrypt, then store those bytes as they are.
  const dbde = encryptionKey ? [createCompressStream(compression), createEncryptStream(encryptionKey)].filter((s) => s !== undefined) : [];
  const result = await uploadBackup({
    source: dbde.length > 0 ? ((pipeline(backup.stream, ...(dbde as unknown as [NodeJS.ReadWriteStream]), () => undefined) as unknown as Readable)) : backup.stream,
    sourceDone: backup.done,
    compression: encryptionKey ? 'none' : compression,
    getTarget: targetProvider(gateway, blobPath),
    metadata: { engine: 'postgres', jobid: 'j', server: 'pg', database },
  });
  const readSas = await gateway.issueReadSas(blobPath, { expiresAt: new Date(Date.now() + 600_000), fileName: 'x.dump', correlationId: randomUUID() });
  return { blobPath, sha256: result.sha256, tableRowCounts: backup.tableRowCounts!, url: readSas.url, compression, encrypted: Boolean(encryptionKey) };
}

const options = (url: string, extra: { encryptionKey?: Buffer } = {}) => ({
  sourceUrl: url,
  signal: new AbortController().signal,
  attemptId: randomBytes(4).toString('hex'),
  logger: silentLogger(),
  ...extra,
});

describe.skipIf(!postgresAvailable)('restore rehearsal on real PostgreSQL', () => {
  it('restores an encrypted, compressed backup, matches the recorded row counts, reports a duration, drops the scratch', async () => {
    const key = randomBytes(32);
    const stored = await storedBackup('gzip', key);
    expect(stored.tableRowCounts).toEqual({ 'public.users': USERS, 'public.orders': ORDERS, 'public.audit_log': 30 });
    const outcome = await rehearseRestore({ rehearsalId: randomUUID(), ...stored }, fx.driver, options(stored.url, { encryptionKey: key }));
    expect(outcome).toMatchObject({ result: 'passed', tableRowCounts: stored.tableRowCounts });
    expect(outcome.restoreDurationMs).toBeGreaterThan(0);
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('fails a backup with one byte flipped in storage, and drops the scratch', async () => {
    const stored = await storedBackup('none');
    const blob = azurite.serviceClient.getContainerClient(container).getBlockBlobClient(stored.blobPath);
    const bytes = await blob.downloadToBuffer();
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await blob.uploadData(bytes);
    const outcome = await rehearseRestore({ rehearsalId: randomUUID(), ...stored }, fx.driver, options(stored.url));
    expect(outcome.result).toBe('failed');
    expect(['backup_damaged', 'restore_failed']).toContain(outcome.code);
    expect(await fx.scratchDatabases()).toEqual([]);
  });

  it('fails when the restored row counts differ from those recorded at backup time, naming the table', async () => {
    const stored = await storedBackup('gzip');
    const outcome = await rehearseRestore(
      { rehearsalId: randomUUID(), ...stored, tableRowCounts: { ...stored.tableRowCounts, 'public.orders': ORDERS + 1 } },
      fx.driver,
      options(stored.url),
    );
    expect(outcome).toMatchObject({ result: 'failed', code: 'row_count_mismatch', message: `public.orders: ${ORDERS + 1} at backup, ${ORDERS} restored` });
  });

  it('compares counts both ways', () => {
    expect(compareRowCounts({ a: 1, b: 2 }, { a: 1, c: 0 })).toEqual(['b: 2 at backup, absent restored', 'c: absent at backup, 0 restored']);
  });
});
