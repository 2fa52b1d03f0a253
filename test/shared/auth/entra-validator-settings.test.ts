/**
 * The validator as production builds it: options from control-plane settings (https-only hosts), keys fetched
 * over HTTPS from the local issuer, whose self-signed certificate the test workers trust (dev/tls.ts).
 */
import { randomUUID } from 'node:crypto';
import { Agent as HttpsAgent } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntraTokenValidator, tokenValidatorOptionsFromSettings } from '../../../shared/auth/entra-validator.js';
import { type ControlPlaneSettings, controlPlaneSettingsSchema, parseSettings } from '../../../shared/config.js';
import { bearer, type OidcIssuer, startOidcIssuer, testGroupIds } from '../../../dev/oidc-issuer.js';
import { ensureLoopbackCert } from '../../../dev/tls.js';
import { requiredResourceSettings } from '../../support/settings.js';

let issuer: OidcIssuer;
let settings: ControlPlaneSettings;

beforeAll(async () => {
  issuer = await startOidcIssuer({ tls: ensureLoopbackCert() });
  settings = parseSettings(controlPlaneSettingsSchema, {
    ENTRA_TENANT_ID: issuer.tenantId.toUpperCase(),
    ENTRA_AUDIENCES: `${issuer.apiAppIdUri}, ${issuer.apiClientId}`,
    ENTRA_AUTHORITY_HOST: `${issuer.baseUrl}/`,
    ENTRA_ACCEPT_V1_TOKENS: 'true',
    ENTRA_V1_ISSUER_HOST: issuer.baseUrl,
    RBAC_ADMIN_GROUP_IDS: testGroupIds.admin,
    RBAC_REQUESTER_GROUP_IDS: testGroupIds.requester,
    ...requiredResourceSettings,
  });
});

afterAll(async () => {
  await issuer?.close();
});

describe('tokenValidatorOptionsFromSettings', () => {
  it('derives tenant, audiences, hosts, v1 acceptance and the RBAC policy from the settings', () => {
    expect(tokenValidatorOptionsFromSettings(settings)).toEqual({
      tenantId: issuer.tenantId.toUpperCase(),
      audiences: [issuer.apiAppIdUri, issuer.apiClientId],
      authorityHost: `${issuer.baseUrl}/`,
      acceptV1: true,
      v1IssuerHost: issuer.baseUrl,
      rbacPolicy: { adminGroupIds: [testGroupIds.admin], approverGroupIds: [], auditorGroupIds: [], requesterGroupIds: [testGroupIds.requester] },
    });
  });

  it('validates v2 and v1 tokens over HTTPS with the production options unchanged', async () => {
    const validator = new EntraTokenValidator(tokenValidatorOptionsFromSettings(settings));
    const v2 = await validator.authenticate(bearer(issuer.issueUserToken({ groups: [testGroupIds.requester] })));
    const v1 = await validator.authenticate(bearer(issuer.issueUserToken({ version: '1.0', groups: [testGroupIds.admin] })));
    expect([...v2.roles]).toEqual(['Requester']);
    expect([...v1.roles]).toEqual(['Admin']);
    expect(v2.tenantId).toBe(issuer.tenantId);
  });

  it('still refuses a token for another tenant', async () => {
    const validator = new EntraTokenValidator(tokenValidatorOptionsFromSettings(settings));
    const error = await validator.authenticate(bearer(issuer.issueUserToken({ tenantId: randomUUID() }))).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'unauthenticated', details: { reason: 'wrong_tenant' } });
  });
});

describe('requestAgent', () => {
  it('fetches the keys through the given agent (e.g. one carrying a private CA)', async () => {
    let connections = 0;
    class CountingAgent extends HttpsAgent {
      override createConnection(...args: Parameters<HttpsAgent['createConnection']>) {
        connections += 1;
        return super.createConnection(...args);
      }
    }
    const requestAgent = new CountingAgent({ ca: ensureLoopbackCert().cert });
    const validator = new EntraTokenValidator({ ...tokenValidatorOptionsFromSettings(settings), requestAgent });
    await validator.authenticate(bearer(issuer.issueAppToken({ roles: ['Runner'] })));
    expect(connections).toBe(1);
    requestAgent.destroy();
  });
});
