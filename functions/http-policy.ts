/**
 * What every HTTP response carries whatever the handler: CORS as configured by `CORS_ORIGINS`, and the
 * security headers. The app answers CORS itself; platform CORS on the Function App stays off
 * (infra/modules/functionapp.bicep), because when both are on the platform's wins and the app's headers are
 * dropped (docs/infra.md, "CORS"). Read from the settings without the rest of Deps: a preflight or a probe
 * must not wait for SQL.
 */
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import { type HttpSettings, httpSettingsSchema, parseSettings } from '../shared/config.js';
import { NEXT_CURSOR_HEADER } from './responses.js';

export interface HttpPolicy {
  /** Serialized origins (`https://portal.example.com`) allowed to call the API from a browser. */
  corsOrigins: readonly string[];
  /** Largest request body read (bytes). */
  maxBodyBytes: number;
}

export function httpPolicyFromSettings(settings: HttpSettings): HttpPolicy {
  return { corsOrigins: settings.CORS_ORIGINS, maxBodyBytes: settings.MAX_REQUEST_BODY_BYTES };
}

let current: HttpPolicy | undefined;

/** The process's HTTP policy, from the app settings on first use unless a host set its own. */
export function httpPolicy(): HttpPolicy {
  current ??= httpPolicyFromSettings(parseSettings(httpSettingsSchema, process.env, 'HTTP settings'));
  return current;
}

/** For hosts that configure in code (the local sandbox, tests); `undefined` goes back to the app settings. */
export function setHttpPolicy(policy: HttpPolicy | undefined): void {
  current = policy;
}

/** Request headers a browser may send: the token and the JSON content type. */
export const CORS_ALLOWED_HEADERS = ['authorization', 'content-type'] as const;
/** Response headers a browser script may read besides the CORS-safelisted ones. */
export const CORS_EXPOSED_HEADERS = ['location', NEXT_CURSOR_HEADER] as const;
/** How long a browser may reuse a preflight answer (seconds). */
export const CORS_MAX_AGE_SECONDS = 600;

const securityHeaders: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  // Answers are per caller and may name backups: never kept by a browser or a proxy.
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
};

/** The allowed origin of this request, or undefined (no Origin header, or one not configured). */
export function allowedOrigin(request: HttpRequest, policy: HttpPolicy = httpPolicy()): string | undefined {
  const origin = request.headers.get('origin');
  return origin !== null && policy.corsOrigins.includes(origin) ? origin : undefined;
}

/** Headers added to every response: security headers always; CORS headers only for an allowed origin. */
export function policyHeaders(request: HttpRequest, policy: HttpPolicy = httpPolicy()): Record<string, string> {
  const headers = { ...securityHeaders };
  if (policy.corsOrigins.length === 0) return headers;
  // The answer differs by Origin once CORS is configured: caches must key on it.
  headers.vary = 'Origin';
  const origin = allowedOrigin(request, policy);
  if (origin) {
    headers['access-control-allow-origin'] = origin;
    headers['access-control-expose-headers'] = CORS_EXPOSED_HEADERS.join(', ');
  }
  return headers;
}

/** The handler's response with the policy headers; the handler's own headers win except for the policy's. */
export function withPolicyHeaders(response: HttpResponseInit, request: HttpRequest): HttpResponseInit {
  const headers = new Headers(response.headers as ConstructorParameters<typeof Headers>[0]);
  let policy: HttpPolicy | undefined;
  try {
    policy = httpPolicy();
  } catch {
    // A malformed setting fails the request itself (500 config_invalid, logged); its answer still gets the
    // security headers, and no CORS header.
    policy = { corsOrigins: [], maxBodyBytes: 0 };
  }
  for (const [name, value] of Object.entries(policyHeaders(request, policy))) headers.set(name, value);
  return { ...response, headers: Object.fromEntries(headers) };
}
