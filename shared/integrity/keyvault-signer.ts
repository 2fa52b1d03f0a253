/**
 * ManifestSigner on an Azure Key Vault key (EC P-256, ES256) through @azure/keyvault-keys with the Function App's
 * managed identity. The private key never leaves the vault: the digest is computed here and the vault signs it.
 * The key id is versionless, so the newest enabled version signs; the signature names the exact version (`kid`).
 * Rotation = a new key version (Key Vault rotation policy or `az keyvault key rotate`); older versions stay
 * enabled so their public keys can be published while manifests they signed still exist.
 *
 * Permissions (infra/modules/keyvault.bicep): a custom role with only `keys/sign/action` and `keys/read` (public
 * key material and versions for the JWKS). No built-in role is sign-only: "Key Vault Crypto User" also allows
 * decrypt, unwrap and more.
 */
import type { TokenCredential } from '@azure/identity';
import { CryptographyClient, KeyClient, parseKeyVaultKeyIdentifier, type JsonWebKey as VaultJwk } from '@azure/keyvault-keys';
import { AppError } from '../errors.js';
import { MANIFEST_SIGNATURE_ALG, type ManifestPublicKey, type ManifestSignature, type ManifestSigner } from './manifest.js';

/** The parts of the SDK clients the signer uses (so a test can stand in for the vault). */
export interface VaultSigning {
  signData(algorithm: 'ES256', data: Uint8Array): Promise<{ result: Uint8Array; keyID?: string }>;
}
export interface VaultKeyVersions {
  listVersions(): AsyncIterable<{ id?: string; version?: string; enabled?: boolean; createdOn?: Date }>;
  getKey(version: string): Promise<{ id?: string; key?: VaultJwk }>;
}

export function keyVaultManifestSigner(keyId: string, credential: TokenCredential): ManifestSigner {
  const { vaultUrl, name } = parseKeyVaultKeyIdentifier(keyId);
  const crypto = new CryptographyClient(keyId, credential);
  const keys = new KeyClient(vaultUrl, credential);
  return new KeyVaultManifestSigner(keyId, crypto, {
    listVersions: () => keys.listPropertiesOfKeyVersions(name),
    getKey: (version) => keys.getKey(name, { version }),
  });
}

export class KeyVaultManifestSigner implements ManifestSigner {
  constructor(
    private readonly keyId: string,
    private readonly crypto: VaultSigning,
    private readonly versions: VaultKeyVersions,
  ) {}

  async sign(data: Uint8Array): Promise<ManifestSignature> {
    let signed: { result: Uint8Array; keyID?: string };
    try {
      // The SDK retries throttling and server errors itself; what reaches here is a refusal or an outage.
      signed = await this.crypto.signData(MANIFEST_SIGNATURE_ALG, data);
    } catch (error) {
      throw refusal(this.keyId, error);
    }
    if (!signed.keyID || signed.result.byteLength !== 64) {
      throw new AppError('dependency_unavailable', `Key Vault returned no usable ES256 signature for ${this.keyId}: nothing is published unsigned.`);
    }
    return { alg: MANIFEST_SIGNATURE_ALG, kid: signed.keyID, value: Buffer.from(signed.result).toString('base64url') };
  }

  async publicKeys(): Promise<ManifestPublicKey[]> {
    const found: { createdOn: number; key: ManifestPublicKey }[] = [];
    try {
      for await (const version of this.versions.listVersions()) {
        if (version.enabled === false || !version.version) continue;
        const { id, key } = await this.versions.getKey(version.version);
        if (!id || key?.kty !== 'EC' || key.crv !== 'P-256' || !key.x || !key.y) continue;
        found.push({
          createdOn: version.createdOn?.getTime() ?? 0,
          key: {
            kid: id,
            kty: 'EC',
            crv: 'P-256',
            x: Buffer.from(key.x).toString('base64url'),
            y: Buffer.from(key.y).toString('base64url'),
            alg: MANIFEST_SIGNATURE_ALG,
            use: 'sig',
          },
        });
      }
    } catch (error) {
      throw refusal(this.keyId, error);
    }
    return found.sort((a, b) => b.createdOn - a.createdOn).map((entry) => entry.key);
  }
}

/** Fails closed with a message an operator can act on; thrown, so the activity is retried like any outage. */
function refusal(keyId: string, error: unknown): AppError {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  const why =
    status === 403
      ? 'refused (403): the Function App identity needs the dbdist manifest signer role on the vault'
      : status === 404
        ? 'has no such key (404)'
        : typeof status === 'number'
          ? `answered ${status}`
          : 'did not answer';
  return new AppError('dependency_unavailable', `Key Vault ${why} for ${keyId}; the manifest was not signed and nothing was published.`, { cause: error });
}
