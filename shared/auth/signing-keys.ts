/**
 * The tenant's token signing keys, fetched from its JWKS with jwks-rsa and cached as a whole set.
 *
 * Why not jwks-rsa's own `cache` + `rateLimit` wrappers: they cache per requested kid and put every miss through
 * the `limiter` package, which under concurrent misses queues callers for seconds and then fetches anyway instead
 * of refusing them (auth0/node-jwks-rsa PR #433, open). Made-up kids would also spend the budget that a real
 * rotated key needs. Here:
 *  - the whole key set is cached, so every published key is known after one fetch (Entra publishes keys well
 *    before signing with them);
 *  - a kid not in the set triggers a refresh; concurrent misses share that one refresh;
 *  - refreshes are capped at `requestsPerMinute`; over the cap an unknown kid is simply unknown;
 *  - after `maxAgeMs` the set is refreshed on next use; if that fails, the cached keys keep serving.
 */
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { createPublicKey, type KeyObject } from 'node:crypto';
import jwksRsa from 'jwks-rsa';

export interface SigningKeyStoreOptions {
  jwksUri: string;
  maxAgeMs: number;
  requestsPerMinute: number;
  timeoutMs: number;
  requestAgent?: HttpAgent | HttpsAgent;
}

/** Thrown for a kid the JWKS does not list (after a refresh, or when no refresh is allowed yet). */
export class UnknownSigningKeyError extends Error {
  override readonly name = 'UnknownSigningKeyError';
}

/** Thrown when the JWKS cannot be fetched and the kid is not cached; `cause` is jwks-rsa's error. */
export class SigningKeysUnavailableError extends Error {
  override readonly name = 'SigningKeysUnavailableError';
}

const ONE_MINUTE_MS = 60_000;

export class SigningKeyStore {
  private readonly client: jwksRsa.JwksClient;
  /** kid → public key of the last successful fetch, parsed once (not on every token check). */
  private keys = new Map<string, KeyObject>();
  private fetchedAt: number | undefined;
  private inFlight: Promise<void> | undefined;
  /** Error of the last fetch, until one succeeds. */
  private lastFetchError: unknown;
  /** Start times of the fetches in the last minute, oldest first. */
  private recentFetches: number[] = [];

  constructor(private readonly options: SigningKeyStoreOptions) {
    // jwks-rsa does the HTTP request (timeout, agent) and turns JWKs into PEM keys; caching is ours (see above).
    this.client = jwksRsa({
      jwksUri: options.jwksUri,
      cache: false,
      rateLimit: false,
      timeout: options.timeoutMs,
      ...(options.requestAgent ? { requestAgent: options.requestAgent } : {}),
    });
  }

  /** Public key for `kid`. */
  async publicKey(kid: string): Promise<KeyObject> {
    if (this.isStale()) await this.refreshIfAllowed().catch(() => undefined); // stale keys beat no keys
    const cached = this.keys.get(kid);
    if (cached) return cached;

    let refreshError: unknown;
    try {
      await this.refreshIfAllowed();
    } catch (error) {
      refreshError = error;
    }
    const refreshed = this.keys.get(kid);
    if (refreshed) return refreshed;
    // Over the budget no fetch happens; if the last one failed, the kid is unknown only because we cannot look.
    const fetchError = refreshError ?? this.lastFetchError;
    if (fetchError !== undefined) throw new SigningKeysUnavailableError('the JWKS could not be fetched', { cause: fetchError });
    throw new UnknownSigningKeyError(`no signing key with kid ${kid}`);
  }

  private isStale(): boolean {
    return this.fetchedAt !== undefined && Date.now() - this.fetchedAt >= this.options.maxAgeMs;
  }

  /** Joins the refresh under way, starts one if the budget allows, or returns at once. */
  private refreshIfAllowed(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    const now = Date.now();
    this.recentFetches = this.recentFetches.filter((startedAt) => now - startedAt < ONE_MINUTE_MS);
    if (this.recentFetches.length >= this.options.requestsPerMinute) return Promise.resolve();
    this.recentFetches.push(now);
    this.inFlight = this.fetchKeys().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async fetchKeys(): Promise<void> {
    try {
      const signingKeys = await this.client.getSigningKeys();
      const keys = new Map<string, KeyObject>();
      for (const key of signingKeys) if (key.kid) keys.set(key.kid, createPublicKey(key.getPublicKey()));
      this.keys = keys;
      this.fetchedAt = Date.now();
      this.lastFetchError = undefined;
    } catch (error) {
      this.lastFetchError = error;
      throw error;
    }
  }
}
