/**
 * A backup's manifest: what the control plane proved about one stored backup, signed with its key, written beside
 * the backup as `<name>.manifest.json`. A requester checks a download against it offline (`dbdist-runner verify`).
 *
 * Signed bytes: the manifest object as canonical JSON (keys sorted at every level, no white space). Signature:
 * ES256 (ECDSA P-256 with SHA-256), the raw r‖s form JWS uses, base64url. `signature.kid` names the public key in
 * the control plane's JWKS (`GET /api/manifest-keys`).
 */
import { createPublicKey, verify as verifySignature, type JsonWebKey } from 'node:crypto';
import { z } from 'zod';
import { BackupEngine, Compression, isoDateTime, sha256Hex, uuid } from '../contracts/common.js';
import { RestoreCheck } from '../contracts/runner.js';

export { RestoreCheck };

export const MANIFEST_SCHEMA = 'dbdist.manifest/v1';
export const MANIFEST_SIGNATURE_ALG = 'ES256';

export const BackupManifest = z
  .object({
    schema: z.literal(MANIFEST_SCHEMA),
    jobId: uuid,
    database: z.object({ id: uuid, name: z.string() }).strict(),
    server: z.object({ id: uuid, name: z.string() }).strict(),
    engine: BackupEngine,
    options: z.object({ compression: Compression, encrypted: z.boolean(), encryptionKeyId: z.string().nullable() }).strict(),
    /** The file as the requester downloads it: name, size and SHA-256 of the stored bytes. */
    file: z.object({ name: z.string(), sizeBytes: z.number().int().nonnegative(), sha256: sha256Hex }).strict(),
    /** Who took it, as the runner reported it (the runner's id and its Service Bus delivery attempt). */
    runner: z.object({ id: z.string().nullable(), attempt: z.number().int().positive().nullable() }).strict(),
    restoreCheck: RestoreCheck.nullable(),
    requestedAt: isoDateTime,
    /** When the control plane re-hashed the stored bytes and found the runner's digest. */
    verifiedAt: isoDateTime,
    /** When retention deletes the backup; the signing key stays published until then. */
    expiresAt: isoDateTime,
  })
  .strict();
export type BackupManifest = z.infer<typeof BackupManifest>;

export const ManifestSignature = z
  .object({
    alg: z.literal(MANIFEST_SIGNATURE_ALG),
    kid: z.string().min(1).max(256),
    value: z.string().regex(/^[A-Za-z0-9_-]+$/, 'must be base64url'),
  })
  .strict();
export type ManifestSignature = z.infer<typeof ManifestSignature>;

export const SignedManifest = z.object({ manifest: BackupManifest, signature: ManifestSignature }).strict();
export type SignedManifest = z.infer<typeof SignedManifest>;

/** A public key as the JWKS publishes it. */
export interface ManifestPublicKey extends JsonWebKey {
  kid: string;
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  alg: typeof MANIFEST_SIGNATURE_ALG;
  use: 'sig';
}

/**
 * Signs manifests. In Azure a Key Vault key (shared/integrity/keyvault-signer.ts: the private key never leaves the
 * vault); in the sandbox and tests a local key (dev/manifest-signer.ts).
 */
export interface ManifestSigner {
  /** Signs with the current key. Throws when the key store refuses or cannot be reached: nothing is published unsigned. */
  sign(data: Uint8Array): Promise<ManifestSignature>;
  /** Every public key the signer holds (the current one and older versions), newest first. */
  publicKeys(): Promise<ManifestPublicKey[]>;
}

/** JSON with keys sorted at every level and no white space: the same object always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function manifestSigningBytes(manifest: BackupManifest): Uint8Array {
  return new TextEncoder().encode(canonicalJson(manifest));
}

export async function signManifest(signer: ManifestSigner, manifest: BackupManifest): Promise<SignedManifest> {
  const parsed = BackupManifest.parse(manifest);
  return { manifest: parsed, signature: await signer.sign(manifestSigningBytes(parsed)) };
}

/** `<sha256>  <file name>\n`: what `sha256sum` writes and `sha256sum -c` reads. */
export function sha256SidecarText(sha256: string, fileName: string): string {
  return `${sha256}  ${fileName}\n`;
}

export type ManifestCheck =
  | { ok: true; manifest: BackupManifest; kid: string }
  | { ok: false; reason: 'malformed' | 'unknown_key' | 'retired_key' | 'bad_signature'; message: string };

/**
 * Checks a manifest's signature against the published keys. A key is published until the last manifest it signed
 * has expired: so a kid missing from the keys is "retired" when the manifest itself has expired, "unknown" when not.
 */
export function checkManifestSignature(text: string, keys: readonly JsonWebKey[], now: Date): ManifestCheck {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'malformed', message: 'The manifest is not JSON.' };
  }
  const parsed = SignedManifest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: 'malformed', message: `The manifest is not a dbdist manifest: ${issue?.path.join('.') || '(root)'} ${issue?.message ?? ''}`.trim() };
  }
  const { manifest, signature } = parsed.data;
  const key = keys.find((candidate) => (candidate as { kid?: string }).kid === signature.kid);
  if (!key) {
    return new Date(manifest.expiresAt) <= now
      ? {
          ok: false,
          reason: 'retired_key',
          message: `Signed by key ${signature.kid}, which is no longer published: the backup expired at ${manifest.expiresAt} and its key was retired.`,
        }
      : { ok: false, reason: 'unknown_key', message: `Signed by key ${signature.kid}, which is not among the published keys.` };
  }
  let good = false;
  try {
    const publicKey = createPublicKey({ key: publicPart(key), format: 'jwk' });
    good = verifySignature('sha256', manifestSigningBytes(manifest), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature.value, 'base64url'));
  } catch {
    good = false;
  }
  if (!good) return { ok: false, reason: 'bad_signature', message: `The signature does not match the manifest (key ${signature.kid}): it was altered or forged.` };
  return { ok: true, manifest, kid: signature.kid };
}

function publicPart(key: JsonWebKey): JsonWebKey {
  const { kty, crv, x, y } = key;
  return { kty, crv, x, y };
}
