import { describe, expect, it } from 'vitest';
import { Cursor } from '../../../shared/contracts/common.js';
import { decodeCursor, encodeCursor, toPage } from '../../../shared/db/cursor.js';
import { isAppError } from '../../../shared/errors.js';

describe('cursor', () => {
  const position = { at: new Date('2026-04-05T06:07:08.901Z'), id: '0b7f7d2e-4a55-4a8e-9d1a-3a1d2b0c4e5f' };

  it('round-trips a position through a token the HTTP contract accepts', () => {
    const token = encodeCursor(position);
    expect(Cursor.safeParse(token).success).toBe(true);
    expect(decodeCursor(token)).toEqual(position);
  });

  it.each([
    ['not base64 JSON', 'bm90LWpzb24'],
    ['wrong shape', Buffer.from(JSON.stringify({ at: 1 })).toString('base64url')],
    ['bad date', Buffer.from(JSON.stringify(['yesterday', 'x'])).toString('base64url')],
    ['empty id', Buffer.from(JSON.stringify([position.at.toISOString(), ''])).toString('base64url')],
  ])('rejects %s as a validation error on query.cursor', (_case, token) => {
    let caught: unknown;
    try {
      decodeCursor(token);
    } catch (error) {
      caught = error;
    }
    expect(isAppError(caught) && caught.code).toBe('validation_failed');
    expect(isAppError(caught) && caught.fieldErrors[0]?.field).toBe('query.cursor');
  });

  it('cuts a page from limit + 1 rows and points the cursor at the last row returned', () => {
    const rows = [1, 2, 3].map((n) => ({ at: position.at, id: `id-${n}` }));
    const page = toPage(rows, 2, (row) => row);
    expect(page.items.map((row) => row.id)).toEqual(['id-1', 'id-2']);
    expect(decodeCursor(page.nextCursor!)).toEqual({ at: position.at, id: 'id-2' });
    expect(toPage(rows, 3, (row) => row)).toEqual({ items: rows });
  });
});
