/**
 * Sign-in with @azure/msal-browser: authorization code + PKCE by redirect, tokens for the API's scope.
 * MSAL's cache lives in sessionStorage (gone when the tab closes); the portal keeps no token of its own.
 */
import { type AccountInfo, InteractionRequiredAuthError, PublicClientApplication } from '@azure/msal-browser';
import type { PortalConfig } from './config';

export interface Auth {
  account: AccountInfo | null;
  signIn(): Promise<void>;
  signOut(): Promise<void>;
  /** An access token for the API; redirects to sign in again when one cannot be had silently. */
  getApiToken(): Promise<string>;
}

export async function createAuth(config: PortalConfig): Promise<Auth> {
  const home = `${window.location.origin}/`;
  const msal = new PublicClientApplication({
    auth: {
      clientId: config.clientId,
      authority: config.authority,
      redirectUri: home,
      postLogoutRedirectUri: home,
      ...(config.knownAuthorities ? { knownAuthorities: config.knownAuthorities } : {}),
      ...(config.authorityMetadata ? { authorityMetadata: config.authorityMetadata } : {}),
    },
    cache: { cacheLocation: 'sessionStorage' },
    ...(config.protocolMode ? { system: { protocolMode: config.protocolMode } } : {}),
  });
  await msal.initialize();
  const result = await msal.handleRedirectPromise();
  if (result?.account) msal.setActiveAccount(result.account);
  const account = msal.getActiveAccount() ?? msal.getAllAccounts()[0] ?? null;
  if (account) msal.setActiveAccount(account);
  const scopes = [config.apiScope];

  return {
    account,
    signIn: () => msal.loginRedirect({ scopes }),
    signOut: () => msal.logoutRedirect(account ? { account } : {}),
    async getApiToken() {
      const active = msal.getActiveAccount();
      if (!active) {
        await msal.loginRedirect({ scopes });
        throw new Error('Signing in…');
      }
      try {
        return (await msal.acquireTokenSilent({ scopes, account: active })).accessToken;
      } catch (error) {
        if (!(error instanceof InteractionRequiredAuthError)) throw error;
        await msal.acquireTokenRedirect({ scopes, account: active });
        throw new Error('Signing in again…');
      }
    },
  };
}
