/**
 * Cursor pagination for every list (CONTRACT §3). A cursor names the last row of a page,
 * opaquely; the next page starts strictly after it in the list's order, so rows inserted
 * meanwhile never shift or repeat what the caller already saw.
 *
 * A cursor carries an HMAC of its value (keyed from ENCRYPTION_KEY), so only cursors this
 * server issued are read: anything else is a 400 before its value reaches a query, where an
 * out-of-range number used to be a 500 (`[3000000000]` is no `integer`). A new ENCRYPTION_KEY
 * ends the cursors issued under the old one; the caller starts the list again.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { config } from '../config';
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

/** Its own key, derived once: a cursor's MAC must never be usable as anything else. */
const CURSOR_KEY = Buffer.from(hkdfSync('sha256', config.ENCRYPTION_KEY, Buffer.alloc(0), 'pagination cursor', 32));
/** 128 bits: forging one takes 2^128 guesses, and a cursor stays short. */
const MAC_BYTES = 16;

const macOf = (payload: string) => createHmac('sha256', CURSOR_KEY).update(payload).digest().subarray(0, MAC_BYTES);

export function encodeCursor(value: string | number): string {
  const payload = Buffer.from(JSON.stringify([value])).toString('base64url');
  return `${payload}.${macOf(payload).toString('base64url')}`;
}

/** Throws a 400 naming `cursor` for anything we did not hand out. */
export function decodeCursor<T extends string | number>(cursor: string, kind: 'uuid' | 'integer'): T {
  const [payload, mac, extra] = cursor.split('.');
  const given = Buffer.from(mac ?? '', 'base64url');
  if (payload !== undefined && extra === undefined && given.length === MAC_BYTES && timingSafeEqual(given, macOf(payload))) {
    try {
      const [value] = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as unknown[];
      if (kind === 'uuid' && typeof value === 'string' && z.uuid().safeParse(value).success) return value as T;
      if (kind === 'integer' && typeof value === 'number' && Number.isInteger(value)) return value as T;
    } catch {
      // fall through to the validation error
    }
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
