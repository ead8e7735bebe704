/**
 * Cursor pagination for every list (CONTRACT §3). A cursor names the last row of a page,
 * opaquely; the next page starts strictly after it in the list's order, so rows inserted
 * meanwhile never shift or repeat what the caller already saw.
 */
import { z } from 'zod';
import { AppError } from './errors';

export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
});

/** What a list endpoint asks a service for: a page size and, after the first page, a cursor. */
export interface PageRequest {
  limit: number;
  cursor?: string | undefined;
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export function encodeCursor(value: string | number): string {
  return Buffer.from(JSON.stringify([value])).toString('base64url');
}

/** Throws a 400 naming `cursor` for anything we did not hand out. */
export function decodeCursor<T extends string | number>(cursor: string, kind: 'uuid' | 'integer'): T {
  try {
    const [value] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    if (kind === 'uuid' && typeof value === 'string' && z.uuid().safeParse(value).success) return value as T;
    if (kind === 'integer' && typeof value === 'number' && Number.isInteger(value)) return value as T;
  } catch {
    // fall through to the validation error
  }
  throw new AppError('validation_error', 'The cursor is not valid', [{ path: 'cursor', message: 'not a cursor from this list' }]);
}

/**
 * Models fetch `limit + 1` rows; the extra row only tells whether another page exists.
 */
export function toPage<T>(rows: T[], limit: number, cursorOf: (row: T) => string | number): Page<T> {
  const data = rows.slice(0, limit);
  const last = data[data.length - 1];
  return { data, next_cursor: rows.length > limit && last !== undefined ? encodeCursor(cursorOf(last)) : null };
}
