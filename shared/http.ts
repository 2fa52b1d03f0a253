import { type ErrorCode, type FieldError, isAppError } from './errors.js';

/** The only place an error code becomes an HTTP status. */
export const statusByCode: Record<ErrorCode, number> = {
  validation_failed: 400,
  unauthenticated: 401,
  forbidden: 403,
  groups_overage: 403,
  not_found: 404,
  payload_too_large: 413,
  unsupported_media_type: 415,
  conflict: 409,
  integrity_mismatch: 422,
  dependency_unavailable: 503,
  config_invalid: 500,
  internal: 500,
};

const titleByCode: Record<ErrorCode, string> = {
  validation_failed: 'The request is not valid',
  unauthenticated: 'Authentication required',
  forbidden: 'Not allowed',
  groups_overage: 'Group membership cannot be read from this token',
  not_found: 'Not found',
  payload_too_large: 'The request body is too large',
  unsupported_media_type: 'The request body must be JSON',
  conflict: 'Conflict with the current state',
  integrity_mismatch: 'Integrity check failed',
  dependency_unavailable: 'A dependency is unavailable',
  config_invalid: 'The service is misconfigured',
  internal: 'Internal error',
};

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** RFC 9457 problem details, with `errors` naming fields and `code` for programs. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  errors?: FieldError[];
  instance?: string;
  [extension: string]: unknown;
}

export interface ProblemResponse {
  status: number;
  headers: Record<string, string>;
  jsonBody: ProblemDetails;
}

export function problem(code: ErrorCode, detail: string, extra: Partial<ProblemDetails> = {}): ProblemResponse {
  const status = statusByCode[code];
  const body: ProblemDetails = {
    type: `https://dbdist.dev/problems/${code.replace(/_/g, '-')}`,
    title: titleByCode[code],
    status,
    detail,
    code,
    ...extra,
  };
  const headers: Record<string, string> = { 'content-type': PROBLEM_CONTENT_TYPE };
  if (status === 401) headers['www-authenticate'] = 'Bearer';
  return { status, headers, jsonBody: body };
}

/**
 * Maps any thrown value to a problem response. Expected errors explain themselves; anything else becomes a
 * 500 whose detail names only the invocation id, never a stack trace or an internal message.
 */
export function problemFromError(error: unknown, invocationId: string): ProblemResponse {
  if (isAppError(error)) {
    const isServerSide = statusByCode[error.code] >= 500 && error.code !== 'dependency_unavailable';
    const detail = isServerSide ? `The request failed; quote invocation id ${invocationId} when reporting it.` : error.message;
    return problem(error.code, detail, {
      // Server-side field errors name settings, not the caller's input: they stay in the logs.
      ...(error.fieldErrors.length > 0 && !isServerSide ? { errors: error.fieldErrors } : {}),
      ...(error.details && !isServerSide ? error.details : {}),
      instance: invocationId,
    });
  }
  return problem('internal', `The request failed; quote invocation id ${invocationId} when reporting it.`, {
    instance: invocationId,
  });
}
