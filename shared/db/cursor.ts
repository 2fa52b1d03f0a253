/**
 * Keyset pagination cursors: an opaque base64url token holding the (timestamp, id) of the last row of a page.
 * Lists are ordered by (timestamp desc, id desc), so the next page is every row strictly "before" that pair;
 * rows sharing a timestamp are split by id, never skipped or repeated.
 */
import { and, eq, lt, or, type SQL } from 'drizzle-orm';
import type { AnyColumn } from 'drizzle-orm';
import { AppError } from '../errors.js';

export interface CursorPosition {
  at: Date;
  id: string;
}

export function encodeCursor(position: CursorPosition): string {
  return Buffer.from(JSON.stringify([position.at.toISOString(), position.id]), 'utf8').toString('base64url');
}

/** Throws `validation_failed` (on field `query.cursor`) for a token this module did not make. */
export function decodeCursor(cursor: string): CursorPosition {
  try {
    const decoded: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(decoded) && decoded.length === 2 && typeof decoded[0] === 'string' && typeof decoded[1] === 'string') {
      const at = new Date(decoded[0]);
      if (!Number.isNaN(at.getTime()) && decoded[1].length > 0) return { at, id: decoded[1] };
    }
  } catch {
    // fall through to the error below
  }
  throw new AppError('validation_failed', 'The cursor is not one returned by a previous page.', {
    fieldErrors: [{ field: 'query.cursor', message: 'must be a cursor returned by a previous page' }],
  });
}

/** Rows after the cursor in (at desc, id desc) order. */
export function afterCursor(atColumn: AnyColumn, idColumn: AnyColumn, position: CursorPosition): SQL {
  return or(lt(atColumn, position.at), and(eq(atColumn, position.at), lt(idColumn, position.id)))!;
}

/**
 * Cuts a page from rows fetched with `limit + 1`: the extra row only says another page exists.
 * The cursor points at the last row returned, not at the extra one.
 */
export function toPage<T>(rows: T[], limit: number, positionOf: (row: T) => CursorPosition): { items: T[]; nextCursor?: string } {
  if (rows.length <= limit) return { items: rows };
  const items = rows.slice(0, limit);
  return { items, nextCursor: encodeCursor(positionOf(items[items.length - 1]!)) };
}
