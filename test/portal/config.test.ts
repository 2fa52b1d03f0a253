import { describe, expect, it } from 'vitest';
import { portalConfigFromEnv } from '../../portal/write-config.js';

const azdOutputs = {
  API_BASE_URL: 'https://func-abc.azurewebsites.net/api',
  API_AUDIENCE: 'api://0b1c2d3e-0000-4000-8000-000000000001',
  AZURE_TENANT_ID: '72f988bf-0000-4000-8000-000000000002',
  PORTAL_CLIENT_ID: '5a6b7c8d-0000-4000-8000-000000000003',
};

describe('portal config for Azure (portal/write-config.ts)', () => {
  it('turns the azd outputs into what the portal reads: API origin, Entra authority, the API scope', () => {
    expect(portalConfigFromEnv(azdOutputs)).toEqual({
      apiBaseUrl: 'https://func-abc.azurewebsites.net',
      clientId: '5a6b7c8d-0000-4000-8000-000000000003',
      authority: 'https://login.microsoftonline.com/72f988bf-0000-4000-8000-000000000002',
      apiScope: 'api://0b1c2d3e-0000-4000-8000-000000000001/access_as_user',
    });
  });

  it('names every missing variable at once', () => {
    expect(() => portalConfigFromEnv({ API_BASE_URL: azdOutputs.API_BASE_URL })).toThrow(/API_AUDIENCE, AZURE_TENANT_ID, PORTAL_CLIENT_ID/);
  });
});
