/**
 * `dbdist-runner verify`, run as a requester would (a separate process), on a file and a manifest signed by a
 * local key behind the same ManifestSigner interface the control plane uses.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_SCHEMA, type BackupManifest, signManifest } from '../../shared/integrity/manifest.js';
import { LocalManifestSigner } from '../../dev/manifest-signer.js';

const cli = fileURLToPath(new URL('../../runner-agent/cli.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dbdist-verify-'));
const run = promisify(execFile);

async function verify(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', cli, 'verify', ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const bytes = randomBytes(200_000);
const sha256 = createHash('sha256').update(bytes).digest('hex');
const signer = new LocalManifestSigner();
const file = join(dir, 'Sales-20261201-0900.dump.gz');
const keysFile = join(dir, 'manifest-keys.json');
const DAY = 86_400_000;

function manifestFor(over: Partial<BackupManifest> = {}): BackupManifest {
  return {
    schema: MANIFEST_SCHEMA,
    jobId: '6f1d2c3b-4a59-4e68-8d7c-0b1a2c3d4e5f',
    database: { id: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d', name: 'Sales' },
    server: { id: '0d6b4b8e-2a7c-4f0e-9d55-3a1c2b4d5e6f', name: 'pg01' },
    engine: 'postgres',
    options: { compression: 'gzip', encrypted: false, encryptionKeyId: null },
    file: { name: 'Sales-20261201-0900.dump.gz', sizeBytes: bytes.length, sha256 },
    runner: { id: 'runner-eu-1', attempt: 1 },
    restoreCheck: { tool: 'pg_restore --list', ok: true, detail: '42 entries' },
    requestedAt: new Date(Date.now() - DAY).toISOString(),
    verifiedAt: new Date(Date.now() - DAY + 60_000).toISOString(),
    expiresAt: new Date(Date.now() + 6 * DAY).toISOString(),
    ...over,
  };
}

async function writeManifest(name: string, manifest: BackupManifest, by: LocalManifestSigner = signer): Promise<string> {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(await signManifest(by, manifest), null, 2));
  return path;
}

let good: string;
let jwksServer: Server;
let jwksUrl: string;

beforeAll(async () => {
  writeFileSync(file, bytes);
  good = await writeManifest('good.manifest.json', manifestFor());
  writeFileSync(keysFile, JSON.stringify({ keys: await signer.publicKeys() }));
  jwksServer = createServer((_request, response) => {
    void signer.publicKeys().then((keys) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys })));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/api/manifest-keys`;
});
afterAll(() => {
  jwksServer?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('dbdist-runner verify', () => {
  it('proves a good download and says what it proved (keys from a file)', async () => {
    const result = await verify(['--manifest', good, '--keys', keysFile, file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`PROVED  signature: ES256 by published key ${signer.currentKeyId}`);
    expect(result.stdout).toContain(`PROVED  size: ${bytes.length} bytes`);
    expect(result.stdout).toContain(`PROVED  sha256: ${sha256}`);
    expect(result.stdout).toContain('job 6f1d2c3b-4a59-4e68-8d7c-0b1a2c3d4e5f');
    expect(result.stdout).toMatch(/database\s+Sales .* on server pg01/);
    expect(result.stdout).toContain('by runner runner-eu-1 (attempt 1)');
    expect(result.stdout).toContain('pg_restore --list: passed (42 entries)');
  });

  it('proves it with the keys fetched from the JWKS URL', async () => {
    const result = await verify(['--manifest', good, '--jwks-url', jwksUrl, file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('PROVED  sha256');
  });

  it('a flipped byte fails the SHA-256 check (exit 1)', async () => {
    const flipped = Buffer.from(bytes);
    flipped[1000]! ^= 0x80;
    const path = join(dir, 'flipped.dump.gz');
    writeFileSync(path, flipped);
    const result = await verify(['--manifest', good, '--keys', keysFile, path]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('PROVED  size');
    expect(result.stdout).toMatch(/FAILED {2}sha256: the file's is [0-9a-f]{64}; the manifest says /);
    expect(result.stdout).not.toContain('This file is the backup');
  });

  it('a truncated file fails the size check (exit 1)', async () => {
    const path = join(dir, 'truncated.dump.gz');
    writeFileSync(path, bytes.subarray(0, bytes.length - 1));
    const result = await verify(['--manifest', good, '--keys', keysFile, path]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`FAILED  size: the file has ${bytes.length - 1} bytes; the manifest says ${bytes.length}`);
  });

  it('an edited manifest fails the signature check (exit 1), even when the edit matches the file', async () => {
    // Someone swaps the file for another and edits the manifest's digest to match: the signature no longer does.
    const other = randomBytes(1000);
    const otherPath = join(dir, 'other.dump.gz');
    writeFileSync(otherPath, other);
    const signed = JSON.parse(readFileSync(good, 'utf8'));
    signed.manifest.file.sizeBytes = other.length;
    signed.manifest.file.sha256 = createHash('sha256').update(other).digest('hex');
    const edited = join(dir, 'edited.manifest.json');
    writeFileSync(edited, JSON.stringify(signed));
    const result = await verify(['--manifest', edited, '--keys', keysFile, otherPath]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('FAILED  signature: The signature does not match the manifest');
  });

  it('a manifest signed by an unknown key fails (exit 1) naming the key', async () => {
    const stranger = new LocalManifestSigner();
    const path = await writeManifest('stranger.manifest.json', manifestFor(), stranger);
    const result = await verify(['--manifest', path, '--keys', keysFile, file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`FAILED  signature: Signed by key ${stranger.currentKeyId}, which is not among the published keys.`);
  });

  it('a manifest whose key was retired (its backup expired) fails (exit 1) saying so', async () => {
    const rotating = new LocalManifestSigner();
    const expired = manifestFor({ expiresAt: new Date(Date.now() - DAY).toISOString() });
    const path = await writeManifest('retired.manifest.json', expired, rotating);
    const retiredKid = rotating.currentKeyId;
    rotating.rotate();
    // What the JWKS publishes after rotation once the old key's last manifest expired: only the new key.
    const [current] = await rotating.publicKeys();
    const published = join(dir, 'after-rotation.json');
    writeFileSync(published, JSON.stringify({ keys: [current] }));
    const result = await verify(['--manifest', path, '--keys', published, file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`FAILED  signature: Signed by key ${retiredKid}, which is no longer published: the backup expired at ${expired.expiresAt}`);
  });

  it('usage errors exit 2: no keys, both key sources, a missing file', async () => {
    expect((await verify(['--manifest', good, file])).code).toBe(2);
    expect((await verify(['--manifest', good, '--keys', keysFile, '--jwks-url', jwksUrl, file])).code).toBe(2);
    const missing = await verify(['--manifest', good, '--keys', keysFile, join(dir, 'nope.dump')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.dump does not exist');
    expect((await verify(['--keys', keysFile, file])).code).toBe(2);
  });
});
