/**
 * The production wiring that can run here: the token validator and limits built from settings. The validator
 * is pointed (through the settings, as in Azure) at the local OIDC issuer over HTTPS and must accept its
 * tokens and map groups to roles with the configured RBAC groups.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlPlaneSettingsSchema, parseSettings } from '../../shared/config.js';
import { limitsFromSettings, tokenValidatorFromSettings } from '../../functions/production.js';
import { type OidcIssuer, startOidcIssuer } from '../../dev/oidc-issuer.js';
import { ensureLoopbackCert } from '../../dev/tls.js';

const sample = JSON.parse(readFileSync(new URL('../../local.settings.sample.json', import.meta.url), 'utf8')).Values as Record<string, string>;

let issuer: OidcIssuer;
beforeAll(async () => {
  const { cert, key } = ensureLoopbackCert();
  issuer = await startOidcIssuer({ tls: { cert, key } });
});
afterAll(() => issuer?.close());

function settingsFor(overrides: Record<string, string>) {
  return parseSettings(controlPlaneSettingsSchema, { ...sample, ...overrides });
}

describe('tokenValidatorFromSettings', () => {
  it('accepts the tenant’s tokens for the configured audience and grants roles from the configured groups', async () => {
    const adminGroup = randomUUID();
    const settings = settingsFor({
      ENTRA_TENANT_ID: issuer.tenantId,
      ENTRA_AUDIENCES: `${issuer.apiAppIdUri},${issuer.apiClientId}`,
      ENTRA_AUTHORITY_HOST: issuer.baseUrl,
      RBAC_ADMIN_GROUP_IDS: adminGroup.toUpperCase(),
    });
    const validator = tokenValidatorFromSettings(settings);
    const oid = randomUUID();
    const principal = await validator.authenticate(`Bearer ${issuer.issueUserToken({ oid, groups: [adminGroup] })}`);
    expect(principal.oid).toBe(oid);
    expect([...principal.roles]).toEqual(['Admin']);
    await expect(validator.authenticate(`Bearer ${issuer.issueUserToken({ audience: 'api://someone-else' })}`)).rejects.toMatchObject({ code: 'unauthenticated' });
  });
});

describe('limitsFromSettings', () => {
  it('carries the SAS lifetimes and the lifecycle rule age over', () => {
    const settings = settingsFor({ SAS_TTL_DEFAULT_MINUTES: '15', SAS_TTL_MAX_MINUTES: '120', UPLOAD_SAS_TTL_MINUTES: '20', BACKUP_LIFECYCLE_DELETE_DAYS: '90' });
    expect(limitsFromSettings(settings)).toEqual({
      sasTtlDefaultMinutes: 15,
      sasTtlMaxMinutes: 120,
      uploadSasTtlMinutes: 20,
      lifecycleDeleteDays: 90,
    });
  });
});
