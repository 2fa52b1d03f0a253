/**
 * A ManifestSigner on local EC P-256 keys, for the sandbox and the tests (in Azure a Key Vault key signs:
 * shared/integrity/keyvault-signer.ts). `rotate()` makes a new key the signing one, as a new Key Vault key
 * version would; older keys keep their public half available for the JWKS. A key file keeps the keys across runs.
 */
import { createHash, generateKeyPairSync, sign as signBytes, type KeyObject, createPrivateKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { MANIFEST_SIGNATURE_ALG, type ManifestPublicKey, type ManifestSignature, type ManifestSigner } from '../shared/integrity/manifest.js';

interface LocalKey {
  kid: string;
  privateKey: KeyObject;
  publicJwk: ManifestPublicKey;
}

export class LocalManifestSigner implements ManifestSigner {
  private readonly keys: LocalKey[] = [];
  /** Set to make `sign` fail as a refusing key store would (tests of the fail-closed path). */
  refuse: Error | undefined;

  constructor(privateKeys: KeyObject[] = []) {
    for (const key of privateKeys) this.add(key);
    if (this.keys.length === 0) this.rotate();
  }

  /** Keys from a file of PKCS#8 PEM blocks (oldest first); a new file with one key when there is none. */
  static fromFile(path: string): LocalManifestSigner {
    let pem: string | undefined;
    try {
      pem = readFileSync(path, 'utf8');
    } catch {
      pem = undefined;
    }
    const blocks = pem?.match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/g) ?? [];
    const signer = new LocalManifestSigner(blocks.map((block) => createPrivateKey(block)));
    if (blocks.length === 0) writeFileSync(path, signer.exportPem(), { mode: 0o600 });
    return signer;
  }

  /** A new key signs from now on; returns its kid. */
  rotate(): string {
    return this.add(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey).kid;
  }

  get currentKeyId(): string {
    return this.keys[this.keys.length - 1]!.kid;
  }

  exportPem(): string {
    return this.keys.map((key) => key.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()).join('');
  }

  async sign(data: Uint8Array): Promise<ManifestSignature> {
    if (this.refuse) throw this.refuse;
    const key = this.keys[this.keys.length - 1]!;
    const value = signBytes('sha256', data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    return { alg: MANIFEST_SIGNATURE_ALG, kid: key.kid, value };
  }

  async publicKeys(): Promise<ManifestPublicKey[]> {
    return [...this.keys].reverse().map((key) => key.publicJwk);
  }

  private add(privateKey: KeyObject): LocalKey {
    const jwk = privateKey.export({ format: 'jwk' }) as { x: string; y: string };
    // RFC 7638 thumbprint: a stable id derived from the public key itself.
    const thumbprint = createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`).digest('base64url');
    const kid = `local:${thumbprint}`;
    const key: LocalKey = {
      kid,
      privateKey,
      publicJwk: { kid, kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, alg: MANIFEST_SIGNATURE_ALG, use: 'sig' },
    };
    this.keys.push(key);
    return key;
  }
}
