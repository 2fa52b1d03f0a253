import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { createReadStream, createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobGateway } from '../../../shared/storage/gateway.js';
import { generateAgeIdentity } from '../../../runner-agent/pipeline/age.js';
import { classifyPgDumpError, createPostgresEngine, findPgDump } from '../../../runner-agent/engines/postgres.js';
import type { PostgresSettings } from '../../../runner-agent/config.js';
import { uploadBackup } from '../../../runner-agent/pipeline/upload.js';
import { startAzurite, type Azurite } from '../../../dev/azurite.js';
import { ageCliAvailable } from '../../support/age-cli.js';
import { postgresAvailable, startPostgres, type PostgresServer } from '../../support/postgres.js';
import { gatewayWithContainer, targetProvider } from '../blob-target.js';

const run = promisify(execFile);

let azurite: Azurite;
let gateway: BlobGateway;
let container: string;
let postgres: PostgresServer;
let settings: PostgresSettings;
let workDir: string;

beforeAll(async () => {
  if (!postgresAvailable) return;
  [azurite, postgres] = await Promise.all([startAzurite(), startPostgres()]);
  ({ gateway, container } = await gatewayWithContainer(azurite));
  const password = decodeURIComponent(new URL(postgres.url).password);
  settings = {
    host: postgres.host,
    port: postgres.port,
    user: postgres.user,
    ...(password ? { password } : {}),
    maintenanceDatabase: 'postgres',
  };
  workDir = mkdtempSync(join(tmpdir(), 'dbdist-pg-engine-'));
});

afterAll(async () => {
  await Promise.all([azurite?.stop(), postgres?.stop()]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

function connect(database: string): pg.Client {
  return new pg.Client({ host: settings.host, port: settings.port, user: settings.user, password: settings.password, database });
}

async function withClient<T>(database: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = connect(database);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const tables = ['customers', 'orders', 'attachments'] as const;

async function seed(database: string): Promise<void> {
  await withClient(database, async (db) => {
    await db.query(`
      CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, created timestamptz NOT NULL);
      CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id), amount numeric(12,2), note text);
      CREATE TABLE attachments (id int PRIMARY KEY, data bytea NOT NULL);
      INSERT INTO customers SELECT g, 'customer ' || md5(g::text), timestamptz '2026-01-01' + g * interval '1 minute'
        FROM generate_series(1, 3000) g;
      INSERT INTO orders SELECT g, 1 + g % 3000, (g * 7.31) % 10000, repeat('n', g % 50) FROM generate_series(1, 6000) g;
    `);
    for (let id = 1; id <= 200; id += 1) {
      await db.query('INSERT INTO attachments VALUES ($1, $2)', [id, randomBytes(1 + ((id * 97) % 4000))]);
    }
  });
}

/** Creates a database with exactly `name` (quotes, spaces and all) and returns the name. */
async function createDatabase(name: string): Promise<string> {
  await postgres.createDatabase(name);
  return name;
}

/** Row count and an md5 over the ordered rows of each table. */
async function fingerprint(database: string): Promise<Record<string, { rows: number; md5: string }>> {
  return withClient(database, async (db) => {
    const result: Record<string, { rows: number; md5: string }> = {};
    for (const table of tables) {
      const { rows } = await db.query<{ rows: string; md5: string }>(
        `SELECT count(*) AS rows, md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) AS md5 FROM ${table} t`,
      );
      result[table] = { rows: Number(rows[0]!.rows), md5: rows[0]!.md5 };
    }
    return result;
  });
}

// Skips only on a machine with neither PG_URL nor PostgreSQL binaries; CI has both.
describe.skipIf(!postgresAvailable)('PostgreSQL engine (pg_dump) → upload pipeline → Azurite → pg_restore', () => {
  it.skipIf(!ageCliAvailable)('round-trips a database with a hostile name through gzip and age encryption, opened with the age CLI', async () => {
    const source = await createDatabase(`src "weird"; -- ${randomUUID().slice(0, 8)}`);
    await seed(source);
    const engine = createPostgresEngine(settings);
    const { identity, recipient } = generateAgeIdentity();
    const blobPath = `backups/${randomUUID()}/${randomUUID()}/${randomUUID()}.dump.gz.age`;
    const backup = await engine.backup(
      { jobId: randomUUID(), databaseName: source },
      { signal: new AbortController().signal, onProgress: () => undefined, attemptId: 'a1' },
    );
    const result = await uploadBackup({
      source: backup.stream,
      sourceDone: backup.done,
      compression: 'gzip',
      ageRecipients: [recipient],
      getTarget: targetProvider(gateway, blobPath),
      metadata: { engine: 'postgres', jobid: 'j', server: 'pg', database: source },
    });
    await backup.cleanup();
    expect(result.sizeBytes).toBeGreaterThan(0);
    // The pre-commit restore check listed the archive from the same stream (no second pass).
    expect(backup.restoreCheck?.()).toEqual({ tool: 'pg_restore --list', ok: true, detail: expect.stringMatching(/^\d+ archive entries$/) });
    expect(Number(/^(\d+)/.exec(backup.restoreCheck?.()?.detail ?? '')?.[1])).toBeGreaterThanOrEqual(3);

    // As the requester would: the age CLI with their key file, then gunzip.
    const dumpFile = join(workDir, 'restored.dump');
    const encryptedFile = join(workDir, 'download.dump.gz.age');
    const keyFile = join(workDir, 'key.txt');
    writeFileSync(keyFile, `${identity}\n`);
    await azurite.serviceClient.getContainerClient(container).getBlobClient(blobPath).downloadToFile(encryptedFile);
    await run('age', ['-d', '-i', keyFile, '-o', `${dumpFile}.gz`, encryptedFile], {});
    await pipeline(createReadStream(`${dumpFile}.gz`), createGunzip(), createWriteStream(dumpFile));

    const target = await createDatabase(`restored_${randomUUID().slice(0, 8)}`);
    const pgRestore = join(dirname(findPgDump()), 'pg_restore');
    await run(pgRestore, ['--no-owner', '--exit-on-error', '--dbname', target, dumpFile], {
      env: { ...process.env, PGHOST: settings.host, PGPORT: String(settings.port), PGUSER: settings.user, PGPASSWORD: settings.password ?? '' },
    });
    const [before, after] = await Promise.all([fingerprint(source), fingerprint(target)]);
    expect(after).toEqual(before);
    expect(before.customers!.rows).toBe(3000);
    expect(before.orders!.rows).toBe(6000);
    expect(before.attachments!.rows).toBe(200);
  });

  it('fails with database_not_found and commits nothing for a missing database', async () => {
    const engine = createPostgresEngine(settings);
    const blobPath = `backups/${randomUUID()}/${randomUUID()}/${randomUUID()}.dump`;
    const backup = await engine.backup(
      { jobId: randomUUID(), databaseName: `missing_${randomUUID().slice(0, 8)}` },
      { signal: new AbortController().signal, onProgress: () => undefined, attemptId: 'a1' },
    );
    const upload = uploadBackup({
      source: backup.stream,
      sourceDone: backup.done,
      compression: 'none',
      getTarget: targetProvider(gateway, blobPath),
      metadata: { engine: 'postgres', jobid: 'j', server: 'pg', database: 'missing' },
    });
    await expect(upload).rejects.toMatchObject({ name: 'JobFailure', code: 'database_not_found' });
    expect(await gateway.getBlobFacts(blobPath)).toBeUndefined();
  });

  it('spoolToWorkDir: pg_dump writes a checked local file first, which the upload then reads; a failed dump leaves no file', async () => {
    const source = await createDatabase(`spool_${randomUUID().slice(0, 8)}`);
    await seed(source);
    const spoolDir = mkdtempSync(join(workDir, 'spool-'));
    const engine = createPostgresEngine({ ...settings, spoolToWorkDir: true }, { workDir: spoolDir });
    const jobId = randomUUID();
    const backup = await engine.backup({ jobId, databaseName: source }, { signal: new AbortController().signal, onProgress: () => undefined, attemptId: 'a1' });
    // By the time backup() returns the dump is finished and listed: the file is complete, its verdict known.
    expect(backup.localFile).toBe(join(spoolDir, `dbdist-${jobId}-a1.dump`));
    expect(backup.sizeHint).toBe(statSync(backup.localFile!).size);
    expect(backup.restoreCheck?.()).toMatchObject({ tool: 'pg_restore --list', ok: true });
    expect(backup.tableRowCounts).toMatchObject({ 'public.customers': 3000 });
    const blobPath = `backups/${randomUUID()}/${randomUUID()}/${randomUUID()}.dump`;
    const result = await uploadBackup({
      source: backup.stream,
      sourceDone: backup.done,
      sourceSizeHint: backup.sizeHint!,
      compression: 'none',
      getTarget: targetProvider(gateway, blobPath),
      metadata: { engine: 'postgres', jobid: jobId, server: 'pg', database: source },
    });
    expect(result.sha256).toBe(createHash('sha256').update(readFileSync(backup.localFile!)).digest('hex'));
    await backup.cleanup();
    expect(readdirSync(spoolDir)).toEqual([]);

    await expect(
      engine.backup({ jobId, databaseName: `missing_${randomUUID().slice(0, 8)}` }, { signal: new AbortController().signal, onProgress: () => undefined, attemptId: 'a2' }),
    ).rejects.toMatchObject({ name: 'JobFailure', code: 'database_not_found' });
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it('fails the restore check before the commit when pg_restore cannot list what pg_dump produced', async () => {
    // A stand-in pg_dump that "succeeds" with bytes that are no archive, beside the real pg_restore.
    const binDir = join(workDir, `bin-${randomUUID().slice(0, 8)}`);
    mkdirSync(binDir);
    symlinkSync(join(dirname(findPgDump()), 'pg_restore'), join(binDir, 'pg_restore'));
    const fake = join(binDir, 'pg_dump');
    writeFileSync(fake, '#!/bin/sh\nhead -c 2097152 /dev/urandom\nexit 0\n');
    chmodSync(fake, 0o755);
    const { backup, upload, blobPath } = await uploadFromFakePgDump(fake);
    await expect(upload).rejects.toMatchObject({ code: 'restore_check_failed', message: expect.stringContaining('pg_restore --list could not read the archive') });
    expect(backup.restoreCheck?.()).toMatchObject({ tool: 'pg_restore --list', ok: false });
    expect(await gateway.getBlobFacts(blobPath)).toBeUndefined();
  });

  it('treats a non-zero exit as failure even after bytes were produced, with stderr in the reason', async () => {
    // A stand-in pg_dump: writes 3 MiB, complains on stderr, exits 1.
    const fake = join(workDir, 'fake-pg_dump');
    writeFileSync(fake, '#!/bin/sh\nhead -c 3145728 /dev/zero\necho "pg_dump: error: query failed: disk trouble" >&2\nexit 1\n');
    chmodSync(fake, 0o755);
    const { backup, upload, blobPath } = await uploadFromFakePgDump(fake);
    await expect(upload).rejects.toMatchObject({ code: 'engine_exit', message: expect.stringContaining('disk trouble') });
    expect(await gateway.getBlobFacts(blobPath)).toBeUndefined();
  });

  it('leaves compression to the runner when it compresses, else asks pg_dump for zlib level 1; output arrives coalesced', async () => {
    // A stand-in pg_dump: prints its arguments, then 2 MiB in 4 KiB writes (as pg_dump writes its custom format).
    // Its bytes are no archive, so the engine's pre-commit restore check (the pg_restore beside pg_dump) gets a
    // stand-in too, which reads everything and lists one entry; the real check is tested above.
    const binDir = join(workDir, 'args-bin');
    mkdirSync(binDir);
    const fake = join(binDir, 'pg_dump');
    writeFileSync(fake, '#!/bin/sh\necho "$@"\nhead -c 2097152 /dev/zero | dd bs=4096 status=none\n');
    chmodSync(fake, 0o755);
    const fakeRestore = join(binDir, 'pg_restore');
    writeFileSync(fakeRestore, '#!/bin/sh\ncat >/dev/null\necho "1; 2615 2200 SCHEMA - public postgres"\n');
    chmodSync(fakeRestore, 0o755);
    const engine = createPostgresEngine(settings, { pgDumpPath: fake });
    const argumentsFor = async (compression: 'none' | 'gzip' | 'zstd') => {
      const backup = await engine.backup(
        { jobId: randomUUID(), databaseName: 'whatever', compression },
        { signal: new AbortController().signal, onProgress: () => undefined, attemptId: 'a1' },
      );
      const chunks: Buffer[] = [];
      for await (const chunk of backup.stream) chunks.push(chunk as Buffer);
      await backup.done;
      const output = Buffer.concat(chunks);
      expect(output.length).toBeGreaterThan(2 * 1024 * 1024);
      // Everything but the last chunk is at least 1 MiB: the 4 KiB writes were joined.
      expect(chunks.slice(0, -1).every((chunk) => chunk.length >= 1024 * 1024)).toBe(true);
      return output.subarray(0, output.indexOf('\n')).toString('utf8').split(' ');
    };
    expect(await argumentsFor('gzip')).toContain('--compress=0');
    expect(await argumentsFor('zstd')).toContain('--compress=0');
    expect(await argumentsFor('none')).toContain('--compress=1');
  });

  it('check() connects and reports the server and pg_dump versions', async () => {
    expect(await createPostgresEngine(settings).check()).toMatch(/^PostgreSQL \d+.*pg_dump \(PostgreSQL\) \d+/);
  });

  it('classifies pg_dump errors', () => {
    expect(classifyPgDumpError('pg_dump: error: connection to server failed: FATAL:  database "x" does not exist')).toBe('database_not_found');
    expect(classifyPgDumpError('FATAL:  password authentication failed for user "u"')).toBe('authentication_failed');
    expect(classifyPgDumpError('pg_dump: error: query failed: ERROR:  permission denied for table t')).toBe('permission_denied');
    expect(classifyPgDumpError('pg_dump: error: aborting because of server version mismatch')).toBe('pg_dump_version_mismatch');
    expect(classifyPgDumpError('something else')).toBe('engine_exit');
  });
});

/** A backup by the stand-in pg_dump at `fake`, streamed into an upload of its own blob (not awaited). */
async function uploadFromFakePgDump(fake: string) {
  const engine = createPostgresEngine(settings, { pgDumpPath: fake });
  const blobPath = `backups/${randomUUID()}/${randomUUID()}/${randomUUID()}.dump`;
  const backup = await engine.backup(
    { jobId: randomUUID(), databaseName: 'whatever' },
    { signal: new AbortController().signal, onProgress: () => undefined, attemptId: 'a1' },
  );
  const upload = uploadBackup({
    source: backup.stream,
    sourceDone: backup.done,
    compression: 'none',
    blockBytes: 1024 * 1024,
    getTarget: targetProvider(gateway, blobPath),
    metadata: { engine: 'postgres', jobid: 'j', server: 'pg', database: 'whatever' },
  });
  upload.catch(() => undefined); // awaited by the test
  return { backup, upload, blobPath };
}
