/**
 * The Key Vault signer's own logic, with the vault's two calls played by a local P-256 key: the signature it
 * returns verifies against the JWKS it publishes, versions come newest first, and a vault that refuses fails closed
 * with an error an operator can act on (thrown, so the activity is retried like any outage).
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KeyVaultManifestSigner, type VaultKeyVersions, type VaultSigning } from '../../../shared/integrity/keyvault-signer.js';
import { MANIFEST_SCHEMA, checkManifestSignature, signManifest, type BackupManifest } from '../../../shared/integrity/manifest.js';

const KEY_ID = 'https://kv-dbdist.vault.azure.net/keys/manifest-signing';

function vaultKey(version: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' }) as { x: string; y: string };
  return {
    version,
    id: `${KEY_ID}/${version}`,
    privateKey,
    // The SDK hands key material as bytes.
    key: { kty: 'EC' as const, crv: 'P-256' as const, x: Buffer.from(jwk.x, 'base64url'), y: Buffer.from(jwk.y, 'base64url') },
  };
}

const older = vaultKey('0000aaaa');
const newer = vaultKey('1111bbbb');

const versions: VaultKeyVersions = {
  async *listVersions() {
    yield { version: older.version, enabled: true, createdOn: new Date('2026-01-01') };
    yield { version: newer.version, enabled: true, createdOn: new Date('2026-06-01') };
    yield { version: 'disabled', enabled: false, createdOn: new Date('2026-07-01') };
  },
  async getKey(version) {
    const key = [older, newer].find((candidate) => candidate.version === version)!;
    return { id: key.id, key: key.key };
  },
};

const signingWith = (key: typeof newer): VaultSigning => ({
  async signData(_algorithm, data) {
    return { result: sign('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' }), keyID: key.id };
  },
});

const manifest: BackupManifest = {
  schema: MANIFEST_SCHEMA,
  jobId: '6f1d2c3b-4a59-4e68-8d7c-0b1a2c3d4e5f',
  database: { id: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d', name: 'Sales' },
  server: { id: '0d6b4b8e-2a7c-4f0e-9d55-3a1c2b4d5e6f', name: 'sql01' },
  engine: 'sqlserver',
  options: { compression: 'none', encrypted: false, encryptionKeyId: null },
  file: { name: 'Sales.bak', sizeBytes: 1, sha256: 'a'.repeat(64) },
  runner: { id: null, attempt: null },
  restoreCheck: null,
  requestedAt: '2026-12-01T09:00:00.000Z',
  verifiedAt: '2026-12-01T09:10:00.000Z',
  expiresAt: '2026-12-08T09:10:00.000Z',
};

describe('KeyVaultManifestSigner', () => {
  it('signs with the version the vault used and publishes enabled versions newest first', async () => {
    const signer = new KeyVaultManifestSigner(KEY_ID, signingWith(newer), versions);
    const signed = await signManifest(signer, manifest);
    expect(signed.signature).toMatchObject({ alg: 'ES256', kid: newer.id });
    const keys = await signer.publicKeys();
    expect(keys.map((key) => key.kid)).toEqual([newer.id, older.id]);
    expect(checkManifestSignature(JSON.stringify(signed), keys, new Date('2026-12-02T00:00:00Z'))).toMatchObject({ ok: true, kid: newer.id });
  });

  it('fails closed when the vault refuses, naming the key and the missing role', async () => {
    const refusing: VaultSigning = {
      async signData() {
        throw Object.assign(new Error('Forbidden'), { name: 'RestError', statusCode: 403 });
      },
    };
    const signer = new KeyVaultManifestSigner(KEY_ID, refusing, versions);
    await expect(signManifest(signer, manifest)).rejects.toMatchObject({
      code: 'dependency_unavailable',
      message: expect.stringMatching(/^Key Vault refused \(403\): the Function App identity needs the dbdist manifest signer role on the vault for .*\/keys\/manifest-signing; the manifest was not signed/),
    });
  });

  it('refuses a signature that is not ES256-shaped rather than publish it', async () => {
    const odd: VaultSigning = { signData: async () => ({ result: new Uint8Array(10), keyID: newer.id }) };
    await expect(new KeyVaultManifestSigner(KEY_ID, odd, versions).sign(new Uint8Array(1))).rejects.toMatchObject({ code: 'dependency_unavailable' });
  });
});
