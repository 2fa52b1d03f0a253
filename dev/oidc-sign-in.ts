/**
 * Interactive sign-in for the local OIDC issuer (dev/oidc-issuer.ts): the authorization code + PKCE grant a
 * browser SPA (the portal, through @azure/msal-browser) uses, with a small page to pick a demo user instead of
 * a password. Tokens keep Entra's v2 shapes, so the API's production validator checks them unchanged.
 *
 * What it enforces, as Entra does for a SPA: registered client id and exact redirect URI, S256 PKCE, a code
 * used once within a minute, the nonce echoed in the ID token, CORS on the token endpoint for the SPA's origin.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { API_SCOPE_NAME } from '../shared/auth/principal.js';

/** A person who can sign in on the local page. */
export interface DemoUser {
  /** Short name used on the page and in tests (`alice`). */
  key: string;
  name: string;
  upn: string;
  oid: string;
  groups: string[];
  /** App roles (e.g. `Approver`), as Entra emits them in `roles`. */
  roles?: string[];
  /** One line on the sign-in page: what this person may do. */
  description: string;
}

/** A single-page application registered with the issuer (Entra: an app registration with a SPA platform). */
export interface SpaRegistration {
  clientId: string;
  redirectUris: string[];
}

/** What the issuer lends the sign-in flow: its identity and its signing. */
export interface SignInIssuer {
  readonly tenantId: string;
  readonly v2Issuer: string;
  readonly apiClientId: string;
  readonly apiAppIdUri: string;
  issueUserToken(options: {
    oid: string;
    upn: string;
    name: string;
    groups: string[];
    roles?: string[];
    scp: string;
    clientAppId: string;
    expiresIn: number;
  }): string;
  signClaims(claims: Record<string, unknown>): string;
}

interface PendingCode {
  user: DemoUser;
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  nonce: string | undefined;
  scopes: string[];
  expiresAt: number;
}

const CODE_LIFETIME_MS = 60_000;
const TOKEN_LIFETIME_S = 3600;

export class InteractiveSignIn {
  private users: DemoUser[] = [];
  private spas: SpaRegistration[] = [];
  private codes = new Map<string, PendingCode>();

  constructor(private readonly issuer: SignInIssuer) {}

  setUsers(users: DemoUser[]): void {
    this.users = users;
  }

  registerSpa(spa: SpaRegistration): void {
    this.spas = [...this.spas.filter((known) => known.clientId !== spa.clientId), spa];
  }

  /** The scope a SPA asks for to call the API: `api://{api client id}/access_as_user`. */
  get apiScope(): string {
    return `${this.issuer.apiAppIdUri}/${API_SCOPE_NAME}`;
  }

  get authorizePath(): string {
    return `/${this.issuer.tenantId}/oauth2/v2.0/authorize`;
  }

  get logoutPath(): string {
    return `/${this.issuer.tenantId}/oauth2/v2.0/logout`;
  }

  /** CORS for the token endpoint: only origins of registered SPA redirect URIs, as Entra does for SPA clients. */
  corsHeaders(req: IncomingMessage): Record<string, string> {
    const origin = req.headers.origin;
    if (!origin || !this.spas.some((spa) => spa.redirectUris.some((uri) => new URL(uri).origin === origin))) return {};
    return {
      'access-control-allow-origin': origin,
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': req.headers['access-control-request-headers'] ?? 'content-type',
      'access-control-max-age': '600',
      vary: 'Origin',
    };
  }

  /** GET shows the user picker; POST (the picker's form) issues a code and redirects to the SPA. */
  async authorize(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const params = req.method === 'POST' ? await readForm(req) : url.searchParams;
    const clientId = params.get('client_id') ?? '';
    const redirectUri = params.get('redirect_uri') ?? '';
    const spa = this.spas.find((candidate) => candidate.clientId === clientId);
    // Errors before the redirect URI is trusted are shown here, never sent to an unchecked URI.
    if (!spa) return page(res, 400, 'Unknown application', `<p>No application with client id <code>${escapeHtml(clientId)}</code> is registered.</p>`);
    if (!spa.redirectUris.includes(redirectUri)) {
      return page(res, 400, 'Redirect URI not registered', `<p><code>${escapeHtml(redirectUri)}</code> is not a redirect URI of this application.</p>`);
    }
    const state = params.get('state') ?? undefined;
    const responseMode = params.get('response_mode') === 'query' ? 'query' : 'fragment';
    const fail = (error: string, description: string) => redirect(res, redirectUri, responseMode, { error, error_description: description, state });
    if (params.get('response_type') !== 'code') return fail('unsupported_response_type', 'only response_type=code is supported');
    const codeChallenge = params.get('code_challenge') ?? '';
    if (params.get('code_challenge_method') !== 'S256' || !/^[A-Za-z0-9_-]{43}$/.test(codeChallenge)) {
      return fail('invalid_request', 'PKCE with code_challenge_method=S256 is required');
    }
    if (req.method !== 'POST') return this.showPicker(res, params);

    const user = this.users.find((candidate) => candidate.key === params.get('user'));
    if (!user) return fail('access_denied', 'no demo user was chosen');
    const code = randomBytes(32).toString('base64url');
    this.codes.set(code, {
      user,
      clientId,
      redirectUri,
      codeChallenge,
      nonce: params.get('nonce') ?? undefined,
      scopes: (params.get('scope') ?? '').split(' ').filter(Boolean),
      expiresAt: Date.now() + CODE_LIFETIME_MS,
    });
    return redirect(res, redirectUri, responseMode, { code, state });
  }

  /** The authorization_code grant: one use, same client and redirect URI, verifier matching the challenge. */
  redeem(form: URLSearchParams): { status: number; body: Record<string, unknown> } {
    const code = form.get('code') ?? '';
    const pending = this.codes.get(code);
    this.codes.delete(code);
    const invalidGrant = (description: string) => ({ status: 400, body: { error: 'invalid_grant', error_description: description } });
    if (!pending || pending.expiresAt < Date.now()) return invalidGrant('the code is unknown, used or expired');
    if (form.get('client_id') !== pending.clientId) return invalidGrant('the code was issued to another client');
    if (form.get('redirect_uri') !== pending.redirectUri) return invalidGrant('redirect_uri differs from the authorize request');
    const verifier = form.get('code_verifier') ?? '';
    if (createHash('sha256').update(verifier).digest('base64url') !== pending.codeChallenge) {
      return invalidGrant('code_verifier does not match the code_challenge');
    }
    const { user } = pending;
    const wantsApi = pending.scopes.includes(this.apiScope);
    const now = Math.floor(Date.now() / 1000);
    const idToken = this.issuer.signClaims({
      aud: pending.clientId,
      iss: this.issuer.v2Issuer,
      iat: now,
      nbf: now,
      exp: now + TOKEN_LIFETIME_S,
      tid: this.issuer.tenantId,
      oid: user.oid,
      sub: user.oid,
      name: user.name,
      preferred_username: user.upn,
      ver: '2.0',
      ...(pending.nonce ? { nonce: pending.nonce } : {}),
    });
    const body: Record<string, unknown> = {
      token_type: 'Bearer',
      expires_in: TOKEN_LIFETIME_S,
      ext_expires_in: TOKEN_LIFETIME_S,
      id_token: idToken,
      scope: pending.scopes.join(' '),
    };
    if (wantsApi) {
      body.access_token = this.issuer.issueUserToken({
        oid: user.oid,
        upn: user.upn,
        name: user.name,
        groups: user.groups,
        ...(user.roles ? { roles: user.roles } : {}),
        scp: API_SCOPE_NAME,
        clientAppId: pending.clientId,
        expiresIn: TOKEN_LIFETIME_S,
      });
    }
    return { status: 200, body };
  }

  /** Ends the (stateless) session and returns to the SPA, if the address is one of its redirect URIs' origins. */
  logout(res: ServerResponse, url: URL): void {
    const target = url.searchParams.get('post_logout_redirect_uri');
    const allowed = target && this.spas.some((spa) => spa.redirectUris.some((uri) => new URL(uri).origin === new URL(target).origin));
    if (allowed) {
      res.writeHead(302, { location: target });
      res.end();
      return;
    }
    page(res, 200, 'Signed out', '<p>You are signed out. You can close this window.</p>');
  }

  private showPicker(res: ServerResponse, params: URLSearchParams): void {
    const hidden = [...params.entries()]
      .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
      .join('');
    const choices = this.users
      .map(
        (user) =>
          `<li><button type="submit" name="user" value="${escapeHtml(user.key)}"><strong>${escapeHtml(user.name)}</strong>` +
          `<span>${escapeHtml(user.upn)} — ${escapeHtml(user.description)}</span></button></li>`,
      )
      .join('');
    page(
      res,
      200,
      'Sign in to dbdist (local)',
      `<p>This is the sandbox's stand-in for Entra ID: choose who you are. Nothing here exists in Azure.</p>
       <form method="post" action="${escapeHtml(this.authorizePath)}">${hidden}<ul>${choices}</ul></form>`,
    );
  }
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** The form body of a token request (`application/x-www-form-urlencoded`). */
export { readForm as readTokenRequest };

function redirect(
  res: ServerResponse,
  redirectUri: string,
  mode: 'query' | 'fragment',
  values: Record<string, string | undefined>,
): void {
  const encoded = new URLSearchParams(Object.entries(values).filter((entry): entry is [string, string] => entry[1] !== undefined)).toString();
  const target = new URL(redirectUri);
  if (mode === 'query') target.search = encoded;
  else target.hash = encoded;
  res.writeHead(302, { location: target.toString(), 'cache-control': 'no-store' });
  res.end();
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function page(res: ServerResponse, status: number, title: string, body: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // No form-action: the picker's POST ends in a redirect to the SPA's origin, which form-action would block.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
  });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}
ul{list-style:none;padding:0}li{margin:.5rem 0}
button{display:block;width:100%;text-align:left;padding:.75rem 1rem;border:1px solid #5c5c5c;border-radius:6px;background:#f4f6fb;font:inherit;cursor:pointer}
button:hover,button:focus-visible{background:#dde6f7;outline:3px solid #0b57d0;outline-offset:2px}
button span{display:block;color:#3d3d3d;font-size:.9rem}
</style></head><body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`);
}
