import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPgDump } from '../../runner-agent/engines/postgres.js';
import { createAgeEncryptStream, generateAgeIdentity } from '../../runner-agent/pipeline/age.js';
import { createEncryptStream } from '../../runner-agent/pipeline/crypto.js';
import { through } from './helpers.js';
import { ageCliAvailable } from '../support/age-cli.js';
import { postgresAvailable, startPostgres, type PostgresServer } from '../support/postgres.js';

const cli = fileURLToPath(new URL('../../runner-agent/cli.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dbdist-cli-'));
const run = promisify(execFile);

/** Runs the CLI as an operator would (a separate process); never throws, returns code and output. */
async function runner(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', cli, ...args], {
      env: { ...process.env, ...env },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dbdist-runner CLI', () => {
  it('--help into a pipe whose reader stops early (| head) ends quietly with 0, not an EPIPE crash', async () => {
    // `true` exits without reading, the harshest `head`; pipefail reports the CLI's own exit code.
    const { stderr } = await run('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" --import tsx "${cli}" --help | true`]);
    expect(stderr).not.toMatch(/EPIPE/);
  });

  it('--help lists every command, and each command explains its options with examples', async () => {
    const { code, stdout } = await runner(['--help']);
    expect(code).toBe(0);
    for (const command of ['start', 'check', 'backup', 'decrypt', 'verify']) expect(stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
    expect(stdout).toContain('--config');
    expect(stdout).toContain('DBDIST_RUNNER_CLIENT_SECRET');
    const backupHelp = (await runner(['backup', '--help'])).stdout;
    for (const option of ['--engine', '--database', '--out', '--compression', '--recipient']) expect(backupHelp).toContain(option);
    expect(backupHelp).toContain('Examples:');
    const decryptHelp = (await runner(['decrypt', '--help'])).stdout;
    for (const option of ['--identity', '--key-file', '--in', '--out', '--decompress']) expect(decryptHelp).toContain(option);
  });

  it('a bad option or command is a usage error (exit 2) that names it, before any connection is tried', async () => {
    const timeout = await runner(['check', '--timeout', 'abc']);
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toContain("option '--timeout <seconds>' argument 'abc' is invalid");
    const unknown = await runner(['bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'bogus'");
    expect(`${timeout.stderr}${unknown.stderr}`).not.toMatch(/\n\s+at /);
  });

  it('a bad config file names the field and exits non-zero without a stack trace', async () => {
    const config = join(dir, 'bad.json');
    writeFileSync(
      config,
      JSON.stringify({
        runnerId: 'r1',
        serviceBus: { fullyQualifiedNamespace: 'sb.servicebus.windows.net', subscription: 'r1' },
        api: { baseUrl: 'not a url', scope: 'api://x/.default' },
        entra: { tenantId: 't', clientId: 'c', certificatePath: '/c.pem' },
        postgres: { host: 'pg', user: 'u' },
        workDir: dir,
      }),
    );
    const { code, stderr, stdout } = await runner(['check', '--config', config]);
    expect(code).toBe(2);
    expect(stderr).toContain('api.baseUrl');
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(stdout).toBe('');
  });

  it('a missing setting names its environment variable', async () => {
    const { code, stderr } = await runner(['start'], { DBDIST_RUNNER_CONFIG: '' });
    expect(code).toBe(2);
    expect(stderr).toMatch(/runnerId: is required but not set .*DBDIST_RUNNER_ID/);
  });

  it('decrypt refuses a tampered file and leaves no output behind', async () => {
    const key = join(dir, 'k.bin');
    writeFileSync(key, randomBytes(32));
    writeFileSync(join(dir, 'garbage.enc'), randomBytes(100));
    const { code, stderr } = await runner(['decrypt', '--key-file', key, '--in', join(dir, 'garbage.enc'), '--out', join(dir, 'garbage')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/not a dbdist encrypted stream/);
    expect(existsSync(join(dir, 'garbage'))).toBe(false);
  });

  it('decrypt still opens old runner-key (DBDE) copies', async () => {
    const key = randomBytes(32);
    writeFileSync(join(dir, 'old.key'), key.toString('hex'));
    const plain = randomBytes(10_000);
    writeFileSync(join(dir, 'old.bak.enc'), await through(plain, createEncryptStream(key, { chunkBytes: 4096 })));
    const { code } = await runner(['decrypt', '--key-file', join(dir, 'old.key'), '--in', join(dir, 'old.bak.enc'), '--out', join(dir, 'old.bak')]);
    expect(code).toBe(0);
    expect(readFileSync(join(dir, 'old.bak')).equals(plain)).toBe(true);
  });

  it('decrypt with the wrong age identity says so and leaves no output behind', async () => {
    const owner = generateAgeIdentity();
    writeFileSync(join(dir, 'other.txt'), `${generateAgeIdentity().identity}\n`);
    writeFileSync(join(dir, 'x.age'), await through(randomBytes(100), createAgeEncryptStream([owner.recipient])));
    const { code, stderr } = await runner(['decrypt', '-i', join(dir, 'other.txt'), '--in', join(dir, 'x.age'), '--out', join(dir, 'x')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/no identity given matches any recipient/);
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });
});

describe.skipIf(!postgresAvailable)('dbdist-runner backup and decrypt against PostgreSQL', () => {
  let postgres: PostgresServer;
  let database: string;
  let config: string;

  beforeAll(async () => {
    postgres = await startPostgres();
    const databaseUrl = await postgres.createDatabase();
    database = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
    config = join(dir, 'local.json');
    writeFileSync(config, JSON.stringify({ postgres: { host: postgres.host, port: postgres.port, user: postgres.user } }));
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 500) g');
    await client.end();
  });

  afterAll(async () => {
    await postgres?.stop();
  });

  it.skipIf(!ageCliAvailable)('writes an age-encrypted, compressed backup that decrypt (and the age CLI) turn back into a restorable dump', async () => {
    const password = new URL(postgres.url).password;
    const env: Record<string, string> = password ? { DBDIST_RUNNER_PG_PASSWORD: decodeURIComponent(password) } : {};
    const { identity, recipient } = generateAgeIdentity();
    writeFileSync(join(dir, 'key.txt'), `${identity}\n`);
    const out = join(dir, 'db.dump.gz.age');
    const backup = await runner(['backup', '-c', config, '--engine', 'postgres', '--database', database, '--compression', 'gzip', '--recipient', recipient, '--out', out], env);
    expect(backup.code).toBe(0);
    expect(backup.stderr).toMatch(/bytes, sha256 [0-9a-f]{64}/);
    expect(readFileSync(out).subarray(0, 21).toString()).toBe('age-encryption.org/v1');

    const dump = join(dir, 'db.dump');
    const decrypt = await runner(['decrypt', '-i', join(dir, 'key.txt'), '--in', out, '--decompress', 'gzip', '--out', dump]);
    expect(decrypt.code).toBe(0);
    const { stdout } = await run(join(dirname(findPgDump()), 'pg_restore'), ['--list', dump]);
    expect(stdout).toMatch(/TABLE DATA public t/);
    await run('age', ['-d', '-i', join(dir, 'key.txt'), '-o', join(dir, 'cli.dump.gz'), out]);
    expect(gunzipSync(readFileSync(join(dir, 'cli.dump.gz'))).equals(readFileSync(dump))).toBe(true);
  });

  it('fails with the engine code for a database that does not exist', async () => {
    const { code, stderr } = await runner(['backup', '-c', config, '--engine', 'postgres', '--database', 'no_such_db', '--out', join(dir, 'x.dump')]);
    expect(code).toBe(1);
    expect(stderr).toContain('database_not_found');
    expect(existsSync(join(dir, 'x.dump'))).toBe(false);
  });
});
