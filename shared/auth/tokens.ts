import type { Principal } from './principal.js';

/**
 * Validates an `Authorization: Bearer …` header against Entra ID and returns the caller.
 * Throws AppError `unauthenticated` (401) for a missing/invalid token and `groups_overage` (403) when the
 * token has a groups overage instead of a groups claim.
 */
export interface TokenValidator {
  authenticate(authorizationHeader: string | null | undefined): Promise<Principal>;
}
