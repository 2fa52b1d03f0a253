/**
 * What the portal needs to know about its environment, read at start-up from `config.json` next to the page
 * (written by the deployment, or by the sandbox), so one build serves every environment.
 */
export interface PortalConfig {
  /** The API's base URL, e.g. `https://func-x.azurewebsites.net` (the portal calls `${apiBaseUrl}/api/...`). */
  apiBaseUrl: string;
  /** The portal's own app registration (SPA platform, redirect URI = the portal's origin + `/`). */
  clientId: string;
  /** `https://login.microsoftonline.com/{tenant id}` in Azure. */
  authority: string;
  /** The API's delegated scope, e.g. `api://{api client id}/access_as_user`. */
  apiScope: string;
  /** For an authority MSAL does not know (the local issuer): trust it, and use this metadata without discovery. */
  knownAuthorities?: string[];
  authorityMetadata?: string;
  /** `OIDC` for a non-Entra authority (the local issuer); Entra otherwise. */
  protocolMode?: 'AAD' | 'OIDC';
  /** A line shown under the header, e.g. "Local sandbox". */
  environmentName?: string;
}

export async function loadConfig(): Promise<PortalConfig> {
  // Served with Cache-Control: no-store (staticwebapp.config.json, dev/portal-host.ts).
  const response = await fetch('/config.json');
  if (!response.ok) throw new Error(`config.json answered ${response.status}; the deployment must write it next to index.html`);
  const config = (await response.json()) as Partial<PortalConfig>;
  const missing = (['apiBaseUrl', 'clientId', 'authority', 'apiScope'] as const).filter((key) => !config[key]);
  if (missing.length > 0) throw new Error(`config.json lacks ${missing.join(', ')}`);
  return { ...(config as PortalConfig), apiBaseUrl: config.apiBaseUrl!.replace(/\/+$/, '') };
}
