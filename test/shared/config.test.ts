import { describe, expect, it } from 'vitest';
import { controlPlaneSettingNames, controlPlaneSettingsSchema, parseSettings } from '../../shared/config.js';
import { isAppError } from '../../shared/errors.js';
import { requiredResourceSettings } from '../support/settings.js';

const valid = {
  ENTRA_TENANT_ID: '6f1d2c3b-4a59-4e68-8d7c-0b1a2c3d4e5f',
  ENTRA_AUDIENCES: 'api://dbdist, 0d6b4b8e-2a7c-4f0e-9d55-3a1c2b4d5e6f',
  ...requiredResourceSettings,
};

function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    parseSettings(controlPlaneSettingsSchema, env);
  } catch (error) {
    if (isAppError(error)) return error.fieldErrors.map((e) => `${e.field}: ${e.message}`);
    throw error;
  }
  return [];
}

describe('control-plane settings', () => {
  it('parses lists, flags and numbers, with defaults for what is not a secret', () => {
    const settings = parseSettings(controlPlaneSettingsSchema, { ...valid, ENTRA_ACCEPT_V1_TOKENS: 'true', SAS_TTL_MAX_MINUTES: '120' });
    expect(settings.ENTRA_AUDIENCES).toEqual(['api://dbdist', '0d6b4b8e-2a7c-4f0e-9d55-3a1c2b4d5e6f']);
    expect(settings.ENTRA_ACCEPT_V1_TOKENS).toBe(true);
    expect(settings.SAS_TTL_MAX_MINUTES).toBe(120);
    expect(settings.SERVICEBUS_JOBS_TOPIC).toBe('backup-jobs');
    expect(settings.ENTRA_AUTHORITY_HOST).toBe('https://login.microsoftonline.com');
    expect(settings.REHASH_BUDGET_MIB).toBe(4096);
    expect(settings.REVERIFY_BATCH_SIZE).toBe(20);
    expect(settings.SQL_TOKEN_SCOPE).toBe('https://database.windows.net/.default');
  });

  it('wants the manifest signing key without a version (the newest version signs)', () => {
    expect(problemsOf({ ...valid, MANIFEST_SIGNING_KEY_ID: 'https://kv-dbdist.vault.azure.net/keys/manifest-signing/0123456789abcdef' })).toEqual([
      expect.stringMatching(/^MANIFEST_SIGNING_KEY_ID: must be a Key Vault key URL without a version/),
    ]);
    expect(problemsOf({ ...valid, MANIFEST_SIGNING_KEY_ID: undefined })).toEqual(['MANIFEST_SIGNING_KEY_ID: is required but not set']);
  });

  it('takes a sovereign cloud’s Azure SQL token scope, and refuses one that is not a .default scope', () => {
    expect(parseSettings(controlPlaneSettingsSchema, { ...valid, SQL_TOKEN_SCOPE: 'https://database.usgovcloudapi.net/.default' }).SQL_TOKEN_SCOPE).toBe(
      'https://database.usgovcloudapi.net/.default',
    );
    expect(problemsOf({ ...valid, SQL_TOKEN_SCOPE: 'https://database.usgovcloudapi.net' })).toEqual([expect.stringContaining('SQL_TOKEN_SCOPE')]);
  });

  it('names every missing or malformed setting in one error', () => {
    const problems = problemsOf({ ...valid, SQL_SERVER: undefined, BACKUP_BLOB_ENDPOINT: 'http://plain', RBAC_ADMIN_GROUP_IDS: 'not-a-guid', ENTRA_TENANT_ID: '' });
    expect(problems).toEqual(
      expect.arrayContaining([
        'SQL_SERVER: is required but not set',
        'ENTRA_TENANT_ID: is required but not set',
        expect.stringMatching(/^BACKUP_BLOB_ENDPOINT: must be an https/),
        expect.stringMatching(/^RBAC_ADMIN_GROUP_IDS/),
      ]),
    );
    expect(problems).toHaveLength(4);
  });

  it('refuses a default link lifetime above the maximum', () => {
    expect(problemsOf({ ...valid, SAS_TTL_DEFAULT_MINUTES: '90', SAS_TTL_MAX_MINUTES: '60' })).toEqual([
      'SAS_TTL_DEFAULT_MINUTES: must not exceed SAS_TTL_MAX_MINUTES',
    ]);
  });

  it('lists every setting name the schema reads', () => {
    expect(controlPlaneSettingNames).toContain('ENTRA_TENANT_ID');
    expect(controlPlaneSettingNames).toContain('CORS_ORIGINS');
    expect(new Set(controlPlaneSettingNames).size).toBe(controlPlaneSettingNames.length);
  });
});
