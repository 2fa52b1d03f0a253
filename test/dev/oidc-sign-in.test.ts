import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuer, testGroupIds, validatorFor, bearer, type OidcIssuer } from '../../dev/oidc-issuer.js';

const spaOrigin = 'http://127.0.0.1:5999';
const redirectUri = `${spaOrigin}/`;
const clientId = randomUUID();

let issuer: OidcIssuer;
beforeAll(async () => {
  issuer = await startOidcIssuer();
  issuer.signIn.setUsers([
    { key: 'alice', name: 'alice', upn: 'alice@contoso.example', oid: randomUUID(), groups: [testGroupIds.requester], description: 'Requester' },
    { key: 'approver', name: 'approver', upn: 'approver@contoso.example', oid: randomUUID(), groups: [], roles: ['Approver'], description: 'Approver' },
  ]);
  issuer.signIn.registerSpa({ clientId, redirectUris: [redirectUri] });
});
afterAll(() => issuer.close());

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizeParams(challenge: string, overrides: Record<string, string> = {}): URLSearchParams {
  return new URLSearchParams({
    client_id: clientId,
    redirect_uri: redirectUri,
    response_type: 'code',
    response_mode: 'fragment',
    scope: `${issuer.signIn.apiScope} openid profile offline_access`,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: 'state-1',
    nonce: 'nonce-1',
    ...overrides,
  });
}

async function signInAs(user: string, challenge: string): Promise<URLSearchParams> {
  const form = authorizeParams(challenge);
  form.set('user', user);
  const response = await fetch(`${issuer.baseUrl}${issuer.signIn.authorizePath}`, { method: 'POST', body: form, redirect: 'manual' });
  expect(response.status).toBe(302);
  const location = new URL(response.headers.get('location')!);
  expect(location.origin + location.pathname).toBe(redirectUri);
  return new URLSearchParams(location.hash.slice(1));
}

function redeem(code: string, verifier: string, overrides: Record<string, string> = {}) {
  return fetch(`${issuer.baseUrl}/${issuer.tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { origin: spaOrigin },
    body: new URLSearchParams({ grant_type: 'authorization_code', client_id: clientId, redirect_uri: redirectUri, code, code_verifier: verifier, ...overrides }),
  });
}

describe('local issuer: authorization code + PKCE', () => {
  it('shows a page listing the demo users, carrying the request along', async () => {
    const response = await fetch(`${issuer.baseUrl}${issuer.signIn.authorizePath}?${authorizeParams(pkce().challenge)}`);
    expect(response.status).toBe(200);
    const html = await response.text();
    expect(html).toContain('value="alice"');
    expect(html).toContain('value="approver"');
    expect(html).toContain('name="code_challenge"');
  });

  it('issues an access token the production validator accepts, with the user’s roles, and an ID token with the nonce', async () => {
    const { verifier, challenge } = pkce();
    const redirect = await signInAs('alice', challenge);
    expect(redirect.get('state')).toBe('state-1');
    const response = await redeem(redirect.get('code')!, verifier);
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe(spaOrigin);
    const body = (await response.json()) as { access_token: string; id_token: string };
    const principal = await validatorFor(issuer).authenticate(bearer(body.access_token));
    expect([...principal.roles]).toEqual(['Requester']);
    const idClaims = JSON.parse(Buffer.from(body.id_token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(idClaims).toMatchObject({ aud: clientId, nonce: 'nonce-1', preferred_username: 'alice@contoso.example', iss: issuer.v2Issuer });
  });

  it('refuses a wrong verifier, a second use of a code, and another redirect URI', async () => {
    const first = pkce();
    const code = (await signInAs('alice', first.challenge)).get('code')!;
    const wrong = await redeem(code, pkce().verifier);
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ error: 'invalid_grant' });
    // The failed attempt used the code up, as a stolen code must not be retried.
    expect((await redeem(code, first.verifier)).status).toBe(400);

    const second = pkce();
    const other = (await signInAs('alice', second.challenge)).get('code')!;
    expect((await redeem(other, second.verifier, { redirect_uri: 'http://127.0.0.1:6000/' })).status).toBe(400);
  });

  it('never redirects to an unregistered URI, requires S256 PKCE, and gives CORS only to registered origins', async () => {
    const unregistered = await fetch(
      `${issuer.baseUrl}${issuer.signIn.authorizePath}?${authorizeParams(pkce().challenge, { redirect_uri: 'https://attacker.example/' })}`,
      { redirect: 'manual' },
    );
    expect(unregistered.status).toBe(400);
    const plain = await fetch(
      `${issuer.baseUrl}${issuer.signIn.authorizePath}?${authorizeParams('x'.repeat(43), { code_challenge_method: 'plain' })}`,
      { redirect: 'manual' },
    );
    expect(plain.status).toBe(302);
    expect(new URLSearchParams(new URL(plain.headers.get('location')!).hash.slice(1)).get('error')).toBe('invalid_request');
    const preflight = await fetch(`${issuer.baseUrl}/${issuer.tenantId}/oauth2/v2.0/token`, {
      method: 'OPTIONS',
      headers: { origin: 'https://attacker.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('publishes the metadata MSAL needs', async () => {
    const metadata = (await (await fetch(`${issuer.v2Issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({
      authorization_endpoint: `${issuer.baseUrl}${issuer.signIn.authorizePath}`,
      end_session_endpoint: `${issuer.baseUrl}${issuer.signIn.logoutPath}`,
      code_challenge_methods_supported: ['S256'],
    });
  });
});
