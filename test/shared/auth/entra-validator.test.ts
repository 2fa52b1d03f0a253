import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TokenRejectionReason } from '../../../shared/auth/entra-validator.js';
import type { Principal } from '../../../shared/auth/principal.js';
import { type AppError, type ErrorCode, isAppError } from '../../../shared/errors.js';
import { statusByCode } from '../../../shared/http.js';
import { bearer, type OidcIssuer, startOidcIssuer, testGroupIds, validatorFor } from '../../../dev/oidc-issuer.js';

let issuer: OidcIssuer;

beforeAll(async () => {
  issuer = await startOidcIssuer();
});

afterAll(async () => {
  await issuer?.close();
});

beforeEach(() => {
  issuer.resetJwksRequestCount();
});

async function rejection(promise: Promise<Principal>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    if (isAppError(error)) return error;
    throw error;
  }
  throw new Error('expected the token to be refused, but it was accepted');
}

async function expectRefused(
  promise: Promise<Principal>,
  reason: TokenRejectionReason,
  code: ErrorCode = 'unauthenticated',
): Promise<AppError> {
  const error = await rejection(promise);
  expect({ code: error.code, reason: error.details?.reason }).toEqual({ code, reason });
  return error;
}

describe('EntraTokenValidator: accepted tokens', () => {
  it('maps a v2 user token to a principal with roles from groups and app roles', async () => {
    const validator = validatorFor(issuer);
    const oid = randomUUID();
    const token = issuer.issueUserToken({
      oid,
      upn: 'ada@contoso.example',
      name: 'Ada Lovelace',
      groups: [testGroupIds.requester, randomUUID()],
      roles: ['Auditor', 'NotADbdistRole'],
    });

    const principal = await validator.authenticate(bearer(token));

    expect(principal).toMatchObject({
      oid,
      tenantId: issuer.tenantId,
      upn: 'ada@contoso.example',
      displayName: 'Ada Lovelace',
      isApplication: false,
      clientId: issuer.clientAppId,
    });
    expect([...principal.roles].sort()).toEqual(['Auditor', 'Requester']);
    expect(principal.groups).toContain(testGroupIds.requester);
  });

  it('accepts the scheme name in any case', async () => {
    const principal = await validatorFor(issuer).authenticate(`bearer ${issuer.issueUserToken()}`);
    expect(principal.isApplication).toBe(false);
  });

  it('maps an app-only token with the Runner app role to an application principal holding Runner', async () => {
    const appId = randomUUID();
    const principal = await validatorFor(issuer).authenticate(bearer(issuer.issueAppToken({ appId, roles: ['Runner'] })));
    expect(principal.isApplication).toBe(true);
    expect(principal.clientId).toBe(appId);
    expect(principal.upn).toBeUndefined();
    expect([...principal.roles]).toEqual(['Runner']);
  });

  it('recognises an app-only token by its idtyp claim', async () => {
    const token = issuer.issueAppToken({ roles: ['Runner'], idtyp: true, claims: { scp: 'odd' } });
    const principal = await validatorFor(issuer).authenticate(bearer(token));
    expect(principal.isApplication).toBe(true);
    expect(principal.roles.has('Runner')).toBe(true);
  });

  it('never grants Runner to a user token, whether by app role or by group', async () => {
    const token = issuer.issueUserToken({
      roles: ['Runner'],
      groups: [testGroupIds.admin, testGroupIds.auditor, testGroupIds.requester],
    });
    const principal = await validatorFor(issuer).authenticate(bearer(token));
    expect(principal.roles.has('Runner')).toBe(false);
    expect([...principal.roles].sort()).toEqual(['Admin', 'Auditor', 'Requester']);
  });

  it('does not take Runner from groups for an application either', async () => {
    const token = issuer.issueAppToken({ claims: { groups: [testGroupIds.admin] } });
    const principal = await validatorFor(issuer).authenticate(bearer(token));
    expect([...principal.roles]).toEqual(['Admin']);
  });
});

describe('EntraTokenValidator: token versions and issuers', () => {
  it('refuses a v1 token unless v1 tokens are enabled', async () => {
    const token = issuer.issueUserToken({ version: '1.0' });
    await expectRefused(validatorFor(issuer).authenticate(bearer(token)), 'unsupported_version');
  });

  it('accepts a v1 token when enabled, reading upn and appid', async () => {
    const token = issuer.issueUserToken({ version: '1.0', upn: 'grace@contoso.example', groups: [testGroupIds.admin] });
    const principal = await validatorFor(issuer, { acceptV1: true }).authenticate(bearer(token));
    expect(principal).toMatchObject({ upn: 'grace@contoso.example', clientId: issuer.clientAppId, isApplication: false });
    expect([...principal.roles]).toEqual(['Admin']);
  });

  it('accepts a v1 app-only token when enabled', async () => {
    const appId = randomUUID();
    const token = issuer.issueAppToken({ version: '1.0', appId, roles: ['Runner'] });
    const principal = await validatorFor(issuer, { acceptV1: true }).authenticate(bearer(token));
    expect(principal).toMatchObject({ isApplication: true, clientId: appId });
    expect(principal.roles.has('Runner')).toBe(true);
  });

  it('refuses a v1 token that carries the v2 issuer, and a v2 token that carries the v1 issuer', async () => {
    const validator = validatorFor(issuer, { acceptV1: true });
    const v1WithV2Issuer = issuer.issueUserToken({ version: '1.0', issuer: issuer.v2Issuer });
    const v2WithV1Issuer = issuer.issueUserToken({ version: '2.0', issuer: issuer.v1Issuer });
    await expectRefused(validator.authenticate(bearer(v1WithV2Issuer)), 'wrong_issuer');
    await expectRefused(validator.authenticate(bearer(v2WithV1Issuer)), 'wrong_issuer');
  });

  it('refuses a token without a known version', async () => {
    const validator = validatorFor(issuer, { acceptV1: true });
    await expectRefused(validator.authenticate(bearer(issuer.issueUserToken({ claims: { ver: undefined } }))), 'unsupported_version');
    await expectRefused(validator.authenticate(bearer(issuer.issueUserToken({ claims: { ver: '3.0' } }))), 'unsupported_version');
  });

  it('refuses a foreign issuer, and another tenant in the issuer', async () => {
    const validator = validatorFor(issuer);
    const foreign = issuer.issueUserToken({ issuer: `https://login.example.net/${issuer.tenantId}/v2.0` });
    const otherTenant = issuer.issueUserToken({ issuer: `${issuer.baseUrl}/${randomUUID()}/v2.0` });
    await expectRefused(validator.authenticate(bearer(foreign)), 'wrong_issuer');
    await expectRefused(validator.authenticate(bearer(otherTenant)), 'wrong_issuer');
  });

  it('refuses a token whose tid names another tenant even when the issuer matches', async () => {
    const token = issuer.issueUserToken({ tenantId: randomUUID() });
    await expectRefused(validatorFor(issuer).authenticate(bearer(token)), 'wrong_tenant');
  });

  it('refuses a token issued for another audience, and accepts each configured one', async () => {
    const validator = validatorFor(issuer);
    const error = await expectRefused(
      validator.authenticate(bearer(issuer.issueUserToken({ audience: 'api://someone-else' }))),
      'wrong_audience',
    );
    // The caller learns that the audience is wrong, not which audiences we accept.
    expect(error.message).not.toContain(issuer.apiClientId);
    await expect(validator.authenticate(bearer(issuer.issueUserToken({ audience: issuer.apiAppIdUri })))).resolves.toBeDefined();
    await expect(validator.authenticate(bearer(issuer.issueUserToken({ audience: issuer.apiClientId })))).resolves.toBeDefined();
  });
});

describe('EntraTokenValidator: header and shape', () => {
  const validator = () => validatorFor(issuer);

  it('refuses a missing or empty Authorization header', async () => {
    await expectRefused(validator().authenticate(undefined), 'missing_token');
    await expectRefused(validator().authenticate(null), 'missing_token');
    await expectRefused(validator().authenticate('   '), 'missing_token');
    await expectRefused(validator().authenticate('Bearer'), 'missing_token');
  });

  it('refuses other schemes', async () => {
    await expectRefused(validator().authenticate(`Basic ${Buffer.from('a:b').toString('base64')}`), 'not_bearer');
    await expectRefused(validator().authenticate(issuer.issueUserToken()), 'not_bearer');
  });

  it('refuses tokens that are not JWTs', async () => {
    await expectRefused(validator().authenticate('Bearer not-a-jwt'), 'malformed');
    await expectRefused(validator().authenticate('Bearer aaa.bbb.ccc'), 'malformed');
    await expectRefused(validator().authenticate(`Bearer ${issuer.issueUserToken()} extra`), 'malformed');
  });

  it('refuses a token without exp, kid or oid', async () => {
    await expectRefused(validator().authenticate(bearer(issuer.issueUserToken({ claims: { exp: undefined } }))), 'malformed');
    await expectRefused(validator().authenticate(bearer(issuer.forge.withHeader({ kid: undefined }))), 'malformed');
    await expectRefused(validator().authenticate(bearer(issuer.issueUserToken({ claims: { oid: undefined } }))), 'malformed');
  });
});

describe('EntraTokenValidator: lifetime and clock skew', () => {
  it('refuses an expired token', async () => {
    const token = issuer.issueUserToken({ expiresIn: -3600 });
    await expectRefused(validatorFor(issuer).authenticate(bearer(token)), 'expired');
  });

  it('refuses a token that is not valid yet', async () => {
    const token = issuer.issueUserToken({ notBefore: 3600, expiresIn: 7200 });
    await expectRefused(validatorFor(issuer).authenticate(bearer(token)), 'not_yet_valid');
  });

  it('tolerates up to a minute of clock skew on exp and nbf', async () => {
    const validator = validatorFor(issuer);
    await expect(validator.authenticate(bearer(issuer.issueUserToken({ expiresIn: -30 })))).resolves.toBeDefined();
    await expect(validator.authenticate(bearer(issuer.issueUserToken({ notBefore: 30 })))).resolves.toBeDefined();
  });

  it('refuses skew beyond the tolerance', async () => {
    const validator = validatorFor(issuer);
    await expectRefused(validator.authenticate(bearer(issuer.issueUserToken({ expiresIn: -120 }))), 'expired');
    await expectRefused(validator.authenticate(bearer(issuer.issueUserToken({ notBefore: 120 }))), 'not_yet_valid');
  });

  it('honours a configured tolerance', async () => {
    const strict = validatorFor(issuer, { clockToleranceSeconds: 0 });
    await expectRefused(strict.authenticate(bearer(issuer.issueUserToken({ expiresIn: -30 }))), 'expired');
  });
});

describe('EntraTokenValidator: forged tokens', () => {
  it('refuses alg none without fetching any key', async () => {
    await expectRefused(validatorFor(issuer).authenticate(bearer(issuer.forge.algNone())), 'unsupported_algorithm');
    expect(issuer.jwksRequestCount).toBe(0);
  });

  it('refuses HS256 signed with the public key as the HMAC secret', async () => {
    const validator = validatorFor(issuer);
    // Warm the key cache, so the attack would have the public key at hand if the validator let HS256 through.
    await validator.authenticate(bearer(issuer.issueUserToken()));
    await expectRefused(validator.authenticate(bearer(issuer.forge.hs256WithPublicKey())), 'unsupported_algorithm');
  });

  it('refuses other algorithms, even with a valid RSA signature', async () => {
    await expectRefused(validatorFor(issuer).authenticate(bearer(issuer.forge.withHeader({ alg: 'RS512' }))), 'unsupported_algorithm');
    await expectRefused(validatorFor(issuer).authenticate(bearer(issuer.forge.withHeader({ alg: 'PS256' }))), 'unsupported_algorithm');
  });

  it('refuses a tampered payload', async () => {
    const token = issuer.issueUserToken({ groups: [] });
    const tampered = issuer.forge.tamper(token, { groups: [testGroupIds.admin], roles: ['Admin'] });
    const error = await expectRefused(validatorFor(issuer).authenticate(bearer(tampered)), 'bad_signature');
    expect(error.message).not.toMatch(/kid|key [0-9a-f-]{8}/i);
  });

  it('refuses a token signed by a key the issuer never published', async () => {
    const token = await issuer.forge.unknownKid();
    await expectRefused(validatorFor(issuer).authenticate(bearer(token)), 'unknown_key');
  });

  it('refuses a token signed by another key under a published kid', async () => {
    const stranger = await issuer.forge.unknownKid();
    const [header] = issuer.issueUserToken().split('.');
    const [, payload, signature] = stranger.split('.');
    await expectRefused(validatorFor(issuer).authenticate(bearer(`${header}.${payload}.${signature}`)), 'bad_signature');
  });
});

describe('EntraTokenValidator: groups overage', () => {
  it.each(['claim_names', 'hasgroups'] as const)('answers 403 groups_overage for a %s overage marker', async (kind) => {
    const token = issuer.issueUserToken({ groupsOverage: kind, roles: ['Requester'] });
    const error = await rejection(validatorFor(issuer).authenticate(bearer(token)));
    expect(error.code).toBe('groups_overage');
    expect(statusByCode[error.code]).toBe(403);
    expect(error.message).toMatch(/app role/i);
    expect(error.message).toMatch(/groups assigned to the application/i);
  });

  it('checks the signature before looking at the overage marker', async () => {
    const tampered = issuer.forge.tamper(issuer.issueUserToken(), { hasgroups: true });
    await expectRefused(validatorFor(issuer).authenticate(bearer(tampered)), 'bad_signature');
  });
});

describe('EntraTokenValidator: signing keys', () => {
  it('fetches the JWKS once across many validations', async () => {
    const validator = validatorFor(issuer);
    const tokens = Array.from({ length: 20 }, () => bearer(issuer.issueUserToken()));
    // Concurrent first requests share one fetch; later ones hit the cache.
    await Promise.all(tokens.slice(0, 10).map((token) => validator.authenticate(token)));
    for (const token of tokens.slice(10)) await validator.authenticate(token);
    expect(issuer.jwksRequestCount).toBe(1);
  });

  it('refreshes once for an unknown kid and then finds a rotated key', async () => {
    const validator = validatorFor(issuer);
    await validator.authenticate(bearer(issuer.issueUserToken()));
    expect(issuer.jwksRequestCount).toBe(1);

    const oldKid = issuer.currentKid;
    const newKid = await issuer.rotateKey();
    await validator.authenticate(bearer(issuer.issueUserToken({ kid: newKid })));
    expect(issuer.jwksRequestCount).toBe(2);
    await validator.authenticate(bearer(issuer.issueUserToken({ kid: newKid })));
    expect(issuer.jwksRequestCount).toBe(2);

    // Once retired, the old key is refused by a validator that has to look it up.
    issuer.retireKey(oldKid);
    expect(issuer.publishedKids).toEqual([newKid]);
    await expectRefused(validatorFor(issuer).authenticate(bearer(issuer.issueUserToken({ kid: oldKid }))), 'unknown_key');
  });

  const madeUpKidToken = () => bearer(issuer.forge.withHeader({ kid: `made-up-${randomUUID()}` }));

  it('lets a burst of unknown kids share one refresh', async () => {
    const validator = validatorFor(issuer);
    const errors = await Promise.all(Array.from({ length: 25 }, () => rejection(validator.authenticate(madeUpKidToken()))));
    expect(errors.map((error) => error.details?.reason)).toEqual(Array(25).fill('unknown_key'));
    expect(issuer.jwksRequestCount).toBe(1);
  });

  it('caps refreshes under a stream of unknown kids', async () => {
    const validator = validatorFor(issuer, { jwksRequestsPerMinute: 3 });
    for (let i = 0; i < 20; i += 1) await expectRefused(validator.authenticate(madeUpKidToken()), 'unknown_key');
    expect(issuer.jwksRequestCount).toBe(3);
  });

  it('keeps accepting real keys after made-up kids spent the refresh budget', async () => {
    const validator = validatorFor(issuer, { jwksRequestsPerMinute: 1 });
    // The one refresh a made-up kid caused fetched the whole set, so the real key needs none.
    await expectRefused(validator.authenticate(madeUpKidToken()), 'unknown_key');
    await expectRefused(validator.authenticate(madeUpKidToken()), 'unknown_key');
    await expect(validator.authenticate(bearer(issuer.issueUserToken()))).resolves.toBeDefined();
    expect(issuer.jwksRequestCount).toBe(1);
  });

  it('refetches the key set once it is older than the cache age', async () => {
    const validator = validatorFor(issuer, { jwksCacheMaxAgeMs: 0 });
    await validator.authenticate(bearer(issuer.issueUserToken()));
    await validator.authenticate(bearer(issuer.issueUserToken()));
    expect(issuer.jwksRequestCount).toBe(2);
  });

  it('serves cached keys while the key endpoint is down, and reports unknown kids as a dependency failure', async () => {
    const validator = validatorFor(issuer, { jwksCacheMaxAgeMs: 0 });
    await validator.authenticate(bearer(issuer.issueUserToken()));
    issuer.setJwksAvailable(false);
    try {
      await expect(validator.authenticate(bearer(issuer.issueUserToken()))).resolves.toBeDefined();
      const error = await rejection(validator.authenticate(madeUpKidToken()));
      expect(error.code).toBe('dependency_unavailable');
      expect(statusByCode[error.code]).toBe(503);
    } finally {
      issuer.setJwksAvailable(true);
    }
  });

  it('reports an unreachable key endpoint as a dependency failure, not as a bad token', async () => {
    const validator = validatorFor(issuer, { jwksUri: `${issuer.baseUrl}/${issuer.tenantId}/no-such-keys` });
    const error = await rejection(validator.authenticate(bearer(issuer.issueUserToken())));
    expect(error.code).toBe('dependency_unavailable');
  });
});
