import type { z } from 'zod';
import { AppError, type FieldError } from './errors.js';

/** zod issues → our field errors, each path prefixed with where the value came from (body, query, route). */
export function fieldErrorsFrom(error: z.ZodError, source: string): FieldError[] {
  return error.issues.map((issue) => ({
    field: [source, ...issue.path.map(String)].filter(Boolean).join('.'),
    message: issue.message,
  }));
}

/** Parses `value` with `schema` or throws a validation AppError naming every bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, source: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const fieldErrors = fieldErrorsFrom(result.error, source);
  throw new AppError(
    'validation_failed',
    `Invalid ${source}: ${fieldErrors.map((e) => `${e.field} (${e.message})`).join('; ')}`,
    { fieldErrors },
  );
}
