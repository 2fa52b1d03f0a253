/**
 * An encrypted copy from request to restore, as a requester and an operator would live it: the requester registers
 * an age key, asks for an encrypted copy of a real PostgreSQL database (the real pg_dump engine, the real runner,
 * the real orchestration on the local stand-ins), downloads it through the link and opens it with Debian's `age`
 * CLI, `zstd -d` and `pg_restore` into a fresh database on the same server. Then the recovery key rotates.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll, startLocalStack, type LocalStack } from '../../dev/stack.js';
import { createPostgresEngine } from '../../runner-agent/engines/postgres.js';
import type { RunningRunner } from '../../dev/stack.js';
import { recipientFingerprint } from '../../services/encryption.js';
import type { JobRecord } from '../../shared/db/store.js';
import { ageCliAvailable } from '../support/age-cli.js';
import { postgresAvailable, startPostgres, type PostgresServer } from '../support/postgres.js';

const run = promisify(execFile);
type Json = Record<string, any>;

/** An age key pair made by age-keygen, as a person would make it. */
function ageKeygen(dir: string, name: string): { file: string; recipient: string } {
  const file = join(dir, `${name}.txt`);
  execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
  return { file, recipient: execFileSync('age-keygen', ['-y', file]).toString().trim() };
}

describe.skipIf(!postgresAvailable || !ageCliAvailable)('an age-encrypted copy, opened with the age CLI and restored on PostgreSQL', () => {
  let stack: LocalStack;
  let postgres: PostgresServer;
  let runner: RunningRunner;
  let dir: string;
  let source: string;
  let databaseId: string;
  let alice: { file: string; recipient: string };
  let oldRecovery: { file: string; recipient: string };
  let newRecovery: { file: string; recipient: string };

  const sql = async <T>(database: string, text: string): Promise<T[]> => {
    const url = new URL(postgres.url);
    url.pathname = `/${database}`;
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      return (await client.query(text)).rows as T[];
    } finally {
      await client.end();
    }
  };
  const fingerprint = (database: string) =>
    sql<{ n: string; md5: string }>(database, "SELECT count(*) AS n, md5(string_agg(t::text, '|' ORDER BY id)) AS md5 FROM customers t");

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dbdist-age-e2e-'));
    [alice, oldRecovery, newRecovery] = [ageKeygen(dir, 'alice'), ageKeygen(dir, 'recovery-2026'), ageKeygen(dir, 'recovery-2027')];
    [stack, postgres] = await Promise.all([startLocalStack({ lockDurationMs: 5_000 }), startPostgres()]);
    stack.deps.recoveryRecipients = [oldRecovery.recipient];
    source = decodeURIComponent(new URL(await postgres.createDatabase()).pathname.slice(1));
    await sql(source, "CREATE TABLE customers AS SELECT g AS id, 'customer ' || md5(g::text) AS name FROM generate_series(1, 2000) g");

    const password = decodeURIComponent(new URL(postgres.url).password);
    const engine = createPostgresEngine({ host: postgres.host, port: postgres.port, user: postgres.user, ...(password ? { password } : {}), maintenanceDatabase: 'postgres' });
    const server = await stack.api<Json>('POST', '/api/servers', { token: stack.tokens.admin, body: { name: 'pg', host: postgres.host, engine: 'postgres' } });
    const database = await stack.api<Json>('POST', `/api/servers/${server.body.id}/databases`, {
      token: stack.tokens.admin,
      body: { name: source, requesterGroupIds: [stack.requesterGroupId], policy: { encryption: 'required' } },
    });
    expect(database.status).toBe(201);
    databaseId = database.body.id;
    runner = await stack.startRunner({ serverId: server.body.id, engine });
  });

  afterAll(async () => {
    await runner?.stop();
    await Promise.all([stack?.stop(), postgres?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Requests an age copy as alice and downloads it through the link; returns the file and the job. */
  async function encryptedCopy(name: string): Promise<{ file: string; job: Json }> {
    const created = await stack.api<Json>('POST', '/api/jobs', { token: stack.tokens.alice, body: { databaseId, options: { compression: 'zstd', encryption: 'age' } } });
    expect(created.status).toBe(202);
    const deadline = Date.now() + 90_000;
    let record: JobRecord | undefined;
    while (!['Available', 'Failed', 'Cancelled'].includes((record = await stack.store.getJob(created.body.id))?.status ?? '')) {
      if (Date.now() > deadline) throw new Error(`job still ${record?.status}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(record).toMatchObject({ status: 'Available' });
    const job = (await stack.api<Json>('GET', `/api/jobs/${created.body.id}`, { token: stack.tokens.alice })).body;
    // The job view carries no link (a bearer secret): the link is issued once, by POST …/download-link.
    const link = await stack.api<Json>('POST', `/api/jobs/${created.body.id}/download-link`, { token: stack.tokens.alice, body: {} });
    expect(link.status).toBe(200);
    expect(link.body.fileName).toMatch(/\.dump\.zst\.age$/);
    const bytes = await readAll((await fetch(link.body.url)).body!);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(link.body.sha256);
    const file = join(dir, name);
    writeFileSync(file, bytes);
    return { file, job };
  }

  /** The documented restore: age -d -i key.txt copy | zstd -d | pg_restore into a fresh database. */
  async function restoreWith(keyFile: string, file: string): Promise<string> {
    const target = decodeURIComponent(new URL(await postgres.createDatabase()).pathname.slice(1));
    const url = new URL(postgres.url);
    url.pathname = `/${target}`;
    await run('bash', ['-c', 'set -o pipefail; age -d -i "$1" "$2" | zstd -d | pg_restore --no-owner --exit-on-error --dbname "$3"', 'restore', keyFile, file, url.toString()]);
    return target;
  }

  let firstCopy: string;
  let firstJobId: string;

  it('the requester registers a key, gets an encrypted copy and restores it with age | zstd -d | pg_restore', async () => {
    const before = await stack.api<Json>('POST', '/api/jobs', { token: stack.tokens.alice, body: { databaseId, options: { encryption: 'age' } } });
    expect(before.status).toBe(400); // no key registered yet
    const put = await stack.api<Json>('PUT', '/api/me/recipients', { token: stack.tokens.alice, body: { recipients: [alice.recipient] } });
    expect(put.status).toBe(200);

    const { file, job } = await encryptedCopy('first.dump.zst.age');
    firstCopy = file;
    firstJobId = job.id;
    expect(readFileSync(file).subarray(0, 22).toString()).toBe('age-encryption.org/v1\n');
    expect(job.recipients).toEqual([
      { fingerprint: recipientFingerprint(alice.recipient), role: 'requester' },
      { fingerprint: recipientFingerprint(oldRecovery.recipient), role: 'recovery' },
    ]);
    const restored = await restoreWith(alice.file, file);
    expect(await fingerprint(restored)).toEqual(await fingerprint(source));
  });

  it('a key that is not a recipient is refused clearly; a truncated or edited copy fails authentication', async () => {
    const wrong = run('age', ['-d', '-i', newRecovery.file, firstCopy]);
    await expect(wrong).rejects.toMatchObject({ stderr: expect.stringMatching(/no identity matched any of the recipients/) });
    const bytes = readFileSync(firstCopy);
    writeFileSync(join(dir, 'cut.age'), bytes.subarray(0, bytes.length - 100));
    const edited = Buffer.from(bytes);
    edited[bytes.length - 50]! ^= 0x01;
    writeFileSync(join(dir, 'edited.age'), edited);
    for (const name of ['cut.age', 'edited.age']) {
      await expect(run('age', ['-d', '-i', alice.file, '-o', join(dir, 'out'), join(dir, name)])).rejects.toMatchObject({
        stderr: expect.stringMatching(/failed to decrypt and authenticate payload chunk/),
      });
    }
  });

  it('after the recovery key rotates, old copies still open with the old key and are listed; new copies use the new key', async () => {
    stack.deps.recoveryRecipients = [newRecovery.recipient];
    const retired = await stack.api<Json>('GET', '/api/recipients/retired-copies', { token: stack.tokens.admin });
    expect(retired.status).toBe(200);
    expect(retired.body.items.map((i: Json) => i.jobId)).toContain(firstJobId);

    const restoredWithOldKey = await restoreWith(oldRecovery.file, firstCopy);
    expect(await fingerprint(restoredWithOldKey)).toEqual(await fingerprint(source));

    const { file, job } = await encryptedCopy('second.dump.zst.age');
    expect(job.recipients.map((r: Json) => r.fingerprint)).toEqual([recipientFingerprint(alice.recipient), recipientFingerprint(newRecovery.recipient)]);
    expect(await fingerprint(await restoreWith(newRecovery.file, file))).toEqual(await fingerprint(source));
    await expect(run('age', ['-d', '-i', oldRecovery.file, '-o', join(dir, 'out2'), file])).rejects.toThrow();
  });
});
