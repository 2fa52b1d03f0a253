/**
 * Writes portal/dist/config.json for an Azure deployment from the azd environment (the azure.yaml `portal`
 * hook runs it after the build): the API's URL and scope from main.bicep's outputs, the portal's own app
 * registration from `azd env set PORTAL_CLIENT_ID <id>` (docs/infra.md, "Entra setup").
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { PortalConfig } from './src/config.js';
import { API_SCOPE_NAME } from '../shared/auth/principal.js';

/** Every missing variable is named at once, as shared/config.ts does for the app settings. */
export function portalConfigFromEnv(env: Record<string, string | undefined>): PortalConfig {
  const required = ['API_BASE_URL', 'API_AUDIENCE', 'AZURE_TENANT_ID', 'PORTAL_CLIENT_ID'] as const;
  const missing = required.filter((name) => !env[name]?.trim());
  if (missing.length > 0) {
    throw new Error(`portal config: set ${missing.join(', ')} (azd outputs; PORTAL_CLIENT_ID with \`azd env set\`)`);
  }
  const authorityHost = (env.ENTRA_AUTHORITY_HOST ?? 'https://login.microsoftonline.com').replace(/\/+$/, '');
  return {
    // API_BASE_URL ends in /api; the portal adds the /api/... paths itself.
    apiBaseUrl: env.API_BASE_URL!.trim().replace(/\/+$/, '').replace(/\/api$/, ''),
    clientId: env.PORTAL_CLIENT_ID!.trim(),
    authority: `${authorityHost}/${env.AZURE_TENANT_ID!.trim()}`,
    apiScope: `${env.API_AUDIENCE!.trim().replace(/\/+$/, '')}/${API_SCOPE_NAME}`,
    ...(env.PORTAL_ENVIRONMENT_NAME ? { environmentName: env.PORTAL_ENVIRONMENT_NAME } : {}),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const target = fileURLToPath(new URL('./dist/config.json', import.meta.url));
  try {
    writeFileSync(target, `${JSON.stringify(portalConfigFromEnv(process.env), null, 2)}\n`);
    console.log(`portal config written to ${target}`);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exit(2);
  }
}
