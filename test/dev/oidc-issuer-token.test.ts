/**
 * The local issuer's token endpoint against the REAL @azure/msal-node, configured as the runner configures it
 * (runner-agent/api/client.ts): client secret and certificate assertion, and the tokens pass the production
 * validator with the Runner role.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuer, validatorFor, type OidcIssuer } from '../../dev/oidc-issuer.js';
import { createClientCertificate, ensureLoopbackCert } from '../../dev/tls.js';
import { msalTokenProvider } from '../../runner-agent/api/client.js';

let issuer: OidcIssuer;
let dir: string;
beforeAll(async () => {
  issuer = await startOidcIssuer({ tls: ensureLoopbackCert() });
  dir = mkdtempSync(join(tmpdir(), 'dbdist-issuer-'));
});
afterAll(async () => {
  await issuer?.close();
  rmSync(dir, { recursive: true, force: true });
});

const scopeOf = (i: OidcIssuer) => `${i.apiAppIdUri}/.default`;
const credentialsFor = (clientId: string, extra: { clientSecret?: string; certificatePath?: string }) => ({
  tenantId: issuer.tenantId,
  clientId,
  authorityHost: issuer.baseUrl,
  ...extra,
});

describe('local issuer: client credentials for the real MSAL', () => {
  it('issues a Runner token for a client secret, which the production validator accepts', async () => {
    const app = issuer.registerClient({ clientSecret: 's3cret-value', roles: ['Runner'] });
    const token = await msalTokenProvider(credentialsFor(app.clientId, { clientSecret: 's3cret-value' }), scopeOf(issuer)).getToken();
    const principal = await validatorFor(issuer).authenticate(`Bearer ${token}`);
    expect(principal).toMatchObject({ isApplication: true, clientId: app.clientId });
    expect(principal.roles.has('Runner')).toBe(true);
    expect(principal.oid).toBe(app.servicePrincipalId);
  });

  it('issues a token for a certificate assertion (x5t#S256, signed by the certificate key)', async () => {
    const cert = createClientCertificate(dir, 'runner-cert');
    const app = issuer.registerClient({ certificatePem: cert.certificatePem, roles: ['Runner'] });
    const before = issuer.tokensIssued;
    const tokens = msalTokenProvider(credentialsFor(app.clientId, { certificatePath: cert.pemPath }), scopeOf(issuer));
    const token = await tokens.getToken();
    expect(issuer.tokensIssued).toBe(before + 1);
    await tokens.getToken(); // MSAL's cache answers
    expect(issuer.tokensIssued).toBe(before + 1);
    await tokens.getToken({ forceRefresh: true });
    expect(issuer.tokensIssued).toBe(before + 2);
    const principal = await validatorFor(issuer).authenticate(`Bearer ${token}`);
    expect(principal.roles.has('Runner')).toBe(true);
  });

  it('refuses a wrong secret, another certificate and an unregistered client', async () => {
    const app = issuer.registerClient({ clientSecret: 'right', certificatePem: createClientCertificate(dir, 'registered').certificatePem });
    const stranger = createClientCertificate(dir, 'stranger');
    await expect(msalTokenProvider(credentialsFor(app.clientId, { clientSecret: 'wrong' }), scopeOf(issuer)).getToken()).rejects.toThrow(/invalid_client|secret/i);
    await expect(msalTokenProvider(credentialsFor(app.clientId, { certificatePath: stranger.pemPath }), scopeOf(issuer)).getToken()).rejects.toThrow(/invalid_client|thumbprint/i);
    await expect(
      msalTokenProvider(credentialsFor('00000000-0000-4000-8000-000000000001', { clientSecret: 'x' }), scopeOf(issuer)).getToken(),
    ).rejects.toThrow(/unauthorized_client|not registered/i);
  });
});
