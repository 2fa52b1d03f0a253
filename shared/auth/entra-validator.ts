/**
 * Validates Entra ID access tokens (RS256, keys from the tenant's JWKS) and turns them into a Principal.
 *
 * Checks, in order: Bearer header, well-formed JWT, `alg` exactly RS256, token version (`ver`), signing key by
 * `kid`, signature and lifetime (with clock tolerance), issuer for that version, audience, tenant (`tid`), then
 * the groups overage marker. Rejections name a short reason for the caller and keep the library's own message
 * only as the error's `cause` (for logs), so nothing about keys or expected values leaks into a response.
 */
import type { KeyObject } from 'node:crypto';
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import jwt from 'jsonwebtoken';
import type { ControlPlaneSettings } from '../config.js';
import { AppError } from '../errors.js';
import type { Principal } from './principal.js';
import { type RbacPolicy, rbacPolicyFromSettings, resolveRoles } from './rbac.js';
import { SigningKeyStore, UnknownSigningKeyError } from './signing-keys.js';
import type { TokenValidator } from './tokens.js';

export interface EntraTokenValidatorOptions {
  /** The only tenant whose tokens are accepted (`tid` and the issuer must name it). */
  tenantId: string;
  /** Accepted `aud` values: the API's client id (v2 tokens) and/or application id URI (v1 tokens). */
  audiences: readonly string[];
  /** e.g. https://login.microsoftonline.com; v2 issuer = `{authorityHost}/{tenantId}/v2.0`. */
  authorityHost: string;
  /** Accept v1.0 tokens, whose issuer is `{v1IssuerHost}/{tenantId}/`. */
  acceptV1: boolean;
  /** e.g. https://sts.windows.net */
  v1IssuerHost: string;
  /** Group → role mapping used to fill `Principal.roles`. */
  rbacPolicy: RbacPolicy;
  /** Defaults to `{authorityHost}/{tenantId}/discovery/v2.0/keys` (the same keys sign v1 and v2 tokens). */
  jwksUri?: string;
  /** Allowed clock difference for `exp`/`nbf`; default 60 s. */
  clockToleranceSeconds?: number;
  /** How long the fetched key set is used before it is fetched again; default 1 hour. */
  jwksCacheMaxAgeMs?: number;
  /** Upper bound on JWKS fetches (an unknown `kid` causes one; concurrent ones share it); default 10 per minute. */
  jwksRequestsPerMinute?: number;
  /** Timeout of one JWKS request; default 10 s. */
  jwksTimeoutMs?: number;
  /** Agent for the JWKS request, e.g. one with a custom CA (`new https.Agent({ ca })`). */
  requestAgent?: HttpAgent | HttpsAgent;
}

/** Why a token was refused; sent to the caller in the problem's `reason`. */
export type TokenRejectionReason =
  | 'missing_token'
  | 'not_bearer'
  | 'malformed'
  | 'unsupported_algorithm'
  | 'unsupported_version'
  | 'unknown_key'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'wrong_tenant';

const rejectionMessages: Record<TokenRejectionReason, string> = {
  missing_token: 'No bearer token: send "Authorization: Bearer <access token>".',
  not_bearer: 'The Authorization header must use the Bearer scheme.',
  malformed: 'The bearer token is not a well-formed access token.',
  unsupported_algorithm: 'The token is not signed with RS256.',
  unsupported_version: 'This token version is not accepted; request a v2.0 access token for this API.',
  unknown_key: 'The token is signed with an unknown key.',
  bad_signature: 'The token signature is invalid.',
  expired: 'The token has expired.',
  not_yet_valid: 'The token is not valid yet.',
  wrong_issuer: 'The token was issued by an issuer this API does not accept.',
  wrong_audience: 'The token was issued for another audience.',
  wrong_tenant: 'The token was issued for another tenant.',
};

function rejected(reason: TokenRejectionReason, cause?: unknown): AppError {
  return new AppError('unauthenticated', rejectionMessages[reason], { details: { reason }, cause });
}

const DEFAULTS = {
  clockToleranceSeconds: 60,
  jwksCacheMaxAgeMs: 60 * 60 * 1000,
  jwksRequestsPerMinute: 10,
  jwksTimeoutMs: 10_000,
};

const withoutTrailingSlash = (url: string): string => url.replace(/\/+$/, '');

/** Claims this validator reads; everything else in the token is ignored. */
interface EntraClaims {
  ver?: unknown;
  iss?: unknown;
  aud?: unknown;
  tid?: unknown;
  exp?: unknown;
  oid?: unknown;
  idtyp?: unknown;
  scp?: unknown;
  preferred_username?: unknown;
  upn?: unknown;
  unique_name?: unknown;
  name?: unknown;
  azp?: unknown;
  appid?: unknown;
  roles?: unknown;
  groups?: unknown;
  hasgroups?: unknown;
  _claim_names?: unknown;
}

export class EntraTokenValidator implements TokenValidator {
  private readonly tenantId: string;
  private readonly audiences: ReadonlySet<string>;
  private readonly issuerByVersion: ReadonlyMap<string, string>;
  private readonly clockToleranceSeconds: number;
  private readonly rbacPolicy: RbacPolicy;
  private readonly keys: SigningKeyStore;

  constructor(options: EntraTokenValidatorOptions) {
    if (options.audiences.length === 0) throw new Error('EntraTokenValidator needs at least one audience');
    // Entra writes tenant ids in lower case in `tid` and `iss`; settings may not.
    this.tenantId = options.tenantId.toLowerCase();
    this.audiences = new Set(options.audiences);
    const authorityHost = withoutTrailingSlash(options.authorityHost);
    const issuers = new Map([['2.0', `${authorityHost}/${this.tenantId}/v2.0`]]);
    if (options.acceptV1) issuers.set('1.0', `${withoutTrailingSlash(options.v1IssuerHost)}/${this.tenantId}/`);
    this.issuerByVersion = issuers;
    this.clockToleranceSeconds = options.clockToleranceSeconds ?? DEFAULTS.clockToleranceSeconds;
    this.rbacPolicy = options.rbacPolicy;
    this.keys = new SigningKeyStore({
      jwksUri: options.jwksUri ?? `${authorityHost}/${this.tenantId}/discovery/v2.0/keys`,
      maxAgeMs: options.jwksCacheMaxAgeMs ?? DEFAULTS.jwksCacheMaxAgeMs,
      requestsPerMinute: options.jwksRequestsPerMinute ?? DEFAULTS.jwksRequestsPerMinute,
      timeoutMs: options.jwksTimeoutMs ?? DEFAULTS.jwksTimeoutMs,
      ...(options.requestAgent ? { requestAgent: options.requestAgent } : {}),
    });
  }

  async authenticate(authorizationHeader: string | null | undefined): Promise<Principal> {
    const token = bearerToken(authorizationHeader);

    const decoded = decodeUnverified(token);
    if (!decoded || typeof decoded.payload !== 'object' || decoded.payload === null) throw rejected('malformed');
    const { header } = decoded;
    const unverified = decoded.payload as EntraClaims;
    // Decided before any key is fetched: `none`, HS256 (the public key used as an HMAC secret) and every other
    // algorithm are refused outright, and jsonwebtoken is told the same below.
    if (header.alg !== 'RS256') throw rejected('unsupported_algorithm');
    if (typeof header.kid !== 'string' || header.kid === '') throw rejected('malformed');
    // jsonwebtoken checks `exp` only when present; an access token without one would never expire.
    if (typeof unverified.exp !== 'number') throw rejected('malformed');
    const expectedIssuer = typeof unverified.ver === 'string' ? this.issuerByVersion.get(unverified.ver) : undefined;
    if (!expectedIssuer) throw rejected('unsupported_version');

    const publicKey = await this.signingKey(header.kid);
    let claims: EntraClaims;
    try {
      claims = jwt.verify(token, publicKey, {
        algorithms: ['RS256'],
        clockTolerance: this.clockToleranceSeconds,
      }) as EntraClaims;
    } catch (error) {
      throw rejected(verifyFailureReason(error), error);
    }

    if (claims.iss !== expectedIssuer) throw rejected('wrong_issuer');
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.some((aud) => typeof aud === 'string' && this.audiences.has(aud))) throw rejected('wrong_audience');
    if (typeof claims.tid !== 'string' || claims.tid.toLowerCase() !== this.tenantId) throw rejected('wrong_tenant');
    if (typeof claims.oid !== 'string' || claims.oid === '') throw rejected('malformed');

    // Only now, with the token proven genuine, may its contents decide a 403.
    if (hasGroupsOverage(claims)) {
      throw new AppError(
        'groups_overage',
        'Your account is in too many groups for them to be listed in the token, so your dbdist roles cannot be ' +
          'decided. Ask an administrator to assign you a dbdist app role (Admin, Auditor or Requester), or to ' +
          'configure the app registration to emit only the groups assigned to the application.',
      );
    }
    return principalFrom(claims, this.rbacPolicy);
  }

  private async signingKey(kid: string): Promise<KeyObject> {
    try {
      return await this.keys.publicKey(kid);
    } catch (error) {
      if (error instanceof UnknownSigningKeyError) throw rejected('unknown_key', error);
      throw new AppError('dependency_unavailable', 'The identity provider signing keys could not be fetched.', {
        cause: error,
      });
    }
  }
}

/** Extracts the token from `Bearer <token>` (scheme case-insensitive, as RFC 6750 allows). */
function bearerToken(authorizationHeader: string | null | undefined): string {
  const parts = authorizationHeader?.trim().split(/\s+/) ?? [];
  const [scheme, token, ...rest] = parts;
  if (!scheme) throw rejected('missing_token');
  if (scheme.toLowerCase() !== 'bearer') throw rejected('not_bearer');
  if (!token) throw rejected('missing_token');
  if (rest.length > 0) throw rejected('malformed');
  return token;
}

function decodeUnverified(token: string): jwt.Jwt | null {
  try {
    return jwt.decode(token, { complete: true });
  } catch {
    return null; // garbage that jws could not even split is just as malformed as garbage it returns null for
  }
}

function verifyFailureReason(error: unknown): TokenRejectionReason {
  if (error instanceof jwt.TokenExpiredError) return 'expired';
  if (error instanceof jwt.NotBeforeError) return 'not_yet_valid';
  if (error instanceof jwt.JsonWebTokenError && error.message === 'invalid signature') return 'bad_signature';
  return 'malformed';
}

/**
 * Entra replaces the `groups` claim by a pointer to Graph (`_claim_names.groups`, or `hasgroups` in implicit
 * flows) when a user is in too many groups. Treating that as "no groups" would silently drop roles.
 */
function hasGroupsOverage(claims: EntraClaims): boolean {
  const claimNames = claims._claim_names;
  const pointsToGraph = typeof claimNames === 'object' && claimNames !== null && 'groups' in claimNames;
  return pointsToGraph || claims.hasgroups === true || claims.hasgroups === 'true';
}

const optionalString = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined;

const stringList = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];

function principalFrom(claims: EntraClaims, rbacPolicy: RbacPolicy): Principal {
  const upn =
    optionalString(claims.preferred_username) ?? optionalString(claims.upn) ?? optionalString(claims.unique_name);
  // `idtyp` is an optional claim; without it an app-only token is one with no delegated scopes and no user name.
  const isApplication =
    claims.idtyp === 'app' || (claims.idtyp === undefined && optionalString(claims.scp) === undefined && !upn);
  const groups = stringList(claims.groups);
  const clientId = optionalString(claims.azp) ?? optionalString(claims.appid);
  const displayName = optionalString(claims.name);
  return {
    oid: claims.oid as string,
    tenantId: (claims.tid as string).toLowerCase(),
    ...(upn && !isApplication ? { upn } : {}),
    ...(displayName ? { displayName } : {}),
    isApplication,
    ...(clientId ? { clientId } : {}),
    roles: resolveRoles({ roles: stringList(claims.roles), groups, isApplication }, rbacPolicy),
    groups,
  };
}

/** Production options, from the control plane's settings. */
export function tokenValidatorOptionsFromSettings(settings: ControlPlaneSettings): EntraTokenValidatorOptions {
  return {
    tenantId: settings.ENTRA_TENANT_ID,
    audiences: settings.ENTRA_AUDIENCES,
    authorityHost: settings.ENTRA_AUTHORITY_HOST,
    acceptV1: settings.ENTRA_ACCEPT_V1_TOKENS,
    v1IssuerHost: settings.ENTRA_V1_ISSUER_HOST,
    rbacPolicy: rbacPolicyFromSettings(settings),
  };
}
