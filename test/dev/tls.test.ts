import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, get, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureLoopbackCert } from '../../dev/tls.js';

function httpsGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

async function listen(cert: string, key: string): Promise<{ server: Server; port: number }> {
  const server = createServer({ cert, key }, (_req, res) => res.end('trusted'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

/** A certificate nobody trusts, to show that verification is really on. */
function strangerCert(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dbdist-stranger-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
      '-subj', '/CN=stranger', '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore' });
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('loopback TLS certificate', () => {
  const servers: Server[] = [];
  let trustedPort: number;
  let strangerPort: number;

  beforeAll(async () => {
    const loopback = ensureLoopbackCert();
    const trusted = await listen(loopback.cert, loopback.key);
    const stranger = strangerCert();
    const untrusted = await listen(stranger.cert, stranger.key);
    servers.push(trusted.server, untrusted.server);
    trustedPort = trusted.port;
    strangerPort = untrusted.port;
  });

  afterAll(async () => {
    await Promise.all(servers.map(async (server) => {
      server.close();
      await once(server, 'close');
    }));
  });

  it('is trusted by this forked test worker through NODE_EXTRA_CA_CERTS', async () => {
    expect(process.env.NODE_TLS_REJECT_UNAUTHORIZED).toBeUndefined();
    for (const host of ['127.0.0.1', 'localhost']) {
      await expect(httpsGet(`https://${host}:${trustedPort}/`)).resolves.toEqual({ status: 200, body: 'trusted' });
    }
  });

  it('leaves verification on: a certificate nobody trusts is refused', async () => {
    await expect(httpsGet(`https://127.0.0.1:${strangerPort}/`)).rejects.toThrow(/self[- ]signed/i);
  });

  it('covers loopback by IP and name, matches its key, and is reused rather than regenerated', () => {
    const first = ensureLoopbackCert();
    const x509 = new X509Certificate(first.cert);
    expect(x509.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(x509.subjectAltName).toContain('DNS:localhost');
    expect(x509.checkPrivateKey(createPrivateKey(first.key))).toBe(true);
    expect(ensureLoopbackCert().cert).toBe(first.cert);
  });
});
