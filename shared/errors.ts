/**
 * The one error type of dbdist. Code decides the HTTP status (see shared/http.ts) and is what callers,
 * logs and the runner branch on; message is for people.
 */
export type ErrorCode =
  /** A request body, query or route parameter failed its schema; `fieldErrors` names the fields. */
  | 'validation_failed'
  /** No token, or a token that failed validation (signature, issuer, audience, lifetime, algorithm). */
  | 'unauthenticated'
  /** A valid caller without the role or ownership the operation needs. */
  | 'forbidden'
  /** The token carries a groups overage marker instead of groups: RBAC cannot be decided from it. */
  | 'groups_overage'
  | 'not_found'
  /** A request body over the size limit (refused before it is parsed). */
  | 'payload_too_large'
  /** A request body that is not declared `application/json`. */
  | 'unsupported_media_type'
  /** The resource is in a state that does not allow the operation (e.g. cancelling a finished job). */
  | 'conflict'
  /** Uploaded bytes do not match what the runner reported (size or SHA-256). */
  | 'integrity_mismatch'
  /** A dependency (store, blob, Service Bus, identity provider) did not answer; worth retrying. */
  | 'dependency_unavailable'
  /** A setting is missing or malformed; start-up stops with its name. */
  | 'config_invalid'
  | 'internal';

export interface FieldError {
  /** Dotted path of the offending field, e.g. `body.options.compression` or `query.limit`. */
  field: string;
  message: string;
}

export class AppError extends Error {
  override readonly name = 'AppError';
  readonly code: ErrorCode;
  readonly fieldErrors: FieldError[];
  /** Extra machine-readable facts for the caller (e.g. a job's current status on a conflict). */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { fieldErrors?: FieldError[]; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.fieldErrors = options.fieldErrors ?? [];
    this.details = options.details;
  }
}

/** Recognised by name and shape, not only instanceof: errors cross module copies and worker boundaries. */
export function isAppError(error: unknown): error is AppError {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { name?: unknown }).name === 'AppError' &&
    typeof (error as { code?: unknown }).code === 'string'
  );
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
