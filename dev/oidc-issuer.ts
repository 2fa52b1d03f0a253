/**
 * A local stand-in for Entra ID's token side: an HTTP(S) server on 127.0.0.1 that publishes an OpenID
 * configuration and a real JWKS, and mints real RS256 access tokens shaped like Entra's (v1 and v2, user and
 * app-only), plus forged ones for attack tests.
 *
 * Its base URL plays both Entra hosts: v2 issuer `{baseUrl}/{tenant}/v2.0`, v1 issuer `{baseUrl}/{tenant}/`,
 * keys at `{baseUrl}/{tenant}/discovery/v2.0/keys`, so the production validator runs unchanged against it
 * (`validatorFor(issuer)`).
 *
 * It also answers the client-credentials grant at `{baseUrl}/{tenant}/oauth2/v2.0/token`, as Entra does for a
 * daemon such as the runner: with a client secret, or with a certificate assertion (RFC 7523 `client_assertion`,
 * signed RS256 or PS256 with the `x5t` / `x5t#S256` thumbprint header MSAL sends). Register the application
 * first (`registerClient`); the token carries its app id, its service principal object id and its app roles,
 * so the real runner CLI with real MSAL gets tokens the production validator accepts.
 */
import { constants as cryptoConstants, createHmac, generateKeyPair, type KeyObject, randomUUID, sign as signBytes, timingSafeEqual, verify as verifyBytes, X509Certificate } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import type { RbacPolicy } from '../shared/auth/rbac.js';
import { EntraTokenValidator, type EntraTokenValidatorOptions } from '../shared/auth/entra-validator.js';
import { InteractiveSignIn, readTokenRequest } from './oidc-sign-in.js';

/** Group object ids the default test policy maps to roles; put them in `groups` to grant the role. */
export const testGroupIds = {
  admin: '0a11a0a0-0000-4000-8000-00000000ad01',
  auditor: '0a11a0a0-0000-4000-8000-00000000a0d1',
  approver: '0a11a0a0-0000-4000-8000-00000000a991',
  requester: '0a11a0a0-0000-4000-8000-0000000e0e51',
} as const;

export const testRbacPolicy: RbacPolicy = {
  adminGroupIds: [testGroupIds.admin],
  auditorGroupIds: [testGroupIds.auditor],
  approverGroupIds: [testGroupIds.approver],
  requesterGroupIds: [testGroupIds.requester],
};

export type TokenVersion = '1.0' | '2.0';

/** Options every minted token understands. Times are seconds relative to now. */
export interface TokenOptions {
  version?: TokenVersion;
  /** Default: the API client id for v2, its application id URI for v1 (as Entra does). */
  audience?: string;
  /** Default: the issuer matching `version`. */
  issuer?: string;
  /** The `tid` claim; default: the issuer's tenant. */
  tenantId?: string;
  /** Lifetime from now; negative for an already expired token. Default 3600. */
  expiresIn?: number;
  /** `nbf` relative to now; default -60 (a minute ago, as Entra back-dates it). */
  notBefore?: number;
  /** Signing key; default the current key. A kid the issuer does not hold cannot be used here (see forge). */
  kid?: string;
  /** Extra or overriding claims; a claim set to `undefined` is removed. */
  claims?: Record<string, unknown>;
}

export interface UserTokenOptions extends TokenOptions {
  oid?: string;
  upn?: string;
  name?: string;
  groups?: string[];
  roles?: string[];
  scp?: string;
  /** Client app the user signed in to; default a fixed test client id. */
  clientAppId?: string;
  /** Replace `groups` by Entra's overage marker: `_claim_names` (Graph pointer) or `hasgroups`. */
  groupsOverage?: 'claim_names' | 'hasgroups';
}

export interface AppTokenOptions extends TokenOptions {
  appId?: string;
  /** Object id of the service principal; default a fresh GUID. */
  oid?: string;
  roles?: string[];
  /** Add the optional `idtyp: app` claim (off by default so the validator's fallback rule is exercised). */
  idtyp?: boolean;
}

export interface OidcIssuerOptions {
  tenantId?: string;
  /** Serve HTTPS with this certificate (e.g. `ensureLoopbackCert()` from ./tls.js); default plain HTTP. */
  tls?: { cert: string; key: string };
}

/** An application registration for the client-credentials grant: a secret and/or a certificate (PEM). */
export interface ClientRegistration {
  clientId?: string;
  /** Object id of its service principal (the `oid` of its tokens); default a fresh GUID. */
  servicePrincipalId?: string;
  clientSecret?: string;
  /** The public certificate (PEM); assertions must be signed by its key and name its thumbprint. */
  certificatePem?: string;
  /** App roles granted on the API (e.g. `Runner`). */
  roles?: string[];
}

export interface RegisteredClient {
  clientId: string;
  servicePrincipalId: string;
}

interface ClientRecord extends RegisteredClient {
  clientSecret?: string;
  certificate?: { publicKey: KeyObject; x5t: string; x5tS256: string };
  roles: string[];
}

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
}

const generateRsaKeyPair = promisify(generateKeyPair);

async function newSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateRsaKeyPair('rsa', { modulusLength: 2048 });
  return {
    kid: `test-${randomUUID()}`,
    privateKey,
    publicKey,
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

const base64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** `header.payload` part of a compact JWS. */
function signingInput(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
}

function decodePayload(token: string): Record<string, unknown> {
  const part = token.split('.')[1];
  if (part === undefined) throw new Error('not a compact JWT');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Drops claims explicitly set to undefined, so options can remove a default claim. */
function withoutUndefined(claims: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(claims).filter(([, value]) => value !== undefined));
}

export class OidcIssuer {
  readonly tenantId: string;
  /** The API's application (client) id: the `aud` of v2 tokens. */
  readonly apiClientId = randomUUID();
  /** The API's application id URI: the `aud` of v1 tokens. */
  readonly apiAppIdUri: string;
  /** Client app that users sign in to (`azp`/`appid` of user tokens). */
  readonly clientAppId = randomUUID();
  /** Published keys; the last one signs new tokens. */
  private keys: SigningKey[];
  /** Keys taken out of the JWKS, kept so tests can still mint tokens a validator must now refuse. */
  private retired: SigningKey[] = [];
  private jwksRequests = 0;
  private jwksAvailable = true;
  private readonly clients = new Map<string, ClientRecord>();
  private tokenRequests = 0;
  /** Authorization code + PKCE for browser apps, with a page to pick a demo user (dev/oidc-sign-in.ts). */
  readonly signIn: InteractiveSignIn = new InteractiveSignIn(this);

  private constructor(
    private readonly server: Server,
    readonly baseUrl: string,
    tenantId: string,
    firstKey: SigningKey,
  ) {
    this.tenantId = tenantId;
    this.apiAppIdUri = `api://${this.apiClientId}`;
    this.keys = [firstKey];
  }

  static async start(options: OidcIssuerOptions = {}): Promise<OidcIssuer> {
    const tenantId = options.tenantId ?? randomUUID();
    const firstKey = await newSigningKey();
    let issuer: OidcIssuer | undefined;
    const handler = (req: IncomingMessage, res: ServerResponse) => issuer!.handle(req, res);
    const server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createHttpServer(handler);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    issuer = new OidcIssuer(server, `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`, tenantId, firstKey);
    return issuer;
  }

  get v2Issuer(): string {
    return `${this.baseUrl}/${this.tenantId}/v2.0`;
  }

  get v1Issuer(): string {
    return `${this.baseUrl}/${this.tenantId}/`;
  }

  get jwksUri(): string {
    return `${this.baseUrl}/${this.tenantId}/discovery/v2.0/keys`;
  }

  /** How many times the JWKS was fetched since start (or the last `resetJwksRequestCount`). */
  get jwksRequestCount(): number {
    return this.jwksRequests;
  }

  resetJwksRequestCount(): void {
    this.jwksRequests = 0;
  }

  /** Make the JWKS endpoint answer 503 (an identity provider outage), or serve again. */
  setJwksAvailable(available: boolean): void {
    this.jwksAvailable = available;
  }

  get tokenEndpoint(): string {
    return `${this.baseUrl}/${this.tenantId}/oauth2/v2.0/token`;
  }

  /** Token requests answered with a token since start. */
  get tokensIssued(): number {
    return this.tokenRequests;
  }

  /** Registers an application for the client-credentials grant. */
  registerClient(registration: ClientRegistration): RegisteredClient {
    if (!registration.clientSecret && !registration.certificatePem) throw new Error('a client needs a secret or a certificate');
    const clientId = registration.clientId ?? randomUUID();
    const record: ClientRecord = {
      clientId,
      servicePrincipalId: registration.servicePrincipalId ?? randomUUID(),
      roles: registration.roles ?? [],
      ...(registration.clientSecret ? { clientSecret: registration.clientSecret } : {}),
    };
    if (registration.certificatePem) {
      const certificate = new X509Certificate(registration.certificatePem);
      record.certificate = {
        publicKey: certificate.publicKey,
        x5t: Buffer.from(certificate.fingerprint.replace(/:/g, ''), 'hex').toString('base64url'),
        x5tS256: Buffer.from(certificate.fingerprint256.replace(/:/g, ''), 'hex').toString('base64url'),
      };
    }
    this.clients.set(clientId, record);
    return { clientId, servicePrincipalId: record.servicePrincipalId };
  }

  /** Kid of the key new tokens are signed with. */
  get currentKid(): string {
    return this.keys.at(-1)!.kid;
  }

  /** Kids currently published in the JWKS. */
  get publishedKids(): string[] {
    return this.keys.map((key) => key.kid);
  }

  /** Publishes a new key and signs new tokens with it; the old keys stay published until retired. */
  async rotateKey(): Promise<string> {
    const key = await newSigningKey();
    this.keys.push(key);
    return key.kid;
  }

  /** Removes a key from the JWKS (tokens signed with it can still be minted for tests). */
  retireKey(kid: string): void {
    if (this.keys.length === 1 && this.keys[0]!.kid === kid) throw new Error('cannot retire the last key');
    this.retired.push(...this.keys.filter((key) => key.kid === kid));
    this.keys = this.keys.filter((key) => key.kid !== kid);
  }


  issueUserToken(options: UserTokenOptions = {}): string {
    const version = options.version ?? '2.0';
    const upn = options.upn ?? 'requester@contoso.example';
    const userClaims =
      version === '2.0'
        ? { preferred_username: upn, azp: options.clientAppId ?? this.clientAppId, azpacr: '0' }
        : { upn, unique_name: upn, appid: options.clientAppId ?? this.clientAppId, appidacr: '0' };
    const groupClaims = options.groupsOverage
      ? this.overageClaims(options.groupsOverage, version)
      : options.groups
        ? { groups: options.groups }
        : {};
    return this.mint(
      {
        ...userClaims,
        oid: options.oid ?? randomUUID(),
        sub: randomUUID(),
        name: options.name ?? 'Test User',
        scp: options.scp ?? 'Jobs.ReadWrite',
        ...groupClaims,
        ...(options.roles ? { roles: options.roles } : {}),
      },
      options,
    );
  }

  issueAppToken(options: AppTokenOptions = {}): string {
    const version = options.version ?? '2.0';
    const appId = options.appId ?? randomUUID();
    const clientClaims = version === '2.0' ? { azp: appId, azpacr: '2' } : { appid: appId, appidacr: '2' };
    return this.mint(
      {
        ...clientClaims,
        oid: options.oid ?? randomUUID(),
        sub: randomUUID(),
        ...(options.idtyp ? { idtyp: 'app' } : {}),
        ...(options.roles ? { roles: options.roles } : {}),
      },
      options,
    );
  }

  /** Signs arbitrary claims with the current key (ID tokens of the interactive sign-in). */
  signClaims(claims: Record<string, unknown>): string {
    return this.signWith(this.keys.at(-1)!, claims);
  }

  /** Attack helpers: each returns a token a correct validator must refuse. */
  readonly forge = {
    /** Unsigned token (`alg: none`, empty signature). */
    algNone: (payload: Record<string, unknown> = this.validPayload()): string =>
      `${signingInput({ alg: 'none', typ: 'JWT' }, payload)}.`,
    /** HS256 token whose HMAC secret is the issuer's public key PEM (the classic key-confusion attack). */
    hs256WithPublicKey: (payload: Record<string, unknown> = this.validPayload()): string => {
      const key = this.keys.at(-1)!;
      const input = signingInput({ alg: 'HS256', typ: 'JWT', kid: key.kid }, payload);
      return `${input}.${createHmac('sha256', key.publicPem).update(input).digest('base64url')}`;
    },
    /** Correctly signed, but with a key the JWKS has never published. */
    unknownKid: async (payload: Record<string, unknown> = this.validPayload()): Promise<string> => {
      const stranger = await newSigningKey();
      return this.signWith(stranger, payload);
    },
    /** A valid token whose payload is changed after signing (signature kept). */
    tamper: (token: string, changes: Record<string, unknown>): string => {
      const [header, , signature] = token.split('.');
      const payload = withoutUndefined({ ...decodePayload(token), ...changes });
      return `${header}.${base64url(JSON.stringify(payload))}.${signature}`;
    },
    /** Signed RS256 by the issuer's current key, with header fields replaced as given (e.g. `alg: 'RS512'`, a made-up `kid`). */
    withHeader: (header: Record<string, unknown>, payload: Record<string, unknown> = this.validPayload()): string => {
      const key = this.keys.at(-1)!;
      const input = signingInput({ typ: 'JWT', alg: 'RS256', kid: key.kid, ...header }, payload);
      return `${input}.${signBytes('sha256', Buffer.from(input), key.privateKey).toString('base64url')}`;
    },
  };

  /** Payload of an ordinary v2 user token, for the forge helpers. */
  validPayload(options: UserTokenOptions = {}): Record<string, unknown> {
    return decodePayload(this.issueUserToken(options));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private overageClaims(kind: 'claim_names' | 'hasgroups', version: TokenVersion): Record<string, unknown> {
    if (kind === 'hasgroups') return { hasgroups: true };
    const graph = version === '2.0' ? 'https://graph.microsoft.com/v1.0' : 'https://graph.windows.net';
    return {
      _claim_names: { groups: 'src1' },
      _claim_sources: { src1: { endpoint: `${graph}/${this.tenantId}/users/{oid}/getMemberObjects` } },
    };
  }

  private mint(specific: Record<string, unknown>, options: TokenOptions): string {
    const version = options.version ?? '2.0';
    const now = nowSeconds();
    const payload = withoutUndefined({
      aud: options.audience ?? (version === '2.0' ? this.apiClientId : this.apiAppIdUri),
      iss: options.issuer ?? (version === '2.0' ? this.v2Issuer : this.v1Issuer),
      iat: now,
      nbf: now + (options.notBefore ?? -60),
      exp: now + (options.expiresIn ?? 3600),
      tid: options.tenantId ?? this.tenantId,
      uti: randomUUID(),
      ver: version,
      ...specific,
      ...options.claims,
    });
    const kid = options.kid ?? this.currentKid;
    const key = [...this.keys, ...this.retired].find((candidate) => candidate.kid === kid);
    if (!key) throw new Error(`the issuer holds no key ${kid}; use forge.unknownKid for a stranger's key`);
    return this.signWith(key, payload);
  }

  private signWith(key: SigningKey, payload: Record<string, unknown>): string {
    const input = signingInput({ typ: 'JWT', alg: 'RS256', kid: key.kid, x5t: key.kid }, payload);
    return `${input}.${signBytes('sha256', Buffer.from(input), key.privateKey).toString('base64url')}`;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const path = url.pathname;
    if (path === `/${this.tenantId}/oauth2/v2.0/token`) {
      this.token(req, res).catch(() => this.send(res, 400, { error: 'invalid_request' }));
      return;
    }
    if (path === this.signIn.authorizePath) {
      this.signIn.authorize(req, res, url).catch(() => this.send(res, 400, { error: 'invalid_request' }));
      return;
    }
    if (path === this.signIn.logoutPath) return this.signIn.logout(res, url);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, this.signIn.corsHeaders(req)).end();
      return;
    }
    if (req.method !== 'GET') return this.send(res, 405, { error: 'method_not_allowed' });
    if (path === `/${this.tenantId}/discovery/v2.0/keys`) {
      this.jwksRequests += 1;
      if (!this.jwksAvailable) return this.send(res, 503, { error: 'temporarily_unavailable' });
      return this.send(res, 200, { keys: this.keys.map((key) => this.publicJwk(key)) });
    }
    if (path === `/${this.tenantId}/v2.0/.well-known/openid-configuration`) {
      return this.send(res, 200, {
        issuer: this.v2Issuer,
        jwks_uri: this.jwksUri,
        authorization_endpoint: `${this.baseUrl}${this.signIn.authorizePath}`,
        token_endpoint: `${this.baseUrl}/${this.tenantId}/oauth2/v2.0/token`,
        end_session_endpoint: `${this.baseUrl}${this.signIn.logoutPath}`,
        code_challenge_methods_supported: ['S256'],
        grant_types_supported: ['authorization_code'],
        response_modes_supported: ['query', 'fragment'],
        scopes_supported: ['openid', 'profile', 'offline_access', this.signIn.apiScope],
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        subject_types_supported: ['pairwise'],
        id_token_signing_alg_values_supported: ['RS256'],
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        tenant_region_scope: 'EU',
      }, this.signIn.corsHeaders(req));
    }
    return this.send(res, 404, { error: 'not_found' });
  }

  /** The client-credentials grant (a daemon such as the runner), answered with Entra's error shapes. */
  private clientCredentials(form: URLSearchParams): { status: number; body: Record<string, unknown> } {
    const refuse = (status: number, error: string, description: string) => ({
      status,
      body: { error, error_description: description, error_codes: [status === 401 ? 7000215 : 900144] },
    });
    const scope = form.get('scope') ?? '';
    const audience = this.audienceForScope(scope);
    if (!audience) return refuse(400, 'invalid_scope', `scope ${scope} is not {resource}/.default for the API`);
    const client = this.clients.get(form.get('client_id') ?? '');
    if (!client) return refuse(400, 'unauthorized_client', `application ${form.get('client_id')} is not registered in tenant ${this.tenantId}`);
    const secret = form.get('client_secret');
    const assertion = form.get('client_assertion');
    let problem: string | undefined;
    if (secret !== null) problem = this.checkSecret(client, secret);
    else if (assertion !== null && form.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
      problem = this.checkAssertion(client, assertion);
    } else problem = 'the request carries neither client_secret nor a jwt-bearer client_assertion';
    if (problem) return refuse(401, 'invalid_client', problem);
    this.tokenRequests += 1;
    const expiresIn = 3600;
    const accessToken = this.issueAppToken({ appId: client.clientId, oid: client.servicePrincipalId, roles: client.roles, audience, expiresIn });
    return { status: 200, body: { token_type: 'Bearer', expires_in: expiresIn, ext_expires_in: expiresIn, access_token: accessToken } };
  }

  /** `{api app id uri or client id}/.default` → the v2 audience (the API's client id), as Entra answers it. */
  private audienceForScope(scope: string): string | undefined {
    const resource = scope.split(' ').find((s) => s.endsWith('/.default'))?.slice(0, -'/.default'.length);
    return resource === this.apiAppIdUri || resource === this.apiClientId ? this.apiClientId : undefined;
  }

  private checkSecret(client: ClientRecord, secret: string): string | undefined {
    const expected = Buffer.from(client.clientSecret ?? '');
    const given = Buffer.from(secret);
    return client.clientSecret && expected.length === given.length && timingSafeEqual(expected, given) ? undefined : 'invalid client secret';
  }

  /** RFC 7523: signed by the registered certificate's key, naming its thumbprint, for this token endpoint. */
  private checkAssertion(client: ClientRecord, assertion: string): string | undefined {
    const certificate = client.certificate;
    if (!certificate) return 'the application has no certificate credential';
    const [headerPart, payloadPart, signaturePart] = assertion.split('.');
    if (!headerPart || !payloadPart || signaturePart === undefined) return 'client_assertion is not a compact JWS';
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(headerPart, 'base64url').toString('utf8')) as Record<string, unknown>;
      claims = JSON.parse(Buffer.from(payloadPart, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return 'client_assertion is not JSON';
    }
    if (header['x5t#S256'] !== certificate.x5tS256 && header.x5t !== certificate.x5t) return 'the assertion names no registered certificate thumbprint';
    const input = Buffer.from(`${headerPart}.${payloadPart}`);
    const signature = Buffer.from(signaturePart, 'base64url');
    const valid =
      header.alg === 'RS256'
        ? verifyBytes('sha256', input, certificate.publicKey, signature)
        : header.alg === 'PS256'
          ? verifyBytes('sha256', input, { key: certificate.publicKey, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature)
          : false;
    if (!valid) return `the assertion signature (${String(header.alg)}) does not verify with the registered certificate`;
    if (claims.iss !== client.clientId || claims.sub !== client.clientId) return 'iss and sub must be the client id';
    if (claims.aud !== this.tokenEndpoint) return `aud must be ${this.tokenEndpoint}`;
    const now = nowSeconds();
    if (typeof claims.exp !== 'number' || claims.exp < now - 60) return 'the assertion has expired';
    if (typeof claims.nbf === 'number' && claims.nbf > now + 60) return 'the assertion is not valid yet';
    return undefined;
  }

  /** The token endpoint: each grant type in its own function. */
  private async token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const cors = this.signIn.corsHeaders(req);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors).end();
      return;
    }
    if (req.method !== 'POST') return this.send(res, 405, { error: 'method_not_allowed' }, cors);
    const form = await readTokenRequest(req);
    if (form.get('grant_type') === 'client_credentials') {
      const { status, body } = this.clientCredentials(form);
      return this.send(res, status, body, cors);
    }
    if (form.get('grant_type') === 'authorization_code') {
      const { status, body } = this.signIn.redeem(form);
      return this.send(res, status, body, cors);
    }
    return this.send(res, 400, { error: 'unsupported_grant_type' }, cors);
  }

  /** Entra's JWKS entries carry no `alg`; consumers assume RS256 for RSA keys. */
  private publicJwk(key: SigningKey): Record<string, unknown> {
    const { n, e } = key.publicKey.export({ format: 'jwk' });
    return { kty: 'RSA', use: 'sig', kid: key.kid, x5t: key.kid, n, e, issuer: this.v2Issuer };
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(JSON.stringify(body));
  }
}

export function startOidcIssuer(options: OidcIssuerOptions = {}): Promise<OidcIssuer> {
  return OidcIssuer.start(options);
}

/**
 * The production validator pointed at the fixture: both audiences (client id and application id URI), the
 * test RBAC policy, v1 off. Override anything, e.g. `validatorFor(issuer, { acceptV1: true })`.
 */
export function validatorFor(
  issuer: OidcIssuer,
  overrides: Partial<EntraTokenValidatorOptions> = {},
): EntraTokenValidator {
  return new EntraTokenValidator({
    tenantId: issuer.tenantId,
    audiences: [issuer.apiClientId, issuer.apiAppIdUri],
    authorityHost: issuer.baseUrl,
    v1IssuerHost: issuer.baseUrl,
    acceptV1: false,
    rbacPolicy: testRbacPolicy,
    ...overrides,
  });
}

/** `Bearer <token>`, for handler tests. */
export const bearer = (token: string): string => `Bearer ${token}`;
