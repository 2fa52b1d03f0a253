/**
 * `dbdist-runner verify`: proves offline that a downloaded backup is what the control plane verified and signed.
 * Three checks, each printed: the manifest's signature against the published keys (a JWKS file, or the JWKS URL
 * `GET /api/manifest-keys`), the file's size, and its SHA-256 (streamed: bounded memory for any size).
 */
import { createHash, type JsonWebKey } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { checkManifestSignature, type BackupManifest } from '../shared/integrity/manifest.js';

export interface VerifyOutcome {
  /** true only when signature, size and SHA-256 all check. */
  proved: boolean;
  /** One line per check (PROVED / FAILED) and, when proved, what the manifest says. */
  lines: string[];
}

/** Keys from a JWKS document (`{ "keys": [...] }`). */
export function keysFromJwks(text: string, where: string): JsonWebKey[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${where} is not JSON.`);
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error(`${where} is not a JWKS document (no "keys" array).`);
  return keys as JsonWebKey[];
}

export async function fetchJwks(url: string): Promise<JsonWebKey[]> {
  const response = await fetch(url, { headers: { accept: 'application/json' } });
  if (!response.ok) throw new Error(`${url} answered ${response.status}.`);
  return keysFromJwks(await response.text(), url);
}

export async function verifyDownload(input: { file: string; manifestText: string; keys: readonly JsonWebKey[]; now?: Date }): Promise<VerifyOutcome> {
  const checked = checkManifestSignature(input.manifestText, input.keys, input.now ?? new Date());
  if (!checked.ok) return { proved: false, lines: [`FAILED  signature: ${checked.message}`] };
  const { manifest } = checked;
  const lines = [`PROVED  signature: ES256 by published key ${checked.kid}`];

  const size = (await stat(input.file)).size;
  const sizeOk = size === manifest.file.sizeBytes;
  lines.push(sizeOk ? `PROVED  size: ${size} bytes` : `FAILED  size: the file has ${size} bytes; the manifest says ${manifest.file.sizeBytes}`);
  const sha256 = await sha256OfFile(input.file);
  const shaOk = sha256 === manifest.file.sha256;
  lines.push(shaOk ? `PROVED  sha256: ${sha256}` : `FAILED  sha256: the file's is ${sha256}; the manifest says ${manifest.file.sha256}`);
  if (!sizeOk || !shaOk) return { proved: false, lines };
  return { proved: true, lines: [...lines, ...describe(manifest)] };
}

function describe(m: BackupManifest): string[] {
  const restore = m.restoreCheck ? `${m.restoreCheck.tool}: ${m.restoreCheck.ok ? 'passed' : 'FAILED'}${m.restoreCheck.detail ? ` (${m.restoreCheck.detail})` : ''}` : 'none recorded';
  return [
    `This file is the backup of job ${m.jobId}:`,
    `  database   ${m.database.name} (${m.database.id}) on server ${m.server.name} (${m.server.id}), ${m.engine}`,
    `  taken      requested at ${m.requestedAt}, by runner ${m.runner.id ?? 'unknown'}${m.runner.attempt ? ` (attempt ${m.runner.attempt})` : ''}`,
    `  options    compression ${m.options.compression}, ${m.options.encrypted ? `encrypted${m.options.encryptionKeyId ? ` (key ${m.options.encryptionKeyId})` : ''}` : 'not encrypted'}`,
    `  verified   by the control plane from the stored bytes at ${m.verifiedAt}; kept until ${m.expiresAt}`,
    `  restore check  ${restore}`,
  ];
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
