/**
 * A self-signed certificate for loopback HTTPS stand-ins (Azurite's OAuth mode, the local OIDC issuer, the sandbox).
 *
 * Written once to `.tmp/tls/` and trusted by test workers through NODE_EXTRA_CA_CERTS. Node reads that variable
 * only when a process starts, so vitest.config.ts calls `trustLoopbackCertInChildProcesses()` before any worker
 * is forked; a process started some other way must be given the variable by whoever spawns it.
 * Test-only: verification is never switched off, the certificate is simply trusted.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LoopbackCert {
  certPath: string;
  keyPath: string;
  /** PEM text of the certificate. */
  cert: string;
  /** PEM text of the private key. */
  key: string;
}

const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const tmpDir = join(repoRoot, '.tmp');
export const loopbackTlsDir = join(tmpDir, 'tls');
const certPath = join(loopbackTlsDir, 'cert.pem');
const keyPath = join(loopbackTlsDir, 'key.pem');

/** Regenerate when the certificate has less than this left, so a long test run never meets an expiry. */
const minRemainingValidityMs = 24 * 60 * 60 * 1000;

let cached: LoopbackCert | undefined;

/** The loopback certificate, created on first use (openssl CLI) and reused by every later process. */
export function ensureLoopbackCert(): LoopbackCert {
  if (cached && stillValid(cached.cert)) return cached;
  if (!readableAndValid()) generate();
  cached = { certPath, keyPath, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
  return cached;
}

/**
 * Makes child processes started from now on (vitest's forked workers) trust the loopback certificate.
 * An NODE_EXTRA_CA_CERTS already set by the user is kept: both go into one bundle file.
 */
export function trustLoopbackCertInChildProcesses(): void {
  const { certPath: ours, cert } = ensureLoopbackCert();
  const existing = process.env.NODE_EXTRA_CA_CERTS;
  if (!existing || resolve(existing) === ours || resolve(existing) === bundlePath()) {
    process.env.NODE_EXTRA_CA_CERTS = ours;
    return;
  }
  writeFileAtomically(bundlePath(), `${readFileSync(existing, 'utf8').trimEnd()}\n${cert}`);
  process.env.NODE_EXTRA_CA_CERTS = bundlePath();
}

/**
 * Other test runs may be starting workers that read the file right now: never truncate it in place, and
 * leave it alone when it already holds the right text.
 */
function writeFileAtomically(path: string, text: string): void {
  if (existsSync(path) && readFileSync(path, 'utf8') === text) return;
  const staging = `${path}.${process.pid}.tmp`;
  writeFileSync(staging, text);
  renameSync(staging, path);
}

function bundlePath(): string {
  return join(loopbackTlsDir, 'extra-ca-bundle.pem');
}

function stillValid(certPem: string): boolean {
  try {
    return Date.parse(new X509Certificate(certPem).validTo) - Date.now() > minRemainingValidityMs;
  } catch {
    return false;
  }
}

function readableAndValid(): boolean {
  return existsSync(certPath) && existsSync(keyPath) && stillValid(readFileSync(certPath, 'utf8'));
}

/**
 * Generates into a private directory, then renames it into place: parallel workers either win the rename or
 * find a complete pair from the winner, never a certificate next to another process's key.
 */
function generate(): void {
  mkdirSync(tmpDir, { recursive: true });
  const staging = mkdtempSync(join(tmpDir, 'tls-staging-'));
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-nodes',
        '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-keyout', join(staging, 'key.pem'),
        '-out', join(staging, 'cert.pem'),
        '-days', '825',
        '-subj', '/CN=dbdist loopback test certificate',
        '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    if (existsSync(loopbackTlsDir)) {
      if (readableAndValid()) return; // another process finished first
      rmSync(loopbackTlsDir, { recursive: true, force: true }); // expired or half-deleted: replace it
    }
    try {
      renameSync(staging, loopbackTlsDir);
    } catch (error) {
      if (!readableAndValid()) throw error; // lost the race to a process that left a good pair: use it
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

export interface ClientCertificate {
  /** One PEM file holding the private key and the certificate: what the runner's `certificatePath` takes. */
  pemPath: string;
  /** The certificate alone (what an app registration's credential holds). */
  certificatePem: string;
}

/**
 * A self-signed RSA certificate for an application's client credential (the runner's app registration), written
 * to `dir/<name>.pem` as key + certificate, as `dbdist-runner` reads it. RSA: Entra signs assertions with RSA only.
 */
export function createClientCertificate(dir: string, name: string): ClientCertificate {
  mkdirSync(dir, { recursive: true });
  const staging = mkdtempSync(join(dir, `${name}-`));
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-nodes', '-newkey', 'rsa:2048',
        '-keyout', join(staging, 'key.pem'), '-out', join(staging, 'cert.pem'),
        '-days', '30', '-subj', `/CN=${name}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const certificatePem = readFileSync(join(staging, 'cert.pem'), 'utf8');
    const pemPath = join(dir, `${name}.pem`);
    writeFileSync(pemPath, `${readFileSync(join(staging, 'key.pem'), 'utf8').trimEnd()}\n${certificatePem}`, { mode: 0o600 });
    return { pemPath, certificatePem };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
